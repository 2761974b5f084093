package delivery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// AllowNetworksVariable is the configuration variable a refused destination's note points to.
const AllowNetworksVariable = "DOJO_WEBHOOKS_ALLOW_NETWORKS"

// ErrDestinationRefused is matched (errors.Is) by the error of an attempt whose destination address is blocked.
var ErrDestinationRefused = errors.New("destination refused")

// Resolver looks up the addresses of a host name; *net.Resolver implements it.
type Resolver interface {
	// LookupNetIP returns the addresses of host; network is "ip", "ip4" or "ip6".
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// refusedError is the error of a dial to a blocked address. Its text is the note's.
type refusedError struct {
	host    string     // the host name that resolved to addr; "" when the URL held the address
	addr    netip.Addr // the refused address, as resolved or written
	why     string     // "a loopback address", …
	numeric bool       // host is addr in a numeric form other than the dotted quad (2130706433, 0x7f.1, 127.1)
}

func (e *refusedError) Error() string {
	hint := " (allow it with " + AllowNetworksVariable + ")"
	if e.numeric {
		return e.host + " is " + e.addr.String() + " in numeric form, " + e.why + hint
	}
	if e.host != "" {
		return e.host + " resolved to " + e.addr.String() + ", " + e.why + hint
	}
	return e.addr.String() + " is " + e.why + hint
}

func (e *refusedError) Is(target error) bool { return target == ErrDestinationRefused }

// blockedRange is one refused address range and what the note calls it.
type blockedRange struct {
	prefix netip.Prefix
	why    string
}

// blockedRanges are refused when BlockPrivate is on (IPv4-mapped and NAT64 forms are unwrapped first).
var blockedRanges = []blockedRange{
	{netip.MustParsePrefix("0.0.0.0/32"), "an unspecified address"},
	{netip.MustParsePrefix("::/128"), "an unspecified address"},
	{netip.MustParsePrefix("0.0.0.0/8"), "a \"this network\" address"},
	{netip.MustParsePrefix("127.0.0.0/8"), "a loopback address"},
	{netip.MustParsePrefix("::1/128"), "a loopback address"},
	{netip.MustParsePrefix("10.0.0.0/8"), "a private address"},
	{netip.MustParsePrefix("172.16.0.0/12"), "a private address"},
	{netip.MustParsePrefix("192.168.0.0/16"), "a private address"},
	{netip.MustParsePrefix("fc00::/7"), "a private address"},
	{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address"},
	{netip.MustParsePrefix("fe80::/10"), "a link-local address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a shared (CGNAT) address"},
	{netip.MustParsePrefix("224.0.0.0/4"), "a multicast address"},
	{netip.MustParsePrefix("ff00::/8"), "a multicast address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"}, // and 255.255.255.255, the broadcast address
}

// nat64 is the well-known NAT64 prefix (RFC 6052): its last 32 bits are an IPv4 address.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// guard decides which destination addresses may be dialled.
type guard struct {
	allow []netip.Prefix
}

// refuse returns what a blocked address is ("a loopback address", …), or "" when it may be dialled.
func (g *guard) refuse(addr netip.Addr) string {
	addr = addr.WithZone("")
	inner := addr.Unmap()
	if addr.Is6() && nat64.Contains(addr) {
		b := addr.As16()
		inner = netip.AddrFrom4([4]byte(b[12:]))
	}
	for _, p := range g.allow {
		if p.Contains(addr) || p.Contains(inner) {
			return ""
		}
	}
	if !inner.IsValid() {
		return "not an IP address"
	}
	for _, r := range blockedRanges {
		if r.prefix.Contains(inner) {
			return r.why
		}
	}
	return ""
}

// control is the net.Dialer Control function: it checks the address actually dialled, before connecting.
func (g *guard) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot check address %q: %w", ErrDestinationRefused, address, err)
	}
	if why := g.refuse(ap.Addr()); why != "" {
		return &refusedError{addr: ap.Addr(), why: why}
	}
	return nil
}

// safeDialer resolves the host itself, refuses blocked addresses and dials only the checked ones,
// by their address, so that a second DNS answer (rebinding) cannot change the destination.
type safeDialer struct {
	guard    *guard
	resolver Resolver
	dial     func(ctx context.Context, network, addr string) (net.Conn, error) // gets "ip:port" only
}

// DialContext dials addr ("host:port"), trying the allowed addresses of host in order.
func (d *safeDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("splitting %q: %w", addr, err)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("port of %q: %w", addr, err)
	}
	var addrs []netip.Addr
	name := ""       // the host name, when addresses come from DNS
	numeric := false // the host is an IPv4 address in a form netip does not read (see parseInetAton)
	if ip, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{ip}
	} else if ip, ok := parseInetAton(host); ok {
		addrs, name, numeric = []netip.Addr{ip}, host, true
	} else {
		name = host
		found, err := d.resolver.LookupNetIP(ctx, lookupNetwork(network), host)
		if err != nil {
			return nil, err // *net.DNSError: classified "DNS error"
		}
		if len(found) == 0 {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		for _, ip := range found {
			addrs = append(addrs, ip.Unmap()) // resolvers may give IPv4 in IPv6 form: dialled and shown as IPv4
		}
	}
	var firstErr error
	for i, ip := range addrs {
		if why := d.guard.refuse(ip); why != "" {
			if firstErr == nil {
				firstErr = &refusedError{host: name, addr: ip, why: why, numeric: numeric}
			}
			continue
		}
		conn, err := d.dialOne(ctx, network, netip.AddrPortFrom(ip, uint16(port)).String(), len(addrs)-i)
		if err == nil {
			return conn, nil
		}
		var refused *refusedError
		if errors.As(err, &refused) && name != "" {
			refused.host = name // refused again by the dialer's Control
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, firstErr
}

// dialOne dials one checked address, leaving time for the remaining ones as net.Dialer does.
func (d *safeDialer) dialOne(ctx context.Context, network, addr string, remaining int) (net.Conn, error) {
	if deadline, ok := ctx.Deadline(); ok && remaining > 1 {
		const saneMinimum = 2 * time.Second
		left := time.Until(deadline)
		share := left / time.Duration(remaining)
		if share < saneMinimum {
			share = min(left, saneMinimum)
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, share)
		defer cancel()
	}
	return d.dial(ctx, network, addr)
}

// lookupNetwork maps a dial network to a lookup network.
func lookupNetwork(network string) string {
	switch network {
	case "tcp4", "udp4":
		return "ip4"
	case "tcp6", "udp6":
		return "ip6"
	}
	return "ip"
}

// parseInetAton reads host as the C library's inet_aton does, so that a host a
// resolver (getaddrinfo) would take for an IPv4 address is checked as that address
// and never reaches DNS: one to four parts separated by dots, each decimal, octal
// (leading 0) or hexadecimal (leading 0x), the last part filling the remaining
// bytes: 2130706433, 0x7f000001, 127.1, 0x7f.1, 0177.0.0.1 and 127.0.0.1 all
// read as 127.0.0.1. One trailing dot is ignored, as URL parsers do. It reports
// false for anything else (a host name), including a part out of range.
func parseInetAton(host string) (netip.Addr, bool) {
	host = strings.TrimSuffix(host, ".")
	parts := strings.Split(host, ".")
	if host == "" || len(parts) > 4 {
		return netip.Addr{}, false
	}
	vals := make([]uint64, len(parts))
	for i, p := range parts {
		v, ok := parseInetAtonPart(p)
		if !ok {
			return netip.Addr{}, false
		}
		vals[i] = v
	}
	last := len(vals) - 1
	var n uint64
	for _, v := range vals[:last] {
		if v > 0xff {
			return netip.Addr{}, false
		}
		n = n<<8 | v
	}
	rest := uint(8 * (4 - last)) // bits the last part fills
	if vals[last] >= 1<<rest {
		return netip.Addr{}, false
	}
	n = n<<rest | vals[last]
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}), true
}

// parseInetAtonPart reads one part of an inet_aton address: decimal, 0-prefixed
// octal or 0x-prefixed hexadecimal ("0x" alone is 0, as in inet_aton).
func parseInetAtonPart(p string) (uint64, bool) {
	base := 10
	switch {
	case len(p) >= 2 && (p[:2] == "0x" || p[:2] == "0X"):
		base, p = 16, p[2:]
		if p == "" {
			return 0, true
		}
	case len(p) > 1 && p[0] == '0':
		base, p = 8, p[1:]
	}
	if p == "" || p[0] == '+' || p[0] == '-' {
		return 0, false
	}
	v, err := strconv.ParseUint(p, base, 32)
	return v, err == nil
}
