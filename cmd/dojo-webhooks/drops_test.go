package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/internal/logtest"
	"github.com/dojo-webhooks/dojo-webhooks/internal/natstest"
)

// logLines are the JSON log lines of logs with the given message.
func logLines(logs *logtest.Buffer, msg string) []map[string]any {
	var out []map[string]any
	for _, e := range logs.Entries() {
		if e["message"] == msg {
			out = append(out, e)
		}
	}
	return out
}

// metricValue scrapes one sample of the sidecar's /metrics (0 when absent).
func metricValue(t *testing.T, addr, sample string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), sample+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// TestStreamLimitDropsAreReported: with a small DOJO_WEBHOOKS_EVENTS_MAX_BYTES
// and an endpoint that fails, more events than the stream holds are published.
// What the stream discarded before the endpoint received it is logged per
// endpoint with the count, counted in dojo_webhooks_events_dropped_total,
// shown in status and endpoint list (and their --json: there within a window
// of the count, see below); a sidecar started
// with a still smaller limit says at start-up that stored events go.
// Before, 6,586 of 10,001 events went without a word.
func TestStreamLimitDropsAreReported(t *testing.T) {
	s := natstest.Server(t)
	env := testEnv(s.ClientURL())
	env["DOJO_WEBHOOKS_EVENTS_MAX_BYTES"] = "65536"
	// The count is exact for an endpoint that takes everything the stream holds:
	// no operational event (webhook_endpoint_disabled) may sit beside its events.
	env["DOJO_WEBHOOKS_OPS_EVENTS"] = "false"
	logs := startServe(t, env)
	addr := fmt.Sprint(logLines(logs, "HTTP server listening")[0]["addr"])
	r := newReceiver(t, 200)
	if res := runCmd(t, env, "", "endpoint", "add", "hook", "--url", r.URL); res.code != 0 {
		t.Fatal(res.stderr)
	}
	r.setStatus(http.StatusNotFound) // the first event fails for good: the rest wait
	_, js := natstest.Connect(t, s)
	names := contract.NamesFor(contract.DefaultPrefix)
	const total = 400
	body := []byte(`{"pad":"` + strings.Repeat("x", 1000) + `"}`)
	for range total {
		if _, err := js.Publish(context.Background(), names.EventSubject("scan_added"), body); err != nil {
			t.Fatal(err)
		}
	}
	stream, err := js.Stream(context.Background(), names.Events)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The first event was dead-lettered (acknowledged); every later one the
	// stream no longer holds is lost for the endpoint.
	want := info.State.FirstSeq - 2
	if want < total/2 {
		t.Fatalf("the stream kept %d of %d events: the test needs most discarded", info.State.Msgs, total)
	}
	const sample = `dojo_webhooks_events_dropped_total{endpoint="hook"}`
	waitFor(t, 15*time.Second, "the drops counted", func() bool { return metricValue(t, addr, sample) == float64(want) })

	var logged float64
	for _, l := range logLines(logs, "the events stream's limits discarded events this endpoint had not received (DOJO_WEBHOOKS_EVENTS_MAX_AGE / _MAX_BYTES)") {
		if l["endpoint"] == "hook" && l["level"] == "warn" {
			logged += l["dropped"].(float64)
		}
	}
	if logged != float64(want) {
		t.Errorf("the warnings count %v dropped events, want %d", logged, want)
	}

	// status and endpoint list estimate from the server's state alone: the
	// events discarded while the sidecar held them in the endpoint's window
	// (given back at the pause) moved the consumer's ack floor past them, so
	// up to a window fewer show there than the sidecar counted.
	shown := func(d any) bool {
		f, ok := d.(float64)
		return ok && f <= float64(want) && f >= float64(want)-float64(consumer.PipelineWindow)
	}
	var rep struct{ Endpoints []map[string]any }
	if err := json.Unmarshal([]byte(runCmd(t, env, "", "status", "--json").stdout), &rep); err != nil || len(rep.Endpoints) != 1 || !shown(rep.Endpoints[0]["dropped"]) {
		t.Fatalf("status --json: %v %v, want dropped within a window below %d", rep, err, want)
	}
	d := fmt.Sprintf(" %v ", rep.Endpoints[0]["dropped"])
	if res := runCmd(t, env, "", "status"); !strings.Contains(res.stdout, "DROPPED") || !strings.Contains(res.stdout, d) {
		t.Errorf("status does not show%sdropped:\n%s", d, res.stdout)
	}
	if res := runCmd(t, env, "", "endpoint", "list"); !strings.Contains(res.stdout, "DROPPED") || !strings.Contains(res.stdout, d) {
		t.Errorf("endpoint list does not show%sdropped:\n%s", d, res.stdout)
	}
	var listed []map[string]any
	if err := json.Unmarshal([]byte(runCmd(t, env, "", "endpoint", "list", "--json").stdout), &listed); err != nil || len(listed) != 1 || !shown(listed[0]["dropped"]) {
		t.Errorf("endpoint list --json: %v %v, want dropped within a window below %d", listed, err, want)
	}

	// A second sidecar with a smaller limit says so before it applies it.
	smaller := testEnv(s.ClientURL())
	smaller["DOJO_WEBHOOKS_EVENTS_MAX_BYTES"] = "16384"
	logs2 := startServe(t, smaller)
	if len(logLines(logs2, "the configured limits are smaller than what the stream holds: its oldest stored events will be discarded, also those endpoints have not received")) == 0 ||
		len(logLines(logs2, "the stream's new limits discarded stored events")) == 0 {
		t.Errorf("no start-up warning about the smaller limit:\n%s", logs2)
	}
}
