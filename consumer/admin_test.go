package consumer_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/attempts"
	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/delivery"
	"github.com/dojo-webhooks/dojo-webhooks/internal/natstest"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// TestAddActivateSkip: the operator's actions without a sidecar. An add is
// stored only after a 2xx ping and never pings for a taken id or name; an
// activation pings first; a skip sets deliver_from.
func TestAddActivateSkip(t *testing.T) {
	_, _, js := natstest.JetStream(t)
	ctx := t.Context()
	kv, err := statekv.EnsureBucket(ctx, js, statekv.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	store := statekv.NewStore(kv)
	var status, pings atomic.Int32
	status.Store(http.StatusInternalServerError)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pings.Add(1)
		w.WriteHeader(int(status.Load()))
	}))
	t.Cleanup(srv.Close)
	client := delivery.New(delivery.Options{})
	t.Cleanup(client.CloseIdle)
	d := consumer.RequestDefaults{Instance: "https://dojo.example.com"}
	rec := statekv.Record{ID: "hook", Name: "Hook", URL: srv.URL}
	p := statekv.Policy{ReactivateAfter: time.Minute, RecoverAfter: time.Hour, GiveUpAfter: time.Hour}
	var logged []attempts.Record
	now := time.Now()
	admin := consumer.Admin{Store: store, Client: client, Request: d, Policy: p, JetStream: js,
		Names: contract.NamesFor(contract.DefaultPrefix), Now: func() time.Time { return now },
		Record: func(a attempts.Record) { logged = append(logged, a) }}

	if _, res, err := admin.Add(ctx, rec); !errors.Is(err, consumer.ErrPingFailed) || res.StatusCode != 500 {
		t.Fatalf("add against a 500: %v (status %d), want ErrPingFailed", err, res.StatusCode)
	}
	if _, err := store.Get(ctx, "hook"); !errors.Is(err, statekv.ErrNotFound) {
		t.Fatalf("a failed add stored the endpoint: %v", err)
	}
	status.Store(http.StatusNoContent)
	e, res, err := admin.Add(ctx, rec)
	if err != nil || res.StatusCode != 204 || e.Record.Status != statekv.StatusActive || e.Record.CreatedAt.IsZero() {
		t.Fatalf("add: %+v, %d, %v", e.Record, res.StatusCode, err)
	}
	before := pings.Load()
	if _, _, err := admin.Add(ctx, rec); !errors.Is(err, statekv.ErrExists) {
		t.Errorf("add with a taken id: %v, want ErrExists", err)
	}
	other := rec
	other.ID = "hook2"
	if _, _, err := admin.Add(ctx, other); !errors.Is(err, statekv.ErrNameTaken) {
		t.Errorf("add with a taken name: %v, want ErrNameTaken", err)
	}
	if pings.Load() != before {
		t.Errorf("a refused add pinged the endpoint")
	}

	if _, _, err := admin.Deactivate(ctx, "hook", "off"); err != nil {
		t.Fatal(err)
	}
	status.Store(http.StatusServiceUnavailable)
	if _, _, err := admin.Activate(ctx, "hook"); !errors.Is(err, consumer.ErrPingFailed) {
		t.Errorf("activate with a failing ping: %v, want ErrPingFailed", err)
	}
	if got, _ := store.Get(ctx, "hook"); got.Record.Status != statekv.StatusInactivePermanent {
		t.Errorf("a failed activation changed the record: %s", got.Record.Status)
	}
	status.Store(http.StatusOK)
	if e, changed, err := admin.Activate(ctx, "hook"); err != nil || !changed || e.Record.Status != statekv.StatusActive {
		t.Errorf("activate: %s, %v, %v", e.Record.Status, changed, err)
	}

	n, from, err := admin.Skip(ctx, "hook")
	if err != nil || n != 0 || !from.Equal(statekv.Timestamp(now)) {
		t.Fatalf("skip without a consumer: %d, %v, %v", n, from, err)
	}
	if got, _ := store.Get(ctx, "hook"); !got.Record.DeliverFrom.Equal(from) {
		t.Errorf("deliver_from %v, want %v", got.Record.DeliverFrom, from)
	}
	// Every ping was logged as an attempt: two adds, two activations.
	var statuses []int
	for _, a := range logged {
		if a.Kind != attempts.KindPing || a.Event != consumer.PingEvent || a.Endpoint != "hook" || a.WebhookID == "" {
			t.Errorf("ping attempt %+v", a)
		}
		statuses = append(statuses, a.Status)
	}
	if fmt.Sprint(statuses) != "[500 204 503 200]" {
		t.Errorf("pings logged with statuses %v, want [500 204 503 200]", statuses)
	}
}

// TestPingAsDefectDojo: the ping carries the owner as `user` (null without
// one) and succeeds on any final status below 400, a 3xx that is not followed
// included; a 4xx fails it.
func TestPingAsDefectDojo(t *testing.T) {
	var status atomic.Int32
	bodies := make(chan string, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies <- string(b)
		w.WriteHeader(int(status.Load()))
	}))
	t.Cleanup(srv.Close)
	client := delivery.New(delivery.Options{NoRedirects: true})
	t.Cleanup(client.CloseIdle)
	for _, tt := range []struct {
		owner  string
		status int
		ok     bool
		user   string
	}{
		{"", http.StatusOK, true, `null`},
		{"alice", http.StatusNotModified, true, `"alice"`},
		{`o"dd`, http.StatusBadRequest, false, `"o\"dd"`},
	} {
		status.Store(int32(tt.status))
		rec := statekv.Record{ID: "hook", Name: "Hook", URL: srv.URL, Owner: tt.owner}
		res := consumer.Ping(t.Context(), client, rec, consumer.RequestDefaults{}, time.Now())
		if consumer.PingSucceeded(res) != tt.ok {
			t.Errorf("ping answered %d: succeeded = %v, want %v", tt.status, !tt.ok, tt.ok)
		}
		var body struct {
			Description string          `json:"description"`
			User        json.RawMessage `json:"user"`
		}
		if err := json.Unmarshal([]byte(<-bodies), &body); err != nil || string(body.User) != tt.user || body.Description != "Test webhook notification" {
			t.Errorf("owner %q: body %+v (%v), want user %s", tt.owner, body, err, tt.user)
		}
	}
}
