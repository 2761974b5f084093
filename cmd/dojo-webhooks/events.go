package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/jsstate"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// MaxEventBytes bounds an event body read by `publish` (NATS's default max payload is 1 MiB).
const MaxEventBytes = 1 << 20

// publishCommand publishes one event and waits for JetStream to store it.
func publishCommand(ctx context.Context, cfg Config, args []string, sio stdio) error {
	fs := flag.NewFlagSet("publish", flag.ContinueOnError)
	fs.SetOutput(sio.err)
	recipient := fs.String("recipient", "", "DefectDojo username: a personal notification for that user's endpoints only")
	msgID := fs.String("msg-id", "", "Nats-Msg-Id: JetStream drops a repeat within the dedup window; also the webhook-id")
	instance := fs.String("instance", "", "X-DefectDojo-Instance to send (default DD_SITE_URL)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) < 1 || len(pos) > 2 {
		return usageError{errors.New("publish: usage: publish <event> [file|-] [--recipient USER] [--msg-id ID]")}
	}
	event := pos[0]
	if err := statekv.ValidateEvent(event); err != nil {
		return usageError{fmt.Errorf("publish: %w", err)}
	}
	var r io.Reader = sio.in
	src := "standard input"
	if len(pos) == 2 && pos[1] != "-" {
		f, err := os.Open(pos[1])
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		defer f.Close()
		r, src = f, pos[1]
	}
	body, err := io.ReadAll(io.LimitReader(r, MaxEventBytes+1))
	if err != nil {
		return fmt.Errorf("publish: read %s: %w", src, err)
	}
	if len(body) > MaxEventBytes {
		return usageError{fmt.Errorf("publish: %s is larger than %d bytes", src, MaxEventBytes)}
	}
	if !json.Valid(body) {
		return usageError{fmt.Errorf("publish: %s is not a JSON document (DefectDojo webhooks carry JSON)", src)}
	}
	h := nats.Header{}
	if *recipient != "" {
		h.Set(contract.HeaderRecipient, *recipient)
	}
	if *msgID != "" {
		h.Set(nats.MsgIdHdr, *msgID)
	}
	if *instance != "" {
		h.Set(contract.HeaderInstance, *instance)
	}
	return withJetStream(ctx, cfg, func(ctx context.Context, js jetstream.JetStream) error {
		if err := consumer.OpenStreams(ctx, js, cfg.streams()); err != nil {
			return err
		}
		ack, err := js.PublishMsg(ctx, &nats.Msg{Subject: cfg.names().EventSubject(event), Header: h, Data: body})
		if err != nil {
			return fmt.Errorf("publish %s: %w", event, err)
		}
		dup := ""
		if ack.Duplicate {
			dup = " (duplicate of an earlier publish with the same --msg-id: not stored again)"
		}
		fmt.Fprintf(sio.out, "published %s: stream %s sequence %d%s\n", event, ack.Stream, ack.Sequence, dup)
		return nil
	})
}

// replayCommand sends an endpoint its dead letters again, or everything since a time.
func replayCommand(ctx context.Context, cfg Config, args []string, sio stdio) error {
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(sio.err)
	since := fs.String("since", "", "replay every event the events stream holds since this RFC 3339 time or this long ago (e.g. 2h)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	id, err := oneID("replay", pos)
	if err != nil {
		return err
	}
	var from time.Time
	if *since != "" {
		if from, err = parseSince(*since, time.Now()); err != nil {
			return usageError{fmt.Errorf("replay --since: %w", err)}
		}
	}
	return withJetStream(ctx, cfg, func(ctx context.Context, js jetstream.JetStream) error {
		kv, err := statekv.OpenBucket(ctx, js, cfg.bucket())
		if err != nil {
			return err
		}
		e, err := statekv.NewStore(kv).Get(ctx, id)
		if err != nil {
			return err
		}
		if err := consumer.OpenStreams(ctx, js, cfg.streams()); err != nil {
			return err
		}
		var n int
		what := "dead letters"
		if from.IsZero() {
			n, err = consumer.ReplayDeadLetters(ctx, js, cfg.names(), id)
		} else {
			what = "events since " + from.UTC().Format(time.RFC3339)
			n, err = consumer.ReplaySince(ctx, js, cfg.names(), e.Record, from)
		}
		if err != nil {
			return fmt.Errorf("replay %s: %d sent before: %w", id, n, err)
		}
		fmt.Fprintf(sio.out, "replayed %d %s to endpoint %s", n, what, id)
		if !e.Record.Status.Deliverable() {
			fmt.Fprintf(sio.out, " (it is %s: they are delivered once it is active again)", e.Record.Status)
		}
		fmt.Fprintln(sio.out)
		return nil
	})
}

// parseSince reads an RFC 3339 time or a duration before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a positive duration", s)
	}
	return now.Add(-d), nil
}

// skip drops an endpoint's backlog: its consumer restarts from now.
func (c *cli) skip(ctx context.Context, args []string) error {
	id, err := c.idOnly("skip", args)
	if err != nil {
		return err
	}
	return c.withStore(ctx, func(ctx context.Context) error {
		backlog, err := jsstate.Backlog(ctx, c.js, c.cfg.names(), id)
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return err
		}
		now := statekv.Timestamp(time.Now())
		if _, _, err := c.store.Update(ctx, id, func(r statekv.Record) (statekv.Record, bool, error) {
			r.DeliverFrom = now
			return r, true, nil
		}); err != nil {
			return err
		}
		fmt.Fprintf(c.sio.out, "endpoint %s: skipped %d waiting events; deliveries restart from %s\n", id, backlog, now.Format(time.RFC3339))
		return nil
	})
}

func withJetStream(ctx context.Context, cfg Config, f func(context.Context, jetstream.JetStream) error) error {
	ctx, cancel := context.WithTimeout(ctx, cliTimeout)
	defer cancel()
	nc, err := cfg.connectCLI()
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("JetStream: %w", err)
	}
	return f(ctx, js)
}

// backlogs returns a function giving each endpoint's backlog: "-" where it has no
// consumer yet, "?" when the server could not be read. One consumer listing
// serves every endpoint.
func backlogs(ctx context.Context, js jetstream.JetStream, names contract.Names) func(id string) string {
	snap, err := jsstate.ReadSnapshot(ctx, js, names)
	return func(id string) string {
		st, ok := snap.Endpoints[id]
		switch {
		case ok && st.HasConsumer:
			return fmt.Sprint(st.Backlog)
		case err == nil || errors.Is(err, jetstream.ErrStreamNotFound):
			return "-"
		}
		return "?"
	}
}
