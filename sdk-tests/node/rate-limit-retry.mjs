// The official Node SDK's built-in retry recovers from Clavis's 429s.
//
// Run by tests/process/rate_limit.rs against a server whose per-client bucket is tiny
// (CLAVIS_RATE_LIMIT_CLIENT_RPS=1, CLAVIS_RATE_LIMIT_CLIENT_BURST=2): a burst of
// sequential Management API calls must all succeed, some of them only after the SDK
// waited out a 429 (it honours `retry-after`, then `x-ratelimit-reset`).
// Not named *.test.mjs: the SDK lifecycle suite runs against a server without tiny limits.
import assert from "node:assert/strict";
import { test } from "node:test";
import { ManagementClient } from "auth0";

import { env } from "./helpers.mjs";

test("ManagementClient retries a 429 and succeeds", async () => {
  const seen = [];
  const realFetch = globalThis.fetch;
  globalThis.fetch = async (input, init) => {
    const response = await realFetch(input, init);
    const url = typeof input === "string" ? input : input.url;
    if (url.includes("/api/v2/")) {
      seen.push({
        at: Date.now(),
        status: response.status,
        limit: response.headers.get("x-ratelimit-limit"),
        remaining: response.headers.get("x-ratelimit-remaining"),
        reset: response.headers.get("x-ratelimit-reset"),
        retryAfter: response.headers.get("retry-after"),
        body: response.status === 429 ? await response.clone().json() : null,
      });
    }
    return response;
  };
  try {
    const mgmt = new ManagementClient({
      domain: env.domain,
      clientId: env.clientId,
      clientSecret: env.clientSecret,
    });
    const started = Date.now();
    for (let i = 0; i < 5; i++) {
      const page = await mgmt.resourceServers.list();
      assert.ok(page.data.length >= 1, "the Management API itself is listed");
    }
    const elapsed = Date.now() - started;

    const limited = seen.filter((r) => r.status === 429);
    assert.ok(limited.length >= 1, `expected at least one 429, saw ${JSON.stringify(seen.map((r) => r.status))}`);
    assert.equal(seen.filter((r) => r.status === 200).length, 5, "every call succeeded in the end");
    for (const r of seen) {
      assert.equal(r.limit, "2");
      assert.match(r.remaining, /^[0-9]+$/);
      const reset = Number(r.reset);
      // The real, near window end: epoch seconds, at most a few seconds ahead.
      assert.ok(reset * 1000 >= r.at - 1000 && reset * 1000 <= r.at + 5000, `x-ratelimit-reset ${reset} at ${r.at}`);
    }
    for (const r of limited) {
      assert.equal(r.remaining, "0");
      assert.ok(Number(r.retryAfter) >= 1, "retry-after of at least one second");
      assert.deepEqual(r.body, {
        statusCode: 429,
        error: "Too Many Requests",
        message: "Global limit has been reached",
        errorCode: "too_many_requests",
      });
    }
    // Each 429 cost about one second of waiting, not the SDK's 60 s cap.
    assert.ok(elapsed < 5000 + limited.length * 2500, `took ${elapsed} ms`);
    console.log(`statuses: ${seen.map((r) => r.status).join(" ")} in ${elapsed} ms`);
  } finally {
    globalThis.fetch = realFetch;
  }
});
