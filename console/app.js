// The console's entry point: sign-in, sign-out, and hash routing to the pages.
import { signIn, signOut, signedIn, who, whenEnded, SessionEnded, ApiError } from './api.js';
import { h, fill, heading, announce } from './ui.js';
import { overview, clients, apis, grants, keys, logs } from './pages.js';
import { clientPage } from './credentials.js';
import { timeline } from './timeline.js';

const $ = (id) => document.getElementById(id);
const view = $('view');

const ROUTES = [
  [/^$/, () => overview(view)],
  [/^timeline$/, () => timeline(view)],
  [/^clients$/, () => clients(view)],
  [/^clients\/([^/]+)$/, (m) => clientPage(view, decodeURIComponent(m[1]))],
  [/^apis$/, () => apis(view)],
  [/^grants$/, () => grants(view, null)],
  [/^grants\/([^/]+)$/, (m) => grants(view, decodeURIComponent(m[1]))],
  [/^keys$/, () => keys(view)],
  [/^logs$/, (m, params) => logs(view, params)],
];

function showSignIn(message = '') {
  $('nav').hidden = true;
  $('who').hidden = true;
  fill(view);
  $('sign-in').hidden = false;
  $('sign-in-error').textContent = message;
  $('sign-in-id').focus();
}

let rendering = 0;
async function route() {
  if (!signedIn()) {
    showSignIn();
    return;
  }
  $('sign-in').hidden = true;
  $('nav').hidden = false;
  $('who').hidden = false;
  const hash = location.hash.replace(/^#\/?/, '');
  const [path, q = ''] = hash.split('?');
  const params = new URLSearchParams(q);
  for (const a of document.querySelectorAll('#nav a')) {
    const target = a.getAttribute('href').replace(/^#\/?/, '');
    const current = target === '' ? path === '' : path === target || path.startsWith(`${target}/`);
    if (current) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  delete view.dataset.ready;
  const found = ROUTES.find(([re]) => re.test(path));
  const ticket = ++rendering;
  try {
    if (!found) {
      fill(view, heading('Not found'), h('p', {}, 'No such page. ', h('a', { href: '#/' }, 'Overview')));
    } else {
      await found[1](path.match(found[0]), params);
    }
    if (ticket === rendering) {
      const title = $('page-title');
      document.title = `${title ? title.textContent : 'Console'} — Clavis`;
      if (title) title.focus({ preventScroll: true });
      view.dataset.ready = path || 'overview';
    }
  } catch (e) {
    if (e instanceof SessionEnded) return;
    const words = e instanceof ApiError ? `${e.message} (HTTP ${e.status})` : String(e && e.message ? e.message : e);
    fill(view, heading('Could not load this page'), h('p', { class: 'error', role: 'alert' }, words));
    view.dataset.ready = path || 'overview';
  }
}

const withKey = () => $('sign-in-with-key').checked;
for (const radio of document.querySelectorAll('#sign-in-form input[name=method]')) {
  radio.addEventListener('change', () => {
    $('secret-fields').hidden = withKey();
    $('key-fields').hidden = !withKey();
  });
}
$('sign-in-key-file').addEventListener('change', async () => {
  const file = $('sign-in-key-file').files[0];
  if (file) $('sign-in-key').value = await file.text();
  $('sign-in-key-file').value = '';
});

$('sign-in-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const id = $('sign-in-id').value.trim();
  $('sign-in-error').textContent = '';
  try {
    await signIn(id, withKey()
      ? { privateKey: $('sign-in-key').value, alg: $('sign-in-alg').value }
      : { secret: $('sign-in-secret').value });
  } catch (err) {
    $('sign-in-error').textContent = `Sign-in refused: ${err.message}`;
    return;
  } finally {
    // Neither the secret nor the key stays in the page.
    $('sign-in-secret').value = '';
    $('sign-in-key').value = '';
  }
  const me = who();
  $('who-text').textContent = `Signed in as ${me.clientId} (${me.scopes.length} scope${me.scopes.length === 1 ? '' : 's'})`;
  await route();
});

$('sign-out').addEventListener('click', () => {
  signOut();
  $('sign-in-id').value = '';
  announce('Signed out: the token is forgotten.');
  showSignIn();
});

whenEnded(() => showSignIn('Your session ended (the token expired or was refused). Sign in again.'));
window.addEventListener('hashchange', route);
// A link to the page already shown loads it again (fresh data), as a reload would.
document.addEventListener('click', (e) => {
  const a = e.target.closest && e.target.closest('a[href^="#/"]');
  if (a && a.getAttribute('href') === location.hash && !e.ctrlKey && !e.metaKey) {
    e.preventDefault();
    route();
  }
});
route();
