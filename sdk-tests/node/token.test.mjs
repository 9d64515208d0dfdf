// POST /oauth/token through the SDKs' own token code (auth0 v7 on npm).
// `AuthenticationClient` is no longer exported from the v7 main entry point; v7
// ships it (node-auth0 v4.37.x) under "auth0/legacy".
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ManagementClient, ManagementError } from "auth0";
import { AuthApiError, AuthenticationClient } from "auth0/legacy";
import { ISSUER, MGMT_AUDIENCE, decodeJwt, env, expectError } from "./helpers.mjs";

describe("auth0 node SDK: /oauth/token", () => {
  it("clientCredentialsGrant returns a Bearer JWT for the Management API", async () => {
    const auth = new AuthenticationClient({ domain: env.domain, clientId: env.clientId, clientSecret: env.clientSecret });
    const res = await auth.oauth.clientCredentialsGrant({ audience: MGMT_AUDIENCE });
    assert.equal(res.status, 200);
    const t = res.data;
    assert.equal(t.token_type, "Bearer");
    assert.equal(typeof t.expires_in, "number");
    assert.ok(t.expires_in > 0);
    assert.equal(typeof t.scope, "string");
    assert.ok(t.scope.split(" ").includes("update:client_credentials"), `scope: ${t.scope}`);
    const { header, payload } = decodeJwt(t.access_token);
    assert.equal(header.typ, "JWT");
    assert.equal(typeof header.kid, "string");
    assert.equal(payload.iss, ISSUER);
    assert.equal(payload.aud, MGMT_AUDIENCE);
    assert.equal(payload.sub, `${env.clientId}@clients`);
    assert.equal(payload.azp, env.clientId);
    assert.equal(payload.gty, "client-credentials");
    assert.equal(payload.scope, t.scope);
    assert.equal(typeof payload.iat, "number");
    assert.equal(payload.exp - payload.iat, t.expires_in);
    assert.match(res.headers.get("cache-control") ?? "", /no-store/);
  });

  it("a wrong secret is refused with 401 access_denied (AuthApiError)", async () => {
    const auth = new AuthenticationClient({ domain: env.domain, clientId: env.clientId, clientSecret: "wrong-secret" });
    const err = await expectError(auth.oauth.clientCredentialsGrant({ audience: MGMT_AUDIENCE }), AuthApiError, 401);
    assert.equal(err.error, "access_denied");
  });

  it("an audience that is no API is refused with 403 access_denied", async () => {
    const auth = new AuthenticationClient({ domain: env.domain, clientId: env.clientId, clientSecret: env.clientSecret });
    const err = await expectError(
      auth.oauth.clientCredentialsGrant({ audience: "https://no-such-api.clavis.test/" }),
      AuthApiError,
      403,
    );
    assert.equal(err.error, "access_denied");
  });

  it("ManagementClient surfaces a token failure as ManagementError 401", async () => {
    const bad = new ManagementClient({ domain: env.domain, clientId: env.clientId, clientSecret: "wrong-secret" });
    const err = await expectError(bad.clients.get(env.clientId), ManagementError, 401);
    assert.equal(err.body.error, "access_denied");
  });
});
