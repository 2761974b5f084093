package sidecar

import (
	"context"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/internal/natstest"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// TestReadyzWaitsForTheWatcher: not ready before the endpoint records are loaded.
func TestReadyzWaitsForTheWatcher(t *testing.T) {
	_, nc, js := natstest.JetStream(t)
	names := contract.NamesFor(contract.DefaultPrefix)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	kv, err := statekv.EnsureBucket(ctx, js, statekv.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	w := statekv.NewWatcher(statekv.NewStore(kv), statekv.WatcherOptions{Policy: statekv.DefaultPolicy(), Logger: zerolog.Nop()})
	h := &health{nc: nc, js: js, watcher: w, bucket: statekv.DefaultBucket, names: names}
	if err := h.ready(); err == nil || !strings.Contains(err.Error(), "not loaded") {
		t.Fatalf("ready before the watcher ran: %v", err)
	}
	go w.Run(ctx)
	<-w.Synced()
	if err := h.ready(); err == nil || !strings.Contains(err.Error(), "stream") {
		t.Fatalf("ready without the streams: %v", err)
	}
	if err := consumer.EnsureStreams(ctx, js, consumer.StreamsConfig{Names: names}); err != nil {
		t.Fatal(err)
	}
	if err := h.ready(); err != nil {
		t.Fatalf("not ready with everything in place: %v", err)
	}
}
