package faults

import (
	"context"
	"testing"
	"time"
)

// TestNATSRestartMidLoadLosesNothing: the NATS server is shut down in the middle
// of a load and started again on the same port and store directory, while
// events are still being published (the publisher retries with its
// Nats-Msg-Id, so each is stored once). The sidecar, a real process connected
// with NATS_URL, reconnects on its own and delivers every event; a copy
// delivered again carries the same webhook-id; order is kept (max-in-flight 1).
func TestNATSRestartMidLoadLosesNothing(t *testing.T) {
	t.Parallel()
	const total = 3000
	srv := startNATS(t)
	env := sidecarEnv(srv.URL(), "DOJO_WEBHOOKS_MAX_IN_FLIGHT", "1")
	sc := startSidecar(t, "sidecar", env)
	_, js := connect(t, srv.URL())
	r := newReceiver(t)
	createEndpoint(t, bucketOf(t, js), "restart", r.URL())
	waitConsumer(t, js, "restart")

	pub := newPublished(total)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := publishRange(ctx, js, "scan_added", 0, total/2, "restart-", pub); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "some events delivered", func() bool { return r.delivered() >= total/6 })

	stoppedAt := time.Now()
	srv.stop()
	t.Logf("NATS stopped after %d events delivered", r.delivered())
	// The second half is published from now on: first while NATS is down (retried), then after it is back.
	published := make(chan error, 1)
	go func() { published <- publishRange(ctx, js, "scan_added", total/2, total, "restart-", pub) }()
	srv.start()
	restartedAt := time.Now()
	waitFor(t, waitTimeout, "the sidecar to log its reconnection", func() bool {
		return len(sc.logEntries(logMessage("NATS reconnected"))) > 0
	})
	t.Logf("NATS down for %s; the sidecar reconnected %s after the restart",
		restartedAt.Sub(stoppedAt).Round(time.Millisecond), time.Since(restartedAt).Round(time.Millisecond))

	r.waitDelivered(t, total, redeliveryBound+time.Minute)
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	hits := r.requests()
	dup := checkAtLeastOnce(t, hits, pub.ids)
	checkOrder(t, hits, pub)
	pause, ended := longestPause(hits, stoppedAt)
	t.Logf("%d events, %d requests, %d delivered more than once; deliveries paused %s (until %s after the stop); all delivered %s after the stop",
		total, len(hits), dup, pause.Round(time.Millisecond), ended.Round(time.Millisecond), time.Since(stoppedAt).Round(time.Millisecond))
	if pause > redeliveryBound+5*time.Second {
		t.Errorf("deliveries paused %s around the NATS restart, more than the AckWait bound %s", pause, redeliveryBound)
	}
	if sc.exited() {
		t.Fatalf("the sidecar exited (%v) during the NATS restart", sc.err)
	}
}
