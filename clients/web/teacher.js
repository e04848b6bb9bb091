// Teacher console: preview, microphone level and device choice, go live
// (simulcast camera + microphone), screen share tuned for legible text, the
// classroom roster (one row per classroom, graded by what it receives, for
// 1 to 200 classrooms) with tiles for the few on stage or with a raised
// hand, stage, mute, chat, recording state, the lesson's title, and ending
// the lesson with a link to its replay.
import {
  Session, readToken, decodeToken, tokenExpired, browserProblem, mediaErrorText,
  RateMeter, formatBitrate, attach, h,
} from './podium.js';
import { Roster } from './teacher-roster.js';

const $ = (id) => document.getElementById(id);
const ui = {
  state: $('state'), title: $('lesson-title'), me: $('me'), clock: $('clock'), end: $('end'),
  banner: $('banner'), preview: $('preview'), previewTag: $('preview-tag'), camera: $('camera'), microphone: $('microphone'),
  golive: $('golive'), mic: $('mic'), cam: $('cam'), share: $('share'), screen: $('screen'), screenBox: $('screen-box'),
  grid: $('grid'), empty: $('empty'), chatlog: $('chatlog'), chatform: $('chatform'), chattext: $('chattext'),
  overlay: $('overlay'), overlayTitle: $('overlay-title'), overlayText: $('overlay-text'),
  muteAll: $('muteall'), unmuteAll: $('unmuteall'),
  chatSwitch: $('chat-switch'), titleEdit: $('title-edit'), titleBox: $('titlebox'), titleForm: $('titleform'), titleInput: $('title-input'), titleCancel: $('title-cancel'),
  rec: $('rec'), micMeter: $('micmeter'), micMeterFill: $('micmeter-fill'), replayLink: $('replay-link'),
};

let session = null;
let camStream = null; // camera + microphone
let screenTrack = null;
let onAir = false;
let micMuted = false;
let camOff = false;
let liveSince = 0;
const meter = new RateMeter();
let roster = null;
let token = '';
let room = '';

function showBanner(text, kind = '') {
  ui.banner.replaceChildren(text ? h('div', { class: 'banner ' + kind, role: 'alert' }, text) : '');
}

function pageState() {
  if (!session) return 'connecting';
  if (session.state === 'live') return onAir ? 'live' : 'ready';
  return session.state;
}

function renderState() {
  const s = pageState();
  ui.state.dataset.state = s;
  const reason = session && session.state === 'reconnecting' ? ' — retrying…' : '';
  ui.state.textContent = {
    connecting: 'Connecting…', ready: 'Ready · not on air', live: 'LIVE', reconnecting: 'Reconnecting' + reason, ended: 'Ended', idle: 'Connecting…',
  }[s] || s;
  const joined = session && session.state === 'live';
  ui.golive.disabled = !joined || onAir || !camStream;
  ui.golive.textContent = onAir ? 'On air' : 'Go live';
  ui.share.disabled = !joined;
  ui.end.disabled = !joined;
  ui.muteAll.disabled = ui.unmuteAll.disabled = !joined;
  ui.mic.disabled = ui.cam.disabled = !camStream;
  document.title = (s === 'live' ? '● LIVE · ' : '') + 'Podium · Teacher console';
}

// ---------- devices and preview ----------

async function listDevices() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const fill = (select, kind, current) => {
    const opts = devices.filter((d) => d.kind === kind);
    select.replaceChildren(...opts.map((d, i) => h('option', { value: d.deviceId }, d.label || `${kind === 'videoinput' ? 'Camera' : 'Microphone'} ${i + 1}`)));
    if (current) select.value = current;
  };
  const v = camStream && camStream.getVideoTracks()[0];
  const a = camStream && camStream.getAudioTracks()[0];
  fill(ui.camera, 'videoinput', v && v.getSettings().deviceId);
  fill(ui.microphone, 'audioinput', a && a.getSettings().deviceId);
}

async function openCamera() {
  const cameraId = ui.camera.value;
  const micId = ui.microphone.value;
  const constraints = {
    video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 }, ...(cameraId ? { deviceId: { exact: cameraId } } : {}) },
    audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, ...(micId ? { deviceId: { exact: micId } } : {}) },
  };
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia(constraints);
  } catch (err) {
    showBanner(mediaErrorText(err));
    renderState();
    return;
  }
  showBanner('');
  const old = camStream;
  camStream = stream;
  const v = stream.getVideoTracks()[0];
  if (v) v.contentHint = 'motion';
  stream.getAudioTracks().forEach((t) => { t.enabled = !micMuted; });
  stream.getVideoTracks().forEach((t) => { t.enabled = !camOff; });
  attach(ui.preview, stream);
  meterTrack(stream.getAudioTracks()[0] || null);
  if (old) old.getTracks().forEach((t) => t.stop());
  await listDevices();
  if (onAir) await publishAll();
  renderState();
}

function publishItems() {
  const items = [];
  if (camStream) {
    const v = camStream.getVideoTracks()[0];
    const a = camStream.getAudioTracks()[0];
    if (v) items.push({ track: v, source: 'camera', name: 'Teacher camera', simulcast: true, preferH264: true });
    if (a) items.push({ track: a, source: 'microphone', name: 'Teacher microphone' });
  }
  if (screenTrack) items.push({ track: screenTrack, source: 'screen', name: 'Slides', maxBitrate: 2_500_000, maxFramerate: 5, preferH264: true });
  return items;
}

async function publishAll() {
  try {
    await session.publish(publishItems());
    tuneScreenSender();
  } catch (err) {
    showBanner('Could not start the broadcast: ' + err.message + '. Retrying when the connection recovers.');
  }
}

// Text must stay sharp: keep resolution and let the frame rate drop.
function tuneScreenSender() {
  const pc = session && session.pub;
  if (!pc || !screenTrack) return;
  const sender = pc.getSenders().find((s) => s.track === screenTrack);
  if (!sender) return;
  const p = sender.getParameters();
  p.degradationPreference = 'maintain-resolution';
  if (p.encodings && p.encodings[0]) {
    p.encodings[0].maxBitrate = 2_500_000;
    p.encodings[0].maxFramerate = 5;
  }
  sender.setParameters(p).catch(() => { /* not every browser takes every field */ });
}

async function goLive() {
  if (!camStream) await openCamera();
  if (!camStream) return;
  onAir = true;
  liveSince = Date.now();
  renderState();
  await publishAll();
  system('You are live. Every classroom now sees and hears you.');
}

// canvasScreen is a stand-in "screen" (a slide drawn on a canvas) for
// browsers that cannot capture the screen (headless test browsers). It is
// used only when the caller asks for it.
function canvasScreen() {
  const c = document.createElement('canvas');
  c.width = 1920; c.height = 1080;
  const g = c.getContext('2d');
  let n = 0;
  const draw = () => {
    g.fillStyle = '#fdfdf8'; g.fillRect(0, 0, c.width, c.height);
    g.fillStyle = '#16324f'; g.font = 'bold 96px sans-serif'; g.fillText('Fractions: adding halves and quarters', 120, 220);
    g.font = '64px sans-serif'; g.fillStyle = '#333';
    g.fillText('1/2 + 1/4 = 2/4 + 1/4 = 3/4', 160, 420);
    g.fillText('Slide ' + (1 + (Math.floor(n / 10) % 5)) + ' of 5', 160, 560);
    g.fillStyle = '#e5484d'; g.beginPath(); g.arc(1500, 760, 160 + 20 * Math.sin(n / 5), 0, Math.PI * 2); g.fill();
    n++;
  };
  draw();
  const timer = setInterval(draw, 200);
  const track = c.captureStream(5).getVideoTracks()[0];
  track.addEventListener('ended', () => clearInterval(timer));
  track._stopDrawing = () => clearInterval(timer);
  return track;
}

async function shareScreen({ canvasFallback = false, canvasOnly = false } = {}) {
  if (screenTrack) return stopScreen();
  let track = null;
  try {
    if (canvasOnly) throw new Error('canvas slide requested');
    if (!navigator.mediaDevices.getDisplayMedia) throw new Error('screen sharing is not supported in this browser');
    const s = await navigator.mediaDevices.getDisplayMedia({
      video: { width: { ideal: 1920 }, height: { ideal: 1080 }, frameRate: { ideal: 5, max: 15 } },
      audio: false,
    });
    track = s.getVideoTracks()[0];
    window.podium.screenSource = 'getDisplayMedia';
  } catch (err) {
    if (!canvasFallback && !canvasOnly) {
      if (err.name !== 'NotAllowedError') showBanner('Could not share the screen: ' + err.message);
      return;
    }
    track = canvasScreen();
    window.podium.screenSource = 'canvas';
  }
  track.contentHint = 'detail';
  track.addEventListener('ended', () => { if (screenTrack === track) stopScreen(); });
  screenTrack = track;
  attach(ui.screen, new MediaStream([track]));
  ui.screenBox.classList.remove('hidden');
  ui.share.textContent = 'Stop sharing';
  ui.share.classList.add('on');
  if (onAir) await publishAll();
  else await goLive();
}

async function stopScreen() {
  const t = screenTrack;
  screenTrack = null;
  if (t) { if (t._stopDrawing) t._stopDrawing(); t.stop(); }
  ui.screenBox.classList.add('hidden');
  ui.share.textContent = 'Share screen';
  ui.share.classList.remove('on');
  if (onAir) await publishAll();
}

function toggleMic() {
  if (!camStream) return;
  micMuted = !micMuted;
  const a = camStream.getAudioTracks()[0];
  if (a) a.enabled = !micMuted;
  if (session.state === 'live' && session.self) {
    session.request('mute', { participantId: session.self.id, muted: micMuted }).catch((err) => showBanner('Microphone: ' + err.message));
  }
  ui.mic.textContent = micMuted ? 'Mic off' : 'Mic on';
  ui.mic.classList.toggle('danger', micMuted);
}

function toggleCam() {
  if (!camStream) return;
  camOff = !camOff;
  const v = camStream.getVideoTracks()[0];
  if (v) {
    v.enabled = !camOff;
    if (onAir && session.state === 'live') session.request('mute', { trackId: v.id, muted: camOff }).catch(() => {});
  }
  ui.cam.textContent = camOff ? 'Camera off' : 'Camera on';
  ui.cam.classList.toggle('danger', camOff);
}

// ---------- classrooms ----------

async function setStage(participantId) {
  try {
    await session.request('stage', { participantId });
  } catch (err) {
    showBanner('Could not change the stage: ' + err.message);
  }
}

// muteClassroom toggles (or sets) a classroom's microphone; the server
// keeps the state and tells every page.
async function muteClassroom(participantId, muted) {
  const p = session.participants.get(participantId);
  if (!p) return;
  if (muted === undefined) muted = !p.micMuted;
  try {
    await session.request('mute', { participantId, muted });
  } catch (err) {
    showBanner('Could not mute: ' + err.message);
  }
}

async function muteAll(muted) {
  try {
    await session.request('muteAll', { muted });
  } catch (err) {
    showBanner(`Could not ${muted ? 'mute' : 'unmute'} every classroom: ` + err.message);
  }
}

// The preview's tag says what classrooms get: LIVE with what we send only
// while our link is up; "reconnecting" otherwise (the last bitrate would
// be a lie).
async function refreshPreview() {
  const tag = ui.previewTag;
  const live = session && session.state === 'live';
  if (!onAir) {
    tag.dataset.state = 'preview';
    tag.textContent = 'Preview — not on air';
    return;
  }
  if (!live) {
    tag.dataset.state = 'reconnecting';
    tag.textContent = 'Reconnecting… classrooms do not see you';
    return;
  }
  const s = await session.stats().catch(() => null);
  if (!s || session.state !== 'live') return;
  const out = s.outbound.filter((o) => o.kind === 'video');
  const sent = out.reduce((a, o) => a + meter.rate('out' + o.id, o.bytesSent * 8), 0);
  tag.dataset.state = 'live';
  tag.textContent = `● LIVE · ${formatBitrate(sent)} out`;
}

// ---------- own microphone level ----------

// The level of our own microphone, measured by a WebAudio AnalyserNode on
// the captured track (before the mute: a teacher sees that the microphone
// works even while muted, and the meter says muted).
const micMeter = { ctx: null, source: null, analyser: null, buf: null, level: 0, track: null };

function meterTrack(track) {
  if (micMeter.track === track) return;
  if (micMeter.source) micMeter.source.disconnect();
  micMeter.source = null;
  micMeter.track = track;
  if (!track) return;
  try {
    if (!micMeter.ctx) {
      micMeter.ctx = new AudioContext();
      micMeter.analyser = micMeter.ctx.createAnalyser();
      micMeter.analyser.fftSize = 1024;
      micMeter.buf = new Float32Array(micMeter.analyser.fftSize);
    }
    micMeter.source = micMeter.ctx.createMediaStreamSource(new MediaStream([track]));
    micMeter.source.connect(micMeter.analyser);
    if (micMeter.ctx.state === 'suspended') micMeter.ctx.resume().catch(() => {});
  } catch (err) {
    ui.micMeter.title = 'No level meter in this browser: ' + err.message;
  }
}

function readMicLevel() {
  let level = 0;
  if (micMeter.source && micMeter.analyser) {
    micMeter.analyser.getFloatTimeDomainData(micMeter.buf);
    let sum = 0;
    for (const v of micMeter.buf) sum += v * v;
    const rms = Math.sqrt(sum / micMeter.buf.length);
    const db = 20 * Math.log10(rms || 1e-9);
    level = Math.max(0, Math.min(1, (db + 60) / 60)); // -60 dBFS .. 0 dBFS
  }
  micMeter.level = level;
  const pct = Math.round(level * 100);
  ui.micMeterFill.style.width = pct + '%';
  ui.micMeter.setAttribute('aria-valuenow', String(pct));
  ui.micMeter.dataset.level = String(pct);
  ui.micMeter.dataset.muted = String(micMuted);
}

// ---------- lesson title and recording ----------

function renderLesson() {
  const l = session && session.lesson;
  const known = !!l && typeof l.recording === 'boolean';
  const rec = known && l.recording;
  ui.rec.classList.toggle('hidden', !rec);
  ui.rec.dataset.stale = String(!session || session.state !== 'live');
  ui.rec.textContent = ui.rec.dataset.stale === 'true' ? 'REC?' : 'REC';
  ui.rec.title = ui.rec.dataset.stale === 'true' ? 'Recording when the connection was lost; not known now' : 'This lesson is being recorded for replay';
  if (l && l.title && !ui.titleForm.classList.contains('editing')) ui.title.textContent = l.title;
  // The classroom chat switch shows the server's state, stale greyed.
  const chatOn = !l || l.chatEnabled !== false;
  ui.chatSwitch.textContent = 'Classroom chat: ' + (chatOn ? 'on' : 'off');
  ui.chatSwitch.setAttribute('aria-pressed', String(chatOn));
  ui.chatSwitch.dataset.stale = ui.rec.dataset.stale;
  ui.chatSwitch.disabled = !session || session.state !== 'live';
}

async function toggleChat() {
  const l = session && session.lesson;
  if (!l || session.state !== 'live') return;
  const enabled = l.chatEnabled === false;
  try {
    await session.request('setChat', { enabled });
  } catch (err) {
    showBanner('The chat switch failed: ' + err.message);
  }
}

function editTitle() {
  ui.titleInput.value = ui.title.textContent;
  ui.titleBox.classList.add('hidden');
  ui.titleForm.classList.remove('hidden');
  ui.titleForm.classList.add('editing');
  ui.titleInput.focus();
  ui.titleInput.select();
}

function closeTitle() {
  ui.titleForm.classList.add('hidden');
  ui.titleForm.classList.remove('editing');
  ui.titleBox.classList.remove('hidden');
}

// saveTitle renames the lesson in the replay catalog (PATCH
// /api/vod/lessons/{id}, the teacher's own token): the name its replay is
// listed under.
async function saveTitle(title) {
  title = title.trim();
  if (!title) { closeTitle(); return; }
  let res;
  try {
    res = await fetch('/api/vod/lessons/' + encodeURIComponent(room), {
      method: 'PATCH',
      headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' },
      body: JSON.stringify({ title }),
    });
  } catch (err) {
    showBanner('Could not rename the lesson: ' + err.message);
    return;
  }
  if (res.ok) {
    const body = await res.json().catch(() => ({}));
    ui.title.textContent = body.title || title;
    ui.title.dataset.saved = 'true';
    closeTitle();
    showBanner('');
    return;
  }
  const body = await res.json().catch(() => ({}));
  if (res.status === 404) showBanner('The lesson can be renamed once its recording has started (a few seconds after you go live).');
  else showBanner('Could not rename the lesson: ' + (body.error || res.status));
}

// ---------- chat ----------

function addChat(from, text, time, self = false) {
  const when = time ? new Date(time) : new Date();
  const el = h('div', { class: 'msg' + (self ? ' self' : '') },
    h('div', { class: 'who' }, `${from} · ${when.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}`), h('div', {}, text));
  ui.chatlog.append(el);
  ui.chatlog.scrollTop = ui.chatlog.scrollHeight;
}

function system(text) {
  ui.chatlog.append(h('div', { class: 'msg system' }, text));
  ui.chatlog.scrollTop = ui.chatlog.scrollHeight;
}

// ---------- ending ----------

let endArmed = null;
let endRequested = false; // a dropped socket after this must not rejoin (it would start a new lesson)
async function endLesson({ confirmed = false } = {}) {
  if (!confirmed && !endArmed) {
    ui.end.textContent = 'Click again to end for everyone';
    endArmed = setTimeout(() => { endArmed = null; ui.end.textContent = 'End lesson'; }, 4000);
    return;
  }
  clearTimeout(endArmed);
  endArmed = null;
  endRequested = true;
  try {
    await session.request('endLesson', {});
    // Accepted: the lesson is over even if its lessonEnded never arrives
    // (the socket may close first); a reconnect would start a new lesson.
    session.finish('You ended the lesson. Every classroom has been told.');
  } catch (err) {
    if (session.state !== 'ended') showBanner('Could not end the lesson: ' + err.message);
  }
}

function showEnded(reason) {
  if (camStream) camStream.getTracks().forEach((t) => t.stop());
  if (screenTrack) { if (screenTrack._stopDrawing) screenTrack._stopDrawing(); screenTrack.stop(); }
  onAir = false;
  meterTrack(null);
  ui.overlayTitle.textContent = 'The lesson has ended';
  ui.overlayText.textContent = reason || '';
  // The replay page takes this same teacher link; the recording is
  // playable as soon as the lesson ends.
  const recorded = !session.lesson || session.lesson.recording !== false;
  ui.replayLink.href = '/replay?lesson=' + encodeURIComponent(room) + '#token=' + encodeURIComponent(token);
  ui.replayLink.classList.toggle('hidden', !recorded);
  ui.overlay.classList.remove('hidden');
}

// ---------- start ----------

function fatal(title, text) {
  ui.overlayTitle.textContent = title;
  ui.overlayText.textContent = text;
  ui.overlay.classList.remove('hidden');
  ui.state.dataset.state = 'ended';
  ui.state.textContent = 'Not connected';
}

async function main() {
  window.podium = {
    page: 'teacher',
    get state() { return pageState(); },
    get session() { return session; },
    get onAir() { return onAir; },
    screenSource: '',
    stats: () => (session ? session.stats() : Promise.resolve(null)),
    roster: () => (roster ? roster.snapshot() : []),
    micLevel: () => ({ level: micMeter.level, analyser: !!micMeter.source, context: micMeter.ctx ? micMeter.ctx.state : '' }),
    goLive, shareScreen, stopScreen, setStage, muteClassroom, muteAll, saveTitle,
    endLesson: () => endLesson({ confirmed: true }),
    sendChat: (text) => session.request('chat', { text }),
  };
  const problem = browserProblem();
  if (problem) return fatal('This browser cannot run Podium', problem);
  token = readToken();
  let claims;
  try {
    claims = decodeToken(token);
  } catch (err) {
    return fatal('No valid lesson link', err.message + ' Open Podium from the link you were given.');
  }
  if (claims.role !== 'teacher') {
    location.replace('/classroom#token=' + encodeURIComponent(token));
    return;
  }
  if (tokenExpired(claims)) return fatal('This link has expired', 'Ask the lesson organiser for a new teacher link.');
  ui.me.textContent = claims.name || 'Teacher';
  room = claims.room;
  ui.title.textContent = room;

  session = new Session({ token, autoSubscribe: true });
  roster = new Roster(session, {
    rows: $('rows'), grid: ui.grid, audios: $('audios'), empty: ui.empty, title: $('grid-title'),
    summary: $('summary'), filter: $('filter'), show: $('show'),
  }, { stage: setStage, mute: muteClassroom }, system);
  session.addEventListener('state', (e) => {
    renderState();
    renderLesson();
    roster.render();
    refreshPreview();
    if (e.detail.state === 'ended') showEnded(e.detail.reason);
    if (e.detail.state === 'reconnecting') {
      if (endRequested) { session.finish('You ended the lesson.'); return; }
      system('Connection lost — reconnecting…');
    }
  });
  session.addEventListener('joined', (e) => {
    session.dashboard = null; // from before the reconnect: not current
    if (ui.title.dataset.saved !== 'true') ui.title.textContent = (e.detail.lesson && e.detail.lesson.title) || room;
    if (session.reconnects > 0) system('Reconnected.');
    // Our own mute survives a reconnect: tell the new session.
    if (micMuted && session.self && !session.self.micMuted) {
      session.request('mute', { participantId: session.self.id, muted: true }).catch(() => {});
    }
    renderLesson();
    roster.joined();
  });
  session.addEventListener('lesson', renderLesson);
  for (const ev of ['stage', 'speaking', 'dashboard']) session.addEventListener(ev, () => roster.render());
  session.addEventListener('participants', (e) => {
    const { change, participant: p, reason } = e.detail;
    roster.participantEvent(change, p, reason);
  });
  session.addEventListener('remotetrack', (e) => roster.remoteTrack(e.detail));
  session.addEventListener('remotetrackended', (e) => roster.remoteTrackEnded(e.detail));
  session.addEventListener('chat', (e) => {
    const d = e.detail;
    addChat(d.fromName || 'someone', d.text, d.time, session.self && d.from === session.self.id);
  });
  session.addEventListener('error', (e) => showBanner(`Server: ${e.detail.message || e.detail.code}`));

  ui.golive.addEventListener('click', goLive);
  ui.share.addEventListener('click', () => shareScreen());
  ui.mic.addEventListener('click', toggleMic);
  ui.cam.addEventListener('click', toggleCam);
  ui.muteAll.addEventListener('click', () => muteAll(true));
  ui.unmuteAll.addEventListener('click', () => muteAll(false));
  ui.end.addEventListener('click', () => endLesson());
  ui.chatSwitch.addEventListener('click', toggleChat);
  ui.titleEdit.addEventListener('click', editTitle);
  ui.titleCancel.addEventListener('click', closeTitle);
  ui.titleForm.addEventListener('submit', (e) => { e.preventDefault(); saveTitle(ui.titleInput.value); });
  ui.titleInput.addEventListener('keydown', (e) => { if (e.key === 'Escape') closeTitle(); });
  $('filter').addEventListener('input', () => roster.render());
  $('show').addEventListener('change', () => roster.render());
  ui.camera.addEventListener('change', openCamera);
  ui.microphone.addEventListener('change', openCamera);
  navigator.mediaDevices.addEventListener?.('devicechange', () => listDevices().catch(() => {}));
  ui.chatform.addEventListener('submit', async (e) => {
    e.preventDefault();
    const text = ui.chattext.value.trim();
    if (!text || !session || session.state !== 'live') return;
    ui.chattext.value = '';
    try { await session.request('chat', { text }); } catch (err) { showBanner('Chat not sent: ' + err.message); }
  });
  document.addEventListener('keydown', (e) => {
    if (e.target.closest('input, textarea, select')) return;
    if (e.key === 'm' || e.key === 'M') toggleMic();
  });
  setInterval(() => {
    refreshPreview();
    roster.render(); // rows age: a dashboard that stops coming greys them
    ui.clock.textContent = onAir && liveSince ? clockText(Date.now() - liveSince) : '';
  }, 1000);
  setInterval(readMicLevel, 100);

  renderState();
  session.start();
  await openCamera();
}

function clockText(ms) {
  const s = Math.floor(ms / 1000);
  const mm = String(Math.floor(s / 60) % 60).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return (s >= 3600 ? Math.floor(s / 3600) + ':' : '') + mm + ':' + ss;
}

main();
