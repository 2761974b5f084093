// Package sidecartest runs a whole sidecar for tests of what it serves over
// HTTP (the management API, the console): a real embedded nats-server, the
// sidecar's own wiring, stopped when the test ends.
package sidecartest

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dojo-webhooks/dojo-webhooks/internal/natstest"
	"github.com/dojo-webhooks/dojo-webhooks/sidecar"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// Start runs a sidecar on an embedded server with its HTTP server on addr
// (e.g. 127.0.0.1:0) and the API token tok (empty = none), its timers an hour
// long so that no state changes by itself, and returns it, once synced, with
// its base URL on 127.0.0.1.
func Start(t testing.TB, addr, tok string) (*sidecar.Sidecar, string) {
	t.Helper()
	_, nc, _ := natstest.JetStream(t)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sidecar.New(context.Background(), sidecar.Config{Listener: ln, APIToken: tok, Logger: zerolog.Nop(),
		Policy: statekv.Policy{ReactivateAfter: time.Hour, RecoverAfter: time.Hour, GiveUpAfter: time.Hour}}, nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sidecar: %v", err)
		}
	})
	<-sc.Synced()
	return sc, "http://127.0.0.1:" + portOf(ln.Addr())
}

func portOf(a net.Addr) string {
	_, port, _ := net.SplitHostPort(a.String())
	return port
}
