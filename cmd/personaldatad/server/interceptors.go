package server

import (
	"context"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// metrics counts RPCs by method and status code. Labels are method names and
// codes only: never anything from a request.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "personaldata_grpc_requests_total",
			Help: "RPCs handled, by method and gRPC status code (REST calls included: the gateway calls gRPC, or refuses what it cannot read under the RPC of the route).",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "personaldata_grpc_request_duration_seconds",
			Help:    "Time to handle an RPC, by method.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"method"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

func (m *metrics) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	m.observe(info.FullMethod, status.Code(err), start)
	return resp, err
}

// observe counts one call of method that ended with code.
func (m *metrics) observe(method string, code codes.Code, start time.Time) {
	m.duration.WithLabelValues(method).Observe(time.Since(start).Seconds())
	m.requests.WithLabelValues(method, code.String()).Inc()
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

func (m *metrics) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	err := handler(srv, ss)
	m.observe(info.FullMethod, status.Code(err), start)
	return err
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
