package server

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"runtime/debug"
	"sync"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
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

// logUnary and logStream log one "rpc" line per call, with go-grpc-middleware's
// logging interceptors: the method, the status code and the duration in
// milliseconds; never the request, the response or the status message.
func logUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return logging.UnaryServerInterceptor(rpcLogger(log), rpcLogOptions...)
}

func logStream(log *slog.Logger) grpc.StreamServerInterceptor {
	return logging.StreamServerInterceptor(rpcLogger(log), rpcLogOptions...)
}

// durationKey is the key of an RPC's duration in its log line.
const durationKey = "duration_ms"

// rpcLogOptions: a line when a call ends (none when it starts, none for its
// messages), levelled by code, with the duration in milliseconds.
var rpcLogOptions = []logging.Option{
	logging.WithLogOnEvents(logging.FinishCall),
	logging.WithLevels(func(code codes.Code) logging.Level { return logging.Level(rpcLevel(code)) }),
	logging.WithDurationField(func(d time.Duration) logging.Fields { return logging.Fields{durationKey, milliseconds(d)} }),
}

// rpcLogger adapts slog to the middleware. Of the fields it offers it keeps
// the method, the code and the duration, by name: never the error (which is
// the status message, that may quote a value), the peer's address, the
// payloads or anything a later version adds.
func rpcLogger(log *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, level logging.Level, _ string, fields ...any) {
		var service, method, code string
		var ms float64
		for it := logging.Fields(fields).Iterator(); it.Next(); {
			switch k, v := it.At(); k {
			case logging.ServiceFieldKey:
				service, _ = v.(string)
			case logging.MethodFieldKey:
				method, _ = v.(string)
			case "grpc.code":
				code, _ = v.(string)
			case durationKey:
				ms, _ = v.(float64)
			}
		}
		rpcLine(ctx, log, slog.Level(level), "/"+service+"/"+method, code, ms)
	})
}

// rpcLevel is the level of an RPC's line by its code: successes at debug,
// faults of the service at error, unavailability and timeouts at warn,
// the caller's mistakes and refusals at info.
func rpcLevel(code codes.Code) slog.Level {
	switch code {
	case codes.OK:
		return slog.LevelDebug
	case codes.Internal, codes.Unknown, codes.DataLoss:
		return slog.LevelError
	case codes.Unavailable, codes.DeadlineExceeded:
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

// rpcLine writes the one line per RPC: method, code, duration (and attrs).
func rpcLine(ctx context.Context, log *slog.Logger, level slog.Level, method, code string, ms float64, attrs ...slog.Attr) {
	log.LogAttrs(ctx, level, "rpc", append([]slog.Attr{
		slog.String("method", method),
		slog.String("code", code),
		slog.Float64(durationKey, ms)}, attrs...)...)
}

// logRPC writes the line of a call that no interceptor saw (the gateway's
// refusals) as the interceptors do.
func logRPC(ctx context.Context, log *slog.Logger, method string, err error, start time.Time, attrs ...slog.Attr) {
	code := status.Code(err)
	rpcLine(ctx, log, rpcLevel(code), method, code.String(), milliseconds(time.Since(start)), attrs...)
}

// milliseconds is d in milliseconds, to the microsecond: readable, and a
// number that log queries can compare and sum.
func milliseconds(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Microsecond)) / 1000
}

// recoverUnary and recoverStream turn a panic in a handler into INTERNAL
// instead of a crash, with go-grpc-middleware's recovery interceptors,
// logging the stack (not the panic's value, which may quote a request).
func recoverUnary(log *slog.Logger) grpc.UnaryServerInterceptor {
	return recovery.UnaryServerInterceptor(recovery.WithRecoveryHandlerContext(onPanic(log)))
}

func recoverStream(log *slog.Logger) grpc.StreamServerInterceptor {
	return recovery.StreamServerInterceptor(recovery.WithRecoveryHandlerContext(onPanic(log)))
}

func onPanic(log *slog.Logger) recovery.RecoveryHandlerFuncContext {
	return func(ctx context.Context, _ any) error {
		// The logging interceptor, outside this one, put the method in ctx.
		var service, method string
		for it := logging.ExtractFields(ctx).Iterator(); it.Next(); {
			switch k, v := it.At(); k {
			case logging.ServiceFieldKey:
				service, _ = v.(string)
			case logging.MethodFieldKey:
				method, _ = v.(string)
			}
		}
		log.ErrorContext(ctx, "panic in handler", slog.String("method", "/"+service+"/"+method), slog.String("stack", string(debug.Stack())))
		return status.Error(codes.Internal, "internal error")
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
