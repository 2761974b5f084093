package delivery_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/dojo-webhooks/dojo-webhooks/delivery"
)

const secret = "s3cr3t-T0ken-value"

// newServer starts an httptest server closed at the end of the test.
func newServer(t testing.TB, h http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// connCounter counts the connections a server accepted.
type connCounter struct{ n atomic.Int64 }

func (c *connCounter) hook(_ net.Conn, s http.ConnState) {
	if s == http.StateNew {
		c.n.Add(1)
	}
}

// newCountingServer starts a server that counts new connections.
func newCountingServer(t testing.TB, h http.HandlerFunc) (*httptest.Server, *connCounter) {
	t.Helper()
	cc := &connCounter{}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = cc.hook
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, cc
}

// noDial is a DialContext that fails the test if anything is dialled.
func noDial(t *testing.T) func(context.Context, string, string) (net.Conn, error) {
	return func(_ context.Context, _, addr string) (net.Conn, error) {
		t.Errorf("unexpected dial to %s", addr)
		return nil, errors.New("dial not allowed in this test")
	}
}

func TestClassString(t *testing.T) {
	for c, want := range map[delivery.Class]string{
		delivery.Success: "success", delivery.Temporary: "temporary", delivery.Permanent: "permanent", delivery.Local: "local", 0: "Class(0)",
	} {
		if got := c.String(); got != want {
			t.Errorf("Class(%d).String() = %q, want %q", int(c), got, want)
		}
	}
}

func TestSendStatus(t *testing.T) {
	var targetHits atomic.Int64
	mux := http.NewServeMux()
	srv := newServer(t, mux.ServeHTTP)
	mux.HandleFunc("/target", func(http.ResponseWriter, *http.Request) { targetHits.Add(1) })
	mux.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		var code int
		fmt.Sscan(r.PathValue("code"), &code)
		if code >= 301 && code < 400 && code != http.StatusNotModified {
			w.Header().Set("Location", srv.URL+"/target")
		}
		w.WriteHeader(code)
		io.WriteString(w, `{"detail":"whatever"}`)
	})

	// Redirects off: a 3xx is the answer (redirect_test.go follows them).
	c := delivery.New(delivery.Options{NoRedirects: true})
	tests := []struct {
		code  int
		class delivery.Class
		note  string
	}{
		{200, delivery.Success, ""},
		{201, delivery.Success, ""},
		{204, delivery.Success, ""},
		{300, delivery.Permanent, "Response status code: 300"}, // no Location
		{301, delivery.Permanent, "Response status code: 301 (Location: " + srv.URL + "/target)"},
		{302, delivery.Permanent, "Response status code: 302 (Location: " + srv.URL + "/target)"},
		{307, delivery.Permanent, "Response status code: 307 (Location: " + srv.URL + "/target)"},
		{308, delivery.Permanent, "Response status code: 308 (Location: " + srv.URL + "/target)"},
		{400, delivery.Permanent, "Response status code: 400"},
		{401, delivery.Permanent, "Response status code: 401"},
		{404, delivery.Permanent, "Response status code: 404"},
		{410, delivery.Permanent, "Response status code: 410"},
		{429, delivery.Temporary, "Response status code: 429"},
		{500, delivery.Temporary, "Response status code: 500"},
		{502, delivery.Temporary, "Response status code: 502"},
		{503, delivery.Temporary, "Response status code: 503"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.code), func(t *testing.T) {
			res := c.Send(t.Context(), delivery.Request{URL: fmt.Sprintf("%s/status/%d", srv.URL, tt.code), Event: "ping", Body: []byte(`{}`)})
			if res.Class != tt.class || res.StatusCode != tt.code || res.Note != tt.note {
				t.Errorf("got (%v, %d, %q), want (%v, %d, %q)", res.Class, res.StatusCode, res.Note, tt.class, tt.code, tt.note)
			}
			if res.Err != nil {
				t.Errorf("Err = %v, want nil for an HTTP response", res.Err)
			}
			if res.Duration <= 0 {
				t.Errorf("Duration = %v, want > 0", res.Duration)
			}
		})
	}
	if n := targetHits.Load(); n != 0 {
		t.Errorf("redirect target got %d requests, want 0 (redirects are off)", n)
	}
}

func TestSendHeadersAndBody(t *testing.T) {
	type seen struct {
		method string
		header http.Header
		body   []byte
		length int64
		host   string
	}
	got := make(chan seen, 1)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.Header.Clone(), b, r.ContentLength, r.Host}
	})
	c := delivery.New(delivery.Options{})
	body := []byte("{\"a\": 1,  \"b\":\"é\"}\n")

	t.Run("all", func(t *testing.T) {
		res := c.Send(t.Context(), delivery.Request{
			URL: srv.URL + "/hook?x=1", Event: "product_added", Body: body, ID: "events:42",
			Instance: "https://dojo.example.com", UserAgent: "DefectDojo-2.40.0",
			HeaderName: "Authorization", HeaderValue: "Bearer " + secret,
		})
		if res.Class != delivery.Success {
			t.Fatalf("Send = %+v, want success", res)
		}
		s := <-got
		if s.method != http.MethodPost {
			t.Errorf("method = %s, want POST", s.method)
		}
		if !bytes.Equal(s.body, body) || s.length != int64(len(body)) {
			t.Errorf("body = %q (Content-Length %d), want %q (%d)", s.body, s.length, body, len(body))
		}
		want := map[string]string{
			"User-Agent":            "DefectDojo-2.40.0",
			"X-DefectDojo-Event":    "product_added",
			"X-DefectDojo-Instance": "https://dojo.example.com",
			"Accept":                "application/json",
			"Content-Type":          "application/json",
			"Authorization":         "Bearer " + secret,
			"webhook-id":            "events:42",
		}
		for k, v := range want {
			if vs := s.header.Values(k); len(vs) != 1 || vs[0] != v {
				t.Errorf("header %s = %q, want [%q]", k, vs, v)
			}
		}
	})

	t.Run("defaults and omissions", func(t *testing.T) {
		res := c.Send(t.Context(), delivery.Request{URL: srv.URL, Event: "ping", Body: body})
		if res.Class != delivery.Success {
			t.Fatalf("Send = %+v, want success", res)
		}
		s := <-got
		if ua := s.header.Get("User-Agent"); ua != delivery.DefaultUserAgent {
			t.Errorf("User-Agent = %q, want %q", ua, delivery.DefaultUserAgent)
		}
		if vs := s.header.Values("X-DefectDojo-Instance"); len(vs) != 1 || vs[0] != delivery.DefaultInstance {
			t.Errorf("X-DefectDojo-Instance = %q, want [%q] (DefectDojo always sends it)", vs, delivery.DefaultInstance)
		}
		for _, k := range []string{"webhook-id", "Authorization", "Accept-Encoding"} {
			if vs, ok := s.header[http.CanonicalHeaderKey(k)]; ok {
				t.Errorf("header %s = %q, want it absent", k, vs)
			}
		}
	})

	t.Run("extra header overrides a default", func(t *testing.T) {
		c.Send(t.Context(), delivery.Request{URL: srv.URL, Event: "ping", Body: body, HeaderName: "content-type", HeaderValue: "application/cloudevents+json"})
		s := <-got
		if vs := s.header.Values("Content-Type"); len(vs) != 1 || vs[0] != "application/cloudevents+json" {
			t.Errorf("Content-Type = %q, want the record's value only", vs)
		}
	})

	t.Run("empty body", func(t *testing.T) {
		c.Send(t.Context(), delivery.Request{URL: srv.URL, Event: "ping"})
		if s := <-got; len(s.body) != 0 || s.length != 0 {
			t.Errorf("body = %q (Content-Length %d), want empty", s.body, s.length)
		}
	})
}

func TestSendTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	c := delivery.New(delivery.Options{Timeout: 100 * time.Millisecond})
	res := c.Send(t.Context(), delivery.Request{URL: srv.URL + "/slow", Event: "ping", Body: []byte(`{}`), HeaderName: "X-Auth", HeaderValue: secret})
	if res.Class != delivery.Temporary || res.StatusCode != 0 {
		t.Fatalf("got (%v, %d), want (temporary, 0)", res.Class, res.StatusCode)
	}
	wantPrefix := `Timeout after 100ms: Post "` + srv.URL + `/slow": `
	if !strings.HasPrefix(res.Note, wantPrefix) {
		t.Errorf("Note = %q, want prefix %q", res.Note, wantPrefix)
	}
	t.Logf("note: %s", res.Note)
	if !errors.Is(res.Err, context.DeadlineExceeded) {
		t.Errorf("Err = %v, want it to wrap context.DeadlineExceeded", res.Err)
	}
	if res.Duration < 100*time.Millisecond || res.Duration > 5*time.Second {
		t.Errorf("Duration = %v, want about 100ms", res.Duration)
	}
}

func TestSendCallerCancel(t *testing.T) {
	var hits atomic.Int64
	started := make(chan struct{}, 1)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		started <- struct{}{}
		<-r.Context().Done()
	})
	c := delivery.New(delivery.Options{})

	t.Run("in flight", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		go func() { <-started; cancel() }()
		res := c.Send(ctx, delivery.Request{URL: srv.URL, Event: "ping"})
		if res.Class != delivery.Local || res.StatusCode != 0 {
			t.Fatalf("got (%v, %d), want (local, 0)", res.Class, res.StatusCode)
		}
		if want := `Cancelled: Post "` + srv.URL + `": context canceled`; res.Note != want {
			t.Errorf("Note = %q, want %q", res.Note, want)
		}
		if !errors.Is(res.Err, context.Canceled) {
			t.Errorf("Err = %v, want it to wrap context.Canceled", res.Err)
		}
	})

	t.Run("custom cause", func(t *testing.T) {
		ctx, cancel := context.WithCancelCause(t.Context())
		go func() { <-started; cancel(errors.New("shutting down")) }()
		res := c.Send(ctx, delivery.Request{URL: srv.URL, Event: "ping"})
		if res.Class != delivery.Local || !strings.HasPrefix(res.Note, "Cancelled: ") || !errors.Is(res.Err, context.Canceled) {
			t.Errorf("got %+v, want local, Cancelled note, Err wrapping context.Canceled", res)
		}
	})

	t.Run("before sending", func(t *testing.T) {
		before := hits.Load()
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		res := c.Send(ctx, delivery.Request{URL: srv.URL, Event: "ping"})
		if res.Class != delivery.Local || !strings.HasPrefix(res.Note, "Cancelled: ") || !errors.Is(res.Err, context.Canceled) {
			t.Errorf("got %+v, want local, Cancelled note, Err wrapping context.Canceled", res)
		}
		if hits.Load() != before {
			t.Errorf("a request was sent with a cancelled context")
		}
	})
}

func TestSendConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := delivery.New(delivery.Options{})
	res := c.Send(t.Context(), delivery.Request{URL: "http://" + addr + "/hook", Event: "ping", HeaderName: "X-Auth", HeaderValue: secret})
	if res.Class != delivery.Permanent || res.StatusCode != 0 {
		t.Fatalf("got (%v, %d), want (permanent, 0)", res.Class, res.StatusCode)
	}
	if !strings.HasPrefix(res.Note, "Connection refused: ") || !strings.Contains(res.Note, addr) {
		t.Errorf("Note = %q, want a Connection refused note naming %s", res.Note, addr)
	}
	t.Logf("note: %s", res.Note)
	if !errors.Is(res.Err, syscall.ECONNREFUSED) {
		t.Errorf("Err = %v, want it to wrap ECONNREFUSED", res.Err)
	}
}

func TestSendDNSFailure(t *testing.T) {
	const host = "no-such-endpoint.invalid"
	dialer := &net.Dialer{Resolver: &net.Resolver{
		PreferGo: true,
		Dial: func(context.Context, string, string) (net.Conn, error) {
			return nil, errors.New("no DNS in tests")
		},
	}}
	req, _ := http.NewRequest(http.MethodPost, "https://"+host+"/hook", nil)
	if p, _ := http.ProxyFromEnvironment(req); p != nil {
		t.Skipf("a proxy (%s) is configured for %s", p, host)
	}
	c := delivery.New(delivery.Options{DialContext: dialer.DialContext})
	res := c.Send(t.Context(), delivery.Request{URL: "https://" + host + "/hook", Event: "ping"})
	if res.Class != delivery.Permanent || res.StatusCode != 0 {
		t.Fatalf("got (%v, %d, %q), want (permanent, 0)", res.Class, res.StatusCode, res.Note)
	}
	if !strings.HasPrefix(res.Note, "DNS error: ") || strings.Count(res.Note, host) < 2 {
		t.Errorf("Note = %q, want a DNS error note naming %s in the URL and the lookup", res.Note, host)
	}
	t.Logf("note: %s", res.Note)
	var dnsErr *net.DNSError
	if !errors.As(res.Err, &dnsErr) {
		t.Errorf("Err = %v, want a *net.DNSError inside", res.Err)
	}
}

func TestSendTLS(t *testing.T) {
	var protos sync.Map
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		protos.Store(r.Proto, true)
		w.WriteHeader(http.StatusAccepted)
	}))
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted case logs a handshake error
	srv.StartTLS()
	t.Cleanup(srv.Close)

	t.Run("untrusted certificate", func(t *testing.T) {
		c := delivery.New(delivery.Options{})
		res := c.Send(t.Context(), delivery.Request{URL: srv.URL, Event: "ping"})
		if res.Class != delivery.Permanent || res.StatusCode != 0 {
			t.Fatalf("got (%v, %d, %q), want (permanent, 0)", res.Class, res.StatusCode, res.Note)
		}
		if !strings.HasPrefix(res.Note, "TLS certificate error: ") || !strings.Contains(res.Note, "certificate signed by unknown authority") {
			t.Errorf("Note = %q, want a TLS certificate error", res.Note)
		}
		t.Logf("note: %s", res.Note)
	})

	t.Run("trusted certificate", func(t *testing.T) {
		pool := x509.NewCertPool()
		pool.AddCert(srv.Certificate())
		tlsConf := &tls.Config{RootCAs: pool}
		c := delivery.New(delivery.Options{TLSConfig: tlsConf})
		for range 3 {
			res := c.Send(t.Context(), delivery.Request{URL: srv.URL, Event: "ping", Body: []byte(`{}`)})
			if res.Class != delivery.Success || res.StatusCode != http.StatusAccepted || res.Note != "" || res.Err != nil {
				t.Fatalf("got %+v, want success 202", res)
			}
		}
		if _, ok := protos.Load("HTTP/2.0"); !ok {
			t.Errorf("HTTPS request not made over HTTP/2")
		}
		if tlsConf.NextProtos != nil {
			t.Errorf("caller's TLSConfig was modified: NextProtos = %q", tlsConf.NextProtos)
		}
	})
}

func TestSendInvalid(t *testing.T) {
	c := delivery.New(delivery.Options{DialContext: noDial(t)})
	tests := []struct {
		name string
		req  delivery.Request
		note string
	}{
		{"ftp", delivery.Request{URL: "ftp://x"}, `Invalid URL: unsupported scheme "ftp" in "ftp://x" (want http or https)`},
		{"unparsable", delivery.Request{URL: "::"}, `Invalid URL: parse "::": missing protocol scheme`},
		{"no host", delivery.Request{URL: "http://"}, `Invalid URL: missing host in "http://"`},
		{"port only", delivery.Request{URL: "https://:8443/hook"}, `Invalid URL: missing host in "https://:8443/hook"`},
		{"no scheme", delivery.Request{URL: "example.com/hook"}, `Invalid URL: missing scheme (http or https) in "example.com/hook"`},
		{"empty", delivery.Request{URL: ""}, `Invalid URL: missing scheme (http or https) in ""`},
		{"password hidden", delivery.Request{URL: "gopher://u:pw@x/"}, `Invalid URL: unsupported scheme "gopher" in "gopher://u:xxxxx@x/" (want http or https)`},
		{"header name", delivery.Request{URL: "http://x/", HeaderName: "X Auth", HeaderValue: secret},
			`Invalid header: header_name "X Auth" is not a valid HTTP header name`},
		{"header value", delivery.Request{URL: "http://x/", HeaderName: "X-Auth", HeaderValue: secret + "\r\nX-Evil: 1"},
			`Invalid header: header_value of "X-Auth" contains control characters`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := c.Send(t.Context(), tt.req)
			if res.Class != delivery.Permanent || res.StatusCode != 0 || res.Note != tt.note {
				t.Errorf("got (%v, %d, %q), want (permanent, 0, %q)", res.Class, res.StatusCode, res.Note, tt.note)
			}
			if res.Err == nil || res.Err.Error() != res.Note {
				t.Errorf("Err = %v, want an error with the note's text", res.Err)
			}
		})
	}
}

func TestSendClosedWithoutResponse(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	})
	c := delivery.New(delivery.Options{})
	res := c.Send(t.Context(), delivery.Request{URL: srv.URL, Event: "ping"})
	if res.Class != delivery.Permanent || !strings.HasPrefix(res.Note, "Connection closed without response: ") {
		t.Errorf("got (%v, %q), want a permanent Connection closed note", res.Class, res.Note)
	}
	t.Logf("note: %s", res.Note)
}

// A keep-alive connection the server closes just as it is reused is not the
// endpoint's failure: Send retries once on a new connection.
func TestSendRetriesStaleKeepAlive(t *testing.T) {
	type connKey struct{}
	var hits atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		n := r.Context().Value(connKey{}).(*atomic.Int64)
		if n.Add(1) == 2 { // second request on this connection: drop it unanswered
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	srv.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
		return context.WithValue(ctx, connKey{}, new(atomic.Int64))
	}
	srv.Start()
	t.Cleanup(srv.Close)

	c := delivery.New(delivery.Options{})
	body := []byte(`{"x": 1}`)
	for i := range 2 {
		if res := c.Send(t.Context(), delivery.Request{URL: srv.URL, Event: "ping", Body: body}); res.Class != delivery.Success {
			t.Fatalf("send %d: got %+v, want success", i, res)
		}
	}
	if n := hits.Load(); n != 3 {
		t.Errorf("server saw %d requests, want 3 (one retried)", n)
	}
}

func TestNoteCap(t *testing.T) {
	long := "/" + strings.Repeat("é", 3000)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", long)
		w.WriteHeader(http.StatusFound)
	})
	c := delivery.New(delivery.Options{NoRedirects: true})
	res := c.Send(t.Context(), delivery.Request{URL: srv.URL, Event: "ping"})
	if res.Class != delivery.Permanent || res.StatusCode != http.StatusFound {
		t.Fatalf("got (%v, %d), want (permanent, 302)", res.Class, res.StatusCode)
	}
	checkNote(t, res.Note)
	if !strings.HasPrefix(res.Note, "Response status code: 302 (Location: /éé") || !strings.HasSuffix(res.Note, "é…") {
		t.Errorf("Note = %.60q…, want the truncated Location", res.Note)
	}

	_, note := delivery.Classify(0, errors.New(strings.Repeat("€", 5000)))
	checkNote(t, note)
	_, note = delivery.Classify(0, errors.New("bad \xff utf-8"))
	if !utf8.ValidString(note) {
		t.Errorf("note %q is not valid UTF-8", note)
	}
}

func checkNote(t *testing.T, note string) {
	t.Helper()
	if n := utf8.RuneCountInString(note); n > delivery.MaxNoteLength || n < delivery.MaxNoteLength-1 {
		t.Errorf("note has %d characters, want %d", n, delivery.MaxNoteLength)
	}
	if !utf8.ValidString(note) {
		t.Errorf("note is not valid UTF-8")
	}
}

func TestHeaderValueNeverInNote(t *testing.T) {
	release := make(chan struct{})
	mux := http.NewServeMux()
	srv := newServer(t, mux.ServeHTTP)
	t.Cleanup(func() { close(release) })
	mux.HandleFunc("/echo-redirect", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", "/login?token="+r.Header.Get("X-Api-Key"))
		w.WriteHeader(http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/500", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	ln.Close()

	c := delivery.New(delivery.Options{Timeout: 100 * time.Millisecond})
	for _, u := range []string{srv.URL + "/echo-redirect", srv.URL + "/500", srv.URL + "/slow", refused, "ftp://" + secret, refused + "/hooks/" + secret} {
		res := c.Send(t.Context(), delivery.Request{URL: u, Event: "ping", HeaderName: "X-Api-Key", HeaderValue: secret})
		if strings.Contains(res.Note, secret) || (res.Err != nil && strings.Contains(res.Err.Error(), secret)) {
			t.Errorf("%s: the header value leaked: note %q, err %v", u, res.Note, res.Err)
		}
		if res.Class == delivery.Success {
			t.Errorf("%s: got success", u)
		}
	}
}

func TestSendLargeResponse(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 10<<20)
	small := bytes.Repeat([]byte("y"), 64<<10)
	mux := http.NewServeMux()
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { w.Write(big) })
	mux.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) { w.Write(small) })
	srv, conns := newCountingServer(t, mux.ServeHTTP)
	c := delivery.New(delivery.Options{})

	for range 3 {
		if res := c.Send(t.Context(), delivery.Request{URL: srv.URL + "/small", Event: "ping"}); res.Class != delivery.Success {
			t.Fatalf("small: got %+v, want success", res)
		}
	}
	if n := conns.n.Load(); n != 1 {
		t.Errorf("%d connections for 3 sends of a 64 KiB response, want 1 (keep-alive)", n)
	}

	start := time.Now()
	res := c.Send(t.Context(), delivery.Request{URL: srv.URL + "/big", Event: "ping"})
	if res.Class != delivery.Success || res.StatusCode != 200 {
		t.Fatalf("big: got %+v, want success", res)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("10 MiB response took %v, want it cut short", d)
	}
}

func TestSendConcurrentReuse(t *testing.T) {
	const waves, senders = 3, 50
	var inFlight atomic.Int64
	allIn := make(chan struct{}) // closed once the first wave is all in flight at once
	srv, conns := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {
		if inFlight.Add(1) == senders {
			close(allIn)
		}
		select {
		case <-allIn:
		case <-r.Context().Done():
		}
		io.Copy(io.Discard, r.Body)
		w.Write([]byte(`{"ok":true}`))
	})
	c := delivery.New(delivery.Options{})
	var failures atomic.Int64
	for range waves {
		var wg sync.WaitGroup
		for i := range senders {
			wg.Go(func() {
				res := c.Send(t.Context(), delivery.Request{URL: srv.URL, Event: "ping", Body: []byte(`{}`), ID: fmt.Sprint(i)})
				if res.Class != delivery.Success {
					failures.Add(1)
					t.Errorf("send %d: %+v", i, res)
				}
			})
		}
		wg.Wait()
	}
	if failures.Load() != 0 {
		return
	}
	if n := conns.n.Load(); n > delivery.DefaultMaxConnsPerHost {
		t.Errorf("%d connections for %d sends, want at most %d (keep-alive reuse)", n, waves*senders, delivery.DefaultMaxConnsPerHost)
	}
	t.Logf("%d sends, %d connections", waves*senders, conns.n.Load())
}

func TestCloseIdle(t *testing.T) {
	srv, conns := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {})
	c := delivery.New(delivery.Options{})
	c.Send(t.Context(), delivery.Request{URL: srv.URL, Event: "ping"})
	c.Send(t.Context(), delivery.Request{URL: srv.URL, Event: "ping"})
	if n := conns.n.Load(); n != 1 {
		t.Fatalf("%d connections before CloseIdle, want 1", n)
	}
	c.CloseIdle()
	c.Send(t.Context(), delivery.Request{URL: srv.URL, Event: "ping"})
	if n := conns.n.Load(); n != 2 {
		t.Errorf("%d connections after CloseIdle, want 2", n)
	}
}

func TestClassify(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	tests := []struct {
		name   string
		status int
		err    error
		class  delivery.Class
		note   string
	}{
		{"200", 200, nil, delivery.Success, ""},
		{"299", 299, nil, delivery.Success, ""},
		{"status wins over error", 204, errors.New("late body error"), delivery.Success, ""},
		{"304", 304, nil, delivery.Permanent, "Response status code: 304"},
		{"418", 418, nil, delivery.Permanent, "Response status code: 418"},
		{"429", 429, nil, delivery.Temporary, "Response status code: 429"},
		{"504", 504, nil, delivery.Temporary, "Response status code: 504"},
		{"599", 599, nil, delivery.Temporary, "Response status code: 599"},
		{"600", 600, nil, delivery.Permanent, "Response status code: 600"},
		{"nothing", 0, nil, delivery.Permanent, "No HTTP response"},
		{"canceled", 0, fmt.Errorf("send: %w", context.Canceled), delivery.Local, "Cancelled: send: context canceled"},
		{"emfile", 0, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("socket", syscall.EMFILE)}, delivery.Local, "Local resource error: dial tcp: socket: too many open files"},
		{"enfile", 0, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("socket", syscall.ENFILE)}, delivery.Local, "Local resource error: dial tcp: socket: too many open files in system"},
		{"enobufs", 0, &net.OpError{Op: "write", Net: "tcp", Err: syscall.ENOBUFS}, delivery.Local, "Local resource error: write tcp: no buffer space available"},
		{"enomem", 0, fmt.Errorf("send: %w", syscall.ENOMEM), delivery.Local, "Local resource error: send: cannot allocate memory"},
		{"bind", 0, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.EADDRNOTAVAIL)}, delivery.Local, "Local resource error: dial tcp: connect: cannot assign requested address"},
		{"dns socket", 0, &net.DNSError{Err: "dial udp 127.0.0.53:53: socket: too many open files", Name: "h.example"}, delivery.Local, "Local resource error: lookup h.example: dial udp 127.0.0.53:53: socket: too many open files"},
		{"deadline", 0, context.DeadlineExceeded, delivery.Temporary, "Timeout: context deadline exceeded"},
		{"net timeout", 0, &net.DNSError{Err: "i/o timeout", Name: "h.example", IsTimeout: true}, delivery.Temporary, "Timeout: lookup h.example: i/o timeout"},
		{"dns", 0, &net.DNSError{Err: "no such host", Name: "h.example", IsNotFound: true}, delivery.Permanent, "DNS error: lookup h.example: no such host"},
		{"refused", 0, refused, delivery.Permanent, "Connection refused: dial tcp: connection refused"},
		{"cert", 0, x509.UnknownAuthorityError{}, delivery.Permanent, "TLS certificate error: x509: certificate signed by unknown authority"},
		{"eof", 0, io.EOF, delivery.Permanent, "Connection closed without response: EOF"},
		{"other", 0, errors.New("boom"), delivery.Permanent, "Request error: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			class, note := delivery.Classify(tt.status, tt.err)
			if class != tt.class || note != tt.note {
				t.Errorf("Classify(%d, %v) = (%v, %q), want (%v, %q)", tt.status, tt.err, class, note, tt.class, tt.note)
			}
		})
	}
}

// Send's own results classify the same way again through Classify.
func TestClassifyAgreesWithSend(t *testing.T) {
	c := delivery.New(delivery.Options{})
	res := c.Send(t.Context(), delivery.Request{URL: "ftp://x"})
	if class, note := delivery.Classify(res.StatusCode, res.Err); class != res.Class || note != res.Note {
		t.Errorf("Classify(Send) = (%v, %q), want (%v, %q)", class, note, res.Class, res.Note)
	}
}

func BenchmarkSend(b *testing.B) { benchmarkSend(b, nil) }

// BenchmarkSendSigned is BenchmarkSend with one Standard Webhooks secret: the cost of signing.
func BenchmarkSendSigned(b *testing.B) {
	s, err := delivery.GenerateSecret()
	if err != nil {
		b.Fatal(err)
	}
	benchmarkSend(b, []string{s})
}

func benchmarkSend(b *testing.B, secrets []string) {
	srv := newServer(b, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	})
	c := delivery.New(delivery.Options{})
	req := delivery.Request{
		URL: srv.URL + "/hook", Event: "scan_added", ID: "events:1", Instance: "https://dojo.example.com",
		Body: bytes.Repeat([]byte(`{"finding": 1} `), 64), HeaderName: "Authorization", HeaderValue: "Bearer " + secret,
		Secrets: secrets,
	}
	b.ReportAllocs()
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if res := c.Send(context.Background(), req); res.Class != delivery.Success {
				b.Errorf("send: %+v", res)
				return
			}
		}
	})
}

// The attempt log's view of an answer: the first KeepBody bytes of the body, the
// headers worth keeping (Content-Type, Retry-After, Location) and nothing that
// echoes the endpoint's header value or a URL password.
func TestSendKeepsResponseSnippet(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Retry-After", "7")
		w.Header().Set("Location", "https://u:pw@elsewhere.example/x")
		w.Header().Set("X-Other", "dropped")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "busy; you sent %s and more text after", r.Header.Get("Authorization"))
	})
	c := delivery.New(delivery.Options{})
	res := c.Send(context.Background(), delivery.Request{URL: srv.URL, Event: "ping", Body: []byte("{}"),
		HeaderName: "Authorization", HeaderValue: secret, KeepBody: 40})
	if string(res.Body) != "busy; you sent [redacted] and more text " || !res.BodyTruncated {
		t.Errorf("body %q truncated %v", res.Body, res.BodyTruncated)
	}
	want := map[string]string{"Content-Type": "text/plain", "Retry-After": "7", "Location": "https://u:xxxxx@elsewhere.example/x"}
	if fmt.Sprint(res.Header) != fmt.Sprint(want) {
		t.Errorf("headers %v, want %v", res.Header, want)
	}
	res = c.Send(context.Background(), delivery.Request{URL: srv.URL, Event: "ping", Body: []byte("{}")})
	if res.Body != nil || res.BodyTruncated {
		t.Errorf("KeepBody 0 kept %q", res.Body)
	}
}
