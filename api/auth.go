package api

import (
	"crypto/subtle"
	"net"
	"net/http"
	"strings"
)

// Access decides who may use the management API and the console.
type Access struct {
	// Token is DOJO_WEBHOOKS_API_TOKEN; empty = none.
	Token string
	// Loopback reports whether the HTTP server listens on loopback only.
	Loopback bool
	// CookieName is the console's session cookie carrying the token; empty = none.
	CookieName string
}

// Enabled reports whether the API answers at all: with a token always; without
// one only on a loopback listener, where only local processes can reach it.
func (a Access) Enabled() bool { return a.Token != "" || a.Loopback }

// Allowed reports whether r carries the token (as "Authorization: Bearer <token>"
// or the console's cookie), or no token is needed. The comparison takes constant time.
func (a Access) Allowed(r *http.Request) bool {
	if !a.Enabled() {
		return false
	}
	if a.Token == "" {
		return true
	}
	if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		if a.Matches(strings.TrimSpace(tok)) {
			return true
		}
	}
	if a.CookieName != "" {
		if c, err := r.Cookie(a.CookieName); err == nil && a.Matches(c.Value) {
			return true
		}
	}
	return false
}

// Matches compares a presented token with the configured one in constant time.
func (a Access) Matches(presented string) bool {
	return a.Token != "" && subtle.ConstantTimeCompare([]byte(presented), []byte(a.Token)) == 1
}

// IsLoopback reports whether a listen address (host:port, as given to
// DOJO_WEBHOOKS_HTTP_ADDR) accepts connections from this machine only: an
// empty host or 0.0.0.0 listens on every interface.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
