package mbox

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/zlib"
)

// headerPadding is Dovecot's MBOX_HEADER_PADDING: spaces after
// X-Keywords so that flag changes can be written in place.
const headerPadding = 50

// mboxWriter writes an mbox file, compressed or not, counting the
// (uncompressed) bytes.
type mboxWriter struct {
	zw io.WriteCloser // the compressor, or nil
	bw *bufio.Writer
	n  int64
}

func newMboxWriter(w io.Writer, format zlib.Format, level int) (*mboxWriter, error) {
	mw := &mboxWriter{}
	if format != zlib.None {
		zw, err := zlib.NewWriter(w, format, level)
		if err != nil {
			return nil, err
		}
		mw.zw = zw
		w = zw
	}
	mw.bw = bufio.NewWriterSize(w, 64<<10)
	return mw, nil
}

func (w *mboxWriter) Write(p []byte) (int, error) {
	n, err := w.bw.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *mboxWriter) WriteString(s string) (int, error) {
	n, err := w.bw.WriteString(s)
	w.n += int64(n)
	return n, err
}

func (w *mboxWriter) close() error {
	err := w.bw.Flush()
	if w.zw != nil {
		err = errors.Join(err, w.zw.Close())
	}
	return err
}

// dovecotHeaders are the headers boxsync writes in front of a message.
type dovecotHeaders struct {
	base     *imapBase // only for the first message
	uid      uint32
	flags    formats.Flags
	recent   bool // \Recent: Status without 'O'
	keywords []string
	contLen  int64
}

// render writes them as Dovecot's save and sync do (mbox-save.c,
// mbox-sync-update.c): X-IMAPbase with a 10-digit last UID, X-UID,
// Status (R \Seen, O not \Recent: "Status: \n" for a \Recent message
// without \Seen, as mbox-save.c status_flags_append writes it; always
// present), X-Status (A F T D) when any,
// X-Keywords with padding, Content-Length.
func (h dovecotHeaders) render() string {
	var b strings.Builder
	if h.base != nil {
		fmt.Fprintf(&b, "X-IMAPbase: %d %010d", h.base.uidValidity, h.base.lastUID)
		for _, kw := range h.base.keywords {
			b.WriteByte(' ')
			b.WriteString(kw)
		}
		b.WriteByte('\n')
	}
	b.WriteString("X-UID: ")
	b.WriteString(strconv.FormatUint(uint64(h.uid), 10))
	b.WriteString("\nStatus: ")
	if h.flags&formats.FlagSeen != 0 {
		b.WriteByte('R')
	}
	if !h.recent {
		b.WriteByte('O')
	}
	b.WriteByte('\n')
	if h.flags&(formats.FlagAnswered|formats.FlagFlagged|formats.FlagDraft|formats.FlagDeleted) != 0 {
		b.WriteString("X-Status: ")
		for _, f := range []struct {
			f formats.Flags
			c byte
		}{{formats.FlagAnswered, 'A'}, {formats.FlagFlagged, 'F'}, {formats.FlagDraft, 'T'}, {formats.FlagDeleted, 'D'}} {
			if h.flags&f.f != 0 {
				b.WriteByte(f.c)
			}
		}
		b.WriteByte('\n')
	}
	b.WriteString("X-Keywords:")
	for _, kw := range h.keywords {
		b.WriteByte(' ')
		b.WriteString(kw)
	}
	b.WriteString(strings.Repeat(" ", headerPadding))
	b.WriteString("\nContent-Length: ")
	b.WriteString(strconv.FormatInt(h.contLen, 10))
	b.WriteByte('\n')
	return b.String()
}

// message writes one message: the From_ line, Dovecot's headers (at the
// top, or before the end-of-header line at insertAt when the message
// starts with a blank, which would continue the header before it), the
// content, and the separator LF.
func (w *mboxWriter) message(fromLine string, h dovecotHeaders, content io.Reader, size, insertAt int64) error {
	if _, err := w.WriteString(fromLine); err != nil {
		return err
	}
	if insertAt > 0 {
		n, err := io.CopyN(w, content, insertAt)
		if err != nil {
			return fmt.Errorf("message content: %d of %d bytes before its header end: %w", n, insertAt, eofErr(err))
		}
		size -= n
	}
	if _, err := w.WriteString(h.render()); err != nil {
		return err
	}
	n, err := io.Copy(w, content)
	if err != nil {
		return err
	}
	if n != size {
		return &formats.Error{Kind: formats.KindTemp, Err: fmt.Errorf("message content: %d bytes, expected %d", n, size)}
	}
	_, err = w.WriteString("\n")
	return err
}

func eofErr(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// pseudoBody is mbox-sync.c PSEUDO_MESSAGE_BODY.
const pseudoBody = "This text is part of the internal format of your mail folder, and is not\n" +
	"a real message.  It is created automatically by the mail system software.\n" +
	"If deleted, important folder data will be lost, and it will be re-created\n" +
	"with the data reset to initial values.\n"

// pseudo writes c-client's "FOLDER INTERNAL DATA" message, which keeps
// an empty mailbox's UIDVALIDITY and last UID (mbox-sync.c
// mbox_write_pseudo).
func (w *mboxWriter) pseudo(uidValidity, lastUID uint32, now time.Time, loc *time.Location) error {
	host := hostname()
	_, err := fmt.Fprintf(w, "%sDate: %s\nFrom: Mail System Internal Data <MAILER-DAEMON@%s>\n"+
		"Subject: DON'T DELETE THIS MESSAGE -- FOLDER INTERNAL DATA\nMessage-ID: <%d@%s>\n"+
		"X-IMAP: %d %010d\nStatus: RO\n\n%s\n",
		formatFrom("MAILER_DAEMON", now, loc), now.In(loc).Format(time.RFC1123Z), host,
		now.Unix(), host, uidValidity, lastUID, pseudoBody)
	return err
}

// saveResult describes a message copied into the spool by filterSave.
type saveResult struct {
	in        int64  // bytes read
	out       int64  // bytes kept
	eoh       int64  // offset of the end-of-header line in the kept bytes, -1 if none
	bodyLen   int64  // bytes after it (the Content-Length)
	retPath   string // the Return-Path header's value
	lwspStart bool   // the first kept byte is a blank
}

// filterSave copies a message, dropping the header lines Dovecot keeps
// for itself (hiddenHeaders, also dropped by Dovecot's save) and header
// lines that are valid From_ lines (which would split the message;
// Dovecot drops every header line starting "From "). Everything else is
// kept byte for byte.
func filterSave(dst io.Writer, src io.Reader) (saveResult, error) {
	res := saveResult{eoh: -1}
	cr := &countReader{r: src}
	br := bufio.NewReaderSize(cr, 64<<10)
	out := &countWriter{w: dst}
	inField, dropping := false, false
	for {
		chunk, err := br.ReadSlice('\n')
		if len(chunk) == 0 && err != nil {
			if errors.Is(err, io.EOF) {
				res.in, res.out = cr.n, out.n
				return res, nil
			}
			return res, err
		}
		if (len(chunk) == 1 && chunk[0] == '\n') || (len(chunk) == 2 && chunk[0] == '\r' && chunk[1] == '\n') {
			res.eoh = out.n
			if _, err := out.Write(chunk); err != nil {
				return res, err
			}
			break
		}
		keep := true
		if inField && isLWSP(chunk[0]) {
			keep = !dropping
		} else {
			inField = true
			name, valueAt := headerName(chunk)
			lname := strings.ToLower(string(name))
			dropping = hiddenHeaders[lname] || isFrom(chunk) ||
				(chunk[len(chunk)-1] != '\n' && isFrom(append(chunk[:len(chunk):len(chunk)], '\n')))
			keep = !dropping
			if keep && out.n == 0 && isLWSP(chunk[0]) {
				res.lwspStart = true
			}
			if lname == "return-path" && res.retPath == "" && valueAt > 0 {
				v, _ := trimEOL(chunk[valueAt:])
				res.retPath = string(v)
			}
		}
		for {
			if keep {
				if _, err := out.Write(chunk); err != nil {
					return res, err
				}
			}
			if !errors.Is(err, bufio.ErrBufferFull) {
				break
			}
			chunk, err = br.ReadSlice('\n')
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return res, err
		}
		if errors.Is(err, io.EOF) {
			res.in, res.out = cr.n, out.n
			return res, nil
		}
	}
	n, err := io.Copy(out, br)
	if err != nil {
		return res, err
	}
	res.bodyLen = n
	res.in, res.out = cr.n, out.n
	return res, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// copyRange copies [start, end) of src.
func copyRange(dst io.Writer, src source, start, end int64) error {
	r, err := src.at(start)
	if err != nil {
		return err
	}
	n, err := io.CopyN(dst, r, end-start)
	if err != nil {
		return fmt.Errorf("copying bytes %d..%d: got %d: %w", start, end, n, eofErr(err))
	}
	return nil
}

// spoolFile makes the temporary file a transaction's saves go to.
func spoolFile(dir string) (*os.File, error) {
	return os.CreateTemp(dir, ".boxsync-spool-*.lock")
}
