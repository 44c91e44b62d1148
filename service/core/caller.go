package core

import (
	"context"
	"errors"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/auth"
	"github.com/example/personaldata/service/fault"
	"github.com/example/personaldata/service/rules"
	"github.com/example/personaldata/store"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Internal maps an error from below the service to a status (fault.Internal).
func (s *Service) Internal(ctx context.Context, op string, err error) error {
	return fault.Internal(ctx, s.Log, op, err)
}

// IsReplay reports whether err says the request was applied before.
func IsReplay(err error) bool {
	var r *Replayed
	return errors.As(err, &r)
}

// GetSubject reads a subject for a request, mapping absence, and subjects
// of controllers the caller does not act for, to NOT_FOUND, and erasure to
// the tombstone's answer (returned with the tombstone).
func (s *Service) GetSubject(ctx context.Context, op, id string) (*store.Subject, error) {
	c, err := s.Caller(ctx)
	if err != nil {
		return nil, err
	}
	sub, err := s.Vault.GetSubject(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fault.NotFound()
	}
	if err != nil {
		return nil, s.Internal(ctx, op, err)
	}
	// On record before any refusal: an attempt is a fact for the trail too.
	Note(ctx, audit.Touch{SubjectID: sub.ID, Tenant: sub.Controller})
	if err := Visible(c, sub); err != nil {
		return nil, err
	}
	sub = s.afterChange(ctx, sub) // what an earlier change left pending (settle.go)
	if sub.Erasure != nil {
		return sub, fault.ErasedError(sub)
	}
	return sub, nil
}

// Note tells the audit trail what a request touched; the interceptor
// appends it with the outcome, in a stream before the data leaves.
func Note(ctx context.Context, t audit.Touch) {
	audit.Note(ctx, t)
}

// Visible is the tenant rule: a subject of a controller the caller does not
// act for is NOT_FOUND, exactly as if it did not exist.
func Visible(c *auth.Caller, sub *store.Subject) error {
	if !c.ActsFor(sub.Controller) {
		return fault.NotFound()
	}
	return nil
}

// OnControllersInstruction is the rule that a rights request (access,
// rectification, restriction, erasure) about data a customer controls is
// carried out on that controller's instruction: it must come from the
// controller's own principal, not from the company's staff on the data
// subject's word. For the company's own data, the company is controller.
func (s *Service) OnControllersInstruction(ctx context.Context, sub *store.Subject) error {
	c, err := s.Caller(ctx)
	if err != nil {
		return err
	}
	if sub.Controller != rules.CompanyController && c.Principal.Kind != pdv1.PrincipalKind_PRINCIPAL_KIND_CUSTOMER_CONTROLLER.String() {
		return fault.PermissionDenied(fault.ReasonControllerInstruction, map[string]string{"controller_id": sub.Controller},
			"a rights request about a customer's data is carried out on the controller's instruction: send it as the controller's principal")
	}
	return nil
}

// Caller is the authenticated caller; handlers fail closed without one.
func (s *Service) Caller(ctx context.Context) (*auth.Caller, error) {
	if c := auth.FromContext(ctx); c != nil {
		return c, nil
	}
	return nil, status.Error(codes.Unauthenticated, "missing or invalid credentials")
}
