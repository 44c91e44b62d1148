package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
)

// leasesCollection holds the leases that let one replica at a time do a
// piece of background work (the pattern of exposure-notifications'
// LeaseBatch): one document per kind of work, keyed by its name.
const leasesCollection = "leases"

// ErrLeaseHeld: another holder has the lease and it has not expired.
var ErrLeaseHeld = errors.New("lease held by another holder")

// Lease gives the work Name to Holder until Expires.
type Lease struct {
	ID      string `bson:"_id"` // the name of the work
	Version int64  `bson:"v"`
	Holder  string `bson:"holder"`
	Expires int64  `bson:"expires"` // Unix nanoseconds; 0 once released
}

func (d *Lease) version() *int64 { return &d.Version }

func (s *Store) leases() *mongo.Collection {
	return s.subjects.Database().Collection(leasesCollection)
}

// TakeLease gives lease name to holder until now+ttl: it creates the lease
// if there is none, and otherwise takes it only if it has expired or is
// holder's already (a renewal). It returns ErrLeaseHeld when another holder
// has it. The change is the store's guarded update, so of replicas that try
// at once exactly one gets it.
func (s *Store) TakeLease(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (*Lease, error) {
	expires := now.Add(ttl).UnixNano()
	for range maxUpdateAttempts {
		l, err := update(ctx, s, s.leases(), name, func(l *Lease) error {
			if l.Holder != holder && l.Expires > now.UnixNano() {
				return ErrLeaseHeld
			}
			l.Holder, l.Expires = holder, expires
			return nil
		})
		if !errors.Is(err, ErrNotFound) {
			if err != nil && !errors.Is(err, ErrLeaseHeld) {
				err = fmt.Errorf("store: take lease: %w", err)
			}
			return l, err
		}
		l = &Lease{ID: name, Version: 1, Holder: holder, Expires: expires}
		err = s.insert(ctx, s.leases(), l)
		if err == nil {
			return l, nil
		}
		if !errors.Is(err, ErrExists) {
			return nil, fmt.Errorf("store: take lease: %w", err)
		}
		// Another replica created it first: try to take it as it is.
	}
	return nil, fmt.Errorf("store: take lease: %w", ErrConflict)
}

// ReleaseLease ends holder's lease name at once, so another replica need not
// wait for it to expire. A lease that holder does not have is left alone.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	_, err := update(ctx, s, s.leases(), name, func(l *Lease) error {
		if l.Holder != holder {
			return ErrLeaseHeld
		}
		l.Expires = 0
		return nil
	})
	if err == nil || errors.Is(err, ErrLeaseHeld) || errors.Is(err, ErrNotFound) {
		return nil
	}
	return fmt.Errorf("store: release lease: %w", err)
}
