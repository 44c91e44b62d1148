package store

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Key maps a lookup key (a keyed hash of an identity number or e-mail address
// within one controller) to the subject that holds it. The key's _id is unique,
// so inserting it reserves the key. A key is a hint: readers check that the
// subject still holds it, so a key left behind by an interrupted change is
// harmless and can be taken over.
type Key struct {
	ID        string `bson:"_id"`
	SubjectID string `bson:"subject_id"`
	ClaimedAt int64  `bson:"claimed_at"` // Unix nanoseconds
}

// GetKey reads a key.
func (s *Store) GetKey(ctx context.Context, id string) (*Key, error) {
	var k Key
	if err := get(ctx, s.keys, id, &k); err != nil {
		return nil, fmt.Errorf("store: get key: %w", err)
	}
	return &k, nil
}

// ClaimKey reserves key id for subjectID. If the key is held already it
// returns the holder and ErrExists.
func (s *Store) ClaimKey(ctx context.Context, id, subjectID string, now int64) (*Key, error) {
	k := &Key{ID: id, SubjectID: subjectID, ClaimedAt: now}
	err := s.insert(ctx, s.keys, k)
	if errors.Is(err, ErrExists) {
		held, gerr := s.GetKey(ctx, id)
		if gerr != nil {
			return nil, gerr
		}
		return held, fmt.Errorf("store: claim key: %w", ErrExists)
	}
	if err != nil {
		return nil, fmt.Errorf("store: claim key: %w", err)
	}
	return k, nil
}

// ClaimKeys reserves the keys ids for subjectID in one round trip and
// returns those another holder had already (claim each of them with
// ClaimKey to learn who). On any other error some of the keys may have been
// claimed; ReleaseKey gives them back.
//
// It returns before the keys are synced: the subject's write that follows a
// claim goes to the same database, so it cannot last without them, and a
// caller answers only once every database is synced (Durable). A claim that
// a power cut takes back was never answered, and a key left without its
// subject is taken over after its lease.
func (s *Store) ClaimKeys(ctx context.Context, ids []string, subjectID string, now int64) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	docs := make([]any, len(ids))
	for i, id := range ids {
		docs[i] = &Key{ID: id, SubjectID: subjectID, ClaimedAt: now}
	}
	errs, err := s.keyInserts.insert(ctx, docs...)
	if err != nil {
		return nil, fmt.Errorf("store: claim keys: %w", err)
	}
	var held []string
	for i, err := range errs {
		switch {
		case errors.Is(err, ErrExists):
			held = append(held, ids[i])
		case err != nil:
			return nil, fmt.Errorf("store: claim keys: %w", err)
		}
	}
	return held, nil
}

// ReassignKey moves key id from subject from to subject to, provided from
// still holds it; otherwise ErrConflict.
func (s *Store) ReassignKey(ctx context.Context, id, from, to string, now int64) error {
	unlock := s.lock(keysCollection, id)
	defer unlock()
	if s.locks != nil {
		k, err := s.GetKey(ctx, id)
		if err != nil {
			return err
		}
		if k.SubjectID != from {
			return fmt.Errorf("store: reassign key: %w", ErrConflict)
		}
	}
	ok, err := s.replace(ctx, s.keys, id, bson.D{{Key: "subject_id", Value: from}}, &Key{ID: id, SubjectID: to, ClaimedAt: now})
	if err != nil {
		return fmt.Errorf("store: reassign key: %w", err)
	}
	if !ok {
		return fmt.Errorf("store: reassign key: %w", ErrConflict)
	}
	return nil
}

// ReleaseKey deletes key id if subjectID holds it; a key held by another
// subject, or no key, is left as it is.
func (s *Store) ReleaseKey(ctx context.Context, id, subjectID string) error {
	unlock := s.lock(keysCollection, id)
	defer unlock()
	if s.locks != nil {
		k, err := s.GetKey(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if k.SubjectID != subjectID {
			return nil
		}
	}
	if err := s.remove(ctx, s.keys, id, bson.D{{Key: "subject_id", Value: subjectID}}); err != nil {
		return fmt.Errorf("store: release key: %w", err)
	}
	return nil
}
