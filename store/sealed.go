package store

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// SealedPerson is a subject's personal data as stored: each field encrypted
// on its own under the subject's data key (AES-256-GCM, bound to the subject
// and the field). Nil fields were empty.
type SealedPerson struct {
	IdentityNumber []byte `bson:"identity_number,omitempty"`
	GivenName      []byte `bson:"given_name,omitempty"`
	FamilyName     []byte `bson:"family_name,omitempty"`
	Email          []byte `bson:"email,omitempty"`
	Phone          []byte `bson:"phone,omitempty"`
	// Address is the postal address, encoded and then encrypted as one.
	Address []byte `bson:"postal_address,omitempty"`
}

// SealedHistory is the text of a history entry as stored, encrypted.
type SealedHistory struct {
	Title     []byte `bson:"title,omitempty"`
	Body      []byte `bson:"body,omitempty"`
	Reference []byte `bson:"reference,omitempty"`
}

// DataKey is a subject's data key, wrapped by a master key version. It is
// kept apart from the subject's documents, so that a copy of those (a
// backup) holds no key: deleting this document is what makes an erased
// subject's data unreadable everywhere (crypto-shredding).
type DataKey struct {
	ID         string `bson:"_id"` // the subject id
	Version    int64  `bson:"v"`
	KeyVersion uint32 `bson:"key_version"`
	Wrapped    []byte `bson:"wrapped"`
}

func (d *DataKey) version() *int64 { return &d.Version }

// GetDataKey reads a subject's wrapped data key.
func (s *Store) GetDataKey(ctx context.Context, subjectID string) (*DataKey, error) {
	var k DataKey
	if err := get(ctx, s.dataKeys, subjectID, &k); err != nil {
		return nil, fmt.Errorf("store: get data key: %w", err)
	}
	return &k, nil
}

// InsertDataKey stores a subject's wrapped data key; one that exists is
// ErrExists, and stays as it is.
func (s *Store) InsertDataKey(ctx context.Context, k *DataKey) error {
	if err := s.dataKeyInserts.insertOne(ctx, k); err != nil {
		return fmt.Errorf("store: insert data key: %w", err)
	}
	return nil
}

// UpdateDataKey changes a data key atomically (key rotation re-wraps it).
func (s *Store) UpdateDataKey(ctx context.Context, subjectID string, change func(*DataKey) error) (*DataKey, error) {
	return update(ctx, s, s.dataKeys, subjectID, change)
}

// DeleteDataKey destroys a subject's data key; a missing one is fine.
func (s *Store) DeleteDataKey(ctx context.Context, subjectID string) error {
	if err := s.remove(ctx, s.dataKeys, subjectID, nil); err != nil {
		return fmt.Errorf("store: delete data key: %w", err)
	}
	return nil
}

// DataKeysAfter returns up to limit data keys with ids after the given one,
// in id order, for key rotation: a walk over the whole collection, which
// scans on the embedded store and is meant for that rare operation only.
func (s *Store) DataKeysAfter(ctx context.Context, after string, limit int) ([]*DataKey, error) {
	return listAfter[DataKey](ctx, s.dataKeys, bson.D{}, after, limit)
}

// EachDataKeyAt hands fn, in id order, every data key wrapped under master
// key version v, through one cursor: the subjects a compromised version
// exposes. A scan, like the walk.
func (s *Store) EachDataKeyAt(ctx context.Context, v uint32, fn func(*DataKey) error) error {
	return each(ctx, s.dataKeys, bson.D{{Key: "key_version", Value: v}}, fn)
}

// CountDataKeys counts the data keys, for the progress of a rotation.
func (s *Store) CountDataKeys(ctx context.Context) (int64, error) {
	n, err := s.dataKeys.CountDocuments(ctx, bson.D{})
	if err != nil {
		return 0, fmt.Errorf("store: count data keys: %w", classify(err))
	}
	return n, nil
}

// CountDataKeysNotAt counts the data keys wrapped under another master key
// version than v: what a rotation to v has yet to do. A scan, like the walk.
func (s *Store) CountDataKeysNotAt(ctx context.Context, v uint32) (int64, error) {
	n, err := s.dataKeys.CountDocuments(ctx, bson.D{{Key: "key_version", Value: bson.D{{Key: "$ne", Value: v}}}})
	if err != nil {
		return 0, fmt.Errorf("store: count data keys: %w", classify(err))
	}
	return n, nil
}
