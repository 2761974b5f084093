package attempts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/contract"
)

// Query limits, documented in the README.
const (
	// DefaultLimit is the page size when none is asked for.
	DefaultLimit = 50
	// MaxLimit is the largest page.
	MaxLimit = 500
	// fetchBatch is how many records one read of the log asks for.
	fetchBatch = 512
)

// ErrNoLog is returned when the attempt-log stream does not exist (the sidecar
// has not started with the attempt log on yet).
var ErrNoLog = errors.New("no attempt log")

// Query selects the attempts of one endpoint, newest first.
type Query struct {
	Endpoint string    // required
	Outcome  string    // success, temporary, permanent, local, or "failed" for all but success; "" = any
	Event    string    // only this event; "" = any
	Since    time.Time // only attempts started at or after; zero = all
	Before   uint64    // cursor: only records older than this log sequence (Page.Next); 0 = from the newest
	Limit    int       // page size, default DefaultLimit, at most MaxLimit
}

// Page is one page of attempts, newest first.
type Page struct {
	Items []Record
	Next  uint64 // the cursor of the next (older) page; 0 when there is none
}

// Validate checks the query; its errors name the field.
func (q Query) Validate() error {
	if q.Endpoint == "" {
		return errors.New("endpoint: required")
	}
	switch q.Outcome {
	case "", "success", "temporary", "permanent", "local", "failed":
	default:
		return fmt.Errorf("outcome %q: must be success, temporary, permanent, local or failed", q.Outcome)
	}
	if q.Limit < 0 || q.Limit > MaxLimit {
		return fmt.Errorf("limit %d: must be 1 to %d", q.Limit, MaxLimit)
	}
	return nil
}

func (q Query) matches(r Record) bool {
	switch {
	case q.Outcome == "failed" && !r.Failed(),
		q.Outcome != "" && q.Outcome != "failed" && r.Outcome != q.Outcome,
		q.Event != "" && r.Event != q.Event,
		!q.Since.IsZero() && r.Start.Before(q.Since):
		return false
	}
	return r.Endpoint == q.Endpoint
}

// List returns one page of an endpoint's attempts, newest first. It reads the
// log backwards in windows of growing size, so a page costs about its own
// records even in a long log.
func List(ctx context.Context, js jetstream.JetStream, names contract.Names, q Query) (Page, error) {
	if err := q.Validate(); err != nil {
		return Page{}, err
	}
	if q.Limit == 0 {
		q.Limit = DefaultLimit
	}
	stream, first, last, err := open(ctx, js, names)
	if err != nil || last == 0 {
		return Page{}, err
	}
	upper := last + 1
	if q.Before > 0 && q.Before < upper {
		upper = q.Before
	}
	window := uint64(max(8*q.Limit, 256))
	var out []Record
	for upper > first && len(out) <= q.Limit {
		lower := first
		if upper-first > window {
			lower = upper - window
		}
		chunk, err := readRange(ctx, stream, names.EndpointAttempts(q.Endpoint), lower, upper)
		if err != nil {
			return Page{}, err
		}
		older := false
		for i := len(chunk) - 1; i >= 0 && len(out) <= q.Limit; i-- {
			if !q.Since.IsZero() && chunk[i].Start.Before(q.Since) {
				older = true
			}
			if q.matches(chunk[i]) {
				out = append(out, chunk[i])
			}
		}
		if older {
			break // the log is in time order: nothing before this window is recent enough
		}
		upper, window = lower, window*4
	}
	p := Page{Items: out}
	if len(out) > q.Limit {
		p.Items = out[:q.Limit]
		p.Next = p.Items[q.Limit-1].Seq
	}
	return p, nil
}

// ForWebhookID returns every endpoint's attempts of one event, newest first, at
// most MaxLimit of them.
func ForWebhookID(ctx context.Context, js jetstream.JetStream, names contract.Names, webhookID string) ([]Record, error) {
	if webhookID == "" {
		return nil, errors.New("webhook_id: required")
	}
	stream, first, last, err := open(ctx, js, names)
	if err != nil || last == 0 {
		return nil, err
	}
	all, err := readRange(ctx, stream, names.EventAttempts(webhookID), first, last+1)
	if err != nil {
		return nil, err
	}
	var out []Record
	for i := len(all) - 1; i >= 0 && len(out) < MaxLimit; i-- {
		if all[i].WebhookID == webhookID {
			out = append(out, all[i])
		}
	}
	return out, nil
}

// open returns the attempt-log stream and its first and last sequences.
func open(ctx context.Context, js jetstream.JetStream, names contract.Names) (jetstream.Stream, uint64, uint64, error) {
	stream, err := js.Stream(ctx, names.Attempts)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, 0, 0, fmt.Errorf("%w: stream %s not found (is the sidecar running with DOJO_WEBHOOKS_ATTEMPTS on?)", ErrNoLog, names.Attempts)
	}
	if err != nil {
		return nil, 0, 0, fmt.Errorf("stream %s: %w", names.Attempts, err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("stream %s: %w", names.Attempts, err)
	}
	if info.State.Msgs == 0 {
		return stream, 0, 0, nil
	}
	return stream, info.State.FirstSeq, info.State.LastSeq, nil
}

// readRange reads the records on filter with sequences in [lower, upper), oldest first.
func readRange(ctx context.Context, stream jetstream.Stream, filter string, lower, upper uint64) ([]Record, error) {
	c, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{filter},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    lower,
	})
	if err != nil {
		return nil, fmt.Errorf("read attempt log: %w", err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("read attempt log: %w", err)
	}
	if info.NumPending == 0 {
		return nil, nil
	}
	var out []Record
	for {
		batch, err := c.FetchNoWait(fetchBatch)
		if err != nil {
			return out, fmt.Errorf("read attempt log: %w", err)
		}
		got, done := 0, false
		for msg := range batch.Messages() {
			got++
			md, err := msg.Metadata()
			if err != nil || done {
				continue
			}
			if md.Sequence.Stream >= upper {
				done = true
				continue
			}
			var rec Record
			if json.Unmarshal(msg.Data(), &rec) == nil {
				rec.Seq = md.Sequence.Stream
				out = append(out, rec)
			}
			done = md.NumPending == 0
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return out, fmt.Errorf("read attempt log: %w", err)
		}
		if done || got == 0 {
			return out, nil
		}
		if err := ctx.Err(); err != nil {
			return out, err
		}
	}
}
