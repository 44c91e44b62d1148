package embedded

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/example/personaldata/store/durablefile"
)

// Sync makes every commit so far to the databases dbs durable: it returns
// once their write-ahead logs are synced to stable storage. A server
// started Volatile commits without syncing, so its owner calls Sync after
// a write and before anything depends on it (an answer, a later write);
// together that is as durable as SQLite's synchronous=FULL, and faster
// under concurrent writers, whose calls share one sync (group commit).
//
// Why that holds: in WAL mode a commit appends its pages and a commit frame
// to the database's log, and recovery replays the frames up to the last
// commit whose checksums chain from the log's header. With
// synchronous=NORMAL SQLite syncs that header whenever it starts the log
// anew, and syncs the log before every checkpoint; all it leaves unsynced
// is the frames of the latest commits, which an fsync of the log made after
// they returned covers. FULL makes the same fsync inside the commit,
// holding the database's one write lock while it waits; here the lock is
// free during the sync.
//
// A sync that fails leaves it unknown which commits reached the disk, and
// the kernel may have dropped the pages it could not write, so that a later
// fsync reports success for data it lost. Once one has failed, Sync fails
// for good; a restart recovers what the logs hold.
func (s *Server) Sync(ctx context.Context, dbs ...string) error {
	syncers := make([]*logSyncer, 0, len(dbs))
	for _, db := range dbs {
		if !validDBName(db) {
			return fmt.Errorf("embedded: sync: invalid database name %q", db)
		}
		if y := s.logSyncer(db); !y.clean() {
			syncers = append(syncers, y)
		}
	}
	// The logs in parallel, the first in this goroutine.
	errs := make([]error, len(syncers))
	var wg sync.WaitGroup
	for i := 1; i < len(syncers); i++ {
		wg.Go(func() { errs[i] = syncers[i].sync(ctx) })
	}
	if len(syncers) > 0 {
		errs[0] = syncers[0].sync(ctx)
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Writing tells the syncers that a write to database db starts; the
// function it returns tells that it has returned. Sync skips a database
// whose writes have all returned and been synced, so that an owner may ask
// for every database to be made durable before it answers at little cost.
// A database that Writing was never told of is synced at least once.
func (s *Server) Writing(db string) (done func()) {
	y := s.logSyncer(db)
	y.started.Add(1)
	return func() { y.finished.Add(1) }
}

// logSyncer returns the syncer of db's log, made on first use.
func (s *Server) logSyncer(db string) *logSyncer {
	s.syncersMu.Lock()
	defer s.syncersMu.Unlock()
	y := s.syncers[db]
	if y == nil {
		y = newLogSyncer(s.dir, db)
		y.onFailure = &s.onFailure
		s.syncers[db] = y
	}
	return y
}

// closeSyncers closes the logs kept open; after the server has stopped.
func (s *Server) closeSyncers() {
	s.syncersMu.Lock()
	defer s.syncersMu.Unlock()
	for _, y := range s.syncers {
		y.close()
	}
}

// walSuffix ends the name of a database's write-ahead log.
const walSuffix = ".sqlite-wal"

// logSyncer runs the syncs of one database's log in rounds. A caller that
// finds no round running runs one itself, at once; callers that come while
// it runs wait for the next round, which starts when it ends, so every
// caller is answered by a round that began after it asked, and a round
// answers all who waited for it (group commit).
type logSyncer struct {
	dir, path string

	// started and finished count the writes that started and returned
	// (Writing); synced is the count of finished writes as it was when the
	// last completed round began, all of which that round made durable.
	started, finished, synced atomic.Int64

	mu      sync.Mutex
	running bool
	next    *syncRound // the round that starts when the running one ends
	failed  error      // why every sync fails from now on: a failed sync, or close
	syncErr error      // the failed sync's error, when that was why
	closing bool       // close came while a round ran: the last round closes the log
	// poisoned says failed is set, for clean, which takes no lock.
	poisoned atomic.Bool

	// onFailure is the server's hook, called once this log's sync fails.
	onFailure *atomic.Pointer[func()]

	// fdatasync syncs the log (a test's stand-in can fail or count).
	fdatasync func(*os.File) error

	// log is the log, kept open between rounds (nil before the first);
	// only the running round touches it.
	log   *os.File
	logFI os.FileInfo // of log, to tell when the path names another file
}

func newLogSyncer(dir, db string) *logSyncer {
	y := &logSyncer{dir: dir, path: filepath.Join(dir, db+walSuffix), fdatasync: fdatasync}
	// As if one write had returned, unsynced: whatever was written before
	// (the collections made at start) is synced once.
	y.started.Store(1)
	y.finished.Store(1)
	return y
}

// fdatasync syncs a file's data and size, not its times, as SQLite does.
func fdatasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }

type syncRound struct {
	done chan struct{} // closed when err is set
	err  error
}

// clean reports whether every write that started has returned and was
// synced: whatever a caller could have read of them, or written, is
// durable. Never after a failed sync, which makes every later sync fail.
func (y *logSyncer) clean() bool {
	return !y.poisoned.Load() && y.started.Load() == y.synced.Load()
}

func (y *logSyncer) sync(ctx context.Context) error {
	if y.clean() {
		return nil
	}
	y.mu.Lock()
	if y.failed != nil {
		y.mu.Unlock()
		return y.failed
	}
	if !y.running {
		y.running = true
		y.mu.Unlock()
		r := &syncRound{done: make(chan struct{})}
		y.run(r)
		return r.err
	}
	if y.next == nil {
		y.next = &syncRound{done: make(chan struct{})}
	}
	r := y.next
	y.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run syncs the log for round r, then hands the next round, if anyone
// waits for one, to a goroutine of its own, so that the caller who ran r
// is answered without waiting for it. Once a sync failed, no round runs
// again: those waiting get the failure, since a later fsync could report
// success for pages the kernel dropped after the failed one.
func (y *logSyncer) run(r *syncRound) {
	finished := y.finished.Load() // before the sync, which covers them all
	r.err = y.syncLog()
	if r.err == nil {
		y.synced.Store(finished)
	}
	y.mu.Lock()
	failedNow := r.err != nil && y.failed == nil
	if failedNow {
		y.syncErr = fmt.Errorf("embedded: a sync failed, so no later write is known to last until a restart: %w", r.err)
		y.fail(y.syncErr)
	}
	next := y.next
	y.next = nil
	if next != nil && y.failed != nil {
		next.err = y.failed
		close(next.done)
		next = nil
	}
	y.running = next != nil
	closeLog := y.closing && next == nil
	y.mu.Unlock()
	if failedNow && y.onFailure != nil {
		// Before the callers hear of it, so that whoever watches (the
		// readiness) knows first.
		if f := y.onFailure.Load(); f != nil {
			(*f)()
		}
	}
	close(r.done)
	if next != nil {
		go y.run(next)
	}
	if closeLog {
		y.closeLog()
	}
}

// fail records the first failure, after which every sync fails; y.mu held.
func (y *logSyncer) fail(err error) {
	if y.failed == nil {
		y.failed = err
		y.poisoned.Store(true)
	}
}

// OnFailure has f called once a sync has failed, before the writers that
// waited for it are answered: from then on Failed is not nil.
func (s *Server) OnFailure(f func()) { s.onFailure.Store(&f) }

// Failed returns the error of the first sync that failed, for good: the
// server cannot make a write durable until it is restarted (readiness and
// liveness report it). Nil while every sync has succeeded.
func (s *Server) Failed() error {
	s.syncersMu.Lock()
	defer s.syncersMu.Unlock()
	for _, y := range s.syncers {
		y.mu.Lock()
		err := y.syncErr
		y.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// syncLog fsyncs the log, and the directory when the log is new to it,
// since the log's entry in the directory must last too. The log is kept
// open, and checked by its path at every round, so that a log made anew is
// not missed. No log is nothing to sync: SQLite removes a log only after
// checkpointing it into the database, with syncs of its own.
func (y *logSyncer) syncLog() error {
	name := filepath.Base(y.path)
	fi, err := os.Stat(y.path)
	if errors.Is(err, os.ErrNotExist) {
		y.closeLog()
		return nil
	}
	if err != nil {
		return fmt.Errorf("embedded: sync %s: %w", name, err)
	}
	fresh := y.log == nil || !os.SameFile(y.logFI, fi)
	if fresh {
		y.closeLog()
		f, err := os.Open(y.path)
		if err != nil {
			return fmt.Errorf("embedded: sync %s: %w", name, err)
		}
		if fi, err = f.Stat(); err != nil {
			_ = f.Close()
			return fmt.Errorf("embedded: sync %s: %w", name, err)
		}
		y.log, y.logFI = f, fi
	}
	if err := y.fdatasync(y.log); err != nil {
		return fmt.Errorf("embedded: sync %s: %w", name, err)
	}
	if fresh {
		return durablefile.SyncDir(y.dir)
	}
	return nil
}

// close closes the log once no round runs; after it, sync fails.
func (y *logSyncer) close() {
	y.mu.Lock()
	y.fail(errors.New("embedded: sync: the store is closed"))
	if y.running {
		y.closing = true
		y.mu.Unlock()
		return
	}
	y.mu.Unlock()
	y.closeLog()
}

func (y *logSyncer) closeLog() {
	if y.log != nil {
		_ = y.log.Close()
		y.log, y.logFI = nil, nil
	}
}
