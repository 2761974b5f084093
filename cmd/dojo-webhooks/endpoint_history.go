package main

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/statekv"
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
					out := make([]historyJSON, 0, len(hist))
					for _, r := range hist {
						out = append(out, historyOf(r))
					}
					return writeJSON(c.sio.out, out)
				}
				tw := tabwriter.NewWriter(c.sio.out, 2, 8, 2, ' ', 0)
				fmt.Fprintln(tw, "REVISION\tTIME\tCAUSE\tSTATUS\tFIRST ERROR\tLAST ERROR\tNOTE")
				for _, r := range hist {
					h := historyOf(r)
					note := h.Note
					if h.Error != "" {
						note = "invalid: " + h.Error
					}
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", h.Revision, h.Time.Format(time.RFC3339Nano), h.Cause,
						dash(h.Status), timeText(h.FirstError), timeText(h.LastError), dash(oneLine(note, 60)))
				}
				return tw.Flush()
			})
		}
	},
}

// historyJSON is one revision as `endpoint history --json` prints it (no secret).
type historyJSON struct {
	Revision   uint64     `json:"revision"`
	Time       time.Time  `json:"time"`
	Cause      string     `json:"cause"`
	Status     string     `json:"status"`
	FirstError *time.Time `json:"first_error"`
	LastError  *time.Time `json:"last_error"`
	Note       string     `json:"note"`
	Error      string     `json:"error,omitempty"`
}

func historyOf(r statekv.Revision) historyJSON {
	h := historyJSON{Revision: r.Revision, Time: r.Time, Cause: r.Cause, Status: string(r.Record.Status), Note: r.Record.Note,
		FirstError: timeOrNil(r.Record.FirstError), LastError: timeOrNil(r.Record.LastError)}
	if r.Err != nil {
		h.Error = r.Err.Error()
	}
	return h
}

// timeText is an RFC 3339 time, or "-".
func timeText(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.Format(time.RFC3339)
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
