// Classroom big screen: the teacher (screen share large, camera as
// picture-in-picture, words when the camera is off), the classroom on
// stage, our own camera + microphone sent back, raise hand, chat, the
// lesson's state (waiting, live, recording, the teacher's microphone), a
// network badge, and reconnection that needs nobody at the board. All of
// the lesson's state is the server's (docs/PROTOCOL.md): the page shows it.
// Keyboard: H hand, M microphone, F full screen, C chat.
import {
  Session, readToken, decodeToken, tokenExpired, browserProblem, mediaErrorText,
  RateMeter, qualityLevel, formatBitrate, attach, h,
} from './podium.js';

const $ = (id) => document.getElementById(id);
const ui = {
  board: $('board'), main: $('main-video'), waiting: $('waiting'), waitingText: $('waiting-text'), waitingTitle: $('waiting-title'),
  cameraOff: $('camera-off'), cameraOffText: $('camera-off-text'), pipOff: $('pip-off'),
  rec: $('rec'), teacherMicOff: $('teacher-mic-off'), ask: $('ask'),
  chatform: $('chatform'), chattext: $('chattext'), chatsend: $('chatsend'), chatOff: $('chat-off'),
  pip: $('pip'), pipVideo: $('pip-video'), stage: $('stage'), stageVideo: $('stage-video'), stageLabel: $('stage-label'),
  self: $('self'), selfVideo: $('self-video'), selfLabel: $('self-label'), title: $('lesson-title'), state: $('state'),
  netbars: $('netbars'), nettext: $('nettext'), chat: $('chat'), toast: $('toast'),
  hand: $('hand'), mic: $('mic'), sound: $('sound'), fullscreen: $('fullscreen'),
  teacherAudio: $('teacher-audio'), stageAudio: $('stage-audio'),
  overlay: $('overlay'), overlayTitle: $('overlay-title'), overlayText: $('overlay-text'),
  micBanner: $('mic-banner'),
  stillsBanner: $('stills-banner'),
};

let session = null;
let local = null; // our camera + microphone
let canPublish = true;
let handRaised = false;
// micMuted is what this room wants for its own microphone (kept across
// reconnects); the server's state (participant micMuted, micMutedBy) is the
// truth shown and applied: a teacher's mute wins and cannot be lifted here.
let micMuted = false;
let mutedByTeacher = false;
const meter = new RateMeter();
let network = { level: '', bitrate: 0, loss: 0, rttMs: 0 };

function toast(text, ms = 5000) {
  ui.toast.textContent = text;
  ui.toast.classList.remove('hidden');
  clearTimeout(toast.timer);
  if (ms) toast.timer = setTimeout(() => ui.toast.classList.add('hidden'), ms);
}

// teacherOnAir: the teacher sends something (a published track). Only
// then is the lesson LIVE on the big screen; joined before that, it waits.
function teacherOnAir() {
  if (!session || session.state !== 'live') return false;
  const teachers = teacherIds();
  for (const t of session.tracks.values()) if (teachers.has(t.participantId)) return true;
  return false;
}

function renderState() {
  const s = session ? session.state : 'connecting';
  const onAir = teacherOnAir();
  ui.state.dataset.state = s === 'live' && !onAir ? 'ready' : s;
  ui.state.dataset.onAir = String(onAir);
  ui.state.textContent = s === 'live' && !onAir
    ? (teacherIds().size > 0 ? 'Joined · the teacher is not on air yet' : 'Joined · waiting for the teacher')
    : { connecting: 'Connecting…', waiting: 'Waiting for the teacher', live: 'LIVE', reconnecting: 'Reconnecting…', ended: 'Ended', idle: 'Connecting…' }[s] || s;
  if (s === 'waiting') {
    setWaiting('Waiting for the teacher', 'The lesson has not started yet. This screen joins by itself when it does.');
  }
  if (s === 'live') ui.overlay.classList.add('hidden');
  if (s === 'reconnecting') {
    const secs = Math.max(0, Math.round((session.nextRetryAt - Date.now()) / 1000));
    setWaiting('Reconnecting…', `The connection was lost. Reconnecting automatically${secs ? ` in ${secs} s` : '…'}`);
  }
  renderLessonState();
}

function setWaiting(title, text) {
  ui.waitingTitle.textContent = title;
  ui.waitingText.textContent = text;
  ui.waiting.classList.remove('hidden');
}

// renderLessonState shows the lesson's server state: recording, the
// teacher's microphone, and whether the chat is open.
function renderLessonState() {
  const live = !!session && session.state === 'live';
  const lesson = (live && session.lesson) || {};
  ui.rec.classList.toggle('hidden', !(live && lesson.recording));
  const teacher = live ? teacherParticipant() : null;
  ui.teacherMicOff.classList.toggle('hidden', !(teacher && teacherOnAir() && teacherMicOff(teacher)));
  const chatOn = !live || lesson.chatEnabled !== false;
  ui.chatOff.classList.toggle('hidden', chatOn);
  ui.chattext.disabled = !live || !chatOn;
  ui.chatsend.disabled = !live || !chatOn;
  ui.chattext.placeholder = chatOn ? 'Write to the teacher…' : 'The chat is off';
}

function teacherParticipant() {
  for (const p of session.participants.values()) if (p.role === 'teacher') return p;
  return null;
}

// teacherMicOff: muted on the server, or on air with no microphone.
function teacherMicOff(teacher) {
  if (teacher.micMuted) return true;
  return !findTrack(new Set([teacher.id]), (t) => t.kind === 'audio' && t.source === 'microphone' && !t.muted);
}

// ---------- who is shown where ----------

function teacherIds() {
  return new Set([...session.participants.values()].filter((p) => p.role === 'teacher').map((p) => p.id));
}

function findTrack(participants, pred) {
  for (const t of session.tracks.values()) if (participants.has(t.participantId) && pred(t)) return t;
  return null;
}

function remoteFor(track) {
  return track ? session.remote.get(track.id) : null;
}

function show(el, stream) {
  if (stream) attach(el, stream);
  else if (el.srcObject) el.srcObject = null;
}

// NO_CAMERA_GRACE_MS: a teacher on air publishes its tracks one by one;
// one on air this long without any camera has none (a laptop without a
// webcam, a WHIP encoder sending slides) and the board says so.
const NO_CAMERA_GRACE_MS = 4000;
let onAirSince = 0;

// teacherCameraOff: the server says the teacher's camera is off (turned
// off or stopped), its camera track is muted, or the teacher has been on
// air for a while without any camera.
function teacherCameraOff(teachers) {
  for (const id of teachers) {
    const p = session.participants.get(id);
    if (p && p.cameraOff) return true;
  }
  const cam = findTrack(teachers, (t) => t.kind === 'video' && t.source === 'camera');
  if (cam) return !!cam.muted;
  return onAirSince > 0 && Date.now() - onAirSince >= NO_CAMERA_GRACE_MS;
}

function renderLayout() {
  renderLessonState();
  if (!session || session.state !== 'live') return;
  const teachers = teacherIds();
  const onAir = teacherOnAir();
  if (!onAir) onAirSince = 0;
  else if (!onAirSince) onAirSince = Date.now();
  const camOff = onAir && teacherCameraOff(teachers);
  const screen = remoteFor(findTrack(teachers, (t) => t.kind === 'video' && t.source === 'screen' && !t.muted));
  const camera = camOff ? null : remoteFor(findTrack(teachers, (t) => t.kind === 'video' && t.source !== 'screen' && !t.muted));
  const mic = remoteFor(findTrack(teachers, (t) => t.kind === 'audio'));
  const me = session.self && session.self.id;
  if (screen) {
    show(ui.main, screen.stream);
    show(ui.pipVideo, camera && camera.stream);
    // The camera beside the slides: its place says "Camera off" when off.
    ui.pip.classList.toggle('hidden', !camera && !camOff);
    ui.pipOff.classList.toggle('hidden', !camOff);
  } else {
    show(ui.main, camera && camera.stream);
    show(ui.pipVideo, null);
    ui.pip.classList.add('hidden');
  }
  // No black screen: the words, in the picture's place.
  const noticeOn = camOff && !screen;
  ui.cameraOff.classList.toggle('hidden', !noticeOn);
  ui.main.classList.toggle('off', noticeOn);
  if (noticeOn) {
    const t = teacherParticipant();
    ui.cameraOffText.textContent = t && teacherMicOff(t) ? "The teacher's microphone is off too." : 'You can still hear the teacher.';
  }
  ui.main.style.objectFit = screen ? 'contain' : 'cover';
  show(ui.teacherAudio, mic && mic.stream);
  if (mic) playAudio(ui.teacherAudio);

  const stageP = session.stage && session.stage !== me ? session.participants.get(session.stage) : null;
  const stageSet = new Set(stageP ? [stageP.id] : []);
  const stageVideo = stageP && remoteFor(findTrack(stageSet, (t) => t.kind === 'video'));
  const stageAudio = stageP && remoteFor(findTrack(stageSet, (t) => t.kind === 'audio'));
  ui.stage.classList.toggle('hidden', !stageP);
  ui.stageLabel.textContent = stageP ? `On stage: ${stageP.name}` : '';
  show(ui.stageVideo, stageVideo && stageVideo.stream);
  show(ui.stageAudio, stageAudio && stageAudio.stream);
  if (stageAudio) playAudio(ui.stageAudio);
  ui.self.classList.toggle('onstage', session.stage === me);
  ui.selfLabel.textContent = session.stage === me ? 'You · ON STAGE' : 'You';

  // Waiting until the teacher is on air (and its picture arrives).
  const teacherHere = teachers.size > 0;
  const picture = !!(screen || camera || camOff);
  ui.waiting.classList.toggle('hidden', picture);
  if (!picture) {
    if (onAir) setWaiting('The lesson is starting…', 'The teacher is live; the picture arrives in a moment.');
    else if (teacherHere) setWaiting('The teacher is here', 'The lesson starts as soon as the teacher goes live.');
    else setWaiting('Waiting for the teacher', 'The lesson starts when the teacher goes live. This screen joins by itself.');
  }
}

function playAudio(el) {
  const p = el.play();
  if (p && p.catch) p.catch((err) => {
    if (err.name === 'NotAllowedError') ui.sound.classList.remove('hidden');
  });
}

// ---------- own camera and microphone ----------

async function openLocal() {
  try {
    local = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 24 } },
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
    });
  } catch (err) {
    local = null;
    toast(mediaErrorText(err) + ' The lesson still plays; the teacher just cannot see or hear this room.', 0);
    ui.self.classList.add('hidden');
    return;
  }
  attach(ui.selfVideo, new MediaStream(local.getVideoTracks()));
  renderMic();
  publishLocal();
}

function publishLocal() {
  if (!local || !canPublish || !session) return;
  const items = [];
  const v = local.getVideoTracks()[0];
  const a = local.getAudioTracks()[0];
  if (v) items.push({ track: v, source: 'camera', name: 'Classroom camera', maxBitrate: 600_000 });
  if (a) items.push({ track: a, source: 'microphone', name: 'Classroom microphone' });
  session.publish(items).catch((err) => console.warn('publish', err));
}

function micTrack() { return local && local.getAudioTracks()[0]; }

// serverMic is the server's state of our microphone: {muted, by}.
function serverMic() {
  const me = session && session.self && (session.participants.get(session.self.id) || session.self);
  return { muted: !!(me && me.micMuted), by: (me && me.micMutedBy) || '' };
}

// setMic is the room's own mute button: muting is applied at once (the
// room is not heard a moment longer); the server's answer is the truth.
async function setMic(muted) {
  if (mutedByTeacher && !muted) {
    toast('You are muted by the teacher. Your hand is raised to ask to speak.');
    if (!handRaised) setHand(true);
    return;
  }
  micMuted = muted;
  if (muted) { const a = micTrack(); if (a) a.enabled = false; }
  renderMic();
  if (!session || session.state !== 'live' || !session.self) return;
  try {
    await session.request('mute', { participantId: session.self.id, muted });
  } catch (err) {
    if (err.code !== 'muted_by_teacher') toast('Could not change the microphone: ' + err.message);
  }
}

// applyServerMic follows the server's state of our microphone.
function applyServerMic() {
  const { muted, by } = serverMic();
  const wasTeacher = mutedByTeacher;
  mutedByTeacher = muted && by === 'teacher';
  if (session.state === 'live') micMuted = muted && by === 'self';
  if (mutedByTeacher && !wasTeacher) toast('The teacher muted this classroom. Raise your hand to ask to speak.', 8000);
  if (!mutedByTeacher && wasTeacher) toast('The teacher unmuted this classroom — you can be heard.');
  renderMic();
}

function renderMic() {
  const off = micMuted || mutedByTeacher;
  const a = micTrack();
  if (a) a.enabled = !off;
  ui.mic.querySelector('span').textContent = mutedByTeacher ? 'Muted by teacher' : off ? 'Muted by you' : 'Mic on';
  ui.mic.dataset.mic = mutedByTeacher ? 'teacher' : off ? 'self' : 'on';
  ui.mic.setAttribute('aria-pressed', String(off));
  ui.mic.classList.toggle('danger', off);
  ui.mic.classList.toggle('locked', mutedByTeacher);
  ui.mic.title = mutedByTeacher ? 'The teacher muted this classroom; press to raise your hand and ask to speak'
    : 'Mute or unmute the classroom microphone (M)';
  ui.micBanner.classList.toggle('hidden', !mutedByTeacher);
}

// renderStills shows, while the server sends this classroom only sound and
// a still picture every few seconds (its link cannot carry video), why the
// picture hardly moves.
function renderStills(me) {
  const on = !!(me && me.stills);
  const was = !ui.stillsBanner.classList.contains('hidden');
  ui.stillsBanner.classList.toggle('hidden', !on);
  if (was && !on) toast('The connection is better: the moving picture is back.');
}

async function setHand(raised) {
  if (!session || session.state !== 'live') return;
  handRaised = raised;
  renderHand();
  try {
    await session.request('raiseHand', { raised });
    if (raised) toast('Your hand is raised. The teacher can see it.');
  } catch (err) {
    toast('Could not raise the hand: ' + err.message);
  }
}

function renderHand() {
  ui.hand.querySelector('span').textContent = handRaised ? 'Lower hand' : 'Raise hand';
  ui.hand.classList.toggle('hand-up', handRaised);
  ui.hand.setAttribute('aria-pressed', String(handRaised));
}

// ---------- network badge ----------

async function refreshNetwork() {
  if (!session || session.state !== 'live') return;
  const s = await session.stats().catch(() => null);
  if (!s) return;
  let bits = 0; let lost = 0; let got = 0;
  for (const i of s.inbound) {
    bits += meter.rate('b' + i.trackId, i.bytesReceived * 8);
    lost += meter.rate('l' + i.trackId, i.packetsLost);
    got += meter.rate('p' + i.trackId, i.packetsReceived);
  }
  const own = (session.self && session.quality[session.self.id]) || {};
  const loss = Math.max(own.loss || 0, got + lost > 0 ? lost / (got + lost) : 0);
  const rttMs = own.rtt ? own.rtt / 1e6 : (s.candidatePair ? s.candidatePair.rtt * 1000 : 0);
  const level = qualityLevel({ loss, rttMs });
  network = { level, bitrate: bits, loss, rttMs };
  ui.netbars.dataset.level = level;
  ui.nettext.textContent = `${{ good: 'Good', fair: 'Fair', poor: 'Weak' }[level]} network · ${formatBitrate(bits)}`;
  ui.netbars.parentElement.title = `Receiving ${formatBitrate(bits)} · loss ${(loss * 100).toFixed(1)} % · RTT ${Math.round(rttMs)} ms`;
}

// ---------- chat ----------

const CHAT_SHOWN = 6; // the latest messages stay on the board

function addChat(d) {
  const from = session.participants.get(d.from);
  const self = !!session.self && d.from === session.self.id;
  const teacher = from ? from.role === 'teacher' : false;
  const who = self ? 'This classroom' : teacher ? `${d.fromName || 'Teacher'} (teacher)` : d.fromName || '';
  // 'mine', not 'self': .board .self is the room's own camera picture.
  const el = h('div', { class: 'msg' + (teacher ? ' teacher' : '') + (self ? ' mine' : '') },
    h('div', { class: 'who' }, who), h('div', {}, d.text));
  ui.chat.append(el);
  while (ui.chat.children.length > CHAT_SHOWN) ui.chat.firstChild.remove();
}

async function sendChat(e) {
  e.preventDefault();
  const text = ui.chattext.value.trim();
  if (!text || !session || session.state !== 'live') return;
  ui.chatsend.disabled = true;
  try {
    await session.request('chat', { text });
    ui.chattext.value = '';
  } catch (err) {
    if (err.code === 'chat_disabled') toast('The teacher has switched the chat off.');
    else if (err.code === 'rate_limited') toast('Too many messages at once — wait a moment.');
    else toast('The message was not sent: ' + err.message);
  } finally {
    renderLessonState();
  }
}

// ---------- start ----------

function fatal(title, text) {
  ui.overlayTitle.textContent = title;
  ui.overlayText.textContent = text;
  ui.overlay.classList.remove('hidden');
  ui.state.dataset.state = 'ended';
  ui.state.textContent = 'Not connected';
  ui.waiting.classList.add('hidden');
}

function toggleFullscreen() {
  if (document.fullscreenElement) document.exitFullscreen?.();
  else ui.board.requestFullscreen?.().catch(() => {});
}

async function main() {
  window.podium = {
    page: 'classroom',
    get state() { return session ? session.state : 'connecting'; },
    get onAir() { return teacherOnAir(); },
    get session() { return session; },
    get network() { return network; },
    get handRaised() { return handRaised; },
    // lesson is the lesson's server state as this page shows it.
    get lesson() {
      return {
        recording: !ui.rec.classList.contains('hidden'),
        chatOpen: !ui.chattext.disabled,
        teacherCameraOff: !ui.cameraOff.classList.contains('hidden') || !ui.pipOff.classList.contains('hidden'),
        teacherMicOff: !ui.teacherMicOff.classList.contains('hidden'),
      };
    },
    // mic is the microphone as this page shows and applies it.
    get mic() {
      const a = micTrack();
      return { muted: micMuted || mutedByTeacher, byTeacher: mutedByTeacher, trackEnabled: a ? a.enabled : null };
    },
    stats: () => (session ? session.stats() : Promise.resolve(null)),
    raiseHand: (raised = true) => setHand(raised),
    // dropLink cuts the websocket as a failing network would (for tests
    // and drills): the page must reconnect on its own.
    dropLink: () => session && session._ws && session._ws.close(),
  };
  const problem = browserProblem();
  if (problem) return fatal('This browser cannot run Podium', problem);
  const token = readToken();
  let claims;
  try {
    claims = decodeToken(token);
  } catch (err) {
    return fatal('No valid lesson link', err.message);
  }
  if (claims.role === 'teacher') {
    location.replace('/teacher#token=' + encodeURIComponent(token));
    return;
  }
  if (tokenExpired(claims)) return fatal('This link has expired', 'Ask the lesson organiser for a new classroom link.');
  canPublish = claims.role === 'classroom';
  ui.title.textContent = `${claims.room} · ${claims.name || 'Classroom'}`;
  if (!canPublish) { ui.self.classList.add('hidden'); ui.hand.classList.add('hidden'); ui.mic.classList.add('hidden'); }

  // The server subscribes a classroom to exactly the teacher's tracks and
  // the on-stage classroom's: a weak rural link carries nothing more.
  session = new Session({ token, autoSubscribe: true });
  session.addEventListener('state', (e) => {
    renderState();
    if (e.detail.state === 'ended') {
      // A lesson that may start again keeps the camera ready to rejoin.
      if (local && !e.detail.resumable) local.getTracks().forEach((t) => t.stop());
      fatal('The lesson has ended', e.detail.reason || 'Thank you for joining.');
      ui.state.textContent = 'Ended';
    }
  });
  session.addEventListener('joined', (e) => {
    const lesson = e.detail.lesson || {};
    ui.title.textContent = `${lesson.title || claims.room} · ${claims.name || 'Classroom'}`;
    handRaised = !!(session.self && session.self.handRaised);
    renderHand();
    if (session.reconnects > 0) toast('Reconnected to the lesson.');
    const wanted = micMuted;
    applyServerMic();
    // Our own mute survives a reconnect: tell the new session.
    if (wanted && !serverMic().muted) setMic(true);
    renderState();
    renderLayout();
  });
  const resync = () => { renderState(); renderLayout(); };
  session.addEventListener('tracks', resync);
  session.addEventListener('participants', (e) => {
    const p = e.detail.participant;
    if (session.self && p.id === session.self.id) { handRaised = !!p.handRaised; renderHand(); applyServerMic(); renderStills(p); }
    resync();
  });
  session.addEventListener('stage', (e) => {
    const id = e.detail.participantId;
    const me = session.self && session.self.id;
    if (id && id === me) toast('You are on stage — every classroom can see and hear you.', 8000);
    else if (id) toast(`${(session.participants.get(id) || {}).name || 'A classroom'} is on stage.`);
    resync();
  });
  session.addEventListener('remotetrack', renderLayout);
  session.addEventListener('remotetrackended', renderLayout);
  session.addEventListener('chat', (e) => addChat(e.detail));
  session.addEventListener('lesson', () => {
    ui.title.textContent = `${(session.lesson && session.lesson.title) || claims.room} · ${claims.name || 'Classroom'}`;
    renderLessonState();
  });
  ui.chatform.addEventListener('submit', sendChat);
  ui.ask.addEventListener('click', () => setHand(true));
  ui.hand.addEventListener('click', () => setHand(!handRaised));
  ui.mic.addEventListener('click', () => setMic(!(micMuted || mutedByTeacher)));
  ui.fullscreen.addEventListener('click', toggleFullscreen);
  ui.sound.addEventListener('click', () => {
    ui.sound.classList.add('hidden');
    for (const el of [ui.teacherAudio, ui.stageAudio]) if (el.srcObject) playAudio(el);
  });
  document.addEventListener('keydown', (e) => {
    if (e.target.closest('input, textarea, select') || e.repeat) return;
    const k = e.key.toLowerCase();
    if (k === 'h' && canPublish) setHand(!handRaised);
    else if (k === 'm' && canPublish) setMic(!(micMuted || mutedByTeacher));
    else if (k === 'f') toggleFullscreen();
    else if (k === 'c' && !ui.chattext.disabled) { e.preventDefault(); ui.chattext.focus(); }
  });
  setInterval(() => {
    refreshNetwork();
    if (session.state === 'reconnecting') renderState();
    if (onAirSince && Date.now() - onAirSince < NO_CAMERA_GRACE_MS + 1500) renderLayout();
  }, 1000);

  renderState();
  session.start();
  if (canPublish) await openLocal();
}

main();
