package sfu

import "time"

// The send path's clock. Its times (a packet's send time in the TWCC
// history, the pacer's, GCC's, the feedback deadlines) are nanoseconds on
// the monotonic clock since clockBase, held as int64: compared and stored
// without a time.Time's three words. A drain reads it once for its whole
// batch; time.Now reads the wall clock as well, a second vDSO call that
// was 2 % of a node's CPU at fanout200 (docs/BENCHMARKS.md), and the
// monotonic clock does not jump when the wall clock is stepped.

// clockBase is a second before the package started, so that no reading is
// 0, which the fields it fills use for "never".
var clockBase = time.Now().Add(-time.Second)

// nanotime is now on the send path's clock.
func nanotime() int64 { return int64(time.Since(clockBase)) }

// monoNs is t on the send path's clock; t must come from time.Now (or be
// derived from such a time), which carries the monotonic reading.
func monoNs(t time.Time) int64 { return int64(t.Sub(clockBase)) }
