package main

import (
	"context"
)

var endpointShowCmd = &command{
	name: "endpoint show", args: "<id>",
	summary: "the record as JSON, with its KV revision and backlog; secrets masked",
	flags: noFlags(func(ctx context.Context, c *cli, pos []string) error {
		id, err := oneID("endpoint show", pos)
		if err != nil {
			return err
		}
		return c.withStore(ctx, func(ctx context.Context) error {
			e, err := c.store.Get(ctx, id)
			if err != nil {
				return err
			}
			out := toJSON(e.Record, e.Revision)
			out.Backlog, out.Dropped, _ = backlogs(ctx, c.js, c.cfg.names())(id)
			return writeJSON(c.sio.out, out)
		})
	}),
}
