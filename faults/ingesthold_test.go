package faults

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestIngestHoldsThroughNATSRestart: DefectDojo never retries a webhook, so
// the bridge must not lose one while NATS restarts. 50 DefectDojo-like posts
// reach /ingest of the real binary, one every 100 ms, while its nats-server is
// stopped for 3 s and started again: each is held until it is stored, so all
// 50 are answered 2xx and all 50 are delivered.
func TestIngestHoldsThroughNATSRestart(t *testing.T) {
	t.Parallel()
	const total, outage = 50, 3 * time.Second
	srv := startNATS(t)
	sc := startSidecar(t, "sidecar", sidecarEnv(srv.URL()))
	_, js := connect(t, srv.URL())
	r := newReceiver(t)
	createEndpoint(t, bucketOf(t, js), "hold", r.URL())
	waitConsumer(t, js, "hold")
	ingestURL := fmt.Sprintf("http://%s/ingest", sc.logEntries(logMessage("HTTP server listening"))[0]["addr"])

	var wg sync.WaitGroup
	codes := make([]int, total)
	answers := make([]string, total)
	post := func(n int) {
		defer wg.Done()
		req, err := http.NewRequest(http.MethodPost, ingestURL, bytes.NewReader(eventBody(n)))
		if err != nil {
			t.Error(err)
			return
		}
		req.Header.Set("X-DefectDojo-Event", "scan_added")
		req.Header.Set("X-DefectDojo-Instance", "http://localhost:8080")
		req.Header.Set("User-Agent", "DefectDojo-2.50.0")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Content-Type", "application/json")
		// DefectDojo's own timeout: an answer later than that is a loss too.
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			answers[n] = err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		codes[n], answers[n] = resp.StatusCode, string(b)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var stoppedAt, restartedAt time.Time
	for n := range total {
		<-tick.C
		switch {
		case n == 10:
			srv.stop()
			stoppedAt = time.Now()
		case stoppedAt != (time.Time{}) && restartedAt.IsZero() && time.Since(stoppedAt) >= outage:
			srv.start()
			restartedAt = time.Now()
		}
		wg.Add(1)
		go post(n)
	}
	if restartedAt.IsZero() {
		srv.start()
		restartedAt = time.Now()
	}
	wg.Wait()
	t.Logf("NATS down for %s", restartedAt.Sub(stoppedAt).Round(time.Millisecond))
	for n, code := range codes {
		if code < 200 || code > 299 {
			t.Errorf("post %d: %d %q, want 2xx", n, code, answers[n])
		}
	}
	r.waitDelivered(t, total, time.Minute)
	if held := len(sc.logEntries(logMessage("NATS disconnected; reconnecting"))); held == 0 {
		t.Error("the sidecar never saw NATS go: the test did not test a restart")
	}
}
