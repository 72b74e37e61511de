package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/boxsync/boxsync/internal/dovecottest"
)

// mailboxState is what an IMAP client sees in one mailbox: UIDVALIDITY
// and each message's subject and flags (without \Recent), by UID.
type mailboxState struct {
	uidValidity uint32
	msgs        map[imap.UID]string // "subject flags..."
}

// imapState logs in as user and reads INBOX and Work.
func imapState(t *testing.T, srv *dovecottest.UsersServer, user string) map[string]mailboxState {
	t.Helper()
	c := imapLogin(t, srv, user)
	defer c.Close()
	out := map[string]mailboxState{}
	for _, box := range []string{"INBOX", "Work"} {
		sel, err := c.Select(box, nil).Wait()
		if err != nil {
			t.Fatal(err)
		}
		st := mailboxState{uidValidity: sel.UIDValidity, msgs: map[imap.UID]string{}}
		if sel.NumMessages > 0 {
			msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true, Envelope: true}).Collect()
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range msgs {
				var f []string
				for _, fl := range m.Flags {
					if fl != `\Recent` {
						f = append(f, string(fl))
					}
				}
				slices.Sort(f)
				st.msgs[m.UID] = strings.Join(append([]string{m.Envelope.Subject}, f...), " ")
			}
		}
		out[box] = st
	}
	c.Logout().Wait()
	return out
}

func imapLogin(t *testing.T, srv *dovecottest.UsersServer, user string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(srv.Addr(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(user, dovecottest.UserPassword).Wait(); err != nil {
		c.Close()
		t.Fatalf("login %s: %v\n%s", user, err, srv.Log())
	}
	return c
}

// diffIMAPStates lists what differs between two IMAP views.
func diffIMAPStates(got, want map[string]mailboxState) string {
	var d []string
	for box, w := range want {
		g := got[box]
		if g.uidValidity != w.uidValidity {
			d = append(d, fmt.Sprintf("%s: UIDVALIDITY %d, want %d", box, g.uidValidity, w.uidValidity))
		}
		for uid, m := range w.msgs {
			if gm, ok := g.msgs[uid]; !ok {
				d = append(d, fmt.Sprintf("%s UID %d %q: missing", box, uid, m))
			} else if gm != m {
				d = append(d, fmt.Sprintf("%s UID %d: %q, want %q", box, uid, gm, m))
			}
		}
		for uid, m := range g.msgs {
			if _, ok := w.msgs[uid]; !ok {
				d = append(d, fmt.Sprintf("%s UID %d %q: unexpected", box, uid, m))
			}
		}
	}
	slices.Sort(d)
	return strings.Join(d, "\n")
}

// userMail is the userdb's mail field as the running Dovecot answers it.
func userMail(t *testing.T, srv *dovecottest.UsersServer, user string) string {
	t.Helper()
	return strings.TrimSpace(srv.MustDoveadm(t, "user", "-f", "mail", user))
}

// TestConvertRollbackOverIMAP: after a conversion, the user changes mail
// over IMAP on the new location (flags, keywords, expunges, appends) and
// gets mail through doveadm save and dovecot-lda; --rollback brings every
// change back to the old location, where the user logs in over IMAP and
// finds it all under the same UIDs and UIDVALIDITY, and the passwd-file is
// the original byte for byte. A conversion with --remove-old then deletes
// the old location after verifying, and IMAP on the new one still has
// everything.
func TestConvertRollbackOverIMAP(t *testing.T) {
	users := []string{"ann", "bob"}
	e := newConvertEnv(t, users, 60)
	orig := imapState(t, e.srv, "ann")
	if len(orig["INBOX"].msgs) != 30 || len(orig["Work"].msgs) != 30 {
		t.Fatalf("before: %+v", orig)
	}
	if out, err := e.command("-u", "ann", "mdbox:~/mdbox").CombinedOutput(); err != nil {
		t.Fatalf("convert: %v\n%s", err, out)
	}
	if m := userMail(t, e.srv, "ann"); m != "mdbox:~/mdbox" {
		t.Fatalf("after convert, Dovecot's userdb says mail=%s", m)
	}
	if d := diffIMAPStates(imapState(t, e.srv, "ann"), orig); d != "" {
		t.Fatalf("on mdbox after the conversion:\n%s", d)
	}

	// The user works on mdbox.
	c := imapLogin(t, e.srv, "ann")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	store := func(uid imap.UID, op imap.StoreFlagsOp, flags ...imap.Flag) {
		t.Helper()
		if err := c.Store(imap.UIDSetNum(uid), &imap.StoreFlags{Op: op, Silent: true, Flags: flags}, nil).Close(); err != nil {
			t.Fatal(err)
		}
	}
	store(1, imap.StoreFlagsAdd, imap.FlagFlagged, "$onmdbox")
	store(2, imap.StoreFlagsDel, imap.FlagSeen)
	store(4, imap.StoreFlagsSet, imap.FlagAnswered, imap.FlagDraft)
	store(5, imap.StoreFlagsAdd, imap.FlagDeleted)
	store(7, imap.StoreFlagsAdd, imap.FlagDeleted)
	if err := c.UIDExpunge(imap.UIDSetNum(5, 7)).Close(); err != nil {
		t.Fatal(err)
	}
	var appended []imap.UID
	for i := range 2 {
		msg := fmt.Sprintf("Subject: appended on mdbox %d\r\n\r\nhi\r\n", i)
		a := c.Append("INBOX", int64(len(msg)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}})
		a.Write([]byte(msg))
		a.Close()
		data, err := a.Wait()
		if err != nil || data.UID == 0 {
			t.Fatalf("append: %v %+v", err, data)
		}
		appended = append(appended, data.UID)
	}
	c.Logout().Wait()
	c.Close()
	if err := e.srv.Deliver("ann", "INBOX", []byte("Subject: saved on mdbox\n\nx\n")); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.DeliverLDA("ann", []byte("Subject: delivered on mdbox\n\nx\n")); err != nil {
		t.Fatal(err)
	}
	onNew := imapState(t, e.srv, "ann")
	if n := len(onNew["INBOX"].msgs); n != 30-2+4 {
		t.Fatalf("INBOX on mdbox: %d messages\n%v", n, onNew["INBOX"].msgs)
	}
	maildirBefore := dump(t, "maildir:"+filepath.Join(e.srv.UserHome("ann"), "Maildir"))

	out, err := e.command("--rollback", "ann").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ann: rolled-back") {
		t.Fatalf("rollback: %v\n%s", err, out)
	}
	if got, _ := os.ReadFile(e.srv.Passwd); string(got) != string(e.passwd) {
		t.Fatalf("passwd-file after the rollback:\n%q\nwant the original\n%q", got, e.passwd)
	}
	if m := userMail(t, e.srv, "ann"); m != "maildir:~/Maildir" {
		t.Fatalf("after the rollback, Dovecot's userdb says mail=%s", m)
	}
	if d := diffLines(maildirBefore, dump(t, "maildir:"+filepath.Join(e.srv.UserHome("ann"), "Maildir"))); d == "" {
		t.Fatal("the rollback did not change the Maildir")
	}
	back := imapState(t, e.srv, "ann")
	if d := diffIMAPStates(back, onNew); d != "" {
		t.Errorf("on the Maildir after the rollback, vs what the user left on mdbox:\n%s", d)
	}
	for _, uid := range appended {
		if _, ok := back["INBOX"].msgs[uid]; !ok {
			t.Errorf("appended UID %d not kept", uid)
		}
	}
	// Dovecot serves the Maildir: mail appended now is written there.
	c = imapLogin(t, e.srv, "ann")
	msg := "Subject: after the rollback\r\n\r\nhi\r\n"
	a := c.Append("INBOX", int64(len(msg)), nil)
	a.Write([]byte(msg))
	a.Close()
	if _, err := a.Wait(); err != nil {
		t.Fatal(err)
	}
	c.Logout().Wait()
	c.Close()
	if hit, _ := exec.Command("grep", "-rl", "after the rollback", filepath.Join(e.srv.UserHome("ann"), "Maildir")).Output(); len(hit) == 0 {
		t.Fatal("IMAP after the rollback did not write to the Maildir")
	}
	back = imapState(t, e.srv, "ann")

	// Again, with --remove-old: the Maildir goes, mdbox has everything.
	out, err = e.command("-u", "ann", "--remove-old", "mdbox:~/mdbox").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ann: converted") {
		t.Fatalf("convert --remove-old: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(e.srv.UserHome("ann"), "Maildir")); !os.IsNotExist(err) {
		t.Fatalf("--remove-old kept the Maildir: %v", err)
	}
	if m := userMail(t, e.srv, "ann"); m != "mdbox:~/mdbox" {
		t.Fatalf("after --remove-old, Dovecot's userdb says mail=%s", m)
	}
	if d := diffIMAPStates(imapState(t, e.srv, "ann"), back); d != "" {
		t.Errorf("on mdbox after --remove-old:\n%s", d)
	}
	e.checkPasswd(t, []string{"ann"})
	e.srv.CheckLogCleanExcept(t, "Killed with signal 15")
}
