package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/FerretDB/FerretDB/ferretdb"
	"golang.org/x/sys/unix"

	"github.com/example/personaldata/store/durablefile"
	_ "modernc.org/sqlite" // driver "sqlite"; FerretDB links the same version anyway
)

// Server is an in-process FerretDB (SQLite) listening on loopback.
type Server struct {
	dir      string // absolute data directory, one <db>.sqlite file per database
	uri      string
	cancel   context.CancelFunc
	done     chan struct{} // closed when Run has returned
	runErr   error         // Run's result; read only after done is closed
	lock     *os.File      // holds the data directory's lock (lockName) until Close
	lockOnce sync.Once

	// syncers make the commits of each database durable (Sync).
	syncersMu sync.Mutex
	syncers   map[string]*logSyncer
	// onFailure, when set, is called once a sync has failed (Failed).
	onFailure atomic.Pointer[func()]
	// snapshotOpened, set by tests only (SetSnapshotHook), is called in
	// BeginSnapshot after each database's view is fixed.
	snapshotOpened atomic.Pointer[func(db string)]
}

// Durability says when the embedded store's commits are done.
type Durability int

const (
	// Durable commits are on stable storage when they return (SQLite's
	// synchronous=FULL): they survive a power cut or a kernel crash. The
	// zero value, for clients that do not call Sync.
	Durable Durability = iota
	// Volatile commits are in the operating system's cache when they
	// return (synchronous=NORMAL): they survive the process being killed,
	// not a power cut, which can roll back the last of them, and each
	// database to a point in time of its own. Sync makes them durable.
	Volatile
)

// Start creates dir if needed (0700) and starts FerretDB with data in dir,
// with a discarding logger (FerretDB otherwise logs every response at WARN).
// FerretDB v1 has no authentication, so it listens on a Unix socket inside
// dir, not on a TCP port: only the owner of dir can reach it. It returns once
// the server accepts connections. ctx bounds only the start-up; the server
// runs until Close.
func Start(ctx context.Context, dir string, d Durability) (*Server, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("embedded: resolve data directory %q: %w", dir, err)
	}
	// FerretDB pastes the directory into a file: URI without escaping it.
	if strings.ContainsAny(abs, "?#%") {
		return nil, fmt.Errorf("embedded: data directory %q contains one of ?#%%", abs)
	}
	if err := durablefile.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("embedded: create data directory: %w", err)
	}
	// Owner only, even if it existed: it holds the data and the socket.
	if err := os.Chmod(abs, 0o700); err != nil {
		return nil, fmt.Errorf("embedded: restrict data directory: %w", err)
	}
	if err := restrictFiles(abs); err != nil {
		return nil, err
	}
	// One server owns a data directory: it serialises the writes of each
	// document (the store package relies on it), and may keep what it
	// wrote in memory.
	lock, err := os.OpenFile(filepath.Join(abs, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("embedded: open the data directory's lock: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("embedded: data directory %s is in use by another process", abs)
		}
		return nil, fmt.Errorf("embedded: lock the data directory: %w", err)
	}
	socket := filepath.Join(abs, socketName)
	if len(socket) > maxSocketPath {
		_ = lock.Close()
		return nil, fmt.Errorf("embedded: data directory %q is too long for the store's socket (at most %d characters in all)", abs, maxSocketPath)
	}
	if err := os.Remove(socket); err != nil && !errors.Is(err, fs.ErrNotExist) {
		_ = lock.Close()
		return nil, fmt.Errorf("embedded: remove the socket of an earlier run: %w", err)
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener: ferretdb.ListenerConfig{Unix: socket},
		Handler:  "sqlite",
		// FerretDB requires the trailing slash.
		SQLiteURL: "file:" + abs + "/?_pragma=synchronous(" + synchronous[d] + ")",
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("embedded: create FerretDB in %q: %w", abs, err)
	}

	// The server must outlive the start-up context, so Run gets its own.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &Server{dir: abs, cancel: cancel, done: make(chan struct{}), syncers: map[string]*logSyncer{}, lock: lock}
	go func() {
		defer close(s.done)
		s.runErr = f.Run(runCtx)
	}()
	// Called after Run as documented; in v1.24.2 New has already bound the socket,
	// so this does not race with Run.
	s.uri = f.MongoDBURI()

	conn, err := (&net.Dialer{}).DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("embedded: connect to FerretDB at %s: %w", socket, err), s.Close())
	}
	_ = conn.Close() // a probe only; nothing was written

	return s, nil
}

// synchronous is SQLite's setting for each durability: in WAL mode, FULL
// syncs the log at every commit, NORMAL only at checkpoints.
var synchronous = map[Durability]string{Durable: "full", Volatile: "normal"}

const (
	// lockName is the file whose lock says a server owns the directory.
	lockName   = "personaldatad.lock"
	socketName = "ferretdb.sock"
	// maxSocketPath is what a Unix socket path may hold on Linux (108 with
	// the terminating NUL), less a margin.
	maxSocketPath = 100
)

// URI is the mongodb:// URI for the driver.
func (s *Server) URI() string { return s.uri }

// Close stops FerretDB and waits for it to exit. FerretDB gives connections
// still open 3 s before cutting them, so disconnect clients first or Close
// takes that long. Calling it again returns the same result.
func (s *Server) Close() error {
	s.cancel()
	<-s.done
	s.closeSyncers()
	s.lockOnce.Do(func() { _ = s.lock.Close() })
	if s.runErr != nil {
		return fmt.Errorf("embedded: run FerretDB: %w", s.runErr)
	}
	return nil
}

// IndexIDs adds, for every collection of database db, the SQLite index on the
// expression FerretDB actually queries with (_ferretdb_sjson->'$._id'), so
// that reads by exact _id become index searches instead of table scans.
// Idempotent (CREATE INDEX IF NOT EXISTS). Call it after the collections
// exist: collections created later get no index until it is called again.
func (s *Server) IndexIDs(ctx context.Context, db string) (err error) {
	// Same rule as FerretDB's; it also keeps db from escaping the directory.
	if !validDBName(db) {
		return fmt.Errorf("embedded: invalid database name %q", db)
	}
	path := filepath.Join(s.dir, db+".sqlite")
	// mode=rw: never create a file FerretDB would later take for a database.
	// busy_timeout: FerretDB writes to the same file concurrently.
	conn, err := sql.Open("sqlite", "file:"+path+"?mode=rw&_pragma=busy_timeout(10000)")
	if err != nil {
		return fmt.Errorf("embedded: open %s: %w", path, err)
	}
	defer func() {
		if cerr := conn.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("embedded: close %s: %w", path, cerr))
		}
	}()

	tables, err := tableNames(ctx, conn)
	if err != nil {
		return fmt.Errorf("embedded: list collections of %q: %w", db, err)
	}
	for _, t := range tables {
		// The unique index takes over from FerretDB's own (on the
		// expression it never queries with), which is dropped after it, in
		// one transaction: _id stays unique throughout, FerretDB still
		// reports a duplicate _id (it maps any unique constraint to one),
		// and every write maintains one index less. The plain index of an
		// earlier version goes too.
		stmts := []string{
			fmt.Sprintf(`CREATE UNIQUE INDEX IF NOT EXISTS %s ON %s (_ferretdb_sjson->'$._id')`, quoteIdent(t+"_id_unique"), quoteIdent(t)),
			fmt.Sprintf(`DROP INDEX IF EXISTS %s`, quoteIdent(t+"__id_")),
			fmt.Sprintf(`DROP INDEX IF EXISTS %s`, quoteIdent(t+"_id_expr")),
		}
		if err := execAll(ctx, conn, stmts); err != nil {
			return fmt.Errorf("embedded: index _id of table %q in %q: %w", t, db, err)
		}
	}
	// The database file exists by now (SQLite made it 0644); the -wal and
	// -shm files SQLite makes later copy the database file's mode.
	return restrictFiles(s.dir)
}

// restrictFiles makes every file in dir owner-only. Values are encrypted,
// but the blind indexes and the audit metadata are personal data too.
func restrictFiles(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("embedded: list data directory: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue // the socket: the directory's 0700 guards it
		}
		if err := os.Chmod(filepath.Join(dir, e.Name()), 0o600); err != nil {
			return fmt.Errorf("embedded: restrict %s: %w", e.Name(), err)
		}
	}
	return nil
}

// execAll runs stmts in one transaction.
func execAll(ctx context.Context, conn *sql.DB, stmts []string) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			_ = tx.Rollback()
			return err
		}
	}
	return tx.Commit()
}

// tableNames returns the SQLite tables behind the collections of one database.
func tableNames(ctx context.Context, conn *sql.DB) ([]string, error) {
	rows, err := conn.QueryContext(ctx, `SELECT table_name FROM _ferretdb_collections`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return nil, err
		}
		tables = append(tables, t)
	}
	return tables, rows.Err()
}

// quoteIdent quotes an SQLite identifier.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// validDBName reports whether name matches ^[a-zA-Z0-9_-]{1,63}$.
func validDBName(name string) bool {
	if len(name) == 0 || len(name) > 63 {
		return false
	}
	for _, r := range name {
		ok := r == '_' || r == '-' || ('0' <= r && r <= '9') || ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z')
		if !ok {
			return false
		}
	}
	return true
}
