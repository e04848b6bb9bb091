package ingest

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"podium/internal/rtspcam"
	"podium/internal/testenv"
	"podium/sfu"
)

// assertNoIDLabels fails when any series of reg carries one of ids in a
// label value: /metrics is open, and ids there would both reveal lessons
// and grow without bound.
func assertNoIDLabels(t *testing.T, reg *prometheus.Registry, ids ...string) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "lesson" || lp.GetName() == "source" {
					t.Errorf("%s has a %s label", mf.GetName(), lp.GetName())
				}
				for _, id := range ids {
					if strings.Contains(lp.GetValue(), id) {
						t.Errorf("%s{%s=%q} carries id %q", mf.GetName(), lp.GetName(), lp.GetValue(), id)
					}
				}
			}
		}
	}
}

// Two live cameras in two lessons: /metrics shows node totals whose
// series do not depend on how many sources or lessons there are, with no
// lesson or source id anywhere, and the totals do not drop when a source
// is removed (a counter that went down would read as a reset).
func TestMetricsBoundedAndMonotonic(t *testing.T) {
	cam := rtspcam.Start(t, rtspcam.Options{})
	m, _ := newTestManager(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.Collector())

	a, err := m.Add("lesson-alpha", SourceConfig{URL: cam.URL("", ""), Transport: TransportTCP})
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Add("lesson-beta", SourceConfig{URL: cam.URL("", ""), Transport: TransportTCP})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, m, "lesson-alpha", a.ID, StateLive)
	waitState(t, m, "lesson-beta", b.ID, StateLive)

	frames := func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "podium_ingest_video_frames_total" {
				return mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		t.Fatal("podium_ingest_video_frames_total missing")
		return 0
	}
	testenv.WaitFor(t, 25*time.Second, "frames from both sources", func() bool {
		va, _ := m.Track("lesson-alpha", a.ID, sfu.KindVideo)
		vb, _ := m.Track("lesson-beta", b.ID, sfu.KindVideo)
		return va != nil && vb != nil && frames() >= 50
	})
	assertNoIDLabels(t, reg, "lesson-alpha", "lesson-beta", a.ID, b.ID)
	series, err := testutil.GatherAndCount(reg)
	if err != nil {
		t.Fatal(err)
	}
	// 4 states + 5 totals, whatever the number of sources.
	if series != 9 {
		t.Fatalf("%d series, want 9", series)
	}
	want := `
# HELP podium_ingest_sources Registered RTSP sources by state.
# TYPE podium_ingest_sources gauge
podium_ingest_sources{state="connecting"} 0
podium_ingest_sources{state="live"} 2
podium_ingest_sources{state="retrying"} 0
podium_ingest_sources{state="stopped"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "podium_ingest_sources"); err != nil {
		t.Fatal(err)
	}

	before := frames()
	if err := m.Remove("lesson-alpha", a.ID); err != nil {
		t.Fatal(err)
	}
	after := frames()
	if after < before {
		t.Fatalf("frames total went down from %v to %v when a source was removed", before, after)
	}
	// The remaining source keeps adding to the same total.
	testenv.WaitFor(t, 25*time.Second, "the total to grow", func() bool { return frames() >= after+25 })
	if got, _ := testutil.GatherAndCount(reg); got != 9 {
		t.Fatalf("%d series after a removal, want 9", got)
	}
}
