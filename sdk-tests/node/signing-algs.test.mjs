// Access tokens of every signing_alg verify with a standard JOSE library: `jose` (the one the
// auth0 SDK itself depends on; pinned in package.json), the tenant's keys fetched from jwks_uri
// (createRemoteJWKSet) for RS256, RS512 and PS256, the API's signing_secret for HS256.
// Env: CLAVIS_DOMAIN, CLAVIS_CLIENT_ID, CLAVIS_CLIENT_SECRET; trust via NODE_EXTRA_CA_CERTS.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { ManagementClient } from "auth0";
import { AuthenticationClient } from "auth0/legacy";
import { createRemoteJWKSet, jwtVerify } from "jose";
import { ISSUER, RX, env, uniq } from "./helpers.mjs";

const mgmt = new ManagementClient({ domain: env.domain, clientId: env.clientId, clientSecret: env.clientSecret });
const created = { apis: [], clients: [] };

async function bestEffort(fn) {
  try {
    await fn();
  } catch {
    /* cleanup only */
  }
}

/** An API with `signing_alg` (and `extra` settings), a client granted it, and a token for it. */
async function tokenFor(alg, extra = {}) {
  const identifier = `https://${uniq(`sdk-alg-${alg.toLowerCase()}`)}.clavis.test/`;
  const rs = await mgmt.resourceServers.create({ identifier, signing_alg: alg, ...extra });
  created.apis.push(rs.id);
  assert.match(rs.id, RX.rsId);
  assert.equal(rs.signing_alg, alg);
  const client = await mgmt.clients.create({
    name: uniq("sdk-alg"),
    app_type: "non_interactive",
    grant_types: ["client_credentials"],
  });
  created.clients.push(client.client_id);
  await mgmt.clientGrants.create({ client_id: client.client_id, audience: identifier, scope: [] });
  const auth = new AuthenticationClient({
    domain: env.domain,
    clientId: client.client_id,
    clientSecret: client.client_secret,
  });
  const { data } = await auth.oauth.clientCredentialsGrant({ audience: identifier });
  return { rs, identifier, token: data.access_token };
}

describe("access tokens verify with jose for every signing_alg", () => {
  after(async () => {
    for (const id of created.clients) await bestEffort(() => mgmt.clients.delete(id));
    for (const id of created.apis) await bestEffort(() => mgmt.resourceServers.delete(id));
  });

  for (const alg of ["RS256", "RS512", "PS256"]) {
    it(`${alg}: verified against the JWKS at jwks_uri`, async () => {
      const { rs, identifier, token } = await tokenFor(alg);
      assert.equal(rs.signing_secret, undefined);
      // A fresh key set: the JWKS names RS256 only while no API uses another RSA algorithm.
      const keys = createRemoteJWKSet(new URL(".well-known/jwks.json", ISSUER));
      const { payload, protectedHeader } = await jwtVerify(token, keys, {
        issuer: ISSUER,
        audience: identifier,
        algorithms: [alg],
      });
      assert.equal(protectedHeader.alg, alg);
      assert.equal(protectedHeader.typ, "JWT");
      assert.equal(typeof protectedHeader.kid, "string");
      assert.equal(payload.gty, "client-credentials");
    });
  }

  it("PS256 with the RFC 9068 dialect: typ at+jwt", async () => {
    const { identifier, token } = await tokenFor("PS256", { token_dialect: "rfc9068_profile" });
    const keys = createRemoteJWKSet(new URL(".well-known/jwks.json", ISSUER));
    const { protectedHeader } = await jwtVerify(token, keys, {
      issuer: ISSUER,
      audience: identifier,
      algorithms: ["PS256"],
      typ: "at+jwt",
    });
    assert.equal(protectedHeader.alg, "PS256");
  });

  it("HS256: verified with the signing_secret the API was created with", async () => {
    const secret = `sdk-secret-${uniq("hs")}-0123456789`;
    const { rs, identifier, token } = await tokenFor("HS256", { signing_secret: secret });
    assert.equal(rs.signing_secret, secret);
    const { protectedHeader } = await jwtVerify(token, new TextEncoder().encode(secret), {
      issuer: ISSUER,
      audience: identifier,
      algorithms: ["HS256"],
    });
    assert.deepEqual(protectedHeader, { alg: "HS256", typ: "JWT" });
    // Never with the tenant keys.
    const keys = createRemoteJWKSet(new URL(".well-known/jwks.json", ISSUER));
    await assert.rejects(jwtVerify(token, keys, { algorithms: ["HS256", "RS256"] }));
  });

  it("HS256 without a secret: the one Clavis creates, shown by GET", async () => {
    const { rs, identifier, token } = await tokenFor("HS256");
    assert.equal(typeof rs.signing_secret, "string");
    assert.ok(rs.signing_secret.length >= 16);
    const again = await mgmt.resourceServers.get(rs.id);
    assert.equal(again.signing_secret, rs.signing_secret);
    await jwtVerify(token, new TextEncoder().encode(rs.signing_secret), {
      issuer: ISSUER,
      audience: identifier,
      algorithms: ["HS256"],
    });
  });
});
