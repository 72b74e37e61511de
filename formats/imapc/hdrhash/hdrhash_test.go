package hdrhash

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"strings"
	"testing"
	"testing/iotest"
)

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestEmptyConstant(t *testing.T) {
	if got := md5hex("\n"); got != Empty {
		t.Fatalf("md5(\\n) = %s, want %s", got, Empty)
	}
	if Empty != "68b329da9893e34099c7d8ad5cb9c940" {
		t.Fatalf("Empty = %s", Empty)
	}
}

// Each case gives the message and the exact bytes MD5 must see.
var v3Cases = []struct {
	name, msg, preimage string
}{
	{"empty message", "", "\n"},
	{"no hashed headers", "Subject: x\nFrom: a@b\n\nbody\n", "\n"},
	{"body ignored", "Subject: x\n\nDate: not a header\n", "\n"},
	{"date and message-id", "Date: Mon, 1 Jan 2024 00:00:00 +0000\nSubject: s\nMessage-ID: <a@b>\n\nbody",
		"Date:Mon,1Jan202400:00:00+0000\nMessage-ID:<a@b>\n\n"},
	{"message order", "Message-ID: <a@b>\nDate: x\n\n", "Message-ID:<a@b>\nDate:x\n\n"},
	{"crlf", "Date: x\r\nMessage-ID: <a@b>\r\n\r\nbody\r\n", "Date:x\nMessage-ID:<a@b>\n\n"},
	{"case-insensitive name", "DATE: x\nmessage-id: <y>\n\n", "DATE:x\nmessage-id:<y>\n\n"},
	{"space before colon", "Date : x\n\n", "Date:x\n\n"},
	{"repeated header", "Date: a\nDate: b\n\n", "Date:a\nDate:b\n\n"},
	{"continuation", "Date: a\n b\n\tc\nSubject: s\n d\n\n", "Date:a\nb\n\tc\n\n"},
	{"8bit collapses", "Message-ID: <\xc3\xa4@x>\n\n", "Message-ID:<?@x>\n\n"},
	{"question marks collapse", "Message-ID: <a??b>\n\n", "Message-ID:<a?b>\n\n"},
	{"8bit next to question mark", "Message-ID: <a?\xff?b>\n\n", "Message-ID:<a?b>\n\n"},
	{"space breaks the run", "Message-ID: <a? ?b>\n\n", "Message-ID:<a??b>\n\n"},
	{"control chars", "Date: a\x00\x01b\x7fc\n\n", "Date:a?b?c\n\n"},
	{"lone cr", "Date: a\rb\n\n", "Date:a?b\n\n"},
	{"tab kept in v3", "Date:\tx\n\n", "Date:\tx\n\n"},
	{"no colon", "Date\nDate: y\n\n", "Date:y\n\n"},
	{"missing eoh", "Date: x", "Date:x\n\n"},
	{"missing eoh after newline", "Date: x\n", "Date:x\n\n"},
	{"missing eoh unmatched last", "Date: x\nSubject: y", "Date:x\n\n"},
	{"leading space line is not a continuation", " Date: x\n\n", "\n"},
	{"nul cuts the name", "Date\x00junk: x\n\n", "Date?junk:x\n\n"},
	{"empty header block", "\nDate: x\n", "\n"},
	{"cr cr lf", "Date: x\r\r\n\n", "Date:x?\n\n"},
}

func TestV3(t *testing.T) {
	for _, tc := range v3Cases {
		t.Run(tc.name, func(t *testing.T) {
			want := md5hex(tc.preimage)
			got, err := V3(strings.NewReader(tc.msg), DefaultHeaders)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("V3(%q) = %s, want %s = md5(%q)", tc.msg, got, want, tc.preimage)
			}
			// The result must not depend on how reads are split.
			got1, err := V3(iotest.OneByteReader(strings.NewReader(tc.msg)), DefaultHeaders)
			if err != nil || got1 != got {
				t.Errorf("V3 one byte at a time = %s, %v; want %s", got1, err, got)
			}
		})
	}
}

func TestVersions(t *testing.T) {
	msg := "Date: a b\t?\xff\r\nX: y\r\n\r\n"
	for _, tc := range []struct {
		version  int
		preimage string
	}{
		{1, "Date: a b\t?\xff\n\n"},
		{2, "Date: a b\t?\n\n"},
		{3, "Date:ab\t?\n\n"},
		{4, "Date:ab?\n\n"},
	} {
		got, err := Hash(strings.NewReader(msg), tc.version, DefaultHeaders)
		if err != nil {
			t.Fatal(err)
		}
		if want := md5hex(tc.preimage); got != want {
			t.Errorf("Hash(v%d) = %s, want md5(%q) = %s", tc.version, got, tc.preimage, want)
		}
	}
	if _, err := Hash(strings.NewReader(msg), 5, DefaultHeaders); err == nil {
		t.Errorf("Hash(v5) succeeded")
	}
}

func TestCustomHeaders(t *testing.T) {
	msg := "Subject: hi\nDate: x\n\n"
	got, _ := V3(strings.NewReader(msg), []string{"Subject"})
	if want := md5hex("Subject:hi\n\n"); got != want {
		t.Errorf("V3(Subject) = %s, want %s", got, want)
	}
}

func TestLongLines(t *testing.T) {
	long := strings.Repeat("x", 200<<10)
	msg := "Date: " + long + "\nX-Long: " + long + "\nMessage-ID: <a>\n\n"
	got, err := V3(strings.NewReader(msg), DefaultHeaders)
	if err != nil {
		t.Fatal(err)
	}
	if want := md5hex("Date:" + long + "\nMessage-ID:<a>\n\n"); got != want {
		t.Errorf("long lines: got %s, want %s", got, want)
	}
	// A name longer than MESSAGE_HEADER_NAME_MAX_LEN never matches.
	name := strings.Repeat("D", 1001)
	if got, _ := V3(strings.NewReader(name+": x\n\n"), []string{name}); got != Empty {
		t.Errorf("over-long name matched")
	}
}

func FuzzV3(f *testing.F) {
	for _, tc := range v3Cases {
		f.Add([]byte(tc.msg))
	}
	f.Add(bytes.Repeat([]byte("Date: \r"), 100))
	f.Fuzz(func(t *testing.T, msg []byte) {
		got, err := V3(bytes.NewReader(msg), DefaultHeaders)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 32 {
			t.Fatalf("hash %q is not 32 hex digits", got)
		}
		if got1, _ := V3(iotest.OneByteReader(bytes.NewReader(msg)), DefaultHeaders); got1 != got {
			t.Fatalf("split reads give %s, whole gives %s", got1, got)
		}
	})
}
