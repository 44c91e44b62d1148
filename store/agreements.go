package store

import (
	"context"
	"errors"
	"fmt"
)

// Agreements are the processor agreements of one customer, in one document
// keyed by the customer id: the check before every operation on that
// customer's data is one exact _id read. A customer has few agreements.
type Agreements struct {
	ID         string      `bson:"_id"` // the customer id
	Version    int64       `bson:"v"`
	Agreements []Agreement `bson:"agreements"`
	Ops        []Op        `bson:"ops,omitempty"`
}

// Agreement is one agreement with all versions of its terms, oldest first.
type Agreement struct {
	Seq            int                `bson:"seq"`
	Versions       []AgreementVersion `bson:"versions"`
	TerminatedAt   int64              `bson:"terminated_at,omitempty"`
	TerminationRef string             `bson:"termination_ref,omitempty"`
}

// AgreementVersion is one version of an agreement's terms. Enumerated
// values are stored by name.
type AgreementVersion struct {
	Version       int      `bson:"version"`
	SignedAt      int64    `bson:"signed_at"`
	InForceFrom   int64    `bson:"in_force_from"`
	InForceTo     int64    `bson:"in_force_to,omitempty"` // 0: until terminated
	Purposes      []string `bson:"purposes"`
	Categories    []string `bson:"categories"`
	SubProcessors []string `bson:"sub_processors,omitempty"`
	DocumentRef   string   `bson:"document_ref"`
	CreatedAt     int64    `bson:"created_at"`
	CreatedBy     string   `bson:"created_by"`
}

// Current is the agreement's latest terms.
func (a *Agreement) Current() *AgreementVersion { return &a.Versions[len(a.Versions)-1] }

func (d *Agreements) version() *int64 { return &d.Version }

// GetAgreements reads a customer's agreements; none is an empty set.
func (s *Store) GetAgreements(ctx context.Context, customerID string) (*Agreements, error) {
	var a Agreements
	err := get(ctx, s.agreements, customerID, &a)
	if errors.Is(err, ErrNotFound) {
		return &Agreements{ID: customerID}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: get agreements: %w", err)
	}
	return &a, nil
}

// UpdateAgreements changes a customer's agreements atomically, creating the
// document on the first agreement.
func (s *Store) UpdateAgreements(ctx context.Context, customerID string, change func(*Agreements) error) (*Agreements, error) {
	for range maxUpdateAttempts {
		a, err := update(ctx, s, s.agreements, customerID, change)
		if !errors.Is(err, ErrNotFound) {
			return a, err
		}
		// No document yet: start one, and let update apply the change to it.
		err = s.insert(ctx, s.agreements, &Agreements{ID: customerID, Agreements: []Agreement{}})
		if err != nil && !errors.Is(err, ErrExists) {
			return nil, fmt.Errorf("store: create agreements: %w", err)
		}
	}
	return nil, fmt.Errorf("store: update agreements: %w", ErrConflict)
}
