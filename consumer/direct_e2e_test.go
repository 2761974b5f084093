package consumer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/ingest"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// directBridge serves the ingest bridge on the harness's server as the sidecar
// mounts it (/ingest and /ingest/{endpoint}); endpoints are looked up in KV.
func (h *harness) directBridge() string {
	h.t.Helper()
	bridge := ingest.New(h.js, ingest.Options{Names: names, Endpoint: func(ctx context.Context, id string) (bool, error) {
		_, err := h.store.Get(ctx, id)
		return err == nil, nil
	}})
	mux := http.NewServeMux()
	mux.Handle("/ingest", bridge)
	mux.Handle("/ingest/{"+ingest.EndpointPathValue+"}", bridge)
	srv := httptest.NewServer(mux)
	h.t.Cleanup(srv.Close)
	return srv.URL
}

// postDojo posts a DefectDojo-like webhook and returns the status and the body.
func postDojo(t testing.TB, url, event string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-DefectDojo-Event", event)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestIngestToOneEndpoint: POST /ingest/<id> reaches that endpoint only, even an
// owned one whose owner no event names and whose filter leaves the event out;
// its backlog counts it, a permanent failure dead-letters it, and both replays
// (dead letters, --since) send it again. An unknown id is a 404 with a reason.
func TestIngestToOneEndpoint(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	base := h.directBridge()
	mine := h.newReceiver(http.StatusOK)
	other := h.newReceiver(http.StatusOK)
	h.addEndpoint("alice", mine.URL(), withOwner("alice"), withEvents("engagement_added"))
	h.addEndpoint("sys", other.URL())
	h.waitConsumer("alice", func(*jetstream.ConsumerInfo) bool { return true })
	h.waitConsumer("sys", func(*jetstream.ConsumerInfo) bool { return true })

	if code, body := postDojo(t, base+"/ingest/nobody", "scan_added", []byte(`{}`)); code != http.StatusNotFound ||
		!bytes.Contains([]byte(body), []byte(`no endpoint "nobody"`)) {
		t.Fatalf("unknown endpoint: %d %q, want 404 naming it", code, body)
	}

	code, body := postDojo(t, base+"/ingest/alice", "scan_added", []byte(`{"n":1}`))
	if code != http.StatusAccepted {
		t.Fatalf("POST /ingest/alice: %d %q", code, body)
	}
	var acc struct{ Sequence uint64 }
	if err := json.Unmarshal([]byte(body), &acc); err != nil {
		t.Fatal(err)
	}
	if m := h.streamMsg(acc.Sequence); m.Subject != names.DirectSubject("alice", "scan_added") {
		t.Errorf("stored on %q, want %q", m.Subject, names.DirectSubject("alice", "scan_added"))
	}
	got := mine.waitAnswered(t, 1)
	if got[0].Event != "scan_added" || string(got[0].Body) != `{"n":1}` {
		t.Errorf("alice got %s %q", got[0].Event, got[0].Body)
	}
	// A system event after it: once sys has it, sys has decided on the addressed one too.
	h.publish("product_added", []byte(`{"n":2}`), nil)
	other.waitAnswered(t, 1)
	if evs := other.requests(); len(evs) != 1 || evs[0].Event != "product_added" {
		t.Errorf("sys got %d requests (%v), want only its own product_added", len(evs), evs)
	}

	// Backlog: while alice's receiver is held, the addressed events wait in its backlog.
	mine.closeGate()
	for i := range 3 {
		if code, body := postDojo(t, base+"/ingest/alice", "scan_added", eventBody("scan_added", 10+i)); code != http.StatusAccepted {
			t.Fatalf("POST: %d %q", code, body)
		}
	}
	h.waitBacklog("alice", 3)
	mine.openGate()
	mine.waitAnswered(t, 4)
	h.waitBacklog("alice", 0)

	// Dead letter: a 410 fails it for good; a replay of the dead letters sends it again.
	mine.answer(http.StatusGone)
	if code, _ := postDojo(t, base+"/ingest/alice", "scan_added", []byte(`{"n":"dl"}`)); code != http.StatusAccepted {
		t.Fatal(code)
	}
	h.waitStatus("alice", statekv.StatusInactivePermanent)
	waitFor(t, waitTimeout, func() bool { return len(h.deadLetters("alice")) == 1 })
	mine.answer(http.StatusOK)
	if _, _, err := h.store.Apply(context.Background(), "alice", statekv.Event{Input: statekv.UserActivate}, time.Now, h.opts.Policy); err != nil {
		t.Fatal(err)
	}
	h.waitStatus("alice", statekv.StatusActive)
	if n, err := consumer.ReplayDeadLetters(context.Background(), h.js, names, "alice"); err != nil || n != 1 {
		t.Fatalf("ReplayDeadLetters = %d, %v; want 1", n, err)
	}
	waitFor(t, waitTimeout, func() bool {
		return slices.ContainsFunc(mine.answered(), func(q received) bool { return string(q.Body) == `{"n":"dl"}` })
	})

	// Replay since the start: every addressed event again (5), nothing of sys's.
	before := len(mine.answered())
	n, err := consumer.ReplaySince(context.Background(), h.js, names, h.record("alice").Record, time.Now().Add(-time.Hour))
	if err != nil || n != 5 {
		t.Fatalf("ReplaySince = %d, %v; want 5", n, err)
	}
	mine.waitAnswered(t, before+5)
	for _, q := range mine.requests() {
		if q.Event != "scan_added" {
			t.Errorf("alice got %s, want only the addressed scan_added", q.Event)
		}
	}
}
