// Shared helpers for the Node SDK tests (auth0 v7 on npm).
import assert from "node:assert/strict";
import { createHash, createPublicKey, generateKeyPairSync, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`environment variable ${name} is required (see sdk-tests/SDK-REQUESTS.md)`);
  return v;
}

export const env = {
  domain: need("CLAVIS_DOMAIN"), // "127.0.0.1:<port>"
  clientId: need("CLAVIS_CLIENT_ID"),
  clientSecret: need("CLAVIS_CLIENT_SECRET"),
};
export const MGMT_AUDIENCE = `https://${env.domain}/api/v2/`;
export const ISSUER = `https://${env.domain}/`;

export const RX = {
  clientId: /^[A-Za-z0-9]{32}$/,
  credId: /^cred_[1-9A-HJ-NP-Za-km-z]{22}$/,
  grantId: /^cgr_[A-Za-z0-9]{16}$/,
  rsId: /^[0-9a-f]{24}$/,
  ts: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
};

const FIXTURES = new URL("../fixtures/", import.meta.url);
export const fixture = (name) => readFileSync(new URL(name, FIXTURES), "utf8");
export const expected = JSON.parse(fixture("expected.json"));

export const uniq = (prefix) => `${prefix}-${randomBytes(4).toString("hex")}`;

export function decodeJwt(token) {
  assert.equal(typeof token, "string");
  const parts = token.split(".");
  assert.equal(parts.length, 3, "access_token must be a three-part JWT");
  const dec = (s) => JSON.parse(Buffer.from(s, "base64url").toString("utf8"));
  return { header: dec(parts[0]), payload: dec(parts[1]) };
}

/** A fresh RSA-2048 key: SPKI PEM for the credential, PKCS#8 PEM for signing assertions, RFC 7638 kid. */
export function rsaKey() {
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const spki = publicKey.export({ type: "spki", format: "pem" });
  const pkcs8 = privateKey.export({ type: "pkcs8", format: "pem" });
  const jwk = createPublicKey(spki).export({ format: "jwk" });
  const canonical = JSON.stringify({ e: jwk.e, kty: "RSA", n: jwk.n });
  const kid = createHash("sha256").update(canonical).digest("base64url");
  return { spki, pkcs8, kid };
}

/**
 * Awaits a promise that must reject with an instance of `Class` carrying `statusCode`.
 * Returns the error for further checks.
 */
export async function expectError(promise, Class, statusCode) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `expected ${Class.name} (${statusCode}) but the call succeeded`);
  assert.ok(err instanceof Class, `expected ${Class.name}, got ${err?.constructor?.name}: ${err?.message}`);
  assert.equal(err.statusCode, statusCode, `statusCode of ${err.constructor.name}: ${err.message}`);
  return err;
}

/** Checks the Management API error body shape: {statusCode, error, message[, errorCode]}. */
export function assertMgmtErrorBody(err, statusCode, errorCode) {
  const body = err.body;
  assert.equal(typeof body, "object", `error body should be parsed JSON, got ${JSON.stringify(body)}`);
  assert.equal(body.statusCode, statusCode);
  assert.equal(typeof body.error, "string");
  assert.equal(typeof body.message, "string");
  if (errorCode !== undefined) assert.equal(body.errorCode, errorCode);
}

/** Iterates every item of an SDK Page (follows the SDK's own paging). */
export async function collect(page) {
  const out = [];
  for await (const item of page) out.push(item);
  return out;
}
