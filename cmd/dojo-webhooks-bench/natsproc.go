package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/internal/embedded"
)

// Where the bench's NATS server runs.
const (
	modeEmbedded = "embedded" // in this process; the sidecar and the admin connection connect in-process
	modeProcess  = "process"  // a separate nats-server process (this binary re-executed); every client over TCP loopback
	modeURL      = "url"      // NATS_URL: an existing server, fresh streams and bucket per round
)

// The environment of a re-executed bench binary that runs a nats-server
// instead of the bench (-nats process).
const (
	natsChildStoreEnv = "DOJO_WEBHOOKS_BENCH_NATS_STORE" // the JetStream store directory; set: run as the server
	natsChildNameEnv  = "DOJO_WEBHOOKS_BENCH_NATS_NAME"  // the server name
	natsChildURLFD    = 3                                // the child writes its client URL here, then closes it
)

// natsProcessStart bounds the child's start (exec, JetStream store, listening).
const natsProcessStart = 30 * time.Second

// natsChildMain is the whole program when natsChildStoreEnv is set: it runs
// internal/embedded.Start on a free loopback port with that store, writes the
// client URL to fd 3 and serves until SIGTERM or SIGINT.
func natsChildMain(storeDir string) int {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	urlw := os.NewFile(natsChildURLFD, "url")
	s, err := embedded.Start(embedded.Options{Port: -1, StoreDir: storeDir, ServerName: os.Getenv(natsChildNameEnv), Debug: true})
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench nats-server: %v\n", err)
		return 1
	}
	if _, err := fmt.Fprintln(urlw, s.ClientURL()); err != nil {
		fmt.Fprintf(os.Stderr, "bench nats-server: writing the URL: %v\n", err)
		s.Shutdown()
		return 1
	}
	urlw.Close()
	sig := <-sigs
	fmt.Fprintf(os.Stderr, "bench nats-server: %s, shutting down\n", sig)
	s.Shutdown()
	s.WaitForShutdown()
	return 0
}

// natsProcess is a nats-server child process started by the bench.
type natsProcess struct {
	cmd     *exec.Cmd
	url     string
	logPath string
	done    chan struct{} // closed when the child has exited
	waitErr error
}

// startNATSProcess re-executes this binary as a nats-server with its
// JetStream store in dir; its stdout and stderr are appended to logPath.
func startNATSProcess(dir, name, logPath string) (*natsProcess, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("nats-server process: %w", err)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("nats-server process log: %w", err)
	}
	defer logf.Close() // the child has its own copy
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("nats-server process: %w", err)
	}
	defer r.Close()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), natsChildStoreEnv+"="+dir, natsChildNameEnv+"="+name)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{w} // fd 3
	cmd.SysProcAttr = childProcAttr()
	err = cmd.Start()
	w.Close()
	if err != nil {
		return nil, fmt.Errorf("nats-server process: %w", err)
	}
	p := &natsProcess{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() { // owner: the natsProcess; ends when the child exits
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	_ = r.SetReadDeadline(time.Now().Add(natsProcessStart))
	line, err := bufio.NewReader(r).ReadString('\n')
	p.url = strings.TrimSpace(line)
	if p.url == "" {
		p.stop()
		return nil, fmt.Errorf("nats-server process did not report its URL (%v, exit: %v); see %s", err, p.waitErr, logPath)
	}
	return p, nil
}

// pid is the child's process id.
func (p *natsProcess) pid() int { return p.cmd.Process.Pid }

// stop sends SIGTERM and waits for the child to exit (SIGKILL after 10 s).
func (p *natsProcess) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// memMB returns the child's resident memory now and at its peak (VmRSS, VmHWM).
func (p *natsProcess) memMB() (rss, peak float64) {
	return procStatusMB(fmt.Sprintf("/proc/%d/status", p.pid()), "VmRSS:", "VmHWM:")
}

// procStatusMB reads the kB fields of a /proc/<pid>/status file, in MB (NaN when missing).
func procStatusMB(path string, fields ...string) (a, b float64) {
	out := []float64{math.NaN(), math.NaN()}
	f, err := os.Open(path)
	if err != nil {
		return out[0], out[1]
	}
	defer f.Close()
	if err := scanStatus(f, fields, out); err != nil {
		return math.NaN(), math.NaN()
	}
	return out[0], out[1]
}

func scanStatus(r io.Reader, fields []string, out []float64) error {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		for i, name := range fields {
			if rest, ok := strings.CutPrefix(sc.Text(), name); ok {
				kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 64)
				if err != nil {
					return fmt.Errorf("%s: %w", name, err)
				}
				out[i] = kb / 1024
			}
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if math.IsNaN(out[0]) {
		return errors.New("no " + fields[0])
	}
	return nil
}
