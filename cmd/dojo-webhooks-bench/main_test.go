package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// TestQuickRun runs the bench in -quick mode end to end (embedded server,
// receiver, the real pipeline, every scenario) and checks that it prints one
// well-formed JSON line per scenario without errors. Targets are not checked:
// the quick counts are too small for the figures to mean anything.
func TestQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("runs every scenario end to end (about 15 s); skipped with -short")
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"-quick", "-json"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	seen := map[int]bool{}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var r struct {
			Scenario int                `json:"scenario"`
			Name     string             `json:"name"`
			Figures  map[string]float64 `json:"figures"`
			Checks   []json.RawMessage  `json:"checks"`
			Errors   []string           `json:"errors"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("-json printed a line that is not JSON: %q: %v", line, err)
		}
		if seen[r.Scenario] {
			t.Errorf("scenario %d printed twice", r.Scenario)
		}
		seen[r.Scenario] = true
		if r.Name == "" || len(r.Figures) == 0 || len(r.Checks) == 0 {
			t.Errorf("scenario %d: name %q, %d figures, %d checks: want all", r.Scenario, r.Name, len(r.Figures), len(r.Checks))
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
	if t.Failed() {
		t.Logf("stderr:\n%s", stderr.String())
	}
}
