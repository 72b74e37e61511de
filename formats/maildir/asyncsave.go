package maildir

import (
	"errors"
	"os"
	"runtime"
	"time"

	"github.com/boxsync/boxsync/formats"
)

// Saves of bodies the kernel copies (fileSection) run in the background
// where the system can (copyRangeAt): Save checks the body's first bytes,
// plans the message, hands a duplicate of the source's descriptor to one
// of copyWorkers goroutines and returns, so that the next message is read
// from the source while this one is written, and two are written at once
// on two CPUs [a Maildir save is a file creation, a copy and a link,
// nearly all in the kernel: mdbox→maildir of 5,000 messages kept one CPU
// busy]. The files are made as a synchronous Save makes them (create,
// copy, mtime, fsync for "always"); Commit, Rollback and Expunge first
// wait for every copy (settle). A copy that fails fails the Commit (a
// synchronous Save fails on its own message instead): it is a failure
// of the destination, or of a source file shorter than its index says.

// copyWorkers is the number of background copies at a time.
const copyWorkers = 2

// copyQueue is the number of saves waiting for a worker: each holds a
// duplicated descriptor.
const copyQueue = 8

// saveJob is one background save.
type saveJob struct {
	src       int // a duplicate of the source's descriptor, closed when done
	off, size int64
	mtime     time.Time
	uid       formats.UID // for errors
	tmp       string      // results, read after settle
	file      *os.File
	err       error
}

// copyAsync tells whether kernel copies go to the background: there is a
// second CPU to run them on and the system has copyRangeAt.
func copyAsync() bool {
	return haveCopyRangeAt && runtime.GOMAXPROCS(0) > 1 && !syncSavesOnly
}

// syncSavesOnly turns background saves off (tests of both ways).
var syncSavesOnly bool

// saveAsync plans sr (already checked) and starts its copy of size bytes
// at off of src.
func (t *tx) saveAsync(sr saveRec, newKws []string, msg formats.Message, src *os.File, off int64) (formats.UID, error) {
	if err := t.checkHead(src, off, msg); err != nil {
		return 0, err
	}
	uid, err := t.nextUID(msg)
	if err != nil {
		return 0, err
	}
	fd, err := dupFD(src)
	if err != nil {
		return 0, wrap(err, "save", t.m.b.name, msg.UID, src.Name())
	}
	j := &saveJob{src: fd, off: off, size: msg.Size, mtime: msg.Received, uid: msg.UID}
	sr.job, sr.uid = j, uid
	sr.size, sr.vsize = msg.Size, msg.VSize
	t.next = uid + 1
	t.saves = append(t.saves, sr)
	t.addKeywords(newKws)
	if t.jobs == nil {
		t.jobs = make(chan *saveJob, copyQueue)
		for range copyWorkers {
			go t.copyWorker(t.jobs)
		}
	}
	t.pending.Add(1)
	t.jobs <- j
	return formats.UID(uid), nil
}

func (t *tx) copyWorker(jobs <-chan *saveJob) {
	var buf []byte // for copyRangeAt's fallback, made when needed
	for j := range jobs {
		j.err = t.runSave(j, &buf)
		closeFD(j.src)
		t.pending.Done()
	}
}

// runSave makes the file of j, as Save does.
func (t *tx) runSave(j *saveJob, buf *[]byte) error {
	m := t.m
	var sr saveRec
	f, path, err := t.create(&sr)
	if err != nil {
		return wrap(err, "save", m.b.name, j.uid, path)
	}
	n, err := copyRangeAt(f, j.src, j.off, j.size, buf)
	if err == nil && n != j.size {
		err = fail(formats.KindInvalidData, "save", m.b.name, j.uid, "", errors.New("the source file ends inside the message"))
	}
	if err == nil {
		err = t.finishFile(f, sr.file != nil, path, j.mtime)
	} else if sr.file == nil {
		f.Close()
	}
	if err != nil {
		t.discard(&sr)
		return wrap(err, "save", m.b.name, j.uid, path)
	}
	j.tmp, j.file = sr.tmp, sr.file
	return nil
}

// settle waits for the background saves and takes their files into
// t.saves. It returns the first failure; the failed saves have no file.
func (t *tx) settle() error {
	if t.jobs == nil {
		return nil
	}
	t.pending.Wait()
	var first error
	for i := range t.saves {
		s := &t.saves[i]
		if j := s.job; j != nil {
			s.job = nil
			s.tmp, s.file, s.failed = j.tmp, j.file, j.err
		}
		if first == nil {
			first = s.failed
		}
	}
	return first
}

// stopWorkers ends the background workers (after settle).
func (t *tx) stopWorkers() {
	if t.jobs != nil {
		close(t.jobs)
		t.jobs = nil
	}
}
