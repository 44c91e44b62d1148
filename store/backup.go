package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/example/personaldata/store/embedded"
)

// ErrNoSnapshot: the store cannot take a snapshot itself (MongoDB: use
// mongodump or a storage snapshot, as cmd/personaldatad/README.md says).
var ErrNoSnapshot = errors.New("online backup is for the embedded store; back a MongoDB deployment up with mongodump or a storage snapshot")

// Databases are the names of the data's, the audit trail's and the keys'
// databases, in that order.
func (s *Store) Databases() []string { return slices.Clone(s.databases) }

// Snapshot fixes a view of the embedded store's three databases that agree
// with each other: it takes every database's writer slot (so no write is in
// flight on any of them: the state a crash of the process at that instant
// would leave, which the store is built to take up again), opens a read
// transaction on each, calls atBarrier (a caller records there what else
// must match, such as the erasure ledger's length), and lets the writers
// go. Writes go on while the caller copies from the snapshot
// (embedded.Snapshot.CopyTo) and closes it. Before it returns, every
// commit the snapshot holds is made durable, so a backup holds nothing a
// power cut could take back from the store.
func (s *Store) Snapshot(ctx context.Context, atBarrier func()) (*embedded.Snapshot, error) {
	if s.embedded == nil {
		return nil, ErrNoSnapshot
	}
	var releases []func()
	releaseAll := func() {
		for _, r := range slices.Backward(releases) {
			r()
		}
		releases = nil
	}
	defer releaseAll()
	// Always in the same order, so two snapshots cannot deadlock.
	for _, db := range s.databases {
		release, err := s.slot(ctx, db)
		if err != nil {
			return nil, fmt.Errorf("store: snapshot: %w", err)
		}
		releases = append(releases, release)
	}
	sn, err := s.embedded.BeginSnapshot(ctx, s.databases)
	if err != nil {
		return nil, fmt.Errorf("store: snapshot: %w", err)
	}
	if atBarrier != nil {
		atBarrier()
	}
	releaseAll()
	if err := s.Durable(ctx); err != nil {
		_ = sn.Close()
		return nil, fmt.Errorf("store: snapshot: %w", err)
	}
	return sn, nil
}

// slot waits for the writer slot of database db (see writerSlot).
func (s *Store) slot(ctx context.Context, db string) (func(), error) {
	writer := s.writers[db]
	select {
	case writer <- struct{}{}:
		return func() { <-writer }, nil
	case <-ctx.Done():
		return nil, classify(ctx.Err())
	}
}

// splitAuditEventID undoes AuditEventID.
func splitAuditEventID(id string) (string, int64, bool) {
	i := strings.LastIndexByte(id, '/')
	if i < 0 {
		return "", 0, false
	}
	seq, err := strconv.ParseInt(id[i+1:], 10, 64)
	return id[:i], seq, err == nil
}

// DataDir is the embedded store's data directory; "" on MongoDB.
func (s *Store) DataDir() string {
	if s.embedded == nil {
		return ""
	}
	return s.embedded.Dir()
}

// SnapshotCounts are what a copy of the three databases holds.
type SnapshotCounts struct {
	Subjects, ErasedSubjects, DataKeys, AuditEvents int64
	// AuditHeads are the audit chains' heads: chain, last seq and hash, in
	// chain order.
	AuditHeads []AuditHead
}

// notLeaf selects, in SQL over the events' table, the events and not the
// Merkle tree's leaves kept beside them.
const notLeaf = "_ferretdb_sjson->>'$._id' < '" + auditLeafPrefix + "'"

// CountSnapshot reads the copies of the databases named after database in
// dir (<name>.sqlite, as embedded.Snapshot.CopyTo wrote them).
func CountSnapshot(ctx context.Context, dir, database string) (SnapshotCounts, error) {
	var c SnapshotCounts
	count := func(path, collection, where string, n *int64) error {
		return embedded.Query(ctx, path, func(db *sql.DB, table func(string) (string, error)) error {
			t, err := table(collection)
			if err != nil || t == "" {
				return err
			}
			return db.QueryRowContext(ctx, "SELECT count(*) FROM "+t+" "+where).Scan(n)
		})
	}
	data := filepath.Join(dir, database+".sqlite")
	audit := filepath.Join(dir, AuditDatabase(database)+".sqlite")
	keys := filepath.Join(dir, KeysDatabase(database)+".sqlite")
	for _, q := range []struct {
		path, collection, where string
		n                       *int64
	}{
		{data, subjectsCollection, "", &c.Subjects},
		{data, subjectsCollection, "WHERE json_type(_ferretdb_sjson, '$.erasure') = 'object'", &c.ErasedSubjects},
		{keys, dataKeysCollection, "", &c.DataKeys},
		{audit, auditEventsCollection, "WHERE " + notLeaf, &c.AuditEvents},
	} {
		if err := count(q.path, q.collection, q.where, q.n); err != nil {
			return c, fmt.Errorf("store: count %s: %w", q.collection, err)
		}
	}
	// The heads as the events show them (the audit_heads documents are
	// only hints, written when a chain is contended).
	err := embedded.Query(ctx, audit, func(db *sql.DB, table func(string) (string, error)) error {
		t, err := table(auditEventsCollection)
		if err != nil || t == "" {
			return err
		}
		rows, err := db.QueryContext(ctx, "SELECT _ferretdb_sjson->>'$._id', _ferretdb_sjson->>'$.hash' FROM "+t+" WHERE "+notLeaf)
		if err != nil {
			return err
		}
		defer rows.Close()
		heads := map[string]AuditHead{}
		for rows.Next() {
			var id, hash string
			if err := rows.Scan(&id, &hash); err != nil {
				return err
			}
			chain, seq, ok := splitAuditEventID(id)
			if !ok {
				return fmt.Errorf("audit event id %q is not chain/seq", id)
			}
			if h, ok := heads[chain]; !ok || seq > h.Seq {
				heads[chain] = AuditHead{ID: chain, Seq: seq, Hash: hash}
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, h := range heads {
			c.AuditHeads = append(c.AuditHeads, h)
		}
		slices.SortFunc(c.AuditHeads, func(a, b AuditHead) int { return strings.Compare(a.ID, b.ID) })
		return nil
	})
	if err != nil {
		return c, fmt.Errorf("store: audit heads: %w", err)
	}
	return c, nil
}
