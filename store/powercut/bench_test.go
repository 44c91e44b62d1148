package powercut

import (
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkWriteFsync measures a 4 KiB pwrite and an fsync into a 32 MiB
// file, the pattern of a database commit.
func BenchmarkWriteFsync(b *testing.B) {
	if err := Available(); err != nil {
		b.Skipf("FUSE not available: %v", err)
	}
	f, err := Mount(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = f.Unmount() })
	const size = 32 << 20
	fl, err := os.Create(filepath.Join(f.Dir(), "db"))
	if err != nil {
		b.Fatal(err)
	}
	defer fl.Close()
	if _, err := fl.Write(make([]byte, size)); err != nil {
		b.Fatal(err)
	}
	buf := randomBytes(3, 4096)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		off := int64(i*7919*4096) % size
		if _, err := fl.WriteAt(buf, off); err != nil {
			b.Fatal(err)
		}
		if err := fl.Sync(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSequentialWrite measures 1 MiB writes without fsync.
func BenchmarkSequentialWrite(b *testing.B) {
	if err := Available(); err != nil {
		b.Skipf("FUSE not available: %v", err)
	}
	f, err := Mount(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = f.Unmount() })
	fl, err := os.Create(filepath.Join(f.Dir(), "big"))
	if err != nil {
		b.Fatal(err)
	}
	defer fl.Close()
	buf := randomBytes(4, 1<<20)
	b.SetBytes(int64(len(buf)))
	for i := 0; b.Loop(); i++ {
		if _, err := fl.WriteAt(buf, int64(i%256)<<20); err != nil {
			b.Fatal(err)
		}
	}
}
