package statekv

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// OpenBucket returns the bucket if it exists, and creates it with cfg if not; unlike
// EnsureBucket it never changes an existing bucket's configuration (for one-shot
// commands, which must not override what the sidecar set up).
func OpenBucket(ctx context.Context, js jetstream.JetStream, cfg BucketConfig) (jetstream.KeyValue, error) {
	name := cfg.Name
	if name == "" {
		name = DefaultBucket
	}
	kv, err := js.KeyValue(ctx, name)
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("open KV bucket %q: %w", name, err)
	}
	return EnsureBucket(ctx, js, cfg)
}
