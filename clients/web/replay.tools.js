// Replay page tools: signing in with a replay link or token, and what the
// lesson's teacher (or an admin) may do on a recorded lesson — rename it
// and cut micro-lectures (clips) from it. The VOD API decides who may;
// these tools only avoid offering what the token cannot do.

const $ = (id) => document.getElementById(id);

// tokenFromInput takes what a person pastes: a whole replay link
// (…/replay#token=… or ?token=…), "Bearer …", or the token itself.
export function tokenFromInput(text) {
  let s = (text || '').trim();
  const m = s.match(/[#?&]token=([^&#\s]+)/);
  if (m) s = decodeURIComponent(m[1]);
  return s.replace(/^Bearer\s+/i, '').trim();
}

// claimsOf reads a token's claims without checking it (the server does);
// null when it is not a JWT.
export function claimsOf(token) {
  const parts = (token || '').split('.');
  if (parts.length !== 3) return null;
  try {
    const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0))));
  } catch {
    return null;
  }
}

// describeToken says in words what a token is, for the signed-in line.
export function describeToken(claims) {
  if (!claims) return 'Signed in';
  const name = claims.name || 'someone';
  switch (claims.role) {
    case 'student': return `${name} · student`;
    case 'teacher': return `${name} · teacher of ${claims.room}`;
    case 'admin': return `${name} · admin`;
    default: return `${name} · ${claims.room ? 'lesson ' + claims.room : claims.role}`;
  }
}

// canManage: the lesson's teacher, or an admin of it or of every lesson.
export function canManage(claims, lessonId) {
  if (!claims) return false;
  if (claims.role === 'teacher') return claims.room === lessonId;
  if (claims.role === 'admin') return claims.room === '*' || claims.room === lessonId;
  return false;
}

// send is a VOD API call with a JSON body; it returns the parsed answer or
// throws an Error carrying the server's message.
export async function send(token, method, path, body) {
  const resp = await fetch(path, {
    method,
    headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const answer = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const e = new Error(answer.error || `request failed (${resp.status})`);
    e.status = resp.status;
    throw e;
  }
  return answer;
}

export function fmtClock(s) {
  s = Math.max(0, s || 0);
  const m = Math.floor(s / 60);
  const sec = s - m * 60;
  return `${m}:${sec.toFixed(1).padStart(4, '0')}`;
}

// parseClock reads "m:ss(.s)" or plain seconds; NaN when unreadable.
export function parseClock(text) {
  const t = (text || '').trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t);
  const m = t.match(/^(\d+):(\d{1,2}(?:\.\d+)?)$/);
  return m ? Number(m[1]) * 60 + Number(m[2]) : NaN;
}

// ---------- title ----------

// mountTitleEditor offers "Edit title" to whoever may manage the lesson.
export function mountTitleEditor({ lesson, token, manage, onSaved }) {
  const edit = $('edit-title'), form = $('title-form'), input = $('title-input'), status = $('title-status');
  edit.hidden = !manage;
  form.hidden = true;
  status.textContent = '';
  if (!manage) return;
  edit.onclick = () => {
    input.value = lesson.title || '';
    form.hidden = false;
    edit.hidden = true;
    input.focus();
    input.select();
  };
  $('title-cancel').onclick = () => { form.hidden = true; edit.hidden = false; status.textContent = ''; };
  form.onsubmit = async (e) => {
    e.preventDefault();
    const title = input.value.trim();
    if (!title) { status.textContent = 'A lesson needs a title.'; return; }
    status.textContent = 'Saving…';
    try {
      const saved = await send(token, 'PATCH', '/api/vod/lessons/' + encodeURIComponent(lesson.id), { title });
      lesson.title = saved.title;
      form.hidden = true;
      edit.hidden = false;
      status.textContent = 'Saved.';
      onSaved(saved);
    } catch (err) {
      status.textContent = 'Not saved: ' + err.message;
    }
  };
}

// ---------- clips ----------

const MIN_CLIP_SECONDS = 1; // the VOD API's shortest clip

// mountClipTool lets the teacher select a range on the lesson's timeline
// (drag on it, or mark the player's current time), name it and publish it
// as a micro-lecture. onPublished(clipId) runs once the request is taken;
// the clip is cut in the background.
export function mountClipTool({ lesson, token, manage, video, onPublished }) {
  const box = $('cliptool');
  box.hidden = !manage || !(lesson.duration > 0) || lesson.status !== 'ready';
  if (box.hidden) return;
  const timeline = $('timeline'), sel = $('selection'), head = $('playhead');
  const start = $('clip-start'), end = $('clip-end'), title = $('clip-title'), status = $('clip-status');
  const publish = $('clip-publish');
  const dur = lesson.duration;
  const range = { start: 0, end: Math.min(dur, 30) };
  status.textContent = '';
  title.value = '';

  const render = () => {
    sel.style.left = `${(100 * range.start / dur).toFixed(3)}%`;
    sel.style.width = `${(100 * (range.end - range.start) / dur).toFixed(3)}%`;
    if (document.activeElement !== start) start.value = fmtClock(range.start);
    if (document.activeElement !== end) end.value = fmtClock(range.end);
    const len = range.end - range.start;
    $('clip-length').textContent = `${fmtClock(len)} selected`;
    publish.disabled = len < MIN_CLIP_SECONDS || !title.value.trim();
    timeline.setAttribute('aria-valuetext', `${fmtClock(range.start)} to ${fmtClock(range.end)}`);
  };
  const set = (a, b) => {
    const lo = Math.max(0, Math.min(a, b)), hi = Math.min(dur, Math.max(a, b));
    range.start = Math.round(lo * 10) / 10;
    range.end = Math.round(hi * 10) / 10;
    render();
  };
  window.replay = Object.assign(window.replay || {}, { clipRange: range });

  // Drag on the timeline selects; a plain click moves the player there.
  const at = (ev) => {
    const r = timeline.getBoundingClientRect();
    return Math.max(0, Math.min(1, (ev.clientX - r.left) / r.width)) * dur;
  };
  let anchor = null;
  timeline.onpointerdown = (ev) => {
    anchor = at(ev);
    timeline.setPointerCapture(ev.pointerId);
    ev.preventDefault();
  };
  timeline.onpointermove = (ev) => {
    if (anchor !== null) set(anchor, at(ev));
  };
  timeline.onpointerup = (ev) => {
    if (anchor === null) return;
    const t = at(ev);
    if (Math.abs(t - anchor) < dur / 200) video.currentTime = t;
    else set(anchor, t);
    anchor = null;
  };
  // Keyboard: arrows move the end, shift+arrows the start.
  timeline.onkeydown = (ev) => {
    const step = ev.key === 'ArrowRight' ? 1 : ev.key === 'ArrowLeft' ? -1 : 0;
    if (!step) return;
    ev.preventDefault();
    if (ev.shiftKey) set(range.start + step, range.end);
    else set(range.start, range.end + step);
  };
  $('mark-start').onclick = () => set(video.currentTime, Math.max(range.end, video.currentTime + MIN_CLIP_SECONDS));
  $('mark-end').onclick = () => set(Math.min(range.start, video.currentTime - MIN_CLIP_SECONDS), video.currentTime);
  $('clip-preview').onclick = () => { video.currentTime = range.start; video.play(); };
  const typed = () => {
    const a = parseClock(start.value), b = parseClock(end.value);
    if (Number.isFinite(a) && Number.isFinite(b)) set(a, b);
  };
  start.onchange = typed;
  end.onchange = typed;
  title.oninput = render;
  video.ontimeupdate = () => { head.style.left = `${(100 * video.currentTime / dur).toFixed(3)}%`; };

  $('clip-form').onsubmit = async (e) => {
    e.preventDefault();
    const name = title.value.trim();
    if (!name || range.end - range.start < MIN_CLIP_SECONDS) return;
    publish.disabled = true;
    status.textContent = 'Publishing…';
    try {
      const answer = await send(token, 'POST', '/api/vod/lessons/' + encodeURIComponent(lesson.id) + '/clips',
        { title: name, start: range.start, end: range.end });
      status.textContent = `“${name}” is being cut; it appears under Micro-lectures in a moment.`;
      title.value = '';
      onPublished(answer.clip.id);
    } catch (err) {
      status.textContent = 'Not published: ' + err.message;
    } finally {
      render();
    }
  };
  render();
}
