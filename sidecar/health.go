package sidecar

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// readyTimeout bounds the JetStream look-ups of one /readyz.
const readyTimeout = 2 * time.Second

// health answers /healthz (the process is alive) and /readyz (NATS connected,
// streams and bucket present, the endpoint records loaded).
type health struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	watcher *statekv.Watcher
	bucket  string
	names   contract.Names
}

// mount registers /healthz and /readyz on m.
func (h *health) mount(m *http.ServeMux) {
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	m.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := h.ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
}

func (h *health) ready() error {
	if !h.nc.IsConnected() {
		return errors.New("NATS not connected")
	}
	select {
	case <-h.watcher.Synced():
	default:
		return errors.New("endpoint records not loaded yet")
	}
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	for _, name := range []string{h.names.Events, h.names.DeadLetter} {
		if _, err := h.js.Stream(ctx, name); err != nil {
			return fmt.Errorf("stream %s: %w", name, err)
		}
	}
	if _, err := h.js.KeyValue(ctx, h.bucket); err != nil {
		return fmt.Errorf("bucket %s: %w", h.bucket, err)
	}
	return nil
}
