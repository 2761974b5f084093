package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/jsstate"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// What the endpoint commands share: the JSON form of a record and the backlog.

// masked replaces secrets in everything the CLI prints.
const masked = "********"

// endpointJSON is what list --json and show print: the record with its secret masked.
type endpointJSON struct {
	ID          string   `json:"id"`
	Name        string   `json:"name,omitempty"`
	URL         string   `json:"url,omitempty"`
	HeaderName  *string  `json:"header_name"`
	HeaderValue *string  `json:"header_value"`
	Owner       *string  `json:"owner"`
	Events      []string `json:"events"`
	Status      string   `json:"status"`
	FirstError  *string  `json:"first_error"`
	LastError   *string  `json:"last_error"`
	Note        string   `json:"note"`
	CreatedAt   *string  `json:"created_at"`
	Secret      *string  `json:"secret"`
	PrevSecret  *string  `json:"previous_secret"`
	PrevUntil   *string  `json:"previous_secret_until"`
	RetryAfter  *string  `json:"retry_after"`
	Revision    uint64   `json:"revision"`
	// Backlog is the events waiting or in flight, null when unknown (no
	// consumer yet, or the server could not be read), as in status --json.
	Backlog *uint64 `json:"backlog"`
	// Dropped estimates the events the stream's limits discarded before the
	// endpoint received them, null when unknown, as in status --json.
	Dropped *uint64 `json:"dropped"`
}

func toJSON(r statekv.Record, rev uint64) endpointJSON {
	str := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	ts := func(t time.Time) *string {
		if t.IsZero() {
			return nil
		}
		return str(t.UTC().Format(time.RFC3339Nano))
	}
	out := endpointJSON{ID: r.ID, Name: r.Name, URL: r.RedactedURL(), HeaderName: str(r.HeaderName), Owner: str(r.Owner),
		Events: r.Events, Status: string(r.Status), FirstError: ts(r.FirstError), LastError: ts(r.LastError),
		Note: r.Note, CreatedAt: ts(r.CreatedAt), Revision: rev}
	if out.Events == nil {
		out.Events = []string{}
	}
	if r.HeaderValue != "" {
		out.HeaderValue = str(masked)
	}
	if r.Secret != "" {
		out.Secret = str(masked)
	}
	if r.PreviousSecret != "" {
		out.PrevSecret, out.PrevUntil = str(masked), ts(r.PreviousSecretUntil)
	}
	out.RetryAfter = ts(r.RetryAfter)
	return out
}

// backlogs returns a function giving each endpoint's backlog (nil when unknown)
// and its text for a table: "-" where it has no consumer yet, "?" when the
// server could not be read. One consumer listing serves every endpoint.
func backlogs(ctx context.Context, js jetstream.JetStream, names contract.Names) func(id string) (*uint64, *uint64, string) {
	snap, err := jsstate.ReadSnapshot(ctx, js, names)
	return func(id string) (*uint64, *uint64, string) {
		st, ok := snap.Endpoints[id]
		switch {
		case ok && st.HasConsumer:
			n, d := st.Backlog, st.Dropped
			return &n, &d, fmt.Sprint(n)
		case err == nil || errors.Is(err, jetstream.ErrStreamNotFound):
			return nil, nil, "-"
		}
		return nil, nil, "?"
	}
}
