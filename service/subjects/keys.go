package subjects

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/fault"
	"github.com/example/personaldata/store"
)

// claimLease is how long a fresh key reservation belongs to the request that
// made it even though its subject does not hold it yet (the create or
// rectification is under way). Longer than any request may run, so only a
// reservation left by a request that died can be taken over.
const claimLease = 2 * time.Minute

// mergeKeyIDs is a followed by the ids of b it lacks.
func mergeKeyIDs(a, b []string) []string {
	out := slices.Clone(a)
	for _, id := range b {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// claimKeys reserves keys for subject id. A key held by a live subject is
// ALREADY_EXISTS, naming the field; one reserved moments ago by a request
// still under way is ABORTED; one left behind by an interrupted request is
// taken over. It returns the keys this call took (not those the subject
// held already, which a concurrent retry may be relying on); on refusal it
// releases them.
func (s *Service) claimKeys(ctx context.Context, id string, keys []core.LookupKey) ([]string, error) {
	// One insert of them all, the common case; the keys held already
	// go one by one.
	held, err := s.Store.ClaimKeys(ctx, core.KeyIDs(keys), id, s.Now().UnixNano())
	if err != nil {
		// Which of them were written is unknown, and releasing one a
		// concurrent retry holds would undo its claim: any left behind
		// is a stale hint, taken over after claimLease.
		return nil, err
	}
	var taken []string
	for _, k := range keys {
		if !slices.Contains(held, k.ID) {
			taken = append(taken, k.ID)
			continue
		}
		took, err := s.claimKey(ctx, id, k)
		if err != nil {
			s.releaseKeys(ctx, id, taken)
			return nil, err
		}
		if took {
			taken = append(taken, k.ID)
		}
	}
	return taken, nil
}

// releaseKeys gives up keys of subject id, best effort: a key left behind
// is only a hint, checked against the subject, and taken over in time.
func (s *Service) releaseKeys(ctx context.Context, id string, keys []string) {
	for _, k := range keys {
		_ = s.Store.ReleaseKey(ctx, k, id)
	}
}

// claimKey reserves one key and reports whether this call took it.
func (s *Service) claimKey(ctx context.Context, id string, k core.LookupKey) (bool, error) {
	for attempt := 0; attempt < 3; attempt++ {
		now := s.Now().UnixNano()
		held, err := s.Store.ClaimKey(ctx, k.ID, id, now)
		if err == nil {
			return true, nil
		}
		if errors.Is(err, store.ErrNotFound) {
			continue // released between our insert and our read: try again
		}
		if held != nil && held.SubjectID == id {
			return false, nil
		}
		if !errors.Is(err, store.ErrExists) {
			return false, err
		}
		holder, err := s.Vault.GetSubject(ctx, held.SubjectID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return false, err
		}
		if s.HoldsKey(holder, k.ID) {
			// The holder's id stays out: it would tell who has this
			// identity number or e-mail; the field's name says enough.
			return false, fault.AlreadyExists(fault.ReasonSubjectExists, "personaldata.v1.Subject", "", map[string]string{"field": k.Field},
				fmt.Sprintf("a subject with this %s already exists for this controller", strings.ReplaceAll(k.Field, "_", " ")))
		}
		if time.Duration(now-held.ClaimedAt) < claimLease {
			return false, fault.ConcurrentChange(fmt.Sprintf("another request is saving a subject with this %s; retry", strings.ReplaceAll(k.Field, "_", " ")))
		}
		err = s.Store.ReassignKey(ctx, k.ID, held.SubjectID, id, now)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
			return false, err
		}
		// The key moved or vanished meanwhile: look again.
	}
	return false, fault.ConcurrentChange("concurrent changes to the same key; retry")
}
