package consumer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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

// runner consumes one endpoint's durable consumer.
type runner struct {
	m        *Manager
	id       string
	cc       jetstream.ConsumeContext
	stopping atomic.Bool
	sem      chan struct{}
	inflight sync.WaitGroup
	pausedAt atomic.Uint64 // revision of the failure after which this runner paused the consumer itself
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
	r := &runner{m: m, id: id, sem: make(chan struct{}, m.cfg.MaxInFlight)}
	// The server hands out at most MaxInFlight at a time whatever the batch; a
	// large batch keeps a pull open. With a small one, nats.go v1.55.0 can leave a
	// MaxAckPending=1 consumer with no pull outstanding until the next missed
	// heartbeat (seconds without deliveries: measured by the bench command).
	batch := max(2*m.cfg.MaxInFlight, 256)
	cc, err := cons.Consume(r.dispatch,
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
		}))
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", contract.ConsumerName(id), err)
	}
	r.cc = cc
	m.runners.Add(1)
	go func() {
		defer m.runners.Done()
		<-cc.Closed()
		r.inflight.Wait()
	}()
	return r, nil
}

// stop ends fetching; messages already buffered are NAKed, requests in flight finish.
func (r *runner) stop() {
	if r.stopping.Swap(true) {
		return
	}
	r.cc.Drain()
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

func (r *runner) dispatch(msg jetstream.Msg) {
	if r.m.cfg.MaxInFlight == 1 {
		r.inflight.Add(1)
		r.handle(msg)
		return
	}
	r.sem <- struct{}{}
	r.inflight.Add(1)
	go func() {
		defer func() { <-r.sem }()
		r.handle(msg)
	}()
}

// handle delivers one event to the endpoint and turns the outcome into ack, nak or term.
func (r *runner) handle(msg jetstream.Msg) {
	defer r.inflight.Done()
	m := r.m
	if r.stopping.Load() || isClosed(m.stopping) {
		_ = msg.Nak() // another replica or the next start takes it
		return
	}
	md, err := msg.Metadata()
	if err != nil {
		m.log.Error().Str("endpoint", r.id).Err(err).Msg("message without JetStream metadata; ignored")
		return
	}
	view, ok := m.cfg.Watcher.Get(r.id)
	if !ok || !view.Valid() || !view.Record.Status.Deliverable() {
		_ = msg.NakWithDelay(notDeliverableDelay) // the consumer is being paused: it keeps the event
		return
	}
	rec := view.Record
	event, replay, ok := m.cfg.Names.EventName(msg.Subject())
	if !ok {
		m.log.Error().Str("endpoint", r.id).Str("subject", msg.Subject()).Msg("subject is not an event subject; terminated")
		_ = msg.Term()
		return
	}
	hdr := msg.Headers()
	if !replay && !rec.Matches(event, hdr.Get(contract.HeaderRecipient)) {
		_ = msg.Ack() // not for this endpoint (owner or filter)
		return
	}
	id := contract.WebhookID(m.cfg.Names.Events, hdr, md.Sequence.Stream)
	req := NewRequest(rec, event, msg.Data(), id, hdr, m.cfg.Request, m.cfg.Now())
	// In progress until acked, NAKed or terminated: the request and the writes after it.
	defer keepInProgress(msg, AckWait/3)()
	res := m.cfg.Client.Send(m.deliverCtx, req)
	if m.cfg.Observer != nil {
		m.cfg.Observer.Delivered(r.id, event, res)
	}
	logEv := m.log.Debug()
	if res.Class != delivery.Success {
		logEv = m.log.Warn()
	}
	logEv.Str("endpoint", r.id).Str("event", event).Str("webhook_id", id).Int("status", res.StatusCode).
		Uint64("attempt", md.NumDelivered).Dur("duration", res.Duration).Str("outcome", res.Class.String()).
		Str("note", res.Note).Msg("delivery")

	switch res.Class {
	case delivery.Success:
		_ = msg.Ack()
	case delivery.Temporary:
		if m.deliverCtx.Err() != nil {
			_ = msg.Nak() // cancelled by shutdown: not the endpoint's fault
			return
		}
		if !r.transition(statekv.Event{Input: statekv.TemporaryFailure, Note: res.Note, RetryAt: res.RetryAfter}) {
			_ = msg.NakWithDelay(reconcileRetry)
			return
		}
		_ = msg.Nak() // kept; redelivered when the consumer resumes
	case delivery.Permanent:
		if !r.transition(statekv.Event{Input: statekv.PermanentFailure, Note: res.Note}) {
			_ = msg.NakWithDelay(reconcileRetry)
			return
		}
		if err := r.deadLetter(msg, md, event, id, res); err != nil {
			m.log.Error().Str("endpoint", r.id).Str("event", event).Err(err).Msg("dead letter not stored; the event stays in the endpoint's backlog")
			_ = msg.Nak()
			return
		}
		_ = msg.Term()
	}
}

// transition writes the failure into the record and, when the endpoint may no
// longer be sent to, pauses its consumer at once (before the NAK, so that the
// server does not hand the event straight back). It reports whether the record
// was written or already reflected the failure.
func (r *runner) transition(ev statekv.Event) bool {
	m := r.m
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	before, _ := m.cfg.Watcher.Get(r.id)
	in := ev.Input
	entry, changed, err := m.cfg.Store.Apply(ctx, r.id, ev, m.cfg.Now, m.cfg.Policy)
	if err != nil {
		m.log.Error().Str("endpoint", r.id).Str("outcome", in.String()).Err(err).Msg("state transition not written")
		return false
	}
	if changed {
		from := before.Record.Status
		m.log.Info().Str("endpoint", r.id).Str("from", string(from)).Str("to", string(entry.Record.Status)).
			Str("note", entry.Record.Note).Uint64("revision", entry.Revision).Msg("endpoint state changed")
		if m.cfg.Observer != nil {
			m.cfg.Observer.Transitioned(r.id, from, entry.Record.Status)
		}
	}
	if !entry.Record.Status.Deliverable() {
		if until := m.pauseFor(entry.Record); !until.IsZero() {
			if latest, ok := m.cfg.Watcher.Get(r.id); !ok || latest.Revision <= entry.Revision {
				_ = m.pause(ctx, r.id, until) // the watcher's reconcile pauses it too; this closes the window
				// A newer write (a user activation) may have been reconciled before this
				// pause landed: have the manager compare the server's pause with the record again.
				r.pausedAt.Store(entry.Revision)
				select {
				case m.kick <- r.id:
				default:
				}
			}
		}
	}
	return true
}

// deadLetter stores the event with the reason on the endpoint's dead-letter subject.
func (r *runner) deadLetter(msg jetstream.Msg, md *jetstream.MsgMetadata, event, id string, res delivery.Result) error {
	m := r.m
	h := nats.Header{}
	for k, v := range msg.Headers() {
		if k == nats.MsgIdHdr || len(k) > 4 && k[:4] == "Nats" {
			continue
		}
		h[k] = v
	}
	h.Set(contract.HeaderWebhookID, id)
	h.Set(contract.HeaderDLEndpoint, r.id)
	h.Set(contract.HeaderDLEvent, event)
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
	if m.cfg.Observer != nil {
		m.cfg.Observer.DeadLettered(r.id)
	}
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
