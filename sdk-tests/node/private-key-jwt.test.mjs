// private_key_jwt end to end with real clients: the auth0 SDK's ManagementClient authenticated by
// a client assertion (clientAssertionSigningKey) runs the credential lifecycle, including the seed
// endpoint clients.credentials.update; the seed PATCH switches its own key off and on; and
// openid-client v6 (clientCredentialsGrant with PrivateKeyJwt: sends nbf, 60 s lifetime) gets a
// token through discovery.
import assert from "node:assert/strict";
import { webcrypto } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { ManagementClient, ManagementError } from "auth0";
import * as oidc from "openid-client";
import { ISSUER, MGMT_AUDIENCE, RX, decodeJwt, env, expectError, rsaKey, uniq } from "./helpers.mjs";

const admin = new ManagementClient({ domain: env.domain, clientId: env.clientId, clientSecret: env.clientSecret });

const SCOPES = [
  "read:clients",
  "update:clients",
  "read:client_credentials",
  "create:client_credentials",
  "update:client_credentials",
  "delete:client_credentials",
];

const s = { key: rsaKey() };

/** A ManagementClient authenticated with a client assertion; new each time (no cached token). */
const viaKey = () =>
  new ManagementClient({ domain: env.domain, clientId: s.client.client_id, clientAssertionSigningKey: s.key.pkcs8 });

describe("private_key_jwt with the official SDKs", () => {
  before(async () => {
    s.client = await admin.clients.create({
      name: uniq("pkjwt-sdk"),
      app_type: "non_interactive",
      grant_types: ["client_credentials"],
    });
    s.grant = await admin.clientGrants.create({ client_id: s.client.client_id, audience: MGMT_AUDIENCE, scope: SCOPES });
    s.cred = await admin.clients.credentials.create(s.client.client_id, {
      credential_type: "public_key",
      name: "sdk key",
      pem: s.key.spki,
      alg: "RS256",
    });
    await admin.clients.update(s.client.client_id, {
      client_authentication_methods: { private_key_jwt: { credentials: [{ id: s.cred.id }] } },
      token_endpoint_auth_method: null,
    });
    s.target = await admin.clients.create({ name: uniq("pkjwt-target"), app_type: "non_interactive", grant_types: ["client_credentials"] });
  });

  after(async () => {
    for (const id of [s.target?.client_id, s.client?.client_id]) {
      if (id) await admin.clients.delete(id).catch(() => {});
    }
  });

  it("runs the credential lifecycle authenticated by a client assertion", async () => {
    const mgmt = viaKey();
    const other = rsaKey();
    const created = await mgmt.clients.credentials.create(s.target.client_id, {
      credential_type: "public_key",
      name: "managed by key",
      pem: other.spki,
    });
    assert.match(created.id, RX.credId);
    assert.equal(created.kid, other.kid);
    const listed = await mgmt.clients.credentials.list(s.target.client_id);
    assert.deepEqual(listed.map((c) => c.id), [created.id]);
    const updated = await mgmt.clients.credentials.update(s.target.client_id, created.id, {
      expires_at: "2031-02-03T04:05:06.000Z",
    });
    assert.equal(updated.expires_at, "2031-02-03T04:05:06.000Z");
    const cleared = await mgmt.clients.credentials.update(s.target.client_id, created.id, { expires_at: null });
    assert.ok(!("expires_at" in cleared));
    const got = await mgmt.clients.credentials.get(s.target.client_id, created.id);
    assert.equal(got.id, created.id);
    await mgmt.clients.credentials.delete(s.target.client_id, created.id);
    assert.deepEqual(await mgmt.clients.credentials.list(s.target.client_id), []);
  });

  it("the seed PATCH switches the client's own key off at once and back on", async () => {
    const ok = await viaKey().clients.get(s.client.client_id);
    assert.equal(ok.client_id, s.client.client_id);

    await admin.clients.credentials.update(s.client.client_id, s.cred.id, { expires_at: "2020-01-01T00:00:00.000Z" });
    const err = await expectError(viaKey().clients.get(s.client.client_id), ManagementError, 401);
    assert.equal(err.body.error, "invalid_client");

    await admin.clients.credentials.update(s.client.client_id, s.cred.id, { expires_at: null });
    const again = await viaKey().clients.get(s.client.client_id);
    assert.equal(again.client_id, s.client.client_id);
  });

  it("openid-client v6 clientCredentialsGrant with PrivateKeyJwt (nbf, 60 s lifetime)", async () => {
    const privateKey = await webcrypto.subtle.importKey(
      "pkcs8",
      Buffer.from(s.key.pkcs8.replace(/-----[^-]+-----|\s/g, ""), "base64"),
      { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
      false,
      ["sign"],
    );
    const config = await oidc.discovery(new URL(ISSUER), s.client.client_id, {}, oidc.PrivateKeyJwt(privateKey));
    assert.equal(config.serverMetadata().issuer, ISSUER);
    const tokens = await oidc.clientCredentialsGrant(config, { audience: MGMT_AUDIENCE });
    assert.equal(tokens.token_type.toLowerCase(), "bearer");
    const claims = decodeJwt(tokens.access_token).payload;
    assert.equal(claims.sub, `${s.client.client_id}@clients`);
    assert.equal(claims.aud, MGMT_AUDIENCE);
    for (const scope of SCOPES) assert.ok(claims.scope.split(" ").includes(scope), claims.scope);
  });
});
