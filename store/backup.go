package store

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/example/personaldata/store/embedded"
)

// ErrNoSnapshot: the store cannot take a snapshot itself (MongoDB: use
// mongodump or a storage snapshot, as the README's Backups says).
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
