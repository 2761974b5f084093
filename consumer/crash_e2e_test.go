package consumer_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// eventNumber reads the "n" field of an eventBody.
func eventNumber(t testing.TB, body []byte) int {
	t.Helper()
	var v struct{ N int }
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	return v.N
}

// publishNumbered publishes n scan_added events numbered 0..n-1, every other
// one with a publisher id, and returns the webhook-id each must arrive with.
func publishNumbered(h *harness, n int) []string {
	want := make([]string, n)
	for i := range n {
		hdr := map[string]string{}
		if i%2 == 1 {
			hdr[nats.MsgIdHdr] = fmt.Sprintf("pub-%d", i)
		}
		ack := h.publish("scan_added", eventBody("scan_added", i), hdr)
		want[i] = hdr[nats.MsgIdHdr]
		if want[i] == "" {
			want[i] = derivedID(ack.Sequence)
		}
	}
	return want
}

// checkAtLeastOnce checks that every event was answered 2xx at least once and
// that every copy of an event carries its webhook-id; it returns the number of
// events the receiver got more than once (answered or not).
func checkAtLeastOnce(t testing.TB, r *receiver, want []string) (duplicated int) {
	t.Helper()
	answered := make([]int, len(want))
	copies := make([]int, len(want))
	for _, q := range r.requests() {
		n := eventNumber(t, q.Body)
		if q.ID != want[n] {
			t.Errorf("event %d arrived with webhook-id %q, want %q on every copy", n, q.ID, want[n])
		}
		copies[n]++
		if q.Status >= 200 && q.Status < 300 {
			answered[n]++
		}
	}
	for n := range want {
		if answered[n] == 0 {
			t.Errorf("event %d never delivered", n)
		}
		if copies[n] > 1 {
			duplicated++
		}
	}
	return duplicated
}

// everyNumberAnswered reports whether each of the n events was answered 2xx.
func everyNumberAnswered(t testing.TB, r *receiver, n int) bool {
	seen := make(map[int]bool, n)
	for _, q := range r.answered() {
		seen[eventNumber(t, q.Body)] = true
	}
	return len(seen) == n
}

// A sidecar stopped in the middle of 200 deliveries (requests in flight that the
// receiver already got) and replaced by a new one on a new connection: every
// event arrives at least once, and each duplicate has the same webhook-id.
//
// The stop is the manager's shutdown with a 1 ms grace: the in-flight requests
// are cancelled and their events NAKed, then the connection is closed without
// draining. A hard kill (no NAK) is TestHardKillRedeliversAfterAckWait.
func TestRestartMidDeliveryIsAtLeastOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *options) { o.MaxInFlight = 4; o.ShutdownGrace = ms })
	r := h.newReceiver(http.StatusOK)
	h.addEndpoint("crash", r.URL())
	// After 50 requests the receiver keeps the next ones without answering: they
	// are in flight (received, not acknowledged) when the sidecar goes away.
	r.hangWhen(func(q received) bool { return q.N > 50 })
	const n = 200
	want := publishNumbered(h, n)
	waitFor(t, waitTimeout, func() bool { now, _ := r.concurrency(); return r.count() > 50 && now > 0 })

	h.restart()
	r.hangWhen(nil)
	waitFor(t, waitTimeout, func() bool { return everyNumberAnswered(t, r, n) })
	if dup := checkAtLeastOnce(t, r, want); dup == 0 {
		t.Error("no event was delivered twice: the requests in flight at the stop were not redelivered")
	}
}

// A sidecar whose connection drops in the middle of deliveries without a word
// (a killed process) and a new one: the events in flight are redelivered once
// the consumer's AckWait (HTTP timeout + 30 s) expires. Slow: set
// DOJO_WEBHOOKS_SLOW_TESTS=1 to run it.
func TestHardKillRedeliversAfterAckWait(t *testing.T) {
	if os.Getenv("DOJO_WEBHOOKS_SLOW_TESTS") == "" {
		t.Skip("waits for AckWait (HTTP timeout + 30 s); set DOJO_WEBHOOKS_SLOW_TESTS=1 to run")
	}
	t.Parallel()
	h := newHarness(t, func(o *options) { o.MaxInFlight = 4; o.Timeout = 300 * ms; o.ShutdownGrace = ms })
	r := h.newReceiver(http.StatusOK)
	h.addEndpoint("killed", r.URL())
	r.hangWhen(func(q received) bool { return q.N > 50 })
	const n = 200
	want := publishNumbered(h, n)
	waitFor(t, waitTimeout, func() bool { now, _ := r.concurrency(); return r.count() > 50 && now > 0 })

	h.mu.Lock()
	sc := h.sc
	h.mu.Unlock()
	sc.nc.Close() // the server sees the client vanish: nothing is NAKed
	h.restart()
	r.hangWhen(nil)
	waitFor(t, h.opts.Timeout+30*time.Second+waitTimeout, func() bool { return everyNumberAnswered(t, r, n) })
	if dup := checkAtLeastOnce(t, r, want); dup == 0 {
		t.Error("no event was delivered twice")
	}
}
