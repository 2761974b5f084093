package statekv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Causes stamped on a record by the Store (Record.ChangedBy): what wrote a
// revision. Delivery outcomes and timers are stamped from the Input ("delivery:"
// or "timer:" plus its name), a user action as "user:" plus what was done.
const (
	CauseAdd          = "user:add"
	CauseEdit         = "user:edit"
	CauseRotateSecret = "user:rotate_secret"
	CauseSkip         = "user:skip"
	// CauseHandEdit is what History shows for a revision the Store did not write
	// (nats kv put, or a copy of an older value).
	CauseHandEdit = "hand edit"
	// CauseRemoved is what History shows for a delete or purge marker.
	CauseRemoved = "removed"
)

// CauseOf is the cause stamped for a revision written by an Input.
func CauseOf(in Input) string {
	switch in {
	case Success, TemporaryFailure, PermanentFailure:
		return "delivery:" + in.String()
	case ReactivateTimer, RecoverTimer, SecretTimer:
		return "timer:" + in.String()
	}
	return "user:" + strings.TrimPrefix(in.String(), "user_")
}

// Revision is one revision of an endpoint record in the bucket's history.
type Revision struct {
	Revision uint64
	Time     time.Time // when it was written
	Cause    string    // what wrote it: a Cause constant, CauseOf(input), CauseHandEdit or CauseRemoved
	Record   Record    // the value (zero for a removal or an invalid value)
	Err      error     // why the value does not parse or validate (held), nil otherwise
}

// MarshalJSON writes the revision as the CLI and the API show it: revision,
// time, cause, status, first and last error, note, and the error of an invalid
// value; never the record's secrets.
func (r Revision) MarshalJSON() ([]byte, error) {
	v := struct {
		Revision   uint64     `json:"revision"`
		Time       time.Time  `json:"time"`
		Cause      string     `json:"cause"`
		Status     string     `json:"status"`
		FirstError *time.Time `json:"first_error"`
		LastError  *time.Time `json:"last_error"`
		Note       string     `json:"note"`
		Error      string     `json:"error,omitempty"`
	}{Revision: r.Revision, Time: r.Time, Cause: r.Cause, Status: string(r.Record.Status), Note: r.Record.Note,
		FirstError: timeOrNil(r.Record.FirstError), LastError: timeOrNil(r.Record.LastError)}
	if r.Err != nil {
		v.Error = r.Err.Error()
	}
	return json.Marshal(v)
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// Kind is the first part of the cause: delivery, timer, user, hand edit or removed.
func (r Revision) Kind() string {
	k, _, _ := strings.Cut(r.Cause, ":")
	return k
}

// History returns the record's revisions that the bucket keeps (its history
// setting, 64 by default), oldest first, each with what wrote it. A revision is
// attributed to its stamped cause only when it names the revision it replaced;
// a value put by hand keeps stale stamps and shows as CauseHandEdit.
// It returns ErrNotFound when the bucket holds nothing for id.
func (s *Store) History(ctx context.Context, id string) ([]Revision, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	entries, err := s.kv.History(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("history of endpoint %s: %w", id, err)
	}
	out := make([]Revision, 0, len(entries))
	var prev uint64
	for i, e := range entries {
		r := Revision{Revision: e.Revision(), Time: e.Created().UTC()}
		if e.Operation() != jetstream.KeyValuePut {
			r.Cause = CauseRemoved
		} else {
			r.Record, r.Err = ParseRecord(id, e.Value())
			r.Cause = CauseHandEdit
			stamped := r.Record.ChangedBy != "" && r.Err == nil
			// The first kept revision may replace one the history no longer holds.
			if stamped && (r.Record.ChangedAfter == prev || i == 0 && prev == 0 && r.Record.ChangedAfter < e.Revision()) {
				r.Cause = r.Record.ChangedBy
			}
		}
		prev = e.Revision()
		out = append(out, r)
	}
	return out, nil
}

// CheckHeader refuses a header name without a value, or a value without a name:
// the request would carry an empty header.
func (r Record) CheckHeader() error {
	if (r.HeaderName == "") != (r.HeaderValue == "") {
		return fmt.Errorf("%w: header_name and header_value go together", ErrInvalidRecord)
	}
	return nil
}
