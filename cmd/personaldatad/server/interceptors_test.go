package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// TestLimitUnary: a unary response over the limit leaves as
// RESOURCE_EXHAUSTED, which the interceptors outside it (the audit
// recorder, logs, metrics) see, instead of failing in the transport after
// they counted a success. Service responses are paged to stay far below it,
// so only a handler can show it.
func TestLimitUnary(t *testing.T) {
	const limit = 1 << 10
	info := &grpc.UnaryServerInfo{FullMethod: pdv1.PersonalDataService_AccessSubject_FullMethodName}
	respond := func(resp proto.Message, err error) grpc.UnaryHandler {
		return func(context.Context, any) (any, error) { return resp, err }
	}
	big := &pdv1.AccessSubjectResponse{History: []*pdv1.HistoryEntry{{Body: strings.Repeat("x", limit)}}}
	if resp, err := limitUnary(limit)(context.Background(), nil, info, respond(big, nil)); status.Code(err) != codes.ResourceExhausted || resp != nil {
		t.Errorf("%d bytes: %v, %v", proto.Size(big), resp, err)
	}
	small := &pdv1.AccessSubjectResponse{History: []*pdv1.HistoryEntry{{Body: strings.Repeat("x", limit-100)}}}
	if resp, err := limitUnary(limit)(context.Background(), nil, info, respond(small, nil)); err != nil || resp != small {
		t.Errorf("%d bytes: %v, %v", proto.Size(small), resp, err)
	}
	refused := status.Error(codes.NotFound, "subject not found")
	if _, err := limitUnary(limit)(context.Background(), nil, info, respond(nil, refused)); !errors.Is(err, refused) {
		t.Errorf("a refusal became %v", err)
	}
}

// TestRPCLogLines: the logging and recovery interceptors, as the server
// chains them, write one "rpc" line per call with the method, the code and
// the duration in milliseconds (a number), at a level by code; never the
// status message or the peer; a panic is INTERNAL and its stack is logged
// under the method.
func TestRPCLogLines(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	unary := chainUnary(logUnary(log), recoverUnary(log))
	stream := chainStream(logStream(log), recoverStream(log))
	const method = pdv1.PersonalDataService_AccessSubject_FullMethodName
	ctx := peer.NewContext(context.Background(), &peer.Peer{Addr: &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 1}})
	for _, c := range []struct {
		err   error
		panic bool
		level string
		code  codes.Code
	}{
		{nil, false, "DEBUG", codes.OK},
		{status.Error(codes.NotFound, "no subject 19121212-1212"), false, "INFO", codes.NotFound},
		{status.Error(codes.Unavailable, "store 19121212-1212"), false, "WARN", codes.Unavailable},
		{errors.New("disk 19121212-1212"), false, "ERROR", codes.Unknown},
		{nil, true, "ERROR", codes.Internal},
	} {
		for _, kind := range []string{"unary", "stream"} {
			logs.Reset()
			var err error
			if kind == "unary" {
				_, err = unary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: method}, func(context.Context, any) (any, error) {
					if c.panic {
						panic("19121212-1212")
					}
					time.Sleep(2 * time.Millisecond)
					return &pdv1.AccessSubjectResponse{}, c.err
				})
			} else {
				err = stream(nil, &fakeStream{ctx: ctx}, &grpc.StreamServerInfo{FullMethod: method, IsServerStream: true}, func(any, grpc.ServerStream) error {
					if c.panic {
						panic("19121212-1212")
					}
					time.Sleep(2 * time.Millisecond)
					return c.err
				})
			}
			if status.Code(err) != c.code {
				t.Errorf("%s %v: %v", kind, c.code, err)
			}
			out := logs.String()
			if strings.Contains(out, "19121212-1212") || strings.Contains(out, "192.0.2.7") {
				t.Errorf("%s %v: the log quotes the message, the panic or the peer:\n%s", kind, c.code, out)
			}
			lines := rpcLines(t, out)
			if len(lines) != 1 {
				t.Fatalf("%s %v: %d rpc lines:\n%s", kind, c.code, len(lines), out)
			}
			l := lines[0]
			ms, isNumber := l["duration_ms"].(float64)
			if l["method"] != method || l["code"] != c.code.String() || l["level"] != c.level || !isNumber || (!c.panic && ms < 2) || len(l) != 6 {
				t.Errorf("%s %v: %v", kind, c.code, l)
			}
			if c.panic && (!strings.Contains(out, `"msg":"panic in handler","method":"`+method+`"`) || !strings.Contains(out, "runtime/debug.Stack")) {
				t.Errorf("%s: the panic is not logged with its method and stack:\n%s", kind, out)
			}
		}
	}
}

// rpcLines are the "rpc" lines of JSON logs, decoded.
func rpcLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if l["msg"] == "rpc" {
			out = append(out, l)
		}
	}
	return out
}

type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *fakeStream) Context() context.Context { return s.ctx }
