// Package attempts is the attempt log: one record per HTTP attempt (deliveries,
// replays, pings) in a limits-retention stream of its own, written off the
// delivery's critical path by a Recorder and read newest first by the CLI, the
// management API and the console.
//
// Subjects are contract.Names.AttemptSubject: per endpoint, with a bucket of the
// webhook-id, so that one event's attempts across endpoints are 1/4096 of the
// log to read, without a subject per event.
package attempts

import "time"

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

	// Seq is the record's sequence in the attempt-log stream (set when read, not stored).
	Seq uint64 `json:"seq,omitempty"`
}

// Failed reports whether the attempt did not succeed.
func (r Record) Failed() bool { return r.Outcome != "success" }

// Duration is the attempt's duration.
func (r Record) Duration() time.Duration {
	return time.Duration(r.DurationMS * float64(time.Millisecond))
}
