package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/delivery"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// masked replaces secrets in everything the CLI prints.
const masked = "********"

// cliTimeout bounds one CLI command's NATS work (the ping has its own timeout).
const cliTimeout = 30 * time.Second

func endpointCommand(ctx context.Context, cfg Config, args []string, sio stdio) int {
	if len(args) == 0 {
		return exitCode(sio, usageError{errors.New("endpoint: missing subcommand (add, list, show, ping, activate, deactivate, remove)")})
	}
	sub, args := args[0], args[1:]
	cmds := map[string]func(*cli, context.Context, []string) error{
		"add": (*cli).add, "list": (*cli).list, "show": (*cli).show, "ping": (*cli).ping,
		"activate": (*cli).activate, "deactivate": (*cli).deactivate, "remove": (*cli).remove,
		"skip": (*cli).skip, "rotate-secret": (*cli).rotateSecret,
	}
	f, ok := cmds[sub]
	if !ok {
		return exitCode(sio, usageError{fmt.Errorf("endpoint: unknown subcommand %q", sub)})
	}
	c := &cli{cfg: cfg, sio: sio}
	return exitCode(sio, f(c, ctx, args))
}

// cli runs the endpoint commands against the bucket.
type cli struct {
	cfg   Config
	sio   stdio
	store *statekv.Store      // set by withStore
	js    jetstream.JetStream // set by withStore
}

// withStore connects to NATS, opens the bucket (creating it if the sidecar never
// ran) and runs f with c.store and c.js set.
func (c *cli) withStore(ctx context.Context, f func(context.Context) error) error {
	return withJetStream(ctx, c.cfg, func(ctx context.Context, js jetstream.JetStream) error {
		kv, err := statekv.OpenBucket(ctx, js, c.cfg.bucket())
		if err != nil {
			return err
		}
		c.store, c.js = statekv.NewStore(kv), js
		return f(ctx)
	})
}

func oneID(cmd string, pos []string) (string, error) {
	if len(pos) != 1 {
		return "", usageError{fmt.Errorf("endpoint %s: expected one endpoint id, got %d arguments", cmd, len(pos))}
	}
	if err := statekv.ValidateID(pos[0]); err != nil {
		return "", usageError{err}
	}
	return pos[0], nil
}

func (c *cli) add(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("endpoint add", flag.ContinueOnError)
	fs.SetOutput(c.sio.err)
	name := fs.String("name", "", "display name, unique (default: the id)")
	rawURL := fs.String("url", "", "http or https URL (required)")
	headerName := fs.String("header-name", "", "extra request header name, e.g. Authorization")
	headerValue := fs.String("header-value", "", "its value; - reads it from standard input (keeps it out of shell history)")
	owner := fs.String("owner", "", "DefectDojo username: personal notifications of that user only (default: system notifications)")
	events := fs.String("events", "", "comma-separated event filter (default: all events)")
	secret := fs.String("secret", "", "Standard Webhooks signing secret: auto generates one (printed once), - reads one from standard input")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	id, err := oneID("add", pos)
	if err != nil {
		return err
	}
	rec := statekv.Record{ID: id, Name: *name, URL: *rawURL, HeaderName: *headerName, Owner: *owner, Status: statekv.StatusActive}
	if rec.Name == "" {
		rec.Name = id
	}
	if *headerValue == "-" {
		b, err := io.ReadAll(io.LimitReader(c.sio.in, statekv.MaxHeaderLength+1))
		if err != nil {
			return fmt.Errorf("read header value from standard input: %w", err)
		}
		rec.HeaderValue = strings.TrimRight(string(b), "\r\n")
	} else {
		rec.HeaderValue = *headerValue
	}
	switch *secret {
	case "":
	case "auto":
		if rec.Secret, err = delivery.GenerateSecret(); err != nil {
			return err
		}
	case "-":
		if *headerValue == "-" {
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
	for _, e := range strings.Split(*events, ",") {
		if e = strings.TrimSpace(e); e != "" {
			rec.Events = append(rec.Events, e)
		}
	}
	rec.CreatedAt = statekv.Timestamp(time.Now())
	if err := rec.Validate(); err != nil {
		return usageError{err}
	}
	return c.withStore(ctx, func(ctx context.Context) error {
		if _, err := c.store.Get(ctx, id); err == nil || errors.Is(err, statekv.ErrInvalidRecord) {
			return fmt.Errorf("%w: %s (remove it first, or use another id)", statekv.ErrExists, id)
		}
		entries, _, err := c.store.List(ctx)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Record.Name == rec.Name {
				return fmt.Errorf("name %q is already used by endpoint %s", rec.Name, e.Record.ID)
			}
		}
		res := c.sendPing(ctx, rec)
		if res.Class != delivery.Success {
			return fmt.Errorf("ping to %s failed (%s: %s); endpoint not stored", rec.URL, res.Class, res.Note)
		}
		rec.CreatedAt = statekv.Timestamp(time.Now())
		if _, err := c.store.Create(ctx, rec); err != nil {
			return err
		}
		fmt.Fprintf(c.sio.out, "endpoint %s added: ping answered %d in %s; status active\n", id, res.StatusCode, res.Duration.Round(time.Millisecond))
		if *secret == "auto" {
			fmt.Fprintf(c.sio.out, "signing secret (shown once; give it to the receiver): %s\n", rec.Secret)
		}
		return nil
	})
}

// sendPing sends DefectDojo's test notification to the record's URL.
func (c *cli) sendPing(ctx context.Context, rec statekv.Record) delivery.Result {
	client := delivery.New(c.cfg.deliveryOptions())
	defer client.CloseIdle()
	return consumer.Ping(ctx, client, rec, consumer.RequestDefaults{Instance: c.cfg.SiteURL, UserAgent: c.cfg.UserAgent}, time.Now())
}

func (c *cli) list(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("endpoint list", flag.ContinueOnError)
	fs.SetOutput(c.sio.err)
	status := fs.String("status", "", "only endpoints in this status (active, active_tmp, inactive_tmp, inactive_permanent, invalid)")
	owner := fs.String("owner", "", "only endpoints of this owner")
	asJSON := fs.Bool("json", false, "print a JSON array")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{fmt.Errorf("endpoint list: unexpected argument %q", pos[0])}
	}
	if *status != "" && *status != "invalid" && !statekv.Status(*status).Valid() {
		return usageError{fmt.Errorf("endpoint list: --status %q is not a status", *status)}
	}
	return c.withStore(ctx, func(ctx context.Context) error {
		entries, invalid, err := c.store.List(ctx)
		if err != nil {
			return err
		}
		var rows []endpointJSON
		for _, e := range entries {
			if (*status == "" || string(e.Record.Status) == *status) && (*owner == "" || e.Record.Owner == *owner) {
				rows = append(rows, toJSON(e.Record, e.Revision))
			}
		}
		for _, inv := range invalid {
			if (*status == "" || *status == "invalid") && *owner == "" {
				rows = append(rows, endpointJSON{ID: inv.ID, Status: "invalid", Note: inv.Err.Error(), Revision: inv.Revision})
			}
		}
		backlog := backlogs(ctx, c.js, c.cfg.names())
		for i := range rows {
			rows[i].Backlog = backlog(rows[i].ID)
		}
		if *asJSON {
			if rows == nil {
				rows = []endpointJSON{}
			}
			return writeJSON(c.sio.out, rows)
		}
		tw := tabwriter.NewWriter(c.sio.out, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tBACKLOG\tFIRST ERROR\tLAST ERROR\tNOTE")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Name, r.Status, dash(r.Backlog), dash(r.FirstError), dash(r.LastError), dash(oneLine(r.Note, 80)))
		}
		return tw.Flush()
	})
}

func (c *cli) show(ctx context.Context, args []string) error {
	id, err := c.idOnly("show", args)
	if err != nil {
		return err
	}
	return c.withStore(ctx, func(ctx context.Context) error {
		e, err := c.store.Get(ctx, id)
		if err != nil {
			return err
		}
		return writeJSON(c.sio.out, toJSON(e.Record, e.Revision))
	})
}

func (c *cli) ping(ctx context.Context, args []string) error {
	id, err := c.idOnly("ping", args)
	if err != nil {
		return err
	}
	return c.withStore(ctx, func(ctx context.Context) error {
		res, err := c.pingStored(ctx, id, "")
		if err != nil {
			return err
		}
		fmt.Fprintf(c.sio.out, "ping to %s answered %d in %s\n", id, res.StatusCode, res.Duration.Round(time.Millisecond))
		return nil
	})
}

func (c *cli) activate(ctx context.Context, args []string) error {
	id, err := c.idOnly("activate", args)
	if err != nil {
		return err
	}
	return c.withStore(ctx, func(ctx context.Context) error {
		if _, err := c.pingStored(ctx, id, "; endpoint left as it was"); err != nil {
			return err
		}
		return c.applyUser(ctx, id, statekv.Event{Input: statekv.UserActivate})
	})
}

// pingStored pings a stored endpoint; a failed ping is an error ending with suffix.
func (c *cli) pingStored(ctx context.Context, id, suffix string) (delivery.Result, error) {
	e, err := c.store.Get(ctx, id)
	if err != nil {
		return delivery.Result{}, err
	}
	res := c.sendPing(ctx, e.Record)
	if res.Class != delivery.Success {
		return res, fmt.Errorf("ping to %s failed (%s: %s)%s", e.Record.URL, res.Class, res.Note, suffix)
	}
	return res, nil
}

func (c *cli) deactivate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("endpoint deactivate", flag.ContinueOnError)
	fs.SetOutput(c.sio.err)
	note := fs.String("note", "", "why (default: who deactivated it, and how)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	id, err := oneID("deactivate", pos)
	if err != nil {
		return err
	}
	if *note == "" {
		who := "unknown user"
		if u, err := user.Current(); err == nil {
			who = u.Username
		}
		*note = fmt.Sprintf("Deactivated by %s with dojo-webhooks endpoint deactivate", who)
	}
	return c.withStore(ctx, func(ctx context.Context) error {
		return c.applyUser(ctx, id, statekv.Event{Input: statekv.UserDeactivate, Note: *note})
	})
}

func (c *cli) applyUser(ctx context.Context, id string, ev statekv.Event) error {
	e, changed, err := c.store.Apply(ctx, id, ev, time.Now, c.cfg.policy())
	if err != nil {
		return err
	}
	if !changed {
		fmt.Fprintf(c.sio.out, "endpoint %s already %s\n", id, e.Record.Status)
		return nil
	}
	fmt.Fprintf(c.sio.out, "endpoint %s now %s\n", id, e.Record.Status)
	return nil
}

func (c *cli) remove(ctx context.Context, args []string) error {
	id, err := c.idOnly("remove", args)
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
}

func (c *cli) idOnly(cmd string, args []string) (string, error) {
	fs := flag.NewFlagSet("endpoint "+cmd, flag.ContinueOnError)
	fs.SetOutput(c.sio.err)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return "", err
	}
	return oneID(cmd, pos)
}

// rotateSecret gives the endpoint a new signing secret, printed once; the old one
// keeps signing too for DOJO_WEBHOOKS_SECRET_OVERLAP, so receivers can switch.
func (c *cli) rotateSecret(ctx context.Context, args []string) error {
	id, err := c.idOnly("rotate-secret", args)
	if err != nil {
		return err
	}
	fresh, err := delivery.GenerateSecret()
	if err != nil {
		return err
	}
	until := statekv.Timestamp(time.Now().Add(c.cfg.SecretOverlap))
	return c.withStore(ctx, func(ctx context.Context) error {
		_, _, err := c.store.Update(ctx, id, func(r statekv.Record) (statekv.Record, bool, error) {
			if r.Secret != "" {
				r.PreviousSecret, r.PreviousSecretUntil = r.Secret, until
			}
			r.Secret = fresh
			return r, true, nil
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(c.sio.out, "endpoint %s: new signing secret (shown once): %s\n", id, fresh)
		fmt.Fprintf(c.sio.out, "deliveries are signed with the old secret too until %s\n", until.Format(time.RFC3339))
		return nil
	})
}

// endpointJSON is what list --json and show print: the record with its secret masked.
type endpointJSON struct {
	ID          string   `json:"id"`
	Name        string   `json:"name,omitempty"`
	URL         string   `json:"url,omitempty"`
	HeaderName  *string  `json:"header_name"`
	HeaderValue *string  `json:"header_value"`
	Owner       *string  `json:"owner"`
	Events      []string `json:"events"`
	Status      string   `json:"status"`
	FirstError  *string  `json:"first_error"`
	LastError   *string  `json:"last_error"`
	Note        string   `json:"note"`
	CreatedAt   *string  `json:"created_at"`
	Secret      *string  `json:"secret"`
	PrevSecret  *string  `json:"previous_secret"`
	PrevUntil   *string  `json:"previous_secret_until"`
	RetryAfter  *string  `json:"retry_after"`
	Revision    uint64   `json:"revision"`
	Backlog     string   `json:"backlog,omitempty"`
}

func toJSON(r statekv.Record, rev uint64) endpointJSON {
	str := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	ts := func(t time.Time) *string {
		if t.IsZero() {
			return nil
		}
		return str(t.UTC().Format(time.RFC3339Nano))
	}
	out := endpointJSON{ID: r.ID, Name: r.Name, URL: r.URL, HeaderName: str(r.HeaderName), Owner: str(r.Owner),
		Events: r.Events, Status: string(r.Status), FirstError: ts(r.FirstError), LastError: ts(r.LastError),
		Note: r.Note, CreatedAt: ts(r.CreatedAt), Revision: rev}
	if out.Events == nil {
		out.Events = []string{}
	}
	if r.HeaderValue != "" {
		out.HeaderValue = str(masked)
	}
	if r.Secret != "" {
		out.Secret = str(masked)
	}
	if r.PreviousSecret != "" {
		out.PrevSecret, out.PrevUntil = str(masked), ts(r.PreviousSecretUntil)
	}
	out.RetryAfter = ts(r.RetryAfter)
	return out
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
