// Package requests carries a data subject's rights request from arrival to
// answer: the request as a record of its own with its due date (one month,
// Art. 12(3)), identity verification, fulfilment, the reply letter, the
// requester's outbox that the company's mailer sends (RequesterOutboxService),
// the subject's own requests from their page, and the backlog gauges.
//
// Fulfilment does not change a subject itself: it calls the handlers of
// packages subjects (access, rectify, restrict, erase) and disclosure
// (withdraw a consent), so that a right fulfilled on request is the same
// act, with the same rules and audit, as one a caller asks for directly.
// When the mailer acknowledges a policy notice, package accountability
// records that the subject was informed.
package requests

import (
	"github.com/example/personaldata/service/accountability"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/disclosure"
	"github.com/example/personaldata/service/subjects"
)

// Service is what RightsRequestService and RequesterOutboxService stand on.
type Service struct {
	*core.Service
	subjects *subjects.Service
	consents *disclosure.Consents
	policy   *accountability.Service
}

// New returns the rights request services on c, fulfilling requests
// through subj and consents, and recording policy notices through policy.
func New(c *core.Service, subj *subjects.Service, consents *disclosure.Consents, policy *accountability.Service) *Service {
	return &Service{Service: c, subjects: subj, consents: consents, policy: policy}
}
