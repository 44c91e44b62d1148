// Package keys is KeyService: rotation of the master keys that wrap every
// subject's data key. The keys themselves, and sealing with them, are
// package vault's; this package only moves wrapped data keys to the newest
// master key and says when none is left on an older one.
package keys

import "github.com/example/personaldata/service/core"

// Service is what KeyService stands on.
type Service struct{ *core.Service }

// New returns the key service on c.
func New(c *core.Service) *Service { return &Service{Service: c} }
