package ingest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// DefaultHold is how long a request is held while its event cannot be stored
// (NATS unreachable, no stream yet): well under DefectDojo's 10 s timeout, so
// that it gets the sidecar's 503 rather than a timeout of its own.
const DefaultHold = 8 * time.Second

// holdRetry spaces out the publishes of a held request.
const holdRetry = 100 * time.Millisecond

// minTry is the shortest a held publish may wait for its ack: the client
// library itself retries a publish that found no stream for half a second.
const minTry = time.Second

// errNotConnected is the publish error of a held request while NATS is unreachable.
var errNotConnected = errors.New("NATS is not reachable")

// newMsgID is the Nats-Msg-Id of one accepted request: a publish retried after
// its ack was lost (the connection dropped in between) is stored once.
func newMsgID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "ingest-" + hex.EncodeToString(b[:])
}

// retryable reports whether a publish error may go away by itself (NATS or the
// stream coming back) rather than be repeated on every try.
func retryable(err error) bool {
	return !errors.Is(err, nats.ErrMaxPayload) && !errors.Is(err, nats.ErrBadSubject) &&
		!errors.Is(err, jetstream.ErrInvalidSubject)
}

// store publishes msg until JetStream has stored it, a non-retryable error
// comes, ctx (the request) ends, or the hold has passed; each try waits at most
// PublishTimeout (and, while held, not much past the hold). It returns the
// error that says most when the event is not stored: a try cut short by the
// hold's end does not hide why the tries before it failed.
func (h *Handler) store(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	deadline := time.Now().Add(h.opts.Hold)
	retry := time.NewTimer(0)
	defer retry.Stop()
	<-retry.C
	var cause error
	for {
		var err error
		if h.opts.Connected != nil && !h.opts.Connected() {
			// Never handed to the client library while disconnected: it has no
			// reconnect buffer, and a late publish would come after our answer.
			err = errNotConnected
		} else {
			timeout := h.opts.PublishTimeout
			if h.opts.Hold > 0 {
				timeout = min(timeout, max(time.Until(deadline), minTry))
			}
			tctx, cancel := context.WithTimeout(ctx, timeout)
			var ack *jetstream.PubAck
			ack, err = h.pub.PublishMsg(tctx, msg)
			cancel()
			if err == nil {
				return ack, nil
			}
		}
		if cause == nil || !errors.Is(err, context.DeadlineExceeded) {
			cause = err
		}
		if !retryable(err) || ctx.Err() != nil || !time.Now().Add(holdRetry).Before(deadline) {
			return nil, cause
		}
		retry.Reset(holdRetry)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (request ended: %w)", err, ctx.Err())
		case <-retry.C:
		}
	}
}
