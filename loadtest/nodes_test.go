package loadtest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestAssignNode(t *testing.T) {
	count := func(n, nodes, originFirst int) []int {
		got := make([]int, nodes)
		for i := range n {
			got[assignNode(i, nodes, originFirst)]++
		}
		return got
	}
	for _, tc := range []struct {
		name                      string
		classrooms, nodes, origin int
		want                      []int
	}{
		{"one node takes all", 7, 1, -1, []int{7}},
		{"one node ignores the origin share", 7, 1, 3, []int{7}},
		{"round robin over origin and edge", 300, 2, -1, []int{150, 150}},
		{"round robin, odd count", 5, 3, -1, []int{2, 2, 1}},
		{"first 100 on the origin, rest on the edge", 300, 2, 100, []int{100, 200}},
		{"first 2 on the origin, rest over two edges", 7, 3, 2, []int{2, 3, 2}},
		{"none on the origin", 4, 3, 0, []int{0, 2, 2}},
		{"origin share larger than the run", 4, 2, 10, []int{4, 0}},
	} {
		if got := count(tc.classrooms, tc.nodes, tc.origin); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	// Round robin alternates in join order, so both nodes fill at the
	// same pace during the join phase.
	var order []int
	for i := range 4 {
		order = append(order, assignNode(i, 2, -1))
	}
	if fmt.Sprint(order) != "[0 1 0 1]" {
		t.Errorf("join order %v, want [0 1 0 1]", order)
	}
}

func TestParseEdge(t *testing.T) {
	n, err := parseNode("http://127.0.0.1:18081,region=south,pid=4242,metrics=http://127.0.0.1:9/metrics")
	if err != nil {
		t.Fatal(err)
	}
	want := Node{URL: "http://127.0.0.1:18081", Region: "south", PID: 4242, MetricsURL: "http://127.0.0.1:9/metrics"}
	if n != want {
		t.Fatalf("got %+v, want %+v", n, want)
	}
	for _, bad := range []string{"127.0.0.1:18081", "http://x,region", "http://x,pid=abc", "http://x,pid=-1", "http://x,colour=red"} {
		if _, err := parseNode(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	var edges []Node
	f := edgeFlag{&edges}
	if err := f.Set("http://a:1,region=r1"); err != nil {
		t.Fatal(err)
	}
	if err := f.Set("http://b:2"); err != nil {
		t.Fatal(err)
	}
	if len(edges) != 2 || edges[0].Region != "r1" || edges[1].URL != "http://b:2" {
		t.Fatalf("edges %+v", edges)
	}
}

// A node's region travels on every request its sessions make: the
// websocket (with the token), WHIP and WHEP.
func TestRegionOnRequests(t *testing.T) {
	base, err := withRegion("http://127.0.0.1:18081/", "south")
	if err != nil {
		t.Fatal(err)
	}
	ws, err := wsURL(base, "tok")
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(ws)
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme != "ws" || u.Path != "/ws" || u.Query().Get("region") != "south" || u.Query().Get("token") != "tok" {
		t.Fatalf("websocket URL %s", ws)
	}
	r := &runner{cfg: Config{Server: base}}
	if got := r.endpoint("", "whep", "maths-1"); got != "http://127.0.0.1:18081/whep/maths-1?region=south" {
		t.Fatalf("WHEP endpoint %s", got)
	}
	// Without a region nothing changes.
	plain, _ := withRegion("http://127.0.0.1:18080", "")
	r = &runner{cfg: Config{Server: plain}}
	if got := r.endpoint("", "whip", "maths-1"); got != "http://127.0.0.1:18080/whip/maths-1" {
		t.Fatalf("WHIP endpoint %s", got)
	}
	if ws, _ := wsURL(plain, "tok"); ws != "ws://127.0.0.1:18080/ws?token=tok" {
		t.Fatalf("websocket URL %s", ws)
	}
}

// fakeClassroom is a classroom that received video (or failed).
func fakeClassroom(start time.Time, kbpsSecondHalf float64, half time.Duration, failed bool) *classroomStats {
	s := &classroomStats{lesson: "l-1", start: start}
	if failed {
		s.err = "websocket: 503"
		return s
	}
	s.joinedAt = start.Add(100 * time.Millisecond)
	s.video.frames = 100
	s.video.firstFrame = start.Add(300 * time.Millisecond)
	s.halfVideoBytes = 1000
	s.video.bytes = 1000 + uint64(kbpsSecondHalf*1000/8*half.Seconds())
	return s
}

// fakeCost is a node that used cores CPU over 10 s of steady phase and
// sent egress bytes.
func fakeCost(steadyAt time.Time, cores float64, rssMiB int64, egress float64) *serverCost {
	return &serverCost{
		source:   "test",
		steady:   procSample{cpu: 5 * time.Second},
		steadyAt: steadyAt,
		last:     procSample{cpu: 5*time.Second + time.Duration(cores*10*float64(time.Second)), rss: rssMiB << 20},
		lastAt:   steadyAt.Add(10 * time.Second),
		peakRSS:  rssMiB << 20,
		steadyMetrics: map[string]float64{
			"podium_media_bytes_out_total":   1e6,
			"podium_media_packets_out_total": 1e3,
		},
		endMet: map[string]float64{
			"podium_media_bytes_out_total":   1e6 + egress,
			"podium_media_packets_out_total": 1e3 + egress/1000, // 1000-byte packets
		},
	}
}

// A run over an origin and an edge: each node's classrooms, what they
// received and the node's own cost are reported apart, in the JSON and
// the table; the server line is the sum.
func TestNodeReport(t *testing.T) {
	start := time.Now().Add(-20 * time.Second)
	steady := start.Add(5 * time.Second)
	half := start.Add(10 * time.Second)
	end := start.Add(15 * time.Second)
	nodes := []Node{
		{URL: "http://127.0.0.1:18080", Region: "north", PID: 11},
		{URL: "http://127.0.0.1:18081", Region: "south", PID: 12},
	}
	// Origin: 3 classrooms at 1500 kbit/s; edge: 2 at 500 and 1 failed.
	nodeOf := map[*classroomStats]int{}
	var all []*classroomStats
	add := func(node int, s *classroomStats) {
		all = append(all, s)
		nodeOf[s] = node
	}
	for range 3 {
		add(0, fakeClassroom(start, 1500, end.Sub(half), false))
	}
	for range 2 {
		add(1, fakeClassroom(start, 500, end.Sub(half), false))
	}
	add(1, fakeClassroom(start, 0, 0, true))
	costs := []*serverCost{
		fakeCost(steady, 0.9, 120, 12.5e6), // 10 Mbit/s over 10 s
		fakeCost(steady, 0.6, 80, 5e6),     // 4 Mbit/s
	}
	rep := &Report{Config: map[string]any{"lessons": 1, "classroomsPerLesson": 6}, Started: start}
	rep.fill(all, end, half, newSelfWatch(), nodes, costs, nodeOf)

	if len(rep.Nodes) != 2 {
		t.Fatalf("%d node reports, want 2", len(rep.Nodes))
	}
	o, e := rep.Nodes[0], rep.Nodes[1]
	if o.Name != "origin" || o.Region != "north" || o.Classrooms != 3 || o.Receiving != 3 || o.Failed != 0 {
		t.Errorf("origin %+v", o)
	}
	if e.Name != "edge 1" || e.Region != "south" || e.Classrooms != 3 || e.Receiving != 2 || e.Failed != 1 || e.Joined != 2 {
		t.Errorf("edge %+v", e)
	}
	near := func(got, want float64) bool { return got > want*0.99 && got < want*1.01 }
	if !near(o.VideoKbpsP50, 1500) || !near(e.VideoKbpsP50, 500) {
		t.Errorf("video kbit/s origin %.1f edge %.1f, want 1500 and 500", o.VideoKbpsP50, e.VideoKbpsP50)
	}
	if !near(o.Server.CPUCores, 0.9) || !near(e.Server.CPUCores, 0.6) {
		t.Errorf("cores origin %.2f edge %.2f, want 0.9 and 0.6", o.Server.CPUCores, e.Server.CPUCores)
	}
	if !near(o.Server.SubsPerCore, 3/0.9) || !near(e.Server.SubsPerCore, 2/0.6) {
		t.Errorf("per core origin %.2f edge %.2f", o.Server.SubsPerCore, e.Server.SubsPerCore)
	}
	if !near(o.EgressMbps, 10) || !near(e.EgressMbps, 4) {
		t.Errorf("egress origin %.2f edge %.2f Mbit/s, want 10 and 4", o.EgressMbps, e.EgressMbps)
	}
	// 9 CPU s over 12,500 packets, 6 over 5,000; together 15 over 17,500.
	if !near(o.Server.CPUUsPerPacket, 720) || !near(e.Server.CPUUsPerPacket, 1200) || !near(rep.Server.CPUUsPerPacket, 15e6/17500) {
		t.Errorf("µs per packet sent: origin %.1f edge %.1f sum %.1f, want 720, 1200 and %.1f",
			o.Server.CPUUsPerPacket, e.Server.CPUUsPerPacket, rep.Server.CPUUsPerPacket, 15e6/17500)
	}
	if !near(rep.Server.CPUCores, 1.5) || !near(rep.Server.RSSMiB, 200) || !near(rep.Server.SubsPerCore, 5/1.5) {
		t.Errorf("sum %+v, want 1.5 cores, 200 MiB, %.2f per core", rep.Server, 5/1.5)
	}
	if rep.Receiving != 5 || rep.Failed != 1 {
		t.Errorf("receiving %d failed %d, want 5 and 1", rep.Receiving, rep.Failed)
	}

	var js bytes.Buffer
	if err := rep.WriteJSONFile("-", &js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Nodes) != 2 || !near(back.Nodes[1].Server.CPUCores, 0.6) || back.Nodes[1].URL != nodes[1].URL {
		t.Errorf("JSON nodes %+v", back.Nodes)
	}

	var table bytes.Buffer
	rep.WriteTable(&table)
	out := table.String()
	t.Log("\n" + out)
	var originRow, edgeRow string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 0 && f[0] == "origin":
			originRow = line
		case len(f) > 1 && f[0] == "edge" && f[1] == "1":
			edgeRow = line
		}
	}
	if !strings.Contains(originRow, " north ") || !strings.Contains(originRow, " 0.90 ") {
		t.Errorf("origin row %q: want its region and 0.90 cores\n%s", originRow, out)
	}
	if !strings.Contains(edgeRow, " south ") || !strings.Contains(edgeRow, " 0.60 ") {
		t.Errorf("edge row %q: want its region and 0.60 cores\n%s", edgeRow, out)
	}
	if !strings.Contains(out, "server (sum of 2 nodes") || !strings.Contains(out, "857.14 µs of CPU per packet sent") {
		t.Errorf("server line is not the sum, with its CPU per packet sent:\n%s", out)
	}
}

// One server: no per-node breakdown, the server line as before.
func TestSingleServerReportUnchanged(t *testing.T) {
	start := time.Now().Add(-20 * time.Second)
	s := fakeClassroom(start, 1000, 5*time.Second, false)
	c := fakeCost(start.Add(5*time.Second), 0.5, 100, 1e6)
	c.source = "/proc/11"
	rep := &Report{Config: map[string]any{}, Started: start}
	rep.fill([]*classroomStats{s}, start.Add(15*time.Second), start.Add(10*time.Second), newSelfWatch(),
		[]Node{{URL: "http://127.0.0.1:18080", PID: 11}}, []*serverCost{c}, map[*classroomStats]int{s: 0})
	if rep.Nodes != nil {
		t.Fatalf("nodes %+v on a single server run", rep.Nodes)
	}
	if rep.Server.Source != "/proc/11" || rep.Server.CPUCores < 0.49 || rep.Server.CPUCores > 0.51 {
		t.Fatalf("server %+v", rep.Server)
	}
	var js bytes.Buffer
	if err := rep.WriteJSONFile("-", &js); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(js.String(), `"nodes"`) {
		t.Fatal(`single server JSON has "nodes"`)
	}
	var table bytes.Buffer
	rep.WriteTable(&table)
	if strings.Contains(table.String(), "per node") || !strings.Contains(table.String(), "server (/proc/11): 0.50 cores") {
		t.Fatalf("table:\n%s", table.String())
	}
}
