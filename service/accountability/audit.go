package accountability

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/auth"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/fault"
	"github.com/example/personaldata/service/validate"
	"github.com/example/personaldata/store"
)

// Audit implements AuditService: reading and verifying the audit trail.
// A caller sees the chains of the controllers it acts for; the chain of
// principals is for operators.
type Audit struct {
	pdv1.UnimplementedAuditServiceServer
	*Service
}

// Audit returns the AuditService on the same store and audit log.
func (s *Service) Audit() *Audit { return &Audit{Service: s} }

// defaultAuditPageSize is the page size of ListAuditEvents when none is asked.
const defaultAuditPageSize = 50

// ListAuditEvents pages through one subject's chain, in seq order, or through
// every event of one tenant, chain by chain.
func (s *Audit) ListAuditEvents(ctx context.Context, req *pdv1.ListAuditEventsRequest) (*pdv1.ListAuditEventsResponse, error) {
	c, err := s.Caller(ctx)
	if err != nil {
		return nil, err
	}
	if req.GetChain() != "" {
		return s.listChain(ctx, c, req)
	}
	var v validate.Violations
	subjectID, tenantID := req.GetSubjectId(), req.GetTenantId()
	switch {
	case subjectID == "" && tenantID == "":
		v.Add("subject_id", "exactly one of subject_id and tenant_id is required")
		v.Add("tenant_id", "exactly one of subject_id and tenant_id is required")
	case subjectID != "" && tenantID != "":
		v.Add("subject_id", "exactly one of subject_id and tenant_id may be given")
		v.Add("tenant_id", "exactly one of subject_id and tenant_id may be given")
	case subjectID != "":
		v.SubjectID(subjectID)
	default:
		validAuditTenant(&v, "tenant_id", tenantID)
	}
	size := v.PageSize(req.GetPageSize(), defaultAuditPageSize)
	// The position to go on from: the next seq of a subject's chain, the
	// last event id of a tenant's listing.
	var pos string
	from := int64(1)
	if len(v) == 0 {
		if subjectID != "" {
			if pos = v.AuditPageToken(req.GetPageToken(), "s", subjectID); pos != "" {
				if from, err = strconv.ParseInt(pos, 10, 64); err != nil || from < 1 {
					v.Add("page_token", "is not a token from this listing")
				}
			}
		} else {
			pos = v.AuditPageToken(req.GetPageToken(), "t", tenantID)
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}

	out := &pdv1.ListAuditEventsResponse{}
	if subjectID != "" {
		if err := s.subjectVisible(ctx, c, subjectID); err != nil {
			return nil, err
		}
		evs, err := s.AuditLog.List(ctx, audit.SubjectChain(subjectID), from, size+1)
		if err != nil {
			return nil, s.Internal(ctx, "list audit events", err)
		}
		if len(evs) > size {
			out.NextPageToken = validate.AuditPageToken("s", subjectID, strconv.FormatInt(evs[size].Seq, 10))
			evs = evs[:size]
		}
		out.Events = auditEventsToProto(evs)
		return out, nil
	}
	if !c.ActsFor(tenantID) {
		return nil, status.Error(codes.NotFound, "tenant not found")
	}
	evs, err := s.AuditLog.ListTenant(ctx, tenantID, pos, size+1)
	if err != nil {
		return nil, s.Internal(ctx, "list audit events", err)
	}
	if len(evs) > size {
		evs = evs[:size]
		out.NextPageToken = validate.AuditPageToken("t", tenantID, evs[size-1].ID())
	}
	out.Events = auditEventsToProto(evs)
	return out, nil
}

// tenantlessChains are the chains of no tenant that operators may list and
// verify.
var tenantlessChains = []string{audit.PrincipalsChain, audit.UnauthenticatedChain, core.RestoreChain}

// listChain pages through a chain of no tenant (tenantlessChains), in seq
// order: for operators.
func (s *Audit) listChain(ctx context.Context, c *auth.Caller, req *pdv1.ListAuditEventsRequest) (*pdv1.ListAuditEventsResponse, error) {
	var v validate.Violations
	chain := req.GetChain()
	if req.GetSubjectId() != "" || req.GetTenantId() != "" {
		const both = "exactly one of subject_id, tenant_id and chain may be given"
		if req.GetSubjectId() != "" {
			v.Add("subject_id", both)
		}
		if req.GetTenantId() != "" {
			v.Add("tenant_id", both)
		}
		v.Add("chain", both)
	} else if !slices.Contains(tenantlessChains, chain) {
		v.Add("chain", `must be "principals", "unauthenticated" or "restores"`)
	}
	size := v.PageSize(req.GetPageSize(), defaultAuditPageSize)
	from := int64(1)
	if len(v) == 0 {
		if pos := v.AuditPageToken(req.GetPageToken(), "c", chain); pos != "" {
			var err error
			if from, err = strconv.ParseInt(pos, 10, 64); err != nil || from < 1 {
				v.Add("page_token", "is not a token from this listing")
			}
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	if !c.ActsFor(auth.AllTenants) {
		return nil, fault.PermissionDenied(fault.ReasonKindNotPermitted, nil, "the chains of no tenant are for operators")
	}
	evs, err := s.AuditLog.List(ctx, chain, from, size+1)
	if err != nil {
		return nil, s.Internal(ctx, "list audit events", err)
	}
	out := &pdv1.ListAuditEventsResponse{}
	if len(evs) > size {
		out.NextPageToken = validate.AuditPageToken("c", chain, strconv.FormatInt(evs[size].Seq, 10))
		evs = evs[:size]
	}
	out.Events = auditEventsToProto(evs)
	return out, nil
}

// VerifyAuditChain walks a chain and names its first broken link.
func (s *Audit) VerifyAuditChain(ctx context.Context, req *pdv1.VerifyAuditChainRequest) (*pdv1.VerifyAuditChainResponse, error) {
	c, err := s.Caller(ctx)
	if err != nil {
		return nil, err
	}
	chain := req.GetChain()
	if err := s.chainVisible(ctx, c, chain); err != nil {
		return nil, err
	}
	res, err := s.AuditLog.Verify(ctx, chain)
	if err != nil {
		return nil, s.Internal(ctx, "verify audit chain", err)
	}
	return &pdv1.VerifyAuditChainResponse{
		Intact:         res.Intact(),
		Events:         res.Events,
		FirstBrokenSeq: res.FirstBroken,
		Reason:         res.Reason,
		LeafIndex:      res.Leaf,
		CheckpointSize: int64(res.Checkpoint),
	}, nil
}

// chainVisible checks that chain names a chain (else INVALID_ARGUMENT on
// the field "chain") that the caller may read: a tenantless one for
// operators, a subject's or a tenant's for who acts for its controller.
func (s *Audit) chainVisible(ctx context.Context, c *auth.Caller, chain string) error {
	var v validate.Violations
	switch {
	case slices.Contains(tenantlessChains, chain):
	case strings.HasPrefix(chain, "subjects/"):
		if id := strings.TrimPrefix(chain, "subjects/"); id == "" || len(id) > validate.MaxIDLen || !validate.ControllerPattern.MatchString(id) {
			v.Add("chain", "does not name a subject")
		}
	case strings.HasPrefix(chain, "tenants/"):
		if id := strings.TrimPrefix(chain, "tenants/"); !validate.ControllerPattern.MatchString(id) {
			v.Add("chain", "does not name a tenant")
		}
	default:
		v.Add("chain", `must be "subjects/<subject id>", "tenants/<tenant id>", "principals", "unauthenticated" or "restores"`)
	}
	if err := v.Err(); err != nil {
		return err
	}
	switch {
	case slices.Contains(tenantlessChains, chain):
		if !c.ActsFor(auth.AllTenants) {
			return fault.PermissionDenied(fault.ReasonKindNotPermitted, nil, "the chains of no tenant are for operators")
		}
	case strings.HasPrefix(chain, "subjects/"):
		if err := s.subjectVisible(ctx, c, strings.TrimPrefix(chain, "subjects/")); err != nil {
			return err
		}
	default:
		if !c.ActsFor(strings.TrimPrefix(chain, "tenants/")) {
			return status.Error(codes.NotFound, "tenant not found")
		}
	}
	return nil
}

// subjectVisible is the tenant rule for a subject's chain: the caller must
// act for the subject's controller, else the subject is NOT_FOUND, as an
// unknown one is. An erased subject's chain stays readable: its tombstone
// keeps the controller, and events hold no personal values.
func (s *Audit) subjectVisible(ctx context.Context, c *auth.Caller, id string) error {
	sub, err := s.Store.GetSubject(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return fault.NotFound()
	}
	if err != nil {
		return s.Internal(ctx, "audit: get subject", err)
	}
	return core.Visible(c, sub)
}

func validAuditTenant(v *validate.Violations, field, id string) {
	if !validate.ControllerPattern.MatchString(id) {
		v.Add(field, `must be "company" or a customer id of 1 to 63 characters a-z, 0-9, '_', '-'`)
	}
}

func auditEventsToProto(evs []audit.Event) []*pdv1.AuditEvent {
	out := make([]*pdv1.AuditEvent, len(evs))
	for i, e := range evs {
		out[i] = &pdv1.AuditEvent{
			Chain:       e.Chain,
			Seq:         e.Seq,
			EventTime:   timestamppb.New(e.Time),
			PrincipalId: e.Principal,
			TenantId:    e.Tenant,
			Purpose:     core.EnumValue[pdv1.Purpose](pdv1.Purpose_value, e.Purpose),
			Rpc:         e.RPC,
			SubjectId:   e.SubjectID,
			Fields:      e.Fields,
			Outcome:     e.Outcome,
			PrevHash:    e.PrevHash,
			Hash:        e.Hash,
		}
	}
	return out
}
