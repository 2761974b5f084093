package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/internal/logtest"
	"github.com/dojo-webhooks/dojo-webhooks/internal/natstest"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// cmdResult is what one CLI invocation printed.
type cmdResult struct {
	code           int
	stdout, stderr string
}

func runCmd(t *testing.T, env map[string]string, stdin string, args ...string) cmdResult {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, env, strings.NewReader(stdin), &out, &errb)
	return cmdResult{code, out.String(), errb.String()}
}

// startServe runs `serve` in-process until the test ends and waits until it is ready.
func startServe(t *testing.T, env map[string]string) *logtest.Buffer {
	t.Helper()
	logs := &logtest.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var code int
	go func() {
		code = run(ctx, []string{"serve"}, env, strings.NewReader(""), io.Discard, logs)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
			if code != 0 {
				t.Errorf("serve exited %d; logs:\n%s", code, logs)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("serve did not stop within 20s; logs:\n%s", logs)
		}
	})
	waitFor(t, 10*time.Second, "serve ready", func() bool {
		select {
		case <-done:
			t.Fatalf("serve exited %d before ready; logs:\n%s", code, logs)
		default:
		}
		return strings.Contains(logs.String(), "dojo-webhooks ready")
	})
	return logs
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// testEnv points every command at a test NATS server, with fast timers.
func testEnv(url string) map[string]string {
	return map[string]string{
		"NATS_URL":                       url,
		"DOJO_WEBHOOKS_HTTP_ADDR":        "127.0.0.1:0",
		"DOJO_WEBHOOKS_REACTIVATE_AFTER": "300ms",
		"DOJO_WEBHOOKS_RECOVER_AFTER":    "600ms",
		"DOJO_WEBHOOKS_TIMEOUT":          "2s",
		"DOJO_WEBHOOKS_SHUTDOWN_GRACE":   "2s",
	}
}

// receiver is an HTTP endpoint whose answer can be switched.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	status int
	got    []http.Header
	bodies []string
}

func newReceiver(t *testing.T, status int) *receiver {
	r := &receiver{status: status}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, req.Header.Clone())
		r.bodies = append(r.bodies, string(b))
		st := r.status
		r.mu.Unlock()
		w.WriteHeader(st)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) setStatus(s int) {
	r.mu.Lock()
	r.status = s
	r.mu.Unlock()
}

func (r *receiver) requests() ([]http.Header, []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]http.Header(nil), r.got...), append([]string(nil), r.bodies...)
}

func kvOf(t *testing.T, url string, opts ...nats.Option) jetstream.KeyValue {
	t.Helper()
	_, js := natstest.ConnectURL(t, url, opts...)
	kv, err := js.KeyValue(context.Background(), statekv.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func getRecord(t *testing.T, kv jetstream.KeyValue, id string) statekv.Record {
	t.Helper()
	e, err := statekv.NewStore(kv).Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return e.Record
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	cases := map[string]string{
		"DOJO_WEBHOOKS_TIMEOUT":          "ten",
		"DOJO_WEBHOOKS_REACTIVATE_AFTER": "-1s",
		"DOJO_WEBHOOKS_REPLICAS":         "0",
		"DOJO_WEBHOOKS_SUBJECT_PREFIX":   "a..b",
		"DOJO_WEBHOOKS_LOG_LEVEL":        "loud",
		"DOJO_WEBHOOKS_MAX_IN_FLIGHT":    "many",
		"DD_SITE_URL":                    "ftp://dojo",
		"DOJO_WEBHOOKS_BUCKET":           "a.b",
	}
	for name, value := range cases {
		t.Run(name, func(t *testing.T) {
			res := runCmd(t, map[string]string{name: value}, "", "serve")
			if res.code != 2 {
				t.Fatalf("exit %d, want 2", res.code)
			}
			if !strings.Contains(res.stderr, name) || strings.Count(strings.TrimSpace(res.stderr), "\n") != 0 {
				t.Fatalf("want one line naming %s, got %q", name, res.stderr)
			}
		})
	}
}

func TestHelpListsEveryVariable(t *testing.T) {
	res := runCmd(t, nil, "", "help")
	if res.code != 0 {
		t.Fatalf("exit %d", res.code)
	}
	for _, v := range []string{"NATS_URL", "NATS_CREDS", "NATS_NKEY", "NATS_USER", "NATS_PASSWORD", "NATS_TOKEN", "NATS_CA",
		"NATS_CERT", "NATS_KEY", "DD_SITE_URL", "DOJO_WEBHOOKS_SUBJECT_PREFIX", "DOJO_WEBHOOKS_BUCKET", "DOJO_WEBHOOKS_REPLICAS",
		"DOJO_WEBHOOKS_TIMEOUT", "DOJO_WEBHOOKS_REACTIVATE_AFTER", "DOJO_WEBHOOKS_RECOVER_AFTER", "DOJO_WEBHOOKS_GIVE_UP_AFTER",
		"DOJO_WEBHOOKS_HTTP_ADDR", "DOJO_WEBHOOKS_DATA_DIR", "DOJO_WEBHOOKS_LOG_LEVEL", "endpoint add"} {
		if !strings.Contains(res.stdout, v) {
			t.Errorf("help does not mention %s", v)
		}
	}
	if got := runCmd(t, nil, "", "--help"); got.stdout != res.stdout {
		t.Error("--help differs from help")
	}
}

func TestServeEmbeddedDefault(t *testing.T) {
	port := freePort(t)
	env := map[string]string{
		"DOJO_WEBHOOKS_DATA_DIR":  t.TempDir(),
		"DOJO_WEBHOOKS_NATS_PORT": strconv.Itoa(port),
		"DOJO_WEBHOOKS_HTTP_ADDR": "127.0.0.1:" + strconv.Itoa(freePort(t)),
	}
	startServe(t, env)
	// What `nats -s nats://127.0.0.1:<port> kv ls` sees.
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	_, js := natstest.ConnectURL(t, url)
	names := js.KeyValueStoreNames(context.Background())
	var buckets []string
	for n := range names.Name() {
		buckets = append(buckets, n)
	}
	if len(buckets) != 1 || buckets[0] != statekv.DefaultBucket {
		t.Fatalf("buckets %v, want [%s]", buckets, statekv.DefaultBucket)
	}
	// The CLI finds the embedded server without NATS_URL.
	res := runCmd(t, map[string]string{"DOJO_WEBHOOKS_NATS_PORT": strconv.Itoa(port)}, "", "endpoint", "list")
	if res.code != 0 || !strings.HasPrefix(res.stdout, "ID") {
		t.Fatalf("endpoint list: exit %d, %q %q", res.code, res.stdout, res.stderr)
	}
	resp, err := http.Get("http://" + env["DOJO_WEBHOOKS_HTTP_ADDR"] + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/readyz %d", resp.StatusCode)
	}
}

func TestCLIWithoutServerFailsWithHint(t *testing.T) {
	res := runCmd(t, map[string]string{"DOJO_WEBHOOKS_NATS_PORT": strconv.Itoa(freePort(t))}, "", "endpoint", "list")
	if res.code != 1 || !strings.Contains(res.stderr, "dojo-webhooks serve") {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
}

func TestEndpointAddPingsFirst(t *testing.T) {
	s := natstest.Server(t)
	env := testEnv(s.ClientURL())
	env["DD_SITE_URL"] = "https://dojo.example.com"

	failing := newReceiver(t, 500)
	res := runCmd(t, env, "", "endpoint", "add", "broken", "--url", failing.URL)
	if res.code != 1 || !strings.Contains(res.stderr, "Response status code: 500") || !strings.Contains(res.stderr, "not stored") {
		t.Fatalf("add against 500: exit %d, stderr %q", res.code, res.stderr)
	}
	if _, err := statekv.NewStore(kvOf(t, s.ClientURL())).Get(context.Background(), "broken"); !errors.Is(err, statekv.ErrNotFound) {
		t.Fatalf("a failed add stored something: %v", err)
	}

	ok := newReceiver(t, 200)
	res = runCmd(t, env, "s3cret-token\n", "endpoint", "add", "jira", "--url", ok.URL+"/hook", "--name", "Jira bridge",
		"--header-name", "Authorization", "--header-value", "-", "--events", "product_added,scan_added")
	if res.code != 0 {
		t.Fatalf("add: exit %d, %q", res.code, res.stderr)
	}
	hdrs, bodies := ok.requests()
	if len(bodies) != 1 || bodies[0] != consumer.PingBody {
		t.Fatalf("ping body %q", bodies)
	}
	h := hdrs[0]
	for k, want := range map[string]string{"X-Defectdojo-Event": "ping", "Authorization": "s3cret-token",
		"X-Defectdojo-Instance": "https://dojo.example.com", "Content-Type": "application/json", "Accept": "application/json"} {
		if got := h.Get(k); got != want {
			t.Errorf("ping header %s = %q, want %q", k, got, want)
		}
	}
	rec := getRecord(t, kvOf(t, s.ClientURL()), "jira")
	if rec.Status != statekv.StatusActive || rec.Name != "Jira bridge" || rec.HeaderValue != "s3cret-token" ||
		len(rec.Events) != 2 || rec.CreatedAt.IsZero() {
		t.Fatalf("stored %+v", rec)
	}

	// Adding the same id or name again is refused.
	if res := runCmd(t, env, "", "endpoint", "add", "jira", "--url", ok.URL); res.code != 1 || !strings.Contains(res.stderr, "already exists") {
		t.Fatalf("duplicate id: exit %d %q", res.code, res.stderr)
	}
	if res := runCmd(t, env, "", "endpoint", "add", "jira2", "--url", ok.URL, "--name", "Jira bridge"); res.code != 1 || !strings.Contains(res.stderr, "already used") {
		t.Fatalf("duplicate name: exit %d %q", res.code, res.stderr)
	}
	// Bad input is a usage error naming the field.
	if res := runCmd(t, env, "", "endpoint", "add", "x", "--url", "ftp://host/x"); res.code != 2 || !strings.Contains(res.stderr, "url") {
		t.Fatalf("ftp url: exit %d %q", res.code, res.stderr)
	}
	if res := runCmd(t, env, "", "endpoint", "add", "Bad.Id", "--url", ok.URL); res.code != 2 || !strings.Contains(res.stderr, "id") {
		t.Fatalf("bad id: exit %d %q", res.code, res.stderr)
	}

	// list and show never print the header value.
	for _, args := range [][]string{{"endpoint", "list"}, {"endpoint", "list", "--json"}, {"endpoint", "show", "jira"}} {
		res := runCmd(t, env, "", args...)
		if res.code != 0 || strings.Contains(res.stdout, "s3cret") || !strings.Contains(res.stdout, "jira") {
			t.Fatalf("%v: exit %d, %q", args, res.code, res.stdout)
		}
	}
	var listed []map[string]any
	if err := json.Unmarshal([]byte(runCmd(t, env, "", "endpoint", "list", "--json").stdout), &listed); err != nil || len(listed) != 1 {
		t.Fatalf("list --json: %v %v", listed, err)
	}
	if res := runCmd(t, env, "", "endpoint", "list", "--status", "inactive_tmp"); strings.Contains(res.stdout, "jira") {
		t.Fatalf("--status filter: %q", res.stdout)
	}
	if res := runCmd(t, env, "", "endpoint", "list", "--owner", "alice"); strings.Contains(res.stdout, "jira") {
		t.Fatalf("--owner filter: %q", res.stdout)
	}
}

func TestEndpointLifecycleCommands(t *testing.T) {
	s := natstest.Server(t)
	env := testEnv(s.ClientURL())
	r := newReceiver(t, 200)
	if res := runCmd(t, env, "", "endpoint", "add", "hook", "--url", r.URL); res.code != 0 {
		t.Fatal(res.stderr)
	}
	kv := kvOf(t, s.ClientURL())

	res := runCmd(t, env, "", "endpoint", "deactivate", "hook", "--note", "maintenance window")
	if res.code != 0 {
		t.Fatal(res.stderr)
	}
	if rec := getRecord(t, kv, "hook"); rec.Status != statekv.StatusInactivePermanent || rec.Note != "maintenance window" {
		t.Fatalf("after deactivate: %+v", rec)
	}

	r.setStatus(503)
	if res := runCmd(t, env, "", "endpoint", "activate", "hook"); res.code != 1 || !strings.Contains(res.stderr, "503") {
		t.Fatalf("activate with a failing ping: exit %d %q", res.code, res.stderr)
	}
	if res := runCmd(t, env, "", "endpoint", "ping", "hook"); res.code != 1 {
		t.Fatalf("ping against 503: exit %d", res.code)
	}
	r.setStatus(204)
	if res := runCmd(t, env, "", "endpoint", "activate", "hook"); res.code != 0 {
		t.Fatalf("activate: %q", res.stderr)
	}
	if rec := getRecord(t, kv, "hook"); rec.Status != statekv.StatusActive || rec.Note != "" || !rec.LastError.IsZero() {
		t.Fatalf("after activate: %+v", rec)
	}
	if res := runCmd(t, env, "", "endpoint", "ping", "hook"); res.code != 0 || !strings.Contains(res.stdout, "204") {
		t.Fatalf("ping: exit %d %q %q", res.code, res.stdout, res.stderr)
	}
	if res := runCmd(t, env, "", "endpoint", "remove", "hook"); res.code != 0 {
		t.Fatal(res.stderr)
	}
	if res := runCmd(t, env, "", "endpoint", "show", "hook"); res.code != 1 || !strings.Contains(res.stderr, "not found") {
		t.Fatalf("show after remove: exit %d %q", res.code, res.stderr)
	}
	if res := runCmd(t, env, "", "endpoint", "frobnicate"); res.code != 2 {
		t.Fatalf("unknown subcommand: exit %d", res.code)
	}
}

// TestTimedTransitionsWrittenOnceWithTwoSidecars is the acceptance
// scenario: a record put by hand as inactive_tmp goes active_tmp then active, and
// with two serve processes on one server each transition is written once.
func TestTimedTransitionsWrittenOnceWithTwoSidecars(t *testing.T) {
	s := natstest.Server(t)
	env := testEnv(s.ClientURL())
	startServe(t, env)
	startServe(t, env)
	kv := kvOf(t, s.ClientURL())
	now := time.Now().UTC().Format(time.RFC3339Nano)
	value := `{"name":"by hand","url":"http://127.0.0.1:1/x","status":"inactive_tmp","first_error":"` + now + `","last_error":"` + now + `","note":"Response status code: 500"}`
	if _, err := kv.Put(context.Background(), "manual", []byte(value)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "active", func() bool { return getRecord(t, kv, "manual").Status == statekv.StatusActive })
	rec := getRecord(t, kv, "manual")
	if rec.Note != statekv.RecoveryNote || !rec.FirstError.IsZero() || !rec.LastError.IsZero() {
		t.Fatalf("recovered record %+v", rec)
	}
	hist, err := kv.History(context.Background(), "manual")
	if err != nil {
		t.Fatal(err)
	}
	var statuses []string
	for _, e := range hist {
		r, err := statekv.ParseRecord("manual", e.Value())
		if err != nil {
			t.Fatal(err)
		}
		statuses = append(statuses, string(r.Status))
	}
	if strings.Join(statuses, ",") != "inactive_tmp,active_tmp,active" {
		t.Fatalf("history %v: want each transition written once", statuses)
	}
}
