package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
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
	if err := s.insert(ctx, s.principals, p); err != nil {
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

// generationsCollection holds one document per cache that replicas keep of
// a collection: its generation, a random value that every change of that
// collection replaces. A replica that reads the same generation again knows
// its cached copies are still current.
const generationsCollection = "generations"

// principalsGeneration is the _id of the principals' generation.
const principalsGeneration = "principals"

type generation struct {
	ID    string `bson:"_id"`
	Value string `bson:"value"`
}

// PrincipalsGeneration is the current generation of the principals: "" until
// the first change after which replicas must drop what they cached.
func (s *Store) PrincipalsGeneration(ctx context.Context) (string, error) {
	var g generation
	err := get(ctx, s.generations(), principalsGeneration, &g)
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("store: get principals generation: %w", err)
	}
	return g.Value, nil
}

// NewPrincipalsGeneration replaces the principals' generation with a new
// random value and returns it; call it after every change of a principal.
// Concurrent calls each write a value no replica has seen, so whichever
// lands last still tells every replica that something changed.
func (s *Store) NewPrincipalsGeneration(ctx context.Context) (string, error) {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	g := generation{ID: principalsGeneration, Value: hex.EncodeToString(b[:])}
	err := s.write(ctx, s.generations(), func(ctx context.Context) error {
		_, err := s.generations().ReplaceOne(ctx, bson.D{{Key: "_id", Value: g.ID}}, g, options.Replace().SetUpsert(true))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("store: new principals generation: %w", classify(err))
	}
	return g.Value, nil
}

func (s *Store) generations() *mongo.Collection {
	return s.subjects.Database().Collection(generationsCollection)
}
