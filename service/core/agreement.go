package core

import (
	"context"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/rules"
	"github.com/example/personaldata/store"
)

// RequireAgreement is the rule that data a customer controls is processed
// only under a processor agreement in force that covers the purpose and the
// categories (GDPR Art. 28). The company's own data needs none.
func (s *Service) RequireAgreement(ctx context.Context, controller string, purpose pdv1.Purpose, categories []pdv1.DataCategory) error {
	set, err := s.AgreementsOf(ctx, controller)
	if err != nil {
		return err
	}
	return s.AgreementCovers(set, controller, purpose, categories)
}

// AgreementsOf reads a customer's agreements (one exact _id read); nil for
// the company's own data, which needs none.
func (s *Service) AgreementsOf(ctx context.Context, controller string) (*store.Agreements, error) {
	if controller == rules.CompanyController {
		return nil, nil
	}
	set, err := s.Store.GetAgreements(ctx, controller)
	if err != nil {
		return nil, s.Internal(ctx, "check agreement", err)
	}
	return set, nil
}

// AgreementCovers is RequireAgreement on the agreements AgreementsOf read.
func (s *Service) AgreementCovers(set *store.Agreements, controller string, purpose pdv1.Purpose, categories []pdv1.DataCategory) error {
	if controller == rules.CompanyController {
		return nil
	}
	if a, missing := rules.AgreementCovering(set, s.Now().UnixNano(), purpose, categories); a == nil {
		return rules.NoAgreementError(controller, missing)
	}
	return nil
}
