package attempts

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/dojo-webhooks/dojo-webhooks/contract"
)

// Recorder limits, documented in the README.
const (
	// QueueSize is how many attempts may wait to be written; past it new ones are
	// dropped (counted and logged), never waited for.
	QueueSize = 8192
	// batchSize is how many records are published before their acks are awaited.
	batchSize = 256
	// writeTimeout bounds the wait for one batch's acks.
	writeTimeout = 5 * time.Second
)

// RecorderOptions configure a Recorder; zero values take the defaults.
type RecorderOptions struct {
	Names  contract.Names
	Mode   Mode           // default DefaultMode
	Logger zerolog.Logger // failures to record
	// Lost is called with the number of records that were not stored (queue
	// full, or the publish failed); optional (metrics).
	Lost func(n int)
}

// Recorder writes attempt records to the attempt-log stream off the caller's
// path: Record queues and returns at once; Run, owned by the caller, publishes
// the queue in batches. A failure to record is counted and logged and never
// blocks or fails a delivery.
type Recorder struct {
	js    jetstream.JetStream
	opts  RecorderOptions
	queue chan Record
}

// NewRecorder returns a recorder publishing through js; Run must be running for
// records to be written.
func NewRecorder(js jetstream.JetStream, opts RecorderOptions) *Recorder {
	if opts.Mode == "" {
		opts.Mode = DefaultMode
	}
	if opts.Lost == nil {
		opts.Lost = func(int) {}
	}
	return &Recorder{js: js, opts: opts, queue: make(chan Record, QueueSize)}
}

// Enabled reports whether an attempt with that result would be recorded.
func (r *Recorder) Enabled(failed bool) bool { return r != nil && r.opts.Mode.records(failed) }

// Record queues one attempt; it never blocks. A nil Recorder records nothing.
func (r *Recorder) Record(rec Record) {
	if !r.Enabled(rec.Failed()) {
		return
	}
	select {
	case r.queue <- rec:
	default:
		r.opts.Lost(1)
		r.opts.Logger.Warn().Str("endpoint", rec.Endpoint).Str("event", rec.Event).
			Msg("attempt log queue full; attempt not recorded")
	}
}

// Run publishes queued records until ctx is done, then writes what is still
// queued (within writeTimeout) and returns.
func (r *Recorder) Run(ctx context.Context) error {
	batch := make([]Record, 0, batchSize)
	for {
		select {
		case <-ctx.Done():
			r.flushQueue(batch)
			return nil
		case rec := <-r.queue:
			batch = append(batch[:0], rec)
		fill:
			for len(batch) < batchSize {
				select {
				case rec := <-r.queue:
					batch = append(batch, rec)
				default:
					break fill
				}
			}
			r.write(context.Background(), batch)
		}
	}
}

// flushQueue writes batch and everything still queued at shutdown.
func (r *Recorder) flushQueue(batch []Record) {
	batch = batch[:0]
	for {
		select {
		case rec := <-r.queue:
			batch = append(batch, rec)
			if len(batch) < batchSize {
				continue
			}
		default:
		}
		if len(batch) == 0 {
			return
		}
		r.write(context.Background(), batch)
		batch = batch[:0]
	}
}

// write publishes one batch asynchronously and waits for its acks.
func (r *Recorder) write(ctx context.Context, batch []Record) {
	ctx, cancel := context.WithTimeout(ctx, writeTimeout)
	defer cancel()
	futures := make([]jetstream.PubAckFuture, 0, len(batch))
	lost := 0
	var firstErr error
	for _, rec := range batch {
		msg, err := r.msg(rec)
		if err == nil {
			var f jetstream.PubAckFuture
			if f, err = r.js.PublishMsgAsync(msg); err == nil {
				futures = append(futures, f)
				continue
			}
		}
		lost++
		firstErr = cmpErr(firstErr, err)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			lost++
			firstErr = cmpErr(firstErr, err)
		case <-ctx.Done():
			lost++
			firstErr = cmpErr(firstErr, ctx.Err())
		}
	}
	if lost > 0 {
		r.opts.Lost(lost)
		r.opts.Logger.Error().Err(firstErr).Int("count", lost).Msg("attempts not recorded in the attempt log")
	}
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

func (r *Recorder) msg(rec Record) (*nats.Msg, error) {
	rec.Seq = 0
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("encode attempt: %w", err)
	}
	if len(data) > maxRecordBytes {
		return nil, errors.New("attempt record too large")
	}
	return &nats.Msg{Subject: r.opts.Names.AttemptSubject(rec.Endpoint, rec.WebhookID), Data: data}, nil
}

// Write stores one record synchronously (a one-shot command's ping); the
// recording mode applies as for Record.
func Write(ctx context.Context, js jetstream.JetStream, names contract.Names, mode Mode, rec Record) error {
	if !mode.records(rec.Failed()) {
		return nil
	}
	r := &Recorder{opts: RecorderOptions{Names: names}}
	msg, err := r.msg(rec)
	if err != nil {
		return err
	}
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("record attempt: %w", err)
	}
	return nil
}
