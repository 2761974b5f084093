package statekv_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/internal/natstest"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// fast is the state machine at test speed.
var fast = statekv.Policy{ReactivateAfter: 50 * time.Millisecond, RecoverAfter: 100 * time.Millisecond, GiveUpAfter: time.Second}

// wait is the deadline of every condition in these tests: far above what they need.
const wait = 5 * time.Second

func newWatcher(kv jetstream.KeyValue, p statekv.Policy) (*statekv.Store, *statekv.Watcher) {
	st := statekv.NewStore(kv)
	return st, statekv.NewWatcher(st, statekv.WatcherOptions{Policy: p, Logger: zerolog.Nop()})
}

// rfc3339 formats t as an operator would type it.
func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// viewStatus is the status in w's view ("" when absent or invalid).
func viewStatus(w *statekv.Watcher, id string) statekv.Status {
	v, ok := w.Get(id)
	if !ok || v.Err != nil {
		return ""
	}
	return v.Record.Status
}

// storedStatus is the status the store holds ("" when absent or invalid).
func storedStatus(st *statekv.Store, id string) statekv.Status {
	e, err := st.Get(context.Background(), id)
	if err != nil {
		return ""
	}
	return e.Record.Status
}

// expectNoWrite fails the test if key is written before until. It watches the
// key, so it returns as soon as a write arrives; without one it lasts until the
// deadline: it checks that something does not happen.
func expectNoWrite(t *testing.T, kv jetstream.KeyValue, key string, until time.Time) {
	t.Helper()
	ctx, cancel := context.WithDeadline(t.Context(), until)
	defer cancel()
	kw, err := kv.Watch(ctx, key, jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = kw.Stop() }()
	for {
		select {
		case e, ok := <-kw.Updates():
			if !ok {
				return
			}
			if e == nil {
				continue
			}
			t.Errorf("%s written at revision %d: %s", key, e.Revision(), e.Value())
			return
		case <-ctx.Done():
			return
		}
	}
}

func TestWatcherSynced(t *testing.T) {
	t.Parallel()
	_, kv := testBucket(t)
	st, w := newWatcher(kv, fast)
	ctx := t.Context()
	for _, id := range []string{"b-ep", "a-ep", "c-ep"} {
		if _, err := st.Create(ctx, validRecord(id)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Create(ctx, validRecord("gone")); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.Synced():
		t.Fatal("Synced closed before Run")
	default:
	}
	runWatcher(t, w) // returns once Synced is closed

	var ids []string
	for _, v := range w.List() {
		ids = append(ids, v.ID)
		if !v.Valid() || v.Revision == 0 || v.Modified.IsZero() {
			t.Errorf("%s: view %+v", v.ID, v)
		}
		if d := diffRecords(v.Record, validRecord(v.ID)); d != "" {
			t.Errorf("%s: %s", v.ID, d)
		}
	}
	if fmt.Sprint(ids) != "[a-ep b-ep c-ep]" {
		t.Errorf("view right after Synced: %v, want [a-ep b-ep c-ep]", ids)
	}
	if v, ok := w.Get("b-ep"); !ok || v.Record.Name != "Endpoint b-ep" {
		t.Errorf("Get(b-ep) = %+v, %v", v, ok)
	}
	if _, ok := w.Get("gone"); ok {
		t.Error("deleted endpoint in the view")
	}
	byStatus, invalid := w.Counts()
	if byStatus[statekv.StatusActive] != 3 || len(byStatus) != 1 || invalid != 0 {
		t.Errorf("Counts() = %v, %d", byStatus, invalid)
	}
}

func TestWatcherSyncedEmptyBucket(t *testing.T) {
	t.Parallel()
	_, kv := testBucket(t)
	_, w := newWatcher(kv, fast)
	runWatcher(t, w)
	if l := w.List(); len(l) != 0 {
		t.Errorf("List() = %v on an empty bucket", l)
	}
}

// TestWatcherHandPut: a record typed by an operator with `nats kv put` shows up.
func TestWatcherHandPut(t *testing.T) {
	t.Parallel()
	_, kv := testBucket(t)
	_, w := newWatcher(kv, fast)
	runWatcher(t, w)
	rev := rawPut(t, kv, "ops-hook", `{
		"name": "Ops",
		"url": "https://ops.example.com/hook",
		"header_name": "X-Token", "header_value": "abc",
		"owner": "alice",
		"events": ["scan_added"],
		"status": "active",
		"team": "sec"
	}`)
	waitFor(t, wait, "ops-hook in the view", func() bool { v, ok := w.Get("ops-hook"); return ok && v.Revision == rev })
	v, _ := w.Get("ops-hook")
	if !v.Valid() || v.Record.Name != "Ops" || v.Record.Owner != "alice" || v.Record.HeaderValue != "abc" ||
		fmt.Sprint(v.Record.Events) != "[scan_added]" || v.Record.Status != statekv.StatusActive || string(v.Record.Extra()["team"]) != `"sec"` {
		t.Errorf("view %+v", v)
	}
	// An edit by hand replaces the view.
	rev = rawPut(t, kv, "ops-hook", `{"name":"Ops 2","url":"https://ops.example.com/hook2","status":"inactive_permanent","note":"Deactivated by bob"}`)
	waitFor(t, wait, "edit in the view", func() bool { v, ok := w.Get("ops-hook"); return ok && v.Revision == rev })
	if v, _ := w.Get("ops-hook"); v.Record.Name != "Ops 2" || v.Record.Status != statekv.StatusInactivePermanent || v.Record.Owner != "" {
		t.Errorf("view after edit %+v", v)
	}
}

// TestWatcherTimedTransitions: inactive_tmp → active_tmp after reactivate-after,
// → active after recover-after, each written no earlier than due.
func TestWatcherTimedTransitions(t *testing.T) {
	t.Parallel()
	_, kv := testBucket(t)
	st, w := newWatcher(kv, fast)
	runWatcher(t, w)
	last := statekv.Timestamp(time.Now())
	first := last.Add(-200 * time.Millisecond)
	rawPut(t, kv, "flaky", `{"name":"Flaky","url":"https://flaky.example.com/","status":"inactive_tmp",`+
		`"first_error":"`+rfc3339(first)+`","last_error":"`+rfc3339(last)+`","note":"Response status code: 503"}`)

	waitFor(t, wait, "flaky to become active", func() bool { return storedStatus(st, "flaky") == statekv.StatusActive })
	got := getRecord(t, st, "flaky").Record
	if !got.FirstError.IsZero() || !got.LastError.IsZero() || got.Note != statekv.RecoveryNote {
		t.Errorf("after recovery: first_error %s last_error %s note %q, want null null %q", got.FirstError, got.LastError, got.Note, statekv.RecoveryNote)
	}
	h := history(t, kv, "flaky")
	if got := historyStatuses(t, kv, "flaky"); fmt.Sprint(got) != "[inactive_tmp active_tmp active]" {
		t.Fatalf("history %v, want [inactive_tmp active_tmp active]", got)
	}
	// active_tmp kept the outage: errors and note unchanged.
	mid, err := statekv.ParseRecord("flaky", h[1].Value())
	if err != nil {
		t.Fatal(err)
	}
	if !mid.FirstError.Equal(first) || !mid.LastError.Equal(last) || mid.Note != "Response status code: 503" {
		t.Errorf("active_tmp revision: %+v", mid)
	}
	if d := h[1].Created().Sub(last); d < fast.ReactivateAfter {
		t.Errorf("active_tmp written %s after last_error, before reactivate-after %s", d, fast.ReactivateAfter)
	}
	if d := h[2].Created().Sub(last); d <= fast.RecoverAfter {
		t.Errorf("active written %s after last_error, not more than recover-after %s", d, fast.RecoverAfter)
	}
	waitFor(t, wait, "view to show active", func() bool { return viewStatus(w, "flaky") == statekv.StatusActive })
}

// TestWatcherSubMillisecondTimestamp: a last_error typed with microseconds
// (just past a millisecond) is reactivated all the same.
func TestWatcherSubMillisecondTimestamp(t *testing.T) {
	t.Parallel()
	_, kv := testBucket(t)
	st, w := newWatcher(kv, statekv.Policy{ReactivateAfter: 50 * time.Millisecond, RecoverAfter: time.Hour, GiveUpAfter: time.Hour})
	runWatcher(t, w)
	for i := range 5 {
		id := fmt.Sprintf("micro-%d", i)
		last := statekv.Timestamp(time.Now()).Add(time.Duration(i+1) * time.Microsecond)
		rawPut(t, kv, id, `{"name":"Micro","url":"https://micro.example.com/","status":"inactive_tmp",`+
			`"first_error":"`+rfc3339(last)+`","last_error":"`+rfc3339(last)+`","note":"Response status code: 503"}`)
		waitFor(t, wait, id+" to become active_tmp", func() bool { return storedStatus(st, id) == statekv.StatusActiveTmp })
	}
}

// TestWatcherOverdue: a record whose timer fell due while no sidecar ran is
// transitioned right after start.
func TestWatcherOverdue(t *testing.T) {
	t.Parallel()
	_, kv := testBucket(t)
	hourAgo := statekv.Timestamp(time.Now().Add(-time.Hour))
	rawPut(t, kv, "late", `{"name":"Late","url":"https://late.example.com/","status":"inactive_tmp",`+
		`"first_error":"`+rfc3339(hourAgo)+`","last_error":"`+rfc3339(hourAgo)+`","note":"Response status code: 502"}`)
	st, w := newWatcher(kv, statekv.DefaultPolicy()) // 60 s: an hour ago is long overdue; recover-after 24 h is not
	runWatcher(t, w)
	waitFor(t, wait, "late to become active_tmp", func() bool { return storedStatus(st, "late") == statekv.StatusActiveTmp })
	got := getRecord(t, st, "late").Record
	if !got.FirstError.Equal(hourAgo) || !got.LastError.Equal(hourAgo) || got.Note != "Response status code: 502" {
		t.Errorf("after reactivation: %+v", got)
	}
	waitFor(t, wait, "view to show active_tmp", func() bool { return viewStatus(w, "late") == statekv.StatusActiveTmp })
	if got := historyStatuses(t, kv, "late"); fmt.Sprint(got) != "[inactive_tmp active_tmp]" {
		t.Errorf("history %v", got)
	}
}

// TestWatcherTimerFollowsLastError: a new failure while a reactivation is
// pending moves it to reactivate-after past the new last_error.
func TestWatcherTimerFollowsLastError(t *testing.T) {
	t.Parallel()
	_, kv := testBucket(t)
	p := statekv.Policy{ReactivateAfter: 150 * time.Millisecond, RecoverAfter: time.Hour, GiveUpAfter: time.Hour}
	st, w := newWatcher(kv, p)
	runWatcher(t, w)
	ctx := t.Context()
	if _, err := st.Create(ctx, validRecord("ep")); err != nil {
		t.Fatal(err)
	}
	e, _, err := st.Apply(ctx, "ep", statekv.Event{Input: statekv.TemporaryFailure, Note: note500}, time.Now, p)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, wait, "view to show inactive_tmp", func() bool { v, _ := w.Get("ep"); return v.Revision == e.Revision })
	// A request in flight fails 100 ms after the first (injected clock): its
	// last_error is the new reference for the reactivation.
	second := e.Record.LastError.Add(100 * time.Millisecond)
	e, _, err = st.Apply(ctx, "ep", statekv.Event{Input: statekv.TemporaryFailure, Note: note503}, func() time.Time { return second }, p)
	if err != nil {
		t.Fatal(err)
	}
	last := e.Record.LastError
	if !last.Equal(second) {
		t.Fatalf("last_error %s, want %s", last, second)
	}
	waitFor(t, wait, "ep to become active_tmp", func() bool { return storedStatus(st, "ep") == statekv.StatusActiveTmp })
	h := history(t, kv, "ep")
	if got := historyStatuses(t, kv, "ep"); fmt.Sprint(got) != "[active inactive_tmp inactive_tmp active_tmp]" {
		t.Fatalf("history %v", got)
	}
	if d := h[3].Created().Sub(last); d < p.ReactivateAfter {
		t.Errorf("reactivated %s after the latest last_error, before reactivate-after %s", d, p.ReactivateAfter)
	}
}

// TestWatcherTwoSidecars: two watchers on the same bucket write each timed
// transition once.
func TestWatcherTwoSidecars(t *testing.T) {
	t.Parallel()
	s, kv := testBucket(t)
	stA, wA := newWatcher(bucketOn(t, s), fast)
	_, wB := newWatcher(bucketOn(t, s), fast)
	runWatcher(t, wA)
	runWatcher(t, wB)
	const n = 5
	last := statekv.Timestamp(time.Now())
	for i := range n {
		rawPut(t, kv, fmt.Sprintf("ep-%d", i), `{"name":"EP","url":"https://ep.example.com/","status":"inactive_tmp",`+
			`"first_error":"`+rfc3339(last)+`","last_error":"`+rfc3339(last)+`","note":"Response status code: 500"}`)
	}
	for i := range n {
		id := fmt.Sprintf("ep-%d", i)
		waitFor(t, wait, id+" active in the store and in both views", func() bool {
			return storedStatus(stA, id) == statekv.StatusActive && viewStatus(wA, id) == statekv.StatusActive && viewStatus(wB, id) == statekv.StatusActive
		})
		if got := historyStatuses(t, kv, id); fmt.Sprint(got) != "[inactive_tmp active_tmp active]" {
			t.Errorf("%s: history %v, want each status once: [inactive_tmp active_tmp active]", id, got)
		}
	}
}

// TestWatcherInvalidRecord: a broken record is flagged, held and counted; the
// others are unaffected; fixing it clears the flag.
func TestWatcherInvalidRecord(t *testing.T) {
	t.Parallel()
	_, kv := testBucket(t)
	p := statekv.Policy{ReactivateAfter: 50 * time.Millisecond, RecoverAfter: time.Hour, GiveUpAfter: time.Hour}
	st, w := newWatcher(kv, p)
	ctx := t.Context()
	if _, err := st.Create(ctx, validRecord("good")); err != nil {
		t.Fatal(err)
	}
	runWatcher(t, w)
	goodBefore, _ := w.Get("good")

	rev := rawPut(t, kv, "broken", `{"name":"Broken","url":"ftp://files.example.com/","status":"active","header_name":"X","header_value":"s3cret"}`)
	waitFor(t, wait, "broken in the view", func() bool { v, ok := w.Get("broken"); return ok && v.Revision == rev })
	v, _ := w.Get("broken")
	if v.Valid() || !errors.Is(v.Err, statekv.ErrInvalidRecord) || !strings.Contains(v.Err.Error(), "url") {
		t.Errorf("broken view: Valid %v Err %v", v.Valid(), v.Err)
	}
	if strings.Contains(v.Err.Error(), "s3cret") {
		t.Errorf("error reveals the header value: %v", v.Err)
	}
	if byStatus, invalid := w.Counts(); invalid != 1 || byStatus[statekv.StatusActive] != 1 {
		t.Errorf("Counts() = %v, %d; want 1 active, 1 invalid", byStatus, invalid)
	}
	if g, _ := w.Get("good"); !g.Valid() || g.Revision != goodBefore.Revision || g.Record.Status != statekv.StatusActive {
		t.Errorf("good endpoint affected: %+v", g)
	}
	// A valid record broken by hand, whose reactivation was pending: held, not transitioned.
	last := statekv.Timestamp(time.Now())
	if _, _, err := st.Apply(ctx, "good", statekv.Event{Input: statekv.TemporaryFailure, Note: note500}, func() time.Time { return last }, p); err != nil {
		t.Fatal(err)
	}
	rev2 := rawPut(t, kv, "good", `{"name":"Good","url":"https://good.example.com/","status":"inactive_tmp","last_error":"`+rfc3339(last)+`","note":"`+strings.Repeat("x", 1001)+`"}`)
	waitFor(t, wait, "good broken in the view", func() bool { v, _ := w.Get("good"); return v.Revision == rev2 })
	if g, _ := w.Get("good"); g.Valid() || !strings.Contains(g.Err.Error(), "note") {
		t.Errorf("good after a bad edit: %+v", g)
	}
	expectNoWrite(t, kv, "good", last.Add(p.ReactivateAfter+100*time.Millisecond))

	// Fixing both clears the flags; good's overdue reactivation then happens.
	rev = rawPut(t, kv, "broken", `{"name":"Broken","url":"https://files.example.com/","status":"active"}`)
	rawPut(t, kv, "good", `{"name":"Good","url":"https://good.example.com/","status":"inactive_tmp","last_error":"`+rfc3339(last)+`","note":"fixed"}`)
	waitFor(t, wait, "broken fixed in the view", func() bool { v, _ := w.Get("broken"); return v.Revision == rev })
	if v, _ := w.Get("broken"); !v.Valid() || v.Record.URL != "https://files.example.com/" {
		t.Errorf("fixed view: %+v", v)
	}
	waitFor(t, wait, "good to become active_tmp", func() bool { return viewStatus(w, "good") == statekv.StatusActiveTmp })
	if byStatus, invalid := w.Counts(); invalid != 0 || byStatus[statekv.StatusActive] != 1 || byStatus[statekv.StatusActiveTmp] != 1 {
		t.Errorf("Counts() = %v, %d; want 1 active, 1 active_tmp, 0 invalid", byStatus, invalid)
	}
}

// next reads one batch of changed ids, failing the test after the deadline.
func next(t *testing.T, s *statekv.Subscription) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	ids, err := s.Next(ctx)
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	return ids
}

// expectNothingNext checks that no change is pending (Next blocks until its short deadline).
func expectNothingNext(t *testing.T, s *statekv.Subscription) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Millisecond)
	defer cancel()
	if ids, err := s.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Next = %v, %v; want nothing pending", ids, err)
	}
}

func TestWatcherSubscription(t *testing.T) {
	t.Parallel()
	_, kv := testBucket(t)
	st, w := newWatcher(kv, fast)
	ctx := t.Context()
	for _, id := range []string{"b", "a"} {
		if _, err := st.Create(ctx, validRecord(id)); err != nil {
			t.Fatal(err)
		}
	}
	runWatcher(t, w)
	sub := w.Subscribe()
	defer sub.Close()

	// First Next: every endpoint already known.
	if ids := next(t, sub); fmt.Sprint(ids) != "[a b]" {
		t.Errorf("first Next = %v, want [a b]", ids)
	}
	expectNothingNext(t, sub)

	// Created.
	if _, err := st.Create(ctx, validRecord("c")); err != nil {
		t.Fatal(err)
	}
	if ids := next(t, sub); fmt.Sprint(ids) != "[c]" {
		t.Errorf("after create Next = %v, want [c]", ids)
	}
	if v, ok := w.Get("c"); !ok || !v.Valid() {
		t.Errorf("c not in the view when Next reported it: %+v", v)
	}
	// Changed, twice before the reader asks: reported once.
	var rev uint64
	for _, note := range []string{"one", "two"} {
		e, _, err := st.Update(ctx, "a", func(r statekv.Record) (statekv.Record, bool, error) { r.Note = note; return r, true, nil })
		if err != nil {
			t.Fatal(err)
		}
		rev = e.Revision
	}
	waitFor(t, wait, "both edits of a in the view", func() bool { v, _ := w.Get("a"); return v.Revision == rev })
	if ids := next(t, sub); fmt.Sprint(ids) != "[a]" {
		t.Errorf("after two updates Next = %v, want [a]", ids)
	}
	if v, _ := w.Get("a"); v.Record.Note != "two" {
		t.Errorf("view of a: note %q", v.Record.Note)
	}
	expectNothingNext(t, sub)
	// Deleted.
	if err := st.Delete(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if ids := next(t, sub); fmt.Sprint(ids) != "[b]" {
		t.Errorf("after delete Next = %v, want [b]", ids)
	}
	if _, ok := w.Get("b"); ok {
		t.Error("deleted b still in the view")
	}
	// A timed transition is a change too.
	last := statekv.Timestamp(time.Now())
	if _, _, err := st.Apply(ctx, "c", statekv.Event{Input: statekv.TemporaryFailure, Note: note500}, func() time.Time { return last }, fast); err != nil {
		t.Fatal(err)
	}
	waitFor(t, wait, "c to become active", func() bool { return viewStatus(w, "c") == statekv.StatusActive })
	if ids := next(t, sub); fmt.Sprint(ids) != "[c]" {
		t.Errorf("after the timed transitions Next = %v, want [c]", ids)
	}

	// A second subscriber sees the current endpoints first; a closed one is not blocked on.
	sub2 := w.Subscribe()
	if ids := next(t, sub2); fmt.Sprint(ids) != "[a c]" {
		t.Errorf("second subscriber's first Next = %v, want [a c]", ids)
	}
	sub2.Close()
	if _, err := st.Create(ctx, validRecord("d")); err != nil {
		t.Fatal(err)
	}
	if ids := next(t, sub); fmt.Sprint(ids) != "[d]" {
		t.Errorf("after create Next = %v, want [d]", ids)
	}

	// Next honours its context.
	cctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := sub.Next(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Next on a cancelled context: %v", err)
	}
}

// TestWatcherRemoved: a key deleted or purged (by the store or by hand) leaves the view.
func TestWatcherRemoved(t *testing.T) {
	t.Parallel()
	_, kv := testBucket(t)
	st, w := newWatcher(kv, fast)
	ctx := t.Context()
	for _, id := range []string{"deleted", "purged", "by-hand", "kept"} {
		if _, err := st.Create(ctx, validRecord(id)); err != nil {
			t.Fatal(err)
		}
	}
	runWatcher(t, w)
	if err := st.Delete(ctx, "deleted"); err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(ctx, "purged"); err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(ctx, "by-hand"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, wait, "removed keys to leave the view", func() bool { return len(w.List()) == 1 })
	if l := w.List(); l[0].ID != "kept" {
		t.Errorf("view %v", l)
	}
	if byStatus, _ := w.Counts(); byStatus[statekv.StatusActive] != 1 {
		t.Errorf("Counts() = %v", byStatus)
	}
	// A removed endpoint with a pending timer is not resurrected by it.
	last := statekv.Timestamp(time.Now())
	rawPut(t, kv, "doomed", `{"name":"Doomed","url":"https://d.example.com/","status":"inactive_tmp","last_error":"`+rfc3339(last)+`"}`)
	waitFor(t, wait, "doomed in the view", func() bool { _, ok := w.Get("doomed"); return ok })
	if err := st.Delete(ctx, "doomed"); err != nil {
		t.Fatal(err)
	}
	expectNoWrite(t, kv, "doomed", last.Add(fast.ReactivateAfter+100*time.Millisecond))
	if _, ok := w.Get("doomed"); ok {
		t.Error("doomed still in the view")
	}
	if _, err := st.Get(ctx, "doomed"); !errors.Is(err, statekv.ErrNotFound) {
		t.Errorf("doomed: %v, want ErrNotFound", err)
	}
}

// TestWatcherStop: Run returns ctx's error on cancel and a pending timer does
// not write afterwards; the next sidecar to start applies it.
func TestWatcherStop(t *testing.T) {
	t.Parallel()
	_, kv := testBucket(t)
	p := statekv.Policy{ReactivateAfter: 100 * time.Millisecond, RecoverAfter: time.Hour, GiveUpAfter: time.Hour}
	st, w := newWatcher(kv, p)
	stop := runWatcher(t, w)
	last := statekv.Timestamp(time.Now())
	rev := rawPut(t, kv, "pending", `{"name":"Pending","url":"https://p.example.com/","status":"inactive_tmp","last_error":"`+rfc3339(last)+`"}`)
	waitFor(t, wait, "pending in the view", func() bool { v, _ := w.Get("pending"); return v.Revision == rev })

	returned := time.Now()
	if err := stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v, want context.Canceled", err)
	}
	if d := time.Since(returned); d > time.Second {
		t.Errorf("Run took %s to return after cancel", d)
	}
	expectNoWrite(t, kv, "pending", last.Add(p.ReactivateAfter+150*time.Millisecond))
	if e := getRecord(t, st, "pending"); e.Revision != rev || e.Record.Status != statekv.StatusInactiveTmp {
		t.Errorf("after stop: rev %d status %s", e.Revision, e.Record.Status)
	}

	// The next sidecar finds it overdue.
	st2, w2 := newWatcher(kv, p)
	runWatcher(t, w2)
	waitFor(t, wait, "pending to become active_tmp", func() bool { return storedStatus(st2, "pending") == statekv.StatusActiveTmp })
}

// TestWatcherRunFails: Run reports a watch it cannot start.
func TestWatcherRunFails(t *testing.T) {
	t.Parallel()
	s, kv := testBucket(t)
	_, w := newWatcher(kv, fast)
	_, js := natstest.Connect(t, s)
	if err := js.DeleteKeyValue(t.Context(), statekv.DefaultBucket); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	if err := w.Run(ctx); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run on a deleted bucket = %v, want a watch error", err)
	}
}

// TestWatcherConcurrentReaders exercises the view from many goroutines while
// records change (run with -race).
func TestWatcherConcurrentReaders(t *testing.T) {
	t.Parallel()
	_, kv := testBucket(t)
	st, w := newWatcher(kv, fast)
	runWatcher(t, w)
	ctx := t.Context()
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sub := w.Subscribe()
			defer sub.Close()
			for {
				select {
				case <-done:
					return
				default:
				}
				_ = w.List()
				_, _ = w.Counts()
				_, _ = w.Get("ep-1")
				c, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
				_, _ = sub.Next(c)
				cancel()
			}
		}()
	}
	for i := range 10 {
		r := validRecord(fmt.Sprintf("ep-%d", i))
		if _, err := st.Create(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, wait, "10 endpoints in the view", func() bool { return len(w.List()) == 10 })
	close(done)
	wg.Wait()
}

// clockStart is where the injected clocks of these tests start: a round time,
// far from the wall clock, so that only the injected clock can make a timer due.
var clockStart = time.Date(2031, 5, 6, 7, 0, 0, 0, time.UTC)

// newClockWatcher returns a store and a watcher on the injected clock clk.
func newClockWatcher(kv jetstream.KeyValue, p statekv.Policy, clk statekv.Clock) (*statekv.Store, *statekv.Watcher) {
	st := statekv.NewStore(kv).WithClock(clk)
	return st, statekv.NewWatcher(st, statekv.WatcherOptions{Policy: p, Logger: zerolog.Nop()})
}

// expectPending checks that clk has exactly the timers due at want.
func expectPending(t *testing.T, clk *manualClock, want ...time.Time) {
	t.Helper()
	if got := clk.pending(); !slices.EqualFunc(got, want, time.Time.Equal) {
		t.Fatalf("timers due at %v, want %v", got, want)
	}
}

// expectFired moves clk to at and checks how many timers that made due.
func expectFired(t *testing.T, clk *manualClock, at time.Time, want int) {
	t.Helper()
	if n := clk.Set(at); n != want {
		t.Fatalf("at %s: %d timers fired, want %d", at.Format(time.RFC3339Nano), n, want)
	}
}

// waitView waits until w's view of id satisfies cond, and returns that view.
func waitView(t *testing.T, w *statekv.Watcher, id string, what string, cond func(statekv.View) bool) statekv.View {
	t.Helper()
	var v statekv.View
	waitFor(t, wait, what, func() bool { var ok bool; v, ok = w.Get(id); return ok && cond(v) })
	return v
}

// TestWatcherTimersOnClock: with the default durations (60 s, 24 h) on an
// injected clock, inactive_tmp becomes active_tmp exactly reactivate-after past
// last_error and active one millisecond after recover-after, stamped by that clock.
func TestWatcherTimersOnClock(t *testing.T) {
	t.Parallel()
	_, kv := testBucket(t)
	p := statekv.DefaultPolicy()
	clk := newManualClock(clockStart)
	_, w := newClockWatcher(kv, p, clk)
	runWatcher(t, w)
	last := clockStart
	rev := rawPut(t, kv, "flaky", `{"name":"Flaky","url":"https://flaky.example.com/","status":"inactive_tmp",`+
		`"first_error":"`+rfc3339(last.Add(-time.Minute))+`","last_error":"`+rfc3339(last)+`","note":"Response status code: 503"}`)
	waitView(t, w, "flaky", "flaky in the view", func(v statekv.View) bool { return v.Revision == rev })

	expectPending(t, clk, last.Add(p.ReactivateAfter))
	expectFired(t, clk, last.Add(p.ReactivateAfter-time.Millisecond), 0)
	expectFired(t, clk, last.Add(p.ReactivateAfter), 1)
	v := waitView(t, w, "flaky", "flaky active_tmp in the view", func(v statekv.View) bool { return v.Record.Status == statekv.StatusActiveTmp })
	if !v.Record.LastError.Equal(last) || v.Record.Note != "Response status code: 503" {
		t.Errorf("active_tmp kept the outage: %+v", v.Record)
	}

	expectPending(t, clk, last.Add(p.RecoverAfter+time.Millisecond))
	expectFired(t, clk, last.Add(p.RecoverAfter), 0) // strictly more than recover-after
	expectFired(t, clk, last.Add(p.RecoverAfter+time.Millisecond), 1)
	v = waitView(t, w, "flaky", "flaky active in the view", func(v statekv.View) bool { return v.Record.Status == statekv.StatusActive })
	if !v.Record.FirstError.IsZero() || !v.Record.LastError.IsZero() || v.Record.Note != statekv.RecoveryNote {
		t.Errorf("after recovery: %+v", v.Record)
	}
	if got := historyStatuses(t, kv, "flaky"); fmt.Sprint(got) != "[inactive_tmp active_tmp active]" {
		t.Errorf("history %v, want [inactive_tmp active_tmp active]", got)
	}
	expectPending(t, clk)
}

// TestWatcherRetryAfterOnClock: a Retry-After hold later than reactivate-after
// keeps the endpoint down until the hold, to the millisecond.
func TestWatcherRetryAfterOnClock(t *testing.T) {
	t.Parallel()
	_, kv := testBucket(t)
	p := statekv.DefaultPolicy()
	clk := newManualClock(clockStart)
	st, w := newClockWatcher(kv, p, clk)
	runWatcher(t, w)
	hold := clockStart.Add(5 * time.Minute)
	rev := rawPut(t, kv, "busy", `{"name":"Busy","url":"https://busy.example.com/","status":"inactive_tmp",`+
		`"first_error":"`+rfc3339(clockStart)+`","last_error":"`+rfc3339(clockStart)+`","retry_after":"`+rfc3339(hold)+`","note":"Response status code: 429"}`)
	waitView(t, w, "busy", "busy in the view", func(v statekv.View) bool { return v.Revision == rev })
	expectPending(t, clk, hold)
	expectFired(t, clk, clockStart.Add(p.ReactivateAfter), 0)
	expectFired(t, clk, hold.Add(-time.Millisecond), 0)
	expectFired(t, clk, hold, 1)
	waitFor(t, wait, "busy to become active_tmp", func() bool { return storedStatus(st, "busy") == statekv.StatusActiveTmp })
	if r := getRecord(t, st, "busy").Record; !r.RetryAfter.IsZero() {
		t.Errorf("retry_after %s kept after the reactivation", r.RetryAfter)
	}
}

// TestWatcherTimerFollowsLastErrorOnClock: a second failure while the
// reactivation is pending replaces the timer by one reactivate-after past the
// new last_error; the old one never fires.
func TestWatcherTimerFollowsLastErrorOnClock(t *testing.T) {
	t.Parallel()
	_, kv := testBucket(t)
	p := statekv.DefaultPolicy()
	clk := newManualClock(clockStart)
	st, w := newClockWatcher(kv, p, clk)
	runWatcher(t, w)
	ctx := t.Context()
	if _, err := st.Create(ctx, validRecord("ep")); err != nil {
		t.Fatal(err)
	}
	e, _, err := st.Apply(ctx, "ep", statekv.Event{Input: statekv.TemporaryFailure, Note: note500}, clk.Now, p)
	if err != nil {
		t.Fatal(err)
	}
	waitView(t, w, "ep", "ep inactive_tmp in the view", func(v statekv.View) bool { return v.Revision == e.Revision })
	expectPending(t, clk, clockStart.Add(p.ReactivateAfter))

	second := clockStart.Add(30 * time.Second)
	expectFired(t, clk, second, 0)
	if e, _, err = st.Apply(ctx, "ep", statekv.Event{Input: statekv.TemporaryFailure, Note: note503}, clk.Now, p); err != nil {
		t.Fatal(err)
	}
	if !e.Record.LastError.Equal(second) || !e.Modified.Equal(second) {
		t.Fatalf("second failure: last_error %s modified %s, want %s", e.Record.LastError, e.Modified, second)
	}
	waitView(t, w, "ep", "the second failure in the view", func(v statekv.View) bool { return v.Revision == e.Revision })
	expectPending(t, clk, second.Add(p.ReactivateAfter))
	expectFired(t, clk, clockStart.Add(p.ReactivateAfter), 0)
	expectFired(t, clk, second.Add(p.ReactivateAfter), 1)
	waitFor(t, wait, "ep to become active_tmp", func() bool { return storedStatus(st, "ep") == statekv.StatusActiveTmp })
	if got := historyStatuses(t, kv, "ep"); fmt.Sprint(got) != "[active inactive_tmp inactive_tmp active_tmp]" {
		t.Errorf("history %v", got)
	}
}

// TestWatcherSecretTimerOnClock: the previous secret of a rotation is dropped
// at previous_secret_until, not before.
func TestWatcherSecretTimerOnClock(t *testing.T) {
	t.Parallel()
	_, kv := testBucket(t)
	p := statekv.DefaultPolicy()
	clk := newManualClock(clockStart)
	st, w := newClockWatcher(kv, p, clk)
	runWatcher(t, w)
	r := validRecord("signed")
	r.Secret, r.PreviousSecret, r.PreviousSecretUntil = secret(32), secret(24), clockStart.Add(time.Hour)
	e, err := st.Create(t.Context(), r)
	if err != nil {
		t.Fatal(err)
	}
	if !e.Modified.Equal(clockStart) {
		t.Errorf("Create stamped %s, want the injected clock's %s", e.Modified, clockStart)
	}
	waitView(t, w, "signed", "signed in the view", func(v statekv.View) bool { return v.Revision == e.Revision })
	expectPending(t, clk, r.PreviousSecretUntil)
	expectFired(t, clk, r.PreviousSecretUntil.Add(-time.Millisecond), 0)
	expectFired(t, clk, r.PreviousSecretUntil, 1)
	v := waitView(t, w, "signed", "the previous secret dropped", func(v statekv.View) bool { return v.Record.PreviousSecret == "" })
	if v.Record.Secret != r.Secret || !v.Record.PreviousSecretUntil.IsZero() {
		t.Errorf("after the overlap: secret kept %v, previous_secret_until %s", v.Record.Secret == r.Secret, v.Record.PreviousSecretUntil)
	}
	expectPending(t, clk)
}

// TestWatcherFutureTimeIsInvalid: a hand-put record dated in 2999 is held as
// invalid (it made its consumer deliver the whole stream, or paused the
// endpoint until then), by the watcher and by the store's reads alike.
func TestWatcherFutureTimeIsInvalid(t *testing.T) {
	t.Parallel()
	_, kv := testBucket(t)
	st, w := newWatcher(kv, statekv.DefaultPolicy())
	runWatcher(t, w)
	for field, value := range map[string]string{"created_at": "2999-01-01T00:00:00Z", "last_error": "2999-01-01T00:00:00Z"} {
		id := strings.ReplaceAll(field, "_", "-")
		rev := rawPut(t, kv, id, `{"name":"`+id+`","url":"https://hooks.example.com/","status":"active","`+field+`":"`+value+`"}`)
		waitFor(t, wait, id+" in the view", func() bool { v, ok := w.Get(id); return ok && v.Revision == rev })
		if v, _ := w.Get(id); v.Valid() || !errors.Is(v.Err, statekv.ErrInvalidRecord) || !strings.Contains(v.Err.Error(), field) {
			t.Errorf("%s in 2999: view Valid %v Err %v", field, v.Valid(), v.Err)
		}
		if _, err := st.Get(t.Context(), id); !errors.Is(err, statekv.ErrInvalidRecord) {
			t.Errorf("%s in 2999: store.Get: %v", field, err)
		}
	}
	if _, invalid := w.Counts(); invalid != 2 {
		t.Errorf("%d invalid, want 2", invalid)
	}
}
