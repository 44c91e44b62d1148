package disclosure

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/fault"
	"github.com/example/personaldata/service/rules"
	"github.com/example/personaldata/service/subjects"
	"github.com/example/personaldata/service/validate"
	"github.com/example/personaldata/store"
)

// Disclosures implements DisclosureService: hand-overs of personal data to
// third parties (registries and registrars), each with its legal basis
// recorded, and the queues that tell those recipients when the data they
// received changes (Art. 19).
type Disclosures struct {
	pdv1.UnimplementedDisclosureServiceServer
	*Service
}

// Disclosures returns the DisclosureService on the same store and clock.
func (s *Service) Disclosures() *Disclosures { return &Disclosures{Service: s} }

// reasonRecipientNotApproved is the PreconditionFailure type of a refusal
// to disclose a customer's data to a recipient its agreement does not name.
const reasonRecipientNotApproved = "RECIPIENT_NOT_APPROVED"

// disclosureBases is the policy's rule on disclosure: nothing goes to a
// third party without the subject's consent, except where the contract
// needs it or for one of the policy's exceptions, each resting on a
// reference (the order, the case, the request). For CONSENT the reference
// is the consent on record.
var disclosureBases = map[pdv1.DisclosureBasis]struct {
	// reference names what the reference must be; "" when none is needed.
	reference string
}{
	pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONSENT:           {},
	pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONTRACT:          {reference: "the customer's order that needs it"},
	pdv1.DisclosureBasis_DISCLOSURE_BASIS_BREACH_OF_TERMS:   {reference: "the case of the breach of the terms"},
	pdv1.DisclosureBasis_DISCLOSURE_BASIS_LEGAL_PROCEEDINGS: {reference: "the legal proceedings"},
	pdv1.DisclosureBasis_DISCLOSURE_BASIS_AUTHORITY_REQUEST: {reference: "the authority's request under Swedish law"},
}

// disclosableCategories are the categories that may go to a third party;
// history (e-mail conversations, error reports) never does.
var disclosableCategories = []pdv1.DataCategory{pdv1.DataCategory_DATA_CATEGORY_IDENTIFICATION, pdv1.DataCategory_DATA_CATEGORY_CONTACT}

// disclosedFields are the fields a disclosure hands over: those of the
// categories asked for that the purpose may use (data minimisation).
func disclosedFields(categories []pdv1.DataCategory, purpose pdv1.Purpose) []string {
	var out []string
	for _, f := range rules.PurposeRules[purpose].Fields {
		if slices.Contains(categories, rules.FieldCategories[f]) {
			out = append(out, f)
		}
	}
	return out
}

// Disclose hands the categories asked for to a recipient, when the basis
// holds, and records the disclosure in the subject.
func (s *Disclosures) Disclose(ctx context.Context, req *pdv1.DiscloseRequest) (*pdv1.DiscloseResponse, error) {
	now := s.Now()
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	id := v.SubjectID(req.GetSubjectId())
	recipient := validRecipient(&v, "recipient", req.GetRecipient())
	purpose := req.GetPurpose()
	if _, ok := rules.PurposeRules[purpose]; !ok {
		v.Add("purpose", "is required: one of the documented purposes")
	}
	categories := validDisclosedCategories(&v, req.GetCategories())
	basis := v.Enum("basis", req.GetBasis())
	reference := v.Text("reference", req.GetReference(), validate.MaxReferenceLen, false, false)
	if rule, ok := disclosureBases[req.GetBasis()]; ok && rule.reference != "" && reference == "" {
		v.Add("reference", fmt.Sprintf("is required for basis %s: %s", basis, rule.reference))
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	c, err := s.Caller(ctx)
	if err != nil {
		return nil, err
	}
	fp := s.Fingerprint(req)
	fields := disclosedFields(categories, purpose)
	sub, err := s.GetSubject(ctx, "disclose", id)
	if err != nil {
		return nil, err
	}
	core.Note(ctx, audit.Touch{SubjectID: id, Purpose: purpose.String(), Fields: fields})
	if err := subjects.RefuseIfRestricted(sub); err != nil {
		return nil, err
	}
	if !c.MayUse(purpose) {
		return nil, fault.PurposeDenied(purpose)
	}
	if err := core.RequireConsent(sub, purpose); err != nil {
		return nil, err
	}
	if err := s.requireApprovedRecipient(ctx, sub.Controller, purpose, categories, recipient); err != nil {
		return nil, err
	}
	if _, err := basisHolds(sub, req.GetBasis(), recipient); err != nil {
		return nil, err
	}
	// A retry passes every check again: handing the data over once more is
	// a disclosure too, and is refused once the basis is gone.
	var memo store.OpMemo
	if err := s.SubjectOp(ctx, sub, core.OpKey(key), fp, &memo); err != nil {
		return discloseReplay(sub, err, fields)
	}
	var d store.Disclosure
	updated, err := s.Vault.UpdateSubject(ctx, id, func(sub *store.Subject) error {
		if sub.Erasure != nil {
			return fault.ErasedError(sub)
		}
		if err := s.SubjectOp(ctx, sub, core.OpKey(key), fp, &memo); err != nil {
			return err
		}
		// Again under the update: a restriction or a withdrawal that came in
		// meanwhile stops the disclosure.
		if err := subjects.RefuseIfRestricted(sub); err != nil {
			return err
		}
		if err := core.RequireConsent(sub, purpose); err != nil {
			return err
		}
		consentID, err := basisHolds(sub, req.GetBasis(), recipient)
		if err != nil {
			return err
		}
		d = store.Disclosure{
			ID: strconv.Itoa(len(sub.Disclosures) + 1), Recipient: recipient, Purpose: purpose.String(),
			Basis: basis, Reference: reference, ConsentID: consentID, At: now.UnixNano(), Principal: c.ID(),
			Version: sub.Version + 1,
		}
		for _, cat := range categories {
			d.Categories = append(d.Categories, cat.String())
		}
		sub.Disclosures = append(sub.Disclosures, d)
		core.RecordOp(sub, store.Op{Key: core.OpKey(key), Fingerprint: fp, Result: int64(len(sub.Disclosures))}, s.Now())
		return nil
	})
	switch {
	case core.IsReplay(err):
		sub, rerr := s.Vault.GetSubject(ctx, id)
		if rerr != nil {
			return nil, s.Internal(ctx, "disclose", rerr)
		}
		return discloseReplay(sub, err, fields)
	case errors.Is(err, store.ErrNotFound):
		return nil, fault.NotFound()
	case err != nil:
		return nil, s.Internal(ctx, "disclose", err)
	}
	return &pdv1.DiscloseResponse{Disclosure: subjects.DisclosureToProto(&d), Person: subjects.PersonToProto(updated.Person, fields)}, nil
}

// discloseReplay answers a disclosure recorded before: the record, and the
// data as it is now.
func discloseReplay(sub *store.Subject, err error, fields []string) (*pdv1.DiscloseResponse, error) {
	var r *core.Replayed
	if !errors.As(err, &r) {
		return nil, err
	}
	n := r.Op.Result
	if n < 1 || n > int64(len(sub.Disclosures)) || sub.Person == nil {
		return nil, fault.NotFound()
	}
	return &pdv1.DiscloseResponse{Disclosure: subjects.DisclosureToProto(&sub.Disclosures[n-1]), Person: subjects.PersonToProto(sub.Person, fields)}, nil
}

// basisHolds checks the basis of a disclosure against the subject's record:
// for CONSENT, the subject's consent to disclosure to this recipient must be
// on record and not withdrawn (its id is returned). The other bases rest on
// their reference, which validation required.
func basisHolds(sub *store.Subject, basis pdv1.DisclosureBasis, recipient string) (string, error) {
	if basis != pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONSENT {
		return "", nil
	}
	c, err := core.LiveConsent(sub, pdv1.ConsentPurpose_CONSENT_PURPOSE_DISCLOSURE, recipient)
	if err != nil {
		return "", err
	}
	return c.ID, nil
}

// requireApprovedRecipient is the rule that a customer's data goes to a
// third party only under a processor agreement in force that covers the
// purpose and the categories and names the recipient among the approved
// sub-processors. The company's own data needs no agreement.
func (s *Service) requireApprovedRecipient(ctx context.Context, controller string, purpose pdv1.Purpose, categories []pdv1.DataCategory, recipient string) error {
	if controller == rules.CompanyController {
		return nil
	}
	set, err := s.Store.GetAgreements(ctx, controller)
	if err != nil {
		return s.Internal(ctx, "check agreement", err)
	}
	now := s.Now().UnixNano()
	if a, missing := rules.AgreementCovering(set, now, purpose, categories); a == nil {
		return rules.NoAgreementError(controller, missing)
	}
	for i := range set.Agreements {
		one := &store.Agreements{ID: set.ID, Agreements: set.Agreements[i : i+1]}
		if a, _ := rules.AgreementCovering(one, now, purpose, categories); a != nil && slices.Contains(a.Current().SubProcessors, recipient) {
			return nil
		}
	}
	desc := fmt.Sprintf("no processor agreement in force with controller %s that covers purpose %s names recipient %s among its approved sub-processors",
		controller, purpose, recipient)
	st := status.New(codes.FailedPrecondition, desc)
	if d, err := st.WithDetails(&errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{{
		Type: reasonRecipientNotApproved, Subject: "customers/" + controller, Description: desc,
	}}}); err == nil {
		st = d
	}
	return st.Err()
}

// validDisclosedCategories checks the categories of a disclosure: at least one,
// each disclosable, each once.
func validDisclosedCategories(v *validate.Violations, cs []pdv1.DataCategory) []pdv1.DataCategory {
	if len(cs) == 0 {
		v.Add("categories", "must name at least one category: DATA_CATEGORY_IDENTIFICATION or DATA_CATEGORY_CONTACT")
	}
	var out []pdv1.DataCategory
	for _, c := range cs {
		switch {
		case c == pdv1.DataCategory_DATA_CATEGORY_HISTORY:
			v.Add("categories", "DATA_CATEGORY_HISTORY is never disclosed to third parties")
			return nil
		case !slices.Contains(disclosableCategories, c):
			v.Add("categories", "contains an unknown category")
			return nil
		case !slices.Contains(out, c):
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}
