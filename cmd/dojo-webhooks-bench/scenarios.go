package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/attempts"

	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// sizes are the counts and durations of a run (full or -quick).
type sizes struct {
	throughputN      int           // 1: events to one endpoint
	rawMaxDur        time.Duration // bound of each raw throughput measurement
	latencyRate      int           // 2, 5: events per second
	latencyDur       time.Duration // 2, 5: publishing time
	rawLatencyDur    time.Duration // 2: raw HTTP and raw JetStream latency runs
	warmup           time.Duration // 2, 5: paced warm-up, not measured
	fanoutEndpoints  int           // 3
	fanoutEvents     int           // 3
	manyEndpoints    []int         // 4: endpoint counts, one start-up measurement each
	isoEndpoints     int           // 5
	isoTimeout       time.Duration // 5: the sidecar's HTTP timeout
	isoReactivate    time.Duration // 5: reactivate-after, so the hanging endpoint is retried during the run
	drainN           int           // 6
	stall            time.Duration // a wait fails when nothing moves this long
	readyPerEndpoint time.Duration // 4: ready target per endpoint (1,000 in 1.5 s, 10,000 in 15 s)
	rssTargetMB      float64       // 4: the sidecar's RSS target, at least
	rssPerEndpointMB float64       // 4: ... and per endpoint (10,000: 1 GB)
	p99TargetMS      float64       // 2: publish→receipt p99 at latencyRate, embedded server
	p99ProcessMS     float64       // 0.7: the same with a separate nats-server, ordered
	orderedEmbedded  float64       // 1: max-in-flight 1, ratio to raw HTTP c=1, embedded server
	orderedProcess   float64       // 1: the same with a separate server (process or NATS_URL)
	combinedTarget   float64       // 1: max-in-flight > 1, separate server: ratio to the combined limit L
	isolationTarget  float64       // 5: ratio to scenario 2's p99
}

// readyTarget is scenario 4's start-up target for n endpoints.
func (s sizes) readyTarget(n int) time.Duration { return time.Duration(n) * s.readyPerEndpoint }

// rssTarget is scenario 4's sidecar RSS target for n endpoints, in MB.
func (s sizes) rssTarget(n int) float64 { return max(s.rssTargetMB, float64(n)*s.rssPerEndpointMB) }

func fullSizes() sizes {
	return sizes{
		throughputN: 100_000, rawMaxDur: 5 * time.Second,
		latencyRate: 1000, latencyDur: 10 * time.Second, rawLatencyDur: 3 * time.Second, warmup: 500 * time.Millisecond,
		fanoutEndpoints: 100, fanoutEvents: 1000,
		manyEndpoints: []int{1000, 10_000},
		isoEndpoints:  10, isoTimeout: 2 * time.Second, isoReactivate: 500 * time.Millisecond,
		// stall: above nats.go's own recovery (two missed 15 s heartbeats), so a
		// stalled consume shows in the figures (max_gap_ms) instead of aborting the round.
		drainN: 100_000, stall: 60 * time.Second,
		readyPerEndpoint: 1500 * time.Microsecond, rssTargetMB: 200, rssPerEndpointMB: 0.1, p99TargetMS: 2, p99ProcessMS: 0.7,
		orderedEmbedded: 0.75, orderedProcess: 0.6, combinedTarget: 0.8, isolationTarget: 2,
	}
}

func quickSizes() sizes {
	s := fullSizes()
	s.throughputN, s.rawMaxDur = 2000, 400*time.Millisecond
	s.latencyDur, s.rawLatencyDur, s.warmup = 700*time.Millisecond, 200*time.Millisecond, 100*time.Millisecond
	s.fanoutEndpoints, s.fanoutEvents = 10, 100
	s.manyEndpoints = []int{20, 100}
	s.isoTimeout, s.isoReactivate = 300*time.Millisecond, 100*time.Millisecond
	s.drainN = 2000
	return s
}

// scenario is one of the six measurements; run does one round.
type scenario struct {
	id     int
	name   string
	method func(b *bench) string
	params func(b *bench) map[string]any
	run    func(b *bench, f *figs) error
	checks func(b *bench, med map[string]float64) []check
}

var scenarios = []scenario{
	{
		id: 1, name: "throughput",
		method: func(b *bench) string {
			return fmt.Sprintf("one endpoint, %d events of 1 KB published first (backlog), then the sidecar started; "+
				"deliveries/s = first→last receipt; for each max-in-flight %v; raw HTTP = keep-alive net/http client at the same concurrency; "+
				"L = 1/(1/raw HTTP + 1/raw JS async publish + 1/raw JS consume+ack with the endpoint consumer's ack window), all on this server", b.sz.throughputN, b.o.mifs)
		},
		params: func(b *bench) map[string]any {
			return map[string]any{"events": b.sz.throughputN, "body_bytes": bodySize, "max_in_flight": b.o.mifs, "mode": "backlog", "storage": "file"}
		},
		run: func(b *bench, f *figs) error {
			for _, m := range b.o.mifs {
				if err := b.throughputOnce(m, f, ""); err != nil {
					return fmt.Errorf("max-in-flight %d: %w", m, err)
				}
				if b.o.attemptsOff && !b.o.quick {
					off := newFigs()
					if err := b.throughputOnce(m, off, attempts.ModeOff); err != nil {
						return fmt.Errorf("max-in-flight %d, attempt log off: %w", m, err)
					}
					for _, k := range []string{"deliveries_per_s", "raw_http_per_s", "ratio_raw_http"} {
						f.set(sfx(k, m)+"_attempts_off", off.vals[sfx(k, m)])
					}
					f.set(sfx("attempt_log_cost", m), 1-ratio(f.vals[sfx("deliveries_per_s", m)], off.vals[sfx("deliveries_per_s", m)]))
				}
			}
			return nil
		},
		checks: func(b *bench, med map[string]float64) []check {
			var cs []check
			for _, m := range b.o.mifs {
				httpTarget, lTarget := 0.0, 0.0
				switch {
				case m == 1 && b.mode == modeEmbedded:
					httpTarget = b.sz.orderedEmbedded
				case m == 1:
					httpTarget = b.sz.orderedProcess
				case b.mode != modeEmbedded:
					lTarget = b.sz.combinedTarget
				}
				cs = append(cs, ratioCheck(med, fmt.Sprintf("deliveries/s max-in-flight=%d", m), sfx("deliveries_per_s", m),
					sfx("raw_http_per_s", m), fmt.Sprintf("raw HTTP c=%d", m), sfx("ratio_raw_http", m), "/s", httpTarget),
					combinedCheck(med, fmt.Sprintf("deliveries/s max-in-flight=%d vs L", m), "deliveries_per_s", m, lTarget))
				if v, ok := med[sfx("deliveries_per_s", m)+"_attempts_off"]; ok {
					c := ratioCheck(med, fmt.Sprintf("deliveries/s max-in-flight=%d, attempt log on vs off", m), sfx("deliveries_per_s", m),
						sfx("deliveries_per_s", m)+"_attempts_off", "attempt log off", "", "/s", 0)
					c.Target, c.Pass = "≥ 0.9 × attempt log off", ptr(v > 0 && med[sfx("deliveries_per_s", m)]/v >= 0.9)
					cs = append(cs, c)
				}
				cs = append(cs, ratioCheck(med, fmt.Sprintf("deliveries/s vs JetStream ack window %d", m), sfx("deliveries_per_s", m),
					sfx("raw_js_consume_window_per_s", m), fmt.Sprintf("raw JS consume+ack, MaxAckPending=%d", m), sfx("ratio_raw_js_window", m), "/s", 0),
					check{Metric: fmt.Sprintf("longest pause between receipts, max-in-flight=%d", m), Value: med[sfx("max_gap_ms", m)], Unit: "ms", Target: "-"})
			}
			return cs
		},
	},
	{
		id: 2, name: "latency",
		method: func(b *bench) string {
			return fmt.Sprintf("one endpoint, %d events/s for %s (async publish, publish time in the body, receipt time at the receiver, same process clock), after a %s warm-up; "+
				"raw limit = raw JetStream publish→consume p99 + raw HTTP send→receipt p99 at the same rate", b.sz.latencyRate, b.sz.latencyDur, b.sz.warmup)
		},
		params: func(b *bench) map[string]any {
			return map[string]any{"rate_per_s": b.sz.latencyRate, "duration_s": b.sz.latencyDur.Seconds(), "max_in_flight": b.o.mifs[0]}
		},
		run: func(b *bench, f *figs) error { return b.latencyOnce(f) },
		checks: func(b *bench, med map[string]float64) []check {
			c := ratioCheck(med, "publish→receipt p99", "p99_ms", "raw_sum_p99_ms", "raw JS p99 + raw HTTP p99", "", "ms", 0)
			target := b.sz.p99TargetMS
			if b.mode != modeEmbedded && b.o.mifs[0] == 1 {
				target = b.sz.p99ProcessMS
			}
			c.Target = fmt.Sprintf("≤ %g ms", target)
			c.Pass = ptr(med["p99_ms"] <= target)
			return []check{c,
				ratioCheck(med, "publish→receipt p50", "p50_ms", "raw_sum_p50_ms", "raw JS p50 + raw HTTP p50", "", "ms", 0),
				{Metric: "publish→receipt max", Value: med["max_ms"], Unit: "ms", Target: "-"},
			}
		},
	},
	{
		id: 3, name: "fan-out",
		method: func(b *bench) string {
			return fmt.Sprintf("%d endpoints × %d events published first (backlog), one receiver listener per endpoint; deliveries/s = first→last receipt over all; "+
				"raw HTTP at concurrency endpoints × max-in-flight; raw JS = as many pull consumers consuming+acking", b.sz.fanoutEndpoints, b.sz.fanoutEvents)
		},
		params: func(b *bench) map[string]any {
			return map[string]any{"endpoints": b.sz.fanoutEndpoints, "events": b.sz.fanoutEvents, "max_in_flight": b.o.mifs[0], "mode": "backlog"}
		},
		run: func(b *bench, f *figs) error { return b.fanoutOnce(f) },
		checks: func(b *bench, med map[string]float64) []check {
			c := b.o.mifs[0] * b.sz.fanoutEndpoints
			return []check{
				ratioCheck(med, "deliveries/s", "deliveries_per_s", "raw_http_per_s", fmt.Sprintf("raw HTTP c=%d", c), "ratio_raw_http", "/s", 0),
				ratioCheck(med, "deliveries/s vs JetStream", "deliveries_per_s", "raw_js_fanout_per_s", fmt.Sprintf("raw JS %d consumers", b.sz.fanoutEndpoints), "ratio_raw_js", "/s", 0),
			}
		},
	},
	{
		id: 4, name: "many endpoints",
		method: func(b *bench) string {
			return fmt.Sprintf("for each count %v: that many active records in KV before start (fresh server each); ready = sidecar start (connect, EnsureBucket/Streams) → watcher synced and as many consumers on the events stream (stream info polled every 20 ms); "+
				"sidecar RSS = increase of this process's VmRSS (after GC+FreeOSMemory) from before the start to ready (the sidecar runs in this process; with -nats embedded the server's growth is included); "+
				"server RSS = VmRSS/VmHWM of the nats-server process (-nats process only); raw limit = the same number of consumers created one by one directly (and 8 at a time), on another fresh server of the same mode", b.sz.manyEndpoints)
		},
		params: func(b *bench) map[string]any {
			return map[string]any{"endpoints": b.sz.manyEndpoints, "max_in_flight": b.o.mifs[0]}
		},
		run: func(b *bench, f *figs) error {
			for _, n := range b.sz.manyEndpoints {
				if err := b.manyOnce(n, f); err != nil {
					return fmt.Errorf("%d endpoints: %w", n, err)
				}
			}
			return nil
		},
		checks: func(b *bench, med map[string]float64) []check {
			var cs []check
			for _, n := range b.sz.manyEndpoints {
				ready := ratioCheck(med, fmt.Sprintf("%d endpoints: start → all consumers ready", n), nfx("ready_s", n), nfx("raw_create_s", n),
					fmt.Sprintf("%d CreateConsumer in a row", n), nfx("ratio_raw_create", n), "s", 0)
				ready.Target, ready.Pass = fmt.Sprintf("≤ %g s", b.sz.readyTarget(n).Seconds()), ptr(med[nfx("ready_s", n)] <= b.sz.readyTarget(n).Seconds())
				rss := check{Metric: fmt.Sprintf("%d endpoints: sidecar RSS (increase)", n), Value: med[nfx("sidecar_rss_mb", n)], Unit: "MB",
					RawLimit: ptr(med[nfx("rss_before_mb", n)]), RawName: "this process before the start",
					Target: fmt.Sprintf("≤ %g MB", b.sz.rssTarget(n)), Pass: ptr(med[nfx("sidecar_rss_mb", n)] <= b.sz.rssTarget(n))}
				cs = append(cs, ready, rss)
				if v, ok := med[nfx("server_rss_mb", n)]; ok {
					cs = append(cs, check{Metric: fmt.Sprintf("%d endpoints: nats-server RSS at ready", n), Value: v, Unit: "MB",
						RawLimit: ptr(med[nfx("server_rss_before_mb", n)]), RawName: "with the records, before the sidecar started", Target: "-"})
				}
			}
			return cs
		},
	},
	{
		id: 5, name: "isolation",
		method: func(b *bench) string {
			return fmt.Sprintf("%d endpoints, endpoint 0 never answers (held until the client gives up; bench HTTP timeout %s, reactivate-after %s so it is retried all along), "+
				"%d events/s for %s to all; p99 of the other %d compared with scenario 2's p99; control = same run with every endpoint answering",
				b.sz.isoEndpoints, b.sz.isoTimeout, b.sz.isoReactivate, b.sz.latencyRate, b.sz.latencyDur, b.sz.isoEndpoints-1)
		},
		params: func(b *bench) map[string]any {
			return map[string]any{"endpoints": b.sz.isoEndpoints, "rate_per_s": b.sz.latencyRate, "duration_s": b.sz.latencyDur.Seconds(),
				"http_timeout_s": b.sz.isoTimeout.Seconds(), "reactivate_after_s": b.sz.isoReactivate.Seconds(), "max_in_flight": b.o.mifs[0]}
		},
		run: func(b *bench, f *figs) error {
			if err := b.isolationOnce(true, f, ""); err != nil {
				return err
			}
			return b.isolationOnce(false, f, "control_")
		},
		checks: func(b *bench, med map[string]float64) []check {
			c := check{Metric: "p99 of the healthy endpoints", Value: med["p99_ms"], Unit: "ms", Target: fmt.Sprintf("≤ %g × scenario 2 p99", b.sz.isolationTarget)}
			if r, ok := b.results[resultKey{b.mode, 2}]; ok && r.Figures["p99_ms"] > 0 {
				ref := r.Figures["p99_ms"]
				c.RawLimit, c.RawName, c.Ratio = ptr(ref), "scenario 2 p99", ptr(round3(med["p99_ms"]/ref))
				c.Pass = ptr(med["p99_ms"] <= b.sz.isolationTarget*ref)
			} else {
				c.Target += " (scenario 2 not run: no reference)"
			}
			ctl := check{Metric: "p99 with the hang vs control", Value: med["p99_ms"], Unit: "ms", RawLimit: ptr(med["control_p99_ms"]),
				RawName: "control: no endpoint hanging", Target: "-"}
			if med["control_p99_ms"] > 0 {
				ctl.Ratio = ptr(round3(med["p99_ms"] / med["control_p99_ms"]))
			}
			raw := ratioCheck(med, "p99 vs the raw limit at this load", "p99_ms", "raw_sum_p99_ms",
				fmt.Sprintf("raw JS p99 (%d consumers) + raw HTTP p99 (%d endpoints)", b.sz.isoEndpoints, b.sz.isoEndpoints-1), "", "ms", 0)
			return []check{c, ctl, raw}
		},
	},
	{
		id: 6, name: "backlog drain",
		method: func(b *bench) string {
			return fmt.Sprintf("one endpoint held in inactive_tmp (last_error now, reactivate-after 1 h: consumer paused), %d events published and stored for it, "+
				"then store.Apply(UserActivate); drain rate = first→last receipt; for each max-in-flight %v", b.sz.drainN, b.o.mifs)
		},
		params: func(b *bench) map[string]any {
			return map[string]any{"events": b.sz.drainN, "max_in_flight": b.o.mifs}
		},
		run: func(b *bench, f *figs) error {
			for _, m := range b.o.mifs {
				if err := b.drainOnce(m, f); err != nil {
					return fmt.Errorf("max-in-flight %d: %w", m, err)
				}
			}
			return nil
		},
		checks: func(b *bench, med map[string]float64) []check {
			var cs []check
			for _, m := range b.o.mifs {
				cs = append(cs, ratioCheck(med, fmt.Sprintf("drain/s max-in-flight=%d", m), sfx("drain_per_s", m),
					sfx("raw_http_per_s", m), fmt.Sprintf("raw HTTP c=%d", m), sfx("ratio_raw_http", m), "/s", 0),
					combinedCheck(med, fmt.Sprintf("drain/s max-in-flight=%d vs L", m), "drain_per_s", m, 0),
					check{Metric: fmt.Sprintf("longest pause between receipts, max-in-flight=%d", m), Value: med[sfx("max_gap_ms", m)], Unit: "ms", Target: "-"})
			}
			return cs
		},
	},
}

func sfx(k string, mif int) string { return fmt.Sprintf("%s_mif%d", k, mif) }

func nfx(k string, endpoints int) string { return fmt.Sprintf("%s_n%d", k, endpoints) }

// combinedCheck compares the figure value (at max-in-flight m) with the combined limit L of the same round.
func combinedCheck(med map[string]float64, metric, value string, m int, target float64) check {
	return ratioCheck(med, metric, sfx(value, m), sfx("combined_limit_per_s", m),
		"L = 1/(1/HTTP + 1/publish + 1/consume+ack)", sfx("ratio_combined_limit", m), "/s", target)
}

// combinedLimit is L = 1 / (1/HTTP + 1/publish + 1/consume+ack): the rate when
// every delivery pays the CPU of all three on the same cores.
func combinedLimit(rates ...float64) float64 {
	var inv float64
	for _, r := range rates {
		if !(r > 0) {
			return math.NaN()
		}
		inv += 1 / r
	}
	return 1 / inv
}

// setCombined records, for a pipeline run at max-in-flight m that reached dps,
// the combined limit L and the ratio to it. consume+ack is measured with the
// ack window the endpoint's consumer really has (MaxAckPending of consumer
// id): the raw figure at m is reused when it is m, else measured now.
func (b *bench) setCombined(e *env, f *figs, id string, m int, dps, rawHTTP float64, rj map[string]float64) error {
	win := m
	if i, err := e.consumerInfo(id); err == nil && i.Config.MaxAckPending > 0 {
		win = i.Config.MaxAckPending
	}
	f.set(sfx("ack_window", m), float64(win))
	consume := rj["consume_window_per_s"]
	if win != m {
		b.progressf("raw JetStream consume+ack with the pipeline's ack window %d", win)
		r, err := e.rawConsumeWindow(b.sz.throughputN, win, b.sz.rawMaxDur)
		if err != nil {
			return err
		}
		f.set(sfx("raw_js_consume_pipeline_window_per_s", m), r)
		consume = r
	}
	l := combinedLimit(rawHTTP, rj["async_publish_per_s"], consume)
	f.set(sfx("combined_limit_per_s", m), l)
	f.set(sfx("ratio_combined_limit", m), ratio(dps, l))
	return nil
}

// ratioCheck compares med[value] with med[raw]; target > 0 makes it pass/fail on the ratio.
func ratioCheck(med map[string]float64, metric, value, raw, rawName, ratioKey, unit string, target float64) check {
	c := check{Metric: metric, Value: med[value], Unit: unit, Target: "-"}
	if v, ok := med[raw]; ok {
		c.RawLimit, c.RawName = ptr(v), rawName
		if r, ok := med[ratioKey]; ok {
			c.Ratio = ptr(r)
		} else if v > 0 {
			c.Ratio = ptr(round3(med[value] / v))
		}
	}
	if target > 0 {
		c.Target = fmt.Sprintf("≥ %g × %s", target, rawName)
		c.Pass = ptr(c.Ratio != nil && *c.Ratio >= target)
	}
	return c
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

// waitLimit is the overall bound of a delivery wait for n deliveries.
func waitLimit(n int) time.Duration { return 2*time.Minute + time.Duration(n)*10*time.Millisecond }

// 1. throughput at one max-in-flight.
// mode is the attempt log's ("" = its default, on).
func (b *bench) throughputOnce(m int, f *figs, mode attempts.Mode) error {
	e, err := b.newEnv()
	if err != nil {
		return err
	}
	defer e.close()
	rc, err := newReceiver(1, 1)
	if err != nil {
		return err
	}
	defer rc.close()
	n := b.sz.throughputN
	b.progressf("raw HTTP c=%d", m)
	rh, err := rawHTTPRate(rc, []int{0}, m, n, b.sz.rawMaxDur)
	if err != nil {
		return err
	}
	f.set(sfx("raw_http_per_s", m), rh)
	b.progressf("raw JetStream")
	rj, err := e.rawJS(n, m, b.sz.rawMaxDur, true)
	if err != nil {
		return err
	}
	for _, k := range []string{"async_publish_per_s", "sync_publish_per_s", "fetch_ack_per_s", "consume_window_per_s"} {
		f.set(sfx("raw_js_"+k, m), rj[k])
	}
	ids, err := e.createEndpoints(rc.urls, nil)
	if err != nil {
		return err
	}
	b.progressf("publishing %d events", n)
	d, err := e.publishAsync(e.pubJS, e.names.EventSubject(bodyEvent), n, func(i int) []byte { return eventBody(i, 0) })
	if err != nil {
		return err
	}
	f.set(sfx("publish_per_s", m), float64(n)/d.Seconds())
	runtime.GC()
	b.progressf("pipeline max-in-flight %d", m)
	stop := b.prof.phase(fmt.Sprintf("s1-mif%d-r%d", m, b.round))
	t0 := nowNS()
	cpu0 := takeCPU()
	sc, err := e.startSidecar(sidecarOpts{mif: m, metrics: b.o.metrics, attempts: mode})
	if err != nil {
		stop()
		return err
	}
	defer sc.stop()
	err = waitProgress(n, b.sz.stall, waitLimit(n), func() int { return rc.uniqueOf([]int{0}) })
	setCPU(f, "", sfx("", m), cpu0)
	stop()
	if err != nil {
		return fmt.Errorf("%w; %s", err, e.describeConsumer(ids[0]))
	}
	cnt, uniq, first, last := rc.span([]int{0})
	dps := rate(cnt, first, last)
	f.set(sfx("deliveries_per_s", m), dps)
	f.set(sfx("start_to_last_s", m), float64(last-t0)/1e9)
	f.set(sfx("max_gap_ms", m), rc.maxGapMS([]int{0}))
	f.set(sfx("duplicates", m), float64(cnt-uniq))
	f.set(sfx("ratio_raw_http", m), ratio(dps, rh))
	f.set(sfx("ratio_raw_js_window", m), ratio(dps, rj["consume_window_per_s"]))
	if err := b.setCombined(e, f, ids[0], m, dps, rh, rj); err != nil {
		return err
	}
	b.progressf("max-in-flight %d: %.0f deliveries/s, raw HTTP %.0f/s, raw JS window %.0f/s, L %.0f/s", m, dps, rh, rj["consume_window_per_s"], f.vals[sfx("combined_limit_per_s", m)])
	return nil
}

// 2. latency.
func (b *bench) latencyOnce(f *figs) error {
	m := b.o.mifs[0]
	e, err := b.newEnv()
	if err != nil {
		return err
	}
	defer e.close()
	rc, err := newReceiver(1, 1)
	if err != nil {
		return err
	}
	defer rc.close()
	b.progressf("raw HTTP latency")
	hl, err := rawHTTPLatency(rc, []int{0}, b.sz.latencyRate, b.sz.rawLatencyDur)
	if err != nil {
		return err
	}
	setLatency(f, "raw_http_", hl)
	b.progressf("raw JetStream latency")
	jl, err := e.rawJSLatency(m, 1, b.sz.latencyRate, b.sz.rawLatencyDur)
	if err != nil {
		return err
	}
	setLatency(f, "raw_js_", jl)
	f.set("raw_sum_p50_ms", f.vals["raw_http_p50_ms"]+f.vals["raw_js_p50_ms"])
	f.set("raw_sum_p99_ms", f.vals["raw_http_p99_ms"]+f.vals["raw_js_p99_ms"])

	if _, err := e.createEndpoints(rc.urls, nil); err != nil {
		return err
	}
	sc, err := e.startSidecar(sidecarOpts{mif: m, metrics: b.o.metrics})
	if err != nil {
		return err
	}
	defer sc.stop()
	if err := b.pacedRun(e, rc, []int{0}, false, f, ""); err != nil {
		return err
	}
	return nil
}

// pacedRun waits for the consumers, warms up, then publishes at the latency
// rate and records publish→receipt of the endpoints eps.
func (b *bench) pacedRun(e *env, rc *receiver, eps []int, isolation bool, f *figs, prefix string) error {
	want := len(rc.eps)
	if !waitFor(30*time.Second, 10*time.Millisecond, func() bool { c, _ := e.consumerCount(); return c >= want }) {
		return errors.New("the endpoint consumers were not created within 30 s")
	}
	subj := e.names.EventSubject(bodyEvent)
	var pubErr error
	publish := func(i int) {
		if _, err := e.pubJS.PublishAsync(subj, eventBody(i, nowNS())); err != nil && pubErr == nil {
			pubErr = err
		}
	}
	b.progressf("warm-up")
	w := paced(b.sz.latencyRate, b.sz.warmup, publish)
	if err := waitProgress(w*len(eps), b.sz.stall, time.Minute, func() int { return rc.uniqueOf(eps) }); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	rc.reset()
	e.takeAckLats()
	rc.record.Store(true)
	e.trackAcks.Store(true)
	defer func() { rc.record.Store(false); e.trackAcks.Store(false) }()
	phase := "s2"
	switch {
	case isolation && prefix == "":
		phase = "s5-hang"
	case isolation:
		phase = "s5-control"
	}
	b.progressf("publishing %d/s for %s", b.sz.latencyRate, b.sz.latencyDur)
	stop := b.prof.phase(fmt.Sprintf("%s-r%d", phase, b.round))
	cpu0 := takeCPU()
	n := paced(b.sz.latencyRate, b.sz.latencyDur, publish)
	err := waitProgress(n*len(eps), b.sz.stall, waitLimit(n*len(eps)), func() int { return rc.uniqueOf(eps) })
	setCPU(f, prefix, "", cpu0)
	stop()
	if pubErr != nil {
		return pubErr
	}
	if err != nil {
		return err
	}
	cnt, uniq, _, _ := rc.span(eps)
	setLatency(f, prefix, rc.latencies(eps))
	acks := e.takeAckLats()
	slices.Sort(acks)
	f.set(prefix+"pub_ack_p50_ms", percentileMS(acks, 0.5))
	f.set(prefix+"pub_ack_p99_ms", percentileMS(acks, 0.99))
	f.set(prefix+"max_gap_ms", rc.maxGapMS(eps))
	f.set(prefix+"duplicates", float64(cnt-uniq))
	b.progressf("%sp50 %.3f ms, p99 %.3f ms, max %.3f ms", prefix, f.vals[prefix+"p50_ms"], f.vals[prefix+"p99_ms"], f.vals[prefix+"max_ms"])
	return nil
}

// 3. fan-out.
func (b *bench) fanoutOnce(f *figs) error {
	m := b.o.mifs[0]
	E, N := b.sz.fanoutEndpoints, b.sz.fanoutEvents
	e, err := b.newEnv()
	if err != nil {
		return err
	}
	defer e.close()
	rc, err := newReceiver(E, E)
	if err != nil {
		return err
	}
	defer rc.close()
	all := indexes(0, E)
	b.progressf("raw HTTP c=%d", E*m)
	rh, err := rawHTTPRate(rc, all, E*m, E*N, b.sz.rawMaxDur)
	if err != nil {
		return err
	}
	f.set("raw_http_per_s", rh)
	b.progressf("raw JetStream fan-out")
	rj, err := e.rawJSFanout(E, N, m, max(b.sz.rawMaxDur, 30*time.Second))
	if err != nil {
		return err
	}
	f.set("raw_js_fanout_per_s", rj)
	if _, err := e.createEndpoints(rc.urls, nil); err != nil {
		return err
	}
	if _, err := e.publishAsync(e.pubJS, e.names.EventSubject(bodyEvent), N, func(i int) []byte { return eventBody(i, 0) }); err != nil {
		return err
	}
	runtime.GC()
	b.progressf("pipeline: %d endpoints × %d events", E, N)
	stop := b.prof.phase(fmt.Sprintf("s3-r%d", b.round))
	t0 := nowNS()
	cpu0 := takeCPU()
	sc, err := e.startSidecar(sidecarOpts{mif: m, metrics: b.o.metrics})
	if err != nil {
		stop()
		return err
	}
	defer sc.stop()
	err = waitProgress(E*N, b.sz.stall, waitLimit(E*N), func() int { return rc.uniqueOf(all) })
	setCPU(f, "", "", cpu0)
	stop()
	if err != nil {
		return err
	}
	cnt, uniq, first, last := rc.span(all)
	dps := rate(cnt, first, last)
	f.set("deliveries_per_s", dps)
	f.set("start_to_last_s", float64(last-t0)/1e9)
	f.set("max_gap_ms", rc.maxGapMS(all))
	f.set("duplicates", float64(cnt-uniq))
	f.set("ratio_raw_http", ratio(dps, rh))
	f.set("ratio_raw_js", ratio(dps, rj))
	b.progressf("%.0f deliveries/s, raw HTTP %.0f/s, raw JS %.0f/s", dps, rh, rj)
	return nil
}

// 4. many endpoints: start-up with n endpoint records.
func (b *bench) manyOnce(n int, f *figs) error {
	m := b.o.mifs[0]
	e, err := b.newEnv()
	if err != nil {
		return err
	}
	defer e.close()
	rc, err := newReceiver(n, 100)
	if err != nil {
		return err
	}
	defer rc.close()
	// The raw limit on its own fresh server of the same mode, so that the
	// server's memory below holds only the records and the sidecar's consumers.
	b.progressf("raw: %d consumers", n)
	re, err := b.newEnv()
	if err != nil {
		return err
	}
	rd, err := re.rawConsumerCreate(n, m, 1)
	if err != nil {
		re.close()
		return err
	}
	f.set(nfx("raw_create_s", n), rd.Seconds())
	rp, err := re.rawConsumerCreate(n, m, 8)
	re.close()
	if err != nil {
		return err
	}
	f.set(nfx("raw_create_8_at_once_s", n), rp.Seconds())
	b.progressf("storing %d records", n)
	cstart := time.Now()
	ids, err := e.createEndpoints(rc.urls, nil)
	if err != nil {
		return err
	}
	f.set(nfx("records_create_s", n), time.Since(cstart).Seconds())
	rss0 := rssMB()
	f.set(nfx("rss_before_mb", n), rss0)
	if e.proc != nil {
		srss, _ := e.proc.memMB()
		f.set(nfx("server_rss_before_mb", n), srss)
	}
	b.progressf("starting the sidecar")
	stop := b.prof.phase(fmt.Sprintf("s4-n%d-r%d", n, b.round))
	t0 := time.Now()
	sc, err := e.startSidecar(sidecarOpts{mif: m, metrics: b.o.metrics})
	if err != nil {
		stop()
		return err
	}
	defer sc.stop()
	var synced time.Duration
	select {
	case <-sc.watcher.Synced():
		synced = time.Since(t0)
	case <-time.After(time.Minute):
		stop()
		return errors.New("watcher not synced within a minute")
	}
	var pollErr error
	ok := waitFor(5*time.Minute, 20*time.Millisecond, func() bool {
		c, err := e.consumerCount()
		pollErr = err
		return err == nil && c >= n
	})
	ready := time.Since(t0)
	stop()
	if !ok {
		return fmt.Errorf("consumers not all created within 5 minutes (last poll error: %v)", pollErr)
	}
	f.set(nfx("synced_s", n), synced.Seconds())
	f.set(nfx("ready_s", n), ready.Seconds())
	f.set(nfx("ratio_raw_create", n), ratio(ready.Seconds(), rd.Seconds()))
	rss := rssMB()
	f.set(nfx("rss_mb", n), rss)
	f.set(nfx("sidecar_rss_mb", n), rss-rss0)
	f.set(nfx("heap_inuse_mb", n), heapInuseMB())
	f.set(nfx("goroutines", n), float64(runtime.NumGoroutine()))
	if e.proc != nil {
		srss, speak := e.proc.memMB()
		f.set(nfx("server_rss_mb", n), srss)
		f.set(nfx("server_peak_rss_mb", n), speak)
	}
	// Proof that every consumer delivers: one event, received by all.
	p0 := nowNS()
	if _, err := e.publishAsync(e.pubJS, e.names.EventSubject(bodyEvent), 1, func(int) []byte { return eventBody(0, p0) }); err != nil {
		return err
	}
	all := indexes(0, n)
	if err := waitProgress(n, b.sz.stall, 2*time.Minute, func() int { return rc.uniqueOf(all) }); err != nil {
		return fmt.Errorf("one event to all %d endpoints: %w", len(ids), err)
	}
	_, _, _, last := rc.span(all)
	f.set(nfx("one_event_to_all_s", n), float64(last-p0)/1e9)
	server := ""
	if e.proc != nil {
		server = fmt.Sprintf(", nats-server RSS %.1f MB", f.vals[nfx("server_rss_mb", n)])
	}
	b.progressf("%d endpoints ready in %.2f s (synced %.3f s, raw create %.2f s), sidecar RSS +%.1f MB%s",
		n, ready.Seconds(), synced.Seconds(), rd.Seconds(), rss-rss0, server)
	return nil
}

// 5. isolation (hang) or its control (no hang).
func (b *bench) isolationOnce(hang bool, f *figs, prefix string) error {
	m := b.o.mifs[0]
	E := b.sz.isoEndpoints
	e, err := b.newEnv()
	if err != nil {
		return err
	}
	defer e.close()
	rc, err := newReceiver(E, E)
	if err != nil {
		return err
	}
	defer rc.close()
	if hang { // the physical limit at this load: raw HTTP to the nine, raw JetStream with all consumers
		b.progressf("raw HTTP latency, %d endpoints", E-1)
		hl, err := rawHTTPLatency(rc, indexes(1, E), b.sz.latencyRate, b.sz.rawLatencyDur)
		if err != nil {
			return err
		}
		setLatency(f, "raw_http_", hl)
		b.progressf("raw JetStream latency, %d consumers", E)
		jl, err := e.rawJSLatency(m, E, b.sz.latencyRate, b.sz.rawLatencyDur)
		if err != nil {
			return err
		}
		setLatency(f, "raw_js_", jl)
		f.set("raw_sum_p99_ms", f.vals["raw_http_p99_ms"]+f.vals["raw_js_p99_ms"])
	}
	rc.eps[0].hang.Store(hang)
	ids, err := e.createEndpoints(rc.urls, nil)
	if err != nil {
		return err
	}
	p := statekv.DefaultPolicy()
	p.ReactivateAfter = b.sz.isoReactivate
	sc, err := e.startSidecar(sidecarOpts{mif: m, timeout: b.sz.isoTimeout, policy: p, metrics: b.o.metrics})
	if err != nil {
		return err
	}
	defer sc.stop()
	if err := b.pacedRun(e, rc, indexes(1, E), true, f, prefix); err != nil {
		return err
	}
	if hang {
		f.set("hung_requests", float64(rc.eps[0].hung.Load()))
		if v, ok := sc.watcher.Get(ids[0]); ok {
			b.progressf("hanging endpoint: %d requests held, now %s", rc.eps[0].hung.Load(), v.Record.Status)
		}
	}
	return nil
}

// 6. backlog drain at one max-in-flight.
func (b *bench) drainOnce(m int, f *figs) error {
	e, err := b.newEnv()
	if err != nil {
		return err
	}
	defer e.close()
	rc, err := newReceiver(1, 1)
	if err != nil {
		return err
	}
	defer rc.close()
	n := b.sz.drainN
	b.progressf("raw HTTP c=%d", m)
	rh, err := rawHTTPRate(rc, []int{0}, m, n, b.sz.rawMaxDur)
	if err != nil {
		return err
	}
	f.set(sfx("raw_http_per_s", m), rh)
	b.progressf("raw JetStream")
	rj, err := e.rawJS(n, m, b.sz.rawMaxDur, false)
	if err != nil {
		return err
	}
	f.set(sfx("raw_js_async_publish_per_s", m), rj["async_publish_per_s"])
	f.set(sfx("raw_js_consume_window_per_s", m), rj["consume_window_per_s"])

	p := statekv.DefaultPolicy()
	p.ReactivateAfter = time.Hour
	now := time.Now()
	ids, err := e.createEndpoints(rc.urls, func(r *statekv.Record) {
		r.Status, r.FirstError, r.LastError, r.Note = statekv.StatusInactiveTmp, now, now, "Response status code: 503"
	})
	if err != nil {
		return err
	}
	sc, err := e.startSidecar(sidecarOpts{mif: m, policy: p, metrics: b.o.metrics})
	if err != nil {
		return err
	}
	defer sc.stop()
	if !waitFor(30*time.Second, 10*time.Millisecond, func() bool { i, err := e.consumerInfo(ids[0]); return err == nil && i.Paused }) {
		return errors.New("the inactive_tmp endpoint's consumer was not created paused within 30 s")
	}
	b.progressf("publishing %d held events", n)
	if _, err := e.publishAsync(e.pubJS, e.names.EventSubject(bodyEvent), n, func(i int) []byte { return eventBody(i, 0) }); err != nil {
		return err
	}
	if !waitFor(time.Minute, 20*time.Millisecond, func() bool {
		i, err := e.consumerInfo(ids[0])
		return err == nil && i.NumPending == uint64(n)
	}) {
		return fmt.Errorf("the backlog of %d events did not show in the consumer", n)
	}
	if got := rc.uniqueOf([]int{0}); got != 0 {
		return fmt.Errorf("%d events delivered to an inactive_tmp endpoint", got)
	}
	runtime.GC()
	b.progressf("activating (max-in-flight %d)", m)
	stop := b.prof.phase(fmt.Sprintf("s6-mif%d-r%d", m, b.round))
	tAct := nowNS()
	cpu0 := takeCPU()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	_, changed, err := e.store.Apply(ctx, ids[0], statekv.Event{Input: statekv.UserActivate}, time.Now, p)
	cancel()
	if err != nil || !changed {
		stop()
		return fmt.Errorf("activate: changed %v, %v", changed, err)
	}
	err = waitProgress(n, b.sz.stall, waitLimit(n), func() int { return rc.uniqueOf([]int{0}) })
	setCPU(f, "", sfx("", m), cpu0)
	stop()
	if err != nil {
		return err
	}
	cnt, uniq, first, last := rc.span([]int{0})
	dps := rate(cnt, first, last)
	f.set(sfx("drain_per_s", m), dps)
	f.set(sfx("activate_to_first_ms", m), float64(first-tAct)/1e6)
	f.set(sfx("activate_to_last_s", m), float64(last-tAct)/1e9)
	f.set(sfx("max_gap_ms", m), rc.maxGapMS([]int{0}))
	f.set(sfx("duplicates", m), float64(cnt-uniq))
	f.set(sfx("ratio_raw_http", m), ratio(dps, rh))
	f.set(sfx("ratio_raw_js_window", m), ratio(dps, rj["consume_window_per_s"]))
	if err := b.setCombined(e, f, ids[0], m, dps, rh, rj); err != nil {
		return err
	}
	b.progressf("max-in-flight %d: drain %.0f/s, raw HTTP %.0f/s, L %.0f/s", m, dps, rh, f.vals[sfx("combined_limit_per_s", m)])
	return nil
}
