package convert

// Progress is a run's progress so far, for -v: the counters of Result as
// they grow, plus the number of mailboxes the run will sync.
//
// Options.Progress is called when the mailboxes to sync are known, after
// each saved message in a backup, and after each mailbox. Mailbox workers
// call it concurrently, so it must be safe for concurrent use and quick.
type Progress struct {
	Mailboxes     int // mailboxes to sync; 0 until known
	MailboxesDone int // synced or skipped
	Saved         int // messages saved
	Bytes         int64
	Expunged      int
	FlagsChanged  int
}

// liveProgress counts what Result only learns when a mailbox is done.
type liveProgress struct {
	mailboxes int
	saved     int
	bytes     int64
}

// progress applies f (may be nil) to the live counters and reports.
func (r *run) progress(f func(*liveProgress)) {
	if r.opt.Progress == nil {
		return
	}
	r.mu.Lock()
	if f != nil {
		f(&r.live)
	}
	p := Progress{
		Mailboxes:     r.live.mailboxes,
		MailboxesDone: r.res.Mailboxes.Synced + r.res.Mailboxes.Skipped,
		Saved:         max(r.live.saved, r.res.Messages.Saved),
		Bytes:         max(r.live.bytes, r.res.Bytes),
		Expunged:      r.res.Messages.Expunged,
		FlagsChanged:  r.res.Messages.FlagsChanged,
	}
	r.mu.Unlock()
	r.opt.Progress(p)
}
