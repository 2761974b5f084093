package console

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/api"
)

// pageNames are the templates that are pages (each defines "content" for the layout).
var pageNames = []string{"list", "endpoint", "add", "added", "remove", "secret", "overview", "events", "login", "message"}

// view is what the layout renders: the page's title, who is there and the page's data.
type view struct {
	Title    string
	Nav      string // the menu entry to mark as current
	CSRF     string // the session's CSRF token, for the forms
	Authed   bool   // the visitor may use the console (the menu is shown)
	LoggedIn bool   // the visitor logged in with the token (a logout button is shown)
	Flash    *message
	Data     any
}

// message is a line shown above a page: an outcome or a refusal.
type message struct {
	Error bool
	Text  string
}

var funcs = template.FuncMap{
	"ts":      formatTime,
	"tsp":     func(t *time.Time) string { return formatTimePtr(t) },
	"since":   formatSince,
	"badge":   badgeClass,
	"deref":   func(p *uint64) uint64 { return *p },
	"join":    strings.Join,
	"bytes":   formatBytes,
	"percent": func(n, of float64) string { return fmt.Sprintf("%.0f%%", 100*n/of) },
	"add":     func(a, b int) int { return a + b },
}

func parsePages() (map[string]*template.Template, error) {
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("console templates: %w", err)
	}
	pages := map[string]*template.Template{}
	for _, name := range pageNames {
		t, err := template.Must(base.Clone()).ParseFS(templateFS, "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// navOf is the menu entry a page belongs to.
func navOf(page string) string {
	switch page {
	case "list", "endpoint", "remove", "secret":
		return "endpoints"
	case "add", "added":
		return "add"
	}
	return page
}

// render writes one page; s is nil on the pages shown before a login.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, page, title string, s *session, data any) {
	v := view{Title: title, Nav: navOf(page), Data: data}
	if s != nil {
		v.Authed, v.LoggedIn, v.CSRF = true, s.loggedIn, c.csrfToken(s.value)
		v.Flash = takeFlash(w, r)
	}
	var buf bytes.Buffer
	if err := c.pages[page].ExecuteTemplate(&buf, "layout.html", v); err != nil {
		c.cfg.Logger.Error().Err(err).Str("page", page).Msg("console page failed to render")
		http.Error(w, "the page failed to render", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// flashCookie carries an action's outcome to the page it redirects to.
const flashCookie = "dojo_webhooks_flash"

// flashMaxAge is how long an unread outcome is kept, in seconds.
const flashMaxAge = 60

// setFlash keeps m for the next page (never a secret: the new signing secret is rendered, not redirected).
func setFlash(w http.ResponseWriter, r *http.Request, m message) {
	b, _ := json.Marshal(m)
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: base64.RawURLEncoding.EncodeToString(b), Path: Prefix,
		MaxAge: flashMaxAge, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

// takeFlash reads and clears the outcome kept for this page.
func takeFlash(w http.ResponseWriter, r *http.Request) *message {
	ck, err := r.Cookie(flashCookie)
	if err != nil {
		return nil
	}
	http.SetCookie(w, &http.Cookie{Name: flashCookie, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	var m message
	b, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil || json.Unmarshal(b, &m) != nil || m.Text == "" {
		return nil
	}
	return &m
}

// timeLayout is how the console writes times: UTC, to the second.
const timeLayout = "2006-01-02 15:04:05Z"

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format(timeLayout)
}

func formatTimePtr(t *time.Time) string {
	if t == nil {
		return "—"
	}
	return formatTime(*t)
}

// formatSince is a time as an age, e.g. "3m ago".
func formatSince(t *time.Time) string {
	if t == nil {
		return ""
	}
	d := time.Since(*t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// badgeClass is the CSS class of a status badge.
func badgeClass(status string) string {
	switch status {
	case "active", "active_tmp", "inactive_tmp", "inactive_permanent", api.StatusInvalid:
		return "badge badge-" + status
	}
	return "badge"
}

func formatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
