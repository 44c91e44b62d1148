package console

import "github.com/example/personaldata/cmd/personaldatad/internal/signinlimit"

// SignInLimits bound failed sign-ins to the console (cmd/personaldatad/internal/signinlimit).
type SignInLimits = signinlimit.Limits

// Limit is a token bucket of failures (cmd/personaldatad/internal/signinlimit).
type Limit = signinlimit.Limit

// Default sign-in limits.
var (
	DefaultPerAddressLimit = signinlimit.DefaultPerAddressLimit
	DefaultGlobalLimit     = signinlimit.DefaultGlobalLimit
)
