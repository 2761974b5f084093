package faults

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// sidecarHTTPAddr is the HTTP address the sidecar logged it listens on.
func sidecarHTTPAddr(t testing.TB, p *sidecar) string {
	t.Helper()
	entries := p.logEntries(logMessage("HTTP server listening"))
	if len(entries) == 0 {
		t.Fatal("the sidecar logged no HTTP address")
	}
	return fmt.Sprint(entries[0]["addr"])
}

// idleClient opens a keep-alive connection to addr and sends one GET /healthz
// on it, without waiting for the answer: a client that then stays idle.
func idleClient(addr string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: sidecar\r\n\r\n"); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// TestDescriptorExhaustionIsNotTheEndpoints: idle keep-alive clients take every
// descriptor of a sidecar started with a low limit (its connection cap set
// above it). The deliveries then fail on the sidecar's side ("too many open
// files"): that is logged as a local failure and counted, the endpoints stay
// active (no transition, no dead letter) and, once the clients are gone, every
// event arrives. Before the fix the failures were permanent: both endpoints
// went inactive_permanent with a dead letter each.
func TestDescriptorExhaustionIsNotTheEndpoints(t *testing.T) {
	t.Parallel()
	const nofile, clients, events = 96, 160, 5
	srv := startNATS(t)
	env := sidecarEnv(srv.URL(), "DOJO_WEBHOOKS_HTTP_MAX_CONNS", "100000")
	sc := startLimitedSidecar(t, "sidecar", env, nofile)
	addr := sidecarHTTPAddr(t, sc)
	_, js := connect(t, srv.URL())
	kv := bucketOf(t, js)
	r1, r2 := newReceiver(t), newReceiver(t)
	createEndpoint(t, kv, "one", r1.URL())
	createEndpoint(t, kv, "two", r2.URL())
	waitConsumer(t, js, "one")
	waitConsumer(t, js, "two")

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range clients {
		c, err := idleClient(addr)
		if err != nil {
			break // the kernel's accept queue is full too
		}
		conns = append(conns, c)
	}
	waitFor(t, waitTimeout, "the sidecar out of descriptors", func() bool {
		return len(sc.logEntries(func(m map[string]any) bool {
			return m["component"] == "http" && strings.Contains(fmt.Sprint(m["message"]), "too many open files")
		})) > 0
	})
	pub := publishAll(t, js, "scan_added", events, "")
	waitFor(t, waitTimeout, "a local failure of each endpoint", func() bool {
		for _, id := range []string{"one", "two"} {
			if len(sc.logEntries(logMessage("delivery failed on this side (not the endpoint's fault): its state is untouched, the event is retried", "endpoint", id))) == 0 {
				return false
			}
		}
		return true
	})
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	r1.waitDelivered(t, events, waitTimeout)
	r2.waitDelivered(t, events, waitTimeout)
	checkAtLeastOnce(t, r1.requests(), pub.ids)
	checkAtLeastOnce(t, r2.requests(), pub.ids)
	for _, id := range []string{"one", "two"} {
		if sts := statuses(history(t, kv, id)); len(sts) != 1 || sts[0] != "active" {
			t.Errorf("endpoint %s: history %v, want it left active", id, sts)
		}
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	found := 0
	sc2 := bufio.NewScanner(resp.Body)
	for sc2.Scan() {
		line := sc2.Text()
		if strings.HasPrefix(line, `dojo_webhooks_local_failures_total{endpoint="one"}`) || strings.HasPrefix(line, `dojo_webhooks_local_failures_total{endpoint="two"}`) {
			found++
		}
		if strings.HasPrefix(line, "dojo_webhooks_dead_letters_total") {
			t.Errorf("a dead letter: %s", line)
		}
	}
	if found != 2 {
		t.Errorf("dojo_webhooks_local_failures_total: %d of the 2 endpoints counted", found)
	}
}

// cutOffAfter reads from c until the server closes it and returns how long that took.
func cutOffAfter(t testing.TB, c net.Conn, start time.Time, limit time.Duration) time.Duration {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(limit))
	_, err := io.Copy(io.Discard, c)
	if err != nil { // the deadline: still open
		t.Fatalf("connection still open after %s: %v", limit, err)
	}
	return time.Since(start)
}

// TestIdleAndSlowClientsCutOff: an idle keep-alive connection is closed at the
// idle timeout, a client sending its headers a byte at a time at the header
// timeout, a client sending its body a byte at a time at the read timeout.
func TestIdleAndSlowClientsCutOff(t *testing.T) {
	t.Parallel()
	const timeout = 1500 * time.Millisecond
	const slack = 3 * time.Second // a loaded machine, a -race binary
	srv := startNATS(t)
	env := sidecarEnv(srv.URL(), "DOJO_WEBHOOKS_HTTP_READ_TIMEOUT", timeout.String(), "DOJO_WEBHOOKS_HTTP_IDLE_TIMEOUT", timeout.String())
	sc := startSidecar(t, "sidecar", env)
	addr := sidecarHTTPAddr(t, sc)

	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// trickle writes s a byte every 100 ms until the connection breaks.
	trickle := func(c net.Conn, s string) {
		go func() {
			for i := 0; i < len(s); i++ {
				if _, err := c.Write([]byte{s[i]}); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}()
	}
	check := func(what string, took time.Duration) {
		t.Logf("%s cut off after %s", what, took)
		if took < timeout-100*time.Millisecond || took > timeout+slack {
			t.Errorf("%s cut off after %s, want %s", what, took, timeout)
		}
	}

	idle := dial()
	if _, err := io.WriteString(idle, "GET /healthz HTTP/1.1\r\nHost: sidecar\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(idle)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	answered := time.Now()
	_ = idle.SetReadDeadline(answered.Add(timeout + slack))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Fatalf("idle connection: %v, want it closed", err)
	}
	check("an idle keep-alive connection", time.Since(answered))

	headers := dial()
	start := time.Now()
	trickle(headers, "POST /ingest HTTP/1.1\r\nHost: sidecar\r\nX-DefectDojo-Event: scan_added\r\nX-Padding: "+strings.Repeat("x", 200)+"\r\n\r\n")
	check("a slowloris on the headers", cutOffAfter(t, headers, start, timeout+slack))

	body := dial()
	start = time.Now()
	if _, err := io.WriteString(body, "POST /ingest HTTP/1.1\r\nHost: sidecar\r\nX-DefectDojo-Event: scan_added\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	trickle(body, `{"x":"`+strings.Repeat("y", 990)+`"}`)
	check("a slowloris on the body", cutOffAfter(t, body, start, timeout+slack))
}
