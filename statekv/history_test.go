package statekv_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/internal/natstest"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// History attributes each revision to what wrote it, and a value put by hand
// (a copy of an older value, stamps and all) shows as a hand edit.
func TestHistoryCauses(t *testing.T) {
	kv := bucketOn(t, natstest.Server(t))
	store := statekv.NewStore(kv)
	ctx := context.Background()
	p := statekv.DefaultPolicy()
	now := time.Now()
	clock := func() time.Time { return now }
	rec := validRecord("hist")
	if _, err := store.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.Apply(ctx, "hist", statekv.Event{Input: statekv.TemporaryFailure, Note: "Response status code: 500"}, clock, p); err != nil {
		t.Fatal(err)
	}
	now = now.Add(p.ReactivateAfter + time.Second)
	if _, _, err := store.Apply(ctx, "hist", statekv.Event{Input: statekv.ReactivateTimer}, clock, p); err != nil {
		t.Fatal(err)
	}
	stale, err := kv.Get(ctx, "hist") // what `nats kv get` shows, put back later by hand
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.Apply(ctx, "hist", statekv.Event{Input: statekv.UserActivate}, clock, p); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "hist", stale.Value()); err != nil {
		t.Fatal(err)
	}
	if err := store.Delete(ctx, "hist"); err != nil {
		t.Fatal(err)
	}
	hist, err := store.History(ctx, "hist")
	if err != nil {
		t.Fatal(err)
	}
	var causes []string
	var statuses []statekv.Status
	for _, r := range hist {
		causes = append(causes, r.Cause)
		statuses = append(statuses, r.Record.Status)
	}
	want := []string{statekv.CauseAdd, "delivery:temporary", "timer:reactivate_timer", "user:activate", statekv.CauseHandEdit, statekv.CauseRemoved}
	if !slices.Equal(causes, want) {
		t.Errorf("causes %q, want %q", causes, want)
	}
	wantStatus := []statekv.Status{statekv.StatusActive, statekv.StatusInactiveTmp, statekv.StatusActiveTmp, statekv.StatusActive, statekv.StatusActiveTmp, ""}
	if !slices.Equal(statuses, wantStatus) {
		t.Errorf("statuses %q, want %q", statuses, wantStatus)
	}
	for i := 1; i < len(hist); i++ {
		if hist[i].Revision <= hist[i-1].Revision || hist[i].Time.Before(hist[i-1].Time) {
			t.Errorf("revision %d not after %d", hist[i].Revision, hist[i-1].Revision)
		}
	}
	if hist[1].Record.Note != "Response status code: 500" || hist[1].Kind() != "delivery" {
		t.Errorf("failure revision: %+v", hist[1])
	}
	if _, err := store.History(ctx, "never"); err == nil {
		t.Error("history of an endpoint that never existed: no error")
	}
}
