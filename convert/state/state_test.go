package state

import (
	"encoding/base64"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/boxsync/boxsync/formats"
)

func TestEmptyIsDovecots(t *testing.T) {
	if got := Encode(State{}); got != Empty {
		t.Errorf("Encode(empty) = %q, want Dovecot's %q", got, Empty)
	}
	s, err := Decode(Empty)
	if err != nil || len(s) != 0 {
		t.Errorf("Decode(%q) = %v, %v; want empty", Empty, s, err)
	}
}

func TestRoundTrip(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for i := 0; i < 200; i++ {
		s := State{}
		for j := rng.IntN(10); j > 0; j-- {
			var g formats.GUID
			for k := range g {
				g[k] = byte(rng.Uint32())
			}
			s[g] = Mailbox{rng.Uint32(), formats.UID(rng.Uint32()), formats.ModSeq(rng.Uint64()), formats.ModSeq(rng.Uint64()), rng.Uint32()}
		}
		got, err := Decode(Encode(s))
		if err != nil || !reflect.DeepEqual(got, s) {
			t.Fatalf("Decode(Encode(%v)) = %v, %v", s, got, err)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	good := Encode(State{formats.GUID{1}: {UIDValidity: 5, LastCommonUID: 7, LastCommonModSeq: 9, MessagesCount: 3}})
	raw, _ := base64.StdEncoding.DecodeString(good)
	flip := append([]byte(nil), raw...)
	flip[20] ^= 1
	tests := []struct {
		name, in string
		invalid  bool
		empty    bool
	}{
		{"empty string", "", false, true},
		{"v0 empty", base64.StdEncoding.EncodeToString([]byte{0, 0, 0, 0}), false, true},
		{"not base64", "!!!", true, false},
		{"too small", base64.StdEncoding.EncodeToString([]byte{1, 0, 0}), true, false},
		{"crc mismatch", base64.StdEncoding.EncodeToString(flip), true, false},
		{"truncated", base64.StdEncoding.EncodeToString(raw[:len(raw)-3]), true, false},
		{"good", good, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Decode(tc.in)
			if IsInvalid(err) != tc.invalid {
				t.Fatalf("Decode(%q) error = %v, want invalid=%v", tc.in, err, tc.invalid)
			}
			if err == nil && (len(s) == 0) != tc.empty {
				t.Errorf("Decode(%q) = %v, want empty=%v", tc.in, s, tc.empty)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Empty)
	f.Add(Encode(State{formats.GUID{1, 2}: {UIDValidity: 1, LastCommonUID: 2}}))
	f.Add("AAAAAA==")
	f.Fuzz(func(t *testing.T, in string) {
		s, err := Decode(in)
		if err != nil {
			if !IsInvalid(err) {
				t.Fatalf("Decode error %v is not an *InvalidError", err)
			}
			return
		}
		again, err := Decode(Encode(s))
		if err != nil || !reflect.DeepEqual(again, s) {
			t.Fatalf("round trip of %v: %v, %v", s, again, err)
		}
	})
}
