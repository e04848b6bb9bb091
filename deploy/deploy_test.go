package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"podium/internal/testenv"
)

// TestManifestsDecodeWithRealTypes runs the validator module (compose-go for
// the compose file, k8s.io/api strict decoding for the manifests). It is a
// separate module so that podium's go.mod stays free of those libraries; the
// first run downloads and compiles them (about 20 s), later runs are cached.
func TestManifestsDecodeWithRealTypes(t *testing.T) {
	goBin := testenv.RequireBinary(t, "go")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "run", ".", "-deploy", "..")
	cmd.Dir = "validate"
	// The validator has its own go.mod/go.sum; nothing from the outer
	// environment may redirect it.
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("deploy validator failed: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

// TestSystemdUnitVerifies runs systemd-analyze verify on the unit, with
// ExecStart pointed at a program that exists here; any warning (unknown
// key, bad value) fails the test.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze := testenv.RequireBinary(t, "systemd-analyze")
	trueBin, err := exec.LookPath("true")
	if err != nil {
		t.Fatalf("no true(1): %v", err)
	}
	unit, err := os.ReadFile("systemd/podium.service")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(unit, []byte("ExecStart=/usr/local/bin/podium serve")) {
		t.Fatalf("unit must start /usr/local/bin/podium serve")
	}
	for _, want := range []string{"EnvironmentFile=/etc/podium/podium.env", "User=podium", "NoNewPrivileges=yes", "ProtectSystem=strict"} {
		if !bytes.Contains(unit, []byte(want)) {
			t.Errorf("unit lacks %s", want)
		}
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "podium.service")
	unit = bytes.ReplaceAll(unit, []byte("/usr/local/bin/podium"), []byte(trueBin))
	if err := os.WriteFile(path, unit, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, analyze, "verify", path)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, stderr.String())
	}
	if s := strings.TrimSpace(stderr.String()); s != "" {
		t.Fatalf("systemd-analyze verify warned:\n%s", s)
	}
}

// standardMetrics are series Prometheus client_golang's Go and process
// collectors export; everything else the dashboard uses must be registered
// by Podium's code.
var standardMetrics = []string{"process_cpu_seconds_total", "process_resident_memory_bytes", "go_goroutines"}

var metricName = regexp.MustCompile(`\b(podium_[a-z0-9_]+|process_[a-z0-9_]+|go_[a-z0-9_]+)\b`)

// TestDashboardUsesRegisteredMetrics parses the Grafana dashboard and checks
// that every metric its queries use is one Podium registers (or a standard
// one), so a renamed metric cannot leave an empty panel behind.
func TestDashboardUsesRegisteredMetrics(t *testing.T) {
	data, err := os.ReadFile("grafana/dashboards/podium.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			ID      int    `json:"id"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	if dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatalf("dashboard has no uid or no panels")
	}
	registered := registeredMetricNames(t)
	ids := map[int]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, name := range metricName.FindAllString(tg.Expr, -1) {
				if slices.Contains(standardMetrics, name) {
					continue
				}
				base := name
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					base = strings.TrimSuffix(base, suffix)
				}
				if !registered[name] && !registered[base] {
					t.Errorf("panel %q queries %s, which no Podium code registers", p.Title, name)
				}
			}
		}
	}
}

// registeredMetricNames collects every `Name: "podium_..."` in the
// repository's non-test Go files.
func registeredMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	decl := regexp.MustCompile(`Name:\s*"(podium_[a-z0-9_]+)"`)
	names := map[string]bool{}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules" || d.Name() == "validate") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range decl.FindAllSubmatch(src, -1) {
			names[string(m[1])] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatal("found no podium_ metrics in the code")
	}
	return names
}

// TestDockerfileShape checks what no engine here can: a multi-stage build
// whose final stage runs as a numeric non-root user with ffmpeg and a
// health check on /healthz.
func TestDockerfileShape(t *testing.T) {
	f, err := os.Open("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stages []string // instructions per stage, joined
	sc := bufio.NewScanner(f)
	var cur strings.Builder
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "FROM ") {
			if cur.Len() > 0 {
				stages = append(stages, cur.String())
			}
			cur.Reset()
		}
		if !strings.HasPrefix(line, "#") {
			cur.WriteString(line + "\n")
		}
	}
	stages = append(stages, cur.String())
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage build, got %d stage(s)", len(stages))
	}
	final := stages[len(stages)-1]
	user := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindStringSubmatch(final)
	if user == nil || strings.HasPrefix(user[1], "0") || user[1] == "root" {
		t.Errorf("final stage must set a non-root USER, got %v", user)
	}
	for _, want := range []string{"ffmpeg", "HEALTHCHECK", "/healthz", "COPY --from=", "/udp"} {
		if !strings.Contains(final, want) {
			t.Errorf("final stage lacks %q", want)
		}
	}
}
