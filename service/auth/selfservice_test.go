package auth

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store"
)

// A self-service session names subject A. Whatever the request names, the
// authenticator lets through only A's own record, by the three RPCs of the
// page, and only with the gateway's secret and a session that exists for A.
func TestSelfServiceConfinement(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{DataDir: t.TempDir(), Database: fmt.Sprintf("authtest_%d", time.Now().UnixNano())})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	const secret, subjectA, subjectB, sessionA = "gateway-secret-for-the-test", "subject-a", "subject-b", "session-key-of-a"
	now := time.Now().UnixNano()
	if err := st.InsertSelfServiceSession(ctx, &store.SelfServiceSession{ID: sessionA, SubjectID: subjectA, CSRF: "x", Created: now, LastSeen: now}); err != nil {
		t.Fatal(err)
	}
	plain := NewAuthenticator(NewPrincipalCache(st), slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	gateway := plain.ForGateway(secret)

	const (
		access   = "/personaldata.v1.PersonalDataService/AccessSubject"
		stream   = "/personaldata.v1.PersonalDataService/StreamSubjectAccess"
		withdraw = "/personaldata.v1.ConsentService/WithdrawConsent"
	)
	// call runs a unary call through both interceptors, as the server
	// chains them, and returns the refusal's code (OK when the handler ran).
	call := func(a *Authenticator, md metadata.MD, method string, req any) codes.Code {
		t.Helper()
		ctx := metadata.NewIncomingContext(ctx, md)
		info := &grpc.UnaryServerInfo{FullMethod: method}
		ran := false
		_, err := a.Unary(ctx, req, info, func(ctx context.Context, req any) (any, error) {
			return a.AuthorizeUnary(ctx, req, info, func(context.Context, any) (any, error) {
				ran = true
				return nil, nil
			})
		})
		if err == nil && !ran {
			t.Fatalf("%s: no error and the handler did not run", method)
		}
		return status.Code(err)
	}
	md := func(subject, session string) metadata.MD {
		return metadata.Pairs(GatewaySecretKey, secret, SelfServiceSubjectKey, subject, SelfServiceSessionKey, session)
	}
	asA := md(subjectA, sessionA)

	// A's own record, by each of the three RPCs.
	if c := call(gateway, asA, access, &pdv1.AccessSubjectRequest{SubjectId: subjectA}); c != codes.OK {
		t.Fatalf("A's own access: %v, want OK", c)
	}
	if c := call(gateway, asA, withdraw, &pdv1.WithdrawConsentRequest{SubjectId: subjectA, ConsentId: "c1", Channel: pdv1.Channel_CHANNEL_SELF_SERVICE}); c != codes.OK {
		t.Fatalf("A's own consent: %v, want OK", c)
	}

	// Requests that name B, or no one, with A's session.
	for name, tc := range map[string]struct {
		method string
		req    any
	}{
		"access B":                 {access, &pdv1.AccessSubjectRequest{SubjectId: subjectB}},
		"access no subject":        {access, &pdv1.AccessSubjectRequest{}},
		"access A with case":       {access, &pdv1.AccessSubjectRequest{SubjectId: "SUBJECT-A"}},
		"withdraw B":               {withdraw, &pdv1.WithdrawConsentRequest{SubjectId: subjectB, ConsentId: "c1"}},
		"withdraw none":            {withdraw, &pdv1.WithdrawConsentRequest{ConsentId: "c1"}},
		"withdraw as if by e-mail": {withdraw, &pdv1.WithdrawConsentRequest{SubjectId: subjectA, ConsentId: "c1", Channel: pdv1.Channel_CHANNEL_EMAIL}},
		"rectify B":                {"/personaldata.v1.PersonalDataService/RectifySubject", &pdv1.RectifySubjectRequest{SubjectId: subjectB, Channel: pdv1.Channel_CHANNEL_SELF_SERVICE}},
		"new e-mail of B":          {"/personaldata.v1.PersonalDataService/StartContactChange", &pdv1.StartContactChangeRequest{SubjectId: subjectB, Channel: pdv1.Channel_CHANNEL_SELF_SERVICE}},
		"confirm for B":            {"/personaldata.v1.PersonalDataService/ConfirmContactChange", &pdv1.ConfirmContactChangeRequest{SubjectId: subjectB, Channel: pdv1.Channel_CHANNEL_SELF_SERVICE}},
		"rights request for B": {pdv1.RightsRequestService_OpenOwnRightsRequest_FullMethodName,
			&pdv1.OpenOwnRightsRequestRequest{SubjectId: subjectB, Channel: pdv1.Channel_CHANNEL_SELF_SERVICE}},
		"rights request by e-mail": {pdv1.RightsRequestService_OpenOwnRightsRequest_FullMethodName,
			&pdv1.OpenOwnRightsRequestRequest{SubjectId: subjectA, Channel: pdv1.Channel_CHANNEL_EMAIL}},
		"requests of B":          {pdv1.RightsRequestService_ListOwnRightsRequests_FullMethodName, &pdv1.ListOwnRightsRequestsRequest{SubjectId: subjectB}},
		"controllers of B":       {pdv1.RightsRequestService_ListOwnControllers_FullMethodName, &pdv1.ListOwnControllersRequest{SubjectId: subjectB}},
		"letter of B":            {pdv1.RightsRequestService_GetOwnAccessLetter_FullMethodName, &pdv1.GetOwnAccessLetterRequest{SubjectId: subjectB}},
		"staff's list about A":   {pdv1.RightsRequestService_ListRightsRequests_FullMethodName, &pdv1.ListRightsRequestsRequest{SubjectId: subjectA}},
		"not for a data subject": {"/personaldata.v1.PersonalDataService/EraseSubject", &pdv1.EraseSubjectRequest{SubjectId: subjectA, Channel: pdv1.Channel_CHANNEL_SELF_SERVICE}},
		"not a message":          {access, "subject-a"},
		"no subject_id":          {access, &pdv1.ListOutboxMessagesRequest{}},
	} {
		if c := call(gateway, asA, tc.method, tc.req); c != codes.PermissionDenied {
			t.Errorf("%s: %v, want PermissionDenied", name, c)
		}
	}

	// The forwarded subject must be the session's: B with A's session, an
	// unknown session, two subjects, or none.
	for name, m := range map[string]metadata.MD{
		"B with A's session": md(subjectB, sessionA),
		"unknown session":    md(subjectA, "no-such-session"),
		"no session":         metadata.Pairs(GatewaySecretKey, secret, SelfServiceSubjectKey, subjectA),
		"two subjects":       metadata.Join(asA, metadata.Pairs(SelfServiceSubjectKey, subjectB)),
		"wrong secret":       metadata.Pairs(GatewaySecretKey, "guess", SelfServiceSubjectKey, subjectA, SelfServiceSessionKey, sessionA),
		"with a bearer":      metadata.Join(asA, metadata.Pairs("authorization", "Bearer x")),
	} {
		for _, req := range []any{&pdv1.AccessSubjectRequest{SubjectId: subjectA}, &pdv1.AccessSubjectRequest{SubjectId: subjectB}} {
			if c := call(gateway, m, access, req); c != codes.Unauthenticated {
				t.Errorf("%s: %v, want Unauthenticated", name, c)
			}
		}
	}
	// Outside the process (no gateway secret configured), the headers are
	// not believed at all.
	if c := call(plain, asA, access, &pdv1.AccessSubjectRequest{SubjectId: subjectA}); c != codes.Unauthenticated {
		t.Errorf("A's headers on the external listener: %v, want Unauthenticated", c)
	}

	// Every other RPC of the API is refused, even about A.
	others := 0
	protoregistry.GlobalFiles.RangeFilesByPackage("personaldata.v1", func(f protoreflect.FileDescriptor) bool {
		for i := range f.Services().Len() {
			s := f.Services().Get(i)
			for j := range s.Methods().Len() {
				m := s.Methods().Get(j)
				method := "/" + string(s.FullName()) + "/" + string(m.Name())
				// The person's own requests, controllers and letter: no channel
				// to refuse them by, allowed about A (refused about B above).
				own := method == pdv1.RightsRequestService_ListOwnRightsRequests_FullMethodName ||
					method == pdv1.RightsRequestService_ListOwnControllers_FullMethodName ||
					method == pdv1.RightsRequestService_GetOwnAccessLetter_FullMethodName
				if method == access || method == stream || method == withdraw || own {
					continue
				}
				others++
				req := dynamicRequest(m, subjectA)
				if c := call(gateway, asA, method, req); c != codes.PermissionDenied {
					t.Errorf("%s about A: %v, want PermissionDenied", method, c)
				}
			}
		}
		return true
	})
	if others < 20 {
		t.Fatalf("only %d other RPCs found", others)
	}

	// The stream: every message received is checked.
	cctx := NewContext(ctx, &Caller{Principal: &store.Principal{ID: subjectA, Kind: DataSubjectKind}, Method: MethodSelfService})
	for req, want := range map[*pdv1.StreamSubjectAccessRequest]codes.Code{
		{SubjectId: subjectA}: codes.OK,
		{SubjectId: subjectB}: codes.PermissionDenied,
		{}:                    codes.PermissionDenied,
	} {
		var got codes.Code
		err := gateway.AuthorizeStream(nil, &fakeStream{ctx: cctx, msg: req}, &grpc.StreamServerInfo{FullMethod: stream, IsServerStream: true},
			func(_ any, ss grpc.ServerStream) error {
				return ss.RecvMsg(&pdv1.StreamSubjectAccessRequest{})
			})
		got = status.Code(err)
		if got != want {
			t.Errorf("stream naming %q: %v, want %v", req.GetSubjectId(), got, want)
		}
	}
}

// dynamicRequest is an empty request of m, with subject_id set where it has one.
func dynamicRequest(m protoreflect.MethodDescriptor, subject string) any {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(m.Input().FullName())
	if err != nil {
		return nil
	}
	msg := mt.New()
	if f := m.Input().Fields().ByName("subject_id"); f != nil && f.Kind() == protoreflect.StringKind {
		msg.Set(f, protoreflect.ValueOfString(subject))
	}
	return msg.Interface()
}

// fakeStream receives one message.
type fakeStream struct {
	grpc.ServerStream
	ctx context.Context
	msg *pdv1.StreamSubjectAccessRequest
}

func (s *fakeStream) Context() context.Context { return s.ctx }
func (s *fakeStream) RecvMsg(m any) error {
	m.(*pdv1.StreamSubjectAccessRequest).SubjectId = s.msg.GetSubjectId()
	return nil
}
