// Package embedded starts the in-process nats-server with JetStream that
// dojo-webhooks runs on when no NATS_URL is given. The binary and every
// package's tests use it, so that both run against the same real server.
package embedded

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// DefaultHost and DefaultPort are where the embedded server listens for clients:
// loopback only, the nats CLI's default port.
const (
	DefaultHost = "127.0.0.1"
	DefaultPort = 4222
)

// ReadyTimeout bounds how long Start waits for the server to accept clients.
const ReadyTimeout = 10 * time.Second

// Options configure the embedded server.
type Options struct {
	Host       string // listen host, default DefaultHost
	Port       int    // listen port, default DefaultPort; -1 picks a free port
	StoreDir   string // JetStream file store directory (required)
	ServerName string // server name, default "dojo-webhooks"
	User       string // optional client user (with Password)
	Password   string // optional client password
	Token      string // optional client token
	Debug      bool   // log the server's own lines to stderr
}

// Start runs a nats-server with JetStream and waits until it accepts clients.
// The caller owns the server: Shutdown then WaitForShutdown stop it.
func Start(o Options) (*server.Server, error) {
	if o.StoreDir == "" {
		return nil, errors.New("embedded nats-server: a store directory is required")
	}
	if o.Host == "" {
		o.Host = DefaultHost
	}
	if o.Port == 0 {
		o.Port = DefaultPort
	}
	if o.ServerName == "" {
		o.ServerName = "dojo-webhooks"
	}
	opts := &server.Options{
		ServerName:    o.ServerName,
		Host:          o.Host,
		Port:          o.Port,
		JetStream:     true,
		StoreDir:      o.StoreDir,
		NoSigs:        true,
		NoLog:         !o.Debug,
		Username:      o.User,
		Password:      o.Password,
		Authorization: o.Token,
		JetStreamLimits: server.JSLimitOpts{
			DefaultMaxConsumers: -1, // one consumer per endpoint: no server-side cap
		},
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	if o.Debug {
		s.ConfigureLogger()
	}
	go s.Start()
	if !s.ReadyForConnections(ReadyTimeout) {
		s.Shutdown()
		if o.Port > 0 && portTaken(o.Host, o.Port) {
			return nil, fmt.Errorf("embedded nats-server: %s is already in use (set DOJO_WEBHOOKS_NATS_PORT, or NATS_URL to use that server)", net.JoinHostPort(o.Host, fmt.Sprint(o.Port)))
		}
		return nil, fmt.Errorf("embedded nats-server: not ready for connections within %s", ReadyTimeout)
	}
	return s, nil
}

func portTaken(host string, port int) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort(host, fmt.Sprint(port)), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
