package loadtest

import (
	"bytes"
	"context"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"podium/internal/testenv"
)

const cascadeSecret = "loadtest-cascade-secret-0123456789"

func httpBody(url string) string {
	res, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer res.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(res.Body)
	if res.StatusCode != http.StatusOK {
		return ""
	}
	return b.String()
}

// Two real cluster nodes with cascading (redis-server, two `podium serve`
// in regions north and south): the teacher joins the origin, one
// classroom joins each node, both see the teacher's video, and the report
// gives each node's classrooms and cost; the edge's own media counter
// shows it served its classroom itself rather than relaying it.
func TestLoadtestTwoNodeCascade(t *testing.T) {
	if testing.Short() {
		t.Skip("starts redis-server and two podium processes")
	}
	testenv.RequireBinary(t, "ffmpeg")
	redis := testenv.StartRedis(t)

	type node struct {
		*testenv.Podium
		region string
	}
	start := func(id, region string) node {
		addr := testenv.FreeAddr(t)
		n := node{region: region}
		n.Podium = testenv.StartPodiumWith(t, testenv.PodiumOptions{Addr: addr, Secret: cascadeSecret, Args: []string{
			"--record=false", "--log-level", "info",
			"--cluster-redis", redis, "--cluster-node-id", id, "--cluster-advertise-url", "http://" + addr,
			"--cluster-region", region, "--cluster-key", "loadtest-cascade-key", "--cluster-heartbeat", "200ms",
		}})
		return n
	}
	origin := start("n1", "north")
	edge := start("n2", "south")
	testenv.WaitFor(t, 60*time.Second, "both nodes registered", func() bool {
		return strings.Contains(httpBody(origin.URL+"/metrics"), "\npodium_cluster_nodes 2\n")
	})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	jsonPath := filepath.Join(t.TempDir(), "report.json")
	var out bytes.Buffer
	err := Main(ctx, []string{
		"--server", origin.URL, "--region", origin.region, "--server-pid", strconv.Itoa(origin.PID()),
		"--edge", edge.URL + ",region=" + edge.region + ",pid=" + strconv.Itoa(edge.PID()),
		"--secret", cascadeSecret, "--classrooms", "2", "--join-rate", "10", "--duration", "6s",
		"--progress", "2s", "--json", jsonPath,
	}, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	rep := readReport(t, jsonPath)
	if rep.Receiving != 2 || rep.Failed != 0 {
		t.Fatalf("receiving %d failed %d (errors %v), want 2 and 0", rep.Receiving, rep.Failed, rep.Errors)
	}
	if len(rep.Nodes) != 2 {
		t.Fatalf("%d node reports, want 2", len(rep.Nodes))
	}
	for i, want := range []struct {
		name, url string
		pid       int
	}{{"origin", origin.URL, origin.PID()}, {"edge 1", edge.URL, edge.PID()}} {
		n := rep.Nodes[i]
		if n.Name != want.name || n.URL != want.url || n.Classrooms != 1 || n.Receiving != 1 {
			t.Errorf("node %d: %+v, want %s at %s with 1 classroom receiving", i, n, want.name, want.url)
		}
		if n.Server.Source != "/proc/"+strconv.Itoa(want.pid) || n.Server.CPUSeconds <= 0 || n.Server.RSSMiB <= 0 {
			t.Errorf("%s cost not measured from its own process: %+v", n.Name, n.Server)
		}
		// Media sent by the node itself: zero on the edge if its
		// classroom had been relayed to the origin.
		if n.EgressMbps <= 0 {
			t.Errorf("%s sent no media to subscribers (%.3f Mbit/s): its classroom was not served there", n.Name, n.EgressMbps)
		}
	}
	if !strings.Contains(out.String(), "per node") {
		t.Errorf("no per-node table in the output")
	}
}
