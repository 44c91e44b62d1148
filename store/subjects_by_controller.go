package store

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Listing the subjects of a controller cannot be an exact _id read, so the
// two methods here are the exception to the rule of this package. They serve
// the rare bulk operations at the end of a processor agreement (return or
// deletion of a customer's data), never a request about one subject. On the
// embedded store each call scans the whole subjects collection (FerretDB v1
// pushes down only a filter of the lone _id), which is acceptable for those.
// On MongoDB, with no index on controller, a page walks the _id index from
// after, so all the pages together read the collection about once.

// SubjectsOfController returns up to limit subjects of controller whose ids
// come after the given one (all when it is empty), in _id order, erased ones
// (tombstones) included.
func (s *Store) SubjectsOfController(ctx context.Context, controller, after string, limit int) ([]*Subject, error) {
	return listAfter[Subject](ctx, s.subjects, bson.D{{Key: "controller", Value: controller}}, after, limit)
}

// CountSubjectsOfController counts the subjects of controller, erased ones
// included. It scans as SubjectsOfController does.
func (s *Store) CountSubjectsOfController(ctx context.Context, controller string) (int64, error) {
	n, err := s.subjects.CountDocuments(ctx, bson.D{{Key: "controller", Value: controller}})
	if err != nil {
		return 0, fmt.Errorf("store: count subjects of controller: %w", classify(err))
	}
	return n, nil
}

// EachSubject hands fn every subject, erased ones (tombstones) included, in
// _id order through one cursor: for the rebuild of a lost erasure ledger at
// start (core.Service.RebuildLedger in service/core), which is rarer still. One scan.
func (s *Store) EachSubject(ctx context.Context, fn func(*Subject) error) error {
	return each(ctx, s.subjects, bson.D{}, fn)
}

// AnySubject reports whether the store holds a subject, erased or not.
func (s *Store) AnySubject(ctx context.Context) (bool, error) {
	err := s.subjects.FindOne(ctx, bson.D{}, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: find a subject: %w", classify(err))
	}
	return true, nil
}
