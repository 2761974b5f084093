// Package natstest gives tests a real embedded nats-server with JetStream,
// stopped when the test ends. No mock: every package tests against the server.
package natstest

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/internal/embedded"
)

// Server starts an embedded server on a free loopback port with its store in a
// temporary directory.
func Server(t testing.TB) *server.Server {
	t.Helper()
	return ServerIn(t, t.TempDir())
}

// ServerIn starts an embedded server with its store in dir (reuse dir to restart
// a server on the same store).
func ServerIn(t testing.TB, dir string) *server.Server {
	t.Helper()
	s, err := embedded.Start(embedded.Options{Port: -1, StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// Connect opens a client connection to s, closed when the test ends.
func Connect(t testing.TB, s *server.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	return ConnectURL(t, s.ClientURL())
}

// ConnectURL opens a client connection to url with opts, closed when the test ends.
func ConnectURL(t testing.TB, url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// JetStream starts a server and connects to it.
func JetStream(t testing.TB) (*server.Server, *nats.Conn, jetstream.JetStream) {
	t.Helper()
	s := Server(t)
	nc, js := Connect(t, s)
	return s, nc, js
}
