package faults

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/dojo-webhooks/dojo-webhooks/contract"
)

// resumeBound is how soon deliveries must go on after the stream leader is lost:
// "within seconds", a leader election plus at most one AckWait for an event
// whose ack was lost with the server.
const resumeBound = redeliveryBound + 5*time.Second

// cluster is a 3-node JetStream cluster on loopback, embedded in the test process.
type cluster struct {
	t       testing.TB
	mu      sync.Mutex
	servers map[string]*server.Server // by server name n1..n3; a stopped one is removed
	urls    []string
}

// startCluster starts n1, n2 and n3 (one store directory each, routes to all
// three, cluster "faults") and waits until JetStream answers on it.
func startCluster(t testing.TB) *cluster {
	t.Helper()
	c := &cluster{t: t, servers: map[string]*server.Server{}}
	var clientPorts, routePorts []int
	var routes []string
	for range 3 {
		clientPorts = append(clientPorts, freePort(t))
		routePorts = append(routePorts, freePort(t))
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", routePorts[len(routePorts)-1]))
	}
	t.Cleanup(c.stopAll)
	for i := range 3 {
		name := fmt.Sprintf("n%d", i+1)
		opts := &server.Options{
			ServerName: name, Host: "127.0.0.1", Port: clientPorts[i],
			JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
			Cluster:         server.ClusterOpts{Name: "faults", Host: "127.0.0.1", Port: routePorts[i]},
			Routes:          server.RoutesFromStr(strings.Join(routes, ",")),
			JetStreamLimits: server.JSLimitOpts{DefaultMaxConsumers: -1},
		}
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatalf("server %s: %v", name, err)
		}
		go s.Start()
		c.servers[name] = s
		c.urls = append(c.urls, fmt.Sprintf("nats://127.0.0.1:%d", clientPorts[i]))
	}
	for name, s := range c.servers {
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatalf("server %s not ready for connections", name)
		}
	}
	_, js := connect(t, c.URL())
	waitFor(t, 30*time.Second, "the cluster's JetStream to answer", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err == nil
	})
	return c
}

// URL lists the three client URLs, comma separated (NATS_URL).
func (c *cluster) URL() string { return strings.Join(c.urls, ",") }

// stop shuts one server down and waits until it is gone.
func (c *cluster) stop(name string) {
	c.mu.Lock()
	s := c.servers[name]
	delete(c.servers, name)
	c.mu.Unlock()
	if s == nil {
		c.t.Fatalf("no running server %s", name)
	}
	s.Shutdown()
	s.WaitForShutdown()
}

func (c *cluster) stopAll() {
	c.mu.Lock()
	all := c.servers
	c.servers = map[string]*server.Server{}
	c.mu.Unlock()
	for _, s := range all {
		s.Shutdown()
	}
	for _, s := range all {
		s.WaitForShutdown()
	}
}

// leaderOf returns the name of the server leading a stream or consumer.
type leaderOf func(ctx context.Context) (string, error)

// moveLeader asks for leader stepdowns with a preferred server until that server leads.
func moveLeader(t testing.TB, nc *nats.Conn, what, stepdownSubject string, leader leaderOf, to string) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if l, err := leader(ctx); err == nil && l == to {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("could not move the leader of %s to %s", what, to)
		}
		_, _ = nc.Request(stepdownSubject, fmt.Appendf(nil, `{"placement": {"preferred": %q}}`, to), 5*time.Second)
		for range 100 { // up to 5 s for the election
			if l, err := leader(ctx); err == nil && l != "" {
				if l == to {
					return
				}
			}
			time.Sleep(50 * time.Millisecond) // poll interval
		}
	}
}

// TestClusterStreamLeaderLostMidLoad: a 3-node cluster with the streams, the
// consumers and the bucket at 3 replicas (DOJO_WEBHOOKS_REPLICAS=3); the sidecar
// has the three URLs in NATS_URL. The events stream's leader is stopped in the
// middle of a load that is still being published: a new leader is elected,
// delivery goes on within seconds (the pause is measured and logged) and nothing
// is lost; a copy delivered again carries the same webhook-id; order is kept.
//
// The stopped server is never the one the sidecar is connected to (that is the
// reconnect of TestNATSRestartMidLoadLosesNothing), and the endpoint's consumer
// is led by another server in one subtest, by the stopped one in the other: the
// leaders are placed with stepdown requests, so that each case is deterministic.
func TestClusterStreamLeaderLostMidLoad(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name        string
		consumerToo bool
	}{
		{"consumer led by another server", false},
		{"consumer led by the same server", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			clusterLeaderLoss(t, c.consumerToo)
		})
	}
}

func clusterLeaderLoss(t *testing.T, consumerToo bool) {
	const total = 2000
	c := startCluster(t)
	env := sidecarEnv(c.URL(), "DOJO_WEBHOOKS_REPLICAS", "3", "DOJO_WEBHOOKS_MAX_IN_FLIGHT", "1")
	sc := startSidecar(t, "sidecar", env)
	nc, js := connect(t, c.URL())
	kv := bucketOf(t, js)
	if st, err := kv.Status(context.Background()); err != nil {
		t.Fatal(err)
	} else if bs, ok := st.(*jetstream.KeyValueBucketStatus); !ok || bs.StreamInfo().Config.Replicas != 3 {
		t.Fatalf("the bucket is not replicated 3 times: %+v", st)
	}
	r := newReceiver(t)
	createEndpoint(t, kv, "clustered", r.URL())
	waitConsumer(t, js, "clustered")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stream, err := js.Stream(ctx, names.Events)
	if err != nil {
		t.Fatal(err)
	}
	if info := stream.CachedInfo(); info.Config.Replicas != 3 {
		t.Fatalf("events stream: %d replicas, want 3", info.Config.Replicas)
	}
	cons, err := js.Consumer(ctx, names.Events, contract.ConsumerName("clustered"))
	if err != nil {
		t.Fatal(err)
	}
	if ci := cons.CachedInfo(); ci.Config.Replicas != 3 && ci.Config.Replicas != 0 {
		t.Errorf("the endpoint's consumer has %d replicas, want 3 (or the stream's)", ci.Config.Replicas)
	}
	streamLeader := func(ctx context.Context) (string, error) {
		info, err := stream.Info(ctx)
		if err != nil || info.Cluster == nil {
			return "", err
		}
		return info.Cluster.Leader, nil
	}
	consumerLeader := func(ctx context.Context) (string, error) {
		info, err := cons.Info(ctx)
		if err != nil || info.Cluster == nil {
			return "", err
		}
		return info.Cluster.Leader, nil
	}

	// Place the leaders: the stream's on a server the sidecar is not connected to,
	// the consumer's on the same server or on another one.
	connected := fmt.Sprint(sc.logEntries(logMessage("NATS connected"))[0]["url"])
	var others []string
	for i, u := range c.urls {
		if u != connected {
			others = append(others, fmt.Sprintf("n%d", i+1))
		}
	}
	if len(others) != 2 {
		t.Fatalf("the sidecar is connected to %s, not one of %v", connected, c.urls)
	}
	target := others[0]
	moveLeader(t, nc, "stream "+names.Events, "$JS.API.STREAM.LEADER.STEPDOWN."+names.Events, streamLeader, target)
	consumerOn := others[1]
	if consumerToo {
		consumerOn = target
	}
	moveLeader(t, nc, "consumer "+contract.ConsumerName("clustered"),
		"$JS.API.CONSUMER.LEADER.STEPDOWN."+names.Events+"."+contract.ConsumerName("clustered"), consumerLeader, consumerOn)

	pub := newPublished(total)
	if err := publishRange(ctx, js, "scan_added", 0, total/2, "cluster-", pub); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "some events delivered", func() bool { return r.delivered() >= total/5 })

	sl, err1 := streamLeader(ctx)
	cl, err2 := consumerLeader(ctx)
	if err1 != nil || err2 != nil || sl != target || cl != consumerOn {
		t.Fatalf("leaders moved: stream %s (%v), consumer %s (%v); want %s and %s", sl, err1, cl, err2, target, consumerOn)
	}
	stoppedAt := time.Now()
	c.stop(target)
	t.Logf("stopped %s, the events stream's leader (the consumer's leader: %s; the sidecar connected to %s), after %d events delivered",
		target, consumerOn, connected, r.delivered())
	published := make(chan error, 1)
	go func() { published <- publishRange(ctx, js, "scan_added", total/2, total, "cluster-", pub) }()

	waitFor(t, time.Minute, "a delivery after the leader was stopped", func() bool {
		hits := r.requests()
		return len(hits) > 0 && hits[len(hits)-1].At.After(stoppedAt)
	})
	firstAfter := time.Since(stoppedAt)
	r.waitDelivered(t, total, time.Minute)
	if err := <-published; err != nil {
		t.Fatal(err)
	}
	sl, _ = streamLeader(ctx)
	cl, _ = consumerLeader(ctx)
	hits := r.requests()
	dup := checkAtLeastOnce(t, hits, pub.ids)
	checkOrder(t, hits, pub)
	pause, ended := longestPause(hits, stoppedAt)
	t.Logf("new leaders: stream %s, consumer %s; %d events, %d requests, %d delivered more than once; "+
		"deliveries went on within %s of the stop; longest pause %s (ended %s after the stop); all delivered %s after the stop",
		sl, cl, total, len(hits), dup, firstAfter.Round(time.Millisecond), pause.Round(time.Millisecond),
		ended.Round(time.Millisecond), time.Since(stoppedAt).Round(time.Millisecond))
	if pause > resumeBound {
		t.Errorf("deliveries paused %s after the leader was stopped, more than %s", pause, resumeBound)
	}
	if sc.exited() {
		t.Fatalf("the sidecar exited (%v) when the leader was stopped", sc.err)
	}
}
