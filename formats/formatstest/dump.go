// Package formatstest holds the conformance suite every storage driver
// passes (Run) and the canonical dump of a store (Dump) that every test
// compares.
//
// # Overview
//
// Run exercises the whole formats contract: tree, status, save with kept
// UIDs and GUIDs, exact bytes, flags, keywords, expunge, rollback,
// persistence across reopening, subscriptions and error kinds. A Caps
// field the driver lacks turns the tests that need it into skips naming the
// field. Dump renders a store as deterministic text, so a failed
// comparison prints a readable diff.
package formatstest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/boxsync/boxsync/formats"
)

// Field selects the parts of a dump; comparisons leave out what a pair of
// stores cannot keep equal (a Maildir's save date, modseqs without an index).
type Field uint

const (
	FieldGUID        Field = 1 << iota // message GUIDs
	FieldModSeq                        // per-message modseq and HIGHESTMODSEQ
	FieldSaved                         // save date
	FieldVSize                         // virtual size
	FieldMailboxGUID                   // mailbox GUIDs
	FieldSubscribed                    // subscriptions
	FieldUIDNext                       // UIDNEXT

	// FieldsAll is every field.
	FieldsAll = FieldGUID | FieldModSeq | FieldSaved | FieldVSize | FieldMailboxGUID | FieldSubscribed | FieldUIDNext
	// FieldsBackup is what `boxsync backup` must carry between any two
	// Dovecot formats in the skeleton: all but modseqs and save dates.
	FieldsBackup = FieldsAll &^ (FieldModSeq | FieldSaved)
)

// Dump renders store as canonical text: the sorted tree with each
// mailbox's status and, per message in UID order, its metadata and the
// SHA-256 of its exact bytes. It reads every body once.
func Dump(ctx context.Context, store formats.Store, fields Field) (string, error) {
	var b strings.Builder
	boxes, err := store.Mailboxes(ctx)
	if err != nil {
		return "", err
	}
	for _, info := range boxes {
		if info.NoSelect && (fields&FieldSubscribed == 0 || !info.Subscribed) {
			// A container shows only as a name: whether a format
			// materialises it is not observable over IMAP.
			fmt.Fprintf(&b, "container %q\n", info.Name)
			continue
		}
		if info.NoSelect {
			fmt.Fprintf(&b, "container %q subscribed\n", info.Name)
			continue
		}
		if err := dumpMailbox(ctx, &b, store, info, fields); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}

func dumpMailbox(ctx context.Context, b *strings.Builder, store formats.Store, info formats.MailboxInfo, fields Field) error {
	mb, err := store.Open(ctx, info.Name)
	if err != nil {
		return err
	}
	defer mb.Close()
	st, err := mb.Status(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(b, "mailbox %q uidvalidity=%d", info.Name, st.UIDValidity)
	if fields&FieldUIDNext != 0 {
		fmt.Fprintf(b, " uidnext=%d", st.UIDNext)
	}
	if fields&FieldMailboxGUID != 0 {
		fmt.Fprintf(b, " guid=%s", st.GUID)
	}
	if fields&FieldModSeq != 0 {
		fmt.Fprintf(b, " highestmodseq=%d", st.HighestModSeq)
	}
	if fields&FieldSubscribed != 0 && info.Subscribed {
		b.WriteString(" subscribed")
	}
	fmt.Fprintf(b, " messages=%d\n", st.Messages)
	for m, err := range mb.Messages(ctx, 1) {
		if err != nil {
			return err
		}
		sum, n, err := bodySum(ctx, mb, m.UID)
		if err != nil {
			return err
		}
		fmt.Fprintf(b, "  uid=%d", m.UID)
		if fields&FieldGUID != 0 {
			fmt.Fprintf(b, " guid=%s", m.GUID)
		}
		fmt.Fprintf(b, " flags=%q kw=%q received=%s size=%d", m.Flags.String(),
			strings.Join(m.Keywords, " "), m.Received.UTC().Format(time.RFC3339), n)
		if m.Size >= 0 && m.Size != n {
			fmt.Fprintf(b, " (listed size %d)", m.Size)
		}
		if fields&FieldVSize != 0 && m.VSize >= 0 {
			fmt.Fprintf(b, " vsize=%d", m.VSize)
		}
		if fields&FieldModSeq != 0 {
			fmt.Fprintf(b, " modseq=%d", m.ModSeq)
		}
		if fields&FieldSaved != 0 {
			fmt.Fprintf(b, " saved=%s", m.Saved.UTC().Format(time.RFC3339))
		}
		if len(m.Ext) > 0 {
			for _, k := range []byte("PO") {
				if v, ok := m.Ext[k]; ok {
					fmt.Fprintf(b, " ext%c=%q", k, v)
				}
			}
		}
		fmt.Fprintf(b, " sha256=%s\n", sum[:16])
	}
	return nil
}

func bodySum(ctx context.Context, mb formats.Mailbox, uid formats.UID) (string, int64, error) {
	var sum string
	var n int64
	err := mb.Body(ctx, uid, func(body formats.Body) error {
		h := sha256.New()
		var err error
		n, err = io.Copy(h, body)
		if err != nil {
			return err
		}
		if body.Size() >= 0 && body.Size() != n {
			return fmt.Errorf("body of uid %d: Size() says %d, read %d bytes", uid, body.Size(), n)
		}
		sum = hex.EncodeToString(h.Sum(nil))
		return nil
	})
	return sum, n, err
}

// Diff returns a line diff of two dumps ("" when equal): the lines only in
// want prefixed "-", only in got "+", in order.
func Diff(want, got string) string {
	if want == got {
		return ""
	}
	a, b := strings.Split(want, "\n"), strings.Split(got, "\n")
	// Longest common subsequence over lines; dumps are small in tests.
	n, m := len(a), len(b)
	if n*m > 4_000_000 {
		return fmt.Sprintf("dumps differ (too large to diff: %d vs %d lines)", n, m)
	}
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out strings.Builder
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			i, j = i+1, j+1
		case j < m && (i == n || lcs[i][j+1] >= lcs[i+1][j]):
			fmt.Fprintf(&out, "+%s\n", b[j])
			j++
		default:
			fmt.Fprintf(&out, "-%s\n", a[i])
			i++
		}
	}
	return out.String()
}
