package faults

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// TestTwoSidecarsShareTheLoad: two sidecar processes on one NATS server share
// the endpoints' durable consumers. Both deliver a part of the load (counted by
// the "delivery" lines each logs at debug level), every event reaches every
// endpoint exactly once (no fault: no duplicate at all), and the timed
// transitions of an endpoint put by hand in inactive_tmp, which both sidecars
// schedule, are each written once (KV history: inactive_tmp, active_tmp, active).
func TestTwoSidecarsShareTheLoad(t *testing.T) {
	t.Parallel()
	const total = 1000
	srv := startNATS(t)
	env := sidecarEnv(srv.URL(), "DOJO_WEBHOOKS_LOG_LEVEL", "debug", "DOJO_WEBHOOKS_MAX_IN_FLIGHT", "4",
		"DOJO_WEBHOOKS_REACTIVATE_AFTER", "500ms", "DOJO_WEBHOOKS_RECOVER_AFTER", "1500ms")
	replicas := []*sidecar{startSidecar(t, "sidecar-a", env), startSidecar(t, "sidecar-b", env)}
	_, js := connect(t, srv.URL())
	kv := bucketOf(t, js)
	shared, timed := newReceiver(t), newReceiver(t)
	createEndpoint(t, kv, "shared", shared.URL())
	// Put by hand, as with `nats kv put`: failing since now, so both sidecars arm
	// the same two timers (active_tmp after 500 ms, active 1.5 s after last_error).
	now := statekv.Timestamp(time.Now()).Format(time.RFC3339Nano)
	value := fmt.Sprintf(`{"name": "Timed", "url": %q, "status": "inactive_tmp", "first_error": %q, "last_error": %q, "note": "Response status code: 503"}`,
		timed.URL(), now, now)
	if _, err := kv.Create(context.Background(), "timed", []byte(value)); err != nil {
		t.Fatal(err)
	}
	waitConsumer(t, js, "shared")
	waitConsumer(t, js, "timed")

	pub := publishAll(t, js, "scan_added", total, "")
	shared.waitDelivered(t, total, time.Minute)
	timed.waitDelivered(t, total, time.Minute)
	waitStatus(t, kv, "timed", statekv.StatusActive, waitTimeout)

	for _, r := range []struct {
		id string
		r  *receiver
	}{{"shared", shared}, {"timed", timed}} {
		hits := r.r.requests()
		if dup := checkAtLeastOnce(t, hits, pub.ids); dup != 0 || len(hits) != total {
			t.Errorf("endpoint %s: %d requests for %d events, %d events delivered more than once: want each exactly once",
				r.id, len(hits), total, dup)
		}
	}

	// A sidecar logs a delivery after the receiver answered it: wait for the last lines.
	var perSidecar []int
	waitFor(t, waitTimeout, "every delivery logged", func() bool {
		perSidecar = perSidecar[:0]
		for _, p := range replicas {
			perSidecar = append(perSidecar, len(p.logEntries(logMessage("delivery", "outcome", "success"))))
		}
		return perSidecar[0]+perSidecar[1] >= 2*total
	})
	t.Logf("deliveries per sidecar: %v (of %d)", perSidecar, 2*total)
	if slices.Contains(perSidecar, 0) {
		t.Errorf("deliveries per sidecar %v: the load is not shared", perSidecar)
	}
	if perSidecar[0]+perSidecar[1] != 2*total {
		t.Errorf("the sidecars logged %v successful deliveries, want %d in all", perSidecar, 2*total)
	}

	// Each timed transition written once, whichever sidecar won the compare-and-set.
	got := statuses(history(t, kv, "timed"))
	want := []string{"inactive_tmp", "active_tmp", "active"}
	if !slices.Equal(got, want) {
		t.Errorf("KV history of the timed endpoint: %v, want %v (each timed transition written once)", got, want)
	}
	var writers []int
	for i, p := range replicas {
		if n := len(p.logEntries(logMessage("endpoint state changed", "endpoint", "timed"))); n > 0 {
			writers = append(writers, i)
			t.Logf("sidecar %d wrote %d of the timed endpoint's transitions", i, n)
		}
	}
	if len(writers) == 0 {
		t.Error("no sidecar logged writing the timed transitions")
	}
	if got := statuses(history(t, kv, "shared")); !slices.Equal(got, []string{"active"}) {
		t.Errorf("KV history of the shared endpoint: %v, want [active] (success writes nothing)", got)
	}
}
