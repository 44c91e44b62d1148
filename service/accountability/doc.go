// Package accountability is how the company shows it keeps its promises
// (Art. 5(2)): the audit trail read and verified (AuditService, with the
// Merkle tree's proofs), the privacy policy's versions and who was told of
// them (PolicyService), the register of processing (Art. 30,
// ProcessingRegisterService), and personal data breaches: their impact
// assessed from the trail (BreachService) and their records, reports to
// IMY and notices to those affected (Art. 33 and 34, BreachRecordService).
//
// It reads what other packages keep (agreements, holds, subjects) and
// writes only its own records, policy acknowledgements and the outbox's
// notices; it changes no subject's data.
package accountability

import "github.com/example/personaldata/service/core"

// Service is what the accountability services stand on.
type Service struct{ *core.Service }

// New returns the accountability services on c.
func New(c *core.Service) *Service { return &Service{Service: c} }
