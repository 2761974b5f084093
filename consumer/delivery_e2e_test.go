package consumer_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// Every DefectDojo event type, and an unknown future one, reaches each matching
// endpoint exactly once, in publish order, with the headers of DESIGN.md section
// 4 and the body byte for byte; the success path of an active endpoint writes
// nothing to KV.
func TestDeliversEveryEventTypeWithHeadersAndBody(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r1 := h.newReceiver(http.StatusOK)
	r2 := h.newReceiver(http.StatusNoContent)
	e1 := h.addEndpoint("one", r1.URL(), withHeader("Authorization", "Token s3cr3t-one"))
	e2 := h.addEndpoint("two", r2.URL(), withHeader("X-Api-Key", "key-two"))
	kvBefore := kvLastSeq(t, h)

	type sent struct {
		event, id, instance, userAgent string
		body                           []byte
	}
	var want []sent
	events := []string{"product_type_added", "product_added", "engagement_added", "test_added",
		"scan_added", "scan_added_empty", "ping", "sla_breach"}
	for i, ev := range events {
		s := sent{event: ev, instance: testInstance, userAgent: testUserAgent, body: eventBody(ev, i)}
		hdr := map[string]string{}
		if i%2 == 0 { // half with a publisher id, half with the derived one
			hdr[nats.MsgIdHdr] = fmt.Sprintf("dd-%s-%d", ev, i)
		}
		switch ev {
		case "engagement_added":
			hdr["X-DefectDojo-Instance"] = "https://other-dojo.example.org"
			s.instance = "https://other-dojo.example.org"
		case "test_added":
			hdr["User-Agent"] = "DefectDojo-2.46.1"
			s.userAgent = "DefectDojo-2.46.1"
		case "sla_breach":
			hdr["X-DefectDojo-Instance"] = "https://third.example.org"
			hdr["User-Agent"] = "DefectDojo-3.0.0"
			s.instance, s.userAgent = "https://third.example.org", "DefectDojo-3.0.0"
		}
		ack := h.publish(ev, s.body, hdr)
		s.id = hdr[nats.MsgIdHdr]
		if s.id == "" {
			s.id = derivedID(ack.Sequence)
		}
		want = append(want, s)
	}
	// A last event both get: everything before it was decided (MaxInFlight 1, stream order).
	h.publish("ping", []byte(`{"sentinel":true}`), map[string]string{nats.MsgIdHdr: "sentinel"})

	for _, c := range []struct {
		r                 *receiver
		id, header, value string
	}{{r1, "one", "Authorization", "Token s3cr3t-one"}, {r2, "two", "X-Api-Key", "key-two"}} {
		c.r.waitID(t, "sentinel")
		got := c.r.requests()
		if len(got) != len(want)+1 {
			t.Fatalf("endpoint %s got %d requests, want %d: %q", c.id, len(got), len(want)+1, ids(got))
		}
		for i, w := range want {
			q := got[i]
			if q.Method != http.MethodPost || q.Path != "/hook" {
				t.Errorf("%s request %d: %s %s, want POST /hook", c.id, i, q.Method, q.Path)
			}
			if !bytes.Equal(q.Body, w.body) {
				t.Errorf("%s %s: body %q, want byte for byte %q", c.id, w.event, q.Body, w.body)
			}
			wantHeaders := map[string]string{
				"User-Agent":            w.userAgent,
				"X-DefectDojo-Event":    w.event,
				"X-DefectDojo-Instance": w.instance,
				"Accept":                "application/json",
				"Content-Type":          "application/json",
				"Webhook-Id":            w.id,
				c.header:                c.value,
			}
			for k, v := range wantHeaders {
				if got := q.Header.Values(k); len(got) != 1 || got[0] != v {
					t.Errorf("%s %s: header %s = %q, want %q", c.id, w.event, k, got, v)
				}
			}
			for _, k := range []string{"Nats-Msg-Id", "X-Defectdojo-Recipient"} {
				if v := q.Header.Get(k); v != "" {
					t.Errorf("%s %s: NATS header %s leaked into the request: %q", c.id, w.event, k, v)
				}
			}
			if q.Status < 200 || q.Status > 299 {
				t.Errorf("%s %s: answered %d", c.id, w.event, q.Status)
			}
		}
		// The server agrees: nothing pending, nothing redelivered.
		info := h.waitConsumer(c.id, func(i *jetstream.ConsumerInfo) bool { return i.NumAckPending == 0 && i.NumPending == 0 })
		if info.NumRedelivered != 0 || info.Paused {
			t.Errorf("%s consumer: redelivered %d, paused %v", c.id, info.NumRedelivered, info.Paused)
		}
	}
	if got := h.record("one"); got.Revision != e1.Revision || got.Record.Status != statekv.StatusActive {
		t.Errorf("endpoint one: revision %d status %s after successes, want unchanged %d active", got.Revision, got.Record.Status, e1.Revision)
	}
	if got := h.record("two"); got.Revision != e2.Revision {
		t.Errorf("endpoint two: revision %d after successes, want unchanged %d", got.Revision, e2.Revision)
	}
	if after := kvLastSeq(t, h); after != kvBefore {
		t.Errorf("KV bucket written on the success path: last sequence %d, was %d", after, kvBefore)
	}
}

// kvLastSeq is the last sequence of the endpoint bucket's stream (any write moves it).
func kvLastSeq(t testing.TB, h *harness) uint64 {
	t.Helper()
	s, err := h.js.Stream(context.Background(), "KV_"+statekv.DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// With MaxInFlight 4 an endpoint gets up to 4 requests at once, never more, and all events arrive.
func TestMaxInFlightBoundsConcurrentRequests(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *options) { o.MaxInFlight = 4 })
	r := h.newReceiver(http.StatusOK)
	r.closeGate() // hold the first requests until 4 are in progress
	h.addEndpoint("par", r.URL())
	const n = 100
	want := map[string]bool{}
	for i := range n {
		id := fmt.Sprintf("ev-%03d", i)
		want[id] = true
		h.publish("scan_added", eventBody("scan_added", i), map[string]string{nats.MsgIdHdr: id})
	}
	waitFor(t, waitTimeout, func() bool { now, _ := r.concurrency(); return now == 4 })
	// The server hands out the window (max(PipelineWindow, 4N)) ahead; 4 of them are sent.
	h.waitConsumer("par", func(i *jetstream.ConsumerInfo) bool { return i.NumAckPending == max(consumer.PipelineWindow, 4*4) })
	if now, most := r.concurrency(); now != 4 || most != 4 {
		t.Errorf("%d requests in progress (at most %d) while the window is fetched, want 4", now, most)
	}
	r.openGate()
	r.waitAnswered(t, n)
	h.waitConsumer("par", func(i *jetstream.ConsumerInfo) bool { return i.NumPending == 0 && i.NumAckPending == 0 })
	got := r.answered()
	seen := map[string]int{}
	for _, q := range got {
		seen[q.ID]++
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("event %s delivered %d times, want once", id, seen[id])
		}
	}
	if len(got) != n {
		t.Errorf("%d requests answered, want %d", len(got), n)
	}
	if _, most := r.concurrency(); most != 4 {
		t.Errorf("at most %d requests at once, want exactly 4 (MaxInFlight)", most)
	}
}

// An endpoint that hangs until its timeout does not delay another one: the
// healthy endpoint gets every event while the hanging one is still in its first request.
func TestHangingEndpointDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	// The hanging request is cancelled at the end of the test; a long timeout
	// keeps it in progress however slow the machine is.
	h := newHarness(t, func(o *options) { o.Timeout = 5 * time.Second })
	slow := h.newReceiver(statusHang)
	fast := h.newReceiver(http.StatusOK)
	h.addEndpoint("slow", slow.URL())
	h.addEndpoint("fast", fast.URL())
	const n = 30
	h.publish("scan_added", eventBody("scan_added", 0), nil)
	slow.waitCount(t, 1) // the hanging endpoint is in its first request from now on
	for i := 1; i < n; i++ {
		h.publish("scan_added", eventBody("scan_added", i), nil)
	}
	got := fast.waitAnswered(t, n)
	last := got[n-1]
	hung := slow.requests()
	if len(hung) != 1 {
		t.Fatalf("the hanging endpoint got %d requests, want 1 (in publish order, one at a time)", len(hung))
	}
	if d := hung[0].Done; !d.IsZero() && !last.At.Before(d) {
		t.Errorf("the healthy endpoint got its last event at %s, after the hanging request ended at %s", last.At, d)
	}
	for i, q := range got {
		if want := eventBody("scan_added", i); !bytes.Equal(q.Body, want) {
			t.Fatalf("healthy endpoint request %d: body %q, want %q (publish order)", i, q.Body, want)
		}
	}
	if e := h.record("fast"); e.Record.Status != statekv.StatusActive {
		t.Errorf("healthy endpoint is %s", e.Record.Status)
	}
}

// BenchmarkDeliver publishes b.N events of 1 KB to one active endpoint whose
// receiver answers 204 and waits until all arrived.
func BenchmarkDeliver(b *testing.B) {
	for _, inflight := range []int{1, 16} {
		b.Run(fmt.Sprintf("inflight=%d", inflight), func(b *testing.B) {
			h := newHarness(b, func(o *options) { o.MaxInFlight = inflight; o.LogLevel = zerolog.WarnLevel })
			r := h.newReceiver(http.StatusNoContent)
			h.addEndpoint("bench", r.URL())
			h.waitConsumer("bench", func(*jetstream.ConsumerInfo) bool { return true })
			body := bytes.Repeat([]byte("x"), 1024)
			copy(body, `{"description":"`)
			body[len(body)-2], body[len(body)-1] = '"', '}'
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				if _, err := h.js.PublishAsync(names.EventSubject("scan_added"), body); err != nil {
					b.Fatal(err)
				}
			}
			select {
			case <-h.js.PublishAsyncComplete():
			case <-time.After(time.Minute):
				b.Fatal("publish did not complete")
			}
			waitFor(b, 5*time.Minute, func() bool { return r.count() >= b.N })
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "events/s")
			if got := r.count(); got != b.N {
				b.Errorf("%d requests for %d events", got, b.N)
			}
			if !slices.IsSortedFunc(r.requests(), func(a, c received) int { return a.N - c.N }) {
				b.Error("requests out of order")
			}
		})
	}
}
