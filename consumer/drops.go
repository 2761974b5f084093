package consumer

import (
	"context"
	"time"

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
}

// watchDrops checks for discarded events at start and every cfg.DropCheck
// until ctx is done. Each endpoint's newly discarded events are logged (warn,
// with the count) and passed to Observer.Dropped. A restarted sidecar reports
// again what is still discarded past an endpoint's ack floor.
func (m *Manager) watchDrops(ctx context.Context) {
	w := &dropWatch{reported: map[string]uint64{}}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.checkDrops(ctx, w)
		t.Reset(m.cfg.DropCheck)
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
		}
	}
}
