package consumer

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/dojo-webhooks/dojo-webhooks/attempts"
	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/delivery"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// RequestDefaults are the request headers an event does not set itself.
type RequestDefaults struct {
	Instance  string // X-DefectDojo-Instance (DD_SITE_URL)
	UserAgent string // User-Agent
}

// NewRequest is the HTTP request that delivers an event (its body and NATS
// headers, under the delivery id) to the endpoint of rec: the record's URL,
// header and signing secrets valid at now; the event's X-DefectDojo-Instance and
// User-Agent headers override the defaults. Deliveries, replays and pings all
// build their request here.
func NewRequest(rec statekv.Record, event string, body []byte, id string, hdr nats.Header, d RequestDefaults, now time.Time) delivery.Request {
	return delivery.Request{
		URL: rec.URL, Event: event, Body: body, ID: id,
		Instance:   firstNonEmpty(hdr.Get(contract.HeaderInstance), d.Instance),
		UserAgent:  firstNonEmpty(hdr.Get(contract.HeaderUserAgent), d.UserAgent),
		HeaderName: rec.HeaderName, HeaderValue: rec.HeaderValue,
		Secrets: rec.SigningSecrets(now),
	}
}

// PingEvent and PingBody are what DefectDojo sends to test a webhook endpoint
// without owner (PingBodyFor: with one).
const (
	PingEvent = "ping"
	PingBody  = `{"description": "Test webhook notification", "title": "", "user": null}`
)

// PingBodyFor is the ping's body for an endpoint of owner: DefectDojo puts
// the endpoint's owner in `user` (null for a system endpoint).
func PingBodyFor(owner string) []byte {
	if owner == "" {
		return []byte(PingBody)
	}
	user, _ := json.Marshal(owner)
	return []byte(`{"description": "Test webhook notification", "title": "", "user": ` + string(user) + `}`)
}

// Ping sends DefectDojo's test notification to the endpoint of rec, as
// `endpoint add`, `endpoint ping` and `endpoint activate` do before they store anything.
func Ping(ctx context.Context, client *delivery.Client, rec statekv.Record, d RequestDefaults, now time.Time) delivery.Result {
	return client.Send(ctx, NewRequest(rec, PingEvent, PingBodyFor(rec.Owner), pingID(rec.ID, now), nil, d, now))
}

// PingSucceeded is DefectDojo's rule for a ping (raise_for_status): a final
// answer (redirects followed) below 400.
func PingSucceeded(res delivery.Result) bool {
	return res.Err == nil && res.StatusCode >= 200 && res.StatusCode < 400
}

// AttemptOf is the attempt-log record of one HTTP attempt, with what the
// answer showed; the caller adds the stream position and the states.
func AttemptOf(endpoint, event, webhookID string, kind attempts.Kind, res delivery.Result, start time.Time) attempts.Record {
	outcome := res.Class.String()
	return attempts.Record{
		Endpoint: endpoint, WebhookID: webhookID, Event: event, Kind: kind,
		Start: start.UTC(), DurationMS: float64(res.Duration.Microseconds()) / 1000, Status: res.StatusCode,
		Outcome: outcome, Note: res.Note, ResponseHeaders: res.Header,
		ResponseBody: string(res.Body), BodyTruncated: res.BodyTruncated,
	}
}

// pingID is the webhook-id of a ping sent at now.
func pingID(endpoint string, now time.Time) string {
	return fmt.Sprintf("ping-%s-%d", endpoint, now.UnixNano())
}

// PingAttempt is the attempt-log record of a ping that Ping sent at start (its
// now) to rec's endpoint.
func PingAttempt(rec statekv.Record, res delivery.Result, start time.Time) attempts.Record {
	a := AttemptOf(rec.ID, PingEvent, pingID(rec.ID, start), attempts.KindPing, res, start)
	a.StateBefore, a.StateAfter = string(rec.Status), string(rec.Status)
	return a
}
