//go:build !amd64

package gcmseal

const supported = false

func seal(*Key, *byte, int, *byte, *byte, int, *[16]byte) { panic("gcmseal: not supported") }

func encryptBlock(*[15][16]byte, int, *[16]byte, *[16]byte) { panic("gcmseal: not supported") }
