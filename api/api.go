// Package api is the management API under /api/v1/: JSON over HTTP on the
// sidecar's HTTP server, calling the same functions as the CLI (statekv for
// records, consumer for ping, add, activate, skip and replay, attempts for the
// attempt log). Secrets are never returned, except a new signing secret once.
//
// Access: a bearer token (DOJO_WEBHOOKS_API_TOKEN), compared in constant time;
// with no token the API answers only when the HTTP server listens on loopback.
package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/jsstate"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// Prefix is where the API is mounted.
const Prefix = "/api/v1/"

// Limits of one API request, documented in the README.
const (
	// MaxBodyBytes bounds a request body.
	MaxBodyBytes = 64 << 10
	// opTimeout bounds the NATS work of one request (a ping takes up to the HTTP timeout more).
	opTimeout = 30 * time.Second
)

// Config wires the API to the sidecar.
type Config struct {
	Access    Access
	Names     contract.Names
	JetStream jetstream.JetStream
	Watcher   *statekv.Watcher
	Admin     consumer.Admin // the endpoint actions, as the CLI runs them
	Logger    zerolog.Logger
}

// API serves /api/v1/.
type API struct {
	cfg Config
	mux *http.ServeMux
}

// route is one registered operation; the OpenAPI document is checked against them.
type route struct {
	method, path string
	handler      func(http.ResponseWriter, *http.Request)
}

// New returns the API; mount Handler at Prefix.
func New(cfg Config) *API {
	a := &API{cfg: cfg, mux: http.NewServeMux()}
	for _, rt := range a.routes() {
		a.mux.HandleFunc(rt.method+" "+rt.path, rt.handler)
	}
	return a
}

func (a *API) routes() []route {
	return []route{
		{"GET", "/api/v1/openapi.json", a.openAPI},
		{"GET", "/api/v1/endpoints", a.listEndpoints},
		{"POST", "/api/v1/endpoints", a.createEndpoint},
		{"GET", "/api/v1/endpoints/{id}", a.getEndpoint},
		{"PATCH", "/api/v1/endpoints/{id}", a.patchEndpoint},
		{"DELETE", "/api/v1/endpoints/{id}", a.deleteEndpoint},
		{"POST", "/api/v1/endpoints/{id}/{action}", a.action}, // Actions
		{"GET", "/api/v1/endpoints/{id}/attempts", a.endpointAttempts},
		{"GET", "/api/v1/endpoints/{id}/history", a.endpointHistory},
		{"GET", "/api/v1/attempts", a.eventAttempts},
	}
}

// Handler answers the API's routes, after the access check.
func (a *API) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.cfg.Access.Allowed(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="dojo-webhooks"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong API token (Authorization: Bearer <DOJO_WEBHOOKS_API_TOKEN>)")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		if _, pattern := a.mux.Handler(r); pattern == "" {
			writeError(w, http.StatusNotFound, "no such API route: "+r.Method+" "+r.URL.Path)
			return
		}
		a.mux.ServeHTTP(w, r)
	})
}

// Endpoints returns every endpoint in its shown form, with the server's state
// when it could be read (snapshotErr says why not).
func (a *API) Endpoints(ctx context.Context) (list []Endpoint, snapshotErr error) {
	snap, err := jsstate.ReadSnapshot(ctx, a.cfg.JetStream, a.cfg.Names)
	for _, v := range a.cfg.Watcher.List() {
		st, ok := snap.Endpoints[v.ID]
		list = append(list, EndpointOf(v, st, ok && err == nil))
	}
	return list, err
}

// Endpoint returns one endpoint in its shown form; statekv.ErrNotFound when there is none.
func (a *API) Endpoint(ctx context.Context, id string) (Endpoint, error) {
	v, ok := a.cfg.Watcher.Get(id)
	if !ok {
		return Endpoint{}, statekv.ErrNotFound
	}
	snap, err := jsstate.ReadSnapshot(ctx, a.cfg.JetStream, a.cfg.Names)
	st, known := snap.Endpoints[id]
	return EndpointOf(v, st, known && err == nil), nil
}

func (a *API) listEndpoints(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := Filter{Status: q.Get("status"), Owner: q.Get("owner"), Q: q.Get("q"), Sort: q.Get("sort"), Cursor: q.Get("cursor")}
	var err error
	if f.Limit, err = intParam(q.Get("limit")); err != nil {
		writeError(w, http.StatusBadRequest, "limit: "+err.Error())
		return
	}
	if err := f.Validate(); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), opTimeout)
	defer cancel()
	all, _ := a.Endpoints(ctx)
	writeJSON(w, http.StatusOK, Select(all, f))
}

func (a *API) getEndpoint(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), opTimeout)
	defer cancel()
	e, err := a.Endpoint(ctx, r.PathValue("id"))
	if err != nil {
		a.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, e)
}

// fail answers an error with its status: 404 for a missing endpoint, 409 for a
// conflict, 422 for a record that does not validate, 503 for NATS trouble.
func (a *API) fail(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, statekv.ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, statekv.ErrExists), errors.Is(err, statekv.ErrNameTaken):
		writeError(w, http.StatusConflict, err.Error())
	case errors.Is(err, statekv.ErrInvalidRecord), errors.Is(err, consumer.ErrPingFailed):
		writeError(w, http.StatusUnprocessableEntity, err.Error())
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, jetstream.ErrNoStreamResponse):
		writeError(w, http.StatusServiceUnavailable, "NATS did not answer in time: "+err.Error())
	default:
		a.cfg.Logger.Error().Err(err).Msg("management API request failed")
		writeError(w, http.StatusServiceUnavailable, err.Error())
	}
}

func intParam(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, errors.New("not a number")
	}
	return n, nil
}

func (a *API) openAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(openapiJSON)
}
