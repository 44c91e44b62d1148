package powercut

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

const mmapSize = 4 * pageSize

func mmapPattern(b byte) []byte { return bytes.Repeat([]byte{b}, mmapSize) }

// mmapChild maps the file shared and writable, writes pattern A through
// the mapping and fsyncs, checks that read sees it, then writes pattern B
// over the first half without syncing, says "ok" and waits to be killed.
func mmapChild(name string) error {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Truncate(mmapSize); err != nil {
		return err
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, mmapSize, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap: %w", err)
	}
	copy(mem, mmapPattern('A'))
	if err := f.Sync(); err != nil { // writes the dirty pages back, then fsyncs
		return err
	}
	got := make([]byte, mmapSize)
	if _, err := f.ReadAt(got, 0); err != nil {
		return err
	}
	if !bytes.Equal(got, mmapPattern('A')) {
		return fmt.Errorf("read after the mmap write differs")
	}
	copy(mem[:mmapSize/2], mmapPattern('B'))
	fmt.Println("ok")
	time.Sleep(time.Hour) // until killed
	return nil
}

// TestMmap checks that writes through a shared writable mapping reach the
// filesystem and become durable with fsync, and that later unsynced ones
// are forgotten by a cut. The mapping is made in a child process, which
// is killed before the cut.
func TestMmap(t *testing.T) {
	f := mountTest(t)
	name := filepath.Join(f.Dir(), "mapped")
	put(t, name, nil, true)
	syncDir(t, f.Dir())

	c := childCmd(t, "mmap", name)
	out, err := c.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
	if got := readLine(t, out); got != "ok" {
		t.Fatalf("child said %q", got)
	}
	if err := c.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = c.Wait()
	cut(t, f)
	wantContent(t, name, mmapPattern('A'))
}
