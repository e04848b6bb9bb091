package loadtest

import (
	"encoding/json"
	"os"
	"testing"

	"encoding/binary"
	"math/rand/v2"
	"podium/internal/testenv"
)

func newTestRand() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }

func beUint64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

func putUint64(b []byte, v uint64) { binary.BigEndian.PutUint64(b, v) }

func requireFFmpeg(t testing.TB) string {
	t.Helper()
	return testenv.RequireBinary(t, "ffmpeg")
}

func readReport(t *testing.T, path string) Report {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("report JSON: %v", err)
	}
	return r
}
