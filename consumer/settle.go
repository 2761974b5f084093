package consumer

import (
	"github.com/dojo-webhooks/dojo-webhooks/delivery"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// write is the result of one of the writes a delivery's settlement may need.
type write int

const (
	notWritten  write = iota // not tried (yet)
	writeFailed              // tried, failed
	writeStored              // written (or the record already reflected it)
)

// writeResult is writeStored when ok, else writeFailed.
func writeResult(ok bool) write {
	if ok {
		return writeStored
	}
	return writeFailed
}

// settleState is everything the settlement of one delivery attempt depends on.
type settleState struct {
	class      delivery.Class // outcome of the attempt
	cancelled  bool           // the attempt was cut short by the shutdown (deliveries' context cancelled)
	transition write          // the failure written into the endpoint's record
	deadLetter write          // the event stored on the dead-letter subject
}

// settleAction is what to do next with a delivered message.
type settleAction int

const (
	ack             settleAction = iota + 1 // delivered: done
	nak                                     // redelivered when the consumer delivers again (it is paused after a failure)
	nakDelayed                              // redelivered after reconcileRetry: a write failed, try the whole delivery again
	term                                    // dead-lettered: never redelivered
	writeTransition                         // write the failure into the record, then decide again
	writeDeadLetter                         // store the dead letter, then decide again
)

var settleActionNames = map[settleAction]string{
	ack: "ack", nak: "nak", nakDelayed: "nak with delay", term: "term",
	writeTransition: "write transition", writeDeadLetter: "write dead letter",
}

func (a settleAction) String() string { return settleActionNames[a] }

// decideSettle is the settle decision of one delivery attempt, a pure function
// of its state; the runner performs the writes it asks for and calls it again
// until it returns ack, nak, nakDelayed or term.
//
//	class      cancelled  transition  dead letter  → action
//	success    any        -           -            ack
//	temporary  yes        -           -            nak (not the endpoint's fault)
//	temporary  no         not yet     -            write transition
//	temporary  no         failed      -            nak with delay
//	temporary  no         stored      -            nak (kept; redelivered on resume)
//	permanent  any        not yet     -            write transition
//	permanent  any        failed      -            nak with delay
//	permanent  any        stored      not yet      write dead letter
//	permanent  any        stored      failed       nak (stays in the backlog)
//	permanent  any        stored      stored       term
//	local      any        -           -            nak with delay (the sidecar's own failure: the record is untouched)
//	other      any        -           -            nak with delay
func decideSettle(s settleState) settleAction {
	switch s.class {
	case delivery.Success:
		return ack
	case delivery.Temporary:
		if s.cancelled {
			return nak
		}
		return afterTransition(s.transition, nak)
	case delivery.Permanent:
		next := afterTransition(s.transition, writeDeadLetter)
		if next != writeDeadLetter {
			return next
		}
		switch s.deadLetter {
		case notWritten:
			return writeDeadLetter
		case writeFailed:
			return nak
		}
		return term
	case delivery.Local:
		return nakDelayed // not the endpoint's doing: nothing is written, the event is tried again
	}
	return nakDelayed // no such class: redelivered rather than left to AckWait
}

// afterTransition is writeTransition until the transition is tried, nakDelayed
// when it failed, and then once it is stored.
func afterTransition(w write, then settleAction) settleAction {
	switch w {
	case notWritten:
		return writeTransition
	case writeFailed:
		return nakDelayed
	}
	return then
}

// failureEvent is the state-machine input of a failed attempt.
func failureEvent(res delivery.Result) statekv.Event {
	if res.Class == delivery.Temporary {
		return statekv.Event{Input: statekv.TemporaryFailure, Note: res.Note, RetryAt: res.RetryAfter}
	}
	return statekv.Event{Input: statekv.PermanentFailure, Note: res.Note}
}
