package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/internal/dovecottest"
)

// convertEnv is a Dovecot serving several passwd-file users on Maildir,
// each filled with mail, and a boxsync binary the mail owner can run.
type convertEnv struct {
	srv     *dovecottest.UsersServer
	bin     string
	users   []string
	journal string
	passwd  []byte // the passwd-file as the test wrote it
}

// convertPasswd is the passwd-file around the users' lines: comments, a
// CRLF line, a user that is not converted, unusual fields, no final
// newline.
func convertPasswd(srv *dovecottest.UsersServer, users []string) string {
	var b strings.Builder
	b.WriteString("# users of the rollout test\r\n\n#no space after the hash: kept\n")
	b.WriteString("zed:{PLAIN}zz:::Zed,,,:" + srv.UserHome("zed") + ":/bin/false:userdb_mail=maildir:~/Maildir userdb_quota_rule=*:storage=1G nopassword allow_nets=127.0.0.0/8\n")
	for i, u := range users {
		extra := "userdb_mail=maildir:~/Maildir"
		if i%2 == 1 {
			extra = "userdb_x=a=b=c " + extra + " userdb_quota_rule=*:storage=1G"
		}
		fmt.Fprintf(&b, "%s:{PLAIN}%s::::%s::%s\n", u, dovecottest.UserPassword, srv.UserHome(u), extra)
	}
	b.WriteString("# the end, no newline after it")
	return b.String()
}

func newConvertEnv(t *testing.T, users []string, msgs int) *convertEnv {
	t.Helper()
	srv := dovecottest.ServeUsers(t, users, "maildir:~/Maildir")
	e := &convertEnv{srv: srv, users: users, journal: filepath.Join(srv.Dir(), "journal", "convert.journal")}
	e.passwd = []byte(convertPasswd(srv, users))
	if err := os.WriteFile(srv.Passwd, e.passwd, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		fillUser(t, filepath.Join(srv.UserHome(u), "Maildir"), msgs)
		srv.Chown(t, srv.UserHome(u))
	}
	e.bin = filepath.Join(srv.Dir(), "boxsync")
	buildBinary(t, e.bin)
	srv.Chown(t, srv.Dir())
	return e
}

// fillUser writes n messages into a user's Maildir, over INBOX and Work.
func fillUser(t *testing.T, root string, n int) {
	t.Helper()
	fillUserAt(t, "maildir:"+root, n)
}

// fillUserAt writes n messages into the store at loc, over INBOX and Work.
func fillUserAt(t *testing.T, loc string, n int) {
	t.Helper()
	ctx := context.Background()
	d, l := driverFor(t, loc)
	st, err := d.Open(ctx, l, formats.OpenOptions{Create: true, Fsync: formats.FsyncNever})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for bi, name := range []string{"INBOX", "Work"} {
		if err := st.Create(ctx, name, formats.GUID{}, 0); err != nil && formats.KindOf(err) != formats.KindExists {
			t.Fatal(err)
		}
		mb, err := st.Open(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		tx, _ := mb.Begin(ctx)
		for i := bi; i < n; i += 2 {
			body := fmt.Sprintf("Subject: %s %d\r\nMessage-ID: <%d.%s@test>\r\n\r\n%s\r\n", name, i, i, name, strings.Repeat("line\r\n", 1+i%30))
			m := formats.Message{Flags: formats.Flags(i % 3), Received: time.Unix(1.7e9+int64(i), 0), Size: int64(len(body))}
			if i%5 == 0 {
				m.Keywords = []string{"$Label1"}
			}
			if _, err := tx.Save(ctx, m, strings.NewReader(body)); err != nil {
				t.Fatal(err)
			}
		}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
		mb.Close()
	}
}

// command is boxsync convert as an admin runs it (as root under CI):
// mail is written with the users' credentials (mail_uid), the passwd-file
// and the journal as root.
func (e *convertEnv) command(args ...string) *exec.Cmd {
	full := append([]string{"-c", e.srv.Config(), "convert", "--journal", e.journal, "--wait", "400ms",
		"--flush-cmd", e.srv.DoveadmCommand() + ` auth cache flush "$BOXSYNC_USER"`,
		"--kick-cmd", e.srv.DoveadmCommand() + ` kick "$BOXSYNC_USER" >/dev/null || [ $? = 68 ]`}, args...)
	cmd := exec.Command(e.bin, full...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + e.srv.Dir()}
	cmd.Dir = e.srv.Dir()
	return cmd
}

// want is what one user must find after the rollout.
type want struct {
	mu          sync.Mutex
	uidValidity uint32
	msgs        map[imap.UID]*wantMsg // the mail that existed before
	uncertain   map[imap.UID]bool     // an op whose outcome the client didn't see
	appended    map[string]bool       // subjects appended or delivered: true = must exist
}

type wantMsg struct {
	subject string
	flags   []string // sorted
	gone    bool
}

// imapUser is one user's mail client: it flags, expunges and appends, and
// logs in again whenever the server ends its session (the kick).
type imapUser struct {
	events []string // reconnects and failed ops, with times (for failures)
	t      *testing.T
	addr   string
	user   string
	c      *imapclient.Client
}

func (u *imapUser) connect() error {
	if u.c != nil {
		u.c.Close()
	}
	c, err := imapclient.DialInsecure(u.addr, nil)
	if err != nil {
		return err
	}
	if err := c.Login(u.user, dovecottest.UserPassword).Wait(); err != nil {
		c.Close()
		return err
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		c.Close()
		return err
	}
	u.c = c
	return nil
}

func (u *imapUser) close() {
	if u.c != nil {
		u.c.Logout().Wait()
		u.c.Close()
	}
}

// state reads INBOX: UIDVALIDITY and every message's subject and flags.
func (u *imapUser) state() (uint32, map[imap.UID]*wantMsg, error) {
	sel, err := u.c.Select("INBOX", nil).Wait()
	if err != nil {
		return 0, nil, err
	}
	out := map[imap.UID]*wantMsg{}
	if sel.NumMessages == 0 {
		return sel.UIDValidity, out, nil
	}
	msgs, err := u.c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true, Envelope: true}).Collect()
	if err != nil {
		return 0, nil, err
	}
	for _, m := range msgs {
		var f []string
		for _, fl := range m.Flags {
			if fl != `\Recent` {
				f = append(f, string(fl))
			}
		}
		slices.Sort(f)
		out[m.UID] = &wantMsg{subject: m.Envelope.Subject, flags: f}
	}
	return sel.UIDValidity, out, nil
}

// TestConvertWhileInUse is issue 8's end-to-end test: Dovecot serves
// several users from Maildir (passwd-file userdb, userdb_mail= per user);
// while `boxsync convert` moves them to mdbox, an IMAP client per user
// keeps flagging, expunging and appending (logging in again after the
// kick), and new mail is delivered through Dovecot's userdb. Afterwards
// each user logs in on mdbox and finds every message with its UID,
// the UIDVALIDITY, and every change; nothing lost or duplicated. The
// passwd-file differs from the one written only in the users' field.
func TestConvertWhileInUse(t *testing.T) {
	users := []string{"ann", "bob", "cyd", "dee"}
	e := newConvertEnv(t, users, 400)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)

	wants := map[string]*want{}
	clients := map[string]*imapUser{}
	for _, name := range users {
		u := &imapUser{t: t, addr: e.srv.Addr(), user: name}
		if err := u.connect(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		uv, msgs, err := u.state()
		if err != nil || len(msgs) != 200 {
			t.Fatalf("%s: %d messages, %v\n%s", name, len(msgs), err, e.srv.Log())
		}
		wants[name] = &want{uidValidity: uv, msgs: msgs, uncertain: map[imap.UID]bool{}, appended: map[string]bool{}}
		clients[name] = u
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, name := range users {
		wg.Add(2)
		go func() { defer wg.Done(); clients[name].work(wants[name], seed+uint64(i), stop) }()
		go func() { defer wg.Done(); e.deliver(name, wants[name], stop) }()
	}
	time.Sleep(300 * time.Millisecond)
	report := filepath.Join(e.srv.Dir(), "report.json")
	cmd := e.command("-u", "ann", "-u", "bob", "-u", "cyd", "-u", "dee", "--workers", "2", "--threshold", "1", "--max-passes", "3", "--report", report, "mdbox:~/mdbox")
	out, err := cmd.CombinedOutput()
	if err != nil {
		close(stop)
		wg.Wait()
		t.Fatalf("convert: %v\n%s", err, out)
	}
	t.Logf("convert:\n%s", out)
	for _, u := range users {
		o, err := e.srv.Doveadm("user", u)
		t.Logf("doveadm user %s: %v\n%s", u, err, o)
	}
	time.Sleep(500 * time.Millisecond) // the clients go on, on mdbox now
	close(stop)
	wg.Wait()

	e.checkPasswd(t, users)
	var rep struct {
		Users []struct {
			User, Status string
			Passes       int
		}
	}
	data, _ := os.ReadFile(report)
	if err := json.Unmarshal(data, &rep); err != nil || len(rep.Users) != len(users) {
		t.Fatalf("report: %v\n%s", err, data)
	}
	for _, r := range rep.Users {
		if r.Status != "converted" || r.Passes < 1 {
			t.Errorf("report: %+v", r)
		}
	}
	for _, name := range users {
		if !e.checkUser(t, name, wants[name]) {
			// Diagnostics: when the client lost its session, and the steps.
			j, _ := os.ReadFile(e.journal)
			var steps []string
			for _, l := range strings.Split(string(j), "\n") {
				var en struct{ User, Step, Time string }
				if json.Unmarshal([]byte(l), &en) == nil && en.User == name {
					steps = append(steps, en.Step+" "+en.Time)
				}
			}
			t.Logf("%s: client events:\n%s\nsteps: %s", name, strings.Join(clients[name].events, "\n"), strings.Join(steps, ", "))
		}
	}
	// The kick ends sessions with SIGTERM, which Dovecot logs as a warning.
	e.srv.CheckLogCleanExcept(t, "Killed with signal 15")
}

// checkPasswd: the file differs only in the converted users' userdb_mail.
func (e *convertEnv) checkPasswd(t *testing.T, users []string) {
	t.Helper()
	got, err := os.ReadFile(e.srv.Passwd)
	if err != nil {
		t.Fatal(err)
	}
	wantFile := string(e.passwd)
	for _, u := range users {
		line := u + ":{PLAIN}" + dovecottest.UserPassword + "::::" + e.srv.UserHome(u) + "::"
		wantFile = strings.Replace(wantFile, line+"userdb_mail=maildir:~/Maildir", line+"userdb_mail=mdbox:~/mdbox", 1)
		wantFile = strings.Replace(wantFile, line+"userdb_x=a=b=c userdb_mail=maildir:~/Maildir", line+"userdb_x=a=b=c userdb_mail=mdbox:~/mdbox", 1)
	}
	if string(got) != wantFile {
		t.Fatalf("passwd-file after the rollout:\n%q\nwant\n%q", got, wantFile)
	}
}

// checkUser logs in (now on mdbox) and compares INBOX with the model.
func (e *convertEnv) checkUser(t *testing.T, name string, w *want) bool {
	t.Helper()
	if _, err := os.Stat(filepath.Join(e.srv.UserHome(name), "mdbox", "storage")); err != nil {
		t.Errorf("%s: no mdbox: %v", name, err)
		return false
	}
	u := &imapUser{t: t, addr: e.srv.Addr(), user: name}
	if err := u.connect(); err != nil {
		t.Errorf("%s: %v", name, err)
		return false
	}
	defer u.close()
	// The session is on mdbox: what Dovecot serves is the mdbox store.
	out := e.srv.MustDoveadm(t, "mailbox", "status", "-u", name, "messages", "INBOX")
	uv, got, err := u.state()
	if err != nil {
		t.Error(err)
		return false
	}
	if uv != w.uidValidity {
		t.Errorf("%s: UIDVALIDITY %d, want %d", name, uv, w.uidValidity)
	}
	if !strings.Contains(out, fmt.Sprint(len(got))) {
		t.Errorf("%s: doveadm says %q, IMAP %d messages", name, out, len(got))
	}
	var problems []string
	for uid, m := range w.msgs {
		g, ok := got[uid]
		switch {
		case w.uncertain[uid]:
		case m.gone && ok:
			problems = append(problems, fmt.Sprintf("UID %d %q: expunged, but there", uid, m.subject))
		case !m.gone && !ok:
			problems = append(problems, fmt.Sprintf("UID %d %q: lost", uid, m.subject))
		case ok && g.subject != m.subject:
			problems = append(problems, fmt.Sprintf("UID %d: %q, want %q", uid, g.subject, m.subject))
		case ok && !slices.Equal(g.flags, m.flags):
			problems = append(problems, fmt.Sprintf("UID %d %q: flags %v, want %v", uid, m.subject, g.flags, m.flags))
		}
	}
	count := map[string]int{}
	for uid, g := range got {
		count[g.subject]++
		if _, known := w.msgs[uid]; !known && !w.appended[g.subject] {
			if _, maybe := w.appended[g.subject]; !maybe {
				problems = append(problems, fmt.Sprintf("UID %d %q: never written", uid, g.subject))
			}
		}
	}
	for s, n := range count {
		if n > 1 {
			problems = append(problems, fmt.Sprintf("%q: %d copies", s, n))
		}
	}
	for s, must := range w.appended {
		if must && count[s] != 1 {
			inOld, _ := exec.Command("grep", "-rl", "Subject: "+s+"$", filepath.Join(e.srv.UserHome(name), "Maildir")).Output()
			problems = append(problems, fmt.Sprintf("appended %q: %d copies (old has it in %s)", s, count[s], inOld))
		}
	}
	if len(problems) > 0 {
		t.Errorf("%s after the rollout (%d messages):\n%s", name, len(got), strings.Join(problems, "\n"))
	}
	t.Logf("%s: %d messages, %d appended or delivered, %d uncertain ops", name, len(got), len(w.appended), len(w.uncertain))
	return len(problems) == 0
}

// work is the client's loop: one operation every few ms on a message no
// earlier operation touched, so the outcome doesn't depend on order.
func (u *imapUser) work(w *want, seed uint64, stop <-chan struct{}) {
	rng := rand.New(rand.NewPCG(seed, 7))
	w.mu.Lock()
	var pool []imap.UID
	for uid := range w.msgs {
		pool = append(pool, uid)
	}
	w.mu.Unlock()
	slices.Sort(pool)
	rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	for n := 0; ; n++ {
		select {
		case <-stop:
			u.close()
			return
		case <-time.After(time.Duration(5+rng.IntN(20)) * time.Millisecond):
		}
		if u.c == nil {
			if err := u.connect(); err != nil {
				u.c = nil
				continue
			}
		}
		op := rng.IntN(3)
		if len(pool) == 0 {
			op = 2
		}
		var err error
		switch op {
		case 0, 1:
			uid := pool[0]
			pool = pool[1:]
			set := imap.UIDSetNum(uid)
			if op == 0 {
				// Few keywords: Maildir has letters for 26 only.
				kw := imap.Flag(fmt.Sprintf("$op%d", n%4))
				err = u.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged, kw}}, nil).Close()
				w.mu.Lock()
				if err != nil {
					w.uncertain[uid] = true
				} else {
					m := w.msgs[uid]
					m.flags = sortedUnion(m.flags, string(imap.FlagFlagged), string(kw))
				}
				w.mu.Unlock()
			} else {
				err = u.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close()
				if err == nil {
					err = u.c.UIDExpunge(set).Close()
				}
				w.mu.Lock()
				if err != nil {
					w.uncertain[uid] = true
				} else {
					w.msgs[uid].gone = true
				}
				w.mu.Unlock()
			}
		case 2:
			subject := fmt.Sprintf("appended %s %d", u.user, n)
			msg := []byte("Subject: " + subject + "\r\n\r\nhello\r\n")
			w.mu.Lock()
			w.appended[subject] = false // maybe
			w.mu.Unlock()
			a := u.c.Append("INBOX", int64(len(msg)), nil)
			_, err = a.Write(msg)
			if err == nil {
				err = a.Close()
			}
			if err == nil {
				_, err = a.Wait()
			}
			if err == nil {
				w.mu.Lock()
				w.appended[subject] = true
				w.mu.Unlock()
			}
		}
		if err != nil {
			// Most likely the kick: log in again (on the new location).
			u.events = append(u.events, fmt.Sprintf("%s op %d (%d): %v", time.Now().Format("15:04:05.000"), n, op, err))
			u.c.Close()
			u.c = nil
		}
	}
}

// deliver hands a message to Dovecot every ~50 ms, in turn through
// doveadm save and through its delivery agent (dovecot-lda, as an MTA
// would): both look the user up through the running auth service, so
// they follow the switch once the cache is flushed.
func (e *convertEnv) deliver(user string, w *want, stop <-chan struct{}) {
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		case <-time.After(50 * time.Millisecond):
		}
		subject := fmt.Sprintf("delivered %s %d", user, n)
		deliver := e.srv.Deliver
		if n%2 == 1 {
			subject = fmt.Sprintf("delivered by lda %s %d", user, n)
			deliver = func(user, _ string, msg []byte) error { return e.srv.DeliverLDA(user, msg) }
		}
		w.mu.Lock()
		w.appended[subject] = false
		w.mu.Unlock()
		if err := deliver(user, "INBOX", []byte("Subject: "+subject+"\n\nhi\n")); err == nil {
			w.mu.Lock()
			w.appended[subject] = true
			w.mu.Unlock()
		}
	}
}

func sortedUnion(a []string, add ...string) []string {
	out := slices.Clone(a)
	for _, s := range add {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

var _ = bytes.Equal

// TestConvertKilled kills `boxsync convert` (SIGKILL) at random moments
// of a rollout of several users, reruns it, and expects the same end state
// as an uninterrupted rollout: every user on mdbox with the Maildir's
// mail exactly (UIDs, UIDVALIDITY, GUIDs, flags, keywords), the
// passwd-file changed in the one field, Dovecot reading each new store.
func TestConvertKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: several rollouts with a real Dovecot")
	}
	users := []string{"kim", "lee", "max"}
	e := newConvertEnv(t, users, 600)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	args := []string{"-A", "--workers", "2", "--threshold", "1", "mdbox:~/mdbox"}
	killed := 0
	for k := 0; k < 6; k++ {
		cmd := e.command(args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(30+rng.IntN(700)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		if err := cmd.Wait(); err != nil && strings.Contains(err.Error(), "killed") {
			killed++
		} else {
			t.Logf("run %d finished before the kill:\n%s", k, out.Bytes())
			break
		}
	}
	if killed == 0 {
		t.Fatal("no run was killed mid-way: the test proved nothing")
	}
	out, err := e.command(args...).CombinedOutput()
	if err != nil {
		ls, _ := exec.Command("ls", "-laR", filepath.Join(e.srv.Dir(), "users")).CombinedOutput()
		t.Fatalf("rerun after %d kills: %v\n%s\n%s", killed, err, out, ls)
	}
	t.Logf("%d kills, then:\n%s", killed, out)
	// -A also lists zed, who is not meant to move; put it back.
	e.passwd = bytes.Replace(e.passwd, []byte("zed:{PLAIN}zz:::Zed,,,:"+e.srv.UserHome("zed")+":/bin/false:userdb_mail=maildir:~/Maildir"),
		[]byte("zed:{PLAIN}zz:::Zed,,,:"+e.srv.UserHome("zed")+":/bin/false:userdb_mail=mdbox:~/mdbox"), 1)
	e.checkPasswd(t, users)
	for _, u := range users {
		old := dump(t, "maildir:"+filepath.Join(e.srv.UserHome(u), "Maildir"))
		nw := dump(t, "mdbox:"+filepath.Join(e.srv.UserHome(u), "mdbox"))
		if d := diffLines(old, nw); d != "" || old == "" {
			t.Errorf("%s: mdbox differs from the Maildir:\n%s", u, d)
		}
		st := e.srv.MustDoveadm(t, "-f", "flow", "mailbox", "status", "-u", u, "messages uidvalidity", "INBOX", "Work")
		if !strings.Contains(st, "messages=300") {
			t.Errorf("%s: Dovecot reads %s", u, st)
		}
	}
	// A third run has nothing left to do.
	out, err = e.command(args...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "4 skipped") {
		t.Errorf("third run: %v\n%s", err, out)
	}
	e.srv.CheckLogCleanExcept(t, "Killed with signal 15")
}
