package main

import (
	"context"
	"fmt"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

var endpointRotateSecretCmd = &command{
	name: "endpoint rotate-secret", args: "<id>",
	summary: "new signing secret, printed once; the old one also signs for DOJO_WEBHOOKS_SECRET_OVERLAP",
	flags: noFlags(func(ctx context.Context, c *cli, pos []string) error {
		id, err := oneID("endpoint rotate-secret", pos)
		if err != nil {
			return err
		}
		now := time.Now()
		return c.withStore(ctx, func(ctx context.Context) error {
			admin, done := c.admin(ctx)
			defer done()
			admin.Now = func() time.Time { return now }
			_, fresh, err := admin.RotateSecret(ctx, id)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.sio.out, "endpoint %s: new signing secret (shown once): %s\n", id, fresh)
			fmt.Fprintf(c.sio.out, "deliveries are signed with the old secret too until %s\n", statekv.Timestamp(now.Add(c.cfg.SecretOverlap)).Format(time.RFC3339))
			return nil
		})
	}),
}
