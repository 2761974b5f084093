package attempts

import (
	"bytes"
	"context"
	"encoding/json"
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
	// FlushEvery is the longest an attempt waits in the queue before it is
	// written: attempts that arrive meanwhile share its messages.
	FlushEvery = 50 * time.Millisecond
	// batchSize is how many queued attempts make a write start at once.
	batchSize = 1024
	// maxPerMessage and maxMessageBytes bound one stored message of records.
	maxPerMessage   = 128
	maxMessageBytes = 256 << 10
	// writeTimeout bounds the wait for one write's acks: long enough for a
	// server busy creating thousands of consumers at start-up (5 s was not).
	writeTimeout = 30 * time.Second
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
// path: Record queues and returns at once; Run, owned by the caller, writes the
// queue every FlushEvery, the records of one endpoint batched into few
// messages (one JSON record a line). A failure to record is counted and logged
// and never blocks or fails a delivery.
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

// Run writes queued records until ctx is done, then writes what is still
// queued (within writeTimeout) and returns.
func (r *Recorder) Run(ctx context.Context) error {
	var pending []Record
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case rec := <-r.queue:
					pending = append(pending, rec)
					continue
				default:
				}
				break
			}
			r.write(pending)
			return nil
		case rec := <-r.queue:
			if len(pending) == 0 {
				timer.Reset(FlushEvery)
			}
			pending = append(pending, rec)
			if len(pending) < batchSize {
				continue
			}
			timer.Stop()
		case <-timer.C:
		}
		r.write(pending)
		pending = pending[:0]
	}
}

// write stores records, each endpoint's in as few messages as the bounds
// allow, publishing asynchronously and then waiting for the acks.
func (r *Recorder) write(records []Record) {
	if len(records) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	type pub struct {
		f jetstream.PubAckFuture
		n int
	}
	var pubs []pub
	lost := 0
	var firstErr error
	note := func(n int, err error) {
		lost += n
		if firstErr == nil {
			firstErr = err
		}
	}
	for _, msg := range r.messages(records, note) {
		f, err := r.js.PublishMsgAsync(msg.msg)
		if err != nil {
			note(msg.n, err)
			continue
		}
		pubs = append(pubs, pub{f, msg.n})
	}
	for _, p := range pubs {
		select {
		case <-p.f.Ok():
		case err := <-p.f.Err():
			note(p.n, err)
		case <-ctx.Done():
			note(p.n, ctx.Err())
		}
	}
	if lost > 0 {
		r.opts.Lost(lost)
		r.opts.Logger.Error().Err(firstErr).Int("count", lost).Msg("attempts not recorded in the attempt log")
	}
}

// message is one stored message and how many records it holds.
type message struct {
	msg *nats.Msg
	n   int
}

// messages groups records by endpoint, in order, into messages of at most
// maxPerMessage records and maxMessageBytes; a record that cannot be encoded is lost.
func (r *Recorder) messages(records []Record, lost func(int, error)) []message {
	var order []string
	byEndpoint := map[string][]Record{}
	for _, rec := range records {
		if _, ok := byEndpoint[rec.Endpoint]; !ok {
			order = append(order, rec.Endpoint)
		}
		byEndpoint[rec.Endpoint] = append(byEndpoint[rec.Endpoint], rec)
	}
	var out []message
	for _, ep := range order {
		var buf bytes.Buffer
		n := 0
		flush := func() {
			if n > 0 {
				out = append(out, message{&nats.Msg{Subject: r.opts.Names.AttemptSubject(ep), Data: bytes.Clone(buf.Bytes())}, n})
			}
			buf.Reset()
			n = 0
		}
		for _, rec := range byEndpoint[ep] {
			line, err := encode(rec)
			if err != nil {
				lost(1, err)
				continue
			}
			if n == maxPerMessage || buf.Len()+len(line) > maxMessageBytes {
				flush()
			}
			buf.Write(line)
			n++
		}
		flush()
	}
	return out
}

// encode is one record's line: JSON and a newline.
func encode(rec Record) ([]byte, error) {
	rec.Seq, rec.Index = 0, 0
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("encode attempt: %w", err)
	}
	if len(data) > maxRecordBytes {
		return nil, fmt.Errorf("attempt record of %d bytes, more than %d", len(data), maxRecordBytes)
	}
	return append(data, '\n'), nil
}

// Write stores one record synchronously (a one-shot command's ping); the
// recording mode applies as for Record.
func Write(ctx context.Context, js jetstream.JetStream, names contract.Names, mode Mode, rec Record) error {
	if !mode.records(rec.Failed()) {
		return nil
	}
	line, err := encode(rec)
	if err != nil {
		return err
	}
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: names.AttemptSubject(rec.Endpoint), Data: line}); err != nil {
		return fmt.Errorf("record attempt: %w", err)
	}
	return nil
}
