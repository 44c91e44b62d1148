package powercut

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestFill: a full filesystem refuses every write that needs space with
// ENOSPC, changes nothing, reports no free space, spares the files named
// as having room, and takes writes again once freed.
func TestFill(t *testing.T) {
	f := mountTest(t)
	data, spared := filepath.Join(f.Dir(), "data.db"), filepath.Join(f.Dir(), "spared.log")
	put(t, data, []byte("before"), true)
	put(t, spared, []byte("before"), true)

	f.Fill("*.log")
	var st unix.Statfs_t
	if err := unix.Statfs(f.Dir(), &st); err != nil {
		t.Fatal(err)
	}
	if st.Bavail != 0 || st.Bfree != 0 {
		t.Errorf("statfs of a full filesystem: %d blocks available, %d free", st.Bavail, st.Bfree)
	}
	w, err := os.OpenFile(data, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.WriteAt([]byte("after!"), 0); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("overwrite on a full filesystem: %v, want ENOSPC", err)
	}
	if _, err := w.WriteAt([]byte("more"), 6); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("append on a full filesystem: %v, want ENOSPC", err)
	}
	if err := w.Truncate(1 << 20); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("extending truncate on a full filesystem: %v, want ENOSPC", err)
	}
	if err := unix.Fallocate(int(w.Fd()), 0, 0, 1<<20); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("fallocate on a full filesystem: %v, want ENOSPC", err)
	}
	if err := w.Truncate(3); err != nil {
		t.Errorf("shrinking truncate on a full filesystem: %v", err)
	}
	if err := w.Sync(); err != nil {
		t.Errorf("fsync on a full filesystem: %v", err)
	}
	appendTo(t, spared, []byte(" and after"), true)
	wantContent(t, spared, []byte("before and after"))
	if n := f.Stats().NoSpace; n != 4 {
		t.Errorf("Stats().NoSpace = %d, want 4", n)
	}

	f.Free()
	if _, err := w.WriteAt([]byte("freed"), 3); err != nil {
		t.Fatalf("write once freed: %v", err)
	}
	wantContent(t, data, []byte("beffreed"))
}
