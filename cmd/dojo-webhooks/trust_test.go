package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/delivery"
	"github.com/dojo-webhooks/dojo-webhooks/internal/natstest"
)

var secretLine = regexp.MustCompile(`(whsec_[A-Za-z0-9+/=]+)`)

func TestSecretAddAndRotate(t *testing.T) {
	s := natstest.Server(t)
	env := testEnv(s.ClientURL())
	r := newReceiver(t, 200)
	res := runCmd(t, env, "", "endpoint", "add", "signed", "--url", r.URL, "--secret", "auto")
	if res.code != 0 {
		t.Fatal(res.stderr)
	}
	first := secretLine.FindString(res.stdout)
	if first == "" {
		t.Fatalf("the secret is not printed: %q", res.stdout)
	}
	hdrs, bodies := r.requests()
	if err := delivery.Verify([]string{first}, hdrs[0], []byte(bodies[0]), time.Now(), 0); err != nil {
		t.Fatalf("the ping is not signed with the printed secret: %v", err)
	}
	for _, args := range [][]string{{"endpoint", "show", "signed"}, {"endpoint", "list", "--json"}} {
		if out := runCmd(t, env, "", args...).stdout; strings.Contains(out, first[6:]) {
			t.Fatalf("%v shows the secret", args)
		}
	}

	res = runCmd(t, env, "", "endpoint", "rotate-secret", "signed")
	second := secretLine.FindString(res.stdout)
	if res.code != 0 || second == "" || second == first {
		t.Fatalf("rotate: %d %q %q", res.code, res.stdout, res.stderr)
	}
	rec := getRecord(t, kvOf(t, s.ClientURL()), "signed")
	if rec.Secret != second || rec.PreviousSecret != first || rec.PreviousSecretUntil.Before(time.Now().Add(23*time.Hour)) {
		t.Fatalf("after rotation: secret ok=%v previous ok=%v until %v", rec.Secret == second, rec.PreviousSecret == first, rec.PreviousSecretUntil)
	}
	if res := runCmd(t, env, "", "endpoint", "ping", "signed"); res.code != 0 {
		t.Fatal(res.stderr)
	}
	hdrs, bodies = r.requests()
	last := hdrs[len(hdrs)-1]
	if n := len(strings.Fields(last.Get("webhook-signature"))); n != 2 {
		t.Fatalf("%d signatures during the overlap, want 2", n)
	}
	for _, sec := range []string{first, second} {
		if err := delivery.Verify([]string{sec}, last, []byte(bodies[len(bodies)-1]), time.Now(), 0); err != nil {
			t.Fatalf("a receiver holding one of the secrets cannot verify: %v", err)
		}
	}
	// After the overlap only the new secret signs.
	env["DOJO_WEBHOOKS_SECRET_OVERLAP"] = "100ms"
	res = runCmd(t, env, "", "endpoint", "rotate-secret", "signed")
	third := secretLine.FindString(res.stdout)
	until := getRecord(t, kvOf(t, s.ClientURL()), "signed").PreviousSecretUntil
	waitFor(t, 5*time.Second, "the end of the overlap", func() bool { return time.Now().After(until) })
	if res := runCmd(t, env, "", "endpoint", "ping", "signed"); res.code != 0 {
		t.Fatal(res.stderr)
	}
	hdrs, bodies = r.requests()
	last = hdrs[len(hdrs)-1]
	if n := len(strings.Fields(last.Get("webhook-signature"))); n != 1 {
		t.Fatalf("%d signatures after the overlap, want 1", n)
	}
	if err := delivery.Verify([]string{third}, last, []byte(bodies[len(bodies)-1]), time.Now(), 0); err != nil {
		t.Fatalf("not signed with the newest secret: %v", err)
	}
	if res := runCmd(t, env, "", "endpoint", "add", "x", "--url", r.URL, "--secret", "whsec_abc"); res.code != 2 || strings.Contains(res.stderr, "whsec_abc") {
		t.Fatalf("a secret on the command line: %d %q", res.code, res.stderr)
	}
}

func TestSafeDestinationsRefuseLoopback(t *testing.T) {
	s := natstest.Server(t)
	env := testEnv(s.ClientURL())
	env["DOJO_WEBHOOKS_BLOCK_PRIVATE"] = "true"
	r := newReceiver(t, 200)
	res := runCmd(t, env, "", "endpoint", "add", "local", "--url", r.URL)
	if res.code != 1 || !strings.Contains(res.stderr, "Destination refused") || !strings.Contains(res.stderr, "loopback") {
		t.Fatalf("loopback with BLOCK_PRIVATE: %d %q", res.code, res.stderr)
	}
	if _, bodies := r.requests(); len(bodies) != 0 {
		t.Fatal("a refused destination was sent to")
	}
	env["DOJO_WEBHOOKS_ALLOW_NETWORKS"] = "127.0.0.0/8"
	if res := runCmd(t, env, "", "endpoint", "add", "local", "--url", r.URL); res.code != 0 {
		t.Fatalf("allow-listed: %q", res.stderr)
	}
	env["DOJO_WEBHOOKS_ALLOW_NETWORKS"] = "not-a-net"
	if res := runCmd(t, env, "", "endpoint", "list"); res.code != 2 || !strings.Contains(res.stderr, "DOJO_WEBHOOKS_ALLOW_NETWORKS") {
		t.Fatalf("bad allow-list: %d %q", res.code, res.stderr)
	}
	delete(env, "DOJO_WEBHOOKS_ALLOW_NETWORKS")
	env["DOJO_WEBHOOKS_CA_FILE"] = "/nonexistent/ca.pem"
	if res := runCmd(t, env, "", "endpoint", "list"); res.code != 2 || !strings.Contains(res.stderr, "DOJO_WEBHOOKS_CA_FILE") {
		t.Fatalf("bad CA file: %d %q", res.code, res.stderr)
	}
}
