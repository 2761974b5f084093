package statekv_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// now is the injected clock of every transition test.
var now = time.Date(2025, 3, 14, 12, 0, 0, 0, time.UTC)

// policy is DefectDojo's: reactivate after 60 s, recover after 24 h, give up after 24 h.
var policy = statekv.DefaultPolicy()

const (
	note500     = "Response status code: 500"
	note503     = "Response status code: 503"
	note404     = "Response status code: 404"
	noteRefused = `Post "https://hooks.example.com/a": dial tcp 192.0.2.1:443: connect: connection refused`
)

// rec builds a record in a given state; zero times mean null.
func rec(status statekv.Status, first, last time.Time, note string) statekv.Record {
	r := validRecord("ep")
	r.Owner = "alice"
	r.Events = []string{"product_added"}
	r.Status, r.FirstError, r.LastError, r.Note = status, first, last, note
	return r
}

type transitionCase struct {
	name    string
	before  statekv.Record
	ev      statekv.Event
	at      time.Time // zero: now
	want    statekv.Record
	changed bool
}

func runTransitionCases(t *testing.T, cases []transitionCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			at := tc.at
			if at.IsZero() {
				at = now
			}
			got, changed := statekv.Transition(tc.before, tc.ev, at, policy)
			if d := diffRecords(got, tc.want); d != "" {
				t.Errorf("Transition(%s, %s) record: %s", tc.before.Status, tc.ev.Input, d)
			}
			if changed != tc.changed {
				t.Errorf("Transition(%s, %s) changed = %v, want %v", tc.before.Status, tc.ev.Input, changed, tc.changed)
			}
			// Whatever the transition, the definition of the endpoint is untouched and the result is a valid record.
			if got.Name != tc.before.Name || got.URL != tc.before.URL || got.Owner != tc.before.Owner {
				t.Errorf("definition changed: %+v", got)
			}
			if err := got.Validate(); err != nil {
				t.Errorf("result does not validate: %v", err)
			}
		})
	}
}

// TestTransitionTable has one case per row of DESIGN.md section 5's table
// (removal by a user is a KV delete: see TestStoreDelete).
func TestTransitionTable(t *testing.T) {
	t.Parallel()
	var (
		hourAgo    = now.Add(-time.Hour)
		twoHrsAgo  = now.Add(-2 * time.Hour)
		dayAgo     = now.Add(-24 * time.Hour)
		overDayAgo = now.Add(-25 * time.Hour)
		minuteAgo  = now.Add(-time.Minute)
		zero       time.Time
	)
	activeWithNote := rec(statekv.StatusActive, zero, zero, statekv.RecoveryNote)
	inTmp := rec(statekv.StatusInactiveTmp, twoHrsAgo, minuteAgo, note503)

	cases := []transitionCase{
		{
			name:   "active/success → active, all unchanged",
			before: activeWithNote, ev: statekv.Event{Input: statekv.Success},
			want: activeWithNote, changed: false,
		},
		{
			name:   "active_tmp/success → active_tmp, all unchanged",
			before: rec(statekv.StatusActiveTmp, twoHrsAgo, hourAgo, note503), ev: statekv.Event{Input: statekv.Success},
			want: rec(statekv.StatusActiveTmp, twoHrsAgo, hourAgo, note503), changed: false,
		},
		{
			name:   "active/temporary → inactive_tmp, first_error=last_error=now, note",
			before: activeWithNote, ev: statekv.Event{Input: statekv.TemporaryFailure, Note: note500},
			want: rec(statekv.StatusInactiveTmp, now, now, note500), changed: true,
		},
		{
			name:   "active/temporary (timeout, error text as note) → inactive_tmp",
			before: rec(statekv.StatusActive, zero, zero, ""), ev: statekv.Event{Input: statekv.TemporaryFailure, Note: "context deadline exceeded"},
			want: rec(statekv.StatusInactiveTmp, now, now, "context deadline exceeded"), changed: true,
		},
		{
			name:   "active_tmp (first_error ≤ give-up ago)/temporary → inactive_tmp, first_error unchanged, last_error=now",
			before: rec(statekv.StatusActiveTmp, twoHrsAgo, hourAgo, note503), ev: statekv.Event{Input: statekv.TemporaryFailure, Note: note500},
			want: rec(statekv.StatusInactiveTmp, twoHrsAgo, now, note500), changed: true,
		},
		{
			name:   "active_tmp (first_error > give-up ago)/temporary → inactive_permanent, first_error unchanged, last_error=now",
			before: rec(statekv.StatusActiveTmp, overDayAgo, hourAgo, note503), ev: statekv.Event{Input: statekv.TemporaryFailure, Note: note500},
			want: rec(statekv.StatusInactivePermanent, overDayAgo, now, note500), changed: true,
		},
		{
			name:   "any active (active)/permanent → inactive_permanent, first_error=last_error=now",
			before: activeWithNote, ev: statekv.Event{Input: statekv.PermanentFailure, Note: note404},
			want: rec(statekv.StatusInactivePermanent, now, now, note404), changed: true,
		},
		{
			name:   "any active (active_tmp)/permanent → inactive_permanent, first_error=last_error=now",
			before: rec(statekv.StatusActiveTmp, twoHrsAgo, hourAgo, note503), ev: statekv.Event{Input: statekv.PermanentFailure, Note: noteRefused},
			want: rec(statekv.StatusInactivePermanent, now, now, noteRefused), changed: true,
		},
		{
			name:   "inactive_tmp, last_error ≥ reactivate-after ago/timer → active_tmp, errors and note unchanged",
			before: inTmp, ev: statekv.Event{Input: statekv.ReactivateTimer},
			want: rec(statekv.StatusActiveTmp, twoHrsAgo, minuteAgo, note503), changed: true,
		},
		{
			name:   "active_tmp, last_error > recover-after ago/timer → active, errors null, note Reactivation from active_tmp",
			before: rec(statekv.StatusActiveTmp, overDayAgo, overDayAgo, note503), ev: statekv.Event{Input: statekv.RecoverTimer},
			want: rec(statekv.StatusActive, zero, zero, statekv.RecoveryNote), changed: true,
		},
	}
	// any / activation by a user → active, errors null, note null
	// any / deactivation by a user → inactive_permanent, errors null, note says who
	for _, before := range []statekv.Record{
		rec(statekv.StatusActive, zero, zero, statekv.RecoveryNote),
		rec(statekv.StatusActiveTmp, twoHrsAgo, hourAgo, note503),
		rec(statekv.StatusInactiveTmp, twoHrsAgo, minuteAgo, note503),
		rec(statekv.StatusInactivePermanent, dayAgo, hourAgo, note404),
	} {
		cases = append(cases,
			transitionCase{
				name:   "any (" + string(before.Status) + ")/activation by a user → active, errors null, note null",
				before: before, ev: statekv.Event{Input: statekv.UserActivate},
				want: rec(statekv.StatusActive, zero, zero, ""), changed: true,
			},
			transitionCase{
				name:   "any (" + string(before.Status) + ")/deactivation by a user → inactive_permanent, errors null, note says who",
				before: before, ev: statekv.Event{Input: statekv.UserDeactivate, Note: "Deactivated by admin"},
				want: rec(statekv.StatusInactivePermanent, zero, zero, "Deactivated by admin"), changed: true,
			},
		)
	}
	runTransitionCases(t, cases)
}

// TestTransitionBoundaries checks the exact edges of the three durations.
func TestTransitionBoundaries(t *testing.T) {
	t.Parallel()
	ms := time.Millisecond
	zero := time.Time{}
	give, react, recov := policy.GiveUpAfter, policy.ReactivateAfter, policy.RecoverAfter
	temp := statekv.Event{Input: statekv.TemporaryFailure, Note: note503}
	runTransitionCases(t, []transitionCase{
		{
			name:   "active_tmp, first_error exactly give-up ago/temporary → inactive_tmp",
			before: rec(statekv.StatusActiveTmp, now.Add(-give), now.Add(-time.Hour), note500), ev: temp,
			want: rec(statekv.StatusInactiveTmp, now.Add(-give), now, note503), changed: true,
		},
		{
			name:   "active_tmp, first_error give-up+1ms ago/temporary → inactive_permanent",
			before: rec(statekv.StatusActiveTmp, now.Add(-give-ms), now.Add(-time.Hour), note500), ev: temp,
			want: rec(statekv.StatusInactivePermanent, now.Add(-give-ms), now, note503), changed: true,
		},
		{
			name:   "inactive_tmp, last_error exactly reactivate-after ago/timer → active_tmp",
			before: rec(statekv.StatusInactiveTmp, now.Add(-time.Hour), now.Add(-react), note503), ev: statekv.Event{Input: statekv.ReactivateTimer},
			want: rec(statekv.StatusActiveTmp, now.Add(-time.Hour), now.Add(-react), note503), changed: true,
		},
		{
			name:   "inactive_tmp, last_error reactivate-after-1ms ago/timer → unchanged",
			before: rec(statekv.StatusInactiveTmp, now.Add(-time.Hour), now.Add(-react+ms), note503), ev: statekv.Event{Input: statekv.ReactivateTimer},
			want: rec(statekv.StatusInactiveTmp, now.Add(-time.Hour), now.Add(-react+ms), note503), changed: false,
		},
		{
			name:   "active_tmp, last_error exactly recover-after ago/timer → unchanged (strictly more than)",
			before: rec(statekv.StatusActiveTmp, now.Add(-recov-time.Hour), now.Add(-recov), note503), ev: statekv.Event{Input: statekv.RecoverTimer},
			want: rec(statekv.StatusActiveTmp, now.Add(-recov-time.Hour), now.Add(-recov), note503), changed: false,
		},
		{
			name:   "active_tmp, last_error recover-after+1ms ago/timer → active, errors null, note Reactivation from active_tmp",
			before: rec(statekv.StatusActiveTmp, now.Add(-recov-time.Hour), now.Add(-recov-ms), note503), ev: statekv.Event{Input: statekv.RecoverTimer},
			want: rec(statekv.StatusActive, zero, zero, statekv.RecoveryNote), changed: true,
		},
		{
			name:   "sub-millisecond clock is stored at millisecond precision",
			before: rec(statekv.StatusActive, zero, zero, ""), ev: temp, at: now.Add(999 * time.Microsecond),
			want: rec(statekv.StatusInactiveTmp, now, now, note503), changed: true,
		},
	})
}

// TestTransitionInFlightResults covers outcomes of requests that were in flight
// when the endpoint left the active states (several requests failing at once).
func TestTransitionInFlightResults(t *testing.T) {
	t.Parallel()
	zero := time.Time{}
	first := now.Add(-10 * time.Second)

	// Three in-flight requests fail one after the other: the first opens the
	// outage, the others move last_error and the note and keep first_error.
	r := rec(statekv.StatusActive, zero, zero, "")
	steps := []struct {
		at   time.Time
		note string
	}{{first, note500}, {first.Add(20 * time.Millisecond), note503}, {first.Add(45 * time.Millisecond), "Response status code: 429"}}
	for i, s := range steps {
		next, changed := statekv.Transition(r, statekv.Event{Input: statekv.TemporaryFailure, Note: s.note}, s.at, policy)
		if !changed {
			t.Fatalf("failure %d: changed = false", i)
		}
		want := rec(statekv.StatusInactiveTmp, first, s.at, s.note)
		if d := diffRecords(next, want); d != "" {
			t.Fatalf("failure %d: %s", i, d)
		}
		r = next
	}

	runTransitionCases(t, []transitionCase{
		{
			name:   "inactive_tmp/temporary → inactive_tmp, first_error kept, last_error and note move",
			before: rec(statekv.StatusInactiveTmp, first, first, note500), ev: statekv.Event{Input: statekv.TemporaryFailure, Note: note503},
			want: rec(statekv.StatusInactiveTmp, first, now, note503), changed: true,
		},
		{
			name:   "inactive_tmp without first_error (hand-edited)/temporary → outage starts now",
			before: rec(statekv.StatusInactiveTmp, zero, first, note500), ev: statekv.Event{Input: statekv.TemporaryFailure, Note: note503},
			want: rec(statekv.StatusInactiveTmp, now, now, note503), changed: true,
		},
		{
			name:   "active_tmp without first_error (hand-edited)/temporary → inactive_tmp, outage starts now",
			before: rec(statekv.StatusActiveTmp, zero, now.Add(-time.Hour), note500), ev: statekv.Event{Input: statekv.TemporaryFailure, Note: note503},
			want: rec(statekv.StatusInactiveTmp, now, now, note503), changed: true,
		},
		{
			name:   "inactive_tmp/permanent → inactive_permanent, first_error kept, last_error=now",
			before: rec(statekv.StatusInactiveTmp, first, first, note500), ev: statekv.Event{Input: statekv.PermanentFailure, Note: note404},
			want: rec(statekv.StatusInactivePermanent, first, now, note404), changed: true,
		},
		{
			name:   "inactive_permanent/temporary → unchanged",
			before: rec(statekv.StatusInactivePermanent, first, first, note404), ev: statekv.Event{Input: statekv.TemporaryFailure, Note: note503},
			want: rec(statekv.StatusInactivePermanent, first, first, note404), changed: false,
		},
		{
			name:   "inactive_permanent/permanent → unchanged",
			before: rec(statekv.StatusInactivePermanent, first, first, note404), ev: statekv.Event{Input: statekv.PermanentFailure, Note: noteRefused},
			want: rec(statekv.StatusInactivePermanent, first, first, note404), changed: false,
		},
	})
}

// TestTransitionNothingChanges: successes in every state, timers in the wrong
// state, user actions that find the record already so, unknown inputs.
func TestTransitionNothingChanges(t *testing.T) {
	t.Parallel()
	zero := time.Time{}
	old := now.Add(-48 * time.Hour) // long past every duration: only the state makes the timer inapplicable
	states := map[statekv.Status]statekv.Record{
		statekv.StatusActive:            rec(statekv.StatusActive, zero, zero, statekv.RecoveryNote),
		statekv.StatusActiveTmp:         rec(statekv.StatusActiveTmp, old, old, note503),
		statekv.StatusInactiveTmp:       rec(statekv.StatusInactiveTmp, old, old, note503),
		statekv.StatusInactivePermanent: rec(statekv.StatusInactivePermanent, old, old, note404),
	}
	var cases []transitionCase
	unchanged := func(name string, r statekv.Record, ev statekv.Event) {
		cases = append(cases, transitionCase{name: name, before: r, ev: ev, want: r, changed: false})
	}
	for _, st := range []statekv.Status{statekv.StatusActive, statekv.StatusActiveTmp, statekv.StatusInactiveTmp, statekv.StatusInactivePermanent} {
		unchanged(string(st)+"/success", states[st], statekv.Event{Input: statekv.Success, Note: "ignored"})
		unchanged(string(st)+"/unknown input", states[st], statekv.Event{Input: statekv.Input(99), Note: "ignored"})
	}
	for _, st := range []statekv.Status{statekv.StatusActive, statekv.StatusActiveTmp, statekv.StatusInactivePermanent} {
		unchanged(string(st)+"/reactivate timer (wrong state)", states[st], statekv.Event{Input: statekv.ReactivateTimer})
	}
	for _, st := range []statekv.Status{statekv.StatusActive, statekv.StatusInactiveTmp, statekv.StatusInactivePermanent} {
		unchanged(string(st)+"/recover timer (wrong state)", states[st], statekv.Event{Input: statekv.RecoverTimer})
	}
	unchanged("active with null errors and note/user activation", rec(statekv.StatusActive, zero, zero, ""), statekv.Event{Input: statekv.UserActivate})
	unchanged("inactive_permanent deactivated with the same note/user deactivation",
		rec(statekv.StatusInactivePermanent, zero, zero, "Deactivated by admin"), statekv.Event{Input: statekv.UserDeactivate, Note: "Deactivated by admin"})
	runTransitionCases(t, cases)
}

func TestTransitionNoteTruncation(t *testing.T) {
	t.Parallel()
	zero := time.Time{}
	long := strings.Repeat("x", 1500)
	exact := strings.Repeat("y", statekv.MaxNoteLength)
	multi := strings.Repeat("é", 1200) // 2 bytes each: the limit counts characters, not bytes
	mixed := strings.Repeat("a", 999) + "€€€"
	runTransitionCases(t, []transitionCase{
		{
			name:   "temporary note of 1500 chars → first 1000",
			before: rec(statekv.StatusActive, zero, zero, ""), ev: statekv.Event{Input: statekv.TemporaryFailure, Note: long},
			want: rec(statekv.StatusInactiveTmp, now, now, long[:1000]), changed: true,
		},
		{
			name:   "permanent note of exactly 1000 chars kept whole",
			before: rec(statekv.StatusActive, zero, zero, ""), ev: statekv.Event{Input: statekv.PermanentFailure, Note: exact},
			want: rec(statekv.StatusInactivePermanent, now, now, exact), changed: true,
		},
		{
			name:   "deactivation note of 1200 two-byte chars → first 1000 chars",
			before: rec(statekv.StatusActive, zero, zero, ""), ev: statekv.Event{Input: statekv.UserDeactivate, Note: multi},
			want: rec(statekv.StatusInactivePermanent, zero, zero, strings.Repeat("é", 1000)), changed: true,
		},
		{
			name:   "note cut on a character boundary",
			before: rec(statekv.StatusActive, zero, zero, ""), ev: statekv.Event{Input: statekv.TemporaryFailure, Note: mixed},
			want: rec(statekv.StatusInactiveTmp, now, now, strings.Repeat("a", 999)+"€"), changed: true,
		},
	})
	got, _ := statekv.Transition(rec(statekv.StatusActive, zero, zero, ""), statekv.Event{Input: statekv.TemporaryFailure, Note: mixed}, now, policy)
	if !utf8.ValidString(got.Note) || utf8.RuneCountInString(got.Note) != statekv.MaxNoteLength {
		t.Errorf("truncated note: valid UTF-8 %v, %d characters", utf8.ValidString(got.Note), utf8.RuneCountInString(got.Note))
	}
}

// TestTransitionKeepsOtherFields: a transition touches only status, errors and note.
func TestTransitionKeepsOtherFields(t *testing.T) {
	t.Parallel()
	before, err := statekv.ParseRecord("ep", []byte(`{"name":"Ops","url":"https://ops.example.com/hook","header_name":"Authorization",
		"header_value":"Bearer s3cret","owner":"alice","events":["scan_added"],"status":"active","created_at":"2025-01-01T00:00:00Z","team":"sec"}`))
	if err != nil {
		t.Fatal(err)
	}
	got, changed := statekv.Transition(before, statekv.Event{Input: statekv.TemporaryFailure, Note: note500}, now, policy)
	if !changed {
		t.Fatal("changed = false")
	}
	want := before
	want.Status, want.FirstError, want.LastError, want.Note = statekv.StatusInactiveTmp, now, now, note500
	if d := diffRecords(got, want); d != "" {
		t.Error(d)
	}
}

func TestNextTimer(t *testing.T) {
	t.Parallel()
	p := statekv.Policy{ReactivateAfter: 50 * time.Millisecond, RecoverAfter: 100 * time.Millisecond, GiveUpAfter: time.Second}
	last := now.Add(-10 * time.Millisecond)
	cases := []struct {
		name   string
		r      statekv.Record
		due    time.Time
		in     statekv.Input
		ok     bool
		before bool // Transition at due-1ms leaves the record unchanged and at due changes it
	}{
		{"inactive_tmp → reactivate timer at last_error + reactivate-after",
			rec(statekv.StatusInactiveTmp, last, last, note503), last.Add(p.ReactivateAfter), statekv.ReactivateTimer, true, true},
		{"active_tmp → recover timer just past last_error + recover-after",
			rec(statekv.StatusActiveTmp, last, last, note503), last.Add(p.RecoverAfter + time.Millisecond), statekv.RecoverTimer, true, true},
		{"overdue inactive_tmp → due in the past",
			rec(statekv.StatusInactiveTmp, now.Add(-time.Hour), now.Add(-time.Hour), note503), now.Add(-time.Hour + p.ReactivateAfter), statekv.ReactivateTimer, true, true},
		{"active → no timer", rec(statekv.StatusActive, time.Time{}, time.Time{}, ""), time.Time{}, 0, false, false},
		{"active with stale errors → no timer", rec(statekv.StatusActive, last, last, note503), time.Time{}, 0, false, false},
		{"inactive_permanent → no timer", rec(statekv.StatusInactivePermanent, last, last, note404), time.Time{}, 0, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			due, in, ok := statekv.NextTimer(tc.r, p)
			if ok != tc.ok || in != tc.in || !due.Equal(tc.due) {
				t.Fatalf("NextTimer = (%s, %s, %v), want (%s, %s, %v)", due, in, ok, tc.due, tc.in, tc.ok)
			}
			if !tc.before {
				return
			}
			if _, changed := statekv.Transition(tc.r, statekv.Event{Input: in}, due.Add(-time.Millisecond), p); changed {
				t.Errorf("%s 1ms before due changed the record", in)
			}
			if _, changed := statekv.Transition(tc.r, statekv.Event{Input: in}, due, p); !changed {
				t.Errorf("%s at due did not change the record", in)
			}
		})
	}
}

func TestPolicy(t *testing.T) {
	t.Parallel()
	if err := statekv.DefaultPolicy().Validate(); err != nil {
		t.Errorf("default policy: %v", err)
	}
	if p := statekv.DefaultPolicy(); p.ReactivateAfter != 60*time.Second || p.RecoverAfter != 24*time.Hour || p.GiveUpAfter != 24*time.Hour {
		t.Errorf("default policy = %+v, want DefectDojo's 60s/24h/24h", p)
	}
	for _, p := range []statekv.Policy{
		{ReactivateAfter: 0, RecoverAfter: time.Second, GiveUpAfter: time.Second},
		{ReactivateAfter: time.Second, RecoverAfter: -time.Second, GiveUpAfter: time.Second},
		{ReactivateAfter: time.Second, RecoverAfter: time.Second},
	} {
		if err := p.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", p)
		}
	}
	if err := (statekv.Policy{ReactivateAfter: time.Millisecond, RecoverAfter: time.Millisecond, GiveUpAfter: time.Millisecond}).Validate(); err != nil {
		t.Errorf("millisecond policy: %v", err)
	}
}

func TestInputString(t *testing.T) {
	t.Parallel()
	for in, want := range map[statekv.Input]string{
		statekv.Success: "success", statekv.TemporaryFailure: "temporary", statekv.PermanentFailure: "permanent",
		statekv.ReactivateTimer: "reactivate_timer", statekv.RecoverTimer: "recover_timer",
		statekv.UserActivate: "user_activate", statekv.UserDeactivate: "user_deactivate", statekv.Input(42): "input(42)",
	} {
		if got := in.String(); got != want {
			t.Errorf("Input(%d).String() = %q, want %q", int(in), got, want)
		}
	}
}
