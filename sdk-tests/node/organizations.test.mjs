// Organizations for machine-to-machine access through Auth0's official Node SDK (auth0 v7):
// organizations and their client grants with mgmt.organizations.*, the grant's organizations
// with mgmt.clientGrants.organizations, and tokens for an organization (org_id) with the
// authentication client, including the client's default_organization.
// Env: CLAVIS_DOMAIN, CLAVIS_CLIENT_ID, CLAVIS_CLIENT_SECRET; trust via NODE_EXTRA_CA_CERTS.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { Management, ManagementClient } from "auth0";
import { AuthApiError, AuthenticationClient } from "auth0/legacy";
import { assertMgmtErrorBody, collect, decodeJwt, env, expectError, uniq } from "./helpers.mjs";

const mgmt = new ManagementClient({ domain: env.domain, clientId: env.clientId, clientSecret: env.clientSecret });
const created = { apis: [], clients: [], orgs: [] };

async function bestEffort(fn) {
  try {
    await fn();
  } catch {
    /* cleanup only */
  }
}

function tokenRequest(c, audience, extra = {}) {
  const auth = new AuthenticationClient({ domain: env.domain, clientId: c.client_id, clientSecret: c.client_secret });
  return auth.oauth.clientCredentialsGrant({ audience, ...extra });
}

async function org(name) {
  const o = await mgmt.organizations.create({ name, display_name: "SDK org" });
  created.orgs.push(o.id);
  return o;
}

describe("Organizations (official Node SDK)", () => {
  after(async () => {
    for (const id of created.orgs) await bestEffort(() => mgmt.organizations.delete(id));
    for (const id of created.clients) await bestEffort(() => mgmt.clients.delete(id));
    for (const id of created.apis) await bestEffort(() => mgmt.resourceServers.delete(id));
  });

  it("create, get by id and name, list, update, delete; a duplicate name is a ConflictError", async () => {
    const name = uniq("sdk-org");
    const o = await org(name);
    assert.match(o.id, /^org_[A-Za-z0-9]{16}$/);
    assert.equal(o.name, name);
    assert.deepEqual(await mgmt.organizations.get(o.id), o);
    assert.deepEqual(await mgmt.organizations.getByName(name), o);
    const listed = await collect(await mgmt.organizations.list({ take: 1 }));
    assert.ok(listed.some((x) => x.id === o.id));
    const sorted = await collect(await mgmt.organizations.list({ take: 1, sort: "name:-1" }));
    const names = sorted.map((x) => x.name);
    assert.deepEqual(names, [...names].sort().reverse());
    assert.equal(new Set(sorted.map((x) => x.id)).size, sorted.length);
    const err = await expectError(mgmt.organizations.create({ name }), Management.ConflictError, 409);
    assertMgmtErrorBody(err, 409);
    const renamed = await mgmt.organizations.update(o.id, { name: `${name}-x`, metadata: { tier: "gold" } });
    assert.equal(renamed.name, `${name}-x`);
    assert.deepEqual(renamed.metadata, { tier: "gold" });
    await mgmt.organizations.delete(o.id);
    const gone = await expectError(mgmt.organizations.get(o.id), Management.NotFoundError, 404);
    assertMgmtErrorBody(gone, 404, "inexistent_organization");
  });

  it("client grants of an organization; tokens carry org_id; default_organization", async () => {
    const identifier = `https://${uniq("sdk-org-api")}.clavis.test/`;
    const rs = await mgmt.resourceServers.create({ identifier, scopes: [{ value: "read:things" }] });
    created.apis.push(rs.id);
    const c = await mgmt.clients.create({
      name: uniq("sdk-org"),
      app_type: "non_interactive",
      grant_types: ["client_credentials"],
    });
    created.clients.push(c.client_id);
    const grant = await mgmt.clientGrants.create({
      client_id: c.client_id,
      audience: identifier,
      scope: ["read:things"],
      organization_usage: "require",
    });
    const acme = await org(uniq("acme"));

    // Required, and not yet associated.
    let err = await expectError(tokenRequest(c, identifier), AuthApiError, 403);
    assert.equal(err.error, "access_denied");
    err = await expectError(tokenRequest(c, identifier, { organization: acme.id }), AuthApiError, 403);
    assert.equal(err.error, "access_denied");

    const associated = await mgmt.organizations.clientGrants.create(acme.id, { grant_id: grant.id });
    assert.equal(associated.id, grant.id);
    assert.equal(associated.organization_usage, "require");
    const grants = await collect(await mgmt.organizations.clientGrants.list(acme.id));
    assert.deepEqual(
      grants.map((g) => g.id),
      [grant.id],
    );
    const orgs = await collect(await mgmt.clientGrants.organizations.list(grant.id));
    assert.deepEqual(
      orgs.map((o) => o.id),
      [acme.id],
    );

    const token = await tokenRequest(c, identifier, { organization: acme.id });
    const claims = decodeJwt(token.data.access_token).payload;
    assert.equal(claims.org_id, acme.id);
    assert.equal(claims.org_name, undefined);

    // The default organization applies when the request names none.
    await mgmt.clients.update(c.client_id, {
      default_organization: { organization_id: acme.id, flows: ["client_credentials"] },
    });
    const byDefault = await tokenRequest(c, identifier);
    assert.equal(decodeJwt(byDefault.data.access_token).payload.org_id, acme.id);

    // Removed: refused again.
    await mgmt.organizations.clientGrants.delete(acme.id, grant.id);
    assert.deepEqual(await collect(await mgmt.organizations.clientGrants.list(acme.id)), []);
    err = await expectError(tokenRequest(c, identifier, { organization: acme.id }), AuthApiError, 403);
    assert.equal(err.error, "access_denied");
  });
});
