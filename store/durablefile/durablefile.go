// Package durablefile writes small files so that they survive a power cut
// whole or not at all: through a temporary file in the same directory,
// synced, then renamed or linked into place, and the directory synced, so
// that the new name lasts too. The key file and the first operator's token
// are written this way: losing either after the start reported it would
// lock people out of the data.
package durablefile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
)

// Write writes data to path, owner-only (0600). With replace false it
// never overwrites an existing path and returns an error matching
// fs.ErrExist instead. Once it returns nil, path holds data on stable
// storage.
func Write(path string, data []byte, replace bool) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*") // created 0600
	if err != nil {
		return fmt.Errorf("durablefile: %w", err)
	}
	tmpName := tmp.Name()
	defer func() {
		if tmp != nil {
			_ = tmp.Close()
		}
		// After a link the temporary name is a second link to the file;
		// after a rename it is gone. Either way it should not remain.
		if rerr := os.Remove(tmpName); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) && err == nil {
			err = fmt.Errorf("durablefile: remove the temporary file: %w", rerr)
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("durablefile: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("durablefile: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("durablefile: %w", err)
	}
	err = tmp.Close()
	tmp = nil
	if err != nil {
		return fmt.Errorf("durablefile: %w", err)
	}

	if replace {
		if err := os.Rename(tmpName, path); err != nil {
			return fmt.Errorf("durablefile: %w", err)
		}
	} else if err := os.Link(tmpName, path); err == nil {
		// The temporary name goes before the directory is synced, so
		// that a power cut cannot bring back a second copy.
		if err := os.Remove(tmpName); err != nil {
			return fmt.Errorf("durablefile: %w", err)
		}
	} else {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("durablefile: %w", err)
		}
		// No hard links on this file system: check, then rename. The
		// window between the two is open only to other processes.
		if _, serr := os.Lstat(path); serr == nil {
			return fmt.Errorf("durablefile: %s: %w", path, fs.ErrExist)
		}
		if err := os.Rename(tmpName, path); err != nil {
			return fmt.Errorf("durablefile: %w", err)
		}
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory, so that the entries made in it (a file
// created, renamed or linked there) survive a power cut. Windows cannot
// fsync a directory, and does not need to.
func SyncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("durablefile: sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("durablefile: sync directory: %w", err)
	}
	return nil
}

// MkdirAll makes dir and any missing parents with mode perm, as
// os.MkdirAll does, and syncs the directory above each one it made, so
// that the new directories last: a data directory whose own entry a power
// cut took away takes everything in it along.
func MkdirAll(dir string, perm os.FileMode) error {
	dir = filepath.Clean(dir)
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("durablefile: %s is not a directory", dir)
		}
		return nil
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := MkdirAll(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, perm); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("durablefile: %w", err)
	}
	return SyncDir(filepath.Dir(dir))
}
