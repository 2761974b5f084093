package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/consumer"
)

var replayCmd = &command{
	name: "replay", args: "<id>",
	summary: "send the endpoint its dead letters again, or with --since every event the stream holds since then",
	flags: func(fs *flag.FlagSet) runFunc {
		since := fs.String("since", "", "replay every event the events stream holds since `TIME|DURATION`: an RFC 3339 time, or how long ago (e.g. 2h)")
		return func(ctx context.Context, c *cli, pos []string) error {
			return replay(ctx, c, pos, *since)
		}
	},
}

func replay(ctx context.Context, c *cli, pos []string, since string) error {
	id, err := oneID("replay", pos)
	if err != nil {
		return err
	}
	var from time.Time
	if since != "" {
		if from, err = consumer.ParseSince(since, time.Now()); err != nil {
			return usageError{fmt.Errorf("replay --since: %w", err)}
		}
	}
	return c.withStore(ctx, func(ctx context.Context) error {
		e, err := c.store.Get(ctx, id)
		if err != nil {
			return err
		}
		if err := consumer.OpenStreams(ctx, c.js, c.cfg.streams()); err != nil {
			return err
		}
		what := "dead letters"
		if !from.IsZero() {
			what = "events since " + from.UTC().Format(time.RFC3339)
		}
		admin, done := c.admin(ctx)
		defer done()
		n, err := admin.Replay(ctx, id, from)
		if err != nil {
			return fmt.Errorf("replay %s: %d sent before: %w", id, n, err)
		}
		fmt.Fprintf(c.sio.out, "replayed %d %s to endpoint %s", n, what, id)
		if !e.Record.Status.Deliverable() {
			fmt.Fprintf(c.sio.out, " (it is %s: they are delivered once it is active again)", e.Record.Status)
		}
		fmt.Fprintln(c.sio.out)
		return nil
	})
}
