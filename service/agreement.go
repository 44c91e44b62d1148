package service

import (
	"context"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store"
)

// requireAgreement is the rule that data a customer controls is processed
// only under a processor agreement in force that covers the purpose and the
// categories (GDPR Art. 28). The company's own data needs none.
func (s *Service) requireAgreement(ctx context.Context, controller string, purpose pdv1.Purpose, categories []pdv1.DataCategory) error {
	set, err := s.agreementsOf(ctx, controller)
	if err != nil {
		return err
	}
	return s.agreementCovers(set, controller, purpose, categories)
}

// agreementsOf reads a customer's agreements (one exact _id read); nil for
// the company's own data, which needs none.
func (s *Service) agreementsOf(ctx context.Context, controller string) (*store.Agreements, error) {
	if controller == companyController {
		return nil, nil
	}
	set, err := s.store.GetAgreements(ctx, controller)
	if err != nil {
		return nil, s.internal(ctx, "check agreement", err)
	}
	return set, nil
}

// agreementCovers is requireAgreement on the agreements agreementsOf read.
func (s *Service) agreementCovers(set *store.Agreements, controller string, purpose pdv1.Purpose, categories []pdv1.DataCategory) error {
	if controller == companyController {
		return nil
	}
	if a, missing := agreementCovering(set, s.now().UnixNano(), purpose, categories); a == nil {
		return noAgreementError(controller, missing)
	}
	return nil
}
