// Package subjects is PersonalDataService: the data subject's record and
// the rights exercised on it. It creates and finds subjects, answers access
// (Art. 15) and purpose views, rectifies (Art. 16), erases (Art. 17, keeping
// what a hold requires), restricts (Art. 18), keeps the history entries,
// and lets a signed-in person change their own contact details.
//
// It decides what a record holds and what each right does to it, including
// what an erasure keeps for a legal hold (kept.go). Who may call, and for
// which tenant, comes from core (the caller, the tenant rule), as do the
// consent and agreement a purpose requires; it keeps no consent, hold or
// agreement itself. It exports to the packages above it the pieces their
// work is made of: its handlers (fulfilment of a rights request calls
// them), an access page (the reply letter and a customer's export read
// it), an erasure of a stored subject (bulk erasure and a restore's
// replay), the end of an erasure and what a hold keeps (the retention
// sweeper), and the API's views of a record's parts.
package subjects

import (
	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/core"
)

// Service implements PersonalDataService.
type Service struct {
	pdv1.UnimplementedPersonalDataServiceServer
	*core.Service
}

// New returns PersonalDataService on c.
func New(c *core.Service) *Service { return &Service{Service: c} }
