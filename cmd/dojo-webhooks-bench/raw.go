package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/delivery"
)

// The physical limits every comparable figure is measured against, on the same
// receiver and the same NATS server in the same round.

// rawClient is a plain keep-alive net/http client sized like the sidecar's.
func rawClient(conc int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        max(1024, conc),
		MaxIdleConnsPerHost: max(conc, delivery.DefaultMaxConnsPerHost),
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}}
}

// rawPost sends what the sidecar sends: the body and the same headers.
func rawPost(c *http.Client, url string, seq int, ts int64) error {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(eventBody(seq, ts)))
	if err != nil {
		return err
	}
	h := req.Header
	h.Set("User-Agent", benchUserAgent)
	h.Set("X-DefectDojo-Event", bodyEvent)
	h.Set("X-DefectDojo-Instance", benchInstance)
	h.Set("Accept", "application/json")
	h.Set("Content-Type", "application/json")
	h.Set(delivery.HeaderID, "DEFECTDOJO_EVENTS-"+strconv.Itoa(seq+1))
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// rawHTTPRate POSTs up to n requests (at most maxDur) with conc workers, worker
// w to endpoint eps[w % len(eps)], and returns the receiver's rate (first to last receipt).
func rawHTTPRate(rc *receiver, eps []int, conc, n int, maxDur time.Duration) (float64, error) {
	rc.reset()
	defer rc.reset()
	c := rawClient(conc)
	defer c.CloseIdleConnections()
	var next atomic.Int64
	var firstErr atomic.Value
	deadline := time.Now().Add(maxDur)
	var wg sync.WaitGroup
	for w := range conc {
		url := rc.urls[eps[w%len(eps)]]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				seq := int(next.Add(1) - 1)
				if seq >= n || time.Now().After(deadline) {
					return
				}
				if err := rawPost(c, url, seq, 0); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, fmt.Errorf("raw HTTP: %w", err)
	}
	cnt, _, first, last := rc.span(eps)
	return rate(cnt, first, last), nil
}

// rawHTTPLatency POSTs each event at perSecond for dur to every endpoint of
// eps, one goroutine per request, and returns send→receipt latencies.
func rawHTTPLatency(rc *receiver, eps []int, perSecond int, dur time.Duration) ([]int64, error) {
	rc.reset()
	rc.record.Store(true)
	defer func() { rc.record.Store(false); rc.reset() }()
	c := rawClient(16 * len(eps))
	defer c.CloseIdleConnections()
	var firstErr atomic.Value
	n := paced(perSecond, dur, func(i int) {
		for _, ep := range eps {
			go func() {
				if err := rawPost(c, rc.urls[ep], i, nowNS()); err != nil {
					firstErr.CompareAndSwap(nil, err)
				}
			}()
		}
	})
	err := waitProgress(n*len(eps), 10*time.Second, time.Minute, func() int { return rc.uniqueOf(eps) })
	if e, _ := firstErr.Load().(error); e != nil {
		err = e
	}
	if err != nil {
		return nil, fmt.Errorf("raw HTTP latency: %w", err)
	}
	return rc.latencies(eps), nil
}

// rawStream creates a stream configured like the events stream (file storage,
// limits retention, dedup window) and returns it with its subject.
func (e *env) rawStream(ctx context.Context) (jetstream.Stream, string, error) {
	_ = e.adminJS.DeleteStream(ctx, e.rawName)
	rawNames := contract.NamesFor(strings.ToLower(e.rawName))
	subj := rawNames.EventSubject(bodyEvent)
	s, err := e.adminJS.CreateStream(ctx, jetstream.StreamConfig{
		Name:         e.rawName,
		Subjects:     rawNames.EventsStreamSubjects(),
		Retention:    jetstream.LimitsPolicy,
		MaxAge:       consumer.DefaultEventsMaxAge,
		MaxMsgs:      -1,
		MaxBytes:     -1,
		Discard:      jetstream.DiscardOld,
		Storage:      jetstream.FileStorage,
		Replicas:     1,
		Duplicates:   consumer.DefaultDedupWindow,
		MaxConsumers: consumer.MaxConsumersPerStream,
	})
	return s, subj, err
}

// rawConsumerConfig is a consumer configured like an endpoint's (AckWait, ack
// window, two filters, start time).
func (e *env) rawConsumerConfig(name string, mif int, start time.Time) jetstream.ConsumerConfig {
	cc := jetstream.ConsumerConfig{
		Durable:        name,
		DeliverPolicy:  jetstream.DeliverAllPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        consumer.AckWait,
		MaxDeliver:     -1,
		FilterSubjects: contract.NamesFor(strings.ToLower(e.rawName)).ConsumerFilters(name, nil),
		MaxAckPending:  mif,
	}
	if !start.IsZero() {
		cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	}
	return cc
}

// consumeRate runs Consume with an ack window of mif (what the sidecar's
// runner does, minus HTTP) on cons until n messages or maxDur; it returns the
// rate between the first and last message.
func consumeRate(cons jetstream.Consumer, mif, n int, maxDur time.Duration) (float64, int, error) {
	var count atomic.Int64
	var first, last atomic.Int64
	done := make(chan struct{})
	var once sync.Once
	cc, err := cons.Consume(func(m jetstream.Msg) {
		now := nowNS()
		first.CompareAndSwap(0, now)
		_ = m.Ack()
		last.Store(now)
		if int(count.Add(1)) == n {
			once.Do(func() { close(done) })
		}
	}, jetstream.PullMaxMessages(max(2*mif, 16)))
	if err != nil {
		return 0, 0, err
	}
	select {
	case <-done:
	case <-time.After(maxDur):
	}
	cc.Stop()
	c := int(count.Load())
	return rate(c, first.Load(), last.Load()), c, nil
}

// rawJS measures, on a fresh stream of the same server: async and sync publish
// of 1 KB events, a pull consumer fetching and acking (batches of 256, default
// ack window), and the same consume with an ack window of mif.
func (e *env) rawJS(n, mif int, maxDur time.Duration, withSync bool) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s, subj, err := e.rawStream(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = e.adminJS.DeleteStream(context.Background(), e.rawName) }()
	out := map[string]float64{}
	d, err := e.publishAsync(e.pubJS, subj, n, func(i int) []byte { return eventBody(i, 0) })
	if err != nil {
		return nil, fmt.Errorf("raw async publish: %w", err)
	}
	out["async_publish_per_s"] = float64(n) / d.Seconds()
	if withSync {
		start := time.Now()
		deadline := start.Add(maxDur)
		i := 0
		for ; i < n && time.Now().Before(deadline); i++ {
			if _, err := e.pubJS.Publish(ctx, subj, eventBody(n+i, 0)); err != nil {
				return nil, fmt.Errorf("raw sync publish: %w", err)
			}
		}
		out["sync_publish_per_s"] = float64(i) / time.Since(start).Seconds()
	}

	// Fetch and ack, with the server's default ack window.
	fc, err := s.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "raw_fetch", AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return nil, err
	}
	start := time.Now()
	deadline := start.Add(maxDur)
	got := 0
	for got < n && time.Now().Before(deadline) {
		batch, err := fc.Fetch(min(256, n-got), jetstream.FetchMaxWait(2*time.Second)) // a fetch waits for a full batch
		if err != nil {
			return nil, fmt.Errorf("raw fetch: %w", err)
		}
		for m := range batch.Messages() {
			_ = m.Ack()
			got++
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, fmt.Errorf("raw fetch: %w", err)
		}
	}
	out["fetch_ack_per_s"] = float64(got) / time.Since(start).Seconds()

	// Consume with the endpoint consumer's ack window (MaxAckPending = max-in-flight).
	mc, err := s.CreateOrUpdateConsumer(ctx, e.rawConsumerConfig("raw_window", mif, time.Time{}))
	if err != nil {
		return nil, err
	}
	r, _, err := consumeRate(mc, mif, n, maxDur)
	if err != nil {
		return nil, fmt.Errorf("raw consume: %w", err)
	}
	out["consume_window_per_s"] = r
	return out, nil
}

// rawConsumeWindow measures consume+ack alone on a fresh stream of n stored
// events with an ack window (MaxAckPending) of window.
func (e *env) rawConsumeWindow(n, window int, maxDur time.Duration) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	s, subj, err := e.rawStream(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = e.adminJS.DeleteStream(context.Background(), e.rawName) }()
	if _, err := e.publishAsync(e.pubJS, subj, n, func(i int) []byte { return eventBody(i, 0) }); err != nil {
		return 0, fmt.Errorf("raw async publish: %w", err)
	}
	c, err := s.CreateOrUpdateConsumer(ctx, e.rawConsumerConfig("raw_window", window, time.Time{}))
	if err != nil {
		return 0, err
	}
	r, _, err := consumeRate(c, window, n, maxDur)
	if err != nil {
		return 0, fmt.Errorf("raw consume: %w", err)
	}
	return r, nil
}

// rawJSLatency publishes at perSecond for dur (async, publish time in the
// body, from the TCP publisher) and consumes with consumers pull consumers,
// each with an ack window of mif (the sidecar's in-process connection):
// publish→handler latencies.
func (e *env) rawJSLatency(mif, consumers, perSecond int, dur time.Duration) ([]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, subj, err := e.rawStream(ctx)
	if err != nil {
		return nil, err
	}
	defer func() { _ = e.adminJS.DeleteStream(context.Background(), e.rawName) }()
	var mu sync.Mutex
	var lats []int64
	for i := range consumers {
		cfg := e.rawConsumerConfig(fmt.Sprintf("raw_latency_%d", i), mif, time.Time{})
		cfg.DeliverPolicy = jetstream.DeliverNewPolicy
		cons, err := s.CreateOrUpdateConsumer(ctx, cfg)
		if err != nil {
			return nil, err
		}
		cc, err := cons.Consume(func(m jetstream.Msg) {
			now := nowNS()
			if _, ts, ok := parseBody(m.Data()); ok {
				mu.Lock()
				lats = append(lats, now-ts)
				mu.Unlock()
			}
			_ = m.Ack()
		}, jetstream.PullMaxMessages(max(2*mif, 16)))
		if err != nil {
			return nil, err
		}
		defer cc.Stop()
	}
	var pubErr atomic.Value
	n := paced(perSecond, dur, func(i int) {
		if _, err := e.pubJS.PublishAsync(subj, eventBody(i, nowNS())); err != nil {
			pubErr.CompareAndSwap(nil, err)
		}
	})
	if err, _ := pubErr.Load().(error); err != nil {
		return nil, err
	}
	if err := waitProgress(n*consumers, 10*time.Second, time.Minute, func() int { mu.Lock(); defer mu.Unlock(); return len(lats) }); err != nil {
		return nil, fmt.Errorf("raw JetStream latency: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	return append([]int64(nil), lats...), nil
}

// rawJSFanout stores events messages, then consumes them with endpoints
// consumers at once (ack window mif each): total deliveries per second.
func (e *env) rawJSFanout(endpoints, events, mif int, maxDur time.Duration) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, subj, err := e.rawStream(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = e.adminJS.DeleteStream(context.Background(), e.rawName) }()
	if _, err := e.publishAsync(e.pubJS, subj, events, func(i int) []byte { return eventBody(i, 0) }); err != nil {
		return 0, err
	}
	cons := make([]jetstream.Consumer, endpoints)
	for i := range cons {
		if cons[i], err = s.CreateOrUpdateConsumer(ctx, e.rawConsumerConfig(fmt.Sprintf("raw_fan_%04d", i), mif, time.Time{})); err != nil {
			return 0, err
		}
	}
	total := endpoints * events
	var count, first, last atomic.Int64
	done := make(chan struct{})
	var once sync.Once
	ccs := make([]jetstream.ConsumeContext, 0, endpoints)
	defer func() {
		for _, cc := range ccs {
			cc.Stop()
		}
	}()
	for _, c := range cons {
		cc, err := c.Consume(func(m jetstream.Msg) {
			now := nowNS()
			first.CompareAndSwap(0, now)
			_ = m.Ack()
			for {
				l := last.Load()
				if now <= l || last.CompareAndSwap(l, now) {
					break
				}
			}
			if int(count.Add(1)) == total {
				once.Do(func() { close(done) })
			}
		}, jetstream.PullMaxMessages(max(2*mif, 16)))
		if err != nil {
			return 0, err
		}
		ccs = append(ccs, cc)
	}
	select {
	case <-done:
	case <-time.After(maxDur):
	}
	return rate(int(count.Load()), first.Load(), last.Load()), nil
}

// rawConsumerCreate creates n consumers configured like endpoint consumers,
// par at a time (1: one after the other), on a fresh stream: the server's own pace.
func (e *env) rawConsumerCreate(n, mif, par int) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, _, err := e.rawStream(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = e.adminJS.DeleteStream(context.Background(), e.rawName) }()
	now := time.Now()
	start := time.Now()
	var next atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range par {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if _, err := s.CreateConsumer(ctx, e.rawConsumerConfig(fmt.Sprintf("raw_%04d", i), mif, now)); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
