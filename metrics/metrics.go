// Package metrics exposes the sidecar's Prometheus metrics: counters fed by the
// delivery pipeline and the ingest bridge, and gauges read from the KV view and
// the JetStream server at scrape time.
package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/delivery"
	"github.com/dojo-webhooks/dojo-webhooks/jsstate"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// scrapeTimeout bounds the JetStream calls made for one scrape.
const scrapeTimeout = 5 * time.Second

// Metrics holds the sidecar's collectors; it implements consumer.Observer.
type Metrics struct {
	registry     *prometheus.Registry
	received     *prometheus.CounterVec
	deliveries   *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	transitions  *prometheus.CounterVec
	deadLetters  *prometheus.CounterVec
	attemptsLost prometheus.Counter
	local        *prometheus.CounterVec
	dropped      *prometheus.CounterVec
	events       *eventLabels
}

// New registers every metric; view and js feed the gauges read at scrape time
// (either may be nil, e.g. in tests).
func New(view *statekv.Watcher, js jetstream.JetStream, names contract.Names, log zerolog.Logger) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		events:   newEventLabels(),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dojo_webhooks_events_received_total",
			Help: "Events accepted by the ingest bridge and stored in the events stream, by event (DefectDojo's events, the first 50 others, then \"(other)\").",
		}, []string{"event"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dojo_webhooks_deliveries_total",
			Help: "Delivery attempts by endpoint and outcome class (success, temporary, permanent, local).",
		}, []string{"endpoint", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dojo_webhooks_delivery_duration_seconds",
			Help:    "Duration of delivery attempts (request sent to response read), by outcome class.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"outcome"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dojo_webhooks_transitions_total",
			Help: "Endpoint state transitions written by this sidecar after a delivery, by from and to status.",
		}, []string{"from", "to"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dojo_webhooks_dead_letters_total",
			Help: "Events dead-lettered by this sidecar, by endpoint.",
		}, []string{"endpoint"}),
		local: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dojo_webhooks_local_failures_total",
			Help: "Delivery attempts that failed on the sidecar's side (descriptors, buffers or memory exhausted, no local address, shutdown), by endpoint: retried, the endpoint's state untouched.",
		}, []string{"endpoint"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dojo_webhooks_events_dropped_total",
			Help: "Events the events stream's limits (max age, max bytes) discarded before the endpoint received them, by endpoint (estimated for a filtered endpoint).",
		}, []string{"endpoint"}),
		attemptsLost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "dojo_webhooks_attempts_not_recorded_total",
			Help: "Attempts that could not be written to the attempt log (queue full or publish failed); deliveries are not affected.",
		}),
	}
	m.registry.MustRegister(m.received, m.local, m.dropped, m.deliveries, m.latency, m.transitions, m.deadLetters, m.attemptsLost,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.registry.MustRegister(&stateCollector{view: view, js: js, names: names, log: log})
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// Received counts one event stored by the ingest bridge, under a bounded label
// value: a known DefectDojo event, one of the first MaxOtherEvents others, or OverflowEvent.
func (m *Metrics) Received(event string) { m.received.WithLabelValues(m.events.label(event)).Inc() }

// Delivered counts one delivery attempt and its duration.
func (m *Metrics) Delivered(endpoint, _ string, res delivery.Result) {
	outcome := res.Class.String()
	m.deliveries.WithLabelValues(endpoint, outcome).Inc()
	m.latency.WithLabelValues(outcome).Observe(res.Duration.Seconds())
	if res.Class == delivery.Local {
		m.local.WithLabelValues(endpoint).Inc()
	}
}

// Transitioned counts one state transition.
func (m *Metrics) Transitioned(_ string, from, to statekv.Status) {
	m.transitions.WithLabelValues(string(from), string(to)).Inc()
}

// AttemptsLost counts attempts the attempt log could not record.
func (m *Metrics) AttemptsLost(n int) { m.attemptsLost.Add(float64(n)) }

// Dropped counts events the stream's limits discarded before the endpoint received them.
func (m *Metrics) Dropped(endpoint string, count, _, _ uint64) {
	m.dropped.WithLabelValues(endpoint).Add(float64(count))
}

// DeadLettered counts one dead letter.
func (m *Metrics) DeadLettered(endpoint string) { m.deadLetters.WithLabelValues(endpoint).Inc() }

var (
	endpointsDesc = prometheus.NewDesc("dojo_webhooks_endpoints",
		"Endpoints by status (invalid = a record that does not parse or validate).", []string{"status"}, nil)
	backlogDesc = prometheus.NewDesc("dojo_webhooks_backlog",
		"Events waiting for an endpoint or in flight (its consumer's pending plus unacknowledged).", []string{"endpoint"}, nil)
	pausedDesc = prometheus.NewDesc("dojo_webhooks_consumer_paused",
		"1 when the endpoint's consumer is paused on the server.", []string{"endpoint"}, nil)
	heldDeadLettersDesc = prometheus.NewDesc("dojo_webhooks_dead_letters_held",
		"Dead letters held in the dead-letter stream, by endpoint.", []string{"endpoint"}, nil)
	streamMsgsDesc = prometheus.NewDesc("dojo_webhooks_stream_messages",
		"Messages stored in the stream.", []string{"stream"}, nil)
	streamBytesDesc = prometheus.NewDesc("dojo_webhooks_stream_bytes",
		"Bytes stored in the stream.", []string{"stream"}, nil)
)

// stateCollector reads the gauges when scraped.
type stateCollector struct {
	view  *statekv.Watcher
	js    jetstream.JetStream
	names contract.Names
	log   zerolog.Logger
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{endpointsDesc, backlogDesc, pausedDesc, heldDeadLettersDesc, streamMsgsDesc, streamBytesDesc} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	if c.view != nil {
		byStatus, invalid := c.view.Counts()
		for _, s := range []statekv.Status{statekv.StatusActive, statekv.StatusActiveTmp, statekv.StatusInactiveTmp, statekv.StatusInactivePermanent} {
			ch <- prometheus.MustNewConstMetric(endpointsDesc, prometheus.GaugeValue, float64(byStatus[s]), string(s))
		}
		ch <- prometheus.MustNewConstMetric(endpointsDesc, prometheus.GaugeValue, float64(invalid), "invalid")
	}
	if c.js == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	snap, err := jsstate.ReadSnapshot(ctx, c.js, c.names)
	if err != nil {
		c.log.Warn().Err(err).Msg("metrics: reading the streams and consumers failed")
	}
	for _, s := range snap.Streams {
		ch <- prometheus.MustNewConstMetric(streamMsgsDesc, prometheus.GaugeValue, float64(s.Messages), s.Name)
		ch <- prometheus.MustNewConstMetric(streamBytesDesc, prometheus.GaugeValue, float64(s.Bytes), s.Name)
	}
	for id, st := range snap.Endpoints {
		if st.HasConsumer {
			ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, float64(st.Backlog), id)
			paused := 0.0
			if st.Paused {
				paused = 1
			}
			ch <- prometheus.MustNewConstMetric(pausedDesc, prometheus.GaugeValue, paused, id)
		}
		ch <- prometheus.MustNewConstMetric(heldDeadLettersDesc, prometheus.GaugeValue, float64(st.DeadLetters), id)
	}
}
