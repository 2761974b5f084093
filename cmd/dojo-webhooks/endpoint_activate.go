package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

var endpointActivateCmd = &command{
	name: "endpoint activate", args: "<id>",
	summary: "ping; on a 2xx make the endpoint active (errors and note cleared)",
	flags: noFlags(func(ctx context.Context, c *cli, pos []string) error {
		id, err := oneID("endpoint activate", pos)
		if err != nil {
			return err
		}
		return c.withStore(ctx, func(ctx context.Context) error {
			admin, done := c.admin(ctx)
			defer done()
			e, changed, err := admin.Activate(ctx, id)
			if errors.Is(err, consumer.ErrPingFailed) {
				return fmt.Errorf("%w; endpoint left as it was", err)
			}
			if err != nil {
				return err
			}
			printApplied(c, e, changed)
			return nil
		})
	}),
}

// printApplied says what a user transition did.
func printApplied(c *cli, e statekv.Entry, changed bool) {
	if !changed {
		fmt.Fprintf(c.sio.out, "endpoint %s already %s\n", e.Record.ID, e.Record.Status)
		return
	}
	fmt.Fprintf(c.sio.out, "endpoint %s now %s\n", e.Record.ID, e.Record.Status)
}
