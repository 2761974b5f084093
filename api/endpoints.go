package api

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/contract"

	"github.com/dojo-webhooks/dojo-webhooks/jsstate"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// List limits, documented in the README.
const (
	// DefaultLimit is the page size of the endpoint list when none is asked for.
	DefaultLimit = 50
	// MaxLimit is the largest page of the endpoint list.
	MaxLimit = 500
	// maxQueryLength bounds the q search text.
	maxQueryLength = 200
)

// masked stands for a secret value that is set.
const masked = "********"

// StatusInvalid is the status shown for a record that does not parse or validate.
const StatusInvalid = "invalid"

// Endpoint is one endpoint as the API and the console show it: its record with
// every secret masked, and what the server knows of its consumer.
type Endpoint struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	URL         string     `json:"url"`
	Owner       string     `json:"owner"`
	Events      []string   `json:"events"`
	Status      string     `json:"status"`
	FirstError  *time.Time `json:"first_error"`
	LastError   *time.Time `json:"last_error"`
	Note        string     `json:"note"`
	HeaderName  string     `json:"header_name"`
	HeaderValue string     `json:"header_value"` // masked when set
	Signed      bool       `json:"signed"`       // a signing secret is set (never shown)
	CreatedAt   *time.Time `json:"created_at"`
	DeliverFrom *time.Time `json:"deliver_from"`
	RetryAfter  *time.Time `json:"retry_after"`
	Backlog     *uint64    `json:"backlog"` // null until the sidecar created its consumer
	DeadLetters uint64     `json:"dead_letters"`
	Paused      bool       `json:"paused"`
	PausedUntil *time.Time `json:"paused_until"`
	Held        bool       `json:"held"` // paused until activated (inactive_permanent, invalid record)
	Revision    uint64     `json:"revision"`
	Error       string     `json:"error,omitempty"` // why an invalid record is held
}

// EndpointOf builds the shown form of one view, with the server's state when known.
func EndpointOf(v statekv.View, st jsstate.EndpointState, known bool) Endpoint {
	e := Endpoint{ID: v.ID, Revision: v.Revision, Events: []string{}}
	if !v.Valid() {
		e.Status, e.Error = StatusInvalid, v.Err.Error()
	} else {
		r := v.Record
		e.Name, e.URL, e.Owner, e.Status, e.Note = r.Name, r.RedactedURL(), r.Owner, string(r.Status), r.Note
		if r.Events != nil {
			e.Events = r.Events
		}
		e.HeaderName = r.HeaderName
		if r.HeaderValue != "" {
			e.HeaderValue = masked
		}
		e.Signed = r.Secret != ""
		e.FirstError, e.LastError = timePtr(r.FirstError), timePtr(r.LastError)
		e.CreatedAt, e.DeliverFrom, e.RetryAfter = timePtr(r.CreatedAt), timePtr(r.DeliverFrom), timePtr(r.RetryAfter)
	}
	if known && st.HasConsumer {
		b := st.Backlog
		e.Backlog = &b
		e.Paused = st.Paused
		e.PausedUntil = timePtr(st.PausedUntil)
	}
	e.DeadLetters = st.DeadLetters
	e.Held = e.PausedUntil != nil && contract.IsHeld(*e.PausedUntil)
	return e
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// Filter selects and orders endpoints (GET /api/v1/endpoints and the console's list).
type Filter struct {
	Status string // one status, or "invalid"; "" = all
	Owner  string // exact owner; "" = all
	Q      string // case-insensitive substring of id or name
	Sort   string // "id" (default), "name", or "last_error" (most recent first, never-failed last)
	Limit  int    // default DefaultLimit, at most MaxLimit
	Cursor string // from the previous page's Next
}

// Validate checks a filter; its errors name the parameter.
func (f Filter) Validate() error {
	if f.Status != "" && f.Status != StatusInvalid && !statekv.Status(f.Status).Valid() {
		return fmt.Errorf("status %q: must be active, active_tmp, inactive_tmp, inactive_permanent or invalid", f.Status)
	}
	switch f.Sort {
	case "", "id", "name", "last_error":
	default:
		return fmt.Errorf("sort %q: must be id, name or last_error", f.Sort)
	}
	if f.Limit < 0 || f.Limit > MaxLimit {
		return fmt.Errorf("limit %d: must be 1 to %d", f.Limit, MaxLimit)
	}
	if len(f.Q) > maxQueryLength {
		return fmt.Errorf("q: at most %d characters", maxQueryLength)
	}
	if f.Cursor != "" {
		if _, err := decodeCursor(f.Cursor); err != nil {
			return err
		}
	}
	return nil
}

func (f Filter) matches(e Endpoint) bool {
	if f.Status != "" && e.Status != f.Status {
		return false
	}
	if f.Owner != "" && e.Owner != f.Owner {
		return false
	}
	if f.Q != "" {
		q := strings.ToLower(f.Q)
		return strings.Contains(e.ID, q) || strings.Contains(strings.ToLower(e.Name), q)
	}
	return true
}

// sortKey orders endpoints; ties (and the id sort) fall back to the id, so the
// order is total and a cursor names one place in it.
func (f Filter) sortKey(e Endpoint) string {
	switch f.Sort {
	case "name":
		return strings.ToLower(e.Name)
	case "last_error":
		if e.LastError == nil {
			return "~" // after every time
		}
		// Most recent first: invert the time so that ascending keys are descending times.
		return fmt.Sprintf("%020d", int64(1)<<62-e.LastError.UnixNano())
	}
	return ""
}

// cursor is the last item of a page: the next page starts after it.
type cursor struct {
	Key string `json:"k"`
	ID  string `json:"i"`
}

func encodeCursor(c cursor) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (cursor, error) {
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.ID == "" {
		return c, fmt.Errorf("cursor %q: not a cursor this API returned", s)
	}
	return c, nil
}

// EndpointPage is one page of the endpoint list.
type EndpointPage struct {
	Items []Endpoint `json:"items"`
	Next  *string    `json:"next"` // cursor of the next page; null on the last
	Total int        `json:"total"`
}

// keyed is an endpoint with its sort key.
type keyed struct {
	key string
	e   Endpoint
}

// sorted filters and sorts endpoints (the filter was validated).
func sorted(all []Endpoint, f Filter) []keyed {
	var sel []keyed
	for _, e := range all {
		if f.matches(e) {
			sel = append(sel, keyed{f.sortKey(e), e})
		}
	}
	slices.SortFunc(sel, func(a, b keyed) int {
		if c := strings.Compare(a.key, b.key); c != 0 {
			return c
		}
		return strings.Compare(a.e.ID, b.e.ID)
	})
	return sel
}

// Select filters, sorts and pages endpoints by cursor (the filter was validated).
func Select(all []Endpoint, f Filter) EndpointPage {
	if f.Limit == 0 {
		f.Limit = DefaultLimit
	}
	sel := sorted(all, f)
	start := 0
	if f.Cursor != "" {
		c, _ := decodeCursor(f.Cursor)
		start, _ = slices.BinarySearchFunc(sel, c, func(k keyed, c cursor) int {
			if x := strings.Compare(k.key, c.Key); x != 0 {
				return x
			}
			return strings.Compare(k.e.ID, c.ID)
		})
		if start < len(sel) && sel[start].key == c.Key && sel[start].e.ID == c.ID {
			start++
		}
	}
	page := pageOf(sel, start, f.Limit)
	if end := start + len(page.Items); end < len(sel) {
		last := sel[end-1]
		next := encodeCursor(cursor{Key: last.key, ID: last.e.ID})
		page.Next = &next
	}
	return page
}

// PageAt returns page number n (from 1) of size items in Select's order: the
// console's numbered pages. The filter's cursor and limit are ignored.
func PageAt(all []Endpoint, f Filter, n, size int) EndpointPage {
	sel := sorted(all, f)
	return pageOf(sel, min((max(n, 1)-1)*size, len(sel)), size)
}

func pageOf(sel []keyed, start, size int) EndpointPage {
	page := EndpointPage{Items: []Endpoint{}, Total: len(sel)}
	for _, k := range sel[start:min(start+size, len(sel))] {
		page.Items = append(page.Items, k.e)
	}
	return page
}
