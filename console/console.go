// Package console is the sidecar's web console under /ui/: server-rendered
// html/template pages over the management API's functions (api.API for the
// shown endpoints, consumer.Admin for the actions, attempts for the attempt
// log, statekv for the state history, jsstate for the streams), with its
// stylesheet and its one small script embedded. Reading works without
// JavaScript; the script only refreshes the endpoint list in place.
//
// Access is the management API's: with DOJO_WEBHOOKS_API_TOKEN a login form
// sets an HttpOnly, SameSite=Strict cookie holding an HMAC of the token (never
// the token); without a token the console answers on a loopback listener only.
// Every form that changes something carries a per-session CSRF token, and
// every page is sent with a Content-Security-Policy that allows scripts from
// the console itself only.
package console

import (
	"context"
	"crypto/rand"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/dojo-webhooks/dojo-webhooks/api"
	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/contract"
)

// Prefix is where the console is mounted.
const Prefix = "/ui/"

// Limits of the console, documented in the README.
const (
	// DefaultPageSize is the page size of the endpoint list and the attempt log when none is asked for.
	DefaultPageSize = 50
	// MaxFormBytes bounds a form's body.
	MaxFormBytes = 64 << 10
	// RefreshInterval is how often the list's script reloads the table (when the tab is visible).
	RefreshInterval = 10 * time.Second
	// ChartWindow is the span of the overview's delivery chart.
	ChartWindow = time.Hour
	// ChartBuckets is the number of bars of the chart (5 minutes each).
	ChartBuckets = 12
	// MaxChartAttempts bounds the attempt-log records one overview reads.
	MaxChartAttempts = 100_000
	// opTimeout bounds the NATS work of one page (a ping takes up to the HTTP timeout more).
	opTimeout = 30 * time.Second
)

// PageSizes are the selectable page sizes of the endpoint list and the attempt log.
var PageSizes = []int{25, 50, 100, 200}

// csp allows the console's own script and stylesheet only: no inline script or
// style, no other origin, no framing, forms posted to the console only.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config wires the console to the sidecar.
type Config struct {
	Access    api.Access // the management API's access rule
	API       *api.API   // the shown endpoints
	Admin     consumer.Admin
	JetStream jetstream.JetStream
	Names     contract.Names
	Logger    zerolog.Logger
	Now       func() time.Time // default time.Now
}

// Console serves the pages under Prefix.
type Console struct {
	cfg     Config
	csrfKey []byte // signs the per-session CSRF tokens; new at each start
	pages   map[string]*template.Template
	mux     *http.ServeMux
}

// New returns the console; mount Handler at Prefix.
func New(cfg Config) (*Console, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Console{cfg: cfg, csrfKey: make([]byte, 32), mux: http.NewServeMux()}
	if _, err := rand.Read(c.csrfKey); err != nil {
		return nil, fmt.Errorf("console: CSRF key: %w", err)
	}
	var err error
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	static, _ := fs.Sub(staticFS, "static")
	c.mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	c.mux.HandleFunc("GET /ui/login", c.loginForm)
	c.mux.HandleFunc("POST /ui/login", c.login)
	c.mux.HandleFunc("POST /ui/logout", c.authed(c.logout))
	c.mux.HandleFunc("GET /ui/{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ui/endpoints", http.StatusSeeOther)
	})
	c.mux.HandleFunc("GET /ui/endpoints", c.authed(c.listPage))
	c.mux.HandleFunc("GET /ui/endpoints/new", c.authed(c.addForm))
	c.mux.HandleFunc("POST /ui/endpoints/new", c.authed(c.add))
	c.mux.HandleFunc("GET /ui/endpoints/{id}", c.authed(c.endpointPage))
	c.mux.HandleFunc("GET /ui/endpoints/{id}/remove", c.authed(c.removeForm))
	c.mux.HandleFunc("POST /ui/endpoints/{id}/{action}", c.authed(c.action))
	c.mux.HandleFunc("GET /ui/overview", c.authed(c.overviewPage))
	c.mux.HandleFunc("GET /ui/events", c.authed(c.eventPage))
	return c, nil
}

// Handler answers the console's routes with its security headers.
func (c *Console) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin") // not no-referrer: with it, browsers send "Origin: null" on the console's own forms
		h.Set("Cache-Control", "no-store")
		if _, pattern := c.mux.Handler(r); pattern == "" {
			c.render(w, r, http.StatusNotFound, "message", "Not found", nil, message{Text: "No such page: " + r.URL.Path})
			return
		}
		c.mux.ServeHTTP(w, r)
	})
}

// ctx bounds the NATS work of one request.
func (c *Console) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), opTimeout)
}

// pageSize reads a page size parameter: one of PageSizes, else DefaultPageSize.
func pageSize(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil || !slices.Contains(PageSizes, n) {
		return DefaultPageSize
	}
	return n
}
