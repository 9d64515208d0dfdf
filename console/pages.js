// The list pages: overview, clients, APIs, grants, signing keys, logs.
import { can, get, post, patch, put, del, all, query, seg, ApiError } from './api.js';
import {
  h, fill, field, writeButton, table, act, when, urgencyBadge, heading,
} from './ui.js';
import { secretPanel } from './credentials.js';

const DAY = 86400000;

async function total(path, key) {
  const res = await get(`${path}${query({ per_page: 1, page: 0, include_totals: true })}`);
  return typeof res.total === 'number' ? res.total : (res[key] || []).length;
}

function card(label, value, href) {
  return h('div', { class: 'card' }, h('a', { href }, h('span', { class: 'n' }, value), label));
}

/** What this token may not see, in words, instead of a section. */
const needs = (scope) => h('p', { class: 'note' }, `This token does not hold ${scope}.`);

export async function overview(view) {
  fill(view, heading('Overview'), h('p', { class: 'muted' }, 'Loading…'));
  const cards = [];
  if (can('read:clients', 'read:client_keys', 'read:client_credentials')) cards.push(card('clients', await total('/clients', 'clients'), '#/clients'));
  if (can('read:resource_servers')) cards.push(card('APIs', await total('/resource-servers', 'resource_servers'), '#/apis'));
  if (can('read:client_grants')) cards.push(card('client grants', await total('/client-grants', 'client_grants'), '#/grants'));
  if (can('read:signing_keys')) {
    const keys = await get('/keys/signing');
    cards.push(card('signing keys published', keys.filter((k) => !k.revoked).length, '#/keys'));
  }
  const sections = [];
  if (can('read:client_credentials')) {
    const soon = new Date(Date.now() + 30 * DAY).toISOString();
    const expiring = await all(`/credentials/expiring${query({ before: soon })}`, 'credentials');
    const now = Date.now();
    const expired = expiring.filter((c) => new Date(c.expires_at).getTime() <= now);
    const coming = expiring.filter((c) => new Date(c.expires_at).getTime() > now);
    cards.push(card('expired credentials still attached', expired.length, '#/timeline'));
    cards.push(card('credentials expiring in 30 days', coming.length, '#/timeline'));
    const row = (c) => h('tr', {},
      h('td', {}, h('a', { href: `#/clients/${seg(c.client_id)}` }, c.client_name || c.client_id)),
      h('td', {}, c.name || c.id, h('br'), h('span', { class: 'muted' }, c.credential_type)),
      h('td', {}, when(c.expires_at), ' ', urgencyBadge(c.expires_at)));
    sections.push(h('h2', {}, 'Expired credentials still attached'),
      h('p', { class: 'note' }, 'These no longer authenticate: detach them, or move their expiry, on the client\'s page.'),
      table(null, ['Client', 'Credential', 'Expired'], expired.map(row), { id: 'expired-attached' }),
      h('h2', {}, 'Attached credentials expiring in the next 30 days'),
      table(null, ['Client', 'Credential', 'Expires'], coming.map(row), { id: 'expiring-30' }));
  } else {
    sections.push(h('h2', {}, 'Credentials'), needs('read:client_credentials'));
  }
  sections.push(h('h2', {}, 'Failed token requests in the last 24 hours'));
  if (can('read:logs')) {
    const since = new Date(Date.now() - DAY).toISOString();
    const q = `type:feccft AND date:[${since} TO *]`;
    const res = await get(`/logs${query({ q, per_page: 10, page: 0, include_totals: true, sort: 'date:-1' })}`);
    cards.push(card('failed token requests (24 h)', res.total, `#/logs?type=feccft`));
    sections.push(table(`${res.total} in all; the latest ${res.logs.length}:`, ['When', 'Client', 'Why'], res.logs.map((l) => h('tr', {},
      h('td', {}, when(l.date)), h('td', {}, l.client_name || l.client_id || '—'), h('td', {}, l.description || '')))));
  } else {
    sections.push(needs('read:logs'));
  }
  fill(view, heading('Overview'), h('div', { class: 'cards', id: 'counts' }, cards), sections);
}

/* ---------- clients ---------- */

const clientsState = { q: '', page: 0, per: 20 };

export async function clients(view) {
  const list = await all('/clients', 'clients');
  const created = clientsState.created;
  clientsState.created = null;
  const search = h('input', { type: 'search', value: clientsState.q, spellcheck: 'false' });
  const results = h('div', { id: 'client-list' });
  const draw = () => {
    const q = clientsState.q.trim().toLowerCase();
    const hits = list.filter((c) => !q || (c.name || '').toLowerCase().includes(q) || c.client_id.toLowerCase().includes(q));
    const pages = Math.max(1, Math.ceil(hits.length / clientsState.per));
    clientsState.page = Math.min(clientsState.page, pages - 1);
    const shown = hits.slice(clientsState.page * clientsState.per, (clientsState.page + 1) * clientsState.per);
    fill(results, 
      table(null, ['Name', 'Client ID', 'Type', 'Authentication'], shown.map((c) => h('tr', {},
        h('td', {}, h('a', { href: `#/clients/${seg(c.client_id)}` }, c.name || '(no name)')),
        h('td', {}, h('code', {}, c.client_id)),
        h('td', {}, c.app_type || '—'),
        h('td', {}, c.client_authentication_methods ? Object.keys(c.client_authentication_methods).join(', ') : (c.token_endpoint_auth_method || '—'))))),
      h('div', { class: 'pager' },
        h('button', { type: 'button', class: 'secondary', disabled: clientsState.page === 0, onclick: () => { clientsState.page -= 1; draw(); } }, 'Previous page'),
        h('span', {}, `Page ${clientsState.page + 1} of ${pages} · ${hits.length} client${hits.length === 1 ? '' : 's'}`),
        h('button', { type: 'button', class: 'secondary', disabled: clientsState.page >= pages - 1, onclick: () => { clientsState.page += 1; draw(); } }, 'Next page')));
  };
  search.addEventListener('input', () => { clientsState.q = search.value; clientsState.page = 0; draw(); });
  draw();
  let form = null;
  if (can('create:clients')) {
    const name = h('input', { name: 'name', required: true, maxlength: 128 });
    const description = h('input', { name: 'description', maxlength: 140 });
    form = h('form', { class: 'stack', 'data-write': '', 'aria-labelledby': 'create-client-title' },
      field('Name', name), field('Description', description),
      h('div', {}, h('button', { type: 'submit', 'data-write': '' }, 'Create client')));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const body = { name: name.value, app_type: 'non_interactive', grant_types: ['client_credentials'] };
      if (description.value) body.description = description.value;
      act(`Client ${name.value} created`, () => post('/clients', body), (client) => {
        clientsState.created = client;
        return clients(view);
      });
    });
  }
  fill(view, heading('Clients'),
    created ? [secretPanel(created), h('p', {}, h('a', { href: `#/clients/${seg(created.client_id)}`, id: 'new-client-link' }, `Open ${created.name}`))] : null,
    h('div', { class: 'row' }, field('Search by name or client ID', search)),
    results,
    form ? [h('h2', { id: 'create-client-title' }, 'Create a machine-to-machine client'),
      h('p', { class: 'note' }, 'app_type non_interactive, grant type client_credentials; it authenticates with a secret until you attach credentials.'), form] : null);
}

/* ---------- APIs ---------- */

export async function apis(view) {
  const list = await all('/resource-servers', 'resource_servers');
  const rows = list.map((rs) => h('tr', {},
    h('td', {}, h('strong', {}, rs.name), rs.is_system ? [h('br'), h('span', { class: 'muted' }, 'system API (cannot be changed)')] : null),
    h('td', {}, h('code', {}, rs.identifier)),
    h('td', {}, `${rs.signing_alg || 'RS256'}; tokens live ${rs.token_lifetime ?? '—'} s`),
    h('td', {}, (rs.scopes || []).length ? h('ul', {}, rs.scopes.map((s) => h('li', {}, h('code', {}, s.value), s.description ? ` — ${s.description}` : ''))) : h('span', { class: 'muted' }, 'no scopes')),
    h('td', {}, !rs.is_system && can('delete:resource_servers') ? writeButton(`Delete ${rs.name}`, () => {
      if (!window.confirm(`Delete the API ${rs.name}? Its grants go with it.`)) return;
      act(`${rs.name} deleted`, () => del(`/resource-servers/${seg(rs.id)}`), () => apis(view));
    }, 'danger') : null)));
  let form = null;
  if (can('create:resource_servers')) {
    const name = h('input', { name: 'name', required: true });
    const identifier = h('input', { name: 'identifier', required: true, placeholder: 'https://api.example.com/', spellcheck: 'false' });
    const scopes = h('input', { name: 'scopes', placeholder: 'read:things write:things', spellcheck: 'false' });
    const lifetime = h('input', { name: 'token_lifetime', type: 'number', min: 1, max: 2592000, value: '86400' });
    form = h('form', { class: 'stack', 'data-write': '', 'aria-labelledby': 'create-api-title' },
      field('Name', name), field('Identifier (the audience)', identifier),
      field('Scopes (separated by spaces)', scopes), field('Token lifetime (seconds)', lifetime),
      h('div', {}, h('button', { type: 'submit', 'data-write': '' }, 'Create API')));
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const body = {
        name: name.value,
        identifier: identifier.value,
        scopes: scopes.value.split(/\s+/).filter(Boolean).map((value) => ({ value })),
        token_lifetime: Number(lifetime.value),
      };
      act(`API ${name.value} created`, () => post('/resource-servers', body), () => apis(view));
    });
  }
  fill(view, heading('APIs'),
    table(null, ['Name', 'Identifier', 'Settings', 'Scopes', 'Actions'], rows, { id: 'apis' }),
    form ? [h('h2', { id: 'create-api-title' }, 'Create an API'), form] : null);
}

/* ---------- grants ---------- */

export async function grants(view, clientId) {
  const list = await all('/clients', 'clients');
  const select = h('select', {}, h('option', { value: '' }, 'Choose a client'),
    list.map((c) => h('option', { value: c.client_id, selected: c.client_id === clientId ? 'selected' : null }, `${c.name} (${c.client_id})`)));
  select.addEventListener('change', () => { location.hash = select.value ? `#/grants/${seg(select.value)}` : '#/grants'; });
  const parts = [heading('Grants'),
    h('p', { class: 'note' }, 'A client grant lets a client get tokens for an API with the checked scopes (client_credentials).'),
    h('div', { class: 'row' }, field('Client', select))];
  if (clientId) {
    const [apisList, grantList] = await Promise.all([
      all('/resource-servers', 'resource_servers'),
      all(`/client-grants${query({ client_id: clientId })}`, 'client_grants'),
    ]);
    const mayCreate = can('create:client_grants');
    const mayUpdate = can('update:client_grants');
    for (const rs of apisList) {
      const grant = grantList.find((g) => g.audience === rs.identifier && (g.subject_type || 'client') === 'client');
      const writable = grant ? mayUpdate : mayCreate;
      const boxes = (rs.scopes || []).map((s) => {
        const box = h('input', { type: 'checkbox', value: s.value, checked: Boolean(grant && (grant.scope || []).includes(s.value)), disabled: !writable });
        return h('span', {}, box, ' ', h('label', { for: box.id || (box.id = `g-${rs.id}-${s.value.replace(/[^a-zA-Z0-9]/g, '_')}`) }, s.value));
      });
      const chosen = () => boxes.map((b) => b.querySelector('input')).filter((b) => b.checked).map((b) => b.value);
      const actions = [];
      if (writable && boxes.length) {
        actions.push(writeButton(grant ? 'Save scopes' : 'Grant', () => {
          const scope = chosen();
          if (grant) act(`Scopes of ${rs.name} saved`, () => patch(`/client-grants/${seg(grant.id)}`, { scope }), () => grants(view, clientId));
          else act(`${rs.name} granted`, () => post('/client-grants', { client_id: clientId, audience: rs.identifier, scope }), () => grants(view, clientId));
        }, '', { 'data-action': 'save-grant' }));
      }
      if (grant && can('delete:client_grants')) {
        actions.push(writeButton('Remove grant', () => act(`Grant of ${rs.name} removed`, () => del(`/client-grants/${seg(grant.id)}`), () => grants(view, clientId)), 'danger'));
      }
      parts.push(h('fieldset', { 'data-audience': rs.identifier },
        h('legend', {}, `${rs.name} — ${grant ? 'granted' : 'not granted'}`),
        h('p', { class: 'muted' }, h('code', {}, rs.identifier)),
        boxes.length ? h('div', { class: 'checks' }, boxes) : h('p', { class: 'muted' }, 'This API defines no scopes.'),
        actions.length ? h('div', { class: 'row' }, actions) : null));
    }
  }
  fill(view, ...parts);
}

/* ---------- signing keys ---------- */

export async function keys(view) {
  const list = await get('/keys/signing');
  const state = (k) => (k.revoked ? 'revoked' : k.current ? 'current' : k.next ? 'next' : k.previous ? 'previous' : '—');
  const rows = list.map((k) => h('tr', {},
    h('td', {}, h('code', {}, k.kid)),
    h('td', {}, state(k)),
    h('td', {}, k.current_since ? `current since ${when(k.current_since)}` : '', k.current_until ? ` until ${when(k.current_until)}` : '', k.revoked_at ? ` · revoked ${when(k.revoked_at)}` : ''),
    h('td', {}, h('code', {}, k.fingerprint)),
    h('td', {}, k.previous && !k.revoked && can('update:signing_keys') ? writeButton(`Revoke ${k.kid}`, () => {
      if (!window.confirm('Revoke this key? Every token it signed stops verifying at once.')) return;
      act('Key revoked', () => put(`/keys/signing/${seg(k.kid)}/revoke`), () => keys(view));
    }, 'danger') : null)));
  fill(view, heading('Signing keys'),
    h('div', { class: 'panel' },
      h('p', {}, h('strong', {}, 'Rotate'), ': the next key (already in the JWKS, so resource servers have it) becomes the current one and signs every new token; the current key becomes a previous one and stays in the JWKS, so the tokens it signed keep verifying until they expire. A new next key is published. Clavis keeps at most 8 previous keys: a rotation beyond that revokes the oldest.'),
      h('p', {}, h('strong', {}, 'Revoke'), ' (a previous key): it leaves the JWKS at once. Every live token it signed stops working: at once for the Management API (Clavis verifies those itself), and at each resource server when it next refreshes its JWKS. Use it when a key may be compromised; otherwise rotate, wait for the longest token lifetime, then revoke.')),
    can('create:signing_keys', 'update:signing_keys') ? h('div', { class: 'row' }, writeButton('Rotate signing key', () => {
      if (!window.confirm('Rotate the signing key? New tokens are signed with the next key.')) return;
      act('Signing key rotated', () => post('/keys/signing/rotate'), () => keys(view));
    }, '', { 'data-action': 'rotate-key' })) : null,
    table(null, ['kid', 'State', 'When', 'Fingerprint', 'Actions'], rows, { id: 'keys' }));
}

/* ---------- logs ---------- */

const LOG_TYPES = [
  ['', 'any type'], ['seccft', 'seccft — token issued'], ['feccft', 'feccft — token request failed'],
  ['sapi', 'sapi — Management API write'], ['mgmt_api_read', 'mgmt_api_read — secret read'],
  ['api_limit', 'api_limit — rate limit'], ['clavis_credential_expiring', 'credential expiring'],
  ['clavis_credential_expired', 'credential expired'],
];

/** A query value, quoted for the log search syntax. */
const quoted = (v) => `"${String(v).replace(/["\\]/g, '')}"`;

export async function logs(view, params) {
  const type = h('select', {}, LOG_TYPES.map(([v, t]) => h('option', { value: v, selected: params.get('type') === v ? 'selected' : null }, t)));
  const client = h('input', { value: params.get('client_id') || '', spellcheck: 'false' });
  const from = h('input', { type: 'date', value: params.get('from') || '' });
  const to = h('input', { type: 'date', value: params.get('to') || '' });
  const page = Number(params.get('page') || 0);
  const form = h('form', { class: 'row', 'aria-label': 'Filter the logs' },
    field('Type', type), field('Client ID', client), field('From (UTC date)', from), field('To (UTC date)', to),
    h('button', { type: 'submit' }, 'Filter'));
  const go = (p) => {
    const q = new URLSearchParams();
    if (type.value) q.set('type', type.value);
    if (client.value) q.set('client_id', client.value.trim());
    if (from.value) q.set('from', from.value);
    if (to.value) q.set('to', to.value);
    if (p) q.set('page', String(p));
    location.hash = `#/logs?${q}`;
  };
  form.addEventListener('submit', (e) => { e.preventDefault(); go(0); });
  const terms = [];
  if (params.get('type')) terms.push(`type:${quoted(params.get('type'))}`);
  if (params.get('client_id')) terms.push(`client_id:${quoted(params.get('client_id'))}`);
  if (params.get('from') || params.get('to')) terms.push(`date:[${params.get('from') || '*'} TO ${params.get('to') || '*'}]`);
  let body;
  try {
    const res = await get(`/logs${query({ q: terms.join(' AND '), page, per_page: 50, include_totals: true, sort: 'date:-1' })}`);
    const pages = Math.max(1, Math.ceil(Math.min(res.total, 1000) / 50));
    body = [table(`${res.total} event${res.total === 1 ? '' : 's'}`, ['When', 'Type', 'Client', 'Description', 'Details'], res.logs.map((l) => h('tr', {},
      h('td', {}, when(l.date)), h('td', {}, h('code', {}, l.type)),
      h('td', {}, l.client_id ? h('a', { href: `#/clients/${seg(l.client_id)}` }, l.client_name || l.client_id) : '—'),
      h('td', {}, l.description || ''),
      h('td', {}, h('details', {}, h('summary', {}, 'Show'), h('pre', {}, JSON.stringify(l, null, 2)))))), { id: 'logs' }),
    h('div', { class: 'pager' },
      h('button', { type: 'button', class: 'secondary', disabled: page === 0, onclick: () => go(page - 1) }, 'Newer'),
      h('span', {}, `Page ${page + 1} of ${pages}`),
      h('button', { type: 'button', class: 'secondary', disabled: page >= pages - 1, onclick: () => go(page + 1) }, 'Older'))];
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
    body = h('p', { class: 'error', role: 'alert' }, `The search was refused: ${e.message}`);
  }
  fill(view, heading('Logs'), form, body);
}
