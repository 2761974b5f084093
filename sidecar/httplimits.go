package sidecar

import (
	"fmt"
	"log"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Bounds of the HTTP server (/healthz, /readyz, /metrics, /ingest), documented
// in the README's Limits section. A client that can reach the port must not be
// able to hold the process's descriptors or memory.
const (
	// DefaultHTTPReadTimeout bounds reading one whole request, body included
	// (DOJO_WEBHOOKS_HTTP_READ_TIMEOUT): a slow body is cut off there.
	DefaultHTTPReadTimeout = 30 * time.Second
	// MaxHTTPReadHeaderTimeout bounds reading a request's headers (a slowloris
	// on the headers); the read timeout when that is shorter.
	MaxHTTPReadHeaderTimeout = 10 * time.Second
	// DefaultHTTPWriteTimeout bounds writing one answer, from the end of the
	// request's headers: longer than the ingest publish timeout.
	DefaultHTTPWriteTimeout = 30 * time.Second
	// DefaultHTTPIdleTimeout is how long a keep-alive connection may wait for
	// its next request (DOJO_WEBHOOKS_HTTP_IDLE_TIMEOUT).
	DefaultHTTPIdleTimeout = 60 * time.Second
	// MaxHTTPHeaderBytes bounds a request's headers.
	MaxHTTPHeaderBytes = 64 << 10
	// DefaultHTTPMaxConns caps the connections served at once
	// (DOJO_WEBHOOKS_HTTP_MAX_CONNS); more wait in the kernel's accept queue.
	// Below the usual descriptor limit of 1024 with room for NATS and the
	// deliveries' own connections.
	DefaultHTTPMaxConns = 512
)

// HTTPLimits bound the HTTP server; zero fields take the defaults above.
type HTTPLimits struct {
	ReadTimeout  time.Duration // whole request, default DefaultHTTPReadTimeout; its headers within min(it, MaxHTTPReadHeaderTimeout)
	WriteTimeout time.Duration // answer, default DefaultHTTPWriteTimeout
	IdleTimeout  time.Duration // keep-alive wait for the next request, default DefaultHTTPIdleTimeout
	MaxConns     int           // connections served at once, default DefaultHTTPMaxConns
}

// withDefaults fills the zero fields of l.
func (l HTTPLimits) withDefaults() HTTPLimits {
	if l.ReadTimeout == 0 {
		l.ReadTimeout = DefaultHTTPReadTimeout
	}
	if l.WriteTimeout == 0 {
		l.WriteTimeout = DefaultHTTPWriteTimeout
	}
	if l.IdleTimeout == 0 {
		l.IdleTimeout = DefaultHTTPIdleTimeout
	}
	if l.MaxConns == 0 {
		l.MaxConns = DefaultHTTPMaxConns
	}
	return l
}

// validate refuses negative bounds.
func (l HTTPLimits) validate() error {
	if l.ReadTimeout < 0 || l.WriteTimeout < 0 || l.IdleTimeout < 0 || l.MaxConns < 0 {
		return fmt.Errorf("sidecar: HTTP limits must not be negative: %+v", l)
	}
	return nil
}

// readHeaderTimeout is the headers' share of the read timeout.
func (l HTTPLimits) readHeaderTimeout() time.Duration {
	return min(l.ReadTimeout, MaxHTTPReadHeaderTimeout)
}

// limitListener accepts at most n connections at a time: Accept waits for
// one to close first, and the others wait in the kernel's accept queue
// without holding a descriptor of this process.
type limitListener struct {
	net.Listener
	slots chan struct{}
	done  chan struct{}
	once  sync.Once
}

// limitConns wraps ln to serve at most n connections at once.
func limitConns(ln net.Listener, n int) net.Listener {
	return &limitListener{Listener: ln, slots: make(chan struct{}, n), done: make(chan struct{})}
}

// Accept waits for a free slot, then for a connection.
func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.slots }}, nil
}

// Close closes the listener and ends a wait for a slot.
func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// limitConn gives its slot back once, on its first Close.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// httpErrorLog routes the HTTP server's own messages (accept errors such as
// "too many open files", bad TLS or header sizes) to the sidecar's log, as warnings.
func httpErrorLog(l zerolog.Logger) *log.Logger {
	return log.New(zerologWriter{l}, "", 0)
}

// zerologWriter writes each line as one warning.
type zerologWriter struct{ l zerolog.Logger }

func (w zerologWriter) Write(p []byte) (int, error) {
	w.l.Warn().Str("component", "http").Msg(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
