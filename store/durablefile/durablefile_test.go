package durablefile_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/example/personaldata/store/durablefile"
)

func TestWrite(t *testing.T) {
	for _, c := range []struct {
		name     string
		existing string // "" for no file at path
		replace  bool
		want     string
		wantErr  error
	}{
		{name: "new file", want: "new"},
		{name: "new file, replace", replace: true, want: "new"},
		{name: "over a file, replace", existing: "old", replace: true, want: "new"},
		{name: "over a file, no replace", existing: "old", want: "old", wantErr: fs.ErrExist},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "file")
			if c.existing != "" {
				if err := os.WriteFile(path, []byte(c.existing), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			err := durablefile.Write(path, []byte("new"), c.replace)
			if !errors.Is(err, c.wantErr) || (c.wantErr == nil) != (err == nil) {
				t.Fatalf("Write: %v, want %v", err, c.wantErr)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != c.want {
				t.Fatalf("file holds %q (%v), want %q", got, err, c.want)
			}
			if fi, _ := os.Stat(path); c.existing == "" && fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %04o, want 0600", fi.Mode().Perm())
			}
			// No temporary file is left beside it.
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 {
				t.Errorf("directory holds %d entries, want only the file", len(entries))
			}
		})
	}
}

func TestSyncDir(t *testing.T) {
	if err := durablefile.SyncDir(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	if err := durablefile.SyncDir(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("SyncDir of a missing directory: no error")
	}
}

func TestMkdirAll(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "a", "b", "c")
	if err := durablefile.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("made %v (%v), want a directory 0700", fi, err)
	}
	if err := durablefile.MkdirAll(dir, 0o700); err != nil {
		t.Errorf("again: %v", err)
	}
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := durablefile.MkdirAll(file, 0o700); err == nil {
		t.Error("MkdirAll over a file: no error")
	}
}
