package consumer

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/attempts"
	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/delivery"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// opTimeout bounds the NATS operations of one delivery (transition, dead letter).
const opTimeout = 10 * time.Second

// pullExpiry and pullHeartbeat bound how long a consumer whose leader moved goes
// unnoticed (costs one heartbeat per pullHeartbeat per idle endpoint and sidecar).
const (
	pullExpiry    = 10 * time.Second
	pullHeartbeat = 2 * time.Second
)

// notDeliverableDelay spaces out redeliveries that race with a pause.
const notDeliverableDelay = 100 * time.Millisecond

// nopObserver is the Observer of a Manager configured without one.
type nopObserver struct{}

func (nopObserver) Delivered(string, string, delivery.Result)           {}
func (nopObserver) Transitioned(string, statekv.Status, statekv.Status) {}
func (nopObserver) DeadLettered(string)                                 {}
func (nopObserver) Dropped(string, uint64, uint64, uint64)              {}

// observerOrNop is o, or a no-op Observer when o is nil.
func observerOrNop(o Observer) Observer {
	if o == nil {
		return nopObserver{}
	}
	return o
}

// runner consumes one endpoint's durable consumer; see "The window" in window.go.
type runner struct {
	m        *Manager
	id       string
	ordered  bool // MaxInFlight 1: one at a time, in stream order
	cc       jetstream.ConsumeContext
	stopping atomic.Bool
	stopAt   atomic.Int64 // when stop was called (unix ns)
	paused   atomic.Bool  // stopped because the consumer was paused (stopPaused)
	sem      chan struct{}
	inflight sync.WaitGroup // messages received and not settled yet
	workers  sync.WaitGroup // the worker goroutine, while it runs
	pausedAt atomic.Uint64  // revision of the failure after which this runner paused the consumer itself (see pauseAfterFailure)

	mu        sync.Mutex
	queue     []jetstream.Msg // received, not handled yet, in arrival order
	current   *windowMsg      // being handled (ordered only)
	working   bool            // a worker goroutine is handling the queue
	keepAlive *time.Timer     // keepWindow's, while the window is not empty

	// Touched only by the worker (ordered), then by finish.
	back         []outEvent    // given back and not handed back yet, by stream sequence
	backDelay    time.Duration // the delay they were given back with
	synced       bool          // the first events received are in stream order (sync)
	resetSent    bool          // sync reset the consumer
	resetSeq     uint64        // the stream sequence it was reset to
	forgot       bool          // an event given back did not come back and was forgotten
	lastDelivery uint64        // consumer sequence of the last event received (deliveries to this runner are consecutive)

	ackMu    sync.Mutex
	acks     []jetstream.Msg // settled, their acks not sent yet (see ack)
	ackTimer *time.Timer     // flushAcks's, while acks is not empty
}

// ackCoalesce is how long an ack waits for the next ones, so that nats.go
// writes them to the server together: at thousands of deliveries per second
// one write (and one read on the server) per ack is most of the CPU left.
const ackCoalesce = time.Millisecond

// ack sends msg's ack within ackCoalesce, with the others settled meanwhile.
func (r *runner) ack(msg jetstream.Msg) {
	r.ackMu.Lock()
	defer r.ackMu.Unlock()
	r.acks = append(r.acks, msg)
	if r.ackTimer == nil {
		r.ackTimer = time.AfterFunc(ackCoalesce, func() { r.flushAcks(false) })
	}
}

// flushAcks sends the acks waiting, in the order settled. With confirm (before
// a reset to the ack floor, and before the unpin at the end of a runner) the
// last one is acknowledged by the server (double ack), so that neither that
// reset nor the sidecar taking over hands out again what they ack: the server
// handles acks apart from API requests.
func (r *runner) flushAcks(confirm bool) {
	r.ackMu.Lock()
	defer r.ackMu.Unlock()
	acks := r.acks
	r.acks = nil
	if r.ackTimer != nil {
		r.ackTimer.Stop()
		r.ackTimer = nil
	}
	for i, msg := range acks {
		if confirm && i == len(acks)-1 {
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			if err := msg.DoubleAck(ctx); err != nil {
				_ = msg.Ack()
			}
			cancel()
			continue
		}
		_ = msg.Ack()
	}
}

// startRunner consumes the endpoint's consumer through cons, or a handle looked
// up by name when cons is nil.
func (m *Manager) startRunner(id string, cons jetstream.Consumer) (*runner, error) {
	if cons == nil {
		var err error
		if cons, err = m.stream.Consumer(context.Background(), contract.ConsumerName(id)); err != nil {
			return nil, fmt.Errorf("consumer %s: %w", contract.ConsumerName(id), err)
		}
	}
	r := &runner{m: m, id: id, ordered: m.ordered(), sem: make(chan struct{}, m.cfg.MaxInFlight)}
	// The server hands out at most MaxInFlight at a time whatever the batch; a
	// large batch keeps a pull open. With a small one, nats.go v1.55.0 can leave a
	// MaxAckPending=1 consumer with no pull outstanding until the next missed
	// heartbeat (seconds without deliveries: measured by the bench command).
	batch := max(2*windowFor(m.cfg.MaxInFlight), 256)
	opts := []jetstream.PullConsumeOpt{
		jetstream.PullMaxMessages(batch),
		// Short pulls with frequent heartbeats: when the server leading this consumer
		// dies, its pending pull vanishes silently; missing heartbeats (2 × 2 s) make
		// the client pull again from the new leader instead of after nats.go's 30 s.
		jetstream.PullExpiry(pullExpiry),
		jetstream.PullHeartbeat(pullHeartbeat),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				select { // the consumer was recreated (a skip) or removed: look again
				case m.kick <- id:
				default:
				}
				return
			}
			m.log.Debug().Str("endpoint", id).Err(err).Msg("consume")
		}),
	}
	if r.ordered {
		opts = append(opts, jetstream.PullPriorityGroup(priorityGroup))
	}
	cc, err := cons.Consume(r.dispatch, opts...)
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", contract.ConsumerName(id), err)
	}
	r.cc = cc
	m.runners.Add(1)
	go func() {
		defer m.runners.Done()
		<-cc.Closed()
		r.finish()
	}()
	return r, nil
}

// stop ends fetching; the request in flight finishes, the events received
// and not sent yet are NAKed in stream order once the consume has ended (finish).
func (r *runner) stop() {
	if r.stopping.Swap(true) {
		return
	}
	r.stopAt.Store(time.Now().UnixNano())
	r.cc.Drain()
}

// stopPaused is stop for a consumer that is paused on the server: what is left
// is given back with NAKs, which nats-server keeps in order while paused.
func (r *runner) stopPaused() {
	r.paused.Store(true)
	r.stop()
}

// ended reports whether the consume ended by itself (consumer deleted) or was stopped.
func (r *runner) ended() bool {
	select {
	case <-r.cc.Closed():
		return true
	default:
		return r.stopping.Load()
	}
}

// attempt is one event routed to this runner's endpoint, ready to be sent.
type attempt struct {
	md     *jetstream.MsgMetadata
	event  string
	id     string // the delivery id (webhook-id)
	replay bool   // sent again by a replay
	before statekv.Status
	req    delivery.Request
}

// handle delivers one event to the endpoint and settles it: ack, nak or term.
// A panic is recovered: the event is redelivered and the process keeps running.
func (r *runner) handle(msg jetstream.Msg) {
	defer r.inflight.Done()
	var event string
	defer r.recoverPanic(msg, &event)
	rec, md, ok := r.check(msg)
	if !ok {
		return
	}
	var replay bool
	if event, replay, ok = r.route(msg, rec); !ok {
		return
	}
	a := r.attempt(msg, md, rec, event, replay)
	// In progress until acked, NAKed or terminated: the request and the writes after it.
	defer keepInProgress(msg, AckWait/3)()
	start := r.m.cfg.Now()
	res := r.m.cfg.Client.Send(r.m.deliverCtx, a.req)
	r.m.cfg.Observer.Delivered(r.id, event, res)
	r.logDelivery(a, res)
	after := r.settle(msg, a, res)
	r.record(a, res, start, after)
}

// record puts the attempt in the attempt log (queued: it never waits).
func (r *runner) record(a attempt, res delivery.Result, start time.Time, after statekv.Status) {
	if !r.m.cfg.Attempts.Enabled(res.Class != delivery.Success) {
		return // the log is off, or keeps failures only: build nothing on the delivery's path
	}
	kind := attempts.KindDelivery
	if a.replay {
		kind = attempts.KindReplay
	}
	rec := AttemptOf(r.id, a.event, a.id, kind, res, start)
	rec.StreamSeq, rec.Attempt = a.md.Sequence.Stream, a.md.NumDelivered
	rec.StateBefore, rec.StateAfter = string(a.before), string(after)
	r.m.cfg.Attempts.Record(rec)
}

// panicRetry is how long an event whose delivery panicked waits before it is redelivered.
const panicRetry = time.Second

// recoverPanic, deferred by handle, turns a panic in one delivery into an
// error log and a NAK with delay. event is the event name once routed.
func (r *runner) recoverPanic(msg jetstream.Msg, event *string) {
	p := recover()
	if p == nil {
		return
	}
	r.m.log.Error().Str("endpoint", r.id).Str("event", *event).Str("subject", msg.Subject()).
		Str("panic", fmt.Sprint(p)).Str("stack", string(debug.Stack())).
		Dur("retry_in", panicRetry).Msg("delivery panicked; the event is redelivered")
	_ = msg.NakWithDelay(panicRetry)
}

// check returns the endpoint's record when msg may be delivered now; otherwise
// it settles msg itself (NAK while stopping or paused) and returns false.
func (r *runner) check(msg jetstream.Msg) (statekv.Record, *jetstream.MsgMetadata, bool) {
	m := r.m
	if r.stopping.Load() || isClosed(m.stopping) {
		_ = msg.Nak() // another replica or the next start takes it
		return statekv.Record{}, nil, false
	}
	md, err := msg.Metadata()
	if err != nil {
		m.log.Error().Str("endpoint", r.id).Err(err).Msg("message without JetStream metadata; ignored")
		return statekv.Record{}, nil, false
	}
	view, ok := m.cfg.Watcher.Get(r.id)
	// Older than a failure after which this runner paused the consumer: the
	// watcher has not seen it yet, and the events of the window must wait too.
	if !ok || !view.Valid() || !view.Record.Status.Deliverable() || view.Revision < r.pausedAt.Load() {
		_ = msg.NakWithDelay(notDeliverableDelay) // the consumer is being paused: it keeps the event
		return statekv.Record{}, nil, false
	}
	return view.Record, md, true
}

// route returns the event msg carries, and whether it is a replay, when it is for this endpoint; otherwise
// it settles msg itself (term when not an event, ack when filtered out) and returns false.
func (r *runner) route(msg jetstream.Msg, rec statekv.Record) (event string, replay, ok bool) {
	names := r.m.cfg.Names
	event, addressed, ok := names.EventName(msg.Subject())
	if !ok {
		r.m.log.Error().Str("endpoint", r.id).Str("subject", msg.Subject()).Msg("subject is not an event subject; terminated")
		_ = msg.Term()
		return "", false, false
	}
	if !ForEndpoint(rec, event, addressed, msg.Headers()) {
		r.ack(msg) // not for this endpoint (owner, filter, or an operational event about it)
		return "", false, false
	}
	return event, names.IsReplay(msg.Subject()), true
}

// ForEndpoint is the routing rule: whether an event (its name, whether its
// subject addresses one endpoint, its NATS headers) is sent to rec's endpoint.
// An addressed event (a replay, POST /ingest/<id>) skips the owner and the
// filter, which its consumer's filter subjects already chose. An operational
// event (on contract.Names.OpsSubject, which only a filter naming it selects)
// is never sent to the endpoint it is about (contract.HeaderAbout).
func ForEndpoint(rec statekv.Record, event string, addressed bool, hdr nats.Header) bool {
	if hdr.Get(contract.HeaderAbout) == rec.ID {
		return false
	}
	return addressed || rec.Matches(event, hdr.Get(contract.HeaderRecipient))
}

// attempt builds the request that delivers msg's event to rec's endpoint.
func (r *runner) attempt(msg jetstream.Msg, md *jetstream.MsgMetadata, rec statekv.Record, event string, replay bool) attempt {
	m := r.m
	hdr := msg.Headers()
	id := contract.WebhookID(m.cfg.Names.Events, hdr, md.Sequence.Stream, replay)
	req := NewRequest(rec, event, msg.Data(), id, hdr, m.cfg.Request, m.cfg.Now())
	if m.cfg.Attempts.Enabled(true) {
		req.KeepBody = max(m.cfg.AttemptBody, 0)
	}
	return attempt{md: md, event: event, id: id, replay: replay, before: rec.Status, req: req}
}

// logDelivery logs one attempt: debug when delivered, warn when it failed,
// error when the sidecar itself failed (delivery.Local: retried, the endpoint's
// state untouched).
func (r *runner) logDelivery(a attempt, res delivery.Result) {
	ev := r.m.log.Debug()
	switch res.Class {
	case delivery.Success:
	case delivery.Local:
		r.m.log.Error().Str("endpoint", r.id).Str("event", a.event).Str("webhook_id", a.id).
			Uint64("attempt", a.md.NumDelivered).Str("note", res.Note).Dur("retry_in", reconcileRetry).
			Msg("delivery failed on this side (not the endpoint's fault): its state is untouched, the event is retried")
		return
	default:
		ev = r.m.log.Warn()
	}
	ev.Str("endpoint", r.id).Str("event", a.event).Str("webhook_id", a.id).Int("status", res.StatusCode).
		Uint64("attempt", a.md.NumDelivered).Dur("duration", res.Duration).Str("outcome", res.Class.String()).
		Str("note", res.Note).Msg("delivery")
}

// settle performs the writes decideSettle asks for, then acks, NAKs or
// terminates msg. It returns the endpoint's state after the attempt.
func (r *runner) settle(msg jetstream.Msg, a attempt, res delivery.Result) statekv.Status {
	s := settleState{class: res.Class, cancelled: r.m.deliverCtx.Err() != nil}
	after := a.before
	for {
		switch act := decideSettle(s); act {
		case writeTransition:
			entry, ok := r.transition(failureEvent(res))
			if ok {
				after = entry.Record.Status
			}
			s.transition = writeResult(ok)
		case writeDeadLetter:
			err := r.deadLetter(msg, a, res)
			if err != nil {
				r.m.log.Error().Str("endpoint", r.id).Str("event", a.event).Err(err).Msg("dead letter not stored; the event stays in the endpoint's backlog")
			}
			s.deadLetter = writeResult(err == nil)
		case ack:
			r.ack(msg)
			return after
		case nak:
			_ = msg.Nak()
			return after
		case nakDelayed:
			_ = msg.NakWithDelay(reconcileRetry)
			return after
		default: // term
			_ = msg.Term()
			return after
		}
	}
}

// transition writes the failure into the record and, when the endpoint may no
// longer be sent to, pauses its consumer at once (see pauseAfterFailure in
// manager.go). It returns the record written, and whether it was written or
// already reflected the failure.
func (r *runner) transition(ev statekv.Event) (statekv.Entry, bool) {
	m := r.m
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	before, _ := m.cfg.Watcher.Get(r.id)
	entry, changed, err := m.cfg.Store.Apply(ctx, r.id, ev, m.cfg.Now, m.cfg.Policy)
	if err != nil {
		m.log.Error().Str("endpoint", r.id).Str("outcome", ev.Input.String()).Err(err).Msg("state transition not written")
		return entry, false
	}
	if changed {
		from := before.Record.Status
		m.log.Info().Str("endpoint", r.id).Str("from", string(from)).Str("to", string(entry.Record.Status)).
			Str("note", entry.Record.Note).Uint64("revision", entry.Revision).Msg("endpoint state changed")
		m.cfg.Observer.Transitioned(r.id, from, entry.Record.Status)
	}
	m.pauseAfterFailure(ctx, r, entry)
	return entry, true
}

// deadLetter stores the event with the reason on the endpoint's dead-letter subject.
func (r *runner) deadLetter(msg jetstream.Msg, a attempt, res delivery.Result) error {
	m, md := r.m, a.md
	h := nats.Header{}
	for k, v := range msg.Headers() {
		if k == nats.MsgIdHdr || len(k) > 4 && k[:4] == "Nats" {
			continue
		}
		h[k] = v
	}
	h.Set(contract.HeaderWebhookID, a.id)
	h.Set(contract.HeaderDLEndpoint, r.id)
	h.Set(contract.HeaderDLEvent, a.event)
	h.Set(contract.HeaderDLReason, res.Note)
	if res.StatusCode != 0 {
		h.Set(contract.HeaderDLStatus, strconv.Itoa(res.StatusCode))
	}
	h.Set(contract.HeaderDLTime, m.cfg.Now().UTC().Format(time.RFC3339Nano))
	h.Set(contract.HeaderDLAttempts, strconv.FormatUint(md.NumDelivered, 10))
	h.Set(contract.HeaderDLStream, md.Stream)
	h.Set(contract.HeaderDLStreamSeq, strconv.FormatUint(md.Sequence.Stream, 10))
	// Idempotent: a crash between this publish and the Term redelivers, and the
	// second dead letter is dropped as a duplicate.
	h.Set(nats.MsgIdHdr, contract.DeadLetterMsgID(r.id, md.Stream, md.Sequence.Stream))
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if _, err := m.js.PublishMsg(ctx, &nats.Msg{Subject: m.cfg.Names.DeadLetterSubject(r.id), Header: h, Data: msg.Data()}); err != nil {
		return fmt.Errorf("publish dead letter: %w", err)
	}
	m.cfg.Observer.DeadLettered(r.id)
	return nil
}

// keepInProgress tells the server every interval that msg is still being worked on.
func keepInProgress(msg jetstream.Msg, every time.Duration) (stop func()) {
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	t = time.AfterFunc(every, func() {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		_ = msg.InProgress()
		t.Reset(every)
	})
	return func() {
		mu.Lock()
		stopped = true
		mu.Unlock()
		t.Stop()
	}
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
