// The audit trail through the Node SDK (auth0 v7): logs.list / logs.get read the events of
// the seed scenario — a key, a token, PATCH expires_at into the past, a refused token
// request, PATCH back.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ManagementClient, ManagementError } from "auth0";
import { MGMT_AUDIENCE, RX, env, expectError, rsaKey, uniq } from "./helpers.mjs";

const admin = new ManagementClient({ domain: env.domain, clientId: env.clientId, clientSecret: env.clientSecret });
const s = { key: rsaKey() };
const viaKey = () =>
  new ManagementClient({ domain: env.domain, clientId: s.client.client_id, clientAssertionSigningKey: s.key.pkcs8 });

describe("logs with the Node SDK", () => {
  before(async () => {
    s.client = await admin.clients.create({
      name: uniq("logs-sdk"),
      app_type: "non_interactive",
      grant_types: ["client_credentials"],
    });
    await admin.clientGrants.create({ client_id: s.client.client_id, audience: MGMT_AUDIENCE, scope: ["read:clients"] });
    s.cred = await admin.clients.credentials.create(s.client.client_id, {
      credential_type: "public_key",
      pem: s.key.spki,
      alg: "RS256",
    });
    await admin.clients.update(s.client.client_id, {
      client_authentication_methods: { private_key_jwt: { credentials: [{ id: s.cred.id }] } },
      token_endpoint_auth_method: null,
    });
  });

  after(async () => {
    if (s.client) await admin.clients.delete(s.client.client_id).catch(() => {});
  });

  it("logs.list and logs.get read sapi, seccft and feccft of the seed scenario", async () => {
    await viaKey().clients.get(s.client.client_id);
    await admin.clients.credentials.update(s.client.client_id, s.cred.id, { expires_at: "2020-01-01T00:00:00.000Z" });
    await expectError(viaKey().clients.get(s.client.client_id), ManagementError, 401);
    await admin.clients.credentials.update(s.client.client_id, s.cred.id, { expires_at: null });

    // What the SDK sends: page, per_page, include_totals=true, sort, search.
    const page = await admin.logs.list({ search: `client_id:${s.client.client_id}`, per_page: 100, sort: "date:1" });
    const mine = page.data;
    assert.deepEqual(
      mine.map((e) => e.type),
      ["seccft", "feccft"],
    );
    const [ok, failed] = mine;
    assert.equal(ok.client_name, s.client.name);
    assert.equal(ok.audience, MGMT_AUDIENCE);
    assert.equal(ok.scope, "read:clients");
    assert.match(ok.date, RX.ts);
    assert.match(ok.log_id, /^\d+$/);
    assert.equal(failed.audience, MGMT_AUDIENCE);
    assert.match(failed.description, /expired/);
    assert.ok(failed.description.includes(s.cred.id), failed.description);
    assert.deepEqual(failed.details, { error: "invalid_client", error_description: "Client authentication failed" });

    const path = `/api/v2/clients/${s.client.client_id}/credentials/${s.cred.id}`;
    const writes = (await admin.logs.list({ search: "type:sapi", per_page: 100, sort: "date:1" })).data.filter(
      (e) => e.details.request.path === path,
    );
    assert.deepEqual(
      writes.map((e) => e.details.request.body),
      [{ expires_at: "2020-01-01T00:00:00.000Z" }, { expires_at: null }],
    );
    for (const e of writes) {
      assert.equal(e.client_id, env.clientId);
      assert.equal(e.description, "Update a client credential");
      assert.equal(e.details.response.statusCode, 200);
    }

    const one = await admin.logs.get(failed.log_id);
    assert.deepEqual(one, failed);
    const err = await expectError(admin.logs.get("90000000000099999999999"), ManagementError, 404);
    assert.equal(err.body.message, "Log not found");
    await expectError(admin.logs.list({ search: "type:(" }), ManagementError, 400);
  });
});
