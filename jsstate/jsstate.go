// Package jsstate reads what the NATS server knows of the pipeline: the size of
// the streams and, per endpoint, its consumer's backlog and pause and its dead
// letters. The CLI's status, the metrics and the management API read it here.
package jsstate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/contract"
)

// EndpointState is what the server knows of one endpoint's consumer and dead letters.
type EndpointState struct {
	Backlog     uint64    // events not yet delivered, plus in flight
	InFlight    int       // delivered, not yet acknowledged
	Paused      bool      // paused on the server
	PausedUntil time.Time // when the pause ends by itself (zero when not paused)
	DeadLetters uint64    // dead letters held for the endpoint
	HasConsumer bool      // false until the sidecar created its consumer
	// Dropped estimates the endpoint's events that the events stream's limits
	// discarded before the endpoint acknowledged them (see Loss); 0 once the
	// endpoint's acknowledgements pass the stream's first sequence again.
	Dropped uint64
	Loss    Loss // where the stream's first sequence stands against the endpoint's ack floor
}

// Loss is where the events stream's limits (max age, max bytes) stand against
// one endpoint's consumer: the stream no longer holds anything before FirstSeq,
// and the endpoint acknowledged everything up to AckFloor. The sequences
// between are gone without having been delivered.
type Loss struct {
	AckFloor uint64  // the consumer's ack floor (stream sequence)
	FirstSeq uint64  // the stream's first stored sequence
	Share    float64 // the endpoint's share of the events stored past its ack floor, 0 to 1
}

// LossOf is the Loss of consumer ci on a stream whose state is st: the share is
// the consumer's backlog over the messages stored (1 when the stream is empty),
// so that a filtered endpoint is charged only about its own part of the gap.
func LossOf(st jetstream.StreamState, ci *jetstream.ConsumerInfo) Loss {
	l := Loss{AckFloor: ci.AckFloor.Stream, FirstSeq: st.FirstSeq, Share: 1}
	if st.Msgs > 0 {
		l.Share = min(float64(ci.NumPending+uint64(ci.NumAckPending))/float64(st.Msgs), 1)
	}
	return l
}

// Since estimates how many of the endpoint's events were discarded after
// stream sequence after (0 = ever): the sequences discarded past both the ack
// floor and after, times the endpoint's share. It is exact for an endpoint that
// takes every event and no other endpoint has replays stored; for a filtered
// endpoint it assumes its events are spread through the stream as they are
// through what is still stored.
func (l Loss) Since(after uint64) uint64 {
	from := max(l.AckFloor, after)
	if l.FirstSeq == 0 || l.FirstSeq-1 <= from {
		return 0
	}
	gap := l.FirstSeq - 1 - from
	return uint64(float64(gap)*l.Share + 0.5)
}

// StreamState is the size of one stream.
type StreamState struct {
	Name      string
	Messages  uint64
	Bytes     uint64
	Consumers int
}

// Snapshot is the server-side state of the pipeline, read in a few API calls.
type Snapshot struct {
	Streams   []StreamState
	Endpoints map[string]EndpointState
}

// ReadSnapshot lists the streams, every endpoint consumer and the dead letters
// per endpoint (one paged consumer listing and one subject count, whatever the
// number of endpoints).
func ReadSnapshot(ctx context.Context, js jetstream.JetStream, names contract.Names) (Snapshot, error) {
	snap := Snapshot{Endpoints: map[string]EndpointState{}}
	events, err := js.Stream(ctx, names.Events)
	if err != nil {
		return snap, fmt.Errorf("stream %s: %w", names.Events, err)
	}
	info := events.CachedInfo()
	snap.Streams = append(snap.Streams, StreamState{Name: info.Config.Name, Messages: info.State.Msgs, Bytes: info.State.Bytes, Consumers: info.State.Consumers})
	lister := events.ListConsumers(ctx)
	for ci := range lister.Info() {
		id, ok := contract.ConsumerEndpoint(ci.Name)
		if !ok {
			continue
		}
		st := EndpointState{HasConsumer: true, Backlog: ci.NumPending + uint64(ci.NumAckPending), InFlight: ci.NumAckPending, Paused: ci.Paused,
			Loss: LossOf(info.State, ci)}
		st.Dropped = st.Loss.Since(0)
		if ci.Paused && ci.Config.PauseUntil != nil {
			st.PausedUntil = ci.Config.PauseUntil.UTC()
		}
		snap.Endpoints[id] = st
	}
	if err := lister.Err(); err != nil {
		return snap, fmt.Errorf("list consumers of %s: %w", names.Events, err)
	}
	dl, err := js.Stream(ctx, names.DeadLetter)
	if err != nil {
		return snap, fmt.Errorf("stream %s: %w", names.DeadLetter, err)
	}
	dinfo, err := dl.Info(ctx, jetstream.WithSubjectFilter(names.AllDeadLetters()))
	if err != nil {
		return snap, fmt.Errorf("stream %s: %w", names.DeadLetter, err)
	}
	snap.Streams = append(snap.Streams, StreamState{Name: dinfo.Config.Name, Messages: dinfo.State.Msgs, Bytes: dinfo.State.Bytes, Consumers: dinfo.State.Consumers})
	for subj, n := range dinfo.State.Subjects {
		id, ok := names.DeadLetterEndpoint(subj)
		if !ok {
			continue
		}
		st := snap.Endpoints[id]
		st.DeadLetters = n
		snap.Endpoints[id] = st
	}
	// The attempt log exists only while it is on.
	if al, err := js.Stream(ctx, names.Attempts); err == nil {
		ai := al.CachedInfo()
		snap.Streams = append(snap.Streams, StreamState{Name: ai.Config.Name, Messages: ai.State.Msgs, Bytes: ai.State.Bytes, Consumers: ai.State.Consumers})
	} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return snap, fmt.Errorf("stream %s: %w", names.Attempts, err)
	}
	return snap, nil
}

// Backlog is how many events wait for one endpoint: not yet delivered plus in flight.
func Backlog(ctx context.Context, js jetstream.JetStream, names contract.Names, endpoint string) (uint64, error) {
	c, err := js.Consumer(ctx, names.Events, contract.ConsumerName(endpoint))
	if err != nil {
		return 0, fmt.Errorf("consumer of endpoint %s: %w", endpoint, err)
	}
	info := c.CachedInfo()
	return info.NumPending + uint64(info.NumAckPending), nil
}
