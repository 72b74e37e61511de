package main

import (
	"fmt"
	"os"
	"sync"
	"syscall"

	"github.com/boxsync/boxsync/formats"
)

// mailCreds are the uid and gid a user's mail is read and written with:
// the userdb's uid/gid, else mail_uid/mail_gid (Dovecot 2.3
// mail-storage-service.c: userdb uid/gid are set as mail_uid/mail_gid).
type mailCreds struct {
	uid, gid int // -1 = keep ours
}

// self means "as we are": lookups, config, the parent's own files.
var self = mailCreds{uid: -1, gid: -1}

// credSwitch runs work under a user's credentials. As root it drops the
// effective uid/gid to the user's (setresuid with the real and saved uid
// left at 0) and takes them back afterwards, as doveadm does when it runs
// for several users (dovecot 2.3.19 mail-storage-service.c
// service_drop_privileges with keep_setuid_root, the
// MAIL_STORAGE_SERVICE_FLAG_TEMP_PRIV_DROP mode of -A/-F).
//
// Everything is then created by the user: files, directories, temporary
// files and the dsync lock are the user's from the first byte, so no crash
// can leave a root-owned file in the user's mail (a chown after the fact
// would leave one behind at every point between create and chown).
//
// Credentials are per process, so runs under different credentials
// exclude each other: work for the same uid/gid runs concurrently (the
// common virtual-user setup, where every user is vmail), work for another
// uid waits; --workers with users of several uids uses child processes
// instead (child.go). The umask is 0 while a user's work runs: drivers pass the
// modes Dovecot would use (the mail root's, mailbox_list_get_permissions)
// and Dovecot's create paths ignore the umask too (mkdir_chown_full,
// maildir_create_tmp set it around each create).
type credSwitch struct {
	mu      sync.Mutex
	cond    *sync.Cond
	cur     mailCreds    // the credentials in effect while holders > 0; guarded by mu
	holders int          // guarded by mu
	restore func() error // undoes the switch; guarded by mu

	// Hooks, replaced by tests that can't be root.
	geteuid func() int
	set     func(c mailCreds) (restore func() error, err error)
}

// processCreds is the process's one credSwitch: credentials belong to
// the process, so every run in it (tests run several) must share it.
var processCreds = newCredSwitch()

func newCredSwitch() *credSwitch {
	s := &credSwitch{geteuid: os.Geteuid, set: setEffective}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// do runs fn with credentials c (self: as we are). A uid that differs
// from ours when we are not root is refused as Dovecot's restrict_access
// refuses it.
func (s *credSwitch) do(c mailCreds, fn func() error) error {
	euid := s.ownEUID()
	if euid != 0 || c == self || (c.uid == euid && c.gid < 0) {
		if c.uid >= 0 && c.uid != euid {
			return &formats.Error{Kind: formats.KindPerm, Err: fmt.Errorf(
				"Mail access for the user's UID %d needs root: running with euid=%d (run boxsync as root or as that user)", c.uid, euid)}
		}
		return s.hold(self, fn)
	}
	return s.hold(c, fn)
}

// ownEUID is the process's own effective uid: while another run holds a
// user's credentials, geteuid reports the user's, but we are root
// underneath (a run for a second user of the same uid, concurrently,
// must still switch rather than run as root once the first is done).
func (s *credSwitch) ownEUID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.restore != nil {
		return 0
	}
	return s.geteuid()
}

// hold waits until c can be in effect, makes it so, and runs fn. The
// first holder of c switches, the last one switches back.
func (s *credSwitch) hold(c mailCreds, fn func() error) error {
	s.mu.Lock()
	for s.holders > 0 && s.cur != c {
		s.cond.Wait()
	}
	if s.holders == 0 && c != self {
		restore, err := s.set(c)
		if err != nil {
			s.mu.Unlock()
			return err
		}
		s.restore = restore
	}
	s.cur = c
	s.holders++
	s.mu.Unlock()
	defer s.release()
	return fn()
}

func (s *credSwitch) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holders--
	if s.holders > 0 {
		return
	}
	if s.restore != nil {
		if err := s.restore(); err != nil {
			// Carrying on as the user would run the next user's
			// work with this one's rights.
			panic("boxsync: can't take back root credentials: " + err.Error())
		}
		s.restore = nil
	}
	s.cur = self
	s.cond.Broadcast()
}

// setEffective switches the effective (and file system) uid and gid,
// groups first while we are still root, and returns how to switch back.
func setEffective(c mailCreds) (func() error, error) {
	oldGid := syscall.Getegid()
	oldGroups, err := syscall.Getgroups()
	if err != nil {
		return nil, fmt.Errorf("getgroups: %w", err)
	}
	gid := c.gid
	if gid < 0 {
		gid = oldGid
	}
	oldMask := syscall.Umask(0)
	restore := func() error {
		syscall.Umask(oldMask)
		if err := syscall.Setresuid(-1, 0, -1); err != nil {
			return fmt.Errorf("seteuid(0): %w", err)
		}
		if err := syscall.Setgroups(oldGroups); err != nil {
			return fmt.Errorf("setgroups: %w", err)
		}
		if err := syscall.Setresgid(-1, oldGid, -1); err != nil {
			return fmt.Errorf("setegid(%d): %w", oldGid, err)
		}
		return nil
	}
	fail := func(err error) (func() error, error) {
		if rerr := restore(); rerr != nil {
			panic("boxsync: can't take back root credentials: " + rerr.Error())
		}
		return nil, &formats.Error{Kind: formats.KindTemp, Err: err}
	}
	// Only the primary group: a passwd-file user has no supplementary
	// groups in Dovecot either (restrict_access without
	// system_groups_user or mail_access_groups).
	if err := syscall.Setgroups([]int{gid}); err != nil {
		return fail(fmt.Errorf("setgroups(%d): %w", gid, err))
	}
	if err := syscall.Setresgid(-1, gid, -1); err != nil {
		return fail(fmt.Errorf("setegid(%d): %w", gid, err))
	}
	if c.uid >= 0 {
		if err := syscall.Setresuid(-1, c.uid, -1); err != nil {
			return fail(fmt.Errorf("seteuid(%d): %w", c.uid, err))
		}
	}
	return restore, nil
}
