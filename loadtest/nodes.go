package loadtest

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Node is one server of a cluster the classrooms are spread over: the
// origin (Config.Server, where every teacher joins) or an edge (--edge).
type Node struct {
	// URL is the node's base URL.
	URL string `json:"url"`
	// Region is the region label the node's clients name (?region=), so
	// the cluster places them on this node rather than relaying them to
	// the lesson's owner; "" names none.
	Region string `json:"region,omitempty"`
	// PID is the node's process id for CPU and RSS from /proc; 0 uses the
	// process_* series of its /metrics.
	PID int `json:"pid,omitempty"`
	// MetricsURL is the node's /metrics; "" is <URL>/metrics, "-" disables.
	MetricsURL string `json:"metricsUrl,omitempty"`
}

// parseNode reads an --edge value: "URL[,region=R][,pid=N][,metrics=URL]".
func parseNode(s string) (Node, error) {
	parts := strings.Split(s, ",")
	n := Node{URL: strings.TrimSpace(parts[0])}
	if !strings.HasPrefix(n.URL, "http://") && !strings.HasPrefix(n.URL, "https://") {
		return Node{}, fmt.Errorf("edge %q: want an http(s):// URL first", s)
	}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if !ok {
			return Node{}, fmt.Errorf("edge %q: %q is not key=value", s, p)
		}
		switch k {
		case "region":
			n.Region = v
		case "pid":
			pid, err := strconv.Atoi(v)
			if err != nil || pid <= 0 {
				return Node{}, fmt.Errorf("edge %q: pid %q is not a process id", s, v)
			}
			n.PID = pid
		case "metrics":
			n.MetricsURL = v
		default:
			return Node{}, fmt.Errorf("edge %q: unknown option %q (want region, pid or metrics)", s, k)
		}
	}
	return n, nil
}

// edgeFlag is the repeatable --edge flag.
type edgeFlag struct{ nodes *[]Node }

func (f edgeFlag) String() string {
	if f.nodes == nil {
		return ""
	}
	var s []string
	for _, n := range *f.nodes {
		s = append(s, n.URL)
	}
	return strings.Join(s, " ")
}

func (f edgeFlag) Set(v string) error {
	n, err := parseNode(v)
	if err != nil {
		return err
	}
	*f.nodes = append(*f.nodes, n)
	return nil
}

// nodes lists the servers of a run: the origin first, then the edges.
func (c *Config) nodes() []Node {
	origin := Node{URL: c.Server, Region: c.Region, PID: c.ServerPID, MetricsURL: c.MetricsURL}
	return append([]Node{origin}, c.Edges...)
}

// assignNode is the node (0 = the origin, i = Edges[i-1]) of the
// classroom that joins i-th (from 0, over all lessons). originFirst < 0
// spreads classrooms round robin over all nodes; otherwise the first
// originFirst classrooms go to the origin and the rest round robin over
// the edges.
func assignNode(i, nodes, originFirst int) int {
	switch {
	case nodes <= 1:
		return 0
	case originFirst < 0:
		return i % nodes
	case i < originFirst:
		return 0
	default:
		return 1 + (i-originFirst)%(nodes-1)
	}
}

// withRegion returns base with ?region= set, so the cluster places the
// websocket, WHIP and WHEP requests made from it in that region.
func withRegion(base, region string) (string, error) {
	if region == "" {
		return base, nil
	}
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("server url: %w", err)
	}
	q := u.Query()
	q.Set("region", region)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// nodeName is how the table and the JSON name node i.
func nodeName(i int) string {
	if i == 0 {
		return "origin"
	}
	return "edge " + strconv.Itoa(i)
}
