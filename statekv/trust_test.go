package statekv_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/delivery"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func retryPolicy() statekv.Policy {
	return statekv.Policy{ReactivateAfter: time.Minute, RecoverAfter: 24 * time.Hour, GiveUpAfter: 24 * time.Hour, MaxRetryAfter: time.Hour}
}

func activeRecord() statekv.Record {
	return statekv.Record{ID: "ep", Name: "ep", URL: "https://example.com/h", Status: statekv.StatusActive}
}

func TestRetryAfterHoldsInactiveTmp(t *testing.T) {
	p := retryPolicy()
	cases := []struct {
		name      string
		retryAt   time.Time
		policy    statekv.Policy
		wantHold  time.Time
		wantNote  string
		wantDueAt time.Time
	}{
		{"later than reactivate-after: held", t0.Add(10 * time.Minute), p, t0.Add(10 * time.Minute),
			"Response status code: 429 (Retry-After: held until 2026-11-27T10:10:00Z)", t0.Add(10 * time.Minute)},
		{"beyond the cap: capped", t0.Add(5 * time.Hour), p, t0.Add(time.Hour),
			"Response status code: 429 (Retry-After: held until 2026-11-27T11:00:00Z, capped at 1h0m0s)", t0.Add(time.Hour)},
		{"sooner than reactivate-after: the table applies", t0.Add(10 * time.Second), p, time.Time{},
			"Response status code: 429", t0.Add(time.Minute)},
		{"no Retry-After", time.Time{}, p, time.Time{}, "Response status code: 429", t0.Add(time.Minute)},
		{"MaxRetryAfter 0: ignored", t0.Add(10 * time.Minute), statekv.Policy{ReactivateAfter: time.Minute, RecoverAfter: time.Hour, GiveUpAfter: time.Hour},
			time.Time{}, "Response status code: 429", t0.Add(time.Minute)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, changed := statekv.Transition(activeRecord(), statekv.Event{Input: statekv.TemporaryFailure, Note: "Response status code: 429", RetryAt: c.retryAt}, t0, c.policy)
			if !changed || got.Status != statekv.StatusInactiveTmp {
				t.Fatalf("status %s changed %v", got.Status, changed)
			}
			if !got.RetryAfter.Equal(c.wantHold) || got.Note != c.wantNote {
				t.Fatalf("retry_after %v note %q; want %v %q", got.RetryAfter, got.Note, c.wantHold, c.wantNote)
			}
			if err := got.Validate(); err != nil {
				t.Fatal(err)
			}
			due, in, ok := statekv.NextTimer(got, c.policy)
			if !ok || in != statekv.ReactivateTimer || !due.Equal(c.wantDueAt) {
				t.Fatalf("NextTimer %v %v %v; want %v", due, in, ok, c.wantDueAt)
			}
			// Not before the hold; at it, active_tmp with the hold cleared.
			if _, changed := statekv.Transition(got, statekv.Event{Input: statekv.ReactivateTimer}, c.wantDueAt.Add(-time.Millisecond), c.policy); changed {
				t.Fatal("reactivated before the hold ended")
			}
			back, changed := statekv.Transition(got, statekv.Event{Input: statekv.ReactivateTimer}, c.wantDueAt, c.policy)
			if !changed || back.Status != statekv.StatusActiveTmp || !back.RetryAfter.IsZero() {
				t.Fatalf("at the hold's end: %+v", back)
			}
		})
	}
}

func TestRetryAfterClearedByUsersAndPermanentFailures(t *testing.T) {
	p := retryPolicy()
	held, _ := statekv.Transition(activeRecord(), statekv.Event{Input: statekv.TemporaryFailure, Note: "Response status code: 503", RetryAt: t0.Add(30 * time.Minute)}, t0, p)
	for _, ev := range []statekv.Event{{Input: statekv.UserActivate}, {Input: statekv.UserDeactivate, Note: "by admin"}, {Input: statekv.PermanentFailure, Note: "Response status code: 404"}} {
		got, _ := statekv.Transition(held, ev, t0.Add(time.Second), p)
		if !got.RetryAfter.IsZero() {
			t.Errorf("%s kept retry_after %v", ev.Input, got.RetryAfter)
		}
	}
}

func secret(n int) string {
	return delivery.SecretPrefix + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", n)))
}

func TestSecrets(t *testing.T) {
	for _, bad := range []string{"nope", "whsec_!!!", secret(23), secret(65), "whsec_"} {
		r := activeRecord()
		r.Secret = bad
		err := r.Validate()
		if err == nil || !strings.Contains(err.Error(), "secret") {
			t.Errorf("secret %q: %v", bad, err)
		}
		if err != nil && len(bad) > 8 && strings.Contains(err.Error(), bad[6:]) {
			t.Errorf("error echoes the secret: %v", err)
		}
	}
	r := activeRecord()
	r.Secret, r.PreviousSecret = secret(32), secret(24)
	if err := r.Validate(); err == nil || !strings.Contains(err.Error(), "previous_secret_until") {
		t.Fatalf("previous secret without its end: %v", err)
	}
	r.PreviousSecretUntil = t0.Add(time.Hour)
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := r.SigningSecrets(t0); len(got) != 2 || got[0] != r.Secret || got[1] != r.PreviousSecret {
		t.Fatalf("during the overlap: %v", got)
	}
	if got := r.SigningSecrets(t0.Add(time.Hour)); len(got) != 1 || got[0] != r.Secret {
		t.Fatalf("after the overlap: %v", got)
	}
	// The previous secret is dropped by a timer at the end of the overlap, before any state timer.
	due, in, ok := statekv.NextTimer(r, retryPolicy())
	if !ok || in != statekv.SecretTimer || !due.Equal(r.PreviousSecretUntil) {
		t.Fatalf("NextTimer %v %v %v", due, in, ok)
	}
	if _, changed := statekv.Transition(r, statekv.Event{Input: statekv.SecretTimer}, t0, retryPolicy()); changed {
		t.Fatal("dropped before the end of the overlap")
	}
	dropped, changed := statekv.Transition(r, statekv.Event{Input: statekv.SecretTimer}, r.PreviousSecretUntil, retryPolicy())
	if !changed || dropped.PreviousSecret != "" || !dropped.PreviousSecretUntil.IsZero() || dropped.Secret != r.Secret {
		t.Fatalf("after the overlap: %+v", dropped)
	}
	// Round trip through JSON keeps them.
	data, err := r.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	back, err := statekv.ParseRecord("ep", data)
	if err != nil || back.Secret != r.Secret || back.PreviousSecret != r.PreviousSecret || !back.PreviousSecretUntil.Equal(r.PreviousSecretUntil) {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	// A wrongly typed secret is reported without its value.
	if _, err := statekv.ParseRecord("ep", []byte(`{"name":"x","url":"http://h/","status":"active","secret":12345678901}`)); err == nil || strings.Contains(err.Error(), "12345678901") {
		t.Fatalf("typed secret: %v", err)
	}
}
