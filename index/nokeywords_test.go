package index

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/index/log"
)

// statusText is what a status reads from a view: everything but the
// messages' flags, keywords and extension records.
func statusText(t *testing.T, v *View) string {
	t.Helper()
	var uids []uint32
	for _, m := range v.Messages() {
		uids = append(uids, m.UID)
	}
	var exts []string
	for _, e := range v.Extensions() {
		if e.Name != ExtKeywords {
			exts = append(exts, fmt.Sprintf("%s hdr %x", e.Name, v.extHdr(e.Name)))
		}
	}
	mh, _ := v.ModSeqHdr()
	md, mdOK := v.MaildirHdr()
	return fmt.Sprintf("uidvalidity %d next %d count %d hms %d modseqhdr %+v maildir %v %+v deleted %v\nuids %v\nexts %q",
		v.UIDValidity(), v.NextUID(), v.Count(), v.HighestModSeq(), mh, mdOK, md, v.Deleted(), uids, exts)
}

// openBoth opens dir as usual and with NoKeywords and compares what a
// status reads.
func openBoth(t *testing.T, what, dir, prefix string) {
	t.Helper()
	full, err := Open(dir, prefix, nil)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	lite, err := Open(dir, prefix, &Options{NoKeywords: true})
	if err != nil {
		t.Fatalf("%s: NoKeywords: %v", what, err)
	}
	vf, err := full.View()
	if err != nil {
		t.Fatal(err)
	}
	vl, err := lite.View()
	if err != nil {
		t.Fatal(err)
	}
	if a, b := statusText(t, vf), statusText(t, vl); a != b {
		t.Fatalf("%s: status with NoKeywords differs:\n%s", what, lineDiff(a, b))
	}
	tx := lite.Begin()
	tx.SetHeader(FieldNextUID, vl.NextUID()+1)
	if _, err := tx.Commit(); err == nil {
		t.Fatalf("%s: a commit on a NoKeywords index succeeded", what)
	}
}

// TestNoKeywordsStatus: an index opened with NoKeywords reads the same
// status (UIDs, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ, every extension
// header but the keywords') as a full read, for Dovecot's fixtures and
// for random histories whose keywords come before and after other
// extensions are introduced (the extension ids must stay aligned), with
// rotations and index rewrites; and it refuses writes.
func TestNoKeywordsStatus(t *testing.T) {
	for _, c := range fixtureCases(t) {
		dir := filepath.Join("testdata", c)
		for box := range parseDoveadm(t, filepath.Join(dir, "doveadm.txt")) {
			openBoth(t, c+"/"+box, filepath.Join(dir, box), Prefix)
		}
	}

	rng := rand.New(rand.NewPCG(testSeed(t), 7))
	pool := []string{"$Label1", "$Label2", "Junk", "NonJunk", "$Forwarded", "Important", "work", "x-y_z",
		"k8", "k9", "k10", "k11", "k12", "k13", "k14", "k15", "k16", "k17"}
	for iter := range 30 {
		dir := t.TempDir()
		opt := Options{UIDValidity: rng.Uint32N(1<<31) + 1, Fsync: formats.FsyncNever}
		if iter%2 == 0 {
			opt.Extensions = []ExtDef{ExtDefGUID}
		}
		if iter%3 == 0 {
			opt.LogRotateMinSize, opt.LogRotateMaxSize, opt.LogRotateMinAge = 1, 800, -1
			opt.RewriteMaxLogBytes = 300
		}
		ix, err := Create(dir, Prefix, opt)
		if err != nil {
			t.Fatal(err)
		}
		uid := uint32(0)
		var uids []uint32
		introduced := false
		for round := range 2 + rng.IntN(6) {
			tx := ix.Begin()
			for range rng.IntN(20) {
				uid += 1 + rng.Uint32N(3)
				uids = append(uids, uid)
				tx.Append(uid, uint8(rng.IntN(32)))
				var kws []string
				for _, k := range pool {
					if rng.IntN(5) == 0 {
						kws = append(kws, k)
					}
				}
				tx.UpdateKeywords(uid, KeywordsAdd, kws...)
			}
			if !introduced && round > 0 && rng.IntN(2) == 0 {
				// an extension after the keywords: its id counts them
				tx.ExtIntro(MaildirHdr{}.Ext())
				tx.ExtHdrUpdate(ExtMaildir, 0, MaildirHdr{NewMtime: uint32(1e9 + iter)}.Encode())
				introduced = true
			}
			for _, u := range uids {
				switch rng.IntN(8) {
				case 0:
					tx.UpdateFlags(u, uint8(rng.IntN(32)), uint8(rng.IntN(32)))
				case 1:
					tx.UpdateKeywords(u, KeywordModify(rng.IntN(3)), pool[rng.IntN(len(pool))])
				}
			}
			if len(uids) > 0 && rng.IntN(3) == 0 {
				i := rng.IntN(len(uids))
				tx2 := ix.Begin()
				tx2.Expunge(uids[i], [16]byte{})
				commit(t, tx)
				commit(t, tx2)
				uids = slices.Delete(uids, i, i+1)
				continue
			}
			commit(t, tx)
		}
		if introduced {
			// Dovecot's writer names an extension the map has by its
			// id (mail-index-transaction-export.c), which counts the
			// keywords extension registered before it.
			v, err := ix.View()
			if err != nil {
				t.Fatal(err)
			}
			id, d := -1, MaildirHdr{}.Ext()
			var resetID uint32
			for i, e := range v.Extensions() {
				if e.Name == ExtMaildir {
					id, resetID = i, e.ResetID
				}
			}
			w, err := log.OpenWriter(filepath.Join(dir, Prefix+".log"), log.WriterOptions{Fsync: formats.FsyncNever})
			if err != nil {
				t.Fatal(err)
			}
			_, err = w.Append([]log.Record{
				&log.ExtIntro{Hdr: log.Hdr{Flags: log.External}, ExtID: uint32(id), ResetID: resetID, HdrSize: d.HdrSize,
					RecordSize: d.RecordSize, RecordAlign: d.RecordAlign, IntroFlags: log.IntroNoShrink},
				&log.ExtHdrUpdate{Hdr: log.Hdr{Flags: log.External},
					Changes: []log.HdrChange{{Offset: 0, Data: MaildirHdr{NewMtime: 77}.Encode()}}},
			})
			if cerr := w.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		openBoth(t, fmt.Sprintf("iteration %d", iter), dir, Prefix)
	}
}
