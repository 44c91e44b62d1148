package requests

import (
	"bytes"
	"context"
	"slices"

	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/auth"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/fault"
	"github.com/example/personaldata/service/rules"
	"github.com/example/personaldata/service/validate"
	"github.com/example/personaldata/store"
)

// A data subject's own rights requests, made on their own page
// (cmd/personaldatad/selfservice). They are RPCs of their own rather than
// OpenRightsRequest confined: a data subject gives no claimed identity, no
// controller queue, no time of receipt and no reply address (all of them
// follow from the sign-in), holds no support purpose, and must never see
// another's request; the record made is the staff path's all the same
// (due date, steps, messages, audit), opened verified by the sign-in.

// ownKinds are what a person asks for on their own page; the rest is done
// there at once (corrections, the marketing objection, consent withdrawal)
// or is the export and the letter.
var ownKinds = []pdv1.RightsRequestKind{
	pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_RESTRICTION,
	pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_OBJECTION,
	pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ERASURE,
}

// Reasons of the refusals of a data subject's own requests.
const (
	reasonSelfServiceOnly = "SELF_SERVICE_ONLY"
	reasonAlreadyOpen     = "REQUEST_ALREADY_OPEN"
	reasonSubjectErased   = "SUBJECT_ERASED"
)

// selfReference is the reference of what a person does on their own page.
const selfReference = "self-service"

// dataSubject is the caller of an own-request RPC and the subject it is
// confined to: only a data subject on their own page.
func (s *RightsRequests) dataSubject(ctx context.Context) (*auth.Caller, string, error) {
	c, err := s.Caller(ctx)
	if err != nil {
		return nil, "", err
	}
	subject := c.SelfServiceSubject()
	if subject == "" {
		return nil, "", fault.PermissionDenied(reasonSelfServiceOnly, nil, "only a data subject on their own page may call this")
	}
	return c, subject, nil
}

// ownSubject is the subject of a data subject's read of their own, named
// in the request as subjectID.
func (s *RightsRequests) ownSubject(ctx context.Context, subjectID string) (string, error) {
	_, subject, err := s.dataSubject(ctx)
	if err != nil {
		return "", err
	}
	var v validate.Violations
	v.SubjectID(subjectID)
	return subject, v.Err()
}

// signInVerification is the verification method a sign-in stands for.
func signInVerification(signIn string) pdv1.VerificationMethod {
	if signIn == store.SignInOIDC {
		return pdv1.VerificationMethod_VERIFICATION_METHOD_OIDC
	}
	return pdv1.VerificationMethod_VERIFICATION_METHOD_CODE
}

// OpenOwnRightsRequest opens a data subject's own request, verified by
// their sign-in, and forwards it at once when it is about a customer's data.
func (s *RightsRequests) OpenOwnRightsRequest(ctx context.Context, req *pdv1.OpenOwnRightsRequestRequest) (*pdv1.OpenOwnRightsRequestResponse, error) {
	now := s.Now()
	c, subject, err := s.dataSubject(ctx)
	if err != nil {
		return nil, err
	}
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	kind := v.Enum("kind", req.GetKind())
	if kind != "" && !slices.Contains(ownKinds, req.GetKind()) {
		v.Add("kind", "must be RESTRICTION, OBJECTION or ERASURE: the other rights are used on the page at once")
	}
	channel := v.Channel(req.GetChannel(), true)
	words := v.Text("text", req.GetText(), maxWordsLen, false, true)
	customer := req.GetControllerId()
	if customer == rules.CompanyController {
		customer = ""
	} else if customer != "" {
		v.Controller(customer)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	sub, err := s.GetSubject(ctx, "open own rights request", subject)
	if sub == nil {
		return nil, err
	}
	if sub.Erasure != nil {
		return nil, requestRefused(reasonSubjectErased, "the record was erased: there is nothing left to ask about")
	}
	if customer != "" {
		held, err := s.ownControllers(ctx, sub)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(held, customer) {
			return nil, status.Error(codes.NotFound, "no data about the subject is held for this customer")
		}
	}
	// The key is the person's own: two people's keys never meet.
	id := s.DerivedID("rights_request", rules.CompanyController, "self."+subject+"."+key)
	fp := s.Fingerprint(req)
	if customer == "" {
		open, err := s.Store.RightsRequestsOf(ctx, rules.CompanyController, "", subject, openStates)
		if err != nil {
			return nil, s.Internal(ctx, "open own rights request", err)
		}
		for _, o := range open {
			if o.Kind == kind && o.ID != id {
				return nil, requestRefused(reasonAlreadyOpen, "a request of this kind is open already; its state and due date are on the page")
			}
		}
	}
	text := store.RequestText{Words: words, ContactEmail: sub.Person.Email, ContactPhone: sub.Person.Phone}
	if sub.Person.IdentityNumber != "" {
		text.IdentityNumber = sub.Person.IdentityNumber
	} else {
		text.Email = sub.Person.Email
	}
	dueDay, dueAt := dueDate(now, 0)
	r := &store.RightsRequest{
		ID: id, Version: 1, Controller: rules.CompanyController, Kind: kind, Channel: channel,
		ReceivedAt: now.UnixNano(), DueDate: dueDay, DueAt: dueAt.UnixNano(),
		SubjectID: subject, Reference: selfReference, Text: text,
		// The sign-in verified who is asking: the method is on record.
		Verification: &store.Verification{Method: signInVerification(c.SignIn).String(), At: now.UnixNano(), By: c.ID(), Reference: "sign-in to the own page"},
		State:        pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_VERIFIED.String(),
		Ops:          []store.Op{{Key: core.OpKey(key), Fingerprint: fp, Result: 1, At: now.UnixNano()}},
		CreatedAt:    now.UnixNano(), UpdatedAt: now.UnixNano(),
	}
	addStep(r, "opened", c, now, pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_RECEIPT)
	addStep(r, "verified", c, now, 0)
	if customer != "" {
		forward(r, customer, selfReference, c, now)
		core.Note(ctx, audit.Touch{Tenant: customer, Fields: requestFields})
	}
	core.Note(ctx, requestTouch(r))
	if r, err = s.insertNewRequest(ctx, "open own rights request", r, key, fp); err != nil {
		return nil, err
	}
	return &pdv1.OpenOwnRightsRequestResponse{Request: ownRequestToProto(r)}, nil
}

// ListOwnRightsRequests lists the requests about the data subject, in the
// company's queue (those forwarded to a customer stay there too).
func (s *RightsRequests) ListOwnRightsRequests(ctx context.Context, req *pdv1.ListOwnRightsRequestsRequest) (*pdv1.ListOwnRightsRequestsResponse, error) {
	subject, err := s.ownSubject(ctx, req.GetSubjectId())
	if err != nil {
		return nil, err
	}
	all, err := s.Store.RightsRequestsOf(ctx, rules.CompanyController, "", subject, nil)
	if err != nil {
		return nil, s.Internal(ctx, "list own rights requests", err)
	}
	out := &pdv1.ListOwnRightsRequestsResponse{}
	for _, r := range all {
		core.Note(ctx, requestTouch(r))
		out.Requests = append(out.Requests, ownRequestToProto(r))
	}
	return out, nil
}

// ownRequestToProto is what the person sees of a request: no staff names,
// no notes.
func ownRequestToProto(r *store.RightsRequest) *pdv1.OwnRightsRequest {
	out := &pdv1.OwnRightsRequest{
		RequestId:   r.ID,
		Kind:        core.EnumValue[pdv1.RightsRequestKind](pdv1.RightsRequestKind_value, r.Kind),
		State:       core.EnumValue[pdv1.RightsRequestState](pdv1.RightsRequestState_value, r.State),
		ReceiveTime: core.Timestamp(r.ReceivedAt),
		DueDate:     r.DueDate,
		ForwardedTo: r.ForwardedTo,
		Extended:    r.Extension != nil,
	}
	if r.Verification != nil {
		out.VerificationMethod = core.EnumValue[pdv1.VerificationMethod](pdv1.VerificationMethod_value, r.Verification.Method)
	}
	return out
}

// ListOwnControllers lists the customers that hold data about the subject.
func (s *RightsRequests) ListOwnControllers(ctx context.Context, req *pdv1.ListOwnControllersRequest) (*pdv1.ListOwnControllersResponse, error) {
	subject, err := s.ownSubject(ctx, req.GetSubjectId())
	if err != nil {
		return nil, err
	}
	sub, err := s.GetSubject(ctx, "list own controllers", subject)
	if sub == nil {
		return nil, err
	}
	if sub.Erasure != nil {
		return &pdv1.ListOwnControllersResponse{}, nil
	}
	held, err := s.ownControllers(ctx, sub)
	if err != nil {
		return nil, err
	}
	return &pdv1.ListOwnControllersResponse{ControllerIds: held}, nil
}

// ownControllers are the customers, of every processor agreement on
// record, that hold a live record of the same person as sub: the same
// personnummer or e-mail address, by their blind indexes.
func (s *RightsRequests) ownControllers(ctx context.Context, sub *store.Subject) ([]string, error) {
	var held []string
	for after := ""; ; {
		page, err := s.Store.AgreementsAfter(ctx, after, 100)
		if err != nil {
			return nil, s.Internal(ctx, "own controllers", err)
		}
		for _, a := range page {
			after = a.ID
			for _, k := range s.LookupKeys(a.ID, sub.Person) {
				if (k.Field == rules.FieldIdentityNumber && sub.Person.IdentityNumber == "") || (k.Field == rules.FieldEmail && sub.Person.Email == "") {
					continue
				}
				found, err := s.FindByKey(ctx, k.ID)
				if err != nil {
					return nil, s.Internal(ctx, "own controllers", err)
				}
				if found != nil && found.Erasure == nil && found.Controller == a.ID {
					core.Note(ctx, audit.Touch{SubjectID: found.ID, Tenant: a.ID, Fields: []string{k.Field}})
					held = append(held, a.ID)
					break
				}
			}
		}
		if len(page) < 100 {
			return held, nil
		}
	}
}

// GetOwnAccessLetter writes the letter of an access reply about the data
// held now, as GetRightsRequestLetter does for an answered request.
func (s *RightsRequests) GetOwnAccessLetter(ctx context.Context, req *pdv1.GetOwnAccessLetterRequest) (*httpbody.HttpBody, error) {
	subject, err := s.ownSubject(ctx, req.GetSubjectId())
	if err != nil {
		return nil, err
	}
	var v validate.Violations
	lang := validLetterLanguage(&v, req.GetLanguage())
	if err := v.Err(); err != nil {
		return nil, err
	}
	// As if answered now: no case number, the data as it is.
	r := &store.RightsRequest{Controller: rules.CompanyController, SubjectID: subject, Kind: pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS.String()}
	reply, err := s.reply(ctx, r)
	if err != nil {
		return nil, err
	}
	return s.letter(ctx, r, reply, lang)
}

// letter is the HTML letter of reply to r in lang.
func (s *RightsRequests) letter(ctx context.Context, r *store.RightsRequest, reply *pdv1.GetRightsRequestReplyResponse, lang string) (*httpbody.HttpBody, error) {
	var b bytes.Buffer
	data := letterData(r, reply, lang)
	data.Sender = s.Sender.View()
	if err := letterTemplate.Execute(&b, data); err != nil {
		return nil, s.Internal(ctx, "letter", err)
	}
	return &httpbody.HttpBody{ContentType: "text/html; charset=utf-8", Data: b.Bytes()}, nil
}

// validLetterLanguage checks a letter's language: "sv" when empty, or "en".
func validLetterLanguage(v *validate.Violations, lang string) string {
	switch lang {
	case "":
		return "sv"
	case "sv", "en":
		return lang
	}
	v.Add("language", `must be "sv" or "en"`)
	return ""
}
