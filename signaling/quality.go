package signaling

// The teacher's per-classroom dashboard: what each classroom actually
// receives, from the server's own view (the layer its down-track forwards,
// frames forwarded, RTCP receiver reports, the selected ICE pair) and from
// the classroom page's own `stats` reports (getStats: decoded frames per
// second, resolution, freezes, loss, RTT, transport), graded good / fair /
// poor by one rule (grade below, docs/PROTOCOL.md "Dashboard"). The board
// also remembers classrooms that dropped out, so the teacher sees them as
// reconnecting, then gone, instead of losing their row.

import (
	"math"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"podium/internal/httpx"
	"podium/sfu"
)

// StatsData is a client's `stats` report: what its page measures on its
// receiving connection. Counters are cumulative (since the page's
// connection started); the server takes the differences.
type StatsData struct {
	// Transport: "udp", "tcp", "turn-udp", "turn-tcp" or "turn-tls".
	Transport       string  `json:"transport,omitempty"`
	RTT             float64 `json:"rtt,omitempty"` // ms, of the selected candidate pair
	PacketsReceived uint64  `json:"packetsReceived"`
	PacketsLost     uint64  `json:"packetsLost"`
	// Video is one entry per received video track.
	Video []VideoStats `json:"video,omitempty"`
}

// VideoStats is one received video track in a `stats` report.
type VideoStats struct {
	TrackID       string  `json:"trackId"`
	Width         int     `json:"width"`
	Height        int     `json:"height"`
	FPS           float64 `json:"fps"`
	FramesDecoded uint64  `json:"framesDecoded"`
	Freezes       uint64  `json:"freezes"` // Chromium's freezeCount
}

const (
	maxStatsVideo = 16
	// statsFresh is how long a client's report stands for its page: a
	// page that stopped reporting (an old page, a pion client) is judged
	// by the server's view alone.
	statsFresh = 8 * time.Second
	// freezeWindow is the span "freezes in the last minute" counts.
	freezeWindow = time.Minute
	// reconnectGrace is how long a classroom that dropped out (without
	// saying goodbye) shows as reconnecting before it is gone; a dropped
	// link rejoins within seconds (the pages back off to 15 s at most).
	reconnectGrace = 60 * time.Second
	// maxBoardRows bounds the rows a lesson keeps; the longest gone go
	// first.
	maxBoardRows = 1000
)

var statsTransports = map[string]bool{"": true, "udp": true, "tcp": true, "turn-udp": true, "turn-tcp": true, "turn-tls": true}

// check refuses a report a page could not have measured; a bad report
// changes nothing.
func (d *StatsData) check() error {
	if !statsTransports[d.Transport] {
		return perr(CodeBadRequest, "transport must be udp, tcp, turn-udp, turn-tcp or turn-tls")
	}
	if !finiteIn(d.RTT, 0, 60_000) {
		return perr(CodeBadRequest, "rtt must be 0 to 60000 ms")
	}
	if len(d.Video) > maxStatsVideo {
		return perr(CodeBadRequest, "at most %d video entries", maxStatsVideo)
	}
	for _, v := range d.Video {
		if v.TrackID == "" || len(v.TrackID) > maxIDLen {
			return perr(CodeBadRequest, "every video entry needs a trackId of at most %d characters", maxIDLen)
		}
		if v.Width < 0 || v.Width > 16384 || v.Height < 0 || v.Height > 16384 {
			return perr(CodeBadRequest, "width and height must be 0 to 16384")
		}
		if !finiteIn(v.FPS, 0, 1000) {
			return perr(CodeBadRequest, "fps must be 0 to 1000")
		}
	}
	return nil
}

func finiteIn(v, lo, hi float64) bool { return !math.IsNaN(v) && v >= lo && v <= hi }

// Dashboard states of a classroom.
const (
	StateConnecting   = "connecting"   // joined, media not connected yet
	StateLive         = "live"         // connected
	StateReconnecting = "reconnecting" // media link down, or dropped out and expected back
	StateGone         = "gone"         // left, or away longer than reconnectGrace
)

// Grades.
const (
	GradeGood = "good"
	GradeFair = "fair"
	GradePoor = "poor"
)

// DashboardData is `dashboard`, to the teacher every quality interval.
type DashboardData struct {
	Classrooms []ClassroomQuality `json:"classrooms"`
}

// ClassroomQuality is one classroom's row. Measures are omitted when
// unknown; Grade is empty unless the classroom is live.
type ClassroomQuality struct {
	ID     string   `json:"id"`
	Name   string   `json:"name"`
	Role   sfu.Role `json:"role"`
	Seq    int      `json:"seq"` // first seen in this lesson, for a stable order
	State  string   `json:"state"`
	Grade  string   `json:"grade,omitempty"`
	Reason []string `json:"reasons,omitempty"` // why not good
	// Layer is the simulcast layer of the teacher's camera forwarded now
	// ("q", "h", "f"; "" without simulcast; "stills" when the classroom's
	// link carries only audio and a still picture every few seconds),
	// TopLayer the best one the teacher sends that the classroom did not
	// cap itself below.
	Layer    string  `json:"layer,omitempty"`
	TopLayer string  `json:"topLayer,omitempty"`
	Width    int     `json:"width,omitempty"`
	Height   int     `json:"height,omitempty"`
	FPS      float64 `json:"fps"`
	Freezes  int     `json:"freezes"` // in the last minute
	Loss     float64 `json:"loss"`    // 0..1
	RTT      int     `json:"rtt"`     // ms, 0 unknown
	// Transport: "udp", "tcp", "turn" (or, from the page, "turn-udp",
	// "turn-tcp", "turn-tls").
	Transport   string `json:"transport,omitempty"`
	Bitrate     uint64 `json:"bitrate"` // bit/s the server sends it
	HandRaised  bool   `json:"handRaised"`
	MicMuted    bool   `json:"micMuted"`
	MicMutedBy  string `json:"micMutedBy,omitempty"`
	ClientStats bool   `json:"clientStats"` // the page's own report is part of it
	AwayMs      int64  `json:"awayMs,omitempty"`
}

// boardSet holds one board per live lesson.
type boardSet struct {
	mu     sync.Mutex
	boards map[string]*board
}

// boardFor returns the room's board, making it on first use.
func (bs *boardSet) boardFor(room *sfu.Room) *board {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if b := bs.boards[room.ID()]; b != nil && b.room == room {
		return b
	}
	if bs.boards == nil {
		bs.boards = map[string]*board{}
	}
	b := &board{room: room, rows: map[string]*row{}}
	unlisten := room.OnEvent(func(e sfu.Event) {
		if e.Type == sfu.EventLessonEnded {
			b.stop()
			bs.mu.Lock()
			if bs.boards[room.ID()] == b {
				delete(bs.boards, room.ID())
			}
			bs.mu.Unlock()
			return
		}
		b.event(e)
	})
	// Listening first, then who is there already: a join in between is
	// seen either way.
	b.mu.Lock()
	b.unlisten = unlisten
	for _, p := range room.Participants() {
		if b.rows[p.ID] == nil {
			b.joinedLocked(p)
		}
	}
	ended := b.ended
	b.mu.Unlock()
	if ended || room.Ended() {
		b.stop()
	}
	bs.boards[room.ID()] = b
	return b
}

// stop stops listening to the room (the lesson ended).
func (b *board) stop() {
	b.mu.Lock()
	b.ended = true
	un := b.unlisten
	b.unlisten = nil
	b.mu.Unlock()
	if un != nil {
		un()
	}
}

// board is one lesson's dashboard state.
type board struct {
	room *sfu.Room

	mu       sync.Mutex
	unlisten func() // nil once stopped
	ended    bool
	rows     map[string]*row
	nextSeq  int
	last     time.Time // when snap was built
	snap     []ClassroomQuality
}

// row is what the board knows of one classroom.
type row struct {
	info    sfu.ParticipantInfo
	seq     int
	present bool
	leftAt  time.Time
	said    bool // left saying goodbye: gone at once

	// The page's reports.
	report     StatsData
	reportAt   time.Time
	lossClient float64 // over the last report interval
	freezes    []freezeSample

	// Frames the server forwarded of the main video, for its rate.
	framesTrack string
	framesSent  uint64
	framesAt    time.Time
	fpsServer   float64
}

type freezeSample struct {
	at time.Time
	n  uint64
}

func dashboardRole(r sfu.Role) bool { return r == sfu.RoleClassroom || r == sfu.RoleSource }

func (b *board) event(e sfu.Event) {
	if e.Participant == nil || !dashboardRole(e.Participant.Role) {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	switch e.Type {
	case sfu.EventParticipantJoined:
		b.joinedLocked(*e.Participant)
	case sfu.EventParticipantUpdated:
		if r := b.rows[e.Participant.ID]; r != nil {
			r.info = *e.Participant
		}
	case sfu.EventParticipantLeft:
		if r := b.rows[e.Participant.ID]; r != nil {
			r.present = false
			r.leftAt = e.Time
			r.said = e.Reason == "left"
		}
	}
}

func (b *board) joinedLocked(p sfu.ParticipantInfo) {
	if !dashboardRole(p.Role) {
		return
	}
	r := b.rows[p.ID]
	if r == nil {
		if len(b.rows) >= maxBoardRows {
			b.dropOldestGoneLocked()
		}
		b.nextSeq++
		r = &row{seq: b.nextSeq}
		b.rows[p.ID] = r
	}
	// A rejoin is a new page connection: its counters start again.
	*r = row{info: p, seq: r.seq, present: true}
}

func (b *board) dropOldestGoneLocked() {
	var oldest string
	var at time.Time
	for id, r := range b.rows {
		if !r.present && (oldest == "" || r.leftAt.Before(at)) {
			oldest, at = id, r.leftAt
		}
	}
	if oldest != "" {
		delete(b.rows, oldest)
	}
}

// report takes a classroom page's `stats`.
func (b *board) report(pid string, d StatsData, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.rows[pid]
	if r == nil || !r.present {
		return
	}
	prev := r.report
	if !r.reportAt.IsZero() {
		recv := counterDelta(prev.PacketsReceived, d.PacketsReceived)
		lost := counterDelta(prev.PacketsLost, d.PacketsLost)
		r.lossClient = 0
		if recv+lost > 0 {
			r.lossClient = float64(lost) / float64(recv+lost)
		}
		var frozen uint64
		for _, v := range d.Video {
			old := uint64(0)
			for _, pv := range prev.Video {
				if pv.TrackID == v.TrackID {
					old = pv.Freezes
				}
			}
			frozen += counterDelta(old, v.Freezes)
		}
		if frozen > 0 {
			r.freezes = append(r.freezes, freezeSample{at: now, n: frozen})
		}
	}
	r.pruneFreezes(now)
	r.report, r.reportAt = d, now
}

// counterDelta is how much a cumulative counter grew; a counter that went
// down was restarted (a new peer connection) and counts from zero.
func counterDelta(prev, now uint64) uint64 {
	if now < prev {
		return now
	}
	return now - prev
}

func (r *row) pruneFreezes(now time.Time) {
	i := 0
	for i < len(r.freezes) && now.Sub(r.freezes[i].at) > freezeWindow {
		i++
	}
	r.freezes = r.freezes[i:]
}

func (r *row) freezesInWindow() int {
	n := 0
	for _, f := range r.freezes {
		n += int(f.n)
	}
	return n
}

// snapshot returns every row, built at most once per half interval however
// many teachers ask.
func (b *board) snapshot(now time.Time, interval time.Duration, participants []*sfu.Participant) []ClassroomQuality {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.snap != nil && now.Sub(b.last) < interval/2 {
		return b.snap
	}
	byID := make(map[string]*sfu.Participant, len(participants))
	for _, p := range participants {
		byID[p.ID()] = p
	}
	teachers := map[string]bool{}
	for _, p := range b.room.Participants() {
		if p.Role == sfu.RoleTeacher {
			teachers[p.ID] = true
		}
	}
	out := make([]ClassroomQuality, 0, len(b.rows))
	for _, r := range b.rows {
		out = append(out, b.rowQuality(r, byID[r.info.ID], teachers, now))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	b.snap, b.last = out, now
	return out
}

func (b *board) rowQuality(r *row, p *sfu.Participant, teachers map[string]bool, now time.Time) ClassroomQuality {
	q := ClassroomQuality{
		ID: r.info.ID, Name: r.info.Name, Role: r.info.Role, Seq: r.seq,
		HandRaised: r.info.HandRaised, MicMuted: r.info.MicMuted, MicMutedBy: r.info.MicMutedBy,
	}
	if !r.present {
		q.HandRaised = false
		q.AwayMs = now.Sub(r.leftAt).Milliseconds()
		q.State = StateReconnecting
		if r.said || now.Sub(r.leftAt) > reconnectGrace {
			q.State = StateGone
		}
		return q
	}
	r.pruneFreezes(now)
	q.State = StateLive
	if p == nil || r.info.Role == sfu.RoleSource {
		return q // a camera receives nothing; nothing to grade
	}
	srv := p.Quality()
	rs := p.ReceiveStats()
	switch rs.Connection {
	case "", "connected": // "": nothing to receive yet, nothing wrong
	case "new", "connecting":
		q.State = StateConnecting
	default: // disconnected, failed, closed
		q.State = StateReconnecting
	}
	q.Bitrate = srv.SendBitrate
	q.Loss = srv.Loss
	q.RTT = int(srv.RTT.Milliseconds())
	q.Transport = rs.Transport

	main, ok := b.mainVideo(rs.Video, teachers)
	if ok {
		if main.Layer >= 0 && main.Layer < len(main.Layers) {
			q.Layer = layerName(main.Layers, main.Layer)
		}
		if main.Stills {
			q.Layer = "stills"
		}
		q.TopLayer = layerName(main.Layers, main.Top)
		// The forwarded frame rate, from the counter's growth.
		if r.framesTrack == main.TrackID && !r.framesAt.IsZero() {
			if secs := now.Sub(r.framesAt).Seconds(); secs > 0 {
				r.fpsServer = float64(counterDelta(r.framesSent, main.FramesSent)) / secs
			}
		} else {
			r.fpsServer = 0
		}
		r.framesTrack, r.framesSent, r.framesAt = main.TrackID, main.FramesSent, now
		q.FPS = round1(r.fpsServer)
	}
	fresh := !r.reportAt.IsZero() && now.Sub(r.reportAt) <= statsFresh
	if fresh {
		q.ClientStats = true
		q.Freezes = r.freezesInWindow()
		q.Loss = math.Max(q.Loss, r.lossClient)
		if q.RTT == 0 {
			q.RTT = int(r.report.RTT)
		}
		if r.report.Transport != "" {
			q.Transport = r.report.Transport
		}
		for _, v := range r.report.Video {
			if ok && v.TrackID == main.TrackID {
				q.Width, q.Height, q.FPS = v.Width, v.Height, round1(v.FPS)
			}
		}
	}
	q.Loss = math.Round(q.Loss*1000) / 1000
	if q.State == StateLive {
		q.Grade, q.Reason = grade(q, ok, main, r.fpsServer)
	}
	return q
}

// mainVideo picks what a classroom mostly watches: the teacher's camera,
// else another of the teacher's pictures, else any.
func (b *board) mainVideo(vs []sfu.VideoForward, teachers map[string]bool) (sfu.VideoForward, bool) {
	best, rank := sfu.VideoForward{}, 0
	for _, v := range vs {
		t, ok := b.room.Track(v.TrackID)
		if !ok {
			continue
		}
		info := t.Info()
		r := 1
		if teachers[info.ParticipantID] {
			r = 2
			if info.Source == sfu.SourceCamera {
				r = 3
			}
		}
		if r > rank || (r == rank && v.TrackID < best.TrackID) {
			best, rank = v, r
		}
	}
	return best, rank > 0
}

func layerName(layers []string, i int) string {
	if i < 0 || i >= len(layers) {
		return ""
	}
	return layers[i]
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }

// The grading rule (docs/PROTOCOL.md): the worst of
//
//	measure                          fair from   poor from
//	freezes in the last minute        1           5
//	loss (server or page, the worse)  2 %         8 %
//	round-trip time                   250 ms      600 ms
//	teacher's camera layer            below top   lowest while top is 2 above; stills
//	decoded / forwarded frame rate    < 0.8       < 0.5
//
// Bitrate is not graded: a still slide needs almost none.
const (
	freezesFair, freezesPoor = 1, 5
	lossFair, lossPoor       = 0.02, 0.08
	rttFair, rttPoor         = 250, 600
	fpsRatioFair, fpsPoor    = 0.8, 0.5
	// minForwardedFPS: below it the ratio says nothing (a slide at 1 fps).
	minForwardedFPS = 5
)

func grade(q ClassroomQuality, haveVideo bool, main sfu.VideoForward, fpsForwarded float64) (string, []string) {
	level := 0
	var why []string
	note := func(l int, format string) {
		if l > level {
			level = l
		}
		if l > 0 {
			why = append(why, format)
		}
	}
	switch {
	case q.Freezes >= freezesPoor:
		note(2, itoa(q.Freezes)+" freezes in the last minute")
	case q.Freezes >= freezesFair:
		note(1, itoa(q.Freezes)+" freeze(s) in the last minute")
	}
	switch {
	case q.Loss >= lossPoor:
		note(2, pct(q.Loss)+" loss")
	case q.Loss >= lossFair:
		note(1, pct(q.Loss)+" loss")
	}
	switch {
	case q.RTT >= rttPoor:
		note(2, itoa(q.RTT)+" ms round trip")
	case q.RTT >= rttFair:
		note(1, itoa(q.RTT)+" ms round trip")
	}
	if haveVideo && main.Stills {
		note(2, "audio and stills only: the link cannot carry video")
	} else if haveVideo && main.Layer >= 0 && main.Layer < main.Top {
		l := 1
		if main.Layer == 0 && main.Top >= 2 {
			l = 2
		}
		note(l, "layer "+layerName(main.Layers, main.Layer)+" of "+layerName(main.Layers, main.Top))
	}
	if q.ClientStats && haveVideo && fpsForwarded >= minForwardedFPS {
		ratio := q.FPS / fpsForwarded
		switch {
		case ratio < fpsPoor:
			note(2, "shows "+itoa(int(q.FPS))+" of "+itoa(int(math.Round(fpsForwarded)))+" fps")
		case ratio < fpsRatioFair:
			note(1, "shows "+itoa(int(q.FPS))+" of "+itoa(int(math.Round(fpsForwarded)))+" fps")
		}
	}
	return [...]string{GradeGood, GradeFair, GradePoor}[level], why
}

func itoa(n int) string { return strconv.Itoa(n) }

func pct(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + " %" }

// statsRate lets a page report every 2 s with room for a late timer; a
// page sending faster gets rate_limited.
var statsRate = bucket{rate: 1, burst: 3}

// stats takes a page's `stats` report. Pages send it without an id and
// get no reply; one with an id gets `ok`. A bad one gets an error and
// changes nothing.
func (s *session) stats(m Message, room *sfu.Room) (*Message, error) {
	var d StatsData
	if err := decodeData(m, &d); err != nil {
		return nil, err
	}
	if err := d.check(); err != nil {
		return nil, err
	}
	if !s.statsLimit.allow(time.Now()) {
		return nil, perr(CodeRateLimited, "stats at most once a second")
	}
	if dashboardRole(s.claims.Role) {
		s.srv.boards.boardFor(room).report(s.pid, d, time.Now())
	}
	if m.ID == "" {
		return nil, nil
	}
	return ok(m.ID), nil
}

// sendDashboard sends the teacher its lesson's `dashboard`.
func (s *session) sendDashboard() {
	room := s.currentRoom()
	if room == nil {
		return
	}
	rows := s.srv.boards.boardFor(room).snapshot(time.Now(), s.srv.cfg.QualityInterval, s.srv.roomParticipants(s.roomID))
	s.send(encode("dashboard", "", DashboardData{Classrooms: rows}))
}

// getDashboard answers GET /api/lessons/{id}/dashboard: the teacher's
// dashboard, for the lesson's admins (who hold no websocket).
func (s *Server) getDashboard(w http.ResponseWriter, r *http.Request) {
	room, ok := s.lessonFor(w, r)
	if !ok {
		return
	}
	rows := s.boards.boardFor(room).snapshot(time.Now(), s.cfg.QualityInterval, s.roomParticipants(room.ID()))
	httpx.WriteJSON(w, http.StatusOK, DashboardData{Classrooms: rows})
}
