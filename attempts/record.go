// Package attempts is the attempt log: one record per HTTP attempt (deliveries,
// replays, pings) in a limits-retention stream of its own, written off the
// delivery's critical path by a Recorder and read newest first by the CLI, the
// management API and the console.
//
// Subjects are contract.Names.AttemptSubject, one per endpoint; each message
// holds a batch of that endpoint's records, one JSON record a line, so that a
// busy endpoint costs the server a message per batch rather than per attempt.
package attempts

import (
	"fmt"
	"time"
)

// Kind says what sent the attempt.
type Kind string

// The kinds of attempt.
const (
	KindDelivery Kind = "delivery" // an event from the events stream
	KindReplay   Kind = "replay"   // an event sent again by replay (dead letters or --since)
	KindPing     Kind = "ping"     // DefectDojo's test notification (endpoint add, ping, activate)
)

// Record is one HTTP attempt. It never holds a secret: the endpoint's header
// value, signatures and URL userinfo are not recorded.
type Record struct {
	Endpoint        string            `json:"endpoint"`
	WebhookID       string            `json:"webhook_id"`
	Event           string            `json:"event"`
	Kind            Kind              `json:"kind"`
	StreamSeq       uint64            `json:"stream_seq,omitempty"` // sequence of the event in the events stream
	Attempt         uint64            `json:"attempt,omitempty"`    // delivery count of the event for this endpoint (1 = first)
	Start           time.Time         `json:"start"`
	DurationMS      float64           `json:"duration_ms"`
	Status          int               `json:"status,omitempty"` // HTTP status; 0 when no response came
	Outcome         string            `json:"outcome"`          // success, temporary, permanent, local (the sidecar's own failure)
	Note            string            `json:"note,omitempty"`
	StateBefore     string            `json:"state_before,omitempty"`
	StateAfter      string            `json:"state_after,omitempty"`
	ResponseHeaders map[string]string `json:"response_headers,omitempty"` // Content-Type, Retry-After, Location
	ResponseBody    string            `json:"response_body,omitempty"`    // the first bytes of the body
	BodyTruncated   bool              `json:"response_body_truncated,omitempty"`

	// Seq and Index place the record in the attempt-log stream: the message's
	// sequence and the record's line in it (set when read, not stored).
	Seq   uint64 `json:"seq,omitempty"`
	Index int    `json:"index,omitempty"`
}

// Cursor is the record's place in the log, as Page.Next gives it.
func (r Record) Cursor() string { return fmt.Sprintf("%d.%d", r.Seq, r.Index) }

// parseCursor reads a Cursor.
func parseCursor(s string) (seq uint64, index int, err error) {
	if _, err := fmt.Sscanf(s, "%d.%d", &seq, &index); err != nil || seq == 0 || index < 0 || fmt.Sprintf("%d.%d", seq, index) != s {
		return 0, 0, fmt.Errorf("cursor %q: not a cursor this log returned", s)
	}
	return seq, index, nil
}

// Failed reports whether the attempt did not succeed.
func (r Record) Failed() bool { return r.Outcome != "success" }

// Duration is the attempt's duration.
func (r Record) Duration() time.Duration {
	return time.Duration(r.DurationMS * float64(time.Millisecond))
}
