// Podium replay page: course list, search, and a lesson (or clip) player
// with HLS through the vendored hls.js (no CDN), rendition switching,
// chapter markers from the recording (on-stage changes, screen shares) and
// playback speed. It talks only to the VOD API (/api/vod/...), with the
// viewer's token as a bearer header; media URLs in the API's answers are
// already signed, so the player fetches them without the token.

import { tokenFromInput, claimsOf, describeToken, canManage, mountTitleEditor, mountClipTool } from './replay.tools.js';

const $ = (id) => document.getElementById(id);

function readToken() {
  const hash = new URLSearchParams(location.hash.replace(/^#/, ''));
  const query = new URLSearchParams(location.search);
  const t = hash.get('token') || query.get('token') || sessionStorage.getItem('podium.token') || '';
  if (t) sessionStorage.setItem('podium.token', t.trim());
  return t.trim();
}

let token = readToken();

async function api(path) {
  const resp = await fetch(path, { headers: { Authorization: 'Bearer ' + token } });
  if (resp.status === 401) {
    sessionStorage.removeItem('podium.token');
    showLogin();
    throw new Error('Your access token was refused; paste a new one.');
  }
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(body.error || `request failed (${resp.status})`);
  return body;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

function fmtTime(s) {
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, sec = s % 60;
  const mm = String(m).padStart(h ? 2 : 1, '0'), ss = String(sec).padStart(2, '0');
  return h ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

function showError(msg) {
  $('error').textContent = msg;
  $('error').hidden = !msg;
}

function showLogin() {
  for (const id of ['catalog', 'lesson', 'account']) $(id).hidden = true;
  $('login').hidden = false;
  $('token').focus();
}

function showAccount() {
  $('whoami').textContent = describeToken(claimsOf(token));
  $('account').hidden = false;
}

// signIn checks a pasted link or token with the server before using it,
// so a refused one is explained in the sign-in box itself.
async function signIn(text) {
  const t = tokenFromInput(text);
  const say = (msg) => { $('login-error').textContent = msg; $('login-error').hidden = !msg; };
  if (!t) return say('Paste a replay link or a student token first.');
  if (!claimsOf(t)) return say('This is not a replay link or token: a token is three parts separated by dots (eyJ….eyJ….…).');
  say('');
  $('login-submit').disabled = true;
  try {
    const resp = await fetch('/api/vod/courses', { headers: { Authorization: 'Bearer ' + t } });
    if (resp.status === 401 || resp.status === 403) {
      const body = await resp.json().catch(() => ({}));
      return say(/expire/i.test(body.error || '') ? 'This link has expired. Ask your school for a new one.'
        : `This token was refused (${body.error || resp.status}). Ask your school for a new replay link.`);
    }
  } catch (err) {
    return say('The server cannot be reached: ' + err.message);
  } finally {
    $('login-submit').disabled = false;
  }
  token = t;
  sessionStorage.setItem('podium.token', token);
  $('token').value = '';
  route();
}

function signOut() {
  sessionStorage.removeItem('podium.token');
  token = '';
  history.pushState(null, '', '/replay');
  route();
}

function lessonCard(l) {
  const ready = l.status === 'ready';
  const href = '/replay?lesson=' + encodeURIComponent(l.id);
  const img = l.poster ? el('img', { src: l.poster, alt: '', loading: 'lazy' }) : el('div', { class: 'noposter' });
  const body = el('div', { class: 'body' },
    el('div', { class: 'title' }, l.title),
    el('div', { class: 'meta' }, `${l.teacher || ''} · ${new Date(l.date).toLocaleDateString()} · ${fmtTime(l.duration)}`),
    ready ? '' : el('span', { class: 'badge' }, l.status));
  // Every lesson links: one still recorded or processing plays its
  // recording as recorded (raw HLS) until the replay is ready.
  return el('li', { class: 'card', 'data-lesson': l.id }, el('a', { href }, img, body));
}

async function showCatalog(q) {
  $('lesson').hidden = true;
  $('catalog').hidden = false;
  const box = $('courses');
  box.replaceChildren();
  if (q) {
    $('catalog-title').textContent = `Lessons matching “${q}”`;
    const { lessons } = await api('/api/vod/lessons?q=' + encodeURIComponent(q));
    box.append(lessons.length ? el('ul', { class: 'cards' }, ...lessons.map(lessonCard)) : el('p', {}, 'No lesson matches.'));
    return;
  }
  $('catalog-title').textContent = 'Courses';
  const { courses } = await api('/api/vod/courses');
  if (!courses.length) box.append(el('p', {}, 'No recorded lessons yet.'));
  for (const c of courses) {
    const { lessons } = await api('/api/vod/courses/' + encodeURIComponent(c.id) + '/lessons');
    box.append(el('section', { class: 'course', 'data-course': c.id },
      el('h2', {}, c.title), c.description ? el('p', { class: 'meta' }, c.description) : '',
      el('ul', { class: 'cards' }, ...lessons.map(lessonCard))));
  }
}

let hls = null;

function play(asset, chapters) {
  const video = $('video');
  if (hls) { hls.destroy(); hls = null; }
  const quality = $('quality');
  quality.replaceChildren(el('option', { value: '-1' }, 'Auto'));
  if (asset.poster) video.poster = asset.poster;
  $('download').href = asset.download || '#';
  $('download').hidden = !asset.download;
  if (window.Hls && Hls.isSupported()) {
    hls = new Hls({ capLevelToPlayerSize: true });
    hls.on(Hls.Events.MANIFEST_PARSED, (_, data) => {
      data.levels.forEach((lv, i) => {
        const name = lv.height ? `${lv.height}p` : 'Audio only';
        quality.append(el('option', { value: String(i) }, `${name} (${Math.round(lv.bitrate / 1000)} kbit/s)`));
      });
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, (_, data) => {
      const lv = hls.levels[data.level];
      $('level-info').textContent = lv ? `Playing ${lv.height ? lv.height + 'p' : 'audio only'}` : '';
    });
    hls.on(Hls.Events.ERROR, (_, data) => {
      if (data.fatal) showError(`Playback error: ${data.details}`);
    });
    hls.loadSource(asset.hls);
    hls.attachMedia(video);
  } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
    video.src = asset.hls; // Safari plays HLS natively
  } else {
    showError('This browser cannot play HLS video.');
  }
  quality.onchange = () => { if (hls) hls.currentLevel = Number(quality.value); };
  $('speed').onchange = () => { video.playbackRate = Number($('speed').value); };
  video.playbackRate = Number($('speed').value);

  const list = $('chapters'), bar = $('chapter-bar');
  list.replaceChildren();
  bar.replaceChildren();
  for (const ch of chapters || []) {
    list.append(el('li', {}, el('button', { onclick: () => { video.currentTime = ch.time; video.play(); } },
      `${fmtTime(ch.time)} — ${ch.title}`)));
    if (asset.duration > 0) {
      bar.append(el('span', { style: `left:${(100 * ch.time / asset.duration).toFixed(2)}%`, title: ch.title }));
    }
  }
  if (!list.children.length) list.append(el('li', { class: 'meta' }, 'No chapters in this recording.'));
  window.replay = { hls, video, playback: asset.playback || 'transcoded' }; // for tests and the curious
}

// While the recording itself plays (raw HLS), look for the transcoded
// replay now and then and switch to it, at the same moment, once ready.
let upgrade = null;
function awaitTranscoded(id, playback) {
  clearInterval(upgrade);
  if (!playback || playback === 'transcoded') return;
  upgrade = setInterval(async () => {
    if ($('lesson').hidden) { clearInterval(upgrade); return; } // the viewer left the lesson
    const l = await api('/api/vod/lessons/' + encodeURIComponent(id)).catch(() => null);
    if (l && l.status === 'failed') clearInterval(upgrade); // no transcoded replay will come
    if (!l || l.playback !== 'transcoded') return;
    clearInterval(upgrade);
    const video = $('video'), at = video.currentTime, paused = video.paused;
    play(l, l.chapters);
    video.addEventListener('loadedmetadata', () => { video.currentTime = at; if (!paused) video.play(); }, { once: true });
  }, 10000);
}

async function showLesson(id, clipId) {
  $('catalog').hidden = true;
  $('lesson').hidden = false;
  const l = await api('/api/vod/lessons/' + encodeURIComponent(id));
  const clip = clipId ? (l.clips || []).find((c) => c.id === clipId) : null;
  const title = clip ? `${clip.title} — ${l.title}` : l.title;
  document.title = `${title} — Podium replay`;
  $('lesson-title').textContent = title;
  $('lesson-meta').textContent = `${l.teacher || ''} · ${new Date(l.date).toLocaleString()} · ${fmtTime(clip ? clip.duration : l.duration)}`;
  const manage = canManage(claimsOf(token), l.id);
  $('cliptool').hidden = true;
  mountTitleEditor({
    lesson: l, token, manage: manage && !clip,
    onSaved: (saved) => { $('lesson-title').textContent = saved.title; document.title = `${saved.title} — Podium replay`; },
  });
  if (!l.hls) {
    const why = {
      processing: 'This lesson is still being prepared for replay.',
      interrupted: 'The recording of this lesson was interrupted; it goes on when the lesson resumes, or is prepared for replay within minutes.',
      empty: 'Nothing was recorded in this lesson.',
      failed: `No replay could be made of this lesson${l.error ? `: ${l.error}` : '.'}`,
    };
    showError(why[l.status] || 'This lesson is still being recorded.');
    return;
  }
  if (clip) {
    const chapters = (l.chapters || []).filter((c) => c.time >= clip.start && c.time < clip.end)
      .map((c) => ({ ...c, time: c.time - clip.start }));
    play(clip, chapters);
  } else {
    play(l, l.chapters);
    awaitTranscoded(id, l.playback);
    if (l.playback === 'raw' || l.playback === 'raw-audio') {
      $('lesson-meta').textContent += (l.status === 'recording' ? ' · live recording — ' : ' · as recorded — ') +
        (l.playback === 'raw-audio' ? 'sound only; the picture comes with the finished replay' : 'the finished replay replaces it when ready');
    }
  }
  renderClips(id, l.clips);
  if (!clip) {
    mountClipTool({ lesson: l, token, manage, video: $('video'), onPublished: (clipId) => awaitClip(id, clipId) });
  }
}

function renderClips(id, clips = []) {
  $('clips-title').hidden = !clips.length;
  $('clips').replaceChildren(...clips.map((c) => el('li', { class: 'card', 'data-clip': c.id },
    el('a', { href: `/replay?lesson=${encodeURIComponent(id)}&clip=${encodeURIComponent(c.id)}` },
      c.poster ? el('img', { src: c.poster, alt: '', loading: 'lazy' }) : el('div', { class: 'noposter' }),
      el('div', { class: 'body' }, el('div', { class: 'title' }, c.title || c.id),
        el('div', { class: 'meta' }, `${fmtTime(c.start)}–${fmtTime(c.end)}`))))));
}

// awaitClip looks for a clip being cut (every 2 s, up to 10 min) and adds
// it to the list once it is ready.
let clipWatch = null;
function awaitClip(id, clipId) {
  clearInterval(clipWatch);
  const until = Date.now() + 10 * 60 * 1000;
  clipWatch = setInterval(async () => {
    if (Date.now() > until) { clearInterval(clipWatch); return; }
    const l = await api('/api/vod/lessons/' + encodeURIComponent(id)).catch(() => null);
    if (!l || !(l.clips || []).some((c) => c.id === clipId)) return;
    clearInterval(clipWatch);
    renderClips(id, l.clips);
    $('clip-status').textContent = 'Published: it is listed under Micro-lectures.';
  }, 2000);
}

async function route() {
  showError('');
  if (!token) { showLogin(); return; }
  $('login').hidden = true;
  showAccount();
  const p = new URLSearchParams(location.search);
  try {
    if (p.get('lesson')) await showLesson(p.get('lesson'), p.get('clip'));
    else await showCatalog(p.get('q') || '');
  } catch (e) {
    showError(e.message);
  }
}

$('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  signIn($('token').value);
});
$('signout').addEventListener('click', signOut);
$('search').addEventListener('submit', (e) => {
  e.preventDefault();
  const q = $('q').value.trim();
  history.pushState(null, '', q ? '/replay?q=' + encodeURIComponent(q) : '/replay');
  route();
});
window.addEventListener('popstate', route);
$('q').value = new URLSearchParams(location.search).get('q') || '';
route();
