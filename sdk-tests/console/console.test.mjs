// Drives the admin console (/console/) in Debian's headless Chromium through puppeteer-core
// and checks every page with axe-core. Run by tests/sdk.rs (`console_in_chromium`) against a
// live `clavis serve`, with CLAVIS_DOMAIN, CLAVIS_CLIENT_ID, CLAVIS_CLIENT_SECRET and
// CLAVIS_CA_FILE set. Screenshots go to CLAVIS_SCREENSHOT_DIR.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import axe from 'axe-core';
import puppeteer from 'puppeteer-core';

const DOMAIN = process.env.CLAVIS_DOMAIN;
const ADMIN_ID = process.env.CLAVIS_CLIENT_ID;
const ADMIN_SECRET = process.env.CLAVIS_CLIENT_SECRET;
const CA = process.env.CLAVIS_CA_FILE;
const SHOTS = process.env.CLAVIS_SCREENSHOT_DIR || 'screenshots';
const CHROMIUM = process.env.CLAVIS_CHROMIUM || '/usr/bin/chromium';
const BASE = `https://${DOMAIN}`;
assert.ok(DOMAIN && ADMIN_ID && ADMIN_SECRET && CA, 'CLAVIS_DOMAIN, CLAVIS_CLIENT_ID, CLAVIS_CLIENT_SECRET and CLAVIS_CA_FILE are needed');

let step = '';
const log = (s) => { step = s; console.log(`- ${s}`); };

/* ---------- the server, from Node ---------- */

const config = await (await fetch(`${BASE}/console/config.json`)).json();

async function tokenFor(clientId, clientSecret, audience = config.management_audience) {
  const res = await fetch(`${BASE}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret, audience }),
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  return body.access_token;
}
const adminToken = await tokenFor(ADMIN_ID, ADMIN_SECRET);

async function api(method, p, body) {
  const res = await fetch(`${BASE}/api/v2${p}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  assert.ok(res.ok, `${method} ${p}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** A token request with private_key_jwt; returns the HTTP status. */
async function tokenWithKey(clientId, privateKey, audience) {
  const now = Math.floor(Date.now() / 1000);
  const enc = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${enc({ alg: 'RS256', typ: 'JWT' })}.${enc({ iss: clientId, sub: clientId, aud: config.issuer, iat: now, exp: now + 60, jti: crypto.randomUUID() })}`;
  const signature = crypto.sign('sha256', Buffer.from(input), privateKey).toString('base64url');
  const res = await fetch(`${BASE}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({
      grant_type: 'client_credentials', client_id: clientId, audience,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: `${input}.${signature}`,
    }),
  });
  await res.text();
  return res.status;
}

/** The SHA-256 of the server certificate's public key: Chromium trusts exactly that key. */
function serverSpki() {
  const [host, port] = DOMAIN.split(':');
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host, port: Number(port), ca: fs.readFileSync(CA), servername: host }, () => {
      const der = socket.getPeerX509Certificate().publicKey.export({ type: 'spki', format: 'der' });
      socket.end();
      resolve(crypto.createHash('sha256').update(der).digest('base64'));
    });
    socket.on('error', reject);
  });
}

/* ---------- the browser ---------- */

const browser = await puppeteer.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', `--ignore-certificate-errors-spki-list=${await serverSpki()}`, '--lang=en-US', '--window-size=1280,900'],
  defaultViewport: { width: 1280, height: 900 },
});
const problems = [];
const page = await browser.newPage();
page.on('console', (m) => {
  const text = m.text();
  if (/Content Security Policy|CSP violation/i.test(text) || m.type() === 'error') problems.push(`console ${m.type()}: ${text}`);
});
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
page.on('dialog', (d) => d.accept());
await page.evaluateOnNewDocument(() => {
  document.addEventListener('securitypolicyviolation', (e) => {
    console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI}`);
  });
});

async function go(hash, ready) {
  await page.evaluate((h) => {
    // The same page again: reload it the way its navigation link does.
    if (location.hash === h) window.dispatchEvent(new HashChangeEvent('hashchange'));
    else location.hash = h;
  }, hash);
  await page.waitForSelector(`#view[data-ready="${ready}"]`, { timeout: 15000 });
}

async function checkAxe(label) {
  await page.evaluate(axe.source);
  const result = await page.evaluate(async () => window.axe.run(document, { resultTypes: ['violations'] }));
  const bad = result.violations.filter((v) => v.impact === 'critical' || v.impact === 'serious');
  assert.deepEqual(bad.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).join('; ')}`), [], `axe on ${label}`);
}

async function writeControls() {
  return page.$$eval('#view [data-write]', (els) => els.length);
}

const textOf = (sel) => page.$eval(sel, (el) => el.textContent);
const waitText = (sel, re) => page.waitForFunction((s, src) => {
  const el = document.querySelector(s);
  return el && new RegExp(src).test(el.textContent);
}, { timeout: 15000 }, sel, re.source);

async function shot(name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.evaluate(() => { document.getElementById('status').textContent = ''; });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

async function signInAs(id, secret) {
  await page.waitForSelector('#sign-in:not([hidden])');
  await page.type('#sign-in-id', id);
  await page.type('#sign-in-secret', secret);
  await page.click('#sign-in-form button[type=submit]');
}

try {
  log('the console answers with its CSP, and the sign-in form');
  const response = await page.goto(`${BASE}/console/`, { waitUntil: 'networkidle0' });
  assert.equal(response.status(), 200);
  assert.match(response.headers()['content-security-policy'], /script-src 'self'/);
  await checkAxe('sign-in');

  log('a wrong secret is refused, in words');
  await signInAs(ADMIN_ID, 'not-the-secret');
  await waitText('#sign-in-error', /Sign-in refused: .+/);
  await page.$eval('#sign-in-id', (el) => { el.value = ''; });

  log('sign in as the admin with the keyboard only: the overview');
  await page.$eval('#sign-in-id', (el) => el.focus());
  await page.keyboard.type(ADMIN_ID);
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'sign-in-secret');
  await page.keyboard.type(ADMIN_SECRET);
  await page.keyboard.press('Enter');
  await page.waitForSelector('#view[data-ready="overview"]');
  assert.match(await textOf('#who-text'), new RegExp(ADMIN_ID));
  assert.deepEqual(await page.evaluate(() => [localStorage.length, sessionStorage.length, document.cookie, location.href.includes('eyJ')]), [0, 0, '', false], 'the token is kept in memory only');
  await checkAxe('overview');

  log('create an API with a scope on the APIs page');
  await go('#/apis', 'apis');
  await checkAxe('apis');
  const API = 'https://console-billing.example.com/';
  await page.type('form[aria-labelledby=create-api-title] input[name=name]', 'console billing');
  await page.type('form[aria-labelledby=create-api-title] input[name=identifier]', API);
  await page.type('form[aria-labelledby=create-api-title] input[name=scopes]', 'read:invoices write:invoices');
  await page.click('form[aria-labelledby=create-api-title] button[type=submit]');
  await waitText('#apis', /console-billing\.example\.com/);

  log('create a machine-to-machine client; its secret is shown once');
  await go('#/clients', 'clients');
  await page.type('form[aria-labelledby=create-client-title] input[name=name]', 'console-worker');
  await page.click('form[aria-labelledby=create-client-title] button[type=submit]');
  await page.waitForSelector('[data-secret] input');
  const secret = await page.$eval('[data-secret] input', (el) => el.value);
  assert.ok(secret.length >= 32, 'the new secret is shown');
  const clientHref = await page.$eval('#new-client-link', (el) => el.getAttribute('href'));
  const clientId = decodeURIComponent(clientHref.split('/').pop());
  await checkAxe('clients');
  assert.ok((await writeControls()) > 0);
  log('search finds it');
  await page.type('#view input[type=search]', 'console-work');
  await waitText('#client-list', /· 1 client(?!s)/);

  log('grant it read:invoices on the grants page');
  await go(`#/grants/${clientId}`, `grants/${clientId}`);
  await checkAxe('grants');
  const fs1 = `fieldset[data-audience="${API}"]`;
  await page.click(`${fs1} input[value="read:invoices"]`);
  await page.click(`${fs1} [data-action=save-grant]`);
  await waitText(`${fs1} legend`, /— granted/);
  await shot('grants');
  assert.equal(await page.$eval(`${fs1} input[value="read:invoices"]`, (el) => el.checked), true);

  log('the secret shown at creation works; rotate it: the new one is shown once and works, the old one is refused');
  const secretStatus = async (s) => (await fetch(`${BASE}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ grant_type: 'client_credentials', client_id: clientId, client_secret: s, audience: API }),
  })).status;
  assert.equal(await secretStatus(secret), 200);
  await go(`#/clients/${clientId}`, `clients/${clientId}`);
  await page.click('[data-action=rotate-secret]');
  await page.waitForSelector('[data-secret] input');
  const rotated = await page.$eval('[data-secret] input', (el) => el.value);
  assert.notEqual(rotated, secret);
  assert.equal(await secretStatus(rotated), 200);
  assert.equal(await secretStatus(secret), 401);

  log('add a public key by uploading its PEM');
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const pemPath = path.join(os.tmpdir(), `clavis-console-key-${process.pid}.pem`);
  fs.writeFileSync(pemPath, publicKey.export({ type: 'spki', format: 'pem' }));
  await go(`#/clients/${clientId}`, `clients/${clientId}`);
  const upload = await page.$('input[name=pem_file]');
  await upload.uploadFile(pemPath);
  await page.waitForFunction(() => document.querySelector('textarea[name=pem]').value.includes('BEGIN PUBLIC KEY'));
  fs.rmSync(pemPath);
  await page.type('input[name=name]', 'worker key');
  await page.click('form[aria-labelledby=add-cred-title] button[type=submit]');
  await page.waitForSelector('#credentials tr[data-credential-id]');
  const credId = await page.$eval('#credentials tr[data-credential-id]', (el) => el.dataset.credentialId);
  const row = `#credentials tr[data-credential-id="${credId}"]`;
  assert.equal(await tokenWithKey(clientId, privateKey, API), 401, 'a key that is not attached does not authenticate');

  log('attach it to private_key_jwt: the key works');
  await page.click(`${row} [data-action=attach]`);
  await waitText(`${row} td[data-field=attached]`, /attached \(private_key_jwt\)/);
  assert.equal(await tokenWithKey(clientId, privateKey, API), 200);
  await checkAxe('client page');

  log("deleting it while attached is refused, with the API's words");
  await page.click(`${row} [data-action=delete-credential]`);
  await waitText('#status', /Refused: Cannot delete credential still associated with a client/);
  assert.ok(await page.$(row), 'the credential is still there');

  // The date-time picker, as a keyboard user fills it (Chromium's en-US layout:
  // month day year, then hour minute AM/PM), then "Set expiry".
  const pick = async (localValue) => {
    const [, y, mo, d, hh, mm] = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d)$/.exec(localValue);
    const hour12 = String(Number(hh) % 12 === 0 ? 12 : Number(hh) % 12).padStart(2, '0');
    await page.$eval(`${row} input.expiry`, (el) => { el.value = ''; });
    await page.focus(`${row} input.expiry`);
    await page.keyboard.type(`${mo}${d}${y}`);
    await page.keyboard.press('ArrowRight');
    await page.keyboard.type(`${hour12}${mm}${Number(hh) < 12 ? 'A' : 'P'}`);
    assert.equal(await page.$eval(`${row} input.expiry`, (el) => el.value), localValue, 'the picker holds the typed date');
    await page.click(`${row} [data-action=set-expiry]`);
  };

  log('set its expiry in the past with the picker: the token endpoint refuses the key');
  await pick('2020-01-01T00:00');
  await waitText(`${row} td[data-field=expiry]`, /Expired/);
  assert.equal(await tokenWithKey(clientId, privateKey, API), 401);
  await go('#/timeline', 'timeline');
  await page.waitForSelector(`[data-band=expired] [data-credential-id="${credId}"]`);

  log('clear the expiry: the key works again, and it moves to "never" on the timeline');
  await go(`#/clients/${clientId}`, `clients/${clientId}`);
  await page.click(`${row} [data-action=clear-expiry]`);
  await waitText(`${row} td[data-field=expiry]`, /never/);
  assert.equal(await tokenWithKey(clientId, privateKey, API), 200);
  await go('#/timeline', 'timeline');
  await page.waitForSelector(`[data-band=never] [data-credential-id="${credId}"]`);

  log('move the expiry 20 days ahead: the 8–30 days band');
  await go(`#/clients/${clientId}`, `clients/${clientId}`);
  const in20 = await page.evaluate(() => {
    const d = new Date(Date.now() + 20 * 86400000);
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
  });
  await pick(in20);
  await waitText(`${row} td[data-field=expiry]`, /8–30 days/);
  assert.equal(await tokenWithKey(clientId, privateKey, API), 200);
  await shot('client');

  log('detach it: the key stops working; the timeline shows it detached');
  await page.click(`${row} [data-action=detach]`);
  await waitText(`${row} td[data-field=attached]`, /not attached/);
  assert.equal(await tokenWithKey(clientId, privateKey, API), 401);
  await go('#/timeline', 'timeline');
  await page.waitForSelector(`[data-band=d30] [data-credential-id="${credId}"][data-attached=false]`);

  log('more clients and credentials for the overview and the timeline');
  const seed = async (name, days, attach) => {
    const c = await api('POST', '/clients', { name, app_type: 'non_interactive', grant_types: ['client_credentials'] });
    const key = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' });
    const body = { credential_type: 'public_key', name: `${name} key`, pem: key };
    if (days !== null) body.expires_at = new Date(Date.now() + days * 86400000).toISOString();
    const cred = await api('POST', `/clients/${c.client_id}/credentials`, body);
    if (attach) await api('PATCH', `/clients/${c.client_id}`, { token_endpoint_auth_method: null, client_authentication_methods: { private_key_jwt: { credentials: [{ id: cred.id }] } } });
    return { c, cred };
  };
  await seed('payments-batch', 3, true);
  await seed('reporting', 60, true);
  await seed('inventory-sync', 200, true);
  await seed('legacy-export', null, true);
  const stale = await seed('old-partner', 5, true);
  await api('PATCH', `/clients/${stale.c.client_id}/credentials/${stale.cred.id}`, { expires_at: '2026-01-01T00:00:00.000Z' });

  log('the timeline: every band, each mark links to its client');
  await go('#/timeline', 'timeline');
  await checkAxe('timeline');
  for (const b of ['expired', 'd7', 'd30', 'd90', 'later', 'never']) {
    assert.ok(await page.$(`[data-band=${b}] a.mark`), `a mark in band ${b}`);
  }
  await shot('timeline');
  await page.click(`[data-credential-id="${stale.cred.id}"]`);
  await page.waitForSelector(`#view[data-ready="clients/${stale.c.client_id}"]`);

  log('the overview counts the expired-but-attached credential and the failed token requests');
  await go('#/', 'overview');
  await waitText('#expired-attached', /old-partner/);
  await waitText('#counts', /[1-9]\d*failed token requests/);
  await shot('overview');

  log('signing keys: rotate');
  await go('#/keys', 'keys');
  await checkAxe('keys');
  const before = await page.$$eval('#keys tbody tr', (r) => r.length);
  await page.click('[data-action=rotate-key]');
  await page.waitForFunction((n) => document.querySelectorAll('#keys tbody tr').length > n, { timeout: 30000 }, before);
  await shot('keys');

  log('logs: filtered by type and client');
  await go(`#/logs?type=feccft&client_id=${clientId}`, 'logs');
  await checkAxe('logs');
  await waitText('#logs caption', /^[1-9]\d* events?/);
  const types = await page.$$eval('#logs tbody td:nth-child(2)', (tds) => [...new Set(tds.map((t) => t.textContent))]);
  assert.deepEqual(types, ['feccft']);
  await shot('logs');

  log('sign out: the token is forgotten');
  await page.click('#sign-out');
  await page.waitForSelector('#sign-in:not([hidden])');
  await page.evaluate(() => { location.hash = '#/clients'; });
  await page.waitForFunction(() => location.hash === '#/clients');
  assert.equal(await page.$eval('#sign-in', (el) => el.hidden), false, 'no page without a token');
  assert.equal(await page.$eval('#view', (el) => el.children.length), 0);
  await page.evaluate(() => { location.hash = '#/'; });

  log('a read-only token gets a read-only console');
  const reader = await api('POST', '/clients', { name: 'console-reader', app_type: 'non_interactive', grant_types: ['client_credentials'] });
  const readScopes = ['read:clients', 'read:client_credentials', 'read:resource_servers', 'read:client_grants', 'read:signing_keys', 'read:logs'];
  const readerGrant = await api('POST', '/client-grants', { client_id: reader.client_id, audience: config.management_audience, scope: readScopes });
  await signInAs(reader.client_id, reader.client_secret);
  await page.waitForSelector('#view[data-ready="overview"]');
  for (const [hash, ready] of [['#/', 'overview'], ['#/timeline', 'timeline'], ['#/clients', 'clients'], [`#/clients/${clientId}`, `clients/${clientId}`], ['#/apis', 'apis'], [`#/grants/${clientId}`, `grants/${clientId}`], ['#/keys', 'keys'], ['#/logs', 'logs']]) {
    await go(hash, ready);
    assert.equal(await writeControls(), 0, `no write controls on ${ready} for a read-only token`);
  }
  assert.equal(await page.$$eval(`${fs1} input[type=checkbox]:not(:disabled)`, (e) => e.length), 0, 'grant checkboxes are read-only');
  assert.ok(await page.$('#view input[type=search], #view select, #logs') !== null);

  log('a token that is no longer valid returns to the sign-in');
  await api('DELETE', `/client-grants/${readerGrant.id}`);
  await go('#/clients', 'clients').catch(() => {});
  await page.waitForSelector('#sign-in:not([hidden])');
  await waitText('#sign-in-error', /session ended/);

  log('sign in with a private key instead of a secret (private_key_jwt signed in the page)');
  const keyAdmin = await api('POST', '/clients', { name: 'console-key-admin', app_type: 'non_interactive', grant_types: ['client_credentials'] });
  await api('POST', '/client-grants', { client_id: keyAdmin.client_id, audience: config.management_audience, scope: readScopes });
  const adminKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const adminCred = await api('POST', `/clients/${keyAdmin.client_id}/credentials`, { credential_type: 'public_key', name: 'console sign-in', pem: adminKey.publicKey.export({ type: 'spki', format: 'pem' }) });
  await api('PATCH', `/clients/${keyAdmin.client_id}`, { token_endpoint_auth_method: null, client_authentication_methods: { private_key_jwt: { credentials: [{ id: adminCred.id }] } } });
  const keySignIn = async (pem) => {
    await page.$eval('#sign-in-id', (el) => { el.value = ''; });
    await page.type('#sign-in-id', keyAdmin.client_id);
    await page.click('#sign-in-with-key');
    await page.waitForSelector('#sign-in-key', { visible: true });
    await page.$eval('#sign-in-key', (el, v) => { el.value = v; }, pem);
    await page.select('#sign-in-alg', 'RS256');
    await page.click('#sign-in-form button[type=submit]');
  };
  const otherKey = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' });
  await keySignIn(otherKey);
  await waitText('#sign-in-error', /Sign-in refused: .+/);
  await keySignIn(adminKey.privateKey.export({ type: 'pkcs8', format: 'pem' }));
  await page.waitForSelector('#view[data-ready]');
  assert.match(await textOf('#who-text'), new RegExp(keyAdmin.client_id));
  assert.equal(await page.$eval('#sign-in-key', (el) => el.value), '', 'the key is not kept in the page');
  await page.click('#sign-out');
  await page.waitForSelector('#sign-in:not([hidden])');

  log('no CSP violation, no script error');
  assert.deepEqual(problems.filter((p) => !/Failed to load resource: the server responded with a status of 40[01]/.test(p)), []);
  console.log('console tests passed');
} catch (e) {
  console.error(`FAILED at step: ${step}`);
  console.error(e);
  try { console.error('--- page text ---\n' + await page.$eval('body', (b) => b.innerText)); await shot('failure'); } catch { /* ignore */ }
  process.exitCode = 1;
} finally {
  await browser.close();
}
