package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/dojo-webhooks/dojo-webhooks/internal/embedded"
)

// clientURL is where the CLI commands connect: NATS_URL, or the embedded server of a running serve.
func (c Config) clientURL() string {
	if c.NATSURL != "" {
		return c.NATSURL
	}
	return "nats://" + net.JoinHostPort(c.NATSHost, strconv.Itoa(c.NATSPort))
}

// natsOptions turns the nats CLI's variables into connection options. Secrets are
// passed to the client and never logged.
func (c Config) natsOptions(name string) ([]nats.Option, error) {
	opts := []nats.Option{nats.Name(name)}
	if c.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(c.NATSCreds))
	}
	if c.NATSNKey != "" {
		o, err := nats.NkeyOptionFromSeed(c.NATSNKey)
		if err != nil {
			return nil, fmt.Errorf("NATS_NKEY: %w", err)
		}
		opts = append(opts, o)
	}
	if c.NATSUser != "" {
		opts = append(opts, nats.UserInfo(c.NATSUser, c.NATSPassword))
	}
	if c.NATSToken != "" {
		opts = append(opts, nats.Token(c.NATSToken))
	}
	if c.NATSCA != "" {
		opts = append(opts, nats.RootCAs(c.NATSCA))
	}
	if c.NATSCert != "" {
		opts = append(opts, nats.ClientCert(c.NATSCert, c.NATSKey))
	}
	return opts, nil
}

// startEmbedded runs the in-process server configured by c.
func (c Config) startEmbedded(log zerolog.Logger) (*server.Server, error) {
	s, err := embedded.Start(embedded.Options{
		Host: c.NATSHost, Port: c.NATSPort, StoreDir: c.DataDir,
		User: c.NATSUser, Password: c.NATSPassword, Token: c.NATSToken,
		Debug: c.LogLevel == "debug",
	})
	if err != nil {
		return nil, err
	}
	log.Info().Str("url", s.ClientURL()).Str("store", c.DataDir).Msg("embedded NATS server started")
	return s, nil
}

// connectSidecar connects the long-running sidecar: in-process to the embedded
// server, or to NATS_URL with reconnects forever (each logged). Start-up waits up
// to DOJO_WEBHOOKS_CONNECT_WAIT for NATS_URL to answer.
func (c Config) connectSidecar(ctx context.Context, embeddedServer *server.Server, log zerolog.Logger) (*nats.Conn, error) {
	opts, err := c.natsOptions("dojo-webhooks")
	if err != nil {
		return nil, err
	}
	opts = append(opts,
		nats.MaxReconnects(-1),
		// No reconnect buffer: a publish while disconnected fails at once instead of
		// being sent later (the ingest bridge has answered 503 by then, and the
		// publisher retries), and acks are redelivered rather than replayed late.
		nats.ReconnectBufSize(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if nc.IsClosed() || nc.IsDraining() {
				return // our own shutdown
			}
			log.Warn().Err(err).Msg("NATS disconnected; reconnecting")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("url", nc.ConnectedUrlRedacted()).Msg("NATS reconnected")
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			ev := log.Warn().Err(err)
			if sub != nil {
				ev = ev.Str("subject", sub.Subject)
			}
			ev.Msg("NATS asynchronous error")
		}),
	)
	if embeddedServer != nil {
		nc, err := nats.Connect("", append(opts, nats.InProcessServer(embeddedServer))...)
		if err != nil {
			return nil, fmt.Errorf("connect to the embedded NATS server: %w", err)
		}
		return nc, nil
	}
	deadline := time.Now().Add(c.ConnectWait)
	for {
		nc, err := nats.Connect(c.NATSURL, opts...)
		if err == nil {
			log.Info().Str("url", nc.ConnectedUrlRedacted()).Msg("NATS connected")
			return nc, nil
		}
		if !errors.Is(err, nats.ErrNoServers) || time.Now().After(deadline) {
			return nil, fmt.Errorf("connect to NATS at %s: %w", redactURL(c.NATSURL), err)
		}
		log.Warn().Err(err).Str("url", redactURL(c.NATSURL)).Msg("NATS not reachable yet; retrying")
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to NATS at %s: %w", redactURL(c.NATSURL), ctx.Err())
		case <-time.After(time.Second):
		}
	}
}

// connectCLI connects a one-shot command: fails at once with a hint when nothing answers.
func (c Config) connectCLI() (*nats.Conn, error) {
	opts, err := c.natsOptions("dojo-webhooks-cli")
	if err != nil {
		return nil, err
	}
	opts = append(opts, nats.Timeout(5*time.Second))
	nc, err := nats.Connect(c.clientURL(), opts...)
	if err != nil {
		hint := ""
		if c.NATSURL == "" {
			hint = " (is `dojo-webhooks serve` running? set NATS_URL to use another server)"
		}
		return nil, fmt.Errorf("connect to NATS at %s: %w%s", redactURL(c.clientURL()), err, hint)
	}
	return nc, nil
}

// redactURL hides user names, passwords and tokens in NATS URLs before they are printed.
func redactURL(raw string) string {
	parts := strings.Split(raw, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil {
			parts[i] = "(unparsable URL)"
			continue
		}
		if u.User != nil {
			u.User = url.User("redacted")
		}
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}
