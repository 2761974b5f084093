package sidecar_test

import (
	"context"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/dojo-webhooks/dojo-webhooks/internal/embedded"
	"github.com/dojo-webhooks/dojo-webhooks/sidecar"
)

// A sidecar on an embedded NATS server: connect, New, Run until the context
// is cancelled, then drain the connection and stop the server, in that order.
func Example() {
	dir, _ := os.MkdirTemp("", "sidecar-example-*")
	defer os.RemoveAll(dir)
	srv, err := embedded.Start(embedded.Options{Port: -1, StoreDir: dir})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.WaitForShutdown()
	defer srv.Shutdown()
	nc, err := nats.Connect("", nats.InProcessServer(srv))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Drain()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := sidecar.New(ctx, sidecar.Config{HTTPAddr: "127.0.0.1:0", Logger: zerolog.Nop()}, nc)
	if err != nil {
		fmt.Println(err)
		return
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-s.Synced()
	fmt.Println("endpoints:", len(s.Watcher().List()))
	cancel() // SIGTERM in serve
	fmt.Println("stopped:", <-done)
	// Output:
	// endpoints: 0
	// stopped: <nil>
}
