// Teacher console: preview and device choice, go live (simulcast camera +
// microphone), screen share tuned for legible text, the classroom grid with
// quality and raised hands, stage, mute, chat and ending the lesson.
import {
  Session, readToken, decodeToken, tokenExpired, browserProblem, mediaErrorText,
  RateMeter, qualityLevel, formatBitrate, attach, h,
} from './podium.js';

const $ = (id) => document.getElementById(id);
const ui = {
  state: $('state'), title: $('lesson-title'), me: $('me'), clock: $('clock'), end: $('end'),
  banner: $('banner'), preview: $('preview'), previewTag: $('preview-tag'), camera: $('camera'), microphone: $('microphone'),
  golive: $('golive'), mic: $('mic'), cam: $('cam'), share: $('share'), screen: $('screen'), screenBox: $('screen-box'),
  grid: $('grid'), empty: $('empty'), chatlog: $('chatlog'), chatform: $('chatform'), chattext: $('chattext'),
  overlay: $('overlay'), overlayTitle: $('overlay-title'), overlayText: $('overlay-text'),
  muteAll: $('muteall'), unmuteAll: $('unmuteall'),
};

let session = null;
let camStream = null; // camera + microphone
let screenTrack = null;
let onAir = false;
let micMuted = false;
let camOff = false;
let liveSince = 0;
const tiles = new Map(); // participant id -> tile elements
const handsUp = new Set(); // participant ids with a raised hand (said once in the chat)
const meter = new RateMeter();
const linkStats = new Map(); // participant id -> {bitrate, loss, rttMs}

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
    if (v) items.push({ track: v, source: 'camera', name: 'Teacher camera', simulcast: true });
    if (a) items.push({ track: a, source: 'microphone', name: 'Teacher microphone' });
  }
  if (screenTrack) items.push({ track: screenTrack, source: 'screen', name: 'Slides', maxBitrate: 2_500_000, maxFramerate: 5 });
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

// ---------- classroom grid ----------

function handIcon() {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', 'icon');
  svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', 'M7 11V5a1.5 1.5 0 0 1 3 0v5M10 10V3.5a1.5 1.5 0 0 1 3 0V10M13 10V4.5a1.5 1.5 0 0 1 3 0V11M16 11V7.5a1.5 1.5 0 0 1 3 0V14a7 7 0 0 1-7 7h-1a6 6 0 0 1-5-2.7L3.5 14a1.5 1.5 0 0 1 2.5-1.7L7 14');
  svg.append(path);
  return svg;
}

function isClassroom(p) { return p.role === 'classroom' || p.role === 'source'; }

function tileFor(p) {
  let t = tiles.get(p.id);
  if (t) return t;
  const video = h('video', { autoplay: true, playsinline: true, muted: true });
  video.muted = true;
  const audio = h('audio', { autoplay: true });
  const novideo = h('div', { class: 'novideo' }, 'Waiting for camera…');
  const hand = h('span', { class: 'hand hidden' }, handIcon(), 'Hand raised');
  const stageTag = h('span', { class: 'stage-tag hidden' }, 'ON STAGE');
  const mutedTag = h('span', { class: 'tag muted-tag hidden' }, 'Muted');
  const name = h('span', { class: 'name' });
  const bars = h('span', { class: 'bars', 'data-level': '' }, h('i'), h('i'), h('i'));
  const stats = h('div', { class: 'stats' }, 'measuring…');
  const stageBtn = h('button', { type: 'button', class: 'stage-btn' }, 'Put on stage');
  const muteBtn = h('button', { type: 'button', class: 'mute-btn' }, 'Mute');
  const videoBox = h('div', { class: 'video', title: 'Click to put this classroom on stage' }, video, novideo, hand, stageTag, mutedTag);
  const root = h('article', { class: 'tile', tabindex: '0', 'data-participant': p.id, 'aria-label': p.name },
    videoBox, h('div', { class: 'meta' }, name, h('span', { class: 'badge' }, bars)), stats,
    h('div', { class: 'actions' }, stageBtn, muteBtn), audio);
  const toggleStage = () => setStage(session.stage === p.id ? '' : p.id);
  videoBox.addEventListener('click', toggleStage);
  stageBtn.addEventListener('click', toggleStage);
  root.addEventListener('keydown', (e) => { if (e.target === root && (e.key === 'Enter' || e.key === ' ')) { e.preventDefault(); toggleStage(); } });
  muteBtn.addEventListener('click', () => muteClassroom(p.id));
  t = { root, video, audio, novideo, hand, stageTag, mutedTag, name, bars, stats, stageBtn, muteBtn };
  tiles.set(p.id, t);
  ui.grid.append(root);
  return t;
}

function renderGrid() {
  const present = new Set();
  for (const p of session.participants.values()) {
    if (!isClassroom(p)) continue;
    present.add(p.id);
    const t = tileFor(p);
    t.name.textContent = p.name || 'Classroom';
    t.root.setAttribute('aria-label', p.name + (p.handRaised ? ', hand raised' : ''));
    t.hand.classList.toggle('hidden', !p.handRaised);
    t.root.classList.toggle('hand-raised', !!p.handRaised);
    const onStage = session.stage === p.id;
    t.root.classList.toggle('onstage', onStage);
    t.stageTag.classList.toggle('hidden', !onStage);
    t.stageBtn.textContent = onStage ? 'Take off stage' : 'Put on stage';
    t.root.classList.toggle('speaking', session.speaking.includes(p.id));
    // The server's state of the classroom's microphone (who muted it too).
    const muted = !!p.micMuted;
    t.mutedTag.classList.toggle('hidden', !muted);
    t.mutedTag.textContent = 'Muted';
    t.mutedTag.title = p.micMutedBy === 'teacher' ? 'You muted this classroom' : 'The classroom muted itself';
    t.root.dataset.mic = muted ? 'muted-by-' + (p.micMutedBy || 'self') : 'on';
    t.muteBtn.textContent = muted ? 'Unmute' : 'Mute';
    t.muteBtn.disabled = p.role !== 'classroom';
  }
  for (const [id, t] of tiles) {
    if (!present.has(id)) { t.root.remove(); tiles.delete(id); }
  }
  ui.empty.classList.toggle('hidden', present.size > 0);
  $('grid-title').textContent = `Classrooms (${present.size})`;
}

function onRemoteTrack(info) {
  const p = session.participants.get(info.participantId);
  if (!p || !isClassroom(p)) return;
  const t = tileFor(p);
  if (info.track.kind === 'video') {
    attach(t.video, info.stream);
    t.novideo.classList.add('hidden');
  } else {
    attach(t.audio, info.stream);
  }
}

function onRemoteTrackEnded(info) {
  const t = tiles.get(info.participantId);
  if (!t) return;
  if (info.track.kind === 'video' && t.video.srcObject === info.stream) {
    t.video.srcObject = null;
    t.novideo.classList.remove('hidden');
  }
}

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

// Quality per classroom: the server's view (`quality`, every 2 s) of loss,
// RTT and estimated bitrate, plus the bitrate we actually receive.
async function refreshQuality() {
  if (!session || session.state !== 'live') return;
  const s = await session.stats().catch(() => null);
  if (!s) return;
  const recv = new Map();
  for (const i of s.inbound) {
    const r = meter.rate(i.trackId, i.bytesReceived * 8);
    recv.set(i.participantId, (recv.get(i.participantId) || 0) + r);
  }
  for (const [id, t] of tiles) {
    const q = session.quality[id] || {};
    const bitrate = recv.get(id) || 0;
    const loss = q.loss || 0;
    const rttMs = q.rtt ? q.rtt / 1e6 : 0;
    linkStats.set(id, { bitrate, loss, rttMs, estimatedBitrate: q.estimatedBitrate || 0 });
    t.bars.dataset.level = session.quality[id] ? qualityLevel({ loss, rttMs }) : '';
    t.bars.parentElement.title = `Link to this classroom: ${formatBitrate(q.estimatedBitrate)} estimated`;
    t.stats.textContent = `${formatBitrate(bitrate)} in · loss ${(loss * 100).toFixed(1)} % · RTT ${rttMs ? Math.round(rttMs) + ' ms' : '—'}`;
  }
  if (onAir) {
    const out = s.outbound.filter((o) => o.kind === 'video');
    const sent = out.reduce((a, o) => a + meter.rate('out' + o.id, o.bytesSent * 8), 0);
    ui.previewTag.textContent = `● LIVE · ${formatBitrate(sent)} out`;
  } else {
    ui.previewTag.textContent = 'Preview — not on air';
  }
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
  ui.overlayTitle.textContent = 'The lesson has ended';
  ui.overlayText.textContent = reason || '';
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
    links: () => Object.fromEntries(linkStats),
    goLive, shareScreen, stopScreen, setStage, muteClassroom, muteAll,
    endLesson: () => endLesson({ confirmed: true }),
    sendChat: (text) => session.request('chat', { text }),
  };
  const problem = browserProblem();
  if (problem) return fatal('This browser cannot run Podium', problem);
  const token = readToken();
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
  ui.title.textContent = claims.room;

  session = new Session({ token, autoSubscribe: true });
  session.addEventListener('state', (e) => {
    renderState();
    if (e.detail.state === 'ended') showEnded(e.detail.reason);
    if (e.detail.state === 'reconnecting') {
      if (endRequested) { session.finish('You ended the lesson.'); return; }
      system('Connection lost — reconnecting…');
    }
  });
  session.addEventListener('joined', (e) => {
    ui.title.textContent = (e.detail.lesson && e.detail.lesson.title) || claims.room;
    if (session.reconnects > 0) system('Reconnected.');
    // Our own mute survives a reconnect: tell the new session.
    if (micMuted && session.self && !session.self.micMuted) {
      session.request('mute', { participantId: session.self.id, muted: true }).catch(() => {});
    }
    renderGrid();
  });
  for (const ev of ['participants', 'tracks', 'stage', 'speaking']) session.addEventListener(ev, renderGrid);
  session.addEventListener('participants', (e) => {
    const { change, participant: p } = e.detail;
    if (!isClassroom(p)) return;
    if (change === 'participantJoined') system(`${p.name} joined.`);
    if (change === 'participantLeft') system(`${p.name} left.`);
    if (change === 'participantUpdated' && p.handRaised && !handsUp.has(p.id)) system(`${p.name} raised a hand.`);
    if (p.handRaised && change !== 'participantLeft') handsUp.add(p.id); else handsUp.delete(p.id);
  });
  session.addEventListener('remotetrack', (e) => onRemoteTrack(e.detail));
  session.addEventListener('remotetrackended', (e) => onRemoteTrackEnded(e.detail));
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
    refreshQuality();
    ui.clock.textContent = onAir && liveSince ? clockText(Date.now() - liveSince) : '';
  }, 1000);

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
