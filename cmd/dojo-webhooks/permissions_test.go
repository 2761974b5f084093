package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// TestRestrictedUsers runs the sidecar under the sidecar user of
// deploy/nats-server.conf, exactly as shipped, and checks that its operator user
// can read the bucket but not change it.
func TestRestrictedUsers(t *testing.T) {
	t.Setenv("DOJO_WEBHOOKS_NATS_PASSWORD", "sidecar-pw-123")
	t.Setenv("DOJO_OPERATOR_NATS_PASSWORD", "operator-pw-456")
	opts, err := server.ProcessConfigFile("../../deploy/nats-server.conf")
	if err != nil {
		t.Fatal(err)
	}
	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", -1, 0
	opts.StoreDir, opts.NoLog, opts.NoSigs = t.TempDir(), true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })

	env := testEnv(s.ClientURL())
	env["NATS_USER"], env["NATS_PASSWORD"] = "dojo-webhooks", "sidecar-pw-123"
	logs := startServe(t, env)

	// The sidecar user manages endpoints, publishes, and the sidecar delivers.
	r := newReceiver(t, 200)
	if res := runCmd(t, env, "", "endpoint", "add", "hook", "--url", r.URL); res.code != 0 {
		t.Fatalf("endpoint add as the sidecar user: %s\n%s", res.stderr, logs)
	}
	if res := runCmd(t, env, `{"a":1}`, "publish", "scan_added"); res.code != 0 {
		t.Fatalf("publish as the sidecar user: %s", res.stderr)
	}
	waitFor(t, 10*time.Second, "the delivery\n"+logs.String(), func() bool { _, b := r.requests(); return len(b) == 2 })
	if res := runCmd(t, env, "", "status"); res.code != 0 {
		t.Fatalf("status as the sidecar user: %s", res.stderr)
	}
	if strings.Contains(logs.String(), "Permissions Violation") || strings.Contains(logs.String(), "permissions violation") {
		t.Fatalf("the sidecar hit a permissions violation:\n%s", logs)
	}

	// The operator reads, and is refused writes.
	nc, err := nats.Connect(s.ClientURL(), nats.UserInfo("operator", "operator-pw-456"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, statekv.DefaultBucket)
	if err != nil {
		t.Fatalf("operator opens the bucket: %v", err)
	}
	e, err := kv.Get(ctx, "hook")
	if err != nil || !strings.Contains(string(e.Value()), `"status":"active"`) {
		t.Fatalf("operator reads a record: %v", err)
	}
	if _, err := kv.History(ctx, "hook"); err != nil {
		t.Fatalf("operator reads the history: %v", err)
	}
	// A refused publish gets no JetStream answer: the write times out and nothing changes.
	pctx, pcancel := context.WithTimeout(context.Background(), time.Second)
	defer pcancel()
	if _, err := kv.Put(pctx, "hook", []byte(`{"name":"x","url":"http://x/","status":"inactive_permanent"}`)); err == nil {
		t.Fatal("the operator could change a record")
	}
	dctx, dcancel := context.WithTimeout(context.Background(), time.Second)
	defer dcancel()
	if err := kv.Delete(dctx, "hook"); err == nil {
		t.Fatal("the operator could delete a record")
	}
	if rec := getRecord(t, kvOf(t, s.ClientURL(), nats.UserInfo("dojo-webhooks", "sidecar-pw-123")), "hook"); rec.Status != statekv.StatusActive {
		t.Fatalf("the record changed: %+v", rec)
	}
}
