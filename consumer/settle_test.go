package consumer

import (
	"testing"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/delivery"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// TestDecideSettle checks the settle decision row by row, as its doc comment tabulates it.
func TestDecideSettle(t *testing.T) {
	const (
		S, T, P, L   = delivery.Success, delivery.Temporary, delivery.Permanent, delivery.Local
		no, fail, ok = notWritten, writeFailed, writeStored
	)
	rows := []struct {
		class      delivery.Class
		cancelled  bool
		transition write
		deadLetter write
		want       settleAction
	}{
		{S, false, no, no, ack},
		{S, true, no, no, ack}, // delivered just before the shutdown cut in
		{T, true, no, no, nak},
		{T, false, no, no, writeTransition},
		{T, false, fail, no, nakDelayed},
		{T, false, ok, no, nak},
		{P, false, no, no, writeTransition},
		{P, true, no, no, writeTransition}, // a permanent failure is the endpoint's, shutdown or not
		{P, false, fail, no, nakDelayed},
		{P, false, ok, no, writeDeadLetter},
		{P, false, ok, fail, nak},
		{P, false, ok, ok, term},
		{P, true, ok, ok, term},
		{L, false, no, no, nakDelayed}, // the sidecar's own failure (EMFILE...): no transition, retried
		{L, true, no, no, nakDelayed},  // cancelled by the shutdown
		{delivery.Class(0), false, no, no, nakDelayed},
	}
	for _, r := range rows {
		s := settleState{class: r.class, cancelled: r.cancelled, transition: r.transition, deadLetter: r.deadLetter}
		if got := decideSettle(s); got != r.want {
			t.Errorf("decideSettle(%+v) = %s, want %s", s, got, r.want)
		}
	}
}

// TestDecideSettleEnds: driven as the runner drives it, every class ends in ack,
// nak or term after at most two writes, whatever the writes return.
func TestDecideSettleEnds(t *testing.T) {
	for _, class := range []delivery.Class{delivery.Success, delivery.Temporary, delivery.Permanent, delivery.Local, 0} {
		for _, cancelled := range []bool{false, true} {
			for _, tr := range []bool{false, true} {
				for _, dl := range []bool{false, true} {
					s := settleState{class: class, cancelled: cancelled}
					var writes int
					act := decideSettle(s)
					for ; act == writeTransition || act == writeDeadLetter; act = decideSettle(s) {
						if writes++; writes > 2 {
							t.Fatalf("%+v: more than two writes", s)
						}
						if act == writeTransition {
							s.transition = writeResult(tr)
						} else {
							s.deadLetter = writeResult(dl)
						}
					}
					if act != ack && act != nak && act != nakDelayed && act != term {
						t.Errorf("%+v ends in %v", s, act)
					}
				}
			}
		}
	}
}

func TestFailureEvent(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	if got := failureEvent(delivery.Result{Class: delivery.Temporary, Note: "Response status code: 503", RetryAfter: at}); got.Input != statekv.TemporaryFailure || got.Note != "Response status code: 503" || !got.RetryAt.Equal(at) {
		t.Errorf("temporary: %+v", got)
	}
	if got := failureEvent(delivery.Result{Class: delivery.Permanent, Note: "Response status code: 404", RetryAfter: at}); got.Input != statekv.PermanentFailure || got.Note != "Response status code: 404" || !got.RetryAt.IsZero() {
		t.Errorf("permanent: %+v", got)
	}
}
