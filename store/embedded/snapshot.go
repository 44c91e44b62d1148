package embedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"

	"modernc.org/sqlite"
)

// Snapshot holds a read transaction open on each of a set of databases: in
// WAL mode a reader sees the database as it was when its transaction began,
// whatever is committed after, so the copies made from it (CopyTo) are of
// that instant. Begun while no write is in flight on any of them (the
// store's writer slots held), the snapshots agree with each other.
type Snapshot struct {
	dir   string
	dbs   map[string]*sql.DB
	conns map[string]*sql.Conn
}

// BeginSnapshot opens a read transaction on each database of dbs and
// returns once each has fixed its view. Close it when the copies are made:
// while it is open, checkpoints cannot move past it and the logs grow.
func (s *Server) BeginSnapshot(ctx context.Context, dbs []string) (_ *Snapshot, err error) {
	sn := &Snapshot{dir: s.dir, dbs: map[string]*sql.DB{}, conns: map[string]*sql.Conn{}}
	defer func() {
		if err != nil {
			_ = sn.Close()
		}
	}()
	for _, db := range dbs {
		if !validDBName(db) {
			return nil, fmt.Errorf("embedded: snapshot: invalid database name %q", db)
		}
		path := filepath.Join(s.dir, db+".sqlite")
		pool, err := sql.Open("sqlite", "file:"+path+"?mode=rw&_pragma=busy_timeout(10000)")
		if err != nil {
			return nil, fmt.Errorf("embedded: snapshot: open %s: %w", db, err)
		}
		sn.dbs[db] = pool
		conn, err := pool.Conn(ctx)
		if err != nil {
			return nil, fmt.Errorf("embedded: snapshot: connect to %s: %w", db, err)
		}
		sn.conns[db] = conn
		// A deferred transaction takes its snapshot at its first read.
		if _, err := conn.ExecContext(ctx, "BEGIN"); err != nil {
			return nil, fmt.Errorf("embedded: snapshot: begin on %s: %w", db, err)
		}
		var n int
		if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
			return nil, fmt.Errorf("embedded: snapshot: read %s: %w", db, err)
		}
		if hook := s.snapshotOpened.Load(); hook != nil {
			(*hook)(db)
		}
	}
	return sn, nil
}

// SetSnapshotHook is for tests only: f is called in BeginSnapshot after
// each database's view is fixed, before the next one's is (nil: not
// called). A test that sleeps in it sets the views apart in time, to show
// that the store's barrier (every writer slot held), not the few
// microseconds between them, makes them agree.
func (s *Server) SetSnapshotHook(f func(db string)) {
	if f == nil {
		s.snapshotOpened.Store(nil)
		return
	}
	s.snapshotOpened.Store(&f)
}

// backuper is what modernc.org/sqlite's connection offers for SQLite's
// online backup API.
type backuper interface {
	NewBackup(dstURI string) (*sqlite.Backup, error)
}

// CopyTo writes database db, as the snapshot sees it, to a new SQLite file
// at dst, with SQLite's online backup API, reading the snapshot's own
// transaction; progress, if set, is told the pages copied and their total
// as it goes.
func (sn *Snapshot) CopyTo(ctx context.Context, db, dst string, progress func(done, total int)) error {
	conn := sn.conns[db]
	if conn == nil {
		return fmt.Errorf("embedded: snapshot: no database %q in the snapshot", db)
	}
	err := conn.Raw(func(dc any) error {
		b, ok := dc.(backuper)
		if !ok {
			return errors.New("the SQLite driver offers no backup API")
		}
		bk, err := b.NewBackup("file:" + dst)
		if err != nil {
			return err
		}
		for {
			if err := ctx.Err(); err != nil {
				_ = bk.Finish()
				return err
			}
			more, err := bk.Step(1024)
			if err != nil {
				_ = bk.Finish()
				return err
			}
			if progress != nil {
				progress(bk.PageCount()-bk.Remaining(), bk.PageCount())
			}
			if !more {
				return bk.Finish()
			}
		}
	})
	if err != nil {
		return fmt.Errorf("embedded: snapshot: copy %s: %w", db, err)
	}
	return nil
}

// Close ends the read transactions.
func (sn *Snapshot) Close() error {
	var errs []error
	for db, conn := range sn.conns {
		_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
		if err := conn.Close(); err != nil {
			errs = append(errs, fmt.Errorf("embedded: snapshot: close %s: %w", db, err))
		}
	}
	for _, pool := range sn.dbs {
		_ = pool.Close()
	}
	sn.conns, sn.dbs = nil, nil
	return errors.Join(errs...)
}

// Dir is the data directory.
func (s *Server) Dir() string { return s.dir }

// Query runs fn on the SQLite file path (a copy of a database, such as one
// CopyTo wrote), opened read-only, with table, which names the SQLite table
// behind a collection (empty when the collection does not exist).
func Query(ctx context.Context, path string, fn func(db *sql.DB, table func(collection string) (string, error)) error) error {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return fmt.Errorf("embedded: open %s: %w", path, err)
	}
	defer db.Close()
	table := func(collection string) (string, error) {
		var t string
		err := db.QueryRowContext(ctx, `SELECT table_name FROM _ferretdb_collections WHERE name = ?`, collection).Scan(&t)
		if errors.Is(err, sql.ErrNoRows) {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		return quoteIdent(t), nil
	}
	if err := fn(db, table); err != nil {
		return fmt.Errorf("embedded: read %s: %w", filepath.Base(path), err)
	}
	return nil
}
