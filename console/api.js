// The console's only way to the server: /oauth/token for the sign-in, /api/v2/... with the
// signed-in token for everything else. The token lives in this module's memory only (never in
// localStorage, sessionStorage, a cookie or a URL).

let session = null; // { token, scopes: Set, expiresAt (ms), clientId }
let config = null;
let onEnded = () => {};

/** Thrown when the session is over (no token, expired, or a 401): the app returns to sign-in. */
export class SessionEnded extends Error {}

/** An error answer of the API, in words: Auth0's `message` (or the OAuth `error_description`). */
export class ApiError extends Error {
  constructor(status, body) {
    const words = (body && (body.message || body.error_description || body.error)) || `HTTP ${status}`;
    super(words);
    this.status = status;
    this.code = body && (body.errorCode || body.error);
  }
}

/** Called when the session ends by itself (expiry or a 401). */
export function whenEnded(callback) {
  onEnded = callback;
}

async function loadConfig() {
  if (!config) {
    const res = await fetch('config.json', { cache: 'no-store', credentials: 'omit' });
    if (!res.ok) throw new ApiError(res.status, null);
    config = await res.json();
  }
  return config;
}

/** The claims of a JWT (its middle part); the server verified it, the console only reads it. */
function claims(jwt) {
  const part = String(jwt).split('.')[1] || '';
  const b64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=');
  try {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return {};
  }
}

const b64url = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const b64urlJson = (value) => b64url(new TextEncoder().encode(JSON.stringify(value)));

const ALGS = {
  RS256: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
  RS384: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-384' },
  PS256: { name: 'RSA-PSS', hash: 'SHA-256', saltLength: 32 },
};

/** A private_key_jwt client assertion, signed in the browser (WebCrypto); the key is not kept. */
async function clientAssertion(clientId, pem, alg, issuer) {
  if (/BEGIN RSA PRIVATE KEY/.test(pem)) {
    throw new Error('This is a PKCS#1 key: convert it with `openssl pkcs8 -topk8 -nocrypt -in key.pem` (BEGIN PRIVATE KEY)');
  }
  const match = /-----BEGIN PRIVATE KEY-----([\s\S]+?)-----END PRIVATE KEY-----/.exec(pem);
  if (!match) throw new Error('Not a PKCS#8 private key PEM (BEGIN PRIVATE KEY)');
  const der = Uint8Array.from(atob(match[1].replace(/\s+/g, '')), (c) => c.charCodeAt(0));
  const params = ALGS[alg];
  if (!params) throw new Error(`Unsupported algorithm ${alg}`);
  let key;
  try {
    key = await crypto.subtle.importKey('pkcs8', der, { name: params.name, hash: params.hash }, false, ['sign']);
  } catch {
    throw new Error('The private key could not be read (an RSA key in PKCS#8 PEM is needed)');
  }
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64urlJson({ alg, typ: 'JWT' })}.${b64urlJson({ iss: clientId, sub: clientId, aud: issuer, iat: now, exp: now + 60, jti: crypto.randomUUID() })}`;
  const signature = await crypto.subtle.sign(params, key, new TextEncoder().encode(input));
  return `${input}.${b64url(signature)}`;
}

/**
 * Exchanges a client's credentials for a Management API token: `{ secret }`, or
 * `{ privateKey, alg }` (private_key_jwt, signed here).
 */
export async function signIn(clientId, { secret, privateKey, alg = 'RS256' }) {
  const { management_audience: audience, issuer } = await loadConfig();
  const request = { grant_type: 'client_credentials', client_id: clientId, audience };
  if (privateKey) {
    request.client_assertion_type = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
    request.client_assertion = await clientAssertion(clientId, privateKey, alg, issuer);
  } else {
    request.client_secret = secret;
  }
  const res = await fetch('/oauth/token', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(request),
    cache: 'no-store',
    credentials: 'omit',
  });
  const body = await res.json().catch(() => null);
  if (!res.ok || !body || !body.access_token) throw new ApiError(res.status, body);
  const c = claims(body.access_token);
  const scope = typeof body.scope === 'string' ? body.scope : c.scope || '';
  const lifetime = Number(body.expires_in) > 0 ? Number(body.expires_in) * 1000 : 0;
  session = {
    token: body.access_token,
    scopes: new Set(scope.split(' ').filter(Boolean)),
    expiresAt: c.exp ? c.exp * 1000 : Date.now() + lifetime,
    clientId,
  };
  // Back to the sign-in when the token expires, even if the page sits idle until then
  // (timers beyond 2^31 ms fire at once, so long lifetimes are checked daily).
  clearTimeout(expiryTimer);
  const watch = () => {
    if (!signedIn()) end();
    else expiryTimer = setTimeout(watch, Math.min(session.expiresAt - Date.now() + 1000, 86400000));
  };
  expiryTimer = setTimeout(watch, Math.min(session.expiresAt - Date.now() + 1000, 86400000));
  return session;
}

let expiryTimer;

/** Forgets the token. */
export function signOut() {
  clearTimeout(expiryTimer);
  session = null;
}

export function signedIn() {
  return session !== null && Date.now() < session.expiresAt;
}

export function who() {
  return session ? { clientId: session.clientId, scopes: [...session.scopes].sort() } : null;
}

/** Whether the token holds any of the scopes. */
export function can(...scopes) {
  return session !== null && scopes.some((s) => session.scopes.has(s));
}

function end() {
  if (session) {
    session = null;
    onEnded();
  }
}

/** One Management API call: `path` below /api/v2. Returns the parsed body (null for 204). */
export async function api(method, path, body, { raw = false } = {}) {
  if (!signedIn()) {
    end();
    throw new SessionEnded('Signed out');
  }
  const headers = { authorization: `Bearer ${session.token}`, accept: 'application/json' };
  const init = { method, headers, cache: 'no-store', credentials: 'omit' };
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res = await fetch(`/api/v2${path}`, init);
  // Rate limited (a timeline over many clients makes a request per client): wait as the
  // server says (Retry-After, at most 10 s) and try again, three times at most.
  for (let tries = 0; res.status === 429 && tries < 3; tries += 1) {
    const wait = Math.min(Math.max(Number(res.headers.get('retry-after')) || 1, 1), 10);
    await new Promise((resolve) => { setTimeout(resolve, wait * 1000); });
    res = await fetch(`/api/v2${path}`, init);
  }
  if (res.status === 401) {
    end();
    throw new SessionEnded('The token was refused');
  }
  if (res.status === 204) return null;
  const parsed = await res.json().catch(() => null);
  if (!res.ok) throw new ApiError(res.status, parsed);
  return raw ? { body: parsed, headers: res.headers } : parsed;
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body === undefined ? {} : body);
export const patch = (path, body) => api('PATCH', path, body);
export const put = (path, body) => api('PUT', path, body);
export const del = (path) => api('DELETE', path);

/** Query string from an object (undefined and '' values are left out). */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== '' && v !== null) q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** Every item of a paged list (`include_totals` pages of 100). */
export async function all(path, key, params = {}) {
  const items = [];
  for (let page = 0; ; page += 1) {
    const sep = path.includes('?') ? '&' : '?';
    const res = await get(`${path}${sep}${query({ ...params, page, per_page: 100, include_totals: true }).slice(1)}`);
    const chunk = Array.isArray(res) ? res : res[key] || [];
    items.push(...chunk);
    const total = Array.isArray(res) ? items.length : res.total;
    if (chunk.length < 100 || items.length >= total) return items;
  }
}

/** `encodeURIComponent` for a path segment. */
export const seg = encodeURIComponent;
