package main

import (
	"context"
	"fmt"
)

var endpointRemoveCmd = &command{
	name: "endpoint remove", args: "<id>",
	summary: "delete the record (the KV history stays); the sidecar removes its consumer",
	flags: noFlags(func(ctx context.Context, c *cli, pos []string) error {
		id, err := oneID("endpoint remove", pos)
		if err != nil {
			return err
		}
		return c.withStore(ctx, func(ctx context.Context) error {
			if err := c.store.Delete(ctx, id); err != nil {
				return err
			}
			fmt.Fprintf(c.sio.out, "endpoint %s removed\n", id)
			return nil
		})
	}),
}
