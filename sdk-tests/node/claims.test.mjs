// Custom claims through Auth0's official Node SDK (auth0 v7): a grant's token_claims (a Clavis
// extension, which the SDK sends and returns like any other property) are in the tokens the
// authentication client obtains; an update reaches the next token; a restricted claim is a
// BadRequestError naming it.
// Env: CLAVIS_DOMAIN, CLAVIS_CLIENT_ID, CLAVIS_CLIENT_SECRET; trust via NODE_EXTRA_CA_CERTS.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { Management, ManagementClient } from "auth0";
import { AuthenticationClient } from "auth0/legacy";
import { assertMgmtErrorBody, decodeJwt, env, expectError, uniq } from "./helpers.mjs";

const mgmt = new ManagementClient({ domain: env.domain, clientId: env.clientId, clientSecret: env.clientSecret });
const created = { apis: [], clients: [] };

async function bestEffort(fn) {
  try {
    await fn();
  } catch {
    /* cleanup only */
  }
}

describe("Custom claims (official Node SDK)", () => {
  after(async () => {
    for (const id of created.clients) await bestEffort(() => mgmt.clients.delete(id));
    for (const id of created.apis) await bestEffort(() => mgmt.resourceServers.delete(id));
  });

  it("a grant's token_claims are in its tokens, follow updates, and refuse restricted names", async () => {
    const identifier = `https://${uniq("sdk-claims-api")}.clavis.test/`;
    const rs = await mgmt.resourceServers.create({ identifier, scopes: [{ value: "read:things" }] });
    created.apis.push(rs.id);
    const c = await mgmt.clients.create({
      name: uniq("sdk-claims"),
      app_type: "non_interactive",
      grant_types: ["client_credentials"],
    });
    created.clients.push(c.client_id);
    const claims = { "https://example.com/tier": "gold", zones: ["eu", "us"] };
    const grant = await mgmt.clientGrants.create({
      client_id: c.client_id,
      audience: identifier,
      scope: ["read:things"],
      token_claims: claims,
    });
    assert.deepEqual(grant.token_claims, claims);
    const auth = new AuthenticationClient({ domain: env.domain, clientId: c.client_id, clientSecret: c.client_secret });
    const token = async () =>
      decodeJwt((await auth.oauth.clientCredentialsGrant({ audience: identifier })).data.access_token).payload;
    let payload = await token();
    assert.equal(payload["https://example.com/tier"], "gold");
    assert.deepEqual(payload.zones, ["eu", "us"]);
    assert.equal(payload.sub, `${c.client_id}@clients`);

    const updated = await mgmt.clientGrants.update(grant.id, { token_claims: { "https://example.com/tier": "silver" } });
    assert.deepEqual(updated.token_claims, { "https://example.com/tier": "silver" });
    payload = await token();
    assert.equal(payload["https://example.com/tier"], "silver");
    assert.equal(payload.zones, undefined);

    const err = await expectError(
      mgmt.clientGrants.update(grant.id, { token_claims: { sub: "someone-else" } }),
      Management.BadRequestError,
      400,
    );
    assertMgmtErrorBody(err, 400, "invalid_body");
    assert.match(err.body.message, /token_claims/);
    assert.match(err.body.message, /Claim sub is a restricted claim/);
  });
});
