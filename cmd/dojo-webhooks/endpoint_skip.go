package main

import (
	"context"
	"fmt"
	"time"
)

var endpointSkipCmd = &command{
	name: "endpoint skip", args: "<id>",
	summary: "drop the endpoint's backlog: deliveries restart from now",
	flags: noFlags(func(ctx context.Context, c *cli, pos []string) error {
		id, err := oneID("endpoint skip", pos)
		if err != nil {
			return err
		}
		return c.withStore(ctx, func(ctx context.Context) error {
			admin, done := c.admin(ctx)
			defer done()
			skipped, from, err := admin.Skip(ctx, id)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.sio.out, "endpoint %s: skipped %d waiting events; deliveries restart from %s\n", id, skipped, from.Format(time.RFC3339))
			return nil
		})
	}),
}
