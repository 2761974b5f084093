package metrics_test

// Tests of the Prometheus metrics: the counters fed by the pipeline, and the
// gauges read at scrape time from the KV view and a real embedded nats-server
// (internal/natstest). Every scrape is parsed as the Prometheus text format.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"

	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/delivery"
	"github.com/dojo-webhooks/dojo-webhooks/internal/natstest"
	"github.com/dojo-webhooks/dojo-webhooks/metrics"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

var names = contract.NamesFor("defectdojo")

const waitTimeout = 10 * time.Second

// scrape is one GET of the metrics handler: its text and its parsed families.
type scrape struct {
	text     string
	families map[string]*dto.MetricFamily
}

func scrapeOnce(t testing.TB, m *metrics.Metrics) (scrape, error) {
	t.Helper()
	w := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	// What Prometheus 3 asks for: the answer must still be the text format.
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2")
	m.Handler().ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		return scrape{}, fmt.Errorf("status %d: %s", w.Code, w.Body.String())
	}
	if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		return scrape{}, fmt.Errorf("Content-Type %q, want the text format", ct)
	}
	text := w.Body.String()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		return scrape{}, fmt.Errorf("not the Prometheus text format: %v\n%s", err, text)
	}
	return scrape{text: text, families: fams}, nil
}

func mustScrape(t testing.TB, m *metrics.Metrics) scrape {
	t.Helper()
	s, err := scrapeOnce(t, m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// value returns the value of the sample of family name with exactly labels
// (counter, gauge or untyped), and whether it is there.
func (s scrape) value(name string, labels map[string]string) (float64, bool) {
	f, ok := s.families[name]
	if !ok {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		match := true
		for _, lp := range m.GetLabel() {
			if v, ok := labels[lp.GetName()]; !ok || v != lp.GetValue() {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// labelValues lists the values of label across the samples of family name.
func (s scrape) labelValues(name, label string) []string {
	var out []string
	for _, m := range s.families[name].GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label {
				out = append(out, lp.GetValue())
			}
		}
	}
	sort.Strings(out)
	return out
}

// want is one expected sample.
type want struct {
	name   string
	labels map[string]string
	value  float64
}

func (w want) String() string {
	var ls []string
	for k, v := range w.labels {
		ls = append(ls, fmt.Sprintf("%s=%q", k, v))
	}
	sort.Strings(ls)
	return fmt.Sprintf("%s{%s} %g", w.name, strings.Join(ls, ","), w.value)
}

// mismatches returns the expected samples the scrape does not show.
func (s scrape) mismatches(wants []want) []string {
	var bad []string
	for _, w := range wants {
		got, ok := s.value(w.name, w.labels)
		switch {
		case !ok:
			bad = append(bad, fmt.Sprintf("%v: missing", w))
		case got != w.value:
			bad = append(bad, fmt.Sprintf("%v: got %g", w, got))
		}
	}
	return bad
}

// waitScrape scrapes until every expected sample is shown (the server updates
// some of its counts asynchronously), failing the test after waitTimeout.
func waitScrape(t testing.TB, m *metrics.Metrics, wants ...want) scrape {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		s, err := scrapeOnce(t, m)
		if err != nil {
			t.Fatal(err)
		}
		bad := s.mismatches(wants)
		if len(bad) == 0 {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s the scrape still differs:\n  %s\n%s", waitTimeout, strings.Join(bad, "\n  "), s.text)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func l(kv ...string) map[string]string {
	m := make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// The counters fed by the pipeline and the bridge show up in the scrape.
func TestCounters(t *testing.T) {
	m := metrics.New(nil, nil, names, zerolog.Nop())

	// Before anything happened: no sample for the vectors, no state gauges.
	s := mustScrape(t, m)
	for _, name := range []string{"dojo_webhooks_deliveries_total", "dojo_webhooks_endpoints", "dojo_webhooks_backlog", "dojo_webhooks_stream_messages"} {
		if _, ok := s.families[name]; ok {
			t.Errorf("%s shown before anything happened", name)
		}
	}
	if _, ok := s.families["go_goroutines"]; !ok {
		t.Error("the Go runtime collector is missing")
	}

	m.Delivered("a", "scan_added", delivery.Result{Class: delivery.Success, StatusCode: 200, Duration: 30 * time.Millisecond})
	m.Delivered("a", "scan_added", delivery.Result{Class: delivery.Temporary, StatusCode: 503, Duration: 2 * time.Second})
	m.Delivered("a", "scan_added", delivery.Result{Class: delivery.Temporary, StatusCode: 0, Duration: 10 * time.Second})
	m.Delivered("b", "product_added", delivery.Result{Class: delivery.Permanent, StatusCode: 404, Duration: time.Millisecond})
	m.Transitioned("a", statekv.StatusActive, statekv.StatusInactiveTmp)
	m.Transitioned("a", statekv.StatusInactiveTmp, statekv.StatusActiveTmp)
	m.Transitioned("c", statekv.StatusActive, statekv.StatusInactiveTmp)
	m.DeadLettered("b")
	// The bridge and the workers call concurrently.
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { m.Received("scan_added") })
	}
	wg.Wait()
	m.Received("ping_like_future_event")

	s = mustScrape(t, m)
	for _, line := range []string{
		`dojo_webhooks_deliveries_total{endpoint="a",outcome="success"} 1`,
		`dojo_webhooks_deliveries_total{endpoint="a",outcome="temporary"} 2`,
		`dojo_webhooks_deliveries_total{endpoint="b",outcome="permanent"} 1`,
		`dojo_webhooks_delivery_duration_seconds_count{outcome="success"} 1`,
		`dojo_webhooks_delivery_duration_seconds_count{outcome="temporary"} 2`,
		`dojo_webhooks_delivery_duration_seconds_sum{outcome="temporary"} 12`,
		`dojo_webhooks_delivery_duration_seconds_bucket{outcome="success",le="0.025"} 0`,
		`dojo_webhooks_delivery_duration_seconds_bucket{outcome="success",le="0.05"} 1`,
		`dojo_webhooks_delivery_duration_seconds_bucket{outcome="temporary",le="2.5"} 1`,
		`dojo_webhooks_delivery_duration_seconds_bucket{outcome="temporary",le="10"} 2`,
		`dojo_webhooks_delivery_duration_seconds_bucket{outcome="temporary",le="+Inf"} 2`,
		`dojo_webhooks_transitions_total{from="active",to="inactive_tmp"} 2`,
		`dojo_webhooks_transitions_total{from="inactive_tmp",to="active_tmp"} 1`,
		`dojo_webhooks_dead_letters_total{endpoint="b"} 1`,
		`dojo_webhooks_events_received_total{event="scan_added"} 10`,
		`dojo_webhooks_events_received_total{event="ping_like_future_event"} 1`,
		`# TYPE dojo_webhooks_delivery_duration_seconds histogram`,
		`# TYPE dojo_webhooks_deliveries_total counter`,
	} {
		if !strings.Contains(s.text, line+"\n") {
			t.Errorf("scrape lacks the line %s", line)
		}
	}
	h := s.families["dojo_webhooks_delivery_duration_seconds"]
	if h.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("dojo_webhooks_delivery_duration_seconds is a %v", h.GetType())
	}
	var total uint64
	for _, mm := range h.GetMetric() {
		total += mm.GetHistogram().GetSampleCount()
	}
	if total != 4 {
		t.Errorf("histogram holds %d observations, want 4 (one per delivery)", total)
	}
	for _, name := range []string{"dojo_webhooks_endpoints", "dojo_webhooks_backlog", "dojo_webhooks_stream_messages"} {
		if _, ok := s.families[name]; ok {
			t.Errorf("%s shown without a view or a JetStream connection", name)
		}
	}
}

// The gauges read at scrape time follow the KV view and the JetStream server.
func TestStateGauges(t *testing.T) {
	ctx := t.Context()
	_, _, js := natstest.JetStream(t)
	if err := consumer.EnsureStreams(ctx, js, consumer.StreamsConfig{Names: names}); err != nil {
		t.Fatal(err)
	}
	kv, err := statekv.EnsureBucket(ctx, js, statekv.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	store := statekv.NewStore(kv)
	for _, rec := range []statekv.Record{
		{ID: "x", Name: "Endpoint x", URL: "https://hooks.example.com/x", Status: statekv.StatusActive},
		{ID: "y", Name: "Endpoint y", URL: "https://hooks.example.com/y", Status: statekv.StatusActive},
		{ID: "z", Name: "Endpoint z", URL: "https://hooks.example.com/z", Status: statekv.StatusInactivePermanent, Note: "deactivated by a test"},
	} {
		if _, err := store.Create(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := kv.Put(ctx, "broken", []byte(`{"name": "no url", "status": "sleeping"`)); err != nil {
		t.Fatal(err)
	}

	watcher := statekv.NewWatcher(store, statekv.WatcherOptions{Policy: statekv.DefaultPolicy(), Logger: zerolog.Nop()})
	wctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- watcher.Run(wctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("watcher: %v", err)
		}
	})
	select {
	case <-watcher.Synced():
	case err := <-done:
		t.Fatalf("watcher stopped: %v", err)
	case <-time.After(waitTimeout):
		t.Fatal("watcher not synced")
	}

	m := metrics.New(watcher, js, names, zerolog.Nop())
	events, dead := map[string]string{"stream": names.Events}, map[string]string{"stream": names.DeadLetter}
	s := waitScrape(t, m,
		want{"dojo_webhooks_endpoints", l("status", "active"), 2},
		want{"dojo_webhooks_endpoints", l("status", "active_tmp"), 0},
		want{"dojo_webhooks_endpoints", l("status", "inactive_tmp"), 0},
		want{"dojo_webhooks_endpoints", l("status", "inactive_permanent"), 1},
		want{"dojo_webhooks_endpoints", l("status", "invalid"), 1},
		want{"dojo_webhooks_stream_messages", events, 0},
		want{"dojo_webhooks_stream_messages", dead, 0},
		want{"dojo_webhooks_stream_bytes", events, 0},
		want{"dojo_webhooks_stream_bytes", dead, 0},
	)
	if got := s.labelValues("dojo_webhooks_endpoints", "status"); strings.Join(got, ",") != "active,active_tmp,inactive_permanent,inactive_tmp,invalid" {
		t.Errorf("dojo_webhooks_endpoints statuses = %q", got)
	}
	for _, name := range []string{"dojo_webhooks_backlog", "dojo_webhooks_consumer_paused", "dojo_webhooks_dead_letters_held"} {
		if _, ok := s.families[name]; ok {
			t.Errorf("%s shown before any consumer or dead letter exists:\n%s", name, s.text)
		}
	}
	for _, name := range []string{"dojo_webhooks_endpoints", "dojo_webhooks_stream_messages", "dojo_webhooks_backlog"} {
		if f, ok := s.families[name]; ok && f.GetType() != dto.MetricType_GAUGE {
			t.Errorf("%s is a %v, want a gauge", name, f.GetType())
		}
	}

	// Endpoint x's consumer, and a consumer that is not an endpoint's.
	for _, durable := range []string{contract.ConsumerName("x"), "someone_else"} {
		if _, err := js.CreateOrUpdateConsumer(ctx, names.Events, jetstream.ConsumerConfig{
			Durable:       durable,
			AckPolicy:     jetstream.AckExplicitPolicy,
			FilterSubject: names.Prefix + ".events.>",
		}); err != nil {
			t.Fatal(err)
		}
	}
	waitScrape(t, m,
		want{"dojo_webhooks_backlog", l("endpoint", "x"), 0},
		want{"dojo_webhooks_consumer_paused", l("endpoint", "x"), 0},
	)
	var size uint64
	for i := range 3 {
		ack, err := js.Publish(ctx, names.EventSubject("scan_added"), []byte(fmt.Sprintf(`{"n":%d}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		if ack.Sequence != uint64(i+1) {
			t.Fatalf("event stored at %d", ack.Sequence)
		}
	}
	s = waitScrape(t, m,
		want{"dojo_webhooks_backlog", l("endpoint", "x"), 3},
		want{"dojo_webhooks_consumer_paused", l("endpoint", "x"), 0},
		want{"dojo_webhooks_stream_messages", events, 3},
	)
	if v, _ := s.value("dojo_webhooks_stream_bytes", events); v <= 0 {
		t.Errorf("dojo_webhooks_stream_bytes{stream=%q} = %g with 3 events stored", names.Events, v)
	} else {
		size = uint64(v)
	}
	for _, id := range s.labelValues("dojo_webhooks_backlog", "endpoint") {
		if id != "x" {
			t.Errorf("backlog shown for %q, which is not an endpoint consumer", id)
		}
	}

	// One event in flight still counts as backlog.
	c, err := js.Consumer(ctx, names.Events, contract.ConsumerName("x"))
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.Fetch(1, jetstream.FetchMaxWait(waitTimeout))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range batch.Messages() {
		n++
	}
	if n != 1 || batch.Error() != nil {
		t.Fatalf("fetched %d messages (%v)", n, batch.Error())
	}
	waitScrape(t, m, want{"dojo_webhooks_backlog", l("endpoint", "x"), 3})

	// Dead letters, for x and for an endpoint without a consumer.
	for range 2 {
		if _, err := js.Publish(ctx, names.DeadLetterSubject("x"), []byte(`{"dead":true}`)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.Publish(ctx, names.DeadLetterSubject("gone"), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	s = waitScrape(t, m,
		want{"dojo_webhooks_dead_letters_held", l("endpoint", "x"), 2},
		want{"dojo_webhooks_dead_letters_held", l("endpoint", "gone"), 1},
		want{"dojo_webhooks_stream_messages", dead, 3},
		want{"dojo_webhooks_stream_messages", events, 3},
	)
	if v, _ := s.value("dojo_webhooks_stream_bytes", events); uint64(v) != size {
		t.Errorf("events stream bytes changed from %d to %g by dead letters", size, v)
	}
	if _, ok := s.value("dojo_webhooks_backlog", l("endpoint", "gone")); ok {
		t.Error("backlog shown for an endpoint without a consumer")
	}

	// Paused on the server.
	if _, err := js.PauseConsumer(ctx, names.Events, contract.ConsumerName("x"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	waitScrape(t, m,
		want{"dojo_webhooks_consumer_paused", l("endpoint", "x"), 1},
		want{"dojo_webhooks_backlog", l("endpoint", "x"), 3},
	)
	if _, err := js.ResumeConsumer(ctx, names.Events, contract.ConsumerName("x")); err != nil {
		t.Fatal(err)
	}
	waitScrape(t, m, want{"dojo_webhooks_consumer_paused", l("endpoint", "x"), 0})

	// The endpoint gauges follow the KV writes.
	if err := kv.Delete(ctx, "broken"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.Update(ctx, "y", func(r statekv.Record) (statekv.Record, bool, error) {
		r.Status = statekv.StatusInactivePermanent
		r.Note = "deactivated by a test"
		return r, true, nil
	}); err != nil {
		t.Fatal(err)
	}
	waitScrape(t, m,
		want{"dojo_webhooks_endpoints", l("status", "active"), 1},
		want{"dojo_webhooks_endpoints", l("status", "inactive_permanent"), 2},
		want{"dojo_webhooks_endpoints", l("status", "invalid"), 0},
	)
}

// Without the streams (a scrape before the sidecar created them, or after they
// were deleted) the scrape still answers, with what it could read.
func TestScrapeWithoutStreams(t *testing.T) {
	_, _, js := natstest.JetStream(t)
	m := metrics.New(nil, js, names, zerolog.Nop())
	m.DeadLettered("a")
	s := mustScrape(t, m)
	if v, ok := s.value("dojo_webhooks_dead_letters_total", l("endpoint", "a")); !ok || v != 1 {
		t.Errorf("counter lost when the streams are missing:\n%s", s.text)
	}
	if _, ok := s.families["dojo_webhooks_stream_messages"]; ok {
		t.Errorf("stream gauges shown without streams:\n%s", s.text)
	}
}

// Thousands of distinct event names, as an unauthenticated client can post to
// /ingest, make a bounded number of series: DefectDojo's events, the first
// MaxOtherEvents others, then one overflow bucket that counts the rest.
func TestReceivedEventLabelsAreBounded(t *testing.T) {
	m := metrics.New(nil, nil, contract.NamesFor(contract.DefaultPrefix), zerolog.Nop())
	for _, e := range metrics.KnownEvents {
		m.Received(e)
	}
	const distinct = 5000
	for i := range distinct {
		m.Received(fmt.Sprintf("attack_%d", i))
	}
	m.Received("attack_0") // an admitted other keeps its own series
	m.Received("sla_breach")
	s := mustScrape(t, m)
	got := s.labelValues("dojo_webhooks_events_received_total", "event")
	if want := len(metrics.KnownEvents) + metrics.MaxOtherEvents + 1; len(got) != want {
		t.Fatalf("%d event label values, want %d", len(got), want)
	}
	for _, w := range []want{
		{"dojo_webhooks_events_received_total", map[string]string{"event": "sla_breach"}, 2},
		{"dojo_webhooks_events_received_total", map[string]string{"event": "other"}, 1},
		{"dojo_webhooks_events_received_total", map[string]string{"event": "attack_0"}, 2},
		{"dojo_webhooks_events_received_total", map[string]string{"event": metrics.OverflowEvent}, distinct - metrics.MaxOtherEvents},
	} {
		if bad := s.mismatches([]want{w}); len(bad) > 0 {
			t.Error(bad)
		}
	}
	if len(s.text) > 64<<10 {
		t.Errorf("/metrics is %d bytes", len(s.text))
	}
}
