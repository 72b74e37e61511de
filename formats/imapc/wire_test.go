package imapc

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
)

func parseAll(t testing.TB, s string, body bodyFunc) ([]*response, error) {
	r := reader{br: bufio.NewReader(strings.NewReader(s)), body: body}
	var out []*response
	for {
		resp, err := r.read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, resp)
	}
}

func TestParseFetch(t *testing.T) {
	in := "* 3 FETCH (UID 7 X-GUID 1795945493.M984071P30979.vm,S=4,W=5 MODSEQ (12) FLAGS (\\Seen $Junk) " +
		"INTERNALDATE \" 4-Mar-2021 05:06:07 +0100\" RFC822.SIZE 5 SAVEDATE NIL BODY[] {5}\r\na\x80b\r\n " +
		"BODY[HEADER.FIELDS (DATE MESSAGE-ID)] {2}\r\n\r\n)\r\n" +
		"b1 OK [APPENDUID 17 4:6] done\r\n"
	var bodies []string
	resps, err := parseAll(t, in, func(fd *fetchData, section string, r io.Reader, size int64) error {
		data, _ := io.ReadAll(r)
		bodies = append(bodies, fmt.Sprintf("%d %s %d %q", fd.uid, section, size, data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	fd := resps[0].fetch
	if fd.uid != 7 || fd.modseq != 12 || fd.size != 5 || fd.guid != "1795945493.M984071P30979.vm,S=4,W=5" ||
		fmt.Sprint(fd.flags) != `[\Seen $Junk]` || fd.internalDate.Unix() != 1614830767 {
		t.Errorf("fetch = %+v", fd)
	}
	want := []string{`7 BODY[] 5 "a\x80b\r\n"`, `7 BODY[HEADER.FIELDS (DATE MESSAGE-ID)] 2 "\r\n"`}
	if fmt.Sprint(bodies) != fmt.Sprint(want) {
		t.Errorf("bodies = %q, want %q", bodies, want)
	}
	if r := resps[1]; r.tag != "b1" || r.code != "APPENDUID" || r.codeArgs != "17 4:6" || r.text != "done" {
		t.Errorf("tagged = %+v", r)
	}
	if got := appendUIDs(resps[1], 3); fmt.Sprint(got) != "[4 5 6]" {
		t.Errorf("appendUIDs = %v", got)
	}
}

func TestParseUntagged(t *testing.T) {
	in := "* LIST (\\HasNoChildren) \"/\" \"Entw&APw-rfe\"\r\n" +
		"* LIST (\\Noselect) NIL {5}\r\na\"b c\r\n" +
		"* STATUS INBOX (MESSAGES 4 UIDVALIDITY 1795945493 X-GUID 58bba73a15f40b6b0379000083ecc375)\r\n" +
		"* ESEARCH (TAG \"b3\") UID ALL 1:3,7\r\n" +
		"* SEARCH 2 9\r\n" +
		"* CAPABILITY IMAP4rev1 LITERAL+\r\n" +
		"* ID (\"name\" \"Dovecot\")\r\n" +
		"+ go ahead\r\n"
	resps, err := parseAll(t, in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(resps) != 8 {
		t.Fatalf("%d responses", len(resps))
	}
	if v := resps[0].values; v[2] != "Entw&APw-rfe" || v[1] != "/" {
		t.Errorf("LIST = %#v", v)
	}
	if v := resps[1].values; v[2] != "a\"b c" {
		t.Errorf("LIST literal = %#v", v)
	}
	if g, ok := guidFromStatus(resps[2].values[1].([]any)); !ok || g.String() != "58bba73a15f40b6b0379000083ecc375" {
		t.Errorf("STATUS X-GUID = %s %v", g, ok)
	}
	if resps[3].kind != "ESEARCH" || resps[3].values[3] != "1:3,7" {
		t.Errorf("ESEARCH = %#v", resps[3].values)
	}
	if resps[7].tag != "+" || resps[7].text != "go ahead" {
		t.Errorf("continuation = %+v", resps[7])
	}
}

func TestSeqSets(t *testing.T) {
	if got := uidSet([]uint32{1, 2, 3, 5, 7, 8}); got != "1:3,5,7:8" {
		t.Errorf("uidSet = %s", got)
	}
	got, err := parseSeqSet("1:3,5,9:7", 100)
	if err != nil || fmt.Sprint(got) != "[1 2 3 5 7 8 9]" {
		t.Errorf("parseSeqSet = %v, %v", got, err)
	}
	if _, err := parseSeqSet("1:4294967295", 1000); err == nil {
		t.Errorf("huge set accepted")
	}
}

func TestNames(t *testing.T) {
	st := &Store{s: &Settings{}, sep: '.'}
	for _, tc := range []struct{ name, remote string }{
		{"INBOX", "INBOX"}, {"Entwürfe", "Entw&APw-rfe"}, {"a/b", "a.b"}, {"R&D", "R&-D"},
		{"x~2fy", "x/y"}, {"t~7e", "t~"}, {"日本語", "&ZeVnLIqe-"},
	} {
		remote, err := st.toRemote(tc.name)
		if err != nil || remote != tc.remote {
			t.Errorf("toRemote(%q) = %q, %v; want %q", tc.name, remote, err, tc.remote)
		}
		if back, ok := st.fromRemote(tc.remote); !ok || back != tc.name {
			t.Errorf("fromRemote(%q) = %q, %v; want %q", tc.remote, back, ok, tc.name)
		}
	}
	if _, err := st.toRemote("a.b"); err == nil {
		t.Errorf("toRemote(a.b) with separator '.' succeeded")
	}
	pst := &Store{s: &Settings{ListPrefix: "Mail"}, sep: '/'}
	if r, _ := pst.toRemote("Work"); r != "Mail/Work" {
		t.Errorf("prefixed toRemote = %q", r)
	}
	if n, ok := pst.fromRemote("Other"); ok {
		t.Errorf("fromRemote outside the prefix = %q", n)
	}
	// Values observed with `doveadm mailbox status guid` on mail_location=imapc:.
	for remote, want := range map[string]string{
		"INBOX": "c92f64f79f0d1ed01e6d5b314f04886c", "Entw&APw-rfe": "d615cdbee662a5c6fd78f6050c80f1be",
		"Work/Sub": "76e440c4fd049b24c727d46b9393c073", "R&-D": "502fb18917f6e64380121b61b01c18ad",
		"a%b": "68306f5c961cdf20d3f9293a05e8ab40",
	} {
		if g := NameGUID(remote, '/'); g.String() != want {
			t.Errorf("NameGUID(%q) = %s, want %s", remote, g, want)
		}
	}
}

// FuzzResponses feeds arbitrary server output to the parser: it must never
// panic, and a body callback must see no more than the literal's size.
func FuzzResponses(f *testing.F) {
	f.Add([]byte("* 1 FETCH (UID 1 BODY[] {3}\r\nabc FLAGS (\\Seen))\r\n"))
	f.Add([]byte("* LIST (\\Noselect) \"/\" {3}\r\nabc\r\n* OK [UIDVALIDITY 5] x\r\n"))
	f.Add([]byte("* STATUS \"x\" (X-GUID 0011 MAILBOXID (abc))\r\nb1 NO [NONEXISTENT] no\r\n"))
	f.Add([]byte("* 2 FETCH (MODSEQ (3) INTERNALDATE \"bad\" BINARY[] ~{2}\r\n\x00\x01)\r\n"))
	f.Add([]byte("* ESEARCH (TAG \"a\") UID ALL 1:9\r\n+ \r\n* 3 EXISTS\r\n"))
	f.Add([]byte("((((((((((((((((((((((((((((((((((((((((\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := reader{br: bufio.NewReaderSize(bytes.NewReader(data), 16), body: func(fd *fetchData, section string, rd io.Reader, size int64) error {
			n, _ := io.Copy(io.Discard, rd)
			if n > size {
				t.Fatalf("body gave %d bytes for a literal of %d", n, size)
			}
			return nil
		}}
		for i := 0; i < 100; i++ {
			resp, err := r.read()
			if err != nil {
				return
			}
			if resp.kind == "STATUS" && len(resp.values) > 1 {
				if l, ok := resp.values[1].([]any); ok {
					guidFromStatus(l)
				}
			}
			if resp.code == "APPENDUID" {
				appendUIDs(resp, 3)
			}
		}
	})
}
