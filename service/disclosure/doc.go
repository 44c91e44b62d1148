// Package disclosure is what leaves the company about a subject, and on
// what ground: consents given and withdrawn (ConsentService), disclosures
// to third parties with their basis (DisclosureService), and the
// recipients' queue of the changes they must be told of (Art. 19).
//
// It decides whether a disclosure may happen (a consent live for the
// recipient, or an agreement that covers the categories) and records it in
// the subject's own document. The queueing of recipients' notifications
// after a change lives in core (core.Service.SettleChange), since every
// change of a subject, whichever package makes it, must queue them.
package disclosure

import "github.com/example/personaldata/service/core"

// Service is what ConsentService and DisclosureService stand on.
type Service struct{ *core.Service }

// New returns the disclosure services on c.
func New(c *core.Service) *Service { return &Service{Service: c} }
