// Token quotas through the official Node SDK (auth0 v7): `token_quota` on clients and
// organizations, `tenants.settings` with `default_token_quota`, and the quota headers read
// with the SDK's own HttpResponseHeadersUtils.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { HttpResponseHeadersUtils, ManagementClient } from "auth0";
import { AuthApiError, AuthenticationClient } from "auth0/legacy";
import { env, expectError, uniq } from "./helpers.mjs";

const mgmt = new ManagementClient({ domain: env.domain, clientId: env.clientId, clientSecret: env.clientSecret });
const created = { apis: [], clients: [], orgs: [] };

async function bestEffort(fn) {
  try {
    await fn();
  } catch {
    /* cleanup only */
  }
}

async function setup(clientSettings = {}, grantSettings = {}) {
  const rs = await mgmt.resourceServers.create({ identifier: `https://${uniq("sdk-quota")}.clavis.test/`, scopes: [] });
  created.apis.push(rs.id);
  const c = await mgmt.clients.create({
    name: uniq("sdk-quota"),
    app_type: "non_interactive",
    grant_types: ["client_credentials"],
    ...clientSettings,
  });
  created.clients.push(c.client_id);
  await mgmt.clientGrants.create({ client_id: c.client_id, audience: rs.identifier, scope: [], ...grantSettings });
  return { rs, c };
}

function tokenRequest(c, audience, extra = {}) {
  // No retries: a quota's 429 is awaited for its retry-after (up to a day), not retried.
  const auth = new AuthenticationClient({
    domain: env.domain,
    clientId: c.client_id,
    clientSecret: c.client_secret,
    retry: { enabled: false },
  });
  return auth.oauth.clientCredentialsGrant({ audience, ...extra });
}

describe("token quotas (official Node SDK)", () => {
  after(async () => {
    for (const id of created.clients) await bestEffort(() => mgmt.clients.delete(id));
    for (const id of created.apis) await bestEffort(() => mgmt.resourceServers.delete(id));
    for (const id of created.orgs) await bestEffort(() => mgmt.organizations.delete(id));
  });

  it("a client's token_quota: headers read by HttpResponseHeadersUtils, then 429 with retry-after", async () => {
    const quota = { client_credentials: { per_hour: 2, per_day: 10, enforce: true } };
    const { rs, c } = await setup({ token_quota: quota });
    assert.deepEqual((await mgmt.clients.get(c.client_id)).token_quota, quota);
    for (const remaining of [1, 0]) {
      const response = await tokenRequest(c, rs.identifier);
      assert.ok(response.data.access_token);
      const limits = HttpResponseHeadersUtils.getClientQuotaLimit(response.headers);
      assert.equal(limits.perHour.quota, 2);
      assert.equal(limits.perHour.remaining, remaining);
      assert.ok(limits.perHour.resetAfter > 0 && limits.perHour.resetAfter <= 3600);
      assert.equal(limits.perDay.quota, 10);
      assert.equal(limits.perDay.remaining, remaining + 8);
      assert.ok(limits.perDay.resetAfter >= limits.perHour.resetAfter);
      assert.equal(HttpResponseHeadersUtils.getOrganizationQuotaLimit(response.headers), null);
    }
    const err = await expectError(tokenRequest(c, rs.identifier), AuthApiError, 429);
    assert.equal(err.error, "too_many_requests");
    assert.equal(err.error_description, "Client quota exceeded");
    const retryAfter = Number(err.headers.get("retry-after"));
    const limits = HttpResponseHeadersUtils.getClientQuotaLimit(err.headers);
    assert.equal(limits.perHour.remaining, 0);
    assert.equal(limits.perHour.resetAfter, retryAfter);
  });

  it("an organization's token_quota is reported with getOrganizationQuotaLimit", async () => {
    const org = await mgmt.organizations.create({
      name: uniq("sdk-quota"),
      token_quota: { client_credentials: { per_day: 5, enforce: false } },
    });
    created.orgs.push(org.id);
    assert.deepEqual(org.token_quota, { client_credentials: { per_day: 5, enforce: false } });
    const updated = await mgmt.organizations.update(org.id, { token_quota: { client_credentials: { per_day: 1 } } });
    assert.deepEqual(updated.token_quota, { client_credentials: { per_day: 1 } });
    const { rs, c } = await setup({}, { organization_usage: "allow", allow_any_organization: true });
    const response = await tokenRequest(c, rs.identifier, { organization: org.id });
    const limits = HttpResponseHeadersUtils.getOrganizationQuotaLimit(response.headers);
    assert.deepEqual(limits.perDay, { quota: 1, remaining: 0, resetAfter: limits.perDay.resetAfter });
    assert.equal(limits.perHour, undefined);
    assert.equal(HttpResponseHeadersUtils.getClientQuotaLimit(response.headers), null);
    const err = await expectError(tokenRequest(c, rs.identifier, { organization: org.id }), AuthApiError, 429);
    assert.equal(err.error_description, "Organization quota exceeded");
  });

  it("tenants.settings manages default_token_quota", async () => {
    const before = await mgmt.tenants.settings.get();
    try {
      // Not enforced: other tests running against this server are never refused.
      const dtq = { clients: { client_credentials: { per_hour: 100000, enforce: false } } };
      const updated = await mgmt.tenants.settings.update({ default_token_quota: dtq });
      assert.deepEqual(updated.default_token_quota, dtq);
      assert.deepEqual((await mgmt.tenants.settings.get()).default_token_quota, dtq);
      const { rs, c } = await setup();
      const response = await tokenRequest(c, rs.identifier);
      const limits = HttpResponseHeadersUtils.getClientQuotaLimit(response.headers);
      assert.equal(limits.perHour.quota, 100000);
      assert.equal(limits.perDay, undefined);
    } finally {
      await mgmt.tenants.settings.update({ default_token_quota: before.default_token_quota ?? null });
    }
    assert.equal((await mgmt.tenants.settings.get()).default_token_quota, before.default_token_quota);
  });
});
