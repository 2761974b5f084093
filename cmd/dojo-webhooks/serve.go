package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/dojo-webhooks/dojo-webhooks/sidecar"
)

// drainTimeout bounds how long the NATS drain may take at stop.
const drainTimeout = 10 * time.Second

// serve runs the sidecar until ctx is done: the embedded server (when NATS_URL
// is empty) starts first and stops last, the connection is drained after the
// sidecar stopped.
func serve(ctx context.Context, cfg Config, log zerolog.Logger) error {
	started := time.Now()
	var srv *server.Server
	if cfg.NATSURL == "" {
		s, err := cfg.startEmbedded(log)
		if err != nil {
			return err
		}
		srv = s
		defer func() {
			s.Shutdown()
			s.WaitForShutdown()
			log.Info().Msg("embedded NATS server stopped")
		}()
	}
	nc, err := cfg.connectSidecar(ctx, srv, log)
	if err != nil {
		return err
	}
	defer drain(nc, log)
	sc, err := sidecar.New(ctx, cfg.sidecar(log, started), nc)
	if err != nil {
		var le *sidecar.ListenError
		if errors.As(err, &le) {
			return fmt.Errorf("DOJO_WEBHOOKS_HTTP_ADDR %s: %w", le.Addr, le.Err)
		}
		return err
	}
	return sc.Run(ctx)
}

func drain(nc *nats.Conn, log zerolog.Logger) {
	done := make(chan struct{})
	nc.SetClosedHandler(func(*nats.Conn) { close(done) })
	if err := nc.Drain(); err != nil {
		nc.Close()
		return
	}
	select {
	case <-done:
	case <-time.After(drainTimeout):
		log.Warn().Msg("NATS drain timed out; closing")
		nc.Close()
	}
}
