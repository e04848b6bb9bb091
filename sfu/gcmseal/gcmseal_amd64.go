package gcmseal

import "golang.org/x/sys/cpu"

var supported = cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL &&
	cpu.X86.HasAVX512VAES && cpu.X86.HasAVX512VPCLMULQDQ && cpu.X86.HasBMI2

// seal is Seal in assembly: the tag goes to dst[n:n+16].
//
//go:noescape
func seal(k *Key, hdr *byte, hdrLen int, dst, src *byte, n int, counter *[16]byte)

// encryptBlock encrypts one block with AES-NI.
//
//go:noescape
func encryptBlock(rk *[15][16]byte, rounds int, dst, src *[16]byte)
