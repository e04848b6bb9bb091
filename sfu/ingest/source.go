package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"podium/sfu"
)

// errLessonEnded stops a source whose lesson has ended.
var errLessonEnded = errors.New("lesson ended")

// Source is one registered RTSP camera or whiteboard: a participant of its
// lesson whose tracks are fed by successive RTSP sessions.
type Source struct {
	id     string
	lesson string
	cfg    SourceConfig // URL with credentials: never shown
	u      *url.URL
	scrub  scrubber
	room   *sfu.Room
	m      *Manager
	log    *slog.Logger
	epoch  time.Time

	cancel context.CancelCauseFunc
	done   chan struct{}
	// keyframeRequests counts subscribers' keyframe requests, which a
	// camera cannot honour: they wait for its next keyframe.
	keyframeRequests atomic.Uint64

	mu        sync.Mutex // guards the fields below
	state     State
	lastErr   string
	since     time.Time
	videoDesc string
	audioDesc string
	video     *videoOut
	audio     *audioOut
	vclock    *timeline // shared by sessions: continuity of output time
	aclock    *timeline

	reconnects   atomic.Uint64
	errorsTotal  atomic.Uint64
	sessionLive  atomic.Bool
	lastErrorLog atomic.Int64 // unix nanos of the last logged media error
}

// Info returns the source as the API shows it.
func (s *Source) Info() SourceInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	info := SourceInfo{
		ID: s.id, Lesson: s.lesson, Name: s.cfg.Name, Kind: s.cfg.Kind, Transport: s.cfg.Transport, Reencode: s.cfg.Reencode,
		URL: redactURL(s.u), State: s.state, LastError: s.lastErr, Since: s.since,
		Video: s.videoDesc, Audio: s.audioDesc, Tracks: []string{}, Reconnects: s.reconnects.Load(),
	}
	if s.video != nil {
		info.Tracks = append(info.Tracks, s.video.track.ID())
	}
	if s.audio != nil {
		info.Tracks = append(info.Tracks, s.audio.track.ID())
	}
	return info
}

func (s *Source) setState(st State, err error) {
	s.mu.Lock()
	changed := s.state != st
	if changed {
		s.state, s.since = st, time.Now()
	}
	if err != nil {
		s.lastErr = s.scrub.scrub(err.Error())
	}
	msg := s.lastErr
	s.mu.Unlock()
	if changed {
		if err != nil {
			s.log.Warn("source state", "state", st, "error", msg)
		} else {
			s.log.Info("source state", "state", st)
		}
	}
}

// reportError records a non-fatal media error (garbage from the camera, a
// picture without parameter sets): counted, shown in the API, logged at
// most every few seconds so a broken camera cannot flood the log.
func (s *Source) reportError(err error) {
	s.errorsTotal.Add(1)
	msg := s.scrub.scrub(err.Error())
	s.mu.Lock()
	s.lastErr = msg
	s.mu.Unlock()
	now := time.Now().UnixNano()
	last := s.lastErrorLog.Load()
	if now-last > int64(5*time.Second) && s.lastErrorLog.CompareAndSwap(last, now) {
		s.log.Warn("source media error", "error", msg)
	}
}

// markLive is called for every forwarded picture or audio packet; only the
// first of a session takes the lock.
func (s *Source) markLive() {
	if s.sessionLive.Load() {
		return
	}
	if s.sessionLive.CompareAndSwap(false, true) {
		s.setState(StateLive, nil)
	}
}

// requestKeyframe is the sfu.KeyframeRequester of the video track. An RTSP
// camera cannot be asked for a keyframe, and nothing is sent in its place:
// a picture sent again (the last keyframe, stamped just after the live
// picture) would reach every subscriber and the recorder, showing everyone
// a picture seconds old, then P-frames decoded against it (smeared video)
// until the camera's next real keyframe, and putting it in the recording
// out of its place. A subscriber that needs a keyframe (its down-track
// drops everything until one) waits for the camera's next one; for a camera
// with long keyframe intervals, transcoding the source shortens the wait.
func (s *Source) requestKeyframe(int) { s.keyframeRequests.Add(1) }

// ensureVideo publishes the video track on first use; it stays published
// across camera restarts so subscribers keep it.
func (s *Source) ensureVideo(desc string) (*videoOut, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.videoDesc = desc
	if s.video != nil {
		return s.video, nil
	}
	t := sfu.NewTrack(sfu.TrackInfo{
		ID: s.id + "-video", ParticipantID: s.id, Name: s.cfg.Name,
		Kind: sfu.KindVideo, Source: trackSource(s.cfg.Kind), Codec: h264Codec,
	}, s.requestKeyframe)
	if err := s.room.Publish(t); err != nil {
		return nil, fmt.Errorf("publish video: %w", err)
	}
	s.video = newVideoOut(t)
	s.vclock = newTimeline(90000, s.epoch)
	return s.video, nil
}

func (s *Source) ensureAudio(desc string) (*audioOut, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.audioDesc = desc
	if s.audio != nil {
		return s.audio, nil
	}
	t := sfu.NewTrack(sfu.TrackInfo{
		ID: s.id + "-audio", ParticipantID: s.id, Name: s.cfg.Name,
		Kind: sfu.KindAudio, Source: sfu.SourceMicrophone, Codec: opusCodec,
	}, nil)
	if err := s.room.Publish(t); err != nil {
		return nil, fmt.Errorf("publish audio: %w", err)
	}
	s.audio = newAudioOut(t)
	s.aclock = newTimeline(48000, s.epoch)
	return s.audio, nil
}

// run owns the source's life: sessions one after another, with capped
// exponential backoff between failures, until ctx ends.
func (s *Source) run(ctx context.Context) {
	defer close(s.done)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() { // the lesson ending stops the source
		defer wg.Done()
		select {
		case <-s.room.Done():
			s.cancel(errLessonEnded)
		case <-ctx.Done():
		}
	}()

	backoff := s.m.cfg.Backoff
	failures := 0
	for {
		s.sessionLive.Store(false)
		s.setState(StateConnecting, nil)
		err := s.runSession(ctx)
		if ctx.Err() != nil {
			break
		}
		if s.sessionLive.Load() {
			failures = 0 // it worked for a while: start the backoff over
		}
		failures++
		if err == nil {
			err = errors.New("stream ended")
		}
		s.setState(StateRetrying, err)
		wait := backoff.next(failures)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
			s.reconnects.Add(1)
			continue
		}
		break
	}
	cause := context.Cause(ctx)
	if errors.Is(cause, errLessonEnded) {
		s.setState(StateStopped, cause)
	} else {
		s.setState(StateStopped, nil)
	}
}

// describeError turns an RTSP failure into something an operator can act on.
func describeError(err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "401"):
		return fmt.Errorf("authentication failed: the camera rejected the user name or password (%w)", err)
	case strings.Contains(msg, "404"):
		return fmt.Errorf("stream not found on the camera: check the URL path (%w)", err)
	case strings.Contains(msg, "connection refused"):
		return fmt.Errorf("camera refused the connection: is it on and is the port right? (%w)", err)
	}
	return err
}
