package statekv_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/internal/natstest"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

// testBucket starts a real embedded server and ensures the endpoint bucket on it.
func testBucket(t *testing.T) (*server.Server, jetstream.KeyValue) {
	t.Helper()
	s, _, js := natstest.JetStream(t)
	kv, err := statekv.EnsureBucket(t.Context(), js, statekv.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return s, kv
}

// bucketOn opens the endpoint bucket on s through a new connection, as another sidecar would.
func bucketOn(t *testing.T, s *server.Server) jetstream.KeyValue {
	t.Helper()
	_, js := natstest.Connect(t, s)
	kv, err := statekv.EnsureBucket(t.Context(), js, statekv.BucketConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// validRecord returns a minimal valid active record.
func validRecord(id string) statekv.Record {
	return statekv.Record{
		ID:     id,
		Name:   "Endpoint " + id,
		URL:    "https://hooks.example.com/" + id,
		Status: statekv.StatusActive,
	}
}

// rawPut writes a value by hand, as an operator with `nats kv put` would.
func rawPut(t *testing.T, kv jetstream.KeyValue, key, value string) uint64 {
	t.Helper()
	rev, err := kv.Put(t.Context(), key, []byte(value))
	if err != nil {
		t.Fatalf("kv put %s: %v", key, err)
	}
	return rev
}

// history returns every revision of key (puts and delete markers).
func history(t *testing.T, kv jetstream.KeyValue, key string) []jetstream.KeyValueEntry {
	t.Helper()
	h, err := kv.History(t.Context(), key)
	if err != nil {
		t.Fatalf("kv history %s: %v", key, err)
	}
	return h
}

// historyStatuses parses every put revision of key and returns its status
// ("<invalid>" for a value that does not parse, "<deleted>" for a delete marker).
func historyStatuses(t *testing.T, kv jetstream.KeyValue, key string) []string {
	t.Helper()
	var out []string
	for _, e := range history(t, kv, key) {
		if e.Operation() != jetstream.KeyValuePut {
			out = append(out, "<deleted>")
			continue
		}
		r, err := statekv.ParseRecord(key, e.Value())
		if err != nil {
			out = append(out, "<invalid>")
			continue
		}
		out = append(out, string(r.Status))
	}
	return out
}

// waitFor polls cond every few milliseconds until it holds, and fails the test
// when it still does not after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(3 * time.Millisecond)
	}
}

// getRecord reads id from the store and fails the test on any error.
func getRecord(t *testing.T, st *statekv.Store, id string) statekv.Entry {
	t.Helper()
	e, err := st.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return e
}

// diffRecords describes how two records differ ("" when equal). It compares
// every exported field: times by instant, string slices with nil equal to empty
// (events nil and [] both mean all events); unknown fields compare by JSON value.
// The Store's provenance stamps (ChangedBy, ChangedAfter) are not content: the
// history tests check them.
func diffRecords(a, b statekv.Record) string {
	var d []string
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := 0; i < va.NumField(); i++ {
		f := va.Type().Field(i)
		if !f.IsExported() || f.Name == "ChangedBy" || f.Name == "ChangedAfter" {
			continue
		}
		x, y := va.Field(i).Interface(), vb.Field(i).Interface()
		switch x := x.(type) {
		case time.Time:
			if !x.Equal(y.(time.Time)) {
				d = append(d, fmt.Sprintf("%s: %s != %s", f.Name, x, y))
			}
		case []string:
			if !slices.Equal(x, y.([]string)) {
				d = append(d, fmt.Sprintf("%s: %q != %q", f.Name, x, y))
			}
		default:
			if !reflect.DeepEqual(x, y) {
				d = append(d, fmt.Sprintf("%s: %#v != %#v", f.Name, x, y))
			}
		}
	}
	if ea, eb := jsonValues(a.Extra()), jsonValues(b.Extra()); !reflect.DeepEqual(ea, eb) {
		d = append(d, fmt.Sprintf("Extra: %v != %v", ea, eb))
	}
	return strings.Join(d, "; ")
}

func jsonValues(m map[string]json.RawMessage) map[string]any {
	out := make(map[string]any, len(m))
	for k, raw := range m {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			v = "<bad JSON: " + err.Error() + ">"
		}
		out[k] = v
	}
	return out
}

// mustTime parses an RFC 3339 timestamp.
func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

// runWatcher starts w.Run and waits for its initial sync. The returned stop
// cancels Run, waits for it to return and hands back its error; it also runs
// when the test ends (before the server is shut down).
func runWatcher(t *testing.T, w *statekv.Watcher) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var (
		stopped bool
		result  error
	)
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case result = <-done:
			case <-time.After(10 * time.Second):
				result = errors.New("Run did not return within 10s of cancel")
			}
		}
		return result
	}
	t.Cleanup(func() { _ = stop() })
	select {
	case <-w.Synced():
	case err := <-done:
		stopped = true
		t.Fatalf("Run returned before the initial sync: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("watcher not synced within 10s")
	}
	return stop
}
