package consumer_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
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
	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/delivery"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// verifyBySpec checks a Standard Webhooks v1 signature as the specification
// describes it, independently of delivery.Sign/Verify.
func verifyBySpec(secret string, h http.Header, body []byte) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(h.Get("webhook-id") + "." + h.Get("webhook-timestamp") + "."))
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return true
		}
	}
	return false
}

// TestSignedOnEveryAttemptAndReplay: each attempt, retry and replay carries a
// fresh timestamp and a valid signature; no secret reaches the logs or the
// dead-letter headers.
func TestSignedOnEveryAttemptAndReplay(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.newReceiver(500)
	secret, err := delivery.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	h.addEndpoint("signed", r.URL(), withHeader("Authorization", "Token hdr-s3cret-value"), func(rec *statekv.Record) { rec.Secret = secret })
	h.publish("scan_added", eventBody("scan_added", 1), nil)
	r.waitCount(t, 1)
	h.waitStatus("signed", statekv.StatusInactiveTmp)
	r.answer(400) // the retry fails permanently: dead letter
	h.waitStatus("signed", statekv.StatusInactivePermanent)
	waitFor(t, waitTimeout, func() bool { return len(h.deadLetters("signed")) == 1 })
	r.answer(204)
	if _, _, err := h.store.Apply(context.Background(), "signed", statekv.Event{Input: statekv.UserActivate}, time.Now, h.opts.Policy); err != nil {
		t.Fatal(err)
	}
	if n, err := consumer.ReplayDeadLetters(context.Background(), h.js, names, "signed"); err != nil || n != 1 {
		t.Fatalf("replay: %d %v", n, err)
	}
	r.waitAnswered(t, 1) // 500, 400, then the replay answered 204
	got := r.requests()
	if len(got) != 3 {
		t.Fatalf("%d requests, want 3 (500, 400, replay)", len(got))
	}
	for i, g := range got {
		if !verifyBySpec(secret, g.Header, g.Body) {
			t.Fatalf("attempt %d: signature %q does not verify", i+1, g.Header.Get("webhook-signature"))
		}
		ts, err := strconv.ParseInt(g.Header.Get("webhook-timestamp"), 10, 64)
		if err != nil || time.Since(time.Unix(ts, 0)) > time.Minute {
			t.Fatalf("attempt %d: timestamp %q", i+1, g.Header.Get("webhook-timestamp"))
		}
		if g.ID != got[0].ID {
			t.Fatalf("attempt %d: webhook-id %q, first was %q", i+1, g.ID, got[0].ID)
		}
	}
	for _, secretText := range []string{secret, strings.TrimPrefix(secret, "whsec_"), "hdr-s3cret-value"} {
		if strings.Contains(h.logs.String(), secretText) {
			t.Fatalf("a secret is in the logs")
		}
	}
	for _, dl := range h.deadLetters("signed") {
		for k, v := range dl.Header {
			if strings.Contains(strings.Join(v, " "), "s3cret") || strings.Contains(strings.Join(v, " "), strings.TrimPrefix(secret, "whsec_")) {
				t.Fatalf("dead-letter header %s holds a secret", k)
			}
		}
	}
}

// retryAfterReceiver answers 429 with a Retry-After until told otherwise.
type retryAfterReceiver struct {
	srv   *httptest.Server
	mu    sync.Mutex
	value string
	n     int
	ok    bool
}

func newRetryAfterReceiver(t *testing.T, value string) *retryAfterReceiver {
	rr := &retryAfterReceiver{value: value}
	rr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rr.mu.Lock()
		defer rr.mu.Unlock()
		rr.n++
		if rr.ok {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Retry-After", rr.value)
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	t.Cleanup(rr.srv.Close)
	return rr
}

func TestRetryAfterHoldsTheEndpoint(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		value   func() string
		wantMin time.Duration
		wantMax time.Duration
		capped  bool
	}{
		{"seconds", func() string { return "2" }, 1500 * time.Millisecond, 2500 * time.Millisecond, false},
		{"http date", func() string { return time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat) }, 1500 * time.Millisecond, 3500 * time.Millisecond, false},
		{"capped", func() string { return "3600" }, 4 * time.Second, 5*time.Second + 500*time.Millisecond, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, func(o *options) {
				o.Policy = statekv.Policy{ReactivateAfter: 200 * ms, RecoverAfter: 400 * ms, GiveUpAfter: time.Minute, MaxRetryAfter: 5 * time.Second}
			})
			rr := newRetryAfterReceiver(t, c.value())
			h.addEndpoint("busy", rr.srv.URL)
			start := time.Now()
			h.publish("scan_added", eventBody("scan_added", 1), nil)
			e := h.waitStatus("busy", statekv.StatusInactiveTmp)
			hold := e.Record.RetryAfter.Sub(start)
			if hold < c.wantMin || hold > c.wantMax {
				t.Fatalf("retry_after %v is %s after the publish, want %s to %s", e.Record.RetryAfter, hold, c.wantMin, c.wantMax)
			}
			if !strings.Contains(e.Record.Note, "Response status code: 429 (Retry-After: held until") || strings.Contains(e.Record.Note, "capped") != c.capped {
				t.Fatalf("note %q", e.Record.Note)
			}
			// The pause follows the transition's write: wait for it, then check its end.
			info := h.waitConsumer("busy", func(i *jetstream.ConsumerInfo) bool { return i.Paused })
			if !info.Paused || info.Config.PauseUntil == nil || !info.Config.PauseUntil.Equal(e.Record.RetryAfter) {
				t.Fatalf("consumer pause %v until %v, want until %v", info.Paused, info.Config.PauseUntil, e.Record.RetryAfter)
			}
			if c.capped {
				return // waiting 5 s adds nothing the other cases do not show
			}
			rr.mu.Lock()
			rr.ok = true
			rr.mu.Unlock()
			// Not reactivated by reactivate-after (200 ms): only at the hold's end.
			h.waitStatus("busy", statekv.StatusActive)
			hist, err := h.kv.History(context.Background(), "busy")
			if err != nil {
				t.Fatal(err)
			}
			for _, he := range hist {
				rec, err := statekv.ParseRecord("busy", he.Value())
				if err == nil && rec.Status == statekv.StatusActiveTmp && he.Created().Before(e.Record.RetryAfter) {
					t.Fatalf("active_tmp written at %v, before the Retry-After hold ended at %v", he.Created(), e.Record.RetryAfter)
				}
			}
		})
	}
}

// A publisher that sets Dojo-Webhooks-Id on an events subject does not choose
// the webhook-id: the event goes out under its own (derived) id, so a receiver
// deduplicating on webhook-id cannot be made to drop a real event. On the
// sidecar's replay subject the header is honoured (dead letters and replays
// keep the original id).
func TestWebhookIDHeaderHonouredOnlyOnReplays(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.newReceiver(http.StatusOK)
	h.addEndpoint("spoof", r.URL())
	ack := h.publish("scan_added", []byte(`{"n":1}`), map[string]string{contract.HeaderWebhookID: "victim-id"})
	r.waitID(t, derivedID(ack.Sequence))
	for _, q := range r.requests() {
		if q.ID == "victim-id" {
			t.Fatalf("a publisher chose the webhook-id: %q", q.ID)
		}
	}
	msg := &nats.Msg{Subject: names.ReplaySubject("spoof", "scan_added"), Data: []byte(`{"n":2}`), Header: nats.Header{}}
	msg.Header.Set(contract.HeaderWebhookID, "original-id")
	if _, err := h.js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	r.waitID(t, "original-id")
}
