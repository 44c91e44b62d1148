package store

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// auditCheckpointsCollection holds the signed checkpoints of the Merkle
// tree over the audit trail, in the audit database.
const auditCheckpointsCollection = "audit_checkpoints"

// auditLeafPrefix starts the _id of every leaf. Leaves are kept in the
// collection of the events, so that a batch's events and leaves are one
// insert; the prefix sorts after every chain name, and no leaf has the
// fields the events are selected by (time, tenant, principal, hash).
const auditLeafPrefix = "~tree/"

// AuditLeaf is one leaf of the Merkle tree over the audit trail, as stored:
// the event it stands for, the leaf's hash, and the hashes of the perfect
// subtrees whose last leaf it is (Nodes[0] at level 1, upwards), so that
// any node of the tree is one exact _id read: node (level, index) is in leaf
// ((index+1)<<level)-1. Its _id is AuditLeafID(Index): inserting it
// reserves the index, as an event's _id reserves its seq. It is stored in
// the events' collection (auditLeafPrefix). Package service/audit computes
// the hashes; the store only keeps them.
type AuditLeaf struct {
	Index uint64   `bson:"-"`
	ID    string   `bson:"_id"`
	Event string   `bson:"event"`
	Time  int64    `bson:"lt"` // the event's, Unix nanoseconds
	Hash  []byte   `bson:"lh"`
	Nodes [][]byte `bson:"ln,omitempty"`
	// Older, on leaf 0 only: the trail held events when the tree began,
	// which have no leaves (AuditTrailBeforeTree).
	Older bool `bson:"older,omitempty"`
}

func (l *AuditLeaf) docID() string { return l.ID }

// AuditLeafID is the _id of leaf index, zero-padded so that leaves sort by
// _id in index order.
func AuditLeafID(index uint64) string { return fmt.Sprintf("%s%016d", auditLeafPrefix, index) }

// InsertAuditLeaves adds leaves in order, in one round trip, stopping at the
// first that fails; it returns how many were inserted, and ErrExists when
// the one after them had its index taken (another process appended to the
// tree). Like InsertAuditEvents it does not wait for the sync: the audit
// trail calls Durable before it answers.
func (s *Store) InsertAuditLeaves(ctx context.Context, leaves []*AuditLeaf) (int, error) {
	docs := make([]any, len(leaves))
	for i, l := range leaves {
		l.ID = AuditLeafID(l.Index)
		docs[i] = l
	}
	return s.insertOrdered(ctx, s.auditEvents, docs, "audit leaves")
}

// AuditTrailBeforeTree reports whether the trail holds any event, asked
// when the tree is still empty: events written before the tree began have
// no leaves, so a reader of the tree's leaves must look for them too. One
// find of a single document, once per process while the tree is empty.
func (s *Store) AuditTrailBeforeTree(ctx context.Context) (bool, error) {
	err := s.auditEvents.FindOne(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$lt", Value: auditLeafPrefix}}}}).Err()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: audit trail before the tree: %w", classify(err))
	}
	return true, nil
}

// GetAuditLeaf reads leaf index by its exact _id.
func (s *Store) GetAuditLeaf(ctx context.Context, index uint64) (*AuditLeaf, error) {
	var l AuditLeaf
	if err := get(ctx, s.auditEvents, AuditLeafID(index), &l); err != nil {
		return nil, fmt.Errorf("store: get audit leaf: %w", err)
	}
	l.Index = index
	return &l, nil
}

// ListAuditLeaves returns the leaves from index from on, consecutive, up to
// limit or the first that is missing.
func (s *Store) ListAuditLeaves(ctx context.Context, from uint64, limit int) ([]*AuditLeaf, error) {
	// seqRange counts from 1; leaf i is its seq i+1.
	out, err := seqRange[AuditLeaf](ctx, s, s.auditEvents, func(seq int64) string { return AuditLeafID(uint64(seq - 1)) }, int64(from)+1, limit)
	for i, l := range out {
		l.Index = from + uint64(i)
	}
	return out, err
}

// SetAuditEventLeaf records which leaf stands for an event, when another
// process took the leaf the event was written with: rare, and only on
// MongoDB, where several processes append to the tree.
func (s *Store) SetAuditEventLeaf(ctx context.Context, eventID string, leaf uint64) error {
	err := s.apply(ctx, s.auditEvents, func(ctx context.Context) error {
		_, err := s.auditEvents.UpdateOne(ctx, bson.D{{Key: "_id", Value: eventID}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "leaf", Value: int64(leaf)}}}})
		return err
	})
	if err != nil {
		return fmt.Errorf("store: set audit event leaf: %w", classify(err))
	}
	return nil
}

// AuditCheckpoint is a signed checkpoint of the tree as stored: the signed
// note, and what it says, for finding it. Its _id is its time, zero-padded,
// so that checkpoints sort by time; the one with _id LatestAuditCheckpoint
// is a copy of the newest.
type AuditCheckpoint struct {
	ID   string `bson:"_id"`
	Size uint64 `bson:"size"`
	Root []byte `bson:"root"`
	Time int64  `bson:"time"` // Unix nanoseconds
	Note string `bson:"note"`
}

// latestAuditCheckpoint is the _id of the copy of the newest checkpoint.
const latestAuditCheckpoint = "latest"

// PutAuditCheckpoint stores a checkpoint and makes it the latest, durably.
func (s *Store) PutAuditCheckpoint(ctx context.Context, c AuditCheckpoint) error {
	c.ID = fmt.Sprintf("%020d", c.Time)
	if err := s.insert(ctx, s.auditCheckpoints, &c); err != nil && !errors.Is(err, ErrExists) {
		return fmt.Errorf("store: put audit checkpoint: %w", err)
	}
	c.ID = latestAuditCheckpoint
	err := s.write(ctx, s.auditCheckpoints, func(ctx context.Context) error {
		_, err := s.auditCheckpoints.ReplaceOne(ctx, bson.D{{Key: "_id", Value: c.ID}}, &c, options.Replace().SetUpsert(true))
		return err
	})
	if err != nil {
		return fmt.Errorf("store: put audit checkpoint: %w", classify(err))
	}
	return nil
}

// LatestAuditCheckpoint returns the newest checkpoint stored; ErrNotFound
// when there is none.
func (s *Store) LatestAuditCheckpoint(ctx context.Context) (*AuditCheckpoint, error) {
	var c AuditCheckpoint
	if err := get(ctx, s.auditCheckpoints, latestAuditCheckpoint, &c); err != nil {
		return nil, fmt.Errorf("store: latest audit checkpoint: %w", err)
	}
	return &c, nil
}
