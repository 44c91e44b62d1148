package core

import (
	"context"
	"errors"
	"strings"

	"github.com/example/personaldata/service/rules"
	"github.com/example/personaldata/store"
)

// LookupKey is a key that finds a subject without a scan: its field, and the
// _id of its key document.
type LookupKey struct {
	Field string
	ID    string
}

// LookupKeys are the keys a subject with person p holds: blind indexes
// (keyed HMACs with a key of their own) of the identity number and the
// e-mail address within the controller, so equal values of different
// controllers never collide and no value can be read back from a key.
func (s *Service) LookupKeys(controller string, p *store.Person) []LookupKey {
	ring := s.Vault.Keys.Ring()
	return []LookupKey{
		{Field: rules.FieldIdentityNumber, ID: ring.Index(rules.FieldIdentityNumber, controller, p.IdentityNumber)},
		{Field: rules.FieldEmail, ID: ring.Index(rules.FieldEmail, controller, strings.ToLower(p.Email))},
	}
}

// KeyIDs are the ids of keys, as a subject records the keys it holds.
func KeyIDs(keys []LookupKey) []string {
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.ID
	}
	return ids
}

// HoldsKey reports whether sub holds key id now: keys are hints, the subject's
// own data decides.
func (s *Service) HoldsKey(sub *store.Subject, id string) bool {
	if sub == nil || sub.Person == nil || sub.Erasure != nil {
		return false
	}
	for _, k := range s.LookupKeys(sub.Controller, sub.Person) {
		if k.ID == id {
			return true
		}
	}
	return false
}

// FindByKey returns the live subject that holds key id, or nil.
func (s *Service) FindByKey(ctx context.Context, id string) (*store.Subject, error) {
	k, err := s.Store.GetKey(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	sub, err := s.Vault.GetSubject(ctx, k.SubjectID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !s.HoldsKey(sub, id) {
		return nil, nil
	}
	return sub, nil
}
