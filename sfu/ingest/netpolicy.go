package ingest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
)

// DefaultAllowCIDRs are the networks RTSP sources may reach unless the
// operator says otherwise: the private ranges where cameras live (RFC 1918,
// CGNAT 100.64/10 as county networks use, IPv6 ULA) and loopback.
var DefaultAllowCIDRs = []string{
	"10.0.0.0/8",
	"172.16.0.0/12",
	"192.168.0.0/16",
	"100.64.0.0/10",
	"fc00::/7",
	"127.0.0.0/8",
	"::1/128",
}

// neverAllowed are networks refused whatever the allow list says, besides
// the classes refuseClass checks: "this network" and the cloud metadata
// services that live inside ranges the default list allows.
var neverAllowed = []struct {
	net netip.Prefix
	why string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "in 0.0.0.0/8 (Linux connects it to the host itself)"},
	{netip.MustParsePrefix("100.100.100.200/32"), "a cloud metadata address (Alibaba Cloud)"},
	{netip.MustParsePrefix("fd00:ec2::254/128"), "a cloud metadata address (AWS IPv6)"},
}

// nat64 is the well-known NAT64 prefix (RFC 6052): its addresses reach the
// IPv4 address in their last 32 bits.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// errAddrRefused marks a dial to an address the policy refuses. Its text
// never names the address, so a source's lastError cannot be used to learn
// what a name resolves to or what answers there.
var errAddrRefused = errors.New("the camera's address is not in the networks sources may reach (--ingest-allow-cidr; link-local, metadata, multicast and broadcast addresses are never allowed)")

// AllowList is the set of networks RTSP sources may connect to. The zero
// value allows nothing.
type AllowList struct {
	prefixes []netip.Prefix
}

// ParseAllowList parses CIDRs ("10.0.0.0/8") or single addresses
// ("10.1.2.3", "::1") into an allow list.
func ParseAllowList(cidrs []string) (*AllowList, error) {
	a := &AllowList{}
	for _, s := range cidrs {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, err := parsePrefix(s)
		if err != nil {
			return nil, err
		}
		a.prefixes = append(a.prefixes, p)
	}
	return a, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("allowed network %q is not a CIDR (like 10.0.0.0/8 or fc00::/7)", s)
		}
		if p.Addr().Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("allowed network %q: zones are not supported", s)
		}
		// 10.0.0.0/8 and ::ffff:10.0.0.0/104 mean the same network.
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || ip.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("allowed network %q is not a CIDR or an IP address", s)
	}
	ip = ip.Unmap()
	return netip.PrefixFrom(ip, ip.BitLen()), nil
}

// String lists the allowed networks.
func (a *AllowList) String() string {
	parts := make([]string, len(a.prefixes))
	for i, p := range a.prefixes {
		parts[i] = p.String()
	}
	return strings.Join(parts, ",")
}

// refuseClass says why ip is refused whatever the allow list says, or "".
func refuseClass(ip netip.Addr) string {
	switch {
	case !ip.IsValid():
		return "not an IP address"
	case ip.IsUnspecified():
		return "the unspecified address"
	case ip.IsLinkLocalUnicast():
		return "link-local (cloud metadata services live there)"
	case ip.IsMulticast():
		return "multicast"
	case ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "the broadcast address"
	}
	for _, n := range neverAllowed {
		if n.net.Contains(ip) {
			return n.why
		}
	}
	return ""
}

// Check returns nil when sources may connect to ip, or an error saying why
// not (naming ip, which the caller supplied).
func (a *AllowList) Check(ip netip.Addr) error {
	ip = ip.WithZone("").Unmap()
	if why := refuseClass(ip); why != "" {
		return fmt.Errorf("address %s is %s, which sources may never reach", ip, why)
	}
	if nat64.Contains(ip) {
		b := ip.As16()
		inner := netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
		if why := refuseClass(inner); why != "" {
			return fmt.Errorf("address %s reaches %s through NAT64, which is %s", ip, inner, why)
		}
	}
	if a != nil {
		for _, p := range a.prefixes {
			if p.Contains(ip) {
				return nil
			}
		}
	}
	return fmt.Errorf("address %s is not in the networks sources may reach (--ingest-allow-cidr)", ip)
}

// checkHost checks a URL host at registration: an IP literal is checked
// now; a name is checked each time it is dialed, against what it resolves
// to then.
func (a *AllowList) checkHost(host string) error {
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return nil // a name
	}
	return a.Check(ip)
}

// dialContext dials like net.Dialer but refuses, after name resolution and
// before connecting, every address the policy does not allow; a name that
// resolves (or re-resolves: DNS rebinding) to a refused address never gets
// a connection.
func (a *AllowList) dialContext(ctx context.Context, network, address string) (net.Conn, error) {
	d := net.Dialer{Control: func(_, addr string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			return errAddrRefused
		}
		if a.Check(ap.Addr()) != nil {
			return errAddrRefused
		}
		return nil
	}}
	conn, err := d.DialContext(ctx, network, address)
	if err != nil {
		if errors.Is(err, errAddrRefused) {
			// net.OpError names the address: drop it.
			return nil, errAddrRefused
		}
		return nil, err
	}
	return conn, nil
}
