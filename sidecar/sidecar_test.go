package sidecar_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/dojo-webhooks/dojo-webhooks/internal/logtest"
	"github.com/dojo-webhooks/dojo-webhooks/internal/natstest"
	"github.com/dojo-webhooks/dojo-webhooks/sidecar"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSidecarServesDeliversAndStops: one sidecar on an embedded server answers
// /healthz, /readyz, /metrics and a route added with Handle, delivers an event
// taken in by /ingest, and at cancel Run returns nil with the port closed.
func TestSidecarServesDeliversAndStops(t *testing.T) {
	srv := natstest.Server(t)
	nc, _ := natstest.Connect(t, srv)
	delivered := make(chan struct{}, 1)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-DefectDojo-Event") == "scan_added" {
			select {
			case delivered <- struct{}{}:
			default:
			}
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer receiver.Close()

	logs := &logtest.Buffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := sidecar.New(ctx, sidecar.Config{HTTPAddr: "127.0.0.1:0", Metrics: true, ShutdownGrace: time.Second,
		Logger: zerolog.New(logs)}, nc)
	if err != nil {
		t.Fatal(err)
	}
	s.Handle("GET /extra", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "extra") }))
	base := "http://" + s.Addr().String()
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Synced():
	case err := <-done:
		t.Fatalf("Run returned before the sync: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("not synced")
	}

	for path, want := range map[string]string{"/healthz": "ok\n", "/readyz": "ready\n", "/extra": "extra"} {
		if code, body := get(t, base+path); code != http.StatusOK || body != want {
			t.Errorf("GET %s: %d %q, want 200 %q", path, code, body, want)
		}
	}
	if _, err := s.Store().Create(ctx, statekv.Record{ID: "hook", Name: "hook", URL: receiver.URL,
		Status: statekv.StatusActive, CreatedAt: statekv.Timestamp(time.Now())}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the endpoint in the view", func() bool { _, ok := s.Watcher().Get("hook"); return ok })
	req, _ := http.NewRequest(http.MethodPost, base+"/ingest", strings.NewReader(`{"title":"t"}`))
	req.Header.Set("X-DefectDojo-Event", "scan_added")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("ingest: %d", resp.StatusCode)
	}
	select {
	case <-delivered:
	case <-time.After(10 * time.Second):
		t.Fatal("the event was not delivered")
	}
	waitFor(t, 10*time.Second, "the delivery counted", func() bool {
		_, m := get(t, base+"/metrics")
		return strings.Contains(m, `dojo_webhooks_deliveries_total{endpoint="hook",outcome="success"} 1`)
	})

	// The per-endpoint route: an existing endpoint's id is taken, an unknown one is a 404.
	for path, want := range map[string]int{"/ingest/hook": http.StatusAccepted, "/ingest/nobody": http.StatusNotFound} {
		req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(`{"title":"t"}`))
		req.Header.Set("X-DefectDojo-Event", "engagement_added")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("POST %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if c, err := net.Dial("tcp", s.Addr().String()); err == nil {
		c.Close()
		t.Error("the HTTP port still accepts connections after Run returned")
	}
	for _, line := range []string{"HTTP server listening", "dojo-webhooks ready", "stopping: draining in-flight deliveries", `"message":"stopped"`} {
		if !strings.Contains(logs.String(), line) {
			t.Errorf("log lacks %q:\n%s", line, logs)
		}
	}
	if err := s.Run(context.Background()); err == nil {
		t.Error("a second Run succeeded")
	}
}

// TestTakenPortFailsNew: the listen error comes from New, before anything runs.
func TestTakenPortFailsNew(t *testing.T) {
	srv := natstest.Server(t)
	nc, _ := natstest.Connect(t, srv)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	_, err = sidecar.New(t.Context(), sidecar.Config{HTTPAddr: taken.Addr().String(), Logger: zerolog.Nop()}, nc)
	var le *sidecar.ListenError
	if !errors.As(err, &le) || le.Addr != taken.Addr().String() {
		t.Fatalf("New on a taken port: %v, want a ListenError for %s", err, taken.Addr())
	}
}

// TestHTTPOffAndGivenListener: HTTPOff serves nothing; a given listener is served.
func TestHTTPOffAndGivenListener(t *testing.T) {
	srv := natstest.Server(t)
	nc, _ := natstest.Connect(t, srv)
	off, err := sidecar.New(t.Context(), sidecar.Config{HTTPAddr: sidecar.HTTPOff, Logger: zerolog.Nop()}, nc)
	if err != nil {
		t.Fatal(err)
	}
	if off.Addr() != nil {
		t.Errorf("HTTP off, but listening on %s", off.Addr())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := sidecar.New(t.Context(), sidecar.Config{Listener: ln, Logger: zerolog.Nop()}, nc)
	if err != nil {
		t.Fatal(err)
	}
	if s.Addr().String() != ln.Addr().String() {
		t.Errorf("Addr %s, want the given listener's %s", s.Addr(), ln.Addr())
	}
	if s.Metrics() != nil {
		t.Error("metrics on without Config.Metrics")
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-s.Synced():
	case <-time.After(10 * time.Second):
		t.Fatal("not synced")
	}
	if code, _ := get(t, "http://"+ln.Addr().String()+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz on the given listener: %d", code)
	}
	if code, _ := get(t, "http://"+ln.Addr().String()+"/metrics"); code != http.StatusNotFound {
		t.Errorf("/metrics without metrics: %d, want 404", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
