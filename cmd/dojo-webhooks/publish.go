package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/nats-io/nats.go"

	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// MaxEventBytes bounds an event body read by `publish` (NATS's default max payload is 1 MiB).
const MaxEventBytes = 1 << 20

var publishCmd = &command{
	name: "publish", args: "<event> [file|-]",
	summary: "publish a JSON document (a file, or standard input) as an event; wait until JetStream stored it",
	flags: func(fs *flag.FlagSet) runFunc {
		var o publishOptions
		fs.StringVar(&o.recipient, "recipient", "", "DefectDojo `USER`: a personal notification for that user's endpoints only")
		fs.StringVar(&o.msgID, "msg-id", "", "Nats-Msg-Id `ID`: JetStream drops a repeat within the dedup window; also the webhook-id")
		fs.StringVar(&o.instance, "instance", "", "X-DefectDojo-Instance `URL` to send (default DD_SITE_URL)")
		return o.run
	},
}

// publishOptions are the flags of publish.
type publishOptions struct {
	recipient, msgID, instance string
}

func (o *publishOptions) run(ctx context.Context, c *cli, pos []string) error {
	if len(pos) < 1 || len(pos) > 2 {
		return usageError{fmt.Errorf("publish: usage: %s", c.synopsis())}
	}
	event := pos[0]
	if err := statekv.ValidateEvent(event); err != nil {
		return usageError{fmt.Errorf("publish: %w", err)}
	}
	var r io.Reader = c.sio.in
	src := "standard input"
	if len(pos) == 2 && pos[1] != "-" {
		f, err := os.Open(pos[1])
		if err != nil {
			return fmt.Errorf("publish: %w", err)
		}
		defer f.Close()
		r, src = f, pos[1]
	}
	body, err := io.ReadAll(io.LimitReader(r, MaxEventBytes+1))
	if err != nil {
		return fmt.Errorf("publish: read %s: %w", src, err)
	}
	if len(body) > MaxEventBytes {
		return usageError{fmt.Errorf("publish: %s is larger than %d bytes", src, MaxEventBytes)}
	}
	if !json.Valid(body) {
		return usageError{fmt.Errorf("publish: %s is not a JSON document (DefectDojo webhooks carry JSON)", src)}
	}
	h := nats.Header{}
	if o.recipient != "" {
		h.Set(contract.HeaderRecipient, o.recipient)
	}
	if o.msgID != "" {
		h.Set(nats.MsgIdHdr, o.msgID)
	}
	if o.instance != "" {
		h.Set(contract.HeaderInstance, o.instance)
	}
	return c.withJetStream(ctx, func(ctx context.Context) error {
		if err := consumer.OpenStreams(ctx, c.js, c.cfg.streams()); err != nil {
			return err
		}
		ack, err := c.js.PublishMsg(ctx, &nats.Msg{Subject: c.cfg.names().EventSubject(event), Header: h, Data: body})
		if err != nil {
			return fmt.Errorf("publish %s: %w", event, err)
		}
		dup := ""
		if ack.Duplicate {
			dup = " (duplicate of an earlier publish with the same --msg-id: not stored again)"
		}
		fmt.Fprintf(c.sio.out, "published %s: stream %s sequence %d%s\n", event, ack.Stream, ack.Sequence, dup)
		return nil
	})
}
