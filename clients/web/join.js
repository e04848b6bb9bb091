// Join page: takes a link or token (pasted, or in #token= / ?token=),
// shows what it grants, checks it with the server, and opens the right page.
import { decodeToken, tokenExpired, probeToken, friendlyAuthError, browserProblem, h } from './podium.js';

const $ = (id) => document.getElementById(id);
const ROLE_NAMES = { teacher: 'Teacher (console)', classroom: 'Classroom (big screen)', viewer: 'Viewer' };
const PAGES = { teacher: '/teacher', classroom: '/classroom', viewer: '/classroom' };

function showError(text) {
  $('error').replaceChildren(text ? h('div', { class: 'banner' }, text) : '');
  window.podium.error = text;
}

// extractToken accepts a whole link or a bare token.
function extractToken(input) {
  const s = input.trim();
  if (!s) return '';
  const m = s.match(/[#?&]token=([^&#\s]+)/);
  if (m) return decodeURIComponent(m[1]);
  return s;
}

function inspect(token) {
  const claims = decodeToken(token);
  $('d-lesson').textContent = claims.room;
  $('d-role').textContent = ROLE_NAMES[claims.role] || claims.role;
  $('d-name').textContent = claims.name || '—';
  $('d-exp').textContent = claims.exp ? new Date(claims.exp * 1000).toLocaleString() : 'no expiry';
  $('details').classList.remove('hidden');
  if (!PAGES[claims.role]) throw new Error(`A "${claims.role}" link cannot join a lesson from this page.`);
  if (tokenExpired(claims)) throw new Error('This link has expired. Ask the lesson organiser for a new one.');
  return claims;
}

async function join(token) {
  showError('');
  let claims;
  try {
    claims = inspect(token);
  } catch (err) {
    showError(err.message);
    return;
  }
  const problem = browserProblem();
  if (problem) { showError(problem); return; }
  $('go').disabled = true;
  $('go').textContent = 'Checking…';
  const probe = await probeToken(token);
  $('go').disabled = false;
  $('go').textContent = 'Join';
  if (!probe.ok) { showError(friendlyAuthError(probe)); return; }
  sessionStorage.setItem('podium.token', token);
  location.assign(`${PAGES[claims.role]}#token=${encodeURIComponent(token)}`);
}

window.podium = { page: 'join', error: '' };
const initial = new URLSearchParams(location.hash.slice(1)).get('token') || new URLSearchParams(location.search).get('token') || '';
$('token').addEventListener('input', () => {
  const t = extractToken($('token').value);
  showError('');
  if (!t) { $('details').classList.add('hidden'); return; }
  try { inspect(t); } catch (err) { showError(err.message); }
});
$('form').addEventListener('submit', (e) => {
  e.preventDefault();
  join(extractToken($('token').value));
});
if (initial) {
  $('token').value = initial;
  join(initial);
}
