package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/api"
	"github.com/dojo-webhooks/dojo-webhooks/attempts"
	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/delivery"
	"github.com/dojo-webhooks/dojo-webhooks/jsstate"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// deactivateNote is the note of a deactivation when the form leaves it empty.
const deactivateNote = "Deactivated with the dojo-webhooks console"

type endpointData struct {
	E           api.Endpoint
	History     []statekv.Revision // newest first
	HistoryErr  string
	Attempts    []attempts.Record
	AttemptsErr string
	Failed      bool // the attempt log shows failures only
	Size        int
	Sizes       []int
	Older       string // URL of the next (older) page of attempts; "" on the last
	Newest      string // URL of the first page; "" when on it
	FailedURL   string // URL toggling the failed-only filter
	SnapshotErr string
}

// shownEndpoint reads one endpoint from the store (fresh after an action, where
// the watcher may lag), with the server's state; an invalid record is shown
// from the watcher, which keeps why it is invalid.
func (c *Console) shownEndpoint(ctx context.Context, id string) (e api.Endpoint, snapErr, err error) {
	entry, err := c.cfg.Admin.Store.Get(ctx, id)
	if errors.Is(err, statekv.ErrInvalidRecord) {
		e, err = c.cfg.API.Endpoint(ctx, id)
		return e, nil, err
	}
	if err != nil {
		return api.Endpoint{}, nil, err
	}
	snap, snapErr := jsstate.ReadSnapshot(ctx, c.cfg.JetStream, c.cfg.Names)
	st, known := snap.Endpoints[id]
	v := statekv.View{ID: id, Record: entry.Record, Revision: entry.Revision, Modified: entry.Modified}
	return api.EndpointOf(v, st, known && snapErr == nil), snapErr, nil
}

func (c *Console) endpointPage(w http.ResponseWriter, r *http.Request, s session) {
	id := r.PathValue("id")
	ctx, cancel := c.ctx(r)
	defer cancel()
	e, snapErr, err := c.shownEndpoint(ctx, id)
	if err != nil {
		c.notFound(w, r, s, err)
		return
	}
	v := r.URL.Query()
	d := endpointData{E: e, Failed: v.Get("failed") == "1", Size: pageSize(v.Get("size")), Sizes: PageSizes}
	if snapErr != nil {
		d.SnapshotErr = snapErr.Error()
	}
	if revs, err := c.cfg.Admin.Store.History(ctx, id); err != nil {
		d.HistoryErr = err.Error()
	} else {
		slices.Reverse(revs)
		d.History = revs
	}
	q := attempts.Query{Endpoint: id, Limit: d.Size}
	if d.Failed {
		q.Outcome = "failed"
	}
	q.Cursor = v.Get("before")
	if q.Validate() != nil {
		q.Cursor = "" // a cursor this log never gave: from the newest
	}
	page, err := attempts.List(ctx, c.cfg.JetStream, c.cfg.Names, q)
	if err != nil {
		d.AttemptsErr = err.Error()
	}
	d.Attempts = page.Items
	link := func(failed bool, before string) string {
		u := url.Values{}
		if failed {
			u.Set("failed", "1")
		}
		if d.Size != DefaultPageSize {
			u.Set("size", strconv.Itoa(d.Size))
		}
		if before != "" {
			u.Set("before", before)
		}
		path := "/ui/endpoints/" + url.PathEscape(id)
		if len(u) > 0 {
			path += "?" + u.Encode()
		}
		return path + "#attempts"
	}
	if page.Next != "" {
		d.Older = link(d.Failed, page.Next)
	}
	if q.Cursor != "" {
		d.Newest = link(d.Failed, "")
	}
	d.FailedURL = link(!d.Failed, "")
	c.render(w, r, http.StatusOK, "endpoint", e.Name+" ("+e.ID+")", &s, d)
}

func (c *Console) notFound(w http.ResponseWriter, r *http.Request, s session, err error) {
	status := http.StatusServiceUnavailable
	if errors.Is(err, statekv.ErrNotFound) || errors.Is(err, statekv.ErrInvalidRecord) {
		status = http.StatusNotFound
	}
	c.render(w, r, status, "message", "Endpoint", &s, message{Error: true, Text: err.Error()})
}

// removeForm is the confirmation step before a remove.
func (c *Console) removeForm(w http.ResponseWriter, r *http.Request, s session) {
	ctx, cancel := c.ctx(r)
	defer cancel()
	e, _, err := c.shownEndpoint(ctx, r.PathValue("id"))
	if err != nil {
		c.notFound(w, r, s, err)
		return
	}
	c.render(w, r, http.StatusOK, "remove", "Remove "+e.ID, &s, e)
}

// secretData is the page that shows a new signing secret, once.
type secretData struct {
	ID, Secret string
	Until      time.Time
}

// action runs one button of the endpoint page and goes back to it with the outcome.
func (c *Console) action(w http.ResponseWriter, r *http.Request, s session) {
	id := r.PathValue("id")
	ctx, cancel := c.ctx(r)
	defer cancel()
	admin := c.cfg.Admin
	back := "/ui/endpoints/" + url.PathEscape(id)
	done := func(err error, format string, args ...any) {
		m := message{Text: fmt.Sprintf(format, args...)}
		if err != nil {
			m = message{Error: true, Text: err.Error()}
		}
		setFlash(w, r, m)
		http.Redirect(w, r, back, http.StatusSeeOther)
	}
	switch r.PathValue("action") {
	case "ping":
		res, err := admin.Ping(ctx, id)
		done(err, "Ping answered %d in %s.", res.StatusCode, res.Duration.Round(time.Millisecond))
	case "activate":
		_, changed, err := admin.Activate(ctx, id)
		done(err, "Activated (the ping answered 2xx)%s.", unchanged(changed))
	case "deactivate":
		note := strings.TrimSpace(r.PostForm.Get("note"))
		if note == "" {
			note = deactivateNote
		}
		_, changed, err := admin.Deactivate(ctx, id, note)
		done(err, "Deactivated%s.", unchanged(changed))
	case "skip":
		n, from, err := admin.Skip(ctx, id)
		done(err, "Skipped %d waiting events; deliveries restart from %s.", n, formatTime(from))
	case "replay":
		n, err := admin.Replay(ctx, id, time.Time{})
		done(err, "Replayed %d dead letters.", n)
	case "replay-since":
		since, err := consumer.ParseSince(strings.TrimSpace(r.PostForm.Get("since")), c.cfg.Now())
		if err != nil {
			done(fmt.Errorf("since: %w", err), "")
			return
		}
		n, err := admin.Replay(ctx, id, since)
		done(err, "Replayed %d events published since %s.", n, formatTime(since))
	case "rotate-secret":
		e, secret, err := admin.RotateSecret(ctx, id)
		if err != nil {
			done(err, "")
			return
		}
		c.render(w, r, http.StatusOK, "secret", "New signing secret", &s,
			secretData{ID: id, Secret: secret, Until: e.Record.PreviousSecretUntil})
	case "remove":
		if r.PostForm.Get("confirm") != id {
			done(errors.New("remove: not confirmed"), "")
			return
		}
		if err := admin.Store.Delete(ctx, id); err != nil {
			done(err, "")
			return
		}
		setFlash(w, r, message{Text: "Endpoint " + id + " removed."})
		http.Redirect(w, r, "/ui/endpoints", http.StatusSeeOther)
	default:
		c.render(w, r, http.StatusNotFound, "message", "Not found", &s, message{Error: true, Text: "no such action: " + r.PathValue("action")})
	}
}

func unchanged(changed bool) string {
	if changed {
		return ""
	}
	return " (it already was: nothing changed)"
}

// addFields are the add form's fields: those of `endpoint add`.
type addFields struct {
	ID, Name, URL, Owner, Events, HeaderName, HeaderValue string
	Secret                                                string // "", "auto" or "given"
	GivenSecret                                           string
}

type addData struct {
	Form  addFields
	Error string
}

// addedData is the page after an add: the ping's result and the secret, once.
type addedData struct {
	ID, Secret string
	Ping       delivery.Result
}

func (c *Console) addForm(w http.ResponseWriter, r *http.Request, s session) {
	c.render(w, r, http.StatusOK, "add", "Add endpoint", &s, addData{})
}

// add stores an endpoint as `endpoint add` does: the same checks, a ping
// first; a refusal shows why with the form still filled in.
func (c *Console) add(w http.ResponseWriter, r *http.Request, s session) {
	p := r.PostForm
	f := addFields{ID: strings.TrimSpace(p.Get("id")), Name: strings.TrimSpace(p.Get("name")), URL: strings.TrimSpace(p.Get("url")),
		Owner: strings.TrimSpace(p.Get("owner")), Events: p.Get("events"), HeaderName: strings.TrimSpace(p.Get("header_name")),
		HeaderValue: p.Get("header_value"), Secret: p.Get("secret"), GivenSecret: strings.TrimSpace(p.Get("given_secret"))}
	refuse := func(err error) {
		c.render(w, r, http.StatusUnprocessableEntity, "add", "Add endpoint", &s, addData{Form: f, Error: err.Error()})
	}
	rec := statekv.Record{ID: f.ID, Name: f.Name, URL: f.URL, Owner: f.Owner, HeaderName: f.HeaderName, HeaderValue: f.HeaderValue}
	if rec.Name == "" {
		rec.Name = rec.ID
	}
	if err := rec.CheckHeader(); err != nil {
		refuse(err)
		return
	}
	switch f.Secret {
	case "":
	case "auto":
		secret, err := delivery.GenerateSecret()
		if err != nil {
			refuse(err)
			return
		}
		rec.Secret = secret
	case "given":
		if f.GivenSecret == "" {
			refuse(errors.New("signing secret: paste a whsec_ secret, or choose none or generate"))
			return
		}
		rec.Secret = f.GivenSecret
	default:
		refuse(fmt.Errorf("signing secret %q: must be none, auto or given", f.Secret))
		return
	}
	for _, e := range strings.Split(f.Events, ",") {
		if e = strings.TrimSpace(e); e != "" {
			rec.Events = append(rec.Events, e)
		}
	}
	ctx, cancel := c.ctx(r)
	defer cancel()
	_, res, err := c.cfg.Admin.Add(ctx, rec)
	if errors.Is(err, consumer.ErrPingFailed) {
		refuse(fmt.Errorf("%w; endpoint not stored", err))
		return
	}
	if err != nil {
		refuse(err)
		return
	}
	d := addedData{ID: rec.ID, Ping: res}
	if f.Secret == "auto" {
		d.Secret = rec.Secret
	}
	c.render(w, r, http.StatusCreated, "added", "Endpoint added", &s, d)
}
