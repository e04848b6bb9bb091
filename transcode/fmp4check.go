package transcode

import (
	"encoding/binary"
	"fmt"
)

// checkBoxes walks the top-level ISO-BMFF boxes of one recorded file and
// reports the first structural defect: a box running past the end (a
// truncated upload), a nonsense size, or a missing required box. It lets a
// corrupt or partial recording fail its job with a clear reason before
// ffmpeg, which is lenient with damaged input, quietly encodes garbage.
// required lists box types that must appear at the top level, in any order.
func checkBoxes(b []byte, required ...string) error {
	seen := map[string]bool{}
	off := 0
	for off < len(b) {
		if len(b)-off < 8 {
			return fmt.Errorf("truncated box header at byte %d (%d bytes left)", off, len(b)-off)
		}
		size := uint64(binary.BigEndian.Uint32(b[off:]))
		typ := string(b[off+4 : off+8])
		hdr := uint64(8)
		switch size {
		case 0: // box extends to the end of the file
			size = uint64(len(b) - off)
		case 1:
			if len(b)-off < 16 {
				return fmt.Errorf("truncated large box header %q at byte %d", printable(typ), off)
			}
			size = binary.BigEndian.Uint64(b[off+8:])
			hdr = 16
		}
		if !isBoxType(typ) {
			return fmt.Errorf("garbage at byte %d: %q is not a box type", off, printable(typ))
		}
		if size < hdr {
			return fmt.Errorf("box %q at byte %d has impossible size %d", typ, off, size)
		}
		if size > uint64(len(b)-off) {
			return fmt.Errorf("box %q at byte %d declares %d bytes but only %d remain (truncated)", typ, off, size, len(b)-off)
		}
		seen[typ] = true
		off += int(size)
	}
	for _, r := range required {
		if !seen[r] {
			return fmt.Errorf("no %q box", r)
		}
	}
	return nil
}

// isBoxType accepts the four printable characters box types are made of.
func isBoxType(t string) bool {
	for i := 0; i < len(t); i++ {
		c := t[i]
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

func printable(t string) string {
	out := []byte(t)
	for i, c := range out {
		if c < 0x20 || c > 0x7e {
			out[i] = '?'
		}
	}
	return string(out)
}
