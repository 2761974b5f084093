package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// figs are the figures of one round, in the order they were set.
type figs struct {
	keys []string
	vals map[string]float64
}

func newFigs() *figs { return &figs{vals: map[string]float64{}} }

func (f *figs) set(k string, v float64) {
	if _, ok := f.vals[k]; !ok {
		f.keys = append(f.keys, k)
	}
	f.vals[k] = v
}

// perRound lists each figure's value in every round (NaN when a round lacks it).
func perRound(keys []string, rounds []*figs) map[string][]*float64 {
	out := make(map[string][]*float64, len(keys))
	for _, k := range keys {
		vs := make([]*float64, len(rounds))
		for i, r := range rounds {
			if v, ok := r.vals[k]; ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
				vs[i] = ptr(round3(v))
			}
		}
		out[k] = vs
	}
	return out
}

// medians folds the rounds into the median of each figure (keys in first-seen order).
func medians(rounds []*figs) ([]string, map[string]float64) {
	var keys []string
	seen := map[string]bool{}
	for _, r := range rounds {
		for _, k := range r.keys {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	out := make(map[string]float64, len(keys))
	for _, k := range keys {
		var vs []float64
		for _, r := range rounds {
			if v, ok := r.vals[k]; ok && !math.IsNaN(v) && !math.IsInf(v, 0) {
				vs = append(vs, v)
			}
		}
		if len(vs) == 0 {
			continue
		}
		slices.Sort(vs)
		m := vs[len(vs)/2]
		if len(vs)%2 == 0 {
			m = (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2
		}
		out[k] = round3(m)
	}
	return keys, out
}

func round3(v float64) float64 {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return v
	}
	// three significant decimals for small values, integers for big ones
	if math.Abs(v) >= 1000 {
		return math.Round(v)
	}
	return math.Round(v*1000) / 1000
}

// latency percentiles in milliseconds (nearest rank).
func percentileMS(sorted []int64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	i = max(0, min(i, len(sorted)-1))
	return float64(sorted[i]) / 1e6
}

func setLatency(f *figs, prefix string, lats []int64) {
	slices.Sort(lats)
	f.set(prefix+"p50_ms", percentileMS(lats, 0.50))
	f.set(prefix+"p99_ms", percentileMS(lats, 0.99))
	f.set(prefix+"max_ms", percentileMS(lats, 1))
	f.set(prefix+"samples", float64(len(lats)))
}

// rssMB is VmRSS of this process after a GC (memory returned to the OS first).
func rssMB() float64 {
	runtime.GC()
	debug.FreeOSMemory()
	rss, _ := procStatusMB("/proc/self/status", "VmRSS:")
	return rss
}

func heapInuseMB() float64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapInuse) / (1 << 20)
}

// check is one figure against its limit and target.
type check struct {
	Metric   string   `json:"metric"`
	Value    float64  `json:"value"`
	Unit     string   `json:"unit"`
	RawLimit *float64 `json:"raw_limit,omitempty"`
	RawName  string   `json:"raw_limit_name,omitempty"`
	Ratio    *float64 `json:"ratio,omitempty"`
	Target   string   `json:"target"`
	Pass     *bool    `json:"pass"` // null: informational, no target
}

// result is one scenario's outcome: one JSON line.
type result struct {
	Scenario int                   `json:"scenario"`
	Name     string                `json:"name"`
	Mode     string                `json:"nats"` // where nats-server ran: embedded, process or url
	Method   string                `json:"method"`
	Params   map[string]any        `json:"params"`
	Rounds   int                   `json:"rounds"`
	Figures  map[string]float64    `json:"figures"`   // medians over the rounds
	PerRound map[string][]*float64 `json:"per_round"` // every round's value, null when a round lacks it
	Checks   []check               `json:"checks"`
	Pass     *bool                 `json:"pass"` // all checks with a target pass; null when none
	Errors   []string              `json:"errors,omitempty"`

	keys []string
}

func ptr[T any](v T) *T { return &v }

func (r *result) finish() {
	var pass *bool
	for _, c := range r.Checks {
		if c.Pass == nil {
			continue
		}
		if pass == nil {
			pass = ptr(true)
		}
		if !*c.Pass {
			pass = ptr(false)
		}
	}
	if len(r.Errors) > 0 {
		pass = ptr(false)
	}
	r.Pass = pass
}

func (r *result) writeJSON(w io.Writer) {
	b, err := json.Marshal(r)
	if err != nil {
		fmt.Fprintf(w, `{"scenario":%d,"name":%q,"errors":[%q]}`+"\n", r.Scenario, r.Name, err.Error())
		return
	}
	fmt.Fprintf(w, "%s\n", b)
}

func passText(p *bool) string {
	switch {
	case p == nil:
		return "info"
	case *p:
		return "PASS"
	}
	return "FAIL"
}

func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case math.Abs(v) >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

func (r *result) writeTable(w io.Writer) {
	fmt.Fprintf(w, "\n== %d. %s, nats-server %s (median of %d rounds)\n   %s\n", r.Scenario, r.Name, r.Mode, r.Rounds, r.Method)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "   figure\tmedian\tper round\t")
	for _, k := range r.keys {
		if v, ok := r.Figures[k]; ok {
			var rs []string
			for _, x := range r.PerRound[k] {
				if x == nil {
					rs = append(rs, "-")
					continue
				}
				rs = append(rs, num(*x))
			}
			fmt.Fprintf(tw, "   %s\t%s\t%s\t\n", k, num(v), strings.Join(rs, " "))
		}
	}
	tw.Flush()
	if len(r.Checks) > 0 {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "   check\tmeasured\traw limit (same run)\tratio\ttarget\tresult")
		for _, c := range r.Checks {
			raw, ratio := "-", "-"
			if c.RawLimit != nil {
				raw = num(*c.RawLimit) + " " + c.Unit + " (" + c.RawName + ")"
			}
			if c.Ratio != nil {
				ratio = num(*c.Ratio)
			}
			fmt.Fprintf(tw, "   %s\t%s %s\t%s\t%s\t%s\t%s\n", c.Metric, num(c.Value), c.Unit, raw, ratio, c.Target, passText(c.Pass))
		}
		tw.Flush()
	}
	for _, e := range r.Errors {
		fmt.Fprintf(w, "   ERROR: %s\n", e)
	}
	fmt.Fprintf(w, "   => %s\n", passText(r.Pass))
}

// cpuSnap is the process's CPU time and the machine's /proc/stat counters at one moment.
type cpuSnap struct {
	at               time.Time
	proc             time.Duration // user + system time of this process
	steal, idle, tot uint64        // jiffies: steal, idle+iowait, all states
}

func takeCPU() cpuSnap {
	s := cpuSnap{at: time.Now()}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.proc = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		for i, f := range strings.Fields(line)[1:] {
			v, _ := strconv.ParseUint(f, 10, 64)
			s.tot += v
			switch i { // user nice system idle iowait irq softirq steal
			case 3, 4:
				s.idle += v
			case 7:
				s.steal = v
			}
		}
	}
	return s
}

// setCPU records the cores this process used and the steal share since from.
func setCPU(f *figs, prefix, suffix string, from cpuSnap) {
	to := takeCPU()
	if wall := to.at.Sub(from.at); wall > 0 {
		f.set(prefix+"cpu_cores_used"+suffix, (to.proc-from.proc).Seconds()/wall.Seconds())
	}
	if d := to.tot - from.tot; d > 0 {
		f.set(prefix+"steal_pct"+suffix, 100*float64(to.steal-from.steal)/float64(d))
		// Cores kept busy by other processes (another test run on the machine skews a round).
		busy := float64(d-(to.idle-from.idle)-(to.steal-from.steal)) / float64(d) * float64(runtime.NumCPU())
		if wall := to.at.Sub(from.at); wall > 0 {
			f.set(prefix+"other_procs_cores"+suffix, max(0, busy-(to.proc-from.proc).Seconds()/wall.Seconds()))
		}
	}
}
