package convert_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/boxsync/boxsync/convert"
	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/formatstest"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// TestInteropSyncFilterDifferential runs doveadm sync (and backup) and
// boxsync with
// the same filter of new mail (-t, -e, -I, -O, -g) on identical copies of
// a Maildir pair, after both sides got new mail of different dates,
// sizes, flags and keywords in two mailboxes (and an expunge, which no
// filter stops), and compares the results.
func TestInteropSyncFilterDifferential(t *testing.T) {
	since := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	until := time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)
	type filterCase struct {
		name string
		args []string
		opt  func(o *convert.Options, work formats.GUID)
	}
	cases := []filterCase{
		{"-t", []string{"-t", fmt.Sprint(since.Unix())}, func(o *convert.Options, _ formats.GUID) { o.Since = since }},
		{"-t -e", []string{"-t", fmt.Sprint(since.Unix()), "-e", fmt.Sprint(until.Unix())}, func(o *convert.Options, _ formats.GUID) { o.Since, o.Until = since, until }},
		{"-I", []string{"-I", "1k"}, func(o *convert.Options, _ formats.GUID) { o.MaxSize = 1024 }},
		{`-O \Seen`, []string{"-O", `\Seen`}, func(o *convert.Options, _ formats.GUID) { o.Flag = `\Seen` }},
		{"-O -$Junk", []string{"-O", "-$Junk"}, func(o *convert.Options, _ formats.GUID) { o.Flag = "-$Junk" }},
		{"-O keyword", []string{"-O", "important"}, func(o *convert.Options, _ formats.GUID) { o.Flag = "important" }},
		{"-g", nil, func(o *convert.Options, work formats.GUID) { o.MailboxGUID = work }},
	}
	for _, mode := range []convert.Mode{convert.Sync, convert.Backup} {
		for _, tc := range cases {
			filterDifferential(t, mode, tc.name, tc.args, tc.opt)
		}
	}
}

// filterDifferential is one case of TestInteropSyncFilterDifferential.
func filterDifferential(t *testing.T, mode convert.Mode, name string, args []string, setOpt func(o *convert.Options, work formats.GUID)) {
	t.Run(mode.String()+" "+name, func(t *testing.T) {
		d := dovecottest.New(t, "maildir:~/A")
		d.MustDoveadm(t, "mailbox", "create", "Work")
		for _, box := range []string{"INBOX", "Work"} {
			for i := range 3 {
				d.Save(t, box, fmt.Appendf(nil, "Subject: old %s %d\nMessage-ID: <old%d.%s@x>\n\nold\n", box, i, i, box))
			}
		}
		d.MustDoveadm(t, "backup", "maildir:~/B")
		ctx := context.Background()
		n := 0
		for _, side := range []string{"A", "B"} {
			s := openMaildir(t, filepath.Join(d.Home(), side), formats.OpenOptions{})
			// A gets new mail in INBOX, B in Work, so no UID is
			// new on both sides (renumbering is tested elsewhere).
			for _, box := range []string{map[string]string{"A": "INBOX", "B": "Work"}[side]} {
				mb, err := s.Open(ctx, box)
				if err != nil {
					t.Fatal(err)
				}
				tx, err := mb.Begin(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range []struct {
					year  int
					size  int
					flags formats.Flags
					kw    []string
				}{
					{2019, 10, formats.FlagSeen, nil},
					{2021, 10, 0, []string{"Important"}},
					{2022, 3000, formats.FlagSeen, []string{"$Junk"}},
					{2018, 3000, 0, []string{"$Junk", "Important"}},
					{2023, 500, formats.FlagSeen | formats.FlagFlagged, nil},
				} {
					n++
					body := fmt.Appendf(nil, "Subject: new %s %s %d\r\nMessage-ID: <n%d@x>\r\n\r\n%s\r\n", side, box, n, n, strings.Repeat("x", m.size))
					msg := formats.Message{Flags: m.flags, Keywords: m.kw, Received: time.Date(m.year, 6, 1, 12, 0, 0, 0, time.UTC), Size: int64(len(body))}
					if _, err := tx.Save(ctx, msg, bytes.NewReader(body)); err != nil {
						t.Fatal(err)
					}
				}
				tx.Expunge(2) // a common mail: expunged on the other side by every run
				if err := tx.Commit(ctx); err != nil {
					t.Fatal(err)
				}
				mb.Close()
			}
			s.Close()
		}
		var work formats.GUID
		boxes, err := openMaildir(t, filepath.Join(d.Home(), "A"), formats.OpenOptions{ReadOnly: true}).Mailboxes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range boxes {
			if b.Name == "Work" {
				work = b.GUID
			}
		}
		if name == "-g" {
			args = []string{"-g", work.String()}
		}
		d.Chown(t, d.Home())
		copyStores(t, d, [2]string{"A", "A2"}, [2]string{"B", "B2"})
		d.MustDoveadm(t, append(append([]string{"-o", "mail_location=maildir:~/A", mode.String(), "-f"}, args...), "maildir:~/B")...)
		opt := convert.Options{Mode: mode, Algorithm: convert.Full}
		setOpt(&opt, work)
		a := openMaildir(t, filepath.Join(d.Home(), "A2"), formats.OpenOptions{})
		b := openMaildir(t, filepath.Join(d.Home(), "B2"), formats.OpenOptions{})
		run(t, a, b, opt)
		fields := formatstest.FieldsBackup &^ formatstest.FieldVSize
		for _, p := range [][2]string{{"A", "A2"}, {"B", "B2"}} {
			theirs, err := formatstest.Dump(ctx, openMaildir(t, filepath.Join(d.Home(), p[0]), formats.OpenOptions{ReadOnly: true}), fields)
			if err != nil {
				t.Fatal(err)
			}
			ours, err := formatstest.Dump(ctx, openMaildir(t, filepath.Join(d.Home(), p[1]), formats.OpenOptions{ReadOnly: true}), fields)
			if err != nil {
				t.Fatal(err)
			}
			if diff := formatstest.Diff(theirs, ours); diff != "" {
				t.Errorf("%s: doveadm %s %s (-) and boxsync (+) differ:\n%s\ndoveadm:\n%s", p[0], mode, strings.Join(args, " "), diff, theirs)
			}
		}
		// Every filter here leaves some new mail out, so the
		// sides still differ.
		da, err := formatstest.Dump(ctx, a, fields)
		if err != nil {
			t.Fatal(err)
		}
		db, err := formatstest.Dump(ctx, b, fields)
		if err != nil {
			t.Fatal(err)
		}
		if formatstest.Diff(da, db) == "" {
			t.Errorf("boxsync %s %s copied every new mail", mode, strings.Join(args, " "))
		}
		d.CheckLogClean(t)
	})
}
