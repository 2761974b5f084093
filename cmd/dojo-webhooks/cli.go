package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/attempts"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/delivery"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// cliTimeout bounds one CLI command's NATS work (the ping has its own timeout).
const cliTimeout = 30 * time.Second

// cli is what a command runs with: the configuration, the standard streams and,
// inside withStore, the bucket and JetStream.
type cli struct {
	cmd   *command      // the command running
	flags *flag.FlagSet // its flags, parsed
	cfg   Config
	sio   stdio
	store *statekv.Store      // set by withStore
	js    jetstream.JetStream // set by withStore and withJetStream
}

// synopsis is the running command's one-line usage.
func (c *cli) synopsis() string { return synopsis(c.cmd, c.flags) }

// withJetStream connects to NATS and runs f with c.js set, within cliTimeout.
func (c *cli) withJetStream(ctx context.Context, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, cliTimeout)
	defer cancel()
	nc, err := c.cfg.connectCLI()
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("JetStream: %w", err)
	}
	c.js = js
	return f(ctx)
}

// withStore connects to NATS, opens the bucket (creating it if the sidecar never
// ran) and runs f with c.store and c.js set.
func (c *cli) withStore(ctx context.Context, f func(context.Context) error) error {
	return c.withJetStream(ctx, func(ctx context.Context) error {
		kv, err := statekv.OpenBucket(ctx, c.js, c.cfg.bucket())
		if err != nil {
			return err
		}
		c.store = statekv.NewStore(kv)
		return f(ctx)
	})
}

// admin is the endpoint actions over c.store and c.js (inside withStore), with a
// delivery client configured as the sidecar's (close it with CloseIdle) and
// pings written to the attempt log when it is on (best effort: a ping is not
// failed because its record could not be written).
func (c *cli) admin(ctx context.Context) (consumer.Admin, func()) {
	client := c.client()
	mode := attempts.Mode(c.cfg.Attempts)
	return consumer.Admin{
		Store: c.store, Client: client, Request: c.requestDefaults(), Policy: c.cfg.policy(),
		JetStream: c.js, Names: c.cfg.names(), SecretOverlap: c.cfg.SecretOverlap,
		Record: func(rec attempts.Record) { _ = attempts.Write(ctx, c.js, c.cfg.names(), mode, rec) },
	}, client.CloseIdle
}

// client is a delivery client configured as the sidecar's; close it with CloseIdle.
func (c *cli) client() *delivery.Client { return delivery.New(c.cfg.deliveryOptions()) }

// requestDefaults are the headers the sidecar sends when an event sets none.
func (c *cli) requestDefaults() consumer.RequestDefaults {
	return consumer.RequestDefaults{Instance: c.cfg.SiteURL, UserAgent: c.cfg.UserAgent}
}

// oneID checks that the positional arguments of command name are one endpoint id.
func oneID(name string, pos []string) (string, error) {
	if len(pos) != 1 {
		return "", usageError{fmt.Errorf("%s: expected one endpoint id, got %d arguments", name, len(pos))}
	}
	if err := statekv.ValidateID(pos[0]); err != nil {
		return "", usageError{err}
	}
	return pos[0], nil
}

// noArgs checks that command name got no positional arguments.
func noArgs(name string, pos []string) error {
	if len(pos) > 0 {
		return usageError{fmt.Errorf("%s: unexpected argument %q", name, pos[0])}
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func dash(s any) string {
	switch v := s.(type) {
	case *string:
		if v == nil {
			return "-"
		}
		return *v
	case string:
		if v == "" {
			return "-"
		}
		return v
	}
	return fmt.Sprint(s)
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
}
