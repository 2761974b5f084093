package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/api"
	"github.com/dojo-webhooks/dojo-webhooks/internal/sidecartest"
	"github.com/dojo-webhooks/dojo-webhooks/sidecar"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

const token = "t0ken-for-the-api-test"

// secrets are values no answer may contain.
var secrets = []string{"hdr-secret-value", "url-pass-word", token}

// startSidecar runs a sidecar with its HTTP server on addr and returns it with its base URL.
func startSidecar(t *testing.T, addr, tok string) (*sidecar.Sidecar, string) {
	t.Helper()
	return sidecartest.Start(t, addr, tok)
}

// call sends one API request and decodes the JSON answer into out (when not nil).
func call(t *testing.T, method, url, tok string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, s := range secrets {
		if strings.Contains(string(raw), s) {
			t.Errorf("%s %s: the answer holds a secret: %s", method, url, raw)
		}
	}
	if resp.StatusCode >= 400 {
		var e struct{ Error string }
		if json.Unmarshal(raw, &e) != nil || e.Error == "" || strings.Contains(e.Error, "\n") {
			t.Errorf("%s %s: %d without a one-line error: %s", method, url, resp.StatusCode, raw)
		}
	}
	if out != nil && resp.StatusCode < 300 && resp.StatusCode != http.StatusNoContent {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, raw)
		}
	}
	return resp.StatusCode
}

type page struct {
	Items []api.Endpoint `json:"items"`
	Next  *string        `json:"next"`
	Total int            `json:"total"`
}

// Every route, over real HTTP, with the token: add (ping first), read, change,
// act, look at attempts and history, remove; pagination and filters; nothing
// secret in any answer.
func TestAPI(t *testing.T) {
	sc, base := startSidecar(t, "127.0.0.1:0", token)
	var status atomic.Int32
	status.Store(200)
	rx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
		fmt.Fprint(w, "answer")
	}))
	t.Cleanup(rx.Close)
	ctx := context.Background()

	// Auth first.
	if code := call(t, "GET", base+"/api/v1/endpoints", "", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("without the token: %d, want 401", code)
	}
	if code := call(t, "GET", base+"/api/v1/endpoints", "wrong", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("with a wrong token: %d, want 401", code)
	}

	// 120 endpoints: 3 through the API (pinged), the rest stored directly.
	url := strings.Replace(rx.URL, "http://", "http://user:url-pass-word@", 1)
	var created struct {
		api.Endpoint
		Ping          struct{ Status int }
		SigningSecret string `json:"signing_secret"`
	}
	if code := call(t, "POST", base+"/api/v1/endpoints", token, map[string]any{"id": "ep-000", "name": "Jira", "url": url,
		"header_name": "Authorization", "header_value": "hdr-secret-value", "secret": "auto", "owner": "alice"}, &created); code != http.StatusCreated {
		t.Fatalf("POST: %d", code)
	}
	if created.Ping.Status != 200 || created.Status != "active" || !strings.HasPrefix(created.SigningSecret, "whsec_") ||
		created.HeaderValue != "********" || !strings.Contains(created.URL, "user:xxxxx@") {
		t.Errorf("created %+v", created)
	}
	if code := call(t, "POST", base+"/api/v1/endpoints", token, map[string]any{"id": "ep-000", "url": rx.URL}, nil); code != http.StatusConflict {
		t.Errorf("taken id: %d, want 409", code)
	}
	if code := call(t, "POST", base+"/api/v1/endpoints", token, map[string]any{"id": "other", "name": "Jira", "url": rx.URL}, nil); code != http.StatusConflict {
		t.Errorf("taken name: %d, want 409", code)
	}
	status.Store(500)
	if code := call(t, "POST", base+"/api/v1/endpoints", token, map[string]any{"id": "down", "url": rx.URL}, nil); code != http.StatusUnprocessableEntity {
		t.Errorf("failing ping: %d, want 422", code)
	}
	status.Store(200)
	if code := call(t, "POST", base+"/api/v1/endpoints", token, map[string]any{"id": "Bad Id", "url": rx.URL}, nil); code != http.StatusUnprocessableEntity {
		t.Errorf("bad id: %d, want 422", code)
	}
	if code := call(t, "POST", base+"/api/v1/endpoints", token, map[string]any{"id": "x", "url": rx.URL, "header_name": "X-A"}, nil); code != http.StatusUnprocessableEntity {
		t.Errorf("header name without value: %d, want 422", code)
	}
	if code := call(t, "POST", base+"/api/v1/endpoints", token, map[string]any{"id": "x", "bogus": 1}, nil); code != http.StatusBadRequest {
		t.Errorf("unknown field: %d, want 400", code)
	}
	for i := 1; i < 120; i++ {
		rec := statekv.Record{ID: fmt.Sprintf("ep-%03d", i), Name: fmt.Sprintf("Endpoint %03d", i), URL: rx.URL,
			Status: statekv.StatusActive, CreatedAt: statekv.Timestamp(time.Now())}
		if i%10 == 0 {
			rec.Status, rec.Note, rec.LastError, rec.FirstError = statekv.StatusInactivePermanent, "Response status code: 404", rec.CreatedAt, rec.CreatedAt
		}
		if _, err := sc.Store().Create(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return len(sc.Watcher().List()) == 120 })

	// Three pages of 50, 50 and 20, each endpoint once, in id order.
	var seen []string
	cursor, pages := "", 0
	for {
		var p page
		u := base + "/api/v1/endpoints?limit=50"
		if cursor != "" {
			u += "&cursor=" + cursor
		}
		if code := call(t, "GET", u, token, nil, &p); code != 200 {
			t.Fatalf("page %d: %d", pages, code)
		}
		pages++
		for _, e := range p.Items {
			seen = append(seen, e.ID)
		}
		if p.Next == nil {
			break
		}
		cursor = *p.Next
	}
	if pages != 3 || len(seen) != 120 || !slices.IsSorted(seen) || len(slices.Compact(slices.Clone(seen))) != 120 {
		t.Fatalf("%d pages, %d endpoints (sorted %v)", pages, len(seen), slices.IsSorted(seen))
	}
	var p page
	call(t, "GET", base+"/api/v1/endpoints?status=inactive_permanent&limit=500", token, nil, &p)
	if len(p.Items) != 11 || p.Total != 11 {
		t.Errorf("status filter: %d items", len(p.Items))
	}
	call(t, "GET", base+"/api/v1/endpoints?owner=alice", token, nil, &p)
	if len(p.Items) != 1 || p.Items[0].ID != "ep-000" {
		t.Errorf("owner filter: %v", p.Items)
	}
	call(t, "GET", base+"/api/v1/endpoints?q=ENDPOINT%2011", token, nil, &p)
	if len(p.Items) != 10 || p.Items[0].ID != "ep-110" {
		t.Errorf("q filter: %d items", len(p.Items))
	}
	call(t, "GET", base+"/api/v1/endpoints?sort=last_error&limit=1", token, nil, &p)
	if len(p.Items) != 1 || p.Items[0].LastError == nil {
		t.Errorf("sort by last_error: %+v", p.Items)
	}
	for _, bad := range []string{"status=nope", "limit=501", "limit=x", "sort=url", "cursor=zz"} {
		if code := call(t, "GET", base+"/api/v1/endpoints?"+bad, token, nil, nil); code != http.StatusBadRequest {
			t.Errorf("?%s: %d, want 400", bad, code)
		}
	}

	// One endpoint: read, change, act.
	var e api.Endpoint
	if code := call(t, "GET", base+"/api/v1/endpoints/ep-010", token, nil, &e); code != 200 || e.Status != "inactive_permanent" {
		t.Fatalf("GET ep-010: %d %+v", code, e)
	}
	if code := call(t, "GET", base+"/api/v1/endpoints/nope", token, nil, nil); code != http.StatusNotFound {
		t.Errorf("GET missing: %d", code)
	}
	if code := call(t, "PATCH", base+"/api/v1/endpoints/ep-010", token, map[string]any{"name": "Renamed", "events": []string{"scan_added"}}, &e); code != 200 ||
		e.Name != "Renamed" || !slices.Equal(e.Events, []string{"scan_added"}) {
		t.Errorf("PATCH: %d %+v", code, e)
	}
	if code := call(t, "PATCH", base+"/api/v1/endpoints/ep-010", token, map[string]any{"name": "Jira"}, nil); code != http.StatusConflict {
		t.Errorf("PATCH to a taken name: %d", code)
	}
	if code := call(t, "POST", base+"/api/v1/endpoints/ep-010/activate", token, nil, &e); code != 200 || e.Status != "active" {
		t.Errorf("activate: %d %s", code, e.Status)
	}
	if code := call(t, "POST", base+"/api/v1/endpoints/ep-010/deactivate", token, map[string]string{"note": "maintenance"}, &e); code != 200 ||
		e.Status != "inactive_permanent" || e.Note != "maintenance" {
		t.Errorf("deactivate: %d %+v", code, e)
	}
	var ping struct{ Status int }
	if code := call(t, "POST", base+"/api/v1/endpoints/ep-010/ping", token, nil, &ping); code != 200 || ping.Status != 200 {
		t.Errorf("ping: %d %+v", code, ping)
	}
	status.Store(404)
	if code := call(t, "POST", base+"/api/v1/endpoints/ep-010/ping", token, nil, nil); code != http.StatusUnprocessableEntity {
		t.Errorf("failing ping: %d, want 422", code)
	}
	status.Store(200)
	var skip struct{ Skipped uint64 }
	if code := call(t, "POST", base+"/api/v1/endpoints/ep-010/skip", token, nil, &skip); code != 200 {
		t.Errorf("skip: %d", code)
	}
	var replay struct{ Replayed int }
	if code := call(t, "POST", base+"/api/v1/endpoints/ep-010/replay", token, map[string]string{"since": "1h"}, &replay); code != 200 {
		t.Errorf("replay since: %d", code)
	}
	if code := call(t, "POST", base+"/api/v1/endpoints/ep-010/replay", token, nil, &replay); code != 200 {
		t.Errorf("replay dead letters: %d", code)
	}
	for _, bad := range []string{"yesterday", "2999-01-01T00:00:00Z"} {
		if code := call(t, "POST", base+"/api/v1/endpoints/ep-010/replay", token, map[string]string{"since": bad}, nil); code != http.StatusBadRequest {
			t.Errorf("replay since %s: %d, want 400", bad, code)
		}
	}
	var rot struct {
		SigningSecret string `json:"signing_secret"`
	}
	if code := call(t, "POST", base+"/api/v1/endpoints/ep-000/rotate-secret", token, nil, &rot); code != 200 ||
		!strings.HasPrefix(rot.SigningSecret, "whsec_") || rot.SigningSecret == created.SigningSecret {
		t.Errorf("rotate-secret: %d %q", code, rot.SigningSecret)
	}
	if code := call(t, "POST", base+"/api/v1/endpoints/ep-010/explode", token, nil, nil); code != http.StatusNotFound {
		t.Errorf("unknown action: %d", code)
	}

	// The pings are in the attempt log; the history shows the user's actions.
	var at struct {
		Items []struct {
			Kind, Outcome string
			Status        int
		}
		Next *string
	}
	waitFor(t, func() bool {
		call(t, "GET", base+"/api/v1/endpoints/ep-010/attempts", token, nil, &at)
		return len(at.Items) == 3
	})
	if at.Items[0].Status != 404 || at.Items[1].Status != 200 || at.Items[0].Kind != "ping" {
		t.Errorf("attempts of ep-010: %+v", at.Items)
	}
	call(t, "GET", base+"/api/v1/endpoints/ep-010/attempts?outcome=failed", token, nil, &at)
	if len(at.Items) != 1 || at.Items[0].Status != 404 {
		t.Errorf("failed attempts: %+v", at.Items)
	}
	call(t, "GET", base+"/api/v1/endpoints/ep-010/attempts?limit=1", token, nil, &at)
	if len(at.Items) != 1 || at.Next == nil {
		t.Errorf("first page of 1: %+v", at)
	} else {
		call(t, "GET", base+"/api/v1/endpoints/ep-010/attempts?limit=5&cursor="+*at.Next, token, nil, &at)
		if len(at.Items) != 2 || at.Next != nil {
			t.Errorf("second page: %+v", at)
		}
	}
	var ev struct{ Items []any }
	if code := call(t, "GET", base+"/api/v1/attempts?webhook_id=none", token, nil, &ev); code != 200 || len(ev.Items) != 0 {
		t.Errorf("attempts of an unknown event: %d %v", code, ev.Items)
	}
	if code := call(t, "GET", base+"/api/v1/attempts", token, nil, nil); code != http.StatusBadRequest {
		t.Errorf("attempts without webhook_id: %d", code)
	}
	var hist struct{ Items []struct{ Cause string } }
	call(t, "GET", base+"/api/v1/endpoints/ep-010/history", token, nil, &hist)
	var causes []string
	for _, h := range hist.Items {
		causes = append(causes, h.Cause)
	}
	if strings.Join(causes, ",") != "user:add,user:edit,user:activate,user:deactivate,user:skip" {
		t.Errorf("history causes %v", causes)
	}

	if code := call(t, "DELETE", base+"/api/v1/endpoints/ep-010", token, nil, nil); code != http.StatusNoContent {
		t.Errorf("DELETE: %d", code)
	}
	if code := call(t, "DELETE", base+"/api/v1/endpoints/ep-010", token, nil, nil); code != http.StatusNotFound {
		t.Errorf("DELETE again: %d", code)
	}
}

// Without a token the API answers on a loopback listener only.
func TestAPIWithoutToken(t *testing.T) {
	_, base := startSidecar(t, "127.0.0.1:0", "")
	if code := call(t, "GET", base+"/api/v1/endpoints", "", nil, nil); code != 200 {
		t.Errorf("loopback without a token: %d, want 200", code)
	}
	_, base = startSidecar(t, "0.0.0.0:0", "")
	resp, err := http.Get(base + "/api/v1/endpoints")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("all interfaces without a token: %d, want 404 (API off)", resp.StatusCode)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
