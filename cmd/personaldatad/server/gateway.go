package server

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

// noRoute is the method label of a REST request that matched no route.
const noRoute = "(no route)"

// gateway writes the REST gateway's errors, and logs and counts the requests
// it refuses itself. Most errors are the gRPC server's answers, already
// logged and counted by its interceptors; but a body, query or path the
// gateway cannot read into the request message is refused before any gRPC
// call, and the gateway's text for it quotes what it could not read.
type gateway struct {
	log     *slog.Logger
	metrics *metrics
}

// newGatewayMux is the REST gateway: JSON with the proto field names, every
// error in one shape (google.rpc.Status), no gRPC metadata in the response.
func newGatewayMux(log *slog.Logger, m *metrics) *runtime.ServeMux {
	g := &gateway{log: log, metrics: m}
	return runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true},
			UnmarshalOptions: protojson.UnmarshalOptions{},
		}),
		runtime.WithMetadata(forwardClientCertificate),
		runtime.WithIncomingHeaderMatcher(refuseInternalHeaders),
		// The gRPC server's headers and trailers are between it and the
		// gateway: none goes out as Grpc-Metadata-* or Grpc-Trailer-*.
		runtime.WithOutgoingHeaderMatcher(dropMetadata),
		runtime.WithOutgoingTrailerMatcher(dropMetadata),
		runtime.WithErrorHandler(g.writeError),
		runtime.WithRoutingErrorHandler(g.writeRoutingError),
	)
}

func dropMetadata(string) (string, bool) { return "", false }

// gatewayCall follows one REST request, so that its error can be told apart:
// the gRPC server's answer, or the gateway's own refusal before calling.
type gatewayCall struct {
	start time.Time
	// reached is set when the gateway calls the gRPC server.
	reached atomic.Bool
}

type gatewayCallKey struct{}

// trackGatewayCalls puts a gatewayCall in each request's context.
func trackGatewayCalls(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &gatewayCall{start: time.Now()}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), gatewayCallKey{}, c)))
	})
}

func gatewayCallFrom(ctx context.Context) *gatewayCall {
	c, _ := ctx.Value(gatewayCallKey{}).(*gatewayCall)
	return c
}

// markReached and markReachedStream are the gateway's client interceptors:
// the request got as far as a gRPC call, whose outcome the server's own
// interceptors log and count.
func markReached(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if c := gatewayCallFrom(ctx); c != nil {
		c.reached.Store(true)
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

func markReachedStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	if c := gatewayCallFrom(ctx); c != nil {
		c.reached.Store(true)
	}
	return streamer(ctx, desc, cc, method, opts...)
}

// writeError is the gateway's error handler. An error of the gRPC server
// goes out as it is; one the gateway raised itself is replaced by a
// rejection that names the field without the value, and logged and counted
// as the interceptors do for gRPC calls.
func (g *gateway) writeError(ctx context.Context, _ *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
	c := gatewayCallFrom(ctx)
	if c != nil && c.reached.Load() {
		st := status.Convert(err)
		writeStatus(w, m, st, runtime.HTTPStatusFromCode(st.Code()))
		return
	}
	st := rejection(ctx, err)
	g.record(ctx, routeMethod(ctx), st, c)
	writeStatus(w, m, st, runtime.HTTPStatusFromCode(st.Code()))
}

// writeRoutingError answers a request that matches no route: 404, or 405
// for a route that exists with another HTTP method.
func (g *gateway) writeRoutingError(ctx context.Context, _ *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, _ *http.Request, httpStatus int) {
	code := codes.NotFound
	switch httpStatus {
	case http.StatusMethodNotAllowed:
		code = codes.Unimplemented
	case http.StatusBadRequest:
		code = codes.InvalidArgument
	}
	st := status.New(code, http.StatusText(httpStatus))
	g.record(ctx, noRoute, st, gatewayCallFrom(ctx))
	writeStatus(w, m, st, httpStatus)
}

// record logs and counts a request the gateway refused, under the gRPC
// method its route maps to (never its URL, which may hold values).
func (g *gateway) record(ctx context.Context, method string, st *status.Status, c *gatewayCall) {
	start := time.Now()
	if c != nil {
		start = c.start
	}
	g.metrics.observe(method, st.Code(), start)
	logRPC(ctx, g.log, method, st.Err(), start, slog.String("refused_by", "gateway"))
}

// routeMethod is the gRPC method of the request's route, or else the
// route's pattern, or noRoute.
func routeMethod(ctx context.Context) string {
	if m, ok := runtime.RPCMethod(ctx); ok {
		return m
	}
	if p, ok := runtime.HTTPPattern(ctx); ok {
		return p.String()
	}
	return noRoute
}

// writeStatus writes st as every REST error is written: the google.rpc.Status
// as JSON with its details.
func writeStatus(w http.ResponseWriter, m runtime.Marshaler, st *status.Status, httpStatus int) {
	body, err := m.Marshal(st.Proto())
	if err != nil {
		body, httpStatus = []byte(`{"code":13,"message":"failed to marshal the error"}`), http.StatusInternalServerError
	}
	h := w.Header()
	h.Del("Trailer")
	h.Del("Transfer-Encoding") // set by a stream that failed before its first message
	h.Set("Content-Type", m.ContentType(st.Proto()))
	if st.Code() == codes.Unauthenticated {
		// RFC 7235 section 3.1, RFC 6750 section 3: a 401 names the scheme.
		h.Set("WWW-Authenticate", "Bearer")
	}
	w.WriteHeader(httpStatus)
	_, _ = w.Write(body)
}
