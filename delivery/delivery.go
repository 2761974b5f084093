package delivery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// Class is the outcome class of one delivery attempt.
type Class int

const (
	// Success is a 2xx response.
	Success Class = iota + 1
	// Temporary is a 5xx or 429 response or a timeout.
	Temporary
	// Permanent is any other HTTP status (3xx, 4xx but 429) or any non-HTTP error (DNS, refused, TLS, invalid URL, blocked destination).
	Permanent
	// Local is a failure of the sender itself, not of the endpoint: a local
	// resource ran out (EMFILE, ENFILE, ENOBUFS, ENOMEM), a local address could
	// not be bound (EADDRNOTAVAIL), or the caller's context was cancelled (a
	// shutdown). It says nothing about the endpoint: the attempt is retried
	// later and the endpoint's state is left as it is.
	Local
)

// String returns "success", "temporary", "permanent" or "local".
func (c Class) String() string {
	switch c {
	case Success:
		return "success"
	case Temporary:
		return "temporary"
	case Permanent:
		return "permanent"
	case Local:
		return "local"
	}
	return "Class(" + strconv.Itoa(int(c)) + ")"
}

// Request is one webhook POST.
type Request struct {
	URL         string // http or https endpoint URL
	Event       string // X-DefectDojo-Event
	Body        []byte // sent byte for byte
	ID          string // webhook-id header (stable per event, same on every retry); empty => omitted
	Instance    string // X-DefectDojo-Instance; empty => DefaultInstance
	UserAgent   string // User-Agent; empty => DefaultUserAgent
	HeaderName  string // optional extra header (DefectDojo's auth header); empty => none
	HeaderValue string // value of HeaderName; never put in a note or error
	// Secrets sign the request (Standard Webhooks v1) when non-empty: webhook-timestamp and one
	// webhook-signature entry per secret, in order; each is SecretPrefix + base64 of 24 to 64 bytes
	// (see ParseSecret); ID must then be non-empty. Never put in a note or error.
	Secrets []string
	// KeepBody is how many of the response body's first bytes Result.Body keeps
	// (the attempt log's snippet); 0 = none. At most the bytes read (MaxResponseBytes).
	KeepBody int
}

// Result is what one attempt produced.
type Result struct {
	Class      Class         // outcome class
	StatusCode int           // 0 when no HTTP response was received
	Note       string        // DefectDojo's note: "Response status code: 500", or the error text; at most MaxNoteLength chars; "" on success
	Duration   time.Duration // time from send to response headers+bounded body read (or error)
	Err        error         // the transport error, nil when an HTTP response was received
	// RetryAfter is, for a 429 or 503 response with a Retry-After header (seconds or HTTP date), the time
	// before which the endpoint asked not to be called again; zero when absent, unparseable or not in
	// the future. It is not capped: the caller bounds it.
	RetryAfter time.Time
	// Header holds the response headers worth keeping in the attempt log
	// (KeptHeaders) that were present; nil when no response came.
	Header map[string]string
	// Body is the response body's first Request.KeepBody bytes; BodyTruncated
	// says the body was longer.
	Body          []byte
	BodyTruncated bool
}

// KeptHeaders are the response headers a Result keeps: what explains an answer
// without holding a secret.
var KeptHeaders = []string{"Content-Type", "Retry-After", "Location"}

// Options configure a Client; zero values take the documented defaults.
type Options struct {
	Timeout          time.Duration                                                     // whole request timeout, default DefaultTimeout (10s)
	MaxConnsPerHost  int                                                               // idle keep-alive connections kept per host (not a cap on concurrent ones), default DefaultMaxConnsPerHost (64)
	MaxResponseBytes int64                                                             // how much of the response body is read (then discarded), default DefaultMaxResponseBytes (64 KiB)
	TLSConfig        *tls.Config                                                       // optional (custom roots); cloned by New
	DialContext      func(ctx context.Context, network, addr string) (net.Conn, error) // optional (tests); with BlockPrivate it gets checked "ip:port" addresses only
	RootCAs          *x509.CertPool                                                    // optional trusted roots (see LoadCAFile), used when TLSConfig is nil or has no RootCAs
	Now              func() time.Time                                                  // clock of webhook-timestamp and RetryAfter, default time.Now
	BlockPrivate     bool                                                              // refuse loopback, private, link-local, unspecified, multicast, CGNAT and reserved destinations; disables proxies
	AllowNetworks    []netip.Prefix                                                    // destinations let through despite BlockPrivate (no effect without it)
	Resolver         Resolver                                                          // DNS lookups with BlockPrivate (tests, custom DNS), default net.DefaultResolver
	NoRedirects      bool                                                              // return a 3xx as the answer (Permanent) instead of following it as DefectDojo does
}

// DefaultTimeout is the whole-exchange timeout of one attempt (DefectDojo's default).
const DefaultTimeout = 10 * time.Second

// DefaultUserAgent is the User-Agent sent when Request.UserAgent is empty.
const DefaultUserAgent = "DefectDojo-dojo-webhooks"

// MaxNoteLength is the maximum length of a note, in characters (DefectDojo's column size).
const MaxNoteLength = 1000

// DefaultMaxConnsPerHost is the default size of the keep-alive pool per host.
const DefaultMaxConnsPerHost = 64

// DefaultMaxResponseBytes is the default number of response body bytes read before the connection is dropped.
const DefaultMaxResponseBytes = 64 << 10

// statusNotePrefix starts the note of every non-2xx response, as in DefectDojo.
const statusNotePrefix = "Response status code: "

// attemptError is the error of an attempt that got no HTTP response.
// Its text is the note: it starts with what happened and never holds the header value.
type attemptError struct {
	class Class
	msg   string
	errs  []error // the underlying errors (transport error, caller's ctx.Err()); may be empty
}

func (e *attemptError) Error() string   { return e.msg }
func (e *attemptError) Unwrap() []error { return e.errs }

// Classify maps an HTTP status (0 when none) and transport error to a class and DefectDojo note.
// A non-zero status decides alone (err is then ignored); with status 0 the error is classified.
// The note is capped at MaxNoteLength characters.
func Classify(status int, err error) (Class, string) {
	switch {
	case status >= 200 && status < 300:
		return Success, ""
	case status >= 500 && status < 600, status == 429:
		return Temporary, statusNotePrefix + strconv.Itoa(status)
	case status != 0:
		return Permanent, statusNotePrefix + strconv.Itoa(status)
	case err == nil:
		return Permanent, "No HTTP response"
	}
	var ae *attemptError
	if errors.As(err, &ae) {
		return ae.class, truncate(ae.msg)
	}
	class, label := classifyError(err)
	return class, truncate(label + ": " + err.Error())
}

// classifyError returns the class of a transport error and a label saying what happened.
func classifyError(err error) (Class, string) {
	var (
		netErr  net.Error
		dnsErr  *net.DNSError
		certErr *tls.CertificateVerificationError
		uaErr   x509.UnknownAuthorityError
		hostErr x509.HostnameError
		invErr  x509.CertificateInvalidError
		recErr  tls.RecordHeaderError
		alert   tls.AlertError
		opErr   *net.OpError
	)
	switch {
	case errors.Is(err, ErrDestinationRefused):
		return Permanent, "Destination refused"
	case errors.Is(err, ErrTooManyRedirects):
		return Permanent, "Too many redirects"
	case errors.Is(err, context.Canceled):
		return Local, "Cancelled"
	case localResource(err):
		return Local, "Local resource error"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return Temporary, "Timeout"
	case errors.As(err, &dnsErr):
		return Permanent, "DNS error"
	case errors.As(err, &certErr), errors.As(err, &uaErr), errors.As(err, &hostErr), errors.As(err, &invErr):
		return Permanent, "TLS certificate error"
	case errors.As(err, &recErr), errors.As(err, &alert), strings.Contains(err.Error(), "tls: "):
		return Permanent, "TLS error"
	case errors.Is(err, syscall.ECONNREFUSED):
		return Permanent, "Connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return Permanent, "Connection reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return Permanent, "Connection closed without response"
	case errors.As(err, &opErr):
		return Permanent, "Connection error"
	}
	return Permanent, "Request error"
}

// localErrnos are the errors of the sending host itself: descriptors, buffers
// or memory exhausted, or no local address to bind.
var localErrnos = []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.EADDRNOTAVAIL}

// localResource reports whether err is a failure of this host rather than of
// the destination. A DNS error of the pure-Go resolver may carry the socket
// error as text only: "too many open files" is matched there too.
func localResource(err error) bool {
	for _, errno := range localErrnos {
		if errors.Is(err, errno) {
			return true
		}
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		for _, errno := range localErrnos {
			if strings.Contains(dnsErr.Err, errno.Error()) {
				return true
			}
		}
	}
	return false
}

// TruncateNote caps a note at MaxNoteLength characters (runes), cut on a
// character boundary, with invalid UTF-8 replaced. A cut note ends with mark
// ("…" for the notes Send writes, "" for a plain cut), counted in the limit.
// Every note stored in a record is cut here.
func TruncateNote(s, mark string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) <= MaxNoteLength {
		return s
	}
	keep := max(MaxNoteLength-utf8.RuneCountInString(mark), 0)
	n := 0
	for i := range s {
		if n == keep {
			return s[:i] + mark
		}
		n++
	}
	return s
}

// truncate caps a note Send writes, marking the cut with "…".
func truncate(s string) string { return TruncateNote(s, "…") }

// redact replaces secret in s. Values shorter than 4 bytes are left alone:
// they protect nothing and replacing them would mangle the text.
func redact(s, secret string) string {
	if len(strings.TrimSpace(secret)) < 4 {
		return s
	}
	return strings.ReplaceAll(s, secret, "[redacted]")
}

// failure builds an attempt error whose note is label + ": " + text (redacted).
func failure(class Class, label, text, secret string, errs ...error) *attemptError {
	return &attemptError{class: class, msg: truncate(redact(label+": "+text, secret)), errs: errs}
}

// ValidHeaderName reports whether name is an RFC 9110 token, a valid header
// field name: the rule for a record's header_name and for Request.HeaderName.
func ValidHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// ValidHeaderValue reports whether value has no control characters but HTAB:
// the rule for a record's header_value and for Request.HeaderValue.
func ValidHeaderValue(value string) bool {
	for i := 0; i < len(value); i++ {
		if c := value[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
