// Package opsevents publishes the sidecar's own events about its endpoints,
// where DefectDojo would raise an Alert: webhook_endpoint_disabled when an
// endpoint becomes inactive_permanent, webhook_endpoint_recovered when it is
// active again after a failure state, webhook_events_dropped when events were
// lost to the events stream's limits before it got them.
//
// They are stored in the events stream like any DefectDojo event, on
// contract.Names.OpsSubject, so that any endpoint subscribes by naming them in
// its event filter (a Slack or Teams relay, a pager); an endpoint that takes
// every event does not get them, and none is sent to the endpoint it is about
// (contract.HeaderAbout). Every replica's watcher sees each change: every
// replica publishes it, under a Nats-Msg-Id derived from the endpoint and the
// KV revision, and the events stream's duplicate window keeps one.
package opsevents

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/dojo-webhooks/dojo-webhooks/contract"
	"github.com/dojo-webhooks/dojo-webhooks/statekv"
)

// The events the sidecar publishes itself.
const (
	EndpointDisabled  = contract.EventEndpointDisabled
	EndpointRecovered = contract.EventEndpointRecovered
	EventsDropped     = contract.EventEventsDropped
)

// publishTimeout bounds one publish; publishFor bounds the retries of one
// event, well inside the events stream's default duplicate window (2 min) so
// that a late retry is still deduplicated.
const (
	publishTimeout = 5 * time.Second
	publishRetry   = time.Second
	publishFor     = 30 * time.Second
)

// Body is the JSON body of an operational event.
type Body struct {
	Title          string     `json:"title"`       // one line for a chat relay
	Description    string     `json:"description"` // what happened and what to do
	ID             string     `json:"id"`          // the endpoint
	Name           string     `json:"name"`
	URL            string     `json:"url"` // its password masked
	Owner          *string    `json:"owner"`
	Status         string     `json:"status"`
	PreviousStatus string     `json:"previous_status,omitempty"`
	Note           string     `json:"note"`
	FirstError     *time.Time `json:"first_error"`
	LastError      *time.Time `json:"last_error"`
	Revision       uint64     `json:"revision"`          // KV revision of the record the event is about
	Dropped        uint64     `json:"dropped,omitempty"` // webhook_events_dropped: how many events were lost
	Time           time.Time  `json:"time"`              // when the sidecar saw it
}

// Publisher watches the endpoint records and publishes the operational events.
type Publisher struct {
	js      jetstream.JetStream
	names   contract.Names
	watcher *statekv.Watcher
	log     zerolog.Logger
	now     func() time.Time
	drops   chan drop // ReportDropped's queue, published by Run
}

// drop is one loss to publish as webhook_events_dropped.
type drop struct {
	endpoint           string
	count, first, last uint64
}

// dropQueue bounds the losses waiting to be published; past it one is logged and skipped.
const dropQueue = 256

// New returns a publisher; Run starts it, Dropped is called by loss detection.
func New(js jetstream.JetStream, names contract.Names, watcher *statekv.Watcher, log zerolog.Logger, now func() time.Time) *Publisher {
	if now == nil {
		now = time.Now
	}
	return &Publisher{js: js, names: names, watcher: watcher, log: log, now: now, drops: make(chan drop, dropQueue)}
}

// Run publishes an event for every change of status it sees until ctx is
// done. A record first seen (at start-up, or created) publishes nothing: only
// a change this watcher saw happen does.
func (p *Publisher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { p.runDrops(ctx) })
	sub := p.watcher.Subscribe()
	defer sub.Close()
	last := map[string]statekv.Status{}
	for {
		ids, err := sub.Next(ctx)
		if err != nil {
			return nil // ctx done
		}
		for _, id := range ids {
			view, ok := p.watcher.Get(id)
			if !ok {
				delete(last, id)
				continue
			}
			if !view.Valid() {
				continue
			}
			before, seen := last[id]
			last[id] = view.Record.Status
			if !seen {
				continue
			}
			if event := Change(before, view.Record.Status); event != "" {
				p.publish(ctx, event, view, before, 0, MsgID(event, id, strconv.FormatUint(view.Revision, 10)))
			}
		}
	}
}

// ReportDropped queues a webhook_events_dropped for Run to publish (see
// Dropped); it never blocks: the loss detection calls it from its loop.
func (p *Publisher) ReportDropped(endpoint string, count, first, last uint64) {
	select {
	case p.drops <- drop{endpoint, count, first, last}:
	default:
		p.log.Warn().Str("endpoint", endpoint).Uint64("dropped", count).
			Msg("too many dropped-events reports waiting; this one is not published as webhook_events_dropped")
	}
}

// runDrops publishes the queued losses until ctx is done.
func (p *Publisher) runDrops(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-p.drops:
			if err := p.Dropped(ctx, d.endpoint, d.count, d.first, d.last); err != nil && ctx.Err() == nil {
				p.log.Error().Err(err).Str("endpoint", d.endpoint).Msg("webhook_events_dropped not published")
			}
		}
	}
}

// Change is the operational event a change of status from before to after
// calls for, or "" for none.
func Change(before, after statekv.Status) string {
	switch {
	case before == after:
		return ""
	case after == statekv.StatusInactivePermanent:
		return EndpointDisabled
	case after == statekv.StatusActive:
		return EndpointRecovered // from active_tmp, inactive_tmp or inactive_permanent
	}
	return ""
}

// MsgID is the Nats-Msg-Id of an operational event: the same on every replica
// for the same change (event, endpoint and what identifies the change: the
// KV revision, or the lost stream sequences).
func MsgID(event, endpoint, change string) string {
	return "ops:" + event + ":" + endpoint + ":" + change
}

// Dropped publishes webhook_events_dropped: count events the endpoint had not
// received were removed by the events stream's limits (max age or bytes),
// stream sequences first to last. Every replica that detects the same loss
// (same endpoint and sequences) publishes the same Nats-Msg-Id: one is kept.
// Without sequences (0, 0) the loss is identified by the record's revision and count.
func (p *Publisher) Dropped(ctx context.Context, endpoint string, count, first, last uint64) error {
	view, ok := p.watcher.Get(endpoint)
	if !ok {
		return fmt.Errorf("events dropped for endpoint %s: %w", endpoint, statekv.ErrNotFound)
	}
	change := strconv.FormatUint(first, 10) + "-" + strconv.FormatUint(last, 10)
	if first == 0 && last == 0 {
		change = "r" + strconv.FormatUint(view.Revision, 10) + "-n" + strconv.FormatUint(count, 10)
	}
	return p.publish(ctx, EventsDropped, view, "", count, MsgID(EventsDropped, endpoint, change))
}

// publish sends one operational event, trying again for publishFor.
func (p *Publisher) publish(ctx context.Context, event string, view statekv.View, before statekv.Status, dropped uint64, id string) error {
	data, err := json.Marshal(bodyOf(event, view, before, dropped, p.now()))
	if err != nil {
		return fmt.Errorf("%s: %w", event, err)
	}
	msg := &nats.Msg{Subject: p.names.OpsSubject(event), Data: data, Header: nats.Header{}}
	msg.Header.Set(nats.MsgIdHdr, id)
	msg.Header.Set(contract.HeaderAbout, view.ID)
	deadline := time.Now().Add(publishFor)
	for {
		pctx, cancel := context.WithTimeout(ctx, publishTimeout)
		ack, err := p.js.PublishMsg(pctx, msg)
		cancel()
		if err == nil {
			p.log.Info().Str("endpoint", view.ID).Str("event", event).Bool("duplicate", ack.Duplicate).
				Uint64("sequence", ack.Sequence).Msg("operational event published")
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			p.log.Error().Str("endpoint", view.ID).Str("event", event).Err(err).Msg("operational event not published")
			return fmt.Errorf("publish %s: %w", event, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(publishRetry):
		}
	}
}

// bodyOf is the body of event about view.
func bodyOf(event string, view statekv.View, before statekv.Status, dropped uint64, now time.Time) Body {
	rec := view.Record
	b := Body{ID: view.ID, Name: rec.Name, URL: rec.RedactedURL(), Status: string(rec.Status), PreviousStatus: string(before),
		Note: rec.Note, FirstError: timeOrNil(rec.FirstError), LastError: timeOrNil(rec.LastError),
		Revision: view.Revision, Dropped: dropped, Time: now.UTC()}
	if rec.Owner != "" {
		owner := rec.Owner
		b.Owner = &owner
	}
	switch event {
	case EndpointDisabled:
		b.Title = "Webhook endpoint " + rec.Name + " disabled"
		b.Description = "Deliveries to " + rec.Name + " stopped (" + rec.Note + "): its events wait in its backlog until it is activated again (dojo-webhooks endpoint activate " + view.ID + ")."
	case EndpointRecovered:
		b.Title = "Webhook endpoint " + rec.Name + " recovered"
		b.Description = rec.Name + " is active again (was " + string(before) + ")."
	case EventsDropped:
		b.Title = "Webhook endpoint " + rec.Name + " lost " + strconv.FormatUint(dropped, 10) + " events"
		b.Description = strconv.FormatUint(dropped, 10) + " events for " + rec.Name + " were removed by the events stream's limits before they were delivered."
	}
	return b
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
