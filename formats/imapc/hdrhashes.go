package imapc

import (
	"context"
	"io"
	"strings"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/imapc/hdrhash"
)

// HdrHashes returns dsync's hdr_hash (version 3, package hdrhash) of every
// message with UID >= from, computed from BODY.PEEK[HEADER.FIELDS (...)]
// as Dovecot's imapc does (imapc-mail.c gets the header stream of the
// hashed headers from the server), so no body is downloaded. headers nil
// means hdrhash.DefaultHeaders. The result equals hdrhash.V3 over the
// message Body yields: the server's header-field selection is the same
// filter, and its CRLF and NUL→0x80 rewriting is what the hash ignores.
func (mb *Mailbox) HdrHashes(ctx context.Context, from formats.UID, headers []string) (map[formats.UID]string, error) {
	if headers == nil {
		headers = hdrhash.DefaultHeaders
	}
	for _, h := range headers {
		if !validKeyword(h) || strings.ContainsAny(h, "[") {
			return nil, formats.Errorf(formats.KindParams, "imapc: header name %q cannot be sent over IMAP", h)
		}
	}
	section := "BODY.PEEK[HEADER.FIELDS (" + strings.Join(headers, " ") + ")]"
	uids, err := mb.searchUIDs(ctx, from)
	if err != nil {
		return nil, err
	}
	out := make(map[formats.UID]string, len(uids))
	for len(uids) > 0 {
		n := min(len(uids), fetchChunk*fetchPipeline)
		batch := uids[:n]
		uids = uids[n:]
		err := mb.do(ctx, false, true, func(c *conn) error {
			c.r.body = func(fd *fetchData, _ string, r io.Reader, _ int64) error {
				if fd.uid == 0 {
					return nil
				}
				h, err := hdrhash.V3(r, headers)
				if err != nil {
					return err
				}
				out[formats.UID(fd.uid)] = h
				return nil
			}
			defer func() { c.r.body = nil }()
			var tags []string
			for i := 0; i < len(batch); i += fetchChunk {
				part := batch[i:min(i+fetchChunk, len(batch))]
				tags = append(tags, c.send("UID FETCH "+uidSet(part)+" (UID "+section+")"))
			}
			return c.wait(ctx, tags, nil)
		})
		if err != nil {
			return nil, mb.wrap(err, "fetch header hashes", 0)
		}
	}
	return out, nil
}
