package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/jsstate"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// invalidRecordMsg is what the sidecar logs, once per revision, for a value that does not parse or validate.
const invalidRecordMsg = "invalid endpoint record: its deliveries are held until it is fixed"

// TestInvalidRecordsAreHeldAndLogged: values put by hand into the bucket (as
// with `nats kv put`) that do not parse or validate, among them header fields
// with CR/LF and URLs with other schemes than http(s). Each is logged in one
// error line naming its key and the reason, its deliveries are held (nothing is
// sent to its URL; an endpoint that was valid before keeps its backlog on a
// paused consumer and gets all of it, in order, once a valid value is written
// again) and nothing else is affected: another endpoint keeps receiving every
// event, and the sidecar logs no other error.
func TestInvalidRecordsAreHeldAndLogged(t *testing.T) {
	t.Parallel()
	const total = 200
	srv := startNATS(t)
	env := sidecarEnv(srv.URL(), "DOJO_WEBHOOKS_MAX_IN_FLIGHT", "1")
	sc := startSidecar(t, "sidecar", env)
	_, js := connect(t, srv.URL())
	kv := bucketOf(t, js)
	ctx := context.Background()
	good, held, trap := newReceiver(t), newReceiver(t), newReceiver(t)
	createEndpoint(t, kv, "good", good.URL())
	createEndpoint(t, kv, "held", held.URL())
	waitConsumer(t, js, "good")
	waitConsumer(t, js, "held")

	pub := newPublished(total)
	if err := publishRange(ctx, js, "scan_added", 0, total/2, "", pub); err != nil {
		t.Fatal(err)
	}
	held.waitDelivered(t, total/2, waitTimeout)

	// "reason" is a part of the error the log line must carry; "secret" must never appear in the log.
	trapURL := strconv.Quote(trap.URL())
	bad := []struct {
		key, value, reason, secret string
	}{
		{key: "malformed", value: `{"name": "Malformed", "url": ` + trapURL + `, "status": "active"`,
			reason: "not a JSON object"},
		{key: "wrong-type-name", value: `{"name": 5, "url": ` + trapURL + `, "status": "active"}`,
			reason: "field name: expected a string or null, got 5"},
		{key: "wrong-type-events", value: `{"name": "Events", "url": ` + trapURL + `, "status": "active", "events": "scan_added"}`,
			reason: "field events: expected an array of strings or null"},
		{key: "unknown-status", value: `{"name": "Status", "url": ` + trapURL + `, "status": "enabled"}`,
			reason: `field status: "enabled" is not one of`},
		{key: "crlf-header-name", value: `{"name": "CRLF name", "url": ` + trapURL + `, "status": "active", "header_name": "X-Token\r\nX-Injected", "header_value": "v"}`,
			reason: "field header_name: \"X-Token\\r\\nX-Injected\" is not a valid HTTP header name"},
		{key: "crlf-header-value", value: `{"name": "CRLF value", "url": ` + trapURL + `, "status": "active", "header_name": "Authorization", "header_value": "Token s3cr3t\r\nX-Injected: 1"}`,
			reason: "field header_value: contains CR, LF or NUL", secret: "s3cr3t"},
		{key: "ftp-url", value: `{"name": "FTP", "url": "ftp://127.0.0.1/hook", "status": "active"}`,
			reason: "field url: \"ftp://127.0.0.1/hook\": scheme must be http or https"},
		{key: "file-url", value: `{"name": "File", "url": "file:///etc/passwd", "status": "active"}`,
			reason: "field url: \"file:///etc/passwd\": scheme must be http or https"},
		{key: "javascript-url", value: `{"name": "JS", "url": "javascript:alert(1)", "status": "active"}`,
			reason: "scheme must be http or https"},
		// A valid endpoint made invalid: CR/LF in its header value.
		{key: "held", value: `{"name": "Endpoint held", "url": ` + strconv.Quote(held.URL()) + `, "status": "active", "header_name": "Authorization", "header_value": "Bearer t0ken\nX-Injected: 1"}`,
			reason: "field header_value: contains CR, LF or NUL", secret: "t0ken"},
	}
	before, err := kv.Get(ctx, "held")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bad {
		if _, err := kv.Put(ctx, b.key, []byte(b.value)); err != nil {
			t.Fatalf("put %s: %v", b.key, err)
		}
	}
	for _, b := range bad {
		waitFor(t, waitTimeout, "the sidecar to log the invalid record "+b.key, func() bool {
			return len(sc.logEntries(logMessage(invalidRecordMsg, "endpoint", b.key))) > 0
		})
	}
	// Held: the formerly valid endpoint's consumer is paused on the server.
	waitFor(t, waitTimeout, "the consumer of the invalid endpoint paused", func() bool {
		c, err := js.Consumer(ctx, names.Events, contract.ConsumerName("held"))
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && info.Paused
	})

	if err := publishRange(ctx, js, "scan_added", total/2, total, "", pub); err != nil {
		t.Fatal(err)
	}
	good.waitDelivered(t, total, waitTimeout)
	// The held endpoint's backlog is kept on its paused consumer: it shows in `endpoint list`.
	waitFor(t, waitTimeout, "the held endpoint's backlog to count the new events", func() bool {
		n, err := jsstate.Backlog(ctx, js, names, "held")
		return err == nil && n == total/2
	})
	res := runCLI(t, env, nil, "endpoint", "list", "--status", "invalid", "--json")
	if res.code != 0 {
		t.Fatalf("endpoint list --status invalid: exit %d: %s", res.code, res.stderr)
	}
	var listed []struct {
		ID, Status, Note string
		Backlog          *uint64 // null when unknown
	}
	if err := json.Unmarshal([]byte(res.stdout), &listed); err != nil {
		t.Fatalf("endpoint list --json: %v\n%s", err, res.stdout)
	}
	if len(listed) != len(bad) {
		t.Errorf("endpoint list --status invalid lists %d records, want %d:\n%s", len(listed), len(bad), res.stdout)
	}
	for _, l := range listed {
		if l.ID == "held" && (l.Backlog == nil || *l.Backlog != uint64(total/2)) {
			t.Errorf("endpoint list: held has backlog %v, want %d", l.Backlog, total/2)
		}
	}
	if n := held.count(); n != total/2 {
		t.Errorf("the held endpoint got %d requests while invalid, want none after the first %d", n-total/2, total/2)
	}

	// Fixed: the backlog arrives, in order, each event once.
	if _, err := kv.Put(ctx, "held", before.Value()); err != nil {
		t.Fatal(err)
	}
	held.waitDelivered(t, total, waitTimeout)
	for _, r := range []struct {
		name string
		r    *receiver
	}{{"good", good}, {"held", held}} {
		hits := r.r.requests()
		if dup := checkAtLeastOnce(t, hits, pub.ids); dup != 0 {
			t.Errorf("%s: %d events delivered twice", r.name, dup)
		}
		checkOrder(t, hits, pub)
	}
	if n := trap.count(); n != 0 {
		t.Errorf("%d requests were sent to the URL of invalid records", n)
	}

	// One error line per invalid revision, naming the key and the reason; no other error; no secret.
	logs := sc.logs.String()
	for _, b := range bad {
		lines := sc.logEntries(logMessage(invalidRecordMsg, "endpoint", b.key))
		if len(lines) != 1 {
			t.Errorf("%s: %d log lines, want 1", b.key, len(lines))
			continue
		}
		if lines[0]["level"] != "error" || !strings.Contains(fmt.Sprint(lines[0]["error"]), b.reason) {
			t.Errorf("%s: logged %v, want an error line with the reason %q", b.key, lines[0], b.reason)
		}
		if b.secret != "" && strings.Contains(logs, b.secret) {
			t.Errorf("%s: the header value is in the log", b.key)
		}
	}
	errorLines := sc.logEntries(func(m map[string]any) bool { return m["level"] == "error" })
	if len(errorLines) != len(bad) {
		t.Errorf("%d error lines, want %d (one per invalid record, nothing else): %v", len(errorLines), len(bad), errorLines)
	}
	for _, id := range []string{"good", "held"} {
		if e, err := statekv.NewStore(kv).Get(ctx, id); err != nil || e.Record.Status != statekv.StatusActive {
			t.Errorf("endpoint %s: %v %v, want it active", id, e.Record.Status, err)
		}
	}
}

// TestEventBodies: what happens to event bodies that are not what a publisher should send.
//   - Not JSON, published straight to the stream (any NATS client can): the
//     sidecar forwards the bytes as they are (Content-Type still application/json),
//     with the event's webhook-id; the receiver answering 2xx, nothing changes.
//   - Larger than NATS's max payload (1 MiB): the NATS client refuses it, nothing is stored.
//   - With the `publish` command: a non-JSON body, a body over 1 MiB and an invalid
//     event name are each refused with exit code 2 and one line saying why (naming
//     the event), and nothing is stored; a valid one is stored and delivered.
func TestEventBodies(t *testing.T) {
	t.Parallel()
	srv := startNATS(t)
	env := sidecarEnv(srv.URL())
	startSidecar(t, "sidecar", env)
	_, js := connect(t, srv.URL())
	kv := bucketOf(t, js)
	ctx := context.Background()
	r := newReceiver(t)
	r.keepBodies = true
	createEndpoint(t, kv, "raw", r.URL())
	waitConsumer(t, js, "raw")

	bodies := [][]byte{
		[]byte("not json at all"),
		{0x00, 0xff, 0xfe, '{', '\n', 0x7f},
		{},
		[]byte(`{"unterminated": `),
	}
	var want []string
	for _, b := range bodies {
		ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: names.EventSubject("scan_added"), Data: b})
		if err != nil {
			t.Fatalf("publish %q: %v", b, err)
		}
		want = append(want, contract.WebhookID(names.Events, nil, ack.Sequence, false))
	}
	waitFor(t, waitTimeout, "the raw bodies delivered", func() bool { return r.count() >= len(bodies) })
	hits := r.requests()
	if len(hits) != len(bodies) {
		t.Fatalf("%d requests for %d events", len(hits), len(bodies))
	}
	for i, h := range hits {
		if !bytes.Equal(h.Body, bodies[i]) || h.ID != want[i] {
			t.Errorf("event %d: got body %q webhook-id %s, want %q forwarded as is with %s", i, h.Body, h.ID, bodies[i], want[i])
		}
		if ct := h.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("event %d: Content-Type %q", i, ct)
		}
	}
	t.Logf("non-JSON bodies published straight to the stream are forwarded byte for byte (%d requests)", len(hits))

	stream, err := js.Stream(ctx, names.Events)
	if err != nil {
		t.Fatal(err)
	}
	stored := func() uint64 {
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Msgs
	}
	before := stored()

	huge := make([]byte, 1<<20+1)
	_, err = js.PublishMsg(ctx, &nats.Msg{Subject: names.EventSubject("scan_added"), Data: huge})
	if !errors.Is(err, nats.ErrMaxPayload) {
		t.Errorf("publishing %d bytes: %v, want %v", len(huge), err, nats.ErrMaxPayload)
	}
	t.Logf("a body over the max payload, published with a NATS client: %v", err)

	bigJSON := []byte(`{"description": "` + strings.Repeat("x", 1<<20) + `"}`)
	refused := []struct {
		name  string
		args  []string
		stdin []byte
		says  string
	}{
		{"non-JSON body", []string{"publish", "scan_added"}, []byte("not json"), "standard input is not a JSON document"},
		{"empty body", []string{"publish", "scan_added"}, nil, "standard input is not a JSON document"},
		{"body over 1 MiB", []string{"publish", "scan_added", "-"}, bigJSON, "standard input is larger than 1048576 bytes"},
	}
	for _, event := range []string{"scan.added", "scan added", "scan_added>", "*", "ünïcode", "", strings.Repeat("e", 129)} {
		refused = append(refused, struct {
			name  string
			args  []string
			stdin []byte
			says  string
		}{"event name " + strconv.Quote(event), []string{"publish", event}, []byte(`{"title": "x"}`), "event " + strconv.Quote(event)})
	}
	for _, c := range refused {
		res := runCLI(t, env, c.stdin, c.args...)
		lines := strings.Split(strings.TrimSpace(res.stderr), "\n")
		if res.code != 2 || !strings.Contains(res.stderr, c.says) || len(lines) != 1 {
			t.Errorf("publish with %s: exit %d, stderr %q; want exit 2 and one line saying %q", c.name, res.code, res.stderr, c.says)
		} else {
			t.Logf("publish with %s: exit 2: %s", c.name, lines[0])
		}
	}
	if after := stored(); after != before {
		t.Errorf("the refused publishes stored %d messages", after-before)
	}

	res := runCLI(t, env, eventBody(0), "publish", "scan_added", "-", "--msg-id", "cli-0")
	if res.code != 0 || !strings.Contains(res.stdout, "published scan_added: stream "+names.Events) {
		t.Fatalf("publish of a valid event: exit %d, %q %q", res.code, res.stdout, res.stderr)
	}
	r.waitDelivered(t, 1, waitTimeout)
	if h := r.requests()[len(bodies)]; h.ID != "cli-0" || h.N != 0 {
		t.Errorf("the published event arrived as %+v", h)
	}
	if e, err := statekv.NewStore(kv).Get(ctx, "raw"); err != nil || e.Record.Status != statekv.StatusActive {
		t.Errorf("endpoint raw: %v %v, want it still active", e.Record.Status, err)
	}
}

// TestBucketDeletedUnderRunningSidecar: the KV bucket (the source of truth) is
// deleted while the sidecar runs, then created again (as the next `endpoint add`
// or sidecar start does) with a new endpoint. Wanted, one subtest each: no crash
// and no spin, with /readyz and a clear log line naming the bucket; the sidecar
// following the recreated bucket (the new endpoint gets its events); and the
// endpoints that went with the old bucket no longer sent to.
func TestBucketDeletedUnderRunningSidecar(t *testing.T) {
	t.Parallel()
	srv := startNATS(t)
	env := sidecarEnv(srv.URL())
	sc := startSidecar(t, "sidecar", env)
	_, js := connect(t, srv.URL())
	kv := bucketOf(t, js)
	ctx := context.Background()
	old := newReceiver(t)
	createEndpoint(t, kv, "old", old.URL())
	waitConsumer(t, js, "old")
	publishAll(t, js, "scan_added", 10, "")
	old.waitDelivered(t, 10, waitTimeout)
	linesBefore := strings.Count(sc.logs.String(), "\n")
	spinCheck := func(t *testing.T, since time.Time, most int) {
		t.Helper()
		if sc.exited() {
			t.Fatalf("the sidecar exited (%v) after its bucket was deleted", sc.err)
		}
		if n := strings.Count(sc.logs.String(), "\n") - linesBefore; n > most {
			t.Errorf("%d log lines in the %s after the deletion: the sidecar spins", n, time.Since(since).Round(time.Second))
		}
	}

	deletedAt := time.Now()
	if err := js.DeleteKeyValue(ctx, statekv.DefaultBucket); err != nil {
		t.Fatal(err)
	}
	t.Run("no crash, and a clear log line", func(t *testing.T) {
		addr := fmt.Sprint(sc.logEntries(logMessage("HTTP server listening"))[0]["addr"])
		waitFor(t, waitTimeout, "/readyz to report the missing bucket", func() bool {
			resp, err := http.Get("http://" + addr + "/readyz")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(b), statekv.DefaultBucket)
		})
		// A warn or error line naming the bucket.
		clear := func(m map[string]any) bool {
			line, _ := json.Marshal(m)
			return (m["level"] == "error" || m["level"] == "warn") && strings.Contains(string(line), statekv.DefaultBucket)
		}
		deadline := time.Now().Add(waitTimeout)
		for len(sc.logEntries(clear)) == 0 && !sc.exited() && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond) // poll interval
		}
		spinCheck(t, deletedAt, 200)
		if l := sc.logEntries(clear); len(l) == 0 {
			t.Errorf("no warn or error log line names the bucket %s within %s of its deletion (only /readyz reports it)",
				statekv.DefaultBucket, waitTimeout)
		} else {
			t.Logf("logged: %v", l[0])
		}
	})

	// The bucket comes back (EnsureBucket: what a sidecar start or `endpoint add` does) with a new endpoint.
	kv2, err := statekv.EnsureBucket(ctx, js, statekv.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	fresh := newReceiver(t)
	createEndpoint(t, kv2, "fresh", fresh.URL())
	oldBefore := old.count()
	pub := newPublished(10)
	if err := publishRange(ctx, js, "scan_added", 0, 10, "", pub); err != nil {
		t.Fatal(err)
	}
	t.Run("follows the recreated bucket", func(t *testing.T) {
		deadline := time.Now().Add(30 * time.Second) // beyond the KV watch's own recovery (missed heartbeats)
		for fresh.delivered() < 10 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond) // poll interval
		}
		spinCheck(t, deletedAt, 400)
		if n := fresh.delivered(); n < 10 {
			_, cerr := js.Consumer(ctx, names.Events, contract.ConsumerName("fresh"))
			t.Fatalf("the first endpoint added to the recreated bucket got %d of 10 events within 30 s (its consumer: %v): "+
				"the sidecar no longer follows the bucket", n, cerr)
		}
		checkAtLeastOnce(t, fresh.requests(), pub.ids)
	})
	t.Run("forgets the endpoints of the deleted bucket", func(t *testing.T) {
		if n := old.count() - oldBefore; n > 0 {
			t.Errorf("endpoint old, gone with the deleted bucket and absent from the new one, was sent %d of the 10 events published after", n)
		}
	})
}

// TestNATSUnreachableAtStartup: NATS_URL points at a closed port and
// DOJO_WEBHOOKS_CONNECT_WAIT is 1 s: the sidecar exits non-zero within a few
// seconds with a message naming the URL.
func TestNATSUnreachableAtStartup(t *testing.T) {
	t.Parallel()
	url := fmt.Sprintf("nats://127.0.0.1:%d", freePort(t))
	res := runCLI(t, sidecarEnv(url, "DOJO_WEBHOOKS_CONNECT_WAIT", "1000ms"), nil, "serve")
	t.Logf("exit %d after %s: %s", res.code, res.took.Round(time.Millisecond), strings.TrimSpace(res.stderr))
	if res.code == 0 {
		t.Errorf("exit code 0 without NATS")
	}
	if res.took > 10*time.Second {
		t.Errorf("took %s to give up, with DOJO_WEBHOOKS_CONNECT_WAIT=1s", res.took)
	}
	var stopped map[string]any
	for _, line := range strings.Split(res.stderr, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["level"] == "error" {
			stopped = m
		}
	}
	if stopped == nil || !strings.Contains(fmt.Sprint(stopped["error"]), url) {
		t.Errorf("want an error line naming %s, got:\n%s", url, res.stderr)
	}
}
