package delivery

import (
	"context"
	"errors"
	"net/http"
	"net/url"
)

// MaxRedirects is how many redirects one attempt follows; the next one fails it (Permanent).
const MaxRedirects = 10

// ErrTooManyRedirects is matched (errors.Is) by the error of an attempt
// redirected more than MaxRedirects times.
var ErrTooManyRedirects = errors.New("stopped after 10 redirects")

// DefaultInstance is the X-DefectDojo-Instance sent when Request.Instance is
// empty: DefectDojo's own default SITE_URL, so the header is always there, as
// DefectDojo always sends it.
const DefaultInstance = "http://localhost:8080"

// headerNameKey carries a request's extra header name to checkRedirect.
type headerNameKey struct{}

// withHeaderName tells checkRedirect which extra header to drop on a cross-host hop.
func withHeaderName(ctx context.Context, name string) context.Context {
	if name == "" {
		return ctx
	}
	return context.WithValue(ctx, headerNameKey{}, name)
}

// checkRedirect follows a redirect as DefectDojo's requests library does
// (net/http already turns a 301, 302 or 303 into a GET without body and keeps
// the method and body of a 307 or 308): at most MaxRedirects hops, and once a
// hop left the first host, the Authorization header and the record's extra
// header are not sent again. Each hop is dialled by the same transport, so the
// safe-destination guard checks every hop's address.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > MaxRedirects {
		return ErrTooManyRedirects
	}
	crossed := false
	for i := range via {
		next := req.URL
		if i+1 < len(via) {
			next = via[i+1].URL
		}
		crossed = crossed || stripsAuth(via[i].URL, next)
	}
	if crossed {
		req.Header.Del("Authorization")
		if name, _ := req.Context().Value(headerNameKey{}).(string); name != "" {
			req.Header.Del(name)
		}
	}
	return nil
}

// noRedirects returns every 3xx as the answer (classified Permanent, its Location in the note).
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// stripsAuth is requests' should_strip_auth: a hop to another host name, or to
// another scheme or port, except http→https on the default ports.
func stripsAuth(from, to *url.URL) bool {
	if from.Hostname() != to.Hostname() {
		return true
	}
	fp, tp := from.Port(), to.Port()
	if from.Scheme == "http" && (fp == "" || fp == "80") && to.Scheme == "https" && (tp == "" || tp == "443") {
		return false
	}
	def := map[string]string{"http": "80", "https": "443"}[from.Scheme]
	if from.Scheme == to.Scheme && (fp == "" || fp == def) && (tp == "" || tp == def) {
		return false
	}
	return fp != tp || from.Scheme != to.Scheme
}
