package main

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"

	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

var endpointListCmd = &command{
	name:    "endpoint list",
	summary: "table of every endpoint: status, backlog, errors, note; --status invalid lists records that do not parse",
	flags: func(fs *flag.FlagSet) runFunc {
		status := fs.String("status", "", "only endpoints in this `STATUS` (active, active_tmp, inactive_tmp, inactive_permanent, invalid)")
		owner := fs.String("owner", "", "only endpoints of this `USER`")
		asJSON := fs.Bool("json", false, "print a JSON array")
		return func(ctx context.Context, c *cli, pos []string) error {
			return listEndpoints(ctx, c, pos, *status, *owner, *asJSON)
		}
	},
}

func listEndpoints(ctx context.Context, c *cli, pos []string, status, owner string, asJSON bool) error {
	if err := noArgs("endpoint list", pos); err != nil {
		return err
	}
	if status != "" && status != "invalid" && !statekv.Status(status).Valid() {
		return usageError{fmt.Errorf("endpoint list: --status %q is not a status", status)}
	}
	return c.withStore(ctx, func(ctx context.Context) error {
		entries, invalid, err := c.store.List(ctx)
		if err != nil {
			return err
		}
		var rows []endpointJSON
		for _, e := range entries {
			if (status == "" || string(e.Record.Status) == status) && (owner == "" || e.Record.Owner == owner) {
				rows = append(rows, toJSON(e.Record, e.Revision))
			}
		}
		for _, inv := range invalid {
			if (status == "" || status == "invalid") && owner == "" {
				rows = append(rows, endpointJSON{ID: inv.ID, Status: "invalid", Note: inv.Err.Error(), Revision: inv.Revision})
			}
		}
		backlog := backlogs(ctx, c.js, c.cfg.names())
		backlogText := make([]string, len(rows))
		for i := range rows {
			rows[i].Backlog, rows[i].Dropped, backlogText[i] = backlog(rows[i].ID)
		}
		if asJSON {
			if rows == nil {
				rows = []endpointJSON{}
			}
			return writeJSON(c.sio.out, rows)
		}
		tw := tabwriter.NewWriter(c.sio.out, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tBACKLOG\tDROPPED\tFIRST ERROR\tLAST ERROR\tNOTE")
		for i, r := range rows {
			dropped := "-"
			if r.Dropped != nil {
				dropped = fmt.Sprint(*r.Dropped)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Name, r.Status, backlogText[i], dropped, dash(r.FirstError), dash(r.LastError), dash(oneLine(r.Note, 80)))
		}
		return tw.Flush()
	})
}
