// Package faults is the fault-injection test suite of dojo-webhooks. It holds no
// production code: everything is in its _test.go files, run with
//
//	go test -race -count=1 ./faults/
//
// Each test drives the real system the way an operator would meet it: the
// dojo-webhooks binary (built once, with -race, from ../cmd/dojo-webhooks) runs
// as a separate process against real nats-servers embedded in the test process
// (a single server, or a 3-node cluster on loopback), endpoints are written into
// the KV bucket, events are published to <prefix>.events.<event>, and receivers
// are httptest servers that record every request: its webhook-id header and the
// sequence number "n" carried in the JSON body.
//
// The faults injected, one test each (see the test files):
//
//   - the sidecar killed with SIGKILL in the middle of 20,000 events and started
//     again (sigkill_test.go);
//   - the NATS server restarted on the same store and port under load
//     (natsrestart_test.go);
//   - the events stream's leader stopped in a 3-node cluster with replicas=3
//     (cluster_test.go);
//   - two sidecar processes sharing one server: load shared, each timed
//     transition written once, no double delivery (replicas_test.go);
//   - the receiver answering 503 for a while, then back (receiverdown_test.go);
//   - bad input: malformed and wrongly-typed records, CR/LF in header fields,
//     non-http URLs, non-JSON and oversized bodies, invalid event names, the KV
//     bucket deleted under a running sidecar, NATS unreachable at start-up
//     (badinput_test.go).
//
// Every load test asserts the same two delivery properties at the receiver:
// nothing is lost (every event is answered 2xx at least once) and every copy of
// an event carries the same webhook-id as its first copy (at-least-once with a
// stable delivery id). Where the sidecar runs with DOJO_WEBHOOKS_MAX_IN_FLIGHT=1
// the order is checked too: an endpoint receives events in the order the stream
// stored them (publish order), a copy of an event arriving again only as a retry
// or redelivery of the latest one.
//
// Where a NATS fault is injected while events are still being published, the
// publisher retries with a Nats-Msg-Id (JetStream's dedup window stores each
// event once); elsewhere the webhook-id is the one derived from the stream
// sequence. The tests take about 1.5 minutes together on 2 cores, mostly the
// 20,000 events of the SIGKILL test and the consumers' 10 s AckWait.
//
// No test sleeps a fixed time to wait for something: each polls a condition
// with a deadline. Everything listens on 127.0.0.1.
package faults
