package server

import (
	"context"
	"net/http"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/example/personaldata/service/auth"
)

// authFirst authenticates every REST request of the API before the gateway
// reads its path, query or body, so a caller without valid credentials gets
// 401 whatever it sent, and learns nothing of what a request may hold. It
// checks the credentials the gateway would pass on (authn is the gateway's
// authenticator, which believes the client certificate identity forwarded
// with the gateway's secret); the call is checked again by the interceptor
// when the gateway makes it, from the principal cache. A request that
// matches no route is authenticated too: 401, not 404 or 405.
func authFirst(authn *auth.Authenticator, secret string, g *gateway, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		method := routeRPC(r.Method, r.URL.Path)
		err := authn.Check(r.Context(), gatewayCredentials(r, secret), method, auth.SourceAddress(r.RemoteAddr))
		if err == nil {
			next.ServeHTTP(w, r)
			return
		}
		st := status.Convert(err)
		g.record(r.Context(), method, st, gatewayCallFrom(r.Context()))
		writeStatus(r.Context(), w, gatewayMarshaler, st, runtime.HTTPStatusFromCode(st.Code()))
	})
}

// gatewayCredentials is the metadata that carries credentials in the call
// the gateway would make for r: the values of the Authorization header
// (the only header it passes on as "authorization", and the first), and the
// identity of a verified client certificate, with the secret.
func gatewayCredentials(r *http.Request, secret string) metadata.MD {
	md := forwardClientCertificate(r.Context(), r)
	md.Set(auth.GatewaySecretKey, secret)
	for _, v := range r.Header.Values("Authorization") {
		if printableASCII(v) {
			md.Append("authorization", v)
		}
	}
	return md
}

// printableASCII is what gRPC metadata takes as a text value; the gateway
// drops any other.
func printableASCII(v string) bool {
	for i := range len(v) {
		if v[i] < 0x20 || v[i] > 0x7e {
			return false
		}
	}
	return true
}

// routeRPC is the RPC of the route that an HTTP method and path match, or
// noRoute.
func routeRPC(method, path string) string {
	for _, rt := range routes {
		if rt.method == method && rt.path.MatchString(path) {
			return rt.rpc
		}
	}
	return noRoute
}

// runUntilStopped runs run in a goroutine until the function it returns is
// called, which waits for run to return.
func runUntilStopped(run func(context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); run(ctx) }()
	return func() { cancel(); <-done }
}
