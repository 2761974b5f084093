package faults

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// legalMoves are the status changes DefectDojo's state table allows without a
// user: a temporary failure, the reactivation timer, another temporary failure
// in active_tmp (before give-up) and the recovery timer.
var legalMoves = map[[2]string]bool{
	{"active", "inactive_tmp"}:     true,
	{"inactive_tmp", "active_tmp"}: true,
	{"active_tmp", "inactive_tmp"}: true,
	{"active_tmp", "active"}:       true,
}

// TestReceiverDownThenBack: the receiver answers 503 for a while (a closed port
// would be "connection refused", a permanent failure in DefectDojo's table),
// then 2xx again. The backlog arrives in full and in publish order
// (max-in-flight 1: only the head of the queue is retried), each event answered
// 2xx exactly once, and the endpoint follows the state table in its KV history:
// active → inactive_tmp → active_tmp (→ inactive_tmp → active_tmp …) → active,
// one inactive_tmp revision per refused attempt, first_error kept over the
// outage, errors cleared and DefectDojo's note at recovery.
func TestReceiverDownThenBack(t *testing.T) {
	t.Parallel()
	const total = 300
	srv := startNATS(t)
	env := sidecarEnv(srv.URL(), "DOJO_WEBHOOKS_MAX_IN_FLIGHT", "1",
		"DOJO_WEBHOOKS_REACTIVATE_AFTER", "200ms", "DOJO_WEBHOOKS_RECOVER_AFTER", "1000ms")
	startSidecar(t, "sidecar", env)
	_, js := connect(t, srv.URL())
	kv := bucketOf(t, js)
	r := newReceiver(t)
	createEndpoint(t, kv, "flaky", r.URL())
	waitConsumer(t, js, "flaky")

	r.answer(http.StatusServiceUnavailable)
	pub := publishAll(t, js, "scan_added", total, "")
	// Three refused attempts: active → inactive_tmp, then twice active_tmp → inactive_tmp.
	waitFor(t, waitTimeout, "three refused attempts", func() bool { return r.count() >= 3 })
	r.answer(http.StatusNoContent)
	r.waitDelivered(t, total, waitTimeout)
	final := waitStatus(t, kv, "flaky", statekv.StatusActive, waitTimeout)

	hits := r.requests()
	checkAtLeastOnce(t, hits, pub.ids)
	checkOrder(t, hits, pub)
	refused, answered := 0, map[int]int{}
	for _, h := range hits {
		if h.Status == http.StatusServiceUnavailable {
			refused++
			if h.N != 0 {
				t.Errorf("event %d was sent while event 0 was still refused", h.N)
			}
		} else {
			answered[h.N]++
		}
	}
	for n, c := range answered {
		if c != 1 {
			t.Errorf("event %d answered 2xx %d times, want once", n, c)
		}
	}

	hist := history(t, kv, "flaky")
	sts := statuses(hist)
	t.Logf("%d refused attempts; KV history: %s", refused, strings.Join(sts, " → "))
	if slices.Contains(sts, "<invalid>") {
		t.Fatalf("an invalid revision in the history: %v", sts)
	}
	if sts[0] != "active" || sts[len(sts)-1] != "active" {
		t.Errorf("history %v: want it to start and end active", sts)
	}
	for i := 1; i < len(sts); i++ {
		if !legalMoves[[2]string{sts[i-1], sts[i]}] {
			t.Errorf("revision %d: %s → %s is not in the state table", i+1, sts[i-1], sts[i])
		}
	}
	if !slices.Contains(sts, "inactive_tmp") || !slices.Contains(sts, "active_tmp") {
		t.Errorf("history %v: want inactive_tmp then active_tmp on the way back to active", sts)
	}
	if n := countOf(sts, "inactive_tmp"); n != refused {
		t.Errorf("%d inactive_tmp revisions for %d refused attempts: want one per attempt", n, refused)
	}
	var outageStart = hist[1].FirstError
	for i, rec := range hist[1 : len(hist)-1] {
		if !rec.FirstError.Equal(outageStart) || rec.LastError.IsZero() {
			t.Errorf("revision %d (%s): first_error %v last_error %v, want first_error %v kept over the outage",
				i+2, rec.Status, rec.FirstError, rec.LastError, outageStart)
		}
		if rec.Note != "Response status code: 503" {
			t.Errorf("revision %d (%s): note %q", i+2, rec.Status, rec.Note)
		}
	}
	if !final.FirstError.IsZero() || !final.LastError.IsZero() || final.Note != statekv.RecoveryNote {
		t.Errorf("recovered record: first_error %v, last_error %v, note %q; want both null and %q",
			final.FirstError, final.LastError, final.Note, statekv.RecoveryNote)
	}
}

func countOf(s []string, v string) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}
