package powercut

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"
)

// TestInodePages drives one inode's content with random writes,
// truncations, zeroed ranges, syncs and reverts, and compares it after
// every step with a plain byte-slice model of the live and durable
// content. It needs no FUSE.
func TestInodePages(t *testing.T) {
	for seed := range uint64(10) {
		r := rand.New(rand.NewPCG(seed, 99))
		n := newInode(2, syscall.S_IFREG, 0o644, 0, 0)
		var live, durable []byte
		for step := range 400 {
			// Sizes straddle page boundaries.
			span := int64(3 * pageSize)
			switch op := r.IntN(10); {
			case op < 5:
				off := r.Int64N(span)
				data := randomBytes(seed*1000+uint64(step), 1+r.IntN(pageSize+100))
				if errno := n.write(data, off); errno != 0 {
					t.Fatal(errno)
				}
				if end := int(off) + len(data); end > len(live) {
					live = append(live, make([]byte, end-len(live))...)
				}
				copy(live[off:], data)
			case op < 7:
				size := r.Int64N(span)
				if errno := n.truncate(size); errno != 0 {
					t.Fatal(errno)
				}
				if int(size) < len(live) {
					live = live[:size]
				} else {
					live = append(live, make([]byte, int(size)-len(live))...)
				}
			case op < 8:
				off, length := r.Int64N(span), r.Int64N(pageSize*2)
				n.zeroRange(off, length)
				if off < int64(len(live)) {
					clear(live[off:min(int64(len(live)), off+length)])
				}
			case op < 9:
				n.syncData()
				durable = slices.Clone(live)
			default:
				wantLost := int64(0)
				for i := range live {
					if i >= len(durable) || live[i] != durable[i] {
						wantLost++
					}
				}
				if got := n.lostBytes(); got != wantLost {
					t.Fatalf("seed %d step %d: lostBytes %d, want %d", seed, step, got, wantLost)
				}
				n.revertData()
				live = slices.Clone(durable)
			}
			if n.size != int64(len(live)) {
				t.Fatalf("seed %d step %d: size %d, want %d", seed, step, n.size, len(live))
			}
			got := make([]byte, len(live)+10)
			got = got[:n.read(got, 0)]
			if !bytes.Equal(got, live) {
				t.Fatalf("seed %d step %d: content differs from the model", seed, step)
			}
			if len(n.pages) != int((n.size+pageSize-1)/pageSize) {
				t.Fatalf("seed %d step %d: %d pages for size %d", seed, step, len(n.pages), n.size)
			}
			if last := len(n.pages) - 1; last >= 0 && n.pages[last] != nil && !allZero(n.pages[last][n.size-int64(last)*pageSize:]) {
				t.Fatalf("seed %d step %d: bytes past the size are not zero", seed, step)
			}
		}
		// The durable copy is untouched by the writes since the sync.
		n.revertData()
		got := make([]byte, len(durable))
		got = got[:n.read(got, 0)]
		if !bytes.Equal(got, durable) {
			t.Fatalf("seed %d: durable content changed", seed)
		}
	}
}
