package dbox

import (
	"crypto/rand"
	"encoding/hex"

	"github.com/boxsync/boxsync/formats"
)

// GUID128 returns the 128-bit form of a message GUID as Dovecot computes
// it for EXPUNGE_GUID records and the mdbox "guid" extension
// (formats.MessageGUID128).
func GUID128(guid string) [16]byte { return formats.MessageGUID128(guid) }

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
