package delivery

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestGuardRefuse(t *testing.T) {
	g := &guard{allow: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd00:1::/32")}}
	tests := map[string]string{
		"8.8.8.8":              "",
		"203.0.113.7":          "",
		"100.63.255.255":       "",
		"100.128.0.0":          "",
		"172.15.255.255":       "",
		"172.32.0.0":           "",
		"223.255.255.255":      "",
		"2001:4860::8888":      "",
		"::ffff:8.8.8.8":       "",
		"64:ff9b::808:808":     "", // NAT64 of 8.8.8.8
		"10.1.2.3":             "", // allowed
		"::ffff:10.1.2.3":      "", // allowed, mapped
		"fd00:1::5":            "", // allowed
		"10.2.0.1":             "a private address",
		"fd00:2::5":            "a private address",
		"127.0.0.1":            "a loopback address",
		"127.255.255.255":      "a loopback address",
		"::1":                  "a loopback address",
		"::ffff:127.0.0.1":     "a loopback address",
		"64:ff9b::7f00:1":      "a loopback address",
		"169.254.169.254":      "a link-local address",
		"fe80::1%eth0":         "a link-local address",
		"0.0.0.0":              "an unspecified address",
		"::":                   "an unspecified address",
		"::ffff:0.0.0.0":       "an unspecified address",
		"0.0.0.1":              `a "this network" address`,
		"224.0.0.251":          "a multicast address",
		"239.255.255.250":      "a multicast address",
		"ff05::2":              "a multicast address",
		"100.64.0.0":           "a shared (CGNAT) address",
		"100.100.100.200":      "a shared (CGNAT) address",
		"::ffff:100.64.0.1":    "a shared (CGNAT) address",
		"240.0.0.0":            "a reserved address",
		"255.255.255.255":      "a reserved address",
		"::ffff:192.168.0.1":   "a private address",
		"::ffff:172.31.255.25": "a private address",
	}
	for in, want := range tests {
		if got := g.refuse(netip.MustParseAddr(in)); got != want {
			t.Errorf("refuse(%s) = %q, want %q", in, got, want)
		}
	}
	if got := g.refuse(netip.Addr{}); got != "not an IP address" {
		t.Errorf("refuse(zero Addr) = %q, want %q", got, "not an IP address")
	}
}

// The dialer's Control function refuses the address actually dialled, before connecting.
func TestGuardControl(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 4)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- struct{}{}
			conn.Close()
		}
	}()

	d := &net.Dialer{Control: (&guard{}).control}
	_, err = d.DialContext(t.Context(), "tcp", ln.Addr().String())
	var refused *refusedError
	if !errors.Is(err, ErrDestinationRefused) || !errors.As(err, &refused) || refused.why != "a loopback address" {
		t.Fatalf("dial = %v, want a refused loopback address", err)
	}
	select {
	case <-accepted:
		t.Fatalf("the listener accepted a connection: the check ran after connecting")
	case <-time.After(50 * time.Millisecond):
	}

	d = &net.Dialer{Control: (&guard{allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}).control}
	conn, err := d.DialContext(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("dial to an allowed address: %v", err)
	}
	conn.Close()

	if err := (&guard{}).control("tcp", "not-an-address", nil); !errors.Is(err, ErrDestinationRefused) {
		t.Errorf("control(not-an-address) = %v, want a refusal", err)
	}
}

// With BlockPrivate, proxies are not used: the check must see the real destination.
func TestBlockPrivateDisablesProxy(t *testing.T) {
	if New(Options{}).transport.Proxy == nil {
		t.Errorf("default client ignores proxies from the environment")
	}
	if New(Options{BlockPrivate: true}).transport.Proxy != nil {
		t.Errorf("BlockPrivate client uses proxies from the environment")
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		value string
		want  time.Time
	}{
		{"", time.Time{}},
		{"120", now.Add(120 * time.Second)},
		{" 7 ", now.Add(7 * time.Second)},
		{"0", time.Time{}},
		{"-5", time.Time{}},
		{"+5", time.Time{}},
		{"1.5", time.Time{}},
		{"soon", time.Time{}},
		{"Wed, 02 Jan 2030 04:04:05 GMT", now.Add(time.Hour)},
		{"Wednesday, 02-Jan-30 04:04:05 GMT", now.Add(time.Hour)}, // RFC 850
		{"Wed Jan  2 04:04:05 2030", now.Add(time.Hour)},          // ANSI C
		{"Wed, 02 Jan 2030 03:04:05 GMT", time.Time{}},            // now
		{"Tue, 01 Jan 2030 00:00:00 GMT", time.Time{}},            // past
		{"99999999999999999999999", now.Add(time.Duration(1<<63 - 1).Truncate(time.Second))},
	}
	for _, tt := range tests {
		if got := retryAfter(tt.value, now); !got.Equal(tt.want) {
			t.Errorf("retryAfter(%q) = %v, want %v", tt.value, got, tt.want)
		}
	}
}
