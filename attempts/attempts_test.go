package attempts_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/dojo-webhooks/dojo-webhooks/attempts"
	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/internal/natstest"
)

var names = contract.NamesFor("t")

func record(ep, id string, n int, outcome string, start time.Time) attempts.Record {
	return attempts.Record{Endpoint: ep, WebhookID: id, Event: "scan_added", Kind: attempts.KindDelivery,
		Attempt: uint64(n), Start: start, DurationMS: 1.5, Status: 200, Outcome: outcome}
}

// startRecorder runs a recorder until the test ends and returns it with a
// function that waits until the log holds n records.
func startRecorder(t *testing.T, mode attempts.Mode) (*attempts.Recorder, jetstream.JetStream, func(n uint64)) {
	t.Helper()
	_, _, js := natstest.JetStream(t)
	ctx := context.Background()
	if err := attempts.EnsureStream(ctx, js, attempts.StreamConfig{Names: names}); err != nil {
		t.Fatal(err)
	}
	r := attempts.NewRecorder(js, attempts.RecorderOptions{Names: names, Mode: mode, Logger: zerolog.Nop()})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(rctx) }()
	t.Cleanup(func() { cancel(); <-done })
	wait := func(n uint64) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got := uint64(0)
			for _, ep := range []string{"a", "b", "x", "y", "z"} {
				got += uint64(count(t, js, ep))
			}
			if got >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("attempt log holds %d records, want %d", got, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return r, js, wait
}

// count pages through an endpoint's attempts.
func count(t *testing.T, js jetstream.JetStream, ep string) int {
	t.Helper()
	n, cursor := 0, ""
	for {
		p, err := attempts.List(context.Background(), js, names, attempts.Query{Endpoint: ep, Limit: attempts.MaxLimit, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		n += len(p.Items)
		if p.Next == "" {
			return n
		}
		cursor = p.Next
	}
}

// Pages of one endpoint's attempts come newest first, each record once, with
// the other endpoints' attempts and the filters left out.
func TestListPagesNewestFirst(t *testing.T) {
	r, js, wait := startRecorder(t, attempts.ModeAll)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i := 1; i <= 1200; i++ {
		ep, outcome := "a", "success"
		if i%3 == 0 {
			ep = "b"
		}
		if i%10 == 0 {
			outcome = "temporary"
		}
		r.Record(record(ep, fmt.Sprintf("id-%d", i), i, outcome, t0.Add(time.Duration(i)*time.Second)))
	}
	wait(1200)
	ctx := context.Background()

	var seen []uint64
	var cursor string
	pages := 0
	for {
		p, err := attempts.List(ctx, js, names, attempts.Query{Endpoint: "a", Limit: 300, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, rec := range p.Items {
			if rec.Endpoint != "a" {
				t.Fatalf("record of endpoint %s in a's page", rec.Endpoint)
			}
			seen = append(seen, rec.Attempt)
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	if pages != 3 || len(seen) != 800 {
		t.Fatalf("%d pages, %d records; want 3 pages of a's 800", pages, len(seen))
	}
	if !slices.IsSortedFunc(seen, func(a, b uint64) int { return int(b) - int(a) }) || seen[0] != 1199 {
		t.Errorf("not newest first from 1199: %v …", seen[:5])
	}
	slices.Sort(seen)
	if len(slices.Compact(seen)) != 800 {
		t.Errorf("duplicates across pages")
	}

	failed, err := attempts.List(ctx, js, names, attempts.Query{Endpoint: "a", Outcome: "failed", Limit: 500})
	if err != nil || len(failed.Items) != 80 || failed.Next != "" {
		t.Fatalf("failed only: %d items, next %q, %v; want a's 80", len(failed.Items), failed.Next, err)
	}
	since := t0.Add(1101 * time.Second)
	recent, err := attempts.List(ctx, js, names, attempts.Query{Endpoint: "b", Since: since})
	if err != nil || len(recent.Items) != 34 {
		t.Fatalf("b since %s: %d items, %v; want 34", since, len(recent.Items), err)
	}
}

// Every endpoint's attempts of one event, newest first; another id of the same
// subject bucket is left out.
func TestForWebhookID(t *testing.T) {
	r, js, wait := startRecorder(t, attempts.ModeAll)
	now := time.Now().UTC()
	for i, ep := range []string{"x", "y", "z", "x"} {
		r.Record(record(ep, "evt-1", i+1, "success", now.Add(time.Duration(i)*time.Millisecond)))
	}
	for i := 0; i < 50; i++ {
		r.Record(record("x", fmt.Sprintf("other-%d", i), 1, "success", now))
	}
	wait(54)
	got, err := attempts.ForWebhookID(context.Background(), js, names, "evt-1")
	if err != nil {
		t.Fatal(err)
	}
	var eps []string
	for _, rec := range got {
		eps = append(eps, rec.Endpoint)
	}
	if !slices.Equal(eps, []string{"x", "z", "y", "x"}) {
		t.Errorf("attempts of evt-1 by endpoint %q, want x z y x (newest first)", eps)
	}
}

// With "failures" only failed attempts are written.
func TestModeFailures(t *testing.T) {
	r, js, wait := startRecorder(t, attempts.ModeFailures)
	now := time.Now()
	r.Record(record("a", "ok", 1, "success", now))
	r.Record(record("a", "bad", 1, "permanent", now))
	r.Record(record("a", "slow", 2, "temporary", now))
	wait(2)
	p, err := attempts.List(context.Background(), js, names, attempts.Query{Endpoint: "a"})
	if err != nil || len(p.Items) != 2 || p.Items[0].WebhookID != "slow" || p.Items[1].WebhookID != "bad" {
		t.Fatalf("failures mode: %+v, %v", p.Items, err)
	}
}

func TestQueryValidate(t *testing.T) {
	for _, q := range []attempts.Query{{}, {Endpoint: "a", Outcome: "ok"}, {Endpoint: "a", Limit: 501}} {
		if err := q.Validate(); err == nil {
			t.Errorf("%+v accepted", q)
		}
	}
}
