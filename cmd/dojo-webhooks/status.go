package main

import (
	"context"
	"flag"
	"fmt"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/jsstate"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// statusReport is what `status --json` prints.
type statusReport struct {
	NATS struct {
		URL      string `json:"url"`
		Embedded bool   `json:"embedded"`
		Server   string `json:"server"`
		Version  string `json:"version"`
	} `json:"nats"`
	JetStream struct {
		Streams   int    `json:"streams"`
		Consumers int    `json:"consumers"`
		Storage   uint64 `json:"storage_bytes"`
	} `json:"jetstream"`
	Streams   []jsstate.StreamState `json:"streams"`
	Endpoints []endpointStatus      `json:"endpoints"`
}

// endpointStatus is one endpoint's line of the status screen.
type endpointStatus struct {
	ID          string     `json:"id"`
	Name        string     `json:"name,omitempty"`
	Status      string     `json:"status"`
	Backlog     *uint64    `json:"backlog"`
	InFlight    int        `json:"in_flight"`
	PausedUntil *time.Time `json:"paused_until"`
	DeadLetters uint64     `json:"dead_letters"`
	// Dropped estimates the endpoint's events the stream's limits discarded
	// before it received them (jsstate.EndpointState.Dropped).
	Dropped   uint64     `json:"dropped"`
	LastError *time.Time `json:"last_error"`
	Note      string     `json:"note"`
}

var statusCmd = &command{
	name:    "status",
	summary: "one screen for an operator: NATS, streams, and every endpoint's state, backlog, pause, dead letters",
	flags: func(fs *flag.FlagSet) runFunc {
		asJSON := fs.Bool("json", false, "print JSON")
		return func(ctx context.Context, c *cli, pos []string) error {
			if err := noArgs("status", pos); err != nil {
				return err
			}
			return c.withJetStream(ctx, func(ctx context.Context) error {
				return printStatus(ctx, c.cfg, c.js, *asJSON, c.sio)
			})
		}
	},
}

// printStatus reads and prints the status screen.
func printStatus(ctx context.Context, cfg Config, js jetstream.JetStream, asJSON bool, sio stdio) error {
	nc := js.Conn()
	var rep statusReport
	rep.NATS.URL = nc.ConnectedUrlRedacted()
	rep.NATS.Embedded = cfg.NATSURL == ""
	rep.NATS.Server = nc.ConnectedServerName()
	rep.NATS.Version = nc.ConnectedServerVersion()
	ai, err := js.AccountInfo(ctx)
	if err != nil {
		return fmt.Errorf("JetStream account: %w", err)
	}
	rep.JetStream.Streams, rep.JetStream.Consumers, rep.JetStream.Storage = ai.Streams, ai.Consumers, ai.Store
	snap, err := jsstate.ReadSnapshot(ctx, js, cfg.names())
	if err != nil {
		return fmt.Errorf("%w (has `dojo-webhooks serve` run against this server?)", err)
	}
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if err != nil {
		return fmt.Errorf("bucket %s: %w", cfg.Bucket, err)
	}
	rep.Streams = snap.Streams
	if bucket, err := bucketStream(ctx, kv); err == nil {
		rep.Streams = append(rep.Streams, bucket)
	}
	entries, invalid, err := statekv.NewStore(kv).List(ctx)
	if err != nil {
		return err
	}
	for _, e := range entries {
		r := e.Record
		es := endpointStatus{ID: r.ID, Name: r.Name, Status: string(r.Status), Note: r.Note}
		if !r.LastError.IsZero() {
			t := r.LastError
			es.LastError = &t
		}
		rep.Endpoints = append(rep.Endpoints, fill(es, snap.Endpoints[r.ID]))
	}
	for _, inv := range invalid {
		rep.Endpoints = append(rep.Endpoints, fill(endpointStatus{ID: inv.ID, Status: "invalid", Note: inv.Err.Error()}, snap.Endpoints[inv.ID]))
	}
	sort.Slice(rep.Endpoints, func(i, j int) bool { return rep.Endpoints[i].ID < rep.Endpoints[j].ID })
	if asJSON {
		if rep.Endpoints == nil {
			rep.Endpoints = []endpointStatus{}
		}
		return writeJSON(sio.out, rep)
	}
	kind := "NATS_URL"
	if rep.NATS.Embedded {
		kind = "embedded"
	}
	fmt.Fprintf(sio.out, "NATS       %s (%s), server %s %s\n", rep.NATS.URL, kind, rep.NATS.Server, rep.NATS.Version)
	// The account's totals, which count the streams of other applications in the account
	// too; the table lists dojo-webhooks' own: events, dead letters, attempt log, the bucket.
	fmt.Fprintf(sio.out, "JetStream  %d streams, %d consumers, %s stored in the account\n\n", ai.Streams, ai.Consumers, bytesText(ai.Store))
	tw := tabwriter.NewWriter(sio.out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tMESSAGES\tBYTES\tCONSUMERS")
	for _, s := range rep.Streams {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\n", s.Name, s.Messages, bytesText(s.Bytes), s.Consumers)
	}
	tw.Flush()
	fmt.Fprintln(sio.out)
	tw = tabwriter.NewWriter(sio.out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ENDPOINT\tSTATUS\tBACKLOG\tPAUSED UNTIL\tDEAD LETTERS\tDROPPED\tLAST ERROR\tNOTE")
	for _, e := range rep.Endpoints {
		backlog, paused, lastErr := "-", "-", "-"
		if e.Backlog != nil {
			backlog = fmt.Sprint(*e.Backlog)
		}
		if e.PausedUntil != nil {
			paused = e.PausedUntil.Format(time.RFC3339)
			if contract.IsHeld(*e.PausedUntil) {
				paused = "until activated"
			}
		}
		if e.LastError != nil {
			lastErr = e.LastError.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", e.ID, e.Status, backlog, paused, e.DeadLetters, e.Dropped, lastErr, dash(oneLine(e.Note, 60)))
	}
	return tw.Flush()
}

// bucketStream is the size of the stream behind the endpoint bucket.
func bucketStream(ctx context.Context, kv jetstream.KeyValue) (jsstate.StreamState, error) {
	st, err := kv.Status(ctx)
	if err != nil {
		return jsstate.StreamState{}, fmt.Errorf("bucket %s: %w", kv.Bucket(), err)
	}
	bs, ok := st.(*jetstream.KeyValueBucketStatus)
	if !ok {
		return jsstate.StreamState{}, fmt.Errorf("bucket %s: no stream information", kv.Bucket())
	}
	info := bs.StreamInfo()
	return jsstate.StreamState{Name: info.Config.Name, Messages: info.State.Msgs, Bytes: info.State.Bytes, Consumers: info.State.Consumers}, nil
}

func fill(es endpointStatus, st jsstate.EndpointState) endpointStatus {
	if st.HasConsumer {
		b := st.Backlog
		es.Backlog, es.InFlight = &b, st.InFlight
		if st.Paused {
			t := st.PausedUntil
			es.PausedUntil = &t
		}
	}
	es.DeadLetters, es.Dropped = st.DeadLetters, st.Dropped
	return es
}

func bytesText(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
