package vod

// Raw playback: a lesson's recording, as the recorder stored it (fMP4 init
// and media segments per track), served as HLS straight from its manifest.
// Nothing is encoded: the playlists are written on request, and a segment
// is sent as stored or, when its track began after the lesson, with its
// decode times moved onto the lesson's clock. So a lesson is watchable
// while it runs (an EVENT playlist that grows as segments are uploaded:
// a classroom that lost its link catches up) and the moment it ends (the
// same playlist with an end), until the transcoded replay takes over.
//
//	/api/vod/raw/{lesson}/master.m3u8             the teacher's camera, the teacher's voice as its audio rendition
//	/api/vod/raw/{lesson}/rec/{track}/index.m3u8  one track's media playlist (EXT-X-MAP + segments)
//	/api/vod/raw/{lesson}/rec/{track}/init.mp4    the stored init segment
//	/api/vod/raw/{lesson}/rec/{track}/{seq}.m4s   a stored media segment (?off= ticks to shift it by)

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"

	"podium/internal/httpx"
	"podium/storage"
)

// Playback kinds in the lesson API (Lesson.Playback).
const (
	// PlaybackTranscoded is the transcode's ladder and composite.
	PlaybackTranscoded = "transcoded"
	// PlaybackRaw is the recording as recorded: the teacher's camera and
	// voice (raw HLS).
	PlaybackRaw = "raw"
	// PlaybackRawAudio is the recording's voice alone: the recorded
	// camera is VP8, which HLS players (hls.js through MSE, Safari) cannot
	// play from fMP4, so its picture comes with the transcode; or, early
	// in a live lesson, no segment of the camera is in storage yet.
	PlaybackRawAudio = "raw-audio"
)

// liveLinkLife is how long the media playlist links in a live lesson's raw
// master playlist work: a viewer keeps reloading them for as long as the
// lesson runs, which nobody knows in advance.
const liveLinkLife = 6 * time.Hour

// rawPath matches what the raw route serves under a lesson.
var rawPath = regexp.MustCompile(`^(?:master\.m3u8|rec/([A-Za-z0-9_-]{1,128})/(index\.m3u8|init\.mp4|[0-9]{1,9}\.m4s))$`)

// rawTrack is a recorded track placed on the raw replay's clock.
type rawTrack struct {
	t     *ManifestTrack
	rate  uint32
	start time.Time // wall-clock time of its media time 0
	// off is added to the track's decode times (ticks): its first sample
	// then sits as far after the replay's start as it was recorded.
	off int64
}

// rawSeg is one media segment on the replay's clock.
type rawSeg struct {
	seg      ManifestSegment
	duration float64 // seconds, up to the next segment (a hole is folded in)
}

// rawPartnerWait bounds how long a live lesson's raw replay waits for its
// second track's first segment (a segment's length and an upload).
const rawPartnerWait = 15 * time.Second

// rawPlan is what the raw replay of a lesson plays.
type rawPlan struct {
	video, audio *rawTrack // either may be nil
	// origin is the wall-clock time of the replay's t=0: the earlier of
	// the two tracks' starts. Not the lesson's start: players begin where
	// the picture's first segment does, so a camera that came minutes
	// after the lesson was opened would put every chapter that far off.
	origin time.Time
}

// playback names the plan's kind ("" when nothing is playable).
func (p rawPlan) playback() string {
	switch {
	case p.video != nil:
		return PlaybackRaw
	case p.audio != nil:
		return PlaybackRawAudio
	}
	return ""
}

// planRaw picks the tracks of a raw replay: for the picture the teacher's
// camera, else the teacher's screen, else any other H.264 video (an RTSP
// camera, a WHIP encoder); for the sound the teacher's microphone, else any
// Opus track. Only tracks with an init segment and media are taken.
func planRaw(m *Manifest) rawPlan {
	var p rawPlan
	rank := func(t *ManifestTrack, source string) int {
		r := 0
		if t.Role == "teacher" {
			r += 2
		}
		if t.Source == source {
			r++
		}
		return r
	}
	bestVideo, bestAudio := -1, -1
	videoComing, audioComing := false, false // recorded, nothing stored yet
	for i := range m.Tracks {
		t := &m.Tracks[i]
		if t.Init == "" || len(t.Segments) == 0 {
			videoComing = videoComing || (t.Kind == "video" && t.Codec == "h264")
			audioComing = audioComing || (t.Kind == "audio" && t.Codec == "opus")
			continue
		}
		switch {
		case t.Kind == "video" && t.Codec == "h264":
			if r := rank(t, "camera"); r > bestVideo {
				bestVideo, p.video = r, &rawTrack{t: t}
			}
		case t.Kind == "audio" && t.Codec == "opus":
			if r := rank(t, "microphone"); r > bestAudio {
				bestAudio, p.audio = r, &rawTrack{t: t}
			}
		}
	}
	// A player reads the master playlist once: while the lesson runs, the
	// picture is not offered without the sound whose first segment is on
	// its way (nor the other way round), for up to rawPartnerWait.
	if !m.Complete {
		waiting := func(have *rawTrack, coming bool) bool {
			return have != nil && coming && time.Since(have.t.Segments[0].Start) < rawPartnerWait
		}
		if (p.audio == nil && waiting(p.video, audioComing)) || (p.video == nil && waiting(p.audio, videoComing)) {
			return rawPlan{}
		}
	}
	// The recorder counts a track's media time from the track's own first
	// sample (its first segment's wall-clock start), so tracks that began
	// at different moments line up once each is moved by its start.
	var tracks []*rawTrack
	for _, rt := range []*rawTrack{p.video, p.audio} {
		if rt == nil {
			continue
		}
		rt.rate = rt.t.TimeScale
		if rt.rate == 0 {
			rt.rate = 90000
			if rt.t.Codec == "opus" {
				rt.rate = 48000
			}
		}
		first := rt.t.Segments[0]
		rt.start = first.Start.Add(-ticksDuration(first.MediaStart, rt.rate))
		if p.origin.IsZero() || rt.start.Before(p.origin) {
			p.origin = rt.start
		}
		tracks = append(tracks, rt)
	}
	for _, rt := range tracks {
		rt.off = int64(math.Round(rt.start.Sub(p.origin).Seconds() * float64(rt.rate)))
	}
	return p
}

func ticksDuration(ticks uint64, rate uint32) time.Duration {
	return time.Duration(float64(ticks) / float64(rate) * float64(time.Second))
}

// segments lists the track's segments, each lasting until the next one
// starts (a hole in the track, a publisher away, stays a hole in time
// rather than pulling what follows earlier).
func (rt *rawTrack) segments() []rawSeg {
	segs := rt.t.Segments
	out := make([]rawSeg, 0, len(segs))
	for i, s := range segs {
		end := s.MediaStart + rt.mediaDuration(s)
		if i+1 < len(segs) {
			end = max(end, segs[i+1].MediaStart)
		}
		out = append(out, rawSeg{seg: s, duration: float64(end-s.MediaStart) / float64(rt.rate)})
	}
	return out
}

func (rt *rawTrack) mediaDuration(s ManifestSegment) uint64 {
	if s.MediaDuration > 0 {
		return s.MediaDuration
	}
	return uint64(math.Round(s.Duration.Seconds() * float64(rt.rate)))
}

// rawInfo is what a master playlist says of a track, read from its init
// segment (which never changes, so it is kept).
type rawInfo struct {
	codecs        string // RFC 6381
	width, height int
	channels      int
}

// rawInfos caches init segment facts by storage key; it is dropped whole
// when it grows past rawInfoCap (keys of deleted lessons do not linger).
type rawInfos struct {
	mu sync.Mutex
	m  map[string]rawInfo
}

const rawInfoCap = 4096

func (c *rawInfos) get(key string) (rawInfo, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i, ok := c.m[key]
	return i, ok
}

func (c *rawInfos) put(key string, i rawInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= rawInfoCap {
		c.m = map[string]rawInfo{}
	}
	c.m[key] = i
}

// initInfo reads a track's init segment for the master playlist.
func (s *Service) initInfo(ctx context.Context, key string) (rawInfo, error) {
	if i, ok := s.rawInfo.get(key); ok {
		return i, nil
	}
	b, err := s.getBytes(ctx, key, 1<<20)
	if err != nil {
		return rawInfo{}, err
	}
	var init fmp4.Init
	if err := init.Unmarshal(bytes.NewReader(b)); err != nil || len(init.Tracks) != 1 {
		return rawInfo{}, fmt.Errorf("init segment %s: not a one-track fMP4 (%v)", key, err)
	}
	var i rawInfo
	switch c := init.Tracks[0].Codec.(type) {
	case *mp4.CodecH264:
		if len(c.SPS) < 4 {
			return rawInfo{}, fmt.Errorf("init segment %s: short SPS", key)
		}
		var sps h264.SPS
		if err := sps.Unmarshal(c.SPS); err != nil {
			return rawInfo{}, fmt.Errorf("init segment %s: %w", key, err)
		}
		i = rawInfo{codecs: fmt.Sprintf("avc1.%02x%02x%02x", c.SPS[1], c.SPS[2], c.SPS[3]), width: sps.Width(), height: sps.Height()}
	case *mp4.CodecOpus:
		i = rawInfo{codecs: "opus", channels: c.ChannelCount}
	default:
		return rawInfo{}, fmt.Errorf("init segment %s: codec %T cannot be played as HLS", key, c)
	}
	s.rawInfo.put(key, i)
	return i, nil
}

// getBytes reads a whole object of at most limit bytes.
func (s *Service) getBytes(ctx context.Context, key string, limit int64) ([]byte, error) {
	rc, _, err := s.store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", key, limit)
	}
	return b, nil
}

// rawObject names a raw object with the shift it is served with, for its
// signature. "raw:" and ':' never occur in a transcoded media path, so no
// signature of one is valid for the other.
func rawObject(rel, off string) string { return "raw:" + rel + ":" + off }

// rawURL is the signed Podium URL of a raw object; off (ticks) goes with a
// media segment and is covered by the signature.
func (s *Service) rawURL(lesson, rel string, off int64, g urlGrant) string {
	e := strconv.FormatInt(g.exp.Unix(), 10)
	offs := ""
	if off != 0 {
		offs = strconv.FormatInt(off, 10)
	}
	q := url.Values{"exp": {e}, "by": {g.by}, "sig": {s.mac(lesson, rawObject(rel, offs), e, g.by)}}
	if offs != "" {
		q.Set("off", offs)
	}
	return "/api/vod/raw/" + lesson + "/" + rel + "?" + q.Encode()
}

// verifyRaw reports whether q carries a valid, unexpired signature of the
// raw object (with its shift), and whom it was handed to.
func (s *Service) verifyRaw(lesson, rel string, q url.Values) (by string, ok bool) {
	return s.verify(lesson, rawObject(rel, q.Get("off")), q)
}

// Raw serves GET /api/vod/raw/{lesson}/{path...}: the raw replay. A
// request signed for its object (and shift) is served as is; any other
// needs a token that may replay the lesson (its live members, or a
// student's grant).
func (s *Service) Raw() http.Handler {
	return signedRoute{serve: s.serveRaw, verify: s.verifyRaw}
}

func (s *Service) serveRaw(w http.ResponseWriter, r *http.Request) {
	lesson, rel := r.PathValue("lesson"), r.PathValue("path")
	match := rawPath.FindStringSubmatch(rel)
	if !ValidID(lesson) || match == nil {
		httpx.WriteError(w, http.StatusBadRequest, "bad_request", "invalid raw media path")
		return
	}
	track, file := match[1], match[2]
	switch {
	case rel == "master.m3u8" || file == "index.m3u8":
		s.serveRawPlaylist(w, r, lesson, rel, track)
	case file == "init.mp4":
		s.serveRawObject(w, r, "lessons/"+lesson+"/"+rel, 0)
	default:
		var off int64
		if v := r.URL.Query().Get("off"); v != "" {
			var err error
			// A shift beyond a week of ticks is no lesson's.
			if off, err = strconv.ParseInt(v, 10, 64); err != nil || off > 7*24*3600*90000 || off < -7*24*3600*90000 {
				httpx.WriteError(w, http.StatusBadRequest, "bad_request", "off must be a shift in ticks")
				return
			}
		}
		s.serveRawObject(w, r, "lessons/"+lesson+"/"+rel, off)
	}
}

// serveRawPlaylist writes a master or media playlist from the manifest.
func (s *Service) serveRawPlaylist(w http.ResponseWriter, r *http.Request, lesson, rel, track string) {
	var m Manifest
	err := s.getJSON(r.Context(), ManifestKey(lesson), &m)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		// The recorder rewrites a live lesson's manifest every few
		// seconds; S3 fails a read that spans a rewrite. Once more.
		err = s.getJSON(r.Context(), ManifestKey(lesson), &m)
	}
	if errors.Is(err, storage.ErrNotFound) {
		httpx.WriteError(w, http.StatusNotFound, "not_found", "no such lesson")
		return
	}
	if err != nil {
		httpx.WriteError(w, http.StatusServiceUnavailable, "storage", err.Error())
		return
	}
	p := planRaw(&m)
	by := "signed"
	if v, ok := s.verifyRaw(lesson, rel, r.URL.Query()); ok {
		by = v
	} else if c := s.caller(r); c != nil {
		by = c.Actor()
	}
	var body string
	if rel == "master.m3u8" {
		body, err = s.rawMaster(r.Context(), lesson, &m, p, by)
	} else {
		body, err = s.rawMedia(lesson, &m, p, track, by)
	}
	var nf notFoundError
	switch {
	case errors.As(err, &nf):
		httpx.WriteError(w, http.StatusNotFound, "not_found", err.Error())
		return
	case err != nil:
		httpx.WriteError(w, http.StatusServiceUnavailable, "storage", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
	w.Header().Set("Cache-Control", "no-store") // grows while live; holds expiring signatures
	_, _ = io.WriteString(w, body)
}

type notFoundError string

func (e notFoundError) Error() string { return string(e) }

// rawMaster is the multivariant playlist: one variant, the picture, with
// the voice as its audio rendition (or the voice alone).
func (s *Service) rawMaster(ctx context.Context, lesson string, m *Manifest, p rawPlan, by string) (string, error) {
	if p.playback() == "" {
		return "", notFoundError("nothing of this lesson is recorded in a form HLS can play yet")
	}
	life := liveLinkLife
	if m.Complete {
		life = m.Duration()
	}
	g := urlGrant{exp: s.now().Add(s.cfg.URLTTL + life), by: by}
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n")
	peak, avg := 0.0, 0.0
	var codecs []string
	var video rawInfo
	for _, rt := range []*rawTrack{p.video, p.audio} {
		if rt == nil {
			continue
		}
		info, err := s.initInfo(ctx, rt.t.Init)
		if err != nil {
			return "", err
		}
		codecs = append(codecs, info.codecs)
		if rt == p.video {
			video = info
		}
		pk, av := rt.bandwidth()
		peak, avg = peak+pk, avg+av
	}
	attrs := fmt.Sprintf("BANDWIDTH=%d,AVERAGE-BANDWIDTH=%d,CODECS=%q", int(math.Ceil(peak)), int(math.Ceil(avg)), strings.Join(codecs, ","))
	if p.video == nil {
		fmt.Fprintf(&b, "#EXT-X-STREAM-INF:%s\n%s\n", attrs, s.rawURL(lesson, "rec/"+p.audio.t.ID+"/index.m3u8", 0, g))
		return b.String(), nil
	}
	if video.width > 0 && video.height > 0 {
		attrs += fmt.Sprintf(",RESOLUTION=%dx%d", video.width, video.height)
	}
	if p.audio != nil {
		name := p.audio.t.Participant
		if name == "" {
			name = "Lesson audio"
		}
		fmt.Fprintf(&b, "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"voice\",NAME=%q,DEFAULT=YES,AUTOSELECT=YES,URI=%q\n",
			strings.ReplaceAll(name, `"`, "'"), s.rawURL(lesson, "rec/"+p.audio.t.ID+"/index.m3u8", 0, g))
		attrs += `,AUDIO="voice"`
	}
	fmt.Fprintf(&b, "#EXT-X-STREAM-INF:%s\n%s\n", attrs, s.rawURL(lesson, "rec/"+p.video.t.ID+"/index.m3u8", 0, g))
	return b.String(), nil
}

// bandwidth is the track's peak and average bit rate (bits/s) from the
// recorded segment sizes.
func (rt *rawTrack) bandwidth() (peak, avg float64) {
	var bytes int64
	var secs float64
	for _, s := range rt.t.Segments {
		d := float64(rt.mediaDuration(s)) / float64(rt.rate)
		if d <= 0 {
			continue
		}
		peak = max(peak, float64(s.Bytes)*8/d)
		bytes += s.Bytes
		secs += d
	}
	if secs > 0 {
		avg = float64(bytes) * 8 / secs
	}
	return peak, avg
}

// rawMedia is one track's media playlist: EVENT while the lesson is
// recorded (it grows as segments reach storage), VOD with an end once the
// recording is complete.
func (s *Service) rawMedia(lesson string, m *Manifest, p rawPlan, track string, by string) (string, error) {
	var rt *rawTrack
	for _, c := range []*rawTrack{p.video, p.audio} {
		if c != nil && c.t.ID == track {
			rt = c
		}
	}
	if rt == nil {
		return "", notFoundError("no such track in the raw replay")
	}
	segs := rt.segments()
	target, span := 1.0, 0.0
	for _, sg := range segs {
		target = max(target, math.Ceil(sg.duration))
		span += sg.duration
	}
	g := urlGrant{exp: s.now().Add(s.cfg.URLTTL + time.Duration(span*float64(time.Second))), by: by}
	kind := "EVENT"
	if m.Complete {
		kind = "VOD"
	}
	var b strings.Builder
	first := 0
	if len(segs) > 0 {
		first = segs[0].seg.Seq
	}
	fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:%d\n#EXT-X-MEDIA-SEQUENCE:%d\n#EXT-X-PLAYLIST-TYPE:%s\n#EXT-X-INDEPENDENT-SEGMENTS\n",
		int(target), first, kind)
	fmt.Fprintf(&b, "#EXT-X-MAP:URI=%q\n", s.rawURL(lesson, "rec/"+rt.t.ID+"/init.mp4", 0, g))
	prefix := "lessons/" + lesson + "/"
	for _, sg := range segs {
		rel, ok := strings.CutPrefix(sg.seg.Key, prefix)
		if !ok || rawPath.FindString(rel) == "" {
			return "", fmt.Errorf("manifest of %s names segment %q outside the lesson's recording", lesson, sg.seg.Key)
		}
		fmt.Fprintf(&b, "#EXTINF:%.5f,\n%s\n", sg.duration, s.rawURL(lesson, rel, rt.off, g))
	}
	if m.Complete {
		b.WriteString("#EXT-X-ENDLIST\n")
	}
	return b.String(), nil
}

// serveRawObject sends a stored init or media segment; a media segment
// with a shift gets its decode times moved by off ticks (samples that
// would fall before the lesson's start are left out).
func (s *Service) serveRawObject(w http.ResponseWriter, r *http.Request, key string, off int64) {
	ctype := "video/iso.segment"
	if strings.HasSuffix(key, ".mp4") {
		ctype = "video/mp4"
	}
	b, err := s.getBytes(r.Context(), key, 256<<20)
	if errors.Is(err, storage.ErrNotFound) {
		httpx.WriteError(w, http.StatusNotFound, "not_found", "no such media")
		return
	}
	if err != nil {
		httpx.WriteError(w, http.StatusServiceUnavailable, "storage", err.Error())
		return
	}
	// The playlists only shift later: the decode times are patched in
	// place. A shift that would cut samples rebuilds the moof.
	if off != 0 && !addToDecodeTimes(b, off) {
		if b, err = shiftSegment(b, off); err != nil {
			httpx.WriteError(w, http.StatusUnprocessableEntity, "bad_media", fmt.Sprintf("%s: %v", key, err))
			return
		}
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Cache-Control", "private, max-age=300") // stored segments never change
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}

// addToDecodeTimes adds off to the baseMediaDecodeTime of every track
// fragment of an fMP4 media segment, in place, and reports whether it did:
// false (b unchanged) when a box is malformed or a time would leave its
// field (below zero, or past 32 bits in a version-0 tfdt).
func addToDecodeTimes(b []byte, off int64) bool {
	type field struct {
		at   int
		wide bool
	}
	var fields []field
	// children calls fn for each box in b[from:to]: its type and the
	// bounds of its payload; false when a box does not fit.
	children := func(from, to int, fn func(typ string, start, end int) bool) bool {
		for from < to {
			if to-from < 8 {
				return false
			}
			size, hdr := int(binary.BigEndian.Uint32(b[from:])), 8
			switch size {
			case 0:
				size = to - from
			case 1:
				if to-from < 16 {
					return false
				}
				large := binary.BigEndian.Uint64(b[from+8:])
				if large > uint64(to-from) {
					return false
				}
				size, hdr = int(large), 16
			}
			if size < hdr || size > to-from {
				return false
			}
			if !fn(string(b[from+4:from+8]), from+hdr, from+size) {
				return false
			}
			from += size
		}
		return true
	}
	ok := children(0, len(b), func(typ string, start, end int) bool {
		if typ != "moof" {
			return true
		}
		return children(start, end, func(typ string, start, end int) bool {
			if typ != "traf" {
				return true
			}
			return children(start, end, func(typ string, start, end int) bool {
				if typ != "tfdt" {
					return true
				}
				// A full box: version, flags, then the time in 64 bits
				// (version 1) or 32 (version 0).
				switch {
				case end-start >= 12 && b[start] == 1:
					fields = append(fields, field{at: start + 4, wide: true})
				case end-start >= 8 && b[start] == 0:
					fields = append(fields, field{at: start + 4})
				default:
					return false
				}
				return true
			})
		})
	})
	if !ok || len(fields) == 0 {
		return false
	}
	sum := func(f field) (uint64, bool) {
		if f.wide {
			v := int64(binary.BigEndian.Uint64(b[f.at:])) + off
			return uint64(v), v >= 0
		}
		v := int64(binary.BigEndian.Uint32(b[f.at:])) + off
		return uint64(v), v >= 0 && v <= math.MaxUint32
	}
	for _, f := range fields {
		if _, ok := sum(f); !ok {
			return false
		}
	}
	for _, f := range fields {
		v, _ := sum(f)
		if f.wide {
			binary.BigEndian.PutUint64(b[f.at:], v)
		} else {
			binary.BigEndian.PutUint32(b[f.at:], uint32(v))
		}
	}
	return true
}

// shiftSegment moves every decode time of an fMP4 media segment by off
// ticks, leaving out samples that would start before zero. Only the moof
// is rewritten; the samples are the stored bytes.
func shiftSegment(b []byte, off int64) ([]byte, error) {
	var parts fmp4.Parts
	if err := parts.Unmarshal(b); err != nil {
		return nil, fmt.Errorf("read segment: %w", err)
	}
	kept := parts[:0]
	for _, p := range parts {
		tracks := p.Tracks[:0]
		for _, t := range p.Tracks {
			dts := int64(t.BaseTime) + off
			for len(t.Samples) > 0 && dts < 0 {
				dts += int64(t.Samples[0].Duration)
				t.Samples = t.Samples[1:]
			}
			if len(t.Samples) == 0 {
				continue
			}
			t.BaseTime = uint64(dts)
			tracks = append(tracks, t)
		}
		if len(tracks) > 0 {
			p.Tracks = tracks
			kept = append(kept, p)
		}
	}
	if len(kept) == 0 {
		return nil, errors.New("every sample is before the lesson's start")
	}
	var out bytes.Buffer
	for _, p := range kept {
		var buf seekablebuffer.Buffer
		if err := p.Marshal(&buf); err != nil {
			return nil, fmt.Errorf("write segment: %w", err)
		}
		out.Write(buf.Bytes())
	}
	return out.Bytes(), nil
}

// rawTimelineStart is the wall-clock time of the raw replay's t=0, for its
// chapters (false when nothing is playable).
func rawTimelineStart(m *Manifest) (time.Time, bool) {
	p := planRaw(m)
	return p.origin, !p.origin.IsZero()
}

// rawView points a lesson that has no transcoded replay (yet, or for good)
// at its raw one, when anything of it is playable.
func (s *Service) rawView(l *Lesson, e *lessonEntry, g urlGrant) {
	if l.Playback = planRaw(e.manifest).playback(); l.Playback != "" {
		l.HLS = s.rawURL(e.id, "master.m3u8", 0, g)
	}
}
