package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/internal/natstest"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// What happened to one event across three endpoints, and an endpoint's state
// trail: `attempts`, `attempts --id` and `endpoint history` against a running sidecar.
func TestAttemptsAndHistoryCommands(t *testing.T) {
	s := natstest.Server(t)
	env := testEnv(s.ClientURL())
	// The timer below is the test's doing, not the clock's: neither timer fires by itself.
	env["DOJO_WEBHOOKS_REACTIVATE_AFTER"], env["DOJO_WEBHOOKS_RECOVER_AFTER"] = "1h", "1h"
	startServe(t, env)
	ok1, ok2, failing := newReceiver(t, 200), newReceiver(t, 200), newReceiver(t, 200)
	for id, r := range map[string]*receiver{"one": ok1, "two": ok2, "flaky": failing} {
		if res := runCmd(t, env, "", "endpoint", "add", id, "--url", r.URL); res.code != 0 {
			t.Fatalf("add %s: %q", id, res.stderr)
		}
	}
	failing.setStatus(500)
	res := runCmd(t, env, `{"title": "scan"}`, "publish", "scan_added", "-", "--msg-id", "evt-42")
	if res.code != 0 {
		t.Fatalf("publish: %q", res.stderr)
	}
	var all []map[string]any
	waitFor(t, 10*time.Second, "three attempts of evt-42", func() bool {
		res := runCmd(t, env, "", "attempts", "--id", "evt-42", "--json")
		return res.code == 0 && json.Unmarshal([]byte(res.stdout), &all) == nil && len(all) == 3
	})
	endpoints := map[string]any{}
	for _, a := range all {
		endpoints[a["endpoint"].(string)] = a["status"]
	}
	if endpoints["one"] != float64(200) || endpoints["two"] != float64(200) || endpoints["flaky"] != float64(500) {
		t.Errorf("attempts of evt-42 by endpoint: %v", endpoints)
	}
	table := runCmd(t, env, "", "attempts", "--id", "evt-42").stdout
	if !strings.Contains(table, "ENDPOINT") || !strings.Contains(table, "active→inactive_tmp") {
		t.Errorf("attempts --id table:\n%s", table)
	}

	// The failing endpoint: its ping, then the failure, newest first; --failed keeps the failure.
	var flaky []map[string]any
	if err := json.Unmarshal([]byte(runCmd(t, env, "", "attempts", "flaky", "--json").stdout), &flaky); err != nil || len(flaky) != 2 {
		t.Fatalf("attempts flaky: %v %v", flaky, err)
	}
	if flaky[0]["status"] != float64(500) || flaky[1]["kind"] != "ping" || flaky[1]["status"] != float64(200) {
		t.Errorf("attempts flaky, newest first: %v", flaky)
	}
	failed := runCmd(t, env, "", "attempts", "flaky", "--failed").stdout
	if !strings.Contains(failed, "Response status code: 500") || strings.Contains(failed, "ping") {
		t.Errorf("attempts --failed:\n%s", failed)
	}

	// A timer (the operator waits: the reactivation is due now), then a user activation.
	kv := kvOf(t, s.ClientURL())
	waitFor(t, 5*time.Second, "inactive_tmp", func() bool { return getRecord(t, kv, "flaky").Status == statekv.StatusInactiveTmp })
	store := statekv.NewStore(kv)
	failing.setStatus(200) // the redelivery after the reactivation succeeds, which writes nothing in active_tmp
	if _, _, err := store.Apply(context.Background(), "flaky", statekv.Event{Input: statekv.ReactivateTimer},
		func() time.Time { return time.Now().Add(2 * time.Hour) }, statekv.DefaultPolicy()); err != nil {
		t.Fatal(err)
	}
	if res := runCmd(t, env, "", "endpoint", "deactivate", "flaky"); res.code != 0 {
		t.Fatal(res.stderr)
	}
	if res := runCmd(t, env, "", "endpoint", "activate", "flaky"); res.code != 0 {
		t.Fatal(res.stderr)
	}
	var hist []map[string]any
	if err := json.Unmarshal([]byte(runCmd(t, env, "", "endpoint", "history", "flaky", "--json").stdout), &hist); err != nil {
		t.Fatal(err)
	}
	var causes []string
	for _, h := range hist {
		causes = append(causes, h["cause"].(string))
	}
	want := "user:add,delivery:temporary,timer:reactivate_timer,user:deactivate,user:activate"
	if strings.Join(causes, ",") != want {
		t.Errorf("history causes %v, want %s", causes, want)
	}
	text := runCmd(t, env, "", "endpoint", "history", "flaky").stdout
	for _, s := range []string{"REVISION", "delivery:temporary", "Response status code: 500", "inactive_tmp"} {
		if !strings.Contains(text, s) {
			t.Errorf("endpoint history table lacks %q:\n%s", s, text)
		}
	}
	// A hand edit: nats kv put of a copy.
	e, _ := kv.Get(context.Background(), "flaky")
	if _, err := kv.Put(context.Background(), "flaky", e.Value()); err != nil {
		t.Fatal(err)
	}
	if text := runCmd(t, env, "", "endpoint", "history", "flaky").stdout; !strings.Contains(text, statekv.CauseHandEdit) {
		t.Errorf("a kv put is not shown as a hand edit:\n%s", text)
	}
}
