// Package rtpmux tells RTCP from RTP where the two share a port (RFC 5761
// section 4), as pion does inside its mux and as the node's socket reader,
// the RTSP ingest's ffmpeg port and the load tool's lean classrooms must
// do outside it.
package rtpmux

// IsRTCP reports whether p, a packet known to be RTP or RTCP (RFC 7983:
// first byte 128-191), is RTCP: its second byte, an RTP packet's marker
// and payload type, holds an RTCP packet type, 192-223.
func IsRTCP(p []byte) bool {
	return len(p) >= 2 && p[1] >= 192 && p[1] <= 223
}
