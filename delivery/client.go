package delivery

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Client sends webhook requests over one shared keep-alive pool. Safe for concurrent use.
type Client struct {
	http      *http.Client
	transport *http.Transport
	timeout   time.Duration
	maxBody   int64
	now       func() time.Time
}

// withDefaults fills the zero fields of o with the defaults: the one place they are applied.
func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MaxConnsPerHost <= 0 {
		o.MaxConnsPerHost = DefaultMaxConnsPerHost
	}
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	return o
}

// New returns a Client configured by opts (zero fields take their defaults).
func New(opts Options) *Client {
	opts = opts.withDefaults()
	timeout, conns := opts.Timeout, opts.MaxConnsPerHost
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	dial := opts.DialContext
	if dial == nil {
		dial = dialer.DialContext
	}
	proxy := http.ProxyFromEnvironment
	if opts.BlockPrivate {
		// The check must see the real destination: a proxy would hide it.
		proxy = nil
		g := &guard{allow: make([]netip.Prefix, 0, len(opts.AllowNetworks))}
		for _, p := range opts.AllowNetworks {
			g.allow = append(g.allow, p.Masked())
		}
		dialer.Control = g.control // checks again the very address connected to, before connecting
		dial = (&safeDialer{guard: g, resolver: opts.Resolver, dial: dial}).DialContext
	}
	tr := &http.Transport{
		Proxy:               proxy,
		DialContext:         dial,
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        max(1024, conns),
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: min(timeout, DefaultTimeout),
		// The body is discarded: ask for it uncompressed and read it raw.
		DisableCompression: true,
	}
	if opts.TLSConfig != nil {
		tr.TLSClientConfig = opts.TLSConfig.Clone()
	}
	if opts.RootCAs != nil {
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{}
		}
		if tr.TLSClientConfig.RootCAs == nil {
			tr.TLSClientConfig.RootCAs = opts.RootCAs
		}
	}
	redirect := checkRedirect
	if opts.NoRedirects {
		redirect = noRedirects
	}
	return &Client{
		http:      &http.Client{Transport: tr, CheckRedirect: redirect},
		transport: tr,
		timeout:   timeout,
		maxBody:   opts.MaxResponseBytes,
		now:       opts.Now,
	}
}

// CloseIdle closes idle keep-alive connections.
func (c *Client) CloseIdle() {
	c.transport.CloseIdleConnections()
}

// Send POSTs req and classifies the outcome. It never returns an error: failures are in Result.
// ctx cancellation (e.g. shutdown) yields Class Local with Err wrapping ctx.Err(),
// as does a local resource error (EMFILE, ENOBUFS...): neither is the endpoint's doing;
// the Client's timeout yields Class Temporary with a "Timeout after …" note.
// Redirects are followed (see checkRedirect) unless Options.NoRedirects; the
// final answer is classified. Once response headers arrive the status decides
// the class, unless reading the body fails: a body that breaks (broken
// chunking, connection cut) is Permanent, a body that stalls past the timeout
// Temporary, as in DefectDojo. If a reused keep-alive connection was
// closed by the server before answering, the request is sent once more on a new one.
// A signed request (req.Secrets) is signed anew on each call, with the clock's time.
func (c *Client) Send(ctx context.Context, req Request) Result {
	hreq, aerr := c.newRequest(ctx, req)
	if aerr != nil {
		return failed(aerr, 0)
	}
	reqCtx, cancel := context.WithTimeout(withHeaderName(ctx, req.HeaderName), c.timeout)
	defer cancel()

	start := time.Now()
	resp, err := c.do(reqCtx, hreq)
	if err != nil {
		return failed(c.transportError(ctx, reqCtx, err, req.HeaderValue), time.Since(start))
	}
	// Read a bounded amount so a small body leaves the connection reusable; a larger
	// body is not drained: closing it early drops the connection instead.
	// Keep enough more to mask a header value the snippet's end would cut in two.
	kept := &snippet{keep: min(req.KeepBody, int(c.maxBody)) + len(req.HeaderValue)*min(req.KeepBody, 1)}
	rerr := kept.read(resp.Body, c.maxBody+1)
	_ = resp.Body.Close()
	d := time.Since(start)
	if rerr != nil {
		res := failed(c.bodyError(ctx, reqCtx, rerr, req.HeaderValue), d)
		res.StatusCode, res.Header = resp.StatusCode, keptHeaders(resp.Header, req.HeaderValue)
		return res
	}

	class, note := Classify(resp.StatusCode, nil)
	var after time.Time
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		after = retryAfter(resp.Header.Get("Retry-After"), c.now())
	}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		if loc := resp.Header.Get("Location"); loc != "" {
			note = truncate(redact(note+" (Location: "+loc+")", req.HeaderValue))
		}
	}
	res := Result{Class: class, StatusCode: resp.StatusCode, Note: note, Duration: d, RetryAfter: after,
		Header: keptHeaders(resp.Header, req.HeaderValue)}
	res.Body, res.BodyTruncated = kept.redacted(req.KeepBody, req.HeaderValue)
	return res
}

// snippet keeps the first keep bytes written to it and discards the rest.
type snippet struct {
	keep int
	buf  []byte
	more bool
}

// read reads at most limit bytes of body: the first keep into the snippet,
// the rest discarded through io.Discard's pooled buffer (a writer of our own
// would make io.Copy allocate 32 KiB per delivery). io.EOF is not an error.
func (s *snippet) read(body io.Reader, limit int64) error {
	if s.keep > 0 {
		buf := make([]byte, min(int64(s.keep), limit))
		n, err := io.ReadFull(body, buf)
		s.buf, limit = buf[:n], limit-int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
	n, err := io.CopyN(io.Discard, body, limit)
	s.more = s.keep > 0 && n > 0
	if err == io.EOF {
		return nil
	}
	return err
}

// redacted is the first n bytes kept, with the request's header value masked (a
// receiver that echoes its request), and whether the body was longer.
func (s *snippet) redacted(n int, secret string) ([]byte, bool) {
	if s.buf == nil {
		return nil, false
	}
	b := []byte(redact(string(s.buf), secret))
	if len(b) > n {
		return b[:n], true
	}
	return b, s.more
}

// keptHeaders copies the KeptHeaders present in h, bounded, with the request's
// header value and any URL password masked.
func keptHeaders(h http.Header, secret string) map[string]string {
	out := map[string]string{}
	for _, k := range KeptHeaders {
		if v := h.Get(k); v != "" {
			if u, err := url.Parse(v); err == nil && u.User != nil {
				v = u.Redacted()
			}
			out[k] = truncate(redact(v, secret))
		}
	}
	return out
}

// retryAfter returns the time a Retry-After value (delta-seconds or HTTP date) asks to wait until,
// or zero when it is empty, unparseable or not after now. Huge delays saturate instead of overflowing.
func retryAfter(value string, now time.Time) time.Time {
	value = strings.TrimSpace(value)
	if value == "" {
		return time.Time{}
	}
	var t time.Time
	if strings.Trim(value, "0123456789") == "" {
		const maxSeconds = math.MaxInt64 / int64(time.Second)
		secs, err := strconv.ParseInt(value, 10, 64)
		if err != nil || secs > maxSeconds { // only digits: the error is an overflow
			secs = maxSeconds
		}
		t = now.Add(time.Duration(secs) * time.Second)
	} else if date, err := http.ParseTime(value); err == nil {
		t = date
	}
	if !t.After(now) {
		return time.Time{}
	}
	return t
}

// do sends hreq with reqCtx. When a reused keep-alive connection turns out to be
// closed by the server before any response (the idle-close race), it sends once
// more, as net/http does by itself for idempotent requests: without this, the
// race would be classified permanent. The receiver may see the event twice, with
// the same webhook-id (at-least-once).
func (c *Client) do(reqCtx context.Context, hreq *http.Request) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		var reused atomic.Bool
		trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) { reused.Store(info.Reused) }}
		r := hreq.Clone(httptrace.WithClientTrace(reqCtx, trace))
		if hreq.GetBody != nil {
			body, err := hreq.GetBody()
			if err != nil {
				return nil, fmt.Errorf("rewinding request body: %w", err)
			}
			r.Body = body
		}
		resp, err := c.http.Do(r)
		if err == nil || attempt > 0 || !reused.Load() || reqCtx.Err() != nil || !closedByPeer(err) {
			return resp, err
		}
	}
}

// closedByPeer reports whether err says the server closed the connection without answering.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		strings.Contains(err.Error(), "server closed idle connection")
}

// failed turns an attempt error into a Result.
func failed(e *attemptError, d time.Duration) Result {
	return Result{Class: e.class, Note: e.msg, Duration: d, Err: e}
}

// newRequest validates req and builds the HTTP request, or says why it cannot be sent.
func (c *Client) newRequest(ctx context.Context, req Request) (*http.Request, *attemptError) {
	secret := req.HeaderValue
	u, err := ParseURL(req.URL)
	if err != nil {
		return nil, failure(Permanent, "Invalid URL", err.Error(), secret, err)
	}
	if req.HeaderName != "" {
		if !ValidHeaderName(req.HeaderName) {
			err := fmt.Errorf("header_name %q is not a valid HTTP header name", req.HeaderName)
			return nil, failure(Permanent, "Invalid header", err.Error(), secret, err)
		}
		if !ValidHeaderValue(req.HeaderValue) {
			err := fmt.Errorf("header_value of %q contains control characters", req.HeaderName)
			return nil, failure(Permanent, "Invalid header", err.Error(), secret, err)
		}
	}
	var keys [][]byte
	if len(req.Secrets) > 0 {
		if req.ID == "" {
			err := errors.New("a signed delivery needs a webhook-id")
			return nil, failure(Permanent, "Invalid request", err.Error(), secret, err)
		}
		keys = make([][]byte, len(req.Secrets))
		for i, s := range req.Secrets {
			key, err := ParseSecret(s)
			if err != nil {
				err = fmt.Errorf("secret %d of %d: %w", i+1, len(req.Secrets), err)
				return nil, failure(Permanent, "Invalid request", err.Error(), secret, err)
			}
			keys[i] = key
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, failure(Local, "Cancelled", "not sent to "+u.Redacted()+": "+err.Error(), secret, err)
	}
	// ctx is replaced by the per-attempt context in Send.
	// bytes.Reader: ContentLength is set and GetBody can rewind the body.
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(req.Body))
	if err != nil {
		err = fmt.Errorf("building request for %s: %w", u.Redacted(), err)
		return nil, failure(Permanent, "Invalid request", err.Error(), secret, err)
	}
	ua := req.UserAgent
	if ua == "" {
		ua = DefaultUserAgent
	}
	h := hreq.Header
	h.Set("User-Agent", ua)
	h.Set("X-DefectDojo-Event", req.Event)
	h.Set("X-DefectDojo-Instance", cmp.Or(req.Instance, DefaultInstance))
	h.Set("Accept", "application/json")
	h.Set("Content-Type", "application/json")
	if req.ID != "" {
		h.Set(HeaderID, req.ID)
	}
	if req.HeaderName != "" {
		// Set last, so it overrides a default of the same name, as DefectDojo does.
		if strings.EqualFold(req.HeaderName, "Host") {
			hreq.Host = req.HeaderValue
		} else {
			h.Set(req.HeaderName, req.HeaderValue)
		}
	}
	if keys != nil {
		// Set after the extra header: the signed values must be the ones sent.
		ts := strconv.FormatInt(c.now().Unix(), 10)
		h.Set(HeaderID, req.ID)
		h.Set(HeaderTimestamp, ts)
		h.Set(HeaderSignature, signatures(keys, req.ID, ts, req.Body))
	}
	return hreq, nil
}

// transportError classifies the error of an attempt that got no HTTP response.
func (c *Client) transportError(ctx, reqCtx context.Context, err error, secret string) *attemptError {
	text := err.Error() // *url.Error: Post "URL": reason (the URL's password is masked)
	if cerr := ctx.Err(); cerr != nil {
		errs := []error{err}
		if !errors.Is(err, cerr) {
			errs = append(errs, cerr)
		}
		return failure(Local, "Cancelled", text, secret, errs...)
	}
	var netErr net.Error
	if errors.Is(reqCtx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &netErr) && netErr.Timeout()) {
		return failure(Temporary, "Timeout after "+c.timeout.String(), text, secret, err)
	}
	var refused *refusedError
	if errors.As(err, &refused) {
		text = refused.Error() // says what was refused and why; the URL is the endpoint's own
	}
	class, label := classifyError(err)
	return failure(class, label, text, secret, err)
}

// bodyError classifies an error reading the body of a response whose headers came.
func (c *Client) bodyError(ctx, reqCtx context.Context, err error, secret string) *attemptError {
	text := "reading the response body: " + err.Error()
	if ctx.Err() == nil && (errors.Is(reqCtx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded)) {
		return failure(Temporary, "Timeout after "+c.timeout.String(), text, secret, err)
	}
	if ctx.Err() != nil {
		return failure(Temporary, "Cancelled", text, secret, err, ctx.Err())
	}
	return failure(Permanent, "Connection broken", text, secret, err)
}

// URLProblem says why a URL is not a webhook destination.
type URLProblem int

// The reasons ParseURL refuses a URL.
const (
	URLUnparsable URLProblem = iota + 1 // url.Parse fails
	URLNoScheme                         // no scheme
	URLBadScheme                        // a scheme other than http or https
	URLNoHost                           // no host name
)

// URLError is the error of ParseURL. It never shows a password of the URL.
type URLError struct {
	Problem URLProblem
	URL     string // the URL as written, its password masked; "" for URLUnparsable
	Scheme  string // the URL's scheme
	Err     error  // url.Parse's error, for URLUnparsable
}

// Error says what is wrong, e.g. `missing host in "http://"`.
func (e *URLError) Error() string {
	switch e.Problem {
	case URLUnparsable:
		return e.Err.Error() // *url.Error: parse "RAW": reason
	case URLNoScheme:
		return fmt.Sprintf("missing scheme (http or https) in %q", e.URL)
	case URLBadScheme:
		return fmt.Sprintf("unsupported scheme %q in %q (want http or https)", e.Scheme, e.URL)
	}
	return fmt.Sprintf("missing host in %q", e.URL)
}

// Unwrap returns url.Parse's error, if any.
func (e *URLError) Unwrap() error { return e.Err }

// ParseURL is the rule for a webhook destination, applied to a record's url
// and to Request.URL: an absolute http or https URL with a host name.
// Its errors are *URLError.
func ParseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, &URLError{Problem: URLUnparsable, Err: err}
	}
	shown := raw // as the admin wrote it, unless it holds a password
	if _, hasPassword := u.User.Password(); hasPassword {
		shown = u.Redacted()
	}
	switch {
	case u.Scheme == "":
		return nil, &URLError{Problem: URLNoScheme, URL: shown}
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, &URLError{Problem: URLBadScheme, URL: shown, Scheme: u.Scheme}
	case u.Hostname() == "":
		return nil, &URLError{Problem: URLNoHost, URL: shown, Scheme: u.Scheme}
	}
	return u, nil
}
