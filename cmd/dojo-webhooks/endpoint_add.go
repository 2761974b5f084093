package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/delivery"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

var endpointAddCmd = &command{
	name: "endpoint add", args: "<id>",
	summary: "ping the URL; store the endpoint as active only if it answered 2xx",
	flags: func(fs *flag.FlagSet) runFunc {
		var o addOptions
		fs.StringVar(&o.name, "name", "", "display `NAME`, unique (default: the id)")
		fs.StringVar(&o.url, "url", "", "http or https `URL` (required)")
		fs.StringVar(&o.headerName, "header-name", "", "extra request `HEADER` name, e.g. Authorization (needs --header-value)")
		fs.StringVar(&o.headerValue, "header-value", "", "the header's value, `VALUE|-`: - reads it from standard input (keeps it out of shell history)")
		fs.StringVar(&o.owner, "owner", "", "only personal notifications of this DefectDojo `USER` (default: system notifications)")
		fs.StringVar(&o.events, "events", "", "only these events, comma-separated: `e1,e2` (default: all events)")
		fs.StringVar(&o.secret, "secret", "", "Standard Webhooks signing secret, `auto|-`: auto generates one (printed once), - reads one from standard input")
		return o.run
	},
}

// addOptions are the flags of endpoint add.
type addOptions struct {
	name, url, headerName, headerValue, owner, events, secret string
}

func (o *addOptions) run(ctx context.Context, c *cli, pos []string) error {
	id, err := oneID("endpoint add", pos)
	if err != nil {
		return err
	}
	rec := statekv.Record{ID: id, Name: o.name, URL: o.url, HeaderName: o.headerName, Owner: o.owner, Status: statekv.StatusActive}
	if rec.Name == "" {
		rec.Name = id
	}
	if o.headerName != "" && o.headerValue == "" {
		return usageError{errors.New("endpoint add: --header-name needs --header-value (- reads it from standard input)")}
	}
	if o.headerValue == "-" {
		b, err := io.ReadAll(io.LimitReader(c.sio.in, statekv.MaxHeaderLength+1))
		if err != nil {
			return fmt.Errorf("read header value from standard input: %w", err)
		}
		rec.HeaderValue = strings.TrimRight(string(b), "\r\n")
		if rec.HeaderValue == "" && o.headerName != "" {
			return usageError{errors.New("endpoint add: --header-name needs --header-value, and standard input was empty")}
		}
	} else {
		rec.HeaderValue = o.headerValue
	}
	switch o.secret {
	case "":
	case "auto":
		if rec.Secret, err = delivery.GenerateSecret(); err != nil {
			return err
		}
	case "-":
		if o.headerValue == "-" {
			return usageError{errors.New("endpoint add: --secret - and --header-value - cannot both read standard input")}
		}
		b, err := io.ReadAll(io.LimitReader(c.sio.in, 1024))
		if err != nil {
			return fmt.Errorf("read secret from standard input: %w", err)
		}
		rec.Secret = strings.TrimSpace(string(b))
	default:
		return usageError{errors.New("endpoint add: --secret takes auto or - (a secret on the command line would be in the shell history)")}
	}
	for _, e := range strings.Split(o.events, ",") {
		if e = strings.TrimSpace(e); e != "" {
			rec.Events = append(rec.Events, e)
		}
	}
	if err := rec.Validate(); err != nil {
		return usageError{err}
	}
	return c.withStore(ctx, func(ctx context.Context) error {
		admin, done := c.admin(ctx)
		defer done()
		_, res, err := admin.Add(ctx, rec)
		if errors.Is(err, consumer.ErrPingFailed) {
			return fmt.Errorf("%w; endpoint not stored", err)
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(c.sio.out, "endpoint %s added: ping answered %d in %s; status active\n", id, res.StatusCode, res.Duration.Round(time.Millisecond))
		if o.secret == "auto" {
			fmt.Fprintf(c.sio.out, "signing secret (shown once; give it to the receiver): %s\n", rec.Secret)
		}
		return nil
	})
}
