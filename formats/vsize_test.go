package formats

import (
	"math/rand/v2"
	"testing"
)

// naiveVSize is the definition, byte by byte.
func naiveVSize(b []byte) int64 {
	n := int64(len(b))
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			n++
		}
	}
	return n
}

func TestVSizeCounter(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("a\r\n")
	for i := 0; i < 2000; i++ {
		msg := make([]byte, rng.IntN(40))
		for j := range msg {
			msg[j] = alphabet[rng.IntN(len(alphabet))]
		}
		want := naiveVSize(msg)
		if got := VSize(msg); got != want {
			t.Fatalf("VSize(%q) = %d, want %d", msg, got, want)
		}
		// The same bytes in random pieces: CR and LF may be split.
		var c VSizeCounter
		for rest := msg; len(rest) > 0; {
			k := 1 + rng.IntN(len(rest))
			c.Write(rest[:k])
			rest = rest[k:]
		}
		if c.VSize() != want {
			t.Fatalf("VSizeCounter over pieces of %q = %d, want %d", msg, c.VSize(), want)
		}
	}
}
