package consumer

import (
	"context"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/dojo-webhooks/dojo-webhooks/internal/logtest"
	"github.com/dojo-webhooks/dojo-webhooks/internal/natstest"
)

// An ordered consumer the server kept without its pinned_client priority group
// (nats-server before 2.11 ignores the field) gets one warning, however many
// endpoints have one; a pinned consumer gets none.
func TestUnpinnedOrderedConsumerWarnsOnce(t *testing.T) {
	_, _, js := natstest.JetStream(t)
	ctx := context.Background()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "PINNED", Subjects: []string{"pinned.>"}})
	if err != nil {
		t.Fatal(err)
	}
	var logs logtest.Buffer
	m := &Manager{cfg: Config{MaxInFlight: 1}, log: zerolog.New(&logs)}
	warnings := func() int {
		n := 0
		for _, e := range logs.Entries() {
			if e["level"] == "warn" {
				n++
			}
		}
		return n
	}

	pinned, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "pinned", AckPolicy: jetstream.AckExplicitPolicy,
		PriorityPolicy: jetstream.PriorityPolicyPinned, PriorityGroups: []string{priorityGroup}, PinnedTTL: PinnedTTL})
	if err != nil {
		t.Fatal(err)
	}
	m.checkPinned(pinned)
	if n := warnings(); n != 0 {
		t.Fatalf("a pinned consumer: %d warnings, want none", n)
	}
	for _, name := range []string{"plain1", "plain2"} {
		c, err := stream.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: name, AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			t.Fatal(err)
		}
		m.checkPinned(c)
	}
	if n := warnings(); n != 1 {
		t.Fatalf("two unpinned consumers: %d warnings, want 1", n)
	}
	m.cfg.MaxInFlight = 4 // unordered endpoints share their consumer: nothing to say
	m.pinWarning = sync.Once{}
	c, _ := stream.Consumer(ctx, "plain1")
	m.checkPinned(c)
	if n := warnings(); n != 1 {
		t.Errorf("max in-flight 4: %d warnings, want still 1", n)
	}
}
