package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

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

// AddEndpoint adds an endpoint the way DefectDojo does: it validates rec,
// refuses a taken id or name, pings the URL, and only if the ping succeeded (PingSucceeded: below 400)
// stores rec as active, created now (statekv.Store.CreateUnique: the name rule
// holds against concurrent adds). It returns the stored entry and the ping's result.
func AddEndpoint(ctx context.Context, store *statekv.Store, client *delivery.Client, rec statekv.Record, d RequestDefaults, now func() time.Time) (statekv.Entry, delivery.Result, error) {
	rec.Status = statekv.StatusActive
	if err := rec.Validate(); err != nil {
		return statekv.Entry{}, delivery.Result{}, err
	}
	if _, err := store.Get(ctx, rec.ID); err == nil || errors.Is(err, statekv.ErrInvalidRecord) {
		return statekv.Entry{}, delivery.Result{}, fmt.Errorf("%w: %s (remove it first, or use another id)", statekv.ErrExists, rec.ID)
	}
	if err := store.NameFree(ctx, rec); err != nil {
		return statekv.Entry{}, delivery.Result{}, err
	}
	res := Ping(ctx, client, rec, d, now())
	if !PingSucceeded(res) {
		return statekv.Entry{}, res, &PingError{URL: rec.URL, Result: res}
	}
	rec.CreatedAt = statekv.Timestamp(now())
	e, err := store.CreateUnique(ctx, rec)
	return e, res, err
}

// PingEndpoint pings the stored endpoint id; a ping that did not succeed is a *PingError.
func PingEndpoint(ctx context.Context, store *statekv.Store, client *delivery.Client, id string, d RequestDefaults, now time.Time) (delivery.Result, error) {
	e, err := store.Get(ctx, id)
	if err != nil {
		return delivery.Result{}, err
	}
	res := Ping(ctx, client, e.Record, d, now)
	if !PingSucceeded(res) {
		return res, &PingError{URL: e.Record.URL, Result: res}
	}
	return res, nil
}

// Activate pings the endpoint and, only if the ping succeeded, applies the
// user's activation (statekv.UserActivate). It reports whether that changed the record.
func Activate(ctx context.Context, store *statekv.Store, client *delivery.Client, id string, d RequestDefaults, now func() time.Time, p statekv.Policy) (statekv.Entry, bool, error) {
	if _, err := PingEndpoint(ctx, store, client, id, d, now()); err != nil {
		return statekv.Entry{}, false, err
	}
	return store.Apply(ctx, id, statekv.Event{Input: statekv.UserActivate}, now, p)
}

// Skip drops the endpoint's backlog: its consumer restarts at now (the
// record's deliver_from), so nothing published before is delivered to it. It
// returns how many events were waiting (0 when it has no consumer yet, or
// no sidecar made the streams) and the
// time deliveries restart from.
func Skip(ctx context.Context, js jetstream.JetStream, names contract.Names, store *statekv.Store, id string, now time.Time) (uint64, time.Time, error) {
	backlog, err := jsstate.Backlog(ctx, js, names, id)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, time.Time{}, err
	}
	from := statekv.Timestamp(now)
	if _, _, err := store.Update(ctx, id, func(r statekv.Record) (statekv.Record, bool, error) {
		r.DeliverFrom = from
		return r, true, nil
	}); err != nil {
		return 0, time.Time{}, fmt.Errorf("skip endpoint %s: %w", id, err)
	}
	return backlog, from, nil
}
