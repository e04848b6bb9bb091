// Podium client core shared by the teacher console and the classroom big
// screen: the signaling websocket (docs/PROTOCOL.md), the publisher and
// subscriber peer connections, automatic reconnection, and stats summaries.
// Standard WebRTC APIs only, so it runs in Chromium and Firefox alike.

export const PROTOCOL = 1;

// ---------- tokens ----------

// readToken finds the token in the URL: #token=..., ?token=..., or the
// session storage the join page left it in.
export function readToken() {
  const hash = new URLSearchParams(location.hash.replace(/^#/, ''));
  const query = new URLSearchParams(location.search);
  const t = hash.get('token') || query.get('token') || sessionStorage.getItem('podium.token') || '';
  return t.trim();
}

// decodeToken reads a JWT's payload without checking its signature (the
// server does that); it only lets a page show who and where before joining.
export function decodeToken(token) {
  const parts = (token || '').trim().split('.');
  if (parts.length !== 3) throw new Error('This does not look like a Podium link: a token has three parts separated by dots.');
  let json;
  try {
    const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    json = new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
  } catch {
    throw new Error('The token is damaged (it could not be decoded). Ask for a new link.');
  }
  let claims;
  try { claims = JSON.parse(json); } catch { throw new Error('The token is damaged (its contents are not readable). Ask for a new link.'); }
  if (!claims || typeof claims !== 'object' || !claims.room || !claims.role) {
    throw new Error('The token does not name a lesson and a role. Ask for a new link.');
  }
  return claims;
}

export function tokenExpired(claims, now = Date.now()) {
  return typeof claims.exp === 'number' && claims.exp * 1000 <= now;
}

// probeToken asks the server about a token without opening a websocket:
// a plain GET of /ws is refused with the server's 401/403 JSON when the
// token is bad, and with something else (no upgrade) when it is good.
export async function probeToken(token) {
  try {
    const res = await fetch(`/ws?token=${encodeURIComponent(token)}`, { cache: 'no-store' });
    if (res.status === 401 || res.status === 403) {
      let body = {};
      try { body = await res.json(); } catch { /* not JSON */ }
      return { ok: false, status: res.status, code: body.code || '', error: body.error || '' };
    }
    if (res.status === 404 && res.headers.get('content-type')?.includes('json')) {
      // The server refuses a classroom before its teacher has started the
      // lesson: the link is good, the lesson is just not running.
      const body = await res.json().catch(() => ({}));
      if (body.code === 'lesson_ended') return { ok: false, status: 404, code: body.code, error: body.error || 'The lesson has ended.' };
      return { ok: true, status: 404, notRunning: true, code: body.code || 'not_found', error: body.error || '' };
    }
    return { ok: true, status: res.status };
  } catch (err) {
    return { ok: false, status: 0, code: 'network', error: String(err) };
  }
}

export function friendlyAuthError(probe) {
  if (probe.status === 401) {
    if (/expire/i.test(probe.error + probe.code)) return 'This link has expired. Ask the lesson organiser for a new one.';
    return 'This link is not valid for this Podium server (' + (probe.error || 'unauthorised') + '). Ask for a new link.';
  }
  if (probe.status === 403) return 'This link does not allow joining the lesson with its role (' + (probe.error || 'forbidden') + ').';
  if (probe.code === 'lesson_ended') return 'This lesson has already ended.';
  if (probe.status === 0) return 'The Podium server cannot be reached. Check the network cable or Wi-Fi.';
  return probe.error || 'The server refused the link.';
}

// browserProblem names what this browser lacks, or '' when it can run Podium.
export function browserProblem() {
  if (!window.RTCPeerConnection) return 'This browser cannot do live video (no WebRTC). Please use a current Chrome, Edge or Firefox.';
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    return window.isSecureContext
      ? 'This browser cannot use a camera. Please use a current Chrome, Edge or Firefox.'
      : 'The camera can only be used over a secure (https://) address. Ask IT to open Podium with https.';
  }
  if (!window.WebSocket) return 'This browser is too old for Podium (no WebSocket).';
  return '';
}

export function mediaErrorText(err) {
  const name = err && err.name;
  if (name === 'NotAllowedError' || name === 'SecurityError') return 'Camera or microphone access was denied. Click the camera icon in the address bar, allow access, and reload.';
  if (name === 'NotFoundError' || name === 'OverconstrainedError') return 'No camera or microphone was found. Plug one in and reload.';
  if (name === 'NotReadableError' || name === 'AbortError') return 'The camera or microphone is in use by another program. Close it and reload.';
  return 'Could not start camera or microphone: ' + (err && err.message ? err.message : String(err));
}

// ---------- signaling session ----------

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15000;
const NOT_RUNNING_RETRY_MS = 5000;

// Session is one participant's connection to a lesson. It survives dropped
// links: on a websocket close or an ICE failure it reconnects with the same
// token (exponential backoff) and publishes its local tracks again.
//
// Events (EventTarget): state, joined, participants, tracks, stage, chat,
// quality, dashboard, lesson, speaking, muteRequest, remotetrack,
// remotetrackended, error.
export class Session extends EventTarget {
  constructor({ token, autoSubscribe = true, log = console }) {
    super();
    this.token = token;
    this.autoSubscribe = autoSubscribe;
    this.log = log;
    this.state = 'idle'; // connecting | waiting | live | reconnecting | ended
    this.everLive = false; // joined at least once
    this.resumable = false; // ended only because the lesson is not running now
    this.history = []; // recent state changes, for support and tests
    this.endReason = '';
    this.self = null;
    this.lesson = null;
    this.participants = new Map(); // id -> ParticipantInfo
    this.tracks = new Map(); // track id -> TrackInfo
    this.stage = '';
    this.quality = {};
    this.dashboard = null; // {classrooms, at} — the teacher's, from the server
    this.speaking = [];
    this.remote = new Map(); // track id -> {track, stream, participantId}
    this.local = []; // [{track, source, name}] published (and republished on reconnect)
    this.iceServers = [];
    this.attempt = 0;
    this.reconnects = 0;
    this._seq = 0;
    this._pending = new Map();
    this._ws = null;
    this.pub = null;
    this.sub = null;
    this._pubCandidates = [];
    this._subCandidates = [];
    this._timer = null;
    this._pingTimer = null;
    this._statsTimer = null;
    this._pubChain = Promise.resolve();
    this._queue = Promise.resolve();
  }

  _setState(s, detail = {}) {
    if (this.state === s) return;
    this.state = s;
    this.history.push(`${new Date().toISOString().slice(11, 23)} ${s}${detail.reason ? ': ' + detail.reason : ''}`);
    if (this.history.length > 50) this.history.shift();
    this.dispatchEvent(new CustomEvent('state', { detail: { state: s, ...detail } }));
  }

  _emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }

  start() {
    this._setState('connecting');
    this._open();
  }

  _open() {
    clearTimeout(this._timer);
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}/ws?token=${encodeURIComponent(this.token)}`);
    this._ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.send('join', { autoSubscribe: this.autoSubscribe }).catch((err) => this._fail('join', err));
    };
    ws.onmessage = (ev) => {
      if (this._ws !== ws) return;
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      // Replies settle at once (a handler below may be waiting for one);
      // everything else runs in arrival order, one at a time, so an offer
      // and the candidates after it are applied in order.
      if (msg.id && this._pending.has(msg.id)) {
        this._settle(msg);
        if (msg.type !== 'joined') return;
      }
      this._queue = this._queue.then(() => this._onMessage(msg))
        .catch((err) => this.log.warn('podium: handling', msg.type, err));
    };
    ws.onclose = (ev) => {
      if (this._ws !== ws) return;
      this._linkLost(opened ? `connection closed (${ev.code})` : 'server unreachable', !opened);
    };
  }

  send(type, data = {}) {
    const id = 'c' + ++this._seq;
    const ws = this._ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return Promise.reject(new Error('not connected'));
    ws.send(JSON.stringify({ v: PROTOCOL, type, id, data }));
    return new Promise((resolve, reject) => {
      this._pending.set(id, { resolve, reject, type });
      setTimeout(() => {
        if (this._pending.delete(id)) reject(new Error(`${type}: no reply`));
      }, 15000);
    });
  }

  _notify(type, data = {}) {
    const ws = this._ws;
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ v: PROTOCOL, type, data }));
  }

  _settle(msg) {
    const d = msg.data || {};
    const p = this._pending.get(msg.id);
    this._pending.delete(msg.id);
    if (msg.type === 'error') {
      const e = new Error(d.message || d.code || 'error');
      e.code = d.code;
      p.reject(e);
    } else {
      p.resolve(msg);
    }
  }

  async _onMessage(msg) {
    const d = msg.data || {};
    switch (msg.type) {
      case 'joined': await this._onJoined(d); break;
      case 'offer': await this._onSubscriberOffer(d.sdp); break;
      case 'trickle': await this._onTrickle(d); break;
      case 'participantJoined':
      case 'participantUpdated':
        this.participants.set(d.participant.id, d.participant);
        if (this.self && d.participant.id === this.self.id) this.self = d.participant;
        this._emit('participants', { change: msg.type, participant: d.participant, reason: d.reason || '' });
        break;
      case 'participantLeft':
        this.participants.delete(d.participant.id);
        this._emit('participants', { change: msg.type, participant: d.participant, reason: d.reason || '' });
        break;
      case 'trackPublished':
      case 'trackUpdated':
        this.tracks.set(d.track.id, d.track);
        this._emit('tracks', { change: msg.type, track: d.track });
        break;
      case 'trackUnpublished':
        this.tracks.delete(d.track.id);
        this._emit('tracks', { change: msg.type, track: d.track });
        break;
      case 'stage':
        this.stage = d.participantId || '';
        this._emit('stage', { participantId: this.stage });
        break;
      case 'chat': this._emit('chat', d); break;
      case 'quality':
        this.quality = d.participants || {};
        this._emit('quality', this.quality);
        break;
      case 'dashboard':
        this.dashboard = { classrooms: d.classrooms || [], at: Date.now() };
        this._emit('dashboard', this.dashboard);
        break;
      case 'lessonUpdated':
        if (d.lesson) this.lesson = d.lesson;
        this._emit('lesson', this.lesson);
        break;
      case 'speaking':
        this.speaking = d.participantIds || [];
        this._emit('speaking', this.speaking);
        break;
      case 'muteRequest': this._emit('muteRequest', d); break;
      case 'lessonEnded': this._end(d.reason || 'The teacher ended the lesson.'); break;
      case 'shutdown':
        this._linkLost('server restarting', false, d.reconnectAfterMs || 2000);
        break;
      case 'error': this._emit('error', d); break;
      default: break;
    }
  }

  async _onJoined(d) {
    this.attempt = 0;
    this.everLive = true;
    this.resumable = false;
    this.self = d.participant;
    this.lesson = d.lesson;
    this.participants = new Map((d.participants || []).map((p) => [p.id, p]));
    this.participants.set(d.participant.id, d.participant);
    this.tracks = new Map((d.tracks || []).map((t) => [t.id, t]));
    this.stage = d.stage || '';
    this.iceServers = (d.iceServers || []).map((s) => ({ urls: s.urls, username: s.username, credential: s.credential }));
    this._makeSubscriber();
    this._setState('live');
    this._emit('joined', d);
    this._ping();
    if (this.local.length) this.publish(this.local).catch((err) => this.log.warn('podium: publish', err));
  }

  _ping() {
    clearInterval(this._pingTimer);
    // Keeps NAT bindings and idle proxies from dropping the socket.
    this._pingTimer = setInterval(() => this._notify('ping'), 20000);
    clearInterval(this._statsTimer);
    // What this page receives, for the teacher's dashboard (`stats`).
    this._statsTimer = setInterval(() => {
      this.receiveReport().then((r) => { if (r) this._notify('stats', r); }).catch(() => {});
    }, STATS_REPORT_MS);
  }

  _rtcConfig() {
    return { iceServers: this.iceServers, bundlePolicy: 'max-bundle' };
  }

  _watchIce(pc, name) {
    let timer = null;
    pc.addEventListener('connectionstatechange', () => {
      if (pc !== this.pub && pc !== this.sub) return;
      const s = pc.connectionState;
      clearTimeout(timer);
      if (s === 'failed') this._linkLost(`${name} media link failed`);
      // "disconnected" often heals by itself; give it a few seconds.
      if (s === 'disconnected') timer = setTimeout(() => {
        if (pc.connectionState === 'disconnected') this._linkLost(`${name} media link lost`);
      }, 6000);
    });
  }

  _makeSubscriber() {
    const pc = new RTCPeerConnection(this._rtcConfig());
    this.sub = pc;
    this._subCandidates = [];
    this._watchIce(pc, 'receive');
    pc.onicecandidate = (ev) => {
      if (ev.candidate) this._notify('trickle', { target: 'subscriber', candidate: ev.candidate.toJSON() });
    };
    pc.ontrack = (ev) => {
      const stream = ev.streams[0] || new MediaStream([ev.track]);
      const participantId = ev.streams[0] ? ev.streams[0].id : '';
      // msid is "<participantId> <trackId>"; track.id carries the track id
      // in Chromium and Firefox. Fall back to matching by kind.
      let trackId = ev.track.id;
      if (!this.tracks.has(trackId)) {
        for (const t of this.tracks.values()) {
          if (t.participantId === participantId && t.kind === ev.track.kind && !this.remote.has(t.id)) { trackId = t.id; break; }
        }
      }
      const info = { track: ev.track, stream: new MediaStream([ev.track]), participantId, trackId, receiver: ev.receiver };
      this.remote.set(trackId, info);
      const gone = () => {
        if (this.remote.get(trackId) === info) {
          this.remote.delete(trackId);
          this._emit('remotetrackended', info);
        }
      };
      ev.track.addEventListener('ended', gone);
      stream.addEventListener('removetrack', (e) => { if (e.track === ev.track) gone(); });
      this._emit('remotetrack', info);
    };
  }

  async _onSubscriberOffer(sdp) {
    const pc = this.sub;
    if (!pc) return;
    await pc.setRemoteDescription({ type: 'offer', sdp });
    for (const c of this._subCandidates.splice(0)) await pc.addIceCandidate(c).catch(() => {});
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    this._notify('answer', { sdp: pc.localDescription.sdp });
    // Transceivers the server stopped no longer carry a track.
    for (const [id, info] of this.remote) {
      const tr = pc.getTransceivers().find((t) => t.receiver === info.receiver);
      if (!tr || tr.currentDirection === 'inactive' || tr.stopped) {
        this.remote.delete(id);
        this._emit('remotetrackended', info);
      }
    }
  }

  async _onTrickle(d) {
    const pc = d.target === 'publisher' ? this.pub : this.sub;
    if (!pc || !d.candidate) return;
    if (!pc.remoteDescription) {
      (d.target === 'publisher' ? this._pubCandidates : this._subCandidates).push(d.candidate);
      return;
    }
    await pc.addIceCandidate(d.candidate).catch((err) => this.log.warn('podium: candidate', err));
  }

  // publish sends local tracks on the publisher connection (replacing what
  // was published before). items: [{track, source, name, simulcast}].
  publish(items) {
    this.local = items.slice();
    const run = () => this._publishNow();
    this._pubChain = this._pubChain.then(run, run);
    return this._pubChain;
  }

  async _publishNow() {
    if (this.state !== 'live') return; // published again after (re)joining
    const items = this.local;
    let pc = this.pub;
    if (!pc) {
      pc = new RTCPeerConnection(this._rtcConfig());
      this.pub = pc;
      this._pubCandidates = [];
      this._watchIce(pc, 'send');
      pc.onicecandidate = (ev) => {
        if (ev.candidate) this._notify('trickle', { target: 'publisher', candidate: ev.candidate.toJSON() });
      };
    }
    const wanted = new Set(items.map((i) => i.track));
    for (const tr of pc.getTransceivers()) {
      const t = tr.sender.track;
      if (t && !wanted.has(t)) {
        pc.removeTrack(tr.sender);
      }
    }
    const have = new Set(pc.getSenders().map((s) => s.track).filter(Boolean));
    for (const item of items) {
      if (have.has(item.track)) continue;
      const stream = new MediaStream([item.track]);
      if (item.track.kind === 'video') {
        const init = { direction: 'sendonly', streams: [stream] };
        if (item.simulcast) {
          init.sendEncodings = [
            { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
            { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
            { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
          ];
        } else if (item.maxBitrate) {
          init.sendEncodings = [{ maxBitrate: item.maxBitrate, maxFramerate: item.maxFramerate }];
        }
        const tr = pc.addTransceiver(item.track, init);
        if (item.preferH264) preferH264(tr);
      } else {
        pc.addTransceiver(item.track, { direction: 'sendonly', streams: [stream] });
      }
    }
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    const tracks = items.map((i) => ({ trackId: i.track.id, source: i.source, name: i.name || i.source }));
    const reply = await this.send('offer', { sdp: pc.localDescription.sdp, tracks });
    await pc.setRemoteDescription({ type: 'answer', sdp: reply.data.sdp });
    for (const c of this._pubCandidates.splice(0)) await pc.addIceCandidate(c).catch(() => {});
  }

  request(type, data) {
    return this.send(type, data);
  }

  _linkLost(reason, unreachable = false, delayMs = 0) {
    if (this.state === 'ended' && !this.resumable) return;
    this._teardown();
    if (this.state !== 'ended' && this.state !== 'waiting') this._setState('reconnecting', { reason });
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    const delay = Math.max(delayMs, base / 2 + Math.random() * (base / 2));
    this.attempt++;
    this.reconnects++;
    this.nextRetryAt = Date.now() + delay;
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this._retry(unreachable), delay);
  }

  // _retry opens the socket again. A socket refused before it opened may
  // mean the token expired or the lesson is not running; retrying blindly
  // would never tell anyone, so it first asks the server why (one GET).
  async _retry(unreachable) {
    if (unreachable) {
      const probe = await probeToken(this.token);
      if (this.state === 'ended' && !this.resumable) return;
      if (!probe.ok && (probe.status === 401 || probe.status === 403)) {
        this._end(friendlyAuthError(probe));
        return;
      }
      if (!probe.ok && probe.code === 'lesson_ended') {
        this._end('The lesson has ended.');
        return;
      }
      if (probe.notRunning) {
        // Nobody is at the board: keep looking, slowly, and say why.
        if (this.everLive) {
          this.resumable = true;
          this.endReason = 'The lesson is no longer running. This screen rejoins by itself if it starts again.';
          this._setState('ended', { reason: this.endReason, resumable: true });
        } else {
          this._setState('waiting', { reason: 'The lesson has not started yet.' });
        }
        this.nextRetryAt = Date.now() + NOT_RUNNING_RETRY_MS;
        this._timer = setTimeout(() => this._retry(true), NOT_RUNNING_RETRY_MS);
        return;
      }
    }
    if (this.state === 'ended' && !this.resumable) return;
    this._open();
  }

  _fail(what, err) {
    this.log.warn('podium:', what, err);
    if (err && err.code === 'lesson_ended') this._end('The lesson has ended.');
  }

  _teardown() {
    clearInterval(this._pingTimer);
    clearInterval(this._statsTimer);
    for (const p of this._pending.values()) p.reject(new Error('disconnected'));
    this._pending.clear();
    const ws = this._ws;
    this._ws = null;
    if (ws) { ws.onclose = null; try { ws.close(); } catch { /* closed */ } }
    for (const pc of [this.pub, this.sub]) if (pc) pc.close();
    this.pub = null;
    this.sub = null;
    for (const info of this.remote.values()) this._emit('remotetrackended', info);
    this.remote.clear();
    this._pubChain = Promise.resolve();
    this._queue = Promise.resolve();
  }

  _end(reason) {
    if (this.state === 'ended' && !this.resumable) return;
    this.resumable = false;
    clearTimeout(this._timer);
    this._teardown();
    this.endReason = reason;
    if (this.state === 'ended') this.dispatchEvent(new CustomEvent('state', { detail: { state: 'ended', reason } }));
    else this._setState('ended', { reason });
  }

  // finish stops everything with no reconnect, once the lesson is known
  // to be over (the teacher's endLesson was accepted).
  finish(reason) {
    this._end(reason);
  }

  // leave says goodbye and stops everything (no reconnect).
  leave() {
    this._notify('leave');
    this._end('You left the lesson.');
  }

  // receiveReport is this page's `stats` report, or null when it receives
  // nothing.
  receiveReport() {
    if (this.state !== 'live' || !this.sub) return Promise.resolve(null);
    const byLocalId = new Map([...this.remote.values()].map((r) => [r.track.id, r.trackId]));
    return receiveReportFrom(this.sub, (id) => byLocalId.get(id) || id);
  }

  // stats summarises both connections: per received track the decoded
  // frames / received audio, per sent track the bytes and layers.
  async stats() {
    const out = { inbound: [], outbound: [], candidatePair: null, state: this.state };
    const add = async (pc, dir) => {
      if (!pc) return;
      const report = await pc.getStats();
      report.forEach((s) => {
        if (s.type === 'inbound-rtp' && dir === 'sub') {
          const info = [...this.remote.values()].find((r) => r.track.id === s.trackIdentifier);
          const trackId = info ? info.trackId : s.trackIdentifier;
          const ti = this.tracks.get(trackId) || {};
          const pid = info ? info.participantId : (ti.participantId || '');
          const who = this.participants.get(pid) || {};
          out.inbound.push({
            kind: s.kind, trackId, participantId: pid, role: who.role || '', name: who.name || '', source: ti.source || '',
            bytesReceived: s.bytesReceived || 0, packetsReceived: s.packetsReceived || 0, packetsLost: s.packetsLost || 0,
            framesDecoded: s.framesDecoded || 0, frameWidth: s.frameWidth || 0, frameHeight: s.frameHeight || 0,
            framesPerSecond: s.framesPerSecond || 0,
            totalSamplesReceived: s.totalSamplesReceived || 0, jitter: s.jitter || 0,
          });
        }
        if (s.type === 'outbound-rtp' && dir === 'pub') {
          out.outbound.push({
            id: s.id, kind: s.kind, rid: s.rid || '', bytesSent: s.bytesSent || 0, framesEncoded: s.framesEncoded || 0,
            frameWidth: s.frameWidth || 0, frameHeight: s.frameHeight || 0, framesPerSecond: s.framesPerSecond || 0,
          });
        }
        if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded' && dir === 'sub') {
          out.candidatePair = { rtt: s.currentRoundTripTime || 0, availableIncomingBitrate: s.availableIncomingBitrate || 0 };
        }
        if (s.type === 'remote-inbound-rtp' && dir === 'pub') {
          out.outboundRtt = Math.max(out.outboundRtt || 0, s.roundTripTime || 0);
          out.outboundLoss = Math.max(out.outboundLoss || 0, s.fractionLost || 0);
        }
      });
    };
    await add(this.sub, 'sub');
    await add(this.pub, 'pub');
    return out;
  }
}

// STATS_REPORT_MS is how often a page reports what it receives.
const STATS_REPORT_MS = 2000;

// receiveReportFrom builds a `stats` report (docs/PROTOCOL.md, Dashboard)
// from a receiving connection's getStats: cumulative packet counters, per
// video track the decoded size, rate and Chromium's freezeCount, and the
// selected candidate pair's round trip and transport.
// preferH264 puts H.264 (constrained baseline, packetization mode 1) first
// in a video transceiver's codecs, the others after it as fallbacks. The
// recorder stores it as it comes, and a lesson's H.264 plays as HLS the
// moment it ends (browsers cannot play VP8 from fMP4); smart boards decode
// it in hardware. A browser that cannot send H.264 keeps its default.
function preferH264(transceiver) {
  if (!transceiver.setCodecPreferences || !window.RTCRtpSender || !RTCRtpSender.getCapabilities) return;
  const caps = RTCRtpSender.getCapabilities('video');
  if (!caps) return;
  const rank = (c) => {
    if (c.mimeType.toLowerCase() !== 'video/h264') return 3;
    const f = c.sdpFmtpLine || '';
    if (f.includes('packetization-mode=1') && f.includes('profile-level-id=42e01f')) return 0;
    return f.includes('packetization-mode=1') ? 1 : 2;
  };
  const codecs = [...caps.codecs].sort((a, b) => rank(a) - rank(b));
  if (rank(codecs[0]) > 1) return; // no H.264 to send with
  try { transceiver.setCodecPreferences(codecs); } catch (err) { console.warn('codec preferences', err); }
}

export async function receiveReportFrom(pc, trackIdOf = (id) => id) {
  if (!pc) return null;
  const report = await pc.getStats();
  const out = { packetsReceived: 0, packetsLost: 0, video: [] };
  let pairId = '';
  report.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId; });
  report.forEach((s) => {
    if (s.type === 'inbound-rtp') {
      out.packetsReceived += s.packetsReceived || 0;
      out.packetsLost += Math.max(0, s.packetsLost || 0);
      const trackId = trackIdOf(s.trackIdentifier || '');
      if (s.kind === 'video' && trackId && trackId.length <= 64 && out.video.length < 16) {
        out.video.push({
          trackId, width: s.frameWidth || 0, height: s.frameHeight || 0,
          fps: Math.min(1000, s.framesPerSecond || 0), framesDecoded: s.framesDecoded || 0, freezes: s.freezeCount || 0,
        });
      }
    }
    if (s.type === 'candidate-pair' && (s.id === pairId || (!pairId && s.nominated && s.state === 'succeeded'))) {
      if (s.currentRoundTripTime) out.rtt = Math.min(60000, s.currentRoundTripTime * 1000);
      const local = report.get(s.localCandidateId);
      if (local) {
        out.transport = local.candidateType === 'relay'
          ? 'turn-' + (['udp', 'tcp', 'tls'].includes(local.relayProtocol) ? local.relayProtocol : 'udp')
          : (local.protocol === 'tcp' ? 'tcp' : 'udp');
      }
    }
  });
  return out;
}

// RateMeter turns cumulative counters into per-second rates between calls.
export class RateMeter {
  constructor() { this.last = new Map(); }
  rate(key, value, now = performance.now()) {
    const prev = this.last.get(key);
    this.last.set(key, { value, now });
    if (!prev || now <= prev.now || value < prev.value) return 0;
    return ((value - prev.value) * 1000) / (now - prev.now);
  }
}

// qualityLevel grades a link for a badge: 'good', 'fair' or 'poor', from
// what users feel: lost packets (freezes, robotic audio) and round-trip time
// (late answers). Bitrate alone says little: a still slide needs almost none.
export function qualityLevel({ loss = 0, rttMs = 0 } = {}) {
  if (loss > 0.08 || rttMs > 600) return 'poor';
  if (loss > 0.02 || rttMs > 250) return 'fair';
  return 'good';
}

export function formatBitrate(bps) {
  if (!bps) return '—';
  if (bps >= 1e6) return (bps / 1e6).toFixed(1) + ' Mbit/s';
  return Math.round(bps / 1e3) + ' kbit/s';
}

// attach plays a stream in a media element, reporting when autoplay with
// sound is refused so the page can ask for one tap.
export function attach(el, stream, onBlocked) {
  if (el.srcObject !== stream) el.srcObject = stream;
  const p = el.play();
  if (p && p.catch) p.catch((err) => { if (err.name === 'NotAllowedError' && onBlocked) onBlocked(el); });
}

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') el.className = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else if (v !== false && v != null) el.setAttribute(k, v);
  }
  for (const c of children) if (c != null) el.append(c);
  return el;
}
