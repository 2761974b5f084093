package opsevents_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/internal/natstest"
	"github.com/dojo-webhooks/dojo-webhooks/opsevents"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

func TestChange(t *testing.T) {
	for _, tt := range []struct {
		before, after statekv.Status
		want          string
	}{
		{statekv.StatusActive, statekv.StatusInactivePermanent, opsevents.EndpointDisabled},
		{statekv.StatusActiveTmp, statekv.StatusInactivePermanent, opsevents.EndpointDisabled},
		{statekv.StatusInactivePermanent, statekv.StatusActive, opsevents.EndpointRecovered},
		{statekv.StatusActiveTmp, statekv.StatusActive, opsevents.EndpointRecovered},
		{statekv.StatusActive, statekv.StatusInactiveTmp, ""},
		{statekv.StatusInactiveTmp, statekv.StatusActiveTmp, ""},
		{statekv.StatusActive, statekv.StatusActive, ""},
	} {
		if got := opsevents.Change(tt.before, tt.after); got != tt.want {
			t.Errorf("Change(%s, %s) = %q, want %q", tt.before, tt.after, got, tt.want)
		}
	}
}

// Dropped publishes webhook_events_dropped about the endpoint; two detections
// of the same loss (two replicas) store one event.
func TestDroppedOnceForOneLoss(t *testing.T) {
	_, _, js := natstest.JetStream(t)
	ctx := t.Context()
	names := contract.NamesFor(contract.DefaultPrefix)
	kv, err := statekv.EnsureBucket(ctx, js, statekv.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := consumer.EnsureStreams(ctx, js, consumer.StreamsConfig{Names: names}); err != nil {
		t.Fatal(err)
	}
	store := statekv.NewStore(kv)
	if _, err := store.Create(ctx, statekv.Record{ID: "hook", Name: "Hook", URL: "https://user:pw@hooks.example.com/x",
		Status: statekv.StatusActive, CreatedAt: statekv.Timestamp(time.Now())}); err != nil {
		t.Fatal(err)
	}
	w := statekv.NewWatcher(store, statekv.WatcherOptions{Policy: statekv.DefaultPolicy()})
	wctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(wctx) }()
	t.Cleanup(func() { cancel(); <-done })
	<-w.Synced()

	p := opsevents.New(js, names, w, zerolog.Nop(), nil)
	for range 2 {
		if err := p.Dropped(ctx, "hook", 7, 10, 16); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Dropped(ctx, "nobody", 1, 1, 1); err == nil {
		t.Error("Dropped for an unknown endpoint: no error")
	}
	s, err := js.Stream(ctx, names.Events)
	if err != nil {
		t.Fatal(err)
	}
	subject := names.OpsSubject(opsevents.EventsDropped)
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Subjects[subject]; n != 1 {
		t.Fatalf("%d events stored, want 1", n)
	}
	msg, err := s.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	var body opsevents.Body
	if err := json.Unmarshal(msg.Data, &body); err != nil {
		t.Fatal(err)
	}
	if body.ID != "hook" || body.Dropped != 7 || body.URL != "https://user:xxxxx@hooks.example.com/x" || msg.Header.Get(contract.HeaderAbout) != "hook" {
		t.Errorf("body %+v, about %q", body, msg.Header.Get(contract.HeaderAbout))
	}
}
