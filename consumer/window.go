package consumer

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/contract"
)

// The window
//
// The server hands an endpoint's consumer up to windowFor(MaxInFlight) events
// ahead of their acks. dispatch (nats.go's callback) only queues them; one
// worker goroutine per runner, running while the queue is not empty, takes
// them in arrival order (the server's order: stream order) and handles them,
// one at a time with MaxInFlight 1 (in order), up to N at once otherwise. Acks
// are asynchronous: the next event is sent as soon as the previous one is
// settled, without waiting for the server.
//
// Every event of the window (queued or being delivered) is told in progress
// every AckWait/3, all of them together in stream order (keepWindow): while
// a request hangs the events behind it do not expire, and after a SIGKILL
// they all expire in stream order.
//
// In order (MaxInFlight 1), nothing after an event that is given back (NAK,
// NAK with delay: a failure, a pause, a panic) is sent before it:
//
//   - Give back: every event behind it, queued or arriving later, is NAKed
//     the same way (same delay), in stream order. nats-server puts a NAKed
//     event at the end of its redelivery queue, and one NAKed with a delay in
//     it when the delay has passed (sorted by stream sequence among those due
//     together: consumer.go processNak, checkPending), and serves that queue
//     before any new event; NAKs from one connection are processed in the
//     order sent. So the server hands them back in the order given back.
//   - Take back: while events are out (r.back), only the lowest one is
//     handled when it comes back; any other event arriving meanwhile (a new
//     event the server sent before all the NAKs arrived, or one that came back
//     before the lowest, which failed again) is given back again, behind it.
//     An event that did not come back within its delay plus AckWait (removed
//     from the stream) is forgotten, so the others are not held for ever.
//   - Stop: what is still queued when the consume stops is handled once the
//     subscription is gone (cc.Closed: nats.go has unsubscribed, and
//     nats-server sends nothing to a pull without interest). When the consumer
//     is paused (stopPaused), it is NAKed, lowest first: nats-server hands
//     nothing out while paused, so its redelivery queue keeps that order and
//     the delivery counts are kept. Otherwise (shutdown, restart) the runner
//     resets the consumer to the lowest event it holds or gave back (resetTo):
//     the server's redelivery queue is not a reliable order then (below). When
//     what it holds is no reset point (not synced yet, behind a delivery that
//     went missing, or an event given back was forgotten), it resets to the
//     ack floor instead, which never skips an event; its pending acks go
//     first, the last one confirmed (flushAcks), as before every reset to the
//     ack floor (a reset to a sequence counts everything below it as acked).
//     Then the runner unpins the consumer, so that a replica takes over at once.
//   - Take over: nats-server's redelivery queue rotates while the only pulls
//     waiting are not the pinned client's (consumer.go, loopAndGatherMsgs and
//     nextWaiting), as they are while a killed sidecar still holds the pin.
//     So a runner whose first event is not the consumer's first delivery, and
//     has an event of its subjects not acked below it, resets the consumer to
//     its ack floor before it delivers anything (sync): the server hands the
//     events again from the first one not acked, in stream order, and the
//     runner drops those sent before the reset. A reset starts the delivery
//     counts of those events again.

// unpinTimeout bounds the unpin at the end of a runner (it delays the shutdown).
const unpinTimeout = 2 * time.Second

// guardedMsg is a message whose in-progress calls stop once it is settled:
// an in-progress sent after a NAK with a delay would make the server wait a
// whole AckWait instead of the delay (it resets the delivery's timestamp).
type guardedMsg struct {
	jetstream.Msg
	mu      sync.Mutex
	settled bool
}

func (g *guardedMsg) settle(f func() error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.settled = true
	return f()
}

func (g *guardedMsg) Ack() error  { return g.settle(g.Msg.Ack) }
func (g *guardedMsg) Nak() error  { return g.settle(g.Msg.Nak) }
func (g *guardedMsg) Term() error { return g.settle(g.Msg.Term) }

func (g *guardedMsg) NakWithDelay(d time.Duration) error {
	return g.settle(func() error { return g.Msg.NakWithDelay(d) })
}

// InProgress tells the server msg is still worked on, unless it is settled.
func (g *guardedMsg) InProgress() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.settled {
		return nil
	}
	return g.Msg.InProgress()
}

// windowMsg records how the handling of one message settled it: given back
// (NAK, NAK with delay) or not. Its in-progress calls are keepWindow's.
type windowMsg struct {
	guardedMsg
	back  bool
	delay time.Duration
}

func (w *windowMsg) Nak() error {
	w.back, w.delay = true, 0
	return w.guardedMsg.Nak()
}

func (w *windowMsg) NakWithDelay(d time.Duration) error {
	w.back, w.delay = true, d
	return w.guardedMsg.NakWithDelay(d)
}

// InProgress does nothing: keepWindow tells the whole window in progress, in order.
func (w *windowMsg) InProgress() error { return nil }

// outEvent is an event given back and not yet handed back by the server.
type outEvent struct {
	seq uint64
	due time.Time // forgotten when not back by then
}

// dispatch queues msg for the worker (nats.go's consume callback: it never blocks).
func (r *runner) dispatch(msg jetstream.Msg) {
	r.inflight.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queue = append(r.queue, msg)
	if r.keepAlive == nil {
		r.keepAlive = time.AfterFunc(AckWait/3, r.keepWindow)
	}
	if !r.working {
		r.working = true
		r.workers.Add(1)
		go r.work()
	}
}

// work handles the queue until it is empty or the runner stops; the events
// left then are given back by finish. With MaxInFlight N it takes a slot before
// it takes an event off the queue, so that an event waiting for a slot is
// still in the queue, which keepWindow keeps in progress.
func (r *runner) work() {
	defer r.workers.Done()
	for {
		if !r.ordered {
			r.sem <- struct{}{}
		}
		r.mu.Lock()
		if len(r.queue) == 0 || r.stopping.Load() {
			r.working = false
			r.mu.Unlock()
			if !r.ordered {
				<-r.sem
			}
			return
		}
		msg := r.queue[0]
		r.queue[0] = nil
		r.queue = r.queue[1:]
		if !r.ordered {
			r.mu.Unlock()
			g := &guardedMsg{Msg: msg}
			go func() {
				defer func() { <-r.sem }()
				r.handle(g)
			}()
			continue
		}
		w := &windowMsg{guardedMsg: guardedMsg{Msg: msg}}
		r.current = w
		r.mu.Unlock()
		r.inOrder(w)
		r.mu.Lock()
		r.current = nil
		r.mu.Unlock()
	}
}

// inOrder handles msg unless an earlier event is out (given back); see "The window".
func (r *runner) inOrder(msg *windowMsg) {
	md, err := msg.Metadata()
	if err != nil {
		r.handle(msg) // logs and ignores it
		return
	}
	if r.synced && r.lastDelivery != 0 && md.Sequence.Consumer != r.lastDelivery+1 {
		// A delivery to this runner went missing (the consumer's leader was lost
		// with it in flight, or the client dropped it): the server will hand
		// it out again after AckWait, behind later events. Start again from
		// the ack floor.
		r.m.log.Warn().Str("endpoint", r.id).Uint64("delivery", md.Sequence.Consumer).Uint64("expected", r.lastDelivery+1).
			Msg("a delivery went missing; resetting the consumer to its ack floor to keep the order")
		r.synced, r.resetSent, r.back, r.forgot = false, false, nil, false
		r.resetToFloor()
	}
	r.lastDelivery = md.Sequence.Consumer
	if !r.synced && !r.sync(msg, md) {
		r.inflight.Done() // cleared by the reset: handed again
		return
	}
	seq := md.Sequence.Stream
	if len(r.back) > 0 {
		now := time.Now()
		for len(r.back) > 0 && r.back[0].seq != seq && now.After(r.back[0].due) {
			r.m.log.Warn().Str("endpoint", r.id).Uint64("stream_seq", r.back[0].seq).
				Msg("an event given back did not come back (removed from the stream?); delivering the next ones")
			r.back = r.back[1:]
			r.forgot = true
		}
		if i, ok := r.outIndex(seq); ok && i == 0 {
			r.back = r.back[1:]
		} else if len(r.back) > 0 && (ok || seq > r.back[0].seq) {
			r.giveBack(msg, seq, r.backDelay)
			r.inflight.Done()
			return
		}
	}
	r.handle(msg)
	if msg.back {
		r.backDelay = msg.delay
		r.markOut(seq, msg.delay)
	}
}

// sync runs on the first events a runner receives. When the first one is not
// the consumer's first delivery and an event of its subjects below it is not
// acked (a killed sidecar's window, handed out again in another order: see
// "Take over"), it resets the consumer to its ack floor and returns false for
// the events sent before the reset, until the first delivery after it.
func (r *runner) sync(msg jetstream.Msg, md *jetstream.MsgMetadata) bool {
	first := md.Sequence.Consumer == 1
	if r.resetSent {
		// The first delivery after the reset starts again at consumer sequence 1,
		// at or past the sequence the server reset to; a first delivery of an
		// earlier reset is below that.
		first = first && md.Sequence.Stream >= r.resetSeq
		if first {
			r.synced, r.forgot = true, false
		}
		return first // the first delivery after the reset, or one sent before it
	}
	if first || !r.earlierPending(md.Sequence.Stream) {
		r.synced = true
		return true
	}
	return !r.resetToFloor()
}

// resetToFloor resets the consumer to its ack floor; it reports whether it
// did (the events sent before are then dropped until the first delivery
// after the reset). When it cannot, the runner delivers in the order received.
func (r *runner) resetToFloor() bool {
	r.resetSent = true
	r.flushAcks(true)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	resp, err := r.m.stream.ResetConsumer(ctx, contract.ConsumerName(r.id))
	if err != nil {
		r.m.log.Warn().Str("endpoint", r.id).Err(err).Msg("resetting the consumer to its ack floor failed; delivering in the order received")
		r.synced = true
		return false
	}
	r.resetSeq = resp.ResetSeq
	r.m.log.Info().Str("endpoint", r.id).Uint64("stream_seq", resp.ResetSeq).
		Msg("ordered consumer reset to its ack floor: delivering again from the first event not acknowledged")
	return true
}

// earlierPending reports whether the consumer has an event not acked below
// seq: one of its subjects has a message between its ack floor and seq (every
// event below the floor is acked; in order, none above it is). When the server
// cannot say, it reports true (the reset is always safe).
func (r *runner) earlierPending(seq uint64) bool {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	c, err := r.m.stream.Consumer(ctx, contract.ConsumerName(r.id))
	if err != nil {
		return true
	}
	info := c.CachedInfo()
	floor := info.AckFloor.Stream
	if seq <= floor+1 {
		return false
	}
	for _, f := range filtersOf(info.Config) {
		m, err := r.m.stream.GetMsg(ctx, floor+1, jetstream.WithGetMsgSubject(f))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil || m.Sequence < seq {
			return true
		}
	}
	return false
}

// giveBack NAKs msg with delay (none when zero) and records it as out.
func (r *runner) giveBack(msg jetstream.Msg, seq uint64, delay time.Duration) {
	if delay > 0 {
		_ = msg.NakWithDelay(delay)
	} else {
		_ = msg.Nak()
	}
	r.markOut(seq, delay)
}

func (r *runner) outIndex(seq uint64) (int, bool) {
	return slices.BinarySearchFunc(r.back, seq, func(e outEvent, s uint64) int {
		switch {
		case e.seq < s:
			return -1
		case e.seq > s:
			return 1
		}
		return 0
	})
}

// markOut records seq as given back, expected again within delay plus AckWait.
func (r *runner) markOut(seq uint64, delay time.Duration) {
	e := outEvent{seq: seq, due: time.Now().Add(delay + AckWait)}
	if i, ok := r.outIndex(seq); ok {
		r.back[i] = e
	} else {
		r.back = slices.Insert(r.back, i, e)
	}
}

// keepWindow tells the server that every event of the window is still being
// worked on, in stream order, and arms itself again while the window is not
// empty. It holds r.mu meanwhile, so that no event leaves the queue (to be
// given back) between its turn here and its in-progress call; the one being
// handled is skipped once settled (guardedMsg).
func (r *runner) keepWindow() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.current != nil {
		_ = r.current.guardedMsg.InProgress()
	}
	for _, msg := range r.queue {
		_ = msg.InProgress()
	}
	if r.keepAlive == nil { // finished
		return
	}
	if len(r.queue) == 0 && r.current == nil && !r.working {
		r.keepAlive = nil
		return
	}
	r.keepAlive.Reset(AckWait / 3)
}

// finish runs once the consume has ended: it waits for the worker, gives back
// what is still queued (lowest stream sequence first, the delay of the events
// already out), waits for the deliveries in flight and, when the runner was
// stopped, unpins the ordered consumer so that another replica takes over now.
func (r *runner) finish() {
	r.workers.Wait()
	r.mu.Lock()
	left := r.queue
	r.queue = nil
	if r.keepAlive != nil {
		r.keepAlive.Stop()
		r.keepAlive = nil
	}
	r.mu.Unlock()
	// What is left came in consumer-sequence order right after the last event
	// handled, unless a delivery went missing in between.
	contiguous := true
	for i, msg := range left {
		if md, err := msg.Metadata(); err != nil || md.Sequence.Consumer != r.lastDelivery+1+uint64(i) {
			contiguous = false
			break
		}
	}
	slices.SortFunc(left, func(a, b jetstream.Msg) int { return compareSeq(streamSeq(a), streamSeq(b)) })
	switch {
	case r.ordered && (!r.synced || !contiguous || r.forgot) && (len(left) > 0 || r.lastDelivery != 0):
		// Events came (so this runner holds the pin) but what is queued is no
		// reset point: not checked against the ack floor yet (sync), sent
		// before this runner's own reset, behind a delivery that went missing,
		// or an event given back was forgotten. resetTo would skip the events
		// below it, and NAKs would give it back out of order. Back to the ack
		// floor: below it everything was acknowledged, so that skips nothing.
		r.resetToFloor()
	case !r.ordered || r.paused.Load() || !r.resetTo(left):
		delay := time.Duration(0)
		if len(r.back) > 0 {
			delay = r.backDelay
		}
		for _, msg := range left {
			if delay > 0 {
				_ = msg.NakWithDelay(delay)
			} else {
				_ = msg.Nak()
			}
		}
	}
	for range left {
		r.inflight.Done()
	}
	r.inflight.Wait()
	r.flushAcks(true) // before the unpin: the next sidecar starts at the ack floor
	if r.ordered && r.stopping.Load() && time.Since(r.stoppedAt()) < PinnedTTL/2 {
		// Past PinnedTTL/2 the pin may already be another replica's: leave it.
		ctx, cancel := context.WithTimeout(context.Background(), unpinTimeout)
		defer cancel()
		if err := r.m.stream.UnpinConsumer(ctx, contract.ConsumerName(r.id), priorityGroup); err != nil {
			r.m.log.Debug().Str("endpoint", r.id).Err(err).Msg("unpin")
		}
	}
}

// resetTo resets the consumer to the lowest event this runner holds or gave
// back, when there is one, instead of NAKing them: with the consumer not
// paused, nats-server's redelivery queue would not keep the NAKs' order while
// the next sidecar waits for the pin (see "Take over"). Everything below was
// acked (in order). It reports whether the events need no NAK.
func (r *runner) resetTo(left []jetstream.Msg) bool {
	var lowest uint64
	if len(left) > 0 {
		lowest = streamSeq(left[0])
	}
	if len(r.back) > 0 && (lowest == 0 || r.back[0].seq < lowest) {
		lowest = r.back[0].seq
	}
	if lowest == 0 {
		return len(left) == 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if _, err := r.m.stream.ResetConsumerToSequence(ctx, contract.ConsumerName(r.id), lowest); err != nil {
		r.m.log.Warn().Str("endpoint", r.id).Uint64("stream_seq", lowest).Err(err).Msg("resetting the consumer to the first event not delivered failed; NAKing")
		return false
	}
	r.m.log.Debug().Str("endpoint", r.id).Uint64("stream_seq", lowest).Msg("consumer reset to the first event not delivered")
	return true
}

func (r *runner) stoppedAt() time.Time {
	return time.Unix(0, r.stopAt.Load())
}

// streamSeq is msg's stream sequence, 0 without metadata.
func streamSeq(msg jetstream.Msg) uint64 {
	md, err := msg.Metadata()
	if err != nil {
		return 0
	}
	return md.Sequence.Stream
}

func compareSeq(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
