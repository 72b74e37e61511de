package dovecottest

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// statusFields are the `doveadm mailbox status` fields Snapshot reads
// (`doveadm mailbox status all INBOX` lists them all).
const statusFields = "guid uidvalidity uidnext highestmodseq messages"

// fetchFields are the `doveadm fetch` fields Snapshot reads. size.physical
// must come before text: it is the only length the text stream has.
const fetchFields = "mailbox-guid uid guid flags date.received.unixtime date.saved.unixtime size.physical size.virtual modseq text"

// Snapshot returns the whole store as Dovecot sees it, built only from
// doveadm output:
//
//	doveadm mailbox list            names (UTF-8, '/'), \NoSelect parents included
//	doveadm mailbox list -s         subscriptions, which may name no mailbox
//	doveadm -f tab mailbox status 'guid uidvalidity uidnext highestmodseq messages' '*'
//	doveadm -f pager fetch 'mailbox-guid uid … size.physical … text' all
//
// Like any reader, Dovecot updates its indexes on the way (and gives new
// maildir files UIDs), so a Snapshot is not free of side effects.
//
// One fetch reads every message of every mailbox. The pager format frames
// nothing: "text:\n" is followed by the raw bytes. Snapshot takes exactly
// size.physical bytes and then demands "\f\n" and the next record, or the
// end; a store whose sizes lie makes doveadm fail ("Cached message size
// larger than expected") or the framing check fail, and either fails the test.
func (d *Dovecot) Snapshot(t testing.TB) Tree {
	t.Helper()
	tree, err := d.snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func (d *Dovecot) snapshot() (Tree, error) {
	listed, err := d.Doveadm("mailbox", "list")
	if err != nil {
		return Tree{}, err
	}
	subscribed, err := d.Doveadm("mailbox", "list", "-s")
	if err != nil {
		return Tree{}, err
	}
	status, err := d.Doveadm("-f", "tab", "mailbox", "status", statusFields, "*")
	if err != nil {
		return Tree{}, err
	}
	messages, err := d.fetchAll()
	if err != nil {
		return Tree{}, err
	}
	return buildTree(listed, subscribed, status, messages)
}

// fetchAll streams every message through parseFetch.
func (d *Dovecot) fetchAll() (map[string][]Message, error) {
	args := []string{"-f", "pager", "fetch", fetchFields, "all"}
	if err := d.prepare(); err != nil {
		return nil, err
	}
	cmd := d.command(args)
	var stderr bytes.Buffer
	cmd.Stderr = io.MultiWriter(&stderr, d.log)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("dovecottest: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("dovecottest: doveadm %s: %w", quoteArgs(args), err)
	}
	messages, perr := parseFetch(bufio.NewReader(out))
	if perr != nil {
		io.Copy(io.Discard, out) // let doveadm finish; its exit status explains more
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("dovecottest: doveadm %s: %w\n%s", quoteArgs(args), err, stderr.Bytes())
	}
	if perr != nil {
		return nil, fmt.Errorf("dovecottest: doveadm %s: %w\n%s", quoteArgs(args), perr, stderr.Bytes())
	}
	return messages, nil
}

// parseFetch parses `doveadm -f pager fetch FETCHFIELDS` output and returns
// the messages by mailbox GUID, each sorted by UID. Doveadm's pager
// formatter (doveadm-print-pager.c) writes, per record, "title: value\n" for
// each field, except streamed fields such as text, which get "title:\n" and
// the raw bytes with nothing after them. Records after the first start with
// "\f\n".
func parseFetch(r *bufio.Reader) (map[string][]Message, error) {
	messages := make(map[string][]Message)
	for n := 0; ; n++ {
		box, msg, err := parseFetchRecord(r)
		if n == 0 && err == errEmptyFetch {
			return messages, nil // no messages at all
		}
		if err != nil {
			return nil, fmt.Errorf("fetch record %d: %w", n+1, err)
		}
		messages[box] = append(messages[box], msg)
		var sep [2]byte
		switch k, err := io.ReadFull(r, sep[:]); {
		case k == 0 && err == io.EOF:
			for _, msgs := range messages {
				slices.SortFunc(msgs, func(a, b Message) int { return cmp.Compare(a.UID, b.UID) })
			}
			return messages, nil
		case err != nil || string(sep[:]) != "\f\n":
			return nil, fmt.Errorf("fetch record %d: mailbox %s uid %d: text is longer than size.physical %d (next bytes %q)",
				n+1, box, msg.UID, msg.Size, sep[:k])
		}
	}
}

// parseFetchRecord parses one record: fields up to "text:\n", then exactly
// size.physical bytes of text, which are hashed.
func parseFetchRecord(r *bufio.Reader) (box string, m Message, err error) {
	m.Size = -1
	for first := true; ; first = false {
		line, err := r.ReadString('\n')
		if err != nil {
			if err == io.EOF && first && line == "" {
				return "", m, errEmptyFetch
			}
			return "", m, fmt.Errorf("truncated before text: %q", line)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "text:" {
			break
		}
		key, val, ok := strings.Cut(line, ": ")
		if !ok && strings.HasSuffix(line, ":") {
			key, ok = strings.TrimSuffix(line, ":"), true // an empty value, in case doveadm trims
		}
		if !ok {
			return "", m, fmt.Errorf("bad line %q", line)
		}
		if first != (key == "mailbox-guid") {
			return "", m, fmt.Errorf("field %q out of order", key)
		}
		if err := setFetchField(&box, &m, key, val); err != nil {
			return "", m, err
		}
	}
	if m.Size < 0 {
		return "", m, errors.New("text before size.physical")
	}
	h := sha256.New()
	if n, err := io.CopyN(h, r, m.Size); err != nil {
		return "", m, fmt.Errorf("mailbox %s uid %d: text is %d bytes, shorter than size.physical %d", box, m.UID, n, m.Size)
	}
	m.SHA256 = hex.EncodeToString(h.Sum(nil))
	return box, m, nil
}

// errEmptyFetch is parseFetch's error for no output at all: a store without
// messages. parseFetch treats it as the end.
var errEmptyFetch = errors.New("no records")

func setFetchField(box *string, m *Message, key, val string) error {
	var err error
	switch key {
	case "mailbox-guid":
		*box = val
	case "uid":
		m.UID, err = parseUint32(val)
	case "guid":
		m.GUID = val
	case "flags":
		for f := range strings.FieldsSeq(val) {
			switch {
			case f == `\Recent`: // session state, not stored
			case strings.HasPrefix(f, `\`):
				m.Flags = append(m.Flags, f)
			default:
				m.Keywords = append(m.Keywords, f)
			}
		}
		slices.Sort(m.Flags)
		slices.Sort(m.Keywords)
	case "date.received.unixtime":
		m.Received, err = strconv.ParseInt(val, 10, 64)
	case "date.saved.unixtime":
		m.Saved, err = strconv.ParseInt(val, 10, 64)
	case "size.physical":
		m.Size, err = strconv.ParseInt(val, 10, 64)
	case "size.virtual":
		m.VSize, err = strconv.ParseInt(val, 10, 64)
	case "modseq":
		m.ModSeq, err = strconv.ParseUint(val, 10, 64)
	default:
		return fmt.Errorf("unexpected field %q", key)
	}
	if err != nil {
		return fmt.Errorf("field %s: %w", key, err)
	}
	return nil
}

// buildTree joins the outputs of mailbox list, mailbox list -s, mailbox
// status and fetch.
func buildTree(listed, subscribed, status string, messages map[string][]Message) (Tree, error) {
	boxes := make(map[string]*Mailbox)
	get := func(name string) *Mailbox {
		if boxes[name] == nil {
			boxes[name] = &Mailbox{Name: name}
		}
		return boxes[name]
	}
	for _, name := range lines(listed) {
		get(name)
	}
	for _, name := range lines(subscribed) {
		get(name).Subscribed = true
	}
	rows, err := parseTab(status)
	if err != nil {
		return Tree{}, fmt.Errorf("dovecottest: mailbox status: %w", err)
	}
	for _, row := range rows {
		m := get(row["mailbox"])
		if err := setStatus(m, row); err != nil {
			return Tree{}, fmt.Errorf("dovecottest: mailbox status %q: %w", m.Name, err)
		}
		msgs := messages[m.GUID]
		delete(messages, m.GUID)
		if n, _ := strconv.Atoi(row["messages"]); n != len(msgs) {
			return Tree{}, fmt.Errorf("dovecottest: mailbox %q: status says %d messages, fetch returned %d", m.Name, n, len(msgs))
		}
		m.Messages = msgs
	}
	for guid := range messages {
		return Tree{}, fmt.Errorf("dovecottest: fetch returned messages of mailbox guid %s, which status did not list", guid)
	}
	var t Tree
	for _, m := range boxes {
		t.Mailboxes = append(t.Mailboxes, *m)
	}
	slices.SortFunc(t.Mailboxes, func(a, b Mailbox) int { return strings.Compare(a.Name, b.Name) })
	return t, nil
}

func setStatus(m *Mailbox, row map[string]string) error {
	var err error
	m.GUID = row["guid"]
	if len(m.GUID) != 32 {
		return fmt.Errorf("guid %q is not 32 hex digits", m.GUID)
	}
	if m.UIDValidity, err = parseUint32(row["uidvalidity"]); err != nil {
		return fmt.Errorf("uidvalidity: %w", err)
	}
	if m.UIDNext, err = parseUint32(row["uidnext"]); err != nil {
		return fmt.Errorf("uidnext: %w", err)
	}
	if m.HighestModSeq, err = strconv.ParseUint(row["highestmodseq"], 10, 64); err != nil {
		return fmt.Errorf("highestmodseq: %w", err)
	}
	return nil
}

// parseTab parses doveadm's tab formatter: a header line of field names and
// one line of tab-separated values per record. Values are not escaped, so a
// row with the wrong number of columns is an error.
func parseTab(s string) ([]map[string]string, error) {
	ls := lines(s)
	if len(ls) == 0 {
		return nil, nil
	}
	header := strings.Split(ls[0], "\t")
	var rows []map[string]string
	for _, l := range ls[1:] {
		vals := strings.Split(l, "\t")
		if len(vals) != len(header) {
			return nil, fmt.Errorf("line %q has %d columns, want %d", l, len(vals), len(header))
		}
		row := make(map[string]string, len(vals))
		for i, v := range vals {
			row[header[i]] = v
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// lines splits doveadm output into lines without their "\n". Nothing is
// trimmed: a mailbox name may end in a space.
func lines(s string) []string {
	var ls []string
	for l := range strings.Lines(s) {
		ls = append(ls, strings.TrimSuffix(l, "\n"))
	}
	return ls
}

func parseUint32(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err
}
