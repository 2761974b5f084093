package ingest_test

// Tests of the HTTP bridge against a real embedded nats-server
// (internal/natstest, internal/embedded): the streams are set up as `serve`
// does, the handler is mounted on an httptest server, and every stored event is
// read back from the events stream.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/ingest"
	"github.com/dojo-webhooks/dojo-webhooks/internal/embedded"
	"github.com/dojo-webhooks/dojo-webhooks/internal/natstest"
)

var names = contract.NamesFor("defectdojo")

// waitTimeout bounds every wait for something that should happen promptly
// (generous: it is only reached when a test fails).
const waitTimeout = 10 * time.Second

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, waitTimeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ensureStreams creates the events and dead-letter streams as the sidecar does.
func ensureStreams(t testing.TB, js jetstream.JetStream) jetstream.Stream {
	t.Helper()
	if err := consumer.EnsureStreams(t.Context(), js, consumer.StreamsConfig{Names: names}); err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(t.Context(), names.Events)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// storedCount is the number of messages in the events stream.
func storedCount(t testing.TB, st jetstream.Stream) uint64 {
	t.Helper()
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// bridge is one test's server, streams and the handler on an httptest server.
type bridge struct {
	nc     *nats.Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	url    string

	mu       sync.Mutex
	received []string // events passed to Options.Received
}

func (b *bridge) receivedEvents() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.received...)
}

// newBridge starts a real server, creates the streams and serves the bridge
// configured by opts (Names, Connected and Received are filled in).
func newBridge(t *testing.T, opts ingest.Options) *bridge {
	t.Helper()
	_, nc, js := natstest.JetStream(t)
	return serveBridge(t, nc, js, opts)
}

func serveBridge(t *testing.T, nc *nats.Conn, js jetstream.JetStream, opts ingest.Options) *bridge {
	t.Helper()
	b := &bridge{nc: nc, js: js, stream: ensureStreams(t, js)}
	opts.Names = names
	opts.Connected = nc.IsConnected
	opts.Received = func(event string) {
		b.mu.Lock()
		b.received = append(b.received, event)
		b.mu.Unlock()
	}
	srv := httptest.NewServer(ingest.New(js, opts))
	t.Cleanup(srv.Close)
	b.url = srv.URL + "/ingest"
	return b
}

// dojoRequest is a POST as DefectDojo's webhook feature sends it.
func dojoRequest(t testing.TB, url, event string, body []byte) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-DefectDojo-Event", event)
	req.Header.Set("X-DefectDojo-Instance", "https://defectdojo.example.com")
	req.Header.Set("User-Agent", "DefectDojo-2.40.0")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Content-Type", "application/json")
	return req
}

type answer struct {
	code   int
	header http.Header
	body   string
}

func do(t testing.TB, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{code: resp.StatusCode, header: resp.Header, body: string(b)}
}

// acceptedBody is the JSON of a 202.
type acceptedBody struct {
	Stream   string `json:"stream"`
	Sequence uint64 `json:"sequence"`
	Event    string `json:"event"`
}

func mustAccept(t testing.TB, a answer, event string) acceptedBody {
	t.Helper()
	if a.code != http.StatusAccepted {
		t.Fatalf("status %d (%q), want 202", a.code, a.body)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type of the 202 = %q, want application/json", ct)
	}
	var got acceptedBody
	dec := json.NewDecoder(strings.NewReader(a.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("202 body %q: %v", a.body, err)
	}
	if got.Stream != names.Events || got.Sequence == 0 || got.Event != event {
		t.Fatalf("202 body = %+v, want stream %s, a sequence and event %s", got, names.Events, event)
	}
	return got
}

// A DefectDojo-like POST is stored byte for byte on the event's subject with
// DefectDojo's headers, and answered 202 with where it was stored.
func TestEndToEnd(t *testing.T) {
	b := newBridge(t, ingest.Options{})
	body := []byte("{\n\t\"description\" :  \"Scan «ZAP» ✓ für 日本\\u00e9 \\\"quoted\\\"\",\r\n  \"title\":\"x\" ,\"user\": null,\n  \"findings\": {\"high\": [ ]}  }\n\n")
	req := dojoRequest(t, b.url, "scan_added", body)
	a := do(t, req)
	acc := mustAccept(t, a, "scan_added")

	msg, err := b.stream.GetMsg(t.Context(), acc.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if want := "defectdojo.events.scan_added"; msg.Subject != want {
		t.Errorf("subject = %q, want %q", msg.Subject, want)
	}
	if !bytes.Equal(msg.Data, body) {
		t.Errorf("stored body differs:\n got %q\nwant %q", msg.Data, body)
	}
	if got := msg.Header.Get(contract.HeaderInstance); got != "https://defectdojo.example.com" {
		t.Errorf("%s = %q", contract.HeaderInstance, got)
	}
	if got := msg.Header.Get(contract.HeaderUserAgent); got != "DefectDojo-2.40.0" {
		t.Errorf("%s = %q", contract.HeaderUserAgent, got)
	}
	if got := msg.Header.Get(contract.HeaderRecipient); got != "" {
		t.Errorf("%s = %q, want none (a system notification)", contract.HeaderRecipient, got)
	}
	for _, h := range []string{"Accept", "Content-Type", "X-DefectDojo-Event", "Authorization"} {
		if v := msg.Header.Get(h); v != "" {
			t.Errorf("request header %s carried into the event: %q", h, v)
		}
	}
	if n := storedCount(t, b.stream); n != 1 {
		t.Errorf("stream holds %d messages, want 1", n)
	}
	if got := b.receivedEvents(); len(got) != 1 || got[0] != "scan_added" {
		t.Errorf("Received calls = %q, want [scan_added]", got)
	}

	// A personal notification keeps its recipient; a second event gets the next sequence.
	req = dojoRequest(t, b.url, "product_added", []byte(`{"a":1}`))
	req.Header.Set(contract.HeaderRecipient, "alice")
	acc2 := mustAccept(t, do(t, req), "product_added")
	if acc2.Sequence != acc.Sequence+1 {
		t.Errorf("second sequence = %d, want %d", acc2.Sequence, acc.Sequence+1)
	}
	msg, err = b.stream.GetMsg(t.Context(), acc2.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if msg.Subject != "defectdojo.events.product_added" || msg.Header.Get(contract.HeaderRecipient) != "alice" {
		t.Errorf("second event: subject %q, recipient %q", msg.Subject, msg.Header.Get(contract.HeaderRecipient))
	}
}

// chunked hides the length of a body so that the client sends it chunked.
type chunked struct{ r io.Reader }

func (c chunked) Read(p []byte) (int, error) { return c.r.Read(p) }

// Every refusal has its status and a one-line reason, and stores nothing.
func TestErrors(t *testing.T) {
	const limit = 64
	b := newBridge(t, ingest.Options{MaxBodyBytes: limit})
	valid := []byte(`{"title":"t"}`)
	big := []byte(`{"description":"` + strings.Repeat("x", 4*limit) + `"}`)

	cases := []struct {
		name   string
		req    func() *http.Request
		code   int
		reason string // substring of the one-line reason
	}{
		{"GET", func() *http.Request {
			r, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, b.url, nil)
			return r
		}, http.StatusMethodNotAllowed, "method GET not allowed"},
		{"PUT", func() *http.Request {
			r := dojoRequest(t, b.url, "scan_added", valid)
			r.Method = http.MethodPut
			return r
		}, http.StatusMethodNotAllowed, "method PUT not allowed"},
		{"missing event", func() *http.Request {
			r := dojoRequest(t, b.url, "scan_added", valid)
			r.Header.Del("X-DefectDojo-Event")
			return r
		}, http.StatusBadRequest, "missing X-DefectDojo-Event header"},
		{"event with a dot", func() *http.Request { return dojoRequest(t, b.url, "a.b", valid) },
			http.StatusBadRequest, `X-DefectDojo-Event: event "a.b"`},
		{"event wildcard *", func() *http.Request { return dojoRequest(t, b.url, "*", valid) },
			http.StatusBadRequest, `X-DefectDojo-Event: event "*"`},
		{"event wildcard >", func() *http.Request { return dojoRequest(t, b.url, ">", valid) },
			http.StatusBadRequest, `X-DefectDojo-Event: event ">"`},
		{"event with a space", func() *http.Request { return dojoRequest(t, b.url, "x y", valid) },
			http.StatusBadRequest, `X-DefectDojo-Event: event "x y"`},
		{"event too long", func() *http.Request { return dojoRequest(t, b.url, strings.Repeat("e", 129), valid) },
			http.StatusBadRequest, "X-DefectDojo-Event: event"},
		{"body not JSON", func() *http.Request { return dojoRequest(t, b.url, "scan_added", []byte(`{"title":`)) },
			http.StatusBadRequest, "body is not a JSON document"},
		{"empty body", func() *http.Request { return dojoRequest(t, b.url, "scan_added", nil) },
			http.StatusBadRequest, "body is not a JSON document"},
		{"two JSON documents", func() *http.Request { return dojoRequest(t, b.url, "scan_added", []byte(`{} {}`)) },
			http.StatusBadRequest, "body is not a JSON document"},
		{"too large with Content-Length", func() *http.Request { return dojoRequest(t, b.url, "scan_added", big) },
			http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes is larger than the %d byte limit", len(big), limit)},
		{"too large chunked", func() *http.Request {
			r := dojoRequest(t, b.url, "scan_added", nil)
			r.Body = io.NopCloser(chunked{bytes.NewReader(big)})
			r.ContentLength = -1
			return r
		}, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than the %d byte limit", limit)},
		{"text/plain", func() *http.Request {
			r := dojoRequest(t, b.url, "scan_added", valid)
			r.Header.Set("Content-Type", "text/plain")
			return r
		}, http.StatusUnsupportedMediaType, `Content-Type "text/plain": a JSON body is expected`},
		{"unparsable Content-Type", func() *http.Request {
			r := dojoRequest(t, b.url, "scan_added", valid)
			r.Header.Set("Content-Type", "application/json; charset")
			return r
		}, http.StatusUnsupportedMediaType, "a JSON body is expected"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req()
			if tc.name == "too large chunked" {
				// Make sure the client really sends it without a Content-Length.
				req.TransferEncoding = []string{"chunked"}
			}
			a := do(t, req)
			checkRefusal(t, a, tc.code, tc.reason)
			if tc.code == http.StatusMethodNotAllowed && a.header.Get("Allow") != http.MethodPost {
				t.Errorf("Allow = %q, want POST", a.header.Get("Allow"))
			}
		})
	}
	if n := storedCount(t, b.stream); n != 0 {
		t.Errorf("stream holds %d messages after refusals only, want 0", n)
	}
	if got := b.receivedEvents(); len(got) != 0 {
		t.Errorf("Received called for refused requests: %q", got)
	}

	// The limits are inclusive, and a missing Content-Type or a +json one is accepted.
	exact := []byte(`{"d":"` + strings.Repeat("y", limit-8) + `"}`)
	if len(exact) != limit {
		t.Fatalf("test body is %d bytes, want %d", len(exact), limit)
	}
	mustAccept(t, do(t, dojoRequest(t, b.url, "scan_added", exact)), "scan_added")
	r := dojoRequest(t, b.url, "scan_added", nil)
	r.Body = io.NopCloser(chunked{bytes.NewReader(exact)})
	r.ContentLength = -1
	r.TransferEncoding = []string{"chunked"}
	mustAccept(t, do(t, r), "scan_added")
	r = dojoRequest(t, b.url, "test_added", valid)
	r.Header.Del("Content-Type")
	mustAccept(t, do(t, r), "test_added")
	r = dojoRequest(t, b.url, "test_added", valid)
	r.Header.Set("Content-Type", "application/vnd.dojo+json; charset=utf-8")
	mustAccept(t, do(t, r), "test_added")
	if n := storedCount(t, b.stream); n != 4 {
		t.Errorf("stream holds %d messages, want 4", n)
	}
}

// A client's long header value is not echoed back in full, and a body whose JSON
// strings hold bytes that are not UTF-8 is refused, not forwarded.
func TestLongValuesAndInvalidUTF8(t *testing.T) {
	b := newBridge(t, ingest.Options{})
	valid := []byte(`{"title":"t"}`)
	shown := strings.Repeat("e", ingest.MaxEchoed) + "…"

	for _, event := range []string{strings.Repeat("e", 10<<10), strings.Repeat("é", 10<<10), strings.Repeat("x y", 3<<10)} {
		a := do(t, dojoRequest(t, b.url, event, valid))
		checkRefusal(t, a, http.StatusBadRequest, "X-DefectDojo-Event: event ")
		if len(a.body) > 400 {
			t.Errorf("a %d byte event name is echoed in a %d byte answer: %.200q…", len(event), len(a.body), a.body)
		}
	}
	a := do(t, dojoRequest(t, b.url, strings.Repeat("e", 10<<10), valid))
	checkRefusal(t, a, http.StatusBadRequest, `X-DefectDojo-Event: event "`+shown+`": must be 1 to 128 characters`)
	// A name of exactly MaxEchoed characters is shown whole.
	a = do(t, dojoRequest(t, b.url, strings.Repeat("ü", ingest.MaxEchoed), valid))
	checkRefusal(t, a, http.StatusBadRequest, `event "`+strings.Repeat("ü", ingest.MaxEchoed)+`": must be`)

	r := dojoRequest(t, b.url, "scan_added", valid)
	r.Header.Set("Content-Type", "text/"+strings.Repeat("p", 10<<10))
	a = do(t, r)
	checkRefusal(t, a, http.StatusUnsupportedMediaType, `Content-Type "text/`+strings.Repeat("p", ingest.MaxEchoed-5)+`…": a JSON body is expected`)

	for _, tc := range []struct {
		body   string
		offset int
	}{
		{"{\"a\":\"\xff\"}", 6},                         // a byte that never starts a sequence
		{"{\"t\":\"ok\",\"a\":\"x\xc3\"}", 16},          // a sequence cut short
		{"{\"a\":\"\xc0\xaf\"}", 6},                     // an overlong encoding of '/'
		{"{\"a\":\"\xed\xa0\x80\"}", 6},                 // a UTF-16 surrogate encoded as UTF-8
		{"{\"\xfe\":1}", 2},                             // in a key
		{"[\"caf\xc3\xa9\", \"\xf4\x90\x80\x80\"]", 11}, // above U+10FFFF
	} {
		a := do(t, dojoRequest(t, b.url, "scan_added", []byte(tc.body)))
		checkRefusal(t, a, http.StatusBadRequest, fmt.Sprintf("body is not valid UTF-8 (first invalid byte at offset %d)", tc.offset))
	}
	if n := storedCount(t, b.stream); n != 0 {
		t.Errorf("stream holds %d messages after refusals only, want 0", n)
	}
	// UTF-8 text and \u escapes pass.
	mustAccept(t, do(t, dojoRequest(t, b.url, "scan_added", []byte(`{"title":"日本 café \u00e9 \ud83d\ude00"}`))), "scan_added")
	if n := storedCount(t, b.stream); n != 1 {
		t.Errorf("stream holds %d messages, want 1", n)
	}
}

// checkRefusal checks an error answer: its status and a single line of plain text.
func checkRefusal(t testing.TB, a answer, code int, reason string) {
	t.Helper()
	if a.code != code {
		t.Fatalf("status %d (%q), want %d", a.code, a.body, code)
	}
	if !strings.HasPrefix(a.header.Get("Content-Type"), "text/plain") {
		t.Errorf("Content-Type = %q, want text/plain", a.header.Get("Content-Type"))
	}
	line, ok := strings.CutSuffix(a.body, "\n")
	if !ok || line == "" || strings.Contains(line, "\n") {
		t.Errorf("reason %q is not one line ending in a newline", a.body)
	}
	if !strings.Contains(line, reason) {
		t.Errorf("reason %q does not contain %q", line, reason)
	}
}

// With a token configured, only requests carrying it (bare or as a bearer
// token) in the configured header are stored.
func TestToken(t *testing.T) {
	const token = "s3cr3t-t0ken"
	for _, header := range []string{"", "X-Dojo-Token"} {
		name := header
		if name == "" {
			name = "default Authorization"
		}
		t.Run(name, func(t *testing.T) {
			b := newBridge(t, ingest.Options{Token: token, TokenHeader: header})
			inHeader := header
			if inHeader == "" {
				inHeader = ingest.DefaultTokenHeader
			}
			refused := []struct {
				name   string
				header string
				value  string
			}{
				{"missing", "", ""},
				{"wrong", inHeader, "wrong"},
				{"wrong bearer", inHeader, "Bearer wrong"},
				{"prefix of the token", inHeader, token[:5]},
				{"token with a suffix", inHeader, token + "x"},
				{"empty bearer", inHeader, "Bearer "},
				{"in another header", "X-Other-Token", token},
			}
			if header != "" {
				refused = append(refused, struct{ name, header, value string }{"in Authorization instead", "Authorization", "Bearer " + token})
			}
			for _, rc := range refused {
				req := dojoRequest(t, b.url, "scan_added", []byte(`{}`))
				if rc.header != "" {
					req.Header.Set(rc.header, rc.value)
				}
				a := do(t, req)
				if a.code != http.StatusUnauthorized {
					t.Fatalf("%s: status %d (%q), want 401", rc.name, a.code, a.body)
				}
				checkRefusal(t, a, http.StatusUnauthorized, "missing or wrong token in the "+inHeader+" header")
				if strings.Contains(a.body, token) {
					t.Errorf("%s: the 401 reveals the token: %q", rc.name, a.body)
				}
			}
			// Authentication comes before anything else is looked at.
			req := dojoRequest(t, b.url, "a.b", []byte(`nope`))
			checkRefusal(t, do(t, req), http.StatusUnauthorized, "missing or wrong token")
			if n := storedCount(t, b.stream); n != 0 {
				t.Fatalf("stream holds %d messages after 401s, want 0", n)
			}

			for _, v := range []string{token, "Bearer " + token} {
				req := dojoRequest(t, b.url, "scan_added", []byte(`{}`))
				req.Header.Set(inHeader, v)
				acc := mustAccept(t, do(t, req), "scan_added")
				msg, err := b.stream.GetMsg(t.Context(), acc.Sequence)
				if err != nil {
					t.Fatal(err)
				}
				for k, vals := range msg.Header {
					for _, hv := range vals {
						if strings.Contains(hv, token) {
							t.Errorf("the token is stored with the event in header %s", k)
						}
					}
				}
			}
			if n := storedCount(t, b.stream); n != 2 {
				t.Errorf("stream holds %d messages, want 2", n)
			}
			if got := b.receivedEvents(); len(got) != 2 {
				t.Errorf("Received calls = %q, want 2", got)
			}
		})
	}
}

// DefectDojo's ping (sent when a webhook is saved) is answered, never stored.
func TestPing(t *testing.T) {
	b := newBridge(t, ingest.Options{})
	body := []byte(`{"description": "Test webhook notification", "title": "", "user": null}`)
	a := do(t, dojoRequest(t, b.url, ingest.PingEvent, body))
	if a.code < 200 || a.code > 299 {
		t.Fatalf("ping: status %d (%q), want 2xx", a.code, a.body)
	}
	if a.code == http.StatusAccepted {
		t.Errorf("ping answered 202, which means stored")
	}
	if n := storedCount(t, b.stream); n != 0 {
		t.Errorf("stream holds %d messages after a ping, want 0", n)
	}
	if got := b.receivedEvents(); len(got) != 0 {
		t.Errorf("Received called for a ping: %q", got)
	}
}

// Received is called once per stored event, never for a refusal or a ping.
func TestReceivedOncePerStoredEvent(t *testing.T) {
	b := newBridge(t, ingest.Options{MaxBodyBytes: 128})
	want := []string{"scan_added", "product_added", "scan_added", "sla_breached"}
	for i, ev := range want {
		mustAccept(t, do(t, dojoRequest(t, b.url, ev, []byte(fmt.Sprintf(`{"n":%d}`, i)))), ev)
		// Refusals and pings in between count for nothing.
		do(t, dojoRequest(t, b.url, ev, []byte(`not json`)))
		do(t, dojoRequest(t, b.url, "bad.event", []byte(`{}`)))
		do(t, dojoRequest(t, b.url, ingest.PingEvent, []byte(`{}`)))
		do(t, dojoRequest(t, b.url, ev, bytes.Repeat([]byte(" "), 200)))
	}
	got := b.receivedEvents()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("Received calls = %q, want %q", got, want)
	}
	if n := storedCount(t, b.stream); n != uint64(len(want)) {
		t.Errorf("stream holds %d messages, want %d", n, len(want))
	}
}

// Without a stream for the subject (the streams were deleted), the answer is
// 503 with a reason, not a 202 or a hang.
func TestNoStream(t *testing.T) {
	b := newBridge(t, ingest.Options{PublishTimeout: 2 * time.Second, Hold: -1})
	if err := b.js.DeleteStream(t.Context(), names.Events); err != nil {
		t.Fatal(err)
	}
	a := do(t, dojoRequest(t, b.url, "scan_added", []byte(`{}`)))
	checkRefusal(t, a, http.StatusServiceUnavailable, "no stream stores defectdojo.events.scan_added")
	if a.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if got := b.receivedEvents(); len(got) != 0 {
		t.Errorf("Received called without a stored event: %q", got)
	}
}

// freePort finds a loopback port nobody listens on.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

// startOn starts an embedded server on a fixed port with its store in dir,
// stopped when the test ends.
func startOn(t testing.TB, port int, dir string) *server.Server {
	t.Helper()
	s, err := embedded.Start(embedded.Options{Port: port, StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// While NATS stays unreachable past the hold the bridge answers 503 with
// Retry-After (and the client library does not buffer the event to publish it
// later); once the server is back, events are stored again, and only the
// accepted one is.
func TestUnavailableThenBack(t *testing.T) {
	port, dir := freePort(t), t.TempDir()
	s := startOn(t, port, dir)
	nc, js := natstest.ConnectURL(t, s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	b := serveBridge(t, nc, js, ingest.Options{PublishTimeout: 2 * time.Second, Hold: 300 * time.Millisecond})

	s.Shutdown()
	s.WaitForShutdown()
	waitFor(t, "client sees the disconnection", func() bool { return !nc.IsConnected() })

	down := []byte(`{"title":"sent while NATS was down"}`)
	a := do(t, dojoRequest(t, b.url, "scan_added", down))
	checkRefusal(t, a, http.StatusServiceUnavailable, "NATS is not reachable (held 300ms); retry later")
	if ra := a.header.Get("Retry-After"); ra == "" {
		t.Error("503 without Retry-After")
	}

	startOn(t, port, dir)
	waitFor(t, "client reconnected", nc.IsConnected)

	up := []byte(`{"title":"sent once NATS was back"}`)
	acc := mustAccept(t, do(t, dojoRequest(t, b.url, "scan_added", up)), "scan_added")
	st, err := js.Stream(t.Context(), names.Events)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the accepted event is in the stream", func() bool {
		info, err := st.Info(t.Context())
		return err == nil && info.State.LastSeq >= acc.Sequence
	})
	// Make sure nothing the client might have buffered is still in flight.
	if err := nc.FlushTimeout(waitTimeout); err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 || info.State.LastSeq != acc.Sequence {
		t.Fatalf("stream holds %d messages (last sequence %d), want exactly the accepted one (%d)",
			info.State.Msgs, info.State.LastSeq, acc.Sequence)
	}
	msg, err := st.GetMsg(t.Context(), acc.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(msg.Data, up) {
		t.Errorf("stored %q, want the accepted event %q", msg.Data, up)
	}
	if got := b.receivedEvents(); len(got) != 1 {
		t.Errorf("Received calls = %q, want one", got)
	}
}

// A request that comes while NATS is unreachable is held and published again
// until the server is back within the hold: 202, stored once.
func TestHeldUntilNATSIsBack(t *testing.T) {
	port, dir := freePort(t), t.TempDir()
	s := startOn(t, port, dir)
	nc, js := natstest.ConnectURL(t, s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.ReconnectBufSize(-1))
	b := serveBridge(t, nc, js, ingest.Options{PublishTimeout: time.Second, Hold: waitTimeout})
	// Wrap the handler's view of the connection: the test restarts NATS only once
	// the held request has found it down.
	var sawDown atomic.Bool
	srv := httptest.NewServer(ingest.New(js, ingest.Options{Names: names, PublishTimeout: time.Second, Hold: waitTimeout,
		Connected: func() bool {
			up := nc.IsConnected()
			if !up {
				sawDown.Store(true)
			}
			return up
		}}))
	t.Cleanup(srv.Close)
	s.Shutdown()
	s.WaitForShutdown()
	waitFor(t, "client sees the disconnection", func() bool { return !nc.IsConnected() })

	answered := make(chan answer, 1)
	go func() { answered <- do(t, dojoRequest(t, srv.URL+"/ingest", "scan_added", []byte(`{"held":true}`))) }()
	waitFor(t, "the request held while NATS is down", sawDown.Load)
	startOn(t, port, dir)
	acc := mustAccept(t, <-answered, "scan_added")
	if n := storedCount(t, b.stream); n != 1 {
		t.Errorf("stream holds %d messages, want the held one (sequence %d) once", n, acc.Sequence)
	}
	msg, err := b.stream.GetMsg(t.Context(), acc.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(msg.Header.Get(nats.MsgIdHdr), "ingest-") {
		t.Errorf("Nats-Msg-Id = %q, want the bridge's ingest-… id (a retried publish is stored once)", msg.Header.Get(nats.MsgIdHdr))
	}
}

// A body within MaxBodyBytes that the NATS server still refuses as too large
// (the default limit equals NATS's max payload, and the headers come on top)
// is answered 413, not a 503 that DefectDojo would retry forever.
func TestOverServerMaxPayload(t *testing.T) {
	b := newBridge(t, ingest.Options{})
	body := []byte(`"` + strings.Repeat("x", ingest.DefaultMaxBodyBytes-2) + `"`)
	a := do(t, dojoRequest(t, b.url, "scan_added", body))
	checkRefusal(t, a, http.StatusRequestEntityTooLarge, "larger than the NATS server's max payload")
	if n := storedCount(t, b.stream); n != 0 {
		t.Errorf("stream holds %d messages, want 0", n)
	}
	if got := b.receivedEvents(); len(got) != 0 {
		t.Errorf("Received called: %q", got)
	}
}

// Bodies being read at once are bounded: with clients holding half-sent bodies
// of unknown size (each counting as the largest) up to MaxBytesInFlight, one
// more request is answered 503 with Retry-After (nothing read, nothing stored);
// once they finish, requests are taken again.
func TestBodiesInFlightBounded(t *testing.T) {
	const limit = 2
	b := newBridge(t, ingest.Options{MaxBytesInFlight: limit * ingest.DefaultMaxBodyBytes})
	var slow []*io.PipeWriter
	done := make(chan answer, limit)
	client := &http.Client{Transport: &http.Transport{}} // fresh connections: a pipe body cannot be sent twice
	t.Cleanup(client.CloseIdleConnections)
	for range limit {
		pr, pw := io.Pipe()
		slow = append(slow, pw)
		req := dojoRequest(t, b.url, "scan_added", nil)
		req.Body, req.ContentLength = pr, -1
		go func() {
			resp, err := client.Do(req)
			if err != nil {
				done <- answer{body: err.Error()}
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			done <- answer{code: resp.StatusCode, body: string(body)}
		}()
		if _, err := pw.Write([]byte(`{"half":`)); err != nil {
			t.Fatal(err)
		}
	}
	var refused answer
	waitFor(t, "a request refused while the bodies are held", func() bool {
		select {
		case a := <-done:
			t.Fatalf("a held body ended early: %d %q", a.code, a.body)
		default:
		}
		refused = do(t, dojoRequest(t, b.url, "scan_added", []byte(`{"n":1}`)))
		return refused.code == http.StatusServiceUnavailable
	})
	if refused.header.Get("Retry-After") == "" || !strings.Contains(refused.body, "retry later") {
		t.Errorf("503 without Retry-After or reason: %+v", refused)
	}
	before := storedCount(t, b.stream)
	for _, pw := range slow {
		_, _ = pw.Write([]byte(`true}`))
		_ = pw.Close()
	}
	for range limit {
		if a := <-done; a.code != http.StatusAccepted {
			t.Errorf("a held body, finished: %d %q", a.code, a.body)
		}
	}
	mustAccept(t, do(t, dojoRequest(t, b.url, "scan_added", []byte(`{"n":2}`))), "scan_added")
	if got := storedCount(t, b.stream); got != before+limit+1 {
		t.Errorf("%d stored after the release, want %d", got, before+limit+1)
	}
}
