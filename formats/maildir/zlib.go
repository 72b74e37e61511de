package maildir

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/boxsync/boxsync/formats"
	"github.com/boxsync/boxsync/formats/internal/zlib"
)

var _ formats.Configurable = Driver{}

// SettingNames lists the Dovecot settings of the zlib plugin that the
// driver takes: mail_plugins, plugin/zlib_save and plugin/zlib_save_level
// (the plugin section's settings by doveconf path, as -o spells them).
func (Driver) SettingNames() []string {
	return []string{"mail_plugins", "plugin/zlib_save", "plugin/zlib_save_level"}
}

// Configure returns a Driver that saves mail compressed as the zlib plugin
// settings ask: with zlib in mail_plugins and zlib_save = gz or zstd, Save
// writes that format at zlib_save_level. The plugin settings may be given
// as "plugin/zlib_save" or plain "zlib_save".
func (Driver) Configure(settings map[string]string) (formats.Driver, error) {
	st, err := zlib.ParseSettings(func(key string) (string, bool) {
		if v, ok := settings[key]; ok {
			return v, true
		}
		v, ok := settings[strings.TrimPrefix(key, "plugin/")]
		return v, ok
	})
	if err != nil {
		return nil, fmt.Errorf("maildir: %w", err)
	}
	return Driver{zlib: st}, nil
}

// openBody returns the message in f as Dovecot's zlib plugin shows it:
// a compressed file (recognised by its magic bytes) decompressed, anything
// else as it is. named is the size the file name or dovecot-uidlist
// gives (,S=), which for a compressed file is the uncompressed size; -1
// when absent, and then a compressed file is decompressed once to count.
// close releases the decompressor, not f.
func openBody(f *os.File, named int64) (b body, format zlib.Format, close func() error, err error) {
	var head [zlib.MagicLen]byte
	n, err := f.ReadAt(head[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return body{}, zlib.None, nil, err
	}
	format = zlib.Detect(head[:n])
	if format == zlib.None {
		fi, err := f.Stat()
		if err != nil {
			return body{}, zlib.None, nil, err
		}
		return body{Reader: f, size: fi.Size(), file: f}, zlib.None, func() error { return nil }, nil
	}
	size := named
	if size < 0 {
		if size, err = uncompressedSize(f, format); err != nil {
			return body{}, format, nil, err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return body{}, format, nil, err
		}
	}
	zr, err := zlib.Decompress(f, format)
	if err != nil {
		return body{}, format, nil, err
	}
	return body{Reader: &exactReader{r: zr, left: size, want: size}, size: size}, format, zr.Close, nil
}

// uncompressedSize decompresses r to count its bytes.
func uncompressedSize(r io.Reader, f zlib.Format) (int64, error) {
	zr, err := zlib.Decompress(r, f)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(io.Discard, zr)
	return n, errors.Join(err, zr.Close())
}

// exactReader yields exactly want bytes of r and fails when r holds more
// or fewer: the file name's ,S= is what Size promised. Dovecot fails the
// same way ("Cached message size smaller/larger than expected").
type exactReader struct {
	r          io.Reader
	left, want int64
}

// errSizeMismatch is wrapped by exactReader's errors.
var errSizeMismatch = errors.New("decompressed size differs from the ,S= size")

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		var one [1]byte
		n, err := io.ReadFull(e.r, one[:])
		switch {
		case n > 0:
			return 0, &formats.Error{Kind: formats.KindInvalidData, Op: "zlib",
				Err: fmt.Errorf("%w: more than %d bytes", errSizeMismatch, e.want)}
		case errors.Is(err, io.EOF):
			return 0, io.EOF
		default:
			return 0, err
		}
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if errors.Is(err, io.EOF) {
		if e.left > 0 {
			return n, &formats.Error{Kind: formats.KindInvalidData, Op: "zlib",
				Err: fmt.Errorf("%w: %d bytes, expected %d", errSizeMismatch, e.want-e.left, e.want)}
		}
		err = nil // the next Read checks for trailing data
	}
	return n, err
}

// looksCompressed reads the first bytes of r and tells whether they carry
// a compression magic; the returned reader yields all of r again.
func looksCompressed(r io.Reader) (io.Reader, bool, error) {
	head := make([]byte, zlib.MagicLen)
	n, err := io.ReadFull(r, head)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, false, err
	}
	head = head[:n]
	return io.MultiReader(bytes.NewReader(head), r), zlib.LooksCompressed(head), nil
}

// fileCompressed tells whether the file at path starts with a compression
// magic. Errors read as "no": Body reports them.
func fileCompressed(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var head [zlib.MagicLen]byte
	n, _ := f.ReadAt(head[:], 0)
	return zlib.LooksCompressed(head[:n])
}
