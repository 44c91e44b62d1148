package auth

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// ConsoleSignInKey is set, with the gateway's secret, by the support
// console on the call that checks the credentials of a sign-in: its value is
// the client's address, which a refusal is recorded with, under the route
// ConsoleSignInRoute.
const ConsoleSignInKey = "x-pd-console-sign-in"

// Names the failure records give what is not an RPC or an address.
const (
	// ConsoleSignInRoute is the route of the console's sign-in.
	ConsoleSignInRoute = "console sign-in"
	// UnknownMethod stands for a method the API does not have: the caller's
	// text, never recorded.
	UnknownMethod = "(unknown method)"
	// SourceInProcess is the source of a refused in-process call (the
	// gateway or the console in this process) whose client is not known.
	SourceInProcess = "in-process"
	// SourceUnknown is a source address that cannot be read.
	SourceUnknown = "unknown"
)

// Failure is one refused authentication, as the audit trail records it:
// never the credentials.
type Failure struct {
	// Source is the client's IP address (no port).
	Source string
	// Method is the RPC (full method name) of the call, or the route that
	// stands for it (ConsoleSignInRoute, UnknownMethod).
	Method string
	// Reason is why: missing, malformed, unknown_principal, bad_token,
	// revoked (the reasons of personaldata_auth_failures_total), or
	// other_principal (a console sign-in with the token of another
	// principal).
	Reason string
	// Principal is the id of the existing principal the credentials named
	// (bad_token, revoked): never an unknown id, which is the caller's text.
	Principal string
}

// OnFailure has f told of every refused authentication; call it before
// ForGateway, whose copy keeps it. f must not block: it runs on the call's
// path (and on the connection's reader for Tap).
func (a *Authenticator) OnFailure(f func(context.Context, Failure)) { a.onFailure = f }

func (a *Authenticator) report(ctx context.Context, method, source, reason, named string) {
	if a.onFailure == nil {
		return
	}
	md, _ := metadata.FromIncomingContext(ctx)
	if a.gatewaySecret != "" && hashMatches(first(md, GatewaySecretKey), a.gatewaySecret) {
		if addr := md.Get(ConsoleSignInKey); len(addr) == 1 {
			method, source = ConsoleSignInRoute, SourceAddress(addr[0])
		}
	}
	if source == "" {
		source = peerSource(ctx, a.gatewaySecret != "")
	}
	if method != ConsoleSignInRoute && !KnownMethod(method) {
		method = UnknownMethod
	}
	a.onFailure(ctx, Failure{Source: source, Method: method, Reason: reason, Principal: named})
}

// tapTimeout bounds the store reads of an authentication in the tap, which
// holds up the connection's other streams meanwhile.
const tapTimeout = time.Second

type tappedKey struct{}

// Tap is the gRPC listener's grpc.InTapHandle: it authenticates a call as
// its headers arrive, before the request message is read and decoded, so a
// caller without valid credentials learns nothing of what a request may
// hold. The context it gets carries the incoming metadata and the peer, with
// the TLS state of a client certificate (grpc-go sets both before it calls
// the tap). The unary and stream interceptors then take the caller it
// found. Health checks pass without credentials.
//
// It runs on the connection's reader: a cached principal costs no I/O; one
// not cached (or the principals' generation to renew) costs a store read
// that holds up that connection's other streams, bounded by tapTimeout.
func (a *Authenticator) Tap(ctx context.Context, info *tap.Info) (context.Context, error) {
	if unauthenticated(info.FullMethodName) {
		return ctx, nil
	}
	checkCtx, cancel := context.WithTimeout(ctx, tapTimeout)
	defer cancel()
	c, err := a.check(checkCtx, info.FullMethodName, "")
	if err != nil {
		return nil, err
	}
	return context.WithValue(ctx, tappedKey{}, c), nil
}

// Check authenticates a REST request before the gateway reads its body:
// md is the metadata the gateway would send with it (the authorization, the
// client certificate identity with the gateway's secret), method the RPC of
// its route (or a route name), source the client's address. A refusal is
// counted and reported as the interceptor's are, and the interceptor checks
// the call again when it arrives (from the principal cache: no store read).
func (a *Authenticator) Check(ctx context.Context, md metadata.MD, method, source string) error {
	_, err := a.check(metadata.NewIncomingContext(ctx, md), method, source)
	return err
}

// SourceAddress is the IP address of a host:port or host, as a failure
// records it; SourceUnknown when it is neither.
func SourceAddress(hostport string) string {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return SourceUnknown
	}
	return ip.Unmap().WithZone("").String()
}

func peerSource(ctx context.Context, inProcess bool) string {
	if inProcess {
		return SourceInProcess
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return SourceAddress(p.Addr.String())
	}
	return SourceUnknown
}

// KnownMethod says whether method ("/package.Service/Method") is an RPC
// compiled into this binary: only such a name, not the caller's own text, is
// recorded.
func KnownMethod(method string) bool {
	svc, m, ok := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	if !ok || !strings.HasPrefix(method, "/") || !protoreflect.FullName(svc).IsValid() {
		return false
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return false
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	return ok && sd.Methods().ByName(protoreflect.Name(m)) != nil
}
