package store

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// selfServiceChallengesCollection holds the one-time sign-in codes of the
// data subjects' own page, so that any replica checks a code another sent.
const selfServiceChallengesCollection = "self_service_challenges"

// SelfServiceChallenge is a sign-in to the data subject's own page that
// waits for its code. Its _id is a hash of the token the browser holds. It
// holds no code: the code is a keyed hash of the challenge and its nonce,
// computed again to check it. A challenge that matched no one is stored
// alike, with no subject, so that a sign-in takes the same steps either way.
type SelfServiceChallenge struct {
	ID      string `bson:"_id"`
	Version int64  `bson:"v"`
	// SubjectID is the subject the code went to, "" when none matched.
	SubjectID string `bson:"subject,omitempty"`
	Nonce     []byte `bson:"nonce"`
	// Tries is how many wrong codes were given.
	Tries   int   `bson:"tries"`
	Created int64 `bson:"created"` // Unix nanoseconds
	Expires int64 `bson:"expires"` // Unix nanoseconds
	// A change of a contact detail the subject asked for on their page
	// (service/subjects/selfservice_contact.go) waits for the code sent to the new
	// address: the new value, sealed with the subject's data key, and the
	// hashed idempotency key and fingerprint of the request that started it.
	Sealed      []byte `bson:"sealed,omitempty"`
	Op          string `bson:"op,omitempty"`
	Fingerprint []byte `bson:"fp,omitempty"`
}

func (d *SelfServiceChallenge) version() *int64 { return &d.Version }

func (s *Store) selfServiceChallenges() *mongo.Collection {
	return s.subjects.Database().Collection(selfServiceChallengesCollection)
}

// InsertSelfServiceChallenge stores a new challenge; an _id in use is ErrExists.
func (s *Store) InsertSelfServiceChallenge(ctx context.Context, c *SelfServiceChallenge) error {
	c.Version = 1
	if err := s.insert(ctx, s.selfServiceChallenges(), c); err != nil {
		return fmt.Errorf("store: insert self-service challenge: %w", err)
	}
	return nil
}

// GetSelfServiceChallenge reads challenge id; a missing one is ErrNotFound.
func (s *Store) GetSelfServiceChallenge(ctx context.Context, id string) (*SelfServiceChallenge, error) {
	var c SelfServiceChallenge
	if err := get(ctx, s.selfServiceChallenges(), id, &c); err != nil {
		return nil, fmt.Errorf("store: get self-service challenge: %w", err)
	}
	return &c, nil
}

// UpdateSelfServiceChallenge changes challenge id with f, which may refuse
// by returning an error (returned as it is).
func (s *Store) UpdateSelfServiceChallenge(ctx context.Context, id string, f func(*SelfServiceChallenge) error) (*SelfServiceChallenge, error) {
	c, err := update(ctx, s, s.selfServiceChallenges(), id, f)
	if err != nil {
		return nil, fmt.Errorf("store: update self-service challenge: %w", err)
	}
	return c, nil
}

// DeleteSelfServiceChallenge removes challenge id; a missing one is no error.
func (s *Store) DeleteSelfServiceChallenge(ctx context.Context, id string) error {
	if err := s.remove(ctx, s.selfServiceChallenges(), id, nil); err != nil {
		return fmt.Errorf("store: delete self-service challenge: %w", err)
	}
	return nil
}

// DeleteExpiredSelfServiceChallenges removes the challenges that expired at
// or before now (Unix nanoseconds).
func (s *Store) DeleteExpiredSelfServiceChallenges(ctx context.Context, now int64) error {
	err := s.write(ctx, s.selfServiceChallenges(), func(ctx context.Context) error {
		_, err := s.selfServiceChallenges().DeleteMany(ctx, bson.D{{Key: "expires", Value: bson.D{{Key: "$lte", Value: now}}}})
		return err
	})
	if err != nil {
		return fmt.Errorf("store: delete expired self-service challenges: %w", classify(err))
	}
	return nil
}

// selfServiceSessionsCollection holds the sessions of the data subjects'
// own page: each is bound to one subject.
const selfServiceSessionsCollection = "self_service_sessions"

// SelfServiceSession is a person signed in to their own page. Its _id is a
// hash of the random id the browser's cookie holds.
type SelfServiceSession struct {
	ID        string `bson:"_id"`
	Version   int64  `bson:"v"`
	SubjectID string `bson:"subject"`
	// SignIn is how the person signed in: SignInCode or SignInOIDC.
	SignIn   string `bson:"sign_in,omitempty"`
	CSRF     string `bson:"csrf"`
	Created  int64  `bson:"created"`   // Unix nanoseconds
	LastSeen int64  `bson:"last_seen"` // Unix nanoseconds
}

// How a self-service session was signed in.
const (
	SignInCode = "code" // a one-time code sent to the contact on file
	SignInOIDC = "oidc" // strong sign-in through an OpenID Connect provider
)

func (d *SelfServiceSession) version() *int64 { return &d.Version }

func (s *Store) selfServiceSessions() *mongo.Collection {
	return s.subjects.Database().Collection(selfServiceSessionsCollection)
}

// InsertSelfServiceSession stores a new session.
func (s *Store) InsertSelfServiceSession(ctx context.Context, c *SelfServiceSession) error {
	c.Version = 1
	if err := s.insert(ctx, s.selfServiceSessions(), c); err != nil {
		return fmt.Errorf("store: insert self-service session: %w", err)
	}
	return nil
}

// GetSelfServiceSession reads session id; a missing one is ErrNotFound.
func (s *Store) GetSelfServiceSession(ctx context.Context, id string) (*SelfServiceSession, error) {
	var c SelfServiceSession
	if err := get(ctx, s.selfServiceSessions(), id, &c); err != nil {
		return nil, fmt.Errorf("store: get self-service session: %w", err)
	}
	return &c, nil
}

// UpdateSelfServiceSession changes session id with f.
func (s *Store) UpdateSelfServiceSession(ctx context.Context, id string, f func(*SelfServiceSession) error) (*SelfServiceSession, error) {
	c, err := update(ctx, s, s.selfServiceSessions(), id, f)
	if err != nil {
		return nil, fmt.Errorf("store: update self-service session: %w", err)
	}
	return c, nil
}

// DeleteSelfServiceSession removes session id; a missing one is no error.
func (s *Store) DeleteSelfServiceSession(ctx context.Context, id string) error {
	if err := s.remove(ctx, s.selfServiceSessions(), id, nil); err != nil {
		return fmt.Errorf("store: delete self-service session: %w", err)
	}
	return nil
}
