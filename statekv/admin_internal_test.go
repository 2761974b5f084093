package statekv

import (
	"errors"
	"testing"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/internal/natstest"
)

// TestCreateUniqueCheckAfterCreate drives the check CreateUnique makes after
// its create, for the interleavings a race produces: the older record
// rewritten since (its current revision is then higher than the newer one's),
// and the newer record rewritten before it deletes itself.
func TestCreateUniqueCheckAfterCreate(t *testing.T) {
	_, _, js := natstest.JetStream(t)
	kv, err := EnsureBucket(t.Context(), js, BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	st, ctx := NewStore(kv), t.Context()
	rec := func(id string) Record {
		return Record{ID: id, Name: "Shared", URL: "https://hooks.example.com/" + id, Status: StatusActive}
	}
	older, err := st.Create(ctx, rec("older"))
	if err != nil {
		t.Fatal(err)
	}
	newer, err := st.Create(ctx, rec("newer")) // as if both had passed the listing before either create
	if err != nil {
		t.Fatal(err)
	}
	for range 3 { // a sidecar's transitions on the older record
		if _, _, err := st.Apply(ctx, "older", Event{Input: UserDeactivate, Note: "x"}, time.Now, Policy{}); err != nil {
			t.Fatal(err)
		}
	}
	if e, _ := st.Get(ctx, "older"); e.Revision < newer.Revision {
		t.Fatalf("older record at revision %d, want it rewritten past %d", e.Revision, newer.Revision)
	}
	if got, err := st.olderWithName(ctx, rec("newer"), newer.Revision); err != nil || got != "older" {
		t.Errorf("newer's check: %q, %v; want older", got, err)
	}
	if got, err := st.olderWithName(ctx, rec("older"), older.Revision); err != nil || got != "" {
		t.Errorf("older's check: %q, %v; want none", got, err)
	}
	// The newer record rewritten before it deletes itself: still deleted.
	if _, _, err := st.Apply(ctx, "newer", Event{Input: UserDeactivate, Note: "y"}, time.Now, Policy{}); err != nil {
		t.Fatal(err)
	}
	if err := st.deleteOwn(ctx, "newer", newer.Revision); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, "newer"); !errors.Is(err, ErrNotFound) {
		t.Errorf("newer after deleteOwn: %v, want ErrNotFound", err)
	}
	// A record created again under that id after a delete is not ours: left alone.
	again, err := st.Create(ctx, rec("newer"))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.deleteOwn(ctx, "newer", newer.Revision); err != nil {
		t.Fatal(err)
	}
	if e, err := st.Get(ctx, "newer"); err != nil || e.Revision != again.Revision {
		t.Errorf("a later incarnation was deleted: %v", err)
	}
}
