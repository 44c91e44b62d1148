package ledger

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestAppendReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", DefaultName)
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"s1", "s2", "s3"} {
		e, err := l.Append(Entry{Kind: KindErasure, Subject: id, Controller: "company", Ground: "ERASURE_GROUND_CONSENT_WITHDRAWN"})
		if err != nil {
			t.Fatal(err)
		}
		if e.Seq != int64(i+1) || e.Time.IsZero() {
			t.Fatalf("entry %d: %+v", i, e)
		}
	}
	size := l.Size()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 || fi.Size() != size {
		t.Fatalf("file mode %v size %d, want 0600 and %d", fi.Mode().Perm(), fi.Size(), size)
	}
	l, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	e, err := l.Append(Entry{Kind: KindPurge, Subject: "s1", Time: time.Unix(100, 0)})
	if err != nil || e.Seq != 4 {
		t.Fatalf("append after reopen: %+v %v", e, err)
	}
	l.Close()
	st, err := ReadFile(path)
	if err != nil || len(st.Entries) != 4 || st.TornBytes != 0 || st.Entries[3].Subject != "s1" {
		t.Fatalf("read: %+v %v", st, err)
	}
}

func TestTornTailIsCut(t *testing.T) {
	path := filepath.Join(t.TempDir(), DefaultName)
	l, _ := Open(path)
	l.Append(Entry{Kind: KindErasure, Subject: "s1"})
	l.Append(Entry{Kind: KindErasure, Subject: "s2"})
	good := l.Size()
	l.Close()
	for name, tail := range map[string]string{
		"half a line":   `{"seq":3,"time":"2026-01-01T00:`,
		"no newline":    `{"seq":3} abc`,
		"bad last hash": `{"seq":3,"kind":"erasure","subject":"s3"} 00` + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			if err := os.Truncate(path, good); err != nil {
				t.Fatal(err)
			}
			f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			f.WriteString(tail)
			f.Close()
			l, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			if l.Size() != good {
				t.Fatalf("size %d, want %d", l.Size(), good)
			}
			if e, err := l.Append(Entry{Kind: KindErasure, Subject: "s3"}); err != nil || e.Seq != 3 {
				t.Fatalf("append: %+v %v", e, err)
			}
			l.Close()
			if st, err := ReadFile(path); err != nil || len(st.Entries) != 3 {
				t.Fatalf("read: %d entries, %v", len(st.Entries), err)
			}
		})
	}
}

func TestBrokenMiddleIsCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), DefaultName)
	l, _ := Open(path)
	for _, s := range []string{"s1", "s2", "s3"} {
		l.Append(Entry{Kind: KindErasure, Subject: s})
	}
	l.Close()
	b, _ := os.ReadFile(path)
	i := indexOf(b, "s2")
	b[i+1] = '9' // s2 -> s9: the second line no longer checks
	os.WriteFile(path, b, 0o600)
	if _, err := Open(path); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open: %v, want ErrCorrupt", err)
	}
}

func indexOf(b []byte, s string) int {
	for i := range b {
		if string(b[i:min(len(b), i+len(s))]) == s {
			return i
		}
	}
	return -1
}

// TestAppendAll: a batch continues the chain after single appends, and a
// reopened ledger reads it whole and goes on after it.
func TestAppendAll(t *testing.T) {
	path := filepath.Join(t.TempDir(), DefaultName)
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(Entry{Kind: KindErasure, Subject: "s1"}); err != nil {
		t.Fatal(err)
	}
	out, err := l.AppendAll([]Entry{{Kind: KindErasure, Subject: "s2", Time: time.Unix(50, 0)}, {Kind: KindConsentWithdrawal, Subject: "s3", Consent: "1"}, {Kind: KindRebuilt}})
	if err != nil || len(out) != 3 || out[0].Seq != 2 || out[2].Seq != 4 || !out[0].Time.Equal(time.Unix(50, 0)) || out[2].Time.IsZero() {
		t.Fatalf("AppendAll: %+v, %v", out, err)
	}
	if l.Len() != 4 {
		t.Fatalf("Len %d, want 4", l.Len())
	}
	l.Close()
	if l, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if e, err := l.Append(Entry{Kind: KindPurge, Subject: "s2"}); err != nil || e.Seq != 5 {
		t.Fatalf("append after the batch: %+v, %v", e, err)
	}
	st, err := ReadFile(path)
	if err != nil || len(st.Entries) != 5 || st.TornBytes != 0 || st.Entries[3].Kind != KindRebuilt {
		t.Fatalf("read back: %+v, %v", st, err)
	}
}
