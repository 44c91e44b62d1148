package auth

import (
	"context"
	"slices"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store"
)

// Caller is the authenticated principal of a request.
type Caller struct {
	Principal *store.Principal
	// Method is how it authenticated: "bearer", "mtls", or "console" (a
	// principal signed in to the support console, which calls for it).
	Method string
	// SignIn is, for a data subject on their own page (Method
	// MethodSelfService), how they signed in: store.SignInCode or
	// store.SignInOIDC.
	SignIn string
}

// ID is the caller's principal id.
func (c *Caller) ID() string { return c.Principal.ID }

// ActsFor reports whether the caller may act for controller.
func (c *Caller) ActsFor(controller string) bool {
	return slices.Contains(c.Principal.TenantIDs, controller) || slices.Contains(c.Principal.TenantIDs, AllTenants)
}

// SoleTenant is the one controller the caller acts for, if it has exactly one.
func (c *Caller) SoleTenant() (string, bool) {
	if len(c.Principal.TenantIDs) == 1 && c.Principal.TenantIDs[0] != AllTenants {
		return c.Principal.TenantIDs[0], true
	}
	return "", false
}

// MayUse reports whether the caller holds purpose.
func (c *Caller) MayUse(purpose pdv1.Purpose) bool {
	return slices.Contains(c.Principal.Purposes, purpose.String()) && PurposeGrantable(c.kind(), purpose)
}

// MayCall reports whether the caller may call the RPC method.
// A grant beyond the kind's ceiling, stored before the ceiling existed,
// does not count.
func (c *Caller) MayCall(method string) bool {
	if c.Method == MethodSelfService {
		return slices.Contains(selfServiceRPCs, method)
	}
	return anyPrincipalRPCs[method] || slices.Contains(c.Principal.RPCs, method) && Grantable(c.kind(), method)
}

func (c *Caller) kind() pdv1.PrincipalKind {
	return pdv1.PrincipalKind(pdv1.PrincipalKind_value[c.Principal.Kind])
}

type callerKey struct{}

// NewContext returns ctx carrying c.
func NewContext(ctx context.Context, c *Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// FromContext returns the caller of the request, or nil when there is none
// (which handlers treat as a refusal: they fail closed).
func FromContext(ctx context.Context) *Caller {
	c, _ := ctx.Value(callerKey{}).(*Caller)
	return c
}
