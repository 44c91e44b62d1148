package powercut

import (
	"context"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// mount is one mounting of an FS. Its nodes serve the FS's inodes until
// the mount is stopped; a cut stops it and makes a new one.
type mount struct {
	fs     *FS
	server *fuse.Server
	served chan struct{} // closed when server.Serve has returned

	// mu is read-held by every operation on the mount's nodes and
	// write-held by stop once the kernel has let go of the mount, so that
	// no operation still running from the old mount touches an inode
	// while a cut reverts it, nor after.
	mu   sync.RWMutex
	dead bool
}

func (m *mount) enter() bool {
	m.mu.RLock()
	if m.dead {
		m.mu.RUnlock()
		return false
	}
	return true
}

func (m *mount) leave() { m.mu.RUnlock() }

// stop unmounts and waits until no operation of this mount is running.
func (m *mount) stop() error {
	if err := m.server.Unmount(); err != nil {
		return err
	}
	<-m.served
	m.mu.Lock()
	m.dead = true
	m.mu.Unlock()
	return nil
}

// node is the go-fuse face of an inode within one mount. Regular files
// are served without file handles: every operation acts on the inode, as
// fsync does in the kernel.
type node struct {
	fs.Inode
	m *mount
	d *inode
}

var (
	_ fs.NodeLookuper   = (*node)(nil)
	_ fs.NodeGetattrer  = (*node)(nil)
	_ fs.NodeSetattrer  = (*node)(nil)
	_ fs.NodeOpener     = (*node)(nil)
	_ fs.NodeReader     = (*node)(nil)
	_ fs.NodeWriter     = (*node)(nil)
	_ fs.NodeFsyncer    = (*node)(nil)
	_ fs.NodeAllocater  = (*node)(nil)
	_ fs.NodeCreater    = (*node)(nil)
	_ fs.NodeMkdirer    = (*node)(nil)
	_ fs.NodeMknoder    = (*node)(nil)
	_ fs.NodeSymlinker  = (*node)(nil)
	_ fs.NodeReadlinker = (*node)(nil)
	_ fs.NodeLinker     = (*node)(nil)
	_ fs.NodeUnlinker   = (*node)(nil)
	_ fs.NodeRmdirer    = (*node)(nil)
	_ fs.NodeRenamer    = (*node)(nil)
	_ fs.NodeReaddirer  = (*node)(nil)
	_ fs.NodeStatfser   = (*node)(nil)
)

const maxNameLen = 255

// child returns the go-fuse inode for c. go-fuse keeps one per inode
// number, so a node made here for an inode it already knows is dropped.
func (n *node) child(ctx context.Context, c *inode) *fs.Inode {
	return n.NewInode(ctx, &node{m: n.m, d: c}, fs.StableAttr{Mode: c.kind, Ino: c.ino})
}

func caller(ctx context.Context) (uid, gid uint32) {
	if c, ok := fuse.FromContext(ctx); ok {
		return c.Uid, c.Gid
	}
	return 0, 0
}

func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if !n.m.enter() {
		return nil, syscall.EIO
	}
	defer n.m.leave()
	n.d.mu.Lock()
	c := n.d.entries[name]
	n.d.mu.Unlock()
	if c == nil {
		return nil, syscall.ENOENT
	}
	c.mu.Lock()
	c.fillAttr(&out.Attr)
	c.mu.Unlock()
	return n.child(ctx, c), 0
}

func (n *node) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if !n.m.enter() {
		return syscall.EIO
	}
	defer n.m.leave()
	n.d.mu.Lock()
	n.d.fillAttr(&out.Attr)
	n.d.mu.Unlock()
	return 0
}

func (n *node) Setattr(ctx context.Context, _ fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if !n.m.enter() {
		return syscall.EIO
	}
	defer n.m.leave()
	d := n.d
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	if sz, ok := in.GetSize(); ok {
		switch d.kind {
		case syscall.S_IFREG:
		case syscall.S_IFDIR:
			return syscall.EISDIR
		default:
			return syscall.EINVAL
		}
		if sz > maxFileSize {
			return syscall.EFBIG
		}
		if int64(sz) > d.size && n.noSpace() {
			return syscall.ENOSPC
		}
		if errno := d.truncate(int64(sz)); errno != 0 {
			return errno
		}
		d.mtime, d.ctime = now, now
	}
	if m, ok := in.GetMode(); ok {
		d.mode = m
		d.ctime = now
	}
	if uid, ok := in.GetUID(); ok {
		d.uid = uid
		d.ctime = now
	}
	if gid, ok := in.GetGID(); ok {
		d.gid = gid
		d.ctime = now
	}
	if in.Valid&fuse.FATTR_KILL_SUIDGID != 0 {
		d.mode &^= syscall.S_ISUID | syscall.S_ISGID
	}
	if t, ok := in.GetATime(); ok {
		d.atime = t
		d.ctime = now
	}
	if t, ok := in.GetMTime(); ok {
		d.mtime = t
		d.ctime = now
	}
	d.fillAttr(&out.Attr)
	return 0
}

// Open serves a regular file through the kernel's page cache (no direct
// I/O, so that shared writable mmap works) and keeps that cache across
// opens: every change reaches the inode through this kernel, so the cache
// never goes stale while the mount lives.
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if !n.m.enter() {
		return nil, 0, syscall.EIO
	}
	defer n.m.leave()
	if flags&syscall.O_TRUNC != 0 && n.d.kind == syscall.S_IFREG {
		// The kernel truncates with a SETATTR first unless it negotiated
		// atomic O_TRUNC; handle both.
		n.d.mu.Lock()
		if n.d.size != 0 {
			n.d.truncate(0)
			now := time.Now()
			n.d.mtime, n.d.ctime = now, now
		}
		n.d.mu.Unlock()
	}
	return nil, fuse.FOPEN_KEEP_CACHE, 0
}

func (n *node) Read(ctx context.Context, _ fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if !n.m.enter() {
		return nil, syscall.EIO
	}
	defer n.m.leave()
	if n.d.kind != syscall.S_IFREG {
		return nil, syscall.EISDIR
	}
	n.d.mu.Lock()
	k := n.d.read(dest, off)
	n.d.mu.Unlock()
	return fuse.ReadResultData(dest[:k]), 0
}

func (n *node) Write(ctx context.Context, _ fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	if !n.m.enter() {
		return 0, syscall.EIO
	}
	defer n.m.leave()
	if n.d.kind != syscall.S_IFREG {
		return 0, syscall.EISDIR
	}
	if len(data) > 0 && n.noSpace() {
		return 0, syscall.ENOSPC
	}
	n.d.mu.Lock()
	defer n.d.mu.Unlock()
	if errno := n.d.write(data, off); errno != 0 {
		return 0, errno
	}
	now := time.Now()
	n.d.mtime, n.d.ctime = now, now
	return uint32(len(data)), 0
}

// Fsync makes a regular file's whole content and size durable, or a
// directory's entries: the kernel sends it for fsync and fdatasync on any
// descriptor of the inode.
func (n *node) Fsync(ctx context.Context, _ fs.FileHandle, flags uint32) syscall.Errno {
	if !n.m.enter() {
		return syscall.EIO
	}
	defer n.m.leave()
	d := n.d
	switch d.kind {
	case syscall.S_IFREG:
		if errno := n.m.fs.failSyncs.Load(); errno != 0 {
			return syscall.Errno(errno)
		}
		d.mu.Lock()
		d.syncData()
		d.mu.Unlock()
		n.m.fs.fileSyncs.Add(1)
	case syscall.S_IFDIR:
		d.mu.Lock()
		d.syncEntries()
		d.mu.Unlock()
		n.m.fs.dirSyncs.Add(1)
	}
	return 0
}

func (n *node) Allocate(ctx context.Context, _ fs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	if !n.m.enter() {
		return syscall.EIO
	}
	defer n.m.leave()
	d := n.d
	if d.kind != syscall.S_IFREG {
		return syscall.ENODEV
	}
	end := off + size
	if end > maxFileSize || end < off {
		return syscall.EFBIG
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if (mode == 0 || mode == unix.FALLOC_FL_KEEP_SIZE) && n.noSpace() {
		return syscall.ENOSPC
	}
	switch mode {
	case 0, unix.FALLOC_FL_KEEP_SIZE:
		// Memory needs no reservation: only the size can change.
	case unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE, unix.FALLOC_FL_ZERO_RANGE, unix.FALLOC_FL_ZERO_RANGE | unix.FALLOC_FL_KEEP_SIZE:
		d.zeroRange(int64(off), int64(size))
	default:
		return syscall.EOPNOTSUPP
	}
	if mode&unix.FALLOC_FL_KEEP_SIZE == 0 && int64(end) > d.size {
		d.truncate(int64(end))
	}
	now := time.Now()
	d.mtime, d.ctime = now, now
	return 0
}

// link adds name → c to directory n, which must not hold name yet, and
// fills out with c's attributes. The caller holds n.d.mu; c is either new
// or locked here.
func (n *node) link(name string, c *inode, fresh bool, out *fuse.EntryOut) {
	d := n.d
	d.entries[name] = c
	now := time.Now()
	d.mtime, d.ctime = now, now
	if !fresh {
		c.mu.Lock()
		defer c.mu.Unlock()
	}
	c.nlink++
	c.ctime = now
	c.fillAttr(&out.Attr)
}

// add creates a new inode named name in directory n.
func (n *node) add(ctx context.Context, name string, kind, mode uint32, setup func(*inode), out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if len(name) > maxNameLen {
		return nil, syscall.ENAMETOOLONG
	}
	uid, gid := caller(ctx)
	c := newInode(n.m.fs.nextIno.Add(1), kind, mode, uid, gid)
	if setup != nil {
		setup(c)
	}
	d := n.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.nlink == 0 && d != n.m.fs.root {
		return nil, syscall.ENOENT // removed directory
	}
	if _, ok := d.entries[name]; ok {
		return nil, syscall.EEXIST
	}
	n.link(name, c, true, out)
	return n.child(ctx, c), 0
}

func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if !n.m.enter() {
		return nil, nil, 0, syscall.EIO
	}
	defer n.m.leave()
	ch, errno := n.add(ctx, name, syscall.S_IFREG, mode, nil, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	return ch, nil, fuse.FOPEN_KEEP_CACHE, 0
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if !n.m.enter() {
		return nil, syscall.EIO
	}
	defer n.m.leave()
	return n.add(ctx, name, syscall.S_IFDIR, mode, nil, out)
}

// Mknod makes regular files, FIFOs and Unix socket files (bind), which
// hold no data here.
func (n *node) Mknod(ctx context.Context, name string, mode, dev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if !n.m.enter() {
		return nil, syscall.EIO
	}
	defer n.m.leave()
	kind := mode & syscall.S_IFMT
	switch kind {
	case 0:
		kind = syscall.S_IFREG
	case syscall.S_IFREG, syscall.S_IFIFO, syscall.S_IFSOCK:
	default:
		return nil, syscall.EPERM
	}
	return n.add(ctx, name, kind, mode, nil, out)
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if !n.m.enter() {
		return nil, syscall.EIO
	}
	defer n.m.leave()
	return n.add(ctx, name, syscall.S_IFLNK, 0o777, func(c *inode) { c.target = target }, out)
}

func (n *node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	if !n.m.enter() {
		return nil, syscall.EIO
	}
	defer n.m.leave()
	if n.d.kind != syscall.S_IFLNK {
		return nil, syscall.EINVAL
	}
	return []byte(n.d.target), 0
}

func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if !n.m.enter() {
		return nil, syscall.EIO
	}
	defer n.m.leave()
	t, ok := target.(*node)
	if !ok {
		return nil, syscall.EXDEV
	}
	if t.d.kind == syscall.S_IFDIR {
		return nil, syscall.EPERM
	}
	if len(name) > maxNameLen {
		return nil, syscall.ENAMETOOLONG
	}
	d := n.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.entries[name]; ok {
		return nil, syscall.EEXIST
	}
	n.link(name, t.d, false, out)
	return n.child(ctx, t.d), 0
}

// unlinked drops one live name of c. The caller holds the directory's mu.
func unlinked(c *inode, now time.Time) {
	c.mu.Lock()
	if c.kind == syscall.S_IFDIR {
		c.nlink = 0
	} else if c.nlink > 0 {
		c.nlink--
	}
	c.ctime = now
	c.mu.Unlock()
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	if !n.m.enter() {
		return syscall.EIO
	}
	defer n.m.leave()
	d := n.d
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.entries[name]
	if c == nil {
		return syscall.ENOENT
	}
	if c.kind == syscall.S_IFDIR {
		return syscall.EISDIR
	}
	delete(d.entries, name)
	now := time.Now()
	d.mtime, d.ctime = now, now
	unlinked(c, now)
	return 0
}

// emptyDir reports whether c is an empty directory; it locks c.
func emptyDir(c *inode) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries) == 0
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	if !n.m.enter() {
		return syscall.EIO
	}
	defer n.m.leave()
	d := n.d
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.entries[name]
	if c == nil {
		return syscall.ENOENT
	}
	if c.kind != syscall.S_IFDIR {
		return syscall.ENOTDIR
	}
	if !emptyDir(c) {
		return syscall.ENOTEMPTY
	}
	delete(d.entries, name)
	now := time.Now()
	d.mtime, d.ctime = now, now
	unlinked(c, now)
	return 0
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if !n.m.enter() {
		return syscall.EIO
	}
	defer n.m.leave()
	np, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	if flags&^(unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE) != 0 || flags == unix.RENAME_NOREPLACE|unix.RENAME_EXCHANGE {
		return syscall.EINVAL
	}
	if len(newName) > maxNameLen {
		return syscall.ENAMETOOLONG
	}
	src, dst := n.d, np.d

	// Renames are serialised; other operations hold at most a directory
	// and then one of its children, so the directories can be taken in
	// any fixed order here.
	n.m.fs.renameMu.Lock()
	defer n.m.fs.renameMu.Unlock()
	first, second := src, dst
	if second.ino < first.ino {
		first, second = second, first
	}
	first.mu.Lock()
	defer first.mu.Unlock()
	if second != first {
		second.mu.Lock()
		defer second.mu.Unlock()
	}

	c := src.entries[name]
	if c == nil {
		return syscall.ENOENT
	}
	victim := dst.entries[newName]
	if c == dst || victim == src || victim == dst {
		// A directory into itself or over an ancestor: the kernel
		// refuses these before asking; never lock an inode twice.
		return syscall.EINVAL
	}
	now := time.Now()
	touch := func() {
		src.mtime, src.ctime = now, now
		dst.mtime, dst.ctime = now, now
	}
	switch {
	case flags&unix.RENAME_EXCHANGE != 0:
		if victim == nil {
			return syscall.ENOENT
		}
		src.entries[name], dst.entries[newName] = victim, c
		touch()
		return 0
	case victim != nil && flags&unix.RENAME_NOREPLACE != 0:
		return syscall.EEXIST
	case victim == c:
		return 0 // two names of one inode: POSIX says do nothing
	}
	if victim != nil {
		if c.kind == syscall.S_IFDIR {
			if victim.kind != syscall.S_IFDIR {
				return syscall.ENOTDIR
			}
			if !emptyDir(victim) {
				return syscall.ENOTEMPTY
			}
		} else if victim.kind == syscall.S_IFDIR {
			return syscall.EISDIR
		}
		unlinked(victim, now)
	}
	delete(src.entries, name)
	dst.entries[newName] = c
	touch()
	c.mu.Lock()
	c.ctime = now
	c.mu.Unlock()
	return 0
}

func (n *node) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	if !n.m.enter() {
		return nil, syscall.EIO
	}
	defer n.m.leave()
	d := n.d
	d.mu.Lock()
	list := make([]fuse.DirEntry, 0, len(d.entries))
	for name, c := range d.entries {
		list = append(list, fuse.DirEntry{Name: name, Mode: c.kind, Ino: c.ino})
	}
	d.mu.Unlock()
	slices.SortFunc(list, func(a, b fuse.DirEntry) int { return strings.Compare(a.Name, b.Name) })
	return fs.NewListDirStream(list), 0
}

// noSpace reports whether a write that needs space to this file must fail
// with ENOSPC (FS.Fill).
func (n *node) noSpace() bool {
	return n.m.fs.space.Load() != nil && n.m.fs.full(path.Base(n.Path(nil)))
}

func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	const blocks = 1 << 28 // 1 TiB of 4 KiB blocks: memory is the limit
	out.Bsize = 4096
	out.Frsize = 4096
	out.Blocks = blocks
	out.Bfree = blocks
	out.Bavail = blocks
	if n.m.fs.space.Load() != nil {
		out.Bfree, out.Bavail = 0, 0
	}
	out.Files = 1 << 30
	out.Ffree = 1 << 30
	out.NameLen = maxNameLen
	return 0
}
