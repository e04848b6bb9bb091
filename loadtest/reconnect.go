package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Reconnecting as the web pages do (clients/web/podium.js), so that a
// server restart costs what it costs a real classroom: after a lost link,
// wait a backoff of 0.5 s doubling to 15 s (each wait a random point in
// its upper half; a successful join starts over), then join again. A
// classroom refused before the upgrade because its lesson is not live (its
// teacher is not back yet) asks again every 5 s.
const (
	backoffMin      = 500 * time.Millisecond
	backoffMax      = 15 * time.Second
	notRunningRetry = 5 * time.Second
)

// backoff is the wait before the attempt-th retry (0 first).
func backoff(attempt int) time.Duration {
	base := backoffMax
	if attempt < 5 {
		base = min(backoffMax, backoffMin<<attempt)
	}
	return base/2 + rand.N(base/2+1)
}

// dialError is a websocket upgrade the server refused with an HTTP status.
type dialError struct {
	status int
	msg    string
}

func (e *dialError) Error() string { return "websocket: " + e.msg }

// lessonNotLive reports whether a join failed because the lesson is not
// live on the server (yet): the pages then wait notRunningRetry.
func lessonNotLive(err error) bool {
	var de *dialError
	return errors.As(err, &de) && de.status == http.StatusNotFound
}

// stayJoined keeps a websocket participant in its lesson until ctx ends:
// it joins (publishing plan), runs live while the link holds, and after a
// lost link tears everything down and joins again, as the pages do. live
// gets a context that ends with the link.
func (s *session) stayJoined(ctx context.Context, plan mediaPlan, autoSubscribe bool, live func(ctx context.Context)) {
	attempt := 0
	for ctx.Err() == nil {
		err := s.publishWS(ctx, plan, autoSubscribe)
		delay := time.Duration(0)
		switch {
		case err == nil:
			attempt = 0
			linkCtx, cancel := context.WithCancel(ctx)
			liveDone := make(chan struct{})
			go func() { defer close(liveDone); live(linkCtx) }()
			select {
			case <-s.ws.ended:
			case <-liveDone: // its connection failed: the pages rejoin too
			case <-ctx.Done():
			}
			cancel()
			<-liveDone
			if ctx.Err() != nil {
				return
			}
			if s.stats != nil {
				s.stats.linkLost(time.Now())
			}
			s.r.log.Debug("link lost", "participant", s.name, "err", s.ws.err)
			delay = backoff(attempt)
			attempt++
		case lessonNotLive(err):
			delay = notRunningRetry
		default:
			s.r.log.Debug("rejoin", "participant", s.name, "err", err)
			delay = backoff(attempt)
			attempt++
		}
		s.teardown()
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
}

// teachRejoining runs a teacher that rejoins by itself (stayJoined) on a
// goroutine counted in players, and returns once it is publishing for the
// first time.
func (s *session) teachRejoining(ctx context.Context, plan mediaPlan, players *sync.WaitGroup) error {
	first := make(chan struct{})
	var once sync.Once
	players.Add(1)
	go func() {
		defer players.Done()
		s.stayJoined(ctx, plan, false, func(ctx context.Context) {
			if err := waitConnected(ctx, s.pub.pc, 15*time.Second); err != nil {
				s.r.log.Debug("teacher connection", "lesson", s.l.id, "err", err)
				return
			}
			once.Do(func() { close(first) })
			if err := s.pub.play(ctx); err != nil && ctx.Err() == nil {
				s.r.log.Error("teacher media", "lesson", s.l.id, "err", err)
			}
		})
	}()
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case <-first:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return errors.New("not publishing after 30 s")
	}
}

// fillRecovery reports how classrooms came back after the server did:
// for each classroom that lost its link, the time from the server
// answering /readyz again to the teacher's first video frame on its new
// connection, and to the milestones of its rejoin on the way.
func (rep *Report) fillRecovery(all []*classroomStats, w *serverWatch) {
	rep.Recovery = &RecoveryReport{ServerRestarts: w.outages()}
	var frame []float64
	steps := map[string][]float64{}
	for _, s := range all {
		s.mu.Lock()
		lost, recovered := s.lostAt, s.recoveredAt
		at := map[string]time.Time{"1 joined": s.rejoinedAt, "2 offer": s.reofferAt, "3 connected": s.reconnectedAt}
		s.mu.Unlock()
		if lost.IsZero() {
			continue
		}
		rep.Recovery.LostLink++
		back := w.backAfter(lost)
		if back.IsZero() {
			continue
		}
		for k, t := range at {
			if !t.IsZero() {
				steps[k] = append(steps[k], float64(max(0, t.Sub(back)))/float64(time.Millisecond))
			}
		}
		if !recovered.IsZero() {
			rep.Recovery.Recovered++
			frame = append(frame, float64(max(0, recovered.Sub(back)))/float64(time.Millisecond))
		}
	}
	rep.Recovery.RestartToFirstFrameMs = distOf(frame)
	rep.Recovery.StepsMs = map[string]Dist{}
	for k, v := range steps {
		rep.Recovery.StepsMs[k] = distOf(v)
	}
}

// teardown closes the session's socket and connections for a rejoin; the
// link emulator and the statistics stay.
func (s *session) teardown() {
	s.closeConns()
	s.ws, s.pub, s.sub = nil, nil, nil
	if s.stats != nil {
		s.stats.video.newRun()
		s.stats.audio.newRun()
		s.stats.other.newRun()
	}
}

// serverWatch follows whether the server answers /readyz, so recovery can
// be measured from the moment it is back.
type serverWatch struct {
	url    string
	client *http.Client

	mu      sync.Mutex
	up      bool
	down    time.Time   // the current outage began (zero while up)
	back    []time.Time // when the server answered again after each outage
	started string      // the run of the server that answered last (its /readyz "started")
}

func newServerWatch(base string) *serverWatch {
	b, _, _ := strings.Cut(base, "?")
	return &serverWatch{url: strings.TrimSuffix(b, "/") + "/readyz", client: &http.Client{Timeout: time.Second}, up: true}
}

// run probes every 100 ms until ctx ends.
func (w *serverWatch) run(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, w.url, nil)
		resp, err := w.client.Do(req)
		ok := err == nil && resp.StatusCode == http.StatusOK
		var ready struct {
			Started string `json:"started"`
		}
		if resp != nil {
			if ok {
				_ = json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&ready)
			}
			resp.Body.Close()
		}
		if ctx.Err() != nil {
			return
		}
		now := time.Now()
		w.mu.Lock()
		switch {
		case w.up && !ok:
			w.up, w.down = false, now
		case !w.up && ok:
			w.up, w.down = true, time.Time{}
			w.back = append(w.back, now)
		case ok && ready.Started != "" && w.started != "" && ready.Started != w.started:
			// Killed and started again between two probes.
			w.back = append(w.back, now)
		}
		if ok && ready.Started != "" {
			w.started = ready.Started
		}
		w.mu.Unlock()
	}
}

// backAfter returns when the server first answered again after t, or
// zero when it has not.
func (w *serverWatch) backAfter(t time.Time) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, b := range w.back {
		if b.After(t) {
			return b
		}
	}
	return time.Time{}
}

// outages returns how many times the server went away and came back.
func (w *serverWatch) outages() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.back)
}
