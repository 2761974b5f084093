package delivery_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/dojo-webhooks/dojo-webhooks/delivery"
)

const allowHint = " (allow it with DOJO_WEBHOOKS_ALLOW_NETWORKS)"

// stubResolver answers from a table; a host's answers are used in turn, the last one repeating.
type stubResolver struct {
	mu      sync.Mutex
	answers map[string][][]netip.Addr
	calls   map[string]int
}

func newStubResolver(answers map[string][]string) *stubResolver {
	r := &stubResolver{answers: map[string][][]netip.Addr{}, calls: map[string]int{}}
	for host, addrs := range answers {
		var list []netip.Addr
		for _, a := range addrs {
			list = append(list, netip.MustParseAddr(a))
		}
		r.answers[host] = [][]netip.Addr{list}
	}
	return r
}

func (r *stubResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	seq, ok := r.answers[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	n := r.calls[host]
	r.calls[host]++
	return seq[min(n, len(seq)-1)], nil
}

// dialRecorder records the addresses given to DialContext and dials loopback ones, or redirects
// them to a local test server; any other address is refused without a packet sent.
type dialRecorder struct {
	mu       sync.Mutex
	addrs    []string
	redirect map[string]string // addr => addr actually dialled (a local test server)
}

func (d *dialRecorder) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d.mu.Lock()
	d.addrs = append(d.addrs, addr)
	to, ok := d.redirect[addr]
	d.mu.Unlock()
	if !ok {
		if ap, err := netip.ParseAddrPort(addr); err != nil || !ap.Addr().IsLoopback() {
			// Nothing is sent to a non-loopback address in tests.
			return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
		}
		to = addr
	}
	return (&net.Dialer{}).DialContext(ctx, network, to)
}

func (d *dialRecorder) dialled() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.addrs...)
}

func TestBlockPrivateRefusesEachClass(t *testing.T) {
	resolver := newStubResolver(map[string][]string{
		"internal.test": {"10.0.0.1"},
		"meta.test":     {"169.254.1.1"},
		"zero.test":     {"::"},
		"cgnat.test":    {"100.64.0.1"},
		"mapped.test":   {"::ffff:192.168.1.1"},
		"ula.test":      {"fd12:3456::1"},
	})
	c := delivery.New(delivery.Options{BlockPrivate: true, Resolver: resolver, DialContext: noDial(t)})
	tests := []struct{ url, note string }{
		{"http://10.0.0.1/hook", "10.0.0.1 is a private address"},
		{"https://172.16.5.4:8443/hook", "172.16.5.4 is a private address"},
		{"http://192.168.1.1/", "192.168.1.1 is a private address"},
		{"http://[fd00::1]/", "fd00::1 is a private address"},
		{"http://169.254.169.254/latest/meta-data", "169.254.169.254 is a link-local address"},
		{"http://[fe80::1]/", "fe80::1 is a link-local address"},
		{"http://[fe80::1%25eth0]/", "fe80::1%eth0 is a link-local address"},
		{"http://0.0.0.0/", "0.0.0.0 is an unspecified address"},
		{"http://[::]/", ":: is an unspecified address"},
		{"http://0.1.2.3/", `0.1.2.3 is a "this network" address`},
		{"http://127.0.0.2:9/", "127.0.0.2 is a loopback address"},
		{"http://[::1]:9/", "::1 is a loopback address"},
		{"http://224.0.0.1/", "224.0.0.1 is a multicast address"},
		{"http://[ff02::1]/", "ff02::1 is a multicast address"},
		{"http://100.64.0.1/", "100.64.0.1 is a shared (CGNAT) address"},
		{"http://100.127.255.254/", "100.127.255.254 is a shared (CGNAT) address"},
		{"http://240.0.0.1/", "240.0.0.1 is a reserved address"},
		{"http://255.255.255.255/", "255.255.255.255 is a reserved address"},
		{"http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1 is a loopback address"},
		{"http://[::ffff:10.0.0.1]/", "::ffff:10.0.0.1 is a private address"},
		{"http://[::ffff:169.254.169.254]/", "::ffff:169.254.169.254 is a link-local address"},
		{"http://[::ffff:100.64.0.1]/", "::ffff:100.64.0.1 is a shared (CGNAT) address"},
		{"http://[64:ff9b::a9fe:a9fe]/", "64:ff9b::a9fe:a9fe is a link-local address"}, // NAT64 of 169.254.169.254
		{"http://internal.test/hook", "internal.test resolved to 10.0.0.1, a private address"},
		{"https://meta.test/", "meta.test resolved to 169.254.1.1, a link-local address"},
		{"http://zero.test/", "zero.test resolved to ::, an unspecified address"},
		{"http://cgnat.test/", "cgnat.test resolved to 100.64.0.1, a shared (CGNAT) address"},
		{"http://mapped.test/", "mapped.test resolved to 192.168.1.1, a private address"}, // resolved IPv4-mapped addresses are unmapped
		{"http://ula.test/", "ula.test resolved to fd12:3456::1, a private address"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			res := c.Send(t.Context(), delivery.Request{URL: tt.url, Event: "ping", HeaderName: "X-Auth", HeaderValue: secret})
			want := "Destination refused: " + tt.note + allowHint
			if res.Class != delivery.Permanent || res.StatusCode != 0 || res.Note != want {
				t.Errorf("got (%v, %d, %q), want (permanent, 0, %q)", res.Class, res.StatusCode, res.Note, want)
			}
			if !errors.Is(res.Err, delivery.ErrDestinationRefused) {
				t.Errorf("Err = %v, want it to match ErrDestinationRefused", res.Err)
			}
			if class, note := delivery.Classify(res.StatusCode, res.Err); class != res.Class || note != res.Note {
				t.Errorf("Classify(Send) = (%v, %q), want (%v, %q)", class, note, res.Class, res.Note)
			}
		})
	}
}

// Public addresses pass the check and reach the dialler as "ip:port".
func TestBlockPrivateLetsPublicThrough(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {})
	resolver := newStubResolver(map[string][]string{"hooks.example.com": {"2001:db8::7", "203.0.113.7"}})
	dialer := &dialRecorder{redirect: map[string]string{"203.0.113.7:80": srv.Listener.Addr().String()}}
	c := delivery.New(delivery.Options{BlockPrivate: true, Resolver: resolver, DialContext: dialer.DialContext})
	for _, u := range []string{"http://hooks.example.com/hook", "http://203.0.113.7/hook"} {
		if res := c.Send(t.Context(), delivery.Request{URL: u, Event: "ping"}); res.Class != delivery.Success {
			t.Errorf("%s: got %+v, want success", u, res)
		}
		c.CloseIdle()
	}
	// The first address failed to connect (nothing listens there), the second was tried next.
	want := []string{"[2001:db8::7]:80", "203.0.113.7:80", "203.0.113.7:80"}
	if got := dialer.dialled(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("dialled %q, want %q", got, want)
	}
}

func TestBlockPrivateLoopback(t *testing.T) {
	srv, conns := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {})
	port := srv.Listener.Addr().(*net.TCPAddr).Port

	t.Run("refused", func(t *testing.T) {
		c := delivery.New(delivery.Options{BlockPrivate: true})
		res := c.Send(t.Context(), delivery.Request{URL: srv.URL + "/hook", Event: "ping"})
		want := "Destination refused: 127.0.0.1 is a loopback address" + allowHint
		if res.Class != delivery.Permanent || res.StatusCode != 0 || res.Note != want {
			t.Errorf("got (%v, %d, %q), want (permanent, 0, %q)", res.Class, res.StatusCode, res.Note, want)
		}
		if n := conns.n.Load(); n != 0 {
			t.Errorf("the server got %d connections, want 0", n)
		}
	})

	t.Run("localhost", func(t *testing.T) {
		c := delivery.New(delivery.Options{BlockPrivate: true})
		res := c.Send(t.Context(), delivery.Request{URL: "http://localhost:" + strconv.Itoa(port), Event: "ping"})
		if res.Class != delivery.Permanent || !strings.HasPrefix(res.Note, "Destination refused: localhost resolved to ") ||
			!strings.HasSuffix(res.Note, ", a loopback address"+allowHint) {
			t.Errorf("got (%v, %q), want a refused loopback note", res.Class, res.Note)
		}
		t.Logf("note: %s", res.Note)
		if n := conns.n.Load(); n != 0 {
			t.Errorf("the server got %d connections, want 0", n)
		}
	})

	t.Run("allowed", func(t *testing.T) {
		c := delivery.New(delivery.Options{BlockPrivate: true, AllowNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
		for _, u := range []string{srv.URL, "http://localhost:" + strconv.Itoa(port)} {
			if res := c.Send(t.Context(), delivery.Request{URL: u, Event: "ping"}); res.Class != delivery.Success {
				t.Errorf("%s: got %+v, want success", u, res)
			}
		}
		if n := conns.n.Load(); n == 0 {
			t.Errorf("the server got no connection")
		}
	})

	t.Run("allowed other network", func(t *testing.T) {
		c := delivery.New(delivery.Options{BlockPrivate: true, AllowNetworks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
		if res := c.Send(t.Context(), delivery.Request{URL: srv.URL, Event: "ping"}); res.Class != delivery.Permanent {
			t.Errorf("got %+v, want permanent", res)
		}
	})

	t.Run("off by default", func(t *testing.T) {
		c := delivery.New(delivery.Options{})
		if res := c.Send(t.Context(), delivery.Request{URL: srv.URL, Event: "ping"}); res.Class != delivery.Success {
			t.Errorf("got %+v, want success", res)
		}
	})
}

// A name that resolves to a public address first and to loopback later (DNS rebinding):
// the address checked is the address dialled, and the later answer is refused.
func TestBlockPrivateRebinding(t *testing.T) {
	srv, conns := newCountingServer(t, func(w http.ResponseWriter, r *http.Request) {})
	port := strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
	resolver := newStubResolver(nil)
	resolver.answers["rebind.test"] = [][]netip.Addr{{netip.MustParseAddr("203.0.113.7")}, {netip.MustParseAddr("127.0.0.1")}}
	dialer := &dialRecorder{redirect: map[string]string{"203.0.113.7:" + port: srv.Listener.Addr().String()}}
	c := delivery.New(delivery.Options{BlockPrivate: true, Resolver: resolver, DialContext: dialer.DialContext})
	u := "http://rebind.test:" + port + "/hook"

	if res := c.Send(t.Context(), delivery.Request{URL: u, Event: "ping"}); res.Class != delivery.Success {
		t.Fatalf("first send: got %+v, want success", res)
	}
	c.CloseIdle() // the next send dials (and resolves) again
	res := c.Send(t.Context(), delivery.Request{URL: u, Event: "ping"})
	want := "Destination refused: rebind.test resolved to 127.0.0.1, a loopback address" + allowHint
	if res.Class != delivery.Permanent || res.Note != want {
		t.Errorf("second send: got (%v, %q), want (permanent, %q)", res.Class, res.Note, want)
	}
	if got := dialer.dialled(); len(got) != 1 || got[0] != "203.0.113.7:"+port {
		t.Errorf("dialled %q, want only the checked address 203.0.113.7:%s", got, port)
	}
	if n := conns.n.Load(); n != 1 {
		t.Errorf("the server got %d connections, want 1", n)
	}
	if n := resolver.calls["rebind.test"]; n != 2 {
		t.Errorf("%d lookups, want 2 (one per dial)", n)
	}
}

// A refused address is skipped for the next allowed one; the first refusal is reported when none is left.
func TestBlockPrivateSeveralAddresses(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {})
	port := strconv.Itoa(srv.Listener.Addr().(*net.TCPAddr).Port)
	resolver := newStubResolver(map[string][]string{"mixed.test": {"10.0.0.1", "127.0.0.1"}})
	dialer := &dialRecorder{}

	c := delivery.New(delivery.Options{BlockPrivate: true, Resolver: resolver, DialContext: dialer.DialContext,
		AllowNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	if res := c.Send(t.Context(), delivery.Request{URL: "http://mixed.test:" + port, Event: "ping"}); res.Class != delivery.Success {
		t.Fatalf("got %+v, want success", res)
	}
	if got := dialer.dialled(); len(got) != 1 || got[0] != "127.0.0.1:"+port {
		t.Errorf("dialled %q, want only the allowed 127.0.0.1:%s", got, port)
	}

	c = delivery.New(delivery.Options{BlockPrivate: true, Resolver: resolver, DialContext: noDial(t)})
	res := c.Send(t.Context(), delivery.Request{URL: "http://mixed.test:" + port, Event: "ping"})
	if want := "Destination refused: mixed.test resolved to 10.0.0.1, a private address" + allowHint; res.Note != want {
		t.Errorf("note = %q, want %q", res.Note, want)
	}
}

func TestBlockPrivateDNSFailure(t *testing.T) {
	resolver := newStubResolver(map[string][]string{"empty.test": nil})
	c := delivery.New(delivery.Options{BlockPrivate: true, Resolver: resolver, DialContext: noDial(t)})
	for _, host := range []string{"missing.test", "empty.test"} {
		res := c.Send(t.Context(), delivery.Request{URL: "http://" + host + "/hook", Event: "ping"})
		if res.Class != delivery.Permanent || !strings.HasPrefix(res.Note, "DNS error: ") || !strings.Contains(res.Note, "lookup "+host+": no such host") {
			t.Errorf("%s: got (%v, %q), want a permanent DNS error", host, res.Class, res.Note)
		}
	}
}

// A host in one of inet_aton's numeric forms is the address a resolver would make of
// it (getaddrinfo reads 2130706433 as 127.0.0.1): the guard reads it itself and
// refuses it without a lookup, whatever DNS would answer.
func TestBlockPrivateNumericHosts(t *testing.T) {
	// The resolver would answer each numeric host with a public address: it must not be asked.
	answers := map[string][]string{}
	tests := []struct{ host, note string }{
		{"2130706433", "2130706433 is 127.0.0.1 in numeric form, a loopback address"},
		{"0x7f000001", "0x7f000001 is 127.0.0.1 in numeric form, a loopback address"},
		{"0X7F000001", "0X7F000001 is 127.0.0.1 in numeric form, a loopback address"},
		{"017700000001", "017700000001 is 127.0.0.1 in numeric form, a loopback address"},
		{"127.1", "127.1 is 127.0.0.1 in numeric form, a loopback address"},
		{"127.0.1", "127.0.1 is 127.0.0.1 in numeric form, a loopback address"},
		{"0x7f.1", "0x7f.1 is 127.0.0.1 in numeric form, a loopback address"},
		{"0177.0.0.1", "0177.0.0.1 is 127.0.0.1 in numeric form, a loopback address"},
		{"127.000.000.001", "127.000.000.001 is 127.0.0.1 in numeric form, a loopback address"},
		{"127.0.0.1.", "127.0.0.1. is 127.0.0.1 in numeric form, a loopback address"},
		{"0", "0 is 0.0.0.0 in numeric form, an unspecified address"},
		{"0x", "0x is 0.0.0.0 in numeric form, an unspecified address"},
		{"169.254.43518", "169.254.43518 is 169.254.169.254 in numeric form, a link-local address"},
		{"0xa9.0xfe.0xa9.0xfe", "0xa9.0xfe.0xa9.0xfe is 169.254.169.254 in numeric form, a link-local address"},
		{"2852039166", "2852039166 is 169.254.169.254 in numeric form, a link-local address"},
		{"10.1", "10.1 is 10.0.0.1 in numeric form, a private address"},
		{"0xc0.0250.257", "0xc0.0250.257 is 192.168.1.1 in numeric form, a private address"},
	}
	for _, tt := range tests {
		answers[tt.host] = []string{"203.0.113.7"}
	}
	resolver := newStubResolver(answers)
	c := delivery.New(delivery.Options{BlockPrivate: true, Resolver: resolver, DialContext: noDial(t)})
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			res := c.Send(t.Context(), delivery.Request{URL: "http://" + tt.host + "/hook", Event: "ping"})
			want := "Destination refused: " + tt.note + allowHint
			if res.Class != delivery.Permanent || res.StatusCode != 0 || res.Note != want {
				t.Errorf("got (%v, %d, %q), want (permanent, 0, %q)", res.Class, res.StatusCode, res.Note, want)
			}
			if !errors.Is(res.Err, delivery.ErrDestinationRefused) {
				t.Errorf("Err = %v, want it to match ErrDestinationRefused", res.Err)
			}
		})
	}
	for host, n := range resolver.calls {
		t.Errorf("the resolver was asked for %s (%d times)", host, n)
	}
}

// A numeric host that reads as a public address is dialled as that address; what
// inet_aton refuses (a part out of range, five parts, an octal 8) is a host name.
func TestBlockPrivateNumericPublicAndNames(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {})
	dialer := &dialRecorder{redirect: map[string]string{"203.0.113.7:80": srv.Listener.Addr().String()}}
	resolver := newStubResolver(nil)
	c := delivery.New(delivery.Options{BlockPrivate: true, Resolver: resolver, DialContext: dialer.DialContext})
	for _, host := range []string{"3405803783", "0xcb.0.0x71.07", "203.0.28935"} {
		if res := c.Send(t.Context(), delivery.Request{URL: "http://" + host + "/hook", Event: "ping"}); res.Class != delivery.Success {
			t.Errorf("%s: got %+v, want success", host, res)
		}
		c.CloseIdle()
	}
	if got := dialer.dialled(); strings.Join(got, " ") != "203.0.113.7:80 203.0.113.7:80 203.0.113.7:80" {
		t.Errorf("dialled %q, want 203.0.113.7:80 three times", got)
	}
	for _, host := range []string{"256.0.0.1", "1.2.3.4.5", "08.0.0.1", "127.0x1000000", "4294967296", "0x1g", "1..1", "-1"} {
		res := c.Send(t.Context(), delivery.Request{URL: "http://" + host + "/hook", Event: "ping"})
		if !strings.HasPrefix(res.Note, "DNS error: ") || !strings.Contains(res.Note, "lookup "+host+": no such host") {
			t.Errorf("%s: got (%v, %q), want a DNS error (a host name, looked up)", host, res.Class, res.Note)
		}
	}
}
