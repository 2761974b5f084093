package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/internal/natstest"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

const (
	sidecarPassword  = "sidecar-pw-123"
	operatorPassword = "operator-pw-456"
)

// violationLog keeps the permission violations the server logs, per user.
type violationLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *violationLog) record(format string, v ...any) {
	line := fmt.Sprintf(format, v...)
	if strings.Contains(line, "Violation") {
		l.mu.Lock()
		l.lines = append(l.lines, line)
		l.mu.Unlock()
	}
}

// of returns the violations of connections authenticated as user.
func (l *violationLog) of(user string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		if strings.Contains(line, `/user:`+user+`"`) { // 127.0.0.1:port - cid:5 - "v1.55.0:go:name" - "DOJO/user:operator" - …
			out = append(out, line)
		}
	}
	return out
}

func (l *violationLog) Noticef(format string, v ...any) { l.record(format, v...) }
func (l *violationLog) Warnf(format string, v ...any)   { l.record(format, v...) }
func (l *violationLog) Fatalf(format string, v ...any)  { l.record(format, v...) }
func (l *violationLog) Errorf(format string, v ...any)  { l.record(format, v...) }
func (l *violationLog) Debugf(format string, v ...any)  { l.record(format, v...) }
func (l *violationLog) Tracef(format string, v ...any)  { l.record(format, v...) }

// startRestrictedServer runs nats-server under deploy/nats-server.conf, exactly as shipped
// (only the listen port, the monitoring port and the store directory are the test's).
func startRestrictedServer(t *testing.T) (*server.Server, *violationLog) {
	t.Helper()
	t.Setenv("DOJO_WEBHOOKS_NATS_PASSWORD", sidecarPassword)
	t.Setenv("DOJO_OPERATOR_NATS_PASSWORD", operatorPassword)
	opts, err := server.ProcessConfigFile("../../deploy/nats-server.conf")
	if err != nil {
		t.Fatal(err)
	}
	if opts.HTTPHost != "127.0.0.1" || opts.HTTPPort != 8222 {
		t.Errorf("monitoring listens on %s:%d, want loopback only (127.0.0.1:8222)", opts.HTTPHost, opts.HTTPPort)
	}
	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", -1, 0
	opts.StoreDir, opts.NoLog, opts.NoSigs = t.TempDir(), true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	violations := &violationLog{}
	s.SetLogger(violations, false, false)
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s, violations
}

func connectAs(t *testing.T, url, user, password string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return natstest.ConnectURL(t, url, nats.UserInfo(user, password), nats.Name("test-"+user),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})) // refusals are expected here
}

// refused runs a JetStream call that the permissions must refuse: a refused request
// gets no JetStream answer, so the call fails (times out), and the server logs the
// refusal, which is what proves it (a slow answer would time out too).
func (l *violationLog) refused(t *testing.T, user, what string, call func(ctx context.Context) error) {
	t.Helper()
	before := len(l.of(user))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := call(ctx); err == nil {
		t.Errorf("%s: allowed, want it refused", what)
		return
	}
	waitFor(t, 5*time.Second, what+": the server's permissions violation", func() bool { return len(l.of(user)) > before })
}

func streamMsgs(t *testing.T, js jetstream.JetStream, name string) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	return s.CachedInfo().State.Msgs
}

// TestRestrictedUsers runs the sidecar under the sidecar user of
// deploy/nats-server.conf, exactly as shipped, through a delivery, a permanent
// failure, a dead letter and both replays, without one permission violation; then
// checks what each user is refused: the sidecar may not purge or delete the events
// stream or a message, the operator may read but not write a record, publish an
// event, change a stream, touch the endpoint consumers or delete the bucket watcher.
func TestRestrictedUsers(t *testing.T) {
	s, violations := startRestrictedServer(t)
	names := contract.NamesFor("defectdojo")

	env := testEnv(s.ClientURL())
	env["NATS_USER"], env["NATS_PASSWORD"] = "dojo-webhooks", sidecarPassword
	logs := startServe(t, env)

	// The sidecar user manages endpoints, publishes, and the sidecar delivers.
	r := newReceiver(t, 200)
	if res := runCmd(t, env, "", "endpoint", "add", "hook", "--url", r.URL); res.code != 0 {
		t.Fatalf("endpoint add as the sidecar user: %s\n%s", res.stderr, logs)
	}
	if res := runCmd(t, env, `{"a":1}`, "publish", "scan_added"); res.code != 0 {
		t.Fatalf("publish as the sidecar user: %s", res.stderr)
	}
	delivered := func(n int) func() bool { return func() bool { _, b := r.requests(); return len(b) == n } }
	waitFor(t, 10*time.Second, "the delivery\n"+logs.String(), delivered(2)) // ping, event
	for _, args := range [][]string{{"status"}, {"endpoint", "list"}, {"endpoint", "show", "hook"}} {
		if res := runCmd(t, env, "", args...); res.code != 0 {
			t.Fatalf("%s as the sidecar user: %s", args, res.stderr)
		}
	}
	// replay --since reads the events stream through an ordered consumer.
	if res := runCmd(t, env, "", "replay", "hook", "--since", "1h"); res.code != 0 {
		t.Fatalf("replay --since as the sidecar user: %s", res.stderr)
	}
	waitFor(t, 10*time.Second, "the replayed event\n"+logs.String(), delivered(3))

	// A permanent failure: a dead letter; replay sends it again and purges it (by subject).
	r.setStatus(400)
	if res := runCmd(t, env, `{"a":2}`, "publish", "scan_added"); res.code != 0 {
		t.Fatalf("publish as the sidecar user: %s", res.stderr)
	}
	_, js := connectAs(t, s.ClientURL(), "dojo-webhooks", sidecarPassword)
	waitFor(t, 10*time.Second, "the dead letter\n"+logs.String(), func() bool { return streamMsgs(t, js, names.DeadLetter) == 1 })
	r.setStatus(200)
	if res := runCmd(t, env, "", "endpoint", "activate", "hook"); res.code != 0 {
		t.Fatalf("endpoint activate as the sidecar user: %s", res.stderr)
	}
	if res := runCmd(t, env, "", "replay", "hook"); res.code != 0 || !strings.Contains(res.stdout, "1") {
		t.Fatalf("replay of the dead letters as the sidecar user: %q %s", res.stdout, res.stderr)
	}
	if n := streamMsgs(t, js, names.DeadLetter); n != 0 {
		t.Errorf("%d dead letters after the replay, want 0 (purged)", n)
	}
	waitFor(t, 10*time.Second, "the replayed dead letter\n"+logs.String(), func() bool {
		_, b := r.requests()
		return len(b) >= 6 && b[len(b)-1] == `{"a":2}` // ..., failed event, activate's ping, replayed event
	})
	if strings.Contains(strings.ToLower(logs.String()), "permissions violation") {
		t.Errorf("the sidecar logged a permissions violation:\n%s", logs)
	}
	if v := violations.of("dojo-webhooks"); len(v) != 0 {
		t.Errorf("the server refused the sidecar user %d times:\n%s", len(v), strings.Join(v, "\n"))
	}

	// What the sidecar user is refused: losing events or records.
	events, err := js.Stream(context.Background(), names.Events)
	if err != nil {
		t.Fatal(err)
	}
	stored := streamMsgs(t, js, names.Events)
	if stored == 0 {
		t.Fatal("the events stream is empty")
	}
	violations.refused(t, "dojo-webhooks", "sidecar purges the events stream", func(ctx context.Context) error { return events.Purge(ctx) })
	violations.refused(t, "dojo-webhooks", "sidecar deletes an event", func(ctx context.Context) error { return events.DeleteMsg(ctx, 1) })
	violations.refused(t, "dojo-webhooks", "sidecar erases an event", func(ctx context.Context) error { return events.SecureDeleteMsg(ctx, 1) })
	for _, name := range []string{names.Events, names.DeadLetter, "KV_" + statekv.DefaultBucket} {
		violations.refused(t, "dojo-webhooks", "sidecar deletes stream "+name, func(ctx context.Context) error { return js.DeleteStream(ctx, name) })
	}
	violations.refused(t, "dojo-webhooks", "sidecar deletes the bucket", func(ctx context.Context) error { return js.DeleteKeyValue(ctx, statekv.DefaultBucket) })
	if n := streamMsgs(t, js, names.Events); n != stored {
		t.Errorf("the events stream holds %d messages, had %d", n, stored)
	}

	testOperator(t, s.ClientURL(), violations, js, names, stored)
}

// testOperator checks the operator user: it reads everything an operator looks at
// and is refused every change.
func testOperator(t *testing.T, url string, v *violationLog, sidecar jetstream.JetStream, names contract.Names, stored uint64) {
	nc, js := connectAs(t, url, "operator", operatorPassword)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Reads: records and their history (kv watch and kv ls read the same way); streams;
	// the endpoint consumer; dead letters. History ends by deleting its short-lived
	// consumer, which is refused (see the file): the client waits for its 5 s timeout.
	kv, err := js.KeyValue(ctx, statekv.DefaultBucket)
	if err != nil {
		t.Fatalf("operator opens the bucket: %v", err)
	}
	e, err := kv.Get(ctx, "hook")
	if err != nil || !strings.Contains(string(e.Value()), `"status":"active"`) {
		t.Fatalf("operator reads a record: %v", err)
	}
	if h, err := kv.History(ctx, "hook"); err != nil || len(h) < 2 {
		t.Fatalf("operator reads the history: %d revisions, %v", len(h), err)
	}
	events, err := js.Stream(ctx, names.Events)
	if err != nil {
		t.Fatalf("operator reads the events stream: %v", err)
	}
	if _, err := events.Consumer(ctx, contract.ConsumerName("hook")); err != nil {
		t.Fatalf("operator reads the endpoint's consumer (its backlog): %v", err)
	}
	if _, err := js.Stream(ctx, names.DeadLetter); err != nil {
		t.Fatalf("operator reads the dead-letter stream: %v", err)
	}

	// Refused: record writes.
	v.refused(t, "operator", "operator puts a record", func(ctx context.Context) error {
		_, err := kv.Put(ctx, "hook", []byte(`{"name":"x","url":"http://x/","status":"inactive_permanent"}`))
		return err
	})
	v.refused(t, "operator", "operator deletes a record", func(ctx context.Context) error { return kv.Delete(ctx, "hook") })
	if rec := getRecord(t, kvOf(t, url, nats.UserInfo("dojo-webhooks", sidecarPassword)), "hook"); rec.Status != statekv.StatusActive {
		t.Fatalf("the record changed: %+v", rec)
	}

	// Refused: events, on any of the sidecar's subjects.
	for _, subject := range []string{names.EventSubject("scan_added"), names.ReplaySubject("hook", "scan_added"), names.DeadLetterSubject("hook")} {
		v.refused(t, "operator", "operator publishes on "+subject, func(ctx context.Context) error {
			_, err := js.Publish(ctx, subject, []byte(`{"forged":true}`))
			return err
		})
	}
	// Refused: stream changes.
	cfg := events.CachedInfo().Config
	cfg.MaxAge = time.Second
	v.refused(t, "operator", "operator updates the events stream", func(ctx context.Context) error { _, err := js.UpdateStream(ctx, cfg); return err })
	v.refused(t, "operator", "operator purges the events stream", func(ctx context.Context) error { return events.Purge(ctx) })
	v.refused(t, "operator", "operator deletes an event", func(ctx context.Context) error { return events.DeleteMsg(ctx, 1) })
	for _, name := range []string{names.Events, names.DeadLetter, "KV_" + statekv.DefaultBucket} {
		v.refused(t, "operator", "operator deletes stream "+name, func(ctx context.Context) error { return js.DeleteStream(ctx, name) })
	}
	v.refused(t, "operator", "operator creates a stream", func(ctx context.Context) error {
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "OPS", Subjects: []string{"ops.>"}})
		return err
	})
	if n := streamMsgs(t, sidecar, names.Events); n != stored {
		t.Errorf("the events stream holds %d messages, had %d", n, stored)
	}
	if got := streamConfig(t, sidecar, names.Events); got.MaxAge == time.Second {
		t.Error("the operator changed the events stream")
	}

	// Refused: the endpoint consumers (no consumer create or update on the events stream).
	v.refused(t, "operator", "operator creates a consumer on the events stream", func(ctx context.Context) error {
		_, err := events.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "ops", AckPolicy: jetstream.AckNonePolicy})
		return err
	})
	v.refused(t, "operator", "operator changes the endpoint's consumer", func(ctx context.Context) error {
		_, err := events.UpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: contract.ConsumerName("hook"), Description: "changed"})
		return err
	})
	v.refused(t, "operator", "operator deletes the endpoint's consumer", func(ctx context.Context) error {
		return events.DeleteConsumer(ctx, contract.ConsumerName("hook"))
	})
	v.refused(t, "operator", "operator pauses the endpoint's consumer", func(ctx context.Context) error {
		_, err := js.PauseConsumer(ctx, names.Events, contract.ConsumerName("hook"), time.Now().Add(time.Hour))
		return err
	})

	// Refused: deleting the sidecar's bucket watcher (or any consumer on the bucket).
	bucketStream, err := sidecar.Stream(ctx, "KV_"+statekv.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	kvStream, err := js.Stream(ctx, "KV_"+statekv.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	watchers := consumerNames(t, kvStream) // the operator may list them
	if len(watchers) == 0 {
		t.Fatal("the sidecar has no consumer on the bucket")
	}
	for _, name := range watchers {
		v.refused(t, "operator", "operator deletes the bucket consumer "+name, func(ctx context.Context) error {
			return js.DeleteConsumer(ctx, "KV_"+statekv.DefaultBucket, name)
		})
	}
	if got := consumerNames(t, kvStream); !containsAll(got, watchers) {
		t.Errorf("the bucket's consumers %q lost some of %q", got, watchers)
	}

	// Refused: the legacy durable-create subject, the one that names a durable consumer.
	body, _ := json.Marshal(map[string]any{"stream_name": "KV_" + statekv.DefaultBucket,
		"config": map[string]any{"durable_name": "ops_durable", "ack_policy": "none", "deliver_policy": "all"}})
	v.refused(t, "operator", "operator creates a durable consumer on the legacy subject", func(ctx context.Context) error {
		_, err := nc.RequestWithContext(ctx, "$JS.API.CONSUMER.DURABLE.CREATE.KV_"+statekv.DefaultBucket+".ops_durable", body)
		return err
	})
	if _, err := bucketStream.Consumer(ctx, "ops_durable"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("the legacy durable create left a consumer: %v", err)
	}
	// What subjects cannot refuse (said in deploy/nats-server.conf): a durable consumer on a
	// stream the operator reads through consumers, asked for on the create subject that
	// short-lived readers use. Should a server version tell them apart, tighten the file.
	if _, err := kvStream.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "ops_durable2", AckPolicy: jetstream.AckNonePolicy}); err != nil {
		t.Logf("the operator can no longer create a durable consumer on the bucket (%v): the file's note is out of date", err)
	} else if err := bucketStream.DeleteConsumer(ctx, "ops_durable2"); err != nil { // the sidecar user cleans it up
		t.Errorf("the sidecar user deletes the operator's durable consumer: %v", err)
	}
}

func streamConfig(t *testing.T, js jetstream.JetStream, name string) jetstream.StreamConfig {
	t.Helper()
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return s.CachedInfo().Config
}

func consumerNames(t *testing.T, s jetstream.Stream) []string {
	t.Helper()
	lister := s.ConsumerNames(context.Background())
	var out []string
	for name := range lister.Name() {
		out = append(out, name)
	}
	if err := lister.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func containsAll(have, want []string) bool {
	set := map[string]bool{}
	for _, h := range have {
		set[h] = true
	}
	for _, w := range want {
		if !set[w] {
			return false
		}
	}
	return true
}
