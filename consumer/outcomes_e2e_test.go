package consumer_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// DefectDojo's outcome classes as the records show them: 5xx and 429 are
// temporary (inactive_tmp, no dead letter), 3xx and other 4xx are permanent
// (inactive_permanent, dead letter), 2xx changes nothing.
func TestOutcomeClassesDriveTheRecord(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *options) {
		o.Policy = statekv.Policy{ReactivateAfter: time.Minute, RecoverAfter: time.Minute, GiveUpAfter: time.Minute}
	})
	cases := []struct {
		status int
		want   statekv.Status
		dl     int
	}{
		{http.StatusCreated, statekv.StatusActive, 0},
		{http.StatusAccepted, statekv.StatusActive, 0},
		{http.StatusTooManyRequests, statekv.StatusInactiveTmp, 0},
		{http.StatusBadGateway, statekv.StatusInactiveTmp, 0},
		{http.StatusGatewayTimeout, statekv.StatusInactiveTmp, 0},
		{http.StatusMovedPermanently, statekv.StatusInactivePermanent, 1},
		{http.StatusUnauthorized, statekv.StatusInactivePermanent, 1},
		{http.StatusNotFound, statekv.StatusInactivePermanent, 1},
		{http.StatusGone, statekv.StatusInactivePermanent, 1},
	}
	created := map[string]uint64{}
	for _, c := range cases {
		r := h.newReceiver(c.status)
		id := fmt.Sprintf("s%d", c.status)
		created[id] = h.addEndpoint(id, r.URL()).Revision
	}
	h.publish("scan_added", eventBody("scan_added", 1), map[string]string{nats.MsgIdHdr: "one"})
	for _, c := range cases {
		id := fmt.Sprintf("s%d", c.status)
		e := h.waitStatus(id, c.want)
		if c.want == statekv.StatusActive {
			h.waitConsumer(id, func(i *jetstream.ConsumerInfo) bool { return i.NumAckPending == 0 && i.NumPending == 0 })
			if e.Revision != created[id] {
				t.Errorf("%d: record written on success (revision %d)", c.status, e.Revision)
			}
			continue
		}
		if want := fmt.Sprintf("Response status code: %d", c.status); e.Record.Note != want {
			t.Errorf("%d: note %q, want %q", c.status, e.Record.Note, want)
		}
		if c.dl > 0 {
			waitFor(t, waitTimeout, func() bool { return len(h.deadLetters(id)) == c.dl })
		} else if n := len(h.deadLetters(id)); n != 0 {
			t.Errorf("%d: %d dead letters for a temporary failure", c.status, n)
		}
		info := h.waitConsumer(id, func(i *jetstream.ConsumerInfo) bool { return i.Paused })
		backlog := info.NumPending + uint64(info.NumAckPending)
		if c.dl == 0 && backlog != 1 {
			t.Errorf("%d: backlog %d, want the event kept", c.status, backlog)
		}
	}
}

// Two sidecars share the endpoints' consumers: each event is delivered once,
// in publish order (MaxInFlight 1 holds across replicas), and each transition
// of a failure and its timers is written once.
func TestTwoReplicasShareTheWork(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *options) {
		o.Policy = statekv.Policy{ReactivateAfter: 150 * ms, RecoverAfter: 300 * ms, GiveUpAfter: time.Minute}
	})
	h.addReplica()
	r := h.newReceiver(http.StatusOK)
	h.addEndpoint("shared", r.URL())
	const n = 60
	var want []string
	for i := range n {
		id := fmt.Sprintf("e%02d", i)
		want = append(want, id)
		h.publish("scan_added", eventBody("scan_added", i), map[string]string{nats.MsgIdHdr: id})
	}
	r.waitAnswered(t, n)
	h.waitConsumer("shared", func(i *jetstream.ConsumerInfo) bool { return i.NumAckPending == 0 && i.NumPending == 0 })
	if got := ids(r.requests()); !slices.Equal(got, want) {
		t.Errorf("with two replicas the endpoint got %q, want each event once in order", got)
	}

	r.answer(http.StatusInternalServerError)
	h.publish("scan_added", eventBody("scan_added", n), map[string]string{nats.MsgIdHdr: "fail"})
	h.waitStatus("shared", statekv.StatusInactiveTmp)
	r.answer(http.StatusOK)
	r.waitID(t, "fail")
	h.waitStatus("shared", statekv.StatusActive)
	hist := h.statusHistory("shared")
	if !matchesHistory(hist, "active", "(inactive_tmp active_tmp)+", "active") {
		t.Errorf("status history %v: each transition should be written once", hist)
	}
	for i := 1; i < len(hist); i++ {
		if hist[i] == hist[i-1] {
			t.Errorf("status history %v: %s written twice in a row", hist, hist[i])
		}
	}
}

// A sidecar restarted with another MaxInFlight updates the existing consumers
// (window, and the pin that keeps the order of MaxInFlight 1) and keeps
// delivering; AckWait does not depend on the HTTP timeout.
func TestRestartWithNewSettingsUpdatesConsumers(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.newReceiver(http.StatusOK)
	h.addEndpoint("cfg", r.URL())
	info := h.waitConsumer("cfg", func(*jetstream.ConsumerInfo) bool { return true })
	if info.Config.MaxAckPending != consumer.PipelineWindow || info.Config.PriorityPolicy != jetstream.PriorityPolicyPinned ||
		info.Config.AckWait != consumer.AckWait {
		t.Errorf("consumer: max ack pending %d, ack wait %s", info.Config.MaxAckPending, info.Config.AckWait)
	}
	h.stopSidecar()
	h.opts.MaxInFlight, h.opts.Timeout = 3, 5*time.Second
	h.resumeSidecar()
	h.waitConsumer("cfg", func(i *jetstream.ConsumerInfo) bool {
		return i.Config.MaxAckPending == max(consumer.PipelineWindow, 4*3) && i.Config.PriorityPolicy == jetstream.PriorityPolicyNone &&
			i.Config.AckWait == consumer.AckWait
	})
	h.publish("ping", eventBody("ping", 1), map[string]string{nats.MsgIdHdr: "after-restart"})
	r.waitID(t, "after-restart")
}
