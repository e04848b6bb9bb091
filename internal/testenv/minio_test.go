package testenv

import (
	"net/http"
	"testing"
)

func TestStartMinIORestart(t *testing.T) {
	m := StartMinIO(t)
	probe := func() int {
		resp, err := http.Get(m.URL() + "/minio/health/live")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := probe(); got != http.StatusOK {
		t.Fatalf("live probe = %d, want 200", got)
	}
	m.Stop()
	if got := probe(); got != 0 {
		t.Fatalf("stopped server answered %d", got)
	}
	m.Start()
	if got := probe(); got != http.StatusOK {
		t.Fatalf("restarted live probe = %d, want 200", got)
	}
}
