package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/boxsync/boxsync/formats"
)

// Option values are checked as doveadm checks them while parsing
// (dovecot 2.3.19 doveadm-dsync.c cmd_dsync_preinit), with its messages,
// even for options boxsync does not implement yet: a script with a typo
// gets the error doveadm would give.

// parseUint is Dovecot's str_to_uint: decimal digits only.
func parseUint(s string) (uint, bool) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, false
	}
	return uint(n), true
}

// validGUID is guid_128_from_string and !guid_128_is_empty.
func validGUID(s string) bool {
	g, err := formats.ParseGUID(strings.ToLower(s))
	return err == nil && !g.IsZero()
}

// checkSyncFlag checks an -O value: one flag, optionally negated with
// '-'; a '\'-flag must be a system flag.
func checkSyncFlag(s string) error {
	if strings.Contains(s, " ") {
		return fatalf("-O parameter doesn't support multiple flags currently")
	}
	f := strings.TrimPrefix(s, "-")
	if strings.HasPrefix(f, `\`) {
		if fl, ok := formats.ParseFlag(f); !ok || fl == formats.FlagRecent {
			return fatalf("Invalid system flag given for -O parameter: '%s'", f)
		}
	}
	return nil
}

// parseSize is Dovecot's settings_get_size: a number with an optional
// B/k/M/G/T suffix (binary multiples; "kB", "KiB" also accepted). The
// error is 2.3.19's [observed].
func parseSize(s string) (uint64, error) {
	invalid := fmt.Errorf("Invalid size: %s", s)
	i := len(s) - len(strings.TrimLeft(s, "0123456789"))
	if i == 0 {
		return 0, invalid
	}
	n, err := strconv.ParseUint(s[:i], 10, 64)
	if err != nil {
		return 0, invalid
	}
	unit := strings.TrimLeft(s[i:], " ")
	var mult uint64 = 1
	if unit != "" {
		switch unit[0] | 0x20 {
		case 'b':
			unit = unit[1:]
		case 'k', 'm', 'g', 't':
			mult = 1 << (10 * (1 + strings.IndexByte("kmgt", unit[0]|0x20)))
			unit = unit[1:]
			if unit != "" && unit[0]|0x20 == 'i' {
				unit = unit[1:]
			}
			if unit != "" && unit[0]|0x20 == 'b' {
				unit = unit[1:]
			}
		}
	}
	if unit != "" || n > ^uint64(0)/mult {
		return 0, invalid
	}
	return n * mult, nil
}

var months = []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}

// parseHumanTimestamp is Dovecot's mail_parse_human_timestamp: YYYY-MM-DD
// (local time), an IMAP date (1-Jan-2024, local time), a UNIX timestamp,
// or an interval counted back from now ("30d", "2 weeks").
func parseHumanTimestamp(s string, now time.Time) (time.Time, bool) {
	if len(s) == 10 && s[4] == '-' && s[7] == '-' {
		if t, err := time.ParseInLocation("2006-01-02", s, time.Local); err == nil {
			return t, true
		}
	}
	if day, rest, ok := strings.Cut(s, "-"); ok && len(day) >= 1 && len(day) <= 2 {
		if mon, year, ok := strings.Cut(rest, "-"); ok && len(mon) == 3 && len(year) == 4 {
			d, derr := parseUint(day)
			y, yerr := parseUint(year)
			for i, m := range months {
				if strings.EqualFold(m, mon) && derr && yerr && d >= 1 && d <= 31 {
					t := time.Date(int(y), time.Month(i+1), int(d), 0, 0, 0, 0, time.Local)
					if t.Day() == int(d) {
						return t, true
					}
				}
			}
		}
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
		return time.Unix(n, 0), true
	}
	if d, ok := parseInterval(s); ok {
		return now.Add(-d), true
	}
	return time.Time{}, false
}

// parseInterval is Dovecot's settings_get_time: a number and a unit that
// is a prefix of secs/seconds, mins/minutes, hours, days or weeks.
func parseInterval(s string) (time.Duration, bool) {
	i := len(s) - len(strings.TrimLeft(s, "0123456789"))
	if i == 0 {
		return 0, false
	}
	n, err := strconv.ParseUint(s[:i], 10, 32)
	if err != nil {
		return 0, false
	}
	unit := strings.ToLower(strings.TrimLeft(s[i:], " "))
	units := []struct {
		d     time.Duration
		names []string
	}{
		{time.Second, []string{"secs", "seconds"}},
		{time.Minute, []string{"mins", "minutes"}},
		{time.Hour, []string{"hours"}},
		{24 * time.Hour, []string{"days"}},
		{7 * 24 * time.Hour, []string{"weeks"}},
	}
	if unit == "" {
		return time.Duration(n) * time.Second, true
	}
	for _, u := range units {
		for _, name := range u.names {
			if strings.HasPrefix(name, unit) {
				return time.Duration(n) * u.d, true
			}
		}
	}
	return 0, false
}

// isSpecialUse tells whether a -m/-x value names a SPECIAL-USE flag
// (\Sent), which boxsync's stores don't record yet.
func isSpecialUse(s string) bool { return strings.HasPrefix(s, `\`) }
