// Command dojo-webhooks delivers DefectDojo notification webhooks through NATS
// JetStream: `serve` runs the sidecar (on an embedded NATS server unless NATS_URL
// is set), `endpoint …` manages the endpoints stored in the KV bucket.
//
// Each command is one file and one registration in commands (commands.go); the
// usage texts are generated from the registrations.
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

// stdio bundles a command's standard streams.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

// run is main without the process: tests call it directly.
func run(ctx context.Context, args []string, environ map[string]string, in io.Reader, out, errw io.Writer) int {
	sio := stdio{in: in, out: out, err: errw}
	if len(args) == 0 {
		args = []string{"serve"}
	}
	cmd, rest := lookup(args)
	if cmd == nil {
		if group := args[0]; isGroup(group) {
			fmt.Fprintf(errw, "dojo-webhooks: %s: ", group)
			if len(args) == 1 {
				fmt.Fprintln(errw, "missing subcommand")
			} else {
				fmt.Fprintf(errw, "unknown subcommand %q\n", args[1])
			}
			writeGroupUsage(errw, group)
			return 2
		}
		fmt.Fprintf(errw, "dojo-webhooks: unknown command %q; see `dojo-webhooks help`\n", args[0])
		return 2
	}
	fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors and usage are printed below, usage from the registration
	fs.Usage = func() {}
	runCmd := cmd.flags(fs)
	pos, err := parseArgs(fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		writeUsage(out, cmd, fs)
		return 0
	}
	if err != nil {
		fmt.Fprintln(errw, "dojo-webhooks:", cmd.name+":", err)
		writeUsage(errw, cmd, fs)
		return 2
	}
	c := &cli{cmd: cmd, flags: fs, sio: sio}
	if !cmd.noConfig {
		if c.cfg, err = loadConfig(environ); err != nil {
			fmt.Fprintln(errw, "dojo-webhooks:", err)
			return 2
		}
	}
	return exitCode(sio, runCmd(ctx, c, pos))
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

// loggedError is a failure already reported (in the log): exit code 1, nothing printed.
type loggedError struct{ error }

// exitCode prints err as one line and returns the exit code for it.
func exitCode(sio stdio, err error) int {
	if err == nil {
		return 0
	}
	var le loggedError
	if errors.As(err, &le) {
		return 1
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
			return nil, err
		}
		if fs.NArg() == 0 {
			return positional, nil
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
