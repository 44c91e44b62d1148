// Package ledger keeps the erasure ledger: an append-only file that records
// every acknowledged erasure (subject id, controller id, time, ground; never a
// personal value), and every consent withdrawal, apart from the store, so
// that a restore of an older backup can erase again whoever was erased after
// the backup was taken, and withdraw again what was withdrawn.
//
// Each line is a JSON entry, a space, and the hex SHA-256 of the previous
// line's hash, a newline and the entry: a hash chain from the first line. An
// append is written and fdatasync'd before it returns, and the directory is
// synced when the file is created, so an erasure acknowledged after Append
// survives a power cut. A power cut during an append can leave a torn last
// line; Open cuts it (that erasure was never acknowledged). A broken line
// followed by good ones is corruption, which Open and Read refuse.
package ledger

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/example/personaldata/store/durablefile"
)

// Kinds of entry.
const (
	// KindErasure: the subject was erased (Art. 17) and its data key
	// destroyed, unless a legal hold kept some of its data.
	KindErasure = "erasure"
	// KindPurge: the retention sweeper purged what a legal hold had kept of
	// an erased subject.
	KindPurge = "purge"
	// KindConsentWithdrawal: the subject withdrew a consent (Art. 7(3)).
	KindConsentWithdrawal = "consent_withdrawal"
	// KindRebuilt ends the entries that a server rebuilt from the store's
	// tombstones and withdrawn consents, having found the ledger missing
	// or empty while the store held subjects (a lost ledger disk): it
	// names no subject, and its Time is the rebuild's.
	KindRebuilt = "rebuilt"
)

// ErrCorrupt: the ledger has a broken line that is not its last (a torn
// tail is cut, not refused).
var ErrCorrupt = errors.New("erasure ledger is corrupt")

// Entry is one erasure. It holds ids, a time and a ground, never a personal
// value.
type Entry struct {
	// Seq numbers the entries from 1.
	Seq int64 `json:"seq"`
	// Time is when the erasure was made.
	Time time.Time `json:"time"`
	// Kind is KindErasure or KindPurge.
	Kind string `json:"kind"`
	// Subject is the erased subject's id.
	Subject string `json:"subject"`
	// Controller is the subject's controller (tenant) id.
	Controller string `json:"controller,omitempty"`
	// Ground is the erasure ground (the API's enum name).
	Ground string `json:"ground,omitempty"`
	// Consent is, for a consent withdrawal, the consent's id within the
	// subject ("1", "2", ...).
	Consent string `json:"consent,omitempty"`
}

// Ledger is an open ledger file, appended to by one process.
type Ledger struct {
	path string

	mu   sync.Mutex
	f    *os.File
	seq  int64  // of the last entry
	head string // hash of the last line; "" before the first
	size int64  // bytes of whole lines
	err  error  // a failed write or sync: every later Append fails
}

// DefaultName is the ledger's file name in the data directory.
const DefaultName = "erasure-ledger.jsonl"

// Open opens the ledger at path, creating it (and its directory) if
// missing, checks every line, and cuts a torn last line.
func Open(path string) (*Ledger, error) {
	dir := filepath.Dir(path)
	if err := durablefile.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	created := err == nil
	if errors.Is(err, fs.ErrExist) {
		f, err = os.OpenFile(path, os.O_RDWR, 0o600)
	}
	if err != nil {
		return nil, fmt.Errorf("ledger: open %s: %w", path, err)
	}
	if created {
		if err := durablefile.SyncDir(dir); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("ledger: %w", err)
		}
	}
	st, err := Read(f)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("ledger: %s: %w", path, err)
	}
	if st.TornBytes > 0 {
		// The append that tore was never acknowledged.
		if err := f.Truncate(st.Size); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("ledger: cut the torn end of %s: %w", path, err)
		}
		if err := f.Sync(); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("ledger: cut the torn end of %s: %w", path, err)
		}
	}
	if _, err := f.Seek(st.Size, io.SeekStart); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("ledger: %w", err)
	}
	l := &Ledger{path: path, f: f, size: st.Size, head: st.Head}
	if n := len(st.Entries); n > 0 {
		l.seq = st.Entries[n-1].Seq
	}
	return l, nil
}

// Path is the ledger's file.
func (l *Ledger) Path() string { return l.path }

// Append writes e as the next entry (its Seq is set; a zero Time is now) and
// returns once it is on stable storage. Once a write or sync has failed,
// every later Append fails: the file's end is then unknown.
func (l *Ledger) Append(e Entry) (Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return Entry{}, l.err
	}
	e.Seq = l.seq + 1
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC()
	line, hash, err := encode(l.head, e)
	if err != nil {
		return Entry{}, fmt.Errorf("ledger: %w", err)
	}
	if _, err := l.f.Write(line); err != nil {
		l.err = fmt.Errorf("ledger: append to %s: %w", l.path, err)
		return Entry{}, l.err
	}
	if err := unix.Fdatasync(int(l.f.Fd())); err != nil {
		l.err = fmt.Errorf("ledger: sync %s: %w", l.path, err)
		return Entry{}, l.err
	}
	l.seq, l.head, l.size = e.Seq, hash, l.size+int64(len(line))
	return e, nil
}

// AppendAll writes es as the next entries, as Append does each, and returns
// once all of them are on stable storage (one sync for all).
func (l *Ledger) AppendAll(es []Entry) ([]Entry, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return nil, l.err
	}
	out := make([]Entry, 0, len(es))
	var buf []byte
	seq, head := l.seq, l.head
	for _, e := range es {
		seq++
		e.Seq = seq
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		e.Time = e.Time.UTC()
		line, hash, err := encode(head, e)
		if err != nil {
			return nil, fmt.Errorf("ledger: %w", err)
		}
		buf, head = append(buf, line...), hash
		out = append(out, e)
	}
	if _, err := l.f.Write(buf); err != nil {
		l.err = fmt.Errorf("ledger: append to %s: %w", l.path, err)
		return nil, l.err
	}
	if err := unix.Fdatasync(int(l.f.Fd())); err != nil {
		l.err = fmt.Errorf("ledger: sync %s: %w", l.path, err)
		return nil, l.err
	}
	l.seq, l.head, l.size = seq, head, l.size+int64(len(buf))
	return out, nil
}

// Len is the number of entries in the ledger.
func (l *Ledger) Len() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq
}

// Size is the length in bytes of the entries appended so far. The ledger
// only grows, so its first Size bytes stay what they are: a backup records
// Size at its snapshot and copies that much later (CopyTo).
func (l *Ledger) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.size
}

// CopyTo writes the first n bytes of the ledger (a Size) to w.
func (l *Ledger) CopyTo(w io.Writer, n int64) error {
	f, err := os.Open(l.path)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	defer f.Close()
	if _, err := io.Copy(w, io.NewSectionReader(f, 0, n)); err != nil {
		return fmt.Errorf("ledger: copy: %w", err)
	}
	return nil
}

// Close closes the file.
func (l *Ledger) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	if l.err == nil {
		l.err = errors.New("ledger: closed")
	}
	return err
}

// State is what Read found in a ledger.
type State struct {
	// Entries are the entries of the whole lines, in order.
	Entries []Entry
	// Size is the length of the whole lines; Head the last one's hash.
	Size int64
	Head string
	// TornBytes is the length of a torn last line after them (cut by Open).
	TornBytes int64
}

// Read reads a ledger and checks its chain. A torn last line (no newline,
// or a line that does not check) is left out and counted in TornBytes; a
// broken line before a good one is ErrCorrupt.
func Read(r io.Reader) (State, error) {
	var st State
	br := bufio.NewReaderSize(r, 64<<10)
	var badAt int64 = -1 // offset of the first line that did not check
	var badLine int
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if len(line) == 0 && err == io.EOF {
			break
		}
		if err != nil && err != io.EOF {
			return State{}, err
		}
		if badAt >= 0 {
			// A line after a broken one: not a torn tail.
			return State{}, fmt.Errorf("%w: line %d does not check, and lines follow it", ErrCorrupt, badLine)
		}
		e, hash, ok := decode(st.Head, line)
		if !ok || e.Seq != int64(len(st.Entries))+1 {
			badAt, badLine = st.Size, n
			st.TornBytes = int64(len(line))
			continue
		}
		st.Entries = append(st.Entries, e)
		st.Head = hash
		st.Size += int64(len(line))
	}
	return st, nil
}

// ReadFile reads the ledger at path (see Read).
func ReadFile(path string) (State, error) {
	f, err := os.Open(path)
	if err != nil {
		return State{}, fmt.Errorf("ledger: %w", err)
	}
	defer f.Close()
	st, err := Read(f)
	if err != nil {
		return State{}, fmt.Errorf("ledger: %s: %w", path, err)
	}
	return st, nil
}

// encode returns e's line after the line whose hash is prev, and its hash.
func encode(prev string, e Entry) ([]byte, string, error) {
	js, err := json.Marshal(e)
	if err != nil {
		return nil, "", err
	}
	hash := lineHash(prev, js)
	line := make([]byte, 0, len(js)+1+len(hash)+1)
	line = append(append(append(append(line, js...), ' '), hash...), '\n')
	return line, hash, nil
}

// decode checks a line (with its newline) that follows the line whose hash
// is prev.
func decode(prev string, line []byte) (Entry, string, bool) {
	if len(line) == 0 || line[len(line)-1] != '\n' {
		return Entry{}, "", false
	}
	line = line[:len(line)-1]
	i := bytes.LastIndexByte(line, ' ')
	if i < 0 {
		return Entry{}, "", false
	}
	js, hash := line[:i], string(line[i+1:])
	if lineHash(prev, js) != hash {
		return Entry{}, "", false
	}
	var e Entry
	if err := json.Unmarshal(js, &e); err != nil {
		return Entry{}, "", false
	}
	return e, hash, true
}

// lineHash chains an entry to the line before it.
func lineHash(prev string, js []byte) string {
	h := sha256.New()
	h.Write([]byte("personaldata.erasure-ledger.v1\n"))
	h.Write([]byte(prev))
	h.Write([]byte{'\n'})
	h.Write(js)
	return hex.EncodeToString(h.Sum(nil))
}
