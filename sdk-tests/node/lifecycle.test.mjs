// Lifecycle of clients, credentials, resource servers and client grants through
// Auth0's official Node SDK (auth0 v7, ManagementClient) against Clavis.
// Env: CLAVIS_DOMAIN, CLAVIS_CLIENT_ID, CLAVIS_CLIENT_SECRET; trust via NODE_EXTRA_CA_CERTS.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Management, ManagementClient, ManagementError } from "auth0";
import { AuthApiError, AuthenticationClient } from "auth0/legacy";
import {
  ISSUER,
  MGMT_AUDIENCE,
  RX,
  assertMgmtErrorBody,
  collect,
  decodeJwt,
  env,
  expectError,
  expected,
  fixture,
  rsaKey,
  uniq,
} from "./helpers.mjs";

const mgmt = new ManagementClient({ domain: env.domain, clientId: env.clientId, clientSecret: env.clientSecret });

// State shared by the ordered steps below.
const s = {
  name: uniq("sdk-node"),
  identifier: `https://${uniq("sdk-node-api")}.clavis.test/api`,
  key: rsaKey(),
  creds: {},
};

async function bestEffort(fn) {
  try {
    await fn();
  } catch {
    /* cleanup only */
  }
}

describe("auth0 node SDK lifecycle", () => {
  before(() => {
    assert.ok(env.domain.includes(":"), "CLAVIS_DOMAIN should be host:port");
  });

  after(async () => {
    // Leaves a long-lived server clean when a step failed half-way.
    for (const g of [s.grantMgmt, s.grant]) if (g) await bestEffort(() => mgmt.clientGrants.delete(g.id));
    if (s.client) {
      await bestEffort(() =>
        mgmt.clients.update(s.client.client_id, {
          client_authentication_methods: null,
          token_endpoint_auth_method: "client_secret_post",
        }),
      );
      for (const c of Object.values(s.creds)) {
        await bestEffort(() => mgmt.clients.credentials.delete(s.client.client_id, c.id));
      }
      await bestEffort(() => mgmt.clients.delete(s.client.client_id));
    }
    if (s.rs) await bestEffort(() => mgmt.resourceServers.delete(s.rs.id));
  });

  // ---------------------------------------------------------------- clients
  it("creates a non_interactive client", async () => {
    const c = await mgmt.clients.create({
      name: s.name,
      description: "created by sdk-tests/node",
      app_type: "non_interactive",
      grant_types: ["client_credentials"],
      token_endpoint_auth_method: "client_secret_post",
    });
    assert.match(c.client_id, RX.clientId);
    assert.equal(c.name, s.name);
    assert.equal(c.description, "created by sdk-tests/node");
    assert.equal(c.app_type, "non_interactive");
    assert.deepEqual(c.grant_types, ["client_credentials"]);
    assert.equal(c.token_endpoint_auth_method, "client_secret_post");
    assert.equal(typeof c.client_secret, "string");
    assert.ok(c.client_secret.length >= 32, "client_secret looks too short");
    assert.ok(!("client_authentication_methods" in c) || c.client_authentication_methods == null);
    s.client = c;
    s.secret = c.client_secret;
  });

  it("lists clients with the SDK's default paging (include_totals=true) and finds it", async () => {
    const page = await mgmt.clients.list();
    // The SDK asks for include_totals=true: the body must be the envelope.
    assert.equal(typeof page.response, "object");
    assert.ok(!Array.isArray(page.response), "expected the include_totals envelope, got a bare array");
    assert.ok(Array.isArray(page.response.clients), "envelope must carry `clients`");
    assert.equal(typeof page.response.total, "number");
    assert.equal(page.response.start, 0);
    assert.equal(page.response.limit, 50);
    const all = await collect(page);
    const found = all.find((c) => c.client_id === s.client.client_id);
    assert.ok(found, "created client not listed");
    assert.equal(found.name, s.name);
    assert.ok(all.some((c) => c.client_id === env.clientId), "bootstrap client not listed");
  });

  it("gets the client", async () => {
    const c = await mgmt.clients.get(s.client.client_id);
    assert.equal(c.client_id, s.client.client_id);
    assert.equal(c.name, s.name);
    assert.equal(c.app_type, "non_interactive");
    assert.equal(c.client_secret, s.secret);
  });

  it("updates name and description", async () => {
    s.name = `${s.name}-renamed`;
    const c = await mgmt.clients.update(s.client.client_id, { name: s.name, description: "renamed by sdk-tests/node" });
    assert.equal(c.client_id, s.client.client_id);
    assert.equal(c.name, s.name);
    assert.equal(c.description, "renamed by sdk-tests/node");
    assert.deepEqual(c.grant_types, ["client_credentials"]);
    const again = await mgmt.clients.get(s.client.client_id);
    assert.equal(again.name, s.name);
  });

  // ------------------------------------------------------- resource servers
  it("creates a resource server with scopes", async () => {
    const rs = await mgmt.resourceServers.create({
      name: `${s.name} api`,
      identifier: s.identifier,
      scopes: [
        { value: "read:things", description: "Read things" },
        { value: "write:things", description: "Write things" },
      ],
      signing_alg: "RS256",
      token_lifetime: 3600,
    });
    assert.match(rs.id, RX.rsId);
    assert.equal(rs.identifier, s.identifier);
    assert.equal(rs.name, `${s.name} api`);
    assert.deepEqual(rs.scopes, [
      { value: "read:things", description: "Read things" },
      { value: "write:things", description: "Write things" },
    ]);
    assert.equal(rs.signing_alg, "RS256");
    assert.equal(rs.token_lifetime, 3600);
    s.rs = rs;
  });

  it("lists resource servers with default paging and finds it", async () => {
    const page = await mgmt.resourceServers.list();
    assert.ok(!Array.isArray(page.response), "expected the include_totals envelope");
    assert.ok(Array.isArray(page.response.resource_servers));
    assert.equal(typeof page.response.total, "number");
    const all = await collect(page);
    assert.ok(all.some((r) => r.id === s.rs.id && r.identifier === s.identifier));
    const system = all.find((r) => r.identifier === MGMT_AUDIENCE);
    assert.ok(system, "the Management API resource server is listed");
    assert.equal(system.is_system, true);
  });

  it("gets the resource server by id", async () => {
    const rs = await mgmt.resourceServers.get(s.rs.id);
    assert.equal(rs.id, s.rs.id);
    assert.equal(rs.identifier, s.identifier);
    assert.equal(rs.token_lifetime, 3600);
  });

  it("updates the resource server", async () => {
    const rs = await mgmt.resourceServers.update(s.rs.id, { name: `${s.name} api v2`, token_lifetime: 7200 });
    assert.equal(rs.id, s.rs.id);
    assert.equal(rs.name, `${s.name} api v2`);
    assert.equal(rs.token_lifetime, 7200);
    assert.equal(rs.identifier, s.identifier);
    assert.equal(rs.scopes.length, 2);
  });

  // ---------------------------------------------------------- client grants
  it("creates a client grant", async () => {
    const g = await mgmt.clientGrants.create({
      client_id: s.client.client_id,
      audience: s.identifier,
      scope: ["read:things"],
    });
    assert.match(g.id, RX.grantId);
    assert.equal(g.client_id, s.client.client_id);
    assert.equal(g.audience, s.identifier);
    assert.deepEqual(g.scope, ["read:things"]);
    s.grant = g;
  });

  it("lists client grants with the SDK default (include_totals + take, checkpoint) and finds it", async () => {
    const page = await mgmt.clientGrants.list();
    assert.ok(!Array.isArray(page.response), "expected an object with `client_grants`, got a bare array");
    assert.ok(Array.isArray(page.response.client_grants));
    const all = await collect(page);
    const g = all.find((x) => x.id === s.grant.id);
    assert.ok(g, "grant not listed");
    assert.deepEqual(g.scope, ["read:things"]);
    const filtered = await collect(await mgmt.clientGrants.list({ client_id: s.client.client_id }));
    assert.deepEqual(
      filtered.map((x) => x.id),
      [s.grant.id],
    );
  });

  it("updates the grant's scope", async () => {
    const g = await mgmt.clientGrants.update(s.grant.id, { scope: ["read:things", "write:things"] });
    assert.equal(g.id, s.grant.id);
    assert.deepEqual(g.scope, ["read:things", "write:things"]);
  });

  it("grants the client read:clients on the Management API", async () => {
    const g = await mgmt.clientGrants.create({
      client_id: s.client.client_id,
      audience: MGMT_AUDIENCE,
      scope: ["read:clients"],
    });
    assert.match(g.id, RX.grantId);
    assert.deepEqual(g.scope, ["read:clients"]);
    s.grantMgmt = g;
  });

  it("issues a token to the new client for the new API (client_secret_post)", async () => {
    const auth = new AuthenticationClient({ domain: env.domain, clientId: s.client.client_id, clientSecret: s.secret });
    const { data } = await auth.oauth.clientCredentialsGrant({ audience: s.identifier });
    assert.equal(data.token_type, "Bearer");
    assert.equal(data.expires_in, 7200);
    assert.equal(data.scope, "read:things write:things");
    const { payload } = decodeJwt(data.access_token);
    assert.equal(payload.aud, s.identifier);
    assert.equal(payload.iss, ISSUER);
    assert.equal(payload.sub, `${s.client.client_id}@clients`);
    assert.equal(payload.azp, s.client.client_id);
    assert.equal(payload.gty, "client-credentials");
    assert.equal(payload.scope, "read:things write:things");
    assert.equal(payload.exp - payload.iat, 7200);
  });

  it("refuses a call whose token lacks the scope (ForbiddenError 403)", async () => {
    const limited = new ManagementClient({
      domain: env.domain,
      clientId: s.client.client_id,
      clientSecret: s.secret,
    });
    // read:clients is enough for this...
    const self = await limited.clients.get(s.client.client_id);
    assert.equal(self.client_id, s.client.client_id);
    assert.ok(!("client_secret" in self), "client_secret must not be shown without read:client_keys");
    // ...but not for credentials.
    const err = await expectError(limited.clients.credentials.list(s.client.client_id), Management.ForbiddenError, 403);
    assert.ok(err instanceof ManagementError);
    assertMgmtErrorBody(err, 403, "insufficient_scope");
  });

  // ------------------------------------------------------------ credentials
  it("creates a public_key credential from an SPKI PEM", async () => {
    const c = await mgmt.clients.credentials.create(s.client.client_id, {
      credential_type: "public_key",
      name: "sdk spki",
      pem: s.key.spki,
      alg: "RS256",
    });
    assert.match(c.id, RX.credId);
    assert.equal(c.credential_type, "public_key");
    assert.equal(c.name, "sdk spki");
    assert.equal(c.alg, "RS256");
    assert.equal(c.kid, s.key.kid, "kid is the RFC 7638 thumbprint");
    assert.match(c.created_at, RX.ts);
    assert.match(c.updated_at, RX.ts);
    assert.ok(!("expires_at" in c));
    assert.ok(!("pem" in c));
    assert.deepEqual(Object.keys(c), ["id", "credential_type", "kid", "alg", "name", "created_at", "updated_at"]);
    s.creds.spki = c;
  });

  it("creates a public_key credential from a certificate with parse_expiry_from_cert", async () => {
    const c = await mgmt.clients.credentials.create(s.client.client_id, {
      credential_type: "public_key",
      name: "sdk cert",
      pem: fixture(expected.pubkey_cert.file),
      parse_expiry_from_cert: true,
    });
    assert.match(c.id, RX.credId);
    assert.equal(c.credential_type, "public_key");
    assert.equal(c.kid, expected.pubkey_cert.kid);
    assert.equal(c.alg, "RS256");
    assert.equal(c.expires_at, expected.pubkey_cert.expires_at);
    s.creds.pubCert = c;
  });

  it("creates a cert_subject_dn credential from a subject_dn string", async () => {
    const dn = "C=es\nO=Clavis\nCN=clavis-sdk-node";
    const c = await mgmt.clients.credentials.create(s.client.client_id, {
      credential_type: "cert_subject_dn",
      name: "sdk dn",
      subject_dn: dn,
    });
    assert.match(c.id, RX.credId);
    assert.equal(c.credential_type, "cert_subject_dn");
    assert.equal(c.subject_dn, dn);
    assert.ok(!("expires_at" in c));
    assert.deepEqual(Object.keys(c), ["id", "credential_type", "name", "subject_dn", "created_at", "updated_at"]);
    s.creds.dn = c;
  });

  it("creates an x509_cert credential", async () => {
    const c = await mgmt.clients.credentials.create(s.client.client_id, {
      credential_type: "x509_cert",
      name: "sdk x509",
      pem: fixture(expected.x509_cert.file),
    });
    assert.match(c.id, RX.credId);
    assert.equal(c.credential_type, "x509_cert");
    assert.equal(c.thumbprint_sha256, expected.x509_cert.thumbprint_sha256);
    assert.equal(c.expires_at, expected.x509_cert.expires_at);
    assert.deepEqual(Object.keys(c), [
      "id",
      "credential_type",
      "name",
      "thumbprint_sha256",
      "created_at",
      "updated_at",
      "expires_at",
    ]);
    s.creds.x509 = c;
  });

  it("lists credentials (bare array, creation order)", async () => {
    const list = await mgmt.clients.credentials.list(s.client.client_id);
    assert.ok(Array.isArray(list));
    assert.deepEqual(
      list.map((c) => c.id),
      [s.creds.spki.id, s.creds.pubCert.id, s.creds.dn.id, s.creds.x509.id],
    );
    for (const c of list) assert.ok(!("pem" in c));
  });

  it("gets one credential", async () => {
    const c = await mgmt.clients.credentials.get(s.client.client_id, s.creds.spki.id);
    assert.deepEqual(c, s.creds.spki);
  });

  it("updates expires_at (the seed endpoint) and then clears it with null", async () => {
    const id = s.creds.spki.id;
    const set = await mgmt.clients.credentials.update(s.client.client_id, id, { expires_at: "2031-02-03T04:05:06.000Z" });
    assert.equal(set.id, id);
    assert.equal(set.expires_at, "2031-02-03T04:05:06.000Z");
    assert.equal(set.created_at, s.creds.spki.created_at);
    assert.match(set.updated_at, RX.ts);
    assert.ok(set.updated_at >= s.creds.spki.updated_at);
    assert.equal(set.kid, s.creds.spki.kid);
    assert.equal((await mgmt.clients.credentials.get(s.client.client_id, id)).expires_at, "2031-02-03T04:05:06.000Z");

    const cleared = await mgmt.clients.credentials.update(s.client.client_id, id, { expires_at: null });
    assert.equal(cleared.id, id);
    assert.ok(!("expires_at" in cleared), "expires_at: null removes the key");
    assert.equal(cleared.created_at, s.creds.spki.created_at);
    assert.ok(!("expires_at" in (await mgmt.clients.credentials.get(s.client.client_id, id))));
  });

  it("normalises an expires_at given with an offset", async () => {
    const c = await mgmt.clients.credentials.update(s.client.client_id, s.creds.dn.id, {
      expires_at: "2032-01-01T02:00:00+02:00",
    });
    assert.equal(c.expires_at, "2032-01-01T00:00:00.000Z");
  });

  it("rejects an update without a body (the SDK sends {}) with BadRequestError 400", async () => {
    const err = await expectError(
      mgmt.clients.credentials.update(s.client.client_id, s.creds.spki.id),
      Management.BadRequestError,
      400,
    );
    assertMgmtErrorBody(err, 400, "invalid_body");
  });

  it("gets an unknown credential -> NotFoundError 404", async () => {
    const err = await expectError(
      mgmt.clients.credentials.get(s.client.client_id, "cred_1111111111111111111111"),
      Management.NotFoundError,
      404,
    );
    assert.ok(err instanceof ManagementError);
    assertMgmtErrorBody(err, 404);
    assert.equal(err.body.message, "The credential does not exist");
  });

  it("creates with a garbage PEM -> BadRequestError 400", async () => {
    const err = await expectError(
      mgmt.clients.credentials.create(s.client.client_id, {
        credential_type: "public_key",
        name: "garbage",
        pem: "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n",
      }),
      Management.BadRequestError,
      400,
    );
    assertMgmtErrorBody(err, 400, "invalid_body");
  });

  it("replaces the subject_dn credential with one made from a certificate", async () => {
    const del = await mgmt.clients.credentials.delete(s.client.client_id, s.creds.dn.id);
    assert.equal(del, undefined);
    delete s.creds.dn;
    const c = await mgmt.clients.credentials.create(s.client.client_id, {
      credential_type: "cert_subject_dn",
      name: "sdk dn pem",
      pem: fixture(expected.subject_cert.file),
    });
    assert.match(c.id, RX.credId);
    assert.equal(c.subject_dn, expected.subject_cert.subject_dn);
    assert.ok(!("expires_at" in c));
    s.creds.dnPem = c;
    const list = await mgmt.clients.credentials.list(s.client.client_id);
    assert.deepEqual(
      list.map((x) => x.id),
      [s.creds.spki.id, s.creds.pubCert.id, s.creds.x509.id, s.creds.dnPem.id],
    );
  });

  // ------------------------------------------- attach / detach (private_key_jwt)
  it("attaches the public_key credential via client_authentication_methods", async () => {
    const c = await mgmt.clients.update(s.client.client_id, {
      client_authentication_methods: { private_key_jwt: { credentials: [{ id: s.creds.spki.id }] } },
      token_endpoint_auth_method: null,
    });
    assert.deepEqual(c.client_authentication_methods, {
      private_key_jwt: { credentials: [{ id: s.creds.spki.id }] },
    });
    assert.ok(!("client_secret" in c), "client_secret must disappear while private_key_jwt is in use");
    assert.ok(!("token_endpoint_auth_method" in c), "token_endpoint_auth_method must disappear too");
    const got = await mgmt.clients.get(s.client.client_id);
    assert.ok(!("client_secret" in got));
    assert.deepEqual(got.client_authentication_methods, c.client_authentication_methods);
  });

  it("refuses to delete an attached credential (BadRequestError 400)", async () => {
    const err = await expectError(
      mgmt.clients.credentials.delete(s.client.client_id, s.creds.spki.id),
      Management.BadRequestError,
      400,
    );
    assertMgmtErrorBody(err, 400);
    assert.match(err.body.message, /still associated/);
  });

  it("authenticates with a client assertion (AuthenticationClient, private_key_jwt)", async () => {
    const auth = new AuthenticationClient({
      domain: env.domain,
      clientId: s.client.client_id,
      clientAssertionSigningKey: s.key.pkcs8,
    });
    const { data } = await auth.oauth.clientCredentialsGrant({ audience: s.identifier });
    assert.equal(data.token_type, "Bearer");
    assert.equal(decodeJwt(data.access_token).payload.sub, `${s.client.client_id}@clients`);
  });

  it("authenticates with a client assertion (ManagementClient clientAssertionSigningKey)", async () => {
    const viaKey = new ManagementClient({
      domain: env.domain,
      clientId: s.client.client_id,
      clientAssertionSigningKey: s.key.pkcs8,
    });
    const c = await viaKey.clients.get(s.client.client_id);
    assert.equal(c.client_id, s.client.client_id);
    assert.ok(!("client_secret" in c));
  });

  it("detaches (client_authentication_methods: null) and the secret is back", async () => {
    const c = await mgmt.clients.update(s.client.client_id, {
      client_authentication_methods: null,
      token_endpoint_auth_method: "client_secret_post",
    });
    assert.ok(c.client_authentication_methods == null);
    assert.equal(c.token_endpoint_auth_method, "client_secret_post");
    assert.equal(c.client_secret, s.secret);
  });

  it("deletes every credential", async () => {
    for (const [k, c] of Object.entries(s.creds)) {
      await mgmt.clients.credentials.delete(s.client.client_id, c.id);
      delete s.creds[k];
    }
    assert.deepEqual(await mgmt.clients.credentials.list(s.client.client_id), []);
  });

  // ------------------------------------------------------------- rotation
  it("rotates the client secret", async () => {
    const c = await mgmt.clients.rotateSecret(s.client.client_id);
    assert.equal(c.client_id, s.client.client_id);
    assert.equal(typeof c.client_secret, "string");
    assert.notEqual(c.client_secret, s.secret);
    const old = s.secret;
    s.secret = c.client_secret;

    const withOld = new AuthenticationClient({ domain: env.domain, clientId: s.client.client_id, clientSecret: old });
    const err = await expectError(
      withOld.oauth.clientCredentialsGrant({ audience: s.identifier }),
      AuthApiError,
      401,
    );
    assert.equal(err.error, "access_denied");

    const withNew = new AuthenticationClient({ domain: env.domain, clientId: s.client.client_id, clientSecret: s.secret });
    const { data } = await withNew.oauth.clientCredentialsGrant({ audience: s.identifier });
    assert.equal(data.token_type, "Bearer");
  });

  // ------------------------------------------------------------- teardown
  it("deletes the client grants", async () => {
    for (const key of ["grantMgmt", "grant"]) {
      const id = s[key].id;
      assert.equal(await mgmt.clientGrants.delete(id), undefined);
      delete s[key];
      const left = await collect(await mgmt.clientGrants.list({ client_id: s.client.client_id }));
      assert.ok(!left.some((g) => g.id === id));
    }
  });

  it("deletes the resource server", async () => {
    assert.equal(await mgmt.resourceServers.delete(s.rs.id), undefined);
    const id = s.rs.id;
    delete s.rs;
    await expectError(mgmt.resourceServers.get(id), Management.NotFoundError, 404);
  });

  it("deletes the client", async () => {
    assert.equal(await mgmt.clients.delete(s.client.client_id), undefined);
    const id = s.client.client_id;
    delete s.client;
    const err = await expectError(mgmt.clients.get(id), Management.NotFoundError, 404);
    assertMgmtErrorBody(err, 404, "inexistent_client");
  });
});
