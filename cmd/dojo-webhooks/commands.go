package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
)

// command is one CLI command. Its registration is everything the help texts
// know of it: they are generated from commands.
type command struct {
	name    string // "publish", or "endpoint add" for a subcommand of a group
	args    string // positional arguments, e.g. "<id>"; "" for none
	summary string // one line for the help
	// flags defines the command's flags on fs and returns what runs it with
	// their values and the positional arguments.
	flags    func(fs *flag.FlagSet) runFunc
	noConfig bool // runs without loading the configuration (help, version)
}

// runFunc runs a command; c holds the configuration and the standard streams.
type runFunc func(ctx context.Context, c *cli, pos []string) error

// commands lists every command, in the order `dojo-webhooks help` shows them.
var commands []*command

func init() {
	commands = []*command{
		serveCmd,
		endpointAddCmd, endpointListCmd, endpointShowCmd, endpointPingCmd, endpointActivateCmd,
		endpointDeactivateCmd, endpointRemoveCmd, endpointRotateSecretCmd, endpointSkipCmd, endpointHistoryCmd,
		publishCmd, replayCmd, attemptsCmd, statusCmd, healthcheckCmd, versionCmd, helpCmd,
	}
}

// noFlags is the flags of a command that has none.
func noFlags(run runFunc) func(*flag.FlagSet) runFunc {
	return func(*flag.FlagSet) runFunc { return run }
}

// lookup finds the command args start with and returns the arguments after its name.
func lookup(args []string) (*command, []string) {
	switch args[0] {
	case "-h", "--help", "-help":
		return helpCmd, args[1:]
	case "--version":
		return versionCmd, args[1:]
	}
	for _, c := range commands {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == c.name {
			return c, args[len(words):]
		}
	}
	return nil, nil
}

// isGroup reports whether name is a group of subcommands, like "endpoint".
func isGroup(name string) bool {
	for _, c := range commands {
		if strings.HasPrefix(c.name, name+" ") {
			return true
		}
	}
	return false
}

// flagsOf returns the flags cmd defines, in the order flag.VisitAll gives them (sorted).
func flagsOf(cmd *command) *flag.FlagSet {
	fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
	cmd.flags(fs)
	return fs
}

// synopsis is the command's one-line form: name, arguments and every flag.
func synopsis(cmd *command, fs *flag.FlagSet) string {
	return strings.Join(synopsisParts(cmd, fs), " ")
}

// synopsisParts are the words of the synopsis: a flag whose usage ends with
// "(required)" comes first and without brackets.
func synopsisParts(cmd *command, fs *flag.FlagSet) []string {
	parts := []string{"dojo-webhooks", cmd.name}
	if cmd.args != "" {
		parts = append(parts, cmd.args)
	}
	var optional []string
	fs.VisitAll(func(f *flag.Flag) {
		word := "--" + f.Name
		if name, _ := flag.UnquoteUsage(f); name != "" {
			word += " " + name
		}
		if strings.HasSuffix(f.Usage, "(required)") {
			parts = append(parts, word)
		} else {
			optional = append(optional, "["+word+"]")
		}
	})
	return append(parts, optional...)
}

// usageLine is cmd's synopsis, wrapped, and summary, for the command lists.
func usageLine(w io.Writer, cmd *command) {
	const col, width = 40, 100
	parts := synopsisParts(cmd, flagsOf(cmd))
	line := "  " + parts[0]
	indent := strings.Repeat(" ", len("  dojo-webhooks "+cmd.name+" "))
	for _, p := range parts[1:] {
		if len(line)+1+len(p) > width {
			fmt.Fprintln(w, line)
			line = indent + p
			continue
		}
		line += " " + p
	}
	if len(line) < col {
		fmt.Fprintf(w, "%-*s %s\n", col, line, cmd.summary)
		return
	}
	fmt.Fprintf(w, "%s\n%*s %s\n", line, col, "", cmd.summary)
}

// writeUsage prints one command's usage: synopsis, summary and each flag.
func writeUsage(w io.Writer, cmd *command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", synopsis(cmd, fs), cmd.summary)
	first := true
	fs.VisitAll(func(f *flag.Flag) {
		if first {
			fmt.Fprintln(w, "\nFlags:")
			first = false
		}
		name, usage := flag.UnquoteUsage(f)
		if name != "" {
			name = " " + name
		}
		fmt.Fprintf(w, "  --%s%s\n        %s", f.Name, name, usage)
		if f.DefValue != "" && f.DefValue != "false" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}

// writeGroupUsage lists the subcommands of group, e.g. "endpoint".
func writeGroupUsage(w io.Writer, group string) {
	fmt.Fprintf(w, "\nUsage of dojo-webhooks %s:\n", group)
	for _, c := range commands {
		if strings.HasPrefix(c.name, group+" ") {
			usageLine(w, c)
		}
	}
	fmt.Fprintf(w, "\n`dojo-webhooks %s <subcommand> -h` describes each flag.\n", group)
}

const helpHeader = `dojo-webhooks: DefectDojo notification webhooks delivered through NATS JetStream.

Usage:
`

const helpFooter = `
` + "`dojo-webhooks <command> -h`" + ` describes each flag of a command. Without a command, dojo-webhooks runs serve.

Exit codes: 0 ok, 1 failure (one line on stderr says why), 2 bad usage or configuration.

Configuration (environment):
`

var helpCmd = &command{
	name: "help", summary: "this text: every command, its flags and the configuration", noConfig: true,
	flags: noFlags(func(_ context.Context, c *cli, _ []string) error {
		fmt.Fprint(c.sio.out, helpHeader)
		for _, cmd := range commands {
			usageLine(c.sio.out, cmd)
		}
		fmt.Fprint(c.sio.out, helpFooter)
		printEnvHelp(c.sio.out)
		return nil
	}),
}

var versionCmd = &command{
	name: "version", summary: "print the version", noConfig: true,
	flags: noFlags(func(_ context.Context, c *cli, _ []string) error {
		fmt.Fprintln(c.sio.out, "dojo-webhooks", version)
		return nil
	}),
}

var serveCmd = &command{
	name: "serve", summary: "run the sidecar (embedded NATS unless NATS_URL is set); the default command",
	flags: noFlags(func(ctx context.Context, c *cli, pos []string) error {
		if len(pos) > 0 {
			return usageError{fmt.Errorf("serve takes no arguments (got %q); configure it with environment variables, see `dojo-webhooks help`", pos[0])}
		}
		log := newLogger(c.cfg, c.sio.err)
		if err := serve(ctx, c.cfg, log); err != nil {
			log.Error().Err(err).Msg("dojo-webhooks stopped")
			return loggedError{err}
		}
		return nil
	}),
}
