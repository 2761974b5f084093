// Package contract names the public contract of dojo-webhooks on NATS: the
// subjects publishers and operators use, the streams and consumers the sidecar
// keeps, the headers it reads and writes and the ids it gives deliveries.
//
// It is a leaf package: every other package takes names from here, and no
// subject, stream or consumer name is written out anywhere else, so that what
// `nats consumer info`, `nats stream view` and a publisher see is defined once.
package contract

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// DefaultPrefix is the subject prefix when none is configured.
const DefaultPrefix = "defectdojo"

// Subject tokens after the prefix.
const (
	eventsToken     = "events"
	replayToken     = "replay"
	toToken         = "to"
	opsToken        = "ops"
	deadLetterToken = "deadletter"
	attemptsToken   = "attempts"
)

// consumerPrefix starts the name of every endpoint's durable consumer.
const consumerPrefix = "endpoint_"

// Names are the subjects and streams derived from a subject prefix.
type Names struct {
	Prefix     string // e.g. defectdojo
	Events     string // events stream, e.g. DEFECTDOJO_EVENTS
	DeadLetter string // dead-letter stream, e.g. DEFECTDOJO_DEADLETTER
	Attempts   string // attempt-log stream, e.g. DEFECTDOJO_ATTEMPTS
}

// NamesFor derives the stream names from the subject prefix: upper case, dots
// and dashes as underscores, plus _EVENTS, _DEADLETTER and _ATTEMPTS.
func NamesFor(prefix string) Names {
	base := strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(prefix))
	return Names{Prefix: prefix, Events: base + "_EVENTS", DeadLetter: base + "_DEADLETTER", Attempts: base + "_ATTEMPTS"}
}

// EventSubject is where publishers send an event: <prefix>.events.<event>.
func (n Names) EventSubject(event string) string { return n.Prefix + "." + eventsToken + "." + event }

// AllEvents matches every event subject: <prefix>.events.>.
func (n Names) AllEvents() string { return n.EventSubject(">") }

// ReplaySubject is where replays for one endpoint go: <prefix>.replay.<endpoint>.<event>.
// Only that endpoint's consumer listens there.
func (n Names) ReplaySubject(endpoint, event string) string {
	return n.Prefix + "." + replayToken + "." + endpoint + "." + event
}

// EndpointReplays matches every replay subject of one endpoint: <prefix>.replay.<endpoint>.>.
func (n Names) EndpointReplays(endpoint string) string { return n.ReplaySubject(endpoint, ">") }

// AllReplays matches the replay subjects of every endpoint: <prefix>.replay.>.
func (n Names) AllReplays() string { return n.Prefix + "." + replayToken + ".>" }

// DirectSubject is where an event addressed to one endpoint goes (POST
// /ingest/<endpoint>): <prefix>.to.<endpoint>.<event>. Only that endpoint's
// consumer listens there, whatever its owner and event filter.
func (n Names) DirectSubject(endpoint, event string) string {
	return n.Prefix + "." + toToken + "." + endpoint + "." + event
}

// EndpointDirect matches every direct subject of one endpoint: <prefix>.to.<endpoint>.>.
func (n Names) EndpointDirect(endpoint string) string { return n.DirectSubject(endpoint, ">") }

// AllDirect matches the direct subjects of every endpoint: <prefix>.to.>.
func (n Names) AllDirect() string { return n.Prefix + "." + toToken + ".>" }

// The operational events the sidecar publishes itself (package opsevents).
const (
	EventEndpointDisabled  = "webhook_endpoint_disabled"
	EventEndpointRecovered = "webhook_endpoint_recovered"
	EventEventsDropped     = "webhook_events_dropped"
)

// IsOpsEvent reports whether event is one of the sidecar's operational events.
func IsOpsEvent(event string) bool {
	switch event {
	case EventEndpointDisabled, EventEndpointRecovered, EventEventsDropped:
		return true
	}
	return false
}

// OpsSubject is where the sidecar publishes an operational event:
// <prefix>.ops.<event>. It is outside <prefix>.events.>, so that only an
// endpoint whose filter names the event gets it, never one that takes every
// DefectDojo event (which might refuse it, be disabled, and so on).
func (n Names) OpsSubject(event string) string { return n.Prefix + "." + opsToken + "." + event }

// AllOps matches every operational event: <prefix>.ops.>.
func (n Names) AllOps() string { return n.OpsSubject(">") }

// EventsStreamSubjects are the subjects the events stream stores.
func (n Names) EventsStreamSubjects() []string {
	return []string{n.AllEvents(), n.AllReplays(), n.AllDirect(), n.AllOps()}
}

// DeadLetterSubject holds one endpoint's dead letters: <prefix>.deadletter.<endpoint>.
func (n Names) DeadLetterSubject(endpoint string) string {
	return n.Prefix + "." + deadLetterToken + "." + endpoint
}

// AllDeadLetters matches the dead-letter subjects of every endpoint: <prefix>.deadletter.>.
func (n Names) AllDeadLetters() string { return n.DeadLetterSubject(">") }

// DeadLetterEndpoint returns the endpoint of a dead-letter subject.
func (n Names) DeadLetterEndpoint(subject string) (endpoint string, ok bool) {
	id, ok := strings.CutPrefix(subject, n.DeadLetterSubject(""))
	return id, ok && id != ""
}

// AttemptSubject holds the attempt log of one endpoint: <prefix>.attempts.<endpoint>.
// Its messages carry batches of attempt records, one JSON record a line.
func (n Names) AttemptSubject(endpoint string) string {
	return n.Prefix + "." + attemptsToken + "." + endpoint
}

// AllAttempts matches the attempt-log subjects of every endpoint: <prefix>.attempts.>.
func (n Names) AllAttempts() string { return n.AttemptSubject(">") }

// EventName returns the event of a message subject on the events stream, and
// whether the subject addresses one endpoint (a replay or a direct event),
// whose owner and event filter then do not apply.
func (n Names) EventName(subject string) (event string, addressed bool, ok bool) {
	if rest, found := strings.CutPrefix(subject, n.EventSubject("")); found && rest != "" {
		return rest, false, true
	}
	if rest, found := strings.CutPrefix(subject, n.OpsSubject("")); found && IsOpsEvent(rest) {
		return rest, false, true
	}
	for _, token := range []string{replayToken, toToken} {
		if rest, found := strings.CutPrefix(subject, n.Prefix+"."+token+"."); found {
			if _, ev, found := strings.Cut(rest, "."); found && ev != "" {
				return ev, true, true
			}
		}
	}
	return "", false, false
}

// IsReplay reports whether subject is a replay subject (<prefix>.replay.<endpoint>.<event>).
func (n Names) IsReplay(subject string) bool {
	return strings.HasPrefix(subject, n.Prefix+"."+replayToken+".")
}

// EventFilters are the event subjects of an event filter (empty = every
// DefectDojo event, no operational one), each once and sorted: JetStream
// refuses overlapping filter subjects, so an event named twice in a record
// must not give two filters. An operational event's subject is its OpsSubject.
func (n Names) EventFilters(events []string) []string {
	if len(events) == 0 {
		return []string{n.AllEvents()}
	}
	filters := make([]string, 0, len(events))
	for _, e := range events {
		if IsOpsEvent(e) {
			filters = append(filters, n.OpsSubject(e))
			continue
		}
		filters = append(filters, n.EventSubject(e))
	}
	slices.Sort(filters)
	return slices.Compact(filters)
}

// ConsumerFilters are the filter subjects of an endpoint's durable consumer: its
// event filter plus its own replay and direct subjects, sorted.
func (n Names) ConsumerFilters(endpoint string, events []string) []string {
	filters := append(n.EventFilters(events), n.EndpointReplays(endpoint), n.EndpointDirect(endpoint))
	slices.Sort(filters)
	return filters
}

// ConsumerName is the durable consumer of one endpoint on the events stream.
func ConsumerName(endpoint string) string { return consumerPrefix + endpoint }

// ConsumerEndpoint returns the endpoint of a durable consumer name, and false
// for a consumer that is not an endpoint's.
func ConsumerEndpoint(consumer string) (endpoint string, ok bool) {
	id, ok := strings.CutPrefix(consumer, consumerPrefix)
	return id, ok && id != ""
}

// TerminatedAdvisorySubject is where nats-server announces, for every consumer
// of stream, a delivery it ended without an acknowledgement: among them the
// events the stream's limits discarded while a consumer held them.
func TerminatedAdvisorySubject(stream string) string {
	return "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED." + stream + ".*"
}

// Headers a publisher may set on an event.
const (
	// HeaderRecipient makes an event personal: delivered only to that user's endpoints.
	HeaderRecipient = "X-DefectDojo-Recipient"
	// HeaderInstance overrides the configured X-DefectDojo-Instance of the delivery.
	HeaderInstance = "X-DefectDojo-Instance"
	// HeaderUserAgent overrides the configured User-Agent of the delivery.
	HeaderUserAgent = "User-Agent"
)

// HeaderAbout names the endpoint an operational event (webhook_endpoint_disabled,
// …) is about: that endpoint is never sent it.
const HeaderAbout = "Dojo-Webhooks-About"

// HeaderWebhookID carries the original event id on replays and dead letters.
// It is the sidecar's own: honoured only on replay subjects (see WebhookID),
// never on an events subject, where any publisher could set it.
const HeaderWebhookID = "Dojo-Webhooks-Id"

// Dead-letter headers: why and when an event failed for good.
const (
	HeaderDLEndpoint  = "Dojo-Webhooks-Endpoint"
	HeaderDLEvent     = "Dojo-Webhooks-Event"
	HeaderDLReason    = "Dojo-Webhooks-Reason"
	HeaderDLStatus    = "Dojo-Webhooks-Status"
	HeaderDLError     = "Dojo-Webhooks-Error"
	HeaderDLTime      = "Dojo-Webhooks-Time"
	HeaderDLAttempts  = "Dojo-Webhooks-Attempts"
	HeaderDLStream    = "Dojo-Webhooks-Stream"
	HeaderDLStreamSeq = "Dojo-Webhooks-Stream-Seq"
)

// IsDeadLetterHeader reports whether k is one of the headers the sidecar adds to
// a dead letter (or the message id it deduplicates them with).
func IsDeadLetterHeader(k string) bool {
	switch k {
	case HeaderDLEndpoint, HeaderDLEvent, HeaderDLReason, HeaderDLStatus, HeaderDLError, HeaderDLTime,
		HeaderDLAttempts, HeaderDLStream, HeaderDLStreamSeq, nats.MsgIdHdr:
		return true
	}
	return false
}

// WebhookID is the stable id of an event (the webhook-id header): on a replay
// subject (replay true) the id the sidecar carried over in HeaderWebhookID, else
// the publisher's Nats-Msg-Id, else stream and sequence. HeaderWebhookID on an
// events subject is ignored: a publisher must not choose the id receivers
// deduplicate on, and so make them drop a real event.
func WebhookID(stream string, hdr nats.Header, seq uint64, replay bool) string {
	if id := hdr.Get(HeaderWebhookID); id != "" && replay {
		return id
	}
	if id := hdr.Get(nats.MsgIdHdr); id != "" {
		return id
	}
	return stream + "-" + strconv.FormatUint(seq, 10)
}

// DeadLetterMsgID is the Nats-Msg-Id of a dead letter: a second copy of the same
// failure (a crash between the publish and the Term) is dropped as a duplicate.
func DeadLetterMsgID(endpoint, stream string, seq uint64) string {
	return "dl:" + endpoint + ":" + stream + ":" + strconv.FormatUint(seq, 10)
}

// HeldUntil is the pause of a consumer whose endpoint waits for a person
// (inactive_permanent or an invalid record): far enough to mean "until resumed".
var HeldUntil = time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC)

// IsHeld reports whether a consumer pause is the hold of HeldUntil rather than a
// timed pause that ends by itself.
func IsHeld(pausedUntil time.Time) bool { return !pausedUntil.Before(HeldUntil) }
