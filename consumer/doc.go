// Package consumer delivers the events stored in JetStream to the webhook
// endpoints, one durable consumer per endpoint.
//
// # The pipeline
//
//	ingest ──publish──▶ <prefix>.events.<event>  ┐
//	replay ──publish──▶ <prefix>.replay.<id>.<e> ┴─ stream <P>_EVENTS (EnsureStreams)
//	                                                  │ one durable consumer per endpoint
//	                                                  │ (contract.ConsumerName), filtered by
//	                                                  │ the record's events
//	                                                  ▼
//	statekv.Watcher ──changed ids──▶ Manager.Run ──reconcile──▶ consumer defined, paused or resumed
//	                                      │                      runner started or stopped
//	                                      ▼
//	                                   runner ──delivery.Client.Send──▶ endpoint
//	                                      │
//	                                      ├─ decideSettle: ack / nak / nak with delay / term
//	                                      ├─ failures: statekv.Store.Apply (the record's transition)
//	                                      └─ permanent failures: <prefix>.deadletter.<id> in <P>_DEADLETTER
//
// Streams (streams.go): the events stream holds every event and the replays
// for as long as the endpoints that are down may need them; the dead-letter
// stream holds what an endpoint failed permanently, with the reason in
// headers (contract.HeaderDL*). ReplayDeadLetters and ReplaySince (replay.go)
// publish events again on an endpoint's replay subject, which only its
// consumer listens to.
//
// Manager (manager.go): Run subscribes to the watcher and, for every endpoint
// that changed, reconciles its consumer with its record: the filter subjects
// and start (definition; a skip moves the start, so the consumer is recreated),
// the server-side pause (pauseFor: none while deliverable, until the
// reactivation for inactive_tmp, "held" (contract.HeldUntil) for
// inactive_permanent and invalid records), and a runner while the endpoint may
// be sent to. A failed server operation is retried every reconcileRetry.
//
// Runner (runner.go): one per deliverable endpoint and sidecar. It consumes the
// endpoint's consumer with at most Config.MaxInFlight requests in flight (in
// publish order when 1), the server handing it a window of events ahead
// (MaxAckPending PipelineWindow; window.go: order, give-back, take-over; the
// ordered consumer is pinned to one sidecar), and for each message checks that
// the endpoint may be sent to, routes it (owner and event filter), builds the
// request with NewRequest (request.go), sends it, logs it, tells the Observer,
// and settles it. A panic in one delivery is logged and the event NAKed with
// a delay; the process goes on.
//
// Settle decision (settle.go): decideSettle is a pure function of the outcome
// class, the shutdown state and the results of the two writes a failure
// needs (the record's transition, then for a permanent failure the dead
// letter). Its doc comment tabulates every case.
//
// # Who pauses a consumer
//
// Two places: the manager's reconcile owns the steady state, and the runner
// pauses at once after a failure, before it NAKs the event, so that the
// server does not hand the event straight back before the watcher has seen
// the failure. Why both are needed and what keeps them consistent (the
// runner's pausedAt, the manager's kick channel and recheck) is written down
// in one place, above Manager.pauseAfterFailure in manager.go.
//
// # Who writes the record
//
// The runner writes the failures of deliveries (statekv.TemporaryFailure,
// statekv.PermanentFailure); success writes nothing. The timers are the
// watcher's, user actions the CLI's; see the statekv package documentation.
package consumer
