package faults

// The harness shared by the fault tests: the dojo-webhooks binary (built once
// with -race) run as real processes, NATS servers embedded in the test process,
// a publisher, recording receivers and the checks every test makes.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/internal/embedded"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// names are the default subjects and streams (prefix defectdojo); each test has its own server.
var names = contract.NamesFor(contract.DefaultPrefix)

// readyTimeout bounds a sidecar's start; waitTimeout bounds waits for things the
// system does promptly (generous: reached only when a test fails).
const (
	readyTimeout = 30 * time.Second
	waitTimeout  = 20 * time.Second
)

// redeliveryBound is the longest a hard-killed or disconnected sidecar can hold
// an event before the server hands it out again: the consumers' AckWait (a
// delivery in progress renews it every AckWait/3, whatever the HTTP timeout),
// or for an ordered endpoint (max-in-flight 1) the PinnedTTL after which
// another sidecar is pinned, whichever is longer.
const redeliveryBound = max(consumer.AckWait, consumer.PinnedTTL)

// ---- the binary ----

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
	binOut  []byte
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binary builds ../cmd/dojo-webhooks with -race once per test run.
func binary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skips the tests that build and run the binary")
	}
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "dojo-webhooks-faults")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "dojo-webhooks")
		binOut, binErr = exec.Command("go", "build", "-race", "-o", binPath, "../cmd/dojo-webhooks").CombinedOutput()
	})
	if binErr != nil {
		t.Fatalf("go build -race ../cmd/dojo-webhooks: %v\n%s", binErr, binOut)
	}
	return binPath
}

// sidecarEnv is the configuration every sidecar and command of a test gets:
// NATS_URL, a free loopback HTTP port, a 1 s HTTP timeout and fast
// state-machine timers (milliseconds). kv adds or overrides variables, in pairs.
func sidecarEnv(natsURL string, kv ...string) map[string]string {
	env := map[string]string{
		"NATS_URL":                       natsURL,
		"DOJO_WEBHOOKS_HTTP_ADDR":        "127.0.0.1:0",
		"DOJO_WEBHOOKS_TIMEOUT":          "1000ms",
		"DOJO_WEBHOOKS_REACTIVATE_AFTER": "300ms",
		"DOJO_WEBHOOKS_RECOVER_AFTER":    "1000ms",
		"DOJO_WEBHOOKS_GIVE_UP_AFTER":    "3600000ms",
		"DOJO_WEBHOOKS_SHUTDOWN_GRACE":   "1000ms",
		"DOJO_WEBHOOKS_CONNECT_WAIT":     "10000ms",
		"DOJO_WEBHOOKS_LOG_LEVEL":        "info",
	}
	for i := 0; i+1 < len(kv); i += 2 {
		env[kv[i]] = kv[i+1]
	}
	return env
}

func environ(env map[string]string) []string {
	out := []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// sidecar is one running `dojo-webhooks serve` process.
type sidecar struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	logs *procLog
	done chan struct{}
	err  error // cmd.Wait's, once done is closed
}

// startSidecar runs `dojo-webhooks serve` with env and waits for "dojo-webhooks
// ready". The process is stopped (SIGTERM, then SIGKILL) when the test ends; its
// log is shown if the test failed, and a data race in it fails the test.
func startSidecar(t testing.TB, name string, env map[string]string) *sidecar {
	t.Helper()
	p := launchSidecar(t, name, env)
	select {
	case <-p.logs.ready:
	case <-p.done:
		t.Fatalf("%s exited before ready (%v):\n%s", name, p.err, p.logs)
	case <-time.After(readyTimeout):
		t.Fatalf("%s not ready within %s:\n%s", name, readyTimeout, p.logs)
	}
	return p
}

// launchSidecar starts `dojo-webhooks serve` without waiting for it to be ready.
func launchSidecar(t testing.TB, name string, env map[string]string) *sidecar {
	t.Helper()
	return launchCmd(t, name, env, exec.Command(binary(t), "serve"))
}

// startLimitedSidecar is startSidecar with the process's descriptor limit
// (RLIMIT_NOFILE) set to nofile, through the shell's ulimit.
func startLimitedSidecar(t testing.TB, name string, env map[string]string, nofile int) *sidecar {
	t.Helper()
	cmd := exec.Command("sh", "-c", fmt.Sprintf(`ulimit -n %d && exec "$0" serve`, nofile), binary(t))
	p := launchCmd(t, name, env, cmd)
	select {
	case <-p.logs.ready:
	case <-p.done:
		t.Fatalf("%s exited before ready (%v):\n%s", name, p.err, p.logs)
	case <-time.After(readyTimeout):
		t.Fatalf("%s not ready within %s:\n%s", name, readyTimeout, p.logs)
	}
	return p
}

// launchCmd starts cmd (a sidecar) with env, its output collected.
func launchCmd(t testing.TB, name string, env map[string]string, cmd *exec.Cmd) *sidecar {
	t.Helper()
	cmd.Env = environ(env)
	logs := newProcLog("dojo-webhooks ready")
	cmd.Stdout, cmd.Stderr = logs, logs
	p := &sidecar{t: t, name: name, cmd: cmd, logs: logs, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.terminate()
		if strings.Contains(p.logs.String(), "WARNING: DATA RACE") {
			t.Errorf("%s: data race in the sidecar process:\n%s", name, p.logs)
		}
		if t.Failed() {
			t.Logf("%s log (last 200 lines):\n%s", name, p.logs.tail(200))
		}
	})
	return p
}

// exited reports whether the process has ended.
func (p *sidecar) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill ends the process with SIGKILL (no shutdown, no NAK, no drain) and waits for it.
func (p *sidecar) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// terminate stops the process with SIGTERM (SIGKILL if it does not exit within 30 s).
func (p *sidecar) terminate() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.t.Errorf("%s did not exit within 30 s of SIGTERM", p.name)
		p.kill()
	}
}

// exitCode is the process's exit code (-1 when killed by a signal).
func (p *sidecar) exitCode() int { return p.cmd.ProcessState.ExitCode() }

// logEntries returns the process's JSON log lines for which match is true.
func (p *sidecar) logEntries(match func(map[string]any) bool) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(p.logs.String(), "\n") {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		if match(m) {
			out = append(out, m)
		}
	}
	return out
}

// logMessage matches log entries by message and, optionally, field values.
func logMessage(msg string, fields ...string) func(map[string]any) bool {
	return func(m map[string]any) bool {
		if m["message"] != msg {
			return false
		}
		for i := 0; i+1 < len(fields); i += 2 {
			if fmt.Sprint(m[fields[i]]) != fields[i+1] {
				return false
			}
		}
		return true
	}
}

// procLog collects a process's output and closes ready at the first line holding marker.
type procLog struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	marker string
	ready  chan struct{}
	seen   bool
}

func newProcLog(marker string) *procLog {
	return &procLog{marker: marker, ready: make(chan struct{})}
}

func (l *procLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	from := max(0, l.buf.Len()-len(l.marker))
	l.buf.Write(p)
	if !l.seen && bytes.Contains(l.buf.Bytes()[from:], []byte(l.marker)) {
		l.seen = true
		close(l.ready)
	}
	return len(p), nil
}

func (l *procLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *procLog) tail(n int) string {
	lines := strings.Split(strings.TrimRight(l.String(), "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("… %d lines before", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// cliResult is what one command invocation of the binary did.
type cliResult struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

// runCLI runs the binary with args, env and stdin, and returns its exit code and output.
func runCLI(t testing.TB, env map[string]string, stdin []byte, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Env = environ(env)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	res := cliResult{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String(), took: time.Since(start)}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("dojo-webhooks %v: %v", args, err)
	}
	if strings.Contains(res.stderr, "WARNING: DATA RACE") {
		t.Errorf("dojo-webhooks %v: data race:\n%s", args, res.stderr)
	}
	return res
}

// ---- NATS ----

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// natsServer is a single embedded server on a fixed port and store directory,
// which a test can stop and start again.
type natsServer struct {
	t    testing.TB
	dir  string
	port int
	mu   sync.Mutex
	srv  *server.Server
}

// startNATS starts a JetStream server on a free port with a fresh store; it is stopped when the test ends.
func startNATS(t testing.TB) *natsServer {
	t.Helper()
	n := &natsServer{t: t, dir: t.TempDir(), port: freePort(t)}
	n.start()
	t.Cleanup(n.stop)
	return n
}

func (n *natsServer) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

// start runs the server on its port and store (again, after stop).
func (n *natsServer) start() {
	n.t.Helper()
	s, err := embedded.Start(embedded.Options{Port: n.port, StoreDir: n.dir})
	if err != nil {
		n.t.Fatalf("start nats-server on port %d: %v", n.port, err)
	}
	n.mu.Lock()
	n.srv = s
	n.mu.Unlock()
}

// stop shuts the server down and waits until it is gone.
func (n *natsServer) stop() {
	n.mu.Lock()
	s := n.srv
	n.srv = nil
	n.mu.Unlock()
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// connect opens a test client connection (reconnecting forever), closed when the test ends.
func connect(t testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, nats.Name("faults-test"), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("connect to %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096), jetstream.WithPublishAsyncTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// bucketOf returns the endpoint bucket (the sidecar created it at start-up).
func bucketOf(t testing.TB, js jetstream.JetStream) jetstream.KeyValue {
	t.Helper()
	kv, err := js.KeyValue(context.Background(), statekv.DefaultBucket)
	if err != nil {
		t.Fatalf("bucket %s: %v", statekv.DefaultBucket, err)
	}
	return kv
}

// createEndpoint stores an active endpoint created now, as `endpoint add` does after its ping.
func createEndpoint(t testing.TB, kv jetstream.KeyValue, id, url string) {
	t.Helper()
	rec := statekv.Record{ID: id, Name: "Endpoint " + id, URL: url, Status: statekv.StatusActive,
		CreatedAt: statekv.Timestamp(time.Now())}
	if _, err := statekv.NewStore(kv).Create(context.Background(), rec); err != nil {
		t.Fatalf("create endpoint %s: %v", id, err)
	}
}

// waitConsumer waits until the sidecar created the endpoint's consumer.
func waitConsumer(t testing.TB, js jetstream.JetStream, id string) {
	t.Helper()
	waitFor(t, waitTimeout, "the consumer of endpoint "+id, func() bool {
		_, err := js.Consumer(context.Background(), names.Events, contract.ConsumerName(id))
		return err == nil
	})
}

// history returns every put revision of an endpoint's record, parsed (nil for an invalid value).
func history(t testing.TB, kv jetstream.KeyValue, id string) []*statekv.Record {
	t.Helper()
	hist, err := kv.History(context.Background(), id)
	if err != nil {
		t.Fatalf("history of %s: %v", id, err)
	}
	var out []*statekv.Record
	for _, e := range hist {
		if e.Operation() != jetstream.KeyValuePut {
			continue
		}
		if r, err := statekv.ParseRecord(id, e.Value()); err == nil {
			out = append(out, &r)
		} else {
			out = append(out, nil)
		}
	}
	return out
}

func statuses(recs []*statekv.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		if r == nil {
			out[i] = "<invalid>"
		} else {
			out[i] = string(r.Status)
		}
	}
	return out
}

// waitStatus waits until the stored record of id has status s.
func waitStatus(t testing.TB, kv jetstream.KeyValue, id string, s statekv.Status, timeout time.Duration) statekv.Record {
	t.Helper()
	var rec statekv.Record
	waitFor(t, timeout, fmt.Sprintf("endpoint %s to be %s", id, s), func() bool {
		e, err := statekv.NewStore(kv).Get(context.Background(), id)
		rec = e.Record
		return err == nil && e.Record.Status == s
	})
	return rec
}

// ---- publishing ----

// eventBody is the JSON document of event n: the receiver reads "n" back.
func eventBody(n int) []byte {
	return fmt.Appendf(nil, `{"description": "fault test event %d", "title": "Event %d", "n": %d}`, n, n, n)
}

// published records, for events 0..n-1, the webhook-id each is delivered with
// and its stream sequence (the order in which the sidecar delivers them).
type published struct {
	ids  []string
	seqs []uint64
}

func newPublished(n int) *published {
	return &published{ids: make([]string, n), seqs: make([]uint64, n)}
}

// publishRange publishes events from..to-1 (body eventBody(n)) on <prefix>.events.<event>
// asynchronously and records each one's webhook-id and stream sequence in p.
// With an idPrefix each carries Nats-Msg-Id <idPrefix><n> and one whose publish
// failed (NATS restarting, a leader lost) is published again until ctx ends:
// the dedup window drops a second copy, so each is stored once (a retried event
// may then be stored after later ones). Without one the id is derived from the
// stream sequence and a failure is returned.
func publishRange(ctx context.Context, js jetstream.JetStream, event string, from, to int, idPrefix string, p *published) error {
	const window = 1000
	type pending struct {
		n int
		f jetstream.PubAckFuture
	}
	for start := from; start < to; start += window {
		var futs []pending
		for n := start; n < min(start+window, to); n++ {
			f, err := js.PublishMsgAsync(eventMsg(event, n, idPrefix))
			if err != nil && idPrefix == "" {
				return fmt.Errorf("publish event %d: %w", n, err)
			}
			futs = append(futs, pending{n, f}) // f nil: published again below
		}
		for _, pf := range futs {
			var ack *jetstream.PubAck
			err := errors.New("not sent")
			if pf.f != nil {
				select {
				case ack = <-pf.f.Ok():
					err = nil
				case err = <-pf.f.Err():
				case <-ctx.Done():
					return fmt.Errorf("publish event %d: %w", pf.n, ctx.Err())
				}
			}
			if err != nil {
				if idPrefix == "" {
					return fmt.Errorf("publish event %d: %w", pf.n, err)
				}
				if ack, err = publishRetry(ctx, js, eventMsg(event, pf.n, idPrefix)); err != nil {
					return fmt.Errorf("publish event %d: %w", pf.n, err)
				}
			}
			p.seqs[pf.n] = ack.Sequence // of the first copy when this one was a duplicate
			if idPrefix != "" {
				p.ids[pf.n] = idPrefix + strconv.Itoa(pf.n)
			} else {
				p.ids[pf.n] = contract.WebhookID(names.Events, nil, ack.Sequence, false)
			}
		}
	}
	return nil
}

func eventMsg(event string, n int, idPrefix string) *nats.Msg {
	m := &nats.Msg{Subject: names.EventSubject(event), Data: eventBody(n), Header: nats.Header{}}
	if idPrefix != "" {
		m.Header.Set(nats.MsgIdHdr, idPrefix+strconv.Itoa(n))
	}
	return m
}

// publishRetry publishes msg until JetStream acknowledges it or ctx ends.
func publishRetry(ctx context.Context, js jetstream.JetStream, msg *nats.Msg) (*jetstream.PubAck, error) {
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ack, err := js.PublishMsg(actx, msg)
		cancel()
		if err == nil {
			return ack, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		}
		time.Sleep(50 * time.Millisecond) // poll interval while NATS is unavailable
	}
}

// publishAll publishes events 0..n-1 and fails the test on an error.
func publishAll(t testing.TB, js jetstream.JetStream, event string, n int, idPrefix string) *published {
	t.Helper()
	p := newPublished(n)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := publishRange(ctx, js, event, 0, n, idPrefix, p); err != nil {
		t.Fatal(err)
	}
	return p
}

// ---- receivers ----

// hit is one request a receiver got.
type hit struct {
	N      int    // the body's "n"; -1 when it has none
	ID     string // webhook-id
	Event  string // X-DefectDojo-Event
	Status int    // what the receiver answered
	At     time.Time
	Body   []byte      // kept only by receivers made with keepBodies
	Header http.Header // idem
}

// receiver is an endpoint: it records every request and answers with a status that the test can switch.
type receiver struct {
	srv        *httptest.Server
	keepBodies bool

	mu     sync.Mutex
	status int
	hits   []hit
	okN    map[int]bool // events answered 2xx at least once
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{status: http.StatusNoContent, okN: map[int]bool{}}
	r.srv = httptest.NewServer(r)
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) URL() string { return r.srv.URL + "/hook" }

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	h := hit{N: -1, ID: req.Header.Get("webhook-id"), Event: req.Header.Get("X-DefectDojo-Event"), At: time.Now()}
	var b struct {
		N *int `json:"n"`
	}
	if json.Unmarshal(body, &b) == nil && b.N != nil {
		h.N = *b.N
	}
	r.mu.Lock()
	h.Status = r.status
	if r.keepBodies {
		h.Body, h.Header = body, req.Header.Clone()
	}
	r.hits = append(r.hits, h)
	if h.Status >= 200 && h.Status < 300 && h.N >= 0 {
		r.okN[h.N] = true
	}
	r.mu.Unlock()
	w.WriteHeader(h.Status)
}

// answer sets the status of the next answers.
func (r *receiver) answer(status int) {
	r.mu.Lock()
	r.status = status
	r.mu.Unlock()
}

// requests returns a copy of every request so far, in arrival order.
func (r *receiver) requests() []hit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.hits)
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.hits)
}

// delivered is how many distinct events were answered 2xx.
func (r *receiver) delivered() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.okN)
}

// waitDelivered waits until n distinct events were answered 2xx.
func (r *receiver) waitDelivered(t testing.TB, n int, timeout time.Duration) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for r.delivered() < n {
		if time.Now().After(deadline) {
			r.mu.Lock()
			var missing []int
			for i := 0; i < n && len(missing) < 20; i++ {
				if !r.okN[i] {
					missing = append(missing, i)
				}
			}
			got := len(r.okN)
			r.mu.Unlock()
			t.Fatalf("after %s, %d of %d events delivered; first missing: %v", timeout, got, n, missing)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ---- checks ----

// checkAtLeastOnce checks the two delivery properties on a receiver's requests
// for events 0..len(ids)-1: nothing lost (each answered 2xx at least once) and
// every copy of an event carrying the webhook-id it was published with, hence
// the same as its first copy. It returns how many events arrived more than once.
func checkAtLeastOnce(t testing.TB, hits []hit, ids []string) (duplicated int) {
	t.Helper()
	first := make(map[int]string, len(ids))
	copies := make([]int, len(ids))
	ok := make([]bool, len(ids))
	errs := 0
	report := func(format string, args ...any) {
		if errs++; errs <= 10 {
			t.Errorf(format, args...)
		}
	}
	for i, h := range hits {
		if h.Event == "ping" {
			continue
		}
		if h.N < 0 || h.N >= len(ids) {
			report("request %d: unexpected event (n=%d, webhook-id %q)", i, h.N, h.ID)
			continue
		}
		if f, seen := first[h.N]; seen && h.ID != f {
			report("event %d: a copy arrived with webhook-id %q, the first copy had %q", h.N, h.ID, f)
		} else if !seen {
			first[h.N] = h.ID
		}
		if h.ID != ids[h.N] {
			report("event %d arrived with webhook-id %q, it was published as %q", h.N, h.ID, ids[h.N])
		}
		copies[h.N]++
		if h.Status >= 200 && h.Status < 300 {
			ok[h.N] = true
		}
	}
	lost := 0
	for n := range ids {
		if !ok[n] {
			if lost++; lost <= 10 {
				t.Errorf("event %d (webhook-id %s) lost: never answered 2xx", n, ids[n])
			}
		}
		if copies[n] > 1 {
			duplicated++
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d events lost", lost, len(ids))
	}
	return duplicated
}

// checkOrder checks the order of one endpoint's requests with max-in-flight 1:
// each request carries an event already sent (a retry, or a redelivery after a
// fault: the window's acks that the server had not processed yet are sent
// again, from the first one it had not) or the next one in stream order
// (publish order) that was never sent; nothing overtakes.
func checkOrder(t testing.TB, hits []hit, p *published) {
	t.Helper()
	byStream := make([]int, len(p.seqs)) // events in stream order
	for n := range byStream {
		byStream[n] = n
	}
	slices.SortFunc(byStream, func(a, b int) int { return cmp.Compare(p.seqs[a], p.seqs[b]) })
	rank := make([]int, len(p.seqs))
	for i, n := range byStream {
		rank[n] = i
	}
	latest, errs, again := -1, 0, 0
	for i, h := range hits {
		if h.Event == "ping" || h.N < 0 || h.N >= len(rank) {
			continue
		}
		switch r := rank[h.N]; {
		case r == latest+1:
			latest++
		case r <= latest:
			again++
		default:
			if errs++; errs <= 10 {
				prev := "none"
				if latest >= 0 {
					prev = fmt.Sprintf("event %d (stream sequence %d)", byStream[latest], p.seqs[byStream[latest]])
				}
				t.Errorf("request %d out of stream order: event %d (stream sequence %d) after %s", i, h.N, p.seqs[h.N], prev)
			}
			latest = max(latest, r)
		}
	}
	if again > 0 {
		t.Logf("%d requests carried an event already sent (retries, redeliveries after the fault)", again)
	}
}

// longestPause is the longest time between two consecutive requests of which
// the second arrived after t0 (a fault), and how long after t0 that pause ended.
func longestPause(hits []hit, t0 time.Time) (pause, endedAfter time.Duration) {
	for i := 1; i < len(hits); i++ {
		if hits[i].At.Before(t0) {
			continue
		}
		if d := hits[i].At.Sub(hits[i-1].At); d > pause {
			pause, endedAfter = d, hits[i].At.Sub(t0)
		}
	}
	return pause, endedAfter
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
