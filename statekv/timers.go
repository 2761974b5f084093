package statekv

import (
	"context"
	"errors"
	"time"
)

// Clock is the time source of a Store and a Watcher: the time a write stamps,
// and when a timed transition falls due. Tests inject one to run timed
// transitions without waiting for them.
type Clock interface {
	// Now is the current time.
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed on this clock.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a call scheduled by Clock.AfterFunc.
type Timer interface {
	// Stop cancels the call; it reports whether it did (false when f already ran or was stopped).
	Stop() bool
}

// SystemClock returns the wall clock: time.Now and time.AfterFunc.
func SystemClock() Clock { return systemClock{} }

// systemClock is the wall clock: time.Now and time.AfterFunc.
type systemClock struct{}

func (systemClock) Now() time.Time                            { return time.Now() }
func (systemClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// retryDelay is how long a timed transition that failed to write (NATS unreachable) waits before it is tried again.
const retryDelay = time.Second

// The watcher's timers: one per endpoint whose record has a timed transition
// pending (NextTimer). A timer only queues the endpoint on w.due; runTimers
// writes the transitions one at a time with compare-and-set (Store.Apply),
// so with several sidecars each is written once and an early or stale timer
// writes nothing. Every KV update of an endpoint re-arms its timer from the
// new record (apply in watcher.go).

// scheduleLocked arms the record's next timed transition; overdue ones fire at once.
func (w *Watcher) scheduleLocked(ctx context.Context, id string, rec Record) {
	due, _, ok := NextTimer(rec, w.policy)
	if !ok {
		return
	}
	w.armLocked(ctx, id, due.Sub(w.clock.Now()))
}

func (w *Watcher) armLocked(ctx context.Context, id string, after time.Duration) {
	w.stopTimerLocked(id)
	w.timers[id] = w.clock.AfterFunc(after, func() {
		select {
		case w.due <- id:
		case <-ctx.Done():
		}
	})
}

// stopTimers stops every timer (Run returns).
func (w *Watcher) stopTimers() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id := range w.timers {
		w.stopTimerLocked(id)
	}
}

func (w *Watcher) stopTimerLocked(id string) {
	if t, ok := w.timers[id]; ok {
		t.Stop()
		delete(w.timers, id)
	}
}

// runTimers applies due timed transitions one at a time.
func (w *Watcher) runTimers(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case id := <-w.due:
			w.fire(ctx, id)
		}
	}
}

func (w *Watcher) fire(ctx context.Context, id string) {
	v, ok := w.Get(id)
	if !ok || v.Err != nil {
		return
	}
	_, in, ok := NextTimer(v.Record, w.policy)
	if !ok {
		return
	}
	entry, changed, err := w.store.Apply(ctx, id, Event{Input: in}, w.clock.Now, w.policy)
	switch {
	case err != nil && errors.Is(err, ErrNotFound):
		return
	case err != nil && errors.Is(err, ErrInvalidRecord):
		return // logged by the watch; re-armed when the record is fixed
	case err != nil:
		if ctx.Err() != nil {
			return
		}
		w.log.Warn().Str("endpoint", id).Str("transition", in.String()).Err(err).Dur("retry_in", retryDelay).
			Msg("timed transition not written; retrying")
		w.rearm(ctx, id, v.Revision, retryDelay)
	case changed:
		w.log.Info().Str("endpoint", id).Str("transition", in.String()).Str("from", string(v.Record.Status)).
			Str("to", string(entry.Record.Status)).Uint64("revision", entry.Revision).Msg("endpoint state changed")
	default:
		// Nothing to write: another sidecar or an operator got there first (the watch
		// re-arms from their write), or the timer fired a little early: arm it again.
		if due, _, ok := NextTimer(entry.Record, w.policy); ok && due.After(w.clock.Now()) {
			w.rearm(ctx, id, entry.Revision, due.Sub(w.clock.Now()))
		}
	}
}

// rearm schedules id again unless a newer revision has been seen meanwhile (its own timer stands).
func (w *Watcher) rearm(ctx context.Context, id string, rev uint64, after time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if v, ok := w.views[id]; ok && v.Revision == rev {
		w.armLocked(ctx, id, after)
	}
}
