package server

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
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
