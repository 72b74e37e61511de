package maildir

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/boxsync/boxsync/formats"
)

// Maildir file names (dovecot-storage.md §6.2; dovecot 2.3.19.1
// maildir-filename.c, maildir-filename-flags.c):
//
//	<base>[,S=<size>][,W=<vsize>]...:2,<flags>
//
// Dovecot's "base name", the key of dovecot-uidlist and the default message
// GUID, is everything before the first ':' — the ,S= and ,W= fields
// included.
const (
	infoSep   = ':' // MAILDIR_INFO_SEP
	extraSep  = ',' // MAILDIR_EXTRA_SEP, MAILDIR_FLAGS_SEP
	flagsInfo = ":2,"

	firstKeyword = 'a' // MAILDIR_KEYWORD_FIRST
	maxKeywords  = 26  // MAILDIR_MAX_KEYWORDS: letters a..z
)

// fileName is a file name split at its first ':'. Base is the base name;
// Info is what follows the ':' ("2,FS"), HasInfo tells whether there was
// a ':' at all (Dovecot accepts names without one: no flags).
type fileName struct {
	Base    string
	Info    string
	HasInfo bool
}

func parseFileName(name string) fileName {
	if i := strings.IndexByte(name, infoSep); i >= 0 {
		return fileName{Base: name[:i], Info: name[i+1:], HasInfo: true}
	}
	return fileName{Base: name}
}

func (f fileName) String() string {
	if !f.HasInfo {
		return f.Base
	}
	return f.Base + string(infoSep) + f.Info
}

// baseOf returns the base name of a file name.
func baseOf(name string) string { return parseFileName(name).Base }

// flagLetter maps Dovecot's flag letters (maildir_filename_flags_get).
func flagLetter(c byte) formats.Flags {
	switch c {
	case 'D':
		return formats.FlagDraft
	case 'F':
		return formats.FlagFlagged
	case 'R':
		return formats.FlagAnswered
	case 'S':
		return formats.FlagSeen
	case 'T':
		return formats.FlagDeleted
	}
	return 0
}

// parseFlags returns the system flags and the keyword letters (bit n =
// letter 'a'+n) of a file name: as Dovecot does, the letters of the info
// after the *last* ':' if it starts with "2,", up to the next ','. Other
// letters are ignored, as Dovecot ignores them; setFlags keeps them. It
// takes a table's name bytes as they are (no string made per message).
func parseFlags[S ~string | ~[]byte](name S) (formats.Flags, uint32) {
	i := len(name) - 1
	for i >= 0 && name[i] != infoSep {
		i--
	}
	if i < 0 || len(name)-i < 3 || name[i+1] != '2' || name[i+2] != ',' {
		return 0, 0
	}
	var flags formats.Flags
	var kws uint32
	for j := i + 3; j < len(name) && name[j] != extraSep; j++ {
		c := name[j]
		if f := flagLetter(c); f != 0 {
			flags |= f
		} else if c >= firstKeyword && c < firstKeyword+maxKeywords {
			kws |= 1 << (c - firstKeyword)
		}
	}
	return flags, kws
}

// isKnownFlag tells whether c is a letter setFlags owns.
func isKnownFlag(c byte) bool {
	return flagLetter(c) != 0 || (c >= firstKeyword && c < firstKeyword+maxKeywords)
}

// setFlags returns name with its flags replaced by flags and the keyword
// letters kws, the way maildir_filename_flags_full_set does it: the name
// is cut at its last ':', the new letters are merged in ASCII order among
// the letters Dovecot does not know (which are kept, in place), and a
// further ",..." flag set is kept verbatim.
func setFlags(name string, flags formats.Flags, kws uint32) string {
	prefix, old := name, ""
	if i := strings.LastIndexByte(name, infoSep); i >= 0 {
		prefix = name[:i]
		if strings.HasPrefix(name[i+1:], "2,") {
			old = name[i+3:]
		}
	}
	var known []byte
	for _, c := range []byte("DFRST") {
		if flags&flagLetter(c) != 0 {
			known = append(known, c)
		}
	}
	for n := 0; n < maxKeywords; n++ {
		if kws&(1<<n) != 0 {
			known = append(known, byte(firstKeyword+n))
		}
	}
	var b strings.Builder
	b.Grow(len(prefix) + len(flagsInfo) + len(known) + len(old))
	b.WriteString(prefix)
	b.WriteString(flagsInfo)
	i := 0
	for ; i < len(old) && old[i] != extraSep; i++ {
		c := old[i]
		if isKnownFlag(c) {
			continue
		}
		for len(known) > 0 && known[0] < c {
			b.WriteByte(known[0])
			known = known[1:]
		}
		b.WriteByte(c)
	}
	b.Write(known)
	b.WriteString(old[i:])
	return b.String()
}

// extraSize returns the value of a ",<key>=<digits>" field of a base name
// (maildir_filename_get_size): the first ",S=" found must be followed by
// digits and then ',', ':' or the end.
func extraSize(base string, key byte) (int64, bool) {
	pat := string([]byte{extraSep, key, '='})
	i := strings.Index(base, pat)
	if i < 0 {
		return 0, false
	}
	p := base[i+3:]
	j := 0
	for j < len(p) && p[j] >= '0' && p[j] <= '9' {
		j++
	}
	if j < len(p) && p[j] != extraSep && p[j] != infoSep {
		return 0, false
	}
	if j == 0 {
		return 0, true // Dovecot reads ",S=" followed by nothing as 0
	}
	n, err := strconv.ParseInt(p[:j], 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// sortCmp orders new files for UID assignment as Dovecot does
// (maildir_filename_sort_cmp): by the leading decimal seconds, then by the
// microseconds after ".M" in the second field when both names have them,
// then by the rest of the base name.
func sortCmp(a, b string) int {
	sa, ra := leadingSecs(a)
	sb, rb := leadingSecs(b)
	if sa != sb {
		if sa < sb {
			return -1
		}
		return 1
	}
	ua, oka := usecs(ra)
	ub, okb := usecs(rb)
	if oka && okb && ua != ub {
		if ua < ub {
			return -1
		}
		return 1
	}
	return strings.Compare(baseOf(ra), baseOf(rb))
}

func leadingSecs(s string) (uint64, string) {
	var n uint64
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		n = n*10 + uint64(s[i]-'0')
		i++
	}
	return n, s[i:]
}

// usecs finds "M<digits>" in ".<uniqueness>." (maildir_fname_get_usecs).
func usecs(s string) (uint64, bool) {
	if len(s) == 0 || s[0] != '.' {
		return 0, false
	}
	for i := 1; i < len(s) && s[i] != '.' && s[i] != infoSep; i++ {
		if s[i] == 'M' {
			var n uint64
			for i++; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
				n = n*10 + uint64(s[i]-'0')
			}
			return n, true
		}
	}
	return 0, false
}

// Base-name generation (maildir_filename_generate): secs + usecs make the
// name unique within the process; the last value is remembered so that
// two names in the same microsecond differ.
var (
	genMu   sync.Mutex
	genLast time.Time
	genHost = escapeHost(hostname())
)

func hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

// escapeHost escapes the characters a maildir name cannot hold, as the
// Maildir specification says ('/' → \057, ':' → \072); ',' → \054 too,
// since Dovecot reads ",S=" fields from the base name.
func escapeHost(h string) string {
	r := strings.NewReplacer("/", `\057`, ":", `\072`, ",", `\054`)
	return r.Replace(h)
}

// genPID is the process id in new names (os.Getpid is a system call
// each time).
var genPID = strconv.Itoa(os.Getpid())

// newBaseName returns <secs>.M<usecs>P<pid>.<host>.
func newBaseName() string {
	genMu.Lock()
	now := time.Now().Truncate(time.Microsecond)
	if !now.After(genLast) {
		now = genLast.Add(time.Microsecond)
	}
	genLast = now
	genMu.Unlock()
	var b strings.Builder
	b.Grow(48)
	b.WriteString(strconv.FormatInt(now.Unix(), 10))
	b.WriteString(".M")
	b.WriteString(strconv.Itoa(now.Nanosecond() / 1000))
	b.WriteByte('P')
	b.WriteString(genPID)
	b.WriteByte('.')
	b.WriteString(genHost)
	return b.String()
}

// validBaseName tells whether s can be used as a file's base name: the
// rules of Dovecot's scanner (no '/', no ':', no CR or LF, not starting
// with '.') plus no NUL and a length that leaves room for the flags.
func validBaseName(s string) bool {
	if s == "" || len(s) > 200 || s[0] == '.' {
		return false
	}
	return !strings.ContainsAny(s, "/:\r\n\x00")
}
