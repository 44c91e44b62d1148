package powercut

import (
	"bytes"
	"maps"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// pageSize is the unit of copy-on-write between a file's live content and
// its durable copy: after an fsync both share every page, and the first
// write to a page copies that page only.
const pageSize = 16 << 10

// maxFileSize bounds a file's size; beyond it a write or truncate fails
// with EFBIG, as on a real file system with a size limit.
const maxFileSize = 1 << 40

// page is pageSize bytes of a file. A nil *page reads as zeros.
type page [pageSize]byte

var zeroPage page

func allZero(b []byte) bool { return bytes.Equal(b, zeroPage[:len(b)]) }

// inode is one file, directory, symbolic link or special file, live and
// durable. It outlives mounts: after a cut the same inode is served again
// by a new mount, with its live state set back to its durable state.
//
// Locking: mu guards every field below it. An operation holds at most one
// reachable inode's mu at a time, except that a directory operation may
// take its child's mu while holding the directory's (never the other way
// round), and Rename, serialised by FS.renameMu, may hold the directories
// it involves, then their children.
type inode struct {
	ino  uint64
	kind uint32 // syscall.S_IFREG, S_IFDIR, S_IFLNK, S_IFIFO or S_IFSOCK; never changes

	mu sync.Mutex

	// Attributes, always live (a cut keeps them, except the size).
	mode                uint32 // permission bits (07777)
	uid, gid            uint32
	rdev                uint32
	atime, mtime, ctime time.Time
	// nlink counts the live directory entries that name this inode
	// (directories report 2 plus their subdirectories instead).
	nlink uint32

	// Regular file. pages holds ceil(size/pageSize) pages; the bytes of
	// the last page past size are zero. dpages and dsize are the content
	// as of the last fsync: the two share every page not written since,
	// and a write copies a shared page before changing it.
	pages  []*page
	size   int64
	dpages []*page
	dsize  int64

	// Directory: live entries, and the entries as of the last fsync of
	// the directory.
	entries  map[string]*inode
	dentries map[string]*inode

	// Symbolic link target; it never changes, so it is as durable as any
	// entry that names the link.
	target string
}

func newInode(ino uint64, kind, mode, uid, gid uint32) *inode {
	now := time.Now()
	n := &inode{
		ino:   ino,
		kind:  kind,
		mode:  mode & 07777,
		uid:   uid,
		gid:   gid,
		atime: now,
		mtime: now,
		ctime: now,
	}
	if kind == syscall.S_IFDIR {
		n.entries = map[string]*inode{}
	}
	return n
}

// fillAttr copies the live attributes into out. n.mu must be held.
func (n *inode) fillAttr(out *fuse.Attr) {
	out.Ino = n.ino
	out.Mode = n.kind | n.mode
	out.Uid = n.uid
	out.Gid = n.gid
	out.Rdev = n.rdev
	out.Nlink = n.nlink
	switch n.kind {
	case syscall.S_IFREG:
		out.Size = uint64(n.size)
	case syscall.S_IFDIR:
		out.Nlink = 2
		for _, c := range n.entries {
			if c.kind == syscall.S_IFDIR {
				out.Nlink++
			}
		}
		out.Size = 4096
	case syscall.S_IFLNK:
		out.Size = uint64(len(n.target))
	}
	out.Blksize = 4096
	out.Blocks = (out.Size + 511) / 512
	out.SetTimes(&n.atime, &n.mtime, &n.ctime)
}

// read copies the live content at off into dest and returns how many bytes
// it copied. n.mu must be held.
func (n *inode) read(dest []byte, off int64) int {
	if off >= n.size || off < 0 {
		return 0
	}
	end := min(n.size, off+int64(len(dest)))
	for p := off; p < end; {
		i, po := p/pageSize, p%pageSize
		k := min(pageSize-po, end-p)
		d := dest[p-off : p-off+k]
		if pg := n.pages[i]; pg != nil {
			copy(d, pg[po:po+k])
		} else {
			clear(d)
		}
		p += k
	}
	return int(end - off)
}

// writablePage returns page i of the live content, ready to be written: a
// page still shared with the durable copy is copied first, and a hole gets
// a fresh zero page. n.mu must be held.
func (n *inode) writablePage(i int64) *page {
	pg := n.pages[i]
	switch {
	case pg == nil:
		pg = new(page)
		n.pages[i] = pg
	case i < int64(len(n.dpages)) && n.dpages[i] == pg:
		c := *pg
		pg = &c
		n.pages[i] = pg
	}
	return pg
}

// setPages makes the live content hold exactly the pages needed for size,
// dropping pages past it and adding holes up to it. It does not touch the
// bytes of the last page. n.mu must be held.
func (n *inode) setPages(size int64) {
	want := int((size + pageSize - 1) / pageSize)
	if want < len(n.pages) {
		clear(n.pages[want:])
		n.pages = n.pages[:want]
		return
	}
	for len(n.pages) < want {
		n.pages = append(n.pages, nil)
	}
}

// write writes data at off into the live content. n.mu must be held.
func (n *inode) write(data []byte, off int64) syscall.Errno {
	if off < 0 {
		return syscall.EINVAL
	}
	end := off + int64(len(data))
	if end > maxFileSize {
		return syscall.EFBIG
	}
	if end > n.size {
		n.setPages(end)
		n.size = end
	}
	for p := off; p < end; {
		i, po := p/pageSize, p%pageSize
		k := min(pageSize-po, end-p)
		pg := n.writablePage(i)
		copy(pg[po:po+k], data[p-off:p-off+k])
		p += k
	}
	return 0
}

// truncate sets the live size, zeroing what a later extension would
// expose. n.mu must be held.
func (n *inode) truncate(size int64) syscall.Errno {
	if size < 0 {
		return syscall.EINVAL
	}
	if size > maxFileSize {
		return syscall.EFBIG
	}
	if size < n.size {
		n.setPages(size)
		if po := size % pageSize; po != 0 {
			i := size / pageSize
			if pg := n.pages[i]; pg != nil && !allZero(pg[po:]) {
				clear(n.writablePage(i)[po:])
			}
		}
	} else {
		n.setPages(size)
	}
	n.size = size
	return 0
}

// zeroRange writes zeros over [off, off+length) of the live content,
// within the current size. n.mu must be held.
func (n *inode) zeroRange(off, length int64) {
	end := min(n.size, off+length)
	for p := off; p < end; {
		i, po := p/pageSize, p%pageSize
		k := min(pageSize-po, end-p)
		if n.pages[i] != nil {
			clear(n.writablePage(i)[po : po+k])
		}
		p += k
	}
}

// syncData makes the live content durable: the durable copy then shares
// every live page, so it costs a copy of the page pointers, not of the
// data. n.mu must be held.
func (n *inode) syncData() {
	old := len(n.dpages)
	n.dpages = append(n.dpages[:0], n.pages...)
	if old > len(n.dpages) {
		clear(n.dpages[len(n.dpages):old])
	}
	n.dsize = n.size
}

// syncEntries makes the live entries of a directory durable. n.mu must be
// held.
func (n *inode) syncEntries() {
	n.dentries = maps.Clone(n.entries)
}

// lostBytes counts the bytes of the live content that a revert to the
// durable content loses: those past the durable size and those that
// differ from it. n.mu must be held.
func (n *inode) lostBytes() int64 {
	var lost int64
	for i := int64(0); i < int64(len(n.pages)); i++ {
		lo := i * pageSize
		hi := min(n.size, lo+pageSize)
		if hi > n.dsize {
			lost += hi - max(lo, n.dsize)
			hi = n.dsize
		}
		if hi <= lo {
			continue
		}
		live := n.pages[i]
		var dur *page
		if i < int64(len(n.dpages)) {
			dur = n.dpages[i]
		}
		if live == dur {
			continue
		}
		for j := int64(0); j < hi-lo; j++ {
			var a, b byte
			if live != nil {
				a = live[j]
			}
			if dur != nil {
				b = dur[j]
			}
			if a != b {
				lost++
			}
		}
	}
	return lost
}

// revertData sets the live content back to the durable content. n.mu must
// be held.
func (n *inode) revertData() {
	clear(n.pages)
	n.pages = append(n.pages[:0], n.dpages...)
	n.size = n.dsize
}
