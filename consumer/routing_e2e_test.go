package consumer_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// System events go to endpoints without owner, personal ones only to the
// recipient's endpoints, the events filter restricts both, and a filter change
// on an existing endpoint takes effect.
func TestRoutingByOwnerRecipientAndFilter(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	rx := map[string]*receiver{}
	for _, ep := range []struct {
		id   string
		opts []endpointOpt
	}{
		{"sys_all", nil},
		{"sys_scans", []endpointOpt{withEvents("scan_added")}},
		{"alice", []endpointOpt{withOwner("alice")}},
		{"alice_eng", []endpointOpt{withOwner("alice"), withEvents("engagement_added")}},
		{"bob", []endpointOpt{withOwner("bob")}},
	} {
		rx[ep.id] = h.newReceiver(http.StatusOK)
		h.addEndpoint(ep.id, rx[ep.id].URL(), ep.opts...)
	}
	pub := func(event, id, recipient string) {
		hdr := map[string]string{nats.MsgIdHdr: id}
		if recipient != "" {
			hdr[contract.HeaderRecipient] = recipient
		}
		h.publish(event, eventBody(event, len(id)), hdr)
	}
	pub("product_added", "1-sys-product", "")
	pub("scan_added", "2-sys-scan", "")
	pub("scan_added", "3-alice-scan", "alice")
	pub("engagement_added", "4-alice-engagement", "alice")
	pub("product_added", "5-bob-product", "bob")
	pub("ping", "6-carol-ping", "carol") // nobody's endpoint
	// Last events for each endpoint: once they arrived, everything before was decided.
	pub("scan_added", "7-sys-scan", "")
	pub("engagement_added", "8-alice-engagement", "alice")
	pub("sla_breach", "9-bob-sla", "bob")

	want := map[string][]string{
		"sys_all":   {"1-sys-product", "2-sys-scan", "7-sys-scan"},
		"sys_scans": {"2-sys-scan", "7-sys-scan"},
		"alice":     {"3-alice-scan", "4-alice-engagement", "8-alice-engagement"},
		"alice_eng": {"4-alice-engagement", "8-alice-engagement"},
		"bob":       {"5-bob-product", "9-bob-sla"},
	}
	check := func(want map[string][]string) {
		t.Helper()
		for id, w := range want {
			rx[id].waitID(t, w[len(w)-1])
			if got := ids(rx[id].requests()); !slices.Equal(got, w) {
				t.Errorf("endpoint %s got %q, want %q", id, got, w)
			}
		}
	}
	check(want)

	// Change the filter of an existing endpoint.
	if _, _, err := h.store.Update(context.Background(), "sys_scans", func(r statekv.Record) (statekv.Record, bool, error) {
		r.Events = []string{"product_added", "sla_breach"}
		return r, true, nil
	}); err != nil {
		t.Fatal(err)
	}
	wantFilter := []string{names.EventSubject("product_added"), names.EventSubject("sla_breach"), names.Prefix + ".replay.sys_scans.>", names.Prefix + ".to.sys_scans.>"}
	h.waitConsumer("sys_scans", func(i *jetstream.ConsumerInfo) bool {
		return slices.Equal(slices.Sorted(slices.Values(i.Config.FilterSubjects)), wantFilter)
	})
	pub("scan_added", "10-sys-scan", "")
	pub("product_added", "11-sys-product", "")
	pub("sla_breach", "12-sys-sla", "")
	want["sys_all"] = append(want["sys_all"], "10-sys-scan", "11-sys-product", "12-sys-sla")
	want["sys_scans"] = append(want["sys_scans"], "11-sys-product", "12-sys-sla")
	check(want)
	for id := range want {
		if e := h.record(id); e.Record.Status != statekv.StatusActive {
			t.Errorf("endpoint %s is %s", id, e.Record.Status)
		}
	}
}

// An endpoint gets events published from its creation on, even before its
// consumer exists; older events are not sent to it. Removing it deletes its consumer.
func TestNewEndpointGetsEventsFromCreationAndRemovalDeletesConsumer(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.newReceiver(http.StatusOK)
	old := h.publish("product_added", eventBody("product_added", 0), map[string]string{nats.MsgIdHdr: "before-creation"})
	waitClockPast(t, h.streamMsg(old.Sequence).Time)
	h.addEndpoint("fresh", r.URL())
	h.publish("product_added", eventBody("product_added", 1), map[string]string{nats.MsgIdHdr: "right-after-creation"})
	r.waitID(t, "right-after-creation")
	if got := ids(r.requests()); !slices.Equal(got, []string{"right-after-creation"}) {
		t.Errorf("new endpoint got %q, want only the event published after its creation", got)
	}

	// Created while no sidecar runs: the consumer cannot exist when the event is published.
	h.stopSidecar()
	r2 := h.newReceiver(http.StatusOK)
	h.addEndpoint("offline", r2.URL())
	h.publish("scan_added", eventBody("scan_added", 2), map[string]string{nats.MsgIdHdr: "while-down"})
	if _, err := h.consumerInfo("offline"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("consumer of the new endpoint exists before any sidecar ran: %v", err)
	}
	h.resumeSidecar()
	r2.waitID(t, "while-down")
	if got := ids(r2.requests()); !slices.Equal(got, []string{"while-down"}) {
		t.Errorf("endpoint created while the sidecar was down got %q", got)
	}

	if err := h.store.Delete(context.Background(), "fresh"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, waitTimeout, func() bool {
		_, err := h.consumerInfo("fresh")
		return errors.Is(err, jetstream.ErrConsumerNotFound)
	})
	h.publish("product_added", eventBody("product_added", 3), map[string]string{nats.MsgIdHdr: "after-removal"})
	r2.waitID(t, "after-removal") // the other endpoint got it: the removed one had its chance
	if got := ids(r.requests()); !slices.Equal(got, []string{"right-after-creation", "while-down"}) {
		t.Errorf("removed endpoint got %q", got)
	}
}

// An endpoint removed and added again under the same id (even before the
// sidecar saw the removal) starts from its new creation: what was published
// in between is not sent to it.
func TestEndpointRemovedAndAddedAgain(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.newReceiver(http.StatusOK)
	h.addEndpoint("again", r.URL())
	h.publish("ping", eventBody("ping", 0), map[string]string{nats.MsgIdHdr: "first-life"})
	r.waitID(t, "first-life")

	if err := h.store.Delete(context.Background(), "again"); err != nil {
		t.Fatal(err)
	}
	gap := h.publish("ping", eventBody("ping", 1), map[string]string{nats.MsgIdHdr: "in-between"})
	waitClockPast(t, h.streamMsg(gap.Sequence).Time)
	r2 := h.newReceiver(http.StatusOK)
	h.addEndpoint("again", r2.URL())
	h.publish("ping", eventBody("ping", 2), map[string]string{nats.MsgIdHdr: "second-life"})
	r2.waitID(t, "second-life")
	if got := ids(r2.requests()); !slices.Equal(got, []string{"second-life"}) {
		t.Errorf("the endpoint added again got %q, want only what was published after", got)
	}
	// The old URL may get "in-between" if it was handled before the sidecar saw
	// the removal; never what was published after the endpoint came back.
	if got := ids(r.requests()); got[0] != "first-life" || slices.Contains(got, "second-life") {
		t.Errorf("the old URL got %q", got)
	}
}

// A valid record may name an event twice. Its consumer and `replay --since` both
// filter on each event once: JetStream refuses overlapping filter subjects, which
// made ReplaySince fail with "consumer subject filters cannot overlap".
func TestDuplicateEventInFilterDeliversAndReplaysOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.newReceiver(http.StatusOK)
	h.addEndpoint("dup", r.URL(), withEvents("scan_added", "scan_added"))
	since := time.Now().Add(-time.Second)
	h.publish("scan_added", eventBody("scan_added", 1), map[string]string{nats.MsgIdHdr: "scan-1"})
	h.publish("test_added", eventBody("test_added", 2), map[string]string{nats.MsgIdHdr: "test-2"})
	h.publish("scan_added", eventBody("scan_added", 3), map[string]string{nats.MsgIdHdr: "scan-3"})
	if got := ids(r.waitAnswered(t, 2)); !slices.Equal(got, []string{"scan-1", "scan-3"}) {
		t.Fatalf("delivered %q, want the two scans once each", got)
	}
	n, err := consumer.ReplaySince(context.Background(), h.js, names, h.record("dup").Record, since)
	if err != nil || n != 2 {
		t.Fatalf("ReplaySince = %d, %v; want 2 and no error", n, err)
	}
	if got := ids(r.waitAnswered(t, 4)[2:]); !slices.Equal(got, []string{"scan-1", "scan-3"}) {
		t.Errorf("replayed %q, want the two scans again with their ids", got)
	}
}
