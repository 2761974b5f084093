package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/attempts"
	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/jsstate"
)

// chartBatch is how many attempt-log records one fetch of the chart asks for.
const chartBatch = 1024

// Chart geometry, in SVG user units.
const (
	chartWidth  = 720
	chartHeight = 180
	chartLeft   = 40 // room for the count axis
	chartBottom = 24 // room for the time axis
)

// bucket is one bar of the chart.
type bucket struct {
	Start           time.Time
	Total, Failed   int
	X, W            int // bar position and width
	TotalY, TotalH  int
	FailedY, FailsH int
}

// chart is the last ChartWindow of attempts in ChartBuckets bars.
type chart struct {
	Buckets       []bucket
	Total, Failed int
	Max           int
	Truncated     bool   // more than MaxChartAttempts in the window: the oldest were not read
	Error         string // why the attempt log could not be read
	Width, Height int
	Left, Base    int // the plot's left edge and baseline
	From, To      time.Time
}

// streamView is one stream's usage against its limits.
type streamView struct {
	jsstate.StreamState
	MaxBytes, MaxMsgs int64
	MaxAge            time.Duration
	Discard           string
	Full              string // the use of the tightest limit, e.g. "12%"; "" without limits
	Limits            string // the limits in words, e.g. "1.0 GiB, 24h, discard old"
}

type overviewData struct {
	Counts      []statusCount
	Total       int
	Chart       chart
	Streams     []streamView
	SnapshotErr string
	Dropped     string // what the server says of dropped events
}

type statusCount struct {
	Status string
	N      int
}

func (c *Console) overviewPage(w http.ResponseWriter, r *http.Request, s session) {
	ctx, cancel := c.ctx(r)
	defer cancel()
	all, snapErr := c.cfg.API.Endpoints(ctx)
	d := overviewData{Total: len(all)}
	counts := map[string]int{}
	for _, e := range all {
		counts[e.Status]++
	}
	for _, st := range Statuses {
		d.Counts = append(d.Counts, statusCount{st, counts[st]})
	}
	d.Chart = c.readChart(ctx)
	snap, err := jsstate.ReadSnapshot(ctx, c.cfg.JetStream, c.cfg.Names)
	if err == nil {
		err = snapErr
	}
	if err != nil {
		d.SnapshotErr = err.Error()
	}
	for _, st := range snap.Streams {
		sv := streamView{StreamState: st}
		if stream, err := c.cfg.JetStream.Stream(ctx, st.Name); err == nil {
			cfg := stream.CachedInfo().Config
			sv.MaxBytes, sv.MaxMsgs, sv.MaxAge, sv.Discard = cfg.MaxBytes, cfg.MaxMsgs, cfg.MaxAge, strings.TrimPrefix(cfg.Discard.String(), "Discard")
			use := 0.0
			if cfg.MaxBytes > 0 {
				use = max(use, float64(st.Bytes)/float64(cfg.MaxBytes))
			}
			if cfg.MaxMsgs > 0 {
				use = max(use, float64(st.Messages)/float64(cfg.MaxMsgs))
			}
			if cfg.MaxBytes > 0 || cfg.MaxMsgs > 0 {
				sv.Full = fmt.Sprintf("%.0f%%", 100*use)
			}
			sv.Limits = limitsOf(cfg)
		}
		d.Streams = append(d.Streams, sv)
	}
	var dropped uint64
	for _, st := range snap.Endpoints {
		dropped += st.Dropped
	}
	d.Dropped = droppedNote(d.Streams, c.cfg.Names.Events, dropped, err == nil)
	c.render(w, r, http.StatusOK, "overview", "Overview", &s, d)
}

// droppedNote says what is known of dropped events: the events stream drops
// its oldest events when a limit is reached, and how many of them endpoints had
// not received (jsstate's estimate, summed over the endpoints).
func droppedNote(streams []streamView, events string, dropped uint64, known bool) string {
	for _, sv := range streams {
		if sv.Name != events {
			continue
		}
		if sv.Full == "" && sv.MaxAge == 0 {
			return "The events stream has no size or age limit: no event is dropped for space."
		}
		count := "The endpoints' losses could not be read."
		if known {
			count = fmt.Sprintf("Events discarded before their endpoint received them, summed over the endpoints now: %d (each endpoint's count is in the list and in dojo_webhooks_events_dropped_total).", dropped)
		}
		return fmt.Sprintf("The events stream drops its oldest events (discard %s) at its limits; it is at %s of them. %s",
			strings.ToLower(sv.Discard), orNone(sv.Full), count)
	}
	return "The events stream could not be read."
}

// limitsOf writes a stream's limits in words.
func limitsOf(cfg jetstream.StreamConfig) string {
	var parts []string
	if cfg.MaxBytes > 0 {
		parts = append(parts, formatBytes(uint64(cfg.MaxBytes)))
	}
	if cfg.MaxMsgs > 0 {
		parts = append(parts, strconv.FormatInt(cfg.MaxMsgs, 10)+" messages")
	}
	if cfg.MaxAge > 0 {
		parts = append(parts, cfg.MaxAge.String())
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ") + ", discard " + strings.ToLower(strings.TrimPrefix(cfg.Discard.String(), "Discard"))
}

func orNone(s string) string {
	if s == "" {
		return "no size limit"
	}
	return s
}

// readChart counts the attempts of the last ChartWindow from the attempt log.
func (c *Console) readChart(ctx context.Context) chart {
	now := c.cfg.Now().UTC()
	ch := chart{Width: chartWidth, Height: chartHeight, Left: chartLeft, Base: chartHeight - chartBottom,
		From: now.Add(-ChartWindow), To: now}
	step := ChartWindow / ChartBuckets
	for i := range ChartBuckets {
		ch.Buckets = append(ch.Buckets, bucket{Start: ch.From.Add(time.Duration(i) * step)})
	}
	recs, truncated, err := recentAttempts(ctx, c.cfg.JetStream, c.cfg.Names, ch.From)
	ch.Truncated = truncated
	if err != nil {
		ch.Error = err.Error()
	}
	for _, rec := range recs {
		i := int(rec.Start.Sub(ch.From) / step)
		if i < 0 || i >= ChartBuckets {
			continue
		}
		ch.Buckets[i].Total++
		ch.Total++
		if rec.Outcome != "success" {
			ch.Buckets[i].Failed++
			ch.Failed++
		}
	}
	for _, b := range ch.Buckets {
		ch.Max = max(ch.Max, b.Total)
	}
	plotW, plotH := chartWidth-chartLeft, ch.Base-8
	slot := plotW / ChartBuckets
	for i := range ch.Buckets {
		b := &ch.Buckets[i]
		b.X, b.W = chartLeft+i*slot+2, slot-4
		if ch.Max > 0 {
			b.TotalH = b.Total * plotH / ch.Max
			b.FailsH = b.Failed * plotH / ch.Max
		}
		b.TotalY, b.FailedY = ch.Base-b.TotalH, ch.Base-b.FailsH
	}
	return ch
}

// chartRecord is the part of an attempt record the chart reads.
type chartRecord struct {
	Start   time.Time `json:"start"`
	Outcome string    `json:"outcome"`
}

// recentAttempts reads the attempt log's records since from, at most
// MaxChartAttempts of them (truncated says there were more).
func recentAttempts(ctx context.Context, js jetstream.JetStream, names contract.Names, from time.Time) ([]chartRecord, bool, error) {
	stream, err := js.Stream(ctx, names.Attempts)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, false, fmt.Errorf("%w: stream %s not found", attempts.ErrNoLog, names.Attempts)
	}
	if err != nil {
		return nil, false, fmt.Errorf("stream %s: %w", names.Attempts, err)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{names.AllAttempts()},
		DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &from})
	if err != nil {
		return nil, false, fmt.Errorf("read attempt log: %w", err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("read attempt log: %w", err)
	}
	pending := info.NumPending
	skip := uint64(0)
	if pending > MaxChartAttempts {
		skip = pending - MaxChartAttempts // keep the newest: skip the oldest records
	}
	var out []chartRecord
	for pending > 0 {
		batch, err := cons.FetchNoWait(chartBatch)
		if err != nil {
			return out, skip > 0, fmt.Errorf("read attempt log: %w", err)
		}
		got := 0
		for msg := range batch.Messages() {
			got++
			if md, err := msg.Metadata(); err == nil {
				pending = md.NumPending
			}
			if skip > 0 {
				skip--
				continue
			}
			var rec chartRecord
			if json.Unmarshal(msg.Data(), &rec) == nil {
				out = append(out, rec)
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return out, false, fmt.Errorf("read attempt log: %w", err)
		}
		if got == 0 || ctx.Err() != nil {
			break
		}
	}
	return out, info.NumPending > MaxChartAttempts, ctx.Err()
}

// eventData is the event lookup: what was asked and every endpoint's attempts of it.
type eventData struct {
	WebhookID string
	Seq       string
	Event     string // the event's name, when looked up by sequence
	Subject   string
	Asked     bool
	Items     []attempts.Record
	Error     string
}

func (c *Console) eventPage(w http.ResponseWriter, r *http.Request, s session) {
	v := r.URL.Query()
	d := eventData{WebhookID: strings.TrimSpace(v.Get("webhook_id")), Seq: strings.TrimSpace(v.Get("seq"))}
	ctx, cancel := c.ctx(r)
	defer cancel()
	status := http.StatusOK
	if d.WebhookID == "" && d.Seq != "" {
		if err := c.lookupSeq(ctx, &d); err != nil {
			d.Error, status = err.Error(), http.StatusNotFound
		}
	}
	if d.WebhookID != "" {
		d.Asked = true
		items, err := attempts.ForWebhookID(ctx, c.cfg.JetStream, c.cfg.Names, d.WebhookID)
		if err != nil {
			d.Error = err.Error()
		}
		d.Items = items
	}
	c.render(w, r, status, "events", "Event lookup", &s, d)
}

// lookupSeq finds the webhook-id of the events stream's message at d.Seq.
func (c *Console) lookupSeq(ctx context.Context, d *eventData) error {
	seq, err := strconv.ParseUint(d.Seq, 10, 64)
	if err != nil || seq == 0 {
		return fmt.Errorf("sequence %q: must be a positive number", d.Seq)
	}
	stream, err := c.cfg.JetStream.Stream(ctx, c.cfg.Names.Events)
	if err != nil {
		return fmt.Errorf("stream %s: %w", c.cfg.Names.Events, err)
	}
	msg, err := stream.GetMsg(ctx, seq)
	if err != nil {
		return fmt.Errorf("message %d of stream %s: %w", seq, c.cfg.Names.Events, err)
	}
	d.Subject = msg.Subject
	d.Event, _, _ = c.cfg.Names.EventName(msg.Subject)
	d.WebhookID = contract.WebhookID(c.cfg.Names.Events, msg.Header, seq, c.cfg.Names.IsReplay(msg.Subject))
	return nil
}
