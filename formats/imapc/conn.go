package imapc

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/boxsync/boxsync/formats"
)

// respCodeKinds maps response codes (RFC 5530) to Kinds exactly as
// Dovecot's imapc does (dovecot 2.3.19.1 imapc-storage.c
// imapc_resp_code_map).
var respCodeKinds = map[string]formats.Kind{
	"UNAVAILABLE": formats.KindTemp, "AUTHENTICATIONFAILED": formats.KindPerm,
	"AUTHORIZATIONFAILED": formats.KindPerm, "EXPIRED": formats.KindPerm,
	"PRIVACYREQUIRED": formats.KindPerm, "CONTACTADMIN": formats.KindPerm,
	"NOPERM": formats.KindPerm, "INUSE": formats.KindInUse,
	"EXPUNGEISSUED": formats.KindExpunged, "CORRUPTION": formats.KindTemp,
	"SERVERBUG": formats.KindTemp, "CANNOT": formats.KindNotPossible,
	"LIMIT": formats.KindLimit, "OVERQUOTA": formats.KindNoQuota,
	"ALREADYEXISTS": formats.KindExists, "NONEXISTENT": formats.KindNotFound,
}

// CommandError is a tagged NO or BAD. Its text is the server's; it never
// holds what we sent.
type CommandError struct {
	Command string // the command name ("SELECT"), no arguments
	Status  string // NO or BAD
	Code    string // response code, "" if none
	Text    string
}

func (e *CommandError) Error() string {
	code := ""
	if e.Code != "" {
		code = "[" + e.Code + "] "
	}
	return fmt.Sprintf("%s failed: %s %s%s", e.Command, e.Status, code, e.Text)
}

// kind classifies a tagged failure: the response code as Dovecot does,
// else NotPossible for NO and Params for BAD.
func (e *CommandError) kind() formats.Kind {
	if k, ok := respCodeKinds[e.Code]; ok {
		return k
	}
	if e.Status == "BAD" {
		return formats.KindParams
	}
	return formats.KindNotPossible
}

// connError marks a broken connection: the command may be retried on a
// new one when it is idempotent.
type connError struct{ err error }

func (e *connError) Error() string { return "connection lost: " + e.err.Error() }
func (e *connError) Unwrap() error { return e.err }

// killableConn closes the underlying connection when the context of the
// command in progress ends, and bounds the silence of the server by the
// command timeout.
type killableConn struct {
	net.Conn
	timeout time.Duration
	killed  atomic.Bool
}

func (k *killableConn) Read(p []byte) (int, error) {
	if k.timeout > 0 && !k.killed.Load() {
		k.Conn.SetReadDeadline(time.Now().Add(k.timeout))
	}
	return k.Conn.Read(p)
}

func (k *killableConn) Write(p []byte) (int, error) {
	if k.timeout > 0 && !k.killed.Load() {
		k.Conn.SetWriteDeadline(time.Now().Add(k.timeout))
	}
	return k.Conn.Write(p)
}

func (k *killableConn) kill() {
	k.killed.Store(true)
	k.Conn.Close()
}

// lockedWriter serializes the rawlog writes of a store's connections.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer // guarded by mu
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// rawlogConn copies traffic to a rawlog, prefixed like Dovecot's rawlog
// ("<" from the server, ">" to it). The auth command is masked by conn.
type rawlogConn struct {
	io.ReadWriter
	log  io.Writer
	mask atomic.Bool // the next writes carry a secret
}

func (r *rawlogConn) Read(p []byte) (int, error) {
	n, err := r.ReadWriter.Read(p)
	if n > 0 {
		r.log.Write(append([]byte("< "), p[:n]...))
	}
	return n, err
}

func (r *rawlogConn) Write(p []byte) (int, error) {
	if r.mask.Load() {
		r.log.Write([]byte("> <auth command masked>\r\n"))
	} else {
		r.log.Write(append([]byte("> "), p...))
	}
	return r.ReadWriter.Write(p)
}

// conn is one authenticated IMAP connection. It is owned by one goroutine
// at a time (the pool hands it out).
type conn struct {
	s       *Settings
	raw     *killableConn
	rawlog  *rawlogConn // nil without a rawlog
	r       reader
	w       *bufio.Writer
	tagN    int
	names   map[string]string // tag → command name, for errors
	caps    map[string]bool
	dovecot bool // the server said ID name "Dovecot"
	broken  bool
	used    time.Time // last use, for imapc_max_idle_time

	// Selected mailbox: remote name, read-write or not, its UIDVALIDITY.
	selected    string
	selectedRW  bool
	uidValidity uint32
	exists      uint32
}

func (c *conn) has(capName string) bool { return c.caps[strings.ToUpper(capName)] }

// dial opens and authenticates a connection.
func dial(ctx context.Context, s *Settings) (*conn, error) {
	op := "imapc: connect to " + s.addr()
	nc, err := dialRaw(ctx, s)
	if err != nil {
		return nil, classifyDial(op, err)
	}
	c := &conn{s: s, raw: &killableConn{Conn: nc, timeout: s.CmdTimeout}, used: time.Now()}
	stop := context.AfterFunc(ctx, c.raw.kill)
	defer stop()
	if s.SSL == SSLImaps {
		if err := c.startTLS(ctx); err != nil {
			c.raw.kill()
			return nil, classifyTLS(op, s, err)
		}
	} else {
		c.setStream(c.raw)
	}
	if err := c.handshake(ctx); err != nil {
		c.raw.kill()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var fe *formats.Error
		if errors.As(err, &fe) {
			return nil, err
		}
		if isTLSError(err) {
			return nil, classifyTLS(op, s, err)
		}
		return nil, &formats.Error{Kind: formats.KindTemp, Op: op, Err: err}
	}
	return c, nil
}

func dialRaw(ctx context.Context, s *Settings) (net.Conn, error) {
	if s.Dial != nil {
		return s.Dial(ctx)
	}
	// RFC 6761 §6.4: resolvers should answer names under .invalid
	// negatively without asking anyone (and tests use them).
	if h := strings.ToLower(strings.TrimSuffix(s.Host, ".")); h == "invalid" || strings.HasSuffix(h, ".invalid") {
		return nil, &net.OpError{Op: "dial", Net: "tcp",
			Err: &net.DNSError{Err: "no such host", Name: s.Host, IsNotFound: true}}
	}
	d := net.Dialer{Timeout: 30 * time.Second, KeepAlive: 60 * time.Second}
	return d.DialContext(ctx, "tcp", s.addr())
}

func classifyDial(op string, err error) error {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && (dnsErr.IsNotFound || !dnsErr.IsTemporary) {
		return &formats.Error{Kind: formats.KindUnavailable, Op: op, Err: fmt.Errorf("unknown host: %w", err)}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return &formats.Error{Kind: formats.KindTemp, Op: op, Err: err}
}

func isTLSError(err error) bool {
	var (
		unknownAuth x509.UnknownAuthorityError
		hostErr     x509.HostnameError
		certInv     x509.CertificateInvalidError
		verifyErr   *tls.CertificateVerificationError
		recErr      tls.RecordHeaderError
	)
	return errors.As(err, &unknownAuth) || errors.As(err, &hostErr) || errors.As(err, &certInv) ||
		errors.As(err, &verifyErr) || errors.As(err, &recErr)
}

// classifyTLS makes TLS failures say what to do. A certificate that does
// not verify is KindConfig: retrying cannot help, changing the CA
// configuration or imapc_ssl_verify can.
func classifyTLS(op string, s *Settings, err error) error {
	var verifyErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var certInv x509.CertificateInvalidError
	if errors.As(err, &verifyErr) || errors.As(err, &unknownAuth) || errors.As(err, &hostErr) || errors.As(err, &certInv) {
		return &formats.Error{Kind: formats.KindConfig, Op: op,
			Err: fmt.Errorf("TLS certificate verification failed (install the CA or set imapc_ssl_verify=no): %w", err)}
	}
	return &formats.Error{Kind: formats.KindTemp, Op: op, Err: fmt.Errorf("TLS handshake: %w", err)}
}

func (c *conn) setStream(rw io.ReadWriter) {
	if c.s.Rawlog != nil {
		c.rawlog = &rawlogConn{ReadWriter: rw, log: c.s.Rawlog}
		rw = c.rawlog
	}
	c.r = reader{br: bufio.NewReaderSize(rw, 64<<10)}
	c.w = bufio.NewWriterSize(rw, 64<<10)
}

func (c *conn) tlsConfig() *tls.Config {
	return &tls.Config{ServerName: c.s.Host, InsecureSkipVerify: !c.s.SSLVerify, MinVersion: tls.VersionTLS12}
}

func (c *conn) startTLS(ctx context.Context) error {
	tc := tls.Client(c.raw, c.tlsConfig())
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	c.setStream(tc)
	return nil
}

// handshake reads the greeting, does STARTTLS and authenticates, then
// learns the capabilities and whether the server is Dovecot.
func (c *conn) handshake(ctx context.Context) error {
	greet, err := c.r.read()
	if err != nil {
		return fmt.Errorf("reading greeting: %w", err)
	}
	if greet.tag != "*" || (greet.kind != "OK" && greet.kind != "PREAUTH") {
		if greet.kind == "BYE" {
			return &formats.Error{Kind: formats.KindUnavailable, Op: "imapc: connect to " + c.s.addr(),
				Err: fmt.Errorf("server refused the connection: %s", greet.text)}
		}
		return fmt.Errorf("unexpected greeting %s %s", greet.kind, greet.text)
	}
	c.capsFrom(greet)
	if greet.kind == "OK" {
		if c.s.SSL == SSLStartTLS {
			if err := c.ensureCaps(ctx); err != nil {
				return err
			}
			if !c.has("STARTTLS") {
				return &formats.Error{Kind: formats.KindConfig, Op: "imapc: connect to " + c.s.addr(),
					Err: errors.New("imapc_ssl=starttls, but the server does not offer STARTTLS")}
			}
			if _, err := c.run(ctx, "STARTTLS", nil); err != nil {
				return err
			}
			if err := c.startTLS(ctx); err != nil {
				return err
			}
			c.caps = nil
		}
		if err := c.authenticate(ctx); err != nil {
			return err
		}
	}
	// CAPABILITY (unless the login reply had it) and ID, pipelined.
	var tags []string
	if c.caps == nil || !c.has("IMAP4REV1") {
		tags = append(tags, c.send("CAPABILITY"))
	}
	idTag := ""
	if c.caps == nil || c.has("ID") {
		idTag = c.send(`ID ("name" "boxsync")`)
		tags = append(tags, idTag)
	}
	err = c.wait(ctx, tags, func(r *response) error {
		if r.kind == "ID" && len(r.values) == 1 {
			if l, ok := r.values[0].([]any); ok {
				for i := 0; i+1 < len(l); i += 2 {
					k, _ := l[i].(string)
					v, _ := l[i+1].(string)
					if strings.EqualFold(k, "name") && strings.EqualFold(v, "Dovecot") {
						c.dovecot = true
					}
				}
			}
		}
		return nil
	})
	var ce *CommandError
	if errors.As(err, &ce) && ce.Command == "ID" {
		err = nil // ID is a courtesy
	}
	return err
}

func (c *conn) capsFrom(r *response) {
	if r.code == "CAPABILITY" {
		c.caps = map[string]bool{}
		for _, f := range strings.Fields(r.codeArgs) {
			c.caps[strings.ToUpper(f)] = true
		}
	}
	if r.kind == "CAPABILITY" {
		c.caps = map[string]bool{}
		for _, v := range r.values {
			if s, ok := v.(string); ok {
				c.caps[strings.ToUpper(s)] = true
			}
		}
	}
}

func (c *conn) ensureCaps(ctx context.Context) error {
	if c.caps != nil {
		return nil
	}
	_, err := c.run(ctx, "CAPABILITY", nil)
	return err
}

// authFailed wraps a failed login. The server's text is kept (it never
// echoes the password); what we sent is not.
func (c *conn) authFailed(err error, secret string) error {
	kind := formats.KindPerm
	var ce *CommandError
	if errors.As(err, &ce) {
		if k, ok := respCodeKinds[ce.Code]; ok {
			kind = k
		}
		// A server could echo what we sent; never pass the secret on.
		text := ce.Text
		if secret != "" {
			text = strings.ReplaceAll(text, secret, "***")
		}
		err = fmt.Errorf("authentication failed: %s", text)
		if ce.Code != "" {
			err = fmt.Errorf("authentication failed: [%s] %s", ce.Code, text)
		}
	} else {
		var conErr *connError
		if errors.As(err, &conErr) {
			kind = formats.KindTemp
		}
	}
	user := c.s.User
	if c.s.MasterUser != "" {
		user = c.s.User + " (master user " + c.s.MasterUser + ")"
	}
	return &formats.Error{Kind: kind, Op: fmt.Sprintf("imapc: login to %s as %q", c.s.addr(), user), Err: err}
}

func (c *conn) authenticate(ctx context.Context) error {
	if err := c.ensureCaps(ctx); err != nil {
		return err
	}
	mechs := c.s.SASLMechanisms
	if len(mechs) == 0 {
		if c.s.MasterUser != "" || c.has("LOGINDISABLED") {
			mechs = []string{"plain"}
		} else {
			mechs = []string{"login"}
		}
	}
	mech := ""
	for _, m := range mechs {
		if m == "login" && !c.has("LOGINDISABLED") || c.has("AUTH="+strings.ToUpper(m)) {
			mech = m
			break
		}
	}
	if mech == "" {
		return &formats.Error{Kind: formats.KindNotPossible, Op: "imapc: login to " + c.s.addr(),
			Err: fmt.Errorf("the server offers none of the SASL mechanisms %s", strings.Join(mechs, ", "))}
	}
	var secret string
	var err error
	if mech == "xoauth2" || mech == "oauthbearer" {
		secret, err = c.s.token(ctx)
	} else {
		secret, err = c.s.secret()
	}
	if err != nil {
		return err
	}
	if !quotable(c.s.User) || !quotable(c.s.MasterUser) {
		return formats.Errorf(formats.KindConfig, "imapc: imapc_user contains characters IMAP cannot send")
	}
	var ir string // SASL initial response
	switch mech {
	case "login":
		if !quotable(secret) {
			// LOGIN takes strings only; a password with 8-bit bytes
			// goes through AUTHENTICATE PLAIN.
			mech = "plain"
		}
	}
	switch mech {
	case "plain":
		authz, authc := "", c.s.User
		if c.s.MasterUser != "" {
			authz, authc = c.s.User, c.s.MasterUser
		}
		ir = base64.StdEncoding.EncodeToString([]byte(authz + "\x00" + authc + "\x00" + secret))
	case "xoauth2":
		ir = base64.StdEncoding.EncodeToString([]byte("user=" + c.s.User + "\x01auth=Bearer " + secret + "\x01\x01"))
	case "oauthbearer":
		ir = base64.StdEncoding.EncodeToString([]byte("n,a=" + c.s.User + ",\x01host=" + c.s.Host +
			"\x01port=" + strconv.Itoa(c.s.port()) + "\x01auth=Bearer " + secret + "\x01\x01"))
	}
	c.maskRawlog(true)
	defer c.maskRawlog(false)
	var resp *response
	if mech == "login" {
		resp, err = c.run(ctx, "LOGIN "+quote(c.s.User)+" "+quote(secret), nil)
	} else {
		resp, err = c.sasl(ctx, strings.ToUpper(mech), ir)
	}
	if err != nil {
		return c.authFailed(err, secret)
	}
	c.capsFrom(resp)
	return nil
}

func (c *conn) maskRawlog(on bool) {
	if c.rawlog != nil {
		c.rawlog.mask.Store(on)
	}
}

// sasl runs AUTHENTICATE with an initial response (RFC 4959 SASL-IR when
// the server has it, else after the first continuation). A continuation
// after that is an error challenge (OAuth): answered per RFC 7628 so the
// server sends its tagged NO.
func (c *conn) sasl(ctx context.Context, mech, ir string) (*response, error) {
	stop := context.AfterFunc(ctx, c.raw.kill)
	defer stop()
	var tag string
	if c.has("SASL-IR") {
		tag = c.send("AUTHENTICATE " + mech + " " + ir)
	} else {
		tag = c.send("AUTHENTICATE " + mech)
	}
	sentIR := c.has("SASL-IR")
	if err := c.w.Flush(); err != nil {
		return nil, c.lost(err)
	}
	for {
		resp, err := c.r.read()
		if err != nil {
			return nil, c.lost(err)
		}
		switch {
		case resp.tag == "+":
			line := "*"
			if !sentIR {
				line, sentIR = ir, true
			} else if mech == "XOAUTH2" {
				line = ""
			} else if mech == "OAUTHBEARER" {
				line = base64.StdEncoding.EncodeToString([]byte{1})
			}
			if err := c.writeLine(line); err != nil {
				return nil, c.lost(err)
			}
		case resp.tag == tag:
			if resp.kind != "OK" {
				return nil, &CommandError{Command: "AUTHENTICATE", Status: resp.kind, Code: resp.code, Text: resp.text}
			}
			return resp, nil
		default:
			c.untagged(resp)
		}
	}
}

func (c *conn) writeLine(s string) error {
	c.w.WriteString(s)
	c.w.WriteString("\r\n")
	return c.w.Flush()
}

// send writes one command and returns its tag. A write error shows up when
// the responses are read.
func (c *conn) send(cmd string) string {
	c.tagN++
	tag := "b" + strconv.Itoa(c.tagN)
	name, _, _ := strings.Cut(cmd, " ")
	if name == "UID" {
		sub, _, _ := strings.Cut(cmd[4:], " ")
		name += " " + sub
	}
	if c.names == nil {
		c.names = map[string]string{}
	}
	c.names[tag] = name
	c.w.WriteString(tag)
	c.w.WriteByte(' ')
	c.w.WriteString(cmd)
	c.w.WriteString("\r\n")
	return tag
}

func (c *conn) lost(err error) error {
	c.broken = true
	var ce *connError
	if errors.As(err, &ce) {
		return err
	}
	return &connError{err: err}
}

// run sends one command and waits for its completion.
func (c *conn) run(ctx context.Context, cmd string, on func(*response) error) (*response, error) {
	tag := c.send(cmd)
	var last *response
	err := c.waitFunc(ctx, []string{tag}, on, func(r *response) { last = r })
	return last, err
}

// wait flushes the pipelined commands with the given tags and reads until
// all of them completed. Untagged responses go to on (then to the
// connection's own bookkeeping). The first failure is returned once every
// command is complete, so the connection stays usable.
func (c *conn) wait(ctx context.Context, tags []string, on func(*response) error) error {
	return c.waitFunc(ctx, tags, on, nil)
}

func (c *conn) waitFunc(ctx context.Context, tags []string, on func(*response) error, done func(*response)) error {
	if c.broken {
		return &connError{err: errors.New("connection already broken")}
	}
	stop := context.AfterFunc(ctx, c.raw.kill)
	defer func() {
		if !stop() {
			c.broken = true // killed by the context, maybe just now
		}
	}()
	if err := c.w.Flush(); err != nil {
		return c.ctxOr(ctx, c.lost(err))
	}
	pending := map[string]string{}
	for _, t := range tags {
		pending[t] = t
	}
	var first error
	for len(pending) > 0 {
		resp, err := c.r.read()
		if err != nil {
			return c.ctxOr(ctx, c.lost(err))
		}
		if c.r.bodyErr != nil && first == nil {
			first = c.r.bodyErr
		}
		c.r.bodyErr = nil
		switch {
		case resp.tag == "*":
			if on != nil && first == nil {
				if err := on(resp); err != nil {
					first = err
				}
			}
			c.untagged(resp)
			if resp.kind == "BYE" {
				return c.lost(fmt.Errorf("server closed the connection: %s", resp.text))
			}
		case resp.tag == "+":
			return c.lost(&ProtocolError{What: "unexpected continuation request"})
		default:
			if _, ok := pending[resp.tag]; !ok {
				return c.lost(&ProtocolError{What: "reply to a command we did not send", Near: resp.tag})
			}
			delete(pending, resp.tag)
			name := c.names[resp.tag]
			delete(c.names, resp.tag)
			c.capsFrom(resp)
			if done != nil {
				done(resp)
			}
			if resp.kind != "OK" && first == nil {
				first = &CommandError{Command: name, Status: resp.kind, Code: resp.code, Text: resp.text}
			}
		}
	}
	c.used = time.Now()
	return first
}

func (c *conn) ctxOr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		c.broken = true
		return ctx.Err()
	}
	return err
}

// untagged keeps the connection's view of the selected mailbox.
func (c *conn) untagged(r *response) {
	switch {
	case r.kind == "CAPABILITY":
		c.capsFrom(r)
	case r.kind == "EXISTS":
		c.exists = r.num
	case r.kind == "OK" && r.code == "UIDVALIDITY":
		if n, err := strconv.ParseUint(r.codeArgs, 10, 32); err == nil {
			c.uidValidity = uint32(n)
		}
	}
}

// selectBox SELECTs (rw) or EXAMINEs a mailbox unless it already is.
func (c *conn) selectBox(ctx context.Context, remote string, rw bool) error {
	if c.selected == remote && (c.selectedRW || !rw) {
		return nil
	}
	cmd := "EXAMINE "
	if rw {
		cmd = "SELECT "
	}
	c.selected, c.uidValidity, c.exists = "", 0, 0
	if _, err := c.run(ctx, cmd+quote(remote), nil); err != nil {
		return err
	}
	c.selected, c.selectedRW = remote, rw
	return nil
}

func (c *conn) close() {
	if !c.broken {
		c.raw.SetDeadline(time.Now().Add(2 * time.Second))
		c.send("LOGOUT")
		c.w.Flush()
	}
	c.raw.kill()
}

// pool hands out up to Settings.Connections connections of one store.
type pool struct {
	s   *Settings     // immutable
	sem chan struct{} // immutable: one slot per connection in use

	mu     sync.Mutex
	idle   []*conn // guarded by mu
	closed bool    // guarded by mu
	// What the first connection learnt; guarded by mu.
	caps    map[string]bool
	dovecot bool
}

func newPool(s *Settings) *pool {
	n := s.Connections
	if n < 1 {
		n = 1
	}
	return &pool{s: s, sem: make(chan struct{}, n)}
}

// get returns a connection, preferring an idle one that has remote
// selected.
func (p *pool) get(ctx context.Context, remote string) (*conn, error) {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.sem
		return nil, formats.Errorf(formats.KindParams, "imapc: store is closed")
	}
	var c *conn
	pick := -1
	for i, ic := range p.idle {
		if p.s.MaxIdleTime > 0 && time.Since(ic.used) > p.s.MaxIdleTime {
			continue
		}
		if pick < 0 || (remote != "" && ic.selected == remote) {
			pick = i
		}
	}
	var stale []*conn
	if pick >= 0 {
		c = p.idle[pick]
		p.idle = append(p.idle[:pick], p.idle[pick+1:]...)
	}
	if p.s.MaxIdleTime > 0 {
		keep := p.idle[:0]
		for _, ic := range p.idle {
			if time.Since(ic.used) > p.s.MaxIdleTime {
				stale = append(stale, ic)
			} else {
				keep = append(keep, ic)
			}
		}
		p.idle = keep
	}
	p.mu.Unlock()
	for _, sc := range stale {
		sc.close()
	}
	if c != nil {
		return c, nil
	}
	c, err := dial(ctx, p.s)
	if err != nil {
		<-p.sem
		return nil, err
	}
	p.mu.Lock()
	if p.caps == nil {
		p.caps, p.dovecot = c.caps, c.dovecot
	}
	p.mu.Unlock()
	return c, nil
}

// put returns a connection; a broken one is closed.
func (p *pool) put(c *conn) {
	p.mu.Lock()
	if c.broken || p.closed {
		p.mu.Unlock()
		c.raw.kill()
	} else {
		p.idle = append(p.idle, c)
		p.mu.Unlock()
	}
	<-p.sem
}

func (p *pool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	p.mu.Unlock()
	for _, c := range idle {
		c.close()
	}
}

// do runs fn on a pooled connection (with remote selected when not "").
// When the connection breaks and idempotent is set, fn runs again on a new
// connection, up to Settings.RetryCount times.
func (p *pool) do(ctx context.Context, remote string, rw, idempotent bool, fn func(c *conn) error) error {
	for attempt := 0; ; attempt++ {
		c, err := p.get(ctx, remote)
		if err != nil {
			return err
		}
		if remote != "" {
			err = c.selectBox(ctx, remote, rw)
		}
		if err == nil {
			err = fn(c)
		}
		p.put(c)
		var ce *connError
		if err != nil && errors.As(err, &ce) && idempotent && attempt < p.s.RetryCount && ctx.Err() == nil {
			continue
		}
		return err
	}
}
