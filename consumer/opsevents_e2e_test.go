package consumer_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/opsevents"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// TestOpsEventsOnceAcrossReplicas: with two sidecars running, an endpoint
// that goes inactive_permanent produces one webhook_endpoint_disabled delivery
// to an ops endpoint subscribed to it, and its activation one
// webhook_endpoint_recovered; the endpoint they are about, though its filter
// names them, gets neither, nor does an endpoint that takes every event.
func TestOpsEventsOnceAcrossReplicas(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addReplica()
	bad := h.newReceiver(http.StatusGone)
	ops := h.newReceiver(http.StatusOK)
	all := h.newReceiver(http.StatusOK)
	h.addEndpoint("bad", bad.URL(), withEvents("scan_added", opsevents.EndpointDisabled, opsevents.EndpointRecovered))
	h.addEndpoint("all", all.URL())
	h.waitConsumer("all", func(*jetstream.ConsumerInfo) bool { return true })
	h.addEndpoint("ops", ops.URL(), withEvents(opsevents.EndpointDisabled, opsevents.EndpointRecovered))
	h.waitConsumer("bad", func(*jetstream.ConsumerInfo) bool { return true })
	h.waitConsumer("ops", func(*jetstream.ConsumerInfo) bool { return true })

	h.publish("scan_added", eventBody("scan_added", 1), nil)
	h.waitStatus("bad", statekv.StatusInactivePermanent)
	bad.answer(http.StatusOK)
	if _, _, err := h.store.Apply(context.Background(), "bad", statekv.Event{Input: statekv.UserActivate}, time.Now, h.opts.Policy); err != nil {
		t.Fatal(err)
	}
	// The recovered event comes after the disabled one (one in flight, publish
	// order): once it is delivered, every copy of the disabled one would be too.
	got := ops.waitAnswered(t, 2)
	events := []string{}
	for _, q := range ops.requests() {
		events = append(events, q.Event)
	}
	if len(events) != 2 || events[0] != opsevents.EndpointDisabled || events[1] != opsevents.EndpointRecovered {
		t.Fatalf("ops endpoint got %q, want one %s then one %s", events, opsevents.EndpointDisabled, opsevents.EndpointRecovered)
	}
	var body opsevents.Body
	if err := json.Unmarshal(got[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	if body.ID != "bad" || body.Status != string(statekv.StatusInactivePermanent) || body.Note != "Response status code: 410" ||
		body.PreviousStatus != string(statekv.StatusActive) || body.Revision == 0 || body.LastError == nil {
		t.Errorf("disabled body = %+v", body)
	}
	for _, event := range []string{opsevents.EndpointDisabled, opsevents.EndpointRecovered} {
		if n := storedOn(t, h, names.OpsSubject(event)); n != 1 {
			t.Errorf("%d %s events stored by two sidecars, want 1 (deduplicated)", n, event)
		}
	}
	// Both replicas published each (the dedup window kept one): the test tested two.
	waitFor(t, waitTimeout, func() bool {
		return strings.Count(h.logs.String(), `"event":"`+opsevents.EndpointRecovered+`","duplicate":true`) == 1
	})
	if n := strings.Count(h.logs.String(), `"event":"`+opsevents.EndpointDisabled+`","duplicate":`); n != 2 {
		t.Errorf("%s published %d times, want once by each of the two sidecars", opsevents.EndpointDisabled, n)
	}
	// The endpoint they are about got its scan_added (failed, then none after
	// activation: it was dead-lettered) and never an operational event.
	for _, q := range bad.requests() {
		if q.Event != "scan_added" {
			t.Errorf("bad got %s: an operational event about itself", q.Event)
		}
	}
	// A last event for every endpoint: once "all" has it, it decided on the operational ones.
	h.publish("product_added", eventBody("product_added", 2), nil)
	all.waitAnswered(t, 2) // scan_added, product_added
	for _, q := range all.requests() {
		if q.Event != "scan_added" && q.Event != "product_added" {
			t.Errorf("an endpoint without filter got %s", q.Event)
		}
	}
}

// storedOn counts the events stream's messages on subject.
func storedOn(t *testing.T, h *harness, subject string) uint64 {
	t.Helper()
	s, err := h.js.Stream(context.Background(), names.Events)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background(), jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[subject]
}
