package statekv

import (
	"fmt"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/delivery"
)

// Input is what happened to an endpoint: a delivery outcome, a timer, or a user action.
type Input int

// The inputs of DefectDojo's state machine (DESIGN.md section 5).
const (
	// Success is a 2xx answer.
	Success Input = iota + 1
	// TemporaryFailure is a 5xx, a 429 or a timeout.
	TemporaryFailure
	// PermanentFailure is any other HTTP status or a non-HTTP error.
	PermanentFailure
	// ReactivateTimer fires reactivate-after past last_error of an inactive_tmp endpoint.
	ReactivateTimer
	// RecoverTimer fires recover-after past last_error of an active_tmp endpoint.
	RecoverTimer
	// UserActivate is an activation by a user (after a successful ping).
	UserActivate
	// UserDeactivate is a deactivation by a user.
	UserDeactivate
	// SecretTimer fires at the end of a secret rotation's overlap: the previous secret is dropped.
	SecretTimer
)

var inputNames = map[Input]string{
	Success: "success", TemporaryFailure: "temporary", PermanentFailure: "permanent",
	ReactivateTimer: "reactivate_timer", RecoverTimer: "recover_timer",
	UserActivate: "user_activate", UserDeactivate: "user_deactivate", SecretTimer: "secret_timer",
}

// String names the input as logs show it.
func (in Input) String() string {
	if s, ok := inputNames[in]; ok {
		return s
	}
	return fmt.Sprintf("input(%d)", int(in))
}

// Event is one input with its note: the outcome's note for failures, who or what
// acted for a deactivation; ignored otherwise.
type Event struct {
	Input Input
	Note  string
	// RetryAt is when a 429/503 asked to be called again (Retry-After); zero when none.
	RetryAt time.Time
}

// RecoveryNote is the note DefectDojo writes when active_tmp recovers to active.
const RecoveryNote = "Reactivation from active_tmp"

// Default durations of the state machine (DefectDojo's).
const (
	DefaultReactivateAfter = 60 * time.Second
	DefaultRecoverAfter    = 24 * time.Hour
	DefaultGiveUpAfter     = 24 * time.Hour
	DefaultMaxRetryAfter   = time.Hour
)

// Policy holds the durations of the state machine.
type Policy struct {
	ReactivateAfter time.Duration // inactive_tmp → active_tmp this long after last_error
	RecoverAfter    time.Duration // active_tmp → active when last_error is more than this long ago
	GiveUpAfter     time.Duration // a temporary failure in active_tmp more than this long after first_error is permanent
	MaxRetryAfter   time.Duration // cap on a Retry-After that holds inactive_tmp past reactivate-after; 0 = Retry-After ignored
}

// DefaultPolicy returns DefectDojo's durations: 60 s, 24 h, 24 h.
func DefaultPolicy() Policy {
	return Policy{ReactivateAfter: DefaultReactivateAfter, RecoverAfter: DefaultRecoverAfter, GiveUpAfter: DefaultGiveUpAfter,
		MaxRetryAfter: DefaultMaxRetryAfter}
}

// Validate checks that every duration is positive.
func (p Policy) Validate() error {
	if p.MaxRetryAfter < 0 || p.MaxRetryAfter > MaxRetryAfterLimit {
		return fmt.Errorf("policy: max-retry-after %s must be between 0 and %s", p.MaxRetryAfter, MaxRetryAfterLimit)
	}
	if p.ReactivateAfter <= 0 || p.RecoverAfter <= 0 || p.GiveUpAfter <= 0 {
		return fmt.Errorf("policy durations must be positive: reactivate-after %s, recover-after %s, give-up-after %s",
			p.ReactivateAfter, p.RecoverAfter, p.GiveUpAfter)
	}
	return nil
}

// Transition applies one event to a record at time now and returns the new record
// and whether anything changed. It is pure: no I/O, no clock but now.
//
// Beyond DefectDojo's table (which only sends to active endpoints), results of
// requests that were in flight when the endpoint left the active states are
// handled so that nothing is lost: a temporary failure on an inactive_tmp endpoint
// moves last_error and the note and keeps first_error; a permanent failure on an
// inactive_tmp endpoint makes it inactive_permanent; any failure on an
// inactive_permanent endpoint and any success on an inactive one change nothing.
func Transition(r Record, ev Event, now time.Time, p Policy) (Record, bool) {
	now = Timestamp(now)
	next := r
	switch ev.Input {
	case Success:
		return r, false
	case TemporaryFailure:
		switch r.Status {
		case StatusActive:
			next.Status, next.FirstError, next.LastError = StatusInactiveTmp, now, now
		case StatusActiveTmp:
			if r.FirstError.IsZero() {
				next.FirstError = now // hand-edited record without an outage start: start one
			}
			next.Status, next.LastError = StatusInactiveTmp, now
			if now.Sub(next.FirstError) > p.GiveUpAfter {
				next.Status = StatusInactivePermanent
			}
		case StatusInactiveTmp:
			if r.FirstError.IsZero() {
				next.FirstError = now
			}
			next.LastError = now
		default:
			return r, false
		}
		next.Note = truncateNote(ev.Note)
		if next.Status == StatusInactiveTmp {
			next.RetryAfter, next.Note = retryHold(next, ev, now, p)
		}
	case PermanentFailure:
		switch r.Status {
		case StatusActive, StatusActiveTmp:
			next.FirstError = now
		case StatusInactiveTmp:
			if r.FirstError.IsZero() {
				next.FirstError = now
			}
		default:
			return r, false
		}
		next.Status, next.LastError, next.Note, next.RetryAfter = StatusInactivePermanent, now, truncateNote(ev.Note), time.Time{}
	case ReactivateTimer:
		if r.Status != StatusInactiveTmp || now.Sub(r.LastError) < p.ReactivateAfter {
			return r, false
		}
		if !r.RetryAfter.IsZero() && now.Before(r.RetryAfter) {
			return r, false
		}
		next.Status, next.RetryAfter = StatusActiveTmp, time.Time{}
	case RecoverTimer:
		if r.Status != StatusActiveTmp || now.Sub(r.LastError) <= p.RecoverAfter {
			return r, false
		}
		next.Status, next.FirstError, next.LastError, next.Note = StatusActive, time.Time{}, time.Time{}, RecoveryNote
	case UserActivate:
		next.Status, next.FirstError, next.LastError, next.Note = StatusActive, time.Time{}, time.Time{}, ""
		next.RetryAfter = time.Time{}
	case UserDeactivate:
		next.Status, next.FirstError, next.LastError, next.Note = StatusInactivePermanent, time.Time{}, time.Time{}, truncateNote(ev.Note)
		next.RetryAfter = time.Time{}
	case SecretTimer:
		if r.PreviousSecret == "" || now.Before(r.PreviousSecretUntil) {
			return r, false
		}
		next.PreviousSecret, next.PreviousSecretUntil = "", time.Time{}
		return next, true
	default:
		return r, false
	}
	return next, !sameState(r, next)
}

// NextTimer returns when the record's next timed transition is due and which one;
// ok is false when no timer applies (active or inactive_permanent, no secret
// rotation under way). A due time in
// the past means the transition is overdue and should be applied at once.
func NextTimer(r Record, p Policy) (due time.Time, in Input, ok bool) {
	// Transition compares times at the stored (millisecond) precision, so the due
	// times are rounded the same way: a timer never fires before its transition applies.
	switch r.Status {
	case StatusInactiveTmp:
		due, in, ok = ReactivationTime(r, p), ReactivateTimer, true
	case StatusActiveTmp:
		// Strictly more than recover-after: one tick of the stored precision later.
		due, in, ok = r.LastError.Add(p.RecoverAfter).Truncate(timestampPrecision).Add(timestampPrecision), RecoverTimer, true
	}
	if r.PreviousSecret != "" && (!ok || r.PreviousSecretUntil.Before(due)) {
		due, in, ok = r.PreviousSecretUntil, SecretTimer, true
	}
	return due, in, ok
}

// ReactivationTime is when an inactive_tmp endpoint becomes active_tmp:
// reactivate-after past last_error, or its Retry-After hold if later.
func ReactivationTime(r Record, p Policy) time.Time {
	due := r.LastError.Add(p.ReactivateAfter)
	if t := due.Truncate(timestampPrecision); !t.Equal(due) {
		due = t.Add(timestampPrecision)
	}
	if r.RetryAfter.After(due) {
		due = r.RetryAfter
	}
	return due
}

func sameState(a, b Record) bool {
	return a.Status == b.Status && a.FirstError.Equal(b.FirstError) && a.LastError.Equal(b.LastError) && a.Note == b.Note &&
		a.RetryAfter.Equal(b.RetryAfter)
}

// retryHold keeps an inactive_tmp endpoint down until a Retry-After when that is
// later than the normal reactivation, capped at MaxRetryAfter; the note says so.
func retryHold(r Record, ev Event, now time.Time, p Policy) (time.Time, string) {
	note := r.Note
	if ev.RetryAt.IsZero() || p.MaxRetryAfter <= 0 {
		return r.RetryAfter, note
	}
	until := Timestamp(ev.RetryAt)
	capped := ""
	if limit := now.Add(p.MaxRetryAfter); until.After(limit) {
		until, capped = limit, fmt.Sprintf(", capped at %s", p.MaxRetryAfter)
	}
	if !until.After(r.LastError.Add(p.ReactivateAfter)) {
		return r.RetryAfter, note // the normal reactivation is later anyway
	}
	return until, truncateNote(fmt.Sprintf("%s (Retry-After: held until %s%s)", note, until.Format(time.RFC3339), capped))
}

// truncateNote caps a note at MaxNoteLength characters, without a mark: the
// rule is delivery.TruncateNote's.
func truncateNote(s string) string { return delivery.TruncateNote(s, "") }
