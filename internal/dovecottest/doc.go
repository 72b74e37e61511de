// Package dovecottest runs the real Dovecot (doveadm) against a private
// configuration in a temporary directory, so that interop tests can read any
// mail store the way Dovecot sees it and have Dovecot write stores for us.
//
// # Overview
//
//	d := dovecottest.New(t, "maildir:~/Maildir") // skips (or fails on CI) without doveadm
//	d.MustDoveadm(t, "mailbox", "create", "Entwürfe")
//	d.Save(t, "INBOX", []byte("Subject: hi\n\nbody\n"))
//	tree := d.Snapshot(t)  // plain data, built only from doveadm output
//	d.CheckLogClean(t)     // no "corrupted", "inconsistency", "rebuild", Error:, Warning:
//
// Snapshot returns a [Tree]; [Diff] compares two trees field by field and can
// ignore fields a comparison cannot expect to be equal (saved dates, modseqs).
//
// # Configuration
//
// Each [Dovecot] writes its own dovecot.conf into a fresh t.TempDir():
//
//	base_dir = DIR/run
//	state_dir = DIR/state
//	log_path = DIR/dovecot.log
//	ssl = no
//	first_valid_uid = 1
//	first_valid_gid = 1
//	mail_uid = 65534          # only when running as root: user "nobody"
//	mail_gid = 65534          # and its primary group
//	mail_location = maildir:~/Maildir
//	namespace inbox {
//	  inbox = yes
//	  separator = /
//	}
//
// doveadm runs without -u, so there is no userdb or auth: the user is taken
// from the environment, which is cleared except for PATH, USER=dovecottest
// and HOME=DIR/home. Clearing it matters: Dovecot honours $MAIL, for one.
//
// The namespace separator is always '/', so every mailbox name doveadm prints
// (a UTF-8 "vname") is already in [Mailbox.Name] form. The on-disk separator
// is unaffected: Maildir++ still stores "a/b" as ".a.b" (and "Entwürfe" as
// ".Entw&APw-rfe"). The price is that under Maildir++ a name cannot contain
// '.' ("Character not allowed in mailbox name: '.'"); with Dovecot's default
// separator '.' the store would look the same on disk and "a.b" would be
// listed as the child "a/b" anyway. Extra configuration must therefore not
// change the separator; New refuses extraConf that mentions it.
//
// # Running as root
//
// CI runs as root, and Dovecot refuses mail access as uid 0 ("Couldn't drop
// privileges: User is missing UID (see mail_uid setting)", exit 75). As root
// the configuration sets mail_uid/mail_gid to user nobody (present on every
// Debian, with or without dovecot-core) and doveadm drops privileges to it.
// Two consequences are handled here:
//
//   - Files must belong to that uid. Before every doveadm run, everything
//     under [Dovecot.Dir] that is not owned by it is chowned (files Dovecot
//     wrote already are left alone, so their ctime, which maildir reports as
//     the saved date, does not change). Stores elsewhere need [Dovecot.Chown].
//   - Every directory above the store must be traversable by nobody, but
//     t.TempDir() creates a 0700 root-owned parent. Ancestors inside
//     os.TempDir() get o+x (chmod 0711 in practice); anything above that must
//     already be traversable.
//
// As a normal user nothing of this applies: Dovecot runs as the current user
// and mail_uid is not set.
//
// # Logging
//
// A standalone doveadm (and `doveadm exec imap`) never writes to log_path:
// Dovecot's master_service logs to stderr when MASTER_SERVICE_FLAG_STANDALONE
// is set. So every command's stderr is appended to DIR/dovecot.log, after a
// line "# dovecottest: doveadm ARGS"; log_path names the same file for any
// Dovecot process that would log there. [Dovecot.Log] returns the file.
//
// # Dovecot compatibility
//
// Established against Dovecot 2.3.19.1 (Debian bookworm):
//
//   - `doveadm save` is not byte-preserving. With the default
//     mail_save_crlf = no it removes the CR of every CRLF (so "a\r\r\nb"
//     becomes "a\r\nb"); bare CRs, NULs and a missing final newline are kept;
//     an empty message is accepted and stored as 0 bytes. With
//     mail_save_crlf = yes every bare LF becomes CRLF instead. `doveadm
//     backup` into a different format goes through the same save path (a
//     CRLF maildir message arrives in sdbox with LFs), while maildir to
//     maildir copies the file unchanged.
//   - `doveadm fetch text` prints the physical bytes unchanged: a CRLF
//     message written straight into a maildir reads back byte for byte.
//   - `doveadm backup` keeps GUIDs, UIDs, UIDVALIDITY, flags, keywords,
//     received dates, modseqs and HIGHESTMODSEQ, but not saved dates: an
//     sdbox copy's saved date is the time of the backup.
//   - `doveadm backup DEST` makes DEST a copy of the configured store and
//     deletes whatever else DEST holds; `doveadm backup -R SRC` copies SRC
//     into the configured store.
//   - A maildir message's GUID is its file name up to ':2,' (for example
//     "1700000000.M1P2.host,S=26,W=27"), not 32 hex digits. Its saved date
//     is the file's ctime, so a flag change (a rename) changes it.
//   - doveadm sets \Recent on messages it sees first and never clears it;
//     Snapshot drops \Recent.
//   - A maildir file whose S= size is wrong makes `doveadm fetch text` fail
//     with "Cached message size larger than expected" and exit 75.
//   - Every doveadm run costs about 15 ms; Snapshot makes four. A Snapshot
//     of 100 messages of 4 KB takes about 50 ms (90 ms when Dovecot first
//     indexes a maildir it did not write).
package dovecottest
