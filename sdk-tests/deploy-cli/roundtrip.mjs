// auth0-deploy-cli (a0deploy, pinned in package.json) run unchanged against two Clavis servers:
//   1. seed server A through the Management API,
//   2. export A to YAML (also with AUTH0_EXCLUDE_THIRD_PARTY_CLIENTS),
//   3. import the export unchanged into A: nothing changes on the server,
//   4. edit the YAML (a client's description, a grant's scopes, a scope's description), import:
//      the changes are on A,
//   5. import into server B (an empty, fresh database): the resources appear there, and B's
//      export is A's,
//   6. remove a client, a grant and the admin client from the YAML, import with
//      AUTH0_ALLOW_DELETE=true: the two are deleted, A's Management API, admin client and its
//      grant are untouched,
//   7. paging: with more clients than a page (100) and more grants than a checkpoint page (50),
//      the export holds them all.
// Run by tests/sdk.rs (deploy_cli_round_trip) with CLAVIS_DOMAIN / CLAVIS_DOMAIN_2 (the two
// servers, both with the admin CLAVIS_CLIENT_ID / CLAVIS_CLIENT_SECRET), CLAVIS_WORK_DIR (for
// the YAML files) and both servers' CAs in NODE_EXTRA_CA_CERTS.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createPrivateKey, generateKeyPairSync, randomUUID, sign } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import yaml from "js-yaml";

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`environment variable ${name} is required (tests/sdk.rs sets it)`);
  return v;
}

const ADMIN_ID = need("CLAVIS_CLIENT_ID");
const ADMIN_SECRET = need("CLAVIS_CLIENT_SECRET");
const WORK = need("CLAVIS_WORK_DIR");
const INCLUDED = ["clients", "resourceServers", "clientGrants", "clientAuthCredentials"];
const ORDERS = "https://orders.example.com/";
const BILLING_CLAIMS = { "https://orders.example.com/team": "billing", tier: "gold" };

const require = createRequire(import.meta.url);
const cliPackage = require.resolve("auth0-deploy-cli/package.json");
const CLI = join(dirname(cliPackage), JSON.parse(readFileSync(cliPackage, "utf8")).bin.a0deploy);

const started = Date.now();
function step(title) {
  console.log(`\n=== [${((Date.now() - started) / 1000).toFixed(1)} s] ${title}`);
}

/** A Management API client for one server, as the admin. */
class Server {
  constructor(label, domain) {
    this.label = label;
    this.domain = domain;
  }

  async token(form) {
    const r = await fetch(`https://${this.domain}/oauth/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(form),
    });
    const body = await r.json();
    assert.equal(r.status, 200, `${this.label}: token request failed: ${JSON.stringify(body)}`);
    return body;
  }

  async adminToken() {
    const t = await this.token({
      grant_type: "client_credentials",
      client_id: ADMIN_ID,
      client_secret: ADMIN_SECRET,
      audience: `https://${this.domain}/api/v2/`,
    });
    return t.access_token;
  }

  /** `method path` as the admin; the JSON body, after checking the status. */
  async call(method, path, body, want) {
    this.bearer ??= await this.adminToken();
    const r = await fetch(`https://${this.domain}/api/v2${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.bearer}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    if (r.status === 429) {
      // Seeding many resources may exceed the per-client rate limit: wait as told and retry.
      const wait = Number(r.headers.get("retry-after") ?? "1");
      await new Promise((done) => setTimeout(done, Math.max(wait, 1) * 1000));
      return this.call(method, path, body, want);
    }
    const expected = want ?? { GET: 200, POST: 201, PATCH: 200, DELETE: 204 }[method];
    assert.equal(r.status, expected, `${this.label}: ${method} ${path} answered ${r.status}: ${text}`);
    return text ? JSON.parse(text) : undefined;
  }

  get(path) {
    return this.call("GET", path);
  }

  /** Every client, resource server, grant and credential, without `updated_at`. */
  async snapshot() {
    const clients = await this.get("/clients?per_page=100");
    const credentials = {};
    for (const c of clients) {
      credentials[c.name] = await this.get(`/clients/${c.client_id}/credentials`);
    }
    return withoutUpdatedAt({
      clients,
      credentials,
      resourceServers: await this.get("/resource-servers?per_page=100"),
      clientGrants: await this.get("/client-grants?per_page=100"),
    });
  }

  async clientNamed(name) {
    const all = await this.get("/clients?per_page=100");
    return all.find((c) => c.name === name);
  }
}

function withoutUpdatedAt(v) {
  if (Array.isArray(v)) return v.map(withoutUpdatedAt);
  if (v && typeof v === "object") {
    return Object.fromEntries(
      Object.entries(v)
        .filter(([k]) => k !== "updated_at")
        .map(([k, x]) => [k, withoutUpdatedAt(x)]),
    );
  }
  return v;
}

/**
 * Runs a0deploy against `server`; fails unless it exits 0. Its output. (Asynchronously: this
 * process's pooled connections must see the servers close them while a0deploy runs.)
 */
async function a0deploy(server, args, env = {}) {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: WORK,
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 300_000,
    env: {
      // No AUTH0_* setting of the caller's shell reaches a0deploy.
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("AUTH0_"))),
      AUTH0_DOMAIN: server.domain,
      AUTH0_CLIENT_ID: ADMIN_ID,
      AUTH0_CLIENT_SECRET: ADMIN_SECRET,
      AUTH0_INCLUDED_ONLY: JSON.stringify(INCLUDED),
      AUTH0_ALLOW_DELETE: "false",
      ...env,
    },
  });
  let output = "";
  child.stdout.setEncoding("utf8").on("data", (d) => (output += d));
  child.stderr.setEncoding("utf8").on("data", (d) => (output += d));
  const [code, signal] = await new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (c, s) => resolve([c, s]));
  });
  console.log(
    output
      .split("\n")
      .filter((l) => l.trim())
      .map((l) => `    a0deploy| ${l}`)
      .join("\n"),
  );
  assert.equal(code, 0, `a0deploy ${args.join(" ")} against ${server.label} exited ${code ?? signal}`);
  // Nothing of the tenant is left to a warning: no failed update, no deletion refused.
  assert.doesNotMatch(output, /\b(warn|error)\b/i, "a0deploy warned or reported an error");
  return output;
}

async function exportYaml(server, folder, env = {}) {
  const dir = join(WORK, folder);
  await a0deploy(server, ["export", "--format", "yaml", "--output_folder", dir], env);
  const file = join(dir, "tenant.yaml");
  return { file, text: readFileSync(file, "utf8"), doc: yaml.load(readFileSync(file, "utf8")) };
}

function writeYaml(name, doc) {
  const file = join(WORK, name);
  writeFileSync(file, yaml.dump(doc));
  return file;
}

const byName = (list, name) => {
  const found = list.find((x) => x.name === name);
  assert.ok(found, `no entry named ${JSON.stringify(name)}`);
  return found;
};

/** A signed private_key_jwt client assertion (RS256). */
function clientAssertion(clientId, pkcs8, audience) {
  const now = Math.floor(Date.now() / 1000);
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const input = `${enc({ alg: "RS256", typ: "JWT" })}.${enc({
    iss: clientId,
    sub: clientId,
    aud: audience,
    iat: now,
    exp: now + 60,
    jti: randomUUID(),
  })}`;
  const signature = sign("sha256", Buffer.from(input), createPrivateKey(pkcs8)).toString("base64url");
  return `${input}.${signature}`;
}

async function main() {
  mkdirSync(WORK, { recursive: true });
  const a = new Server("server A", need("CLAVIS_DOMAIN"));
  const b = new Server("server B", need("CLAVIS_DOMAIN_2"));
  const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const pem = publicKey.export({ type: "spki", format: "pem" });
  const pkcs8 = privateKey.export({ type: "pkcs8", format: "pem" });

  step("1. seed server A through the Management API");
  await a.call("POST", "/resource-servers", {
    name: "Orders API",
    identifier: ORDERS,
    scopes: [
      { value: "read:orders", description: "Read orders" },
      { value: "write:orders", description: "Write orders" },
      { value: "refund:orders", description: "Refund orders" },
    ],
    token_lifetime: 3600,
    // Properties an Auth0 tenant's export carries (deploy-cli's example API has them all).
    allow_online_access: false,
    allow_online_access_with_ephemeral_sessions: false,
    token_lifetime_for_web: 7200,
  });
  const m2m = { app_type: "non_interactive", grant_types: ["client_credentials"] };
  const billing = await a.call("POST", "/clients", {
    name: "Billing worker",
    description: "Bills customers",
    client_metadata: { team: "payments" },
    ...m2m,
    // As Auth0 returns a machine-to-machine application.
    callbacks: [],
    allowed_origins: [],
    cross_origin_authentication: false,
    custom_login_page_on: true,
    is_token_endpoint_ip_header_trusted: false,
    oidc_conformant: true,
    sso_disabled: false,
    native_social_login: { apple: { enabled: false }, facebook: { enabled: false } },
    refresh_token: {
      expiration_type: "non-expiring",
      leeway: 0,
      infinite_token_lifetime: true,
      infinite_idle_token_lifetime: true,
      token_lifetime: 31557600,
      idle_token_lifetime: 2592000,
      rotation_type: "non-rotating",
    },
  });
  await a.call("POST", "/clients", { name: "Shipping worker", ...m2m });
  const signing = await a.call("POST", "/clients", {
    name: "Signing worker",
    description: "Authenticates with private_key_jwt",
    ...m2m,
    client_authentication_methods: {
      private_key_jwt: { credentials: [{ name: "worker key", credential_type: "public_key", pem }] },
    },
  });
  const partner = await a.call("POST", "/clients", {
    name: "Partner app",
    is_first_party: false,
    app_type: "regular_web",
    grant_types: ["client_credentials"],
  });
  for (const [client, scope] of [
    [billing, ["read:orders"]],
    [signing, ["read:orders", "write:orders"]],
    [partner, ["read:orders"]],
  ]) {
    // Clavis's extension on one grant: the claims its tokens carry go through export and import.
    const extra = client === billing ? { token_claims: BILLING_CLAIMS } : {};
    await a.call("POST", "/client-grants", { client_id: client.client_id, audience: ORDERS, scope, ...extra });
  }
  const seeded = await a.snapshot();
  const managementApi = seeded.resourceServers.find((r) => r.is_system);
  assert.equal(managementApi.name, "Auth0 Management API");
  const adminGrant = seeded.clientGrants.find((g) => g.client_id === ADMIN_ID);
  assert.equal(adminGrant.audience, managementApi.identifier);

  step("2. export server A to YAML");
  const first = await exportYaml(a, "export-1");
  const exported = first.doc;
  assert.deepEqual(
    exported.resourceServers.map((r) => r.name),
    ["Orders API"],
    "the export holds the Orders API and not the Management API",
  );
  assert.deepEqual(
    exported.clients.map((c) => c.name).sort(),
    ["Billing worker", "Clavis Admin (bootstrap)", "Partner app", "Shipping worker", "Signing worker"],
  );
  assert.deepEqual(byName(exported.clients, "Signing worker").client_authentication_methods, {
    private_key_jwt: { credentials: [{ name: "worker key", credential_type: "public_key" }] },
  });
  assert.deepEqual(
    exported.clientGrants.map((g) => [g.client_id, g.audience, g.scope]),
    [
      ["Billing worker", ORDERS, ["read:orders"]],
      ["Partner app", ORDERS, ["read:orders"]],
      ["Signing worker", ORDERS, ["read:orders", "write:orders"]],
    ],
    "the grants name their clients; the admin's Management API grant is left out",
  );
  assert.deepEqual(
    exported.clientGrants.find((g) => g.client_id === "Billing worker").token_claims,
    BILLING_CLAIMS,
    "the export carries the grant's token_claims",
  );
  const firstParty = (await exportYaml(a, "export-first-party", { AUTH0_EXCLUDE_THIRD_PARTY_CLIENTS: "true" })).doc;
  assert.ok(!firstParty.clients.some((c) => c.name === "Partner app"), "a third-party client was exported");
  assert.ok(!firstParty.clientGrants.some((g) => g.client_id === "Partner app"), "a third-party grant was exported");

  step("3. import the export unchanged: a no-op");
  await a0deploy(a, ["import", "--input_file", first.file]);
  assert.deepEqual(await a.snapshot(), seeded, "importing the unchanged export changed the server");
  assert.equal((await exportYaml(a, "export-2")).text, first.text, "a second export differs from the first");

  step("4. edit the YAML and import: the changes are on server A");
  const edited = structuredClone(exported);
  byName(edited.clients, "Billing worker").description = "Bills customers every month";
  edited.clientGrants.find((g) => g.client_id === "Billing worker").scope = ["read:orders", "refund:orders"];
  edited.resourceServers[0].scopes.find((s) => s.value === "refund:orders").description = "Refund paid orders";
  await a0deploy(a, ["import", "--input_file", writeYaml("edited.yaml", edited)]);
  const afterEdit = await a.snapshot();
  const want = structuredClone(seeded);
  byName(want.clients, "Billing worker").description = "Bills customers every month";
  want.clientGrants.find((g) => g.client_id === billing.client_id).scope = ["read:orders", "refund:orders"];
  want.resourceServers
    .find((r) => r.identifier === ORDERS)
    .scopes.find((s) => s.value === "refund:orders").description = "Refund paid orders";
  assert.deepEqual(afterEdit, want, "server A does not hold exactly the edited resources");

  step("5. import into server B (empty database): the resources appear");
  const forB = structuredClone(edited);
  // The export never holds a key; to create the credential on another tenant the YAML names it.
  byName(forB.clients, "Signing worker").client_authentication_methods.private_key_jwt.credentials[0].pem = pem;
  await a0deploy(b, ["import", "--input_file", writeYaml("for-b.yaml", forB)]);
  const onB = await b.snapshot();
  const shape = (snap) => ({
    clients: snap.clients
      .map(({ client_id, client_secret, client_authentication_methods, ...rest }) => rest)
      .sort((x, y) => x.name.localeCompare(y.name)),
    resourceServers: snap.resourceServers
      .filter((r) => !r.is_system)
      .map(({ id, ...rest }) => rest),
    grants: snap.clientGrants
      .filter((g) => g.audience === ORDERS)
      .map((g) => [snap.clients.find((c) => c.client_id === g.client_id).name, g.audience, g.scope, g.token_claims ?? null])
      .sort(),
    credentials: Object.fromEntries(
      Object.entries(snap.credentials).map(([name, list]) => [
        name,
        list.map(({ id, created_at, kid, ...rest }) => rest),
      ]),
    ),
  });
  assert.deepEqual(shape(onB), shape(afterEdit), "server B does not hold server A's resources");
  const signingOnB = await b.clientNamed("Signing worker");
  assert.equal(signingOnB.client_authentication_methods.private_key_jwt.credentials.length, 1);
  const t = await b.token({
    grant_type: "client_credentials",
    client_id: signingOnB.client_id,
    client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
    client_assertion: clientAssertion(signingOnB.client_id, pkcs8, `https://${b.domain}/`),
    audience: ORDERS,
  });
  assert.equal(t.scope, "read:orders write:orders");
  const fromB = (await exportYaml(b, "export-b")).doc;
  assert.deepEqual(fromB, edited, "server B's export differs from the imported YAML");

  step("6. delete from the YAML and import with AUTH0_ALLOW_DELETE=true");
  const pruned = structuredClone(edited);
  pruned.clients = pruned.clients.filter(
    (c) => c.name !== "Shipping worker" && c.name !== "Clavis Admin (bootstrap)",
  );
  pruned.clientGrants = pruned.clientGrants.filter((g) => g.client_id !== "Partner app");
  await a0deploy(a, ["import", "--input_file", writeYaml("pruned.yaml", pruned)], { AUTH0_ALLOW_DELETE: "true" });
  const afterDelete = await a.snapshot();
  const expectAfterDelete = structuredClone(afterEdit);
  const shipping = byName(expectAfterDelete.clients, "Shipping worker");
  expectAfterDelete.clients = expectAfterDelete.clients.filter((c) => c !== shipping);
  delete expectAfterDelete.credentials["Shipping worker"];
  expectAfterDelete.clientGrants = expectAfterDelete.clientGrants.filter(
    (g) => g.client_id !== partner.client_id,
  );
  assert.deepEqual(afterDelete, expectAfterDelete, "server A does not hold exactly the pruned resources");
  // (The snapshot holds the Management API, the admin client and its grant, unchanged.) The
  // admin still gets a Management API token with every scope of its grant.
  const adminToken = await a.token({
    grant_type: "client_credentials",
    client_id: ADMIN_ID,
    client_secret: ADMIN_SECRET,
    audience: managementApi.identifier,
  });
  assert.deepEqual(adminToken.scope.split(" ").sort(), [...adminGrant.scope].sort());

  step("7. paging: every client and grant of a tenant larger than a page is exported");
  const many = [];
  for (let i = 0; i < 105; i++) {
    const name = `Batch worker ${String(i).padStart(3, "0")}`;
    const c = await a.call("POST", "/clients", { name, ...m2m });
    if (i < 55) await a.call("POST", "/client-grants", { client_id: c.client_id, audience: ORDERS, scope: ["read:orders"] });
    many.push(name);
  }
  const large = (await exportYaml(a, "export-large")).doc;
  const clientNames = large.clients.map((c) => c.name);
  const grantNames = large.clientGrants.map((g) => g.client_id);
  for (const name of many) assert.ok(clientNames.includes(name), `${name} is missing from the export`);
  assert.equal(clientNames.length, 105 + pruned.clients.length + 1, "the export holds every client once");
  assert.equal(grantNames.length, 55 + pruned.clientGrants.length, "the export holds every grant once");
  assert.deepEqual(
    many.slice(0, 55).filter((name) => !grantNames.includes(name)),
    [],
    "grants are missing from the export",
  );

  step("done");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
