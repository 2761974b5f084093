package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dojo-webhooks/dojo-webhooks/attempts"

	"github.com/caarlos0/env/v11"
	"github.com/rs/zerolog"

	"github.com/dojo-webhooks/dojo-webhooks/consumer"
	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/delivery"
	"github.com/dojo-webhooks/dojo-webhooks/ingest"
	"github.com/dojo-webhooks/dojo-webhooks/sidecar"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// Config is the sidecar's whole configuration, read from the environment
// (DESIGN.md section 6). The help tag is what `dojo-webhooks help` prints.
type Config struct {
	NATSURL      string `env:"NATS_URL" help:"NATS server URL(s), comma separated; empty = run the embedded server"`
	NATSCreds    string `env:"NATS_CREDS" help:"credentials file (JWT + nkey), as for the nats CLI"`
	NATSNKey     string `env:"NATS_NKEY" help:"nkey seed file"`
	NATSUser     string `env:"NATS_USER" help:"user name (also required by the embedded server when set)"`
	NATSPassword string `env:"NATS_PASSWORD" help:"password for NATS_USER"`
	NATSToken    string `env:"NATS_TOKEN" help:"token (also required by the embedded server when set)"`
	NATSCA       string `env:"NATS_CA" help:"CA certificate file to verify the NATS server"`
	NATSCert     string `env:"NATS_CERT" help:"client certificate file (with NATS_KEY)"`
	NATSKey      string `env:"NATS_KEY" help:"client private key file"`
	SiteURL      string `env:"DD_SITE_URL" help:"DefectDojo base URL: the default X-DefectDojo-Instance header"`

	SubjectPrefix   string        `env:"DOJO_WEBHOOKS_SUBJECT_PREFIX" envDefault:"defectdojo" help:"subject prefix: events are published to <prefix>.events.<event>"`
	Bucket          string        `env:"DOJO_WEBHOOKS_BUCKET" envDefault:"defectdojo_webhooks" help:"KV bucket holding the endpoint records"`
	Replicas        int           `env:"DOJO_WEBHOOKS_REPLICAS" envDefault:"1" help:"replicas of the bucket and streams (3 on a 3-node cluster)"`
	History         int           `env:"DOJO_WEBHOOKS_HISTORY" envDefault:"64" help:"revisions kept per endpoint record, 1 to 64 (nats kv history)"`
	Timeout         time.Duration `env:"DOJO_WEBHOOKS_TIMEOUT" envDefault:"10s" help:"HTTP timeout of one delivery (DefectDojo's default)"`
	ReactivateAfter time.Duration `env:"DOJO_WEBHOOKS_REACTIVATE_AFTER" envDefault:"60s" help:"inactive_tmp -> active_tmp this long after the last error"`
	RecoverAfter    time.Duration `env:"DOJO_WEBHOOKS_RECOVER_AFTER" envDefault:"24h" help:"active_tmp -> active once the last error is older than this"`
	GiveUpAfter     time.Duration `env:"DOJO_WEBHOOKS_GIVE_UP_AFTER" envDefault:"24h" help:"a temporary failure this long after the outage began is permanent"`
	HTTPAddr        string        `env:"DOJO_WEBHOOKS_HTTP_ADDR" envDefault:"127.0.0.1:8080" help:"HTTP listen address (/healthz, /readyz, /metrics, /ingest); loopback by default, :8080 for all interfaces; off = no HTTP server"`
	HTTPReadTimeout time.Duration `env:"DOJO_WEBHOOKS_HTTP_READ_TIMEOUT" envDefault:"30s" help:"how long a client may take to send one whole request, body included (its headers: at most 10s)"`
	HTTPIdleTimeout time.Duration `env:"DOJO_WEBHOOKS_HTTP_IDLE_TIMEOUT" envDefault:"60s" help:"how long an idle keep-alive HTTP connection is kept open"`
	HTTPMaxConns    int           `env:"DOJO_WEBHOOKS_HTTP_MAX_CONNS" envDefault:"512" help:"HTTP connections served at once; more wait in the kernel's accept queue"`
	DataDir         string        `env:"DOJO_WEBHOOKS_DATA_DIR" envDefault:"data" help:"embedded server's JetStream store directory"`
	NATSHost        string        `env:"DOJO_WEBHOOKS_NATS_HOST" envDefault:"127.0.0.1" help:"embedded server's client listen host (loopback: reachable by the nats CLI on this machine only)"`
	NATSPort        int           `env:"DOJO_WEBHOOKS_NATS_PORT" envDefault:"4222" help:"embedded server's client port; the CLI commands connect here when NATS_URL is empty"`
	ConnectWait     time.Duration `env:"DOJO_WEBHOOKS_CONNECT_WAIT" envDefault:"30s" help:"how long start-up waits for NATS_URL to answer, and for JetStream to place the bucket and streams, before giving up"`
	UserAgent       string        `env:"DOJO_WEBHOOKS_USER_AGENT" envDefault:"DefectDojo-dojo-webhooks" help:"default User-Agent of deliveries (a publisher's User-Agent header overrides it)"`
	MaxInFlight     int           `env:"DOJO_WEBHOOKS_MAX_IN_FLIGHT" envDefault:"1" help:"requests in flight per endpoint and sidecar; 1 delivers in publish order, also across retries"`
	EventsMaxAge    time.Duration `env:"DOJO_WEBHOOKS_EVENTS_MAX_AGE" envDefault:"168h" help:"how long the events stream keeps an event: the bound on an endpoint's backlog and on replay --since"`
	EventsMaxBytes  int64         `env:"DOJO_WEBHOOKS_EVENTS_MAX_BYTES" envDefault:"-1" help:"size bound of the events stream in bytes (oldest dropped first); -1 = none"`
	DeadLetterAge   time.Duration `env:"DOJO_WEBHOOKS_DEADLETTER_MAX_AGE" envDefault:"720h" help:"how long dead letters are kept"`
	Attempts        string        `env:"DOJO_WEBHOOKS_ATTEMPTS" envDefault:"all" help:"attempt log: all attempts, failures only, or off"`
	AttemptsMaxAge  time.Duration `env:"DOJO_WEBHOOKS_ATTEMPTS_MAX_AGE" envDefault:"168h" help:"how long the attempt log keeps an attempt"`
	AttemptsBytes   int64         `env:"DOJO_WEBHOOKS_ATTEMPTS_MAX_BYTES" envDefault:"268435456" help:"size bound of the attempt log in bytes (oldest dropped first), so it never takes the events stream's disk; -1 = none"`
	AttemptBody     int           `env:"DOJO_WEBHOOKS_ATTEMPTS_BODY_BYTES" envDefault:"1024" help:"first bytes of each response body kept in the attempt log, 0 to 65536; 0 = none"`
	DedupWindow     time.Duration `env:"DOJO_WEBHOOKS_DEDUP_WINDOW" envDefault:"2m" help:"window in which a repeated Nats-Msg-Id is dropped"`
	ShutdownGrace   time.Duration `env:"DOJO_WEBHOOKS_SHUTDOWN_GRACE" envDefault:"15s" help:"at SIGTERM, how long in-flight deliveries may finish before they are cancelled and redelivered later"`
	MaxRetryAfter   time.Duration `env:"DOJO_WEBHOOKS_MAX_RETRY_AFTER" envDefault:"1h" help:"cap on a 429/503 Retry-After that keeps an endpoint inactive_tmp past reactivate-after; 0 = Retry-After ignored"`
	SecretOverlap   time.Duration `env:"DOJO_WEBHOOKS_SECRET_OVERLAP" envDefault:"24h" help:"after endpoint rotate-secret, how long deliveries are also signed with the old secret"`
	FollowRedirects bool          `env:"DOJO_WEBHOOKS_FOLLOW_REDIRECTS" envDefault:"true" help:"follow redirects as DefectDojo does (at most 10; auth headers dropped on a cross-host hop); false = a 3xx is a permanent failure"`
	BlockPrivate    bool          `env:"DOJO_WEBHOOKS_BLOCK_PRIVATE" envDefault:"false" help:"refuse loopback, private, link-local and unspecified destination addresses (checked on the address dialled)"`
	AllowNetworks   string        `env:"DOJO_WEBHOOKS_ALLOW_NETWORKS" help:"comma-separated CIDR networks allowed even with DOJO_WEBHOOKS_BLOCK_PRIVATE, e.g. 10.1.0.0/16"`
	CAFile          string        `env:"DOJO_WEBHOOKS_CA_FILE" help:"PEM CA bundle trusted for https endpoints in addition to the system roots"`
	APIToken        string        `env:"DOJO_WEBHOOKS_API_TOKEN" help:"bearer token of the management API and the console (/api/v1/, /ui/); empty = they answer only when DOJO_WEBHOOKS_HTTP_ADDR is a loopback address"`
	IngestToken     string        `env:"DOJO_WEBHOOKS_INGEST_TOKEN" help:"shared secret /ingest requires in DOJO_WEBHOOKS_INGEST_HEADER (DefectDojo's webhook header); empty = none"`
	IngestHeader    string        `env:"DOJO_WEBHOOKS_INGEST_HEADER" envDefault:"Authorization" help:"header carrying the ingest token (its value may be the token or Bearer <token>)"`
	IngestMaxBytes  int64         `env:"DOJO_WEBHOOKS_INGEST_MAX_BYTES" envDefault:"1048576" help:"largest body /ingest accepts (413 above); NATS's default max payload is 1 MiB"`
	IngestHold      time.Duration `env:"DOJO_WEBHOOKS_INGEST_HOLD" envDefault:"8s" help:"how long /ingest holds a request, publishing again, while NATS is unreachable (503 after it); under DefectDojo's 10s timeout"`
	OpsEvents       bool          `env:"DOJO_WEBHOOKS_OPS_EVENTS" envDefault:"true" help:"publish webhook_endpoint_disabled, webhook_endpoint_recovered and webhook_events_dropped events, which endpoints subscribe to with their event filter"`
	LogLevel        string        `env:"DOJO_WEBHOOKS_LOG_LEVEL" envDefault:"info" help:"debug, info, warn or error"`
	LogFormat       string        `env:"DOJO_WEBHOOKS_LOG_FORMAT" envDefault:"json" help:"json, or console for people"`

	// Parsed by validate, so that nothing is parsed twice.
	allowNets []netip.Prefix // AllowNetworks
	rootCAs   *x509.CertPool // CAFile; nil = the system roots only
}

// Defaults that belong to the command itself; every other envDefault above is
// a package's Default* constant (config_test.go checks that they agree).
const (
	defaultDataDir   = "data"
	defaultLogLevel  = "info"
	defaultLogFormat = "json"
)

var subjectToken = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)

// loadConfig parses the environment (given as a map, so tests need not touch the
// process environment) and validates it. Errors name the variable.
func loadConfig(environ map[string]string) (Config, error) {
	var c Config
	if err := env.ParseWithOptions(&c, env.Options{Environment: environ}); err != nil {
		return c, namedEnvError(err)
	}
	err := c.validate()
	return c, err
}

// namedEnvError rewrites caarlos0/env's field names into variable names.
func namedEnvError(err error) error {
	var agg env.AggregateError
	if !errors.As(err, &agg) {
		return fmt.Errorf("configuration: %w", err)
	}
	msgs := make([]string, 0, len(agg.Errors))
	for _, e := range agg.Errors {
		var pe env.ParseError
		if errors.As(e, &pe) {
			msgs = append(msgs, fmt.Sprintf("%s: %v", envKey(pe.Name), pe.Err))
			continue
		}
		msgs = append(msgs, e.Error())
	}
	return fmt.Errorf("configuration: %s", strings.Join(msgs, "; "))
}

func envKey(field string) string {
	if f, ok := reflect.TypeFor[Config]().FieldByName(field); ok {
		return f.Tag.Get("env")
	}
	return field
}

// validate checks every variable and keeps what it parsed (networks, CA pool).
// Each area has its own check; the first error wins.
func (c *Config) validate() error {
	for _, check := range []func() error{c.checkStorage, c.checkDurations, c.checkPipeline, c.checkDelivery,
		c.checkIngest, c.checkNATS, c.checkLog} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

// bad is a configuration error naming the variable of field.
func bad(field, format string, args ...any) error {
	return fmt.Errorf("configuration: %s: %s", envKey(field), fmt.Sprintf(format, args...))
}

var bucketName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// checkStorage checks the names and sizes of the subjects, bucket and streams.
func (c *Config) checkStorage() error {
	if !subjectToken.MatchString(c.SubjectPrefix) {
		return bad("SubjectPrefix", "%q is not a valid subject prefix (tokens of [A-Za-z0-9_-] separated by dots)", c.SubjectPrefix)
	}
	if !bucketName.MatchString(c.Bucket) {
		return bad("Bucket", "%q is not a valid bucket name ([A-Za-z0-9_-])", c.Bucket)
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return bad("Replicas", "%d: must be 1 to 5", c.Replicas)
	}
	if c.History < 1 || c.History > 64 {
		return bad("History", "%d: must be 1 to 64", c.History)
	}
	if c.EventsMaxBytes == 0 || c.EventsMaxBytes < -1 {
		return bad("EventsMaxBytes", "%d: must be positive, or -1 for no bound", c.EventsMaxBytes)
	}
	if _, err := attempts.ParseMode(c.Attempts); err != nil {
		return bad("Attempts", "%v", err)
	}
	if c.AttemptsBytes == 0 || c.AttemptsBytes < -1 {
		return bad("AttemptsBytes", "%d: must be positive, or -1 for no bound", c.AttemptsBytes)
	}
	if c.AttemptBody < 0 || c.AttemptBody > attempts.MaxBodyBytes {
		return bad("AttemptBody", "%d: must be 0 to %d", c.AttemptBody, attempts.MaxBodyBytes)
	}
	return nil
}

// checkDurations checks the durations that must be positive.
func (c *Config) checkDurations() error {
	for field, d := range map[string]time.Duration{"Timeout": c.Timeout, "ReactivateAfter": c.ReactivateAfter,
		"RecoverAfter": c.RecoverAfter, "GiveUpAfter": c.GiveUpAfter, "ConnectWait": c.ConnectWait,
		"EventsMaxAge": c.EventsMaxAge, "DeadLetterAge": c.DeadLetterAge, "DedupWindow": c.DedupWindow,
		"ShutdownGrace": c.ShutdownGrace, "SecretOverlap": c.SecretOverlap, "AttemptsMaxAge": c.AttemptsMaxAge,
		"HTTPReadTimeout": c.HTTPReadTimeout, "HTTPIdleTimeout": c.HTTPIdleTimeout} {
		if d <= 0 {
			return bad(field, "%s: must be positive", d)
		}
	}
	if c.HTTPMaxConns < 1 {
		return bad("HTTPMaxConns", "%d: must be positive", c.HTTPMaxConns)
	}
	if c.MaxRetryAfter < 0 || c.MaxRetryAfter > statekv.MaxRetryAfterLimit {
		return bad("MaxRetryAfter", "%s: must be between 0 and %s", c.MaxRetryAfter, statekv.MaxRetryAfterLimit)
	}
	if c.SecretOverlap > statekv.MaxSecretOverlap {
		return bad("SecretOverlap", "%s: at most %s", c.SecretOverlap, statekv.MaxSecretOverlap)
	}
	if c.DedupWindow > c.EventsMaxAge {
		return bad("DedupWindow", "%s: must not exceed DOJO_WEBHOOKS_EVENTS_MAX_AGE (%s)", c.DedupWindow, c.EventsMaxAge)
	}
	return nil
}

// checkPipeline checks the deliveries' concurrency and default headers.
func (c *Config) checkPipeline() error {
	if c.MaxInFlight < 1 || c.MaxInFlight > 1000 {
		return bad("MaxInFlight", "%d: must be 1 to 1000", c.MaxInFlight)
	}
	if c.SiteURL != "" {
		if u, err := url.Parse(c.SiteURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("SiteURL", "%q is not an http(s) URL", c.SiteURL)
		}
	}
	return nil
}

// checkDelivery parses the destination allow-list and the CA bundle.
func (c *Config) checkDelivery() error {
	nets, err := parseNetworks(c.AllowNetworks)
	if err != nil {
		return bad("AllowNetworks", "%v", err)
	}
	c.allowNets = nets
	c.rootCAs = nil
	if c.CAFile != "" {
		if c.rootCAs, err = delivery.LoadCAFile(c.CAFile); err != nil {
			return bad("CAFile", "%v", err)
		}
	}
	return nil
}

// checkIngest checks the /ingest bridge.
func (c *Config) checkIngest() error {
	if c.IngestMaxBytes < 1 {
		return bad("IngestMaxBytes", "%d: must be positive", c.IngestMaxBytes)
	}
	if c.IngestHold < 0 {
		return bad("IngestHold", "%s: must not be negative (0 = no hold)", c.IngestHold)
	}
	if c.IngestToken != "" && !delivery.ValidHeaderName(c.IngestHeader) {
		return bad("IngestHeader", "%q is not a valid HTTP header name", c.IngestHeader)
	}
	return nil
}

// checkNATS checks the embedded server and the client credentials.
func (c *Config) checkNATS() error {
	if c.NATSURL == "" && c.DataDir == "" {
		return bad("DataDir", "required for the embedded server (NATS_URL is empty)")
	}
	if c.NATSPort < 1 || c.NATSPort > 65535 {
		return bad("NATSPort", "%d: must be 1 to 65535", c.NATSPort)
	}
	if (c.NATSCert == "") != (c.NATSKey == "") {
		return bad("NATSCert", "NATS_CERT and NATS_KEY go together")
	}
	if c.NATSPassword != "" && c.NATSUser == "" {
		return bad("NATSPassword", "set without NATS_USER")
	}
	return nil
}

// checkLog checks the log settings.
func (c *Config) checkLog() error {
	if _, err := zerolog.ParseLevel(c.LogLevel); err != nil || c.LogLevel == "" {
		return bad("LogLevel", "%q: must be debug, info, warn or error", c.LogLevel)
	}
	if c.LogFormat != "json" && c.LogFormat != "console" {
		return bad("LogFormat", "%q: must be json or console", c.LogFormat)
	}
	return nil
}

// parseNetworks parses a comma-separated list of CIDR networks.
func parseNetworks(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR network (like 10.0.0.0/8)", s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// policy is the state machine's durations from the configuration.
func (c Config) policy() statekv.Policy {
	return statekv.Policy{ReactivateAfter: c.ReactivateAfter, RecoverAfter: c.RecoverAfter, GiveUpAfter: c.GiveUpAfter,
		MaxRetryAfter: c.MaxRetryAfter}
}

// deliveryOptions configures the HTTP client of deliveries and pings, from
// what validate parsed (the sidecar sizes the keep-alive pool).
func (c Config) deliveryOptions() delivery.Options {
	return delivery.Options{Timeout: c.Timeout, BlockPrivate: c.BlockPrivate, AllowNetworks: c.allowNets, RootCAs: c.rootCAs,
		NoRedirects: !c.FollowRedirects}
}

// requestDefaults are the headers of deliveries and pings an event does not set.
func (c Config) requestDefaults() consumer.RequestDefaults {
	return consumer.RequestDefaults{Instance: c.SiteURL, UserAgent: c.UserAgent}
}

// sidecar configures the running sidecar of serve.
func (c Config) sidecar(log zerolog.Logger, started time.Time) sidecar.Config {
	return sidecar.Config{
		Prefix: c.SubjectPrefix, Replicas: c.Replicas, Bucket: c.bucket(), Streams: c.streams(),
		MaxInFlight: c.MaxInFlight, Policy: c.policy(), Delivery: c.deliveryOptions(), Request: c.requestDefaults(),
		ShutdownGrace: c.ShutdownGrace,
		Ingest:        ingest.Options{MaxBodyBytes: c.IngestMaxBytes, Token: c.IngestToken, TokenHeader: c.IngestHeader, Hold: c.ingestHold()},
		HTTPAddr:      c.HTTPAddr, Metrics: true, APIToken: c.APIToken, SecretOverlap: c.SecretOverlap, NoOpsEvents: !c.OpsEvents,
		HTTPLimits: sidecar.HTTPLimits{ReadTimeout: c.HTTPReadTimeout, IdleTimeout: c.HTTPIdleTimeout, MaxConns: c.HTTPMaxConns},
		Attempts:   attempts.Mode(c.Attempts), AttemptBody: c.attemptBody(),
		AttemptsStream: attempts.StreamConfig{MaxAge: c.AttemptsMaxAge, MaxBytes: c.AttemptsBytes},
		ConnectWait:    c.ConnectWait, Logger: log, Started: started,
	}
}

// ingestHold is the bridge's hold: DOJO_WEBHOOKS_INGEST_HOLD=0 means none.
func (c Config) ingestHold() time.Duration {
	if c.IngestHold == 0 {
		return -1
	}
	return c.IngestHold
}

// attemptBody is the response bytes an attempt keeps: DOJO_WEBHOOKS_ATTEMPTS_BODY_BYTES=0 means none.
func (c Config) attemptBody() int {
	if c.AttemptBody == 0 {
		return -1
	}
	return c.AttemptBody
}

// bucket describes the endpoint bucket.
func (c Config) bucket() statekv.BucketConfig {
	return statekv.BucketConfig{Name: c.Bucket, Replicas: c.Replicas, History: c.History}
}

// names are the streams and subjects derived from the prefix.
func (c Config) names() contract.Names { return contract.NamesFor(c.SubjectPrefix) }

// streams sizes the events and dead-letter streams.
func (c Config) streams() consumer.StreamsConfig {
	return consumer.StreamsConfig{Names: c.names(), Replicas: c.Replicas, EventsMaxAge: c.EventsMaxAge,
		EventsMaxBytes: c.EventsMaxBytes, DeadLetterMaxAge: c.DeadLetterAge, DedupWindow: c.DedupWindow}
}

// printEnvHelp lists every variable with its default and meaning.
func printEnvHelp(w io.Writer) {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tDEFAULT\tMEANING")
	t := reflect.TypeFor[Config]()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Tag.Get("env") == "" {
			continue // parsed, not read from the environment
		}
		def := f.Tag.Get("envDefault")
		if def == "" {
			def = "(empty)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", f.Tag.Get("env"), def, f.Tag.Get("help"))
	}
	tw.Flush()
}
