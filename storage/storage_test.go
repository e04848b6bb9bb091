package storage

import (
	"strings"
	"testing"
)

func TestValidateKey(t *testing.T) {
	for key, ok := range map[string]bool{
		"lessons/a/manifest.json": true,
		"jobs/j1.json":            true,
		"a..b/c":                  true,
		"":                        false,
		"/a":                      false,
		"a/../b":                  false,
		"..":                      false,
		"a//b":                    false,
		"a/":                      false,
		"a/./b":                   false,
		"a\\..\\b":                false,
		"a\x00b":                  false,
	} {
		if err := ValidateKey(key); (err == nil) != ok {
			t.Errorf("ValidateKey(%q) = %v, want ok=%v", key, err, ok)
		}
	}
}

func FuzzValidateKey(f *testing.F) {
	for _, s := range []string{"lessons/a/rec/t/000001.m4s", "../x", "a//b", "a/./b", "", "a\\b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if ValidateKey(key) != nil {
			return
		}
		for _, el := range strings.Split(key, "/") {
			if el == ".." || el == "." || el == "" {
				t.Fatalf("accepted %q", key)
			}
		}
		if strings.ContainsAny(key, "\\\x00") {
			t.Fatalf("accepted %q", key)
		}
	})
}

func TestSafeName(t *testing.T) {
	for in, want := range map[string]string{"cam-1_a": "cam-1_a", "../x": "___x", "": "_", "a b/c": "a_b_c"} {
		if got := SafeName(in); got != want {
			t.Errorf("SafeName(%q) = %q, want %q", in, got, want)
		}
	}
}
