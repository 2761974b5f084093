package attempts

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/contract"
)

// Defaults of the attempt log, documented in the README.
const (
	// DefaultMaxAge is how long attempts are kept.
	DefaultMaxAge = 7 * 24 * time.Hour
	// DefaultMaxBytes bounds the log on disk (oldest dropped first), so that it
	// never takes the space the events stream needs.
	DefaultMaxBytes int64 = 256 << 20
	// DefaultBodyBytes is how much of a response body an attempt keeps.
	DefaultBodyBytes = 1024
	// MaxBodyBytes is the most of a response body an attempt may keep.
	MaxBodyBytes = 64 << 10
	// maxRecordBytes bounds one stored record (the body snippet plus headers and note).
	maxRecordBytes = MaxBodyBytes + 16<<10
)

// StreamConfig sizes the attempt-log stream.
type StreamConfig struct {
	Names    contract.Names
	Replicas int           // default 1
	MaxAge   time.Duration // default DefaultMaxAge
	MaxBytes int64         // default DefaultMaxBytes; -1 = none
}

func (c StreamConfig) withDefaults() StreamConfig {
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.MaxAge == 0 {
		c.MaxAge = DefaultMaxAge
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	return c
}

func (c StreamConfig) stream() jetstream.StreamConfig {
	c = c.withDefaults()
	return jetstream.StreamConfig{
		Name:        c.Names.Attempts,
		Description: "dojo-webhooks: one record per HTTP attempt to an endpoint (deliveries, replays, pings)",
		Subjects:    []string{c.Names.AllAttempts()},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      c.MaxAge,
		MaxBytes:    c.MaxBytes,
		MaxMsgs:     -1,
		MaxMsgSize:  maxMessageBytes + maxRecordBytes,
		Discard:     jetstream.DiscardOld,
		Storage:     jetstream.FileStorage,
		Replicas:    c.Replicas,
	}
}

// EnsureStream creates the attempt-log stream or updates it to cfg (the sidecar at start-up).
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) error {
	sc := cfg.stream()
	if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
		return fmt.Errorf("ensure stream %s: %w", sc.Name, err)
	}
	return nil
}
