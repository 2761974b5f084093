package console_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/internal/sidecartest"
	"github.com/dojo-webhooks/dojo-webhooks/sidecar"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// xssName and xssNote are the escaping probe: an endpoint whose name and note
// would run script if a page wrote them unescaped.
const (
	xssName = `<script>alert("name")</script>`
	xssNote = `<img src=x onerror=alert("note")><script>alert("note")</script>`
)

// startSidecar runs a sidecar with its HTTP server on a loopback port and the
// API token tok (empty = none), and returns it with its base URL.
func startSidecar(t testing.TB, tok string) (*sidecar.Sidecar, string) {
	t.Helper()
	return sidecartest.Start(t, "127.0.0.1:0", tok)
}

// receiver is an endpoint's HTTP server answering status to every request.
func receiver(t testing.TB, status int) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// seedStatuses are the statuses given to seeded endpoints in turn: of 120,
// 30 of each.
var seedStatuses = []statekv.Status{statekv.StatusActive, statekv.StatusActiveTmp,
	statekv.StatusInactiveTmp, statekv.StatusInactivePermanent}

// seed stores n endpoints ep-001 … ep-<n> named "Endpoint 001" …, with the
// statuses of seedStatuses in turn and the owners alice, bob and none in turn,
// and waits until the sidecar's view holds them.
func seed(t testing.TB, sc *sidecar.Sidecar, n int, url string) {
	t.Helper()
	ctx := context.Background()
	owners := []string{"alice", "bob", ""}
	for i := 1; i <= n; i++ {
		rec := statekv.Record{ID: fmt.Sprintf("ep-%03d", i), Name: fmt.Sprintf("Endpoint %03d", i), URL: url,
			Status: seedStatuses[(i-1)%len(seedStatuses)], Owner: owners[(i-1)%len(owners)], CreatedAt: time.Now().UTC()}
		if rec.Status != statekv.StatusActive {
			rec.Note, rec.FirstError, rec.LastError = "HTTP 500 from the receiver", time.Now().UTC(), time.Now().UTC().Add(time.Duration(i)*time.Second)
		}
		if _, err := sc.Store().Create(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "the watcher sees the seeded endpoints", func() bool { return len(sc.Watcher().List()) >= n })
}

// addXSS stores the escaping probe as endpoint "xss".
func addXSS(t testing.TB, sc *sidecar.Sidecar, url string) {
	t.Helper()
	rec := statekv.Record{ID: "xss", Name: xssName, Note: xssNote, URL: url, Status: statekv.StatusInactivePermanent,
		Owner: `"><script>alert("owner")</script>`, CreatedAt: time.Now().UTC()}
	if _, err := sc.Store().Create(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the watcher sees the probe", func() bool { _, ok := sc.Watcher().Get("xss"); return ok })
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// client is a browser-like HTTP client: a cookie jar, and redirects not followed.
func client(t testing.TB) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// response is one answer, read.
type response struct {
	status int
	header http.Header
	body   string
}

func do(t testing.TB, c *http.Client, method, u string, form url.Values, hdr map[string]string) response {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(b)}
}

var csrfPattern = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// csrfOf is the CSRF token of a page's forms.
func csrfOf(t testing.TB, page string) string {
	t.Helper()
	m := csrfPattern.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", page)
	}
	return m[1]
}
