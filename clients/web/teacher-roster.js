// The teacher's roster of classrooms: one entry per classroom for the
// whole life of the page (a classroom that drops out keeps its row and its
// place), rendered as a compact list that stays usable with 200 rows and as
// video tiles for the few that matter now (on stage, raised hand; every
// classroom when there are only a few).
//
// What a row says comes from the server's `dashboard` (docs/PROTOCOL.md,
// Dashboard): state, grade and what the classroom receives. Nothing shown
// is current unless this page's own link is live and the dashboard fresh:
// otherwise rows are greyed as reconnecting and never graded.
import { attach, h } from './podium.js';

// DASHBOARD_STALE_MS: a dashboard older than this (three of the server's
// 2 s intervals) no longer describes the classrooms.
const DASHBOARD_STALE_MS = 6000;
// AWAY_MS: a classroom that vanished without saying goodbye is expected
// back (reconnecting) for this long, then gone; as the server's grace.
const AWAY_MS = 60000;
// FEW: up to this many classrooms every one gets a tile; above it only the
// one on stage and raised hands do (at most MAX_TILES).
const FEW = 4;
const MAX_TILES = 6;

const GRADE_TEXT = { good: 'Good', fair: 'Fair', poor: 'Poor' };
const STATE_TEXT = { connecting: 'Connecting…', reconnecting: 'Reconnecting…', gone: 'Gone' };
const TRANSPORT_TEXT = { udp: 'UDP', tcp: 'TCP', turn: 'TURN', 'turn-udp': 'TURN/UDP', 'turn-tcp': 'TURN/TCP', 'turn-tls': 'TURN/TLS' };

export function isClassroom(p) { return p && (p.role === 'classroom' || p.role === 'source'); }

function setText(el, text) { if (el.textContent !== text) el.textContent = text; }
function setData(el, key, value) { if (el.dataset[key] !== value) el.dataset[key] = value; }

export function handIcon() {
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

export class Roster {
  // ui: {rows, grid, audios, empty, title, summary, filter, show};
  // actions: {stage(id), mute(id)}; say(text) writes to the chat log.
  constructor(session, ui, actions, say) {
    this.session = session;
    this.ui = ui;
    this.actions = actions;
    this.say = say;
    this.entries = new Map(); // participant id -> entry
    this.nextSeq = 0;
    this.videos = new Map(); // participant id -> MediaStream of its camera
    this.paused = new Map(); // server track id -> paused as the server has it
  }

  // syncPaused asks the server to send only the classroom pictures the
  // tiles show: with 200 classrooms the console would otherwise receive
  // and decode 200 videos. A paused picture stays negotiated, so a tile
  // that appears (a hand, the stage) shows it at the next keyframe.
  syncPaused(shown) {
    const s = this.session;
    if (s.state !== 'live') return;
    const pause = [], resume = [];
    for (const [trackId, info] of s.remote) {
      if (info.track.kind !== 'video' || !isClassroom(s.participants.get(info.participantId))) continue;
      const want = !shown.has(info.participantId);
      if ((this.paused.get(trackId) || false) === want) continue;
      this.paused.set(trackId, want);
      (want ? pause : resume).push(trackId);
    }
    for (const trackId of this.paused.keys()) if (!s.remote.has(trackId)) this.paused.delete(trackId);
    const send = (trackIds, paused) => {
      if (!trackIds.length) return;
      s.request('pause', { trackIds, paused }).catch(() => { for (const id of trackIds) this.paused.delete(id); });
    };
    send(resume, false);
    send(pause, true);
  }

  entry(p) {
    let e = this.entries.get(p.id);
    if (!e) {
      e = { id: p.id, seq: ++this.nextSeq, info: p, q: null, qAt: 0, seenAt: Date.now(), said: false, goneSaid: false, row: null, tile: null, audio: null };
      this.entries.set(p.id, e);
    }
    return e;
  }

  // joined: the page (re)joined; everyone listed is present now. Nobody is
  // announced: they were there already, or are coming back.
  joined() {
    this.paused.clear(); // a new server session sends everything at first
    const now = Date.now();
    for (const p of this.session.participants.values()) {
      if (!isClassroom(p)) continue;
      const e = this.entry(p);
      e.info = p;
      e.seenAt = now;
      e.said = false;
    }
    this.render();
  }

  // participantEvent announces, once, what a teacher needs to hear of.
  participantEvent(change, p, reason) {
    if (!isClassroom(p)) return;
    const known = this.entries.has(p.id);
    const e = this.entry(p);
    const handWas = !!e.info.handRaised;
    e.info = p;
    if (change === 'participantJoined') {
      e.seenAt = Date.now();
      e.said = false;
      if (!known) this.say(`${p.name} joined.`);
      else if (e.goneSaid) this.say(`${p.name} is back.`);
      e.goneSaid = false;
    }
    if (change === 'participantLeft') {
      e.seenAt = Date.now();
      e.info = { ...p, handRaised: false };
      // Only a goodbye is news now; a dropped link shows as reconnecting
      // and is announced if it does not come back.
      if (reason === 'left') { e.said = true; this.say(`${p.name} left.`); }
    }
    if (change === 'participantUpdated' && p.handRaised && !handWas) this.say(`${p.name} raised a hand.`);
    this.render();
  }

  remoteTrack(info) {
    const p = this.session.participants.get(info.participantId);
    if (!isClassroom(p)) return;
    const e = this.entry(p);
    if (info.track.kind === 'video') {
      this.videos.set(p.id, info.stream);
      if (e.tile) this.attachVideo(e);
      else this.render(); // not shown: paused
    } else {
      if (!e.audio) { e.audio = h('audio', { autoplay: true, 'data-participant': p.id }); this.ui.audios.append(e.audio); }
      attach(e.audio, info.stream);
    }
  }

  remoteTrackEnded(info) {
    if (info.track.kind === 'video' && this.videos.get(info.participantId) === info.stream) {
      this.videos.delete(info.participantId);
      const e = this.entries.get(info.participantId);
      if (e && e.tile) this.attachVideo(e);
    }
  }

  attachVideo(e) {
    const stream = this.videos.get(e.id);
    const t = e.tile;
    if (stream) { attach(t.video, stream); t.novideo.classList.add('hidden'); } else {
      if (t.video.srcObject) t.video.srcObject = null;
      t.novideo.classList.remove('hidden');
    }
  }

  // view computes what a row shows now.
  view(e, now) {
    const s = this.session;
    const live = s.state === 'live';
    const dash = s.dashboard;
    const fresh = live && dash && now - dash.at < DASHBOARD_STALE_MS;
    const q = fresh ? dash.classrooms.find((c) => c.id === e.id) || null : null;
    if (q) { e.q = q; e.qAt = dash.at; }
    const present = live && s.participants.has(e.id);
    if (present) e.seenAt = now;
    let state;
    if (!live) state = e.said ? 'gone' : 'reconnecting'; // our own link is down: nothing is current
    else if (q) state = q.state;
    else if (present) state = 'connecting';
    else state = e.said || now - e.seenAt > AWAY_MS ? 'gone' : 'reconnecting';
    if (state === 'gone' && !e.said && !e.goneSaid && live) { e.goneSaid = true; this.say(`${e.info.name} dropped out.`); }
    const last = e.q || {};
    return {
      state,
      grade: state === 'live' && q ? q.grade || '' : '',
      reasons: q ? q.reasons || [] : [],
      hand: state !== 'gone' && !!e.info.handRaised,
      mic: e.info.micMuted ? 'muted-by-' + (e.info.micMutedBy || 'self') : 'on',
      onStage: live && s.stage === e.id,
      speaking: live && s.speaking.includes(e.id),
      q: last,
    };
  }

  // order: raised hands first, then trouble (poor, reconnecting), then the
  // rest, the gone last; within each, the order they first appeared in, so
  // rows do not jump around when grades wobble or after a reconnect.
  static rank(v) {
    if (v.state === 'gone') return 3;
    if (v.hand) return 0;
    if (v.grade === 'poor' || v.state === 'reconnecting') return 1;
    return 2;
  }

  render() {
    const now = Date.now();
    const views = new Map();
    for (const e of this.entries.values()) views.set(e.id, this.view(e, now));
    const sorted = [...this.entries.values()].sort((a, b) => (Roster.rank(views.get(a.id)) - Roster.rank(views.get(b.id))) || (a.seq - b.seq));
    const words = (this.ui.filter.value || '').trim().toLowerCase();
    const show = this.ui.show.value;
    const wanted = sorted.filter((e) => {
      const v = views.get(e.id);
      if (words && !(e.info.name || '').toLowerCase().includes(words)) return false;
      if (show === 'hands') return v.hand;
      if (show === 'trouble') return v.grade === 'poor' || v.state === 'reconnecting';
      if (show === 'muted') return v.mic !== 'on';
      return true;
    });
    for (const e of wanted) this.renderRow(e, views.get(e.id));
    const rows = this.ui.rows;
    const want = wanted.map((e) => e.row);
    const have = [...rows.children];
    if (want.length !== have.length || want.some((r, i) => r !== have[i])) rows.replaceChildren(...want);
    this.renderTiles(sorted, views);

    const counts = { good: 0, fair: 0, poor: 0, reconnecting: 0, hands: 0, here: 0 };
    for (const v of views.values()) {
      if (v.state === 'gone') continue;
      counts.here++;
      if (v.grade) counts[v.grade]++;
      if (v.state === 'reconnecting') counts.reconnecting++;
      if (v.hand) counts.hands++;
    }
    setText(this.ui.title, `Classrooms (${counts.here})`);
    const parts = [];
    if (counts.hands) parts.push(`${counts.hands} hand${counts.hands > 1 ? 's' : ''} up`);
    for (const k of ['poor', 'reconnecting', 'fair', 'good']) if (counts[k]) parts.push(`${counts[k]} ${k}`);
    setText(this.ui.summary, parts.join(' · '));
    this.ui.empty.classList.toggle('hidden', this.entries.size > 0);
  }

  renderRow(e, v) {
    if (!e.row) {
      const c = {};
      const cell = (key, cls = '') => (c[key] = h('td', cls ? { class: cls } : {}));
      c.name = h('span', { class: 'cname' });
      c.grade = h('span', { class: 'grade' });
      c.hand = h('span', { class: 'rhand' }, handIcon(), 'Hand');
      c.mute = h('button', { type: 'button', class: 'mute-btn' }, 'Mute');
      c.stage = h('button', { type: 'button', class: 'stage-btn' }, 'Stage');
      c.mute.addEventListener('click', () => this.actions.mute(e.id));
      c.stage.addEventListener('click', () => this.actions.stage(this.session.stage === e.id ? '' : e.id));
      const tr = h('tr', { class: 'crow', 'data-participant': e.id, 'data-seq': String(e.seq) },
        h('th', { scope: 'row' }, c.name), h('td', {}, c.grade), cell('picture'), cell('fps', 'num'), cell('freezes', 'num'),
        cell('loss', 'num'), cell('rtt', 'num'), cell('link'), h('td', {}, c.hand), cell('mic'), h('td', { class: 'acts' }, c.mute, c.stage));
      e.row = tr;
      e.cells = c;
    }
    const c = e.cells;
    const q = v.q;
    const tr = e.row;
    setData(tr, 'state', v.state);
    setData(tr, 'grade', v.grade);
    setData(tr, 'hand', String(v.hand));
    setData(tr, 'mic', v.mic);
    tr.classList.toggle('onstage', v.onStage);
    tr.classList.toggle('speaking', v.speaking);
    setText(c.name, e.info.name || 'Classroom');
    setData(c.grade, 'grade', v.grade || v.state);
    setText(c.grade, v.grade ? GRADE_TEXT[v.grade] : STATE_TEXT[v.state] || '—');
    c.grade.title = v.reasons.length ? v.reasons.join('; ') : '';
    let picture = q.width ? `${q.width}×${q.height}` : '';
    if (q.layer === 'stills') picture += (picture ? ' · ' : '') + 'sound + stills';
    else if (q.layer) picture += (picture ? ' · ' : '') + (q.topLayer && q.topLayer !== q.layer ? `${q.layer} of ${q.topLayer}` : q.layer);
    setText(c.picture, picture || '—');
    setText(c.fps, q.fps !== undefined && q.state ? String(Math.round(q.fps)) : '—');
    setText(c.freezes, q.clientStats ? String(q.freezes) : '—');
    setText(c.loss, q.state ? (q.loss * 100).toFixed(1) + ' %' : '—');
    setText(c.rtt, q.rtt ? q.rtt + ' ms' : '—');
    setText(c.link, TRANSPORT_TEXT[q.transport] || '—');
    c.hand.classList.toggle('hidden', !v.hand);
    setText(c.mic, v.mic === 'on' ? 'On' : v.mic === 'muted-by-teacher' ? 'Muted by you' : 'Muted');
    setText(c.mute, e.info.micMuted ? 'Unmute' : 'Mute');
    c.mute.disabled = e.info.role !== 'classroom' || v.state === 'gone';
    setText(c.stage, v.onStage ? 'Off stage' : 'Stage');
    c.stage.disabled = v.state === 'gone';
  }

  renderTiles(sorted, views) {
    const here = sorted.filter((e) => views.get(e.id).state !== 'gone');
    let chosen;
    if (here.length <= FEW) chosen = here;
    else {
      chosen = here.filter((e) => views.get(e.id).onStage || views.get(e.id).hand);
      chosen.sort((a, b) => (views.get(b.id).onStage - views.get(a.id).onStage));
      chosen = chosen.slice(0, MAX_TILES);
    }
    const keep = new Set(chosen.map((e) => e.id));
    for (const e of this.entries.values()) {
      if (e.tile && !keep.has(e.id)) { e.tile.root.remove(); e.tile = null; }
    }
    const want = chosen.map((e) => {
      if (!e.tile) { e.tile = this.makeTile(e); this.attachVideo(e); }
      this.renderTile(e, views.get(e.id));
      return e.tile.root;
    });
    const have = [...this.ui.grid.children];
    if (want.length !== have.length || want.some((r, i) => r !== have[i])) this.ui.grid.replaceChildren(...want);
    this.ui.grid.classList.toggle('hidden', want.length === 0);
    this.syncPaused(keep);
    // Beside a long list the tiles are a strip of small pictures.
    this.ui.grid.classList.toggle('strip', here.length > FEW);
  }

  makeTile(e) {
    const id = e.id;
    const video = h('video', { autoplay: true, playsinline: true, muted: true });
    video.muted = true;
    const novideo = h('div', { class: 'novideo' }, 'Waiting for camera…');
    const hand = h('span', { class: 'hand hidden' }, handIcon(), 'Hand raised');
    const stageTag = h('span', { class: 'stage-tag hidden' }, 'ON STAGE');
    const mutedTag = h('span', { class: 'tag muted-tag hidden' }, 'Muted');
    const name = h('span', { class: 'name' });
    const bars = h('span', { class: 'bars', 'data-level': '' }, h('i'), h('i'), h('i'));
    const gradeText = h('span', { class: 'grade' });
    const stats = h('div', { class: 'stats' }, '');
    const stageBtn = h('button', { type: 'button', class: 'stage-btn' }, 'Put on stage');
    const muteBtn = h('button', { type: 'button', class: 'mute-btn' }, 'Mute');
    const videoBox = h('div', { class: 'video', title: 'Click to put this classroom on stage' }, video, novideo, hand, stageTag, mutedTag);
    const root = h('article', { class: 'tile', tabindex: '0', 'data-participant': id },
      videoBox, h('div', { class: 'meta' }, name, h('span', { class: 'badge' }, bars, gradeText)), stats,
      h('div', { class: 'actions' }, stageBtn, muteBtn));
    const toggleStage = () => this.actions.stage(this.session.stage === id ? '' : id);
    videoBox.addEventListener('click', toggleStage);
    stageBtn.addEventListener('click', toggleStage);
    root.addEventListener('keydown', (ev) => { if (ev.target === root && (ev.key === 'Enter' || ev.key === ' ')) { ev.preventDefault(); toggleStage(); } });
    muteBtn.addEventListener('click', () => this.actions.mute(id));
    return { root, video, novideo, hand, stageTag, mutedTag, name, bars, gradeText, stats, stageBtn, muteBtn };
  }

  renderTile(e, v) {
    const t = e.tile;
    const p = e.info;
    const q = v.q;
    setText(t.name, p.name || 'Classroom');
    t.root.setAttribute('aria-label', (p.name || 'Classroom') + (v.hand ? ', hand raised' : ''));
    setData(t.root, 'state', v.state);
    t.hand.classList.toggle('hidden', !v.hand);
    t.root.classList.toggle('hand-raised', v.hand);
    t.root.classList.toggle('onstage', v.onStage);
    t.stageTag.classList.toggle('hidden', !v.onStage);
    setText(t.stageBtn, v.onStage ? 'Take off stage' : 'Put on stage');
    t.root.classList.toggle('speaking', v.speaking);
    const muted = !!p.micMuted;
    t.mutedTag.classList.toggle('hidden', !muted);
    t.mutedTag.title = p.micMutedBy === 'teacher' ? 'You muted this classroom' : 'The classroom muted itself';
    setData(t.root, 'mic', v.mic);
    setText(t.muteBtn, muted ? 'Unmute' : 'Mute');
    t.muteBtn.disabled = p.role !== 'classroom';
    setData(t.bars, 'level', v.grade);
    setText(t.gradeText, v.grade ? GRADE_TEXT[v.grade] : STATE_TEXT[v.state] || '');
    t.bars.parentElement.title = v.reasons.join('; ');
    const bits = [];
    if (q.width) bits.push(`${q.width}×${q.height}${q.layer ? ' (' + q.layer + ')' : ''}`);
    if (q.state) bits.push(`${Math.round(q.fps || 0)} fps`, `loss ${((q.loss || 0) * 100).toFixed(1)} %`, `RTT ${q.rtt ? q.rtt + ' ms' : '—'}`);
    setText(t.stats, v.state === 'live' ? bits.join(' · ') || 'measuring…' : STATE_TEXT[v.state] || '');
  }

  // snapshot describes the rows in the order shown, for support and tests.
  snapshot() {
    return [...this.ui.rows.children].map((tr) => ({
      id: tr.dataset.participant, seq: +tr.dataset.seq, state: tr.dataset.state, grade: tr.dataset.grade, hand: tr.dataset.hand === 'true', mic: tr.dataset.mic,
    }));
  }
}
