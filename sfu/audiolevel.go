package sfu

import "sync/atomic"

// Audio levels (RFC 6464 header extension) drive the room's "speaking"
// event. The extension carries the level as -dBov (0 loudest, 127 silence)
// on every audio packet; a participant speaks while enough recent packets
// are louder than a threshold.

// speakingLevel is the loudest -dBov that still counts as silence; speech
// into a classroom microphone is typically 20–40.
const speakingLevel = 50

// speakingPackets is how many loud packets within one check interval
// (speakingInterval, ~15 packets of 20 ms) make a participant speak.
const speakingPackets = 4

// levelMeter counts loud packets between checks. observe runs on the read
// goroutine, takeSpeaking on the participant's control goroutine.
type levelMeter struct {
	loud atomic.Uint32
}

func (m *levelMeter) observe(level uint8) {
	if level <= speakingLevel {
		m.loud.Add(1)
	}
}

// takeSpeaking reports whether the interval just ended had speech, and
// starts a new one.
func (m *levelMeter) takeSpeaking() bool {
	return m.loud.Swap(0) >= speakingPackets
}
