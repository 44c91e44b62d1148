package store

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Principal is a caller of the service. Its _id is its identity, so the
// authentication of every request is one exact _id read.
type Principal struct {
	ID          string   `bson:"_id"`
	Version     int64    `bson:"v"`
	Kind        string   `bson:"kind"`
	TenantIDs   []string `bson:"tenant_ids"`
	Purposes    []string `bson:"purposes"`
	RPCs        []string `bson:"rpcs"`
	Description string   `bson:"description,omitempty"`
	// Tokens are the SHA-256 hashes of its live bearer tokens.
	Tokens    []Token `bson:"tokens"`
	Revoked   bool    `bson:"revoked"`
	RevokedAt int64   `bson:"revoked_at,omitempty"`
	CreatedAt int64   `bson:"created_at"`
	Ops       []Op    `bson:"ops,omitempty"`
}

// Token is a bearer token as stored: only its hash.
type Token struct {
	Hash      string `bson:"hash"`
	CreatedAt int64  `bson:"created_at"`
}

// GetPrincipal reads a principal by its id.
func (s *Store) GetPrincipal(ctx context.Context, id string) (*Principal, error) {
	var p Principal
	if err := get(ctx, s.principals, id, &p); err != nil {
		return nil, fmt.Errorf("store: get principal: %w", err)
	}
	return &p, nil
}

// InsertPrincipal adds a principal; an existing id is ErrExists.
func (s *Store) InsertPrincipal(ctx context.Context, p *Principal) error {
	if err := insert(ctx, s.principals, p); err != nil {
		return fmt.Errorf("store: insert principal: %w", err)
	}
	return nil
}

// UpdatePrincipal changes a principal atomically, as UpdateSubject does.
func (s *Store) UpdatePrincipal(ctx context.Context, id string, change func(*Principal) error) (*Principal, error) {
	return update(ctx, s, s.principals, id, change)
}

func (d *Principal) version() *int64 { return &d.Version }

// ListPrincipals returns up to limit principals with ids after the given
// one, in id order. Principals are few and listed rarely, by operators, so a
// scan of the collection is acceptable here.
func (s *Store) ListPrincipals(ctx context.Context, after string, limit int) ([]*Principal, error) {
	return listAfter[Principal](ctx, s.principals, bson.D{}, after, limit)
}
