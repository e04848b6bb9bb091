#include "textflag.h"

// The GHASH multiplication follows Intel's CLMUL white paper (Gueron and
// Kounavis, "Intel Carry-Less Multiplication Instruction and its Usage for
// Computing the GCM Mode", rev. 2.02) and Go's crypto/aes: blocks are
// byte-reversed, H is pre-multiplied by x, and a 256-bit product is
// reduced by two folds of its low half with the constant 0xc2...01.
//
// Key's layout (gcmseal.go): the round count at 0, H^16..H^1 from 16,
// round key r at 272+16r.
//
// Registers in seal:
//	Z0-Z3   keystream, then the products' low, high and middle halves
//	Z4-Z7   a chunk's 256 bytes (16 blocks)
//	Z8      the GHASH accumulator (lane 0; the other lanes zero)
//	Z9, Z14 scratch
//	Z10     shuffle: a lane's counter to bytes 12-15, big-endian
//	Z11     counter step (4 per lane)
//	Z12     counters (little-endian, in each lane's last dword)
//	Z13     the counter block with its counter cleared
//	X15     the reduction constant
//	Z16-Z30 round keys, each in all four lanes
//	Z31     byte reversal of each lane

DATA bswapMask<>+0x00(SB)/8, $0x08090a0b0c0d0e0f
DATA bswapMask<>+0x08(SB)/8, $0x0001020304050607
GLOBL bswapMask<>(SB), (NOPTR+RODATA), $16

DATA gcmPoly<>+0x00(SB)/8, $0x0000000000000001
DATA gcmPoly<>+0x08(SB)/8, $0xc200000000000000
GLOBL gcmPoly<>(SB), (NOPTR+RODATA), $16

DATA ctrShuffle<>+0x00(SB)/8, $0x8080808080808080
DATA ctrShuffle<>+0x08(SB)/8, $0x0c0d0e0f80808080
GLOBL ctrShuffle<>(SB), (NOPTR+RODATA), $16

// The first payload block uses counter 2 (1 is the tag's).
DATA ctrFirst<>+0x00(SB)/8, $0
DATA ctrFirst<>+0x08(SB)/8, $0x0000000200000000
DATA ctrFirst<>+0x10(SB)/8, $0
DATA ctrFirst<>+0x18(SB)/8, $0x0000000300000000
DATA ctrFirst<>+0x20(SB)/8, $0
DATA ctrFirst<>+0x28(SB)/8, $0x0000000400000000
DATA ctrFirst<>+0x30(SB)/8, $0
DATA ctrFirst<>+0x38(SB)/8, $0x0000000500000000
GLOBL ctrFirst<>(SB), (NOPTR+RODATA), $64

DATA ctrStep<>+0x00(SB)/8, $0
DATA ctrStep<>+0x08(SB)/8, $0x0000000400000000
GLOBL ctrStep<>(SB), (NOPTR+RODATA), $16

// CHUNK sets K1-K4 to the byte masks of the next min(len, 256) bytes, 64
// to a mask, and R13 to the GHASH powers that chunk's blocks multiply by:
// of its n blocks, the first by H^n, the last by H^1. Uses AX, BX, R12.
#define CHUNK_MASK(len, off, kreg) \
	MOVQ len, BX; \
	SUBQ $off, BX; \
	XORL R12, R12; \
	CMPQ BX, $0; \
	CMOVQLT R12, BX; \
	MOVL $64, R12; \
	CMPQ BX, $64; \
	CMOVQGT R12, BX; \
	BZHIQ BX, AX, R12; \
	KMOVQ R12, kreg

#define CHUNK(len) \
	MOVQ $-1, AX; \
	CHUNK_MASK(len, 0, K1); \
	CHUNK_MASK(len, 64, K2); \
	CHUNK_MASK(len, 128, K3); \
	CHUNK_MASK(len, 192, K4); \
	MOVQ len, BX; \
	ADDQ $15, BX; \
	SHRQ $4, BX; \
	MOVL $16, R12; \
	CMPQ BX, $16; \
	CMOVQGT R12, BX; \
	SHLQ $4, BX; \
	LEAQ 272(DI), R13; \
	SUBQ BX, R13

// GHASH4 folds the byte-reversed blocks in Z4-Z7 (the accumulator already
// added to the first) into the accumulator X8: each lane times its power
// of H, the products summed unreduced, then one reduction.
#define MULADD(data, off) \
	VMOVDQU64 off(R13), Z9; \
	VPCLMULQDQ $0x00, Z9, data, Z3; \
	VPXORD Z3, Z0, Z0; \
	VPCLMULQDQ $0x11, Z9, data, Z3; \
	VPXORD Z3, Z1, Z1; \
	VPCLMULQDQ $0x01, Z9, data, Z3; \
	VPCLMULQDQ $0x10, Z9, data, Z14; \
	VPTERNLOGD $0x96, Z3, Z14, Z2

#define FOLD_LANES(z, y, x) \
	VEXTRACTI64X4 $1, z, Y3; \
	VPXOR Y3, y, y; \
	VEXTRACTI128 $1, y, X3; \
	VPXOR X3, x, x

// REDUCE: X0 (low) X1 (high) X2 (middle) of a product to X8.
#define REDUCE \
	VPSLLDQ $8, X2, X3; \
	VPXOR X3, X0, X0; \
	VPSRLDQ $8, X2, X3; \
	VPXOR X3, X1, X1; \
	VPCLMULQDQ $0x01, X0, X15, X3; \
	VPSHUFD $0x4e, X0, X0; \
	VPXOR X3, X0, X0; \
	VPCLMULQDQ $0x01, X0, X15, X3; \
	VPSHUFD $0x4e, X0, X0; \
	VPXOR X3, X0, X0; \
	VPXOR X1, X0, X8

// MUL1 starts the products in X0-X2's registers with Z4's lanes times
// their powers; FOLD_REDUCE sums the lanes and reduces into X8. GHASH1
// hashes one register of blocks (a short header), GHASH4 four.
#define MUL1 \
	VMOVDQU64 (R13), Z9; \
	VPCLMULQDQ $0x00, Z9, Z4, Z0; \
	VPCLMULQDQ $0x11, Z9, Z4, Z1; \
	VPCLMULQDQ $0x01, Z9, Z4, Z2; \
	VPCLMULQDQ $0x10, Z9, Z4, Z3; \
	VPXORD Z3, Z2, Z2

#define FOLD_REDUCE \
	FOLD_LANES(Z0, Y0, X0); \
	FOLD_LANES(Z1, Y1, X1); \
	FOLD_LANES(Z2, Y2, X2); \
	REDUCE

#define GHASH1 \
	MUL1; \
	FOLD_REDUCE

#define GHASH4 \
	MUL1; \
	MULADD(Z5, 64); \
	MULADD(Z6, 128); \
	MULADD(Z7, 192); \
	FOLD_REDUCE

// LOAD4 loads the chunk at p into Z4-Z7 under the masks K1-K4, the
// bytes past its end zero.
#define LOAD4(p) \
	VMOVDQU8.Z 0(p), K1, Z4; \
	VMOVDQU8.Z 64(p), K2, Z5; \
	VMOVDQU8.Z 128(p), K3, Z6; \
	VMOVDQU8.Z 192(p), K4, Z7

// REVERSE4 reverses each block's bytes in Z4-Z7, for GHASH.
#define REVERSE4 \
	VPSHUFB Z31, Z4, Z4; \
	VPSHUFB Z31, Z5, Z5; \
	VPSHUFB Z31, Z6, Z6; \
	VPSHUFB Z31, Z7, Z7

#define AES4(op, k) \
	op k, Z0, Z0; \
	op k, Z1, Z1; \
	op k, Z2, Z2; \
	op k, Z3, Z3

// func seal(k *Key, hdr *byte, hdrLen int, dst, src *byte, n int, counter *[16]byte)
TEXT ·seal(SB), NOSPLIT, $0-56
	MOVQ k+0(FP), DI
	MOVQ hdr+8(FP), R8
	MOVQ hdrLen+16(FP), R9
	MOVQ dst+24(FP), R10
	MOVQ src+32(FP), R11
	MOVQ n+40(FP), CX
	MOVQ counter+48(FP), DX
	MOVQ 0(DI), SI

	VBROADCASTI32X4 bswapMask<>(SB), Z31
	VMOVDQU gcmPoly<>(SB), X15
	VPXORD Z8, Z8, Z8

	// The header, authenticated only: an RTP header is one 64-byte
	// chunk, hashed with one register's products; a longer one goes
	// through the loop.
	CMPQ R9, $64
	JA aadLoop
	TESTQ R9, R9
	JEQ aadDone
	CHUNK(R9)
	VMOVDQU8.Z 0(R8), K1, Z4
	VPSHUFB Z31, Z4, Z4
	GHASH1
	JMP aadDone
aadLoop:
	TESTQ R9, R9
	JLE aadDone
	CHUNK(R9)
	LOAD4(R8)
	REVERSE4
	VPXORD Z8, Z4, Z4
	GHASH4
	ADDQ $256, R8
	SUBQ $256, R9
	JMP aadLoop
aadDone:

	VBROADCASTI32X4 272(DI), Z16
	VBROADCASTI32X4 288(DI), Z17
	VBROADCASTI32X4 304(DI), Z18
	VBROADCASTI32X4 320(DI), Z19
	VBROADCASTI32X4 336(DI), Z20
	VBROADCASTI32X4 352(DI), Z21
	VBROADCASTI32X4 368(DI), Z22
	VBROADCASTI32X4 384(DI), Z23
	VBROADCASTI32X4 400(DI), Z24
	VBROADCASTI32X4 416(DI), Z25
	VBROADCASTI32X4 432(DI), Z26
	CMPQ SI, $10
	JEQ keysDone
	VBROADCASTI32X4 448(DI), Z27
	VBROADCASTI32X4 464(DI), Z28
	VBROADCASTI32X4 480(DI), Z29
	VBROADCASTI32X4 496(DI), Z30
keysDone:

	VBROADCASTI32X4 (DX), Z13
	MOVL $0x7777, AX
	KMOVW AX, K5
	VMOVDQU32.Z Z13, K5, Z13
	VMOVDQU64 ctrFirst<>(SB), Z12
	VBROADCASTI32X4 ctrStep<>(SB), Z11
	VBROADCASTI32X4 ctrShuffle<>(SB), Z10

	// The payload: 16 blocks of keystream, then the chunk encrypted,
	// stored, and hashed.
payLoop:
	TESTQ CX, CX
	JLE payDone
	CHUNK(CX)
	VPSHUFB Z10, Z12, Z0
	VPADDD Z11, Z12, Z12
	VPSHUFB Z10, Z12, Z1
	VPADDD Z11, Z12, Z12
	VPSHUFB Z10, Z12, Z2
	VPADDD Z11, Z12, Z12
	VPSHUFB Z10, Z12, Z3
	VPADDD Z11, Z12, Z12
	VPTERNLOGD $0x96, Z16, Z13, Z0
	VPTERNLOGD $0x96, Z16, Z13, Z1
	VPTERNLOGD $0x96, Z16, Z13, Z2
	VPTERNLOGD $0x96, Z16, Z13, Z3
	AES4(VAESENC, Z17)
	AES4(VAESENC, Z18)
	AES4(VAESENC, Z19)
	AES4(VAESENC, Z20)
	AES4(VAESENC, Z21)
	AES4(VAESENC, Z22)
	AES4(VAESENC, Z23)
	AES4(VAESENC, Z24)
	AES4(VAESENC, Z25)
	CMPQ SI, $10
	JNE payAES256
	AES4(VAESENCLAST, Z26)
	JMP payKeystream
payAES256:
	AES4(VAESENC, Z26)
	AES4(VAESENC, Z27)
	AES4(VAESENC, Z28)
	AES4(VAESENC, Z29)
	AES4(VAESENCLAST, Z30)
payKeystream:
	LOAD4(R11)
	VPXORD Z0, Z4, Z4
	VPXORD Z1, Z5, Z5
	VPXORD Z2, Z6, Z6
	VPXORD Z3, Z7, Z7
	VMOVDQU8.Z Z4, K1, Z4
	VMOVDQU8.Z Z5, K2, Z5
	VMOVDQU8.Z Z6, K3, Z6
	VMOVDQU8.Z Z7, K4, Z7
	VMOVDQU8 Z4, K1, 0(R10)
	VMOVDQU8 Z5, K2, 64(R10)
	VMOVDQU8 Z6, K3, 128(R10)
	VMOVDQU8 Z7, K4, 192(R10)
	REVERSE4
	VPXORD Z8, Z4, Z4
	GHASH4
	ADDQ $256, R10
	ADDQ $256, R11
	SUBQ $256, CX
	JMP payLoop
payDone:

	// The lengths block, times H^1.
	MOVQ n+40(FP), AX
	SHLQ $3, AX
	MOVQ hdrLen+16(FP), BX
	SHLQ $3, BX
	VMOVQ AX, X3
	VPINSRQ $1, BX, X3, X3
	VPXOR X3, X8, X4
	VMOVDQU 256(DI), X9
	VPCLMULQDQ $0x00, X9, X4, X0
	VPCLMULQDQ $0x11, X9, X4, X1
	VPCLMULQDQ $0x01, X9, X4, X2
	VPCLMULQDQ $0x10, X9, X4, X3
	VPXOR X3, X2, X2
	REDUCE

	// The tag: the hash, byte-reversed back, masked by the counter
	// block's encryption.
	VBROADCASTI32X4 (DX), Z0
	VPXORD Z16, Z0, Z0
	VAESENC Z17, Z0, Z0
	VAESENC Z18, Z0, Z0
	VAESENC Z19, Z0, Z0
	VAESENC Z20, Z0, Z0
	VAESENC Z21, Z0, Z0
	VAESENC Z22, Z0, Z0
	VAESENC Z23, Z0, Z0
	VAESENC Z24, Z0, Z0
	VAESENC Z25, Z0, Z0
	CMPQ SI, $10
	JNE tagAES256
	VAESENCLAST Z26, Z0, Z0
	JMP tagDone
tagAES256:
	VAESENC Z26, Z0, Z0
	VAESENC Z27, Z0, Z0
	VAESENC Z28, Z0, Z0
	VAESENC Z29, Z0, Z0
	VAESENCLAST Z30, Z0, Z0
tagDone:
	VMOVDQU bswapMask<>(SB), X1
	VPSHUFB X1, X8, X8
	VPXOR X0, X8, X8
	MOVQ dst+24(FP), R10
	ADDQ n+40(FP), R10
	VMOVDQU X8, (R10)
	VZEROUPPER
	RET

// func encryptBlock(rk *[15][16]byte, rounds int, dst, src *[16]byte)
TEXT ·encryptBlock(SB), NOSPLIT, $0-32
	MOVQ rk+0(FP), DI
	MOVQ rounds+8(FP), CX
	MOVQ dst+16(FP), DX
	MOVQ src+24(FP), SI
	MOVOU (SI), X0
	MOVOU (DI), X1
	PXOR X1, X0
	ADDQ $16, DI
	DECQ CX
encLoop:
	MOVOU (DI), X1
	AESENC X1, X0
	ADDQ $16, DI
	DECQ CX
	JNZ encLoop
	MOVOU (DI), X1
	AESENCLAST X1, X0
	MOVOU X0, (DX)
	RET
