//go:build !linux

package loadtest

import (
	"errors"
	"net/netip"
	"time"
)

// The lean receiver reads with epoll and recvmmsg: Linux only.

var errLeanLinuxOnly = errors.New("the lean receiver needs Linux (epoll, recvmmsg)")

type leanPollers struct{}

type leanPoller struct{}

type rxBatch struct{}

func newLeanPollers() (*leanPollers, error) { return nil, errLeanLinuxOnly }
func (ps *leanPollers) pick() *leanPoller   { return nil }
func (ps *leanPollers) stop()               {}
func (p *leanPoller) add(*leanConn) error   { return errLeanLinuxOnly }
func (p *leanPoller) remove(*leanConn)      {}
func (b *rxBatch) read(int) (int, error)    { return 0, errLeanLinuxOnly }
func (b *rxBatch) message(int) ([]byte, int, netip.AddrPort, time.Time) {
	return nil, 0, netip.AddrPort{}, time.Time{}
}
func openLeanSocket(netip.Addr) (int, netip.AddrPort, error) {
	return -1, netip.AddrPort{}, errLeanLinuxOnly
}
func sendLean(int, []byte, netip.AddrPort) error { return errLeanLinuxOnly }
func closeLeanSocket(int)                        {}
