package sfu

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"podium/internal/rtxrepair"
)

// publisher is a participant's publisher connection: the client offers, the
// sfu receives every track into a Track of the room.
type publisher struct {
	p  *Participant
	pc *webrtc.PeerConnection
	// repair puts the client's RTX retransmissions back into their streams
	// before the NACK generator looks (it learns the pairs from each offer).
	repair *rtxrepair.Factory

	negMu sync.Mutex // serializes offers

	mu      sync.Mutex
	sources map[string]PublishTrack // MediaStreamTrack id -> what it is, from the offers
	rids    map[string][]string     // MediaStreamTrack id -> simulcast RIDs, lowest first
	tracks  map[string]*upTrack     // MediaStreamTrack id -> published track
	remotes []*webrtc.TrackRemote   // every layer being read, to unblock on close
	// retired: a successor took the participant's tracks over; tracks
	// arriving late on this connection are not published.
	retired bool

	keyframes chan uint32 // media SSRCs to send a PLI for
}

// upTrack is one published track and the remote layers feeding it.
type upTrack struct {
	track   *Track
	ssrcs   []atomic.Uint32 // per layer
	readers int             // layer read loops still running (publisher.mu)
	level   *levelMeter     // audio only
	// detached is set when a successor connection takes the track over:
	// this one's read loops stop feeding it and never unpublish it.
	detached atomic.Bool
}

func newPublisher(p *Participant) (*publisher, error) {
	repair := rtxrepair.NewFactory()
	pc, err := p.sfu.newPeerConnection(false, repair, nil)
	if err != nil {
		return nil, err
	}
	pub := &publisher{
		p: p, pc: pc, repair: repair,
		sources:   make(map[string]PublishTrack),
		rids:      make(map[string][]string),
		tracks:    make(map[string]*upTrack),
		keyframes: make(chan uint32, 16),
	}
	pc.OnTrack(pub.onTrack)
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) { p.connectionState(TargetPublisher, s) })
	p.wg.Add(1)
	go pub.sendKeyframeRequests()
	return pub, nil
}

// offeredTracks reads what an offer sends: MediaStreamTrack id -> kind and
// simulcast RIDs (in a=rid order, "q","h","f" sorted lowest first).
type offeredTrack struct {
	kind Kind
	rids []string
}

func parseOffer(offer webrtc.SessionDescription) (map[string]offeredTrack, error) {
	if offer.Type != webrtc.SDPTypeOffer {
		return nil, fmt.Errorf("%w: type %q is not an offer", ErrBadSDP, offer.Type)
	}
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(offer.SDP); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	out := make(map[string]offeredTrack)
	for _, md := range sd.MediaDescriptions {
		var kind Kind
		switch md.MediaName.Media {
		case "audio":
			kind = KindAudio
		case "video":
			kind = KindVideo
		default:
			continue
		}
		if _, ok := md.Attribute("recvonly"); ok {
			continue
		}
		if _, ok := md.Attribute("inactive"); ok {
			continue
		}
		msid, ok := md.Attribute("msid")
		if !ok {
			continue
		}
		parts := strings.Fields(msid)
		if len(parts) != 2 {
			continue
		}
		var rids []string
		for _, a := range md.Attributes {
			if a.Key == "rid" {
				f := strings.Fields(a.Value)
				if len(f) >= 2 && f[1] == "send" {
					rids = append(rids, f[0])
				}
			}
		}
		out[parts[1]] = offeredTrack{kind: kind, rids: orderRIDs(rids)}
	}
	return out, nil
}

// orderRIDs sorts the conventional RIDs q < h < f; others keep offer order
// after them.
func orderRIDs(rids []string) []string {
	rank := func(r string) int {
		switch r {
		case "q":
			return 0
		case "h":
			return 1
		case "f":
			return 2
		}
		return 3
	}
	out := append([]string(nil), rids...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && rank(out[j]) < rank(out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// publish applies an offer and returns the answer.
func (pub *publisher) publish(offer webrtc.SessionDescription, offered map[string]offeredTrack, tracks []PublishTrack) (webrtc.SessionDescription, error) {
	pub.negMu.Lock()
	defer pub.negMu.Unlock()
	pub.mu.Lock()
	for id, o := range offered {
		if _, ok := pub.sources[id]; !ok {
			src := SourceCamera
			if o.kind == KindAudio {
				src = SourceMicrophone
			}
			pub.sources[id] = PublishTrack{TrackID: id, Source: src}
		}
		pub.rids[id] = o.rids
	}
	for _, t := range tracks {
		pub.sources[t.TrackID] = t
	}
	sending := make(map[Source]bool, len(offered))
	for id := range offered {
		sending[pub.sources[id].Source] = true
	}
	pub.mu.Unlock()
	pub.repair.LearnSDP(offer.SDP)
	if err := pub.pc.SetRemoteDescription(offer); err != nil {
		return webrtc.SessionDescription{}, fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	// Tracks of a connection this one replaced that it will not send are
	// dead: unpublish them now rather than leave subscribers waiting.
	pub.p.room.releaseAdoptable(pub.p.info.ID, sending)
	answer, err := pub.pc.CreateAnswer(nil)
	if err != nil {
		return webrtc.SessionDescription{}, fmt.Errorf("%w: answer: %v", ErrBadSDP, err)
	}
	if err := pub.pc.SetLocalDescription(answer); err != nil {
		return webrtc.SessionDescription{}, fmt.Errorf("publisher: set local description: %w", err)
	}
	if err := waitGathered(pub.p.ctx, pub.pc); err != nil {
		return webrtc.SessionDescription{}, fmt.Errorf("publisher: %w", err)
	}
	return *pub.pc.LocalDescription(), nil
}

// onTrack runs once per remote track, and once per RID of a simulcast one.
func (pub *publisher) onTrack(remote *webrtc.TrackRemote, recv *webrtc.RTPReceiver) {
	p := pub.p
	key := remote.ID()
	pub.mu.Lock()
	if pub.retired {
		pub.mu.Unlock()
		return
	}
	up := pub.tracks[key]
	if up == nil {
		src, ok := pub.sources[key]
		if !ok {
			src = PublishTrack{TrackID: key, Source: SourceCamera}
			if remote.Kind() == webrtc.RTPCodecTypeAudio {
				src.Source = SourceMicrophone
			}
		}
		var layers []string
		if remote.RID() != "" {
			layers = pub.rids[key]
			if len(layers) == 0 {
				layers = []string{remote.RID()}
			}
		}
		kind := KindVideo
		if remote.Kind() == webrtc.RTPCodecTypeAudio {
			kind = KindAudio
		}
		c := remote.Codec()
		codec := Codec{MimeType: c.MimeType, ClockRate: c.ClockRate, Channels: c.Channels, SDPFmtpLine: c.SDPFmtpLine}
		up = &upTrack{}
		if kind == KindAudio {
			up.level = &levelMeter{}
		}
		if t := p.room.adoptTrack(p.info.ID, src.Source, kind, codec, layers); t != nil {
			// The same source of a connection this one replaced: feed its
			// track, so its subscribers follow without renegotiating.
			up.track = t
			up.ssrcs = make([]atomic.Uint32, len(t.info.Layers))
			t.handOver(pub.requestKeyframe(up))
			p.log.Info("took over track", "track", t.ID())
		} else {
			info := TrackInfo{
				ID:            p.room.uniqueTrackID(p.info.ID, string(src.Source)),
				ParticipantID: p.info.ID,
				Name:          src.Name,
				Kind:          kind,
				Source:        src.Source,
				Codec:         codec,
				Layers:        layers,
			}
			up.track = NewTrack(info, pub.requestKeyframe(up))
			up.ssrcs = make([]atomic.Uint32, len(up.track.info.Layers))
			if err := p.room.Publish(up.track); err != nil {
				pub.mu.Unlock()
				p.log.Warn("publish track", "track", info.ID, "err", err)
				return
			}
		}
		pub.tracks[key] = up
	}
	layer := up.track.LayerIndex(remote.RID())
	if layer < 0 {
		pub.mu.Unlock()
		p.log.Warn("unknown simulcast layer", "track", up.track.ID(), "rid", remote.RID())
		return
	}
	up.ssrcs[layer].Store(uint32(remote.SSRC()))
	up.readers++
	pub.remotes = append(pub.remotes, remote)
	pub.mu.Unlock()
	if up.track.Kind() == KindVideo {
		// A track taken over waits for this layer's first keyframe; a new
		// one is asked too, at no cost (requests are merged per layer).
		up.track.RequestKeyframe(layer)
	}

	levelID := 0
	if up.level != nil {
		for _, e := range recv.GetParameters().HeaderExtensions {
			if e.URI == sdp.AudioLevelURI {
				levelID = e.ID
			}
		}
	}
	p.wg.Add(1)
	go pub.read(remote, up, layer, levelID)
}

// read is the publisher's read loop for one layer: the hot path starts here.
func (pub *publisher) read(remote *webrtc.TrackRemote, up *upTrack, layer, levelID int) {
	defer pub.p.wg.Done()
	m := pub.p.sfu.m
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	for {
		n, _, err := remote.Read(buf)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				pub.p.log.Debug("track read ended", "track", up.track.ID(), "err", err)
			}
			break
		}
		if err := pkt.Unmarshal(buf[:n]); err != nil {
			continue
		}
		m.packetsIn.Inc()
		m.bytesIn.Add(float64(n))
		if levelID != 0 {
			if ext := pkt.GetExtension(uint8(levelID)); len(ext) > 0 {
				up.level.observe(ext[0] & 0x7f)
			}
		}
		if up.detached.Load() {
			break // a successor feeds the track now
		}
		// One batch for the fan-out: what the classrooms send inline
		// (egress.kick) leaves in shared sendmmsg calls.
		if b := pub.p.sfu.batcher; b != nil {
			b.begin()
			up.track.WriteRTP(layer, &pkt)
			b.end()
		} else {
			up.track.WriteRTP(layer, &pkt)
		}
	}
	// Unpublished under pub.mu, so that detach (which takes it too) either
	// comes first and keeps the track, or after, and finds it gone.
	pub.mu.Lock()
	defer pub.mu.Unlock()
	up.readers--
	if up.readers > 0 {
		return
	}
	for k, v := range pub.tracks {
		if v == up {
			delete(pub.tracks, k)
		}
	}
	if !up.detached.Load() {
		pub.p.room.Unpublish(up.track.ID())
	}
}

// detach hands every track over to a successor connection.
func (pub *publisher) detach() {
	pub.mu.Lock()
	defer pub.mu.Unlock()
	pub.retired = true
	for _, up := range pub.tracks {
		up.detached.Store(true)
	}
}

// requestKeyframe returns the Track's keyframe requester: it queues a PLI
// for the layer's SSRC and never blocks the caller (a down-track on another
// publisher's read goroutine).
func (pub *publisher) requestKeyframe(up *upTrack) KeyframeRequester {
	return func(layer int) {
		if layer < 0 || layer >= len(up.ssrcs) {
			return
		}
		ssrc := up.ssrcs[layer].Load()
		if ssrc == 0 {
			return
		}
		select {
		case pub.keyframes <- ssrc:
		default:
		}
	}
}

func (pub *publisher) sendKeyframeRequests() {
	defer pub.p.wg.Done()
	for {
		select {
		case <-pub.p.ctx.Done():
			return
		case ssrc := <-pub.keyframes:
			if err := pub.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: ssrc}}); err == nil {
				pub.p.sfu.m.plisSent.Inc()
			}
		}
	}
}

// speaking reports whether any unmuted audio track of the publisher has
// been loud since the last call.
func (pub *publisher) speaking() bool {
	pub.mu.Lock()
	defer pub.mu.Unlock()
	loud := false
	for _, up := range pub.tracks {
		if up.level != nil && up.level.takeSpeaking() && !up.track.Muted() {
			loud = true
		}
	}
	return loud
}

func (pub *publisher) close() {
	if err := pub.pc.Close(); err != nil {
		pub.p.log.Debug("close publisher connection", "err", err)
	}
	// Closing the connection does not always end a simulcast layer's
	// blocked Read (seen in the 200-classroom bench: Close waited for
	// minutes); an expired deadline always does.
	pub.mu.Lock()
	remotes := pub.remotes
	pub.remotes = nil
	pub.mu.Unlock()
	for _, r := range remotes {
		_ = r.SetReadDeadline(time.Now())
	}
}
