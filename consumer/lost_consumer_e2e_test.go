package consumer_test

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/contract"
)

// An endpoint's consumer deleted behind the sidecar's back (`nats consumer rm`)
// is recreated from the record, as a restart would: later events are delivered.
func TestConsumerDeletedByHandIsRecreated(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.newReceiver(http.StatusOK)
	h.addEndpoint("rm", r.URL())
	h.publish("ping", eventBody("ping", 0), map[string]string{nats.MsgIdHdr: "before"})
	r.waitID(t, "before")
	if err := h.js.DeleteConsumer(context.Background(), names.Events, contract.ConsumerName("rm")); err != nil {
		t.Fatal(err)
	}
	h.publish("ping", eventBody("ping", 1), map[string]string{nats.MsgIdHdr: "after"})
	r.waitID(t, "after")
	h.waitConsumer("rm", func(i *jetstream.ConsumerInfo) bool { return i.NumPending == 0 && i.NumAckPending == 0 })
	for _, q := range r.requests() {
		if !slices.Contains([]string{"before", "after"}, q.ID) {
			t.Errorf("unexpected request %q", q.ID)
		}
	}
}

// The same while the endpoint is down: its consumer is recreated, paused, and
// the activation delivers what was published meanwhile.
func TestConsumerDeletedByHandWhileDownIsRecreated(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.newReceiver(http.StatusOK)
	h.addEndpoint("rm", r.URL())
	deactivate(t, h, "rm", "deactivated by test")
	h.waitConsumer("rm", func(i *jetstream.ConsumerInfo) bool { return i.Paused })
	if err := h.js.DeleteConsumer(context.Background(), names.Events, contract.ConsumerName("rm")); err != nil {
		t.Fatal(err)
	}
	h.publish("ping", eventBody("ping", 1), map[string]string{nats.MsgIdHdr: "meanwhile"})
	activate(t, h, "rm")
	r.waitID(t, "meanwhile")
	if got := ids(r.requests()); !slices.Equal(got, []string{"meanwhile"}) {
		t.Errorf("got %q", got)
	}
}
