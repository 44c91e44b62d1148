package auth

import (
	"context"
	"errors"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store"
)

// The data subjects' own page (cmd/personaldatad/selfservice) calls the
// service in this process, with the gateway's secret, for the person
// signed in: it names the subject and the hash of the session's id, and
// the session must still exist, for that subject, on every call.
const (
	SelfServiceSubjectKey = "x-pd-self-service-subject"
	SelfServiceSessionKey = "x-pd-self-service-session"
	// MethodSelfService is the Caller.Method of a data subject signed in
	// to their own page.
	MethodSelfService = "self_service"
	// DataSubjectKind is the Principal.Kind of such a caller: not a
	// principal of the store, and no grant can give it more.
	DataSubjectKind = "PRINCIPAL_KIND_DATA_SUBJECT"
)

// Self-service session lifetimes: idle, and at most.
const (
	SelfServiceIdle    = 15 * time.Minute
	SelfServiceMaxLife = time.Hour
)

// selfServiceRPCs is all a data subject may call, and only about themselves.
var selfServiceRPCs = []string{
	"/personaldata.v1.PersonalDataService/AccessSubject",
	"/personaldata.v1.PersonalDataService/StreamSubjectAccess",
	"/personaldata.v1.ConsentService/WithdrawConsent",
	// Corrections (Art. 16): the name and postal address directly (the
	// handler refuses any other field of a data subject), the e-mail and
	// phone only with a code sent to the new one.
	"/personaldata.v1.PersonalDataService/RectifySubject",
	"/personaldata.v1.PersonalDataService/StartContactChange",
	"/personaldata.v1.PersonalDataService/ConfirmContactChange",
	// Restriction, objection and erasure as rights requests, verified by
	// the sign-in; the person's own requests; the letter of what is held.
	"/personaldata.v1.RightsRequestService/OpenOwnRightsRequest",
	"/personaldata.v1.RightsRequestService/ListOwnRightsRequests",
	"/personaldata.v1.RightsRequestService/ListOwnControllers",
	"/personaldata.v1.RightsRequestService/GetOwnAccessLetter",
}

// SelfServiceSubject is the subject a self-service caller is confined to;
// "" for any other caller.
func (c *Caller) SelfServiceSubject() string {
	if c.Method != MethodSelfService {
		return ""
	}
	return c.Principal.ID
}

// SelfServiceSessionLive says whether session s is alive at now.
func SelfServiceSessionLive(s *store.SelfServiceSession, now time.Time) bool {
	n := now.UnixNano()
	return n < s.LastSeen+int64(SelfServiceIdle) && n < s.Created+int64(SelfServiceMaxLife)
}

// selfServiceCaller is the data subject of a self-service session, as the
// page in this process forwards it with the gateway's secret.
func (a *Authenticator) selfServiceCaller(ctx context.Context, md metadata.MD) (*Caller, string, string, error) {
	subjects, sessions := md.Get(SelfServiceSubjectKey), md.Get(SelfServiceSessionKey)
	if !hashMatches(first(md, GatewaySecretKey), a.gatewaySecret) || len(subjects) != 1 || len(sessions) != 1 || subjects[0] == "" || sessions[0] == "" ||
		len(md.Get("authorization")) > 0 || len(md.Get(ConsolePrincipalKey)) > 0 {
		return nil, "", "malformed", nil
	}
	sess, err := a.principals.store.GetSelfServiceSession(ctx, sessions[0])
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, "", "bad_token", nil
	case err != nil:
		return nil, "", "", err
	}
	// Its lifetimes are the page's to keep (it expires and deletes a session
	// on its clock before it calls); here it must exist and name the subject.
	if sess.SubjectID != subjects[0] {
		return nil, "", "bad_token", nil
	}
	p := &store.Principal{ID: sess.SubjectID, Kind: DataSubjectKind, TenantIDs: []string{"company"}, RPCs: slices.Clone(selfServiceRPCs)}
	signIn := sess.SignIn
	if signIn == "" {
		signIn = store.SignInCode
	}
	return &Caller{Principal: p, Method: MethodSelfService, SignIn: signIn}, "", "", nil
}

// confine refuses a self-service caller's request whose subject_id is
// missing or another subject's.
func confine(c *Caller, req any) error {
	subject := c.SelfServiceSubject()
	if subject == "" {
		return nil
	}
	m, ok := req.(proto.Message)
	if !ok {
		return refusal(codes.PermissionDenied, "SUBJECT_NOT_PERMITTED", nil, "a data subject may reach only their own record")
	}
	f := m.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name("subject_id"))
	if f == nil || f.Kind() != protoreflect.StringKind || m.ProtoReflect().Get(f).String() != subject {
		return refusal(codes.PermissionDenied, "SUBJECT_NOT_PERMITTED", nil, "a data subject may reach only their own record")
	}
	// What a data subject does is recorded as done on their page, never
	// as if it came by another channel.
	if f := m.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name("channel")); f != nil && f.Kind() == protoreflect.EnumKind &&
		f.Enum().FullName() == "personaldata.v1.Channel" && m.ProtoReflect().Get(f).Enum() != protoreflect.EnumNumber(pdv1.Channel_CHANNEL_SELF_SERVICE) {
		return refusal(codes.PermissionDenied, "SELF_SERVICE_CHANNEL", nil, "a data subject's request is made on their own page: channel must be CHANNEL_SELF_SERVICE")
	}
	return nil
}

// confinedStream checks every message received from a self-service caller.
type confinedStream struct {
	grpc.ServerStream
	c *Caller
}

func (s *confinedStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	return confine(s.c, m)
}
