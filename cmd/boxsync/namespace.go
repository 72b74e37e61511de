package main

import (
	"strings"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/internal/doveconf"
)

// inboxNamespace is the configuration's inbox namespace (`namespace NAME {
// inbox = yes }`) as far as boxsync uses it: the names people type (-m,
// -x) are Dovecot vnames, "INBOX.Work.Projects" with prefix "INBOX." and
// separator ".", and become the contract's storage names ("Work/Projects",
// formats.Separator) before they reach the engine.
//
// The contract has no namespaces: a store is the one inbox namespace's
// mailbox tree without a prefix, so the prefix is stripped from names
// given on the command line and nothing else; mailboxes are never
// renamed on disk for it, and log lines show storage names. A separator
// or prefix that is not configured explicitly keeps the contract's own
// ('/', none): Dovecot's default separator depends on the mailbox list
// layout (Maildir++ uses '.'), which boxsync does not guess.
type inboxNamespace struct {
	sep    string // "" = formats.Separator
	prefix string
}

// inboxNamespaceOf finds the inbox namespace of cfg (-o
// namespace/NAME/separator included).
func inboxNamespaceOf(cfg *doveconf.Config) inboxNamespace {
	var ns inboxNamespace
	if cfg == nil || cfg.Root == nil {
		return ns
	}
	for _, sec := range cfg.Root.SectionsOf("namespace") {
		get := func(key string) string {
			v, _ := cfg.Get("namespace/" + sec.Name + "/" + key)
			return v
		}
		if get("inbox") != "yes" {
			continue
		}
		ns.sep, ns.prefix = get("separator"), get("prefix")
		break
	}
	return ns
}

// storageName turns a vname (or a -x mask: * and ? pass through) into the
// contract's name.
func (ns inboxNamespace) storageName(vname string) string {
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
func (ns inboxNamespace) storageNames(vnames []string) []string {
	if len(vnames) == 0 {
		return vnames
	}
	out := make([]string, len(vnames))
	for i, v := range vnames {
		out[i] = ns.storageName(v)
	}
	return out
}
