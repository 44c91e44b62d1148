// Package accountability is how the company shows it keeps its promises
// (Art. 5(2)): the audit trail read and verified (AuditService, with the
// Merkle tree's proofs), the privacy policy's versions and who was told of
// them (PolicyService), the register of processing (Art. 30,
// ProcessingRegisterService), and personal data breaches: their impact
// assessed from the trail (BreachService) and their records, reports to
// IMY and notices to those affected (Art. 33 and 34, BreachRecordService).
//
// It reads what other packages keep (agreements, principals, subjects) and
// writes its own records, the outbox's notices, and in a subject's record
// only the acknowledgements of policy versions; it changes no personal
// data.
package accountability

import (
	"cmp"

	"github.com/example/personaldata/service/core"
)

// Service is what the accountability services stand on.
type Service struct {
	*core.Service
	// breachChunk is how many affected subjects a chunk of a breach
	// record's list holds (breach_record.go).
	breachChunk int
}

// New returns the accountability services on c; a breach record's list of
// affected subjects is stored in chunks of breachChunk (0: the default).
func New(c *core.Service, breachChunk int) *Service {
	return &Service{Service: c, breachChunk: cmp.Or(breachChunk, breachSubjectsPerChunk)}
}
