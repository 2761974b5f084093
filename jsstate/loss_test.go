package jsstate_test

import (
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/jsstate"
)

// TestLoss: the sequences discarded past the ack floor are counted, once per
// reported position, and a filtered endpoint is charged its share only.
func TestLoss(t *testing.T) {
	ci := func(floor, pending uint64) *jetstream.ConsumerInfo {
		return &jetstream.ConsumerInfo{AckFloor: jetstream.SequenceInfo{Stream: floor}, NumPending: pending}
	}
	st := jetstream.StreamState{FirstSeq: 101, Msgs: 100}
	for _, c := range []struct {
		name  string
		loss  jsstate.Loss
		after uint64
		want  uint64
	}{
		{"caught up", jsstate.LossOf(st, ci(150, 50)), 0, 0},
		{"floor just before the first", jsstate.LossOf(st, ci(100, 100)), 0, 0},
		{"every event, 90 gone", jsstate.LossOf(st, ci(10, 100)), 0, 90},
		{"reported up to 60 already", jsstate.LossOf(st, ci(10, 100)), 60, 40},
		{"reported up to the first", jsstate.LossOf(st, ci(10, 100)), 100, 0},
		{"a quarter of the events are its own", jsstate.LossOf(st, ci(10, 25)), 0, 23}, // 90 × 0.25 = 22.5
		{"a filtered, caught-up endpoint", jsstate.LossOf(st, ci(10, 0)), 0, 0},
		{"empty stream", jsstate.LossOf(jetstream.StreamState{FirstSeq: 501}, ci(300, 0)), 0, 200},
	} {
		if got := c.loss.Since(c.after); got != c.want {
			t.Errorf("%s: %+v.Since(%d) = %d, want %d", c.name, c.loss, c.after, got, c.want)
		}
	}
}
