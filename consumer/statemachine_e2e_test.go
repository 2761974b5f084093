package consumer_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/delivery"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// A 500 makes the endpoint inactive_tmp and pauses its consumer: events published
// meanwhile are held; after reactivate-after it is active_tmp and gets the
// backlog in publish order, the failed event first; after recover-after it is active.
func TestTemporaryFailureHoldsThenDeliversBacklogInOrder(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *options) {
		// Wide margins: the retry after the reactivation must come before the
		// recovery even when a pause or resume takes a few hundred ms (store fsync).
		o.Policy = statekv.Policy{ReactivateAfter: 400 * ms, RecoverAfter: 1500 * ms, GiveUpAfter: 10 * time.Second}
	})
	r := h.newReceiver(http.StatusInternalServerError)
	h.addEndpoint("tmp", r.URL())

	want := []string{"ev-1"}
	h.publish("scan_added", eventBody("scan_added", 1), map[string]string{nats.MsgIdHdr: "ev-1"})
	e := h.waitStatus("tmp", statekv.StatusInactiveTmp)
	rec := e.Record
	if rec.Note != "Response status code: 500" {
		t.Errorf("note %q, want %q", rec.Note, "Response status code: 500")
	}
	if rec.FirstError.IsZero() || !rec.FirstError.Equal(rec.LastError) {
		t.Errorf("first_error %s, last_error %s: want both set and equal", rec.FirstError, rec.LastError)
	}
	// `nats consumer info`: paused until the reactivation.
	h.waitConsumer("tmp", func(i *jetstream.ConsumerInfo) bool {
		return i.Paused && i.Config.PauseUntil != nil && i.Config.PauseUntil.Equal(rec.LastError.Add(400*ms))
	})

	// Published while the endpoint is down: held, not sent.
	for i := 2; i <= 5; i++ {
		id := fmt.Sprintf("ev-%d", i)
		want = append(want, id)
		h.publish("scan_added", eventBody("scan_added", i), map[string]string{nats.MsgIdHdr: id})
	}
	h.waitBacklog("tmp", 5)
	// The reactivation retries the failed event first (still 500): the held events are not sent.
	got := r.waitCount(t, 2)
	for _, q := range got {
		if q.ID != "ev-1" {
			t.Fatalf("request for %s while ev-1 was still failing: %q", q.ID, ids(got))
		}
	}
	// active_tmp → temporary failure → inactive_tmp again, first_error unchanged.
	waitFor(t, waitTimeout, func() bool {
		e := h.record("tmp")
		return e.Record.Status == statekv.StatusInactiveTmp && e.Record.LastError.After(rec.LastError)
	})
	if again := h.record("tmp").Record; !again.FirstError.Equal(rec.FirstError) {
		t.Errorf("first_error moved from %s to %s on the second failure of the outage", rec.FirstError, again.FirstError)
	}

	r.answer(http.StatusOK)
	ok := r.waitAnswered(t, len(want))
	if !slices.Equal(ids(ok), want) {
		t.Errorf("delivered %q, want %q in publish order", ids(ok), want)
	}
	for _, q := range r.requests() {
		if q.Status != http.StatusOK && q.ID != "ev-1" {
			t.Errorf("held event %s was sent while the endpoint was down (answered %d)", q.ID, q.Status)
		}
	}

	e = h.waitStatus("tmp", statekv.StatusActive)
	if e.Record.Note != statekv.RecoveryNote || !e.Record.FirstError.IsZero() || !e.Record.LastError.IsZero() {
		t.Errorf("after recover-after: note %q first_error %s last_error %s, want %q and null errors",
			e.Record.Note, e.Record.FirstError, e.Record.LastError, statekv.RecoveryNote)
	}
	hist := h.statusHistory("tmp")
	if !matchesHistory(hist, "active", "(inactive_tmp active_tmp)+", "active") {
		t.Errorf("status history %v", hist)
	}
	info := h.waitConsumer("tmp", func(i *jetstream.ConsumerInfo) bool { return i.NumPending == 0 && i.NumAckPending == 0 })
	if info.Paused {
		t.Error("consumer still paused after recovery")
	}
}

// matchesHistory checks a status history against a tiny pattern: each element
// is a status, or "(a b)+" for one or more repetitions of a b.
func matchesHistory(hist []statekv.Status, pattern ...string) bool {
	var re, got strings.Builder
	for _, p := range pattern {
		if strings.HasSuffix(p, ")+") {
			re.WriteString(strings.TrimSuffix(p, ")+") + " )+")
		} else {
			re.WriteString(p + " ")
		}
	}
	for _, s := range hist {
		got.WriteString(string(s) + " ")
	}
	return regexp.MustCompile("^" + re.String() + "$").MatchString(got.String())
}

// A temporary failure past give-up makes the endpoint inactive_permanent; no
// dead letter is written for it and its backlog, the failed event included, is
// kept for when a user activates it again.
func TestTemporaryFailuresPastGiveUpKeepBacklog(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *options) {
		o.Policy = statekv.Policy{ReactivateAfter: 100 * ms, RecoverAfter: 10 * time.Second, GiveUpAfter: 300 * ms}
	})
	r := h.newReceiver(http.StatusServiceUnavailable)
	h.addEndpoint("giveup", r.URL())
	h.publish("product_added", eventBody("product_added", 1), map[string]string{nats.MsgIdHdr: "p-1"})
	e := h.waitStatus("giveup", statekv.StatusInactivePermanent)
	rec := e.Record
	first := h.historyRecords("giveup")[1] // the first failure: active → inactive_tmp
	if first.Status != statekv.StatusInactiveTmp || !first.FirstError.Equal(first.LastError) {
		t.Fatalf("first failure wrote %+v", first)
	}
	if rec.Note != "Response status code: 503" || !rec.FirstError.Equal(first.FirstError) {
		t.Errorf("note %q first_error %s, want %q and the outage start %s", rec.Note, rec.FirstError, "Response status code: 503", first.FirstError)
	}
	if rec.LastError.Sub(rec.FirstError) <= 300*ms {
		t.Errorf("gave up %s after the first error, want more than give-up-after", rec.LastError.Sub(rec.FirstError))
	}
	hist := h.statusHistory("giveup")
	if !matchesHistory(hist, "active", "(inactive_tmp active_tmp)+", "inactive_permanent") {
		t.Errorf("status history %v: want the give-up from active_tmp", hist)
	}
	h.publish("product_added", eventBody("product_added", 2), map[string]string{nats.MsgIdHdr: "p-2"})
	h.publish("product_added", eventBody("product_added", 3), map[string]string{nats.MsgIdHdr: "p-3"})
	info := h.waitConsumer("giveup", func(i *jetstream.ConsumerInfo) bool { return i.Paused })
	if info.Config.PauseUntil == nil || info.Config.PauseUntil.Year() < 2900 {
		t.Errorf("consumer paused until %v, want until resumed", info.Config.PauseUntil)
	}
	h.waitBacklog("giveup", 3)
	if dl := h.deadLetters("giveup"); len(dl) != 0 {
		t.Errorf("%d dead letters for temporary failures, want none", len(dl))
	}
	for _, q := range r.requests() {
		if q.ID != "p-1" {
			t.Errorf("request for %s while the endpoint was failing", q.ID)
		}
	}
	// The backlog is there: a user activation delivers all of it, in order.
	r.answer(http.StatusOK)
	activate(t, h, "giveup")
	if got := ids(r.waitAnswered(t, 3)); !slices.Equal(got, []string{"p-1", "p-2", "p-3"}) {
		t.Errorf("after activation delivered %q", got)
	}
}

// A receiver that does not answer within the HTTP timeout is a temporary failure.
func TestTimeoutIsTemporary(t *testing.T) {
	t.Parallel()
	h := newHarness(t, func(o *options) {
		o.Timeout = 300 * ms
		o.Policy = statekv.Policy{ReactivateAfter: time.Minute, RecoverAfter: time.Minute, GiveUpAfter: time.Minute}
	})
	r := h.newReceiver(statusHang)
	h.addEndpoint("slow", r.URL())
	h.publish("test_added", eventBody("test_added", 1), nil)
	e := h.waitStatus("slow", statekv.StatusInactiveTmp)
	if !strings.HasPrefix(e.Record.Note, "Timeout") {
		t.Errorf("note %q, want a Timeout note", e.Record.Note)
	}
	if e.Record.FirstError.IsZero() || !e.Record.FirstError.Equal(e.Record.LastError) {
		t.Errorf("first_error %s last_error %s", e.Record.FirstError, e.Record.LastError)
	}
	h.waitConsumer("slow", func(i *jetstream.ConsumerInfo) bool { return i.Paused })
	h.waitBacklog("slow", 1)
	if dl := h.deadLetters("slow"); len(dl) != 0 {
		t.Errorf("%d dead letters for a timeout", len(dl))
	}
}

// A 400 is permanent: inactive_permanent, the event dead-lettered with the
// reason, later events held; a user activation delivers the held events, a
// replay of the dead letters sends the failed one again with its webhook-id,
// and a replay since a time sends every event since then with their ids.
func TestPermanentFailureDeadLetterActivationAndReplay(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	r := h.newReceiver(http.StatusBadRequest)
	h.addEndpoint("perm", r.URL(), withHeader("Authorization", "Token t"))
	// Another endpoint whose dead letters must survive perm's replay.
	h.addEndpoint("other", h.newReceiver(http.StatusNotFound).URL(), withEvents("engagement_added"))

	since := time.Now()
	body1 := eventBody("engagement_added", 1)
	ack1 := h.publish("engagement_added", body1, map[string]string{
		nats.MsgIdHdr: "eng-1", "X-DefectDojo-Instance": "https://dd.other.example",
	})
	e := h.waitStatus("perm", statekv.StatusInactivePermanent)
	if e.Record.Note != "Response status code: 400" || e.Record.FirstError.IsZero() || !e.Record.FirstError.Equal(e.Record.LastError) {
		t.Errorf("record: note %q first_error %s last_error %s", e.Record.Note, e.Record.FirstError, e.Record.LastError)
	}
	waitFor(t, waitTimeout, func() bool { return len(h.deadLetters("perm")) == 1 })
	dl := h.deadLetters("perm")[0]
	wantHdr := map[string]string{
		contract.HeaderDLReason:    "Response status code: 400",
		contract.HeaderDLStatus:    "400",
		contract.HeaderDLAttempts:  "1",
		contract.HeaderDLStreamSeq: strconv.FormatUint(ack1.Sequence, 10),
		contract.HeaderDLStream:    names.Events,
		contract.HeaderDLEndpoint:  "perm",
		contract.HeaderDLEvent:     "engagement_added",
		contract.HeaderWebhookID:   "eng-1",
		"X-DefectDojo-Instance":    "https://dd.other.example",
	}
	for k, v := range wantHdr {
		if got := dl.Header.Get(k); got != v {
			t.Errorf("dead letter header %s = %q, want %q", k, got, v)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, dl.Header.Get(contract.HeaderDLTime)); err != nil {
		t.Errorf("dead letter time %q: %v", dl.Header.Get(contract.HeaderDLTime), err)
	}
	if string(dl.Data) != string(body1) {
		t.Errorf("dead letter body %q, want %q", dl.Data, body1)
	}
	// Terminated for the endpoint (not pending), and the consumer is held.
	h.waitConsumer("perm", func(i *jetstream.ConsumerInfo) bool { return i.Paused && i.NumAckPending == 0 && i.NumPending == 0 })

	// Held while inactive_permanent.
	r.answer(http.StatusOK)
	ack2 := h.publish("test_added", eventBody("test_added", 2), nil)
	h.publish("scan_added", eventBody("scan_added", 3), map[string]string{nats.MsgIdHdr: "scan-3"})
	id2 := derivedID(ack2.Sequence)
	info := h.mustConsumerInfo("perm")
	if !info.Paused || info.NumPending != 2 {
		t.Errorf("consumer info: paused %v pending %d, want paused with 2 held", info.Paused, info.NumPending)
	}
	if n := r.count(); n != 1 {
		t.Errorf("%d requests while inactive_permanent, want only the failed one", n)
	}

	activated := activate(t, h, "perm")
	if activated.Status != statekv.StatusActive || !activated.FirstError.IsZero() || !activated.LastError.IsZero() || activated.Note != "" {
		t.Errorf("activated record %+v", activated)
	}
	if got := ids(r.waitAnswered(t, 2)); !slices.Equal(got, []string{id2, "scan-3"}) {
		t.Errorf("after activation delivered %q, want the held events %q", got, []string{id2, "scan-3"})
	}

	n, err := consumer.ReplayDeadLetters(context.Background(), h.js, names, "perm")
	if err != nil || n != 1 {
		t.Fatalf("ReplayDeadLetters = %d, %v; want 1", n, err)
	}
	ok := r.waitAnswered(t, 3)
	replayed := ok[2]
	if replayed.ID != "eng-1" || replayed.Event != "engagement_added" || string(replayed.Body) != string(body1) ||
		replayed.Header.Get("X-DefectDojo-Instance") != "https://dd.other.example" {
		t.Errorf("replayed dead letter: id %q event %q instance %q body %q", replayed.ID, replayed.Event,
			replayed.Header.Get("X-DefectDojo-Instance"), replayed.Body)
	}
	if got := h.deadLetters("perm"); len(got) != 0 {
		t.Errorf("%d dead letters left after the replay", len(got))
	}
	if got := h.deadLetters("other"); len(got) != 1 || got[0].Header.Get(contract.HeaderDLReason) != "Response status code: 404" {
		t.Errorf("the other endpoint's dead letters after perm's replay: %d", len(got))
	}
	if n, err := consumer.ReplayDeadLetters(context.Background(), h.js, names, "perm"); err != nil || n != 0 {
		t.Errorf("second ReplayDeadLetters = %d, %v; want 0", n, err)
	}

	n, err = consumer.ReplaySince(context.Background(), h.js, names, h.record("perm").Record, since)
	if err != nil || n != 3 {
		t.Fatalf("ReplaySince = %d, %v; want 3", n, err)
	}
	ok = r.waitAnswered(t, 6)
	if got, want := ids(ok[3:]), []string{"eng-1", id2, "scan-3"}; !slices.Equal(got, want) {
		t.Errorf("replayed since %s: %q, want the original ids %q", since.Format(time.RFC3339Nano), got, want)
	}
	if ok[4].Event != "test_added" || string(ok[4].Body) != string(eventBody("test_added", 2)) {
		t.Errorf("replayed event: %s %q", ok[4].Event, ok[4].Body)
	}
	if e := h.record("perm"); e.Record.Status != statekv.StatusActive {
		t.Errorf("endpoint %s after the replays", e.Record.Status)
	}
}

// A refused connection is permanent: inactive_permanent, dead letter without a
// status; after the URL is fixed and the endpoint activated, the held events and
// the replayed dead letter arrive.
func TestConnectionRefusedIsPermanent(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	gone := httptest.NewServer(http.NotFoundHandler())
	deadURL := gone.URL + "/hook"
	gone.Close()
	h.addEndpoint("gone", deadURL)
	ack := h.publish("product_type_added", eventBody("product_type_added", 1), nil)
	e := h.waitStatus("gone", statekv.StatusInactivePermanent)
	if !strings.HasPrefix(e.Record.Note, "Connection refused") {
		t.Errorf("note %q, want Connection refused", e.Record.Note)
	}
	waitFor(t, waitTimeout, func() bool { return len(h.deadLetters("gone")) == 1 })
	dl := h.deadLetters("gone")[0]
	if !strings.HasPrefix(dl.Header.Get(contract.HeaderDLReason), "Connection refused") ||
		dl.Header.Get(contract.HeaderDLStatus) != "" ||
		dl.Header.Get(contract.HeaderWebhookID) != derivedID(ack.Sequence) {
		t.Errorf("dead letter headers %v", dl.Header)
	}
	ack2 := h.publish("product_type_added", eventBody("product_type_added", 2), nil)
	h.waitConsumer("gone", func(i *jetstream.ConsumerInfo) bool { return i.Paused && i.NumPending == 1 })

	r := h.newReceiver(http.StatusOK)
	if _, _, err := h.store.Update(context.Background(), "gone", func(rec statekv.Record) (statekv.Record, bool, error) {
		rec.URL = r.URL()
		return rec, true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if h.record("gone").Record.Status != statekv.StatusInactivePermanent {
		t.Fatal("changing the URL changed the status")
	}
	activate(t, h, "gone")
	r.waitID(t, derivedID(ack2.Sequence))
	if _, err := consumer.ReplayDeadLetters(context.Background(), h.js, names, "gone"); err != nil {
		t.Fatal(err)
	}
	if got := ids(r.waitAnswered(t, 2)); !slices.Equal(got, []string{derivedID(ack2.Sequence), derivedID(ack.Sequence)}) {
		t.Errorf("delivered %q", got)
	}
}

// activate is `endpoint activate` after its successful ping.
func activate(t testing.TB, h *harness, id string) statekv.Record {
	t.Helper()
	e, _, err := h.store.Apply(context.Background(), id, statekv.Event{Input: statekv.UserActivate}, time.Now, h.opts.Policy)
	if err != nil {
		t.Fatalf("activate %s: %v", id, err)
	}
	return e.Record
}

// deactivate is `endpoint deactivate`.
func deactivate(t testing.TB, h *harness, id, note string) {
	t.Helper()
	if _, _, err := h.store.Apply(context.Background(), id, statekv.Event{Input: statekv.UserDeactivate, Note: note}, time.Now, h.opts.Policy); err != nil {
		t.Fatalf("deactivate %s: %v", id, err)
	}
}

// activateOnFailure stands in for a user who activates an endpoint the moment
// it became inactive_permanent: the activation lands between the sidecar's
// failure write and its pause of the consumer.
type activateOnFailure struct {
	mu    sync.Mutex
	store *statekv.Store
}

func (a *activateOnFailure) Delivered(string, string, delivery.Result) {}
func (a *activateOnFailure) DeadLettered(string)                       {}
func (a *activateOnFailure) Dropped(string, uint64, uint64, uint64)    {}
func (a *activateOnFailure) Transitioned(id string, _, to statekv.Status) {
	a.mu.Lock()
	store := a.store
	a.mu.Unlock()
	if to == statekv.StatusInactivePermanent && store != nil {
		_, _, _ = store.Apply(context.Background(), id, statekv.Event{Input: statekv.UserActivate}, time.Now, statekv.DefaultPolicy())
	}
}

// An endpoint activated right after a permanent failure is delivered to again:
// its consumer does not stay paused by the failure's pause (which can reach the
// server after the activation was applied).
func TestActivationRightAfterPermanentFailureResumes(t *testing.T) {
	t.Parallel()
	obs := &activateOnFailure{}
	h := newHarness(t, func(o *options) { o.Observer = obs })
	obs.mu.Lock()
	obs.store = h.store
	obs.mu.Unlock()
	const n = 8 // several endpoints at once: the interleaving is a race, more tries find it more often
	var rs []*receiver
	for i := range n {
		r := h.newReceiver(http.StatusBadRequest)
		rs = append(rs, r)
		h.addEndpoint(fmt.Sprintf("race%d", i), r.URL())
	}
	h.publish("ping", eventBody("ping", 0), map[string]string{nats.MsgIdHdr: "fail"})
	for i, r := range rs {
		r.waitCount(t, 1)
		r.answer(http.StatusOK)
		waitFor(t, waitTimeout, func() bool {
			hist := h.statusHistory(fmt.Sprintf("race%d", i))
			return slices.Equal(hist, []statekv.Status{"active", "inactive_permanent", "active"})
		})
	}
	h.publish("ping", eventBody("ping", 1), map[string]string{nats.MsgIdHdr: "next"})
	for i, r := range rs {
		r.waitID(t, "next")
		if info := h.mustConsumerInfo(fmt.Sprintf("race%d", i)); info.Paused {
			t.Errorf("race%d: consumer paused while the endpoint is active", i)
		}
	}
}
