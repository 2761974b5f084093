package consumer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream limits and defaults, documented in the README.
const (
	DefaultPrefix           = "defectdojo"
	DefaultEventsMaxAge     = 7 * 24 * time.Hour
	DefaultDeadLetterMaxAge = 30 * 24 * time.Hour
	DefaultDedupWindow      = 2 * time.Minute
	// MaxConsumersPerStream is set on the events stream: one consumer per endpoint,
	// well above nats-server's default cap of 1000.
	MaxConsumersPerStream = 100_000
)

// Names are the subjects and streams derived from a subject prefix.
type Names struct {
	Prefix     string // e.g. defectdojo
	Events     string // events stream, e.g. DEFECTDOJO_EVENTS
	DeadLetter string // dead-letter stream, e.g. DEFECTDOJO_DEADLETTER
}

// NamesFor derives the stream names from the subject prefix: upper case, dots
// and dashes as underscores, plus _EVENTS and _DEADLETTER.
func NamesFor(prefix string) Names {
	base := strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(prefix))
	return Names{Prefix: prefix, Events: base + "_EVENTS", DeadLetter: base + "_DEADLETTER"}
}

// EventSubject is where publishers send an event: <prefix>.events.<event>.
func (n Names) EventSubject(event string) string { return n.Prefix + ".events." + event }

// ReplaySubject is where replays for one endpoint go: <prefix>.replay.<endpoint>.<event>.
// Only that endpoint's consumer listens there.
func (n Names) ReplaySubject(endpoint, event string) string {
	return n.Prefix + ".replay." + endpoint + "." + event
}

// DeadLetterSubject holds one endpoint's dead letters: <prefix>.deadletter.<endpoint>.
func (n Names) DeadLetterSubject(endpoint string) string { return n.Prefix + ".deadletter." + endpoint }

// ConsumerName is the durable consumer of one endpoint on the events stream.
func ConsumerName(endpoint string) string { return "endpoint_" + endpoint }

// EventName returns the event of a message subject on the events stream, and
// whether the subject is a replay for the given endpoint.
func (n Names) EventName(subject string) (event string, replay bool, ok bool) {
	if rest, found := strings.CutPrefix(subject, n.Prefix+".events."); found && rest != "" {
		return rest, false, true
	}
	if rest, found := strings.CutPrefix(subject, n.Prefix+".replay."); found {
		if _, ev, found := strings.Cut(rest, "."); found && ev != "" {
			return ev, true, true
		}
	}
	return "", false, false
}

// StreamsConfig sizes the two streams.
type StreamsConfig struct {
	Names            Names
	Replicas         int           // default 1
	EventsMaxAge     time.Duration // how long events are kept for endpoints that are down; default 7 days
	EventsMaxBytes   int64         // size bound of the events stream; 0 or -1 = none
	DeadLetterMaxAge time.Duration // default 30 days
	DedupWindow      time.Duration // Nats-Msg-Id duplicate window; default 2 minutes
}

func (c StreamsConfig) withDefaults() StreamsConfig {
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.EventsMaxAge == 0 {
		c.EventsMaxAge = DefaultEventsMaxAge
	}
	if c.EventsMaxBytes == 0 {
		c.EventsMaxBytes = -1
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
		Subjects:     []string{c.Names.Prefix + ".events.>", c.Names.Prefix + ".replay.>"},
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
		Subjects:    []string{c.Names.Prefix + ".deadletter.>"},
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
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("ensure stream %s: %w", sc.Name, err)
		}
	}
	return nil
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
