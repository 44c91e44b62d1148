package powercut

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// mountTest mounts a fresh filesystem in a temporary directory, or skips
// the test when FUSE is not available here.
func mountTest(t *testing.T) *FS {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("FUSE not available: %v", err)
	}
	dir := t.TempDir()
	f, err := Mount(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Fallback(); err != nil {
		t.Logf("mounted with fusermount; the direct mount failed: %v", err)
	}
	t.Cleanup(func() {
		if err := f.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return f
}

func cut(t *testing.T, f *FS) CutReport {
	t.Helper()
	rep, err := f.Cut()
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep)
	return rep
}

// put writes data to name (creating or truncating it), and fsyncs it when
// sync is set.
func put(t *testing.T, name string, data []byte, sync bool) {
	t.Helper()
	fl, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	if _, err := fl.Write(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := fl.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := fl.Close(); err != nil {
		t.Fatal(err)
	}
}

// appendTo appends data to name, and fsyncs it when sync is set.
func appendTo(t *testing.T, name string, data []byte, sync bool) {
	t.Helper()
	fl, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	if _, err := fl.Write(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := fl.Sync(); err != nil {
			t.Fatal(err)
		}
	}
}

// syncFile fsyncs an existing file, or a directory (making its entries
// durable), through a new descriptor.
func syncFile(t *testing.T, name string) {
	t.Helper()
	fl, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Close()
	if err := fl.Sync(); err != nil {
		t.Fatal(err)
	}
}

// syncDir fsyncs a directory, making its entries durable.
func syncDir(t *testing.T, dir string) {
	t.Helper()
	syncFile(t, dir)
}

func wantContent(t *testing.T, name string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %d bytes %.40q, want %d bytes %.40q", filepath.Base(name), len(got), got, len(want), want)
	}
	st, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != int64(len(want)) {
		t.Fatalf("%s: stat size %d, want %d", filepath.Base(name), st.Size(), len(want))
	}
}

func wantAbsent(t *testing.T, name string) {
	t.Helper()
	if _, err := os.Lstat(name); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s: want it absent, got err %v", filepath.Base(name), err)
	}
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestFileContent checks that a file's content and size survive a cut as
// of its last fsync, and no later.
func TestFileContent(t *testing.T) {
	big := randomBytes(1, 300_000) // spans many pages
	bigChanged := slices.Clone(big)
	copy(bigChanged[100_000:], bytes.Repeat([]byte{'x'}, 50_000))

	tests := []struct {
		name     string
		do       func(t *testing.T, p string) // p's directory entry is durable already
		want     []byte
		wantLost int64 // BytesLost in the report
	}{
		{
			name: "write and fsync survives",
			do:   func(t *testing.T, p string) { put(t, p, []byte("hello"), true) },
			want: []byte("hello"),
		},
		{
			name:     "write without fsync is reverted",
			do:       func(t *testing.T, p string) { put(t, p, []byte("hello"), false) },
			want:     []byte{},
			wantLost: 5,
		},
		{
			name: "overwrite without fsync is reverted, content and size",
			do: func(t *testing.T, p string) {
				put(t, p, []byte("old"), true)
				put(t, p, []byte("a new, longer content"), false)
			},
			want:     []byte("old"),
			wantLost: int64(len("a new, longer content")),
		},
		{
			name: "write, fsync, write more keeps the first part",
			do: func(t *testing.T, p string) {
				put(t, p, []byte("first"), true)
				appendTo(t, p, []byte(" second"), false)
			},
			want:     []byte("first"),
			wantLost: int64(len(" second")),
		},
		{
			name: "fsync through another descriptor syncs the whole file",
			do: func(t *testing.T, p string) {
				put(t, p, []byte("written here"), false)
				syncFile(t, p)
			},
			want: []byte("written here"),
		},
		{
			name: "truncate without fsync is reverted",
			do: func(t *testing.T, p string) {
				put(t, p, []byte("abcdef"), true)
				if err := os.Truncate(p, 2); err != nil {
					t.Fatal(err)
				}
			},
			want: []byte("abcdef"),
		},
		{
			name: "fallocate and punch hole, then fsync",
			do: func(t *testing.T, p string) {
				put(t, p, []byte("abcdefgh"), true)
				fl, err := os.OpenFile(p, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer fl.Close()
				if err := unix.Fallocate(int(fl.Fd()), 0, 0, 20); err != nil {
					t.Fatal(err)
				}
				if err := unix.Fallocate(int(fl.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 2, 3); err != nil {
					t.Fatal(err)
				}
				if err := fl.Sync(); err != nil {
					t.Fatal(err)
				}
			},
			want: append([]byte("ab\x00\x00\x00fgh"), make([]byte, 12)...),
		},
		{
			name: "large file: unsynced overwrite in the middle is reverted",
			do: func(t *testing.T, p string) {
				put(t, p, big, true)
				fl, err := os.OpenFile(p, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer fl.Close()
				if _, err := fl.WriteAt(bigChanged[100_000:150_000], 100_000); err != nil {
					t.Fatal(err)
				}
			},
			want:     big,
			wantLost: int64(countDiff(big, bigChanged)),
		},
		{
			name: "large file: synced overwrite survives",
			do: func(t *testing.T, p string) {
				put(t, p, big, true)
				fl, err := os.OpenFile(p, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				defer fl.Close()
				if _, err := fl.WriteAt(bigChanged[100_000:150_000], 100_000); err != nil {
					t.Fatal(err)
				}
				if err := fl.Sync(); err != nil {
					t.Fatal(err)
				}
			},
			want: bigChanged,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := mountTest(t)
			p := filepath.Join(f.Dir(), "file")
			put(t, p, nil, false)
			syncDir(t, f.Dir())
			tc.do(t, p)
			rep := cut(t, f)
			wantContent(t, p, tc.want)
			if rep.BytesLost != tc.wantLost {
				t.Errorf("report: %d bytes lost, want %d", rep.BytesLost, tc.wantLost)
			}
		})
	}
}

func countDiff(a, b []byte) int {
	n := 0
	for i := range a {
		if a[i] != b[i] {
			n++
		}
	}
	return n
}

// TestEntries checks that directory entries survive a cut only once their
// directory is synced.
func TestEntries(t *testing.T) {
	tests := []struct {
		name   string
		do     func(t *testing.T, root string)
		check  func(t *testing.T, root string)
		report func(t *testing.T, rep CutReport)
	}{
		{
			name: "new file synced, directory not: gone",
			do: func(t *testing.T, root string) {
				put(t, filepath.Join(root, "new"), []byte("data"), true)
			},
			check: func(t *testing.T, root string) { wantAbsent(t, filepath.Join(root, "new")) },
			report: func(t *testing.T, rep CutReport) {
				if !slices.Equal(rep.EntriesDropped, []string{"new"}) || rep.InodesDropped != 1 || rep.BytesLost != 4 {
					t.Errorf("report %+v, want new dropped with its 4 bytes", rep)
				}
			},
		},
		{
			name: "new file synced, directory synced: there",
			do: func(t *testing.T, root string) {
				put(t, filepath.Join(root, "new"), []byte("data"), true)
				syncDir(t, root)
			},
			check: func(t *testing.T, root string) { wantContent(t, filepath.Join(root, "new"), []byte("data")) },
		},
		{
			name: "directory synced before the file's content: empty file",
			do: func(t *testing.T, root string) {
				put(t, filepath.Join(root, "new"), []byte("data"), false)
				syncDir(t, root)
			},
			check: func(t *testing.T, root string) { wantContent(t, filepath.Join(root, "new"), []byte{}) },
			report: func(t *testing.T, rep CutReport) {
				if len(rep.Reverted) != 1 || rep.Reverted[0] != (RevertedFile{Path: "new", LiveSize: 4, DurableSize: 0, BytesLost: 4}) {
					t.Errorf("reverted %+v, want new from 4 bytes to 0", rep.Reverted)
				}
			},
		},
		{
			name: "unlink without directory sync: back",
			do: func(t *testing.T, root string) {
				put(t, filepath.Join(root, "f"), []byte("kept"), true)
				syncDir(t, root)
				if err := os.Remove(filepath.Join(root, "f")); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, root string) { wantContent(t, filepath.Join(root, "f"), []byte("kept")) },
			report: func(t *testing.T, rep CutReport) {
				if !slices.Equal(rep.EntriesRestored, []string{"f"}) {
					t.Errorf("restored %q, want f", rep.EntriesRestored)
				}
			},
		},
		{
			name: "unlink with directory sync: gone",
			do: func(t *testing.T, root string) {
				put(t, filepath.Join(root, "f"), []byte("kept"), true)
				syncDir(t, root)
				if err := os.Remove(filepath.Join(root, "f")); err != nil {
					t.Fatal(err)
				}
				syncDir(t, root)
			},
			check: func(t *testing.T, root string) { wantAbsent(t, filepath.Join(root, "f")) },
		},
		{
			name: "nested directories: the parent not synced loses the subtree",
			do: func(t *testing.T, root string) {
				if err := os.MkdirAll(filepath.Join(root, "a", "b"), 0o755); err != nil {
					t.Fatal(err)
				}
				put(t, filepath.Join(root, "a", "b", "f"), []byte("deep"), true)
				syncDir(t, filepath.Join(root, "a", "b"))
				syncDir(t, filepath.Join(root, "a"))
			},
			check: func(t *testing.T, root string) { wantAbsent(t, filepath.Join(root, "a")) },
			report: func(t *testing.T, rep CutReport) {
				if !slices.Equal(rep.EntriesDropped, []string{"a"}) || rep.InodesDropped != 3 {
					t.Errorf("report %+v, want a dropped with 3 inodes", rep)
				}
			},
		},
		{
			name: "nested directories all synced: there, with modes",
			do: func(t *testing.T, root string) {
				if err := os.MkdirAll(filepath.Join(root, "a", "b"), 0o755); err != nil {
					t.Fatal(err)
				}
				put(t, filepath.Join(root, "a", "b", "f"), []byte("deep"), true)
				if err := os.Chmod(filepath.Join(root, "a", "b", "f"), 0o600); err != nil {
					t.Fatal(err)
				}
				syncDir(t, filepath.Join(root, "a", "b"))
				syncDir(t, filepath.Join(root, "a"))
				syncDir(t, root)
			},
			check: func(t *testing.T, root string) {
				p := filepath.Join(root, "a", "b", "f")
				wantContent(t, p, []byte("deep"))
				st, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode().Perm() != 0o600 {
					t.Errorf("mode %v, want 0600", st.Mode())
				}
				ents, err := os.ReadDir(filepath.Join(root, "a"))
				if err != nil {
					t.Fatal(err)
				}
				if len(ents) != 1 || ents[0].Name() != "b" || !ents[0].IsDir() {
					t.Errorf("a holds %v, want the directory b", ents)
				}
			},
		},
		{
			name: "rmdir without sync: back",
			do: func(t *testing.T, root string) {
				if err := os.Mkdir(filepath.Join(root, "d"), 0o755); err != nil {
					t.Fatal(err)
				}
				syncDir(t, root)
				if err := os.Remove(filepath.Join(root, "d")); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, root string) {
				st, err := os.Stat(filepath.Join(root, "d"))
				if err != nil || !st.IsDir() {
					t.Fatalf("d: %v, %v; want a directory", st, err)
				}
			},
		},
		{
			name: "rename across directories, only the destination synced: two names",
			do: func(t *testing.T, root string) {
				for _, d := range []string{"src", "dst"} {
					if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
						t.Fatal(err)
					}
				}
				put(t, filepath.Join(root, "src", "f"), []byte("moved"), true)
				syncDir(t, filepath.Join(root, "src"))
				syncDir(t, root)
				if err := os.Rename(filepath.Join(root, "src", "f"), filepath.Join(root, "dst", "f")); err != nil {
					t.Fatal(err)
				}
				syncDir(t, filepath.Join(root, "dst"))
			},
			check: func(t *testing.T, root string) {
				wantContent(t, filepath.Join(root, "src", "f"), []byte("moved"))
				wantContent(t, filepath.Join(root, "dst", "f"), []byte("moved"))
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := mountTest(t)
			tc.do(t, f.Dir())
			rep := cut(t, f)
			tc.check(t, f.Dir())
			if tc.report != nil {
				tc.report(t, rep)
			}
		})
	}
}

// TestSafeReplace checks the write-temporary, fsync, rename pattern: the
// rename is durable only once the directory is synced.
func TestSafeReplace(t *testing.T) {
	tests := []struct {
		name      string
		oldTarget bool // a durable target exists before the replace
		syncDir   bool // the directory is synced after the rename
		want      []byte
	}{
		{name: "no directory sync keeps the old content", oldTarget: true, want: []byte("old")},
		{name: "no directory sync and no old target: absent", want: nil},
		{name: "directory sync after rename: new content", oldTarget: true, syncDir: true, want: []byte("new")},
		{name: "directory sync, no old target: new content", syncDir: true, want: []byte("new")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := mountTest(t)
			target := filepath.Join(f.Dir(), "target")
			tmp := filepath.Join(f.Dir(), "target.tmp")
			if tc.oldTarget {
				put(t, target, []byte("old"), true)
				syncDir(t, f.Dir())
			}
			put(t, tmp, []byte("new"), true)
			if err := os.Rename(tmp, target); err != nil {
				t.Fatal(err)
			}
			if tc.syncDir {
				syncDir(t, f.Dir())
			}
			wantContent(t, target, []byte("new"))
			cut(t, f)
			if tc.want == nil {
				wantAbsent(t, target)
			} else {
				wantContent(t, target, tc.want)
			}
			wantAbsent(t, tmp)
		})
	}
}

// TestCutBusy checks that a cut fails, changing nothing, while a file is
// open, and succeeds once it is closed.
func TestCutBusy(t *testing.T) {
	f := mountTest(t)
	p := filepath.Join(f.Dir(), "open")
	put(t, p, []byte("unsynced"), false)
	fl, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Cut(); err == nil {
		t.Fatal("cut succeeded with a file open")
	} else {
		t.Logf("cut with a file open: %v", err)
	}
	fl.Close()
	wantContent(t, p, []byte("unsynced"))
	cut(t, f)
	wantAbsent(t, p)
	if s := f.Stats(); s.Cuts != 1 || s.FileSyncs != 0 || s.DirSyncs != 0 {
		t.Errorf("stats %+v, want 1 cut and no syncs", s)
	}
}

// TestSeveralCuts checks that what is durable stays durable across cuts,
// and that a remounted filesystem keeps working.
func TestSeveralCuts(t *testing.T) {
	f := mountTest(t)
	p := filepath.Join(f.Dir(), "log")
	put(t, p, nil, true)
	syncDir(t, f.Dir())
	var want []byte
	for i := range 5 {
		line := []byte(fmt.Sprintf("line %d\n", i))
		appendTo(t, p, line, true)
		want = append(want, line...)
		appendTo(t, p, []byte("lost\n"), false)
		cut(t, f)
		wantContent(t, p, want)
	}
	if s := f.Stats(); s.Cuts != 5 || s.FileSyncs != 6 || s.DirSyncs != 1 {
		t.Errorf("stats %+v, want 5 cuts, 6 file syncs, 1 dir sync", s)
	}
}

// TestConcurrentWriters has goroutines write and fsync their own files,
// then checks after a cut that each file holds its last synced content.
func TestConcurrentWriters(t *testing.T) {
	f := mountTest(t)
	const writers, rounds = 8, 40
	names := make([]string, writers)
	for i := range names {
		names[i] = filepath.Join(f.Dir(), fmt.Sprintf("w%d", i))
		put(t, names[i], nil, false)
	}
	syncDir(t, f.Dir())

	synced := make([][]byte, writers)
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				fl, err := os.OpenFile(names[i], os.O_RDWR, 0)
				if err != nil {
					return err
				}
				defer fl.Close()
				r := rand.New(rand.NewPCG(uint64(i), 7))
				var content []byte
				for round := range rounds {
					// Overwrite a random range, sometimes growing the file.
					chunk := randomBytes(uint64(i*1000+round), 1+r.IntN(40_000))
					off := r.IntN(len(content) + 1)
					if _, err := fl.WriteAt(chunk, int64(off)); err != nil {
						return err
					}
					if end := off + len(chunk); end > len(content) {
						content = append(content, make([]byte, end-len(content))...)
					}
					copy(content[off:], chunk)
					if r.IntN(3) == 0 {
						if err := fl.Sync(); err != nil {
							return err
						}
						synced[i] = slices.Clone(content)
					}
				}
				return nil
			}()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	cut(t, f)
	for i, name := range names {
		wantContent(t, name, append([]byte{}, synced[i]...))
	}
}

// FailSyncs makes file syncs fail and keep nothing: a cut then forgets what
// they did not make durable; once it is lifted, syncs work again.
func TestFailSyncs(t *testing.T) {
	f := mountTest(t)
	name := filepath.Join(f.Dir(), "file")
	put(t, name, []byte("first"), true)
	syncFile(t, f.Dir())
	f.FailSyncs(syscall.EIO)
	fl, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fl.Write([]byte(" second")); err != nil {
		t.Fatal(err)
	}
	if err := fl.Sync(); !errors.Is(err, syscall.EIO) {
		t.Errorf("fsync while syncs fail: %v, want EIO", err)
	}
	fl.Close()
	f.FailSyncs(0)
	cut(t, f)
	if got, _ := os.ReadFile(name); string(got) != "first" {
		t.Errorf("after the cut the file holds %q, want what the last good sync kept", got)
	}
	put(t, name, []byte("third"), true)
	cut(t, f)
	if got, _ := os.ReadFile(name); string(got) != "third" {
		t.Errorf("a sync after FailSyncs(0) kept %q, want %q", got, "third")
	}
}
