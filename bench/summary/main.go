// Command summary prints the JSON reports of `podium loadtest` as one
// Markdown table, the form docs/BENCHMARKS.md shows them in.
//
//	go run ./bench/summary bench/results/*.json
//
// With -cost it prints what each run's server spent per packet sent
// against what the load tool spent per packet received, and their mean
// per tree (bench/ab.sh): the tool is the same in every run, so its cost
// gauges how fast the machine was in that run's minutes.
//
//	go run ./bench/summary -cost OUT/base-*/fanout200.json OUT/new-*/fanout200.json
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"podium/loadtest"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: summary [-cost] report.json...")
		os.Exit(2)
	}
	if os.Args[1] == "-cost" {
		printCost(os.Args[2:])
		return
	}
	fmt.Println("| scenario | classrooms receiving / started | join->first frame p50 / p95 ms | video kbit/s p50 (settled layers) | video loss after NACK mean / max % | freezes >1 s per min max | e2e delay p50 / p99 ms | server CPU cores | classrooms per core | server RSS MiB | tool |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|")
	for _, path := range os.Args[1:] {
		r := readReport(path)
		var layers []string
		for l, n := range r.SettledLayer {
			layers = append(layers, fmt.Sprintf("%s=%d", l, n))
		}
		sort.Strings(layers)
		tool := "ok"
		if r.Tool.Saturated {
			tool = fmt.Sprintf("saturated (CPU peak %.0f%%, lag p99 %.0f ms)", r.Tool.PeakCPU*100, r.Tool.LagP99Ms)
		}
		// Over several nodes (--edge): the sum, then each node's share.
		cores := fmt.Sprintf("%.2f", r.Server.CPUCores)
		if len(r.Nodes) > 0 {
			var per []string
			for _, n := range r.Nodes {
				per = append(per, fmt.Sprintf("%s %.2f", n.Name, n.Server.CPUCores))
			}
			cores += " (" + strings.Join(per, ", ") + ")"
		}
		// A run whose classrooms did not all use UDP says what they used
		// (--transport tcp, turn-tcp): "tcp443 (tcp=20)".
		name := strings.TrimSuffix(filepath.Base(path), ".json")
		if r.Transports["udp"] != r.Classrooms && len(r.Transports) > 0 {
			var ts []string
			for t, n := range r.Transports {
				ts = append(ts, fmt.Sprintf("%s=%d", t, n))
			}
			sort.Strings(ts)
			name += " (" + strings.Join(ts, " ") + ")"
		}
		fmt.Printf("| %s | %d / %d | %.0f / %.0f | %.0f (%s) | %.3f / %.3f | %.2f | %.1f / %.1f | %s | %.0f | %.0f | %s |\n",
			name, r.Receiving, r.Classrooms,
			r.JoinToFirstFrameMs.P50, r.JoinToFirstFrameMs.P95,
			r.VideoKbps.P50, strings.Join(layers, " "),
			r.VideoLossPct.Mean, r.VideoLossPct.Max, r.LongFreezesPerMin.Max,
			r.DelayMs.P50, r.DelayMs.P99, cores, r.Server.SubsPerCore, r.Server.PeakRSSMiB, tool)
	}
}

func readReport(path string) loadtest.Report {
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var r loadtest.Report
	if err := json.Unmarshal(b, &r); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", path, err)
		os.Exit(1)
	}
	return r
}

// printCost prints each run's CPU per packet, the server's and the tool's,
// and the mean per tree: a run's tree is its directory's name without a
// trailing "-N" (bench/ab.sh writes base-1, new-1, base-2, ...).
func printCost(paths []string) {
	fmt.Println("| run | server µs per packet sent | tool µs per packet received | server / tool | classrooms per core |")
	fmt.Println("|---|---|---|---|---|")
	type sums struct {
		n                   int
		server, tool, ratio float64
	}
	trees := map[string]*sums{}
	var order []string
	for _, path := range paths {
		r := readReport(path)
		run := filepath.Base(filepath.Dir(path))
		server, tool := r.Server.CPUUsPerPacket, r.Tool.USPerPacket
		if server == 0 || tool == 0 {
			fmt.Printf("| %s | %.2f | %.2f | - | %.0f |\n", run, server, tool, r.Server.SubsPerCore)
			continue
		}
		fmt.Printf("| %s | %.2f | %.2f | %.3f | %.0f |\n", run, server, tool, server/tool, r.Server.SubsPerCore)
		tree := run
		if i := strings.LastIndex(run, "-"); i > 0 {
			tree = run[:i]
		}
		t := trees[tree]
		if t == nil {
			t = &sums{}
			trees[tree] = t
			order = append(order, tree)
		}
		t.n++
		t.server += server
		t.tool += tool
		t.ratio += server / tool
	}
	for _, tree := range order {
		t := trees[tree]
		n := float64(t.n)
		fmt.Printf("| **%s**, mean of %d | %.2f | %.2f | **%.3f** | |\n", tree, t.n, t.server/n, t.tool/n, t.ratio/n)
	}
}
