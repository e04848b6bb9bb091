package sfu

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/pion/interceptor/pkg/twcc"
	"github.com/pion/rtcp"
)

// twccOf is pion's feedback packet as the node reads it off the wire.
func twccOf(t testing.TB, fb *rtcp.TransportLayerCC) *twccFeedback {
	t.Helper()
	raw := marshalTCC(t, fb)
	f := &twccFeedback{}
	if err := f.parse(raw); err != nil {
		t.Fatalf("feedback pion wrote was not read: %v", err)
	}
	return f
}

// marshalTCC writes fb as a receiver sends it; a test's packet gets the
// RTCP header (type, format, length, padding) pion's recorder would give it.
func marshalTCC(t testing.TB, fb *rtcp.TransportLayerCC) []byte {
	t.Helper()
	if fb.Header.Type == 0 {
		n := 20 + 2*len(fb.PacketChunks)
		for _, d := range fb.RecvDeltas {
			if d.Type == rtcp.TypeTCCPacketReceivedSmallDelta {
				n++
			} else {
				n += 2
			}
		}
		fb.Header = rtcp.Header{Padding: n%4 != 0, Count: rtcp.FormatTCC, Type: rtcp.TypeTransportSpecificFeedback, Length: uint16(fb.MarshalSize()/4 - 1)}
	}
	raw, err := fb.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// The node reads every feedback packet as pion reads it: feedback that
// pion's recorder (what a receiver runs) builds from random arrivals, with
// losses, reordering, long gaps (large deltas) and sequence numbers that
// wrap, parsed by both, gives the same status and arrival delta for every
// packet it reports.
func TestTWCCFeedbackIsReadAsPionReadsIt(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 15))
	rec := twcc.NewRecorder(1)
	seq := uint16(65000)
	at := int64(1_000_000)
	packets := 0
	for round := range 300 {
		for range 1 + rng.IntN(60) {
			seq++
			if rng.IntN(20) == 0 { // lost
				continue
			}
			switch {
			case round%50 == 49:
				at += 70_000 + rng.Int64N(500_000) // a stall: large deltas
			default:
				at += rng.Int64N(8_000)
			}
			s := seq
			if rng.IntN(30) == 0 {
				s-- // reordered
			}
			rec.Record(1, s, at)
		}
		for _, p := range rec.BuildFeedbackPacket() {
			fb, ok := p.(*rtcp.TransportLayerCC)
			if !ok {
				continue
			}
			raw, err := fb.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			var pionFB rtcp.TransportLayerCC
			if err := pionFB.Unmarshal(raw); err != nil {
				t.Fatal(err)
			}
			var ours twccFeedback
			if err := ours.parse(raw); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			wantSymbols, wantDeltas := pionStatuses(&pionFB)
			if ours.base != pionFB.BaseSequenceNumber || ours.refTime != int64(pionFB.ReferenceTime) ||
				!slices.Equal(ours.symbols, wantSymbols) || !slices.Equal(ours.deltas, wantDeltas) {
				t.Fatalf("round %d: read base %d ref %d symbols %v deltas %v, pion %d %d %v %v",
					round, ours.base, ours.refTime, ours.symbols, ours.deltas, pionFB.BaseSequenceNumber, pionFB.ReferenceTime, wantSymbols, wantDeltas)
			}
			packets += len(ours.symbols)
		}
	}
	if packets < 3000 {
		t.Fatalf("only %d packets reported: the test fed too little", packets)
	}
}

// pionStatuses lists a feedback's statuses and deltas as pion read them.
func pionStatuses(fb *rtcp.TransportLayerCC) ([]uint8, []int64) {
	var symbols []uint8
	for _, c := range fb.PacketChunks {
		switch c := c.(type) {
		case *rtcp.RunLengthChunk:
			for range c.RunLength {
				symbols = append(symbols, uint8(c.PacketStatusSymbol))
			}
		case *rtcp.StatusVectorChunk:
			for _, s := range c.SymbolList {
				symbols = append(symbols, uint8(s))
			}
		}
	}
	symbols = symbols[:min(len(symbols), int(fb.PacketStatusCount))]
	var deltas []int64
	for _, d := range fb.RecvDeltas {
		deltas = append(deltas, d.Delta)
	}
	return symbols, deltas
}

// Truncated or foreign packets are refused, never read past their end.
func TestTWCCFeedbackRefusesWhatItDoesNotHold(t *testing.T) {
	fb := &rtcp.TransportLayerCC{
		SenderSSRC: 1, MediaSSRC: 2, BaseSequenceNumber: 10, PacketStatusCount: 3, ReferenceTime: 5,
		PacketChunks: []rtcp.PacketStatusChunk{&rtcp.RunLengthChunk{PacketStatusSymbol: rtcp.TypeTCCPacketReceivedLargeDelta, RunLength: 3}},
		RecvDeltas: []*rtcp.RecvDelta{
			{Type: rtcp.TypeTCCPacketReceivedLargeDelta, Delta: -250},
			{Type: rtcp.TypeTCCPacketReceivedLargeDelta, Delta: 8_000_000},
			{Type: rtcp.TypeTCCPacketReceivedLargeDelta, Delta: 250},
		},
	}
	raw := marshalTCC(t, fb)
	var f twccFeedback
	if err := f.parse(raw); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.deltas, []int64{-250, 8_000_000, 250}) {
		t.Fatalf("large deltas read as %v", f.deltas)
	}
	for n := range len(raw) {
		if err := f.parse(raw[:n]); err == nil {
			t.Fatalf("a packet cut to %d of %d bytes was read", n, len(raw))
		}
	}
	nack, _ := (&rtcp.TransportLayerNack{SenderSSRC: 1, MediaSSRC: 2, Nacks: []rtcp.NackPair{{PacketID: 3}}}).Marshal()
	if isTWCC(nack) || f.parse(nack) == nil {
		t.Fatal("a NACK was taken for TWCC feedback")
	}
}

// BenchmarkTWCCParse reads a feedback packet of 100 ms of 720p (about 150
// packets, a few lost) the node's way and pion's.
func BenchmarkTWCCParse(b *testing.B) {
	rec := twcc.NewRecorder(1)
	at := int64(0)
	for seq := range uint16(150) {
		at += 650
		if seq%40 != 39 {
			rec.Record(1, seq, at)
		}
	}
	raw := marshalTCC(b, rec.BuildFeedbackPacket()[0].(*rtcp.TransportLayerCC))
	b.Run("podium", func(b *testing.B) {
		var f twccFeedback
		b.ReportAllocs()
		for range b.N {
			if err := f.parse(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pion", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := rtcp.Unmarshal(raw); err != nil {
				b.Fatal(err)
			}
		}
	})
}
