// What the settings of Auth0's resource model mean, driven through the official SDK as a user
// of Auth0 would: token dialects and enforce_policies, the client access policy (deny_all),
// client and user grants side by side with the subject_type filter, organization_usage,
// proof of possession, and the properties Clavis refuses rather than store and ignore.
// Env: CLAVIS_DOMAIN, CLAVIS_CLIENT_ID, CLAVIS_CLIENT_SECRET; trust via NODE_EXTRA_CA_CERTS.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { Management, ManagementClient } from "auth0";
import { AuthApiError, AuthenticationClient } from "auth0/legacy";
import { assertMgmtErrorBody, collect, decodeJwt, env, expectError, uniq } from "./helpers.mjs";

const mgmt = new ManagementClient({ domain: env.domain, clientId: env.clientId, clientSecret: env.clientSecret });
const created = { apis: [], clients: [] };

async function bestEffort(fn) {
  try {
    await fn();
  } catch {
    /* cleanup only */
  }
}

async function api(settings = {}) {
  const identifier = `https://${uniq("sdk-enf")}.clavis.test/`;
  const rs = await mgmt.resourceServers.create({
    identifier,
    scopes: [{ value: "read:things" }, { value: "write:things" }],
    ...settings,
  });
  created.apis.push(rs.id);
  return rs;
}

async function client(settings = {}) {
  const c = await mgmt.clients.create({
    name: uniq("sdk-enf"),
    app_type: "non_interactive",
    grant_types: ["client_credentials"],
    ...settings,
  });
  created.clients.push(c.client_id);
  return c;
}

function tokenRequest(c, audience, extra = {}) {
  const auth = new AuthenticationClient({ domain: env.domain, clientId: c.client_id, clientSecret: c.client_secret });
  return auth.oauth.clientCredentialsGrant({ audience, ...extra });
}

describe("Auth0's settings are enforced (official Node SDK)", () => {
  after(async () => {
    for (const id of created.clients) await bestEffort(() => mgmt.clients.delete(id));
    for (const id of created.apis) await bestEffort(() => mgmt.resourceServers.delete(id));
  });

  it("token_dialect rfc9068_profile_authz with enforce_policies: typ at+jwt, client_id, jti, permissions", async () => {
    const rs = await api({ token_dialect: "rfc9068_profile_authz", enforce_policies: true });
    assert.equal(rs.token_dialect, "rfc9068_profile_authz");
    const c = await client();
    await mgmt.clientGrants.create({ client_id: c.client_id, audience: rs.identifier, scope: ["read:things"] });
    const { data } = await tokenRequest(c, rs.identifier);
    const { header, payload } = decodeJwt(data.access_token);
    assert.equal(header.typ, "at+jwt");
    assert.equal(payload.client_id, c.client_id);
    assert.equal(typeof payload.jti, "string");
    assert.equal(payload.azp, undefined);
    assert.equal(payload.gty, undefined);
    assert.deepEqual(payload.permissions, ["read:things"]);
  });

  it("token_dialect access_token (the default): typ JWT, azp, gty, no permissions", async () => {
    const rs = await api();
    const c = await client();
    await mgmt.clientGrants.create({ client_id: c.client_id, audience: rs.identifier, scope: ["read:things"] });
    const { header, payload } = decodeJwt((await tokenRequest(c, rs.identifier)).data.access_token);
    assert.equal(header.typ, "JWT");
    assert.equal(payload.azp, c.client_id);
    assert.equal(payload.gty, "client-credentials");
    assert.equal(payload.permissions, undefined);
  });

  it("subject_type_authorization.client.policy deny_all refuses every M2M token, grant or not", async () => {
    const rs = await api({ subject_type_authorization: { client: { policy: "deny_all" } } });
    const c = await client();
    await mgmt.clientGrants.create({ client_id: c.client_id, audience: rs.identifier, scope: [] });
    const err = await expectError(tokenRequest(c, rs.identifier), AuthApiError, 403);
    assert.equal(err.error, "access_denied");
    await mgmt.resourceServers.update(rs.id, { subject_type_authorization: { client: { policy: "require_client_grant" } } });
    assert.ok((await tokenRequest(c, rs.identifier)).data.access_token);
  });

  it("a user grant and a client grant for one API: only the client grant authorizes, subject_type filters", async () => {
    const rs = await api();
    const c = await client();
    const user = await mgmt.clientGrants.create({
      client_id: c.client_id,
      audience: rs.identifier,
      scope: ["write:things"],
      subject_type: "user",
    });
    assert.equal(user.subject_type, "user");
    await expectError(tokenRequest(c, rs.identifier), AuthApiError, 403);
    const grant = await mgmt.clientGrants.create({ client_id: c.client_id, audience: rs.identifier, scope: ["read:things"] });
    const { payload } = decodeJwt((await tokenRequest(c, rs.identifier)).data.access_token);
    assert.equal(payload.scope, "read:things");
    const err = await expectError(
      mgmt.clientGrants.create({ client_id: c.client_id, audience: rs.identifier, scope: [], subject_type: "user" }),
      Management.ConflictError,
      409,
    );
    assertMgmtErrorBody(err, 409);
    const users = await collect(await mgmt.clientGrants.list({ audience: rs.identifier, subject_type: "user" }));
    assert.deepEqual(
      users.map((g) => g.id),
      [user.id],
    );
    const clients = await collect(await mgmt.clientGrants.list({ audience: rs.identifier, subject_type: "client" }));
    assert.deepEqual(
      clients.map((g) => g.id),
      [grant.id],
    );
  });

  it("organization_usage require: no token without an organization; an organization parameter is refused", async () => {
    const rs = await api();
    const c = await client();
    const grant = await mgmt.clientGrants.create({
      client_id: c.client_id,
      audience: rs.identifier,
      scope: [],
      organization_usage: "require",
    });
    const err = await expectError(tokenRequest(c, rs.identifier), AuthApiError, 403);
    assert.equal(err.error, "access_denied");
    await mgmt.clientGrants.update(grant.id, { organization_usage: "allow" });
    assert.ok((await tokenRequest(c, rs.identifier)).data.access_token);
    const bad = await expectError(tokenRequest(c, rs.identifier, { organization: "org_unknown" }), AuthApiError, 400);
    assert.equal(bad.error, "invalid_request");
  });

  it("proof of possession required (API or client): no token without a certificate that binds it", async () => {
    const bound = await api({ proof_of_possession: { mechanism: "mtls", required: true } });
    const c = await client();
    await mgmt.clientGrants.create({ client_id: c.client_id, audience: bound.identifier, scope: [] });
    let err = await expectError(tokenRequest(c, bound.identifier), AuthApiError, 400);
    assert.equal(err.error, "invalid_request");
    const plain = await api();
    const strict = await client({ require_proof_of_possession: true });
    await mgmt.clientGrants.create({ client_id: strict.client_id, audience: plain.identifier, scope: [] });
    err = await expectError(tokenRequest(strict, plain.identifier), AuthApiError, 400);
    assert.equal(err.error, "invalid_request");
  });

  it("settings Clavis does not support are refused with a 400 naming them, never stored", async () => {
    const refusals = [
      () => mgmt.tenants.settings.update({ session_lifetime: 24 }),
      () => mgmt.clients.create({ name: uniq("sdk-enf"), compliance_level: "fapi1_adv_pkj_par" }),
      () => mgmt.resourceServers.create({ identifier: `urn:${uniq("enc")}`, proof_of_possession: { mechanism: "dpop", required: true } }),
      () =>
        mgmt.resourceServers.create({
          identifier: `urn:${uniq("enc")}`,
          token_encryption: { format: "compact-nested-jwe", encryption_key: { alg: "RSA-OAEP-256", pem: "x" } },
        }),
    ];
    for (const call of refusals) {
      const err = await expectError(call(), Management.BadRequestError, 400);
      assertMgmtErrorBody(err, 400, "invalid_body");
      assert.match(err.body.message, /not support|does not/);
    }
  });
});
