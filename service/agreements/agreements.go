package agreements

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/auth"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/fault"
	"github.com/example/personaldata/service/rules"
	"github.com/example/personaldata/service/validate"
	"github.com/example/personaldata/store"
)

// Agreements implements ProcessorAgreementService: the processor agreements
// under which the company processes data its customers control, and the
// return or deletion of that data at the end of one.
type Agreements struct {
	pdv1.UnimplementedProcessorAgreementServiceServer
	*Service
}

// Agreements returns the ProcessorAgreementService on the same store and clock.
func (s *Service) Agreements() *Agreements { return &Agreements{Service: s} }

// Limits of an agreement's terms.
const maxSubProcessors = 20

// agreementNotFound is the answer for an agreement that does not exist or
// belongs to a customer the caller does not act for: the two look the same.
func agreementNotFound() error {
	return status.Error(codes.NotFound, "processor agreement not found")
}

// customerNotFound is the answer for a customer the caller does not act for.
func customerNotFound() error {
	return status.Error(codes.NotFound, "customer not found")
}

// validCustomerID checks the id of a customer, a controller other than the
// company, which needs no processor agreement for its own data.
func validCustomerID(v *validate.Violations, field, s string) string {
	switch {
	case s == "":
		v.Add(field, "is required")
	case !validate.ControllerPattern.MatchString(s):
		v.Add(field, "must be a customer id of 1 to 63 characters a-z, 0-9, '_', '-'")
	case s == rules.CompanyController:
		v.Add(field, `must be a customer: the company is controller of its own data and has no processor agreement with itself`)
	}
	return s
}

// validAgreementID checks an agreement id, "<customer_id>.<seq>", and returns
// its customer and sequence number.
func validAgreementID(v *validate.Violations, s string) (string, int) {
	return validAgreementIDAt(v, "agreement_id", s)
}

// validAgreementIDAt checks the agreement id in field.
func validAgreementIDAt(v *validate.Violations, field, s string) (string, int) {
	customer, n, ok := strings.Cut(s, ".")
	seq, err := strconv.Atoi(n)
	if s == "" {
		v.Add(field, "is required")
		return "", 0
	}
	if !ok || err != nil || seq <= 0 || strconv.Itoa(seq) != n || !validate.ControllerPattern.MatchString(customer) || customer == rules.CompanyController {
		v.Add(field, `is not an agreement id ("<customer_id>.<n>")`)
		return "", 0
	}
	return customer, seq
}

// validTimestamp checks a time field and returns it in Unix nanoseconds.
func validTimestamp(v *validate.Violations, field string, t *timestamppb.Timestamp, required bool) int64 {
	switch {
	case t == nil:
		if required {
			v.Add(field, "is required")
		}
	case t.CheckValid() != nil:
		v.Add(field, "is not a valid time")
	case t.AsTime().Year() < 1970:
		v.Add(field, "must not be before 1970")
	case !t.AsTime().Before(core.MaxTime):
		v.Add(field, "must be before "+core.MaxTime.UTC().Format(time.RFC3339))
	default:
		return t.AsTime().UnixNano()
	}
	return 0
}

// validTerms checks the terms of an agreement version and returns them as
// stored, without the fields of the version itself.
func validTerms(v *validate.Violations, t *pdv1.AgreementTerms, now time.Time) store.AgreementVersion {
	var out store.AgreementVersion
	if t == nil {
		v.Add("terms", "is required")
		return out
	}
	out.SignedAt = v.PastTime("terms.sign_time", t.GetSignTime(), now)
	out.InForceFrom = validTimestamp(v, "terms.in_force_from", t.GetInForceFrom(), true)
	out.InForceTo = validTimestamp(v, "terms.in_force_to", t.GetInForceTo(), false)
	if out.InForceTo != 0 && out.InForceFrom != 0 && out.InForceTo <= out.InForceFrom {
		v.Add("terms.in_force_to", "must be after in_force_from")
	}
	if len(t.GetPurposes()) == 0 {
		v.Add("terms.purposes", "must name at least one purpose")
	}
	for _, p := range t.GetPurposes() {
		if _, ok := rules.PurposeRules[p]; !ok {
			v.Add("terms.purposes", "contains an unknown purpose")
			break
		}
		if !slices.Contains(out.Purposes, p.String()) {
			out.Purposes = append(out.Purposes, p.String())
		}
	}
	if len(t.GetCategories()) == 0 {
		v.Add("terms.categories", "must name at least one category of data")
	}
	for _, c := range t.GetCategories() {
		if c == pdv1.DataCategory_DATA_CATEGORY_UNSPECIFIED || c.Descriptor().Values().ByNumber(c.Number()) == nil {
			v.Add("terms.categories", "contains an unknown category")
			break
		}
		if !slices.Contains(out.Categories, c.String()) {
			out.Categories = append(out.Categories, c.String())
		}
	}
	if len(t.GetSubProcessors()) > maxSubProcessors {
		v.Add("terms.sub_processors", fmt.Sprintf("must name at most %d sub-processors", maxSubProcessors))
	}
	for i, sp := range t.GetSubProcessors() {
		if len(sp) > validate.MaxSubProcessorLen || !validate.HostPattern.MatchString(sp) {
			v.Add(fmt.Sprintf("terms.sub_processors[%d]", i), fmt.Sprintf(`must be a lower-case host name of at most %d characters, such as "iis.se"`, validate.MaxSubProcessorLen))
			continue
		}
		if !slices.Contains(out.SubProcessors, sp) {
			out.SubProcessors = append(out.SubProcessors, sp)
		}
	}
	out.DocumentRef = v.Text("terms.document_reference", t.GetDocumentReference(), validate.MaxReferenceLen, true, false)
	return out
}

// TermsToProto is the API's view of an agreement version's terms.
func TermsToProto(t *store.AgreementVersion) *pdv1.AgreementTerms {
	out := &pdv1.AgreementTerms{
		SignTime:          core.Timestamp(t.SignedAt),
		InForceFrom:       core.Timestamp(t.InForceFrom),
		InForceTo:         core.Timestamp(t.InForceTo),
		SubProcessors:     t.SubProcessors,
		DocumentReference: t.DocumentRef,
	}
	for _, p := range t.Purposes {
		out.Purposes = append(out.Purposes, core.EnumValue[pdv1.Purpose](pdv1.Purpose_value, p))
	}
	for _, c := range t.Categories {
		out.Categories = append(out.Categories, core.EnumValue[pdv1.DataCategory](pdv1.DataCategory_value, c))
	}
	return out
}

// agreementToProto is an agreement as it stands at now.
func agreementToProto(customer string, a *store.Agreement, now int64) *pdv1.ProcessorAgreement {
	cur := a.Current()
	out := &pdv1.ProcessorAgreement{
		AgreementId:          rules.AgreementIDOf(customer, a.Seq),
		CustomerId:           customer,
		State:                rules.AgreementState(a, now),
		Terms:                TermsToProto(cur),
		Version:              int32(cur.Version),
		TerminateTime:        core.Timestamp(a.TerminatedAt),
		TerminationReference: a.TerminationRef,
	}
	for i := range a.Versions {
		ver := &a.Versions[i]
		out.Versions = append(out.Versions, &pdv1.AgreementVersion{
			Version:    int32(ver.Version),
			Terms:      TermsToProto(ver),
			CreateTime: core.Timestamp(ver.CreatedAt),
			CreatedBy:  ver.CreatedBy,
		})
	}
	return out
}

// findAgreement returns agreement seq of the set, or nil.
func findAgreement(set *store.Agreements, seq int) *store.Agreement {
	for i := range set.Agreements {
		if set.Agreements[i].Seq == seq {
			return &set.Agreements[i]
		}
	}
	return nil
}

// actsFor is the tenant rule for agreements: a customer the caller does not
// act for is NOT_FOUND, exactly as an absent one.
func (s *Agreements) actsFor(ctx context.Context, customer string, notFound func() error) (*auth.Caller, error) {
	c, err := s.Caller(ctx)
	if err != nil {
		return nil, err
	}
	if !c.ActsFor(customer) {
		return nil, notFound()
	}
	return c, nil
}

// agreement reads one agreement for a request.
func (s *Agreements) agreement(ctx context.Context, customer string, seq int) (*store.Agreements, *store.Agreement, error) {
	if _, err := s.actsFor(ctx, customer, agreementNotFound); err != nil {
		return nil, nil, err
	}
	set, err := s.Store.GetAgreements(ctx, customer)
	if err != nil {
		return nil, nil, s.Internal(ctx, "get agreement", err)
	}
	a := findAgreement(set, seq)
	if a == nil {
		return nil, nil, agreementNotFound()
	}
	return set, a, nil
}

// CreateProcessorAgreement records a signed agreement with a customer.
func (s *Agreements) CreateProcessorAgreement(ctx context.Context, req *pdv1.CreateProcessorAgreementRequest) (*pdv1.CreateProcessorAgreementResponse, error) {
	now := s.Now()
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	customer := validCustomerID(&v, "customer_id", req.GetCustomerId())
	terms := validTerms(&v, req.GetTerms(), now)
	if err := v.Err(); err != nil {
		return nil, err
	}
	c, err := s.actsFor(ctx, customer, customerNotFound)
	if err != nil {
		return nil, err
	}
	core.Note(ctx, audit.Touch{Tenant: customer, Fields: []string{"processor_agreement"}})
	fp := s.Fingerprint(req)
	var seq int
	set, err := s.Store.UpdateAgreements(ctx, customer, func(set *store.Agreements) error {
		if err := core.CheckReplay(set.Ops, core.OpKey(key), fp); err != nil {
			return err
		}
		seq = 1
		for _, a := range set.Agreements {
			seq = max(seq, a.Seq+1)
		}
		ver := terms
		ver.Version, ver.CreatedAt, ver.CreatedBy = 1, now.UnixNano(), c.ID()
		set.Agreements = append(set.Agreements, store.Agreement{Seq: seq, Versions: []store.AgreementVersion{ver}})
		set.Ops = core.AppendOp(set.Ops, store.Op{Key: core.OpKey(key), Fingerprint: fp, Result: int64(seq)}, s.Now())
		return nil
	})
	var r *core.Replayed
	if errors.As(err, &r) {
		seq = int(r.Op.Result)
		set, err = s.Store.GetAgreements(ctx, customer)
	}
	if err != nil {
		return nil, s.Internal(ctx, "create agreement", err)
	}
	a := findAgreement(set, seq)
	if a == nil {
		return nil, s.Internal(ctx, "create agreement", fmt.Errorf("agreement %d of a replayed create is missing", seq))
	}
	return &pdv1.CreateProcessorAgreementResponse{Agreement: agreementToProto(customer, a, s.Now().UnixNano())}, nil
}

// GetProcessorAgreement returns an agreement with all its versions.
func (s *Agreements) GetProcessorAgreement(ctx context.Context, req *pdv1.GetProcessorAgreementRequest) (*pdv1.GetProcessorAgreementResponse, error) {
	var v validate.Violations
	customer, seq := validAgreementID(&v, req.GetAgreementId())
	if err := v.Err(); err != nil {
		return nil, err
	}
	_, a, err := s.agreement(ctx, customer, seq)
	if err != nil {
		return nil, err
	}
	return &pdv1.GetProcessorAgreementResponse{Agreement: agreementToProto(customer, a, s.Now().UnixNano())}, nil
}

// ListProcessorAgreements lists a customer's agreements, oldest first.
func (s *Agreements) ListProcessorAgreements(ctx context.Context, req *pdv1.ListProcessorAgreementsRequest) (*pdv1.ListProcessorAgreementsResponse, error) {
	var v validate.Violations
	customer := validCustomerID(&v, "customer_id", req.GetCustomerId())
	if err := v.Err(); err != nil {
		return nil, err
	}
	if _, err := s.actsFor(ctx, customer, customerNotFound); err != nil {
		return nil, err
	}
	set, err := s.Store.GetAgreements(ctx, customer)
	if err != nil {
		return nil, s.Internal(ctx, "list agreements", err)
	}
	now := s.Now().UnixNano()
	out := &pdv1.ListProcessorAgreementsResponse{}
	for i := range set.Agreements {
		out.Agreements = append(out.Agreements, agreementToProto(customer, &set.Agreements[i], now))
	}
	return out, nil
}

// AmendProcessorAgreement replaces the terms of an agreement; the earlier
// versions are kept.
func (s *Agreements) AmendProcessorAgreement(ctx context.Context, req *pdv1.AmendProcessorAgreementRequest) (*pdv1.AmendProcessorAgreementResponse, error) {
	now := s.Now()
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	customer, seq := validAgreementID(&v, req.GetAgreementId())
	if req.GetExpectedVersion() <= 0 {
		v.Add("expected_version", "is required: the version read before the change")
	}
	terms := validTerms(&v, req.GetTerms(), now)
	if err := v.Err(); err != nil {
		return nil, err
	}
	core.Note(ctx, audit.Touch{Tenant: customer, Fields: []string{"processor_agreement"}})
	c, err := s.Caller(ctx)
	if err != nil {
		return nil, err
	}
	a, err := s.changeAgreement(ctx, customer, seq, key, s.Fingerprint(req), func(a *store.Agreement) error {
		if a.TerminatedAt != 0 {
			return fault.FailedPrecondition("agreement %s is terminated and cannot be amended; record a new agreement", rules.AgreementIDOf(customer, seq))
		}
		if cur := a.Current().Version; int32(cur) != req.GetExpectedVersion() {
			return fault.StaleVersion("agreement", int64(req.GetExpectedVersion()), int64(cur))
		}
		ver := terms
		ver.Version, ver.CreatedAt, ver.CreatedBy = a.Current().Version+1, now.UnixNano(), c.ID()
		a.Versions = append(a.Versions, ver)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &pdv1.AmendProcessorAgreementResponse{Agreement: agreementToProto(customer, a, s.Now().UnixNano())}, nil
}

// TerminateProcessorAgreement ends an agreement at the given time, or now.
// Terminating a terminated agreement returns it as it is.
func (s *Agreements) TerminateProcessorAgreement(ctx context.Context, req *pdv1.TerminateProcessorAgreementRequest) (*pdv1.TerminateProcessorAgreementResponse, error) {
	now := s.Now()
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	customer, seq := validAgreementID(&v, req.GetAgreementId())
	at := validTimestamp(&v, "terminate_time", req.GetTerminateTime(), false)
	ref := v.Text("reference", req.GetReference(), validate.MaxReferenceLen, false, false)
	if err := v.Err(); err != nil {
		return nil, err
	}
	if at == 0 {
		at = now.UnixNano()
	}
	core.Note(ctx, audit.Touch{Tenant: customer, Fields: []string{"processor_agreement"}})
	a, err := s.changeAgreement(ctx, customer, seq, key, s.Fingerprint(req), func(a *store.Agreement) error {
		if a.TerminatedAt != 0 {
			return &core.Replayed{} // terminated already: nothing to write
		}
		a.TerminatedAt, a.TerminationRef = at, ref
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &pdv1.TerminateProcessorAgreementResponse{Agreement: agreementToProto(customer, a, s.Now().UnixNano())}, nil
}

// changeAgreement applies change to agreement seq of a customer under an
// idempotency key. A replay, or a change that returns *replayed, answers
// the agreement as it is without writing.
func (s *Agreements) changeAgreement(ctx context.Context, customer string, seq int, key string, fp []byte, change func(*store.Agreement) error) (*store.Agreement, error) {
	// Read first: the update would create the customer's document.
	if _, _, err := s.agreement(ctx, customer, seq); err != nil {
		return nil, err
	}
	set, err := s.Store.UpdateAgreements(ctx, customer, func(set *store.Agreements) error {
		if err := core.CheckReplay(set.Ops, core.OpKey(key), fp); err != nil {
			return err
		}
		a := findAgreement(set, seq)
		if a == nil {
			return agreementNotFound()
		}
		if err := change(a); err != nil {
			return err
		}
		set.Ops = core.AppendOp(set.Ops, store.Op{Key: core.OpKey(key), Fingerprint: fp, Result: int64(seq)}, s.Now())
		return nil
	})
	if core.IsReplay(err) {
		set, err = s.Store.GetAgreements(ctx, customer)
	}
	if err != nil {
		return nil, s.Internal(ctx, "change agreement", err)
	}
	a := findAgreement(set, seq)
	if a == nil {
		return nil, agreementNotFound()
	}
	return a, nil
}

// CheckProcessorAgreement says whether an agreement in force covers a
// purpose and a category of a controller's data, by the rule every
// operation on customer-owned data is held to.
func (s *Agreements) CheckProcessorAgreement(ctx context.Context, req *pdv1.CheckProcessorAgreementRequest) (*pdv1.CheckProcessorAgreementResponse, error) {
	var v validate.Violations
	controller := v.Controller(req.GetControllerId())
	if p := req.GetPurpose(); p != pdv1.Purpose_PURPOSE_UNSPECIFIED {
		if _, ok := rules.PurposeRules[p]; !ok {
			v.Add("purpose", "is not a known purpose")
		}
	}
	v.Enum("category", req.GetCategory())
	if err := v.Err(); err != nil {
		return nil, err
	}
	if _, err := s.actsFor(ctx, controller, customerNotFound); err != nil {
		return nil, err
	}
	if controller == rules.CompanyController {
		return &pdv1.CheckProcessorAgreementResponse{
			Allowed: true,
			Reason:  "the company is the controller of its own data (legal basis: " + rules.ContractBasis + "); no processor agreement is needed",
		}, nil
	}
	set, err := s.Store.GetAgreements(ctx, controller)
	if err != nil {
		return nil, s.Internal(ctx, "check agreement", err)
	}
	now := s.Now().UnixNano()
	a, missing := rules.AgreementCovering(set, now, req.GetPurpose(), []pdv1.DataCategory{req.GetCategory()})
	if a == nil {
		return &pdv1.CheckProcessorAgreementResponse{Reason: missing + notInForce(set, now)}, nil
	}
	what := "storage and rights handling on the controller's instruction"
	if req.GetPurpose() != pdv1.Purpose_PURPOSE_UNSPECIFIED {
		what = "purpose " + req.GetPurpose().String()
	}
	return &pdv1.CheckProcessorAgreementResponse{
		Allowed:   true,
		Reason:    fmt.Sprintf("processor agreement %s (version %d) is in force and covers %s for category %s", rules.AgreementIDOf(controller, a.Seq), a.Current().Version, what, req.GetCategory()),
		Agreement: agreementToProto(controller, a, now),
	}, nil
}

// notInForce explains, when no agreement with the customer is in force,
// where each one stands: not yet in force, expired or terminated. It is
// empty when one is in force (then what it lacks is the reason).
func notInForce(set *store.Agreements, now int64) string {
	if len(set.Agreements) == 0 {
		return ": none has been recorded"
	}
	var why []string
	for i := range set.Agreements {
		a := &set.Agreements[i]
		id, cur := rules.AgreementIDOf(set.ID, a.Seq), a.Current()
		switch rules.AgreementState(a, now) {
		case pdv1.AgreementState_AGREEMENT_STATE_IN_FORCE:
			return ""
		case pdv1.AgreementState_AGREEMENT_STATE_TERMINATED:
			why = append(why, fmt.Sprintf("%s was terminated at %s", id, core.RFC3339(a.TerminatedAt)))
		case pdv1.AgreementState_AGREEMENT_STATE_EXPIRED:
			why = append(why, fmt.Sprintf("%s expired at %s", id, core.RFC3339(cur.InForceTo)))
		case pdv1.AgreementState_AGREEMENT_STATE_PENDING:
			why = append(why, fmt.Sprintf("%s is not yet in force (from %s)", id, core.RFC3339(cur.InForceFrom)))
		}
	}
	return ": " + strings.Join(why, "; ")
}
