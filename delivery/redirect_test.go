package delivery_test

import (
	"errors"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/delivery"
)

// hop is one request a redirect target got.
type hop struct {
	method string
	header http.Header
	body   string
}

// target records the requests it gets and answers 204.
type target struct {
	mu   sync.Mutex
	hops []hop
}

func (tg *target) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	tg.mu.Lock()
	tg.hops = append(tg.hops, hop{method: r.Method, header: r.Header.Clone(), body: string(b)})
	tg.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (tg *target) only(t *testing.T) hop {
	t.Helper()
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if len(tg.hops) != 1 {
		t.Fatalf("the redirect target got %d requests, want 1", len(tg.hops))
	}
	return tg.hops[0]
}

// redirector answers every request with code and a Location of to.
func redirector(t *testing.T, code int, to string) string {
	return newServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Location", to)
		w.WriteHeader(code)
	}).URL
}

// A 307 (and 308) keeps the method and the body, a 302 (and 301, 303) becomes
// a GET without body, as Python requests does; the final answer is classified.
// On the same host the auth headers go along.
func TestRedirectMethodAndBody(t *testing.T) {
	body := `{"title":"moved"}`
	for _, tt := range []struct {
		code       int
		method     string
		body       string
		noLength   bool
		redirected bool
	}{
		{http.StatusTemporaryRedirect, http.MethodPost, body, false, true},
		{http.StatusPermanentRedirect, http.MethodPost, body, false, true},
		{http.StatusFound, http.MethodGet, "", true, true},
		{http.StatusMovedPermanently, http.MethodGet, "", true, true},
		{http.StatusSeeOther, http.MethodGet, "", true, true},
	} {
		t.Run(http.StatusText(tt.code), func(t *testing.T) {
			tg := &target{}
			final := newServer(t, tg.ServeHTTP)
			from := redirector(t, tt.code, final.URL+"/final")
			res := delivery.New(delivery.Options{}).Send(t.Context(), delivery.Request{URL: from + "/hook", Event: "scan_added",
				Body: []byte(body), ID: "id-1", HeaderName: "Authorization", HeaderValue: "Token abc"})
			if res.Class != delivery.Success || res.StatusCode != http.StatusNoContent {
				t.Fatalf("Send = %+v, want the final 204 as a success", res)
			}
			h := tg.only(t)
			if h.method != tt.method || h.body != tt.body {
				t.Errorf("%d redirect: %s with body %q, want %s with %q", tt.code, h.method, h.body, tt.method, tt.body)
			}
			if tt.noLength && h.header.Get("Content-Type") == "application/json" && h.body != "" {
				t.Errorf("GET after %d still has a body", tt.code)
			}
			// Same host name (127.0.0.1), other port: requests strips Authorization on a port change.
			if got := h.header.Get("Authorization"); got != "" {
				t.Errorf("Authorization %q sent to another port", got)
			}
			if h.header.Get("webhook-id") != "id-1" || h.header.Get("X-DefectDojo-Event") != "scan_added" {
				t.Errorf("headers lost on the hop: %v", h.header)
			}
		})
	}
}

// The record's header and Authorization go along a hop on the same origin and
// are dropped once a hop left it (another host name), also on later hops back.
func TestRedirectDropsAuthCrossHost(t *testing.T) {
	tg := &target{}
	var final string
	mux := http.NewServeMux()
	srv := newServer(t, mux.ServeHTTP)
	mux.HandleFunc("/same", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/kept", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/kept", tg.ServeHTTP)
	mux.HandleFunc("/away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, final, http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/back", tg.ServeHTTP)
	// localhost is another host name for the same server.
	final = strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) + "/back"

	c := delivery.New(delivery.Options{})
	req := delivery.Request{URL: srv.URL + "/same", Event: "scan_added", Body: []byte(`{}`), ID: "id-2",
		HeaderName: "X-Api-Key", HeaderValue: "secret-value", Secrets: []string{newSecret(t)}}
	if res := c.Send(t.Context(), req); res.Class != delivery.Success {
		t.Fatalf("same-origin redirect: %+v", res)
	}
	if h := tg.only(t); h.header.Get("X-Api-Key") != "secret-value" {
		t.Errorf("X-Api-Key dropped on a same-origin hop: %v", h.header)
	}

	tg.hops = nil
	req.URL = srv.URL + "/away"
	if res := c.Send(t.Context(), req); res.Class != delivery.Success {
		t.Fatalf("cross-host redirect: %+v", res)
	}
	h := tg.only(t)
	for _, k := range []string{"X-Api-Key", "Authorization"} {
		if v := h.header.Get(k); v != "" {
			t.Errorf("%s = %q sent to another host", k, v)
		}
	}
	if h.header.Get("webhook-signature") == "" || h.header.Get("webhook-id") != "id-2" {
		t.Errorf("signature headers lost on the hop: %v", h.header)
	}
}

// With the guard on, every hop is checked: a redirect to a blocked address is
// refused (Permanent, ErrDestinationRefused), nothing is dialled there.
func TestRedirectToBlockedAddressRefused(t *testing.T) {
	from := redirector(t, http.StatusTemporaryRedirect, "http://169.254.169.254/latest/meta-data/")
	c := delivery.New(delivery.Options{BlockPrivate: true, AllowNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	res := c.Send(t.Context(), delivery.Request{URL: from, Event: "scan_added", Body: []byte(`{}`)})
	if res.Class != delivery.Permanent || !errors.Is(res.Err, delivery.ErrDestinationRefused) ||
		!strings.Contains(res.Note, "169.254.169.254 is a link-local address") {
		t.Fatalf("Send = %+v, want the hop refused", res)
	}
}

// More than MaxRedirects hops fail the attempt (Permanent); with redirects off
// the 3xx itself is the answer.
func TestRedirectLimitAndOff(t *testing.T) {
	hops := 0
	var loop string
	loop = newServer(t, func(w http.ResponseWriter, r *http.Request) {
		hops++
		http.Redirect(w, r, "/again", http.StatusFound)
	}).URL
	res := delivery.New(delivery.Options{}).Send(t.Context(), delivery.Request{URL: loop, Event: "scan_added", Body: []byte(`{}`)})
	if res.Class != delivery.Permanent || !errors.Is(res.Err, delivery.ErrTooManyRedirects) || !strings.HasPrefix(res.Note, "Too many redirects") {
		t.Fatalf("Send = %+v, want too many redirects", res)
	}
	if hops != delivery.MaxRedirects+1 {
		t.Errorf("%d requests, want %d", hops, delivery.MaxRedirects+1)
	}
	res = delivery.New(delivery.Options{NoRedirects: true}).Send(t.Context(), delivery.Request{URL: loop, Event: "scan_added", Body: []byte(`{}`)})
	if res.Class != delivery.Permanent || res.StatusCode != http.StatusFound {
		t.Errorf("redirects off: %+v, want the 302 itself", res)
	}
}

// A body that breaks after the headers (broken chunking) is Permanent; a body
// that stalls past the timeout is Temporary.
func TestBodyErrors(t *testing.T) {
	broken := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		conn, buf, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close()
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, r.ContentLength))
		buf.WriteString("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz-not-a-chunk\r\n")
		_ = buf.Flush()
	})
	res := delivery.New(delivery.Options{}).Send(t.Context(), delivery.Request{URL: broken.URL, Event: "scan_added", Body: []byte(`{}`)})
	if res.Class != delivery.Permanent || !strings.HasPrefix(res.Note, "Connection broken") || res.StatusCode != http.StatusOK {
		t.Errorf("broken chunking: %+v, want a permanent Connection broken", res)
	}

	release := make(chan struct{})
	defer close(release)
	stall := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("{"))
		http.NewResponseController(w).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	res = delivery.New(delivery.Options{Timeout: 200 * time.Millisecond}).Send(t.Context(), delivery.Request{URL: stall.URL, Event: "scan_added", Body: []byte(`{}`)})
	if res.Class != delivery.Temporary || !strings.HasPrefix(res.Note, "Timeout after 200ms") {
		t.Errorf("stalled body: %+v, want a temporary timeout", res)
	}
}

func newSecret(t *testing.T) string {
	t.Helper()
	s, err := delivery.GenerateSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}
