package sfu

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"
)

// redParsed is one block of a RED payload.
type redParsed struct {
	pt     uint8
	offset uint32 // timestamp offset back from the packet's (0: primary)
	data   []byte
}

// parseRED splits a RED payload (RFC 2198) into its blocks, oldest first,
// the primary last.
func parseRED(p []byte) ([]redParsed, error) {
	var hdrs []redParsed
	var lens []int
	i := 0
	for {
		if i >= len(p) {
			return nil, fmt.Errorf("truncated header")
		}
		if p[i]&0x80 == 0 {
			hdrs = append(hdrs, redParsed{pt: p[i] & 0x7f})
			i++
			break
		}
		if i+4 > len(p) {
			return nil, fmt.Errorf("truncated block header")
		}
		v := binary.BigEndian.Uint32(p[i:])
		hdrs = append(hdrs, redParsed{pt: p[i] & 0x7f, offset: (v >> 10) & 0x3fff})
		lens = append(lens, int(v&0x3ff))
		i += 4
	}
	for k := range hdrs {
		if k == len(hdrs)-1 {
			hdrs[k].data = p[i:]
			break
		}
		if i+lens[k] > len(p) {
			return nil, fmt.Errorf("block %d past the end", k)
		}
		hdrs[k].data = p[i : i+lens[k]]
		i += lens[k]
	}
	return hdrs, nil
}

// TestREDWrapCarriesEarlierPackets: each RED payload carries the primary
// and, oldest first, as many earlier primaries as asked for, with their
// timestamp offsets; redPrimary (what a subscriber without RED gets) reads
// the same primary back; a gap too long for RED's 14-bit offset (a muted
// stretch) carries nothing stale.
func TestREDWrapCarriesEarlierPackets(t *testing.T) {
	var w redWrapper
	w.pt = 111
	frame := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 60+i) }
	for i := 0; i < 6; i++ {
		ts := uint32(1000 + 960*i)
		distance := min(i, 2)
		out := redBytes(w.wrap(ts, uint16(i), frame(i), distance, false, nil))
		blocks, err := parseRED(out)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if len(blocks) != distance+1 {
			t.Fatalf("packet %d: %d blocks, want %d", i, len(blocks), distance+1)
		}
		for k, b := range blocks {
			back := distance - k // how many packets before this one
			if b.pt != 111 || b.offset != uint32(960*back) || !bytes.Equal(b.data, frame(i-back)) {
				t.Fatalf("packet %d block %d: pt %d offset %d, %d bytes; want packet %d", i, k, b.pt, b.offset, len(b.data), i-back)
			}
		}
		if _, primary, err := redPrimary(out); err != nil || !bytes.Equal(primary, frame(i)) {
			t.Fatalf("packet %d: redPrimary %v", i, err)
		}
	}
	// 20 s later (a muted microphone): the earlier packets are too old.
	out := redBytes(w.wrap(1000+960*5+48000*20, 9, frame(9), 2, false, nil))
	if blocks, _ := parseRED(out); len(blocks) != 1 {
		t.Fatalf("after a long gap: %d blocks, want the primary alone", len(blocks))
	}
	if d := redDistanceFor(0.005); d != 0 {
		t.Errorf("0.5 %% loss: distance %d", d)
	}
	if d := redDistanceFor(0.03); d != 1 {
		t.Errorf("3 %% loss: distance %d", d)
	}
	if d := redDistanceFor(0.08); d != 2 {
		t.Errorf("8 %% loss: distance %d", d)
	}
}

// redBytes is a RED payload's bytes.
func redBytes(p *sharedPayload) []byte { return p.buf[:p.n] }

// TestREDPayloadsAreSharedByClassroomsThatMatch: in one fan-out, the
// classrooms whose RED carries the same earlier packets get one payload
// between them; a classroom that asks for fewer copies, or one whose
// history starts later (it joined, or was reset), gets its own, and every
// classroom's bytes are what a wrapper of its own would build. Once all
// let go, the payloads go back to the pool.
func TestREDPayloadsAreSharedByClassroomsThatMatch(t *testing.T) {
	const classrooms = 5
	shared := make([]redWrapper, classrooms) // wrap with the fan-out's builds
	alone := make([]redWrapper, classrooms)  // each on its own: the reference
	for i := range classrooms {
		shared[i].pt, alone[i].pt = 111, 111
	}
	distance := func(c int) int { return []int{2, 2, 2, 1, 2}[c] }
	frame := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 80+i%7) }
	var builds redBuilds
	var held []*sharedPayload
	for i := range 8 {
		ts := uint32(5000 + 960*i)
		got := make([]*sharedPayload, classrooms)
		for c := range classrooms {
			if c == 4 && i < 5 {
				continue // classroom 4 joins at packet 5
			}
			got[c] = shared[c].wrap(ts, uint16(100+i), frame(i), distance(c), false, &builds)
			want := alone[c].wrap(ts, uint16(100+i), frame(i), distance(c), false, nil)
			if !bytes.Equal(redBytes(got[c]), redBytes(want)) {
				t.Fatalf("packet %d, classroom %d: %x, want %x", i, c, redBytes(got[c]), redBytes(want))
			}
			held = append(held, got[c], want)
		}
		if i >= 2 && (got[0] != got[1] || got[1] != got[2]) {
			t.Fatalf("packet %d: three classrooms with the same history have their own payloads", i)
		}
		if i >= 2 && got[3] == got[0] {
			t.Fatalf("packet %d: one copy and two copies share a payload", i)
		}
		if i < 2 && got[3] != got[0] {
			t.Fatalf("packet %d: with %d earlier packets, one copy and two are the same payload, yet built twice", i, i)
		}
		if i >= 5 && i < 7 && got[4] == got[0] {
			t.Fatalf("packet %d: a classroom that joined at packet 5 shares the others' history", i)
		}
		if i == 7 && got[4] != got[0] {
			t.Fatal("two packets after joining, a classroom's RED is still built apart")
		}
		builds.release()
	}
	// Everything lets go: the rings (held) and the wrappers' histories.
	for _, p := range held {
		p.release()
	}
	for c := range classrooms {
		shared[c].reset()
		alone[c].reset()
	}
	for _, p := range held {
		if n := p.refs.Load(); n != 0 {
			t.Fatalf("a payload still has %d holders after every holder let go", n)
		}
	}
}

// TestREDCopiesFitTheLink: the audio's redundancy never takes more than
// redShare of the estimate: two copies on a broad link, one where two
// would not fit, none on a link that carries little more than the voice.
func TestREDCopiesFitTheLink(t *testing.T) {
	s := &subscriber{downs: map[string]*subscription{
		"mic": {dt: &DownTrack{kind: KindAudio}, rates: []float64{32_000}},
		"cam": {dt: &DownTrack{kind: KindVideo}, rates: []float64{150_000, 500_000}},
	}}
	for _, c := range []struct {
		est  float64
		want int32
	}{{1_000_000, 2}, {100_000, 1}, {70_000, 0}, {0, 0}} {
		if got := s.redCopiesFitting(c.est); got != c.want {
			t.Errorf("estimate %.0f with a 32 kbit/s voice: %d copies, want %d", c.est, got, c.want)
		}
	}
}
