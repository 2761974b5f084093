package main

import (
	"strings"
	"testing"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/internal/natstest"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// TestPublishReplaySkipCommands drives the commands against a running sidecar.
func TestPublishReplaySkipCommands(t *testing.T) {
	s := natstest.Server(t)
	env := testEnv(s.ClientURL())
	startServe(t, env)
	r := newReceiver(t, 200)
	if res := runCmd(t, env, "", "endpoint", "add", "hook", "--url", r.URL); res.code != 0 {
		t.Fatal(res.stderr)
	}
	kv := kvOf(t, s.ClientURL())

	// publish: bad input is refused with exit 2 and a reason.
	for _, c := range []struct {
		stdin, want string
		args        []string
	}{
		{`{"a":1}`, "event", []string{"publish", "bad.name"}},
		{`not json`, "not a JSON document", []string{"publish", "scan_added"}},
		{strings.Repeat("x", MaxEventBytes+1), "larger than", []string{"publish", "scan_added"}},
		{``, "usage", []string{"publish"}},
	} {
		res := runCmd(t, env, c.stdin, c.args...)
		if res.code != 2 || !strings.Contains(res.stderr, c.want) {
			t.Errorf("%v: exit %d %q, want 2 mentioning %q", c.args, res.code, res.stderr, c.want)
		}
	}
	res := runCmd(t, env, `{"n": 1}`, "publish", "scan_added", "--msg-id", "first")
	if res.code != 0 || !strings.Contains(res.stdout, "stream DEFECTDOJO_EVENTS sequence") {
		t.Fatalf("publish: %d %q %q", res.code, res.stdout, res.stderr)
	}
	waitFor(t, 10*time.Second, "delivery", func() bool { _, b := r.requests(); return len(b) == 2 })

	// A 400 dead-letters the next event; replay sends it again with its id.
	r.setStatus(400)
	runCmd(t, env, `{"n": 2}`, "publish", "scan_added", "--msg-id", "second")
	waitFor(t, 10*time.Second, "inactive_permanent", func() bool {
		return getRecord(t, kv, "hook").Status == statekv.StatusInactivePermanent
	})
	runCmd(t, env, `{"n": 3}`, "publish", "scan_added", "--msg-id", "third") // held
	waitFor(t, 10*time.Second, "the dead letter", func() bool {
		return strings.Contains(runCmd(t, env, "", "status").stdout, "inactive_permanent  1        until activated  1")
	})
	res = runCmd(t, env, "", "replay", "hook")
	if res.code != 0 || !strings.Contains(res.stdout, "replayed 1 dead letters to endpoint hook") || !strings.Contains(res.stdout, "inactive_permanent") {
		t.Fatalf("replay: %d %q %q", res.code, res.stdout, res.stderr)
	}
	// skip drops the held event and the replay; activation then delivers nothing old.
	res = runCmd(t, env, "", "endpoint", "skip", "hook")
	if res.code != 0 || !strings.Contains(res.stdout, "skipped 2 waiting events") {
		t.Fatalf("skip: %d %q %q", res.code, res.stdout, res.stderr)
	}
	r.setStatus(200)
	if res := runCmd(t, env, "", "endpoint", "activate", "hook"); res.code != 0 {
		t.Fatal(res.stderr)
	}
	runCmd(t, env, `{"n": 4}`, "publish", "scan_added", "--msg-id", "fourth")
	waitFor(t, 10*time.Second, "the event after the skip", func() bool {
		hdrs, _ := r.requests()
		return hdrs[len(hdrs)-1].Get("webhook-id") == "fourth"
	})
	hdrs, _ := r.requests()
	var got []string
	for _, h := range hdrs {
		got = append(got, h.Get("webhook-id"))
	}
	for _, id := range got {
		if id == "third" {
			t.Fatalf("a skipped event was delivered: %v", got)
		}
	}
	// replay --since sends everything since then again, with the original ids.
	res = runCmd(t, env, "", "replay", "hook", "--since", "1h")
	if res.code != 0 || !strings.Contains(res.stdout, "replayed 4 events since") {
		t.Fatalf("replay --since: %d %q %q", res.code, res.stdout, res.stderr)
	}
	waitFor(t, 10*time.Second, "the replayed events", func() bool {
		hdrs, _ := r.requests()
		return hdrs[len(hdrs)-1].Get("webhook-id") == "fourth" && len(hdrs) >= len(got)+4
	})
	if res := runCmd(t, env, "", "replay", "hook", "--since", "yesterday"); res.code != 2 {
		t.Fatalf("bad --since: %d", res.code)
	}
	// A time in the future is refused: it replayed the whole stream's tail before.
	if res := runCmd(t, env, "", "replay", "hook", "--since", "2999-01-01T00:00:00Z"); res.code != 2 || !strings.Contains(res.stderr, "in the future") {
		t.Fatalf("future --since: %d %q %q", res.code, res.stdout, res.stderr)
	}
}
