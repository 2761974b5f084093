package main

import (
	"context"
	"fmt"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/consumer"
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
			client := c.client()
			defer client.CloseIdle()
			res, err := consumer.PingEndpoint(ctx, c.store, client, id, c.requestDefaults(), time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintf(c.sio.out, "ping to %s answered %d in %s\n", id, res.StatusCode, res.Duration.Round(time.Millisecond))
			return nil
		})
	}),
}
