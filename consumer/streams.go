package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// Stream limits and defaults, documented in the README.
const (
	DefaultEventsMaxAge     = 7 * 24 * time.Hour
	DefaultDeadLetterMaxAge = 30 * 24 * time.Hour
	DefaultDedupWindow      = 2 * time.Minute
	// DefaultEventsMaxBytes is no size bound on the events stream.
	DefaultEventsMaxBytes = -1
	// DefaultReplicas is the replica count of the streams and consumers: the bucket's.
	DefaultReplicas = statekv.DefaultReplicas
	// MaxConsumersPerStream is set on the events stream: one consumer per endpoint,
	// well above nats-server's default cap of 1000.
	MaxConsumersPerStream = 100_000
)

// StreamsConfig sizes the two streams.
type StreamsConfig struct {
	Names            contract.Names // default the names of contract.DefaultPrefix
	Replicas         int            // default DefaultReplicas
	EventsMaxAge     time.Duration  // how long events are kept for endpoints that are down; default DefaultEventsMaxAge
	EventsMaxBytes   int64          // size bound of the events stream; 0 = DefaultEventsMaxBytes, -1 = none
	DeadLetterMaxAge time.Duration  // default DefaultDeadLetterMaxAge
	DedupWindow      time.Duration  // Nats-Msg-Id duplicate window; default DefaultDedupWindow
	Logger           zerolog.Logger // where EnsureStreams says that new limits discard stored events; zero = nowhere
}

// withDefaults fills the zero fields of c with the defaults: the one place they are applied.
func (c StreamsConfig) withDefaults() StreamsConfig {
	if c.Names.Prefix == "" {
		c.Names = contract.NamesFor(contract.DefaultPrefix)
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.EventsMaxAge == 0 {
		c.EventsMaxAge = DefaultEventsMaxAge
	}
	if c.EventsMaxBytes == 0 {
		c.EventsMaxBytes = DefaultEventsMaxBytes
	}
	if c.DeadLetterMaxAge == 0 {
		c.DeadLetterMaxAge = DefaultDeadLetterMaxAge
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = DefaultDedupWindow
	}
	return c
}

func (c StreamsConfig) events() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:         c.Names.Events,
		Description:  "dojo-webhooks: DefectDojo notification events, one durable consumer per endpoint",
		Subjects:     c.Names.EventsStreamSubjects(),
		Retention:    jetstream.LimitsPolicy,
		MaxAge:       c.EventsMaxAge,
		MaxBytes:     c.EventsMaxBytes,
		MaxMsgs:      -1,
		Discard:      jetstream.DiscardOld,
		Storage:      jetstream.FileStorage,
		Replicas:     c.Replicas,
		Duplicates:   c.DedupWindow,
		MaxConsumers: MaxConsumersPerStream,
	}
}

func (c StreamsConfig) deadLetter() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        c.Names.DeadLetter,
		Description: "dojo-webhooks: events an endpoint failed permanently, with the reason in headers",
		Subjects:    []string{c.Names.AllDeadLetters()},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      c.DeadLetterMaxAge,
		MaxMsgs:     -1,
		MaxBytes:    -1,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
		Duplicates:  c.DedupWindow,
	}
}

// EnsureStreams creates both streams or updates their configuration to cfg
// (the sidecar at start-up: idempotent).
func EnsureStreams(ctx context.Context, js jetstream.JetStream, cfg StreamsConfig) error {
	cfg = cfg.withDefaults()
	for _, sc := range []jetstream.StreamConfig{cfg.events(), cfg.deadLetter()} {
		var before *jetstream.StreamInfo
		if s, err := js.Stream(ctx, sc.Name); err == nil {
			before = s.CachedInfo()
			warnDiscard(cfg.Logger, before, sc, time.Now())
		}
		s, err := js.CreateOrUpdateStream(ctx, sc)
		if err != nil {
			return fmt.Errorf("ensure stream %s: %w", sc.Name, err)
		}
		if after := s.CachedInfo(); before != nil && after.State.Msgs < before.State.Msgs && after.State.LastSeq >= before.State.LastSeq {
			cfg.Logger.Warn().Str("stream", sc.Name).Uint64("discarded", before.State.Msgs-after.State.Msgs).
				Uint64("messages", after.State.Msgs).Uint64("bytes", after.State.Bytes).
				Msg("the stream's new limits discarded stored events")
		}
	}
	return nil
}

// warnDiscard logs, before a stream is updated to sc, that its new limits
// (max bytes, max age) are smaller than what it stores: the oldest events go,
// also those that endpoints have not received yet.
func warnDiscard(log zerolog.Logger, info *jetstream.StreamInfo, sc jetstream.StreamConfig, now time.Time) {
	st := info.State
	bytes := sc.MaxBytes > 0 && st.Bytes > uint64(sc.MaxBytes)
	age := sc.MaxAge > 0 && st.Msgs > 0 && st.FirstTime.Before(now.Add(-sc.MaxAge))
	if !bytes && !age {
		return
	}
	ev := log.Warn().Str("stream", sc.Name).Uint64("messages", st.Msgs).Uint64("bytes", st.Bytes).Time("oldest", st.FirstTime).
		Int64("new_max_bytes", sc.MaxBytes).Dur("new_max_age", sc.MaxAge)
	if bytes {
		ev = ev.Uint64("over_bytes", st.Bytes-uint64(sc.MaxBytes))
	}
	ev.Msg("the configured limits are smaller than what the stream holds: its oldest stored events will be discarded, also those endpoints have not received")
}

// OpenStreams creates the streams that are missing and leaves existing ones as
// they are (one-shot commands must not override the sidecar's configuration).
func OpenStreams(ctx context.Context, js jetstream.JetStream, cfg StreamsConfig) error {
	cfg = cfg.withDefaults()
	for _, sc := range []jetstream.StreamConfig{cfg.events(), cfg.deadLetter()} {
		_, err := js.Stream(ctx, sc.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			_, err = js.CreateStream(ctx, sc)
		}
		if err != nil {
			return fmt.Errorf("open stream %s: %w", sc.Name, err)
		}
	}
	return nil
}
