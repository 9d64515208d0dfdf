// A client's page: its settings, its secret, and its credentials (add by paste or upload,
// set / move / clear expires_at with the seed's PATCH, attach / detach, delete).
import { can, get, post, patch, del, seg } from './api.js';
import {
  h, fill, field, writeButton, table, act, when, urgencyBadge, toLocalInput, fromLocalInput,
  heading, METHOD_OF, attachedMethod, announce,
} from './ui.js';

/** A one-time view of a secret (after create or rotate): shown now, never again. */
export function secretPanel(client) {
  if (!client || !client.client_secret) {
    return h('p', { class: 'panel' }, 'The new secret is not shown: this token may not read secrets (read:client_keys).');
  }
  const box = h('input', { readonly: true, value: client.client_secret, class: 'mono', size: 70, spellcheck: 'false' });
  return h('div', { class: 'panel secret', role: 'alert', 'data-secret': '' },
    h('h2', {}, 'Client secret — shown only now'),
    h('p', {}, 'Copy it into your secret store. The console does not keep it; leaving this page forgets it.'),
    field('Secret of ' + (client.name || client.client_id), box));
}

function methodSummary(client) {
  const m = client.client_authentication_methods;
  if (m) {
    return Object.entries(m).map(([method, v]) => `${method} (${(v.credentials || []).length} credential${(v.credentials || []).length === 1 ? '' : 's'} attached)`).join(', ');
  }
  if (client.token_endpoint_auth_method) return `client secret (${client.token_endpoint_auth_method})`;
  return 'not shown to this token';
}

function describe(cred) {
  if (cred.credential_type === 'public_key') return ['kid ', h('code', {}, cred.kid), ` · ${cred.alg}`];
  if (cred.credential_type === 'x509_cert') return ['SHA-256 ', h('code', {}, cred.thumbprint_sha256)];
  if (cred.credential_type === 'cert_subject_dn') return ['subject ', h('code', {}, String(cred.subject_dn || '').replace(/\n/g, ', '))];
  return '';
}

async function setAttachment(client, cred, attach) {
  const method = METHOD_OF[cred.credential_type];
  const current = client.client_authentication_methods || {};
  const ids = ((current[method] && current[method].credentials) || []).map((c) => c.id).filter((x) => x !== cred.id);
  if (attach) ids.push(cred.id);
  // Other methods stay as they are: the API holds one method at a time and says so in words.
  const methods = { ...current, [method]: { credentials: ids.map((x) => ({ id: x })) } };
  return patch(`/clients/${seg(client.client_id)}`, { token_endpoint_auth_method: null, client_authentication_methods: methods });
}

function credentialRow(client, cred, rerender) {
  const base = `/clients/${seg(client.client_id)}/credentials/${seg(cred.id)}`;
  const label = cred.name || cred.id;
  const method = attachedMethod(client, cred.id);
  const controls = [];
  if (can('update:client_credentials')) {
    const picker = h('input', { type: 'datetime-local', value: toLocalInput(cred.expires_at), 'data-write': '', class: 'expiry' });
    controls.push(h('div', { class: 'row' },
      field(`Expiry of ${label} (local time)`, picker),
      writeButton('Set expiry', () => {
        const iso = fromLocalInput(picker.value);
        if (!iso) { announce('Choose a date and time first.', true); return; }
        act(`Expiry of ${label} set to ${when(iso)}`, () => patch(base, { expires_at: iso }), rerender);
      }, '', { 'data-action': 'set-expiry' }),
      cred.expires_at ? writeButton('Clear expiry', () => act(`${label} no longer expires`, () => patch(base, { expires_at: null }), rerender), 'secondary', { 'data-action': 'clear-expiry' }) : null));
    const m = METHOD_OF[cred.credential_type];
    controls.push(h('div', { class: 'row' }, method
      ? writeButton(`Detach from ${method}`, () => act(`${label} detached from ${method}`, () => setAttachment(client, cred, false), rerender), 'secondary', { 'data-action': 'detach' })
      : writeButton(`Attach to ${m}`, () => act(`${label} attached to ${m}`, () => setAttachment(client, cred, true), rerender), 'secondary', { 'data-action': 'attach' })));
  }
  if (can('delete:client_credentials')) {
    controls.push(h('div', { class: 'row' }, writeButton(`Delete ${label}`, () => {
      if (!window.confirm(`Delete the credential ${label}? This cannot be undone.`)) return;
      act(`${label} deleted`, () => del(base), rerender);
    }, 'danger', { 'data-action': 'delete-credential' })));
  }
  return h('tr', { 'data-credential-id': cred.id },
    h('td', {}, h('strong', {}, cred.name || '(no name)'), h('br'), h('code', {}, cred.id)),
    h('td', {}, cred.credential_type, h('br'), h('span', { class: 'muted' }, describe(cred))),
    h('td', { 'data-field': 'expiry' }, when(cred.expires_at), h('br'), urgencyBadge(cred.expires_at)),
    h('td', { 'data-field': 'attached' }, method ? `attached (${method})` : 'not attached'),
    h('td', {}, h('span', { class: 'muted' }, `created ${when(cred.created_at)}`), controls.length ? h('br') : null, controls));
}

function addCredentialForm(client, rerender) {
  const type = h('select', { name: 'credential_type' }, ['public_key', 'x509_cert', 'cert_subject_dn'].map((t) => h('option', { value: t }, `${t} (for ${METHOD_OF[t]})`)));
  const name = h('input', { name: 'name', maxlength: 128 });
  const alg = h('select', { name: 'alg' }, ['RS256', 'RS384', 'PS256'].map((a) => h('option', { value: a }, a)));
  const pem = h('textarea', { name: 'pem', spellcheck: 'false', class: 'mono', placeholder: '-----BEGIN PUBLIC KEY-----' });
  const file = h('input', { type: 'file', name: 'pem_file', accept: '.pem,.crt,.cer,.pub,text/plain' });
  const subject = h('input', { name: 'subject_dn', maxlength: 256, placeholder: 'CN=worker,O=Example' });
  const expires = h('input', { type: 'datetime-local', name: 'expires_at' });
  const fromCert = h('input', { type: 'checkbox' });
  file.addEventListener('change', async () => {
    const f = file.files && file.files[0];
    if (f) pem.value = await f.text();
  });
  const form = h('form', { class: 'stack', 'data-write': '', 'aria-labelledby': 'add-cred-title' },
    field('Type', type), field('Name', name), field('Algorithm (public_key)', alg),
    field('PEM: paste a public key or certificate', pem), field('… or upload a PEM file', file),
    field('Subject DN instead of a PEM (cert_subject_dn)', subject),
    field('Expires (public_key; local time; empty = never)', expires),
    h('div', { class: 'check' }, fromCert, h('label', { for: fromCert.id || (fromCert.id = 'from-cert') }, 'Take the expiry from the certificate (public_key given as a certificate)')),
    h('div', {}, h('button', { type: 'submit', 'data-write': '' }, 'Add credential')));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const body = { credential_type: type.value };
    if (name.value) body.name = name.value;
    if (subject.value && type.value === 'cert_subject_dn') body.subject_dn = subject.value;
    else body.pem = pem.value;
    if (type.value === 'public_key') {
      body.alg = alg.value;
      const iso = fromLocalInput(expires.value);
      if (iso) body.expires_at = iso;
      if (fromCert.checked) body.parse_expiry_from_cert = true;
    }
    act('Credential added', () => post(`/clients/${seg(client.client_id)}/credentials`, body), rerender);
  });
  return [h('h2', { id: 'add-cred-title' }, 'Add a credential'),
    h('p', { class: 'note' }, 'A credential does nothing until it is attached to the client\'s authentication method.'),
    form];
}

export async function clientPage(view, clientId, extra = null) {
  const rerender = (result) => clientPage(view, clientId, result && result.client_secret ? secretPanel(result) : null);
  const client = await get(`/clients/${seg(clientId)}`);
  const creds = can('read:client_credentials') ? await get(`/clients/${seg(clientId)}/credentials`) : null;
  const actions = [];
  if (can('update:client_keys') && client.token_endpoint_auth_method && !client.client_authentication_methods) {
    actions.push(writeButton('Rotate secret', () => {
      if (!window.confirm('Rotate the secret? The old one stops working at once.')) return;
      act('Secret rotated', () => post(`/clients/${seg(clientId)}/rotate-secret`), rerender);
    }, 'secondary', { 'data-action': 'rotate-secret' }));
  }
  if (can('update:client_credentials') && client.client_authentication_methods) {
    actions.push(writeButton('Use a client secret instead of credentials', () => {
      if (!window.confirm('Detach every credential and authenticate with the client secret (client_secret_post)?')) return;
      act('The client now uses its secret', () => patch(`/clients/${seg(clientId)}`, { client_authentication_methods: null, token_endpoint_auth_method: 'client_secret_post' }), rerender);
    }, 'secondary'));
  }
  if (can('delete:clients')) {
    actions.push(writeButton('Delete client', () => {
      if (!window.confirm(`Delete the client ${client.name}? Its tokens stop being issued at once.`)) return;
      act('Client deleted', () => del(`/clients/${seg(clientId)}`), () => { location.hash = '#/clients'; });
    }, 'danger'));
  }
  fill(view, 
    heading(`Client: ${client.name || client.client_id}`),
    extra,
    table(null, ['Property', 'Value'], [
      ['client_id', h('code', {}, client.client_id)],
      ['description', client.description || '—'],
      ['app_type', client.app_type || '—'],
      ['grant_types', (client.grant_types || []).join(', ') || '—'],
      ['authentication', methodSummary(client)],
    ].map(([k, v]) => h('tr', {}, h('th', { scope: 'row' }, k), h('td', {}, v))), { class: 'props' }),
    h('p', {}, h('a', { href: `#/grants/${seg(clientId)}` }, 'Grants of this client'), ' · ',
      h('a', { href: `#/logs?client_id=${seg(clientId)}` }, 'Logs of this client')),
    actions.length ? h('div', { class: 'row' }, actions) : null,
    h('h2', {}, 'Credentials'),
    creds === null
      ? h('p', { class: 'note' }, 'This token may not read credentials (read:client_credentials).')
      : table(null, ['Name', 'Type', 'Expires', 'Attached', 'Actions'], creds.map((c) => credentialRow(client, c, rerender)), { id: 'credentials' }),
    can('create:client_credentials') ? addCredentialForm(client, rerender) : null);
}
