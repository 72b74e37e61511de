package main

import (
	"testing"
	"time"
)

func TestParseHumanTimestamp(t *testing.T) {
	now := time.Date(2024, 6, 15, 12, 0, 0, 0, time.Local)
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"2024-01-31", time.Date(2024, 1, 31, 0, 0, 0, 0, time.Local), true},
		{"1-Jan-2024", time.Date(2024, 1, 1, 0, 0, 0, 0, time.Local), true},
		{"15-dec-2023", time.Date(2023, 12, 15, 0, 0, 0, 0, time.Local), true},
		{"1700000000", time.Unix(1700000000, 0), true},
		{"0", time.Unix(0, 0), true},
		{"30d", now.Add(-30 * 24 * time.Hour), true},
		{"2 weeks", now.Add(-14 * 24 * time.Hour), true},
		{"3 hours", now.Add(-3 * time.Hour), true},
		{"90 mins", now.Add(-90 * time.Minute), true},
		{"10s", now.Add(-10 * time.Second), true},
		{"1 sec", now.Add(-time.Second), true},
		{"", time.Time{}, false},
		{"yesterday", time.Time{}, false},
		{"2024-13-01", time.Time{}, false},
		{"31-Feb-2024", time.Time{}, false},
		{"1-Foo-2024", time.Time{}, false},
		{"30 fortnights", time.Time{}, false},
		{"-5", time.Time{}, false},
	}
	for _, tc := range tests {
		got, ok := parseHumanTimestamp(tc.in, now)
		if ok != tc.ok || !got.Equal(tc.want) {
			t.Errorf("parseHumanTimestamp(%q) = %v, %v, want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"0", 0, true},
		{"100", 100, true},
		{"100B", 100, true},
		{"10k", 10 << 10, true},
		{"10 kB", 10 << 10, true},
		{"10KiB", 10 << 10, true},
		{"10M", 10 << 20, true},
		{"2G", 2 << 30, true},
		{"1T", 1 << 40, true},
		{"", 0, false},
		{"M", 0, false},
		{"10Q", 0, false},
		{"10MBs", 0, false},
		{"99999999999999999999", 0, false},
		{"99999999999T", 0, false},
	}
	for _, tc := range tests {
		got, err := parseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v, want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestSmallParsers(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint
		ok   bool
	}{{"0", 0, true}, {"30", 30, true}, {"", 0, false}, {"-1", 0, false}, {"1m", 0, false}, {" 1", 0, false}, {"99999999999", 0, false}} {
		if got, ok := parseUint(tc.in); got != tc.want || ok != tc.ok {
			t.Errorf("parseUint(%q) = %d, %v, want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
	for _, tc := range []struct {
		in string
		ok bool
	}{{validGUIDArg, true}, {"0123456789ABCDEF0123456789ABCDEF", true}, {"00000000000000000000000000000000", false}, {"1234", false}, {"", false}} {
		if got := validGUID(tc.in); got != tc.ok {
			t.Errorf("validGUID(%q) = %v, want %v", tc.in, got, tc.ok)
		}
	}
	for _, tc := range []struct {
		in string
		ok bool
	}{{`\Seen`, true}, {`-\Flagged`, true}, {"$Junk", true}, {"-NonJunk", true}, {`\Recent`, false}, {`\Bogus`, false}, {"a b", false}} {
		if err := checkSyncFlag(tc.in); (err == nil) != tc.ok {
			t.Errorf("checkSyncFlag(%q) = %v, want ok %v", tc.in, err, tc.ok)
		}
	}
}
