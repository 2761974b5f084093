package statekv_test

import (
	"slices"
	"sync"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// manualClock is a statekv.Clock that stands still until the test moves it:
// timed transitions fall due exactly when Set says so, without waiting.
type manualClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*manualTimer
}

type manualTimer struct {
	c  *manualClock
	at time.Time
	f  func()
	// done is set once f ran or the timer was stopped (guarded by c.mu).
	done bool
}

func newManualClock(at time.Time) *manualClock { return &manualClock{now: at} }

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc schedules f at Now()+d; a call already due runs at once, in its own goroutine.
func (c *manualClock) AfterFunc(d time.Duration, f func()) statekv.Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &manualTimer{c: c, at: c.now.Add(d), f: f}
	if d <= 0 {
		t.done = true
		go f()
		return t
	}
	c.timers = append(c.timers, t)
	return t
}

func (t *manualTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.done
	t.done = true
	return was
}

// Set moves the clock to at and runs, each in its own goroutine, the calls due
// by then; it returns how many it ran.
func (c *manualClock) Set(at time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = at
	fired := 0
	keep := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.done:
		case !t.at.After(at):
			t.done = true
			fired++
			go t.f()
		default:
			keep = append(keep, t)
		}
	}
	c.timers = keep
	return fired
}

// pending returns the times of the calls not yet run nor stopped, in order.
func (c *manualClock) pending() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []time.Time
	for _, t := range c.timers {
		if !t.done {
			out = append(out, t.at)
		}
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}
