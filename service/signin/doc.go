// Package signin signs a data subject in to their own page: with a
// one-time code sent to the contact details on file (never to one typed
// into the page), or with an e-ID through OpenID Connect, found by their
// personnummer. It is called in-process by the page
// (cmd/personaldatad/selfservice), not over the API: a sign-in is not a
// call of any principal. Every sign-in is an audit event on the person's
// chain before a session exists.
package signin

import "github.com/example/personaldata/service/core"

// Service is the sign-in of data subjects.
type Service struct{ *core.Service }

// New returns the sign-in on c.
func New(c *core.Service) *Service { return &Service{Service: c} }
