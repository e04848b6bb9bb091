package gcmseal

import "golang.org/x/sys/cpu"

// supported: the CPU has what the assembly uses (AVX-512 with its byte and
// vector-length forms, VAES, VPCLMULQDQ, BMI2's BZHI; AES-NI for H), and
// the OS saves the AVX-512 registers (x/sys/cpu checks).
var supported = cpu.X86.HasAES && cpu.X86.HasPCLMULQDQ && cpu.X86.HasBMI2 &&
	cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL &&
	cpu.X86.HasAVX512VAES && cpu.X86.HasAVX512VPCLMULQDQ

// seal is Seal in assembly: the tag goes to dst[n:n+16].
//
//go:noescape
func seal(k *Key, hdr *byte, hdrLen int, dst, src *byte, n int, counter *[16]byte)

// encryptBlock encrypts one block with AES-NI.
//
//go:noescape
func encryptBlock(rk *[15][16]byte, rounds int, dst, src *[16]byte)
