package signaling

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"podium/clients/goclient"
	"podium/sfu"
)

func TestGradeRule(t *testing.T) {
	cam := func(layer, top int) sfu.VideoForward {
		return sfu.VideoForward{TrackID: "cam", Layers: []string{"q", "h", "f"}, Layer: layer, Top: top}
	}
	tests := []struct {
		name      string
		q         ClassroomQuality
		main      sfu.VideoForward
		forwarded float64
		want      string
		why       string
	}{
		{"clean", ClassroomQuality{RTT: 20, ClientStats: true, FPS: 30}, cam(2, 2), 30, GradeGood, ""},
		{"one freeze", ClassroomQuality{Freezes: 1}, cam(2, 2), 30, GradeFair, "freeze"},
		{"frozen often", ClassroomQuality{Freezes: 30}, cam(2, 2), 30, GradePoor, "30 freezes"},
		{"some loss", ClassroomQuality{Loss: 0.03}, cam(2, 2), 30, GradeFair, "3.0 % loss"},
		{"heavy loss", ClassroomQuality{Loss: 0.1}, cam(2, 2), 30, GradePoor, "loss"},
		{"slow", ClassroomQuality{RTT: 300}, cam(2, 2), 30, GradeFair, "300 ms"},
		{"very slow", ClassroomQuality{RTT: 900}, cam(2, 2), 30, GradePoor, "900 ms"},
		{"half layer", ClassroomQuality{}, cam(1, 2), 30, GradeFair, "layer h of f"},
		// The classrooms: 320x180 of a 1080p board said "Good".
		{"quarter layer of a full board", ClassroomQuality{}, cam(0, 2), 30, GradePoor, "layer q of f"},
		{"quarter layer, teacher sends only h", ClassroomQuality{}, cam(0, 1), 30, GradeFair, "layer q of h"},
		{"capped by itself", ClassroomQuality{}, cam(0, 0), 30, GradeGood, ""},
		{"decodes a third", ClassroomQuality{ClientStats: true, FPS: 10}, cam(2, 2), 30, GradePoor, "shows 10 of 30 fps"},
		{"slide at 1 fps is not judged", ClassroomQuality{ClientStats: true, FPS: 0}, cam(2, 2), 1, GradeGood, ""},
		{"worst wins", ClassroomQuality{Loss: 0.03, Freezes: 9}, cam(2, 2), 30, GradePoor, "freezes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, why := grade(tc.q, true, tc.main, tc.forwarded)
			if g != tc.want {
				t.Fatalf("grade %s (%v), want %s", g, why, tc.want)
			}
			if tc.why != "" && !strings.Contains(strings.Join(why, "; "), tc.why) {
				t.Fatalf("reasons %q do not say %q", why, tc.why)
			}
			if g == GradeGood && len(why) > 0 {
				t.Fatalf("good with reasons %q", why)
			}
		})
	}
}

func TestStatsReportsAreChecked(t *testing.T) {
	long := strings.Repeat("x", maxIDLen+1)
	bad := []StatsData{
		{Transport: "carrier-pigeon"},
		{RTT: -1},
		{RTT: 1e9},
		{Video: make([]VideoStats, maxStatsVideo+1)},
		{Video: []VideoStats{{TrackID: ""}}},
		{Video: []VideoStats{{TrackID: long}}},
		{Video: []VideoStats{{TrackID: "a", Width: -1}}},
		{Video: []VideoStats{{TrackID: "a", FPS: 5000}}},
	}
	for _, d := range bad {
		if err := d.check(); err == nil {
			t.Errorf("%+v accepted", d)
		}
	}
	good := StatsData{Transport: "turn-tcp", RTT: 40, PacketsReceived: 10, Video: []VideoStats{{TrackID: "a", Width: 1280, Height: 720, FPS: 30}}}
	if err := good.check(); err != nil {
		t.Errorf("good report refused: %v", err)
	}
}

// TestDashboard: a classroom's page reports freezes and the teacher's
// dashboard grades it poor; bad and too frequent reports are refused; a
// classroom that drops out shows as reconnecting, keeps its place, and
// is live again when it rejoins; one that leaves is gone.
func TestDashboard(t *testing.T) {
	ts := newTestServer(t)
	ctx := testCtx(t)
	teacher, _ := ts.join(t, "dash-1", sfu.RoleTeacher, "Ms Rivera", goclient.Options{})
	hill, hillJoined := ts.join(t, "dash-1", sfu.RoleClassroom, "Hill School", goclient.Options{})
	river, _ := ts.join(t, "dash-1", sfu.RoleClassroom, "River School", goclient.Options{})
	hillID := hillJoined.Participant.ID

	rowOf := func(d json.RawMessage, id string) (ClassroomQuality, bool) {
		var dd DashboardData
		if err := json.Unmarshal(d, &dd); err != nil {
			t.Fatalf("dashboard: %v", err)
		}
		for _, r := range dd.Classrooms {
			if r.ID == id {
				return r, true
			}
		}
		return ClassroomQuality{}, false
	}
	waitRow := func(what string, match func(ClassroomQuality) bool) ClassroomQuality {
		t.Helper()
		var got ClassroomQuality
		waitEvent(t, teacher, "dashboard", func(d json.RawMessage) bool {
			r, ok := rowOf(d, hillID)
			got = r
			return ok && match(r)
		})
		t.Logf("%s: %+v", what, got)
		return got
	}

	first := waitRow("joined", func(r ClassroomQuality) bool { return r.State == StateLive })
	if first.Grade != GradeGood || first.Name != "Hill School" {
		t.Fatalf("a classroom with nothing wrong: %+v, want live and good", first)
	}
	riverID := river.Self().ID
	waitEvent(t, teacher, "dashboard", func(d json.RawMessage) bool {
		r, ok := rowOf(d, riverID)
		return ok && r.Seq > first.Seq
	})

	report := func(d StatsData) {
		t.Helper()
		if err := hill.Send(goclient.Message{V: 1, Type: "stats", Data: mustMarshal(t, d)}); err != nil {
			t.Fatal(err)
		}
	}
	report(StatsData{Transport: "udp", RTT: 12, PacketsReceived: 100, Video: []VideoStats{{TrackID: "cam", Freezes: 1}}})
	report(StatsData{Transport: "udp", RTT: 12, PacketsReceived: 200, Video: []VideoStats{{TrackID: "cam", Freezes: 8}}})
	poor := waitRow("frozen", func(r ClassroomQuality) bool { return r.Grade == GradePoor })
	if poor.Freezes != 7 || !poor.ClientStats || poor.Transport != "udp" {
		t.Fatalf("after 7 freezes: %+v", poor)
	}

	expectError(t, hill, ctx, "stats", StatsData{Transport: "smoke"}, CodeBadRequest)
	var limited bool
	for i := 0; i < 5 && !limited; i++ {
		_, err := hill.Request(ctx, "stats", StatsData{})
		limited = err != nil && strings.Contains(err.Error(), CodeRateLimited)
	}
	if !limited {
		t.Fatal("five reports at once were all accepted")
	}

	// The lesson's admins read the same rows over HTTP.
	req, err := http.NewRequest("GET", ts.URL+"/api/lessons/dash-1/dashboard", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+ts.token(t, "dash-1", sfu.RoleAdmin, "ops"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var viaHTTP DashboardData
	err = json.NewDecoder(resp.Body).Decode(&viaHTTP)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || len(viaHTTP.Classrooms) != 2 || viaHTTP.Classrooms[0].ID != hillID {
		t.Fatalf("GET dashboard: %d %+v (%v)", resp.StatusCode, viaHTTP, err)
	}

	// Drops out without a goodbye: reconnecting, same place.
	_ = hill.Conn().Close()
	away := waitRow("dropped", func(r ClassroomQuality) bool { return r.State == StateReconnecting })
	if away.Grade != "" || away.Seq != first.Seq {
		t.Fatalf("dropped classroom: %+v, want no grade and seq %d", away, first.Seq)
	}
	hill2, _ := ts.join(t, "dash-1", sfu.RoleClassroom, "Hill School", goclient.Options{})
	back := waitRow("rejoined", func(r ClassroomQuality) bool { return r.State == StateLive })
	if back.Seq != first.Seq || back.Freezes != 0 {
		t.Fatalf("rejoined classroom: %+v, want seq %d and a fresh start", back, first.Seq)
	}

	// Leaves for good: gone at once.
	if _, err := hill2.Request(ctx, "leave", struct{}{}); err != nil && !strings.Contains(err.Error(), "closed") {
		t.Logf("leave: %v", err)
	}
	waitRow("left", func(r ClassroomQuality) bool { return r.State == StateGone })
}

func mustMarshal(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
