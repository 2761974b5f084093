// Package ingest is the HTTP bridge for an unmodified DefectDojo: its own webhook
// feature posts to /ingest, and the request is published to the events stream
// (POST /ingest/<endpoint> addresses it to that one endpoint). The answer is 202
// only after JetStream has stored the event. DefectDojo never retries (a 5xx or
// timeout loses the event and mutes its webhook for a minute), so a request
// that cannot be stored at once (NATS unreachable) is held and published again
// for up to Options.Hold before the 503.
package ingest

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// Defaults of the bridge, documented in the README.
const (
	DefaultMaxBodyBytes   = 1 << 20 // NATS's default max payload
	DefaultPublishTimeout = 5 * time.Second
	DefaultTokenHeader    = "Authorization"
	// DefaultMaxBytesInFlight bounds the bodies being read or held at once, in
	// bytes: 32 bodies of the largest size, or thousands of DefectDojo's small ones.
	DefaultMaxBytesInFlight = 32 << 20
	// PingEvent is DefectDojo's test notification: answered, never published.
	PingEvent = "ping"
	// EndpointPathValue is the path wildcard of POST /ingest/{endpoint}: the
	// event is addressed to that endpoint only.
	EndpointPathValue = "endpoint"
	// unavailableRetry is the Retry-After of a 503.
	unavailableRetry = "5"
)

// Publisher is the part of jetstream.JetStream the bridge uses.
type Publisher interface {
	PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

// Options configure the bridge; zero values take the defaults.
type Options struct {
	Names          contract.Names     // subjects (required)
	MaxBodyBytes   int64              // largest accepted body, default DefaultMaxBodyBytes (1 MiB)
	PublishTimeout time.Duration      // how long one publish waits for JetStream to store the event, default DefaultPublishTimeout (5 s)
	Hold           time.Duration      // how long a request is held, publishing again, while the event cannot be stored (503 after it), default DefaultHold (8 s); negative = no hold
	Endpoint       EndpointLookup     // whether an endpoint exists, for POST /ingest/<id>; nil = every id is unknown
	Token          string             // shared secret; empty = no authentication
	TokenHeader    string             // header carrying it (DefectDojo's header_name), default DefaultTokenHeader
	Connected      func() bool        // reports whether NATS is connected; nil = always
	Received       func(event string) // called once per stored event (metrics); optional
	// MaxBytesInFlight bounds the bodies read or held at once (through a NATS
	// outage), in bytes, default DefaultMaxBytesInFlight. A body being read
	// counts as its Content-Length, or MaxBodyBytes when it has none, then as
	// its size once read; a request that does not fit is answered 503 with
	// Retry-After at once rather than queued behind slow clients.
	MaxBytesInFlight int64
}

// EndpointLookup reports whether the endpoint id exists; an error (the store
// unreachable) is answered 503, never the 404 that would deactivate DefectDojo's webhook.
type EndpointLookup func(ctx context.Context, id string) (bool, error)

// Handler serves POST /ingest and POST /ingest/{endpoint}.
type Handler struct {
	pub    Publisher
	opts   Options
	bodies *budget // the bytes of the bodies being read or held
}

// withDefaults fills the zero fields of o with the defaults: the one place they are applied.
func (o Options) withDefaults() Options {
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = DefaultPublishTimeout
	}
	if o.TokenHeader == "" {
		o.TokenHeader = DefaultTokenHeader
	}
	if o.MaxBytesInFlight <= 0 {
		o.MaxBytesInFlight = DefaultMaxBytesInFlight
	}
	switch {
	case o.Hold == 0:
		o.Hold = DefaultHold
	case o.Hold < 0:
		o.Hold = 0
	}
	return o
}

// New returns the bridge publishing through pub.
func New(pub Publisher, opts Options) *Handler {
	opts = opts.withDefaults()
	return &Handler{pub: pub, opts: opts, bodies: &budget{free: opts.MaxBytesInFlight}}
}

// accepted is the body of a 202.
type accepted struct {
	Stream   string `json:"stream"`
	Sequence uint64 `json:"sequence"`
	Event    string `json:"event"`
}

func fail(w http.ResponseWriter, code int, format string, args ...any) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", unavailableRetry)
	}
	w.WriteHeader(code)
	fmt.Fprintf(w, format+"\n", args...)
}

// ServeHTTP checks the request, publishes it, and answers 202 once stored.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		fail(w, http.StatusMethodNotAllowed, "method %s not allowed: POST a DefectDojo webhook", r.Method)
		return
	}
	if h.opts.Token != "" && !h.authorized(r) {
		fail(w, http.StatusUnauthorized, "missing or wrong token in the %s header", h.opts.TokenHeader)
		return
	}
	endpoint := r.PathValue(EndpointPathValue)
	if endpoint != "" {
		found := false
		if h.opts.Endpoint != nil {
			var err error
			if found, err = h.opts.Endpoint(r.Context(), endpoint); err != nil {
				fail(w, http.StatusServiceUnavailable, "looking up endpoint %q: %v; retry later", shorten(endpoint), err)
				return
			}
		}
		if !found {
			// DefectDojo deactivates a webhook that gets a 404: the admin sees it at once.
			fail(w, http.StatusNotFound, "no endpoint %q: POST /ingest/<id> with the id of an existing endpoint", shorten(endpoint))
			return
		}
	}
	event := r.Header.Get("X-DefectDojo-Event")
	if event == "" {
		fail(w, http.StatusBadRequest, "missing X-DefectDojo-Event header")
		return
	}
	if statekv.ValidateEvent(event) != nil {
		// The rule's own message, about the name cut short: a 10 KB name is not echoed back
		// (the cut name, ending in "…", is invalid too, so the message is never nil).
		fail(w, http.StatusBadRequest, "X-DefectDojo-Event: %v", statekv.ValidateEvent(shorten(event)))
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			fail(w, http.StatusUnsupportedMediaType, "Content-Type %q: a JSON body is expected (application/json)", shorten(ct))
			return
		}
	}
	if r.ContentLength > h.opts.MaxBodyBytes {
		fail(w, http.StatusRequestEntityTooLarge, "body of %d bytes is larger than the %d byte limit", r.ContentLength, h.opts.MaxBodyBytes)
		return
	}
	held := r.ContentLength
	if held < 0 {
		held = h.opts.MaxBodyBytes
	}
	if !h.bodies.take(held) {
		fail(w, http.StatusServiceUnavailable, "%d bytes of bodies are being read or held already; retry later", h.opts.MaxBytesInFlight)
		return
	}
	defer func() { h.bodies.give(held) }()
	body, err := io.ReadAll(io.LimitReader(r.Body, h.opts.MaxBodyBytes+1))
	if n := int64(len(body)); n < held {
		h.bodies.give(held - n) // held through the publish: what was read
		held = n
	}
	if err != nil {
		fail(w, http.StatusBadRequest, "reading the body: %v", err)
		return
	}
	if int64(len(body)) > h.opts.MaxBodyBytes {
		fail(w, http.StatusRequestEntityTooLarge, "body larger than the %d byte limit", h.opts.MaxBodyBytes)
		return
	}
	if !json.Valid(body) {
		fail(w, http.StatusBadRequest, "body is not a JSON document")
		return
	}
	if !utf8.Valid(body) {
		// encoding/json accepts invalid UTF-8 inside strings; JSON text must be UTF-8 (RFC 8259), and
		// receivers would each repair or refuse it differently.
		fail(w, http.StatusBadRequest, "body is not valid UTF-8 (first invalid byte at offset %d)", invalidUTF8At(body))
		return
	}
	if event == PingEvent {
		// DefectDojo's test of a newly saved webhook tests the sidecar, not the endpoints behind it.
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		fmt.Fprintln(w, `{"ping":"ok"}`)
		return
	}
	subject := h.opts.Names.EventSubject(event)
	if endpoint != "" {
		subject = h.opts.Names.DirectSubject(endpoint, event)
	}
	msg := &nats.Msg{Subject: subject, Data: body, Header: nats.Header{nats.MsgIdHdr: {newMsgID()}}}
	for _, k := range []string{contract.HeaderInstance, contract.HeaderUserAgent, contract.HeaderRecipient} {
		if v := r.Header.Get(k); v != "" {
			msg.Header.Set(k, v)
		}
	}
	ack, err := h.store(r.Context(), msg)
	if err != nil {
		if errors.Is(err, nats.ErrMaxPayload) {
			// Body and headers exceed the server's max payload: retrying will never help.
			fail(w, http.StatusRequestEntityTooLarge, "body of %d bytes is larger than the NATS server's max payload (with headers)", len(body))
			return
		}
		code := http.StatusServiceUnavailable
		if errors.Is(err, errNotConnected) {
			fail(w, code, "NATS is not reachable (held %s); retry later", h.opts.Hold)
			return
		}
		if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) {
			fail(w, code, "no stream stores %s; retry later", msg.Subject)
			return
		}
		fail(w, code, "event not stored: %v; retry later", err)
		return
	}
	if h.opts.Received != nil {
		h.opts.Received(event)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_ = json.NewEncoder(w).Encode(accepted{Stream: ack.Stream, Sequence: ack.Sequence, Event: event})
}

// MaxEchoed is how many characters of a client's header value an error answer repeats.
const MaxEchoed = 64

// shorten cuts s to its first MaxEchoed characters followed by "…" (bytes that are not
// UTF-8 count one each; %q escapes them).
func shorten(s string) string {
	n := 0
	for i := 0; i < len(s); n++ {
		if n == MaxEchoed {
			return s[:i] + "…"
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return s
}

// invalidUTF8At is the offset of the first byte of b that does not start a valid UTF-8 sequence.
func invalidUTF8At(b []byte) int {
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			return i
		}
		i += size
	}
	return len(b)
}

// authorized compares the token header in constant time; "Bearer <token>" is accepted too.
func (h *Handler) authorized(r *http.Request) bool {
	got := r.Header.Get(h.opts.TokenHeader)
	if len(got) > 7 && strings.EqualFold(got[:7], "Bearer ") { // the scheme is case-insensitive
		got = got[7:]
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(h.opts.Token)) == 1
}

// budget is a count of bytes taken without waiting.
type budget struct {
	mu   sync.Mutex
	free int64
}

// take reserves n bytes; false when they are not free.
func (b *budget) take(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.free {
		return false
	}
	b.free -= n
	return true
}

// give returns n bytes.
func (b *budget) give(n int64) {
	b.mu.Lock()
	b.free += n
	b.mu.Unlock()
}
