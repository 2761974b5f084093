package consumer_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// A record broken by hand holds that endpoint's deliveries (its consumer is
// paused) and nothing else; fixing it delivers the backlog.
func TestMalformedRecordHoldsOnlyThatEndpoint(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	bad := h.newReceiver(http.StatusOK)
	good := h.newReceiver(http.StatusOK)
	created := h.addEndpoint("bad", bad.URL())
	h.addEndpoint("good", good.URL())
	h.publish("ping", eventBody("ping", 0), map[string]string{nats.MsgIdHdr: "e0"})
	bad.waitID(t, "e0")
	good.waitID(t, "e0")

	if _, err := h.kv.Put(context.Background(), "bad", []byte(`{"name": "Endpoint bad", "url": `)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.store.Get(context.Background(), "bad"); !errors.Is(err, statekv.ErrInvalidRecord) {
		t.Fatalf("store.Get of the broken record: %v", err)
	}
	info := h.waitConsumer("bad", func(i *jetstream.ConsumerInfo) bool { return i.Paused })
	if info.Config.PauseUntil == nil || info.Config.PauseUntil.Year() < 2900 {
		t.Errorf("held consumer paused until %v, want until resumed", info.Config.PauseUntil)
	}
	for _, id := range []string{"e1", "e2", "e3"} {
		h.publish("scan_added", eventBody("scan_added", len(id)), map[string]string{nats.MsgIdHdr: id})
	}
	good.waitID(t, "e3")
	if got := ids(good.requests()); !slices.Equal(got, []string{"e0", "e1", "e2", "e3"}) {
		t.Errorf("the other endpoint got %q", got)
	}
	if e := h.record("good"); e.Record.Status != statekv.StatusActive {
		t.Errorf("the other endpoint is %s", e.Record.Status)
	}
	h.waitConsumer("bad", func(i *jetstream.ConsumerInfo) bool { return i.Paused && i.NumPending == 3 })
	if n := bad.count(); n != 1 {
		t.Errorf("%d requests to the endpoint with a broken record, want only the one before", n)
	}
	// Still held by a sidecar started while the record is broken.
	h.restart()
	h.publish("scan_added", eventBody("scan_added", 4), map[string]string{nats.MsgIdHdr: "e4"})
	good.waitID(t, "e4")
	h.waitConsumer("bad", func(i *jetstream.ConsumerInfo) bool { return i.NumPending == 4 })
	if n := bad.count(); n != 1 {
		t.Errorf("%d requests to the endpoint with a broken record after a restart", n)
	}

	// Fixed by hand, as broken.
	fixed, err := json.Marshal(created.Record)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.kv.Put(context.Background(), "bad", fixed); err != nil {
		t.Fatal(err)
	}
	bad.waitID(t, "e4")
	if got := ids(bad.requests()); !slices.Equal(got, []string{"e0", "e1", "e2", "e3", "e4"}) {
		t.Errorf("after the fix the endpoint got %q, want its backlog in order", got)
	}
	info = h.waitConsumer("bad", func(i *jetstream.ConsumerInfo) bool { return i.NumPending == 0 && i.NumAckPending == 0 })
	if info.Paused {
		t.Error("consumer still paused after the record was fixed")
	}
}

// A skip (deliver_from = now) on an endpoint that is down drops its backlog:
// after activation only later events are delivered.
func TestSkipDropsBacklog(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.newReceiver(http.StatusOK)
	h.addEndpoint("skip", r.URL())
	deactivate(t, h, "skip", "deactivated by alice")
	h.waitConsumer("skip", func(i *jetstream.ConsumerInfo) bool { return i.Paused })
	var last *jetstream.PubAck
	for _, id := range []string{"old-1", "old-2", "old-3"} {
		last = h.publish("scan_added", eventBody("scan_added", len(id)), map[string]string{nats.MsgIdHdr: id})
	}
	h.waitConsumer("skip", func(i *jetstream.ConsumerInfo) bool { return i.NumPending == 3 })
	h.waitBacklog("skip", 3)

	from := waitClockPast(t, h.streamMsg(last.Sequence).Time)
	if _, _, err := h.store.Update(context.Background(), "skip", func(rec statekv.Record) (statekv.Record, bool, error) {
		rec.DeliverFrom = from
		return rec, true, nil
	}); err != nil {
		t.Fatal(err)
	}
	info := h.waitConsumer("skip", func(i *jetstream.ConsumerInfo) bool {
		return i.Config.OptStartTime != nil && i.Config.OptStartTime.Equal(from)
	})
	if !info.Paused || info.NumPending != 0 {
		t.Errorf("after the skip: paused %v, pending %d; want still paused with nothing waiting", info.Paused, info.NumPending)
	}
	activate(t, h, "skip")
	h.publish("scan_added", eventBody("scan_added", 9), map[string]string{nats.MsgIdHdr: "new-1"})
	r.waitID(t, "new-1")
	if got := ids(r.requests()); !slices.Equal(got, []string{"new-1"}) {
		t.Errorf("after the skip the endpoint got %q, want only the new event", got)
	}
}

// Changing the filter of an endpoint that is down keeps its consumer paused
// (`nats consumer info` keeps showing the pause) and its backlog held.
func TestFilterChangeKeepsPausedConsumerPaused(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.newReceiver(http.StatusOK)
	h.addEndpoint("down", r.URL())
	deactivate(t, h, "down", "deactivated by test")
	h.waitConsumer("down", func(i *jetstream.ConsumerInfo) bool { return i.Paused })
	h.publish("scan_added", eventBody("scan_added", 1), map[string]string{nats.MsgIdHdr: "held"})
	if _, _, err := h.store.Update(context.Background(), "down", func(rec statekv.Record) (statekv.Record, bool, error) {
		rec.Events = []string{"scan_added", "test_added"}
		return rec, true, nil
	}); err != nil {
		t.Fatal(err)
	}
	info := h.waitConsumer("down", func(i *jetstream.ConsumerInfo) bool { return len(i.Config.FilterSubjects) == 4 }) // two events, replay, to
	if !info.Paused {
		t.Errorf("consumer of an inactive_permanent endpoint no longer paused after a filter change (pause until %v)", info.Config.PauseUntil)
	}
	if info.NumPending != 1 {
		t.Errorf("backlog %d after the filter change, want 1", info.NumPending)
	}
	activate(t, h, "down")
	r.waitID(t, "held")
	if info := h.waitConsumer("down", func(i *jetstream.ConsumerInfo) bool { return i.NumPending == 0 && i.NumAckPending == 0 }); info.Paused {
		t.Error("consumer paused after activation")
	}
}
