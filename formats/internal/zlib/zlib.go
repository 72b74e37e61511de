package zlib

import (
	"bufio"
	"compress/bzip2"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/boxsync/boxsync/formats"
)

// Format is a compression format, named as Dovecot names its handlers.
type Format int

const (
	None  Format = iota // not compressed
	Gzip                // "gz"
	Bzip2               // "bz2"
	XZ                  // "xz": detected, not decoded
	LZ4                 // "lz4": Dovecot's framing
	Zstd                // "zstd"
)

// dovecot 2.3.19.1 compression.c: compression_handlers[], in detection
// order.
var handlers = []struct {
	f    Format
	name string
	ext  string
}{
	{Gzip, "gz", ".gz"},
	{Bzip2, "bz2", ".bz2"},
	{XZ, "xz", ".xz"},
	{LZ4, "lz4", ".lz4"},
	{Zstd, "zstd", ".zstd"},
}

func (f Format) String() string {
	for _, x := range handlers {
		if x.f == f {
			return x.name
		}
	}
	if f == None {
		return "none"
	}
	return "format(" + strconv.Itoa(int(f)) + ")"
}

// Ext is the file name extension Dovecot gives the format (".zstd", not
// zstd's own ".zst"), "" for None.
func (f Format) Ext() string {
	for _, x := range handlers {
		if x.f == f {
			return x.ext
		}
	}
	return ""
}

// ParseFormat parses a Dovecot handler name (zlib_save): "gz", "bz2",
// "xz", "lz4", "zstd"; "gzip", "bzip2" and "zst" are accepted as aliases.
// "" is None.
func ParseFormat(name string) (Format, error) {
	switch strings.ToLower(name) {
	case "":
		return None, nil
	case "gz", "gzip":
		return Gzip, nil
	case "bz2", "bzip2":
		return Bzip2, nil
	case "xz":
		return XZ, nil
	case "lz4":
		return LZ4, nil
	case "zstd", "zst":
		return Zstd, nil
	}
	return None, formats.Errorf(formats.KindConfig, "unknown compression %q (want gz, bz2, xz, lz4 or zstd)", name)
}

// FromExt returns the format a file name's extension names (Dovecot's
// compression_lookup_handler_from_ext, plus zstd's own ".zst"), or None.
func FromExt(name string) Format {
	for _, x := range handlers {
		if len(name) > len(x.ext) && strings.HasSuffix(name, x.ext) {
			return x.f
		}
	}
	if len(name) > 4 && strings.HasSuffix(name, ".zst") {
		return Zstd
	}
	return None
}

// lz4Magic starts Dovecot's lz4 streams (iostream-lz4.h IOSTREAM_LZ4_MAGIC).
const lz4Magic = "Dovecot-LZ4\x0d\x2a\x9b\xc5"

// MagicLen is how many leading bytes Detect needs to recognise every format.
const MagicLen = len(lz4Magic)

// Detect returns the format whose magic p starts with, or None. p may be
// shorter than MagicLen (a short message): formats whose magic does not
// fit are not matched, as in Dovecot.
func Detect(p []byte) Format {
	switch {
	case len(p) >= 2 && p[0] == 0x1f && p[1] == 0x8b:
		return Gzip
	case len(p) >= 4 && string(p[:3]) == "BZh" && p[3] >= '1' && p[3] <= '9':
		return Bzip2
	case len(p) >= 6 && string(p[:6]) == "\xfd\x37\x7a\x58\x5a\x00":
		return XZ
	case len(p) >= len(lz4Magic) && string(p[:len(lz4Magic)]) == lz4Magic:
		return LZ4
	case len(p) >= 4 && binary.LittleEndian.Uint32(p) == 0xFD2FB528:
		return Zstd
	}
	return None
}

// NewReader detects the compression of r by its first bytes and returns a
// reader of the decompressed bytes and the format found. Uncompressed
// input is returned unchanged (Format None). Close releases the
// decompressor; it does not close r.
func NewReader(r io.Reader) (io.ReadCloser, Format, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(MagicLen)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, None, fmt.Errorf("zlib: %w", err)
	}
	f := Detect(head)
	if f == None {
		return io.NopCloser(br), None, nil
	}
	rc, err := Decompress(br, f)
	return rc, f, err
}

// Decompress returns a reader of r decompressed as f (None passes r
// through). Close releases the decompressor, not r.
func Decompress(r io.Reader, f Format) (io.ReadCloser, error) {
	switch f {
	case None:
		return io.NopCloser(r), nil
	case Gzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, corrupt(f, err)
		}
		return &errReader{r: zr, f: f, close: zr.Close}, nil
	case Bzip2:
		return &errReader{r: bzip2.NewReader(r), f: f}, nil
	case Zstd:
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, corrupt(f, err)
		}
		return &errReader{r: zr, f: f, close: func() error { zr.Close(); return nil }}, nil
	case LZ4:
		return &errReader{r: newLZ4Reader(r), f: f}, nil
	case XZ:
		return nil, formats.Errorf(formats.KindNotPossible, "zlib: xz-compressed data can't be read (no xz decoder)")
	}
	return nil, formats.Errorf(formats.KindParams, "zlib: unknown format %d", int(f))
}

// errReader classifies decompression errors as corrupt data.
type errReader struct {
	r     io.Reader
	f     Format
	close func() error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		err = corrupt(e.f, err)
	}
	return n, err
}

func (e *errReader) Close() error {
	if e.close == nil {
		return nil
	}
	c := e.close
	e.close = nil
	return c()
}

func corrupt(f Format, err error) error {
	var fe *formats.Error
	if errors.As(err, &fe) {
		return err
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return &formats.Error{Kind: formats.KindInvalidData, Op: "zlib", Err: fmt.Errorf("%s: truncated compressed data: %w", f, err)}
	}
	return &formats.Error{Kind: formats.KindInvalidData, Op: "zlib", Err: fmt.Errorf("%s: corrupt compressed data: %w", f, err)}
}

// Levels returns the minimum, default and maximum level Dovecot allows
// for f (compression_get_*_level_*); ok is false when boxsync cannot
// write f.
func (f Format) Levels() (lo, def, hi int, ok bool) {
	switch f {
	case Gzip:
		return 0, -1, 9, true
	case Zstd:
		return 1, 3, 22, true
	}
	return 0, 0, 0, false
}

// NewWriter returns a writer that compresses into w as f at level (the
// format's default when level is DefaultLevel). Close flushes the
// compressed stream's end; it does not close w.
func NewWriter(w io.Writer, f Format, level int) (io.WriteCloser, error) {
	lo, def, hi, ok := f.Levels()
	if !ok {
		if f == None {
			return nopWriteCloser{w}, nil
		}
		return nil, formats.Errorf(formats.KindNotPossible, "zlib: can't write %s (boxsync writes gz and zstd)", f)
	}
	if level == DefaultLevel {
		level = def
	}
	if level != def && (level < lo || level > hi) {
		return nil, formats.Errorf(formats.KindConfig, "zlib: %s level %d: must be between %d..%d", f, level, lo, hi)
	}
	switch f {
	case Gzip:
		zw, err := gzip.NewWriterLevel(w, level)
		if err != nil {
			return nil, formats.Errorf(formats.KindConfig, "zlib: %w", err)
		}
		zw.Header.OS = 3 // ZLIB_OS_CODE (Unix), as ostream-zlib.c writes
		return zw, nil
	case Zstd:
		zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
			zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, formats.Errorf(formats.KindConfig, "zlib: %w", err)
		}
		return zw, nil
	}
	panic("zlib: unreachable")
}

// DefaultLevel asks NewWriter for the format's default level.
const DefaultLevel = -1 << 31

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// Settings is what Dovecot's zlib plugin settings ask of a driver.
type Settings struct {
	// Enabled is set when mail_plugins lists zlib: compressed mail is
	// then read decompressed. Without the plugin Dovecot shows
	// compressed files as they are.
	Enabled bool
	// Save is the format new mail is written in (zlib_save), None to
	// write it uncompressed.
	Save Format
	// Level is zlib_save_level, or DefaultLevel.
	Level int
}

// ParseSettings reads mail_plugins, plugin/zlib_save and
// plugin/zlib_save_level through get (doveconf's Config.Get has this
// shape). Like Dovecot, zlib_save without the plugin in mail_plugins does
// nothing, and a format boxsync cannot write is an error (Dovecot logs
// one and saves uncompressed).
func ParseSettings(get func(key string) (string, bool)) (Settings, error) {
	s := Settings{Level: DefaultLevel}
	plugins, _ := get("mail_plugins")
	for _, p := range strings.Fields(plugins) {
		if p == "zlib" {
			s.Enabled = true
		}
	}
	if !s.Enabled {
		return s, nil
	}
	name, _ := get("plugin/zlib_save")
	f, err := ParseFormat(name)
	if err != nil {
		return s, fmt.Errorf("zlib_save: %w", err)
	}
	if f != None {
		if _, _, _, ok := f.Levels(); !ok {
			return s, formats.Errorf(formats.KindConfig, "zlib_save: %s: boxsync can't write it (use gz or zstd)", f)
		}
	}
	s.Save = f
	if lv, ok := get("plugin/zlib_save_level"); ok && lv != "" && f != None {
		n, err := strconv.Atoi(lv)
		lo, _, hi, _ := f.Levels()
		if err != nil || n < lo || n > hi {
			return s, formats.Errorf(formats.KindConfig, "zlib_save_level: Level must be between %d..%d", lo, hi)
		}
		s.Level = n
	}
	return s, nil
}

// LooksCompressed tells whether the first bytes of a message to be saved
// look compressed; Dovecot then refuses the save.
func LooksCompressed(head []byte) bool { return Detect(head) != None }
