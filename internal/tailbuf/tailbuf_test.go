package tailbuf

import (
	"strings"
	"testing"
)

func TestBufferKeepsTheEnd(t *testing.T) {
	b := New(10)
	for _, s := range []string{"  first line\n", "second\n", "third  \n"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", s, n, err)
		}
	}
	if got := b.String(); got != "d\nthird" {
		t.Fatalf("kept %q, want the last 10 bytes trimmed", got)
	}
	if got := b.LastLine(); got != "third" {
		t.Fatalf("last line %q, want %q", got, "third")
	}
	if got := New(100); got.String() != "" || got.LastLine() != "" {
		t.Fatalf("empty buffer says %q", got.String())
	}
	long := New(4096)
	_, _ = long.Write([]byte(strings.Repeat("x", 10000)))
	if len(long.String()) != 4096 {
		t.Fatalf("kept %d bytes, want 4096", len(long.String()))
	}
}
