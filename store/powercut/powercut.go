package powercut

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// FS is a mounted in-memory filesystem that can lose power. Its methods
// may be called from any goroutine, but not from a process using the
// filesystem: Cut and Unmount need every file on it closed.
type FS struct {
	dir  string
	root *inode

	nextIno  atomic.Uint64
	renameMu sync.Mutex

	fileSyncs atomic.Uint64
	dirSyncs  atomic.Uint64
	// failSyncs, when not 0, is the errno every fsync of a regular file
	// answers, making nothing durable (FailSyncs).
	failSyncs atomic.Uint32
	// space is what Fill left: nil while there is room everywhere.
	space atomic.Pointer[fullDisk]
	// noSpace counts the writes refused with ENOSPC.
	noSpace atomic.Uint64

	mu       sync.Mutex // serialises Cut and Unmount
	cur      *mount     // nil once unmounted
	cuts     int
	fallback error // why the direct mount failed, if fusermount mounted it
}

// Stats counts what the filesystem has seen since Mount, across cuts.
type Stats struct {
	FileSyncs uint64 // fsync and fdatasync calls on regular files
	DirSyncs  uint64 // fsync and fdatasync calls on directories
	Cuts      int    // completed calls of Cut
	// NoSpace counts the writes, allocations and extensions of regular
	// files refused with ENOSPC while the filesystem was full (Fill).
	NoSpace uint64
}

// CutReport says what a cut forgot. Paths are relative to the mount
// directory, with slashes.
type CutReport struct {
	// Reverted lists the files that are still there after the cut but
	// whose content or size went back to their last fsync.
	Reverted []RevertedFile
	// BytesLost counts the bytes of live content the cut forgot: those of
	// the reverted files (see RevertedFile.BytesLost) and the whole
	// content of files that are gone.
	BytesLost int64
	// EntriesDropped lists the names that existed before the cut and are
	// gone after it, or name another inode: creations, renames and links
	// whose directory was not synced since. Only the top of a dropped
	// subtree is listed.
	EntriesDropped []string
	// EntriesRestored lists the names that exist after the cut but did
	// not before it, or named another inode: removals and renames whose
	// directory was not synced since. A name that an unsynced rename
	// replaced is in both lists.
	EntriesRestored []string
	// InodesDropped counts the files and directories that were reachable
	// before the cut and are reachable from no durable entry after it, so
	// they are gone with their content.
	InodesDropped int
}

// RevertedFile is a file whose unsynced writes a cut forgot.
type RevertedFile struct {
	Path        string // a name of the file after the cut
	LiveSize    int64  // its size before the cut
	DurableSize int64  // its size after the cut, as of its last fsync
	// BytesLost counts the bytes of its content before the cut that are
	// not there after it: those past DurableSize and those that differ.
	BytesLost int64
}

// String summarises the report on one line, for test logs.
func (r CutReport) String() string {
	return fmt.Sprintf("power cut: %d files reverted, %d bytes lost, %d entries dropped, %d entries restored, %d inodes dropped",
		len(r.Reverted), r.BytesLost, len(r.EntriesDropped), len(r.EntriesRestored), r.InodesDropped)
}

// Mount mounts an empty filesystem at dir (an existing empty directory).
// It mounts directly, without the fusermount helper, which needs root; if
// that fails it tries fusermount, and Fallback tells why the direct mount
// failed.
func Mount(dir string) (*FS, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("powercut: mount point: %w", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("powercut: mount point: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("powercut: mount point %s is not a directory", dir)
	}
	f := &FS{dir: dir}
	f.nextIno.Store(1) // the root is inode 1
	f.root = newInode(1, syscall.S_IFDIR, 0o755, uint32(os.Geteuid()), uint32(os.Getegid()))
	f.root.nlink = 1
	f.root.dentries = map[string]*inode{} // synced empty at mount
	m, err := f.mount()
	if err != nil {
		return nil, err
	}
	f.cur = m
	return f, nil
}

// Dir returns the mount directory, as an absolute path.
func (f *FS) Dir() string { return f.dir }

// Fallback returns why the direct mount failed when the filesystem was
// mounted with fusermount instead, and nil when it was mounted directly.
func (f *FS) Fallback() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fallback
}

// FailSyncs makes every fsync and fdatasync of a regular file fail with
// errno, as a failing disk does, and make nothing durable; 0 makes them
// work again. Directory syncs are not affected.
func (f *FS) FailSyncs(errno syscall.Errno) { f.failSyncs.Store(uint32(errno)) }

// Stats returns the syncs seen and the cuts made since Mount.
func (f *FS) Stats() Stats {
	f.mu.Lock()
	cuts := f.cuts
	f.mu.Unlock()
	return Stats{FileSyncs: f.fileSyncs.Load(), DirSyncs: f.dirSyncs.Load(), Cuts: cuts, NoSpace: f.noSpace.Load()}
}

// fullDisk is a full filesystem: the base names (path.Match patterns) of
// the files that still have room.
type fullDisk struct{ room []string }

// Fill makes the filesystem full, as a disk with no free block: every
// write to a regular file, and every truncate or allocation that grows
// one, fails with ENOSPC and changes nothing, and statfs reports no free
// space. Writes fail even where they would overwrite data in place, as on
// a full copy-on-write filesystem (btrfs, ZFS), so that no write gets
// through by luck. The files whose base name matches one of the patterns
// (path.Match) are spared: they still have room, as a file does whose
// blocks were allocated before the disk filled up (a write-ahead log
// being reused from its start). Creating, renaming and removing files,
// and syncs, still work. Free makes room again.
func (f *FS) Fill(room ...string) {
	for _, p := range room {
		if _, err := path.Match(p, ""); err != nil {
			panic(fmt.Sprintf("powercut: fill: bad pattern %q: %v", p, err))
		}
	}
	f.space.Store(&fullDisk{room: slices.Clone(room)})
}

// Free ends Fill: there is room everywhere again.
func (f *FS) Free() { f.space.Store(nil) }

// full reports whether a write that needs space to the file named name
// (a base name) must fail with ENOSPC, and counts it if so.
func (f *FS) full(name string) bool {
	d := f.space.Load()
	if d == nil {
		return false
	}
	for _, p := range d.room {
		if ok, _ := path.Match(p, name); ok {
			return false
		}
	}
	f.noSpace.Add(1)
	return true
}

// Cut simulates a power cut: it unmounts the filesystem (every process
// using it must have been killed first; Cut returns an error and changes
// nothing if the unmount fails), forgets every write and directory change
// not synced, and mounts it again at the same directory with only the
// durable state. If the new mount fails, the report is still returned
// with the error, and the filesystem stays unmounted.
func (f *FS) Cut() (CutReport, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cur == nil {
		return CutReport{}, errors.New("powercut: cut: not mounted")
	}
	if err := f.cur.stop(); err != nil {
		return CutReport{}, fmt.Errorf("powercut: cut: unmount %s (is a process still using it?): %w", f.dir, err)
	}
	f.cur = nil
	rep := f.revert()
	f.cuts++
	m, err := f.mount()
	if err != nil {
		return rep, fmt.Errorf("powercut: cut: mount again: %w", err)
	}
	f.cur = m
	return rep, nil
}

// Unmount unmounts the filesystem for good; its content is dropped. It
// returns an error if the unmount fails (a file is still open, or a
// process has its working directory there); calling it again then may
// succeed. Unmount after Unmount does nothing.
func (f *FS) Unmount() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cur == nil {
		return nil
	}
	if err := f.cur.stop(); err != nil {
		return fmt.Errorf("powercut: unmount %s: %w", f.dir, err)
	}
	f.cur = nil
	return nil
}

// mount mounts the inodes' current state at f.dir.
func (f *FS) mount() (*mount, error) {
	m, err := f.serve(true)
	if err == nil {
		f.fallback = nil
		return m, nil
	}
	direct := err
	m, err = f.serve(false)
	if err != nil {
		return nil, fmt.Errorf("powercut: mount %s: direct mount: %v; with fusermount: %w", f.dir, direct, err)
	}
	f.fallback = direct
	return m, nil
}

func (f *FS) serve(direct bool) (*mount, error) {
	m := &mount{fs: f, served: make(chan struct{})}
	// Every change reaches the inodes through this one kernel mount,
	// which keeps its caches up to date by itself, so they can be kept
	// long; a cut mounts anew, with empty caches.
	timeout := time.Minute
	opts := &fs.Options{
		EntryTimeout:    &timeout,
		AttrTimeout:     &timeout,
		NegativeTimeout: &timeout,
		RootStableAttr:  &fs.StableAttr{Ino: 1},
		MountOptions: fuse.MountOptions{
			DirectMountStrict: direct,
			// The kernel checks permissions against the modes, as on a
			// disk; then other users may use the filesystem too, which
			// root can allow without /etc/fuse.conf.
			Options:       []string{"default_permissions"},
			AllowOther:    direct && os.Geteuid() == 0,
			FsName:        "powercut",
			Name:          "powercut",
			MaxWrite:      1 << 20,
			MaxBackground: 64,
			// No xattrs: the kernel then stops asking for
			// security.capability before every write.
			DisableXAttrs: true,
			// The kernel must not drop a file's page cache (nor the
			// pages mmapped from it) when it sees that the mtime
			// changed: the change came through the cache itself.
			ExplicitDataCacheControl: true,
			// Locks stay in the kernel (EnableLocks unset), and the
			// kernel's writeback cache stays off, so that every write
			// and fsync reaches the inodes when it happens.
		},
	}
	root := &node{m: m, d: f.root}
	srv, err := fuse.NewServer(fs.NewNodeFS(root, opts), f.dir, &opts.MountOptions)
	if err != nil {
		return nil, err
	}
	m.server = srv
	go func() {
		srv.Serve()
		close(m.served)
	}()
	if err := srv.WaitMount(); err != nil {
		_ = srv.Unmount()
		return nil, err
	}
	return m, nil
}

// revert sets every inode's live state back to its durable state and says
// what that forgot. No mount is serving the inodes.
func (f *FS) revert() CutReport {
	var rep CutReport

	// The live tree, for names.
	livePath := map[*inode]string{f.root: ""}
	queue := []*inode{f.root}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		for _, name := range slices.Sorted(maps.Keys(d.entries)) {
			c := d.entries[name]
			if _, seen := livePath[c]; seen {
				continue
			}
			livePath[c] = path.Join(livePath[d], name)
			if c.kind == syscall.S_IFDIR {
				queue = append(queue, c)
			}
		}
	}

	// The durable tree, breadth first from the root. A directory that two
	// durable entries name (it was renamed and both directories synced
	// at different times) is kept under the first name met, so that the
	// tree stays a tree.
	newPath := map[*inode]string{f.root: ""}
	queue = []*inode{f.root}
	var dirs []*inode
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		dirs = append(dirs, d)
		kept := make(map[string]*inode, len(d.dentries))
		for _, name := range slices.Sorted(maps.Keys(d.dentries)) {
			c := d.dentries[name]
			_, seen := newPath[c]
			if seen && c.kind == syscall.S_IFDIR {
				continue
			}
			kept[name] = c
			if !seen {
				newPath[c] = path.Join(newPath[d], name)
				if c.kind == syscall.S_IFDIR {
					queue = append(queue, c)
				}
			}
		}
		if lp, ok := livePath[d]; ok {
			for name, c := range d.entries {
				if kept[name] != c {
					rep.EntriesDropped = append(rep.EntriesDropped, path.Join(lp, name))
				}
			}
		}
		for name, c := range kept {
			if d.entries[name] != c {
				rep.EntriesRestored = append(rep.EntriesRestored, path.Join(newPath[d], name))
			}
		}
		d.dentries = kept
		d.entries = maps.Clone(kept)
	}
	slices.Sort(rep.EntriesDropped)
	slices.Sort(rep.EntriesRestored)

	for n := range livePath {
		if _, ok := newPath[n]; !ok {
			rep.InodesDropped++
			if n.kind == syscall.S_IFREG {
				rep.BytesLost += n.size
			}
		}
	}
	for n, p := range newPath {
		n.nlink = 0
		if n.kind != syscall.S_IFREG {
			continue
		}
		lost := n.lostBytes()
		if lost > 0 || n.size != n.dsize {
			rep.Reverted = append(rep.Reverted, RevertedFile{Path: p, LiveSize: n.size, DurableSize: n.dsize, BytesLost: lost})
			rep.BytesLost += lost
		}
		n.revertData()
	}
	slices.SortFunc(rep.Reverted, func(a, b RevertedFile) int { return strings.Compare(a.Path, b.Path) })
	f.root.nlink = 1
	for _, d := range dirs {
		for _, c := range d.entries {
			c.nlink++
		}
	}
	return rep
}

var available = sync.OnceValue(probe)

// Available reports whether a FUSE filesystem can be mounted here, and
// why not when it cannot (no /dev/fuse, neither root nor a fusermount
// helper, or a mount that fails), so that tests can skip with that
// reason. It tries a real mount once per process and remembers the
// result.
func Available() error { return available() }

func probe() error {
	if runtime.GOOS != "linux" {
		return fmt.Errorf("powercut: FUSE is only supported on Linux, not %s", runtime.GOOS)
	}
	dev, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("powercut: cannot open /dev/fuse: %w", err)
	}
	dev.Close()
	if os.Geteuid() != 0 {
		_, err3 := exec.LookPath("fusermount3")
		_, err2 := exec.LookPath("fusermount")
		if err3 != nil && err2 != nil {
			return errors.New("powercut: not root, and no fusermount3 or fusermount helper in PATH")
		}
	}
	dir, err := os.MkdirTemp("", "powercut-probe-")
	if err != nil {
		return fmt.Errorf("powercut: probe mount point: %w", err)
	}
	defer os.Remove(dir)
	f, err := Mount(dir)
	if err != nil {
		return fmt.Errorf("powercut: probe mount failed: %w", err)
	}
	if err := f.Unmount(); err != nil {
		return fmt.Errorf("powercut: probe unmount failed: %w", err)
	}
	return nil
}
