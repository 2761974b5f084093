package consumer_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/dojo-webhooks/dojo-webhooks/attempts"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// An endpoint that answers 500 then 200 shows both attempts in the attempt
// log, newest first, with status, duration, the body's first bytes, the kept
// headers and the endpoint's state before and after each.
func TestAttemptLogRecordsFailureThenSuccess(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		if n.Add(1) == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, "boom: database down")
			return
		}
		fmt.Fprint(w, "ok")
	}))
	t.Cleanup(srv.Close)
	h.addEndpoint("flaky", srv.URL, withHeader("Authorization", "Token very-secret-value"))
	h.publish("scan_added", eventBody("scan_added", 1), map[string]string{nats.MsgIdHdr: "scan-1"})

	var page attempts.Page
	waitFor(t, 10*time.Second, func() bool {
		var err error
		page, err = attempts.List(context.Background(), h.js, names, attempts.Query{Endpoint: "flaky"})
		return err == nil && len(page.Items) == 2
	})
	ok, failed := page.Items[0], page.Items[1]
	if failed.Status != 500 || failed.Outcome != "temporary" || failed.ResponseBody != "boom: database down" ||
		failed.StateBefore != string(statekv.StatusActive) || failed.StateAfter != string(statekv.StatusInactiveTmp) ||
		failed.Note != "Response status code: 500" || failed.ResponseHeaders["Content-Type"] != "text/plain" {
		t.Errorf("failed attempt: %+v", failed)
	}
	if ok.Status != 200 || ok.Outcome != "success" || ok.ResponseBody != "ok" || ok.Attempt != 2 ||
		ok.StateBefore != string(statekv.StatusActiveTmp) || ok.StateAfter != string(statekv.StatusActiveTmp) {
		t.Errorf("successful attempt: %+v", ok)
	}
	for _, a := range page.Items {
		if a.WebhookID != "scan-1" || a.Event != "scan_added" || a.Kind != attempts.KindDelivery || a.StreamSeq != 1 ||
			a.DurationMS <= 0 || a.Start.IsZero() {
			t.Errorf("attempt fields: %+v", a)
		}
	}
	if !ok.Start.After(failed.Start) || ok.Seq <= failed.Seq {
		t.Errorf("not newest first: %v (seq %d) then %v (seq %d)", ok.Start, ok.Seq, failed.Start, failed.Seq)
	}
	failures, err := attempts.List(context.Background(), h.js, names, attempts.Query{Endpoint: "flaky", Outcome: "failed"})
	if err != nil || len(failures.Items) != 1 || failures.Items[0].Status != 500 {
		t.Errorf("failed only: %+v, %v", failures.Items, err)
	}
	raw, err := h.js.Stream(context.Background(), names.Attempts)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= raw.CachedInfo().State.LastSeq; seq++ {
		if m, err := raw.GetMsg(context.Background(), seq); err == nil && containsAny(string(m.Data), "very-secret-value") {
			t.Errorf("attempt record %d holds the header value: %s", seq, m.Data)
		}
	}
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if len(sub) > 0 && len(s) >= len(sub) {
			for i := 0; i+len(sub) <= len(s); i++ {
				if s[i:i+len(sub)] == sub {
					return true
				}
			}
		}
	}
	return false
}
