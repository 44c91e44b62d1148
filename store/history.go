package store

import (
	"context"
	"errors"
	"fmt"
)

// HistoryEntry is an e-mail conversation or error report about a subject. Its
// _id is the subject id and a sequence number, so a page of history is a run
// of exact _id reads.
type HistoryEntry struct {
	ID        string `bson:"_id"`
	SubjectID string `bson:"subject_id"`
	Seq       int64  `bson:"seq"`
	Kind      string `bson:"kind"`
	// Title, Body and Reference are in the clear, never stored: the service
	// seals them into Sealed.
	Title     string         `bson:"-"`
	Body      string         `bson:"-"`
	Reference string         `bson:"-"`
	Sealed    *SealedHistory `bson:"sealed,omitempty"`
	OccurAt   int64          `bson:"occur_at"`
	CreatedAt int64          `bson:"created_at"`
}

// HistoryEntryID is the _id of a subject's entry number seq.
func HistoryEntryID(subjectID string, seq int64) string {
	return fmt.Sprintf("%s.%010d", subjectID, seq)
}

// PutHistoryEntry stores an entry. Storing an entry that exists already is
// not an error, so an interrupted add can be completed by its retry.
func (s *Store) PutHistoryEntry(ctx context.Context, e *HistoryEntry) error {
	e.ID = HistoryEntryID(e.SubjectID, e.Seq)
	if err := s.insert(ctx, s.history, e); err != nil && !errors.Is(err, ErrExists) {
		return fmt.Errorf("store: put history entry: %w", err)
	}
	return nil
}

// GetHistoryEntry reads entry seq of a subject.
func (s *Store) GetHistoryEntry(ctx context.Context, subjectID string, seq int64) (*HistoryEntry, error) {
	var e HistoryEntry
	if err := get(ctx, s.history, HistoryEntryID(subjectID, seq), &e); err != nil {
		return nil, fmt.Errorf("store: get history entry: %w", err)
	}
	return &e, nil
}

// DeleteHistoryEntry removes entry seq of a subject; a missing one is fine.
func (s *Store) DeleteHistoryEntry(ctx context.Context, subjectID string, seq int64) error {
	if err := s.remove(ctx, s.history, HistoryEntryID(subjectID, seq), nil); err != nil {
		return fmt.Errorf("store: delete history entry: %w", err)
	}
	return nil
}
