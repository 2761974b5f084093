package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/attempts"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/delivery"
	"github.com/dojo-webhooks/dojo-webhooks/jsstate"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// The operator's actions on an endpoint, as `dojo-webhooks endpoint …` and the
// HTTP API run them: each checks, pings where DefectDojo does, and writes.

// ErrPingFailed is wrapped by the error of a ping that did not succeed (a *PingError): no answer, or one of 400 or more.
var ErrPingFailed = errors.New("ping failed")

// PingError is a ping that did not succeed (PingSucceeded).
type PingError struct {
	URL    string          // the endpoint's URL
	Result delivery.Result // what the ping got
}

// Error reads "ping to URL failed (permanent: Response status code: 404)".
func (e *PingError) Error() string {
	return fmt.Sprintf("ping to %s failed (%s: %s)", e.URL, e.Result.Class, e.Result.Note)
}

// Is makes errors.Is(err, ErrPingFailed) true.
func (e *PingError) Is(target error) bool { return target == ErrPingFailed }

// Admin runs the operator's actions on endpoints: the one implementation that
// the CLI, the HTTP API and the console call. Zero Now means time.Now; a nil
// Record means pings are not written to the attempt log.
type Admin struct {
	Store     *statekv.Store
	Client    *delivery.Client // pings
	Request   RequestDefaults  // pings' default headers
	Policy    statekv.Policy   // the state machine's durations (activate, deactivate)
	JetStream jetstream.JetStream
	Names     contract.Names
	Now       func() time.Time
	Record    func(attempts.Record) // where pings are logged (the sidecar's Recorder, or a one-shot write)
	// SecretOverlap is how long the old secret keeps signing after a rotation.
	SecretOverlap time.Duration
}

func (a Admin) now() time.Time {
	if a.Now == nil {
		return time.Now()
	}
	return a.Now()
}

// ping sends DefectDojo's test notification to rec's endpoint and logs the attempt.
func (a Admin) ping(ctx context.Context, rec statekv.Record) delivery.Result {
	start := a.now()
	res := Ping(ctx, a.Client, rec, a.Request, start)
	if a.Record != nil {
		a.Record(PingAttempt(rec, res, start))
	}
	return res
}

// Add adds an endpoint the way DefectDojo does: it validates rec, refuses a
// taken id or name, pings the URL, and only if the ping succeeded (PingSucceeded:
// a final answer below 400) stores rec
// as active, created now (statekv.Store.CreateUnique: the name rule holds
// against concurrent adds). It returns the stored entry and the ping's result.
func (a Admin) Add(ctx context.Context, rec statekv.Record) (statekv.Entry, delivery.Result, error) {
	rec.Status = statekv.StatusActive
	if err := rec.Validate(); err != nil {
		return statekv.Entry{}, delivery.Result{}, err
	}
	if _, err := a.Store.Get(ctx, rec.ID); err == nil || errors.Is(err, statekv.ErrInvalidRecord) {
		return statekv.Entry{}, delivery.Result{}, fmt.Errorf("%w: %s (remove it first, or use another id)", statekv.ErrExists, rec.ID)
	}
	if err := a.Store.NameFree(ctx, rec); err != nil {
		return statekv.Entry{}, delivery.Result{}, err
	}
	res := a.ping(ctx, rec)
	if !PingSucceeded(res) {
		return statekv.Entry{}, res, &PingError{URL: rec.URL, Result: res}
	}
	rec.CreatedAt = statekv.Timestamp(a.now())
	e, err := a.Store.CreateUnique(ctx, rec)
	return e, res, err
}

// Ping pings the stored endpoint id; a ping that did not succeed is a *PingError.
func (a Admin) Ping(ctx context.Context, id string) (delivery.Result, error) {
	e, err := a.Store.Get(ctx, id)
	if err != nil {
		return delivery.Result{}, err
	}
	res := a.ping(ctx, e.Record)
	if !PingSucceeded(res) {
		return res, &PingError{URL: e.Record.URL, Result: res}
	}
	return res, nil
}

// Activate pings the endpoint and, only if the ping succeeded, applies the
// user's activation (statekv.UserActivate). It reports whether that changed the record.
func (a Admin) Activate(ctx context.Context, id string) (statekv.Entry, bool, error) {
	if _, err := a.Ping(ctx, id); err != nil {
		return statekv.Entry{}, false, err
	}
	return a.Store.Apply(ctx, id, statekv.Event{Input: statekv.UserActivate}, a.now, a.Policy)
}

// Deactivate applies the user's deactivation with note (statekv.UserDeactivate).
func (a Admin) Deactivate(ctx context.Context, id, note string) (statekv.Entry, bool, error) {
	return a.Store.Apply(ctx, id, statekv.Event{Input: statekv.UserDeactivate, Note: note}, a.now, a.Policy)
}

// Skip drops the endpoint's backlog: its consumer restarts at now (the
// record's deliver_from), so nothing published before is delivered to it. It
// returns how many events were waiting (0 when it has no consumer yet, or
// no sidecar made the streams) and the time deliveries restart from.
func (a Admin) Skip(ctx context.Context, id string) (uint64, time.Time, error) {
	backlog, err := jsstate.Backlog(ctx, a.JetStream, a.Names, id)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, time.Time{}, err
	}
	from := statekv.Timestamp(a.now())
	if _, _, err := a.Store.UpdateBy(ctx, id, statekv.CauseSkip, func(r statekv.Record) (statekv.Record, bool, error) {
		r.DeliverFrom = from
		return r, true, nil
	}); err != nil {
		return 0, time.Time{}, fmt.Errorf("skip endpoint %s: %w", id, err)
	}
	return backlog, from, nil
}

// Replay sends the endpoint its dead letters again (since zero) or every event
// the events stream holds since then; it returns how many were sent.
func (a Admin) Replay(ctx context.Context, id string, since time.Time) (int, error) {
	e, err := a.Store.Get(ctx, id)
	if err != nil {
		return 0, err
	}
	if since.IsZero() {
		return ReplayDeadLetters(ctx, a.JetStream, a.Names, id)
	}
	return ReplaySince(ctx, a.JetStream, a.Names, e.Record, since)
}

// RotateSecret gives the endpoint a new generated signing secret; the old one
// keeps signing for SecretOverlap. It returns the entry and the new secret,
// which is shown once and never again.
func (a Admin) RotateSecret(ctx context.Context, id string) (statekv.Entry, string, error) {
	fresh, err := delivery.GenerateSecret()
	if err != nil {
		return statekv.Entry{}, "", err
	}
	e, err := a.Store.RotateSecret(ctx, id, fresh, a.SecretOverlap, a.now())
	return e, fresh, err
}
