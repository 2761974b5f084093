package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// readWait bounds the wait for the next stored message while reading a stream to its end.
const readWait = 5 * time.Second

// ReplayDeadLetters sends an endpoint its dead letters again, in the order they
// failed: each is published to the endpoint's replay subject (only its consumer
// listens there) with its original webhook-id, then removed from the dead-letter
// stream. It returns how many were replayed.
func ReplayDeadLetters(ctx context.Context, js jetstream.JetStream, names contract.Names, endpoint string) (int, error) {
	var last uint64
	n, err := readAll(ctx, js, names.DeadLetter, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{names.DeadLetterSubject(endpoint)},
	}, func(msg jetstream.Msg, md *jetstream.MsgMetadata) error {
		event := msg.Headers().Get(contract.HeaderDLEvent)
		if event == "" {
			return fmt.Errorf("dead letter %d has no %s header", md.Sequence.Stream, contract.HeaderDLEvent)
		}
		h := nats.Header{}
		for k, v := range msg.Headers() {
			if !contract.IsDeadLetterHeader(k) {
				h[k] = v
			}
		}
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: names.ReplaySubject(endpoint, event), Header: h, Data: msg.Data()}); err != nil {
			return fmt.Errorf("replay dead letter %d: %w", md.Sequence.Stream, err)
		}
		last = md.Sequence.Stream
		return nil
	})
	if last > 0 {
		stream, serr := js.Stream(ctx, names.DeadLetter)
		if serr == nil {
			serr = stream.Purge(ctx, jetstream.WithPurgeSubject(names.DeadLetterSubject(endpoint)), jetstream.WithPurgeSequence(last+1))
		}
		if serr != nil && err == nil {
			err = fmt.Errorf("replayed %d dead letters but could not remove them (a second replay would send them again): %w", n, serr)
		}
	}
	return n, err
}

// ReplaySince sends an endpoint every event the events stream still holds from
// since on that the endpoint's filter and owner select, and those addressed to
// it (POST /ingest/<id>), with their original webhook-ids, through its replay
// subject. It returns how many were replayed.
func ReplaySince(ctx context.Context, js jetstream.JetStream, names contract.Names, rec statekv.Record, since time.Time) (int, error) {
	replayed := 0
	_, err := readAll(ctx, js, names.Events, jetstream.OrderedConsumerConfig{
		FilterSubjects: append(names.EventFilters(rec.Events), names.EndpointDirect(rec.ID)),
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &since,
	}, func(msg jetstream.Msg, md *jetstream.MsgMetadata) error {
		event, addressed, ok := names.EventName(msg.Subject())
		if !ok || !ForEndpoint(rec, event, addressed, msg.Headers()) {
			return nil
		}
		h := nats.Header{}
		for k, v := range msg.Headers() {
			if k != nats.MsgIdHdr {
				h[k] = v
			}
		}
		h.Set(contract.HeaderWebhookID, contract.WebhookID(names.Events, msg.Headers(), md.Sequence.Stream, false))
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: names.ReplaySubject(rec.ID, event), Header: h, Data: msg.Data()}); err != nil {
			return fmt.Errorf("replay event %d: %w", md.Sequence.Stream, err)
		}
		replayed++
		return nil
	})
	return replayed, err
}

// readAll reads a stream through an ordered consumer up to the last message
// stored when it started, calling f on each; it returns how many it read.
func readAll(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.OrderedConsumerConfig,
	f func(jetstream.Msg, *jetstream.MsgMetadata) error) (int, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", stream, err)
	}
	end := info.State.LastSeq
	if info.State.Msgs == 0 {
		return 0, nil
	}
	c, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return 0, fmt.Errorf("read stream %s: %w", stream, err)
	}
	ci, err := c.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("read stream %s: %w", stream, err)
	}
	if ci.NumPending == 0 {
		return 0, nil
	}
	n := 0
	for {
		msg, err := c.Next(jetstream.FetchMaxWait(readWait))
		if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
			return n, nil // nothing more stored
		}
		if err != nil {
			return n, fmt.Errorf("read stream %s: %w", stream, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return n, fmt.Errorf("read stream %s: %w", stream, err)
		}
		if md.Sequence.Stream > end {
			return n, nil
		}
		if err := f(msg, md); err != nil {
			return n, err
		}
		n++
		if md.NumPending == 0 || md.Sequence.Stream == end {
			return n, nil
		}
	}
}

// ParseSince reads the start of a replay or a look-back, as `replay --since`,
// `attempts --since` and the API take it: an RFC 3339 time, at most
// statekv.MaxClockSkew ahead of now (a time in the future would replay
// nothing now and everything later), or a duration before now (e.g. 2h).
func ParseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		if t.After(now.Add(statekv.MaxClockSkew)) {
			return time.Time{}, fmt.Errorf("%s is in the future", t.UTC().Format(time.RFC3339))
		}
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a positive duration", s)
	}
	return now.Add(-d), nil
}
