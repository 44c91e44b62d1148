package store

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// policiesCollection holds the privacy policy's versions: one document,
// so that publishing a version is one atomic update.
const policiesCollection = "policies"

// policyDocID is the _id of the company's policy document.
const policyDocID = "company"

// Policies are the published versions of the privacy policy, oldest first.
type Policies struct {
	ID       string          `bson:"_id"`
	Version  int64           `bson:"v"`
	Versions []PolicyVersion `bson:"versions"`
	Ops      []Op            `bson:"ops,omitempty"`
}

func (d *Policies) version() *int64 { return &d.Version }

// PolicyVersion is one published version.
type PolicyVersion struct {
	Version       string `bson:"version"`
	EffectiveAt   int64  `bson:"effective_at"`
	Language      string `bson:"language"`
	TextSHA256    string `bson:"text_sha256"`
	URL           string `bson:"url"`
	ChangeSummary string `bson:"change_summary"`
	Material      bool   `bson:"material"`
	PublishedAt   int64  `bson:"published_at"`
	PublishedBy   string `bson:"published_by"`
}

// PolicyAck records a subject informed of, or accepting, a version; kept in
// the subject's own document.
type PolicyAck struct {
	Version    string `bson:"version"`
	Kind       string `bson:"kind"`
	At         int64  `bson:"at"`
	Channel    string `bson:"channel"`
	Reference  string `bson:"reference,omitempty"`
	RecordedBy string `bson:"recorded_by"`
}

func (s *Store) policies() *mongo.Collection {
	return s.subjects.Database().Collection(policiesCollection)
}

// GetPolicies reads the policy's versions; none yet is an empty document.
func (s *Store) GetPolicies(ctx context.Context) (*Policies, error) {
	var p Policies
	err := get(ctx, s.policies(), policyDocID, &p)
	if err == ErrNotFound {
		return &Policies{ID: policyDocID}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: get policies: %w", err)
	}
	return &p, nil
}

// UpdatePolicies changes the policy's versions atomically, creating the
// document on the first version.
func (s *Store) UpdatePolicies(ctx context.Context, change func(*Policies) error) (*Policies, error) {
	if err := s.insert(ctx, s.policies(), &Policies{ID: policyDocID, Version: 1}); err != nil && err != ErrExists {
		return nil, fmt.Errorf("store: create policies: %w", err)
	}
	return update(ctx, s, s.policies(), policyDocID, change)
}

// DisclosureSummary is what the register needs of one subject: its
// controller and its disclosures, no personal data.
type DisclosureSummary struct {
	ID          string       `bson:"_id"`
	Controller  string       `bson:"controller"`
	Disclosures []Disclosure `bson:"disclosures"`
}

// EachDisclosures calls f with the disclosures of every subject that has
// any, read with a projection that leaves the personal data in the store.
// For the register, an operator's rare request: it reads every subject.
func (s *Store) EachDisclosures(ctx context.Context, f func(*DisclosureSummary)) error {
	cur, err := s.subjects.Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: "controller", Value: 1}, {Key: "disclosures", Value: 1}}))
	if err != nil {
		return fmt.Errorf("store: read disclosures: %w", classify(err))
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var d DisclosureSummary
		if err := cur.Decode(&d); err != nil {
			return fmt.Errorf("store: read disclosures: %w", err)
		}
		if len(d.Disclosures) > 0 {
			f(&d)
		}
	}
	return classify(cur.Err())
}

// AgreementsAfter lists the customers' agreement documents in id order.
func (s *Store) AgreementsAfter(ctx context.Context, after string, limit int) ([]*Agreements, error) {
	return listAfter[Agreements](ctx, s.agreements, bson.D{}, after, limit)
}
