// DOM and formatting helpers. Everything is built with createElement and textContent: no
// innerHTML, so nothing the API returns can become markup.

/** h('a', {href: '#/x', class: 'c'}, 'text', child, [more]) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value' || k === 'checked' || k === 'disabled') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

/** Replaces an element's children (arrays flattened, null and false left out). */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

let uid = 0;
/** A fresh element id (labels point at their controls). */
export const id = (prefix = 'f') => `${prefix}-${++uid}`;

/** A labelled control: [label, control]. */
export function field(labelText, control) {
  if (!control.id) control.id = id();
  return [h('label', { for: control.id }, labelText), control];
}

/** A write control: marked so tests (and readers) can tell; only rendered when allowed. */
export function writeButton(text, onclick, cls = '', attrs = {}) {
  return h('button', { type: 'button', class: cls, 'data-write': '', onclick, ...attrs }, text);
}

export function table(caption, headers, rows, attrs = {}) {
  return h('table', attrs,
    caption ? h('caption', {}, caption) : null,
    h('thead', {}, h('tr', {}, headers.map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: headers.length, class: 'muted' }, 'None.'))));
}

/** Shows a short message in the status region (errors in red). */
let statusTimer;
export function announce(message, isError = false) {
  const el = document.getElementById('status');
  el.classList.toggle('error', isError);
  el.textContent = message;
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => { el.textContent = ''; }, isError ? 12000 : 5000);
}

/** Runs an action, announcing success or the API's error in words. */
export async function act(what, fn, after) {
  try {
    const result = await fn();
    announce(what);
    if (after) await after(result);
    return result;
  } catch (e) {
    if (e && e.name === 'SessionEnded') return undefined;
    announce(`Refused: ${e.message}`, true);
    return undefined;
  }
}

const dateFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
export function when(iso) {
  if (!iso) return 'never';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : dateFmt.format(d);
}

const DAY = 86400000;
/** In words, relative to now: "in 3 days", "2 hours ago". */
export function relative(iso, now = Date.now()) {
  if (!iso) return 'never expires';
  const diff = new Date(iso).getTime() - now;
  const abs = Math.abs(diff);
  const [n, unit] = abs >= DAY ? [Math.round(abs / DAY), 'day'] : abs >= 3600000 ? [Math.round(abs / 3600000), 'hour'] : [Math.max(1, Math.round(abs / 60000)), 'minute'];
  const text = `${n} ${unit}${n === 1 ? '' : 's'}`;
  return diff < 0 ? `expired ${text} ago` : `expires in ${text}`;
}

/** The urgency bands of the timeline, in order. */
export const BANDS = [
  { key: 'expired', label: 'Expired', cls: 'u-expired' },
  { key: 'd7', label: 'Next 7 days', cls: 'u-d7' },
  { key: 'd30', label: '8–30 days', cls: 'u-d30' },
  { key: 'd90', label: '31–90 days', cls: 'u-d90' },
  { key: 'later', label: 'Later', cls: 'u-later' },
  { key: 'never', label: 'Never expires', cls: 'u-never' },
];

export function band(iso, now = Date.now()) {
  if (!iso) return BANDS[5];
  const left = new Date(iso).getTime() - now;
  if (left <= 0) return BANDS[0];
  if (left <= 7 * DAY) return BANDS[1];
  if (left <= 30 * DAY) return BANDS[2];
  if (left <= 90 * DAY) return BANDS[3];
  return BANDS[4];
}

export function urgencyBadge(iso) {
  const b = band(iso);
  return h('span', { class: `badge ${b.cls}` }, `${b.label}: ${relative(iso)}`);
}

/** An ISO date-time as a datetime-local value (local time, minutes). */
export function toLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

/** A datetime-local value (local time) as an ISO date-time in UTC, or null when empty/invalid. */
export function fromLocalInput(value) {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

/** The page's heading; focus moves to it after navigation, for keyboard and screen readers. */
export function heading(text) {
  return h('h1', { tabindex: '-1', id: 'page-title' }, text);
}

export const METHOD_OF = {
  public_key: 'private_key_jwt',
  cert_subject_dn: 'tls_client_auth',
  x509_cert: 'self_signed_tls_client_auth',
};

/** Which method (if any) a client's `client_authentication_methods` attaches a credential to. */
export function attachedMethod(client, credentialId) {
  const methods = client && client.client_authentication_methods;
  if (!methods) return null;
  for (const [method, v] of Object.entries(methods)) {
    if (v && Array.isArray(v.credentials) && v.credentials.some((c) => c.id === credentialId)) return method;
  }
  return null;
}
