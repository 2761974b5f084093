package consumer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/dojo-webhooks/dojo-webhooks/attempts"
	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/delivery"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// Defaults of the delivery pipeline, documented in the README.
const (
	DefaultMaxInFlight   = 1
	DefaultShutdownGrace = 15 * time.Second
	// AckWait is how long the server waits for an ack before it hands the event to
	// another sidecar. A delivery in progress tells the server so every AckWait/3,
	// however long the HTTP timeout; a sidecar that died without NAKing (SIGKILL)
	// has its events redelivered after AckWait.
	AckWait = 10 * time.Second
	// reconcileRetry is how long a failed consumer operation waits before it is tried again.
	reconcileRetry = time.Second
	// ReconcileParallelism is how many endpoints Run reconciles at once (each a
	// few server round trips: at start-up, one consumer created per endpoint).
	// One endpoint is never reconciled by two at once, and a batch is done
	// before the next change is looked at.
	ReconcileParallelism = 16
	// PipelineWindow is how many events the server may hand an endpoint's consumer
	// ahead of their acks (MaxAckPending) with MaxInFlight 1: the runner delivers
	// them one at a time in stream order, but the next one is already here when a
	// request ends, so no NATS round trip sits between two deliveries. With
	// MaxInFlight N > 1 the window is max(PipelineWindow, 4N) (windowFor).
	PipelineWindow = 64
	// PinnedTTL is how long an endpoint's ordered consumer (MaxInFlight 1) stays
	// pinned to a sidecar that stopped pulling without unpinning (killed,
	// disconnected) before another replica takes over: a pinned sidecar pulls
	// again at least every pullExpiry, or two missed heartbeats after its pull
	// vanished. The replica taking over resets the consumer to its ack floor
	// before it delivers (runner.sync), so the dead sidecar's window comes again
	// in stream order.
	PinnedTTL = pullExpiry + 2*pullHeartbeat
	// priorityGroup is the priority group of the ordered consumers (pinned_client policy).
	priorityGroup = "deliver"
)

// windowFor is the MaxAckPending of an endpoint's consumer for maxInFlight
// requests in flight; see PipelineWindow.
func windowFor(maxInFlight int) int {
	return max(PipelineWindow, 4*maxInFlight)
}

// Config configures a Manager; zero values take the documented defaults
// (withDefaults applies them, validate checks the result).
type Config struct {
	Names         contract.Names      // default the names of contract.DefaultPrefix
	Replicas      int                 // consumer replicas, default DefaultReplicas
	MaxInFlight   int                 // requests in flight per endpoint (and sidecar), default DefaultMaxInFlight: in publish order
	Request       RequestDefaults     // the request headers an event does not set itself
	Policy        statekv.Policy      // the state machine's durations
	Now           func() time.Time    // clock, default time.Now
	Logger        zerolog.Logger      // delivery failures and transitions
	ShutdownGrace time.Duration       // how long in-flight deliveries may finish at stop, default DefaultShutdownGrace
	Observer      Observer            // optional hooks (metrics)
	Attempts      *attempts.Recorder  // the attempt log; nil = none
	AttemptBody   int                 // response body bytes an attempt record keeps, default attempts.DefaultBodyBytes; -1 = none
	Client        *delivery.Client    // the HTTP client (required)
	Store         *statekv.Store      // endpoint records (required)
	Watcher       *statekv.Watcher    // their in-memory view (required)
	JetStream     jetstream.JetStream // (required)
	DropCheck     time.Duration       // how often discarded events are looked for, default DefaultDropCheck
}

// Observer receives one call per delivery attempt and per state transition
// written by this sidecar. Implementations must not block.
type Observer interface {
	Delivered(endpoint, event string, res delivery.Result)
	Transitioned(endpoint string, from, to statekv.Status)
	DeadLettered(endpoint string)
	// Dropped reports count events of the endpoint that the events stream's
	// limits discarded before it received them (an estimate for a filtered
	// endpoint: see jsstate.Loss), stream sequences first to last, once per
	// check that found new ones.
	Dropped(endpoint string, count, first, last uint64)
}

// withDefaults fills the zero fields of c with the defaults: the one place they are applied.
func (c Config) withDefaults() Config {
	c.Observer = observerOrNop(c.Observer)
	if c.AttemptBody == 0 {
		c.AttemptBody = attempts.DefaultBodyBytes
	}
	if c.Names.Prefix == "" {
		c.Names = contract.NamesFor(contract.DefaultPrefix)
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	if c.DropCheck <= 0 {
		c.DropCheck = DefaultDropCheck
	}
	return c
}

// validate checks a configuration that has its defaults; it changes nothing.
func (c Config) validate() error {
	if c.Client == nil || c.Store == nil || c.Watcher == nil || c.JetStream == nil {
		return errors.New("consumer: Client, Store, Watcher and JetStream are required")
	}
	if c.MaxInFlight < 0 {
		return fmt.Errorf("consumer: MaxInFlight %d: must be positive", c.MaxInFlight)
	}
	return c.Policy.Validate()
}

// Manager keeps one durable consumer per endpoint in line with the KV view, and
// runs the deliveries of the endpoints that may be sent to.
type Manager struct {
	cfg    Config
	js     jetstream.JetStream
	stream jetstream.Stream
	log    zerolog.Logger

	kick chan string // endpoints to reconcile again (a consume that ended, a failed operation)

	// endpoints is touched by Run's goroutine and the reconciles it runs
	// (reconcileAll); mu guards the map, an endpointState is touched by the one
	// reconcile of its endpoint at a time.
	mu        sync.Mutex
	endpoints map[string]*endpointState

	// deliverCtx outlives Run's ctx by the shutdown grace, so that in-flight requests can finish.
	deliverCtx    context.Context
	cancelDeliver context.CancelFunc
	stopping      chan struct{}
	runners       sync.WaitGroup
	pinWarning    sync.Once // checkPinned's
}

// endpointState is what the manager last applied to the server for one endpoint.
type endpointState struct {
	def        consumerDef
	defined    bool
	pauseUntil time.Time          // zero = running
	consumer   jetstream.Consumer // handle from the last define, nil when unknown
	runner     *runner
	absent     bool // a listing just now had no consumer for it: define creates without a lookup
}

// consumerDef is the part of a consumer's configuration that follows the record.
type consumerDef struct {
	filters []string
	start   time.Time // deliver_from or created_at; zero (a record put by hand) = keep the consumer's own start
}

func (d consumerDef) equal(o consumerDef) bool {
	return slices.Equal(d.filters, o.filters) && d.start.Equal(o.start)
}

// New checks cfg and returns a manager; Run starts it. The streams must exist (EnsureStreams).
func New(ctx context.Context, cfg Config) (*Manager, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	stream, err := cfg.JetStream.Stream(ctx, cfg.Names.Events)
	if err != nil {
		return nil, fmt.Errorf("consumer: events stream %s: %w", cfg.Names.Events, err)
	}
	dctx, cancel := context.WithCancel(context.Background())
	return &Manager{
		cfg: cfg, js: cfg.JetStream, stream: stream, log: cfg.Logger,
		kick:       make(chan string, 1024),
		endpoints:  make(map[string]*endpointState),
		deliverCtx: dctx, cancelDeliver: cancel,
		stopping: make(chan struct{}),
	}, nil
}

// Run reconciles consumers with the watcher's view until ctx is done, then stops
// fetching, lets in-flight deliveries finish within the shutdown grace (the rest
// are NAKed for another replica or the next start) and returns.
func (m *Manager) Run(ctx context.Context) error {
	sub := m.cfg.Watcher.Subscribe()
	defer sub.Close()
	defer m.shutdown()
	var drops sync.WaitGroup
	dctx, stopDrops := context.WithCancel(ctx)
	defer drops.Wait()
	defer stopDrops()
	drops.Go(func() { m.watchDrops(dctx) })
	ids := make(chan []string)
	go func() {
		for {
			batch, err := sub.Next(ctx)
			if err != nil {
				close(ids)
				return
			}
			select {
			case ids <- batch:
			case <-ctx.Done():
				close(ids)
				return
			}
		}
	}()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	pending := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case batch, ok := <-ids:
			if !ok {
				return nil
			}
			for _, id := range m.reconcileAll(ctx, batch) {
				pending[id] = true
			}
		case id := <-m.kick:
			if m.recheck(id) && !m.reconcile(ctx, id) {
				pending[id] = true
			}
		case <-retry.C:
		}
		if len(pending) > 0 {
			if ctx.Err() != nil {
				return nil
			}
			again := m.reconcileAll(ctx, slices.Collect(maps.Keys(pending)))
			clear(pending)
			for _, id := range again {
				pending[id] = true
			}
			if len(pending) > 0 {
				retry.Reset(reconcileRetry)
			}
		}
	}
}

// reconcileAll reconciles ids, ReconcileParallelism at a time, each once, and
// returns those to retry. It returns when all are done, so that a later change
// of an endpoint is reconciled after this one.
func (m *Manager) reconcileAll(ctx context.Context, ids []string) (failed []string) {
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	if len(ids) == 1 {
		if !m.reconcile(ctx, ids[0]) {
			return ids
		}
		return nil
	}
	m.markAbsent(ctx, ids)
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		next = make(chan string)
	)
	for range min(ReconcileParallelism, len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range next {
				if !m.reconcile(ctx, id) {
					mu.Lock()
					failed = append(failed, id)
					mu.Unlock()
				}
			}
		}()
	}
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		next <- id
	}
	close(next)
	wg.Wait()
	return failed
}

// listAtOnce is the number of endpoints from which reconcileAll lists the
// consumers first (one request per 1,024 names) instead of looking each up.
const listAtOnce = 32

// markAbsent lists the events stream's consumers when ids are many, and marks
// the endpoints this manager knows nothing of yet and that have no consumer,
// so that their first define creates it without a lookup: at start-up that is
// one request per endpoint fewer, on a server that handles them one at a time.
func (m *Manager) markAbsent(ctx context.Context, ids []string) {
	if len(ids) < listAtOnce {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	lister := m.stream.ConsumerNames(ctx)
	existing := map[string]bool{}
	for name := range lister.Name() {
		existing[name] = true
	}
	if err := lister.Err(); err != nil {
		m.log.Debug().Err(err).Msg("listing consumers; looking each up")
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		if m.endpoints[id] == nil && !existing[contract.ConsumerName(id)] {
			m.endpoints[id] = &endpointState{absent: true}
		}
	}
}

// state returns the endpoint's state, nil when it has none.
func (m *Manager) state(id string) *endpointState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.endpoints[id]
}

// shutdown stops every runner and waits for in-flight deliveries, at most the grace period.
func (m *Manager) shutdown() {
	close(m.stopping)
	for _, st := range m.endpoints {
		if st.runner != nil {
			st.runner.stop()
		}
	}
	done := make(chan struct{})
	go func() {
		m.runners.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(m.cfg.ShutdownGrace):
		m.log.Warn().Dur("grace", m.cfg.ShutdownGrace).Msg("deliveries still in flight at the end of the shutdown grace; cancelling them (they are redelivered)")
		m.cancelDeliver()
		<-done
	}
	m.cancelDeliver()
}

// reconcile brings one endpoint's consumer and runner in line with its view.
// It returns false when a server operation failed and should be retried.
func (m *Manager) reconcile(ctx context.Context, id string) bool {
	view, ok := m.cfg.Watcher.Get(id)
	st := m.state(id)
	if !ok {
		if st != nil && st.runner != nil {
			st.runner.stop()
		}
		m.mu.Lock()
		delete(m.endpoints, id)
		m.mu.Unlock()
		err := m.stream.DeleteConsumer(ctx, contract.ConsumerName(id))
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			m.log.Warn().Str("endpoint", id).Err(err).Msg("removing the consumer of a removed endpoint failed; retrying")
			return false
		}
		if err == nil {
			m.log.Info().Str("endpoint", id).Msg("endpoint removed; its consumer deleted")
		}
		return true
	}
	if st == nil {
		st = &endpointState{}
		m.mu.Lock()
		m.endpoints[id] = st
		m.mu.Unlock()
	}
	if !view.Valid() {
		// Held: keep what was delivered and what is waiting; send nothing until the record is fixed.
		if st.runner != nil {
			st.runner.stop()
			st.runner = nil
		}
		if !st.pauseUntil.Equal(contract.HeldUntil) {
			// Also when this sidecar never defined it (the record was already invalid
			// at start-up): `nats consumer info` then shows it held.
			err := m.pause(ctx, id, contract.HeldUntil)
			if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
				return false
			}
			if err == nil {
				st.pauseUntil = contract.HeldUntil
			}
		}
		return true
	}
	rec := view.Record
	want := m.definition(rec)
	pauseUntil := m.pauseFor(rec)
	if !st.defined || !st.def.equal(want) {
		if err := m.define(ctx, id, st, want, view.Modified, pauseUntil); err != nil {
			m.log.Warn().Str("endpoint", id).Err(err).Msg("creating or updating the endpoint's consumer failed; retrying")
			return false
		}
	}
	if !st.pauseUntil.Equal(pauseUntil) {
		var err error
		if pauseUntil.IsZero() {
			_, err = m.js.ResumeConsumer(ctx, m.cfg.Names.Events, contract.ConsumerName(id))
		} else {
			err = m.pause(ctx, id, pauseUntil)
		}
		if err != nil {
			m.forgetIfMissing(st, err)
			m.log.Warn().Str("endpoint", id).Err(err).Msg("pausing or resuming the endpoint's consumer failed; retrying")
			return false
		}
		st.pauseUntil = pauseUntil
	}
	deliverable := rec.Status.Deliverable()
	if deliverable && (st.runner == nil || st.runner.ended()) {
		// A handle once consumed carries that runner's pin (nats.go keeps the pin
		// id on it): a later runner looks up its own.
		r, err := m.startRunner(id, st.consumer)
		st.consumer = nil
		if err != nil {
			m.forgetIfMissing(st, err)
			m.log.Warn().Str("endpoint", id).Err(err).Msg("starting deliveries failed; retrying")
			return false
		}
		st.runner = r
	} else if !deliverable && st.runner != nil {
		st.runner.stopPaused() // paused above
		st.runner = nil
	}
	return true
}

// Who pauses a consumer on the server
//
// Two places pause an endpoint's consumer, and both are needed:
//
//   - The manager's reconcile (Run's goroutine) owns the steady state. For each
//     view the watcher reports, it makes the server's pause match pauseFor(record)
//     (held records: contract.HeldUntil) and resumes deliverable endpoints.
//     st.pauseUntil is its belief of the server's pause, so that it only calls the
//     server when the two differ.
//   - The runner, after a failure that makes the record undeliverable, pauses at
//     once (pauseAfterFailure), before it NAKs the event. The reconcile would
//     pause only once the watcher has seen the write (a KV round trip later);
//     until then the server would hand the NAKed event straight back and the
//     runner, reading the old deliverable view, would send it to the failing
//     endpoint again.
//
// The runner's pause goes around st.pauseUntil (which only Run's goroutine may
// touch), so three things keep the two consistent:
//
//  1. The runner pauses only when the watcher has seen no write newer than the
//     failure: a newer one (a user activation) is the reconcile's to apply, and
//     pausing after it would undo it.
//  2. It then records the failure's revision in runner.pausedAt and sends the
//     endpoint on m.kick: the newer write may still have been reconciled (and the
//     consumer resumed) between that check and the pause landing.
//  3. Run's goroutine answers a kick with recheck: st.defined = false, so the
//     next reconcile's define reads the server's actual pause into st.pauseUntil
//     and corrects it against the record. recheck skips that reconcile while the
//     watcher's view is older than pausedAt (reconciling the older, deliverable
//     view would resume the consumer); the watcher's update for the failure
//     triggers the reconcile instead, still with st.defined = false.
//
// The same kick and recheck serve a consumer deleted under its runner
// (ConsumeErrHandler in runner.go): the next reconcile creates it again.

// pauseAfterFailure pauses the endpoint's consumer right after r wrote entry,
// when entry's status may not be sent to; see "Who pauses a consumer on the
// server" above.
func (m *Manager) pauseAfterFailure(ctx context.Context, r *runner, entry statekv.Entry) {
	if entry.Record.Status.Deliverable() {
		return
	}
	until := m.pauseFor(entry.Record)
	if until.IsZero() {
		return
	}
	if latest, ok := m.cfg.Watcher.Get(r.id); ok && latest.Revision > entry.Revision {
		return // a newer write: the reconcile of its view owns the pause (1)
	}
	_ = m.pause(ctx, r.id, until)
	r.pausedAt.Store(entry.Revision) // (2)
	select {
	case m.kick <- r.id:
	default:
	}
}

// recheck makes the next reconcile of a kicked endpoint compare the server's
// consumer with the record again: the consumer was deleted under its runner, or
// the runner paused it after a failure, possibly after a newer write (a user
// activation) was reconciled. It returns false when the watcher has not seen
// that failure yet: reconciling the older view now could undo the pause; the
// watcher's update reconciles it.
func (m *Manager) recheck(id string) bool {
	st := m.state(id)
	if st == nil {
		return true
	}
	st.defined = false
	if st.runner != nil {
		if v, ok := m.cfg.Watcher.Get(id); ok && v.Revision < st.runner.pausedAt.Load() {
			return false
		}
	}
	return true
}

// forgetIfMissing makes the next reconcile create the consumer again when err
// says it no longer exists (deleted by hand, or lost by the server).
func (m *Manager) forgetIfMissing(st *endpointState, err error) {
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		st.defined = false
	}
}

func (m *Manager) pause(ctx context.Context, id string, until time.Time) error {
	if _, err := m.js.PauseConsumer(ctx, m.cfg.Names.Events, contract.ConsumerName(id), until); err != nil {
		m.log.Warn().Str("endpoint", id).Err(err).Msg("pausing the endpoint's consumer failed")
		return fmt.Errorf("pause consumer %s: %w", contract.ConsumerName(id), err)
	}
	return nil
}

// pauseFor is how long the endpoint's consumer stays paused: not at all while it
// may be sent to, until the reactivation for inactive_tmp, until resumed otherwise.
func (m *Manager) pauseFor(rec statekv.Record) time.Time {
	switch rec.Status {
	case statekv.StatusActive, statekv.StatusActiveTmp:
		return time.Time{}
	case statekv.StatusInactiveTmp:
		return statekv.ReactivationTime(rec, m.cfg.Policy).UTC()
	}
	return contract.HeldUntil
}

// definition derives the consumer's filter subjects and start from the record.
func (m *Manager) definition(rec statekv.Record) consumerDef {
	filters := m.cfg.Names.ConsumerFilters(rec.ID, rec.Events)
	start := rec.CreatedAt
	if !rec.DeliverFrom.IsZero() {
		start = rec.DeliverFrom
	}
	return consumerDef{filters: filters, start: start.UTC()}
}

func (m *Manager) consumerConfig(id string, def consumerDef, start, pauseUntil time.Time) jetstream.ConsumerConfig {
	cc := jetstream.ConsumerConfig{
		Durable:        contract.ConsumerName(id),
		Description:    "dojo-webhooks endpoint " + id,
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        AckWait,
		MaxDeliver:     -1,
		FilterSubjects: def.filters,
		MaxAckPending:  windowFor(m.cfg.MaxInFlight),
		Replicas:       m.cfg.Replicas,
	}
	if m.ordered() {
		// One sidecar at a time receives the window (another takes over when it
		// unpins at stop, or PinnedTTL after it stopped pulling): two replicas
		// pulling one window would interleave the endpoint's events.
		cc.PriorityPolicy, cc.PriorityGroups, cc.PinnedTTL = jetstream.PriorityPolicyPinned, []string{priorityGroup}, PinnedTTL
	}
	if !start.IsZero() {
		start := start.UTC()
		cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	}
	if !pauseUntil.IsZero() {
		p := pauseUntil
		cc.PauseUntil = &p
	}
	return cc
}

// define creates the endpoint's consumer, or updates its filter, or recreates it
// when its start moved (a skip): the start of a consumer cannot be updated. A
// record without created_at (put by hand) gets a consumer starting at the time
// of the revision first seen (modified), so events published after the put but
// before the consumer existed are not missed.
func (m *Manager) define(ctx context.Context, id string, st *endpointState, want consumerDef, modified, pauseUntil time.Time) error {
	name := contract.ConsumerName(id)
	start := want.start
	if start.IsZero() {
		start = modified
	}
	cfg := m.consumerConfig(id, want, start, pauseUntil)
	var c jetstream.Consumer
	var err error = jetstream.ErrConsumerNotFound
	if !st.absent {
		c, err = m.stream.Consumer(ctx, name)
	}
	st.absent = false
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		if st.runner != nil { // consuming a consumer that is gone: start again on the new one
			st.runner.stop()
			st.runner = nil
		}
		cons, err := m.stream.CreateConsumer(ctx, cfg)
		if err != nil {
			// ErrConsumerExists: another sidecar created it meanwhile with another
			// configuration (an older version); the retry updates it as an existing one.
			return fmt.Errorf("create consumer %s: %w", name, err)
		}
		c = cons
		m.log.Info().Str("endpoint", id).Str("consumer", name).Strs("filter", want.filters).Msg("endpoint consumer created")
	case err != nil:
		return fmt.Errorf("consumer %s: %w", name, err)
	default:
		info := c.CachedInfo()
		have := consumerDef{filters: slices.Sorted(slices.Values(filtersOf(info.Config))), start: startOf(info.Config)}
		if want.start.IsZero() {
			// Keep the consumer's own start (it cannot change anyway).
			have.start = time.Time{}
			cfg.DeliverPolicy, cfg.OptStartTime = info.Config.DeliverPolicy, info.Config.OptStartTime
		}
		if !have.start.Equal(want.start) {
			if st.runner != nil {
				st.runner.stop()
				st.runner = nil
			}
			if err := m.stream.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
				return fmt.Errorf("recreate consumer %s: %w", name, err)
			}
			if c, err = m.stream.CreateOrUpdateConsumer(ctx, cfg); err != nil {
				return fmt.Errorf("recreate consumer %s: %w", name, err)
			}
			m.log.Info().Str("endpoint", id).Str("consumer", name).Time("start", want.start).Msg("endpoint consumer restarted from a new start")
		} else {
			if !have.equal(want) || !sameDelivery(info.Config, cfg) {
				cfg.PauseUntil = nil // pause is set apart below
				if c, err = m.stream.UpdateConsumer(ctx, cfg); err != nil {
					return fmt.Errorf("update consumer %s: %w", name, err)
				}
				m.log.Info().Str("endpoint", id).Str("consumer", name).Strs("filter", want.filters).Msg("endpoint consumer updated")
			}
			// The server's pause is what it is now; the caller pauses or resumes as needed.
			pauseUntil = time.Time{}
			if info.Paused && info.Config.PauseUntil != nil {
				pauseUntil = info.Config.PauseUntil.UTC()
			}
		}
	}
	st.def, st.defined, st.pauseUntil, st.consumer = want, true, pauseUntil, c
	m.checkPinned(c)
	return nil
}

// checkPinned warns once when the server did not keep an ordered consumer's
// pinned_client priority group (nats-server before 2.11 ignores it): one
// sidecar still delivers in order, several would interleave the window.
func (m *Manager) checkPinned(c jetstream.Consumer) {
	if c == nil || !m.ordered() || c.CachedInfo().Config.PriorityPolicy == jetstream.PriorityPolicyPinned {
		return
	}
	m.pinWarning.Do(func() {
		m.log.Warn().Str("consumer", c.CachedInfo().Name).
			Msg("the NATS server does not keep pinned consumers (nats-server 2.11 or later does): run one sidecar only, or several would interleave an endpoint's events")
	})
}

// ordered reports whether the endpoints are delivered in publish order (MaxInFlight 1).
func (m *Manager) ordered() bool { return m.cfg.MaxInFlight == 1 }

// sameDelivery reports whether the server's consumer config have delivers like
// want: window, ack wait and priority policy (a consumer created by an older
// version, or with another MaxInFlight, is updated in place: all of them may be
// updated, and the consumer keeps its position).
func sameDelivery(have, want jetstream.ConsumerConfig) bool {
	return have.MaxAckPending == want.MaxAckPending && have.AckWait == want.AckWait &&
		have.PriorityPolicy == want.PriorityPolicy && have.PinnedTTL == want.PinnedTTL &&
		slices.Equal(have.PriorityGroups, want.PriorityGroups)
}

func filtersOf(c jetstream.ConsumerConfig) []string {
	if len(c.FilterSubjects) > 0 {
		return c.FilterSubjects
	}
	if c.FilterSubject != "" {
		return []string{c.FilterSubject}
	}
	return nil
}

func startOf(c jetstream.ConsumerConfig) time.Time {
	if c.DeliverPolicy == jetstream.DeliverByStartTimePolicy && c.OptStartTime != nil {
		return c.OptStartTime.UTC()
	}
	return time.Time{}
}
