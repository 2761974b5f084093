package attempts

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/contract"
)

// Query limits, documented in the README.
const (
	// DefaultLimit is the page size when none is asked for.
	DefaultLimit = 50
	// MaxLimit is the largest page, and the most attempts ForWebhookID returns.
	MaxLimit = 500
	// fetchBatch is how many messages one read of the log asks for.
	fetchBatch = 256
	// firstWindow is how many messages the first backward read of a page covers;
	// each further read covers four times more.
	firstWindow = 64
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
	Cursor   string    // only attempts older than this (Page.Next); "" = from the newest
	Limit    int       // page size, default DefaultLimit, at most MaxLimit
}

// Page is one page of attempts, newest first.
type Page struct {
	Items []Record
	Next  string // the cursor of the next (older) page; "" when there is none
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
	if q.Cursor != "" {
		if _, _, err := parseCursor(q.Cursor); err != nil {
			return err
		}
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
	upper, beforeIndex := last+1, -1 // read messages below upper; in message upper-1 only lines below beforeIndex (-1 = all)
	if q.Cursor != "" {
		seq, idx, _ := parseCursor(q.Cursor)
		if seq <= last {
			upper, beforeIndex = seq+1, idx
		}
	}
	window := uint64(firstWindow)
	var out []Record
	for upper > first && len(out) <= q.Limit {
		lower := first
		if upper-first > window {
			lower = upper - window
		}
		chunk, err := readRange(ctx, stream, names.AttemptSubject(q.Endpoint), lower, upper)
		if err != nil {
			return Page{}, err
		}
		older := false
		for i := len(chunk) - 1; i >= 0 && len(out) <= q.Limit; i-- {
			r := chunk[i]
			if beforeIndex >= 0 && r.Seq == upper-1 && r.Index >= beforeIndex {
				continue
			}
			if !q.Since.IsZero() && r.Start.Before(q.Since) {
				older = true
			}
			if q.matches(r) {
				out = append(out, r)
			}
		}
		if older {
			break // the log is in time order: nothing before this window is recent enough
		}
		upper, window, beforeIndex = lower, window*4, -1
	}
	p := Page{Items: out}
	if len(out) > q.Limit {
		p.Items = out[:q.Limit]
		p.Next = p.Items[q.Limit-1].Cursor()
	}
	return p, nil
}

// ForWebhookID returns every endpoint's attempts of one event, newest first, at
// most MaxLimit of them. It reads the log from the event's publish time when
// the id is the events stream's own (<stream>-<sequence>) and the event is
// still stored, from its start otherwise: a lookup costs the log since then.
func ForWebhookID(ctx context.Context, js jetstream.JetStream, names contract.Names, webhookID string) ([]Record, error) {
	if webhookID == "" {
		return nil, errors.New("webhook_id: required")
	}
	stream, first, last, err := open(ctx, js, names)
	if err != nil || last == 0 {
		return nil, err
	}
	start := first
	if t, ok := eventTime(ctx, js, names, webhookID); ok {
		if c, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
			DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &t, FilterSubjects: []string{names.AllAttempts()},
		}); err == nil {
			if info, err := c.Info(ctx); err == nil && info.NumPending == 0 {
				return nil, nil
			} else if err == nil {
				start = max(first, last+1-info.NumPending)
			}
		}
	}
	all, err := readRange(ctx, stream, names.AllAttempts(), start, last+1)
	if err != nil {
		return nil, err
	}
	var out []Record
	for _, r := range all {
		if r.WebhookID == webhookID {
			out = append(out, r)
		}
	}
	// Newest first by start: a batch holds one endpoint's records, so the log's
	// order across endpoints is the order of the writes, not of the attempts.
	slices.SortStableFunc(out, func(a, b Record) int { return b.Start.Compare(a.Start) })
	if len(out) > MaxLimit {
		out = out[:MaxLimit]
	}
	return out, nil
}

// eventTime is the publish time of the event whose derived webhook-id is id,
// less a second for clock steps, when the events stream still holds it.
func eventTime(ctx context.Context, js jetstream.JetStream, names contract.Names, id string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(id, names.Events+"-")
	if !ok {
		return time.Time{}, false
	}
	seq, err := strconv.ParseUint(rest, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	s, err := js.Stream(ctx, names.Events)
	if err != nil {
		return time.Time{}, false
	}
	m, err := s.GetMsg(ctx, seq)
	if err != nil {
		return time.Time{}, false
	}
	return m.Time.Add(-time.Second), true
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

// readRange reads the records of the messages on filter with sequences in
// [lower, upper), oldest first; lines that do not parse (a hand-published
// message) are skipped.
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
			out = appendRecords(out, msg.Data(), md.Sequence.Stream)
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

// appendRecords decodes a message's lines.
func appendRecords(out []Record, data []byte, seq uint64) []Record {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64<<10), maxMessageBytes+maxRecordBytes)
	for i := 0; sc.Scan(); i++ {
		var rec Record
		if json.Unmarshal(sc.Bytes(), &rec) == nil {
			rec.Seq, rec.Index = seq, i
			out = append(out, rec)
		}
	}
	return out
}
