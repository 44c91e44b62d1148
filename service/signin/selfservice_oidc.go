package signin

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"

	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/rules"
	"github.com/example/personaldata/store"
)

// Strong sign-in to the data subjects' own page: an OpenID Connect
// provider (a broker of BankID or Freja eID) has vouched for the person's
// personnummer, so no code is sent. The page verifies the ID token
// (cmd/personaldatad/selfservice/oidc.go); this finds whose it is.

// ErrSelfServiceUnknown: no live subject of the company's own records has
// the personnummer. The page answers it as the sign-in by code answers an
// unknown person.
var ErrSelfServiceUnknown = errors.New("self-service: no subject matched")

// SelfServiceSubjectByIdentityNumber is the live subject of the company's
// own records whose personnummer (or samordningsnummer) is number, found
// through the keyed blind index as a sign-in by code finds it; an erased
// subject is no one. Not a personnummer is ErrSelfServiceIdentity.
func (s *Service) SelfServiceSubjectByIdentityNumber(ctx context.Context, number string) (subjectID string, err error) {
	field, p, err := s.selfServiceIdentity(number)
	if err != nil || field != rules.FieldIdentityNumber {
		return "", ErrSelfServiceIdentity
	}
	sub, err := s.selfServiceSubject(ctx, field, &p)
	if err != nil {
		return "", s.Internal(ctx, "self-service strong sign-in", err)
	}
	if sub == nil || sub.Erasure != nil || sub.Person == nil {
		return "", ErrSelfServiceUnknown
	}
	return sub.ID, nil
}

// selfServiceSubject is the subject of the company's own records whose
// field (personnummer or e-mail) is p's; nil when none.
func (s *Service) selfServiceSubject(ctx context.Context, field string, p *store.Person) (*store.Subject, error) {
	var id string
	for _, k := range s.LookupKeys(rules.CompanyController, p) {
		if k.Field == field {
			id = k.ID
		}
	}
	return s.FindByKey(ctx, id)
}

// SelfServiceSignInRoute is the RPC field of the audit event of a sign-in
// to the data subjects' own page.
const SelfServiceSignInRoute = "self-service sign-in"

// RecordSelfServiceSignIn puts the sign-in of subjectID to their own page
// on the subject's audit chain, with how they signed in (store.SignInCode
// or store.SignInOIDC), before the page gives them a session: no trail, no
// session.
func (s *Service) RecordSelfServiceSignIn(ctx context.Context, subjectID, signIn string) error {
	_, err := s.AuditLog.Append(ctx, audit.Event{
		Chain: audit.SubjectChain(subjectID), Time: s.Now(), Principal: subjectID, Tenant: rules.CompanyController,
		RPC: SelfServiceSignInRoute, SubjectID: subjectID, Fields: []string{"channel:SELF_SERVICE", "sign_in:" + signIn}, Outcome: codes.OK.String(),
	})
	if err != nil {
		return s.Internal(ctx, "self-service sign-in", err)
	}
	return nil
}
