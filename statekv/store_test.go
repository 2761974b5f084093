package statekv_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/internal/natstest"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
	"github.com/nats-io/nats.go/jetstream"
)

func TestEnsureBucket(t *testing.T) {
	t.Parallel()
	_, _, js := natstest.JetStream(t)
	ctx := t.Context()
	kv, err := statekv.EnsureBucket(ctx, js, statekv.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Bucket() != statekv.DefaultBucket || st.History() != statekv.DefaultHistory {
		t.Errorf("bucket %q history %d, want %q %d", st.Bucket(), st.History(), statekv.DefaultBucket, statekv.DefaultHistory)
	}
	if _, err := kv.Put(ctx, "kept", []byte(minimalJSON)); err != nil {
		t.Fatal(err)
	}
	// A second start (another sidecar, a restart) finds the bucket and keeps its content.
	kv2, err := statekv.EnsureBucket(ctx, js, statekv.BucketConfig{})
	if err != nil {
		t.Fatalf("second EnsureBucket: %v", err)
	}
	if e, err := kv2.Get(ctx, "kept"); err != nil || string(e.Value()) != minimalJSON {
		t.Errorf("record lost by the second EnsureBucket: %v", err)
	}
	// A named bucket with its own history.
	kv3, err := statekv.EnsureBucket(ctx, js, statekv.BucketConfig{Name: "other_hooks", History: 5})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := kv3.Status(ctx); err != nil || st.Bucket() != "other_hooks" || st.History() != 5 {
		t.Errorf("named bucket: %v %v", st, err)
	}
}

func TestStoreCreateGet(t *testing.T) {
	t.Parallel()
	_, kv := testBucket(t)
	st := statekv.NewStore(kv)
	ctx := t.Context()

	r, err := statekv.ParseRecord("sec-alerts", []byte(fullJSON))
	if err != nil {
		t.Fatal(err)
	}
	created, err := st.Create(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if created.Revision == 0 {
		t.Error("Create returned revision 0")
	}
	got := getRecord(t, st, "sec-alerts")
	if got.Revision != created.Revision {
		t.Errorf("Get revision %d, Create revision %d", got.Revision, created.Revision)
	}
	if d := diffRecords(got.Record, r); d != "" {
		t.Error(d)
	}
	if got.Modified.IsZero() || time.Since(got.Modified) > time.Minute {
		t.Errorf("Modified = %s", got.Modified)
	}
	// What is stored is the documented JSON document, without the id.
	e, err := kv.Get(ctx, "sec-alerts")
	if err != nil {
		t.Fatal(err)
	}
	doc := decode(t, e.Value())
	if doc["name"] != "Security alerts" || doc["status"] != "active_tmp" || doc["last_error"] != "2025-03-14T11:30:00.123Z" {
		t.Errorf("stored document %s", e.Value())
	}
	if _, ok := doc["id"]; ok {
		t.Errorf("stored document has an id field: %s", e.Value())
	}

	// Create twice → ErrExists, and the first record stays.
	dup := validRecord("sec-alerts")
	if _, err := st.Create(ctx, dup); !errors.Is(err, statekv.ErrExists) {
		t.Errorf("second Create: %v, want ErrExists", err)
	}
	if got := getRecord(t, st, "sec-alerts"); got.Revision != created.Revision || got.Record.Name != "Security alerts" {
		t.Errorf("second Create changed the record: rev %d name %q", got.Revision, got.Record.Name)
	}

	// Get missing → ErrNotFound.
	if _, err := st.Get(ctx, "missing"); !errors.Is(err, statekv.ErrNotFound) {
		t.Errorf("Get missing: %v, want ErrNotFound", err)
	}
	// Get with an id that cannot be a key → ErrInvalidRecord naming the id.
	if _, err := st.Get(ctx, "Bad.Id"); !errors.Is(err, statekv.ErrInvalidRecord) {
		t.Errorf("Get bad id: %v, want ErrInvalidRecord", err)
	}

	// Create refuses an invalid record and writes nothing.
	bad := validRecord("bad-url")
	bad.URL = "ftp://files.example.com/"
	if _, err := st.Create(ctx, bad); !errors.Is(err, statekv.ErrInvalidRecord) {
		t.Errorf("Create invalid: %v, want ErrInvalidRecord", err)
	}
	if _, err := kv.Get(ctx, "bad-url"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("invalid record stored: %v", err)
	}
}

func TestStoreGetInvalid(t *testing.T) {
	t.Parallel()
	_, kv := testBucket(t)
	st := statekv.NewStore(kv)
	rev := rawPut(t, kv, "broken", `{"name":"Broken","url":"https://x.example","status":"paused"}`)
	e, err := st.Get(t.Context(), "broken")
	if !errors.Is(err, statekv.ErrInvalidRecord) {
		t.Fatalf("Get: %v, want ErrInvalidRecord", err)
	}
	if e.Revision != rev {
		t.Errorf("entry revision %d, want %d", e.Revision, rev)
	}
	for _, want := range []string{"broken", "status", strconv.FormatUint(rev, 10)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestStoreList(t *testing.T) {
	t.Parallel()
	_, kv := testBucket(t)
	st := statekv.NewStore(kv)
	ctx := t.Context()

	entries, invalid, err := st.List(ctx)
	if err != nil || len(entries) != 0 || len(invalid) != 0 {
		t.Fatalf("List on an empty bucket = %v, %v, %v", entries, invalid, err)
	}
	for _, id := range []string{"charlie", "alpha", "bravo-2", "bravo"} {
		if _, err := st.Create(ctx, validRecord(id)); err != nil {
			t.Fatal(err)
		}
	}
	badRev := rawPut(t, kv, "broken", `{"name":"Broken","url":"javascript:alert(1)","status":"active"}`)
	rawPut(t, kv, "garbage", `not json`)
	// A deleted endpoint is not listed.
	if _, err := st.Create(ctx, validRecord("gone")); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "gone"); err != nil {
		t.Fatal(err)
	}

	entries, invalid, err = st.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range entries {
		ids = append(ids, e.Record.ID)
		if d := diffRecords(e.Record, validRecord(e.Record.ID)); d != "" {
			t.Errorf("%s: %s", e.Record.ID, d)
		}
		if e.Revision == 0 {
			t.Errorf("%s: revision 0", e.Record.ID)
		}
	}
	if fmt.Sprint(ids) != "[alpha bravo bravo-2 charlie]" {
		t.Errorf("listed %v, want [alpha bravo bravo-2 charlie]", ids)
	}
	if len(invalid) != 2 || invalid[0].ID != "broken" || invalid[1].ID != "garbage" {
		t.Fatalf("invalid = %+v, want broken and garbage", invalid)
	}
	if invalid[0].Revision != badRev {
		t.Errorf("broken revision %d, want %d", invalid[0].Revision, badRev)
	}
	for _, in := range invalid {
		if !errors.Is(in.Err, statekv.ErrInvalidRecord) {
			t.Errorf("%s: %v does not wrap ErrInvalidRecord", in.ID, in.Err)
		}
	}
	if !strings.Contains(invalid[0].Err.Error(), "url") {
		t.Errorf("broken: %v does not name the url field", invalid[0].Err)
	}
}

// TestStoreUpdateConcurrent: 8 writers on 8 connections (8 sidecars) each
// increment a counter kept in the note 20 times; compare-and-set with retry
// loses none of the 160 increments.
func TestStoreUpdateConcurrent(t *testing.T) {
	t.Parallel()
	s, kv := testBucket(t)
	ctx := t.Context()
	r := validRecord("counter")
	r.Note = "0"
	if _, err := statekv.NewStore(kv).Create(ctx, r); err != nil {
		t.Fatal(err)
	}
	const writers, each = 8, 20
	stores := make([]*statekv.Store, writers)
	for i := range stores {
		stores[i] = statekv.NewStore(bucketOn(t, s))
	}
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make(chan error, writers*each)
		tries int // how often change was called: more than writers*each means there were conflicts
		mu    sync.Mutex
	)
	for i, st := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for j := 0; j < each; j++ {
				_, wrote, err := st.Update(ctx, "counter", func(r statekv.Record) (statekv.Record, bool, error) {
					mu.Lock()
					tries++
					mu.Unlock()
					n, err := strconv.Atoi(r.Note)
					if err != nil {
						return r, false, err
					}
					r.Note = strconv.Itoa(n + 1)
					return r, true, nil
				})
				if err == nil && !wrote {
					err = fmt.Errorf("writer %d update %d: not written", i, j)
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got := getRecord(t, statekv.NewStore(kv), "counter")
	if got.Record.Note != strconv.Itoa(writers*each) {
		t.Errorf("counter = %s, want %d", got.Record.Note, writers*each)
	}
	if got.Revision != 1+writers*each {
		t.Errorf("revision %d, want %d (one create, one write per increment)", got.Revision, 1+writers*each)
	}
	t.Logf("%d change calls for %d increments", tries, writers*each)
}

// TestStoreApplyOnce: two sidecars apply the same due timed transition at the
// same moment; compare-and-set lets exactly one write it.
func TestStoreApplyOnce(t *testing.T) {
	t.Parallel()
	s, kv := testBucket(t)
	ctx := t.Context()
	a, b := statekv.NewStore(bucketOn(t, s)), statekv.NewStore(bucketOn(t, s))
	clock := func() time.Time { return now }
	const keys = 10
	for k := 0; k < keys; k++ {
		id := fmt.Sprintf("ep-%d", k)
		r := validRecord(id)
		r.Status, r.FirstError, r.LastError, r.Note = statekv.StatusInactiveTmp, now.Add(-5*time.Minute), now.Add(-2*time.Minute), note503
		if _, err := statekv.NewStore(kv).Create(ctx, r); err != nil {
			t.Fatal(err)
		}
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			wrote [2]bool
			errs  [2]error
		)
		for i, st := range []*statekv.Store{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, wrote[i], errs[i] = st.Apply(ctx, id, statekv.Event{Input: statekv.ReactivateTimer}, clock, policy)
			}()
		}
		close(start)
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("%s: Apply errors %v %v", id, errs[0], errs[1])
		}
		if wrote[0] == wrote[1] {
			t.Errorf("%s: Apply wrote %v and %v, want exactly one write", id, wrote[0], wrote[1])
		}
		if got := historyStatuses(t, kv, id); fmt.Sprint(got) != "[inactive_tmp active_tmp]" {
			t.Errorf("%s: history %v, want [inactive_tmp active_tmp]", id, got)
		}
		got := getRecord(t, a, id)
		want := r
		want.Status = statekv.StatusActiveTmp
		if d := diffRecords(got.Record, want); d != "" {
			t.Errorf("%s: %s", id, d)
		}
	}
}

// TestStoreApply: the stored record goes through the state machine.
func TestStoreApply(t *testing.T) {
	t.Parallel()
	_, kv := testBucket(t)
	st := statekv.NewStore(kv)
	ctx := t.Context()
	if _, err := st.Create(ctx, validRecord("ep")); err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { return now }
	e, wrote, err := st.Apply(ctx, "ep", statekv.Event{Input: statekv.TemporaryFailure, Note: note500}, clock, policy)
	if err != nil || !wrote {
		t.Fatalf("Apply temporary: wrote %v, %v", wrote, err)
	}
	got := getRecord(t, st, "ep")
	if got.Revision != e.Revision || got.Record.Status != statekv.StatusInactiveTmp || !got.Record.FirstError.Equal(now) ||
		!got.Record.LastError.Equal(now) || got.Record.Note != note500 {
		t.Errorf("stored after temporary failure: %+v (rev %d, Apply said %d)", got.Record, got.Revision, e.Revision)
	}
	// A success changes nothing and writes nothing.
	e2, wrote, err := st.Apply(ctx, "ep", statekv.Event{Input: statekv.Success}, clock, policy)
	if err != nil || wrote || e2.Revision != got.Revision {
		t.Errorf("Apply success: wrote %v rev %d (was %d), %v", wrote, e2.Revision, got.Revision, err)
	}
	if h := history(t, kv, "ep"); len(h) != 2 {
		t.Errorf("history has %d revisions, want 2", len(h))
	}
	// Missing endpoint.
	if _, _, err := st.Apply(ctx, "missing", statekv.Event{Input: statekv.Success}, clock, policy); !errors.Is(err, statekv.ErrNotFound) {
		t.Errorf("Apply missing: %v, want ErrNotFound", err)
	}
}

func TestStoreUpdate(t *testing.T) {
	t.Parallel()
	_, kv := testBucket(t)
	st := statekv.NewStore(kv)
	ctx := t.Context()

	// Unknown fields written by hand survive an update.
	rev := rawPut(t, kv, "ops", `{"name":"Ops","url":"https://ops.example.com/hook","status":"active","team":"sec","tags":["a","b"]}`)
	e, wrote, err := st.Update(ctx, "ops", func(r statekv.Record) (statekv.Record, bool, error) {
		r.Name = "Ops team"
		return r, true, nil
	})
	if err != nil || !wrote || e.Revision <= rev {
		t.Fatalf("Update: wrote %v rev %d, %v", wrote, e.Revision, err)
	}
	raw, err := kv.Get(ctx, "ops")
	if err != nil {
		t.Fatal(err)
	}
	doc := decode(t, raw.Value())
	if doc["name"] != "Ops team" || doc["team"] != "sec" || fmt.Sprint(doc["tags"]) != "[a b]" {
		t.Errorf("stored after update: %s", raw.Value())
	}

	// change says "don't write": nothing written, current entry returned.
	e2, wrote, err := st.Update(ctx, "ops", func(r statekv.Record) (statekv.Record, bool, error) {
		r.Name = "ignored"
		return r, false, nil
	})
	if err != nil || wrote || e2.Revision != e.Revision || e2.Record.Name != "Ops team" {
		t.Errorf("no-write Update: wrote %v rev %d name %q, %v", wrote, e2.Revision, e2.Record.Name, err)
	}
	// change fails: its error comes back, nothing written.
	boom := errors.New("boom")
	if _, wrote, err := st.Update(ctx, "ops", func(r statekv.Record) (statekv.Record, bool, error) {
		return r, true, boom
	}); !errors.Is(err, boom) || wrote {
		t.Errorf("failing change: wrote %v, %v", wrote, err)
	}
	// change makes the record invalid: refused, nothing written.
	if _, wrote, err := st.Update(ctx, "ops", func(r statekv.Record) (statekv.Record, bool, error) {
		r.Status = "paused"
		return r, true, nil
	}); !errors.Is(err, statekv.ErrInvalidRecord) || wrote {
		t.Errorf("invalidating change: wrote %v, %v", wrote, err)
	}
	// change cannot move the record to another key.
	if _, _, err := st.Update(ctx, "ops", func(r statekv.Record) (statekv.Record, bool, error) {
		r.ID = "elsewhere"
		r.Note = "renamed?"
		return r, true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(ctx, "elsewhere"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("Update wrote another key: %v", err)
	}
	if got := getRecord(t, st, "ops"); got.Record.Note != "renamed?" || got.Record.Name != "Ops team" {
		t.Errorf("ops after update: %+v", got.Record)
	}
	// Missing endpoint.
	if _, _, err := st.Update(ctx, "missing", func(r statekv.Record) (statekv.Record, bool, error) {
		t.Error("change called for a missing endpoint")
		return r, true, nil
	}); !errors.Is(err, statekv.ErrNotFound) {
		t.Errorf("Update missing: %v, want ErrNotFound", err)
	}
}

// TestStoreUpdateInvalidStored: a value that does not parse is never overwritten.
func TestStoreUpdateInvalidStored(t *testing.T) {
	t.Parallel()
	_, kv := testBucket(t)
	st := statekv.NewStore(kv)
	ctx := t.Context()
	const broken = `{"name":"Broken","url":"https://x.example","status":"inactive_tmp","last_error":"yesterday","team":"sec"}`
	rev := rawPut(t, kv, "broken", broken)

	_, wrote, err := st.Update(ctx, "broken", func(r statekv.Record) (statekv.Record, bool, error) {
		t.Error("change called on an invalid record")
		r.Status = statekv.StatusActive
		return r, true, nil
	})
	if !errors.Is(err, statekv.ErrInvalidRecord) || wrote {
		t.Errorf("Update: wrote %v, %v; want ErrInvalidRecord", wrote, err)
	}
	_, wrote, err = st.Apply(ctx, "broken", statekv.Event{Input: statekv.UserActivate}, func() time.Time { return now }, policy)
	if !errors.Is(err, statekv.ErrInvalidRecord) || wrote {
		t.Errorf("Apply: wrote %v, %v; want ErrInvalidRecord", wrote, err)
	}
	e, err := kv.Get(ctx, "broken")
	if err != nil {
		t.Fatal(err)
	}
	if e.Revision() != rev || string(e.Value()) != broken {
		t.Errorf("invalid value overwritten: rev %d (was %d) value %s", e.Revision(), rev, e.Value())
	}
}

func TestStoreDelete(t *testing.T) {
	t.Parallel()
	_, kv := testBucket(t)
	st := statekv.NewStore(kv)
	ctx := t.Context()
	if _, err := st.Create(ctx, validRecord("ep")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Apply(ctx, "ep", statekv.Event{Input: statekv.PermanentFailure, Note: note404}, func() time.Time { return now }, policy); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "ep"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, "ep"); !errors.Is(err, statekv.ErrNotFound) {
		t.Errorf("Get after Delete: %v, want ErrNotFound", err)
	}
	if err := st.Delete(ctx, "ep"); !errors.Is(err, statekv.ErrNotFound) {
		t.Errorf("second Delete: %v, want ErrNotFound", err)
	}
	if err := st.Delete(ctx, "never"); !errors.Is(err, statekv.ErrNotFound) {
		t.Errorf("Delete missing: %v, want ErrNotFound", err)
	}
	if _, _, err := st.Update(ctx, "ep", func(r statekv.Record) (statekv.Record, bool, error) { return r, true, nil }); !errors.Is(err, statekv.ErrNotFound) {
		t.Errorf("Update after Delete: %v, want ErrNotFound", err)
	}
	// History is kept for `nats kv history`: both writes and the delete marker.
	if got := historyStatuses(t, kv, "ep"); fmt.Sprint(got) != "[active inactive_permanent <deleted>]" {
		t.Errorf("history %v, want [active inactive_permanent <deleted>]", got)
	}
	// The id can be used again.
	if _, err := st.Create(ctx, validRecord("ep")); err != nil {
		t.Errorf("Create after Delete: %v", err)
	}
	if got := getRecord(t, st, "ep"); got.Record.Status != statekv.StatusActive {
		t.Errorf("re-created: %+v", got.Record)
	}
}

// TestStoreHistory: every write is a revision that `nats kv history` shows.
func TestStoreHistory(t *testing.T) {
	t.Parallel()
	_, kv := testBucket(t)
	st := statekv.NewStore(kv)
	ctx := t.Context()
	if _, err := st.Create(ctx, validRecord("ep")); err != nil {
		t.Fatal(err)
	}
	at := now
	clock := func() time.Time { return at }
	steps := []statekv.Event{
		{Input: statekv.TemporaryFailure, Note: note500},
		{Input: statekv.ReactivateTimer},
		{Input: statekv.Success}, // no write
		{Input: statekv.RecoverTimer},
		{Input: statekv.UserDeactivate, Note: "Deactivated by admin"},
		{Input: statekv.UserActivate},
	}
	for _, ev := range steps {
		at = at.Add(25 * time.Hour)
		if _, _, err := st.Apply(ctx, "ep", ev, clock, policy); err != nil {
			t.Fatalf("%s: %v", ev.Input, err)
		}
	}
	want := "[active inactive_tmp active_tmp active inactive_permanent active]"
	if got := historyStatuses(t, kv, "ep"); fmt.Sprint(got) != want {
		t.Errorf("history %v, want %s", got, want)
	}
	h := history(t, kv, "ep")
	for i := 1; i < len(h); i++ {
		if h[i].Revision() <= h[i-1].Revision() {
			t.Errorf("revisions not increasing: %d then %d", h[i-1].Revision(), h[i].Revision())
		}
	}
	var last map[string]any
	if err := json.Unmarshal(h[len(h)-1].Value(), &last); err != nil {
		t.Fatal(err)
	}
	if last["note"] != nil || last["first_error"] != nil || last["last_error"] != nil {
		t.Errorf("after user activation: %v", last)
	}
}

// TestStoreRewriteLargeRecord: a hand-written record near the size limit, with
// HTML in an unknown field, is still valid after the store rewrites it.
func TestStoreRewriteLargeRecord(t *testing.T) {
	t.Parallel()
	_, kv := testBucket(t)
	st := statekv.NewStore(kv)
	ctx := t.Context()
	html := strings.Repeat("<p>a & b</p>", 5000) // 60 000 bytes; 6 times that with \u003c escapes
	rawPut(t, kv, "big", `{"name":"Big","url":"https://big.example.com/","status":"active","template":"`+html+`"}`)
	if _, wrote, err := st.Apply(ctx, "big", statekv.Event{Input: statekv.TemporaryFailure, Note: note503}, func() time.Time { return now }, policy); err != nil || !wrote {
		t.Fatalf("Apply: wrote %v, %v", wrote, err)
	}
	got := getRecord(t, st, "big") // fails if the rewrite made the record invalid
	if got.Record.Status != statekv.StatusInactiveTmp || string(got.Record.Extra()["template"]) != `"`+html+`"` {
		t.Errorf("after rewrite: status %s, template kept %v", got.Record.Status, string(got.Record.Extra()["template"]) == `"`+html+`"`)
	}
}

// TestStoreClock: Create and Update stamp the entry they return with the
// store's clock; NewStore's is the wall clock.
func TestStoreClock(t *testing.T) {
	t.Parallel()
	_, kv := testBucket(t)
	ctx := t.Context()
	at := time.Date(2031, 5, 6, 7, 0, 0, 0, time.UTC)
	clk := newManualClock(at)
	st := statekv.NewStore(kv).WithClock(clk)
	e, err := st.Create(ctx, validRecord("stamped"))
	if err != nil {
		t.Fatal(err)
	}
	if !e.Modified.Equal(at) {
		t.Errorf("Create: modified %s, want %s", e.Modified, at)
	}
	clk.Set(at.Add(time.Second))
	e, _, err = st.Update(ctx, "stamped", func(r statekv.Record) (statekv.Record, bool, error) { r.Note = "edited"; return r, true, nil })
	if err != nil {
		t.Fatal(err)
	}
	if !e.Modified.Equal(at.Add(time.Second)) {
		t.Errorf("Update: modified %s, want %s", e.Modified, at.Add(time.Second))
	}
	before := time.Now()
	e, err = statekv.NewStore(kv).Create(ctx, validRecord("wall"))
	if err != nil {
		t.Fatal(err)
	}
	if e.Modified.Before(before) || e.Modified.After(time.Now()) {
		t.Errorf("NewStore: modified %s, want the wall clock", e.Modified)
	}
}
