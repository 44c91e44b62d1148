package auth

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/example/personaldata/store"
)

// Metadata keys the REST gateway sets on its calls to the gRPC server. They
// are believed only with the gateway's secret, which lives in this process.
const (
	GatewaySecretKey   = "x-pd-gateway-secret"
	GatewayIdentityKey = "x-pd-client-cert-identity"
	// ConsolePrincipalKey and ConsoleTokenHashKey are set by the support
	// console on its calls for a signed-in principal: its id and the hash
	// of the token it signed in with, which it must still hold.
	ConsolePrincipalKey = "x-pd-console-principal"
	ConsoleTokenHashKey = "x-pd-console-token-hash"
)

// Authenticator checks the credentials of every call but health checks and
// puts the Caller in the context.
type Authenticator struct {
	principals *PrincipalCache
	log        *slog.Logger
	// gatewaySecret, when set, makes this server believe the client
	// certificate identity that the gateway forwards.
	gatewaySecret string
	failures      *prometheus.CounterVec
	// onFailure, when set, is told of every refused authentication (the
	// audit trail's record of them); never the token.
	onFailure func(context.Context, Failure)
}

// NewAuthenticator returns an Authenticator that finds principals through
// principals; failures are counted by reason in
// personaldata_auth_failures_total on reg.
func NewAuthenticator(principals *PrincipalCache, log *slog.Logger, reg prometheus.Registerer) *Authenticator {
	a := &Authenticator{
		principals: principals,
		log:        log,
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "personaldata_auth_failures_total",
			Help: "Calls refused as unauthenticated or not permitted, by reason.",
		}, []string{"reason"}),
	}
	reg.MustRegister(a.failures)
	return a
}

// ForGateway returns a copy that believes identities forwarded by the
// gateway carrying secret. Use it only for the gateway's in-process calls.
func (a *Authenticator) ForGateway(secret string) *Authenticator {
	c := *a
	c.gatewaySecret = secret
	return &c
}

// Unary is the unary interceptor that authenticates: it puts the Caller in
// the context, or refuses the call as UNAUTHENTICATED.
func (a *Authenticator) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := a.authenticate(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// Stream is the stream interceptor that authenticates.
func (a *Authenticator) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := a.authenticate(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return handler(srv, &contextStream{ServerStream: ss, ctx: ctx})
}

// AuthorizeUnary is the unary interceptor that applies the RPC rule: the
// caller may call only the RPCs it was granted. It runs after the audit
// recorder, so that a refusal is on record with the principal it refused.
func (a *Authenticator) AuthorizeUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := a.authorize(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	if c := FromContext(ctx); c != nil {
		if err := confine(c, req); err != nil {
			return nil, err
		}
	}
	return handler(ctx, req)
}

// AuthorizeStream is the stream interceptor that applies the RPC rule.
func (a *Authenticator) AuthorizeStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := a.authorize(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	if c := FromContext(ss.Context()); c != nil && c.SelfServiceSubject() != "" {
		ss = &confinedStream{ServerStream: ss, c: c}
	}
	return handler(srv, ss)
}

type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextStream) Context() context.Context { return s.ctx }

var errUnauthenticated = status.Error(codes.Unauthenticated, "missing or invalid credentials")

// errorDomain and retryDelay are those of the service's other refusals
// (service/fault), repeated here so that auth stands below every package that checks callers.
const (
	errorDomain = "personaldata.v1"
	retryDelay  = time.Second
)

// refusal is a status with an ErrorInfo of reason, and any other details.
func refusal(code codes.Code, reason string, metadata map[string]string, msg string, details ...protoadapt.MessageV1) error {
	st := status.New(code, msg)
	details = append([]protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: reason, Domain: errorDomain, Metadata: metadata}}, details...)
	if d, err := st.WithDetails(details...); err == nil {
		st = d
	}
	return st.Err()
}

func (a *Authenticator) authenticate(ctx context.Context, method string) (context.Context, error) {
	if unauthenticated(method) {
		return ctx, nil
	}
	// A call of the gRPC listener was authenticated by the tap, before its
	// request was read (Tap).
	if c, ok := ctx.Value(tappedKey{}).(*Caller); ok {
		return NewContext(ctx, c), nil
	}
	caller, err := a.check(ctx, method, "")
	if err != nil {
		return nil, err
	}
	return NewContext(ctx, caller), nil
}

// check identifies the caller of ctx, or refuses the call as
// UNAUTHENTICATED, counting and reporting the refusal (source: the client's
// address when known, else taken from ctx).
func (a *Authenticator) check(ctx context.Context, method, source string) (*Caller, error) {
	caller, named, reason, err := a.identify(ctx)
	if err != nil {
		return nil, err
	}
	if caller == nil {
		a.failures.WithLabelValues(reason).Inc()
		a.report(ctx, method, source, reason, named)
		return nil, errUnauthenticated
	}
	return caller, nil
}

// unauthenticated says which RPCs need no credentials: health checks.
func unauthenticated(method string) bool {
	return strings.HasPrefix(method, "/grpc.health.v1.Health/")
}

// authorize refuses a call the authenticated caller was not granted.
func (a *Authenticator) authorize(ctx context.Context, method string) error {
	caller := FromContext(ctx)
	if caller == nil {
		if unauthenticated(method) {
			return nil
		}
		return errUnauthenticated
	}
	if !caller.MayCall(method) {
		a.failures.WithLabelValues("rpc_not_permitted").Inc()
		msg := fmt.Sprintf("principal %s may not call %s", caller.ID(), method)
		if advice := RefusalAdvice(caller.kind(), method); advice != "" {
			msg += ": " + advice
		}
		return refusal(codes.PermissionDenied, "RPC_NOT_PERMITTED", map[string]string{"method": method}, msg)
	}
	return nil
}

// identify finds the caller from a bearer token, or else from a verified
// client certificate. A nil caller comes with the reason for the metrics
// and the id of the principal the credentials named, when that principal
// exists (an unknown id is the caller's text, which is not recorded).
func (a *Authenticator) identify(ctx context.Context) (caller *Caller, named, reason string, err error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if auth := first(md, "authorization"); auth != "" {
		token, ok := bearerToken(auth)
		if !ok {
			return nil, "", "malformed", nil
		}
		id, ok := tokenPrincipal(token)
		if !ok {
			return nil, "", "malformed", nil
		}
		p, reason, err := a.principal(ctx, id, false)
		if p == nil {
			return nil, knownID(id, reason), reason, err
		}
		hash := HashToken(token)
		if !holdsToken(p, hash) {
			// The token may have been issued since the principal was
			// cached: read it again before refusing.
			if p, reason, err = a.principal(ctx, id, true); p == nil {
				return nil, knownID(id, reason), reason, err
			}
		}
		if holdsToken(p, hash) {
			return &Caller{Principal: p, Method: "bearer"}, "", "", nil
		}
		return nil, id, "bad_token", nil
	}
	if a.gatewaySecret != "" && len(md.Get(SelfServiceSubjectKey)) > 0 {
		return a.selfServiceCaller(ctx, md)
	}
	if a.gatewaySecret != "" && len(md.Get(ConsolePrincipalKey)) > 0 {
		return a.consoleCaller(ctx, md)
	}
	id := a.certificateIdentity(ctx, md)
	if id == "" {
		return nil, "", "missing", nil
	}
	p, reason, err := a.principal(ctx, id, false)
	if p == nil {
		return nil, knownID(id, reason), reason, err
	}
	return &Caller{Principal: p, Method: "mtls"}, "", "", nil
}

// knownID is id when the refusal says the principal exists (revoked), else "".
func knownID(id, reason string) string {
	if reason == "revoked" {
		return id
	}
	return ""
}

// consoleCaller is the principal signed in to the support console, as the
// console in this process forwards it with the gateway's secret. The
// principal must still hold the token it signed in with, so revoking that
// token (or the principal) ends its console sessions on the next call.
func (a *Authenticator) consoleCaller(ctx context.Context, md metadata.MD) (*Caller, string, string, error) {
	ids, hashes := md.Get(ConsolePrincipalKey), md.Get(ConsoleTokenHashKey)
	if !hashMatches(first(md, GatewaySecretKey), a.gatewaySecret) || len(ids) != 1 || len(hashes) != 1 || ids[0] == "" || hashes[0] == "" {
		return nil, "", "malformed", nil
	}
	p, reason, err := a.principal(ctx, ids[0], false)
	if p == nil {
		return nil, knownID(ids[0], reason), reason, err
	}
	if !holdsToken(p, hashes[0]) {
		if p, reason, err = a.principal(ctx, ids[0], true); p == nil {
			return nil, knownID(ids[0], reason), reason, err
		}
	}
	if !holdsToken(p, hashes[0]) {
		return nil, ids[0], "bad_token", nil
	}
	return &Caller{Principal: p, Method: "console"}, "", "", nil
}

// bearerToken is the token of an authorization value "Bearer <token>"; the
// scheme's name is case-insensitive (RFC 7235 section 2.1).
func bearerToken(auth string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(auth), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "bearer") || token == "" {
		return "", false
	}
	return token, true
}

func holdsToken(p *store.Principal, hash string) bool {
	for _, t := range p.Tokens {
		if hashMatches(t.Hash, hash) {
			return true
		}
	}
	return false
}

// principal finds principal id, through the cache unless reload is set; a
// nil principal comes with the reason for the metrics.
func (a *Authenticator) principal(ctx context.Context, id string, reload bool) (*store.Principal, string, error) {
	get := a.principals.Get
	if reload {
		get = a.principals.Reload
	}
	p, err := get(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, "unknown_principal", nil
	case err != nil:
		a.log.WarnContext(ctx, "authentication: store error", slog.String("error", err.Error()))
		return nil, "", refusal(codes.Unavailable, "STORE_UNAVAILABLE", nil, "cannot check credentials now, retry later",
			&errdetails.RetryInfo{RetryDelay: durationpb.New(retryDelay)})
	case p.Revoked:
		return nil, "revoked", nil
	}
	return p, "", nil
}

// certificateIdentity is the identity of a verified client certificate:
// from the TLS connection, or as forwarded by the gateway with its secret.
func (a *Authenticator) certificateIdentity(ctx context.Context, md metadata.MD) string {
	if a.gatewaySecret != "" {
		if ids := md.Get(GatewayIdentityKey); hashMatches(first(md, GatewaySecretKey), a.gatewaySecret) && len(ids) == 1 {
			return ids[0]
		}
		return ""
	}
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return ""
	}
	return CertificateIdentity(info.State.VerifiedChains[0][0])
}

// CertificateIdentity is the principal id a client certificate names: its
// common name, or else its first DNS name.
func CertificateIdentity(cert *x509.Certificate) string {
	if cert.Subject.CommonName != "" {
		return cert.Subject.CommonName
	}
	if len(cert.DNSNames) > 0 {
		return cert.DNSNames[0]
	}
	return ""
}

func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}
