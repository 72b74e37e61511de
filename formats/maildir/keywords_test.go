package maildir

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/index"
)

func TestParseKeywords(t *testing.T) {
	tests := []struct {
		name, data string
		want       keywordList
	}{
		{"a4", "0 $Label1\n1 Junk\n", keywordList{0: "$Label1", 1: "Junk"}},
		{"gaps", "3 d\n25 last\n", keywordList{3: "d", 25: "last"}},
		// Skipped like Dovecot skips them: no space (a .customflags
		// header), index too large or not a number, empty name, a name
		// already seen (case-insensitively).
		{"junk", "customflags\n26 x\n-1 y\nq z\n2 \n0 Junk\n1 junk\n4 two words\n", keywordList{0: "Junk", 4: "two words"}},
		{"no final newline", "0 a", keywordList{0: "a"}},
		{"empty", "", keywordList{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseKeywords([]byte(tc.data)); got != tc.want {
				t.Errorf("parseKeywords(%q) = %q, want %q", tc.data, got, tc.want)
			}
		})
	}
	kw := keywordList{0: "$Label1", 1: "Junk"}
	if got := string(formatKeywords(&kw)); got != "0 $Label1\n1 Junk\n" {
		t.Errorf("formatKeywords = %q", got)
	}
	if i := kw.lookup("junk"); i != 1 {
		t.Errorf("lookup(junk) = %d, want 1 (case-insensitive like Dovecot)", i)
	}
	if got := kw.unknownKeyword(5); got != "unknown-5" {
		t.Errorf("unknownKeyword(5) = %q", got)
	}
	kw[3] = "Unknown-5"
	if got := kw.unknownKeyword(5); got != "unknown-5?" {
		t.Errorf("unknownKeyword(5) with the name taken = %q, want unknown-5?", got)
	}
}

// FuzzParseKeywords: parsing never panics, and a parsed list written back
// parses to itself.
func FuzzParseKeywords(f *testing.F) {
	f.Add([]byte("0 $Label1\n1 Junk\n"))
	f.Add([]byte("customflags\n26 x\n2 \n0 Junk\n1 junk\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		kw := parseKeywords(data)
		if again := parseKeywords(formatKeywords(&kw)); again != kw {
			t.Fatalf("parseKeywords(formatKeywords(%q)) = %q", kw, again)
		}
	})
}

// kwNamesN returns "<prefix>00" … for n keywords.
func kwNamesN(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%02d", prefix, i)
	}
	return out
}

// TestKeywordsBeyondLetters: keywords that find no free letter (all 26
// taken) are kept in the index only, as Dovecot keeps them, and read back
// from it, after Save and after SetFlags, by a new store too; the file
// names carry the letters of those that fit and dovecot-keywords names
// exactly 26.
func TestKeywordsBeyondLetters(t *testing.T) {
	ctx := context.Background()
	root := filepath.Join(t.TempDir(), "Maildir")
	_, mb := newInbox(t, formats.Location{Path: root})
	thirty := kwNamesN("kw", 30)
	tx, _ := mb.Begin(ctx)
	save(t, tx, formats.Message{Flags: formats.FlagSeen, Keywords: thirty}, "thirty")
	save(t, tx, formats.Message{Keywords: []string{"KW28", "kw03", "new01"}}, "three")
	save(t, tx, formats.Message{}, "none")
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[formats.UID][]string{
		1: thirty,
		2: {"KW28", "kw03", "new01"},
		3: nil,
	}
	check := func(step string, mb formats.Mailbox) {
		t.Helper()
		msgs := list(t, mb)
		if len(msgs) != len(want) {
			t.Fatalf("%s: %d messages, want %d", step, len(msgs), len(want))
		}
		for _, m := range msgs {
			// The index keeps the first spelling it saw of a name
			// (case-insensitively): compare lowercased.
			if g, w := lowerAll(m.Keywords), lowerAll(want[m.UID]); !slices.Equal(g, w) {
				t.Errorf("%s: uid %d keywords = %q, want %q", step, m.UID, g, w)
			}
		}
	}
	check("after save", mb)
	data, err := os.ReadFile(filepath.Join(root, keywordsName))
	if err != nil {
		t.Fatal(err)
	}
	if kw := parseKeywords(data); !kw.full() || kw.lookup("kw26") >= 0 || kw.lookup("new01") >= 0 {
		t.Errorf("dovecot-keywords = %q, want kw00..kw25", data)
	}
	for _, n := range dirNames(t, filepath.Join(root, "cur")) {
		if _, kws := parseFlags(n); strings.Contains(n, "S=6,") && kws != 1<<26-1 {
			t.Errorf("file %q: keyword letters %b, want all 26", n, kws)
		}
	}

	// SetFlags replaces index-only keywords too: drop two, add two.
	tx, _ = mb.Begin(ctx)
	want[1] = append(slices.DeleteFunc(slices.Clone(thirty), func(k string) bool { return k == "kw27" || k == "kw05" }), "later", "kw29")
	want[3] = []string{"only-in-index", "kw00"}
	for _, uid := range []formats.UID{1, 3} {
		if err := tx.SetFlags(uid, 0, want[uid]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	check("after SetFlags", mb)
	check("new store", openBox(t, openStore(t, formats.Location{Path: root}, formats.OpenOptions{}), "INBOX"))
}

func lowerAll(kws []string) []string {
	var out []string
	for _, k := range kws {
		out = append(out, asciiLower(k))
	}
	return formats.NormalizeKeywords(out)
}

// TestKeywordsBeyondLettersWithoutIndex: with no index to keep them in
// (INDEX=MEMORY, or an index we may not extend), keywords beyond the 26
// letters are refused, never dropped.
func TestKeywordsBeyondLettersWithoutIndex(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		loc  func(root string) formats.Location
		// stale makes the mailbox's index unusable before the commit.
		stale bool
	}{
		{"INDEX=MEMORY", func(root string) formats.Location { return formats.Location{Path: root, Index: "MEMORY"} }, false},
		{"stale index", func(root string) formats.Location { return formats.Location{Path: root} }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "Maildir")
			_, mb := newInbox(t, tc.loc(root))
			tx, _ := mb.Begin(ctx)
			save(t, tx, formats.Message{Keywords: kwNamesN("kw", 26)}, "26 keywords fit")
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if tc.stale {
				// An index of another UIDVALIDITY: Dovecot would
				// reset it; we must not extend it.
				for _, f := range []string{"dovecot.index", "dovecot.index.log"} {
					os.Remove(filepath.Join(root, f))
				}
				if _, err := index.Create(root, index.Prefix, index.Options{UIDValidity: 7}); err != nil {
					t.Fatal(err)
				}
			}
			tx, _ = mb.Begin(ctx)
			defer tx.Rollback()
			_, err := tx.Save(ctx, formats.Message{Keywords: []string{"one-too-many"}}, strings.NewReader("x"))
			if !tc.stale {
				if formats.KindOf(err) != formats.KindNotPossible || !strings.Contains(err.Error(), "one-too-many") {
					t.Errorf("Save(27th keyword) = %v, want NotPossible naming it", err)
				}
				if err := tx.SetFlags(1, 0, []string{"extra"}); formats.KindOf(err) != formats.KindNotPossible {
					t.Errorf("SetFlags(27th keyword) = %v, want NotPossible", err)
				}
				// Keywords match dovecot-keywords case-insensitively;
				// the file's spelling wins.
				if err := tx.SetFlags(1, 0, []string{"KW00", "kw25"}); err != nil {
					t.Errorf("SetFlags with known keywords (any case) = %v", err)
				}
				if err := tx.Commit(ctx); err != nil {
					t.Fatal(err)
				}
				if msgs := list(t, mb); len(msgs) != 1 || fmt.Sprint(msgs[0].Keywords) != "[kw00 kw25]" {
					t.Errorf("messages = %+v", msgs)
				}
				return
			}
			if err != nil {
				t.Fatalf("Save = %v", err)
			}
			if err := tx.SetFlags(1, 0, []string{"extra"}); err != nil {
				t.Fatalf("SetFlags = %v", err)
			}
			err = tx.Commit(ctx)
			if formats.KindOf(err) != formats.KindNotPossible || !strings.Contains(err.Error(), "one-too-many") {
				t.Errorf("Commit(27th keyword, stale index) = %v, want NotPossible naming it", err)
			}
			msgs := list(t, mb)
			if len(msgs) != 1 || len(msgs[0].Keywords) != 26 {
				t.Errorf("after the failed commit: %+v", msgs)
			}
			if got := dirNames(t, filepath.Join(root, "tmp")); len(got) != 0 {
				t.Errorf("tmp/ = %q after the failed commit", got)
			}
		})
	}
}
