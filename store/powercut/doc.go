// Package powercut is a FUSE filesystem for tests that simulates a power
// cut, in the manner of LazyFS (which Jepsen uses). It stands in for the
// disk under the service's embedded store (FerretDB on SQLite) in
// durability tests: a test runs the store on it, kills the processes using
// it, calls Cut, and checks that what the store acknowledged is still
// there. A plain kill of the process cannot show that, since the kernel
// keeps every write the process made; a power cut loses what was never
// synced, and this filesystem loses exactly that.
//
// # Model
//
// The filesystem keeps every file's content and every directory's entries
// in memory, and separately what has been made durable:
//
//   - A regular file's content and size become durable when fsync or
//     fdatasync is called on any open descriptor of it: the whole file as
//     it is then (the kernel's fsync is per inode). A cut sets the file
//     back to its content at its last sync, or empty if it was never
//     synced. Data written through a shared mmap counts once the kernel
//     has written it back, which fsync and msync(MS_SYNC) make it do.
//   - A directory's entries (names to inodes: creations, removals,
//     renames, links, mkdir and rmdir within it) become durable only when
//     fsync is called on the directory itself (open it, fsync the
//     descriptor). After a cut a directory holds exactly its entries as of
//     its last sync (none if it was never synced); a rename is durable
//     once both directories involved have been synced. An inode that no
//     durable entry reaches from the root is gone after a cut, so a new
//     file whose content was synced but whose directory was not is gone,
//     and a removed file whose directory was not synced comes back. The
//     root counts as synced empty at Mount.
//   - Syncing a file does not sync its directory entry, nor does syncing a
//     directory sync the content of its files: strict POSIX, as a power
//     cut can do on a real disk, stricter than ext4 and others usually are.
//   - Modes, owners and timestamps are kept live: a cut keeps them as they
//     were, which a real disk need not do.
//   - If renames synced in one directory but not the other leave a file
//     with two names after a cut, it keeps both (a hard link); a directory
//     keeps only the first name met breadth first from the root, so the
//     tree stays a tree.
//
// File content is kept in pages of 16 KiB. After a sync the durable copy
// shares every page with the live content, and the first write to a page
// copies only that page, so a sync costs a copy of the page pointers,
// not of the data.
//
// The filesystem is served through the kernel's page cache, without
// direct I/O and without the kernel's writeback cache: every write and
// every fsync reaches it when it happens, and shared writable mmap works,
// as SQLite's WAL mode needs for its -shm file. POSIX locks are left to
// the kernel, and so are permission checks (default_permissions); when
// mounted directly as root, other users may use it too (allow_other).
// Hard links, symbolic links, FIFOs and Unix socket files are supported;
// extended attributes are not.
//
// Mount needs /dev/fuse and either root (it then mounts directly) or a
// fusermount helper; Available tells whether it can work here. Serving
// the filesystem from the process that uses it works for plain file
// calls, but a process that mmaps files on it (SQLite in WAL mode) should
// be a child process: a page fault on a mapped page blocks a thread that
// the Go runtime may need to serve that very fault.
package powercut
