// Package doveconf reads the subset of Dovecot's configuration syntax that
// boxsync needs to find a user's mail: mostly mail_location, as doveadm
// finds it in /etc/dovecot/dovecot.conf.
//
// # Overview
//
// [ParseFile] (or [Parse] for bytes already read) returns a [Config]: a tree
// of [Section]s holding [Setting]s in file order. [Config.Override] layers
// `-o key=value` overrides on top, and [Config.Get] returns the effective
// value of a setting. Keys may be section paths, as in doveadm's -o:
// "plugin/quota", "namespace/inbox/separator".
//
// # Syntax
//
// The accepted syntax follows Dovecot 2.3's config-parser.c:
//
//	# comment (also after a value: '#' outside quotes ends the line)
//	key = value                  value runs to the end of the line, trimmed
//	key = "quoted \"value\""     one pair of '"' or '\'' quotes is removed,
//	                             backslash escapes are undone in "…"
//	key = <relative/file         the value is the file's content (trailing
//	                             newlines removed), relative to this file
//	mail_plugins = $mail_plugins zlib
//	                             $name is an earlier setting (in this section
//	                             or an enclosing one; unset = ""), and
//	                             $ENV:NAME an environment variable; values in
//	                             single quotes are not expanded
//	namespace inbox {            a section: type, optional name, settings
//	  separator = /
//	}
//	!include conf.d/*.conf       a file or glob, relative to this file;
//	!include_try local.conf      missing files are fine
//	long = a \                   a trailing backslash continues the line
//	       b                     (joined with one space)
//
// Sections of the same type and name are merged, and a later setting
// replaces an earlier one, as in Dovecot. Errors are [*Error] values naming
// the file and line.
//
// A `<file` value that cannot be read does not fail the parse: the setting
// gets an empty value and its error in [Setting.Err] ([Config.Lookup]
// shows it). Dovecot's config process reads such files as root
// (ssl_key = </etc/dovecot/private/dovecot.key); boxsync, run by an admin
// as a mail user, must still be able to read mail_location.
//
// # Dovecot compatibility
//
// doveconf knows no setting names and no defaults: it does not check that a
// key exists (names with quote characters are refused), and "$name" of a setting never set expands to "" where Dovecot
// would use the built-in default (for mail_plugins, the usual subject of
// "$mail_plugins", the default is "" too). Dovecot 2.4's new syntax
// (named filters, "@group") is not supported.
package doveconf
