// Command dojo-webhooks-bench measures the dojo-webhooks delivery pipeline
// against its physical limits, measured in the same run on the same machine.
//
// It starts a nats-server with JetStream file storage in a temp dir, a local
// net/http receiver on 127.0.0.1 answering 204, and the sidecar's real
// pipeline started through the sidecar package as `serve` starts it (bucket,
// streams, watcher, delivery client, metrics observer, consumer manager, attempt
// log; no HTTP server), in this process. Where
// the nats-server runs is -nats:
//   - embedded (default): in this process, as the sidecar runs it without
//     NATS_URL; the sidecar and the bench's admin connection connect in-process,
//     the publisher over TCP;
//   - process: a separate nats-server process built from this module (this
//     binary re-executed with DOJO_WEBHOOKS_BENCH_NATS_STORE set, running
//     internal/embedded on a free loopback port until SIGTERM; its output is
//     appended to -nats-log), as in the compose deployment: every client
//     connects over TCP loopback;
//   - both: each scenario in embedded mode, then in process mode, both reported;
//   - url: NATS_URL (the default when it is set): fresh streams and bucket
//     under a unique prefix per round.
//
// Each scenario round gets a fresh server (a process is stopped and its store
// removed at the end of the round).
//
//	go run ./cmd/dojo-webhooks-bench                     # all six scenarios, 3 rounds, medians (about 15 min)
//	go run ./cmd/dojo-webhooks-bench -quick              # smoke run, tiny counts, < 30 s
//	go run ./cmd/dojo-webhooks-bench -nats both -scenarios 1 -rounds 3 -max-in-flight 1,16
//	go run ./cmd/dojo-webhooks-bench -nats process -scenarios 4 -endpoints 1000,10000
//	go run ./cmd/dojo-webhooks-bench -scenarios 1 -max-in-flight 1 -cpuprofile cpu.pprof
//	go tool pprof -top cpu.pprof
//	go run ./cmd/dojo-webhooks-bench -scenarios 5 -rounds 1 -cpuprofile cpu.pprof -profile-pipeline
//	go tool pprof -top cpu.s5-control-r1.pprof           # one profile per pipeline phase
//	go run ./cmd/dojo-webhooks-bench -scenarios 3 -rounds 1 -trace t.trace
//	go tool trace -pprof=sched t.s3-r1.trace > sched.pprof   # where goroutines wait (also sync, net, syscall)
//
// Flags: -nats (embedded, process, both, url), -nats-log, -max-in-flight (list;
// scenarios 1 and 6 run with each, 2-5 with the first), -endpoints (list of
// endpoint counts of scenario 4, default 1000,10000), -rounds, -scenarios,
// -quick, -json, -events (count of 1 and 6), -stall (a wait fails after this
// long without a delivery), -metrics (wire the metrics observer as serve
// does), -log-level, -cpuprofile, -profile-pipeline, -memprofile, -trace.
//
// Every figure that has a physical limit is compared with it as measured in the
// same round on the same receiver and server: raw HTTP (a keep-alive net/http
// client at the same concurrency, same body and headers, no NATS) and raw
// JetStream (async and sync publish, a pull consumer fetching and acking, and
// Consume with the pipeline's ack window), connected as the pipeline is. The
// throughput figures (scenarios 1 and 6) are also compared with the combined
// limit L = 1 / (1/raw HTTP + 1/raw async publish + 1/raw consume+ack), the
// rate when every delivery pays all three on the same cores; consume+ack is
// measured with the ack window (MaxAckPending) the endpoint's consumer really
// has. Scenario 4 measures start-up with each count of endpoint records: time
// to ready, the RSS increase of this process (the sidecar runs in it) and, in
// process mode, the nats-server process's RSS (VmRSS, VmHWM). Each measured
// phase also records the cores this process used, CPU steal, and the cores
// other processes kept busy (in process mode the nats-server's among them): a
// round run while something else loads the machine shows it there.
//
// Output: a table per scenario and mode (median and each round) and one JSON
// line per scenario and mode ("nats": embedded, process or url; only the JSON
// lines with -json); progress goes to stderr. The exit code is 1 when a
// scenario failed to run (not when a target is missed), 2 on bad usage.
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
	modes           []string // modeEmbedded, modeProcess or modeURL, in run order
	natsLog         string   // the nats-server process's log (modeProcess)
	attemptsOff     bool     // scenario 1 also runs with the attempt log off, to report its cost
}

type bench struct {
	o        options
	sz       sizes
	log      zerolog.Logger
	progress io.Writer
	prof     *profiler
	results  map[resultKey]*result
	mode     string // of the scenario running
	scenario int
	round    int
}

// resultKey is one scenario in one NATS mode.
type resultKey struct {
	mode string
	id   int
}

func main() {
	if dir := os.Getenv(natsChildStoreEnv); dir != "" { // -nats process: this binary re-executed as the server
		os.Exit(natsChildMain(dir))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// newEnv starts a fresh environment in the NATS mode of the scenario running.
func (b *bench) newEnv() (*env, error) {
	return newEnv(envConfig{mode: b.mode, url: b.o.natsURL, natsLog: b.o.natsLog}, b.log)
}

// parseModes reads -nats (value set or not) together with NATS_URL.
func parseModes(v string, set bool, natsURL string) ([]string, error) {
	if natsURL != "" {
		if set && v != modeURL {
			return nil, fmt.Errorf("NATS_URL is set: use -nats url or unset NATS_URL")
		}
		return []string{modeURL}, nil
	}
	switch v {
	case modeEmbedded, modeProcess:
		return []string{v}, nil
	case "both":
		return []string{modeEmbedded, modeProcess}, nil
	case modeURL:
		return nil, fmt.Errorf("-nats url needs NATS_URL")
	}
	return nil, fmt.Errorf("-nats %q: want embedded, process, both or url", v)
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
	fs.BoolVar(&o.attemptsOff, "attempts-off", true, "scenario 1 runs each max-in-flight a second time with the attempt log off (DOJO_WEBHOOKS_ATTEMPTS=off), reporting its cost; the other runs have it on, its default")
	natsMode := fs.String("nats", modeEmbedded, "where nats-server runs: embedded (in this process, in-process connections), process (a separate nats-server process built from this module, every client over TCP), both (each scenario in each), url (NATS_URL; the default when NATS_URL is set)")
	fs.StringVar(&o.natsLog, "nats-log", "", "with -nats process: append the nats-server process's output to this file (default a dojo-webhooks-bench-nats-*.log in the temp dir)")
	counts := fs.String("endpoints", "", "scenario 4: endpoint counts, one start-up measurement each (default 1000,10000; 20,100 with -quick)")
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
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	o.natsURL = os.Getenv("NATS_URL")
	if o.modes, err = parseModes(*natsMode, set["nats"], o.natsURL); err != nil {
		fmt.Fprintf(stderr, "-nats: %v\n", err)
		return 2
	}
	sz := fullSizes()
	if o.quick {
		sz = quickSizes()
		if !set["rounds"] {
			o.rounds = 1
		}
	}
	if *counts != "" {
		if sz.manyEndpoints, err = parseInts(*counts); err != nil {
			fmt.Fprintf(stderr, "-endpoints %v\n", err)
			return 2
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
	if slices.Contains(o.modes, modeProcess) && o.natsLog == "" {
		f, err := os.CreateTemp("", "dojo-webhooks-bench-nats-*.log")
		if err != nil {
			fmt.Fprintf(stderr, "-nats-log: %v\n", err)
			return 1
		}
		o.natsLog = f.Name()
		f.Close()
	}

	b := &bench{o: o, sz: sz, progress: stderr, results: map[resultKey]*result{},
		log:  zerolog.New(stderr).Level(lvl).With().Timestamp().Logger(),
		prof: &profiler{path: o.cpuprofile, perPhase: o.profilePipeline, trace: o.tracefile, errw: stderr}}
	if err := b.prof.startRun(); err != nil {
		fmt.Fprintf(stderr, "-cpuprofile: %v\n", err)
		return 1
	}
	var wheres []string
	for _, m := range o.modes {
		switch m {
		case modeEmbedded:
			wheres = append(wheres, "embedded nats-server (in-process connections, JetStream file store in a temp dir)")
		case modeProcess:
			wheres = append(wheres, "nats-server process (TCP loopback, file store in a temp dir, log "+o.natsLog+")")
		case modeURL:
			wheres = append(wheres, "NATS_URL (fresh streams and bucket per round)")
		}
	}
	where := strings.Join(wheres, "; then ")
	if !o.jsonOnly {
		fmt.Fprintf(stdout, "dojo-webhooks-bench: %s, GOMAXPROCS %d, %d rounds, max-in-flight %v, quick %v, %s\n",
			runtime.Version(), runtime.GOMAXPROCS(0), o.rounds, o.mifs, o.quick, where)
	}
	failed := false
	started := time.Now()
	for _, id := range slices.Sorted(slices.Values(o.scenarios)) {
		for _, mode := range o.modes {
			if b.runScenario(id, mode, stdout) {
				failed = true
			}
		}
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

// runScenario runs every round of scenario id in one NATS mode and prints its
// result; it reports whether a round failed.
func (b *bench) runScenario(id int, mode string, stdout io.Writer) bool {
	o := b.o
	sc := scenarios[id-1]
	b.scenario, b.mode = id, mode
	res := &result{Scenario: id, Name: sc.name, Mode: mode, Method: sc.method(b), Params: sc.params(b), Rounds: o.rounds}
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
	b.results[resultKey{mode, id}] = res
	if !o.jsonOnly {
		res.writeTable(stdout)
	}
	res.writeJSON(stdout)
	return len(res.Errors) > 0
}

func (b *bench) progressf(format string, args ...any) {
	prefix := fmt.Sprintf("[%s s%d %s r%d/%d] ", time.Now().Format("15:04:05"), b.scenario, b.mode, b.round, b.o.rounds)
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
