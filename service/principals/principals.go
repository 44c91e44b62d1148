package principals

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/auth"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/fault"
	"github.com/example/personaldata/service/personnummer"
	"github.com/example/personaldata/service/rules"
	"github.com/example/personaldata/service/validate"
	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/durablefile"
)

// Principals implements PrincipalService: who may call, and their tokens.
type Principals struct {
	pdv1.UnimplementedPrincipalServiceServer
	*Service
}

// Principals returns the PrincipalService on the same store and clock.
func (s *Service) Principals() *Principals { return &Principals{Service: s} }

// maxTokens bounds the live tokens of a principal: enough to rotate.
const maxTokens = 5

// validPrincipalFields checks a principal's grants, filling in the defaults of
// its kind where the request leaves them empty.
func validPrincipalFields(v *validate.Violations, kind pdv1.PrincipalKind, tenants []string, purposes []pdv1.Purpose, rpcs []string) ([]string, []string, []string) {
	if len(tenants) == 0 {
		v.Add("tenant_ids", `is required: "company", customer ids, or "*" for an operator`)
	}
	for _, t := range tenants {
		switch {
		case t == auth.AllTenants && kind != pdv1.PrincipalKind_PRINCIPAL_KIND_OPERATOR && kind != pdv1.PrincipalKind_PRINCIPAL_KIND_DPO:
			v.Add("tenant_ids", `"*" (every controller) is for operators and the DPO only`)
		case t != auth.AllTenants && !validate.ControllerPattern.MatchString(t):
			v.Add("tenant_ids", "must be \"company\" or customer ids of a-z, 0-9, '_', '-'")
		}
	}
	if len(purposes) == 0 {
		purposes = auth.DefaultPurposes(kind)
	}
	var purposeNames []string
	for _, p := range purposes {
		switch _, ok := rules.PurposeRules[p]; {
		case !ok:
			v.Add("purposes", "contains an unknown purpose")
			continue
		case !auth.PurposeGrantable(kind, p):
			v.Add("purposes", fmt.Sprintf("contains a purpose that a principal of kind %s may not be granted", kind))
			continue
		}
		purposeNames = append(purposeNames, p.String())
	}
	if len(rpcs) == 0 {
		rpcs = auth.DefaultRPCs(kind)
	}
	for _, m := range rpcs {
		switch {
		case !auth.KnownRPC(m):
			v.Add("rpcs", "contains a name that is not an RPC that can be granted")
		case !auth.Grantable(kind, m):
			v.Add("rpcs", fmt.Sprintf("contains an RPC that a principal of kind %s may not be granted", kind))
		}
	}
	return slices.Compact(slices.Sorted(slices.Values(tenants))), purposeNames, rpcs
}

func principalToProto(p *store.Principal) *pdv1.Principal {
	kind := core.EnumValue[pdv1.PrincipalKind](pdv1.PrincipalKind_value, p.Kind)
	out := &pdv1.Principal{
		PrincipalId: p.ID,
		Kind:        kind,
		TenantIds:   p.TenantIDs,
		Description: p.Description,
		Revoked:     p.Revoked,
		CreateTime:  core.Timestamp(p.CreatedAt),
		RevokeTime:  core.Timestamp(p.RevokedAt),
		TokenCount:  int32(len(p.Tokens)),
		Version:     p.Version,
	}
	// What it may do: a grant stored beyond its kind's ceiling (from before
	// a default was narrowed) is ignored by the rules, so it is not shown.
	for _, m := range p.RPCs {
		if auth.Grantable(kind, m) {
			out.Rpcs = append(out.Rpcs, m)
		}
	}
	for _, name := range p.Purposes {
		if pu := core.EnumValue[pdv1.Purpose](pdv1.Purpose_value, name); auth.PurposeGrantable(kind, pu) {
			out.Purposes = append(out.Purposes, pu)
		}
	}
	return out
}

// CreatePrincipal adds a principal and issues its first token.
func (s *Principals) CreatePrincipal(ctx context.Context, req *pdv1.CreatePrincipalRequest) (*pdv1.CreatePrincipalResponse, error) {
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	in := req.GetPrincipal()
	if !ValidPrincipalID(in.GetPrincipalId()) {
		v.Add("principal.principal_id", "must be 1 to 63 characters of a-z, 0-9, '_', '-', and not an identity number")
	}
	kind := v.Enum("principal.kind", in.GetKind())
	tenants, purposes, rpcs := validPrincipalFields(&v, in.GetKind(), in.GetTenantIds(), in.GetPurposes(), in.GetRpcs())
	desc := v.Text("principal.description", in.GetDescription(), validate.MaxReferenceLen, false, false)
	if err := v.Err(); err != nil {
		return nil, err
	}
	core.Note(ctx, audit.Touch{Chain: audit.PrincipalsChain, Fields: []string{"principal/" + in.GetPrincipalId()}})
	for _, t := range tenants {
		if t != auth.AllTenants {
			core.Note(ctx, audit.Touch{Tenant: t, Fields: []string{"principal/" + in.GetPrincipalId()}})
		}
	}
	fp := s.Fingerprint(req)
	token, hash := auth.NewToken(in.GetPrincipalId())
	now := s.Now().UnixNano()
	p := &store.Principal{
		ID: in.GetPrincipalId(), Version: 1, Kind: kind, TenantIDs: tenants, Purposes: purposes, RPCs: rpcs,
		Description: desc, Tokens: []store.Token{{Hash: hash, CreatedAt: now}}, CreatedAt: now,
		Ops: []store.Op{{Key: core.OpKey(key), Fingerprint: fp, Result: 1, At: now}},
	}
	err := s.Store.InsertPrincipal(ctx, p)
	if errors.Is(err, store.ErrExists) {
		existing, gerr := s.Store.GetPrincipal(ctx, p.ID)
		if gerr != nil {
			return nil, s.Internal(ctx, "create principal", gerr)
		}
		if core.IsReplay(core.CheckReplay(existing.Ops, core.OpKey(key), fp)) {
			// A retry: the token was shown once already and is not kept.
			return &pdv1.CreatePrincipalResponse{Principal: principalToProto(existing)}, nil
		}
		return nil, fault.AlreadyExists(fault.ReasonPrincipalExists, "personaldata.v1.Principal", "principals/"+p.ID, nil, "a principal with this id exists")
	}
	if err != nil {
		return nil, s.Internal(ctx, "create principal", err)
	}
	return &pdv1.CreatePrincipalResponse{Principal: principalToProto(p), Token: token}, nil
}

// GetPrincipal returns one principal.
func (s *Principals) GetPrincipal(ctx context.Context, req *pdv1.GetPrincipalRequest) (*pdv1.GetPrincipalResponse, error) {
	p, err := s.principal(ctx, req.GetPrincipalId())
	if err != nil {
		return nil, err
	}
	return &pdv1.GetPrincipalResponse{Principal: principalToProto(p)}, nil
}

func (s *Principals) principal(ctx context.Context, id string) (*store.Principal, error) {
	if !ValidPrincipalID(id) {
		return nil, validate.Violations{{Field: "principal_id", Description: "is not a principal id"}}.Err()
	}
	p, err := s.Store.GetPrincipal(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, status.Error(codes.NotFound, "principal not found")
	}
	if err != nil {
		return nil, s.Internal(ctx, "get principal", err)
	}
	return p, nil
}

// ListPrincipals pages through principals by id.
func (s *Principals) ListPrincipals(ctx context.Context, req *pdv1.ListPrincipalsRequest) (*pdv1.ListPrincipalsResponse, error) {
	size := int(req.GetPageSize())
	if size == 0 {
		size = 50
	}
	if size < 0 || size > validate.MaxPageSize {
		return nil, validate.Violations{{Field: "page_size", Description: fmt.Sprintf("must be 0 to %d", validate.MaxPageSize)}}.Err()
	}
	after := req.GetPageToken()
	if after != "" && !validate.ControllerPattern.MatchString(after) {
		return nil, validate.Violations{{Field: "page_token", Description: "is not a token from this listing"}}.Err()
	}
	ps, err := s.Store.ListPrincipals(ctx, after, size+1)
	if err != nil {
		return nil, s.Internal(ctx, "list principals", err)
	}
	out := &pdv1.ListPrincipalsResponse{}
	for i, p := range ps {
		if i == size {
			out.NextPageToken = ps[size-1].ID
			break
		}
		out.Principals = append(out.Principals, principalToProto(p))
	}
	return out, nil
}

// The grants an UpdatePrincipal mask may name.
const (
	grantTenants  = "tenant_ids"
	grantPurposes = "purposes"
	grantRPCs     = "rpcs"
)

var principalGrants = []string{grantTenants, grantPurposes, grantRPCs}

// UpdatePrincipal changes the grants named in the update mask and keeps the
// others. The mask is required: an empty one is refused, not read as "all
// fields", because a full replace is what silently reset a principal's
// purposes to its kind's defaults when only its tenants were changed.
func (s *Principals) UpdatePrincipal(ctx context.Context, req *pdv1.UpdatePrincipalRequest) (*pdv1.UpdatePrincipalResponse, error) {
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	if req.GetExpectedVersion() <= 0 {
		v.Add("expected_version", "is required: the version read before the change")
	}
	fields := v.UpdateMask(req.GetUpdateMask().GetPaths(), principalGrants)
	current, err := s.principal(ctx, req.GetPrincipalId())
	if err != nil {
		return nil, err
	}
	// The grants as they will be, checked together: named ones from the
	// request, the others as they are.
	tenants, rpcs := current.TenantIDs, current.RPCs
	var purposes []pdv1.Purpose
	for _, name := range current.Purposes {
		purposes = append(purposes, core.EnumValue[pdv1.Purpose](pdv1.Purpose_value, name))
	}
	named := func(f string) bool { return slices.Contains(fields, f) }
	if named(grantTenants) {
		tenants = req.GetTenantIds()
	}
	if named(grantPurposes) {
		purposes = req.GetPurposes()
	}
	if named(grantRPCs) {
		rpcs = req.GetRpcs()
	}
	kind := core.EnumValue[pdv1.PrincipalKind](pdv1.PrincipalKind_value, current.Kind)
	tenants, purposeNames, rpcs := validPrincipalFields(&v, kind, tenants, purposes, rpcs)
	if err := v.Err(); err != nil {
		return nil, err
	}
	p, err := s.updatePrincipal(ctx, req.GetPrincipalId(), key, s.Fingerprint(req), func(p *store.Principal) error {
		if p.Version != req.GetExpectedVersion() {
			return fault.StaleVersion("principal", req.GetExpectedVersion(), p.Version)
		}
		if named(grantTenants) {
			p.TenantIDs = tenants
		}
		if named(grantPurposes) {
			p.Purposes = purposeNames
		}
		if named(grantRPCs) {
			p.RPCs = rpcs
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &pdv1.UpdatePrincipalResponse{Principal: principalToProto(p)}, nil
}

// IssueToken issues another token, dropping the oldest beyond maxTokens.
func (s *Principals) IssueToken(ctx context.Context, req *pdv1.IssueTokenRequest) (*pdv1.IssueTokenResponse, error) {
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	if err := v.Err(); err != nil {
		return nil, err
	}
	token, hash := auth.NewToken(req.GetPrincipalId())
	p, err := s.updatePrincipal(ctx, req.GetPrincipalId(), key, s.Fingerprint(req), func(p *store.Principal) error {
		if p.Revoked {
			return fault.FailedPrecondition("the principal is revoked")
		}
		p.Tokens = append(p.Tokens, store.Token{Hash: hash, CreatedAt: s.Now().UnixNano()})
		if len(p.Tokens) > maxTokens {
			p.Tokens = p.Tokens[len(p.Tokens)-maxTokens:]
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The token goes out only if it is the one stored: a replay (even one
	// decided by a lost race inside the update) gets none, as it was shown
	// once, with the first response.
	if !slices.ContainsFunc(p.Tokens, func(t store.Token) bool { return t.Hash == hash }) {
		token = ""
	}
	return &pdv1.IssueTokenResponse{Principal: principalToProto(p), Token: token}, nil
}

// RevokePrincipal disables a principal and drops its tokens, effective for
// the next call: every call reads the principal.
func (s *Principals) RevokePrincipal(ctx context.Context, req *pdv1.RevokePrincipalRequest) (*pdv1.RevokePrincipalResponse, error) {
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	v.Text("reason", req.GetReason(), validate.MaxReferenceLen, false, false)
	if err := v.Err(); err != nil {
		return nil, err
	}
	if c := auth.FromContext(ctx); c != nil && c.ID() == req.GetPrincipalId() {
		return nil, fault.FailedPrecondition("a principal cannot revoke itself")
	}
	p, err := s.updatePrincipal(ctx, req.GetPrincipalId(), key, s.Fingerprint(req), func(p *store.Principal) error {
		if !p.Revoked {
			p.Revoked = true
			p.RevokedAt = s.Now().UnixNano()
		}
		p.Tokens = nil
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &pdv1.RevokePrincipalResponse{Principal: principalToProto(p)}, nil
}

// GetCaller returns the caller's own principal.
func (s *Principals) GetCaller(ctx context.Context, _ *pdv1.GetCallerRequest) (*pdv1.GetCallerResponse, error) {
	c := auth.FromContext(ctx)
	if c == nil {
		return nil, status.Error(codes.Unauthenticated, "missing or invalid credentials")
	}
	return &pdv1.GetCallerResponse{Principal: principalToProto(c.Principal), Method: c.Method}, nil
}

// ValidPrincipalID says whether id may name a principal. Ids are written to
// the audit trail and logs, so they must not be personal data.
func ValidPrincipalID(id string) bool {
	if id == "" || !validate.ControllerPattern.MatchString(id) {
		return false
	}
	_, err := personnummer.Parse(id, time.Now())
	return err != nil
}

// principalRef names a principal in the audit trail: by its id once the id
// is valid, else by a keyed hash of what came, which may be anything (an
// identity number, markup, control bytes) and is never stored as it came.
// The hash still lets an investigator tie repeated attempts together.
func (s *Principals) principalRef(id string) string {
	if ValidPrincipalID(id) {
		return "principal/" + id
	}
	index := s.Vault.Keys.Ring().Index("rejected", "principal_id", id)
	return "principal/rejected-id:" + index[strings.IndexByte(index, '.')+1:][:16]
}

// updatePrincipal applies change under an idempotency key; a replay
// returns the principal as it is without writing.
func (s *Principals) updatePrincipal(ctx context.Context, id, key string, fp []byte, change func(*store.Principal) error) (*store.Principal, error) {
	core.Note(ctx, audit.Touch{Chain: audit.PrincipalsChain, Fields: []string{s.principalRef(id)}})
	current, err := s.principal(ctx, id)
	if err != nil {
		return nil, err
	}
	// A principal's tenants see every change of its grants and every token
	// issued for it in their own chains, whoever made it.
	for _, t := range current.TenantIDs {
		if t != auth.AllTenants {
			core.Note(ctx, audit.Touch{Tenant: t, Fields: []string{"principal/" + id}})
		}
	}
	p, err := s.Store.UpdatePrincipal(ctx, id, func(p *store.Principal) error {
		if err := core.CheckReplay(p.Ops, core.OpKey(key), fp); err != nil {
			return err
		}
		if err := change(p); err != nil {
			return err
		}
		p.Ops = core.AppendOp(p.Ops, store.Op{Key: core.OpKey(key), Fingerprint: fp, Result: p.Version + 1}, s.Now())
		return nil
	})
	switch {
	case core.IsReplay(err):
		// The first attempt may have failed to publish the change.
		if err := s.PrincipalCache.Changed(ctx); err != nil {
			return nil, s.Internal(ctx, "publish a principal's change", err)
		}
		return s.principal(ctx, id)
	case errors.Is(err, store.ErrNotFound):
		return nil, status.Error(codes.NotFound, "principal not found")
	case err != nil:
		return nil, s.Internal(ctx, "update principal", err)
	}
	// Answered only once no replica authenticates with the principal as it
	// was: a revocation holds from the next call on.
	if err := s.PrincipalCache.Changed(ctx); err != nil {
		return nil, s.Internal(ctx, "publish a principal's change", err)
	}
	// A tenant the update grants sees it too (notes on one chain merge).
	for _, t := range p.TenantIDs {
		if t != auth.AllTenants {
			core.Note(ctx, audit.Touch{Tenant: t, Fields: []string{"principal/" + id}})
		}
	}
	return p, nil
}

// BootstrapOperator creates the first operator, "operator", when the store
// has none, and writes its token to path, readable only by the owner. The
// token goes to that file only, never to a log. It reports whether it
// created the operator; when several replicas start at once, one does.
//
// The token is written, durably, to a file of its own before the principal
// it opens is stored, and moved to path after: a principal whose token was
// lost would lock the operators out. A start that finds the operator stored
// but no file at path (a crash or power cut between the two) moves the
// token into place then.
func (s *Service) BootstrapOperator(ctx context.Context, path string) (bool, error) {
	const id = "operator"
	if p, err := s.Store.GetPrincipal(ctx, id); err == nil {
		return false, finishTokenFile(path, p)
	} else if !errors.Is(err, store.ErrNotFound) {
		return false, fmt.Errorf("bootstrap operator: %w", err)
	}
	kind := pdv1.PrincipalKind_PRINCIPAL_KIND_OPERATOR
	token, hash := auth.NewToken(id)
	now := s.Now().UnixNano()
	if err := durablefile.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, fmt.Errorf("bootstrap operator: %w", err)
	}
	pending := path + pendingTokenSuffix + strconv.FormatInt(now, 36)
	if err := durablefile.Write(pending, []byte(token+"\n"), false); err != nil {
		return false, fmt.Errorf("bootstrap operator: write token file: %w", err)
	}
	err := s.Store.InsertPrincipal(ctx, &store.Principal{
		ID: id, Version: 1, Kind: kind.String(), TenantIDs: []string{auth.AllTenants},
		RPCs: auth.DefaultRPCs(kind), Description: "created at first start",
		Tokens: []store.Token{{Hash: hash, CreatedAt: now}}, CreatedAt: now,
	})
	if errors.Is(err, store.ErrExists) {
		_ = os.Remove(pending) // another start stored the operator
		return false, nil
	}
	if err != nil {
		// The operator may be stored all the same (a write cut short, a
		// sync that failed): the pending file stays, and the next start
		// moves it into place if the operator holds its token.
		return false, fmt.Errorf("bootstrap operator: %w", err)
	}
	if err := moveTokenFile(pending, path); err != nil {
		return false, fmt.Errorf("bootstrap operator: %w", err)
	}
	return true, nil
}

// pendingTokenSuffix names, after the token file's path, a token written
// and not yet moved into place.
const pendingTokenSuffix = ".pending-"

// finishTokenFile moves into place the token of a bootstrap that was cut
// after it stored the operator: when path is missing, a pending file whose
// token the operator holds. Pending files of starts that lost the race to
// store the operator are left alone; they open nothing.
func finishTokenFile(path string, operator *store.Principal) error {
	if _, err := os.Stat(path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	pending, _ := filepath.Glob(path + pendingTokenSuffix + "*")
	for _, f := range pending {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		hash := auth.HashToken(strings.TrimSpace(string(b)))
		if slices.ContainsFunc(operator.Tokens, func(t store.Token) bool { return t.Hash == hash }) {
			if err := moveTokenFile(f, path); err != nil {
				return fmt.Errorf("bootstrap operator: %w", err)
			}
			return nil
		}
	}
	return nil
}

// moveTokenFile renames a pending token file to path, durably.
func moveTokenFile(pending, path string) error {
	if err := os.Rename(pending, path); err != nil {
		return err
	}
	return durablefile.SyncDir(filepath.Dir(path))
}
