package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
)

// SessionCookie is the console's session cookie: with a token, an HMAC of the
// token (never the token itself); without one, a random value that the CSRF
// tokens are bound to.
const SessionCookie = "dojo_webhooks_console"

// sessionLabel is what the token signs to make the session value.
const sessionLabel = "dojo-webhooks console session v1"

// csrfField is the hidden form field that carries the CSRF token.
const csrfField = "csrf"

// session is who a request is: its session value (for the CSRF token) and
// whether it may log out (a token is configured).
type session struct {
	value    string
	loggedIn bool
}

// sessionValue is the session cookie's value for the configured token.
func (c *Console) sessionValue() string {
	m := hmac.New(sha256.New, []byte(c.cfg.Access.Token))
	m.Write([]byte(sessionLabel))
	return hex.EncodeToString(m.Sum(nil))
}

// csrfToken is the CSRF token of a session value.
func (c *Console) csrfToken(sessionValue string) string {
	if sessionValue == "" {
		return ""
	}
	m := hmac.New(sha256.New, c.csrfKey)
	m.Write([]byte(sessionValue))
	return hex.EncodeToString(m.Sum(nil))
}

// authenticate returns the request's session, or false when it may not use the
// console: without a token, every request on a loopback listener may (it gets
// a random session cookie when it has none); with one, only a request with the
// session cookie, or with the token as a bearer header (reading only: no cookie,
// so no CSRF token).
func (c *Console) authenticate(w http.ResponseWriter, r *http.Request) (session, bool) {
	acc := c.cfg.Access
	if !acc.Enabled() {
		return session{}, false
	}
	cookie, _ := r.Cookie(SessionCookie)
	if acc.Token == "" {
		if cookie != nil && len(cookie.Value) == 64 {
			return session{value: cookie.Value}, true
		}
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		v := hex.EncodeToString(b)
		setSession(w, r, v)
		return session{value: v}, true
	}
	if cookie != nil && subtle.ConstantTimeCompare([]byte(cookie.Value), []byte(c.sessionValue())) == 1 {
		return session{value: cookie.Value, loggedIn: true}, true
	}
	if acc.Allowed(r) {
		return session{loggedIn: true}, true
	}
	return session{}, false
}

func setSession(w http.ResponseWriter, r *http.Request, value string) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: value, Path: Prefix, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

// sessionHandler is a page handler given the request's session.
type sessionHandler func(http.ResponseWriter, *http.Request, session)

// authed wraps a page: a request that may not use the console is sent to the
// login form (when a token can log in) or refused; a POST must carry its
// session's CSRF token and come from the console's own origin.
func (c *Console) authed(h sessionHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, ok := c.authenticate(w, r)
		if !ok {
			if c.cfg.Access.Token == "" {
				c.render(w, r, http.StatusForbidden, "message", "Console off", nil,
					message{Text: "The console answers on a loopback listener only unless DOJO_WEBHOOKS_API_TOKEN is set."})
				return
			}
			http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, MaxFormBytes)
			if err := r.ParseForm(); err != nil {
				c.render(w, r, http.StatusBadRequest, "message", "Bad form", &s, message{Text: "The form could not be read: " + err.Error()})
				return
			}
			if !c.csrfOK(r, s) {
				c.render(w, r, http.StatusForbidden, "message", "Form refused", &s,
					message{Text: "This form is stale or was sent from another site (its CSRF token does not match). Reload the page and try again."})
				return
			}
		}
		h(w, r, s)
	}
}

// csrfOK checks a POST's CSRF token in constant time, and its Origin when the browser sent one.
func (c *Console) csrfOK(r *http.Request, s session) bool {
	if !sameOrigin(r) {
		return false
	}
	want := c.csrfToken(s.value)
	got := r.PostForm.Get(csrfField)
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// sameOrigin reports whether the request's Origin header, when present, names this host.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host == r.Host
}

// safeNext is the page to go to after the login: a console path, else the list.
func safeNext(next string) string {
	if strings.HasPrefix(next, Prefix) && !strings.HasPrefix(next, "//") && !strings.Contains(next, "\\") {
		return next
	}
	return "/ui/endpoints"
}

type loginData struct {
	Next  string
	Error string
}

func (c *Console) loginForm(w http.ResponseWriter, r *http.Request) {
	if c.cfg.Access.Token == "" {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "login", "Log in", nil, loginData{Next: safeNext(r.URL.Query().Get("next"))})
}

// login sets the session cookie when the form's token is the configured one.
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, MaxFormBytes)
	if err := r.ParseForm(); err != nil || !sameOrigin(r) || c.cfg.Access.Token == "" {
		http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	if !c.cfg.Access.Matches(strings.TrimSpace(r.PostForm.Get("token"))) {
		c.cfg.Logger.Warn().Str("remote", r.RemoteAddr).Msg("console login refused: wrong token")
		c.render(w, r, http.StatusUnauthorized, "login", "Log in", nil, loginData{Next: next, Error: "Wrong token."})
		return
	}
	setSession(w, r, c.sessionValue())
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, _ session) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: Prefix, MaxAge: -1, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}
