// Command dojo-webhooks-bench measures the dojo-webhooks delivery pipeline
// against its physical limits, measured in the same run on the same machine.
//
// It starts everything in-process: an embedded nats-server with JetStream
// file storage in a temp dir (or uses NATS_URL), a local net/http receiver on
// 127.0.0.1 answering 204, and the sidecar's real pipeline started through the
// sidecar package as `serve` starts it (bucket, streams, watcher, delivery
// client, metrics observer, consumer manager; no HTTP server). Each scenario round gets a fresh
// server (or, with NATS_URL, fresh streams and bucket under a unique prefix).
//
//	go run ./cmd/dojo-webhooks-bench                     # all six scenarios, 3 rounds, medians (about 10 min)
//	go run ./cmd/dojo-webhooks-bench -quick              # smoke run, tiny counts, < 30 s
//	go run ./cmd/dojo-webhooks-bench -scenarios 1 -max-in-flight 1 -cpuprofile cpu.pprof
//	go tool pprof -top cpu.pprof
//	go run ./cmd/dojo-webhooks-bench -scenarios 5 -rounds 1 -cpuprofile cpu.pprof -profile-pipeline
//	go tool pprof -top cpu.s5-control-r1.pprof           # one profile per pipeline phase
//	go run ./cmd/dojo-webhooks-bench -scenarios 3 -rounds 1 -trace t.trace
//	go tool trace -pprof=sched t.s3-r1.trace > sched.pprof   # where goroutines wait (also sync, net, syscall)
//
// Flags: -max-in-flight (list; scenarios 1 and 6 run with each, 2-5 with the
// first), -rounds, -scenarios, -quick, -json, -events (count of 1 and 6),
// -stall (a wait fails after this long without a delivery), -metrics (wire the
// metrics observer as serve does), -log-level, -cpuprofile, -profile-pipeline,
// -memprofile, -trace.
//
// Every figure that has a physical limit is compared with it as measured in the
// same round on the same receiver and server: raw HTTP (a keep-alive net/http
// client at the same concurrency, same body and headers, no NATS) and raw
// JetStream (async and sync publish, a pull consumer fetching and acking, and
// Consume with the pipeline's ack window). Each measured phase also records the
// cores this process used, CPU steal, and the cores other processes kept busy:
// a round run while something else loads the machine shows it there.
//
// Output: a table per scenario (median and each round) and one JSON line per
// scenario (only the JSON lines with -json); progress goes to stderr. The exit
// code is 1 when a scenario failed to run (not when a target is missed), 2 on
// bad usage.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

type options struct {
	mifs            []int
	rounds          int
	scenarios       []int
	quick           bool
	jsonOnly        bool
	cpuprofile      string
	profilePipeline bool
	memprofile      string
	tracefile       string
	logLevel        string
	metrics         bool
	events          int
	stall           time.Duration
	natsURL         string
}

type bench struct {
	o        options
	sz       sizes
	log      zerolog.Logger
	progress io.Writer
	prof     *profiler
	results  map[int]*result
	scenario int
	round    int
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		v, err := strconv.Atoi(f)
		if err != nil || v < 1 {
			return nil, fmt.Errorf("%q: want positive integers separated by commas", s)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%q: empty list", s)
	}
	return out, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dojo-webhooks-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	mifs := fs.String("max-in-flight", "1,16", "max-in-flight values: scenarios 1 and 6 run with each, scenarios 2-5 with the first")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds per scenario (fresh server each); figures are medians (default 1 with -quick)")
	scen := fs.String("scenarios", "1,2,3,4,5,6", "scenarios to run: 1 throughput, 2 latency, 3 fan-out, 4 many endpoints, 5 isolation, 6 backlog drain")
	fs.BoolVar(&o.quick, "quick", false, "smoke run with tiny counts (< 30 s); targets are not meaningful then")
	fs.BoolVar(&o.jsonOnly, "json", false, "print only the JSON lines (one per scenario)")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the whole run to this file (see -profile-pipeline)")
	fs.BoolVar(&o.profilePipeline, "profile-pipeline", false, "with -cpuprofile: profile only the pipeline phases, one file per phase (FILE.<scenario>-<round>.pprof)")
	fs.StringVar(&o.memprofile, "memprofile", "", "write an allocation profile (since start) to this file at the end")
	fs.StringVar(&o.tracefile, "trace", "", "write an execution trace of the first 3 s of each pipeline phase (FILE.<scenario>-<round>.trace); read with go tool trace -pprof=sched|sync|net|syscall")
	fs.StringVar(&o.logLevel, "log-level", "error", "log level of the sidecar's logger (stderr)")
	fs.BoolVar(&o.metrics, "metrics", true, "wire the Prometheus metrics observer, as serve does")
	fs.IntVar(&o.events, "events", 0, "override the event count of scenarios 1 and 6")
	fs.DurationVar(&o.stall, "stall", 0, "fail a wait when no delivery arrives for this long (default 60 s: above nats.go's 30 s missed-heartbeat recovery)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments: %q\n", fs.Args())
		return 2
	}
	var err error
	if o.mifs, err = parseInts(*mifs); err != nil {
		fmt.Fprintf(stderr, "-max-in-flight %v\n", err)
		return 2
	}
	if o.scenarios, err = parseInts(*scen); err != nil {
		fmt.Fprintf(stderr, "-scenarios %v\n", err)
		return 2
	}
	for _, s := range o.scenarios {
		if s > len(scenarios) {
			fmt.Fprintf(stderr, "-scenarios: no scenario %d (1 to %d)\n", s, len(scenarios))
			return 2
		}
	}
	roundsSet := false
	fs.Visit(func(f *flag.Flag) { roundsSet = roundsSet || f.Name == "rounds" })
	sz := fullSizes()
	if o.quick {
		sz = quickSizes()
		if !roundsSet {
			o.rounds = 1
		}
	}
	if o.rounds < 1 {
		fmt.Fprintln(stderr, "-rounds: must be at least 1")
		return 2
	}
	if o.stall > 0 {
		sz.stall = o.stall
	}
	if o.events > 0 {
		sz.throughputN, sz.drainN = o.events, o.events
	}
	lvl, err := zerolog.ParseLevel(o.logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "-log-level: %v\n", err)
		return 2
	}
	o.natsURL = os.Getenv("NATS_URL")

	b := &bench{o: o, sz: sz, progress: stderr, results: map[int]*result{},
		log:  zerolog.New(stderr).Level(lvl).With().Timestamp().Logger(),
		prof: &profiler{path: o.cpuprofile, perPhase: o.profilePipeline, trace: o.tracefile, errw: stderr}}
	if err := b.prof.startRun(); err != nil {
		fmt.Fprintf(stderr, "-cpuprofile: %v\n", err)
		return 1
	}
	where := "embedded nats-server (JetStream file store in a temp dir)"
	if o.natsURL != "" {
		where = "NATS_URL (fresh streams and bucket per round)"
	}
	if !o.jsonOnly {
		fmt.Fprintf(stdout, "dojo-webhooks-bench: %s, GOMAXPROCS %d, %d rounds, max-in-flight %v, quick %v, %s\n",
			runtime.Version(), runtime.GOMAXPROCS(0), o.rounds, o.mifs, o.quick, where)
	}
	failed := false
	started := time.Now()
	for _, id := range slices.Sorted(slices.Values(o.scenarios)) {
		sc := scenarios[id-1]
		b.scenario = id
		res := &result{Scenario: id, Name: sc.name, Method: sc.method(b), Params: sc.params(b), Rounds: o.rounds}
		var rounds []*figs
		for r := 1; r <= o.rounds; r++ {
			b.round = r
			f := newFigs()
			b.progressf("start (%d goroutines, heap in use %.0f MB)", runtime.NumGoroutine(), heapInuseMB())
			t := time.Now()
			if err := sc.run(b, f); err != nil {
				res.Errors = append(res.Errors, fmt.Sprintf("round %d: %v", r, err))
				b.progressf("ERROR: %v", err)
			}
			b.progressf("done in %s", time.Since(t).Round(time.Millisecond))
			rounds = append(rounds, f)
		}
		res.keys, res.Figures = medians(rounds)
		res.PerRound = perRound(res.keys, rounds)
		res.Checks = sc.checks(b, res.Figures)
		res.finish()
		b.results[id] = res
		if len(res.Errors) > 0 {
			failed = true
		}
		if !o.jsonOnly {
			res.writeTable(stdout)
		}
		res.writeJSON(stdout)
	}
	b.prof.stopRun()
	if o.memprofile != "" {
		if err := writeHeapProfile(o.memprofile); err != nil {
			fmt.Fprintf(stderr, "-memprofile: %v\n", err)
		}
	}
	if !o.jsonOnly {
		fmt.Fprintf(stdout, "\ntotal %s\n", time.Since(started).Round(time.Second))
	}
	if failed {
		return 1
	}
	return 0
}

func (b *bench) progressf(format string, args ...any) {
	prefix := fmt.Sprintf("[%s s%d r%d/%d] ", time.Now().Format("15:04:05"), b.scenario, b.round, b.o.rounds)
	fmt.Fprintf(b.progress, prefix+format+"\n", args...)
}

// profiler writes the CPU profile of the whole run, or one file per pipeline phase.
type profiler struct {
	path     string
	perPhase bool
	trace    string
	errw     io.Writer
	f        *os.File
}

func (p *profiler) startRun() error {
	if p.path == "" || p.perPhase {
		return nil
	}
	f, err := os.Create(p.path)
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return err
	}
	p.f = f
	return nil
}

func (p *profiler) stopRun() {
	if p.f != nil {
		pprof.StopCPUProfile()
		p.f.Close()
		p.f = nil
	}
}

// phase starts profiling one pipeline phase (with -profile-pipeline) and returns its stop.
func (p *profiler) phase(name string) func() {
	stopTrace := p.tracePhase(name)
	stopCPU := p.cpuPhase(name)
	return func() { stopCPU(); stopTrace() }
}

// tracePhase records an execution trace of the first 3 s of a phase.
func (p *profiler) tracePhase(name string) func() {
	if p.trace == "" {
		return func() {}
	}
	path := strings.TrimSuffix(p.trace, ".trace") + "." + name + ".trace"
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(p.errw, "trace %s: %v\n", path, err)
		return func() {}
	}
	if err := trace.Start(f); err != nil {
		fmt.Fprintf(p.errw, "trace %s: %v\n", path, err)
		f.Close()
		return func() {}
	}
	var once sync.Once
	stop := func() { once.Do(func() { trace.Stop(); f.Close() }) }
	t := time.AfterFunc(3*time.Second, stop)
	return func() { t.Stop(); stop() }
}

func (p *profiler) cpuPhase(name string) func() {
	if p.path == "" || !p.perPhase {
		return func() {}
	}
	path := strings.TrimSuffix(p.path, ".pprof") + "." + name + ".pprof"
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(p.errw, "cpuprofile %s: %v\n", path, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(p.errw, "cpuprofile %s: %v\n", path, err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup("allocs").WriteTo(f, 0)
}
