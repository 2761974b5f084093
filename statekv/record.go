package statekv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dojo-webhooks/dojo-webhooks/delivery"
)

// Status is an endpoint's state in DefectDojo's webhook state machine.
type Status string

// The four states of DefectDojo's Notification_Webhooks.status.
const (
	StatusActive            Status = "active"
	StatusActiveTmp         Status = "active_tmp"
	StatusInactiveTmp       Status = "inactive_tmp"
	StatusInactivePermanent Status = "inactive_permanent"
)

// Valid reports whether s is one of the four known states.
func (s Status) Valid() bool {
	switch s {
	case StatusActive, StatusActiveTmp, StatusInactiveTmp, StatusInactivePermanent:
		return true
	}
	return false
}

// Deliverable reports whether events are sent to an endpoint in this state.
func (s Status) Deliverable() bool {
	return s == StatusActive || s == StatusActiveTmp
}

// Limits of an endpoint record, as documented in the README.
const (
	MaxIDLength        = 64
	MaxNameLength      = 100
	MaxNoteLength      = delivery.MaxNoteLength // DefectDojo's column size
	MaxURLLength       = 2048
	MaxOwnerLength     = 150
	MaxEventLength     = 128
	MaxEvents          = 64
	MaxHeaderLength    = 4096
	MaxRecordBytes     = 64 * 1024
	MaxChangedByLength = 64
	timestampPrecision = time.Millisecond
)

// Bounds on how far in the future a record's times may be, as documented in
// the README: a time past them is the mark of a hand-put or corrupted record,
// and trusting it would replay a whole stream (created_at, deliver_from) or
// pause an endpoint for centuries (last_error, retry_after).
const (
	// MaxClockSkew is how far ahead of this sidecar's clock another writer's clock may be.
	MaxClockSkew = 5 * time.Minute
	// MaxRetryAfterLimit bounds Policy.MaxRetryAfter (DOJO_WEBHOOKS_MAX_RETRY_AFTER):
	// a record's retry_after may be at most this plus MaxClockSkew ahead.
	MaxRetryAfterLimit = 24 * time.Hour
	// MaxSecretOverlap bounds a rotation overlap (DOJO_WEBHOOKS_SECRET_OVERLAP): a
	// record's previous_secret_until may be at most this plus MaxClockSkew ahead.
	MaxSecretOverlap = 7 * 24 * time.Hour
)

// ErrInvalidRecord is wrapped by every parse and validation error of a record.
var ErrInvalidRecord = errors.New("invalid endpoint record")

var (
	idPattern    = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)
	eventPattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// Record is one endpoint: its definition and its state, stored as JSON under its id.
// Empty strings and zero times are written as JSON null.
type Record struct {
	ID          string    // the KV key; not part of the JSON value
	Name        string    // display name, unique, at most 100 chars
	URL         string    // http or https URL
	HeaderName  string    // optional extra request header name
	HeaderValue string    // its value (a secret: never logged)
	Owner       string    // username; empty = system endpoint
	Events      []string  // event filter; empty = all events
	Status      Status    // state in DefectDojo's state machine
	FirstError  time.Time // start of the current outage; zero = none
	LastError   time.Time // latest error; zero = none
	Note        string    // latest error or manual action
	CreatedAt   time.Time // when the endpoint was added; its consumer starts there
	DeliverFrom time.Time // when set (by a skip), the consumer starts here instead of CreatedAt
	RetryAfter  time.Time // set from a 429/503 Retry-After: inactive_tmp lasts at least until then

	Secret              string    // Standard Webhooks signing secret (whsec_…); empty = unsigned
	PreviousSecret      string    // the secret before the last rotation, also signed with until PreviousSecretUntil
	PreviousSecretUntil time.Time // end of the rotation overlap

	// ChangedBy and ChangedAfter say what wrote this revision ("delivery:temporary",
	// "timer:reactivate_timer", "user:activate", …) and the revision it replaced,
	// stamped by the Store; a hand edit (nats kv put) keeps stale values, which is
	// how History tells it apart. Written only when set.
	ChangedBy    string
	ChangedAfter uint64

	extra map[string]json.RawMessage // unknown fields, kept on rewrite
}

// knownFields lists the JSON fields in the order they are written.
var knownFields = []string{"name", "url", "header_name", "header_value", "owner", "events", "status", "first_error", "last_error", "note", "created_at", "deliver_from", "retry_after", "secret", "previous_secret", "previous_secret_until"}

// ValidateID checks an endpoint id: [a-z0-9_-], 1 to 64 characters.
func ValidateID(id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("%w: id %q: must be 1 to %d characters of [a-z0-9_-]", ErrInvalidRecord, id, MaxIDLength)
	}
	return nil
}

// ValidateEvent checks an event name: a single NATS subject token of [A-Za-z0-9_-].
func ValidateEvent(name string) error {
	if len(name) > MaxEventLength || !eventPattern.MatchString(name) {
		return fmt.Errorf("event %q: must be 1 to %d characters of [A-Za-z0-9_-]", name, MaxEventLength)
	}
	return nil
}

// ParseRecord decodes and validates the JSON value stored under key id.
// Errors wrap ErrInvalidRecord and name the offending field.
func ParseRecord(id string, data []byte) (Record, error) {
	r := Record{ID: id}
	if err := ValidateID(id); err != nil {
		return r, err
	}
	if len(data) > MaxRecordBytes {
		return r, fmt.Errorf("%w: value is %d bytes, more than %d", ErrInvalidRecord, len(data), MaxRecordBytes)
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&fields); err != nil {
		return r, fmt.Errorf("%w: not a JSON object: %v", ErrInvalidRecord, err)
	}
	if fields == nil {
		return r, fmt.Errorf("%w: not a JSON object: null", ErrInvalidRecord)
	}
	if dec.Decode(new(json.RawMessage)) != io.EOF { // dec.More() misses a stray '}' or ']'
		return r, fmt.Errorf("%w: trailing data after the JSON object", ErrInvalidRecord)
	}
	var err error
	str := func(name string, dst *string) {
		raw, ok := fields[name]
		delete(fields, name)
		if !ok || err != nil || isNull(raw) {
			return
		}
		if e := json.Unmarshal(raw, dst); e != nil {
			got := abbreviate(raw)
			if name == "header_value" || name == "secret" || name == "previous_secret" {
				got = "another JSON type" // never echo a credential
			}
			err = fmt.Errorf("%w: field %s: expected a string or null, got %s", ErrInvalidRecord, name, got)
		}
	}
	ts := func(name string, dst *time.Time) {
		var s string
		str(name, &s)
		if err != nil || s == "" {
			return
		}
		t, e := time.Parse(time.RFC3339Nano, s)
		if y := t.UTC().Year(); e != nil || y < 0 || y > 9999 { // the UTC year must be writable as RFC 3339 again
			err = fmt.Errorf("%w: field %s: expected an RFC 3339 timestamp, got %q", ErrInvalidRecord, name, s)
			return
		}
		*dst = Timestamp(t) // UTC, millisecond precision, as written back: timers compare at that precision
	}
	var status string
	str("name", &r.Name)
	str("url", &r.URL)
	str("header_name", &r.HeaderName)
	str("header_value", &r.HeaderValue)
	str("owner", &r.Owner)
	str("status", &status)
	str("note", &r.Note)
	ts("first_error", &r.FirstError)
	ts("last_error", &r.LastError)
	ts("created_at", &r.CreatedAt)
	ts("deliver_from", &r.DeliverFrom)
	ts("retry_after", &r.RetryAfter)
	ts("previous_secret_until", &r.PreviousSecretUntil)
	str("secret", &r.Secret)
	str("previous_secret", &r.PreviousSecret)
	str("changed_by", &r.ChangedBy)
	if raw, ok := fields["changed_after"]; ok {
		delete(fields, "changed_after")
		if err == nil && !isNull(raw) && json.Unmarshal(raw, &r.ChangedAfter) != nil {
			err = fmt.Errorf("%w: field changed_after: expected a revision number or null, got %s", ErrInvalidRecord, abbreviate(raw))
		}
	}
	if raw, ok := fields["events"]; ok {
		delete(fields, "events")
		if err == nil && !isNull(raw) {
			if e := json.Unmarshal(raw, &r.Events); e != nil {
				err = fmt.Errorf("%w: field events: expected an array of strings or null, got %s", ErrInvalidRecord, abbreviate(raw))
			}
		}
	}
	if err != nil {
		return r, err
	}
	r.Status = Status(status)
	if len(fields) > 0 {
		r.extra = fields
	}
	if err := r.Validate(); err != nil {
		return r, err
	}
	return r, nil
}

// ParseRecordAt is ParseRecord, then CheckTimes at now: how the store and the
// watcher read a stored value.
func ParseRecordAt(id string, data []byte, now time.Time) (Record, error) {
	r, err := ParseRecord(id, data)
	if err != nil {
		return r, err
	}
	return r, r.CheckTimes(now)
}

// CheckTimes refuses a time further in the future than a writer at now could
// have written it: created_at, first_error, last_error and deliver_from at most
// MaxClockSkew ahead, retry_after at most MaxRetryAfterLimit + MaxClockSkew,
// previous_secret_until at most MaxSecretOverlap + MaxClockSkew. Errors wrap
// ErrInvalidRecord and name the field.
func (r Record) CheckTimes(now time.Time) error {
	for _, f := range []struct {
		name  string
		t     time.Time
		ahead time.Duration
	}{
		{"created_at", r.CreatedAt, 0}, {"first_error", r.FirstError, 0}, {"last_error", r.LastError, 0},
		{"deliver_from", r.DeliverFrom, 0}, {"retry_after", r.RetryAfter, MaxRetryAfterLimit},
		{"previous_secret_until", r.PreviousSecretUntil, MaxSecretOverlap},
	} {
		if limit := now.Add(f.ahead + MaxClockSkew); f.t.After(limit) {
			return fmt.Errorf("%w: field %s: %s is in the future (later than %s)", ErrInvalidRecord, f.name,
				f.t.Format(time.RFC3339), Timestamp(limit).Format(time.RFC3339))
		}
	}
	return nil
}

// Validate checks every field against the limits of the record format.
// Errors wrap ErrInvalidRecord and name the offending field.
func (r Record) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidRecord, fmt.Sprintf(format, args...))
	}
	if err := ValidateID(r.ID); err != nil {
		return err
	}
	if strings.TrimSpace(r.Name) == "" {
		return bad("field name: required")
	}
	if n := utf8.RuneCountInString(r.Name); n > MaxNameLength {
		return bad("field name: %d characters, at most %d", n, MaxNameLength)
	}
	if err := ValidateURL(r.URL); err != nil {
		return bad("field url: %v", err)
	}
	if r.HeaderName == "" && r.HeaderValue != "" {
		return bad("field header_value: set without header_name")
	}
	if r.HeaderName != "" {
		if !delivery.ValidHeaderName(r.HeaderName) {
			return bad("field header_name: %q is not a valid HTTP header name", r.HeaderName)
		}
		if len(r.HeaderName) > MaxHeaderLength || len(r.HeaderValue) > MaxHeaderLength {
			return bad("field header_name/header_value: longer than %d bytes", MaxHeaderLength)
		}
		if !delivery.ValidHeaderValue(r.HeaderValue) {
			// Never echo a header value: it is usually a credential.
			return bad("field header_value: contains CR, LF or NUL, or another control character but tab")
		}
	}
	for field, secret := range map[string]string{"secret": r.Secret, "previous_secret": r.PreviousSecret} {
		if secret != "" {
			if _, err := delivery.ParseSecret(secret); err != nil {
				return bad("field %s: %v", field, err)
			}
		}
	}
	if r.PreviousSecret != "" && r.PreviousSecretUntil.IsZero() {
		return bad("field previous_secret_until: required with previous_secret")
	}
	if utf8.RuneCountInString(r.Owner) > MaxOwnerLength {
		return bad("field owner: longer than %d characters", MaxOwnerLength)
	}
	if len(r.Events) > MaxEvents {
		return bad("field events: %d entries, at most %d", len(r.Events), MaxEvents)
	}
	for _, e := range r.Events {
		if err := ValidateEvent(e); err != nil {
			return bad("field events: %v", err)
		}
	}
	if !r.Status.Valid() {
		return bad("field status: %q is not one of active, active_tmp, inactive_tmp, inactive_permanent", string(r.Status))
	}
	if n := utf8.RuneCountInString(r.Note); n > MaxNoteLength {
		return bad("field note: %d characters, at most %d", n, MaxNoteLength)
	}
	if len(r.ChangedBy) > MaxChangedByLength {
		return bad("field changed_by: longer than %d bytes", MaxChangedByLength)
	}
	return nil
}

// SigningSecrets returns the secrets to sign with at time now: the current one,
// then the previous one while its rotation overlap lasts.
func (r Record) SigningSecrets(now time.Time) []string {
	var out []string
	if r.Secret != "" {
		out = append(out, r.Secret)
	}
	if r.PreviousSecret != "" && now.Before(r.PreviousSecretUntil) {
		out = append(out, r.PreviousSecret)
	}
	return out
}

// ValidateURL accepts what the delivery client can send (delivery.ParseURL: an
// absolute http or https URL with a host name) of at most MaxURLLength bytes.
func ValidateURL(raw string) error {
	if raw == "" {
		return errors.New("required")
	}
	if len(raw) > MaxURLLength {
		return fmt.Errorf("longer than %d bytes", MaxURLLength)
	}
	_, err := delivery.ParseURL(raw)
	var ue *delivery.URLError
	if !errors.As(err, &ue) {
		return err
	}
	switch ue.Problem {
	case delivery.URLUnparsable:
		return errors.New("does not parse as a URL") // the text may hold credentials: not echoed
	case delivery.URLNoHost:
		return fmt.Errorf("%q: no host", ue.URL)
	}
	return fmt.Errorf("%q: scheme must be http or https", ue.URL)
}

// MarshalJSON writes the record's fields (nulls for empty values) and any unknown fields it was read with.
func (r Record) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	// '<', '>' and '&' as they are: json.Marshal's \u003c escapes would let a
	// rewrite grow a record past MaxRecordBytes, and ParseRecord then refuse it.
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	field := func(name string, v any) error {
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(name)
		b.Write(k)
		b.WriteByte(':')
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("field %s: %w", name, err)
		}
		b.Truncate(b.Len() - 1) // the newline Encode ends with
		return nil
	}
	values := []any{nullString(r.Name), nullString(r.URL), nullString(r.HeaderName), nullString(r.HeaderValue),
		nullString(r.Owner), nullEvents(r.Events), nullString(string(r.Status)), nullTime(r.FirstError),
		nullTime(r.LastError), nullString(r.Note), nullTime(r.CreatedAt), nullTime(r.DeliverFrom), nullTime(r.RetryAfter),
		nullString(r.Secret), nullString(r.PreviousSecret), nullTime(r.PreviousSecretUntil)}
	for i, name := range knownFields {
		if err := field(name, values[i]); err != nil {
			return nil, err
		}
	}
	if r.ChangedBy != "" {
		if err := field("changed_by", r.ChangedBy); err != nil {
			return nil, err
		}
		if err := field("changed_after", r.ChangedAfter); err != nil {
			return nil, err
		}
	}
	keys := make([]string, 0, len(r.extra))
	for k := range r.extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := field(k, r.extra[k]); err != nil {
			return nil, err
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Extra returns the unknown fields the record was read with (nil when none).
func (r Record) Extra() map[string]json.RawMessage { return r.extra }

// Matches reports whether an event of the given name and recipient ("" = system
// notification) is for this endpoint: its filter lets the name through and the
// owner matches the recipient.
func (r Record) Matches(event, recipient string) bool {
	if r.Owner != recipient {
		return false
	}
	if len(r.Events) == 0 {
		return true
	}
	for _, e := range r.Events {
		if e == event {
			return true
		}
	}
	return false
}

// Timestamp normalises t the way records store it: UTC, millisecond precision.
func Timestamp(t time.Time) time.Time { return t.UTC().Truncate(timestampPrecision) }

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullEvents(e []string) any {
	if len(e) == 0 {
		return []string{}
	}
	return e
}

func nullTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return Timestamp(t).Format(time.RFC3339Nano)
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func abbreviate(raw json.RawMessage) string {
	s := string(raw)
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return s
}
