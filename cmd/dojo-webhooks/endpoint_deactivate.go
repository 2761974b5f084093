package main

import (
	"context"
	"flag"
	"fmt"
	"os/user"
)

var endpointDeactivateCmd = &command{
	name: "endpoint deactivate", args: "<id>",
	summary: "make the endpoint inactive_permanent; the note says who did it",
	flags: func(fs *flag.FlagSet) runFunc {
		note := fs.String("note", "", "why, as the record's `TEXT` note (default: who deactivated it, and how)")
		return func(ctx context.Context, c *cli, pos []string) error {
			id, err := oneID("endpoint deactivate", pos)
			if err != nil {
				return err
			}
			text := *note
			if text == "" {
				who := "unknown user"
				if u, err := user.Current(); err == nil {
					who = u.Username
				}
				text = fmt.Sprintf("Deactivated by %s with dojo-webhooks endpoint deactivate", who)
			}
			return c.withStore(ctx, func(ctx context.Context) error {
				admin, done := c.admin(ctx)
				defer done()
				e, changed, err := admin.Deactivate(ctx, id, text)
				if err != nil {
					return err
				}
				printApplied(c, e, changed)
				return nil
			})
		}
	},
}
