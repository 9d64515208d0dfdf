// Log streams through the Node SDK (auth0 v7): logStreams.create / list / get / update /
// delete, and the events of a refused token request reaching a local HTTP receiver.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { after, before, describe, it } from "node:test";
import { ManagementClient, ManagementError } from "auth0";
import { MGMT_AUDIENCE, ISSUER, env, expectError, uniq } from "./helpers.mjs";

const admin = new ManagementClient({ domain: env.domain, clientId: env.clientId, clientSecret: env.clientSecret });
const s = { received: [] };

describe("log streams with the Node SDK", () => {
  before(async () => {
    s.server = createServer((req, res) => {
      const chunks = [];
      req.on("data", (c) => chunks.push(c));
      req.on("end", () => {
        s.received.push({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
        res.writeHead(200).end();
      });
    });
    await new Promise((resolve) => s.server.listen(0, "127.0.0.1", resolve));
    s.url = `http://127.0.0.1:${s.server.address().port}/in`;
  });

  after(async () => {
    if (s.stream) await admin.logStreams.delete(s.stream.id).catch(() => {});
    await new Promise((resolve) => s.server.close(resolve));
  });

  it("creates, lists, reads, updates and deletes an http stream that delivers", async () => {
    const name = uniq("stream");
    s.stream = await admin.logStreams.create({
      name,
      type: "http",
      sink: {
        httpEndpoint: s.url,
        httpContentType: "application/json",
        httpContentFormat: "JSONARRAY",
        httpAuthorization: "Bearer sdk-stream-token",
      },
      filters: [{ type: "category", name: "auth.token_exchange.fail" }],
    });
    assert.match(s.stream.id, /^lst_\d{16}$/);
    assert.equal(s.stream.status, "active");
    assert.equal(s.stream.sink.httpAuthorization, "Bearer sdk-stream-token");

    const all = await admin.logStreams.list();
    assert.ok(all.some((x) => x.id === s.stream.id));
    const got = await admin.logStreams.get(s.stream.id);
    assert.deepEqual(got, s.stream);

    // A refused token request: feccft, which the filter carries.
    const client = uniq("nobody");
    const r = await fetch(`${ISSUER}oauth/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "client_credentials",
        client_id: client,
        client_secret: "wrong-secret-0123456789",
        audience: MGMT_AUDIENCE,
      }),
    });
    assert.equal(r.status, 401);
    const deadline = Date.now() + 20000;
    let events = [];
    while (Date.now() < deadline) {
      events = s.received.flatMap((p) => JSON.parse(p.body));
      if (events.some((e) => e.data.client_id === client)) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const mine = events.filter((e) => e.data.client_id === client);
    assert.equal(mine.length, 1, JSON.stringify(events));
    assert.equal(mine[0].data.type, "feccft");
    assert.equal(mine[0].log_id, mine[0].data.log_id);
    assert.ok(events.every((e) => e.data.type === "feccft"));
    assert.ok(s.received.every((p) => p.headers.authorization === "Bearer sdk-stream-token"));

    const paused = await admin.logStreams.update(s.stream.id, { status: "paused" });
    assert.equal(paused.status, "paused");
    await admin.logStreams.delete(s.stream.id);
    await expectError(admin.logStreams.get(s.stream.id), ManagementError, 404);
    s.stream = undefined;
  });

  it("refuses other types", async () => {
    await expectError(
      admin.logStreams.create({ type: "datadog", sink: { datadogApiKey: "k", datadogRegion: "us" } }),
      ManagementError,
      400,
    );
  });
});
