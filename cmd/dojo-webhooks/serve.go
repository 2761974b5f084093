package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/delivery"
	"github.com/dojo-webhooks/dojo-webhooks/ingest"
	"github.com/dojo-webhooks/dojo-webhooks/metrics"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// shutdownGrace bounds how long the HTTP server and the NATS drain may take at stop.
const shutdownGrace = 10 * time.Second

// readyTimeout bounds the JetStream look-ups of one /readyz.
const readyTimeout = 2 * time.Second

// serve runs the sidecar until ctx is done.
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
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("JetStream: %w", err)
	}
	// A cluster that is still forming (a peer offline, no leader yet) refuses to
	// place the bucket and streams: wait for it as for the connection.
	var kv jetstream.KeyValue
	err = untilReady(ctx, cfg.ConnectWait, log, func(ctx context.Context) error {
		var err error
		if kv, err = statekv.EnsureBucket(ctx, js, cfg.bucket()); err != nil {
			return err
		}
		return consumer.EnsureStreams(ctx, js, cfg.streams())
	})
	if err != nil {
		return err
	}
	store := statekv.NewStore(kv)
	watcher := statekv.NewWatcher(store, statekv.WatcherOptions{Policy: cfg.policy(), Logger: log})
	client := delivery.New(cfg.deliveryOptions())
	defer client.CloseIdle()
	metric := metrics.New(watcher, js, cfg.names(), log)
	manager, err := consumer.New(ctx, consumer.Config{
		Names: cfg.names(), Replicas: cfg.Replicas, MaxInFlight: cfg.MaxInFlight, Timeout: cfg.Timeout,
		Instance: cfg.SiteURL, UserAgent: cfg.UserAgent, Policy: cfg.policy(), Logger: log,
		ShutdownGrace: cfg.ShutdownGrace, Client: client, Store: store, Watcher: watcher, JetStream: js,
		Observer: metric,
	})
	if err != nil {
		return err
	}

	// Listen before any goroutine starts, so that a taken port fails start-up cleanly.
	var ln net.Listener
	if cfg.HTTPAddr != "off" {
		if ln, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			return fmt.Errorf("DOJO_WEBHOOKS_HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
		}
	}

	parent := ctx
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mctx, mcancel := context.WithCancel(parent)
	defer mcancel()
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := watcher.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			errc <- err
		}
	}()
	// The manager stops first at shutdown (it drains in-flight deliveries, which
	// may still write transitions), then the watcher.
	managerDone := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(managerDone)
		if err := manager.Run(mctx); err != nil {
			errc <- err
		}
	}()

	h := &health{nc: nc, js: js, watcher: watcher, bucket: cfg.Bucket, names: cfg.names()}
	bridge := ingest.New(js, ingest.Options{
		Names: cfg.names(), MaxBodyBytes: cfg.IngestMaxBytes, Token: cfg.IngestToken, TokenHeader: cfg.IngestHeader,
		Connected: nc.IsConnected, Received: metric.Received,
	})
	if ln != nil {
		mux := h.mux()
		mux.Handle("/ingest", bridge)
		mux.Handle("GET /metrics", metric.Handler())
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("HTTP server: %w", err)
			}
		}()
		wg.Add(1)
		go func() { // stops the HTTP server with the rest: after the deliveries drained
			defer wg.Done()
			<-ctx.Done()
			sctx, scancel := context.WithTimeout(context.Background(), shutdownGrace)
			defer scancel()
			_ = hs.Shutdown(sctx)
		}()
		log.Info().Str("addr", ln.Addr().String()).Msg("HTTP server listening")
	}

	select {
	case <-watcher.Synced():
		byStatus, invalid := watcher.Counts()
		log.Info().Str("bucket", cfg.Bucket).Int("endpoints", len(watcher.List())).Int("invalid", invalid).
			Interface("by_status", byStatus).Dur("startup", time.Since(started)).Msg("dojo-webhooks ready")
	case err := <-errc:
		mcancel()
		cancel()
		wg.Wait()
		return err
	case <-parent.Done():
	}

	var runErr error
	select {
	case <-parent.Done():
		log.Info().Msg("stopping: draining in-flight deliveries")
	case runErr = <-errc:
	}
	mcancel()
	<-managerDone
	cancel()
	wg.Wait()
	log.Info().Msg("stopped")
	return runErr
}

// untilReady retries f every second until it succeeds or wait has passed since the first try.
func untilReady(ctx context.Context, wait time.Duration, log zerolog.Logger, f func(context.Context) error) error {
	deadline := time.Now().Add(wait)
	for {
		err := f(ctx)
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		log.Warn().Err(err).Msg("JetStream not ready for the bucket and streams yet; retrying")
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Second):
		}
	}
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
	case <-time.After(shutdownGrace):
		log.Warn().Msg("NATS drain timed out; closing")
		nc.Close()
	}
}

// health answers /healthz (the process is alive) and /readyz (NATS connected,
// streams and bucket present, the endpoint records loaded).
type health struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	watcher *statekv.Watcher
	bucket  string
	names   contract.Names
}

func (h *health) mux() *http.ServeMux {
	m := http.NewServeMux()
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
	return m
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
