package main

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/internal/logtest"
	"github.com/dojo-webhooks/dojo-webhooks/internal/natstest"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binary builds the dojo-webhooks command once per test run, for tests that
// need a real process (signals).
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "dojo-webhooks-bin")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "dojo-webhooks")
		out, err := exec.Command("go", "build", "-race", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = err
			t.Logf("go build: %s", out)
		}
	})
	if binErr != nil {
		t.Fatalf("building the binary: %v", binErr)
	}
	return binPath
}

// process is a running `dojo-webhooks serve`.
type process struct {
	cmd  *exec.Cmd
	logs *logtest.Buffer
	done chan struct{}
}

func startProcess(t *testing.T, env map[string]string) *process {
	t.Helper()
	cmd := exec.Command(binary(t), "serve")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "PATH="+os.Getenv("PATH"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, logs: &logtest.Buffer{}, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		var once sync.Once
		for sc.Scan() {
			p.logs.Write([]byte(sc.Text() + "\n"))
			if strings.Contains(sc.Text(), "dojo-webhooks ready") {
				once.Do(func() { close(ready) })
			}
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	select {
	case <-ready:
	case <-p.done:
		t.Fatalf("serve exited before ready:\n%s", p.logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("serve not ready within 30s:\n%s", p.logs)
	}
	return p
}

// TestSIGTERMWithASlowReceiverLosesNothing: SIGTERM while a delivery hangs stops
// within the grace period with exit 0; the event is delivered after the restart.
func TestSIGTERMWithASlowReceiverLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	s := natstest.Server(t)
	env := testEnv(s.ClientURL())
	env["DOJO_WEBHOOKS_SHUTDOWN_GRACE"] = "300ms"
	env["DOJO_WEBHOOKS_TIMEOUT"] = "20s"

	var mu sync.Mutex
	slow := true
	var ids []string
	inFlight := make(chan struct{}, 10)
	release := make(chan struct{})
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-DefectDojo-Event") == "ping" {
			return
		}
		mu.Lock()
		ids = append(ids, r.Header.Get("webhook-id"))
		hang := slow
		mu.Unlock()
		if hang {
			inFlight <- struct{}{}
			select { // held until the sidecar gives up on it
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer recv.Close()
	defer close(release)

	p := startProcess(t, env)
	if res := runCmd(t, env, "", "endpoint", "add", "slow", "--url", recv.URL); res.code != 0 {
		t.Fatal(res.stderr)
	}
	if res := runCmd(t, env, `{"title":"held"}`, "publish", "scan_added", "-", "--msg-id", "evt-1"); res.code != 0 {
		t.Fatal(res.stderr)
	}
	select {
	case <-inFlight:
	case <-time.After(20 * time.Second):
		t.Fatalf("the delivery never started:\n%s", p.logs)
	}
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("no exit after SIGTERM:\n%s", p.logs)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM:\n%s", code, p.logs)
	}
	t.Logf("stopped %s after SIGTERM", time.Since(start).Round(time.Millisecond))
	// The cancelled request is not the endpoint's fault.
	if rec := getRecord(t, kvOf(t, s.ClientURL()), "slow"); rec.Status != statekv.StatusActive {
		t.Fatalf("shutdown changed the endpoint: %+v", rec)
	}

	mu.Lock()
	slow = false
	mu.Unlock()
	startProcess(t, env)
	waitFor(t, 20*time.Second, "the event after the restart", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(ids) >= 2
	})
	mu.Lock()
	defer mu.Unlock()
	t.Logf("webhook-ids received: %v", ids)
	for _, id := range ids {
		if id != "evt-1" {
			t.Fatalf("webhook-ids %v: every copy must carry the event's id", ids)
		}
	}
}
