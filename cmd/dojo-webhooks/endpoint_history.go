package main

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"
)

var endpointHistoryCmd = &command{
	name: "endpoint history", args: "<id>",
	summary: "the state trail from the bucket's history: revision, time, status, errors, note and what wrote it",
	flags: func(fs *flag.FlagSet) runFunc {
		asJSON := fs.Bool("json", false, "print a JSON array")
		return func(ctx context.Context, c *cli, pos []string) error {
			id, err := oneID("endpoint history", pos)
			if err != nil {
				return err
			}
			return c.withStore(ctx, func(ctx context.Context) error {
				hist, err := c.store.History(ctx, id)
				if err != nil {
					return err
				}
				if *asJSON {
					return writeJSON(c.sio.out, hist)
				}
				tw := tabwriter.NewWriter(c.sio.out, 2, 8, 2, ' ', 0)
				fmt.Fprintln(tw, "REVISION\tTIME\tCAUSE\tSTATUS\tFIRST ERROR\tLAST ERROR\tNOTE")
				for _, r := range hist {
					note := r.Record.Note
					if r.Err != nil {
						note = "invalid: " + r.Err.Error()
					}
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Revision, r.Time.Format(time.RFC3339Nano), r.Cause,
						dash(string(r.Record.Status)), timeText(r.Record.FirstError), timeText(r.Record.LastError), dash(oneLine(note, 60)))
				}
				return tw.Flush()
			})
		}
	},
}

// timeText is an RFC 3339 time, or "-".
func timeText(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339)
}
