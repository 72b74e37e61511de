package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/boxsync/boxsync/convert"
	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/internal/doveconf"
)

// virtualConfigName is the file holding a virtual mailbox's rules (dovecot
// 2.3.19 virtual-storage.h VIRTUAL_CONFIG_FNAME).
const virtualConfigName = "dovecot-virtual"

// errNoAllMailbox is a -a mailbox that does not exist: dsync logs it and
// syncs without it (exit 0) [observed].
var errNoAllMailbox = errors.New("no such mailbox")

// allMailOf resolves -a VNAME for a run that syncs namespace ns
// (dsync.md §1.2): a mailbox of ns itself is looked in by name; a mailbox
// of a namespace whose location is `virtual:` (Dovecot's virtual plugin)
// must be the usual "all mail" one, whose dovecot-virtual rules are `*`
// and `all`, and then means every mailbox of the store written to. Rules
// boxsync can't interpret, and mailboxes of other namespaces, are
// refused (64) rather than guessed at.
func allMailOf(cfg *doveconf.Config, ns namespace, vname string, vars formats.Vars) (convert.AllMail, error) {
	owner, ok := namespaceOf(namespacesOf(cfg), vname)
	if ok && strings.HasPrefix(strings.ToLower(owner.location), "virtual:") {
		dir, err := virtualDir(owner, vname, vars)
		if err != nil {
			return convert.AllMail{}, err
		}
		data, err := os.ReadFile(filepath.Join(dir, virtualConfigName))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return convert.AllMail{}, fmt.Errorf("Couldn't sync \\All mailbox '%s': Mailbox doesn't exist: %s: %w", vname, vname, errNoAllMailbox)
		case err != nil:
			return convert.AllMail{}, formats.Wrap(err, formats.KindTemp, "-a", vname, 0, dir)
		}
		if why := allMailRules(data); why != "" {
			return convert.AllMail{}, notImplemented(fmt.Sprintf("-a %s with the rules in %s (%s; boxsync reads only the usual `*` with `all`)",
				vname, filepath.Join(dir, virtualConfigName), why))
		}
		return convert.AllMail{Everywhere: true}, nil
	}
	if !ok || owner.section != ns.section || owner.prefix != ns.prefix {
		if ns.inbox && !ok {
			return convert.AllMail{Mailbox: ns.storageName(vname)}, nil
		}
		return convert.AllMail{}, notImplemented(fmt.Sprintf("-a %s (a mailbox of namespace %s, which this run does not sync)", vname, owner.shown()))
	}
	return convert.AllMail{Mailbox: ns.storageName(vname)}, nil
}

// virtualDir is the directory of virtual mailbox vname: the virtual
// location's path (expanded as any location is) plus the name below the
// namespace prefix, one directory per level.
func virtualDir(owner namespace, vname string, vars formats.Vars) (string, error) {
	_, rest, _ := strings.Cut(owner.location, ":")
	path, _, _ := strings.Cut(rest, ":")
	// ParseLocation knows no "virtual" format; the path expands the same
	// way under any of them.
	loc, err := formats.ParseLocation("maildir:"+path, vars)
	if err != nil {
		return "", err
	}
	name := strings.TrimPrefix(vname, owner.prefix)
	sep := owner.sep
	if sep == "" {
		sep = string(formats.Separator)
	}
	if name == "" || strings.Contains(name, "..") {
		return "", &usageError{msg: fmt.Sprintf("-a %s: not a mailbox name", vname)}
	}
	return filepath.Join(loc.Path, filepath.FromSlash(strings.ReplaceAll(name, sep, "/"))), nil
}

// allMailRules checks a dovecot-virtual file (dovecot 2.3.19
// virtual-config.c virtual_config_read: '#' lines are comments, an empty
// line ends a rule, a line starting with a space or tab is search
// arguments, any other line a mailbox pattern) and tells why it is not
// the all-mail rule set, "" when it is: every pattern is `*` and every
// search is `all`.
func allMailRules(data []byte) string {
	patterns, searches := 0, 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "", strings.HasPrefix(line, "#"):
		case line[0] == ' ' || line[0] == '\t':
			if !strings.EqualFold(strings.TrimSpace(line), "all") {
				return fmt.Sprintf("search %q", strings.TrimSpace(line))
			}
			searches++
		default:
			if line != "*" {
				return fmt.Sprintf("mailbox pattern %q", line)
			}
			patterns++
		}
	}
	switch {
	case sc.Err() != nil:
		return sc.Err().Error()
	case patterns == 0:
		return "no mailboxes defined"
	case searches == 0:
		return "no search"
	}
	return ""
}
