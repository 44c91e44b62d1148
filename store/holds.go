package store

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// holdDeadlinesCollection holds one document per hold deadline: when a hold
// on a subject's data ends, so the retention sweeper finds the subjects it
// has work on without reading every subject.
const holdDeadlinesCollection = "hold_deadlines"

// Hold is a legal retention hold on categories of a subject's data, kept in
// the subject's own document (Subject.Holds) so it changes atomically with
// the subject. Enumerated values are stored by name.
type Hold struct {
	ID    string `bson:"id"`
	Basis string `bson:"basis"`
	// Categories are the data categories the hold keeps past an erasure.
	Categories []string `bson:"categories"`
	// TransactionAt is the time of the transaction of a bookkeeping hold.
	TransactionAt int64 `bson:"transaction_at,omitempty"` // Unix nanoseconds
	// Until is when the hold ends by itself.
	Until     int64  `bson:"until"`
	Reference string `bson:"reference"`
	PlacedAt  int64  `bson:"placed_at"`
	PlacedBy  string `bson:"placed_by"`
	// EndedAt is set when the hold was released early, or when the sweeper
	// found it past Until.
	EndedAt int64 `bson:"ended_at,omitempty"`
	// ReleasedBy and ReleaseReference say who released it early, and why.
	ReleasedBy       string `bson:"released_by,omitempty"`
	ReleaseReference string `bson:"release_reference,omitempty"`
}

// HoldDeadline says that a hold of a subject ends at Until. Its _id starts
// with Until in fixed-width decimal, so the deadlines due by a time are a
// range of _ids. It holds no personal data: both ids are opaque.
type HoldDeadline struct {
	ID        string `bson:"_id"`
	SubjectID string `bson:"subject_id"`
	HoldID    string `bson:"hold_id"`
	Until     int64  `bson:"until"` // Unix nanoseconds
}

// HoldDeadlineID is the _id of the deadline at until (Unix nanoseconds, not
// negative) of a subject's hold: "<until %020d>/<subject id>/<hold id>".
func HoldDeadlineID(until int64, subjectID, holdID string) string {
	return fmt.Sprintf("%020d/%s/%s", until, subjectID, holdID)
}

func (s *Store) holdDeadlines() *mongo.Collection {
	return s.subjects.Database().Collection(holdDeadlinesCollection)
}

// PutHoldDeadline records that a subject's hold ends at until. Recording it
// again is not an error, so a retried request can repeat it.
func (s *Store) PutHoldDeadline(ctx context.Context, until int64, subjectID, holdID string) error {
	if until < 0 {
		return fmt.Errorf("store: put hold deadline: negative time %d", until)
	}
	d := &HoldDeadline{ID: HoldDeadlineID(until, subjectID, holdID), SubjectID: subjectID, HoldID: holdID, Until: until}
	if err := s.insert(ctx, s.holdDeadlines(), d); err != nil && !errors.Is(err, ErrExists) {
		return fmt.Errorf("store: put hold deadline: %w", err)
	}
	return nil
}

// DeleteHoldDeadline removes a deadline; a missing one is fine.
func (s *Store) DeleteHoldDeadline(ctx context.Context, id string) error {
	if err := s.remove(ctx, s.holdDeadlines(), id, nil); err != nil {
		return fmt.Errorf("store: delete hold deadline: %w", err)
	}
	return nil
}

// HoldDeadlinesDue returns up to limit deadlines at or before now (Unix
// nanoseconds) whose _id comes after the given one ("" for the first), in
// _id order, which is deadline order. It is a range scan over _id: an index
// search on MongoDB; on the embedded store, which pushes down only a filter
// of the lone _id, it reads the whole (small) collection. That is fine for
// the background sweeper it is for, never for a request.
func (s *Store) HoldDeadlinesDue(ctx context.Context, now int64, after string, limit int) ([]*HoldDeadline, error) {
	// Every _id due by now sorts before the first one of now+1: the ids
	// start with the deadline, zero-padded to the same width.
	bound := bson.D{{Key: "$lt", Value: fmt.Sprintf("%020d", now+1)}}
	if after != "" {
		bound = append(bound, bson.E{Key: "$gt", Value: after})
	}
	c := s.holdDeadlines()
	cur, err := c.Find(ctx, bson.D{{Key: "_id", Value: bound}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("store: list hold deadlines: %w", classify(err))
	}
	var out []*HoldDeadline
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("store: list hold deadlines: %w", classify(err))
	}
	return out, nil
}
