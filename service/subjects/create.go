package subjects

import (
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/store"
)

// createOpOf returns the op of the create that made sub under key (hashed),
// or nil: the create's, or one of the legacy in-document records.
func createOpOf(sub *store.Subject, key string) *store.Op {
	if sub.CreateOp != nil && sub.CreateOp.Key == key {
		return sub.CreateOp
	}
	return core.FindOpIn(sub.Ops, key)
}

// subjectIDFor derives a new subject's id from its controller and the
// idempotency key of the create request, so a retried create finds the
// subject its first attempt made. The id is opaque and carries no personal
// data.
func (s *Service) subjectIDFor(controller, key string) string {
	return s.DerivedID("subject", controller, key)
}
