package core

import (
	"fmt"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/fault"
	"github.com/example/personaldata/store"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// consentRule says which purposes rest on the subject's consent, which
// consent that is, and which erasure ground is the subject's objection to
// the purpose: that purpose is processed only while such a consent is on
// record and not withdrawn, and never after the objection (Art. 7(3),
// Art. 21(3)).
type consentRule struct {
	consent   pdv1.ConsentPurpose
	objection pdv1.ErasureGround
}

var consentRules = map[pdv1.Purpose]consentRule{
	pdv1.Purpose_PURPOSE_DIRECT_MARKETING: {
		consent:   pdv1.ConsentPurpose_CONSENT_PURPOSE_DIRECT_MARKETING,
		objection: pdv1.ErasureGround_ERASURE_GROUND_DIRECT_MARKETING_OBJECTION,
	},
}

// RequireConsent is the rule that a purpose resting on consent is refused
// (FAILED_PRECONDITION) unless the consent is on record and not withdrawn,
// and always once the subject objected to it or was erased.
func RequireConsent(sub *store.Subject, purpose pdv1.Purpose) error {
	rule, ok := consentRules[purpose]
	if !ok {
		return nil
	}
	if ch := objection(sub, rule.objection); ch != nil {
		return consentError(sub, reasonObjection, fmt.Sprintf("the subject objected to %s (erasure on ground %s at %s): it is not processed for it",
			purpose, ch.ErasureGround, RFC3339(ch.At)))
	}
	if sub.Erasure != nil {
		return fault.ErasedError(sub)
	}
	_, err := LiveConsent(sub, rule.consent, "")
	return err
}

// objection is the change that records the subject's objection (an erasure
// on ground), or nil.
func objection(sub *store.Subject, ground pdv1.ErasureGround) *store.Change {
	for i := len(sub.Changes) - 1; i >= 0; i-- {
		ch := &sub.Changes[i]
		if ch.Kind == pdv1.ChangeKind_CHANGE_KIND_ERASED.String() && ch.ErasureGround == ground.String() {
			return ch
		}
	}
	if sub.Erasure != nil && sub.Erasure.Ground == ground.String() {
		return &store.Change{At: sub.Erasure.At, Channel: sub.Erasure.Channel, Reference: sub.Erasure.Reference,
			PerformedBy: sub.Erasure.PerformedBy, ErasureGround: sub.Erasure.Ground}
	}
	return nil
}

func consentError(sub *store.Subject, reason, desc string) error {
	st := status.New(codes.FailedPrecondition, desc)
	if d, err := st.WithDetails(&errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{{
		Type: reason, Subject: "subjects/" + sub.ID, Description: desc,
	}}}); err == nil {
		st = d
	}
	return st.Err()
}

// LiveConsent returns the subject's consent for purpose (and, for a
// disclosure, to recipient) that is on record and not withdrawn; else a
// FAILED_PRECONDITION that says whether none was given or it was withdrawn.
func LiveConsent(sub *store.Subject, purpose pdv1.ConsentPurpose, recipient string) (*store.Consent, error) {
	var withdrawn *store.Consent
	for i := range sub.Consents {
		c := &sub.Consents[i]
		if c.Purpose != purpose.String() || c.Recipient != recipient {
			continue
		}
		if c.Live() {
			return c, nil
		}
		withdrawn = c
	}
	what := purpose.String()
	if recipient != "" {
		what += " to " + recipient
	}
	if withdrawn != nil {
		return nil, consentError(sub, reasonConsentWithdrawn, fmt.Sprintf("the subject's consent %s (consent %s) was withdrawn at %s; no consent is on record",
			what, withdrawn.ID, RFC3339(withdrawn.WithdrawnAt)))
	}
	return nil, consentError(sub, reasonConsentMissing, fmt.Sprintf("no consent of the subject %s is on record", what))
}

// Reasons in the PreconditionFailure of a refusal for want of consent.
const (
	reasonConsentMissing   = "CONSENT_MISSING"
	reasonConsentWithdrawn = "CONSENT_WITHDRAWN"
	reasonObjection        = "OBJECTION"
)

// FindConsent returns sub's consent with id, or nil.
func FindConsent(sub *store.Subject, id string) *store.Consent {
	for i := range sub.Consents {
		if sub.Consents[i].ID == id {
			return &sub.Consents[i]
		}
	}
	return nil
}
