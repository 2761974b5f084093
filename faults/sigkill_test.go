package faults

import (
	"context"
	"testing"
	"time"
)

// TestSIGKILLMidLoadLosesNothing: the sidecar process is killed with SIGKILL (no
// shutdown, no NAK, no drain) in the middle of 20,000 events, while they are
// still being published, and started again. All 20,000 arrive; an event that
// arrives twice (answered by the receiver but not acknowledged before the kill)
// carries the same webhook-id both times; with max-in-flight 1 the endpoint gets
// them in publish order, a copy arriving again only as a redelivery of events
// already sent (the killed sidecar's last acks may not have reached the server).
// The pause after the kill is bounded by redeliveryBound (the pin's timeout).
func TestSIGKILLMidLoadLosesNothing(t *testing.T) {
	t.Parallel()
	const total = 20_000
	nats := startNATS(t)
	env := sidecarEnv(nats.URL(), "DOJO_WEBHOOKS_MAX_IN_FLIGHT", "1")
	first := startSidecar(t, "sidecar-1", env)
	_, js := connect(t, nats.URL())
	r := newReceiver(t)
	createEndpoint(t, bucketOf(t, js), "killed", r.URL())
	waitConsumer(t, js, "killed")

	// Published while the sidecar delivers and while it is dead; ids are derived
	// from the stream sequence (no Nats-Msg-Id).
	pub := newPublished(total)
	published := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		published <- publishRange(ctx, js, "scan_added", 0, total, "", pub)
	}()

	waitFor(t, time.Minute, "a quarter of the events delivered", func() bool { return r.delivered() >= total/4 })
	killedAt := time.Now()
	first.kill()
	t.Logf("SIGKILL after %d events delivered (%d requests)", r.delivered(), r.count())

	second := startSidecar(t, "sidecar-2", env)
	r.waitDelivered(t, total, redeliveryBound+2*time.Minute)
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	took := time.Since(killedAt)

	hits := r.requests()
	dup := checkAtLeastOnce(t, hits, pub.ids)
	checkOrder(t, hits, pub)
	pause, ended := longestPause(hits, killedAt)
	t.Logf("%d events, %d requests, %d delivered more than once; deliveries paused %s (until %s after the SIGKILL); "+
		"all delivered %s after the kill", total, len(hits), dup, pause.Round(time.Millisecond), ended.Round(time.Millisecond),
		took.Round(time.Millisecond))
	if pause > redeliveryBound+5*time.Second {
		t.Errorf("deliveries paused %s after the SIGKILL, more than the AckWait bound %s", pause, redeliveryBound)
	}
	second.terminate()
	if code := second.exitCode(); code != 0 {
		t.Errorf("the restarted sidecar exited %d after SIGTERM", code)
	}
}
