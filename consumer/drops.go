package consumer

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/jsstate"
)

// DefaultDropCheck is how often the manager compares the events stream's first
// sequence with each endpoint's ack floor, to say when the stream's limits
// discarded events an endpoint had not received.
const DefaultDropCheck = 5 * time.Second

// dropWatch remembers, per endpoint, the stream sequence up to which discarded
// events were already reported by this process.
type dropWatch struct {
	reported map[string]uint64
	floor    map[string]uint64 // the ack floor the last check saw
	held     map[string]*heldDrops
}

// heldDrops are the events of one endpoint that advisories said were
// discarded while its consumer held them, reported at the next check.
type heldDrops struct {
	n, first, last uint64
	seen           map[uint64]bool // nats-server may announce one sequence twice
}

// maxTerminatedQueue bounds the advisories of discarded events waiting for
// the drop watch; past it they are not counted (the next check logs how many).
const maxTerminatedQueue = 4096

// unackedDeletedReason is the reason of nats-server's MSG_TERMINATED advisory
// for an event its stream's limits discarded while a consumer held it
// (delivered, not acknowledged: in a window, or given back and waiting).
const unackedDeletedReason = "Unacknowledged message was deleted"

// terminatedAdvisory is the part of nats-server's
// io.nats.jetstream.advisory.v1.terminated the drop watch reads.
type terminatedAdvisory struct {
	Consumer  string `json:"consumer"`
	StreamSeq uint64 `json:"stream_seq"`
	Reason    string `json:"reason"`
}

// watchDrops checks for discarded events at start and every cfg.DropCheck
// until ctx is done. Each endpoint's newly discarded events are logged (warn,
// with the count) and passed to Observer.Dropped. A restarted sidecar reports
// again what is still discarded past an endpoint's ack floor.
//
// An event discarded while a consumer held it (in the window, or given back)
// moves the consumer's ack floor past it as if acknowledged, so the floor
// cannot tell; nats-server says so in a MSG_TERMINATED advisory, which the
// watch counts one by one (only while a sidecar is subscribed: one discarded
// while none runs is not counted).
func (m *Manager) watchDrops(ctx context.Context) {
	w := &dropWatch{reported: map[string]uint64{}, floor: map[string]uint64{}, held: map[string]*heldDrops{}}
	terminated := make(chan terminatedAdvisory, maxTerminatedQueue)
	var uncounted atomic.Uint64 // advisories dropped on a full queue
	subj := contract.TerminatedAdvisorySubject(m.cfg.Names.Events)
	sub, err := m.js.Conn().Subscribe(subj, func(msg *nats.Msg) {
		var a terminatedAdvisory
		if json.Unmarshal(msg.Data, &a) != nil || a.Reason != unackedDeletedReason {
			return
		}
		select {
		case terminated <- a:
		default:
			uncounted.Add(1)
		}
	})
	if err != nil {
		m.log.Warn().Err(err).Str("subject", subj).Msg("events discarded in a consumer's window are not counted: cannot subscribe to the advisories")
	} else {
		defer func() { _ = sub.Unsubscribe() }()
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case a := <-terminated:
			m.countTerminated(w, a)
		case <-t.C:
			if n := uncounted.Swap(0); n > 0 {
				m.log.Warn().Uint64("uncounted", n).Int("queue", maxTerminatedQueue).
					Msg("events discarded in endpoints' windows were not counted: the advisory queue was full")
			}
			m.reportHeld(w)
			m.checkDrops(ctx, w)
			t.Reset(m.cfg.DropCheck)
		}
	}
}

// countTerminated counts one event discarded while the endpoint's consumer
// held it, unless the last check counted it already: it was past the ack
// floor that check saw (nats-server moves the floor, then sends the advisory).
func (m *Manager) countTerminated(w *dropWatch, a terminatedAdvisory) {
	id, ok := contract.ConsumerEndpoint(a.Consumer)
	if !ok || (a.StreamSeq > w.floor[id] && a.StreamSeq <= w.reported[id]) {
		return
	}
	h := w.held[id]
	if h == nil {
		h = &heldDrops{first: a.StreamSeq, seen: map[uint64]bool{}}
		w.held[id] = h
	}
	if h.seen[a.StreamSeq] {
		return
	}
	h.seen[a.StreamSeq] = true
	h.n++
	h.first, h.last = min(h.first, a.StreamSeq), max(h.last, a.StreamSeq)
}

// reportHeld logs and reports what countTerminated counted since the last check:
// one line per endpoint.
func (m *Manager) reportHeld(w *dropWatch) {
	for id, h := range w.held {
		m.log.Warn().Str("endpoint", id).Uint64("dropped", h.n).Uint64("first_seq", h.first).Uint64("last_seq", h.last).Str("stream", m.cfg.Names.Events).
			Msg("the events stream's limits discarded events this endpoint had not received (DOJO_WEBHOOKS_EVENTS_MAX_AGE / _MAX_BYTES)")
		m.cfg.Observer.Dropped(id, h.n, h.first, h.last)
		delete(w.held, id)
	}
}

// checkDrops reads the stream and its consumers once (one stream info, one
// paged consumer listing) and reports what was discarded since the last check.
func (m *Manager) checkDrops(ctx context.Context, w *dropWatch) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	info, err := m.stream.Info(ctx)
	if err != nil {
		m.log.Debug().Err(err).Msg("checking for discarded events: stream info")
		return
	}
	seen := map[string]bool{}
	lister := m.stream.ListConsumers(ctx)
	for ci := range lister.Info() {
		id, ok := contract.ConsumerEndpoint(ci.Name)
		if !ok {
			continue
		}
		seen[id] = true
		loss := jsstate.LossOf(info.State, ci)
		w.floor[id] = loss.AckFloor
		first := max(loss.AckFloor, w.reported[id]) + 1
		n := loss.Since(w.reported[id])
		if loss.FirstSeq > 0 {
			w.reported[id] = max(w.reported[id], loss.FirstSeq-1)
		}
		if n == 0 {
			continue
		}
		m.log.Warn().Str("endpoint", id).Uint64("dropped", n).Uint64("ack_floor", loss.AckFloor).
			Uint64("stream_first_seq", loss.FirstSeq).Str("stream", info.Config.Name).
			Msg("the events stream's limits discarded events this endpoint had not received (DOJO_WEBHOOKS_EVENTS_MAX_AGE / _MAX_BYTES)")
		m.cfg.Observer.Dropped(id, n, first, loss.FirstSeq-1)
	}
	if err := lister.Err(); err != nil {
		m.log.Debug().Err(err).Msg("checking for discarded events: consumers")
		return
	}
	for id := range w.reported {
		if !seen[id] {
			delete(w.reported, id) // removed: a new endpoint of that id starts afresh
			delete(w.floor, id)
		}
	}
}
