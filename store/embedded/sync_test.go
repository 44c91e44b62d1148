package embedded

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeLog is a log file for a logSyncer whose fdatasync is a stand-in: it
// takes a while, counts the rounds and when each began, and fails when told.
type fakeLog struct {
	y      *logSyncer
	mu     sync.Mutex
	rounds []time.Time // when each fdatasync began
	fail   error
	delay  time.Duration
}

func newFakeLog(t *testing.T) *fakeLog {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "db"+walSuffix), []byte("frames"), 0o600); err != nil {
		t.Fatal(err)
	}
	l := &fakeLog{y: newLogSyncer(dir, "db"), delay: 2 * time.Millisecond}
	l.y.fdatasync = func(*os.File) error {
		l.mu.Lock()
		l.rounds = append(l.rounds, time.Now())
		fail, delay := l.fail, l.delay
		l.mu.Unlock()
		time.Sleep(delay)
		return fail
	}
	t.Cleanup(l.y.close)
	return l
}

// write is a write of a caller: it starts, returns, and waits for its sync.
func (l *fakeLog) write(ctx context.Context) error {
	l.y.started.Add(1)
	l.y.finished.Add(1)
	return l.y.sync(ctx)
}

func (l *fakeLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.rounds)
}

// Callers that wait at the same time share rounds, and each is answered by
// a round that began after it asked: never by one already running, which
// may have missed its write.
func TestSyncGroupsCallersInRoundsThatBeganAfterThem(t *testing.T) {
	l := newFakeLog(t)
	const callers = 64
	type call struct{ asked, answered time.Time }
	calls := make([]call, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			time.Sleep(time.Duration(i%8) * time.Millisecond)
			calls[i].asked = time.Now()
			if err := l.write(t.Context()); err != nil {
				t.Error(err)
			}
			calls[i].answered = time.Now()
		})
	}
	wg.Wait()
	rounds := l.count()
	if rounds >= callers/2 {
		t.Errorf("%d callers took %d rounds: the syncs are not shared", callers, rounds)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, c := range calls {
		covered := false
		for _, began := range l.rounds {
			if !began.Before(c.asked) && began.Before(c.answered) {
				covered = true
			}
		}
		if !covered {
			t.Errorf("caller %d was answered with no round begun after it asked", i)
		}
	}
	t.Logf("%d callers, %d rounds", callers, rounds)
}

// A sync with no write since the last round costs no round; a write does.
func TestSyncSkipsWhatIsSyncedAlready(t *testing.T) {
	l := newFakeLog(t)
	ctx := t.Context()
	if err := l.y.sync(ctx); err != nil || l.count() != 1 {
		t.Fatalf("first sync: %v, %d rounds; want one (what was written before it is unknown)", err, l.count())
	}
	if err := l.y.sync(ctx); err != nil || l.count() != 1 {
		t.Fatalf("sync with nothing written since: %v, %d rounds, want still 1", err, l.count())
	}
	// A write still in flight may be read already: it is synced for.
	l.y.started.Add(1)
	if err := l.y.sync(ctx); err != nil || l.count() != 2 {
		t.Fatalf("sync with a write in flight: %v, %d rounds, want 2", err, l.count())
	}
	l.y.finished.Add(1)
	if err := l.write(ctx); err != nil || l.count() != 3 {
		t.Fatalf("sync after a write: %v, %d rounds, want 3", err, l.count())
	}
}

// Once a sync failed, no later write is known to last: Sync fails for good,
// without syncing again (a later fdatasync could succeed for pages the
// kernel dropped).
func TestSyncFailsForGoodAfterAFailure(t *testing.T) {
	l := newFakeLog(t)
	ctx := t.Context()
	l.fail = syscall.EIO
	if err := l.write(ctx); !errors.Is(err, syscall.EIO) {
		t.Fatalf("failing sync: %v, want EIO", err)
	}
	l.mu.Lock()
	l.fail = nil
	l.mu.Unlock()
	n := l.count()
	if err := l.write(ctx); err == nil {
		t.Fatal("a write after a failed sync reported durable")
	}
	if l.count() != n {
		t.Errorf("a sync ran after one had failed")
	}
}

// A caller waiting for the round after the one that failed gets the failure
// too, without a sync: its write may sit behind the pages the kernel could
// not write, and a second fdatasync would not say so.
func TestSyncFailureReachesWhoWaitsBehindIt(t *testing.T) {
	l := newFakeLog(t)
	l.delay = 50 * time.Millisecond
	l.fail = syscall.EIO
	first := make(chan error, 1)
	go func() { first <- l.write(context.Background()) }()
	for l.count() == 0 {
		time.Sleep(time.Millisecond)
	}
	l.mu.Lock()
	l.fail, l.delay = nil, 0 // a second sync would succeed
	l.mu.Unlock()
	if err := l.write(t.Context()); err == nil {
		t.Error("the caller queued behind a failed sync was told its write is durable")
	}
	if err := <-first; !errors.Is(err, syscall.EIO) {
		t.Errorf("the failed sync's caller: %v, want EIO", err)
	}
	if n := l.count(); n != 1 {
		t.Errorf("%d syncs ran; after the failure none should", n)
	}
	// Nothing new was written, yet the log is not taken for clean.
	if err := l.y.sync(t.Context()); err == nil {
		t.Error("a sync after the failure, with nothing new written, succeeded")
	}
}

// A caller whose context ends stops waiting; the round goes on for others.
func TestSyncWaitEndsWithTheContext(t *testing.T) {
	l := newFakeLog(t)
	l.delay = 200 * time.Millisecond
	go func() { _ = l.write(context.Background()) }() // runs a long round
	for l.count() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if err := l.write(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait past the context: %v", err)
	}
}

// No log is nothing to sync: SQLite removed it after a checkpoint.
func TestSyncWithoutALog(t *testing.T) {
	y := newLogSyncer(t.TempDir(), "db")
	y.fdatasync = func(*os.File) error { t.Error("synced a log that does not exist"); return nil }
	if err := y.sync(t.Context()); err != nil {
		t.Fatal(err)
	}
}
