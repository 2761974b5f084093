// Command dojo-webhooks delivers DefectDojo notification webhooks through NATS
// JetStream: `serve` runs the sidecar (on an embedded NATS server unless NATS_URL
// is set), `endpoint …` manages the endpoints stored in the KV bucket.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/rs/zerolog"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], environMap(os.Environ()), os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func environMap(kv []string) map[string]string {
	m := make(map[string]string, len(kv))
	for _, e := range kv {
		if k, v, ok := strings.Cut(e, "="); ok {
			m[k] = v
		}
	}
	return m
}

// io bundles a command's standard streams.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

const usage = `dojo-webhooks: DefectDojo notification webhooks delivered through NATS JetStream.

Usage:
  dojo-webhooks [serve]                  run the sidecar (embedded NATS unless NATS_URL is set)
  dojo-webhooks endpoint add <id> --url URL [--name N] [--header-name H --header-value V|-]
                                         [--owner USER] [--events e1,e2] [--secret auto|-]
  dojo-webhooks endpoint list [--status S] [--owner U] [--json]
  dojo-webhooks endpoint show <id>
  dojo-webhooks endpoint ping <id>
  dojo-webhooks endpoint activate <id>
  dojo-webhooks endpoint deactivate <id> [--note TEXT]
  dojo-webhooks endpoint remove <id>
  dojo-webhooks endpoint rotate-secret <id>
                                         new signing secret; the old one also signs for the overlap
  dojo-webhooks endpoint skip <id>       drop the endpoint's backlog: deliveries restart from now
  dojo-webhooks publish <event> [file|-] [--recipient USER] [--msg-id ID] [--instance URL]
  dojo-webhooks replay <id> [--since TIME|DURATION]
                                         send the endpoint its dead letters again, or every
                                         event the stream holds since then
  dojo-webhooks status [--json]          NATS, streams and every endpoint's state, backlog, pause, dead letters
  dojo-webhooks healthcheck              exit 0 when the local sidecar's /healthz answers (the image's HEALTHCHECK)
  dojo-webhooks version
  dojo-webhooks help

Exit codes: 0 ok, 1 failure (one line on stderr says why), 2 bad usage or configuration.

Configuration (environment):
`

// run is main without the process: tests call it directly.
func run(ctx context.Context, args []string, environ map[string]string, in io.Reader, out, errw io.Writer) int {
	sio := stdio{in: in, out: out, err: errw}
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "help", "-h", "--help", "-help":
		fmt.Fprint(out, usage)
		printEnvHelp(out)
		return 0
	case "version", "--version":
		fmt.Fprintln(out, "dojo-webhooks", version)
		return 0
	}
	cfg, err := loadConfig(environ)
	if err != nil {
		fmt.Fprintln(errw, "dojo-webhooks:", err)
		return 2
	}
	switch cmd {
	case "serve":
		if len(args) > 0 {
			fmt.Fprintf(errw, "dojo-webhooks: serve takes no arguments (got %q); configure it with environment variables, see `dojo-webhooks help`\n", args[0])
			return 2
		}
		log := newLogger(cfg, errw)
		if err := serve(ctx, cfg, log); err != nil {
			log.Error().Err(err).Msg("dojo-webhooks stopped")
			return 1
		}
		return 0
	case "endpoint":
		return endpointCommand(ctx, cfg, args, sio)
	case "publish":
		return exitCode(sio, publishCommand(ctx, cfg, args, sio))
	case "replay":
		return exitCode(sio, replayCommand(ctx, cfg, args, sio))
	case "healthcheck":
		return exitCode(sio, healthcheckCommand(ctx, cfg))
	case "status":
		return exitCode(sio, statusCommand(ctx, cfg, args, sio))
	default:
		fmt.Fprintf(errw, "dojo-webhooks: unknown command %q; see `dojo-webhooks help`\n", cmd)
		return 2
	}
}

func newLogger(cfg Config, w io.Writer) zerolog.Logger {
	level, _ := zerolog.ParseLevel(cfg.LogLevel)
	if cfg.LogFormat == "console" {
		w = zerolog.ConsoleWriter{Out: w}
	}
	return zerolog.New(w).Level(level).With().Timestamp().Logger()
}

// usageError marks errors that deserve exit code 2.
type usageError struct{ error }

// exitCode prints err as one line and returns the exit code for it.
func exitCode(sio stdio, err error) int {
	if err == nil {
		return 0
	}
	fmt.Fprintln(sio.err, "dojo-webhooks:", err)
	var ue usageError
	if errors.As(err, &ue) || errors.Is(err, flag.ErrHelp) {
		return 2
	}
	return 1
}

// parseArgs parses flags that may come before or after positional arguments.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError{err}
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
