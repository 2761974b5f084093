package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"math"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestMain lets -nats process re-execute the test binary as the nats-server.
func TestMain(m *testing.M) {
	if dir := os.Getenv(natsChildStoreEnv); dir != "" {
		os.Exit(natsChildMain(dir))
	}
	os.Exit(m.Run())
}

// benchLine is the part of a JSON line the tests read.
type benchLine struct {
	Scenario int                `json:"scenario"`
	Name     string             `json:"name"`
	Mode     string             `json:"nats"`
	Figures  map[string]float64 `json:"figures"`
	Checks   []json.RawMessage  `json:"checks"`
	Errors   []string           `json:"errors"`
}

// runJSON runs the bench with args (plus -json) and returns its JSON lines.
func runJSON(t *testing.T, args ...string) []benchLine {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(append(args, "-json"), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	var out []benchLine
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var r benchLine
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("-json printed a line that is not JSON: %q: %v", line, err)
		}
		out = append(out, r)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("stderr:\n%s", stderr.String())
		}
	})
	return out
}

// TestQuickRun runs the bench in -quick mode end to end (embedded server,
// receiver, the real pipeline, every scenario) and checks that it prints one
// well-formed JSON line per scenario without errors. Targets are not checked:
// the quick counts are too small for the figures to mean anything.
func TestQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every scenario end to end (about 15 s); skipped with -short")
	}
	t.Setenv("NATS_URL", "")
	seen := map[int]bool{}
	for _, r := range runJSON(t, "-quick") {
		if seen[r.Scenario] {
			t.Errorf("scenario %d printed twice", r.Scenario)
		}
		seen[r.Scenario] = true
		if r.Name == "" || len(r.Figures) == 0 || len(r.Checks) == 0 {
			t.Errorf("scenario %d: name %q, %d figures, %d checks: want all", r.Scenario, r.Name, len(r.Figures), len(r.Checks))
		}
		if r.Mode != modeEmbedded {
			t.Errorf("scenario %d: nats %q, want %q", r.Scenario, r.Mode, modeEmbedded)
		}
		if len(r.Errors) > 0 {
			t.Errorf("scenario %d (%s): %v", r.Scenario, r.Name, r.Errors)
		}
	}
	for id := 1; id <= len(scenarios); id++ {
		if !seen[id] {
			t.Errorf("no JSON line for scenario %d", id)
		}
	}
}

// TestQuickRunProcess runs scenarios 1 and 4 with -nats process: a separate
// nats-server process (this test binary re-executed, see TestMain), every
// client over TCP. The figures of the same-run limits, the combined limit L
// and the server's memory must be there.
func TestQuickRunProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts nats-server processes (about 10 s); skipped with -short")
	}
	t.Setenv("NATS_URL", "")
	log := t.TempDir() + "/nats.log"
	lines := runJSON(t, "-quick", "-nats", "process", "-nats-log", log, "-scenarios", "1,4", "-max-in-flight", "1", "-endpoints", "50")
	if len(lines) != 2 {
		t.Fatalf("%d JSON lines, want 2 (scenarios 1 and 4)", len(lines))
	}
	for _, r := range lines {
		if r.Mode != modeProcess || len(r.Errors) > 0 {
			t.Errorf("scenario %d: nats %q, errors %v; want %q, none", r.Scenario, r.Mode, r.Errors, modeProcess)
		}
	}
	for _, k := range []string{"raw_http_per_s_mif1", "raw_js_async_publish_per_s_mif1", "raw_js_consume_window_per_s_mif1", "combined_limit_per_s_mif1", "ratio_combined_limit_mif1"} {
		if !(lines[0].Figures[k] > 0) {
			t.Errorf("scenario 1: figure %s = %v, want > 0", k, lines[0].Figures[k])
		}
	}
	for _, k := range []string{"ready_s_n50", "server_rss_mb_n50", "server_rss_before_mb_n50"} {
		if !(lines[1].Figures[k] > 0) {
			t.Errorf("scenario 4: figure %s = %v, want > 0", k, lines[1].Figures[k])
		}
	}
	b, err := os.ReadFile(log)
	if err != nil || !strings.Contains(string(b), "Server is ready") || !strings.Contains(string(b), "Server Exiting") {
		t.Errorf("nats-server log %s: %v, want the server's start and exit lines:\n%s", log, err, b)
	}
}

func TestParseModes(t *testing.T) {
	for _, c := range []struct {
		v       string
		set     bool
		url     string
		want    []string
		wantErr bool
	}{
		{v: "embedded", want: []string{modeEmbedded}},
		{v: "process", set: true, want: []string{modeProcess}},
		{v: "both", set: true, want: []string{modeEmbedded, modeProcess}},
		{v: "embedded", url: "nats://x:4222", want: []string{modeURL}},
		{v: "url", set: true, url: "nats://x:4222", want: []string{modeURL}},
		{v: "process", set: true, url: "nats://x:4222", wantErr: true},
		{v: "url", set: true, wantErr: true},
		{v: "elsewhere", set: true, wantErr: true},
	} {
		got, err := parseModes(c.v, c.set, c.url)
		if (err != nil) != c.wantErr || !slices.Equal(got, c.want) {
			t.Errorf("parseModes(%q, %v, %q) = %v, %v; want %v (error %v)", c.v, c.set, c.url, got, err, c.want, c.wantErr)
		}
	}
}

func TestCombinedLimit(t *testing.T) {
	if got := combinedLimit(10_000, 40_000, 40_000); math.Abs(got-20_000.0/3) > 1e-6 {
		t.Errorf("combinedLimit(10k, 40k, 40k) = %v, want 6666.67", got)
	}
	if got := combinedLimit(10_000, 0, 40_000); !math.IsNaN(got) {
		t.Errorf("combinedLimit with a missing rate = %v, want NaN", got)
	}
}
