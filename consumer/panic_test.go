package consumer

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/delivery"
	"github.com/dojo-webhooks/dojo-webhooks/internal/logtest"
	"github.com/dojo-webhooks/dojo-webhooks/internal/natstest"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// panickingObserver panics in its first Delivered call, as a buggy hook would.
type panickingObserver struct {
	nopObserver
	calls atomic.Int32
}

func (o *panickingObserver) Delivered(string, string, delivery.Result) {
	if o.calls.Add(1) == 1 {
		panic("observer bug")
	}
}

// TestDeliveryPanicRecovered: a panic while one event is delivered is logged at
// error level with the endpoint and the event, the event is NAKed with a delay
// and delivered again, and the process goes on.
func TestDeliveryPanicRecovered(t *testing.T) {
	_, _, js := natstest.JetStream(t)
	ctx := context.Background()
	names := contract.NamesFor(contract.DefaultPrefix)
	kv, err := statekv.EnsureBucket(ctx, js, statekv.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := EnsureStreams(ctx, js, StreamsConfig{Names: names}); err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		times []time.Time
	)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
	}))
	defer recv.Close()
	requests := func() []time.Time { mu.Lock(); defer mu.Unlock(); return append([]time.Time(nil), times...) }

	logs := &logtest.Buffer{}
	log := zerolog.New(logs)
	store := statekv.NewStore(kv)
	policy := statekv.DefaultPolicy()
	watcher := statekv.NewWatcher(store, statekv.WatcherOptions{Policy: policy, Logger: log})
	obs := &panickingObserver{}
	client := delivery.New(delivery.Options{Timeout: 2 * time.Second})
	mgr, err := New(ctx, Config{Names: names, Policy: policy, Logger: log, ShutdownGrace: 100 * time.Millisecond,
		Observer: obs, Client: client, Store: store, Watcher: watcher, JetStream: js})
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithCancel(ctx)
	mctx, mcancel := context.WithCancel(ctx)
	wdone, mdone := make(chan error, 1), make(chan error, 1)
	go func() { wdone <- watcher.Run(wctx) }()
	go func() { mdone <- mgr.Run(mctx) }()
	defer func() {
		mcancel()
		<-mdone
		wcancel()
		<-wdone
		client.CloseIdle()
	}()

	rec := statekv.Record{ID: "hook", Name: "Hook", URL: recv.URL, Status: statekv.StatusActive, CreatedAt: statekv.Timestamp(time.Now())}
	if _, err := store.Create(ctx, rec); err != nil {
		t.Fatal(err)
	}
	cons := contract.ConsumerName("hook")
	waitUntil(t, func() bool { _, err := js.Consumer(ctx, names.Events, cons); return err == nil })
	if _, err := js.Publish(ctx, names.EventSubject("scan_added"), []byte(`{"description":"x"}`)); err != nil {
		t.Fatal(err)
	}

	// Delivered twice: the attempt whose observer panicked is redelivered after panicRetry, then acked.
	waitUntil(t, func() bool {
		c, err := js.Consumer(ctx, names.Events, cons)
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		return err == nil && len(requests()) == 2 && info.NumAckPending == 0 && info.NumPending == 0
	})
	got := requests()
	if d := got[1].Sub(got[0]); d < panicRetry {
		t.Errorf("redelivered %s after the panic, want at least %s", d, panicRetry)
	}
	if n := obs.calls.Load(); n != 2 {
		t.Errorf("observer called %d times, want 2", n)
	}
	var found bool
	for _, e := range logs.Entries() {
		if e["level"] == "error" && e["panic"] == "observer bug" {
			found = true
			if e["endpoint"] != "hook" || e["event"] != "scan_added" || e["stack"] == "" {
				t.Errorf("panic log %v: want endpoint hook, event scan_added and a stack", e)
			}
		}
	}
	if !found {
		t.Errorf("no error-level log of the panic in %v", logs.Entries())
	}
	if v, _ := watcher.Get("hook"); v.Record.Status != statekv.StatusActive {
		t.Errorf("status %s after a panic, want active (a panic is not the endpoint's failure)", v.Record.Status)
	}
}

// waitUntil polls cond every few milliseconds for at most 15 s.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 15s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
