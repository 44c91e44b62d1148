package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"regexp"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Every request has an id: the caller's X-Request-Id (gRPC metadata
// x-request-id) when it gives a well-formed one, else a new one. It is on
// every log line written for the request, in the response's X-Request-Id
// header, and in every error response as a google.rpc.RequestInfo detail,
// so that a caller's report of a failure can be found in the logs. It is
// the caller's or random: never anything from the request's data.

const requestIDHeader = "x-request-id"

// requestIDPattern is what a caller's id may be: short, and nothing a log
// reader could be misled by.
var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

type requestIDKey struct{}

// requestIDFrom is the request id in ctx, or "".
func requestIDFrom(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

func newRequestID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// withRequestID returns ctx carrying the caller's id, if well formed, else a
// new one.
func withRequestID(ctx context.Context, given string) (context.Context, string) {
	id := given
	if !requestIDPattern.MatchString(id) {
		id = newRequestID()
	}
	return context.WithValue(ctx, requestIDKey{}, id), id
}

// grpcRequestID takes the id from the incoming metadata (the gateway
// forwards the HTTP request's), or makes one.
func grpcRequestID(ctx context.Context) (context.Context, string) {
	var given string
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if v := md.Get(requestIDHeader); len(v) > 0 {
			given = v[0]
		}
	}
	return withRequestID(ctx, given)
}

// withRequestInfo adds the request id to an error's details, once.
func withRequestInfo(err error, id string) error {
	if err == nil {
		return nil
	}
	st := status.Convert(err)
	for _, d := range st.Details() {
		if _, ok := d.(*errdetails.RequestInfo); ok {
			return err
		}
	}
	if withID, derr := st.WithDetails(&errdetails.RequestInfo{RequestId: id}); derr == nil {
		return withID.Err()
	}
	return err
}

// requestIDUnary is the first interceptor: it gives the call its id, sends
// it back as a header, and puts it in the error.
func requestIDUnary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, id := grpcRequestID(ctx)
	_ = grpc.SetHeader(ctx, metadata.Pairs(requestIDHeader, id))
	resp, err := handler(ctx, req)
	return resp, withRequestInfo(err, id)
}

// requestIDStream is requestIDUnary for streams.
func requestIDStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, id := grpcRequestID(ss.Context())
	_ = ss.SetHeader(metadata.Pairs(requestIDHeader, id))
	return withRequestInfo(handler(srv, &contextStream{ServerStream: ss, ctx: ctx}), id)
}

// contextStream is a server stream with another context.
type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextStream) Context() context.Context { return s.ctx }

// httpRequestID gives every HTTP request its id, in its context (the
// gateway forwards it to gRPC) and in the response's X-Request-Id header.
func httpRequestID(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, id := withRequestID(r.Context(), r.Header.Get("X-Request-Id"))
		w.Header().Set("X-Request-Id", id)
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// forwardRequestID is the gateway's metadata for gRPC: the HTTP request's id.
func forwardRequestID(ctx context.Context, _ *http.Request) metadata.MD {
	if id := requestIDFrom(ctx); id != "" {
		return metadata.Pairs(requestIDHeader, id)
	}
	return nil
}

// requestIDHandler adds the request id to every log record written with a
// request's context.
type requestIDHandler struct{ slog.Handler }

func (h requestIDHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := requestIDFrom(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h requestIDHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestIDHandler{h.Handler.WithAttrs(attrs)}
}

func (h requestIDHandler) WithGroup(name string) slog.Handler {
	return requestIDHandler{h.Handler.WithGroup(name)}
}
