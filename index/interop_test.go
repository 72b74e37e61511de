package index

import (
	"crypto/sha1"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/internal/dovecottest"
)

// wantMsg is a message a test writes and expects Dovecot to report.
type wantMsg struct {
	uid      uint32
	flags    uint8
	keywords []string
	modseq   uint64
	body     string
}

func testMessages() []wantMsg {
	return []wantMsg{
		{uid: 3, flags: FlagSeen | FlagFlagged, keywords: []string{"Important"}, modseq: 55},
		{uid: 4, flags: 0, modseq: 60},
		{uid: 7, flags: FlagAnswered | FlagSeen, keywords: []string{"$Forwarded", "Important"}, modseq: 77},
		{uid: 8, flags: FlagDraft | FlagDeleted, keywords: []string{"$Label1"}, modseq: 61},
	}
}

// writeMessages adds msgs with their flags, keywords and modseqs in one
// transaction, as a backup destination writer does (spec §2.9).
func writeMessages(t *testing.T, ix *Index, msgs []wantMsg, nextUID uint32, highest uint64, ext func(tx *Tx, m wantMsg)) {
	t.Helper()
	tx := ix.Begin()
	defer tx.Rollback()
	for _, m := range msgs {
		tx.Append(m.uid, m.flags)
		if len(m.keywords) > 0 {
			tx.UpdateKeywords(m.uid, KeywordsAdd, m.keywords...)
		}
		tx.SetModSeq(m.uid, m.modseq)
		if ext != nil {
			ext(tx, m)
		}
	}
	tx.SetModSeq(0, highest)
	tx.SetHeader(FieldNextUID, nextUID)
	tx.SetHeader(FieldFirstRecentUID, nextUID)
	if _, err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func msgBody(uid uint32) string {
	return fmt.Sprintf("From: a@example.com\nSubject: message %d\n\nbody %d\n", uid, uid)
}

// vsize counts LF as CRLF.
func vsize(b string) int { return len(b) + strings.Count(b, "\n") - strings.Count(b, "\r\n") }

// writeDboxFile writes an sdbox u.UID file (spec §3).
func writeDboxFile(t *testing.T, dir string, uid uint32, body string) {
	t.Helper()
	var b strings.Builder
	b.WriteString("2 M1e C6b0bd91a\n")
	fmt.Fprintf(&b, "\x01\x02N          %016X\n", len(body))
	b.WriteString(body)
	fmt.Fprintf(&b, "\n\x01\x03\nG%032x\nR6b0bd91a\nV%x\n\n", sha1.Sum([]byte(body)), vsize(body))
	if err := os.WriteFile(filepath.Join(dir, "u."+strconv.Itoa(int(uid))), []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// checkDovecot compares doveadm's view of INBOX with msgs.
func checkDovecot(t *testing.T, d *dovecottest.Dovecot, box string, msgs []wantMsg, uidValidity, nextUID uint32, highest uint64) {
	t.Helper()
	status := d.MustDoveadm(t, "mailbox", "status", "uidvalidity uidnext highestmodseq messages", box)
	want := fmt.Sprintf("%s messages=%d uidnext=%d uidvalidity=%d highestmodseq=%d\n", box, len(msgs), nextUID, uidValidity, highest)
	if status != want {
		t.Errorf("doveadm mailbox status = %q, want %q", status, want)
	}
	fetch := d.MustDoveadm(t, "fetch", "uid flags modseq", "mailbox", box, "all")
	var wb strings.Builder
	for i, m := range msgs {
		if i > 0 {
			wb.WriteString("\n")
		}
		names := systemFlagNames(m.flags)
		kws := slices.Clone(m.keywords)
		names = append(names, kws...)
		fmt.Fprintf(&wb, "uid: %d\nflags: %s\nmodseq: %d\n", m.uid, strings.Join(names, " "), m.modseq)
	}
	if got := normalizeFetch(fetch); got != normalizeFetch(wb.String()) {
		t.Errorf("doveadm fetch:\n%q\nwant:\n%q", got, normalizeFetch(wb.String()))
	}
	d.CheckLogClean(t)
}

// normalizeFetch sorts each message's flags (doveadm lists keywords in
// index order).
func normalizeFetch(s string) string {
	lines := strings.Split(strings.TrimSpace(strings.ReplaceAll(s, "\f", "")), "\n")
	for i, l := range lines {
		if f, ok := strings.CutPrefix(l, "flags:"); ok {
			w := strings.Fields(f)
			slices.Sort(w)
			lines[i] = "flags: " + strings.Join(w, " ")
		}
	}
	return strings.Join(lines, "\n")
}

// TestDovecotReadsSdbox writes an sdbox mailbox with a log-only index and
// checks that Dovecot sees exactly what was written.
func TestDovecotReadsSdbox(t *testing.T) {
	d := dovecottest.New(t, "sdbox:~/mail")
	dir := filepath.Join(d.Root(), "mailboxes", "INBOX", "dbox-Mails")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	msgs := testMessages()
	for _, m := range msgs {
		writeDboxFile(t, dir, m.uid, msgBody(m.uid))
	}
	guid := [16]byte{0xee, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}
	ix, err := Create(dir, Prefix, Options{UIDValidity: 987654321, Extensions: []ExtDef{DboxHdr{MailboxGUID: guid}.Ext()}})
	if err != nil {
		t.Fatal(err)
	}
	writeMessages(t, ix, msgs, 10, 90, nil)
	checkDovecot(t, d, "INBOX", msgs, 987654321, 10, 90)

	// our own reading agrees
	v, err := ix.View()
	if err != nil {
		t.Fatal(err)
	}
	if h, ok := v.DboxHdr(); !ok || h.MailboxGUID != guid {
		t.Errorf("dbox-hdr = %+v, %v", h, ok)
	}
	if v.HighestModSeq() != 90 || v.NextUID() != 10 || v.UIDValidity() != 987654321 {
		t.Errorf("view: hms %d next %d uidvalidity %d", v.HighestModSeq(), v.NextUID(), v.UIDValidity())
	}

	// a second transaction on top of what Dovecot wrote meanwhile (its
	// syncs add records to the log)
	tx := ix.Begin()
	tx.UpdateFlags(4, FlagSeen, 0)
	tx.UpdateKeywords(3, KeywordsRemove, "Important")
	tx.Expunge(8, [16]byte{})
	tx.SetModSeq(4, 100)
	tx.SetModSeq(3, 101)
	tx.SetModSeq(0, 101)
	if _, err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "u.8")); err != nil {
		t.Fatal(err)
	}
	msgs[0].keywords, msgs[0].modseq = nil, 101
	msgs[1].flags, msgs[1].modseq = FlagSeen, 100
	msgs = msgs[:3]
	checkDovecot(t, d, "INBOX", msgs, 987654321, 10, 101)
}

// TestDovecotReadsMaildir writes a Maildir with dovecot-uidlist,
// dovecot-keywords and a log-only index preserving modseqs (spec §6.5).
func TestDovecotReadsMaildir(t *testing.T) {
	d := dovecottest.New(t, "maildir:~/Maildir")
	root := d.Root()
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	msgs := testMessages()
	keywords := []string{"Important", "$Forwarded", "$Label1"}
	var uidlist strings.Builder
	fmt.Fprintf(&uidlist, "3 V123456 N10 G%032x\n", 0xabcdef)
	for _, m := range msgs {
		body := msgBody(m.uid)
		base := fmt.Sprintf("1700000000.M%dP1.host,S=%d,W=%d", m.uid, len(body), vsize(body))
		letters := ""
		for _, f := range []struct {
			f uint8
			c string
		}{{FlagDraft, "D"}, {FlagFlagged, "F"}, {FlagAnswered, "R"}, {FlagSeen, "S"}, {FlagDeleted, "T"}} {
			if m.flags&f.f != 0 {
				letters += f.c
			}
		}
		var kl []string
		for _, k := range m.keywords {
			kl = append(kl, string(rune('a'+slices.Index(keywords, k))))
		}
		slices.Sort(kl)
		letters += strings.Join(kl, "")
		if err := os.WriteFile(filepath.Join(root, "cur", base+":2,"+letters), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&uidlist, "%d :%s\n", m.uid, base)
	}
	var kwf strings.Builder
	for i, k := range keywords {
		fmt.Fprintf(&kwf, "%d %s\n", i, k)
	}
	for name, data := range map[string]string{"dovecot-uidlist": uidlist.String(), "dovecot-keywords": kwf.String()} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ix, err := Create(root, Prefix, Options{UIDValidity: 123456})
	if err != nil {
		t.Fatal(err)
	}
	writeMessages(t, ix, msgs, 10, 80, nil)
	checkDovecot(t, d, "INBOX", msgs, 123456, 10, 80)
}

// TestDovecotReadsRotated makes the writer rotate the log and write
// dovecot.index, then lets Dovecot read the result.
func TestDovecotReadsRotated(t *testing.T) {
	d := dovecottest.New(t, "sdbox:~/mail")
	dir := filepath.Join(d.Root(), "mailboxes", "INBOX", "dbox-Mails")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	msgs := testMessages()
	for _, m := range msgs {
		writeDboxFile(t, dir, m.uid, msgBody(m.uid))
	}
	opt := Options{UIDValidity: 42, Extensions: []ExtDef{DboxHdr{MailboxGUID: [16]byte{1}}.Ext()},
		LogRotateMinSize: 1, LogRotateMaxSize: 600, LogRotateMinAge: -1}
	ix, err := Create(dir, Prefix, opt)
	if err != nil {
		t.Fatal(err)
	}
	writeMessages(t, ix, msgs, 10, 90, nil)
	highest := uint64(90)
	for i := range 30 {
		tx := ix.Begin()
		if i%2 == 0 {
			tx.UpdateFlags(4, FlagFlagged, 0)
		} else {
			tx.UpdateFlags(4, 0, FlagFlagged)
		}
		highest++
		tx.SetModSeq(4, highest)
		tx.SetModSeq(0, highest)
		if _, err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{Prefix, Prefix + ".log", Prefix + ".log.2"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("after rotation: %v", err)
		}
	}
	// doveadm dump reads our dovecot.index as we wrote it
	if err := ix.WriteIndex(); err != nil {
		t.Fatal(err)
	}
	dump := d.MustDoveadm(t, "dump", filepath.Join(dir, Prefix))
	for _, want := range []string{"uid validity ............. = 42 ", "next uid ................. = 10\n",
		"messages count ........... = 4\n", "name ........ = modseq", "name ........ = dbox-hdr",
		fmt.Sprintf(" - highest_modseq = %d", highest)} {
		if !strings.Contains(dump, want) {
			t.Errorf("doveadm dump of our dovecot.index lacks %q:\n%s", want, dump)
		}
	}
	if out := d.MustDoveadm(t, "dump", filepath.Join(dir, Prefix+".log")); !strings.Contains(out, "record: offset=40, type=header-update (ext)") {
		t.Errorf("doveadm dump of our log:\n%s", out)
	}
	msgs[1].modseq = highest
	checkDovecot(t, d, "INBOX", msgs, 42, 10, highest)
	// and we read back our own rotated files
	ix2, err := Open(dir, Prefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ix2.View()
	if err != nil {
		t.Fatal(err)
	}
	if v.HighestModSeq() != highest || v.Count() != len(msgs) {
		t.Errorf("reopened: hms %d count %d", v.HighestModSeq(), v.Count())
	}
}

// TestDovecotReadsMdbox writes an mdbox store: storage/m.1, a log-only map
// index (map and ref records) and a log-only mailbox index (mdbox-hdr,
// mdbox and guid records), and checks that Dovecot reads the messages,
// their bodies and their flags without rebuilding anything.
func TestDovecotReadsMdbox(t *testing.T) {
	d := dovecottest.New(t, "mdbox:~/mail")
	storage := filepath.Join(d.Root(), "storage")
	boxDir := filepath.Join(d.Root(), "mailboxes", "INBOX", "dbox-Mails")
	for _, p := range []string{storage, boxDir} {
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	msgs := testMessages()
	// storage/m.1: the file header, then each message with its metadata
	var m1 strings.Builder
	m1.WriteString("2 M1e C6b0bd91a\n")
	type place struct{ offset, size uint32 }
	places := map[uint32]place{}
	guids := map[uint32][16]byte{}
	for i, m := range msgs {
		body := msgBody(m.uid)
		var g [16]byte
		copy(g[:], fmt.Sprintf("guid-%011d", m.uid))
		guids[m.uid] = g
		start := m1.Len()
		fmt.Fprintf(&m1, "\x01\x02N          %016X\n", len(body))
		m1.WriteString(body)
		fmt.Fprintf(&m1, "\n\x01\x03\nG%x\nR6b0bd91a\nV%x\nBINBOX\n\n", g, vsize(body))
		places[uint32(i+1)] = place{uint32(start), uint32(m1.Len() - start)}
	}
	if err := os.WriteFile(filepath.Join(storage, "m.1"), []byte(m1.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	const mapUV = 111
	mapDef := ExtDefMap
	mapDef.Hdr = MapHdr{HighestFileID: 1}.Encode()
	mix, err := Create(storage, MapPrefix, Options{UIDValidity: mapUV, NoModSeq: true, Extensions: []ExtDef{mapDef, ExtDefRef}})
	if err != nil {
		t.Fatal(err)
	}
	tx := mix.Begin()
	for mapUID := uint32(1); mapUID <= uint32(len(msgs)); mapUID++ {
		tx.Append(mapUID, 0)
		p := places[mapUID]
		tx.ExtRecUpdate(ExtMap, mapUID, MapRec{FileID: 1, Offset: p.offset, Size: p.size}.Encode())
		tx.ExtRecUpdate(ExtRef, mapUID, []byte{1, 0})
	}
	tx.SetHeader(FieldNextUID, uint32(len(msgs))+1)
	commit(t, tx)

	ix, err := Create(boxDir, Prefix, Options{UIDValidity: 222, Extensions: []ExtDef{
		MdboxHdr{MapUIDValidity: mapUV, MailboxGUID: [16]byte{9, 9}}.Ext(), ExtDefMdbox, ExtDefGUID}})
	if err != nil {
		t.Fatal(err)
	}
	writeMessages(t, ix, msgs, 10, 90, func(tx *Tx, m wantMsg) {
		mapUID := uint32(slices.IndexFunc(msgs, func(x wantMsg) bool { return x.uid == m.uid }) + 1)
		tx.ExtRecUpdate(ExtMdbox, m.uid, MdboxRec{MapUID: mapUID, SaveDate: 1700000000}.Encode())
		g := guids[m.uid]
		tx.ExtRecUpdate(ExtGUID, m.uid, g[:])
	})
	checkDovecot(t, d, "INBOX", msgs, 222, 10, 90)
	for _, m := range msgs {
		body := d.MustDoveadm(t, "fetch", "text", "mailbox", "INBOX", "uid", fmt.Sprint(m.uid))
		if !strings.Contains(body, fmt.Sprintf("body %d\n", m.uid)) {
			t.Errorf("uid %d: doveadm fetch text = %q", m.uid, body)
		}
	}
	guid := d.MustDoveadm(t, "fetch", "guid", "mailbox", "INBOX", "uid", "3")
	if want := fmt.Sprintf("%x", guids[3]); !strings.Contains(guid, want) {
		t.Errorf("guid of uid 3: %q, want %s", guid, want)
	}
	d.CheckLogClean(t)
}
