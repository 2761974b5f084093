package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/jsstate"

	"github.com/dojo-webhooks/dojo-webhooks/attempts"
	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/delivery"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// EndpointInput is the body of POST /api/v1/endpoints and PATCH
// /api/v1/endpoints/{id}: the fields of `endpoint add`. In a PATCH an absent
// field is left as it is; null or "" clears it.
type EndpointInput struct {
	ID          string    `json:"id"`
	Name        *string   `json:"name"`
	URL         *string   `json:"url"`
	Owner       *string   `json:"owner"`
	Events      *[]string `json:"events"`
	HeaderName  *string   `json:"header_name"`
	HeaderValue *string   `json:"header_value"`
	// Secret is "auto" to generate a signing secret (returned once), or a whsec_ secret; POST only.
	Secret string `json:"secret"`
}

// apply copies the given fields onto rec.
func (in EndpointInput) apply(rec *statekv.Record) {
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = strings.TrimSpace(*v)
		}
	}
	set(&rec.Name, in.Name)
	set(&rec.URL, in.URL)
	set(&rec.Owner, in.Owner)
	set(&rec.HeaderName, in.HeaderName)
	if in.HeaderValue != nil {
		rec.HeaderValue = *in.HeaderValue
	}
	if in.Events != nil {
		rec.Events = nil
		for _, e := range *in.Events {
			if e = strings.TrimSpace(e); e != "" {
				rec.Events = append(rec.Events, e)
			}
		}
	}
}

// decode reads a JSON body into v; an empty body is allowed when optional.
func decode(r *http.Request, v any, optional bool) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if errors.Is(err, io.EOF) && optional {
		return nil
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return fmt.Errorf("body larger than %d bytes", MaxBodyBytes)
	}
	if err != nil {
		return fmt.Errorf("body: %v", err)
	}
	return nil
}

func (a *API) createEndpoint(w http.ResponseWriter, r *http.Request) {
	var in EndpointInput
	if err := decode(r, &in, false); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	rec := statekv.Record{ID: in.ID}
	in.apply(&rec)
	if rec.Name == "" {
		rec.Name = rec.ID
	}
	secret := ""
	switch in.Secret {
	case "":
	case "auto":
		s, err := delivery.GenerateSecret()
		if err != nil {
			a.fail(w, err)
			return
		}
		rec.Secret, secret = s, s
	default:
		rec.Secret = in.Secret
	}
	if err := statekv.ValidateID(rec.ID); err != nil {
		a.fail(w, err)
		return
	}
	if err := rec.CheckHeader(); err != nil {
		a.fail(w, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), opTimeout)
	defer cancel()
	e, res, err := a.cfg.Admin.Add(ctx, rec)
	if err != nil {
		a.fail(w, err)
		return
	}
	out := struct {
		Endpoint
		Ping   pingResult `json:"ping"`
		Secret string     `json:"signing_secret,omitempty"` // shown once
	}{a.shown(ctx, e), pingOf(res), secret}
	writeJSON(w, http.StatusCreated, out)
}

func (a *API) patchEndpoint(w http.ResponseWriter, r *http.Request) {
	var in EndpointInput
	if err := decode(r, &in, false); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	id := r.PathValue("id")
	if in.ID != "" && in.ID != id {
		writeError(w, http.StatusBadRequest, "id cannot be changed")
		return
	}
	if in.Secret != "" {
		writeError(w, http.StatusBadRequest, "secret: use POST /api/v1/endpoints/"+id+"/rotate-secret")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), opTimeout)
	defer cancel()
	e, _, err := a.cfg.Admin.Store.Update(ctx, id, func(rec statekv.Record) (statekv.Record, bool, error) {
		in.apply(&rec)
		if err := rec.CheckHeader(); err != nil {
			return rec, false, err
		}
		if in.Name != nil {
			if err := a.cfg.Admin.Store.NameFree(ctx, rec); err != nil {
				return rec, false, err
			}
		}
		return rec, true, nil
	})
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, a.shown(ctx, e))
}

// shown is the shown form of an entry just written (the watcher may not have seen it yet).
func (a *API) shown(ctx context.Context, e statekv.Entry) Endpoint {
	snap, err := jsstate.ReadSnapshot(ctx, a.cfg.JetStream, a.cfg.Names)
	st, known := snap.Endpoints[e.Record.ID]
	return EndpointOf(statekv.View{ID: e.Record.ID, Record: e.Record, Revision: e.Revision, Modified: e.Modified}, st, known && err == nil)
}

func (a *API) deleteEndpoint(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), opTimeout)
	defer cancel()
	if err := a.cfg.Admin.Store.Delete(ctx, r.PathValue("id")); err != nil {
		a.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// pingResult is what a ping got, as the API shows it.
type pingResult struct {
	Status     int     `json:"status"`
	Outcome    string  `json:"outcome"`
	Note       string  `json:"note"`
	DurationMS float64 `json:"duration_ms"`
}

func pingOf(res delivery.Result) pingResult {
	return pingResult{Status: res.StatusCode, Outcome: res.Class.String(), Note: res.Note,
		DurationMS: float64(res.Duration.Microseconds()) / 1000}
}

// Actions are the operations POST /api/v1/endpoints/{id}/{action} runs.
var Actions = []string{"activate", "deactivate", "ping", "skip", "replay", "rotate-secret"}

func (a *API) action(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	ctx, cancel := context.WithTimeout(r.Context(), opTimeout)
	defer cancel()
	admin := a.cfg.Admin
	var body struct {
		Note  string `json:"note"`  // deactivate
		Since string `json:"since"` // replay: RFC 3339 time or a duration ago; empty = the dead letters
	}
	if err := decode(r, &body, true); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	switch r.PathValue("action") {
	case "activate":
		e, _, err := admin.Activate(ctx, id)
		if err != nil {
			a.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, a.shown(ctx, e))
	case "deactivate":
		note := body.Note
		if note == "" {
			note = "Deactivated with the dojo-webhooks API"
		}
		e, _, err := admin.Deactivate(ctx, id, note)
		if err != nil {
			a.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, a.shown(ctx, e))
	case "ping":
		res, err := admin.Ping(ctx, id)
		if err != nil && !errors.Is(err, consumer.ErrPingFailed) {
			a.fail(w, err)
			return
		}
		if err != nil {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{"error": oneLineError(err), "ping": pingOf(res)})
			return
		}
		writeJSON(w, http.StatusOK, pingOf(res))
		return
	case "skip":
		n, from, err := admin.Skip(ctx, id)
		if err != nil {
			a.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"skipped": n, "deliver_from": from})
		return
	case "replay":
		var since time.Time
		if body.Since != "" {
			var err error
			if since, err = consumer.ParseSince(body.Since, time.Now()); err != nil {
				writeError(w, http.StatusBadRequest, "since: "+err.Error())
				return
			}
		}
		n, err := admin.Replay(ctx, id, since)
		if err != nil {
			a.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"replayed": n})
		return
	case "rotate-secret":
		e, secret, err := admin.RotateSecret(ctx, id)
		if err != nil {
			a.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"signing_secret": secret, "previous_secret_until": e.Record.PreviousSecretUntil})
		return
	default:
		writeError(w, http.StatusNotFound, "no such action: "+r.PathValue("action"))
	}
}

func (a *API) endpointAttempts(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, ok := a.cfg.Watcher.Get(id); !ok {
		writeError(w, http.StatusNotFound, statekv.ErrNotFound.Error()+": "+id)
		return
	}
	q := r.URL.Query()
	aq := attempts.Query{Endpoint: id, Outcome: q.Get("outcome"), Event: q.Get("event")}
	var err error
	if aq.Limit, err = intParam(q.Get("limit")); err != nil {
		writeError(w, http.StatusBadRequest, "limit: "+err.Error())
		return
	}
	if s := q.Get("since"); s != "" {
		if aq.Since, err = consumer.ParseSince(s, time.Now()); err != nil {
			writeError(w, http.StatusBadRequest, "since: "+err.Error())
			return
		}
	}
	aq.Cursor = q.Get("cursor")
	if err := aq.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), opTimeout)
	defer cancel()
	page, err := attempts.List(ctx, a.cfg.JetStream, a.cfg.Names, aq)
	if err != nil && !errors.Is(err, attempts.ErrNoLog) {
		a.fail(w, err)
		return
	}
	out := struct {
		Items []attempts.Record `json:"items"`
		Next  *string           `json:"next"`
	}{Items: page.Items}
	if out.Items == nil {
		out.Items = []attempts.Record{}
	}
	if page.Next != "" {
		out.Next = &page.Next
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) eventAttempts(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("webhook_id")
	if id == "" {
		writeError(w, http.StatusBadRequest, "webhook_id: required")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), opTimeout)
	defer cancel()
	list, err := attempts.ForWebhookID(ctx, a.cfg.JetStream, a.cfg.Names, id)
	if err != nil && !errors.Is(err, attempts.ErrNoLog) {
		a.fail(w, err)
		return
	}
	if list == nil {
		list = []attempts.Record{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": list})
}

func (a *API) endpointHistory(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), opTimeout)
	defer cancel()
	revs, err := a.cfg.Admin.Store.History(ctx, r.PathValue("id"))
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": revs})
}
