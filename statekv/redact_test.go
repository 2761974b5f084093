package statekv_test

import (
	"strings"
	"testing"

	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

func TestRedactURL(t *testing.T) {
	for _, tt := range []struct{ raw, want string }{
		{"https://user:pass@hooks.example.com/dojo?team=sec", "https://user:xxxxx@hooks.example.com/dojo?team=sec"},
		{"http://alice:s3cr%40t@10.0.0.1:8080/hook", "http://alice:xxxxx@10.0.0.1:8080/hook"},
		{"https://:onlypass@host/", "https://:xxxxx@host/"},
		{"https://user:@host/", "https://user:xxxxx@host/"},
		{"https://user@host/", "https://user@host/"}, // no password: nothing to hide
		{"https://hooks.example.com/dojo", "https://hooks.example.com/dojo"},
		{"https://host/path@with-at?q=a:b@c", "https://host/path@with-at?q=a:b@c"},
		// Not a URL net/url reads (a hand-put record): masked by shape.
		{"https://user:p%zz@host/x", "https://user:xxxxx@host/x"},
		{"https://user:p@ss@ho st/x", "https://user:xxxxx@ho st/x"},
		{"not a url", "not a url"},
		{"", ""},
	} {
		if got := statekv.RedactURL(tt.raw); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
	rec := statekv.Record{URL: "https://bot:hunter2-secret@hooks.example.com/"}
	if got := rec.RedactedURL(); strings.Contains(got, "hunter2") || got != "https://bot:xxxxx@hooks.example.com/" {
		t.Errorf("RedactedURL() = %q", got)
	}
}
