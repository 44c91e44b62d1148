package audit

import (
	"fmt"
	"testing"
)

// TestTailCacheEvictsOneAtATime: past its bound the cache of chain ends
// forgets the least recently used end, not all of them, so a miss stays the
// exception at any number of chains.
func TestTailCacheEvictsOneAtATime(t *testing.T) {
	l := New(nil)
	for i := range maxTails + 10 {
		l.cacheTail(fmt.Sprintf("subjects/%d", i), tailEntry{seq: int64(i)})
		if i == maxTails-1 {
			l.cachedTail("subjects/0") // recently used: kept
		}
	}
	if n := l.tails.Len(); n != maxTails {
		t.Fatalf("%d chain ends cached, want %d", n, maxTails)
	}
	if _, ok := l.cachedTail("subjects/0"); !ok {
		t.Error("a recently used end was evicted")
	}
	if _, ok := l.cachedTail("subjects/1"); ok {
		t.Error("the least recently used end is still cached")
	}
	if e, ok := l.cachedTail(fmt.Sprintf("subjects/%d", maxTails+9)); !ok || e.seq != int64(maxTails+9) {
		t.Error("the newest end is not cached")
	}
}
