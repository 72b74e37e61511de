# boxsync — see README.md. Every target works from a clean checkout on
# Debian with Go 1.26; `make test` needs Dovecot (dovecot-core,
# dovecot-imapd) for the interop tests, which never skip when CI=true.

GO      ?= go
BIN     := bin/boxsync
FUZZTIME ?= 20s

.PHONY: all build test test-short demo bench fuzz vet fmt clean

all: build

# A static binary without urfave/cli's doc generators: less memory (see
# internal/build, which the tests and the bench build with; TestMakefile
# keeps this line the same). Users and groups that NSS serves beyond
# /etc/passwd and /etc/group come from getent (internal/userdb).
build:
	CGO_ENABLED=0 $(GO) build -tags urfave_cli_no_docs -o $(BIN) ./cmd/boxsync

# The whole suite: unit, conformance, property and Dovecot interop tests.
test: vet
	$(GO) test -count=1 -timeout 20m ./...

# Without the slow interop tier (for a quick edit-test loop).
test-short:
	$(GO) test -short ./...

vet:
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi

# Back up the shipped sample Maildir into a new Maildir and show both
# sides; with Dovecot installed, Dovecot itself checks the copy.
demo: build
	./fixtures/demo.sh $(BIN)

# Side by side with doveadm on the generated medium corpus (~5,000
# messages, ~250 MB): wall time (median of alternating runs), peak RSS, ratio.
# BENCH_CASE=maildir-mdbox|maildir-sdbox|mdbox-maildir|maildir-mbox|all;
# two-way sync: BENCH_CASE=sync-1pct (1 % new mail), sync-nochange,
# sync-stateful (sync -s of an unchanged pair);
# BENCH_FLAGS=-fsync never compares with fsync off (and with cp -a).
BENCH_CASE ?= maildir-maildir
BENCH_FLAGS ?=
bench: build
	$(GO) run ./fixtures/cmd/bench -boxsync $(BIN) -size medium -runs 5 -case $(BENCH_CASE) $(BENCH_FLAGS)

# Each fuzz target for FUZZTIME.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

clean:
	rm -rf bin
