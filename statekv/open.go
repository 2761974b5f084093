package statekv

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultReplicas is the bucket's replica count when none is configured (one server).
const DefaultReplicas = 1

// withDefaults fills the zero fields of c with the defaults: the one place they are applied.
func (c BucketConfig) withDefaults() BucketConfig {
	if c.Name == "" {
		c.Name = DefaultBucket
	}
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.History == 0 {
		c.History = DefaultHistory
	}
	return c
}

// OpenBucket returns the bucket if it exists, and creates it with cfg if not; unlike
// EnsureBucket it never changes an existing bucket's configuration (for one-shot
// commands, which must not override what the sidecar set up).
func OpenBucket(ctx context.Context, js jetstream.JetStream, cfg BucketConfig) (jetstream.KeyValue, error) {
	cfg = cfg.withDefaults()
	kv, err := js.KeyValue(ctx, cfg.Name)
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("open KV bucket %q: %w", cfg.Name, err)
	}
	return EnsureBucket(ctx, js, cfg)
}
