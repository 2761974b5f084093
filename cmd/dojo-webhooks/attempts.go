package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/attempts"
	"github.com/dojo-webhooks/dojo-webhooks/consumer"
)

var attemptsCmd = &command{
	name: "attempts", args: "<id> | --id WEBHOOK-ID",
	summary: "the attempt log, newest first: an endpoint's HTTP attempts, or with --id every endpoint's attempts of one event",
	flags: func(fs *flag.FlagSet) runFunc {
		webhookID := fs.String("id", "", "every endpoint's attempts of the event with this `WEBHOOK-ID` (instead of <id>)")
		failed := fs.Bool("failed", false, "only failed attempts")
		since := fs.String("since", "", "only attempts since `TIME|DURATION`: an RFC 3339 time, or how long ago (e.g. 2h)")
		event := fs.String("event", "", "only attempts of this `EVENT`")
		limit := fs.Int("limit", attempts.DefaultLimit, fmt.Sprintf("at most `N` attempts, 1 to %d", attempts.MaxLimit))
		asJSON := fs.Bool("json", false, "print a JSON array")
		return func(ctx context.Context, c *cli, pos []string) error {
			q := attempts.Query{Event: *event, Limit: *limit}
			if *failed {
				q.Outcome = "failed"
			}
			if *since != "" {
				t, err := consumer.ParseSince(*since, time.Now())
				if err != nil {
					return usageError{fmt.Errorf("attempts --since: %w", err)}
				}
				q.Since = t
			}
			switch {
			case *webhookID != "" && len(pos) > 0:
				return usageError{errors.New("attempts: give an endpoint id or --id, not both")}
			case *webhookID != "":
				return c.withJetStream(ctx, func(ctx context.Context) error {
					list, err := attempts.ForWebhookID(ctx, c.js, c.cfg.names(), *webhookID)
					if err != nil {
						return err
					}
					return printAttempts(c, list, *asJSON, true)
				})
			}
			id, err := oneID("attempts", pos)
			if err != nil {
				return err
			}
			q.Endpoint = id
			if err := q.Validate(); err != nil {
				return usageError{fmt.Errorf("attempts: %w", err)}
			}
			return c.withJetStream(ctx, func(ctx context.Context) error {
				page, err := attempts.List(ctx, c.js, c.cfg.names(), q)
				if err != nil {
					return err
				}
				return printAttempts(c, page.Items, *asJSON, false)
			})
		}
	},
}

// printAttempts prints attempts as a table, or as JSON.
func printAttempts(c *cli, list []attempts.Record, asJSON, withEndpoint bool) error {
	if asJSON {
		if list == nil {
			list = []attempts.Record{}
		}
		return writeJSON(c.sio.out, list)
	}
	if len(list) == 0 {
		fmt.Fprintln(c.sio.out, "no attempts recorded")
		return nil
	}
	tw := tabwriter.NewWriter(c.sio.out, 2, 8, 2, ' ', 0)
	head := "TIME\tEVENT\tWEBHOOK-ID\tATTEMPT\tSTATUS\tOUTCOME\tDURATION\tSTATE\tNOTE"
	if withEndpoint {
		head = "ENDPOINT\t" + head
	}
	fmt.Fprintln(tw, head)
	for _, a := range list {
		row := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", a.Start.Format(time.RFC3339Nano), a.Event,
			oneLine(a.WebhookID, 40), numText(a.Attempt), numText(uint64(a.Status)), a.Outcome,
			a.Duration().Round(time.Microsecond), stateChange(a.StateBefore, a.StateAfter), dash(oneLine(a.Note, 60)))
		if withEndpoint {
			row = a.Endpoint + "\t" + row
		}
		fmt.Fprintln(tw, row)
	}
	return tw.Flush()
}

// stateChange shows the endpoint's state around an attempt: "active", or "active→inactive_tmp".
func stateChange(before, after string) string {
	if before == after || after == "" {
		return dash(before)
	}
	return before + "→" + after
}

// numText is a number, or "-" for 0 (none).
func numText(n uint64) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprint(n)
}
