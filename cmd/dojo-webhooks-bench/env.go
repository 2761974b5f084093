package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/attempts"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/delivery"
	"github.com/dojo-webhooks/dojo-webhooks/internal/embedded"
	sidecarpkg "github.com/dojo-webhooks/dojo-webhooks/sidecar"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

const (
	benchInstance  = "https://defectdojo.example.com"
	benchUserAgent = "DefectDojo-bench"
	// benchShutdownGrace bounds the sidecar's stop (a hanging request is cancelled).
	benchShutdownGrace = 2 * time.Second
)

// envConfig says where an env's NATS server runs.
type envConfig struct {
	mode    string // modeEmbedded, modeProcess or modeURL
	url     string // NATS_URL, with modeURL
	natsLog string // the nats-server process's log file, with modeProcess
}

// env is one fresh NATS server (embedded, or a separate nats-server process,
// JetStream file store in a temp dir) or, with NATS_URL, fresh streams and
// bucket with a unique prefix, plus the connections the bench itself uses:
//   - admin: set-up, the raw JetStream consumers, polling; connected like the
//     sidecar (in-process to the embedded server, else over TCP);
//   - pub: the publisher, over TCP on loopback like an outside publisher.
type env struct {
	mode    string
	dir     string
	srv     *server.Server // modeEmbedded
	proc    *natsProcess   // modeProcess
	url     string
	names   contract.Names
	bucket  string
	rawName string
	log     zerolog.Logger

	admin   *nats.Conn
	adminJS jetstream.JetStream
	kv      jetstream.KeyValue
	store   *statekv.Store
	pub     *nats.Conn
	pubJS   jetstream.JetStream
	pubErrs atomic.Int64

	// publish→PubAck latencies of bench bodies carrying a publish time, while trackAcks.
	trackAcks atomic.Bool
	ackMu     sync.Mutex
	ackLats   []int64
}

// takeAckLats returns and clears the recorded publish→PubAck latencies.
func (e *env) takeAckLats() []int64 {
	e.ackMu.Lock()
	defer e.ackMu.Unlock()
	out := e.ackLats
	e.ackLats = nil
	return out
}

func newEnv(cfg envConfig, log zerolog.Logger) (e *env, err error) {
	e = &env{mode: cfg.mode, log: log}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	suffix := randomHex(4)
	if cfg.mode != modeURL {
		e.dir, err = os.MkdirTemp("", "dojo-webhooks-bench-*")
		if err != nil {
			return e, err
		}
		if cfg.mode == modeProcess {
			if e.proc, err = startNATSProcess(e.dir, "bench-"+suffix, cfg.natsLog); err != nil {
				return e, err
			}
			e.url = e.proc.url
		} else {
			e.srv, err = embedded.Start(embedded.Options{Port: -1, StoreDir: e.dir, ServerName: "bench-" + suffix})
			if err != nil {
				return e, err
			}
			e.url = e.srv.ClientURL()
		}
		e.names = contract.NamesFor(contract.DefaultPrefix)
		e.bucket = statekv.DefaultBucket
		e.rawName = "BENCHRAW"
	} else {
		e.url = cfg.url
		e.names = contract.NamesFor("bench" + suffix)
		e.bucket = "bench_" + suffix
		e.rawName = "BENCHRAW_" + suffix
	}
	if e.admin, err = e.connect("dojo-webhooks-bench-admin", true); err != nil {
		return e, err
	}
	if e.adminJS, err = jetstream.New(e.admin); err != nil {
		return e, err
	}
	if e.pub, err = e.connect("dojo-webhooks-bench-publisher", false); err != nil {
		return e, err
	}
	e.pubJS, err = jetstream.New(e.pub,
		jetstream.WithPublishAsyncMaxPending(4000),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, _ error) { e.pubErrs.Add(1) }),
		jetstream.WithPublishAsyncAckHandler(func(_ jetstream.JetStream, m *nats.Msg, _ *jetstream.PubAck) {
			if !e.trackAcks.Load() {
				return
			}
			if _, ts, ok := parseBody(m.Data); ok && ts > 0 {
				now := nowNS()
				e.ackMu.Lock()
				e.ackLats = append(e.ackLats, now-ts)
				e.ackMu.Unlock()
			}
		}))
	if err != nil {
		return e, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if e.kv, err = statekv.EnsureBucket(ctx, e.adminJS, statekv.BucketConfig{Name: e.bucket}); err != nil {
		return e, err
	}
	if err = consumer.EnsureStreams(ctx, e.adminJS, consumer.StreamsConfig{Names: e.names}); err != nil {
		return e, err
	}
	e.store = statekv.NewStore(e.kv)
	return e, nil
}

// connect connects in-process to the embedded server when inProcess (as serve
// does), else (and always with a separate server process or NATS_URL) over TCP.
func (e *env) connect(name string, inProcess bool) (*nats.Conn, error) {
	opts := []nats.Option{nats.Name(name), nats.MaxReconnects(-1), nats.ReconnectBufSize(-1), nats.ReconnectWait(time.Second)}
	if inProcess && e.srv != nil {
		return nats.Connect("", append(opts, nats.InProcessServer(e.srv))...)
	}
	return nats.Connect(e.url, opts...)
}

func (e *env) close() {
	if e.adminJS != nil && e.mode == modeURL { // shared server: remove what this env made
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		for _, s := range []string{e.names.Events, e.names.DeadLetter, e.rawName} {
			_ = e.adminJS.DeleteStream(ctx, s)
		}
		_ = e.adminJS.DeleteKeyValue(ctx, e.bucket)
		cancel()
	}
	if e.pub != nil {
		e.pub.Close()
	}
	if e.admin != nil {
		e.admin.Close()
	}
	if e.srv != nil {
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
	}
	if e.proc != nil {
		e.proc.stop()
	}
	if e.dir != "" {
		_ = os.RemoveAll(e.dir)
	}
}

// createEndpoints stores one record per URL with statekv.Store.Create (status
// active unless edit changes it, CreatedAt now) and returns their ids.
func (e *env) createEndpoints(urls []string, edit func(*statekv.Record)) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ids := make([]string, len(urls))
	for i, u := range urls {
		id := fmt.Sprintf("ep%04d", i)
		rec := statekv.Record{ID: id, Name: id, URL: u, Status: statekv.StatusActive, CreatedAt: time.Now()}
		if edit != nil {
			edit(&rec)
		}
		if _, err := e.store.Create(ctx, rec); err != nil {
			return nil, err
		}
		ids[i] = id
	}
	return ids, nil
}

// publishAsync publishes n events (bodies from body(i)) with PublishAsync and
// waits for every ack; it returns the elapsed time.
func (e *env) publishAsync(js jetstream.JetStream, subject string, n int, body func(i int) []byte) (time.Duration, error) {
	start := time.Now()
	errsBefore := e.pubErrs.Load()
	for i := range n {
		if _, err := js.PublishAsync(subject, body(i), jetstream.WithStallWait(30*time.Second)); err != nil {
			return 0, fmt.Errorf("publish %d: %w", i, err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		return 0, errors.New("async publish: acks did not all arrive within 2 minutes")
	}
	d := time.Since(start)
	if n := e.pubErrs.Load() - errsBefore; n > 0 {
		return d, fmt.Errorf("async publish: %d publishes failed", n)
	}
	return d, nil
}

// paced calls fn(i) for i = 0.. at rate per second during dur, on schedule
// (late calls catch up) and returns how many were made.
func paced(perSecond int, dur time.Duration, fn func(i int)) int {
	interval := time.Second / time.Duration(perSecond)
	total := int(dur / interval)
	start := time.Now()
	for i := range total {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		fn(i)
	}
	return total
}

// sidecar is the real pipeline, started through the sidecar package as
// `serve` starts it (no HTTP server), on its own in-process connection.
type sidecar struct {
	*sidecarpkg.Sidecar
	nc      *nats.Conn
	watcher *statekv.Watcher

	cancel context.CancelFunc
	done   chan struct{}
}

type sidecarOpts struct {
	mif      int
	attempts attempts.Mode // the attempt log; "" = its default (all)
	timeout  time.Duration // HTTP timeout; 0 = the default (10 s)
	policy   statekv.Policy
	metrics  bool
}

func (e *env) startSidecar(o sidecarOpts) (_ *sidecar, err error) {
	s := &sidecar{}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	if s.nc, err = e.connect("dojo-webhooks", true); err != nil {
		return s, err
	}
	s.Sidecar, err = sidecarpkg.New(context.Background(), sidecarpkg.Config{
		Prefix: e.names.Prefix, Bucket: statekv.BucketConfig{Name: e.bucket},
		MaxInFlight: o.mif, Policy: o.policy, Delivery: delivery.Options{Timeout: o.timeout},
		Request:       consumer.RequestDefaults{Instance: benchInstance, UserAgent: benchUserAgent},
		ShutdownGrace: benchShutdownGrace, HTTPAddr: sidecarpkg.HTTPOff, Metrics: o.metrics, Logger: e.log,
		Attempts: o.attempts,
	}, s.nc)
	if err != nil {
		return s, err
	}
	s.watcher = s.Watcher()
	var ctx context.Context
	ctx, s.cancel = context.WithCancel(context.Background())
	s.done = make(chan struct{})
	go func() {
		defer close(s.done)
		if err := s.Run(ctx); err != nil {
			e.log.Error().Err(err).Msg("sidecar stopped")
		}
	}()
	return s, nil
}

// stop stops the sidecar (the manager first: in-flight deliveries drain) and
// then drains its connection, as serve does.
func (s *sidecar) stop() {
	if s.cancel != nil {
		s.cancel()
		<-s.done
	}
	if s.nc != nil {
		done := make(chan struct{})
		s.nc.SetClosedHandler(func(*nats.Conn) { close(done) })
		if s.nc.Drain() != nil {
			s.nc.Close()
		} else {
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				s.nc.Close()
			}
		}
	}
}

// waitFor polls cond every poll until it holds or timeout passes.
func waitFor(timeout, poll time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(poll)
	}
}

// waitProgress waits until count() reaches target, failing when it does not
// move for stall (or overall after limit).
func waitProgress(target int, stall, limit time.Duration, count func() int) error {
	deadline := time.Now().Add(limit)
	last, lastMove := -1, time.Now()
	for {
		c := count()
		if c >= target {
			return nil
		}
		now := time.Now()
		if c != last {
			last, lastMove = c, now
		}
		if now.Sub(lastMove) > stall {
			return fmt.Errorf("stalled at %d of %d for %s", c, target, stall)
		}
		if now.After(deadline) {
			return fmt.Errorf("only %d of %d after %s", c, target, limit)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// consumerCount is the number of consumers on the events stream.
func (e *env) consumerCount() (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := e.adminJS.Stream(ctx, e.names.Events)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	return info.State.Consumers, nil
}

func (e *env) consumerInfo(id string) (*jetstream.ConsumerInfo, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := e.adminJS.Consumer(ctx, e.names.Events, contract.ConsumerName(id))
	if err != nil {
		return nil, err
	}
	return c.Info(ctx)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// describeConsumer says where an endpoint's consumer stands (for stall errors).
func (e *env) describeConsumer(id string) string {
	i, err := e.consumerInfo(id)
	if err != nil {
		return "consumer info: " + err.Error()
	}
	return fmt.Sprintf("consumer %s: delivered stream seq %d, ack floor %d, ack pending %d, pending %d, waiting pulls %d, redelivered %d, paused %v",
		i.Name, i.Delivered.Stream, i.AckFloor.Stream, i.NumAckPending, i.NumPending, i.NumWaiting, i.NumRedelivered, i.Paused)
}
