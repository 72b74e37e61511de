package dbox

import (
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
)

// GUID128 returns the 128-bit form of a message GUID as Dovecot computes
// it for EXPUNGE_GUID records and the mdbox "guid" extension (dovecot
// 2.3.19.1 mail.c mail_generate_guid_128_hash): 32 hex digits of either
// case are decoded; any other string is hashed with SHA-1 and the last 16
// bytes of the digest are used.
func GUID128(guid string) [16]byte {
	var g [16]byte
	if len(guid) == 32 {
		if _, err := hex.Decode(g[:], []byte(guid)); err == nil {
			return g
		}
	}
	sum := sha1.Sum([]byte(guid))
	copy(g[:], sum[len(sum)-16:])
	return g
}

// NewGUID returns a new random message GUID as 32 lowercase hex digits,
// the form Dovecot's guid_128_generate gives (its layout differs: a
// timestamp, pid and host hash; nothing depends on it).
func NewGUID() string {
	var g [16]byte
	if _, err := rand.Read(g[:]); err != nil {
		panic("dbox: crypto/rand: " + err.Error())
	}
	return hex.EncodeToString(g[:])
}
