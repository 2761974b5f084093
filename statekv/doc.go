// Package statekv keeps the endpoint records in a JetStream KV bucket and
// runs DefectDojo's webhook state machine on them.
//
// # Records
//
// One key per endpoint: the key is the endpoint's id, the value a JSON
// Record (record.go) with DefectDojo's fields (name, url, header, owner,
// events, status, first_error, last_error, note) and the sidecar's own
// (created_at, deliver_from, retry_after, the signing secrets). ParseRecord
// and Validate are the only gate: a value that does not parse or validate
// (typed by hand with `nats kv put`) is never overwritten and holds the
// endpoint's deliveries until it is fixed. Unknown fields are kept.
//
// # The state machine
//
// Transition (transition.go) is a pure function: record, Input, time, Policy
// in, next record and whether it changed out. Statuses are active,
// active_tmp, inactive_tmp and inactive_permanent; active and active_tmp may be
// sent to (Status.Deliverable). NextTimer says which timed transition a
// record waits for and when; times are compared at the stored millisecond
// precision, so a timer never fires before its transition applies.
//
// # Store: compare-and-set
//
// Store (store.go) reads and writes records. Update re-reads the record,
// re-decides and writes only if the key still has the revision it read,
// retrying on a conflict; Apply runs Transition that way. So concurrent
// writers (several sidecars, timers, operators) never overwrite each other,
// and a transition that several sidecars race for is written once.
//
// # Watcher
//
// Watcher (watcher.go) holds an in-memory View of every record from a KV
// watch, tells Subscriptions which endpoints changed (the consumer package's
// manager reconciles from them), holds every endpoint while the bucket is
// deleted, and arms one timer per endpoint for its next timed transition
// (timers.go), written with Apply. Its Clock (default: the Store's, itself
// the wall clock) is what tests inject to run timed transitions at once.
//
// # Who writes which transition
//
//	input              transition                                         written by
//	TemporaryFailure   active → inactive_tmp; active_tmp → inactive_tmp   the runner (delivery outcome,
//	                   (inactive_permanent past give-up-after);           consumer package)
//	                   inactive_tmp: last_error and note move
//	PermanentFailure   active, active_tmp, inactive_tmp →                 the runner (delivery outcome),
//	                   inactive_permanent                                 then it dead-letters the event
//	Success            nothing (never written)                            -
//	ReactivateTimer    inactive_tmp → active_tmp, reactivate-after past   the watcher's timers
//	                   last_error, or at the Retry-After hold if later
//	RecoverTimer       active_tmp → active, more than recover-after past  the watcher's timers
//	                   last_error (errors cleared, RecoveryNote)
//	SecretTimer        previous secret dropped at previous_secret_until   the watcher's timers
//	UserActivate       any → active (after a successful ping)             user action: `endpoint activate`
//	UserDeactivate     any → inactive_permanent, with the user's note     user action: `endpoint deactivate`
//	(no input)         a new record, deliver_from, the secrets, through   user action: `endpoint add`,
//	                   Store.Create/Update; removal through Store.Delete  `skip`, `rotate-secret`, `remove`
//	(no input)         any value, not validated first                     hand edit: `nats kv put`
//
// The user actions are the CLI's today (cmd/dojo-webhooks); an API calls the
// same Store methods. Every writer goes through compare-and-set except a hand
// edit, which the watcher sees like any other write: a timer is re-armed from
// it, and an invalid value holds the endpoint.
package statekv
