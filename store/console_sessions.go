package store

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// consoleSessionsCollection holds the support console's sign-in sessions,
// so that any replica serves a session another one began.
const consoleSessionsCollection = "console_sessions"

// ConsoleSession is a principal signed in to the support console. Its _id
// is a hash of the session id the browser holds, so the store never holds
// what would let someone take the session over.
type ConsoleSession struct {
	ID          string `bson:"_id"`
	Version     int64  `bson:"v"`
	PrincipalID string `bson:"principal"`
	// Kind is the principal's kind (PrincipalKind name), which decides the
	// console's sections; empty in sessions of support staff made before.
	Kind string `bson:"kind,omitempty"`
	// TokenHash is the stored form of the token the principal signed in
	// with; the session lasts only while the principal holds it.
	TokenHash string `bson:"token_hash"`
	// CSRF is the token every form of the session carries.
	CSRF    string `bson:"csrf"`
	Created int64  `bson:"created"` // Unix nanoseconds
	// Ends is when the session ends however busy (Unix nanoseconds).
	Ends int64 `bson:"ends"`
	// LastSeen is the last use the console recorded; Expires the end the
	// console set from it, never after Ends (both Unix nanoseconds).
	LastSeen int64 `bson:"last_seen"`
	Expires  int64 `bson:"expires"`
}

func (d *ConsoleSession) version() *int64 { return &d.Version }

func (s *Store) consoleSessions() *mongo.Collection {
	return s.subjects.Database().Collection(consoleSessionsCollection)
}

// InsertConsoleSession stores a new session; an _id in use is ErrExists.
func (s *Store) InsertConsoleSession(ctx context.Context, cs *ConsoleSession) error {
	cs.Version = 1
	if err := s.insert(ctx, s.consoleSessions(), cs); err != nil {
		return fmt.Errorf("store: insert console session: %w", err)
	}
	return nil
}

// GetConsoleSession reads session id; a missing one is ErrNotFound.
func (s *Store) GetConsoleSession(ctx context.Context, id string) (*ConsoleSession, error) {
	var cs ConsoleSession
	if err := get(ctx, s.consoleSessions(), id, &cs); err != nil {
		return nil, fmt.Errorf("store: get console session: %w", err)
	}
	return &cs, nil
}

// TouchConsoleSession records a use of session id at lastSeen (Unix
// nanoseconds) with its new expiry.
func (s *Store) TouchConsoleSession(ctx context.Context, id string, lastSeen, expires int64) error {
	_, err := update(ctx, s, s.consoleSessions(), id, func(cs *ConsoleSession) error {
		cs.LastSeen, cs.Expires = max(cs.LastSeen, lastSeen), max(cs.Expires, expires)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: touch console session: %w", err)
	}
	return nil
}

// DeleteConsoleSession removes session id; a missing one is no error.
func (s *Store) DeleteConsoleSession(ctx context.Context, id string) error {
	if err := s.remove(ctx, s.consoleSessions(), id, nil); err != nil {
		return fmt.Errorf("store: delete console session: %w", err)
	}
	return nil
}

// DeleteExpiredConsoleSessions removes the sessions that expired at or
// before now (Unix nanoseconds). The embedded store scans for it; sessions
// are few.
func (s *Store) DeleteExpiredConsoleSessions(ctx context.Context, now int64) error {
	err := s.write(ctx, s.consoleSessions(), func(ctx context.Context) error {
		_, err := s.consoleSessions().DeleteMany(ctx, bson.D{{Key: "expires", Value: bson.D{{Key: "$lte", Value: now}}}})
		return err
	})
	if err != nil {
		return fmt.Errorf("store: delete expired console sessions: %w", classify(err))
	}
	return nil
}
