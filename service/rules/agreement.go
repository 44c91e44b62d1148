package rules

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store"
)

// FieldCategories maps each Person field to its category of personal data.
var FieldCategories = map[string]pdv1.DataCategory{
	FieldIdentityNumber: pdv1.DataCategory_DATA_CATEGORY_IDENTIFICATION,
	FieldGivenName:      pdv1.DataCategory_DATA_CATEGORY_IDENTIFICATION,
	FieldFamilyName:     pdv1.DataCategory_DATA_CATEGORY_IDENTIFICATION,
	FieldEmail:          pdv1.DataCategory_DATA_CATEGORY_CONTACT,
	FieldPhone:          pdv1.DataCategory_DATA_CATEGORY_CONTACT,
	FieldPostalAddress:  pdv1.DataCategory_DATA_CATEGORY_CONTACT,
}

// CategoriesOf lists the categories the fields belong to, each once.
func CategoriesOf(fields []string) []pdv1.DataCategory {
	var out []pdv1.DataCategory
	for _, f := range fields {
		if c := FieldCategories[f]; !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

// ReasonNoAgreement is the PreconditionFailure type of a refusal for want of
// a processor agreement.
const ReasonNoAgreement = "NO_PROCESSOR_AGREEMENT"

// AgreementState is where an agreement stands at time now.
func AgreementState(a *store.Agreement, now int64) pdv1.AgreementState {
	cur := a.Current()
	switch {
	case a.TerminatedAt != 0 && a.TerminatedAt <= now:
		return pdv1.AgreementState_AGREEMENT_STATE_TERMINATED
	case cur.InForceTo != 0 && cur.InForceTo <= now:
		return pdv1.AgreementState_AGREEMENT_STATE_EXPIRED
	case cur.InForceFrom > now:
		return pdv1.AgreementState_AGREEMENT_STATE_PENDING
	}
	return pdv1.AgreementState_AGREEMENT_STATE_IN_FORCE
}

// AgreementCovering returns the agreement in force at now that covers the
// purpose (PURPOSE_UNSPECIFIED: storage and rights handling on the
// controller's instruction, which every agreement covers) and every one of
// the categories; or, if none does, what is missing.
func AgreementCovering(set *store.Agreements, now int64, purpose pdv1.Purpose, categories []pdv1.DataCategory) (*store.Agreement, string) {
	var inForce int
	var missing []string
	for i := range set.Agreements {
		a := &set.Agreements[i]
		if AgreementState(a, now) != pdv1.AgreementState_AGREEMENT_STATE_IN_FORCE {
			continue
		}
		inForce++
		cur := a.Current()
		var lacks []string
		if purpose != pdv1.Purpose_PURPOSE_UNSPECIFIED && !slices.Contains(cur.Purposes, purpose.String()) {
			lacks = append(lacks, "purpose "+purpose.String())
		}
		for _, c := range categories {
			if !slices.Contains(cur.Categories, c.String()) {
				lacks = append(lacks, "category "+c.String())
			}
		}
		if len(lacks) == 0 {
			return a, ""
		}
		missing = append(missing, lacks...)
	}
	if inForce == 0 {
		return nil, fmt.Sprintf("no processor agreement with controller %s is in force", set.ID)
	}
	slices.Sort(missing)
	return nil, fmt.Sprintf("no processor agreement in force with controller %s covers %s", set.ID, strings.Join(slices.Compact(missing), ", "))
}

// NoAgreementError is FAILED_PRECONDITION with reason NO_PROCESSOR_AGREEMENT:
// no agreement of controller covers what missing names.
func NoAgreementError(controller, missing string) error {
	st := status.New(codes.FailedPrecondition, missing)
	if d, err := st.WithDetails(&errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{{
		Type:        ReasonNoAgreement,
		Subject:     "customers/" + controller,
		Description: missing,
	}}}); err == nil {
		st = d
	}
	return st.Err()
}
