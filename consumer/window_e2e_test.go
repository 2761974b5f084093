package consumer_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/internal/natstest"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// windowEvents is how many events the window tests publish: less than the
// window, so that all of them are handed to the sidecar at once.
const windowEvents = 30

// fillWindow holds the receiver's requests, publishes windowEvents events
// numbered 0..windowEvents-1 and waits until the server handed all of them
// to the endpoint's consumer (the window), the first one being delivered.
func fillWindow(t *testing.T, h *harness, r *receiver, id string) {
	t.Helper()
	r.closeGate()
	for i := range windowEvents {
		h.publish("scan_added", eventBody("scan_added", i), nil)
	}
	r.waitCount(t, 1)
	h.waitConsumer(id, func(i *jetstream.ConsumerInfo) bool { return i.NumAckPending == windowEvents })
}

// numbers is the event number of each request, in arrival order.
func numbers(t *testing.T, rs []received) []int {
	t.Helper()
	out := make([]int, len(rs))
	for i, q := range rs {
		out[i] = eventNumber(t, q.Body)
	}
	return out
}

// upTo returns 0..n-1 with the numbers of again inserted again after themselves.
func upTo(n int, again ...int) []int {
	var out []int
	for i := range n {
		out = append(out, i)
		if slices.Contains(again, i) {
			out = append(out, i)
		}
	}
	return out
}

func checkOneAtATime(t *testing.T, r *receiver) {
	t.Helper()
	if _, most := r.concurrency(); most != 1 {
		t.Errorf("%d requests at once to the endpoint, want one at a time", most)
	}
}

// The ordered consumer gets a window and is pinned to one sidecar.
func TestOrderedConsumerHasAWindowAndIsPinned(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.newReceiver(http.StatusOK)
	h.addEndpoint("win", r.URL())
	info := h.waitConsumer("win", func(*jetstream.ConsumerInfo) bool { return true })
	c := info.Config
	if c.MaxAckPending != consumer.PipelineWindow || c.PriorityPolicy != jetstream.PriorityPolicyPinned ||
		!slices.Equal(c.PriorityGroups, []string{"deliver"}) || c.PinnedTTL != consumer.PinnedTTL {
		t.Errorf("consumer: max ack pending %d, priority %v %v, pinned TTL %s", c.MaxAckPending, c.PriorityPolicy, c.PriorityGroups, c.PinnedTTL)
	}
}

// A temporary failure in the middle of a window: nothing after the failed event
// is sent before it, and delivery resumes at it, in order.
func TestOrderedWindowTemporaryFailureMidWindow(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *options) { o.Timeout = 300 * ms })
	r := h.newReceiver(http.StatusOK)
	h.addEndpoint("mid", r.URL())
	h.waitConsumer("mid", func(*jetstream.ConsumerInfo) bool { return true })
	hung := false
	r.hangWhen(func(q received) bool { // the first copy of event 10 times out
		if !hung && eventNumber(t, q.Body) == 10 {
			hung = true
			return true
		}
		return false
	})
	fillWindow(t, h, r, "mid")
	r.openGate()
	r.waitAnswered(t, windowEvents)
	if got, want := numbers(t, r.requests()), upTo(windowEvents, 10); !slices.Equal(got, want) {
		t.Errorf("requests %v, want %v: in order, event 10 again after its timeout, nothing after it before", got, want)
	}
	if hist := h.statusHistory("mid"); !slices.Contains(hist, statekv.StatusInactiveTmp) {
		t.Errorf("status history %v: want the failure written", hist)
	}
	checkOneAtATime(t, r)
}

// A permanent failure in the middle of a window: the event is dead-lettered,
// the events behind it wait for the activation and are then delivered in order.
func TestOrderedWindowPermanentFailureMidWindow(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.newReceiver(http.StatusOK)
	h.addEndpoint("perm", r.URL())
	h.waitConsumer("perm", func(*jetstream.ConsumerInfo) bool { return true })
	fillWindow(t, h, r, "perm")
	r.setStatusFor(10, http.StatusBadRequest) // the others 200
	r.openGate()
	h.waitStatus("perm", statekv.StatusInactivePermanent)
	waitFor(t, waitTimeout, func() bool { return len(h.deadLetters("perm")) > 0 })
	if dl := h.deadLetters("perm"); len(dl) != 1 || eventNumber(t, dl[0].Data) != 10 {
		t.Fatalf("dead letters %d, want event 10 only", len(dl))
	}
	if got := numbers(t, r.requests()); !slices.Equal(got, upTo(11)) {
		t.Errorf("requests %v before the activation, want 0..10: nothing after the failed event", got)
	}
	if _, _, err := h.store.Apply(context.Background(), "perm", statekv.Event{Input: statekv.UserActivate}, time.Now, h.opts.Policy); err != nil {
		t.Fatal(err)
	}
	r.waitAnswered(t, windowEvents-1)
	want := upTo(windowEvents)
	if got := numbers(t, r.requests()); !slices.Equal(got, want) {
		t.Errorf("requests %v, want %v", got, want)
	}
	checkOneAtATime(t, r)
}

// A restart in the middle of a window (the first request in flight is cut by
// the shutdown grace): the new sidecar starts at that event, in order, without
// waiting for the pin to expire (the stopped sidecar unpins).
func TestOrderedWindowRestartMidWindow(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.newReceiver(http.StatusOK)
	h.addEndpoint("rst", r.URL())
	h.waitConsumer("rst", func(*jetstream.ConsumerInfo) bool { return true })
	fillWindow(t, h, r, "rst")
	start := time.Now()
	h.restart()
	r.waitCount(t, 2) // event 0 again, from the new sidecar
	r.openGate()
	r.waitAnswered(t, windowEvents)
	if took := time.Since(start); took > consumer.PinnedTTL/2 {
		t.Errorf("the restarted sidecar took %s to deliver: the pin was not released", took)
	}
	if got, want := numbers(t, r.requests()), upTo(windowEvents, 0); !slices.Equal(got, want) {
		t.Errorf("requests %v, want %v", got, want)
	}
	checkOneAtATime(t, r)
}

// Two replicas: the one holding the window stops in the middle of it; the
// other takes over at the first event not delivered, in order, one at a time.
func TestOrderedWindowReplicaTakesOverMidWindow(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.newReceiver(http.StatusOK)
	h.addEndpoint("pair", r.URL())
	h.waitConsumer("pair", func(*jetstream.ConsumerInfo) bool { return true })
	fillWindow(t, h, r, "pair") // pinned to the first sidecar, the only one pulling
	h.addReplica()
	h.stopSidecar()
	r.waitCount(t, 2)
	r.openGate()
	r.waitAnswered(t, windowEvents)
	if got, want := numbers(t, r.requests()), upTo(windowEvents, 0); !slices.Equal(got, want) {
		t.Errorf("requests %v, want %v", got, want)
	}
	checkOneAtATime(t, r)
	// And it goes on delivering in order.
	for i := windowEvents; i < 2*windowEvents; i++ {
		h.publish("scan_added", eventBody("scan_added", i), nil)
	}
	r.waitAnswered(t, 2*windowEvents)
	if got, want := numbers(t, r.answered()), upTo(2*windowEvents); !slices.Equal(got, want) {
		t.Errorf("answered %v, want %v", got, want)
	}
}

// A consumer created by an earlier version (MaxAckPending 1, no priority group)
// is updated in place: it keeps its position (nothing delivered again).
func TestOldConsumerUpdatedInPlace(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.newReceiver(http.StatusOK)
	h.addEndpoint("old", r.URL())
	info := h.waitConsumer("old", func(*jetstream.ConsumerInfo) bool { return true })
	for i := range 5 {
		h.publish("scan_added", eventBody("scan_added", i), nil)
	}
	r.waitAnswered(t, 5)
	h.waitConsumer("old", func(i *jetstream.ConsumerInfo) bool { return i.NumAckPending == 0 && i.AckFloor.Stream > 0 })
	h.stopSidecar()
	old := info.Config
	old.MaxAckPending, old.PriorityPolicy, old.PriorityGroups, old.PinnedTTL = 1, jetstream.PriorityPolicyNone, nil, 0
	old.PauseUntil = nil
	if _, err := h.js.UpdateConsumer(context.Background(), names.Events, old); err != nil {
		t.Fatalf("back to the old config: %v", err)
	}
	h.resumeSidecar()
	h.waitConsumer("old", func(i *jetstream.ConsumerInfo) bool {
		return i.Config.MaxAckPending == consumer.PipelineWindow && i.Config.PriorityPolicy == jetstream.PriorityPolicyPinned
	})
	for i := 5; i < 10; i++ {
		h.publish("scan_added", eventBody("scan_added", i), nil)
	}
	r.waitAnswered(t, 10)
	if got := numbers(t, r.requests()); !slices.Equal(got, upTo(10)) {
		t.Errorf("requests %v, want 0..9 once each", got)
	}
}

// What the window relies on in nats-server: NAKed events come back in the
// order NAKed (not by sequence), before any new event; NAKed with the same
// delay, in the order NAKed too.
func TestServerRedeliversInNakOrder(t *testing.T) {
	t.Parallel()
	_, _, js := natstest.JetStream(t)
	ctx := context.Background()
	s, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "NAKS", Subjects: []string{"naks.>"}})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 20})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if _, err := js.Publish(ctx, fmt.Sprintf("naks.%d", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	fetch := func(n int) (msgs []jetstream.Msg, seqs []uint64) {
		t.Helper()
		b, err := c.Fetch(n, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range b.Messages() {
			md, _ := m.Metadata()
			msgs, seqs = append(msgs, m), append(seqs, md.Sequence.Stream)
		}
		return msgs, seqs
	}
	msgs, _ := fetch(10) // all pending: nothing new can come in between
	for _, i := range []int{2, 0, 1} {
		_ = msgs[i].Nak() // 3, 1, 2
	}
	if _, got := fetch(3); !slices.Equal(got, []uint64{3, 1, 2}) {
		t.Errorf("after NAKs of 3, 1, 2: %v, want 3 1 2 (the order NAKed)", got)
	}
	for _, m := range msgs[3:] {
		_ = m.NakWithDelay(200 * ms) // 4..10
	}
	if _, got := fetch(7); !slices.Equal(got, []uint64{4, 5, 6, 7, 8, 9, 10}) {
		t.Errorf("after NAKs with delay of 4..10: %v, want 4..10", got)
	}
}

// Many endpoints at start-up are reconciled in parallel (ReconcileParallelism
// at once): each gets its consumer once and its events, and a change of one
// of them right after start is applied after its creation.
func TestStartupReconcilesManyEndpoints(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.stopSidecar()
	r := h.newReceiver(http.StatusOK)
	const n = 3 * consumer.ReconcileParallelism
	for i := range n {
		h.addEndpoint(fmt.Sprintf("many%02d", i), r.URL())
	}
	h.resumeSidecar()
	for i := range n {
		h.waitConsumer(fmt.Sprintf("many%02d", i), func(*jetstream.ConsumerInfo) bool { return true })
	}
	// A change right after start: the last endpoint deactivated.
	if _, _, err := h.store.Apply(context.Background(), fmt.Sprintf("many%02d", n-1), statekv.Event{Input: statekv.UserDeactivate, Note: "test"}, time.Now, h.opts.Policy); err != nil {
		t.Fatal(err)
	}
	h.waitConsumer(fmt.Sprintf("many%02d", n-1), func(i *jetstream.ConsumerInfo) bool { return i.Paused })
	ack := h.publish("scan_added", eventBody("scan_added", 0), nil)
	r.waitAnswered(t, n-1)
	// The deactivation's operational event is in the stream before the publish.
	h.waitConsumer(fmt.Sprintf("many%02d", n-2), func(i *jetstream.ConsumerInfo) bool {
		return i.NumAckPending == 0 && i.AckFloor.Stream == ack.Sequence
	})
	if got := r.count(); got != n-1 {
		t.Errorf("%d requests, want %d (one per active endpoint)", got, n-1)
	}
}
