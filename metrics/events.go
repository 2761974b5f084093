package metrics

import "sync"

// KnownEvents are DefectDojo's notification event names (dojo/notifications:
// its create_notification events and the webhook test): each always has its
// own value of the event label.
var KnownEvents = []string{
	"auto_close_engagement", "close_engagement", "code_review", "engagement_added", "engagement_closed",
	"jira_update", "other", "ping", "product_added", "product_type_added", "report_created",
	"review_requested", "risk_acceptance_expiration", "scan_added", "scan_added_empty", "sla_breach",
	"sla_breach_combined", "stale_engagement", "test_added", "upcoming_engagement", "user_mentioned",
}

// MaxOtherEvents is how many event names outside KnownEvents get a label value
// of their own, the first ones seen; every later one is counted under
// OverflowEvent. The ingest bridge is reachable without authentication when no
// token is set: this bounds the series a client can create.
const MaxOtherEvents = 50

// OverflowEvent is the event label of every name past MaxOtherEvents. It is not
// a valid event name, so it never collides with one (DefectDojo has an event
// named "other").
const OverflowEvent = "(other)"

// eventLabels maps event names to a bounded set of label values.
type eventLabels struct {
	known  map[string]bool
	mu     sync.Mutex
	others map[string]bool
}

func newEventLabels() *eventLabels {
	l := &eventLabels{known: make(map[string]bool, len(KnownEvents)), others: map[string]bool{}}
	for _, e := range KnownEvents {
		l.known[e] = true
	}
	return l
}

// label is the label value that counts event.
func (l *eventLabels) label(event string) string {
	if l.known[event] {
		return event
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.others[event] {
		return event
	}
	if len(l.others) < MaxOtherEvents {
		l.others[event] = true
		return event
	}
	return OverflowEvent
}
