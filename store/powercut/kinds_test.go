package powercut

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func nlink(t *testing.T, name string) uint64 {
	t.Helper()
	st, err := os.Lstat(name)
	if err != nil {
		t.Fatal(err)
	}
	return uint64(st.Sys().(*syscall.Stat_t).Nlink)
}

// TestOtherKinds checks symbolic links, hard links, FIFOs, Unix sockets,
// rename flags and directory listings, live and across a cut.
func TestOtherKinds(t *testing.T) {
	f := mountTest(t)
	root := f.Dir()
	at := func(name string) string { return filepath.Join(root, name) }

	put(t, at("a"), []byte("AAA"), true)
	put(t, at("b"), []byte("BBB"), true)
	if err := os.Symlink("a", at("sym")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(at("a"), at("hard")); err != nil {
		t.Fatal(err)
	}
	if got := nlink(t, at("a")); got != 2 {
		t.Errorf("a has %d links, want 2", got)
	}
	if err := syscall.Mkfifo(at("fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(at("dir"), 0o700); err != nil {
		t.Fatal(err)
	}

	// A Unix socket works on it.
	l, err := net.Listen("unix", at("sock"))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		if c, err := l.Accept(); err == nil {
			_, _ = c.Write([]byte("hi"))
			c.Close()
		}
	}()
	c, err := net.Dial("unix", at("sock"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := c.Read(buf); err != nil || string(buf) != "hi" {
		t.Errorf("read %q, %v from the socket", buf, err)
	}
	c.Close()
	l.Close() // removes the socket file

	// Rename flags.
	if err := unix.Renameat2(unix.AT_FDCWD, at("a"), unix.AT_FDCWD, at("b"), unix.RENAME_NOREPLACE); !errors.Is(err, unix.EEXIST) {
		t.Errorf("RENAME_NOREPLACE over b: %v, want EEXIST", err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, at("a"), unix.AT_FDCWD, at("b"), unix.RENAME_EXCHANGE); err != nil {
		t.Fatal(err)
	}
	wantContent(t, at("a"), []byte("BBB"))
	wantContent(t, at("b"), []byte("AAA"))
	if err := os.Rename(at("dir"), at("b")); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("rename of a directory over a file: %v, want ENOTDIR", err)
	}

	ents, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name()+":"+e.Type().String())
	}
	if want := []string{"a:----------", "b:----------", "dir:d---------", "fifo:p---------", "hard:----------", "sym:L---------"}; !slices.Equal(names, want) {
		t.Errorf("listing %q, want %q", names, want)
	}

	// Everything durable but the exchange and the removal of hard.
	syncDir(t, root)
	if err := unix.Renameat2(unix.AT_FDCWD, at("a"), unix.AT_FDCWD, at("b"), unix.RENAME_EXCHANGE); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(at("hard")); err != nil {
		t.Fatal(err)
	}
	if got := nlink(t, at("b")); got != 1 {
		t.Errorf("b has %d links after removing hard, want 1", got)
	}
	cut(t, f)

	wantContent(t, at("a"), []byte("BBB"))
	wantContent(t, at("b"), []byte("AAA"))
	wantContent(t, at("hard"), []byte("AAA"))
	if got := nlink(t, at("b")); got != 2 {
		t.Errorf("b has %d links after the cut, want 2", got)
	}
	if target, err := os.Readlink(at("sym")); err != nil || target != "a" {
		t.Errorf("sym -> %q, %v; want a", target, err)
	}
	if st, err := os.Lstat(at("fifo")); err != nil || st.Mode().Type() != os.ModeNamedPipe {
		t.Errorf("fifo: %v, %v", st, err)
	}
	if st, err := os.Stat(at("dir")); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("dir: %v, %v", st, err)
	}
	wantAbsent(t, at("sock"))
}

// TestPermissions checks, as another user, that the kernel enforces the
// modes: a 0644 file of root's can be read but not written.
func TestPermissions(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to run a command as another user")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("no setpriv to run a command as another user")
	}
	f := mountTest(t)
	if f.Fallback() != nil {
		t.Skip("mounted with fusermount, without allow_other")
	}
	// Let the other user reach the mount point.
	if err := os.Chmod(filepath.Dir(f.Dir()), 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(f.Dir(), "mine")
	put(t, p, []byte("root's"), false)
	as := func(args ...string) ([]byte, error) {
		return exec.Command(setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--"}, args...)...).CombinedOutput()
	}
	if out, err := as("stat", f.Dir()); err != nil {
		t.Skipf("the other user cannot reach the mount point (TMPDIR?): %v %s", err, out)
	}
	if out, err := as("cat", p); err != nil || string(out) != "root's" {
		t.Errorf("reading as another user: %q, %v", out, err)
	}
	if out, err := as("dd", "if=/dev/zero", "of="+p, "bs=1", "count=1", "conv=notrunc,nocreat"); err == nil {
		t.Errorf("writing as another user succeeded: %q", out)
	} else {
		t.Logf("write: %q %v", out, err)
	}
	if out, err := as("touch", filepath.Join(f.Dir(), "theirs")); err == nil {
		t.Errorf("creating in root's 0755 directory as another user succeeded: %q", out)
	}
	wantContent(t, p, []byte("root's"))
}
