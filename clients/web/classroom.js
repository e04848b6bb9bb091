// Classroom big screen: the teacher (screen share large, camera as
// picture-in-picture), the classroom on stage, our own camera + microphone
// sent back, raise hand, a network badge, and reconnection that needs
// nobody at the board. Keyboard: H hand, M microphone, F full screen.
import {
  Session, readToken, decodeToken, tokenExpired, browserProblem, mediaErrorText,
  RateMeter, qualityLevel, formatBitrate, attach, h,
} from './podium.js';

const $ = (id) => document.getElementById(id);
const ui = {
  board: $('board'), main: $('main-video'), waiting: $('waiting'), waitingText: $('waiting-text'),
  pip: $('pip'), pipVideo: $('pip-video'), stage: $('stage'), stageVideo: $('stage-video'), stageLabel: $('stage-label'),
  self: $('self'), selfVideo: $('self-video'), selfLabel: $('self-label'), title: $('lesson-title'), state: $('state'),
  netbars: $('netbars'), nettext: $('nettext'), chat: $('chat'), toast: $('toast'),
  hand: $('hand'), mic: $('mic'), sound: $('sound'), fullscreen: $('fullscreen'),
  teacherAudio: $('teacher-audio'), stageAudio: $('stage-audio'),
  overlay: $('overlay'), overlayTitle: $('overlay-title'), overlayText: $('overlay-text'),
  micBanner: $('mic-banner'),
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
    ui.waitingText.textContent = 'Waiting for the teacher to start the lesson… This screen joins by itself.';
    ui.waiting.classList.remove('hidden');
  }
  if (s === 'live') ui.overlay.classList.add('hidden');
  if (s === 'reconnecting') {
    const secs = Math.max(0, Math.round((session.nextRetryAt - Date.now()) / 1000));
    ui.waitingText.textContent = `Connection lost — reconnecting automatically${secs ? ` in ${secs} s` : '…'}`;
    ui.waiting.classList.remove('hidden');
  }
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

function renderLayout() {
  if (!session || session.state !== 'live') return;
  const teachers = teacherIds();
  const screen = remoteFor(findTrack(teachers, (t) => t.kind === 'video' && t.source === 'screen' && !t.muted));
  const camera = remoteFor(findTrack(teachers, (t) => t.kind === 'video' && t.source !== 'screen'));
  const mic = remoteFor(findTrack(teachers, (t) => t.kind === 'audio'));
  const me = session.self && session.self.id;
  if (screen) {
    show(ui.main, screen.stream);
    show(ui.pipVideo, camera && camera.stream);
    ui.pip.classList.toggle('hidden', !camera);
  } else {
    show(ui.main, camera && camera.stream);
    show(ui.pipVideo, null);
    ui.pip.classList.add('hidden');
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

  const teacherHere = teachers.size > 0;
  ui.waiting.classList.toggle('hidden', !!(screen || camera));
  if (!screen && !camera) ui.waitingText.textContent = teacherHere ? 'The teacher is here — the lesson starts in a moment.' : 'Waiting for the teacher to start the lesson…';
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
  ui.mic.querySelector('span').textContent = mutedByTeacher ? 'Muted by teacher' : off ? 'Mic off' : 'Mic on';
  ui.mic.setAttribute('aria-pressed', String(off));
  ui.mic.classList.toggle('danger', off);
  ui.mic.classList.toggle('locked', mutedByTeacher);
  ui.mic.title = mutedByTeacher ? 'The teacher muted this classroom; press to raise your hand and ask to speak'
    : 'Mute or unmute the classroom microphone (M)';
  ui.micBanner.classList.toggle('hidden', !mutedByTeacher);
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

// ---------- chat ticker ----------

function addChat(d) {
  const el = h('div', { class: 'msg' }, h('div', { class: 'who' }, d.fromName || ''), h('div', {}, d.text));
  ui.chat.append(el);
  while (ui.chat.children.length > 4) ui.chat.firstChild.remove();
  setTimeout(() => el.remove(), 20000);
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
    if (session.self && p.id === session.self.id) { handRaised = !!p.handRaised; renderHand(); applyServerMic(); }
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
  });
  setInterval(() => {
    refreshNetwork();
    if (session.state === 'reconnecting') renderState();
  }, 1000);

  renderState();
  session.start();
  if (canPublish) await openLocal();
}

main();
