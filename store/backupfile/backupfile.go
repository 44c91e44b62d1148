// Package backupfile reads and writes the sealed backup file: a clear header
// that says only what the file holds (time, versions, counts, the audit
// chains' heads), then an age stream (filippo.io/age: chunked authenticated
// encryption, so a changed or truncated file is refused) of a tar archive of
// the store's database files and the erasure ledger.
//
// The age file key is wrapped by the master key version in force
// (envelope.Keyring.WrapFileKey), bound to the SHA-256 of the clear header,
// so the header cannot be altered either: the recipient stanza names the
// key version and that digest, and the archive's first entry is the header
// again. The master keys are never in the file: keep them apart from it.
package backupfile

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/example/personaldata/store/envelope"
)

// Magic is the file's first line.
const Magic = "personaldata-backup\n"

// Format is the version of this layout that this build writes and reads.
const Format = 1

// headerEntry is the archive's first entry: the clear header again.
const headerEntry = "header.json"

// maxHeader bounds the clear header line.
const maxHeader = 1 << 20

// Header is what a backup says in clear. No personal data: counts, ids of
// no one, and hashes.
type Header struct {
	Format        int       `json:"format"`
	Created       time.Time `json:"created"`
	ServerVersion string    `json:"server_version"`
	// KeyVersion is the master key version that seals the file.
	KeyVersion uint32 `json:"key_version"`
	// Database is the name of the data's database (the audit trail's and
	// the keys' are named after it).
	Database string `json:"database"`
	// Files are the archive's entries after the header, with their sizes.
	Files  []File `json:"files"`
	Counts Counts `json:"counts"`
	Audit  Audit  `json:"audit"`
}

// File is one entry of the archive.
type File struct {
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
}

// Counts are what the snapshot holds.
type Counts struct {
	Subjects       int64 `json:"subjects"`
	ErasedSubjects int64 `json:"erased_subjects"`
	DataKeys       int64 `json:"data_keys"`
	AuditEvents    int64 `json:"audit_events"`
	LedgerEntries  int64 `json:"ledger_entries"`
}

// Audit sums up the heads of the audit chains in the snapshot.
type Audit struct {
	Chains int64 `json:"chains"`
	// HeadsSHA256 is the hex SHA-256 of every chain's "name seq hash" line,
	// in name order: what the chains ended with.
	HeadsSHA256 string `json:"heads_sha256"`
	// Principals is the head of the principals' chain.
	Principals Head `json:"principals"`
}

// Head is a chain's last seq and hash.
type Head struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

// Source is a file to put in the archive.
type Source struct {
	Name string
	Size int64
	Open func() (io.ReadCloser, error)
}

// stanzaType names the recipient stanza of a backup's file key.
const stanzaType = "personaldata-master-key"

// Write writes a backup of files to w, sealed under ring's current master
// key. h's Format, KeyVersion and Files are filled in here.
func Write(w io.Writer, ring *envelope.Keyring, h Header, files []Source) error {
	h.Format = Format
	h.KeyVersion = ring.Current()
	h.Files = nil
	for _, f := range files {
		h.Files = append(h.Files, File{Name: f.Name, Bytes: f.Size})
	}
	js, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("backupfile: %w", err)
	}
	clear := append(append([]byte(Magic), js...), '\n')
	if _, err := w.Write(clear); err != nil {
		return fmt.Errorf("backupfile: %w", err)
	}
	enc, err := age.Encrypt(w, recipient{ring: ring, digest: digest(clear)})
	if err != nil {
		return fmt.Errorf("backupfile: seal: %w", err)
	}
	tw := tar.NewWriter(enc)
	add := func(name string, size int64, r io.Reader) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Size: size, Mode: 0o600, ModTime: h.Created, Format: tar.FormatPAX}); err != nil {
			return err
		}
		n, err := io.Copy(tw, r)
		if err == nil && n != size {
			err = fmt.Errorf("%s: %d bytes, want %d", name, n, size)
		}
		return err
	}
	if err := add(headerEntry, int64(len(js)), bytes.NewReader(js)); err != nil {
		return fmt.Errorf("backupfile: %w", err)
	}
	for _, f := range files {
		rc, err := f.Open()
		if err != nil {
			return fmt.Errorf("backupfile: %w", err)
		}
		err = add(f.Name, f.Size, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("backupfile: %w", err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("backupfile: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("backupfile: seal: %w", err)
	}
	return nil
}

// Errors a restore tells apart.
var (
	// ErrNotBackup: the file does not start as a backup does.
	ErrNotBackup = errors.New("not a personaldata backup file")
	// ErrNewer: the file is of a newer format or server than this one.
	ErrNewer = errors.New("backup written by a newer server")
	// ErrCorrupt: the file does not authenticate: changed, or cut short.
	ErrCorrupt = errors.New("backup file is corrupted or truncated")
)

// ReadHeader reads the clear header of a backup from r, which is left at
// the sealed part, and checks it is one this build reads.
func ReadHeader(r *bufio.Reader) (Header, []byte, error) {
	magic := make([]byte, len(Magic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != Magic {
		return Header{}, nil, ErrNotBackup
	}
	line, err := r.ReadSlice('\n')
	if err != nil {
		return Header{}, nil, fmt.Errorf("%w: the header line is cut short or longer than %d bytes", ErrCorrupt, r.Size())
	}
	var h Header
	if err := json.Unmarshal(line, &h); err != nil {
		return Header{}, nil, fmt.Errorf("%w: the header is not JSON: %v", ErrCorrupt, err)
	}
	if h.Format > Format {
		return Header{}, nil, fmt.Errorf("%w: file format %d, this server reads up to %d", ErrNewer, h.Format, Format)
	}
	if h.Format < 1 {
		return Header{}, nil, fmt.Errorf("%w: the header names no format", ErrCorrupt)
	}
	clear := append([]byte(Magic), line...)
	return h, clear, nil
}

// NewReader returns a buffered reader for ReadHeader big enough for any
// header.
func NewReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, maxHeader) }

// Open reads a backup: the header (ReadHeader), then the sealed archive,
// whose entries after the header it hands to each in turn. Every byte is
// authenticated before each gets it, and a file cut short is ErrCorrupt
// at its end, so a caller that writes entries out must discard them unless
// Open returns nil.
func Open(r io.Reader, ring *envelope.Keyring, serverVersion string, each func(Header, *tar.Header, io.Reader) error) (Header, error) {
	br := NewReader(r)
	h, clear, err := ReadHeader(br)
	if err != nil {
		return Header{}, err
	}
	if Newer(h.ServerVersion, serverVersion) {
		return h, fmt.Errorf("%w: server version %s, this is %s", ErrNewer, h.ServerVersion, serverVersion)
	}
	if !contains(ring.Versions(), h.KeyVersion) {
		return h, fmt.Errorf("%w: the backup is sealed under master key version %d, which the keyring does not hold (it holds %v)", envelope.ErrUnknownVersion, h.KeyVersion, ring.Versions())
	}
	dec, err := age.Decrypt(br, identity{ring: ring, digest: digest(clear)})
	if err != nil {
		if errors.Is(err, envelope.ErrUnknownVersion) {
			return h, err
		}
		return h, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	tr := tar.NewReader(dec)
	first, err := tr.Next()
	if err != nil || first.Name != headerEntry {
		return h, fmt.Errorf("%w: no sealed header: %v", ErrCorrupt, err)
	}
	sealed, err := io.ReadAll(io.LimitReader(tr, maxHeader))
	if err != nil || !bytes.Equal(append(append([]byte(Magic), sealed...), '\n'), clear) {
		return h, fmt.Errorf("%w: the clear header differs from the sealed one", ErrCorrupt)
	}
	for {
		th, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return h, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		if err := each(h, th, taggedReader{tr}); err != nil {
			if isStreamErr(err) {
				return h, fmt.Errorf("%w: %v", ErrCorrupt, err)
			}
			return h, err
		}
	}
	// The stream's last chunk authenticates only at its end.
	if _, err := io.Copy(io.Discard, dec); err != nil {
		return h, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return h, nil
}

// isStreamErr tells an error of the sealed stream from the caller's own.
func isStreamErr(err error) bool {
	var se streamError
	return errors.As(err, &se)
}

// streamError is an error reading the sealed stream.
type streamError struct{ error }

func (e streamError) Unwrap() error { return e.error }

// taggedReader marks its errors, but EOF, as the stream's.
type taggedReader struct{ r io.Reader }

func (t taggedReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		err = streamError{err}
	}
	return n, err
}

func contains(vs []uint32, v uint32) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

// Newer reports whether version a is a later release than b: both must be
// semantic versions (vMAJOR.MINOR.PATCH…); a development build is newer than
// nothing and older than nothing.
func Newer(a, b string) bool {
	pa, oka := release(a)
	pb, okb := release(b)
	if !oka || !okb {
		return false
	}
	for i := range pa {
		if pa[i] != pb[i] {
			return pa[i] > pb[i]
		}
	}
	return false
}

func release(v string) ([3]int, bool) {
	var out [3]int
	v, ok := strings.CutPrefix(v, "v")
	if !ok {
		return out, false
	}
	if i := strings.IndexAny(v, "-+"); i >= 0 {
		v = v[:i]
	}
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return out, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return out, false
		}
		out[i] = n
	}
	return out, true
}

// digest is what the file key is bound to: the clear header.
func digest(clear []byte) string {
	sum := sha256.Sum256(clear)
	return base64.RawStdEncoding.EncodeToString(sum[:])
}

// recipient wraps age's file key under the master key in force.
type recipient struct {
	ring   *envelope.Keyring
	digest string
}

func (r recipient) Wrap(fileKey []byte) ([]*age.Stanza, error) {
	w, err := r.ring.WrapFileKey(fileKey, "backup "+r.digest)
	if err != nil {
		return nil, err
	}
	return []*age.Stanza{{Type: stanzaType, Args: []string{strconv.FormatUint(uint64(w.Version), 10), r.digest}, Body: w.Ciphertext}}, nil
}

// identity unwraps it with the keyring.
type identity struct {
	ring   *envelope.Keyring
	digest string
}

func (id identity) Unwrap(stanzas []*age.Stanza) ([]byte, error) {
	for _, s := range stanzas {
		if s.Type != stanzaType || len(s.Args) != 2 {
			continue
		}
		v, err := strconv.ParseUint(s.Args[0], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("key version %q: %w", s.Args[0], err)
		}
		if s.Args[1] != id.digest {
			return nil, errors.New("the clear header differs from the one the file was sealed with")
		}
		key, err := id.ring.UnwrapFileKey(envelope.WrappedKey{Version: uint32(v), Ciphertext: s.Body}, "backup "+id.digest)
		if err != nil {
			return nil, err
		}
		return key, nil
	}
	return nil, age.ErrIncorrectIdentity
}
