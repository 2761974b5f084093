package main

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/internal/natstest"
)

// TestIngestToWebhook: a DefectDojo-like request to /ingest comes out at the
// endpoint with its headers and body intact, and /metrics counts it.
func TestIngestToWebhook(t *testing.T) {
	s := natstest.Server(t)
	env := testEnv(s.ClientURL())
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	env["DOJO_WEBHOOKS_HTTP_ADDR"] = addr
	env["DOJO_WEBHOOKS_INGEST_TOKEN"] = "ingest-t0ken"
	env["DD_SITE_URL"] = "https://dojo.example.com"
	logs := startServe(t, env)
	r := newReceiver(t, 200)
	if res := runCmd(t, env, "", "endpoint", "add", "hook", "--url", r.URL, "--header-name", "X-Api-Key", "--header-value", "k3y"); res.code != 0 {
		t.Fatal(res.stderr)
	}
	body := "{\"description\":  \"Scan added\",\n \"title\": \"caf\u00e9\"}"
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/ingest", strings.NewReader(body))
	req.Header.Set("X-DefectDojo-Event", "scan_added")
	req.Header.Set("X-DefectDojo-Instance", "https://dd.internal")
	req.Header.Set("User-Agent", "DefectDojo-2.40.0")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "ingest-t0ken")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("ingest answered %d %s", resp.StatusCode, answer)
	}
	waitFor(t, 10*time.Second, "the webhook", func() bool { _, b := r.requests(); return len(b) == 2 })
	hdrs, bodies := r.requests()
	if bodies[1] != body {
		t.Fatalf("body %q, want %q", bodies[1], body)
	}
	for k, want := range map[string]string{"X-Defectdojo-Event": "scan_added", "X-Defectdojo-Instance": "https://dd.internal",
		"User-Agent": "DefectDojo-2.40.0", "X-Api-Key": "k3y", "Content-Type": "application/json"} {
		if got := hdrs[1].Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if hdrs[1].Get("webhook-id") == "" || hdrs[1].Get("Authorization") != "" {
		t.Errorf("webhook-id %q, Authorization %q (the ingest token must not travel on)", hdrs[1].Get("webhook-id"), hdrs[1].Get("Authorization"))
	}
	// Without the token: 401, nothing published.
	req2, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/ingest", strings.NewReader(body))
	req2.Header.Set("X-DefectDojo-Event", "scan_added")
	resp, err = http.DefaultClient.Do(req2)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("without the token: %d", resp.StatusCode)
	}
	// Metrics moved.
	waitFor(t, 5*time.Second, "metrics", func() bool {
		m := get(t, "http://"+addr+"/metrics")
		return strings.Contains(m, `dojo_webhooks_events_received_total{event="scan_added"} 1`) &&
			strings.Contains(m, `dojo_webhooks_deliveries_total{endpoint="hook",outcome="success"} 1`) &&
			strings.Contains(m, `dojo_webhooks_endpoints{status="active"} 1`) &&
			strings.Contains(m, `dojo_webhooks_backlog{endpoint="hook"} 0`)
	})
	// A failure moves the transition counter.
	r.setStatus(500)
	if res := runCmd(t, env, `{"n":2}`, "publish", "test_added"); res.code != 0 {
		t.Fatal(res.stderr)
	}
	waitFor(t, 10*time.Second, "transition metric", func() bool {
		return strings.Contains(get(t, "http://"+addr+"/metrics"), `dojo_webhooks_transitions_total{from="active",to="inactive_tmp"} 1`)
	})
	for _, secret := range []string{"k3y", "ingest-t0ken"} {
		if strings.Contains(logs.String(), secret) {
			t.Fatalf("a secret is in the logs")
		}
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
