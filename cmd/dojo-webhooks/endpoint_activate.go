package main

import (
	"context"
	"errors"
	"fmt"
	"time"

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
			client := c.client()
			defer client.CloseIdle()
			e, changed, err := consumer.Activate(ctx, c.store, client, id, c.requestDefaults(), time.Now, c.cfg.policy())
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
