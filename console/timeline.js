// The expiry timeline: every credential of every client on one time axis, in urgency bands
// (expired, next 7 / 30 / 90 days, later, never); each mark opens its client.
import { can, get, all, seg } from './api.js';
import { h, fill, heading, when, relative, BANDS, band, attachedMethod } from './ui.js';

/** Runs `fn` over `items`, at most `n` at a time. */
async function pool(items, n, fn) {
  const out = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}

export async function timeline(view) {
  fill(view, heading('Expiry timeline'), h('p', { class: 'muted' }, 'Loading every client\'s credentials…'));
  if (!can('read:client_credentials')) {
    fill(view, heading('Expiry timeline'), h('p', { class: 'note' }, 'This token does not hold read:client_credentials.'));
    return;
  }
  const clients = await all('/clients', 'clients');
  const lists = await pool(clients, 4, (c) => get(`/clients/${seg(c.client_id)}/credentials`));
  const now = Date.now();
  const marks = [];
  clients.forEach((client, i) => {
    for (const cred of lists[i] || []) {
      marks.push({ client, cred, band: band(cred.expires_at, now), at: cred.expires_at ? new Date(cred.expires_at).getTime() : Infinity, method: attachedMethod(client, cred.id) });
    }
  });
  marks.sort((a, b) => a.at - b.at || (a.client.name || '').localeCompare(b.client.name || ''));
  const bands = BANDS.map((b) => {
    const mine = marks.filter((m) => m.band.key === b.key);
    return h('section', { class: 'band', 'data-band': b.key, 'aria-labelledby': `band-${b.key}` },
      h('h2', { id: `band-${b.key}`, class: b.cls }, `${b.label} (${mine.length})`),
      mine.length ? h('ul', {}, mine.map((m) => h('li', {}, h('a', {
        href: `#/clients/${seg(m.client.client_id)}`,
        class: `mark ${b.cls}${m.method ? '' : ' detached'}`,
        'data-credential-id': m.cred.id,
        'data-attached': m.method ? 'true' : 'false',
      },
      h('span', { class: 'when' }, m.cred.expires_at ? when(m.cred.expires_at) : 'no expiry'),
      `${m.client.name || m.client.client_id} — ${m.cred.name || m.cred.id}`, h('br'),
      h('span', {}, `${m.cred.credential_type}; ${m.method ? `attached (${m.method})` : 'not attached'}; ${relative(m.cred.expires_at, now)}`))))) : h('p', { class: 'muted' }, 'None.'));
  });
  const ticks = ['… past', 'now →', '+7 days →', '+30 days →', '+90 days →', 'no expiry'];
  fill(view, heading('Expiry timeline'),
    h('p', {}, `${marks.length} credential${marks.length === 1 ? '' : 's'} of ${clients.length} client${clients.length === 1 ? '' : 's'}, soonest first in each band. `,
      'A dashed mark is not attached to its client\'s authentication method (it authenticates nothing until attached). Dates are in your local time.'),
    h('div', { class: 'timeline', id: 'timeline' }, bands),
    h('div', { class: 'axis', 'aria-hidden': 'true' }, ticks.map((t) => h('span', {}, t))));
}
