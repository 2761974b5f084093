package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/ingest"
)

// recorder is an ingest.Publisher that records what it is asked to publish
// (not a NATS mock: the bridge's own interface, so the fuzzer runs fast).
type recorder struct {
	fail   bool // answer every publish with an error
	tooBig bool // the error is the server's max payload

	mu    sync.Mutex
	calls []*nats.Msg
}

func (p *recorder) PublishMsg(_ context.Context, msg *nats.Msg, _ ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, msg)
	if p.fail && p.tooBig {
		return nil, nats.ErrMaxPayload
	}
	if p.fail {
		return nil, errors.New("stub: publish failed")
	}
	return &jetstream.PubAck{Stream: names.Events, Sequence: uint64(len(p.calls))}, nil
}

var subjectToken = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// Fuzz flags.
const (
	fuzzToken        = 1 << iota // the bridge requires a token
	fuzzDisconnected             // Connected reports false
	fuzzPublishFails             // the publisher returns an error
	fuzzChunked                  // the body has no Content-Length
	fuzzTooBig                   // with fuzzPublishFails: the server refuses the payload as too large
)

// FuzzIngest sends arbitrary methods, event headers, content types, auth
// headers and bodies to the bridge and checks its answers and what it publishes.
func FuzzIngest(f *testing.F) {
	dojo := []byte(`{"description": "Test webhook notification", "title": "", "user": null}`)
	for _, seed := range []struct {
		method, event, ctype, auth string
		body                       []byte
		flags                      uint8
	}{
		{"POST", "scan_added", "application/json", "", dojo, 0},
		{"POST", "scan_added", "application/json; charset=utf-8", "", []byte(" \n{\"a\": \"日本\"}\t"), 0},
		{"POST", "product_type_added", "", "", []byte(`[]`), 0},
		{"POST", "sla_breached", "application/problem+json", "", []byte(`null`), 0},
		{"POST", "ping", "application/json", "", dojo, 0},
		{"POST", "ping", "application/json", "", []byte(`{`), 0},
		{"GET", "scan_added", "application/json", "", dojo, 0},
		{"", "", "application/json", "", dojo, 0},
		{"POST", "a.b", "application/json", "", dojo, 0},
		{"POST", "*", "application/json", "", dojo, 0},
		{"POST", ">", "application/json", "", dojo, 0},
		{"POST", "x y", "application/json", "", dojo, 0},
		{"POST", "scan_added\x00", "application/json", "", dojo, 0},
		{"POST", "ümlaut", "application/json", "", dojo, 0},
		{"POST", strings.Repeat("e", 129), "application/json", "", dojo, 0},
		{"POST", strings.Repeat("é", 2000), "application/json", "", dojo, 0},
		{"POST", "scan_added", "text/" + strings.Repeat("\xff", 2000), "", dojo, 0},
		{"POST", "scan_added", "application/json", "", []byte("{\"a\":\"\xed\xa0\x80\"}"), 0},
		{"POST", "scan_added", "text/plain", "", dojo, 0},
		{"POST", "scan_added", "application/json; charset", "", dojo, 0},
		{"POST", "scan_added", "application/json", "", []byte(`{"a":`), 0},
		{"POST", "scan_added", "application/json", "", []byte("{\"a\":\"\xff\"}"), 0},
		{"POST", "scan_added", "application/json", "", []byte(`{} {}`), 0},
		{"POST", "scan_added", "application/json", "", bytes.Repeat([]byte(" "), 300), 0},
		{"POST", "scan_added", "application/json", "", []byte(`"` + strings.Repeat("x", 300) + `"`), fuzzChunked},
		{"POST", "scan_added", "application/json", "", dojo, fuzzToken},
		{"POST", "scan_added", "application/json", "fuzz-token", dojo, fuzzToken},
		{"POST", "scan_added", "application/json", "Bearer fuzz-token", dojo, fuzzToken},
		{"POST", "scan_added", "application/json", "Bearer wrong", dojo, fuzzToken},
		{"POST", "scan_added", "application/json", "", dojo, fuzzDisconnected},
		{"POST", "scan_added", "application/json", "", dojo, fuzzPublishFails},
		{"POST", "scan_added", "application/json", "", dojo, fuzzPublishFails | fuzzTooBig},
		{"POST", "ping", "application/json", "", dojo, fuzzDisconnected | fuzzPublishFails},
	} {
		f.Add(seed.method, seed.event, seed.ctype, seed.auth, seed.body, seed.flags)
	}

	const limit = 256
	f.Fuzz(func(t *testing.T, method, event, ctype, auth string, body []byte, flags uint8) {
		pub := &recorder{fail: flags&fuzzPublishFails != 0, tooBig: flags&fuzzTooBig != 0}
		opts := ingest.Options{Names: names, MaxBodyBytes: limit, Hold: -1} // no hold: one publish per request
		if flags&fuzzToken != 0 {
			opts.Token = "fuzz-token"
		}
		if flags&fuzzDisconnected != 0 {
			opts.Connected = func() bool { return false }
		}
		received := 0
		opts.Received = func(string) { received++ }
		h := ingest.New(pub, opts)

		req := httptest.NewRequest(http.MethodPost, "/ingest", bytes.NewReader(body))
		if flags&fuzzChunked != 0 {
			req.Body = io.NopCloser(chunked{bytes.NewReader(body)})
			req.ContentLength = -1
		}
		if method != "" {
			req.Method = method
		}
		req.Header = http.Header{} // set directly: any bytes, as a fuzzer may send them
		if event != "" {
			req.Header["X-Defectdojo-Event"] = []string{event}
		}
		if ctype != "" {
			req.Header["Content-Type"] = []string{ctype}
		}
		if auth != "" {
			req.Header["Authorization"] = []string{auth}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)

		code := w.Code
		switch code {
		case 200, 202, 400, 401, 405, 413, 415, 503:
		default:
			t.Fatalf("status %d (%q)", code, w.Body.String())
		}
		if code != 200 && code != 202 && !strings.HasSuffix(w.Body.String(), "\n") {
			t.Errorf("status %d without a reason line: %q", code, w.Body.String())
		}
		// A reason repeats at most ingest.MaxEchoed characters of a header (each escaped in at most 10 bytes).
		if code != 200 && code != 202 && w.Body.Len() > 200+10*ingest.MaxEchoed {
			t.Errorf("status %d with a %d byte reason: a header is echoed in full", code, w.Body.Len())
		}
		if code == 503 && w.Header().Get("Retry-After") == "" {
			t.Errorf("503 without Retry-After")
		}
		if code == 200 && event != ingest.PingEvent {
			t.Errorf("200 for event %q: only a ping is answered 200", event)
		}

		pub.mu.Lock()
		calls := pub.calls
		pub.mu.Unlock()
		switch {
		case code == 202:
			if len(calls) != 1 || pub.fail {
				t.Fatalf("202 after %d publish calls (failing publisher: %v)", len(calls), pub.fail)
			}
			if received != 1 {
				t.Errorf("202 with %d Received calls, want 1", received)
			}
			var acc acceptedBody
			if err := json.Unmarshal(w.Body.Bytes(), &acc); err != nil || acc.Sequence != 1 || acc.Event != event {
				t.Errorf("202 body %q (%v)", w.Body.String(), err)
			}
		case pub.fail && len(calls) == 1 && (code == 503 && !pub.tooBig || code == 413 && pub.tooBig):
			// The publisher was asked and failed: refused, nothing stored.
			if received != 0 {
				t.Errorf("503 with %d Received calls", received)
			}
		default:
			if len(calls) != 0 {
				t.Fatalf("status %d after %d publish calls", code, len(calls))
			}
			if received != 0 {
				t.Errorf("status %d with %d Received calls", code, received)
			}
		}
		for _, m := range calls {
			if !json.Valid(m.Data) || !utf8.Valid(m.Data) {
				t.Errorf("published a body that is not UTF-8 JSON: %q", m.Data)
			}
			if !bytes.Equal(m.Data, body) {
				t.Errorf("published %q, not the body %q", m.Data, body)
			}
			tok, ok := strings.CutPrefix(m.Subject, "defectdojo.events.")
			if !ok || !subjectToken.MatchString(tok) || tok != event || tok == ingest.PingEvent {
				t.Errorf("published to subject %q (event header %q)", m.Subject, event)
			}
			if int64(len(m.Data)) > limit {
				t.Errorf("published %d bytes, above the %d byte limit", len(m.Data), limit)
			}
			if opts.Token != "" {
				for k, vals := range m.Header {
					for _, v := range vals {
						if strings.Contains(v, opts.Token) {
							t.Errorf("the token is published in header %s", k)
						}
					}
				}
			}
		}
	})
}
