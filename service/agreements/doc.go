// Package agreements is ProcessorAgreementService: the processor
// agreements (Art. 28) under which the company handles data that its
// customers control, their versions and terms, and what a customer may ask
// of its own subjects in bulk (an export of all of them, their erasure at
// the end of an agreement).
//
// Whether an agreement covers a purpose and categories is a rule of
// package rules, read by every package that needs it; this package only
// keeps the agreements. A bulk export or erasure goes through package
// subjects, subject by subject, as a rights request would.
package agreements

import (
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/subjects"
)

// Service is what ProcessorAgreementService stands on.
type Service struct {
	*core.Service
	subjects *subjects.Service
}

// New returns the agreement service on c, reading and erasing subjects
// through subj.
func New(c *core.Service, subj *subjects.Service) *Service {
	return &Service{Service: c, subjects: subj}
}
