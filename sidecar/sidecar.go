// Package sidecar wires one running dojo-webhooks sidecar and owns its
// lifecycle: New ensures the bucket and streams and builds the store, the
// watcher, the HTTP client, the metrics, the consumer manager and the HTTP
// surface (/healthz, /readyz, /metrics, /ingest); Run runs them until its
// context is done and stops them in order. `dojo-webhooks serve`, the bench and
// the end-to-end tests all start the sidecar through this package.
//
// The NATS connection is the caller's: it connects before New and drains or
// closes the connection after Run returned.
package sidecar

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/api"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/dojo-webhooks/dojo-webhooks/attempts"
	"github.com/dojo-webhooks/dojo-webhooks/console"
	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/delivery"
	"github.com/dojo-webhooks/dojo-webhooks/ingest"
	"github.com/dojo-webhooks/dojo-webhooks/metrics"
	"github.com/dojo-webhooks/dojo-webhooks/opsevents"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

const (
	// ensureRetry spaces out the tries to place the bucket and streams on a forming cluster.
	ensureRetry = time.Second
	// httpShutdownTimeout bounds how long the HTTP server may take to stop.
	httpShutdownTimeout = 10 * time.Second
)

// Sidecar is one wired sidecar: built by New, run once by Run.
type Sidecar struct {
	cfg      Config
	names    contract.Names
	log      zerolog.Logger
	js       jetstream.JetStream
	bucket   string
	store    *statekv.Store
	watcher  *statekv.Watcher
	client   *delivery.Client
	metrics  *metrics.Metrics
	attempts *attempts.Recorder
	api      *api.API
	manager  *consumer.Manager
	ops      *opsevents.Publisher // nil when operational events are off
	mux      *http.ServeMux
	ln       net.Listener // nil when HTTP is off
	ran      atomic.Bool
}

// New ensures the bucket and streams over nc (waiting up to cfg.ConnectWait
// for a cluster that cannot place them yet), wires every component and listens
// on the HTTP address, so that a taken port fails here. No goroutine runs
// until Run.
func New(ctx context.Context, cfg Config, nc *nats.Conn) (*Sidecar, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("JetStream: %w", err)
	}
	s := &Sidecar{cfg: cfg, names: cfg.Streams.Names, log: cfg.Logger, js: js}
	kv, err := s.ensure(ctx)
	if err != nil {
		return nil, err
	}
	s.bucket = kv.Bucket()
	s.store = statekv.NewStore(kv).WithClock(cfg.Clock)
	s.watcher = statekv.NewWatcher(s.store, statekv.WatcherOptions{Policy: cfg.Policy, Logger: s.log})
	s.client = delivery.New(cfg.Delivery)
	var observer consumer.Observer
	lost := func(int) {}
	if cfg.Metrics {
		s.metrics = metrics.New(s.watcher, js, s.names, s.log)
		observer, lost = s.metrics, s.metrics.AttemptsLost
	}
	if cfg.Attempts != attempts.ModeOff {
		s.attempts = attempts.NewRecorder(js, attempts.RecorderOptions{Names: s.names, Mode: cfg.Attempts, Logger: s.log, Lost: lost})
	}
	if !cfg.NoOpsEvents {
		s.ops = opsevents.New(js, s.names, s.watcher, s.log, cfg.Clock.Now)
		observer = observe(observer, opsObserver{s.ops})
	}
	s.manager, err = consumer.New(ctx, consumer.Config{
		Names: s.names, Replicas: cfg.Replicas, MaxInFlight: cfg.MaxInFlight, Request: cfg.Request,
		Policy: cfg.Policy, Now: cfg.Clock.Now, Logger: s.log, ShutdownGrace: cfg.ShutdownGrace,
		Observer: observe(observer, cfg.Observer), Attempts: s.attempts, AttemptBody: cfg.AttemptBody,
		Client: s.client, Store: s.store, Watcher: s.watcher, JetStream: js, DropCheck: cfg.DropCheck,
	})
	if err != nil {
		return nil, err
	}
	s.mux = s.routes(nc)
	if err := s.listen(); err != nil {
		return nil, err
	}
	s.mountAPI()
	return s, nil
}

// ensure creates or updates the bucket and the streams. A cluster that is still
// forming (a peer offline, no leader yet) refuses to place them: it is tried
// again every second until ConnectWait has passed since the first try.
func (s *Sidecar) ensure(ctx context.Context) (jetstream.KeyValue, error) {
	deadline := time.Now().Add(s.cfg.ConnectWait)
	for {
		kv, err := statekv.EnsureBucket(ctx, s.js, s.cfg.Bucket)
		if err == nil {
			err = consumer.EnsureStreams(ctx, s.js, s.cfg.Streams)
		}
		if err == nil && s.cfg.Attempts != attempts.ModeOff {
			err = attempts.EnsureStream(ctx, s.js, s.cfg.AttemptsStream)
		}
		if err == nil || ctx.Err() != nil || time.Now().After(deadline) {
			return kv, err
		}
		s.log.Warn().Err(err).Msg("JetStream not ready for the bucket and streams yet; retrying")
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(ensureRetry):
		}
	}
}

// routes mounts the HTTP surface.
func (s *Sidecar) routes(nc *nats.Conn) *http.ServeMux {
	mux := http.NewServeMux()
	(&health{nc: nc, js: s.js, watcher: s.watcher, bucket: s.bucket, names: s.names}).mount(mux)
	in := s.cfg.Ingest
	in.Names, in.Connected, in.Received = s.names, nc.IsConnected, nil
	if s.metrics != nil {
		in.Received = s.metrics.Received
		mux.Handle("GET /metrics", s.metrics.Handler())
	}
	in.Endpoint = s.endpointExists
	bridge := ingest.New(s.js, in)
	mux.Handle("/ingest", bridge)
	mux.Handle("/ingest/{"+ingest.EndpointPathValue+"}", bridge)
	return mux
}

// mountAPI mounts the management API under api.Prefix when its access rule
// allows it: with a token, or without one on a loopback listener only.
func (s *Sidecar) mountAPI() {
	if s.ln == nil {
		return
	}
	access := api.Access{Token: s.cfg.APIToken, Loopback: api.IsLoopback(s.ln.Addr().String())}
	if !access.Enabled() {
		s.log.Warn().Str("addr", s.ln.Addr().String()).
			Msg("management API and web console off: the HTTP server is not on loopback and DOJO_WEBHOOKS_API_TOKEN is empty")
		return
	}
	s.api = api.New(api.Config{Access: access, Names: s.names, JetStream: s.js, Watcher: s.watcher,
		Admin: s.Admin(), Logger: s.log})
	s.mux.Handle(api.Prefix, s.api.Handler())
	s.mountConsole(access)
}

// mountConsole mounts the web console under console.Prefix, behind the API's access rule.
func (s *Sidecar) mountConsole(access api.Access) {
	c, err := console.New(console.Config{Access: access, API: s.api, Admin: s.Admin(), JetStream: s.js,
		Names: s.names, Logger: s.log, Now: s.cfg.Clock.Now})
	if err != nil {
		s.log.Error().Err(err).Msg("web console off")
		return
	}
	s.mux.Handle(console.Prefix, c.Handler())
}

// Admin is the endpoint actions over the sidecar's store and client, with pings
// logged in its attempt log: what the API and the console run.
func (s *Sidecar) Admin() consumer.Admin {
	a := consumer.Admin{Store: s.store, Client: s.client, Request: s.cfg.Request, Policy: s.cfg.Policy,
		JetStream: s.js, Names: s.names, Now: s.cfg.Clock.Now, SecretOverlap: s.cfg.SecretOverlap}
	if s.attempts != nil {
		a.Record = s.attempts.Record
	}
	return a
}

// API is the management API; nil when it is off.
func (s *Sidecar) API() *api.API { return s.api }

// endpointExists is the /ingest/<id> lookup: the watcher's view, else the
// store (an endpoint added a moment ago, a watcher not synced yet).
func (s *Sidecar) endpointExists(ctx context.Context, id string) (bool, error) {
	if _, ok := s.watcher.Get(id); ok {
		return true, nil
	}
	if statekv.ValidateID(id) != nil {
		return false, nil
	}
	_, err := s.store.Get(ctx, id)
	switch {
	case err == nil, errors.Is(err, statekv.ErrInvalidRecord):
		return true, nil
	case errors.Is(err, statekv.ErrNotFound):
		return false, nil
	}
	return false, err
}

// listen opens the HTTP listener, unless HTTP is off or a listener was given.
func (s *Sidecar) listen() error {
	switch {
	case s.cfg.Listener != nil:
		s.ln = s.cfg.Listener
	case s.cfg.httpOn():
		ln, err := net.Listen("tcp", s.cfg.HTTPAddr)
		if err != nil {
			return &ListenError{Addr: s.cfg.HTTPAddr, Err: err}
		}
		s.ln = ln
	}
	return nil
}

// Handle mounts h on the sidecar's HTTP server (call it before Run).
func (s *Sidecar) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Run runs the watcher, the manager and the HTTP server until ctx is done or
// one of them fails, then stops them in order: the manager first (in-flight
// deliveries drain within the shutdown grace, and may still write
// transitions), then the watcher and the HTTP server. It returns the failure,
// or nil after a stop by ctx. Run may be called once.
func (s *Sidecar) Run(ctx context.Context) error {
	if s.ran.Swap(true) {
		return errRunTwice
	}
	defer s.client.CloseIdle()
	// The watcher and the HTTP server outlive ctx until the manager has stopped.
	wctx, cancelW := context.WithCancel(context.Background())
	defer cancelW()
	mctx, cancelM := context.WithCancel(ctx)
	defer cancelM()
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	wg.Go(func() {
		if err := s.watcher.Run(wctx); err != nil && !errors.Is(err, context.Canceled) {
			errc <- err
		}
	})
	if s.ops != nil {
		wg.Go(func() { _ = s.ops.Run(wctx) })
	}
	// The attempt log is written until the manager's last delivery has been recorded.
	actx, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	if s.attempts != nil {
		wg.Go(func() { _ = s.attempts.Run(actx) })
	}
	managerDone := make(chan struct{})
	wg.Go(func() {
		defer close(managerDone)
		if err := s.manager.Run(mctx); err != nil {
			errc <- err
		}
	})
	if s.ln != nil {
		s.serveHTTP(wctx, &wg, errc)
	}

	select {
	case <-s.watcher.Synced():
		byStatus, invalid := s.watcher.Counts()
		s.log.Info().Str("bucket", s.bucket).Int("endpoints", len(s.watcher.List())).Int("invalid", invalid).
			Interface("by_status", byStatus).Dur("startup", time.Since(s.cfg.Started)).Msg("dojo-webhooks ready")
	case err := <-errc:
		cancelM()
		<-managerDone
		cancelA()
		cancelW()
		wg.Wait()
		return err
	case <-ctx.Done():
	}

	var runErr error
	select {
	case <-ctx.Done():
		s.log.Info().Msg("stopping: draining in-flight deliveries")
	case runErr = <-errc:
	}
	cancelM()
	<-managerDone
	cancelA()
	cancelW()
	wg.Wait()
	s.log.Info().Msg("stopped")
	return runErr
}

// serveHTTP serves the listener until ctx is done, then shuts the server down.
// Every read, write and idle wait is bounded, as are the headers' size and the
// connections served at once (cfg.HTTPLimits): idle or slow clients cannot hold
// the process's descriptors.
func (s *Sidecar) serveHTTP(ctx context.Context, wg *sync.WaitGroup, errc chan<- error) {
	l := s.cfg.HTTPLimits
	hs := &http.Server{Handler: s.mux, ReadHeaderTimeout: l.readHeaderTimeout(), ReadTimeout: l.ReadTimeout,
		WriteTimeout: l.WriteTimeout, IdleTimeout: l.IdleTimeout, MaxHeaderBytes: MaxHTTPHeaderBytes,
		ErrorLog: httpErrorLog(s.log)}
	ln := limitConns(s.ln, l.MaxConns)
	wg.Go(func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("HTTP server: %w", err)
		}
	})
	wg.Go(func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
		defer cancel()
		_ = hs.Shutdown(sctx)
	})
	s.log.Info().Str("addr", s.ln.Addr().String()).Int("max_conns", l.MaxConns).Dur("read_timeout", l.ReadTimeout).
		Dur("idle_timeout", l.IdleTimeout).Msg("HTTP server listening")
}

// Synced is closed once the watcher has loaded every endpoint record.
func (s *Sidecar) Synced() <-chan struct{} { return s.watcher.Synced() }

// Addr is the HTTP server's address; nil when HTTP is off.
func (s *Sidecar) Addr() net.Addr {
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Names are the subjects and streams of the configured prefix.
func (s *Sidecar) Names() contract.Names { return s.names }

// JetStream is the sidecar's JetStream context.
func (s *Sidecar) JetStream() jetstream.JetStream { return s.js }

// Store is the sidecar's endpoint store.
func (s *Sidecar) Store() *statekv.Store { return s.store }

// Watcher is the sidecar's in-memory view of the endpoint records.
func (s *Sidecar) Watcher() *statekv.Watcher { return s.watcher }

// Attempts is the sidecar's attempt-log recorder; nil when the log is off.
func (s *Sidecar) Attempts() *attempts.Recorder { return s.attempts }

// OpsEvents publishes the sidecar's operational events (its Dropped is for
// loss detection); nil when they are off.
func (s *Sidecar) OpsEvents() *opsevents.Publisher { return s.ops }

// Metrics is the sidecar's metrics; nil when metrics are off.
func (s *Sidecar) Metrics() *metrics.Metrics { return s.metrics }
