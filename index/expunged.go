package index

import "errors"

// ExpungedGUIDs lists the expunges the transaction log still holds with
// their 128-bit message GUIDs, by UID (zero-GUID expunges are left out):
// what dsync looks up when the peer has a mail at a UID this side no
// longer has (dsync_mailbox_find_common_expunged_uid, dsync.md §2.8a).
// A log that no longer reaches back to the index's creation gives none,
// so a caller never takes "not in the log" for "never expunged".
func (ix *Index) ExpungedGUIDs() (map[uint32][16]byte, error) {
	changes, err := ix.Changes(0, nil)
	if errors.Is(err, ErrHistoryLost) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := map[uint32][16]byte{}
	for _, c := range changes {
		if c.Type == ChangeExpunge && c.GUID != [16]byte{} {
			out[c.UID] = c.GUID
		}
	}
	return out, nil
}

// ExpungedSince lists the changes of type ChangeExpunge the transaction
// log records after modseq, by UID, with the GUID and whether a client
// requested it (Change.Requested). A client's expunge (mail_expunge)
// logs a request, with the mail's GUID for maildir and mdbox but a zero
// one for sdbox, which the backend's sync then carries out [observed with
// doveadm dump, 2.3.19, the drivers' TestExpungedSinceDovecot]; a mail
// Dovecot drops because its file vanished (maildir) gets only the sync's
// record with a zero GUID (mail_index_expunge). Records of every writer
// count, boxsync's and dsync's included. It returns ErrHistoryLost when
// the log no longer reaches back to modseq, so "not in the log" is never
// taken for "never expunged".
func (ix *Index) ExpungedSince(modseq uint64) (map[uint32]Change, error) {
	changes, err := ix.Changes(modseq, &ChangesOptions{IncludeOwn: true})
	if err != nil {
		return nil, err
	}
	out := map[uint32]Change{}
	for _, c := range changes {
		if c.Type == ChangeExpunge {
			out[c.UID] = c
		}
	}
	return out, nil
}
