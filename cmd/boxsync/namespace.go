package main

import (
	"fmt"
	"strings"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/internal/doveconf"
)

// namespace is one `namespace NAME { }` of the configuration as far as
// boxsync uses it: the names people type (-m, -x, -a) are Dovecot vnames,
// "INBOX.Work.Projects" with prefix "INBOX." and separator ".", and become
// the contract's storage names ("Work/Projects", formats.Separator) before
// they reach the engine.
//
// The contract has no namespaces: a store is one namespace's mailbox tree
// without its prefix (by default the inbox namespace's, whose mail is at
// mail_location; with -n the selected one's), so the prefix is stripped
// from names given on the command line and nothing else; mailboxes are
// never renamed on disk for it, and log lines show storage names. A
// separator or prefix that is not configured explicitly keeps the
// contract's own ('/', none): Dovecot's default separator depends on the
// mailbox list layout (Maildir++ uses '.'), which boxsync does not guess.
type namespace struct {
	section  string // the section's name ("inbox"); "" for `namespace { }`
	sep      string // "" = formats.Separator
	prefix   string
	location string // "" = mail_location (the usual case)
	inbox    bool
	typ      string // "private" (default), "shared", "public"
}

// namespacesOf lists the configuration's namespaces in order, -o
// namespace/NAME/KEY included. Without any, Dovecot makes one inbox
// namespace with prefix "" at mail_location, and so does this.
func namespacesOf(cfg *doveconf.Config) []namespace {
	var out []namespace
	if cfg != nil && cfg.Root != nil {
		for _, sec := range cfg.Root.SectionsOf("namespace") {
			get := func(key string) string {
				if sec.Name == "" {
					v, _ := sec.Get(key)
					return v
				}
				v, _ := cfg.Get("namespace/" + sec.Name + "/" + key)
				return v
			}
			ns := namespace{section: sec.Name, sep: get("separator"), prefix: get("prefix"),
				location: get("location"), inbox: get("inbox") == "yes", typ: get("type")}
			if ns.typ == "" {
				ns.typ = "private"
			}
			out = append(out, ns)
		}
	}
	if len(out) == 0 {
		out = append(out, namespace{inbox: true, typ: "private"})
	}
	return out
}

// inboxNamespaceOf finds the inbox namespace of cfg (-o
// namespace/NAME/separator included): the one synced without -n.
func inboxNamespaceOf(cfg *doveconf.Config) namespace {
	for _, ns := range namespacesOf(cfg) {
		if ns.inbox {
			return ns
		}
	}
	return namespace{typ: "private"}
}

// shown is the namespace as doveadm names it in messages: its prefix.
func (ns namespace) shown() string { return fmt.Sprintf("prefix=%q", ns.prefix) }

// names tells whether p names the namespace: its prefix, or the prefix
// without the trailing separator ("Archive" for "Archive/"), as doveadm's
// mail_namespace_find accepts it.
func (ns namespace) names(p string) bool {
	if p == ns.prefix {
		return true
	}
	if ns.prefix == "" || p == "" {
		return false
	}
	last := ns.prefix[len(ns.prefix)-1:]
	trailing := last == ns.sep || (ns.sep == "" && (last == "/" || last == "."))
	return trailing && p == ns.prefix[:len(ns.prefix)-1]
}

// selectNamespaces resolves -n PREFIX... (dsync.md §1.2, §5) to the one
// namespace the run syncs.
//
// QUIRK: doveadm looks each PREFIX up as a mailbox name, so a prefix that
// names no namespace silently selects the "" namespace (all of it), or,
// when there is none, Dovecot's hidden placeholder and nothing at all, exit
// 0 [observed]. boxsync wants the prefix of a configured namespace (with or
// without its trailing separator) and otherwise fails with doveadm's
// "Namespace not found" (64).
//
// QUIRK: for a local destination doveadm keeps every namespace that has
// its own location= where it is (the destination user has the same one):
// with such a namespace first, it fails ("Both source and destination
// mail_location points to same directory", 75), after another one it
// syncs it with itself, a no-op [observed]. boxsync syncs that
// namespace's location instead of mail_location, so `-n Archive/
// mdbox:~/archive-copy` copies the Archive namespace. One destination
// location holds one namespace: selected namespaces at different
// locations are refused (64).
func selectNamespaces(cfg *doveconf.Config, prefixes []string) (namespace, error) {
	all := namespacesOf(cfg)
	var sel []namespace
	for _, p := range prefixes {
		i := -1
		for j, ns := range all {
			if ns.names(p) {
				i = j
				break
			}
		}
		if i < 0 {
			var known []string
			for _, ns := range all {
				known = append(known, fmt.Sprintf("%q", ns.prefix))
			}
			return namespace{}, formats.Errorf(formats.KindParams, "Namespace not found: '%s' (configured prefixes: %s)", p, strings.Join(known, ", "))
		}
		ns := all[i]
		if ns.typ == "shared" {
			return namespace{}, notImplemented(fmt.Sprintf("-n %q (a shared namespace: other users' mail)", p))
		}
		dup := false
		for _, s := range sel {
			dup = dup || s.section == ns.section && s.prefix == ns.prefix
		}
		if !dup {
			sel = append(sel, ns)
		}
	}
	first := sel[0]
	for _, ns := range sel[1:] {
		if first.sep != "" && ns.sep != "" && first.sep != ns.sep {
			// dsync-brain-mailbox-tree.c dsync_brain_check_namespaces:
			// i_fatal, exit 75 [observed].
			return namespace{}, fatalf("Synced namespaces have conflicting separators ('%s' for prefix=\"%s\", '%s' for prefix=\"%s\")",
				first.sep, first.prefix, ns.sep, ns.prefix)
		}
	}
	for _, ns := range sel[1:] {
		if ns.location != first.location {
			return namespace{}, &usageError{msg: fmt.Sprintf("-n: namespaces %s and %s have different mail locations (%s, %s), and a local destination holds one namespace: run once per namespace",
				first.shown(), ns.shown(), first.whereShown(), ns.whereShown())}
		}
	}
	if first.sep == "" {
		for _, ns := range sel[1:] {
			if ns.sep != "" {
				first.sep = ns.sep
			}
		}
	}
	return first, nil
}

// whereShown is the namespace's location for messages.
func (ns namespace) whereShown() string {
	if ns.location == "" {
		return "mail_location"
	}
	return ns.location
}

// storageName turns a vname (or a -x mask: * and ? pass through) into the
// contract's name.
func (ns namespace) storageName(vname string) string {
	if isSpecialUse(vname) {
		return vname
	}
	if ns.prefix != "" {
		if rest, ok := strings.CutPrefix(vname, ns.prefix); ok {
			vname = rest
		} else if strings.EqualFold(vname+ns.sep, ns.prefix) || strings.EqualFold(vname, strings.TrimSuffix(ns.prefix, ns.sep)) {
			// "INBOX" with prefix "INBOX.": the INBOX itself.
			return "INBOX"
		}
	}
	if ns.sep != "" && ns.sep != string(formats.Separator) {
		vname = strings.ReplaceAll(vname, ns.sep, string(formats.Separator))
	}
	return vname
}

// storageNames is storageName over a list.
func (ns namespace) storageNames(vnames []string) []string {
	if len(vnames) == 0 {
		return vnames
	}
	out := make([]string, len(vnames))
	for i, v := range vnames {
		out[i] = ns.storageName(v)
	}
	return out
}

// inside tells whether vname is a name in ns (below its prefix), or is
// the namespace's INBOX. The inbox namespace takes every name, as before
// -n: a name outside its prefix there keeps meaning the storage name.
func (ns namespace) inside(vname string) bool {
	if ns.prefix == "" || ns.inbox || isSpecialUse(vname) {
		return true
	}
	return strings.HasPrefix(vname, ns.prefix)
}

// namespaceOf finds the namespace a vname belongs to, as Dovecot's
// mail_namespace_find does: the longest prefix the name starts with (or
// that is the name plus the separator), else the "" namespace.
func namespaceOf(all []namespace, vname string) (namespace, bool) {
	best, found := namespace{}, false
	for _, ns := range all {
		if ns.prefix == "" {
			if !found {
				best, found = ns, true
			}
			continue
		}
		if strings.HasPrefix(vname, ns.prefix) || ns.names(vname) {
			if !found || len(ns.prefix) > len(best.prefix) {
				best, found = ns, true
			}
		}
	}
	return best, found
}
