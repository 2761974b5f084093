package statekv

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Store errors, matched with errors.Is.
var (
	// ErrNotFound means no endpoint has that id.
	ErrNotFound = errors.New("endpoint not found")
	// ErrExists means Create found the id taken.
	ErrExists = errors.New("endpoint already exists")
)

// DefaultBucket is the KV bucket name used when none is configured.
const DefaultBucket = "defectdojo_webhooks"

// DefaultHistory is how many revisions of each record the bucket keeps (the KV maximum).
const DefaultHistory = 64

// maxCASAttempts bounds the compare-and-set retry loop of Update.
const maxCASAttempts = 100

// BucketConfig describes the endpoint bucket.
type BucketConfig struct {
	Name     string // bucket name, default DefaultBucket
	Replicas int    // stream replicas, default DefaultReplicas
	History  int    // revisions kept per key, 1 to 64, default DefaultHistory
}

// EnsureBucket creates the bucket or updates its configuration, and returns it.
func EnsureBucket(ctx context.Context, js jetstream.JetStream, cfg BucketConfig) (jetstream.KeyValue, error) {
	cfg = cfg.withDefaults()
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.Name,
		Description: "dojo-webhooks endpoint records (DefectDojo Notification_Webhooks)",
		History:     uint8(cfg.History),
		Replicas:    cfg.Replicas,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("ensure KV bucket %q: %w", cfg.Name, err)
	}
	return kv, nil
}

// Entry is one stored record with its KV revision.
type Entry struct {
	Record   Record
	Revision uint64
	Modified time.Time // when this revision was written
}

// Store reads and writes endpoint records in a KV bucket with compare-and-set.
type Store struct {
	kv    jetstream.KeyValue
	clock Clock
}

// NewStore returns a store over the bucket kv, on the wall clock.
func NewStore(kv jetstream.KeyValue) *Store { return &Store{kv: kv, clock: systemClock{}} }

// WithClock returns a store over the same bucket whose writes are stamped by c
// (Entry.Modified); a Watcher over it uses c too unless given its own.
func (s *Store) WithClock(c Clock) *Store { return &Store{kv: s.kv, clock: c} }

// KV returns the underlying bucket.
func (s *Store) KV() jetstream.KeyValue { return s.kv }

// Get reads one record. It returns ErrNotFound when the id is absent or deleted,
// and an error wrapping ErrInvalidRecord (with the entry's revision) when the stored
// value does not parse or validate.
func (s *Store) Get(ctx context.Context, id string) (Entry, error) {
	if err := ValidateID(id); err != nil {
		return Entry{}, err
	}
	e, err := s.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return Entry{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("get endpoint %s: %w", id, err)
	}
	return s.entryFrom(e)
}

// entryFrom parses a stored value, its times checked at the store's clock.
func (s *Store) entryFrom(e jetstream.KeyValueEntry) (Entry, error) {
	rec, err := ParseRecordAt(e.Key(), e.Value(), s.clock.Now())
	out := Entry{Record: rec, Revision: e.Revision(), Modified: e.Created()}
	if err != nil {
		return out, fmt.Errorf("endpoint %s (revision %d): %w", e.Key(), e.Revision(), err)
	}
	return out, nil
}

// Invalid is a stored value that does not parse or validate.
type Invalid struct {
	ID       string
	Revision uint64
	Err      error
}

// List reads every record, sorted by id; values that do not parse are returned apart.
func (s *Store) List(ctx context.Context) ([]Entry, []Invalid, error) {
	keys, err := s.kv.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list endpoints: %w", err)
	}
	sort.Strings(keys)
	var entries []Entry
	var invalid []Invalid
	for _, k := range keys {
		e, err := s.kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, nil, fmt.Errorf("list endpoints: get %s: %w", k, err)
		}
		entry, err := s.entryFrom(e)
		if err != nil {
			invalid = append(invalid, Invalid{ID: k, Revision: e.Revision(), Err: err})
			continue
		}
		entries = append(entries, entry)
	}
	return entries, invalid, nil
}

// Create stores a new record after validating it; it returns ErrExists when the id is taken.
// The record is stamped as written by CauseAdd unless rec.ChangedBy says otherwise.
func (s *Store) Create(ctx context.Context, rec Record) (Entry, error) {
	if rec.ChangedBy == "" {
		rec.ChangedBy = CauseAdd
	}
	rec.ChangedAfter = 0
	if err := rec.Validate(); err != nil {
		return Entry{}, err
	}
	data, err := rec.MarshalJSON() // not json.Marshal: it would HTML-escape the value again
	if err != nil {
		return Entry{}, fmt.Errorf("encode endpoint %s: %w", rec.ID, err)
	}
	rev, err := s.kv.Create(ctx, rec.ID, data)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return Entry{}, fmt.Errorf("%w: %s", ErrExists, rec.ID)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("create endpoint %s: %w", rec.ID, err)
	}
	return Entry{Record: rec, Revision: rev, Modified: s.clock.Now()}, nil
}

// Update is UpdateBy with the cause CauseEdit (a user's change of the definition).
func (s *Store) Update(ctx context.Context, id string, change func(Record) (Record, bool, error)) (Entry, bool, error) {
	return s.UpdateBy(ctx, id, CauseEdit, change)
}

// UpdateBy reads the record, calls change on it, and writes the result only if the
// key still has the revision that was read, retrying on a conflict
// (jetstream.ErrKeyRevisionMismatch). change returns the new record and whether to
// write it; when it returns false nothing is written and the current entry comes back.
// A stored value that does not parse is never overwritten: UpdateBy returns its error.
// The written revision is stamped with cause and the revision it replaces (History).
func (s *Store) UpdateBy(ctx context.Context, id, cause string, change func(Record) (Record, bool, error)) (Entry, bool, error) {
	for attempt := 0; attempt < maxCASAttempts; attempt++ {
		cur, err := s.Get(ctx, id)
		if err != nil {
			return cur, false, err
		}
		next, write, err := change(cur.Record)
		if err != nil || !write {
			return cur, false, err
		}
		next.ID = id
		next.ChangedBy, next.ChangedAfter = cause, cur.Revision
		if err := next.Validate(); err != nil {
			return cur, false, err
		}
		data, err := next.MarshalJSON()
		if err != nil {
			return cur, false, fmt.Errorf("encode endpoint %s: %w", id, err)
		}
		rev, err := s.kv.Update(ctx, id, data, cur.Revision)
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			continue // someone wrote in between: read again and re-decide
		}
		if err != nil {
			return cur, false, fmt.Errorf("update endpoint %s: %w", id, err)
		}
		return Entry{Record: next, Revision: rev, Modified: s.clock.Now()}, true, nil
	}
	return Entry{}, false, fmt.Errorf("update endpoint %s: %d revision conflicts in a row", id, maxCASAttempts)
}

// Apply runs the state machine on the stored record with compare-and-set: each
// attempt re-reads the record and re-evaluates Transition at now(), so concurrent
// writers (other sidecars, timers, operators) are never overwritten and a timed
// transition is written once. It reports whether this call wrote a change.
func (s *Store) Apply(ctx context.Context, id string, ev Event, now func() time.Time, p Policy) (Entry, bool, error) {
	return s.UpdateBy(ctx, id, CauseOf(ev.Input), func(r Record) (Record, bool, error) {
		next, changed := Transition(r, ev, now(), p)
		return next, changed, nil
	})
}

// Delete removes the record (a delete marker: the history stays for `nats kv history`).
// It returns ErrNotFound when there is no such endpoint.
func (s *Store) Delete(ctx context.Context, id string) error {
	e, err := s.kv.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return fmt.Errorf("delete endpoint %s: %w", id, err)
	}
	if err := s.kv.Delete(ctx, id, jetstream.LastRevision(e.Revision())); err != nil {
		return fmt.Errorf("delete endpoint %s: %w", id, err)
	}
	return nil
}
