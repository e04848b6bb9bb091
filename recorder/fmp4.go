package recorder

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/fmp4/seekablebuffer"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mp4"
)

const (
	codecH264 = "h264"
	codecVP8  = "vp8"
	codecOpus = "opus"
)

// codecOf maps a MIME type to the manifest's codec name, "" when the
// recorder cannot record it.
func codecOf(mime string) string {
	switch {
	case eqFold(mime, "video/H264"):
		return codecH264
	case eqFold(mime, "video/VP8"):
		return codecVP8
	case eqFold(mime, "audio/opus"):
		return codecOpus
	}
	return ""
}

func eqFold(a, b string) bool { return bytes.EqualFold([]byte(a), []byte(b)) }

func timescaleOf(codec string) uint32 {
	if codec == codecOpus {
		return 48000
	}
	return 90000
}

// initSegment builds the fMP4 init segment of a one-track file.
func initSegment(codec string, channels int, sps, pps []byte, width, height int) ([]byte, error) {
	var c mp4.Codec
	switch codec {
	case codecH264:
		if len(sps) == 0 || len(pps) == 0 {
			return nil, errors.New("h264 init: no SPS/PPS seen yet")
		}
		var s h264.SPS
		if err := s.Unmarshal(sps); err != nil {
			return nil, fmt.Errorf("h264 init: %w", err)
		}
		c = &mp4.CodecH264{SPS: sps, PPS: pps}
	case codecVP8:
		// mediacommon writes VP9 sample entries only; a VP8 entry has the
		// same shape (a VisualSampleEntry with a vpcC box), so the VP9
		// entry is written and its four-cc renamed below.
		c = &mp4.CodecVP9{Width: width, Height: height, Profile: 0, BitDepth: 8, ChromaSubsampling: 1}
	case codecOpus:
		if channels <= 0 {
			channels = 2
		}
		c = &mp4.CodecOpus{ChannelCount: channels}
	default:
		return nil, fmt.Errorf("init: unsupported codec %q", codec)
	}
	init := fmp4.Init{Tracks: []*fmp4.InitTrack{{ID: 1, TimeScale: timescaleOf(codec), Codec: c}}}
	var buf seekablebuffer.Buffer
	if err := init.Marshal(&buf); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	b := buf.Bytes()
	if codec == codecVP8 {
		i := bytes.Index(b, []byte("vp09"))
		if i < 0 {
			return nil, errors.New("init: vp09 sample entry not found")
		}
		copy(b[i:], "vp08")
	}
	return b, nil
}

// sampleRef is one sample of an open segment; its bytes live in the
// segment's shared buffer so building a segment allocates little.
type sampleRef struct {
	off, size int
	dts       uint64
	key       bool
}

// marshalSegment writes one moof+mdat holding samples whose durations
// follow from consecutive decode times; the last lasts until end.
func marshalSegment(seq uint32, data []byte, refs []sampleRef, end uint64) ([]byte, error) {
	samples := make([]*fmp4.Sample, len(refs))
	backing := make([]fmp4.Sample, len(refs))
	for i, r := range refs {
		next := end
		if i+1 < len(refs) {
			next = refs[i+1].dts
		}
		d := next - r.dts
		if next <= r.dts {
			d = 1
		}
		if d > 1<<31 {
			d = 1 << 31
		}
		backing[i] = fmp4.Sample{Duration: uint32(d), IsNonSyncSample: !r.key, Payload: data[r.off : r.off+r.size]}
		samples[i] = &backing[i]
	}
	part := fmp4.Part{SequenceNumber: seq, Tracks: []*fmp4.PartTrack{{ID: 1, BaseTime: refs[0].dts, Samples: samples}}}
	var buf seekablebuffer.Buffer
	if err := part.Marshal(&buf); err != nil {
		return nil, fmt.Errorf("segment: %w", err)
	}
	return buf.Bytes(), nil
}
