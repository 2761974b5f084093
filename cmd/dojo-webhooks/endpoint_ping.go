package main

import (
	"context"
	"fmt"
	"time"
)

var endpointPingCmd = &command{
	name: "endpoint ping", args: "<id>",
	summary: "send DefectDojo's test notification; changes nothing",
	flags: noFlags(func(ctx context.Context, c *cli, pos []string) error {
		id, err := oneID("endpoint ping", pos)
		if err != nil {
			return err
		}
		return c.withStore(ctx, func(ctx context.Context) error {
			admin, done := c.admin(ctx)
			defer done()
			res, err := admin.Ping(ctx, id)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.sio.out, "ping to %s answered %d in %s\n", id, res.StatusCode, res.Duration.Round(time.Millisecond))
			return nil
		})
	}),
}
