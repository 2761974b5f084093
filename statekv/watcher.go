package statekv

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
)

// View is the watcher's copy of one endpoint.
type View struct {
	ID       string
	Record   Record    // meaningful only when Err is nil
	Revision uint64    // KV revision of the value seen
	Modified time.Time // when that revision was written
	Err      error     // non-nil when the stored value does not parse or validate: deliveries are held
}

// Valid reports whether the stored value parsed and validated.
func (v View) Valid() bool { return v.Err == nil }

// WatcherOptions configure a Watcher.
type WatcherOptions struct {
	Policy Policy         // durations of the timed transitions
	Clock  Clock          // when timed transitions fall due and what they stamp; default the store's clock
	Logger zerolog.Logger // where invalid records and timer errors are logged
}

// Watcher keeps an in-memory view of every endpoint record, tells subscribers
// which endpoints changed, and applies the two timed transitions with
// compare-and-set so that with several sidecars each is written once.
type Watcher struct {
	store  *Store
	policy Policy
	clock  Clock
	log    zerolog.Logger

	mu     sync.RWMutex
	views  map[string]View
	subs   map[*Subscription]struct{}
	timers map[string]Timer

	synced   chan struct{}
	syncOnce sync.Once
	due      chan string
}

// NewWatcher returns a watcher over store; Run starts it.
func NewWatcher(store *Store, opts WatcherOptions) *Watcher {
	if opts.Clock == nil {
		opts.Clock = store.clock
	}
	return &Watcher{
		store:  store,
		policy: opts.Policy,
		clock:  opts.Clock,
		log:    opts.Logger,
		views:  make(map[string]View),
		subs:   make(map[*Subscription]struct{}),
		timers: make(map[string]Timer),
		synced: make(chan struct{}),
		due:    make(chan string, 1024),
	}
}

// bucketCheckInterval is how often a running watcher checks that its bucket
// still exists (a deleted bucket sends no KV update of its own).
const bucketCheckInterval = 2 * time.Second

// ErrBucketDeleted is the Err of every view while the bucket is gone: every
// endpoint is held until the bucket exists again.
var ErrBucketDeleted = errors.New("KV bucket deleted: deliveries held until it is recreated")

// Run watches the bucket until ctx is done, then stops its timers and returns
// ctx's error. It returns earlier only if the watch cannot be started. If the
// bucket is deleted while it runs, every endpoint is held (its view gets
// ErrBucketDeleted) until the bucket exists again, then the records are reloaded.
func (w *Watcher) Run(ctx context.Context) error {
	created, err := w.bucketCreated(ctx)
	if err != nil {
		return fmt.Errorf("watch KV bucket %s: %w", w.store.kv.Bucket(), err)
	}
	kw, err := w.store.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch KV bucket %s: %w", w.store.kv.Bucket(), err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w.runTimers(ctx)
	}()
	defer func() {
		w.stopTimers()
		wg.Wait()
	}()
	for {
		gone, err := w.watch(ctx, kw, created)
		_ = kw.Stop()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return err
		}
		if !gone {
			continue
		}
		w.log.Error().Str("bucket", w.store.kv.Bucket()).Msg("KV bucket deleted under the sidecar: every endpoint is held until it is recreated (restart a sidecar, or endpoint add, creates it)")
		w.holdAll()
		if created, kw, err = w.waitForBucket(ctx); err != nil {
			return ctx.Err()
		}
		w.log.Info().Str("bucket", w.store.kv.Bucket()).Msg("KV bucket exists again: reloading the endpoint records")
	}
}

// watch applies the updates of one watch until ctx is done or the bucket is
// gone (deleted, or deleted and created again since created).
func (w *Watcher) watch(ctx context.Context, kw jetstream.KeyWatcher, created time.Time) (gone bool, err error) {
	check := time.NewTicker(bucketCheckInterval)
	defer check.Stop()
	seen := map[string]bool{} // keys of the initial values: views of other keys are dropped at the marker
	for {
		select {
		case <-ctx.Done():
			return false, nil
		case <-check.C:
			c, err := w.bucketCreated(ctx)
			if isBucketGone(err) || (err == nil && !c.Equal(created)) {
				return true, nil
			}
			// Other errors (NATS unreachable) are the connection's business: keep watching.
		case e, ok := <-kw.Updates():
			if !ok {
				if ctx.Err() != nil {
					return false, nil
				}
				return false, fmt.Errorf("watch KV bucket %s: updates closed", w.store.kv.Bucket())
			}
			if e == nil {
				if seen != nil {
					w.dropUnseen(seen)
					seen = nil
				}
				w.syncOnce.Do(func() { close(w.synced) })
				continue
			}
			if seen != nil {
				seen[e.Key()] = true
			}
			w.apply(ctx, e)
		}
	}
}

// bucketCreated returns when the bucket's stream was created.
func (w *Watcher) bucketCreated(ctx context.Context) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, bucketCheckInterval)
	defer cancel()
	st, err := w.store.kv.Status(ctx)
	if err != nil {
		return time.Time{}, err
	}
	if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok && bs.StreamInfo() != nil {
		return bs.StreamInfo().Created, nil
	}
	return time.Time{}, nil
}

func isBucketGone(err error) bool {
	return errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrBucketNotFound)
}

// waitForBucket polls until the bucket exists again and starts a new watch on it.
func (w *Watcher) waitForBucket(ctx context.Context) (time.Time, jetstream.KeyWatcher, error) {
	t := time.NewTicker(bucketCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return time.Time{}, nil, ctx.Err()
		case <-t.C:
		}
		created, err := w.bucketCreated(ctx)
		if err != nil {
			continue
		}
		kw, err := w.store.kv.WatchAll(ctx)
		if err != nil {
			continue
		}
		return created, kw, nil
	}
}

// holdAll marks every view as held and stops their timers.
func (w *Watcher) holdAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id, v := range w.views {
		v.Err = ErrBucketDeleted
		w.views[id] = v
		w.stopTimerLocked(id)
		w.markLocked(id)
	}
}

// dropUnseen removes the views of keys the reloaded bucket does not hold.
func (w *Watcher) dropUnseen(seen map[string]bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for id := range w.views {
		if !seen[id] {
			delete(w.views, id)
			w.stopTimerLocked(id)
			w.markLocked(id)
		}
	}
}

// Synced is closed once the watcher has loaded every record present at start.
func (w *Watcher) Synced() <-chan struct{} { return w.synced }

// Get returns the view of one endpoint.
func (w *Watcher) Get(id string) (View, bool) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	v, ok := w.views[id]
	return v, ok
}

// List returns every endpoint's view, sorted by id.
func (w *Watcher) List() []View {
	w.mu.RLock()
	out := make([]View, 0, len(w.views))
	for _, v := range w.views {
		out = append(out, v)
	}
	w.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Counts returns how many endpoints are in each status, and how many records are invalid.
func (w *Watcher) Counts() (byStatus map[Status]int, invalid int) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	byStatus = make(map[Status]int, 4)
	for _, v := range w.views {
		if v.Err != nil {
			invalid++
			continue
		}
		byStatus[v.Record.Status]++
	}
	return byStatus, invalid
}

func (w *Watcher) apply(ctx context.Context, e jetstream.KeyValueEntry) {
	id := e.Key()
	switch e.Operation() {
	case jetstream.KeyValueDelete, jetstream.KeyValuePurge:
		w.mu.Lock()
		delete(w.views, id)
		w.stopTimerLocked(id)
		w.markLocked(id)
		w.mu.Unlock()
		w.log.Debug().Str("endpoint", id).Msg("endpoint removed")
		return
	}
	v := View{ID: id, Revision: e.Revision(), Modified: e.Created()}
	rec, err := ParseRecordAt(id, e.Value(), w.clock.Now())
	v.Record = rec
	if err != nil {
		v.Err = err
		w.log.Error().Str("endpoint", id).Uint64("revision", e.Revision()).Err(err).
			Msg("invalid endpoint record: its deliveries are held until it is fixed")
	}
	w.mu.Lock()
	prev, had := w.views[id]
	w.views[id] = v
	w.stopTimerLocked(id)
	if err == nil {
		w.scheduleLocked(ctx, id, rec)
	}
	w.markLocked(id)
	w.mu.Unlock()
	if err == nil && (!had || prev.Err != nil || prev.Record.Status != rec.Status) {
		ev := w.log.Debug().Str("endpoint", id).Str("status", string(rec.Status)).Uint64("revision", e.Revision())
		if had && prev.Err == nil {
			ev = ev.Str("from", string(prev.Record.Status))
		}
		ev.Msg("endpoint state seen")
	}
}

// Subscription tells one reader which endpoints changed since it last asked. It
// never blocks the watcher: changes to the same endpoint coalesce, and the reader
// reads the current state from the watcher's view.
type Subscription struct {
	w      *Watcher
	mu     sync.Mutex
	dirty  map[string]struct{}
	signal chan struct{}
}

// Subscribe returns a subscription whose first Next reports every endpoint known so far.
func (w *Watcher) Subscribe() *Subscription {
	s := &Subscription{w: w, dirty: make(map[string]struct{}), signal: make(chan struct{}, 1)}
	w.mu.Lock()
	defer w.mu.Unlock()
	for id := range w.views {
		s.dirty[id] = struct{}{}
	}
	if len(s.dirty) > 0 {
		s.signal <- struct{}{}
	}
	w.subs[s] = struct{}{}
	return s
}

// Next blocks until at least one endpoint changed, then returns the ids of all
// that did, sorted; it returns ctx's error when ctx is done first.
func (s *Subscription) Next(ctx context.Context) ([]string, error) {
	for {
		s.mu.Lock()
		if len(s.dirty) > 0 {
			ids := make([]string, 0, len(s.dirty))
			for id := range s.dirty {
				ids = append(ids, id)
			}
			clear(s.dirty)
			s.mu.Unlock()
			sort.Strings(ids)
			return ids, nil
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-s.signal:
		}
	}
}

// Close ends the subscription.
func (s *Subscription) Close() {
	s.w.mu.Lock()
	delete(s.w.subs, s)
	s.w.mu.Unlock()
}

func (w *Watcher) markLocked(id string) {
	for s := range w.subs {
		s.mu.Lock()
		s.dirty[id] = struct{}{}
		s.mu.Unlock()
		select {
		case s.signal <- struct{}{}:
		default:
		}
	}
}
