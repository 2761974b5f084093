package sidecar

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/attempts"

	"github.com/rs/zerolog"

	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/delivery"
	"github.com/dojo-webhooks/dojo-webhooks/ingest"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// Defaults of the sidecar's own settings, documented in the README.
const (
	// DefaultConnectWait is how long start-up waits for JetStream to place the bucket and streams.
	DefaultConnectWait = 30 * time.Second
	// DefaultHTTPAddr is the HTTP listen address: loopback only.
	DefaultHTTPAddr = "127.0.0.1:8080"
	// HTTPOff as the HTTP address runs no HTTP server.
	HTTPOff = "off"
)

// Config configures a Sidecar; zero values take the documented defaults of
// this package and of the packages it wires (withDefaults applies them,
// validate checks the result).
type Config struct {
	Prefix   string                 // subject prefix, default contract.DefaultPrefix
	Replicas int                    // replicas of the bucket, the streams and the consumers, default consumer.DefaultReplicas
	Bucket   statekv.BucketConfig   // the endpoint bucket; its Replicas is set from Replicas
	Streams  consumer.StreamsConfig // the events and dead-letter streams; Names and Replicas are set from Prefix and Replicas

	MaxInFlight   int                      // requests in flight per endpoint, default consumer.DefaultMaxInFlight
	Policy        statekv.Policy           // the state machine's durations; zero = statekv.DefaultPolicy()
	Delivery      delivery.Options         // the HTTP client; MaxConnsPerHost defaults to at least MaxInFlight, Now to Config.Clock
	Request       consumer.RequestDefaults // the request headers an event does not set itself
	ShutdownGrace time.Duration            // how long in-flight deliveries may finish at stop, default consumer.DefaultShutdownGrace
	Observer      consumer.Observer        // optional hooks, called besides the metrics'
	DropCheck     time.Duration            // how often discarded events are looked for, default consumer.DefaultDropCheck

	Attempts       attempts.Mode         // what the attempt log records, default attempts.DefaultMode; attempts.ModeOff = no log
	AttemptsStream attempts.StreamConfig // the attempt-log stream's bounds; Names and Replicas are set from Prefix and Replicas
	AttemptBody    int                   // response body bytes an attempt keeps, default attempts.DefaultBodyBytes; -1 = none

	APIToken      string        // bearer token of the management API (/api/v1/); empty = the API answers only on a loopback listener
	SecretOverlap time.Duration // after a rotate-secret, how long the old secret keeps signing, default statekv.DefaultSecretOverlap

	Ingest   ingest.Options // the /ingest bridge; Names, Connected and Received are set by the sidecar
	HTTPAddr string         // HTTP listen address, default DefaultHTTPAddr; HTTPOff = no HTTP server
	Listener net.Listener   // when set, the HTTP server serves it and HTTPAddr is not used
	// HTTPLimits bound the HTTP server's timeouts and connections; zero fields take the defaults (httplimits.go).
	HTTPLimits HTTPLimits
	Metrics    bool // collect metrics (and serve /metrics)

	NoOpsEvents bool // publish no operational events (webhook_endpoint_disabled, …; see package opsevents)

	ConnectWait time.Duration  // how long New waits for JetStream to place the bucket and streams, default DefaultConnectWait
	Logger      zerolog.Logger // every component's log
	Clock       statekv.Clock  // clock of the store, the watcher, the manager and the HTTP client, default statekv.SystemClock()
	Started     time.Time      // when start-up began, for the ready log's duration; default when New is called
}

// withDefaults fills the zero fields of c with the defaults: the one place they are applied.
func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = contract.DefaultPrefix
	}
	if c.Replicas == 0 {
		c.Replicas = consumer.DefaultReplicas
	}
	c.Bucket.Replicas = c.Replicas
	c.Streams.Names, c.Streams.Replicas, c.Streams.Logger = contract.NamesFor(c.Prefix), c.Replicas, c.Logger
	c.AttemptsStream.Names, c.AttemptsStream.Replicas = c.Streams.Names, c.Replicas
	if c.Attempts == "" {
		c.Attempts = attempts.DefaultMode
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = consumer.DefaultMaxInFlight
	}
	if c.Policy == (statekv.Policy{}) {
		c.Policy = statekv.DefaultPolicy()
	}
	if c.Clock == nil {
		c.Clock = statekv.SystemClock()
	}
	if c.Delivery.Now == nil {
		c.Delivery.Now = c.Clock.Now
	}
	if c.Delivery.MaxConnsPerHost == 0 {
		// A keep-alive pool at least as large as the requests in flight to one host.
		c.Delivery.MaxConnsPerHost = max(c.MaxInFlight, delivery.DefaultMaxConnsPerHost)
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = consumer.DefaultShutdownGrace
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if c.SecretOverlap == 0 {
		c.SecretOverlap = statekv.DefaultSecretOverlap
	}
	c.HTTPLimits = c.HTTPLimits.withDefaults()
	if c.ConnectWait == 0 {
		c.ConnectWait = DefaultConnectWait
	}
	if c.Started.IsZero() {
		c.Started = time.Now()
	}
	return c
}

// validate checks what the sidecar itself uses; the wired packages check the rest.
func (c Config) validate() error {
	if c.Replicas < 0 {
		return fmt.Errorf("sidecar: Replicas %d: must be positive", c.Replicas)
	}
	if c.ConnectWait < 0 {
		return fmt.Errorf("sidecar: ConnectWait %s: must not be negative", c.ConnectWait)
	}
	if c.ShutdownGrace < 0 {
		return fmt.Errorf("sidecar: ShutdownGrace %s: must not be negative", c.ShutdownGrace)
	}
	if _, err := attempts.ParseMode(string(c.Attempts)); err != nil {
		return fmt.Errorf("sidecar: Attempts %w", err)
	}
	if c.AttemptBody > attempts.MaxBodyBytes {
		return fmt.Errorf("sidecar: AttemptBody %d: at most %d", c.AttemptBody, attempts.MaxBodyBytes)
	}
	if err := c.Policy.Validate(); err != nil {
		return fmt.Errorf("sidecar: %w", err)
	}
	return c.HTTPLimits.validate()
}

// httpOn reports whether the sidecar serves HTTP.
func (c Config) httpOn() bool { return c.Listener != nil || c.HTTPAddr != HTTPOff }

// ListenError is New's error when the HTTP listen address cannot be listened on.
type ListenError struct {
	Addr string
	Err  error
}

func (e *ListenError) Error() string { return fmt.Sprintf("listen on %s: %v", e.Addr, e.Err) }

// Unwrap returns the listen error.
func (e *ListenError) Unwrap() error { return e.Err }

// errRunTwice is Run's error on a second call.
var errRunTwice = errors.New("sidecar: Run called twice")
