package server

import (
	"context"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// metrics are the service's request metrics. gRPC calls are counted in the
// standard grpc_server_* families (go-grpc-middleware's Prometheus
// provider), so existing dashboards work; REST calls are counted there too,
// since the gateway calls gRPC, and as HTTP requests. What the gateway
// refuses before calling gRPC is counted apart. Labels are method names,
// codes and handler names only: never anything from a request.
type metrics struct {
	grpc     *grpcprom.ServerMetrics
	refusals *prometheus.CounterVec
	// HTTP requests, by handler name (never the path, which may hold ids),
	// method and status code: the standard promhttp families.
	httpRequests *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	buckets := prometheus.ExponentialBuckets(0.0005, 2, 16)
	m := &metrics{
		grpc: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(grpcprom.WithHistogramBuckets(buckets))),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "personaldata_gateway_refusals_total",
			Help: "REST requests the gateway refused before calling gRPC (a body it cannot read, no route), by the RPC of the route and gRPC code.",
		}, []string{"method", "code"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "http_requests_total", Help: "HTTP requests, by handler, method and status code.",
		}, []string{"handler", "method", "code"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "http_request_duration_seconds", Help: "Time to answer an HTTP request, by handler, method and status code.", Buckets: buckets,
		}, []string{"handler", "method", "code"}),
	}
	reg.MustRegister(m.grpc, m.refusals, m.httpRequests, m.httpDuration)
	return m
}

// observe counts one request the gateway refused.
func (m *metrics) observe(method string, code codes.Code, _ time.Time) {
	m.refusals.WithLabelValues(method, code.String()).Inc()
}

// instrumentHTTP counts and times the HTTP requests of the handler name.
func (m *metrics) instrumentHTTP(name string, h http.Handler) http.Handler {
	labels := prometheus.Labels{"handler": name}
	return promhttp.InstrumentHandlerDuration(m.httpDuration.MustCurryWith(labels),
		promhttp.InstrumentHandlerCounter(m.httpRequests.MustCurryWith(labels), h))
}

// logUnary logs each RPC's method, status code and duration; never the
// request, the response or the status message.
func logUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		logRPC(ctx, log, info.FullMethod, err, start)
		return resp, err
	}
}

// logRPC writes the one line per RPC: method, code, duration (and attrs);
// successes at debug level, faults at error.
func logRPC(ctx context.Context, log *slog.Logger, method string, err error, start time.Time, attrs ...slog.Attr) {
	code := status.Code(err)
	level := slog.LevelInfo
	switch code {
	case codes.OK:
		level = slog.LevelDebug
	case codes.Internal, codes.Unknown, codes.DataLoss:
		level = slog.LevelError
	case codes.Unavailable, codes.DeadlineExceeded:
		level = slog.LevelWarn
	}
	log.LogAttrs(ctx, level, "rpc", append([]slog.Attr{
		slog.String("method", method),
		slog.String("code", code.String()),
		slog.Duration("duration", time.Since(start))}, attrs...)...)
}

// recoverUnary turns a panic in a handler into INTERNAL instead of a crash.
func recoverUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				log.ErrorContext(ctx, "panic in handler", slog.String("method", info.FullMethod), slog.String("stack", string(debug.Stack())))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(ctx, req)
	}
}

// logStream logs each streaming RPC as logUnary does.
func logStream(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		logRPC(ss.Context(), log, info.FullMethod, err, start)
		return err
	}
}

// recoverStream turns a panic in a stream handler into INTERNAL.
func recoverStream(log *slog.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		defer func() {
			if r := recover(); r != nil {
				log.ErrorContext(ss.Context(), "panic in handler", slog.String("method", info.FullMethod), slog.String("stack", string(debug.Stack())))
				err = status.Error(codes.Internal, "internal error")
			}
		}()
		return handler(srv, ss)
	}
}

// countUnary and countStream count the calls in flight in wg, so that
// shutdown can wait for them.
func countUnary(wg *sync.WaitGroup) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		wg.Add(1)
		defer wg.Done()
		return handler(ctx, req)
	}
}

func countStream(wg *sync.WaitGroup) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		wg.Add(1)
		defer wg.Done()
		return handler(srv, ss)
	}
}

// chainUnary makes one interceptor of several, the first outermost, as
// grpc.ChainUnaryInterceptor does for a grpc.Server: for the gateway's
// in-process channel, which takes one.
func chainUnary(interceptors ...grpc.UnaryServerInterceptor) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		next := handler
		for i := len(interceptors) - 1; i >= 0; i-- {
			interceptor, inner := interceptors[i], next
			next = func(ctx context.Context, req any) (any, error) { return interceptor(ctx, req, info, inner) }
		}
		return next(ctx, req)
	}
}

// chainStream is chainUnary for streams.
func chainStream(interceptors ...grpc.StreamServerInterceptor) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		next := handler
		for i := len(interceptors) - 1; i >= 0; i-- {
			interceptor, inner := interceptors[i], next
			next = func(srv any, ss grpc.ServerStream) error { return interceptor(srv, ss, info, inner) }
		}
		return next(srv, ss)
	}
}

// limitStream refuses a stream's message larger than max with
// RESOURCE_EXHAUSTED, as the gRPC listener's MaxSendMsgSize does, for the
// gateway's in-process channel, which has no such limit of its own.
func limitStream(max int) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return handler(srv, &limitedStream{ServerStream: ss, max: max})
	}
}

type limitedStream struct {
	grpc.ServerStream
	max int
}

func (s *limitedStream) SendMsg(m any) error {
	if pm, ok := m.(proto.Message); ok {
		if n := proto.Size(pm); n > s.max {
			return status.Errorf(codes.ResourceExhausted, "a message of the stream would be %d bytes, more than the %d a message may have", n, s.max)
		}
	}
	return s.ServerStream.SendMsg(m)
}

// limitUnary refuses a unary response larger than max with
// RESOURCE_EXHAUSTED before it leaves. The transport would refuse it too,
// but only after every interceptor had counted, logged and audited the call
// as a success.
func limitUnary(max int) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		if m, ok := resp.(proto.Message); ok && err == nil {
			if n := proto.Size(m); n > max {
				return nil, status.Errorf(codes.ResourceExhausted, "the response would be %d bytes, more than the %d a message may have", n, max)
			}
		}
		return resp, err
	}
}
