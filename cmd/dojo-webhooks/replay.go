package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
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
		if from, err = parseSince(since, time.Now()); err != nil {
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

// parseSince reads an RFC 3339 time or a duration before now. A time more than
// statekv.MaxClockSkew after now is refused: it would replay nothing, or, with a
// clock gone wrong, what nobody asked for.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		if t.After(now.Add(statekv.MaxClockSkew)) {
			return time.Time{}, fmt.Errorf("%s is in the future", t.UTC().Format(time.RFC3339))
		}
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a positive duration", s)
	}
	return now.Add(-d), nil
}
