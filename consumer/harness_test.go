package consumer_test

// The end-to-end harness of the consumer package: a real embedded nats-server
// (internal/natstest), the KV bucket and the streams set up as `serve` does, and
// a "sidecar" (its own NATS connection and a sidecar.Sidecar: store, watcher,
// HTTP client and consumer manager) that can be stopped and replaced, as a
// restarted process would be. Receivers are httptest servers that record every request.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/delivery"
	"github.com/dojo-webhooks/dojo-webhooks/internal/natstest"
	"github.com/dojo-webhooks/dojo-webhooks/jsstate"
	sidecarpkg "github.com/dojo-webhooks/dojo-webhooks/sidecar"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

const ms = time.Millisecond

// Defaults the sidecar under test is configured with (DD_SITE_URL and the User-Agent).
const (
	testInstance  = "https://defectdojo.example.com"
	testUserAgent = "DefectDojo-2.45.0"
)

// names are the default subjects and streams (prefix defectdojo); every test has its own server.
var names = contract.NamesFor(contract.DefaultPrefix)

// waitTimeout bounds every wait for something the system should do promptly
// (generous: it is only reached when a test fails).
const waitTimeout = 15 * time.Second

// waitFor polls cond every few milliseconds until it holds and fails the test
// when it still does not after timeout.
func waitFor(t testing.TB, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", timeout)
		}
		time.Sleep(2 * ms)
	}
}

// options configure the sidecar under test.
type options struct {
	MaxInFlight   int
	Policy        statekv.Policy
	Timeout       time.Duration // the HTTP timeout
	ShutdownGrace time.Duration
	LogLevel      zerolog.Level
	Observer      consumer.Observer
}

func defaultOptions() options {
	return options{
		MaxInFlight:   1,
		Policy:        statekv.Policy{ReactivateAfter: 200 * ms, RecoverAfter: 400 * ms, GiveUpAfter: 5 * time.Second},
		Timeout:       2 * time.Second,
		ShutdownGrace: 100 * ms,
		LogLevel:      zerolog.DebugLevel,
	}
}

// harness is one test's NATS server, the operator's connection (what the CLI
// and `nats` would use) and the running sidecar.
type harness struct {
	t     testing.TB
	opts  options
	srv   *server.Server
	nc    *nats.Conn
	js    jetstream.JetStream
	kv    jetstream.KeyValue
	store *statekv.Store // the operator's store (endpoint add, activate, update...)
	logs  *logBuffer

	mu        sync.Mutex
	sc        *sidecar
	extras    []*sidecar // more replicas (scale-out)
	receivers []*receiver
}

// newHarness starts a server, sets up the bucket and streams and starts a sidecar.
func newHarness(t testing.TB, configure ...func(*options)) *harness {
	t.Helper()
	o := defaultOptions()
	for _, f := range configure {
		f(&o)
	}
	logs := &logBuffer{}
	t.Cleanup(func() { // registered first: runs last, after the sidecar stopped
		if t.Failed() {
			t.Logf("sidecar log:\n%s", logs.String())
		}
	})
	srv, nc, js := natstest.JetStream(t)
	ctx := context.Background()
	kv, err := statekv.EnsureBucket(ctx, js, statekv.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := consumer.EnsureStreams(ctx, js, consumer.StreamsConfig{Names: names}); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, opts: o, srv: srv, nc: nc, js: js, kv: kv, store: statekv.NewStore(kv), logs: logs}
	t.Cleanup(h.close) // before natstest's: the sidecar stops while the server runs
	h.sc = h.startSidecar()
	return h
}

// close stops the sidecar, then the receivers (releasing hung requests).
func (h *harness) close() {
	h.mu.Lock()
	sc := h.sc
	h.sc = nil
	rs := h.receivers
	extras := h.extras
	h.mu.Unlock()
	if sc != nil {
		sc.stop()
	}
	for _, x := range extras {
		x.stop()
	}
	for _, r := range rs {
		r.close()
	}
}

// sidecar is one running dojo-webhooks process, started through the sidecar
// package as serve starts it (no HTTP server), on its own NATS connection.
type sidecar struct {
	h  *harness
	nc *nats.Conn
	sc *sidecarpkg.Sidecar

	cancel   context.CancelFunc
	done     chan error
	stopOnce sync.Once
}

func (h *harness) startSidecar() *sidecar {
	t := h.t
	t.Helper()
	nc, err := nats.Connect(h.srv.ClientURL(), nats.Name("sidecar"))
	if err != nil {
		t.Fatal(err)
	}
	log := zerolog.New(h.logs).Level(h.opts.LogLevel).With().Timestamp().Logger()
	s, err := sidecarpkg.New(context.Background(), sidecarpkg.Config{
		Prefix: names.Prefix, MaxInFlight: h.opts.MaxInFlight, Policy: h.opts.Policy,
		Delivery:      delivery.Options{Timeout: h.opts.Timeout},
		Request:       consumer.RequestDefaults{Instance: testInstance, UserAgent: testUserAgent},
		ShutdownGrace: h.opts.ShutdownGrace, Observer: h.opts.Observer, HTTPAddr: sidecarpkg.HTTPOff, Logger: log,
	}, nc)
	if err != nil {
		nc.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sc := &sidecar{h: h, nc: nc, sc: s, cancel: cancel, done: make(chan error, 1)}
	go func() { sc.done <- s.Run(ctx) }()
	select {
	case <-s.Synced():
	case err := <-sc.done:
		t.Fatalf("sidecar stopped before its initial sync: %v", err)
	case <-time.After(waitTimeout):
		t.Fatal("watcher not synced")
	}
	return sc
}

// stop stops the sidecar as serve does (the manager first, in-flight requests
// get the shutdown grace and are NAKed after it, then the watcher), then
// closes its connection without draining it.
func (sc *sidecar) stop() {
	sc.stopOnce.Do(func() {
		t := sc.h.t
		sc.cancel()
		select {
		case err := <-sc.done:
			if err != nil {
				t.Errorf("sidecar Run: %v", err)
			}
		case <-time.After(2*waitTimeout + sc.h.opts.ShutdownGrace):
			t.Errorf("sidecar Run did not return after cancel")
		}
		sc.nc.Close()
	})
}

// stopSidecar stops the running sidecar (see sidecar.stop).
func (h *harness) stopSidecar() {
	h.t.Helper()
	h.mu.Lock()
	old := h.sc
	h.sc = nil
	h.mu.Unlock()
	if old != nil {
		old.stop()
	}
}

// resumeSidecar starts a new sidecar on a new connection after stopSidecar.
func (h *harness) resumeSidecar() {
	h.t.Helper()
	sc := h.startSidecar()
	h.mu.Lock()
	h.sc = sc
	h.mu.Unlock()
}

// addReplica starts one more sidecar sharing the same consumers (scale-out).
func (h *harness) addReplica() *sidecar {
	h.t.Helper()
	sc := h.startSidecar()
	h.mu.Lock()
	h.extras = append(h.extras, sc)
	h.mu.Unlock()
	return sc
}

// restart stops the running sidecar and starts a new one on a new connection,
// as a restarted process would.
func (h *harness) restart() {
	h.t.Helper()
	h.stopSidecar()
	h.resumeSidecar()
}

// endpointOpt changes a record before it is created.
type endpointOpt func(*statekv.Record)

func withOwner(owner string) endpointOpt { return func(r *statekv.Record) { r.Owner = owner } }
func withEvents(ev ...string) endpointOpt {
	return func(r *statekv.Record) { r.Events = ev }
}
func withHeader(name, value string) endpointOpt {
	return func(r *statekv.Record) { r.HeaderName, r.HeaderValue = name, value }
}

// addEndpoint stores an active endpoint created now, as `endpoint add` does after its ping.
func (h *harness) addEndpoint(id, url string, opts ...endpointOpt) statekv.Entry {
	h.t.Helper()
	rec := statekv.Record{
		ID: id, Name: "Endpoint " + id, URL: url, Status: statekv.StatusActive,
		CreatedAt: statekv.Timestamp(time.Now()),
	}
	for _, o := range opts {
		o(&rec)
	}
	e, err := h.store.Create(context.Background(), rec)
	if err != nil {
		h.t.Fatalf("create endpoint %s: %v", id, err)
	}
	return e
}

// publish stores one event on <prefix>.events.<event> with the given NATS headers.
func (h *harness) publish(event string, body []byte, headers map[string]string) *jetstream.PubAck {
	h.t.Helper()
	msg := &nats.Msg{Subject: names.EventSubject(event), Data: body, Header: nats.Header{}}
	for k, v := range headers {
		msg.Header.Set(k, v)
	}
	ack, err := h.js.PublishMsg(context.Background(), msg)
	if err != nil {
		h.t.Fatalf("publish %s: %v", event, err)
	}
	if ack.Duplicate {
		h.t.Fatalf("publish %s: dropped as a duplicate", event)
	}
	return ack
}

// record reads an endpoint's record from KV.
func (h *harness) record(id string) statekv.Entry {
	h.t.Helper()
	e, err := h.store.Get(context.Background(), id)
	if err != nil {
		h.t.Fatalf("get endpoint %s: %v", id, err)
	}
	return e
}

// waitStatus waits until the stored record of id has status s and returns it.
func (h *harness) waitStatus(id string, s statekv.Status) statekv.Entry {
	h.t.Helper()
	var e statekv.Entry
	waitFor(h.t, waitTimeout, func() bool {
		var err error
		e, err = h.store.Get(context.Background(), id)
		return err == nil && e.Record.Status == s
	})
	return e
}

// statusHistory lists the status of every revision of id's record.
func (h *harness) statusHistory(id string) []statekv.Status {
	h.t.Helper()
	hist, err := h.kv.History(context.Background(), id)
	if err != nil {
		h.t.Fatalf("history of %s: %v", id, err)
	}
	var out []statekv.Status
	for _, e := range hist {
		if e.Operation() != jetstream.KeyValuePut {
			out = append(out, "<deleted>")
			continue
		}
		r, err := statekv.ParseRecord(id, e.Value())
		if err != nil {
			out = append(out, "<invalid>")
			continue
		}
		out = append(out, r.Status)
	}
	return out
}

// historyRecords parses every put revision of id's record (invalid ones skipped).
func (h *harness) historyRecords(id string) []statekv.Record {
	h.t.Helper()
	hist, err := h.kv.History(context.Background(), id)
	if err != nil {
		h.t.Fatalf("history of %s: %v", id, err)
	}
	var out []statekv.Record
	for _, e := range hist {
		if e.Operation() != jetstream.KeyValuePut {
			continue
		}
		if r, err := statekv.ParseRecord(id, e.Value()); err == nil {
			out = append(out, r)
		}
	}
	return out
}

// consumerInfo is what `nats consumer info` shows for the endpoint's consumer.
func (h *harness) consumerInfo(id string) (*jetstream.ConsumerInfo, error) {
	c, err := h.js.Consumer(context.Background(), names.Events, contract.ConsumerName(id))
	if err != nil {
		return nil, err
	}
	return c.Info(context.Background())
}

func (h *harness) mustConsumerInfo(id string) *jetstream.ConsumerInfo {
	h.t.Helper()
	info, err := h.consumerInfo(id)
	if err != nil {
		h.t.Fatalf("consumer info of %s: %v", id, err)
	}
	return info
}

// waitConsumer waits until the endpoint's consumer exists and cond holds on its info.
func (h *harness) waitConsumer(id string, cond func(*jetstream.ConsumerInfo) bool) *jetstream.ConsumerInfo {
	h.t.Helper()
	var info *jetstream.ConsumerInfo
	waitFor(h.t, waitTimeout, func() bool {
		var err error
		info, err = h.consumerInfo(id)
		return err == nil && cond(info)
	})
	return info
}

// waitBacklog waits until jsstate.Backlog (what `events` shows: waiting plus
// in flight) of the endpoint is n; the server counts new messages asynchronously.
func (h *harness) waitBacklog(id string, n uint64) {
	h.t.Helper()
	waitFor(h.t, waitTimeout, func() bool {
		got, err := jsstate.Backlog(context.Background(), h.js, names, id)
		return err == nil && got == n
	})
}

// deadLetters returns the dead letters of one endpoint, oldest first.
func (h *harness) deadLetters(id string) []*jetstream.RawStreamMsg {
	h.t.Helper()
	ctx := context.Background()
	s, err := h.js.Stream(ctx, names.DeadLetter)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			h.t.Fatal(err)
		}
		if m.Subject == names.DeadLetterSubject(id) {
			out = append(out, m)
		}
	}
	return out
}

// streamMsg reads one stored event by sequence.
func (h *harness) streamMsg(seq uint64) *jetstream.RawStreamMsg {
	h.t.Helper()
	s, err := h.js.Stream(context.Background(), names.Events)
	if err != nil {
		h.t.Fatal(err)
	}
	m, err := s.GetMsg(context.Background(), seq)
	if err != nil {
		h.t.Fatal(err)
	}
	return m
}

// waitClockPast waits until the record timestamp of now (millisecond precision)
// is after t: a time taken then is strictly later than anything stored at t.
func waitClockPast(tb testing.TB, t time.Time) time.Time {
	tb.Helper()
	var now time.Time
	waitFor(tb, waitTimeout, func() bool {
		now = statekv.Timestamp(time.Now())
		return now.After(t)
	})
	return now
}

// derivedID is the webhook-id of an event published without Nats-Msg-Id.
func derivedID(seq uint64) string { return fmt.Sprintf("%s-%d", names.Events, seq) }

// eventBody is a DefectDojo-like JSON document, with spacing and characters a
// re-encoding would change, so that "byte for byte" is really checked.
func eventBody(event string, n int) []byte {
	return fmt.Appendf(nil, "{\"description\":  \"event %d of %s\" ,\n \"title\": \"caf\\u00e9 — ünïcode %d\", \"n\": %d,\"url_ui\":\"https://dd/x?a=1&b=<2>\"}", n, event, n, n)
}

// ---- receivers ----

// statusHang makes a receiver hold the request until the client gives up.
const statusHang = -1

// received is one request a receiver got.
type received struct {
	N      int // arrival order, from 1
	Method string
	Path   string
	Event  string // X-DefectDojo-Event
	ID     string // webhook-id
	Body   []byte
	Header http.Header
	Status int // what was answered; 0 while in progress or when hung
	At     time.Time
	Done   time.Time // when the handler returned
}

// receiver is an endpoint: it records what it gets and answers what it is told.
type receiver struct {
	srv    *httptest.Server
	closed chan struct{}

	mu          sync.Mutex
	got         []received
	status      int                   // answer, or statusHang
	hangIf      func(r received) bool // optional: hang these whatever status says
	gate        chan struct{}         // when set, requests wait for it to close before answering
	statusFor   map[int]int           // optional: the answer to the first request of these event numbers
	inflight    int
	maxInflight int
}

// newReceiver starts a receiver answering status; the harness closes it after the sidecar stopped.
func (h *harness) newReceiver(status int) *receiver {
	r := &receiver{status: status, closed: make(chan struct{})}
	r.srv = httptest.NewServer(r)
	h.mu.Lock()
	h.receivers = append(h.receivers, r)
	h.mu.Unlock()
	return r
}

func (r *receiver) URL() string { return r.srv.URL + "/hook" }

func (r *receiver) close() {
	select {
	case <-r.closed:
	default:
		close(r.closed)
	}
	r.srv.Close()
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	rec := received{
		Method: req.Method, Path: req.URL.Path, Event: req.Header.Get("X-DefectDojo-Event"),
		ID: req.Header.Get("webhook-id"), Body: body, Header: req.Header.Clone(), At: time.Now(),
	}
	rec.N = len(r.got) + 1
	idx := len(r.got)
	hang := r.status == statusHang || (r.hangIf != nil && r.hangIf(rec))
	gate := r.gate
	r.got = append(r.got, rec)
	r.inflight++
	r.maxInflight = max(r.maxInflight, r.inflight)
	r.mu.Unlock()

	status := 0
	defer func() {
		r.mu.Lock()
		r.inflight--
		r.got[idx].Status = status
		r.got[idx].Done = time.Now()
		r.mu.Unlock()
	}()
	if gate != nil {
		select {
		case <-gate:
		case <-req.Context().Done():
			return
		case <-r.closed:
			return
		}
	}
	if hang {
		select {
		case <-req.Context().Done():
		case <-r.closed:
		}
		return
	}
	r.mu.Lock()
	status = r.status
	if s, ok := r.statusFor[eventNumberOf(body)]; ok {
		status = s
		delete(r.statusFor, eventNumberOf(body))
	}
	r.mu.Unlock()
	if status == statusHang {
		status = http.StatusServiceUnavailable // switched to hang while gated: answer something
	}
	w.WriteHeader(status)
}

// eventNumberOf is the "n" of an eventBody, -1 when it has none.
func eventNumberOf(body []byte) int {
	var v struct{ N *int }
	if json.Unmarshal(body, &v) != nil || v.N == nil {
		return -1
	}
	return *v.N
}

// answer sets the status of the next answers (statusHang: hold the requests).
func (r *receiver) answer(status int) {
	r.mu.Lock()
	r.status = status
	r.mu.Unlock()
}

// requests returns a copy of everything received so far.
func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// answered returns the requests that were answered with a 2xx, in arrival order.
func (r *receiver) answered() []received {
	var out []received
	for _, q := range r.requests() {
		if q.Status >= 200 && q.Status < 300 {
			out = append(out, q)
		}
	}
	return out
}

// waitCount waits until the receiver got at least n requests.
func (r *receiver) waitCount(t testing.TB, n int) []received {
	t.Helper()
	waitFor(t, waitTimeout, func() bool { return r.count() >= n })
	return r.requests()
}

// waitAnswered waits until at least n requests were answered with a 2xx.
func (r *receiver) waitAnswered(t testing.TB, n int) []received {
	t.Helper()
	var ok []received
	waitFor(t, waitTimeout, func() bool { ok = r.answered(); return len(ok) >= n })
	return ok
}

// waitID waits until a request with webhook-id id was answered with a 2xx.
func (r *receiver) waitID(t testing.TB, id string) {
	t.Helper()
	waitFor(t, waitTimeout, func() bool {
		return slices.ContainsFunc(r.answered(), func(q received) bool { return q.ID == id })
	})
}

// ids returns the webhook-ids of the given requests.
func ids(rs []received) []string {
	out := make([]string, len(rs))
	for i, q := range rs {
		out[i] = q.ID
	}
	return out
}

// ---- logs ----

// logBuffer collects the sidecar's log; it is shown when a test fails.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// hangWhen makes the receiver hold the requests for which f is true (nil: none).
func (r *receiver) hangWhen(f func(received) bool) {
	r.mu.Lock()
	r.hangIf = f
	r.mu.Unlock()
}

// closeGate holds every request from now on until openGate.
func (r *receiver) closeGate() {
	r.mu.Lock()
	r.gate = make(chan struct{})
	r.mu.Unlock()
}

// openGate releases the held requests; later ones are answered at once.
func (r *receiver) openGate() {
	r.mu.Lock()
	if r.gate != nil {
		close(r.gate)
		r.gate = nil
	}
	r.mu.Unlock()
}

// concurrency returns how many requests are in progress now and the most there ever were.
func (r *receiver) concurrency() (now, most int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inflight, r.maxInflight
}

// setStatusFor answers status to the first request carrying event number n
// (eventBody), and the receiver's status to the others.
func (r *receiver) setStatusFor(n, status int) {
	r.mu.Lock()
	r.statusFor = map[int]int{n: status}
	r.mu.Unlock()
}
