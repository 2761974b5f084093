package statekv

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrNameTaken means another endpoint already has the name; the error that
// wraps it is a *NameTakenError naming that endpoint.
var ErrNameTaken = errors.New("endpoint name already used")

// NameTakenError says which endpoint holds a name that a create wanted.
type NameTakenError struct {
	Name string // the name asked for
	By   string // id of the endpoint that has it
}

// Error reads `name "Jira" is already used by endpoint jira`.
func (e *NameTakenError) Error() string {
	return fmt.Sprintf("name %q is already used by endpoint %s", e.Name, e.By)
}

// Is makes errors.Is(err, ErrNameTaken) true.
func (e *NameTakenError) Is(target error) bool { return target == ErrNameTaken }

// maxOwnDeleteAttempts bounds the retries of CreateUnique's compare-and-delete.
const maxOwnDeleteAttempts = 10

// CreateUnique stores a new record, like Create, only if no other endpoint has
// its name (names are compared exactly); otherwise it returns an error wrapping
// ErrNameTaken (a *NameTakenError) and stores nothing.
//
// It is atomic across concurrent creators without a second bucket or lock:
// it refuses a name already in the listing, then creates the record, lists
// again, and if another record with the same name was created at a lower
// bucket revision (the stream's order, which every creator sees alike) it
// deletes its own record again (compare-and-delete on its own revision) and
// returns ErrNameTaken. Of concurrent creators of one name exactly the first
// keeps its record. Two limits: the loser's record exists for that moment,
// so a sidecar may start its consumer and even deliver to it; and a record's
// create revision is read from its history, so a record rewritten more than
// the bucket's history depth since the moment of the create (impossible with
// the default 64, possible with a history of 1) looks younger than it is.
func (s *Store) CreateUnique(ctx context.Context, rec Record) (Entry, error) {
	if err := rec.Validate(); err != nil {
		return Entry{}, err
	}
	if err := s.NameFree(ctx, rec); err != nil {
		return Entry{}, fmt.Errorf("create endpoint %s: %w", rec.ID, err)
	}
	created, err := s.Create(ctx, rec)
	if err != nil {
		return created, err
	}
	other, err := s.olderWithName(ctx, rec, created.Revision)
	if err == nil && other == "" {
		return created, nil
	}
	if err == nil {
		err = &NameTakenError{Name: rec.Name, By: other}
	} else {
		err = fmt.Errorf("checking that name %q is unique: %w", rec.Name, err)
	}
	if derr := s.deleteOwn(ctx, rec.ID, created.Revision); derr != nil {
		return Entry{}, fmt.Errorf("create endpoint %s: %w; removing it again failed: %v", rec.ID, err, derr)
	}
	return Entry{}, fmt.Errorf("create endpoint %s: %w", rec.ID, err)
}

// NameFree returns an error wrapping ErrNameTaken (a *NameTakenError) when an
// endpoint other than rec has rec's name now. It is the cheap check before a
// slow step (a ping); only CreateUnique makes the name rule atomic.
func (s *Store) NameFree(ctx context.Context, rec Record) error {
	// The oldest holder, as CreateUnique names it: a racing loser about to delete
	// itself may be listed too.
	other, err := s.olderWithName(ctx, rec, math.MaxUint64)
	if err != nil {
		return err
	}
	if other != "" {
		return &NameTakenError{Name: rec.Name, By: other}
	}
	return nil
}

// olderWithName returns the id of the oldest record other than rec with rec's
// name if it was created before revision rev, or "". The oldest, not any older
// one: that one is the winner of a race, never a loser about to delete itself.
func (s *Store) olderWithName(ctx context.Context, rec Record, rev uint64) (string, error) {
	entries, _, err := s.List(ctx)
	if err != nil {
		return "", err
	}
	oldest, oldestRev := "", rev
	for _, e := range entries {
		if e.Record.Name != rec.Name || e.Record.ID == rec.ID {
			continue
		}
		created := e.Revision // written before us and unchanged since: created before us too
		if created > rev {
			if created, err = s.createRevision(ctx, e.Record.ID); err != nil {
				return "", err
			}
		}
		if created != 0 && created < oldestRev {
			oldest, oldestRev = e.Record.ID, created
		}
	}
	return oldest, nil
}

// createRevision is the revision at which id's current record was created: the
// first put after its last delete in the history the bucket keeps (0 when the
// key is deleted now).
func (s *Store) createRevision(ctx context.Context, id string) (uint64, error) {
	hist, err := s.kv.History(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("history of endpoint %s: %w", id, err)
	}
	var first uint64
	for _, e := range hist {
		switch {
		case e.Operation() != jetstream.KeyValuePut:
			first = 0
		case first == 0:
			first = e.Revision()
		}
	}
	return first, nil
}

// deleteOwn deletes the record this store created at revision created, with
// compare-and-delete; a record rewritten meanwhile (a sidecar's transition) is
// still deleted, one created again after a delete is left alone.
func (s *Store) deleteOwn(ctx context.Context, id string, created uint64) error {
	rev := created
	for attempt := 0; attempt < maxOwnDeleteAttempts; attempt++ {
		err := s.kv.Delete(ctx, id, jetstream.LastRevision(rev))
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return fmt.Errorf("delete endpoint %s: %w", id, err)
		}
		first, err := s.createRevision(ctx, id)
		if err != nil {
			return err
		}
		if first != created {
			return nil // gone, or another incarnation: not ours to delete
		}
		e, err := s.kv.Get(ctx, id)
		if err != nil {
			return fmt.Errorf("delete endpoint %s: %w", id, err)
		}
		rev = e.Revision()
	}
	return fmt.Errorf("delete endpoint %s: %d revision conflicts in a row", id, maxOwnDeleteAttempts)
}

// DefaultSecretOverlap is how long the previous secret keeps signing after a rotation.
const DefaultSecretOverlap = 24 * time.Hour

// RotateSecret gives the endpoint the signing secret fresh. The current secret,
// if any, becomes the previous one and keeps signing until now+overlap, so
// receivers can switch without dropping a delivery.
func (s *Store) RotateSecret(ctx context.Context, id, fresh string, overlap time.Duration, now time.Time) (Entry, error) {
	if overlap < 0 || overlap > MaxSecretOverlap {
		return Entry{}, fmt.Errorf("rotate secret of endpoint %s: overlap %s: must be between 0 and %s", id, overlap, MaxSecretOverlap)
	}
	until := Timestamp(now.Add(overlap))
	e, _, err := s.UpdateBy(ctx, id, CauseRotateSecret, func(r Record) (Record, bool, error) {
		if r.Secret != "" {
			r.PreviousSecret, r.PreviousSecretUntil = r.Secret, until
		}
		r.Secret = fresh
		return r, true, nil
	})
	if err != nil {
		return e, fmt.Errorf("rotate secret of endpoint %s: %w", id, err)
	}
	return e, nil
}
