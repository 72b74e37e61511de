package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/boxsync/boxsync/convert"
	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/mem"
)

// --dry-run runs the real engine on a copy of every side the run would
// write (the destination; both sides for a two-way sync) and prints the
// difference between the copy before and after: what the real run would
// change, computed by the very code that would change it, whatever the
// mode, algorithm or filter. The user's mail and the destination are
// only read.
//
// The price is the copy: a filesystem location's directories are copied
// into a temporary directory (Go's copy uses copy_file_range, which
// reflinks on filesystems that can). A dry run of a remote (imapc) side
// is refused: it can't be copied.

// dryRunCopy copies the store at loc into dir and returns the location of
// the copy. Paths inside loc.Path (INDEX=, CONTROL=, ...) move with it;
// others are copied beside it. A store that doesn't exist yet isn't
// copied: the run then creates it in dir.
func dryRunCopy(loc formats.Location, dir string) (formats.Location, error) {
	switch loc.Driver {
	case "mem":
		c := loc
		c.Path = filepath.Join(dir, "mem")
		if err := mem.Clone(loc.Path, c.Path); err != nil && !errors.Is(err, formats.ErrNotFound) {
			return loc, err
		}
		return c, nil
	case "imapc":
		return loc, formats.Errorf(formats.KindParams, "--dry-run: an imapc store can't be copied to run on")
	}
	c := loc
	root := filepath.Clean(loc.Path)
	n := 0
	move := func(p string) (string, error) {
		if p == "" || p == "MEMORY" || !filepath.IsAbs(p) {
			return p, nil
		}
		p = filepath.Clean(p)
		if rel, err := filepath.Rel(root, p); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			return filepath.Join(dir, "root", rel), nil
		}
		n++
		to := filepath.Join(dir, fmt.Sprintf("extra%d", n))
		return to, copyTree(p, to)
	}
	if err := copyTree(root, filepath.Join(dir, "root")); err != nil {
		return loc, err
	}
	c.Path = filepath.Join(dir, "root")
	var err error
	for _, f := range []*string{&c.Inbox, &c.Index, &c.Control, &c.Alt} {
		if *f, err = move(*f); err != nil {
			return loc, err
		}
	}
	// Lock files may go to VOLATILEDIR; a private one keeps the dry run
	// off the real store's locks.
	if c.VolatileDir != "" {
		c.VolatileDir = filepath.Join(dir, "volatile")
	}
	return c, nil
}

// copyTree copies a file or directory tree, keeping modes; a missing
// source copies nothing.
func copyTree(from, to string) error {
	return filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == from && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
				return err
			}
			return os.Mkdir(dst, fi.Mode().Perm())
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, dst)
		case d.Type().IsRegular():
			if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
				return err
			}
			return copyFile(p, dst, fi.Mode().Perm())
		}
		return nil // sockets, fifos: nothing a store needs
	})
}

func copyFile(from, to string, mode fs.FileMode) (err error) {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, out.Close()) }()
	_, err = io.Copy(out, in)
	return err
}

// storeSnap is what a dry run compares: each mailbox's identity,
// subscription and messages.
type storeSnap map[string]boxSnap

type boxSnap struct {
	noSelect, subscribed bool
	guid                 formats.GUID
	uidValidity          uint32
	msgs                 map[formats.UID]msgSnap
}

type msgSnap struct {
	guid     string
	flags    formats.Flags
	keywords string // sorted, space-separated
	size     int64
}

// snapshot reads st's tree and messages.
func snapshot(ctx context.Context, st formats.Store) (storeSnap, error) {
	boxes, err := st.Mailboxes(ctx)
	if err != nil {
		return nil, err
	}
	snap := storeSnap{}
	for _, b := range boxes {
		bs := boxSnap{noSelect: b.NoSelect, subscribed: b.Subscribed}
		if !b.NoSelect {
			mb, err := st.Open(ctx, b.Name)
			if err != nil {
				return nil, err
			}
			status, err := mb.Status(ctx)
			if err != nil {
				mb.Close()
				return nil, err
			}
			bs.guid, bs.uidValidity = status.GUID, status.UIDValidity
			bs.msgs = map[formats.UID]msgSnap{}
			for m, err := range mb.Messages(ctx, 1) {
				if err != nil {
					mb.Close()
					return nil, err
				}
				kw := slices.Clone(m.Keywords)
				slices.Sort(kw)
				bs.msgs[m.UID] = msgSnap{guid: fmt.Sprint(m.GUID), flags: m.Flags, keywords: strings.Join(kw, " "), size: m.Size}
			}
			mb.Close()
		}
		snap[b.Name] = bs
	}
	return snap, nil
}

// planDiff lists what turned before into after: per mailbox a summary
// line and, with detail, a line per message.
func planDiff(before, after storeSnap, detail bool) []string {
	var names []string
	for n := range before {
		names = append(names, n)
	}
	for n := range after {
		if _, ok := before[n]; !ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	for _, name := range names {
		b, inB := before[name]
		a, inA := after[name]
		selB, selA := inB && !b.noSelect, inA && !a.noSelect
		switch {
		case selB && !selA:
			add("delete mailbox %q (%d messages)", name, len(b.msgs))
		case !selB && selA:
			add("create mailbox %q (%d messages, %s)", name, len(a.msgs), humanBytes(sizeOf(a.msgs)))
			if detail {
				out = append(out, messageDiff(name, nil, a.msgs)...)
			}
		case selB && selA && (a.guid != b.guid || a.uidValidity != b.uidValidity):
			add("recreate mailbox %q (UIDVALIDITY %d -> %d, GUID %s -> %s; %d messages, %s)",
				name, b.uidValidity, a.uidValidity, b.guid, a.guid, len(a.msgs), humanBytes(sizeOf(a.msgs)))
			if detail {
				out = append(out, messageDiff(name, nil, a.msgs)...)
			}
		case selB && selA:
			saved, expunged, flags, bytes := 0, 0, 0, int64(0)
			for uid, m := range a.msgs {
				if o, ok := b.msgs[uid]; !ok || o.guid != m.guid || o.size != m.size {
					saved++
					bytes += m.size
				} else if o != m {
					flags++
				}
			}
			for uid, m := range b.msgs {
				if n, ok := a.msgs[uid]; !ok || n.guid != m.guid || n.size != m.size {
					expunged++
				}
			}
			if saved+expunged+flags > 0 {
				add("%q: %d new (%s), %d expunged, %d flag changes", name, saved, humanBytes(bytes), expunged, flags)
				if detail {
					out = append(out, messageDiff(name, b.msgs, a.msgs)...)
				}
			}
		}
		if (inB && b.subscribed) != (inA && a.subscribed) {
			if inA && a.subscribed {
				add("subscribe %q", name)
			} else {
				add("unsubscribe %q", name)
			}
		}
	}
	return out
}

func sizeOf(msgs map[formats.UID]msgSnap) int64 {
	var n int64
	for _, m := range msgs {
		n += m.size
	}
	return n
}

// messageDiff lists a mailbox's message changes in UID order.
func messageDiff(name string, before, after map[formats.UID]msgSnap) []string {
	var uids []formats.UID
	for u := range before {
		uids = append(uids, u)
	}
	for u := range after {
		if _, ok := before[u]; !ok {
			uids = append(uids, u)
		}
	}
	slices.Sort(uids)
	var out []string
	for _, uid := range uids {
		b, inB := before[uid]
		a, inA := after[uid]
		replaced := inB && inA && (a.guid != b.guid || a.size != b.size)
		if inB && (!inA || replaced) {
			out = append(out, fmt.Sprintf("%q: expunge uid %d", name, uid))
		}
		switch {
		case inA && (!inB || replaced):
			out = append(out, fmt.Sprintf("%q: save uid %d (%d bytes, flags %s)", name, uid, a.size, flagText(a)))
		case inA && inB && a != b:
			out = append(out, fmt.Sprintf("%q: flags uid %d: %s -> %s", name, uid, flagText(b), flagText(a)))
		}
	}
	return out
}

func flagText(m msgSnap) string {
	s := strings.TrimSpace(m.flags.String() + " " + m.keywords)
	if s == "" {
		return "()"
	}
	return "(" + s + ")"
}

// dryRun is one user's dry run: the copies and the snapshots of the sides
// that would be written.
type dryRun struct {
	dir    string
	sides  []dryRunSide
	detail bool
}

type dryRunSide struct {
	name   string // "source", "destination"
	st     formats.Store
	before storeSnap
}

// newDryRun copies the sides mode writes (dst; src too for a two-way
// sync) into a new temporary directory and returns their locations.
func newDryRun(mode convert.Mode, src, dst formats.Location, detail bool) (*dryRun, formats.Location, formats.Location, error) {
	dir, err := os.MkdirTemp("", "boxsync-dry-run-")
	if err != nil {
		return nil, src, dst, err
	}
	d := &dryRun{dir: dir, detail: detail}
	if mode == convert.Sync {
		if src, err = dryRunCopy(src, filepath.Join(dir, "source")); err != nil {
			d.cleanup()
			return nil, src, dst, err
		}
	}
	if dst, err = dryRunCopy(dst, filepath.Join(dir, "destination")); err != nil {
		d.cleanup()
		return nil, src, dst, err
	}
	return d, src, dst, nil
}

// watch snapshots a side before the run.
func (d *dryRun) watch(ctx context.Context, name string, st formats.Store) error {
	snap, err := snapshot(ctx, st)
	if err != nil {
		return fmt.Errorf("--dry-run: reading the %s: %w", name, err)
	}
	d.sides = append(d.sides, dryRunSide{name: name, st: st, before: snap})
	return nil
}

// plan returns the changes of every watched side, each line naming it.
func (d *dryRun) plan(ctx context.Context) ([]string, error) {
	var out []string
	for _, s := range d.sides {
		after, err := snapshot(ctx, s.st)
		if err != nil {
			return out, fmt.Errorf("--dry-run: reading the %s: %w", s.name, err)
		}
		for _, l := range planDiff(s.before, after, d.detail) {
			out = append(out, s.name+": "+l)
		}
	}
	return out, nil
}

func (d *dryRun) cleanup() {
	if d != nil {
		if strings.HasPrefix(filepath.Base(d.dir), "boxsync-dry-run-") {
			os.RemoveAll(d.dir)
		}
		// mem copies live in the process table, keyed under d.dir.
		mem.Forget(filepath.Join(d.dir, "source", "mem"))
		mem.Forget(filepath.Join(d.dir, "destination", "mem"))
	}
}

// printPlan writes a user's plan to stdout, all lines together.
func (a *app) printPlan(user string, lines []string) {
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "dry-run(%s): %s\n", user, l)
	}
	if len(lines) == 0 {
		fmt.Fprintf(&b, "dry-run(%s): nothing to change\n", user)
	}
	a.outMu.Lock()
	defer a.outMu.Unlock()
	io.WriteString(a.stdout, b.String())
}
