package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/boxsync/boxsync/formats"
)

func TestExitCode(t *testing.T) {
	kind := func(k formats.Kind) error { return formats.Errorf(k, "test") }
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 0},
		{"KindTemp", kind(formats.KindTemp), 75},
		{"KindUnavailable", kind(formats.KindUnavailable), 75},
		{"KindNotPossible", kind(formats.KindNotPossible), 65},
		{"KindParams", kind(formats.KindParams), 64},
		{"KindPerm", kind(formats.KindPerm), 77},
		{"KindNoQuota", kind(formats.KindNoQuota), 73},
		{"KindNotFound", kind(formats.KindNotFound), 68},
		{"KindExists", kind(formats.KindExists), 65},
		{"KindExpunged", kind(formats.KindExpunged), 75},
		{"KindInUse", kind(formats.KindInUse), 65},
		{"KindConversion", kind(formats.KindConversion), 65},
		{"KindInvalidData", kind(formats.KindInvalidData), 65},
		{"KindLimit", kind(formats.KindLimit), 65},
		{"KindConfig", kind(formats.KindConfig), 78},
		{"unknown kind", kind(formats.Kind(99)), 75},
		{"unclassified", errors.New("boom"), 75},
		{"io error", io.ErrUnexpectedEOF, 75},
		{"wrapped kind", fmt.Errorf("mailbox x: %w", kind(formats.KindNotFound)), 68},
		{"sentinel", fmt.Errorf("x: %w", formats.ErrPerm), 77},
		{"outer kind wins", &formats.Error{Kind: formats.KindConfig, Err: kind(formats.KindParams)}, 78},
		{"joined: first kind", errors.Join(kind(formats.KindNoQuota), kind(formats.KindPerm)), 73},
		{"usage", &usageError{msg: "x"}, 64},
		{"not implemented", notImplemented("-s"), 64},
		{"fatal option", fatalf("Invalid -g parameter: 1"), 75},
		{"no user", &noUserError{user: "x"}, 67},
		{"canceled", context.Canceled, 130},
		{"wrapped canceled", formats.Wrap(context.Canceled, formats.KindTemp, "save", "INBOX", 1, ""), 130},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := exitCode(tc.err); got != tc.want {
				t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	const desync = -1 // a step that reports a desync instead of an error
	tests := []struct {
		name  string
		codes []int // in order; desync = status.desync()
		want  int
	}{
		{"nothing", nil, 0},
		{"successes", []int{0, 0}, 0},
		{"first error wins", []int{68, 65, 77}, 68},
		{"first error wins over later success", []int{78, 0}, 78},
		{"75 overrides earlier", []int{68, 75}, 75},
		{"75 overrides later", []int{75, 68, 65}, 75},
		{"desync alone", []int{desync}, 2},
		{"desync then failure", []int{desync, 68}, 68},
		{"failure then desync", []int{77, desync}, 77},
		{"desync twice", []int{desync, desync}, 2},
		{"interrupt overrides 75", []int{75, 130}, 130},
		{"interrupt is final", []int{130, 75, 68}, 130},
		{"usage then tempfail", []int{64, 75}, 75},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s status
			for _, c := range tc.codes {
				if c == desync {
					s.desync()
				} else {
					s.set(c)
				}
			}
			if s.code != tc.want {
				t.Errorf("status after %v = %d, want %d", tc.codes, s.code, tc.want)
			}
		})
	}
}

func TestStatusFail(t *testing.T) {
	var s status
	s.fail(nil)
	s.fail(formats.Errorf(formats.KindNotFound, "first"))
	s.fail(formats.Errorf(formats.KindPerm, "second"))
	if s.code != 68 {
		t.Fatalf("status = %d, want 68 (first error wins)", s.code)
	}
	s.fail(errors.New("unclassified"))
	if s.code != 75 {
		t.Fatalf("status = %d, want 75 (tempfail overrides)", s.code)
	}
}
