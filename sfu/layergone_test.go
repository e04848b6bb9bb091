package sfu

import (
	"testing"

	"github.com/pion/rtp"
)

// A simulcast layer the publisher stops sending (a browser short of CPU or
// uplink drops its top layer) is given up within layerGoneTicks: the
// allocator moves a subscriber forwarded that layer to one that still
// arrives, instead of holding on to a rate that only shrinks (video
// stopped while audio flowed). When the layer comes back it is measured
// again.
func TestStoppedLayerIsGivenUp(t *testing.T) {
	track := NewTrack(TrackInfo{ID: "cam", Kind: KindVideo, Layers: []string{"q", "h", "f"}}, nil)
	sub := &subscription{dt: &DownTrack{track: track}, prevBytes: make([]uint64, 3), rates: make([]float64, 3), idle: make([]int, 3)}
	// One tick of 0.5 s carrying the three layers at 150k, 500k and 1.5M.
	tick := func(layers ...int) {
		sizes := []int{150e3, 500e3, 1500e3}
		for _, l := range layers {
			payload := make([]byte, sizes[l]/8/2-12)
			track.WriteRTP(l, &rtp.Packet{Header: rtp.Header{Version: 2}, Payload: payload})
		}
		sub.measure(0.5)
	}
	choose := func() int {
		return allocate(10e6, 10e6, []allocItem{{priority: priorityStage, rates: append([]float64(nil), sub.rates...), maxLayer: -1, current: 2}})[0]
	}
	for range 3 {
		tick(0, 1, 2)
	}
	if got := choose(); got != 2 {
		t.Fatalf("with every layer arriving the allocator chose %d, want 2", got)
	}
	tick(0, 1)
	tick(0, 1)
	if sub.rates[2] != 0 {
		t.Fatalf("after %d ticks without the top layer its rate is %.0f, want 0", layerGoneTicks, sub.rates[2])
	}
	if got := choose(); got != 1 {
		t.Fatalf("with the top layer gone the allocator chose %d, want 1", got)
	}
	for range 2 {
		tick(0, 1)
	}
	tick(0, 1, 2)
	if sub.rates[2] == 0 || choose() != 2 {
		t.Fatalf("the top layer came back: rate %.0f, chosen %d, want measured and 2", sub.rates[2], choose())
	}
}
