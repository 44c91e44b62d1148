// Package principals is PrincipalService: who may call the API, for which
// tenants and purposes, with which tokens, and the first operator made at
// start. Each change is published to the cache that authentication reads
// (package auth); what each kind of principal may call is auth's rule.
package principals

import "github.com/example/personaldata/service/core"

// Service is what PrincipalService stands on.
type Service struct{ *core.Service }

// New returns the principal service on c.
func New(c *core.Service) *Service { return &Service{Service: c} }
