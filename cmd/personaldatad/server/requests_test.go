package server_test

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"go.mongodb.org/mongo-driver/v2/bson"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

const (
	rrService     = "personaldata.v1.RightsRequestService/"
	openRR        = rrService + "OpenRightsRequest"
	getRR         = rrService + "GetRightsRequest"
	listRR        = rrService + "ListRightsRequests"
	sendCodeRR    = rrService + "SendVerificationCode"
	confirmRR     = rrService + "ConfirmVerificationCode"
	attestRR      = rrService + "AttestIdentity"
	decideRR      = rrService + "DecideRightsRequest"
	extendRR      = rrService + "ExtendRightsRequest"
	forwardRR     = rrService + "ForwardRightsRequest"
	fulfilRR      = rrService + "FulfilRightsRequest"
	replyRR       = rrService + "GetRightsRequestReply"
	listOutbox    = "personaldata.v1.RequesterOutboxService/ListOutboxMessages"
	ackOutbox     = "personaldata.v1.RequesterOutboxService/AcknowledgeOutboxMessage"
	letterPath    = "/v1/rightsRequests/%s/letter"
	mailerID      = "mailer-1"
	codeInMessage = `(\d{4}) (\d{4})`
)

// openReq is a request of kind from the person of subject n, by e-mail.
func openReq(key string, kind pdv1.RightsRequestKind, n int) *pdv1.OpenRightsRequestRequest {
	return &pdv1.OpenRightsRequestRequest{
		IdempotencyKey:  key,
		ControllerId:    "company",
		Kind:            kind,
		Channel:         pdv1.Channel_CHANNEL_EMAIL,
		ClaimedIdentity: &pdv1.ClaimedIdentity{Key: &pdv1.ClaimedIdentity_IdentityNumber{IdentityNumber: testPerson(n).GetIdentityNumber()}},
		Text:            "Jag vill veta vad ni har om mig.",
		Reference:       "ticket-" + key,
	}
}

func openRequest(t *testing.T, c caller, req *pdv1.OpenRightsRequestRequest) *pdv1.RightsRequest {
	t.Helper()
	return call(t, c, openRR, req, &pdv1.OpenRightsRequestResponse{}).GetRequest()
}

// mailer is c's transport as the company's mailer.
func (e *env) mailer(t *testing.T, c caller) caller {
	t.Helper()
	tok := e.principal(t, mailerID+"-"+c.name()+fmt.Sprint(time.Now().UnixNano()), pdv1.PrincipalKind_PRINCIPAL_KIND_MAILER, []string{"company"}, nil)
	return e.as(c, tok)
}

// outbox lists every message waiting, as the mailer.
func outbox(t *testing.T, mailer caller) []*pdv1.OutboxMessage {
	t.Helper()
	var out []*pdv1.OutboxMessage
	for token := ""; ; {
		res := call(t, mailer, listOutbox, &pdv1.ListOutboxMessagesRequest{PageToken: token, PageSize: 2}, &pdv1.ListOutboxMessagesResponse{})
		out = append(out, res.GetMessages()...)
		if token = res.GetNextPageToken(); token == "" {
			return out
		}
	}
}

// takeMessage returns the one message of kind about request id, and
// acknowledges it as the mailer does once it is sent.
func takeMessage(t *testing.T, mailer caller, id string, kind pdv1.OutboxMessageKind) *pdv1.OutboxMessage {
	t.Helper()
	var found []*pdv1.OutboxMessage
	for _, m := range outbox(t, mailer) {
		if m.GetRequestId() == id && m.GetKind() == kind {
			found = append(found, m)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %v messages for request %s in the outbox, want 1", len(found), kind, id)
	}
	call(t, mailer, ackOutbox, &pdv1.AcknowledgeOutboxMessageRequest{MessageId: found[0].GetMessageId()}, &pdv1.AcknowledgeOutboxMessageResponse{})
	return found[0]
}

// codeOf is the code in a code message.
func codeOf(t *testing.T, m *pdv1.OutboxMessage) string {
	t.Helper()
	g := regexp.MustCompile(codeInMessage).FindStringSubmatch(m.GetBody())
	if g == nil {
		t.Fatalf("no code in the message %q", m.GetBody())
	}
	return g[1] + g[2]
}

func attest(t *testing.T, c caller, id string) *pdv1.RightsRequest {
	t.Helper()
	return call(t, c, attestRR, &pdv1.AttestIdentityRequest{IdempotencyKey: "attest-" + id, RequestId: id,
		Method: pdv1.VerificationMethod_VERIFICATION_METHOD_BANKID, Reference: "bankid-order-1"}, &pdv1.AttestIdentityResponse{}).GetRequest()
}

func grant(t *testing.T, c caller, id string) *pdv1.RightsRequest {
	t.Helper()
	return call(t, c, decideRR, &pdv1.DecideRightsRequestRequest{IdempotencyKey: "decide-" + id, RequestId: id,
		Outcome: pdv1.DecisionOutcome_DECISION_OUTCOME_GRANT, Reason: pdv1.DecisionReason_DECISION_REASON_RIGHT_APPLIES}, &pdv1.DecideRightsRequestResponse{}).GetRequest()
}

func fulfil(t *testing.T, c caller, req *pdv1.FulfilRightsRequestRequest) *pdv1.RightsRequest {
	t.Helper()
	return call(t, c, fulfilRR, req, &pdv1.FulfilRightsRequestResponse{}).GetRequest()
}

// letter fetches the reply letter over REST.
func letter(t *testing.T, e *env, id, lang string) (string, http.Header) {
	t.Helper()
	path := fmt.Sprintf(letterPath, id)
	if lang != "" {
		path += "?language=" + lang
	}
	res, body := e.restRaw(t, "GET", path, "", "Bearer "+e.token)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET letter: HTTP %d: %s", res.StatusCode, body)
	}
	return string(body), res.Header
}

// An access request from arrival to answer: receipt, an unverified
// request refused, a code to the e-mail on file, a wrong code, the right
// one, the grant, the fulfilment, the reply, and every step on the trail.
func TestRightsRequestAccessFromArrivalToAnswer(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		sub := create(t, c, 1)
		other := create(t, c, 2)
		call(t, e.domreg(t, c), "personaldata.v1.DisclosureService/Disclose",
			discloseReq(sub, "disclose-1", "iis.se", pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONTRACT, "order-1", pdv1.DataCategory_DATA_CATEGORY_IDENTIFICATION), &pdv1.DiscloseResponse{})
		mailer := e.mailer(t, c)
		req := openReq("rr-access-1", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, 1)
		req.ReplyEmail = "someone.else@example.test"
		r := openRequest(t, c, req)
		if r.GetSubjectId() != sub.GetSubjectId() || r.GetState() != pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_RECEIVED {
			t.Fatalf("opened: subject %q state %v, want %s RECEIVED", r.GetSubjectId(), r.GetState(), sub.GetSubjectId())
		}
		// The harness clock is 2026-11-27 10:00 UTC.
		if r.GetDueDate() != "2026-12-27" || !r.GetDueTime().AsTime().Equal(time.Date(2026, 12, 27, 22, 59, 59, 999999999, time.UTC)) {
			t.Errorf("due %s at %v, want 2026-12-27 at the end of the day in Sweden", r.GetDueDate(), r.GetDueTime().AsTime())
		}
		if len(r.GetMissing()) == 0 || !strings.Contains(r.GetMissing()[0], "not verified") {
			t.Errorf("missing %q, want the identity first", r.GetMissing())
		}
		// A retry answers the same request; the same key with another request is refused.
		if again := openRequest(t, c, req); again.GetRequestId() != r.GetRequestId() {
			t.Errorf("retry opened %s, want %s", again.GetRequestId(), r.GetRequestId())
		}
		// What the request holds of the person is sealed at rest, the
		// waiting message too.
		raw := e.rawDump(t)
		for _, plain := range []string{req.GetText(), req.GetReplyEmail(), sub.GetPerson().GetIdentityNumber(), sub.GetPerson().GetEmail(), "Ärende"} {
			if strings.Contains(raw, plain) {
				t.Errorf("the store holds %q as it is", plain)
			}
		}
		receipt := takeMessage(t, mailer, r.GetRequestId(), pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_RECEIPT)
		if receipt.GetTo() != sub.GetPerson().GetEmail() || !strings.Contains(receipt.GetBody(), "2026-12-27") {
			t.Errorf("receipt to %q saying %q, want to the e-mail on file with the due date", receipt.GetTo(), receipt.GetBody())
		}

		// Nothing is carried out for an unverified requester.
		err := callErr(t, c, fulfilRR, &pdv1.FulfilRightsRequestRequest{IdempotencyKey: "fulfil-early", RequestId: r.GetRequestId(),
			Action: &pdv1.FulfilRightsRequestRequest_Access{Access: &pdv1.AccessAction{}}}, &pdv1.FulfilRightsRequestResponse{}, codes.FailedPrecondition)
		if !hasPrecondition(err, "IDENTITY_NOT_VERIFIED") {
			t.Errorf("fulfil unverified: %v, want IDENTITY_NOT_VERIFIED", err)
		}
		err = callErr(t, c, decideRR, &pdv1.DecideRightsRequestRequest{IdempotencyKey: "decide-early", RequestId: r.GetRequestId(),
			Outcome: pdv1.DecisionOutcome_DECISION_OUTCOME_GRANT, Reason: pdv1.DecisionReason_DECISION_REASON_RIGHT_APPLIES}, &pdv1.DecideRightsRequestResponse{}, codes.FailedPrecondition)
		if !hasPrecondition(err, "IDENTITY_NOT_VERIFIED") {
			t.Errorf("grant unverified: %v, want IDENTITY_NOT_VERIFIED", err)
		}

		// The code goes to the e-mail on file, not to the address in the request.
		call(t, c, sendCodeRR, &pdv1.SendVerificationCodeRequest{IdempotencyKey: "code-1", RequestId: r.GetRequestId()}, &pdv1.SendVerificationCodeResponse{})
		m := takeMessage(t, mailer, r.GetRequestId(), pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_VERIFICATION_CODE)
		if m.GetTo() != sub.GetPerson().GetEmail() || m.GetChannel() != pdv1.ContactChannel_CONTACT_CHANNEL_EMAIL {
			t.Fatalf("code sent to %q by %v, want the e-mail on file", m.GetTo(), m.GetChannel())
		}
		code := codeOf(t, m)
		wrong := fmt.Sprintf("%08d", (atoi(code)+1)%100000000)
		err = callErr(t, c, confirmRR, &pdv1.ConfirmVerificationCodeRequest{IdempotencyKey: "confirm-wrong", RequestId: r.GetRequestId(), Code: wrong}, &pdv1.ConfirmVerificationCodeResponse{}, codes.InvalidArgument)
		if f := badFields(err); len(f) != 1 || f[0] != "code" {
			t.Errorf("wrong code names %v, want [code]", f)
		}
		r = call(t, c, getRR, &pdv1.GetRightsRequestRequest{RequestId: r.GetRequestId()}, &pdv1.GetRightsRequestResponse{}).GetRequest()
		if r.GetCode().GetTriesLeft() != 4 || r.GetVerification() != nil {
			t.Errorf("after a wrong code: %d tries left, verification %v; want 4 and none", r.GetCode().GetTriesLeft(), r.GetVerification())
		}
		r = call(t, c, confirmRR, &pdv1.ConfirmVerificationCodeRequest{IdempotencyKey: "confirm-right", RequestId: r.GetRequestId(), Code: code}, &pdv1.ConfirmVerificationCodeResponse{}).GetRequest()
		if r.GetState() != pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_VERIFIED || r.GetVerification().GetMethod() != pdv1.VerificationMethod_VERIFICATION_METHOD_CODE ||
			r.GetVerification().GetVerifiedBy() != "tester" {
			t.Fatalf("after the code: %v verified %v", r.GetState(), r.GetVerification())
		}

		r = grant(t, c, r.GetRequestId())
		takeMessage(t, mailer, r.GetRequestId(), pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_DECISION)
		// The action must be the kind's.
		callErr(t, c, fulfilRR, &pdv1.FulfilRightsRequestRequest{IdempotencyKey: "fulfil-wrong", RequestId: r.GetRequestId(),
			Action: &pdv1.FulfilRightsRequestRequest_Erase{Erase: &pdv1.EraseAction{Ground: pdv1.ErasureGround_ERASURE_GROUND_NO_LEGAL_BASIS}}}, &pdv1.FulfilRightsRequestResponse{}, codes.InvalidArgument)
		// The reply is not there before the fulfilment.
		callErr(t, c, replyRR, &pdv1.GetRightsRequestReplyRequest{RequestId: r.GetRequestId()}, &pdv1.GetRightsRequestReplyResponse{}, codes.FailedPrecondition)
		r = fulfil(t, c, &pdv1.FulfilRightsRequestRequest{IdempotencyKey: "fulfil-1", RequestId: r.GetRequestId(),
			Action: &pdv1.FulfilRightsRequestRequest_Access{Access: &pdv1.AccessAction{}}})
		if r.GetState() != pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_FULFILLED || r.GetFulfilment().GetResult() == "" || len(r.GetMissing()) != 0 {
			t.Fatalf("fulfilled: %v %v missing %q", r.GetState(), r.GetFulfilment(), r.GetMissing())
		}
		ready := takeMessage(t, mailer, r.GetRequestId(), pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_REPLY_READY)
		if ready.GetTo() != sub.GetPerson().GetEmail() {
			t.Errorf("reply-ready message to %q", ready.GetTo())
		}
		if left := outbox(t, mailer); len(left) != 0 {
			t.Errorf("%d messages left after acknowledging every one", len(left))
		}
		if n := e.count(t, "outbox"); n != 0 {
			t.Errorf("%d acknowledged messages still stored", n)
		}

		reply := call(t, c, replyRR, &pdv1.GetRightsRequestReplyRequest{RequestId: r.GetRequestId()}, &pdv1.GetRightsRequestReplyResponse{})
		info := reply.GetInformation()
		if !reply.GetDataHeld() || reply.GetData().GetSubject().GetPerson().GetEmail() != sub.GetPerson().GetEmail() ||
			len(info.GetPurposes()) == 0 || info.GetRetention().GetPolicy() == "" || len(info.GetCategories()) == 0 ||
			len(info.GetRecipients()) != 1 || info.GetRecipients()[0] != "iis.se" || info.GetComplaint() == "" || len(info.GetRights()) < 5 {
			t.Errorf("reply: held %v, information %v", reply.GetDataHeld(), info)
		}

		// The letter has every Art. 15 heading and the data, and nothing of
		// anyone else or of the service's internals.
		html, h := letter(t, e, r.GetRequestId(), "")
		if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("letter Content-Type %q", ct)
		}
		for _, want := range []string{
			`lang="sv"`, "Ändamål och rättslig grund", "Kategorier av personuppgifter", "Mottagare", "Hur länge uppgifterna sparas",
			"Varifrån uppgifterna kommer", "Dina rättigheter", "Rätt att klaga", "Integritetsskyddsmyndigheten", "Automatiserat beslutsfattande",
			"Överföring till tredje land", "Dina uppgifter", "iis.se", "Fakturering av tjänsterna",
			sub.GetPerson().GetGivenName(), sub.GetPerson().GetFamilyName(), sub.GetPerson().GetEmail(), dashed(sub.GetPerson().GetIdentityNumber()),
			"Registrerad", // the change record, in words
		} {
			if !strings.Contains(html, want) {
				t.Errorf("the Swedish letter lacks %q", want)
			}
		}
		for _, never := range []string{
			other.GetPerson().GetGivenName(), other.GetPerson().GetEmail(), dashed(other.GetPerson().GetIdentityNumber()), other.GetPerson().GetIdentityNumber(),
			"CHANGE_KIND_", "DISCLOSURE_BASIS_", // enum names are not words
			"rr-access-1", "fingerprint", "identity_number.", e.token, "someone.else@example.test",
		} {
			if strings.Contains(html, never) {
				t.Errorf("the letter holds %q", never)
			}
		}
		// Over gRPC the letter is a google.api.HttpBody.
		body, err := pdv1.NewRightsRequestServiceClient(e.grpc).GetRightsRequestLetter(metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+e.token),
			&pdv1.GetRightsRequestLetterRequest{RequestId: r.GetRequestId(), Language: "sv"})
		if err != nil || !strings.HasPrefix(body.GetContentType(), "text/html") || string(body.GetData()) != html {
			t.Errorf("the letter over gRPC: %v, %q, same as over REST: %v", err, body.GetContentType(), string(body.GetData()) == html)
		}
		en, _ := letter(t, e, r.GetRequestId(), "en")
		for _, want := range []string{`lang="en"`, "Purposes and legal basis", "Right to complain", "Your data", sub.GetPerson().GetEmail()} {
			if !strings.Contains(en, want) {
				t.Errorf("the English letter lacks %q", want)
			}
		}
		res, _ := e.restRaw(t, "GET", fmt.Sprintf(letterPath, r.GetRequestId())+"?language=de", "", "Bearer "+e.token)
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("letter in German: HTTP %d, want 400", res.StatusCode)
		}

		// Every step is on the subject's trail, under the request's RPCs.
		trail := subjectTrail(t, e, c, sub.GetSubjectId())
		for _, rpc := range []string{openRR, sendCodeRR, confirmRR, decideRR, fulfilRR, replyRR} {
			if outcomes(trail, rpc)["OK"] == 0 {
				t.Errorf("no OK event of %s on the subject's trail", rpc)
			}
		}
		if got := outcomes(trail, confirmRR)["InvalidArgument"]; got != 1 {
			t.Errorf("%d refused code confirmations on the trail, want 1", got)
		}
	})
}

// dashed is a 12-digit identity number as it is written, with its dash.
func dashed(n string) string { return n[:8] + "-" + n[8:] }

func atoi(s string) int {
	n := 0
	for _, r := range s {
		n = n*10 + int(r-'0')
	}
	return n
}

// Each kind of request, from arrival to its effect on the subject.
func TestRightsRequestEachKind(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		billing := e.as(c, e.principal(t, "billing-"+c.name(), pdv1.PrincipalKind_PRINCIPAL_KIND_BILLING_SYSTEM, []string{"company"}, []pdv1.Purpose{pdv1.Purpose_PURPOSE_INVOICING}))
		carry := func(n int, kind pdv1.RightsRequestKind, req *pdv1.FulfilRightsRequestRequest) (*pdv1.Subject, *pdv1.RightsRequest) {
			t.Helper()
			sub := create(t, c, n)
			r := openRequest(t, c, openReq(fmt.Sprintf("rr-kind-%d", n), kind, n))
			attest(t, c, r.GetRequestId())
			grant(t, c, r.GetRequestId())
			req.IdempotencyKey, req.RequestId = "fulfil-"+r.GetRequestId(), r.GetRequestId()
			r = fulfil(t, c, req)
			if r.GetState() != pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_FULFILLED {
				t.Fatalf("%v: %v", kind, r.GetState())
			}
			// A retry of the fulfilment answers the same.
			if again := fulfil(t, c, req); again.GetFulfilment().GetFulfilTime().AsTime() != r.GetFulfilment().GetFulfilTime().AsTime() {
				t.Errorf("%v: a retried fulfilment acted again", kind)
			}
			return sub, r
		}

		// Rectification, through the field mask.
		sub, r := carry(11, pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_RECTIFICATION, &pdv1.FulfilRightsRequestRequest{Action: &pdv1.FulfilRightsRequestRequest_Rectify{
			Rectify: &pdv1.RectifyAction{Person: &pdv1.Person{FamilyName: "Rättadsson"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"family_name"}}}}})
		got := call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
		if got.GetSubject().GetPerson().GetFamilyName() != "Rättadsson" || r.GetFulfilment().GetSubjectVersion() != 2 {
			t.Errorf("rectified: %q at version %d", got.GetSubject().GetPerson().GetFamilyName(), r.GetFulfilment().GetSubjectVersion())
		}
		if ch := got.GetChanges()[len(got.GetChanges())-1]; ch.GetReference() != "ticket-rr-kind-11" || ch.GetChannel() != pdv1.Channel_CHANNEL_EMAIL {
			t.Errorf("the change record says %q by %v, want the request's reference and channel", ch.GetReference(), ch.GetChannel())
		}

		// Restriction: then the billing system's purpose view is refused.
		sub, _ = carry(12, pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_RESTRICTION, &pdv1.FulfilRightsRequestRequest{Action: &pdv1.FulfilRightsRequestRequest_Restrict{
			Restrict: &pdv1.RestrictAction{Ground: pdv1.RestrictionGround_RESTRICTION_GROUND_ACCURACY_CONTESTED}}})
		callErr(t, billing, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: sub.GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_INVOICING},
			&pdv1.GetSubjectForPurposeResponse{}, codes.FailedPrecondition)

		// Erasure: the subject is a tombstone, and the requester is still told.
		mailer := e.mailer(t, c)
		sub, r = carry(13, pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ERASURE, &pdv1.FulfilRightsRequestRequest{Action: &pdv1.FulfilRightsRequestRequest_Erase{
			Erase: &pdv1.EraseAction{Ground: pdv1.ErasureGround_ERASURE_GROUND_NO_LEGITIMATE_REASON}}})
		got = call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
		if got.GetSubject().GetState() != pdv1.SubjectState_SUBJECT_STATE_ERASED {
			t.Errorf("after the erasure request: %v", got.GetSubject().GetState())
		}
		if m := takeMessage(t, mailer, r.GetRequestId(), pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_REPLY_READY); m.GetTo() != sub.GetPerson().GetEmail() {
			t.Errorf("the erased requester's confirmation went to %q", m.GetTo())
		}

		// Objection to direct marketing: its consent is withdrawn, the purpose refused.
		sub = create(t, c, 14)
		call(t, c, "personaldata.v1.ConsentService/RecordConsent", consentReq(sub, "consent-14", pdv1.ConsentPurpose_CONSENT_PURPOSE_DIRECT_MARKETING, "", e.clock.Now().Add(-time.Hour)), &pdv1.RecordConsentResponse{})
		r = openRequest(t, c, openReq("rr-kind-14", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_DIRECT_MARKETING_OBJECTION, 14))
		attest(t, c, r.GetRequestId())
		grant(t, c, r.GetRequestId())
		fulfil(t, c, &pdv1.FulfilRightsRequestRequest{IdempotencyKey: "fulfil-14", RequestId: r.GetRequestId(),
			Action: &pdv1.FulfilRightsRequestRequest_StopDirectMarketing{StopDirectMarketing: &pdv1.StopDirectMarketingAction{}}})
		got = call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
		if len(got.GetConsents()) != 1 || got.GetConsents()[0].GetWithdrawTime() == nil {
			t.Errorf("after the objection: consents %v", got.GetConsents())
		}

		// Withdrawal of one consent.
		sub = create(t, c, 15)
		consent := call(t, c, "personaldata.v1.ConsentService/RecordConsent", consentReq(sub, "consent-15", pdv1.ConsentPurpose_CONSENT_PURPOSE_DISCLOSURE, "iis.se", e.clock.Now().Add(-time.Hour)), &pdv1.RecordConsentResponse{}).GetConsent()
		r = openRequest(t, c, openReq("rr-kind-15", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_CONSENT_WITHDRAWAL, 15))
		attest(t, c, r.GetRequestId())
		grant(t, c, r.GetRequestId())
		fulfil(t, c, &pdv1.FulfilRightsRequestRequest{IdempotencyKey: "fulfil-15", RequestId: r.GetRequestId(),
			Action: &pdv1.FulfilRightsRequestRequest_WithdrawConsent{WithdrawConsent: &pdv1.WithdrawConsentAction{ConsentId: consent.GetConsentId()}}})
		got = call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
		if got.GetConsents()[0].GetWithdrawTime() == nil {
			t.Errorf("consent not withdrawn: %v", got.GetConsents())
		}

		// Portability: the machine-readable reply holds the data.
		sub, r = carry(16, pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_PORTABILITY, &pdv1.FulfilRightsRequestRequest{Action: &pdv1.FulfilRightsRequestRequest_Access{Access: &pdv1.AccessAction{}}})
		reply := call(t, c, replyRR, &pdv1.GetRightsRequestReplyRequest{RequestId: r.GetRequestId()}, &pdv1.GetRightsRequestReplyResponse{})
		if reply.GetData().GetSubject().GetPerson().GetIdentityNumber() != sub.GetPerson().GetIdentityNumber() {
			t.Errorf("portability reply: %v", reply.GetData().GetSubject())
		}

		// A request from someone nothing is held about: answered as such.
		req := openReq("rr-nobody", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, 99)
		req.ReplyEmail = "nobody@example.test"
		r = openRequest(t, c, req)
		if r.GetSubjectId() != "" {
			t.Fatalf("a stranger matched %s", r.GetSubjectId())
		}
		if m := takeMessage(t, mailer, r.GetRequestId(), pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_RECEIPT); m.GetTo() != "nobody@example.test" {
			t.Errorf("a stranger's receipt went to %q", m.GetTo())
		}
		attest(t, c, r.GetRequestId())
		grant(t, c, r.GetRequestId())
		r = fulfil(t, c, &pdv1.FulfilRightsRequestRequest{IdempotencyKey: "fulfil-nobody", RequestId: r.GetRequestId(), Action: &pdv1.FulfilRightsRequestRequest_Access{Access: &pdv1.AccessAction{}}})
		reply = call(t, c, replyRR, &pdv1.GetRightsRequestReplyRequest{RequestId: r.GetRequestId()}, &pdv1.GetRightsRequestReplyResponse{})
		if reply.GetDataHeld() || reply.GetData() != nil || len(reply.GetInformation().GetPurposes()) == 0 || !r.GetFulfilment().GetNothingHeld() {
			t.Errorf("nothing held: %v", reply)
		}
		html, _ := letter(t, e, r.GetRequestId(), "sv")
		if !strings.Contains(html, "Vi behandlar inga personuppgifter om dig.") {
			t.Error("the letter to a stranger does not say nothing is held")
		}
	})
}

// The code's rules: expiry, a bounded number of tries, and never to an
// address taken from the request.
func TestVerificationCodeRules(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		mailer := e.mailer(t, c)
		sub := create(t, c, 21)
		r := openRequest(t, c, openReq("rr-code-1", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, 21))
		id := r.GetRequestId()
		tries := 0
		confirm := func(code string) error {
			tries++
			return c.call(t.Context(), confirmRR, &pdv1.ConfirmVerificationCodeRequest{IdempotencyKey: fmt.Sprintf("confirm-%d", tries), RequestId: id, Code: code}, &pdv1.ConfirmVerificationCodeResponse{})
		}

		// Confirming before any code was sent.
		callErr(t, c, confirmRR, &pdv1.ConfirmVerificationCodeRequest{IdempotencyKey: "confirm-early", RequestId: id, Code: "12345678"}, &pdv1.ConfirmVerificationCodeResponse{}, codes.FailedPrecondition)
		// A code that is not 8 digits is bad input.
		err := callErr(t, c, confirmRR, &pdv1.ConfirmVerificationCodeRequest{IdempotencyKey: "confirm-bad", RequestId: id, Code: "12ab"}, &pdv1.ConfirmVerificationCodeResponse{}, codes.InvalidArgument)
		if f := badFields(err); len(f) != 1 || f[0] != "code" {
			t.Errorf("bad code names %v", f)
		}

		// An expired code.
		call(t, c, sendCodeRR, &pdv1.SendVerificationCodeRequest{IdempotencyKey: "send-1", RequestId: id}, &pdv1.SendVerificationCodeResponse{})
		code := codeOf(t, takeMessage(t, mailer, id, pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_VERIFICATION_CODE))
		e.clock.Advance(31 * time.Minute)
		if err := confirm(code); !hasPrecondition(err, "CODE_EXPIRED") {
			t.Errorf("an expired code: %v", err)
		}

		// Too many tries: after five wrong ones even the right code is refused.
		call(t, c, sendCodeRR, &pdv1.SendVerificationCodeRequest{IdempotencyKey: "send-2", RequestId: id}, &pdv1.SendVerificationCodeResponse{})
		code2 := codeOf(t, takeMessage(t, mailer, id, pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_VERIFICATION_CODE))
		if code2 == code {
			t.Error("a new code is the same as the old one")
		}
		for i := range 5 {
			wrong := fmt.Sprintf("%08d", (atoi(code2)+1+i)%100000000)
			if err := confirm(wrong); codes.InvalidArgument != statusCode(err) {
				t.Fatalf("wrong code %d: %v", i, err)
			}
		}
		if err := confirm(code2); !hasPrecondition(err, "CODE_TRIES_EXHAUSTED") {
			t.Errorf("the right code after five wrong: %v", err)
		}
		// A third code works.
		call(t, c, sendCodeRR, &pdv1.SendVerificationCodeRequest{IdempotencyKey: "send-3", RequestId: id}, &pdv1.SendVerificationCodeResponse{})
		code3 := codeOf(t, takeMessage(t, mailer, id, pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_VERIFICATION_CODE))
		if err := confirm(code3); err != nil {
			t.Errorf("a fresh code: %v", err)
		}

		// Nothing is stored that the code could be read or checked from.
		raw := e.rawDump(t)
		for _, cd := range []string{code, code2, code3} {
			if strings.Contains(raw, cd) {
				t.Errorf("a code is in the store as it is")
			}
		}

		// A claimed e-mail that finds no one, with a reply address: no code is
		// sent, to that address or any.
		req := openReq("rr-code-2", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ERASURE, 22)
		req.ClaimedIdentity = &pdv1.ClaimedIdentity{Key: &pdv1.ClaimedIdentity_Email{Email: "impostor@example.test"}}
		req.ReplyEmail = "impostor@example.test"
		stranger := openRequest(t, c, req)
		err = callErr(t, c, sendCodeRR, &pdv1.SendVerificationCodeRequest{IdempotencyKey: "send-4", RequestId: stranger.GetRequestId()}, &pdv1.SendVerificationCodeResponse{}, codes.FailedPrecondition)
		if !hasPrecondition(err, "NO_SUBJECT_MATCHED") {
			t.Errorf("a code for a stranger: %v", err)
		}
		// The person on file is claimed, with the impostor's reply address:
		// the code still goes only to the address on file.
		req = openReq("rr-code-3", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ERASURE, 21)
		req.ReplyEmail = "impostor@example.test"
		claimed := openRequest(t, c, req)
		call(t, c, sendCodeRR, &pdv1.SendVerificationCodeRequest{IdempotencyKey: "send-5", RequestId: claimed.GetRequestId()}, &pdv1.SendVerificationCodeResponse{})
		for _, m := range outbox(t, mailer) {
			if m.GetKind() == pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_VERIFICATION_CODE && m.GetTo() != sub.GetPerson().GetEmail() {
				t.Errorf("a code went to %q", m.GetTo())
			}
			if m.GetTo() == "impostor@example.test" && m.GetKind() != pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_RECEIPT {
				t.Errorf("a %v message went to the address in the request", m.GetKind())
			}
		}
	})
}

// The month, its extension, and refusals.
func TestRightsRequestTimeLimits(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		create(t, c, 31)
		// The clock is set past the dates received, as each must be in the past.
		e.clock.Advance(time.Date(2028, 3, 1, 12, 0, 0, 0, time.UTC).Sub(e.clock.Now()))
		for i, tt := range []struct {
			received time.Time
			due      string
		}{
			{time.Date(2026, 1, 31, 9, 0, 0, 0, time.UTC), "2026-02-28"},
			{time.Date(2028, 1, 31, 9, 0, 0, 0, time.UTC), "2028-02-29"},
			{time.Date(2026, 12, 31, 23, 30, 0, 0, time.UTC), "2027-02-01"}, // 1 January in Sweden
		} {
			req := openReq(fmt.Sprintf("rr-due-%d", i), pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, 31)
			req.ReceiveTime = timestamppb.New(tt.received)
			if r := openRequest(t, c, req); r.GetDueDate() != tt.due {
				t.Errorf("received %v: due %s, want %s", tt.received, r.GetDueDate(), tt.due)
			}
		}
		// Received in the future: bad input, nothing written.
		req := openReq("rr-future", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, 31)
		req.ReceiveTime = timestamppb.New(e.clock.Now().Add(time.Hour))
		req.Kind = 0
		err := callErr(t, c, openRR, req, &pdv1.OpenRightsRequestResponse{}, codes.InvalidArgument)
		if f := badFields(err); strings.Join(f, ",") != "kind,receive_time" {
			t.Errorf("bad fields %v", f)
		}
		if n := e.count(t, "rights_requests"); n != 3 {
			t.Errorf("%d requests stored, want 3", n)
		}

		// The first request's month ended long ago: no extension.
		first := call(t, c, listRR, &pdv1.ListRightsRequestsRequest{ControllerId: "company"}, &pdv1.ListRightsRequestsResponse{}).GetRequests()[0]
		err = callErr(t, c, extendRR, &pdv1.ExtendRightsRequestRequest{IdempotencyKey: "ext-late", RequestId: first.GetRequestId(), Months: 2, Reason: "Många förfrågningar."},
			&pdv1.ExtendRightsRequestResponse{}, codes.FailedPrecondition)
		if !hasPrecondition(err, "FIRST_MONTH_ENDED") {
			t.Errorf("extension after the month: %v", err)
		}
		// Within the month: once, by two months from receipt.
		r := openRequest(t, c, openReq("rr-ext", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, 31))
		callErr(t, c, extendRR, &pdv1.ExtendRightsRequestRequest{IdempotencyKey: "ext-0", RequestId: r.GetRequestId(), Months: 3, Reason: "x"}, &pdv1.ExtendRightsRequestResponse{}, codes.InvalidArgument)
		r = call(t, c, extendRR, &pdv1.ExtendRightsRequestRequest{IdempotencyKey: "ext-1", RequestId: r.GetRequestId(), Months: 2, Reason: "Begäran är omfattande."}, &pdv1.ExtendRightsRequestResponse{}).GetRequest()
		if r.GetDueDate() != "2028-06-01" || r.GetExtension().GetMonths() != 2 {
			t.Errorf("extended: due %s, extension %v; want 2028-06-01", r.GetDueDate(), r.GetExtension())
		}
		m := takeMessage(t, e.mailer(t, c), r.GetRequestId(), pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_EXTENSION)
		if !strings.Contains(m.GetBody(), "Begäran är omfattande.") || !strings.Contains(m.GetBody(), "2028-06-01") {
			t.Errorf("the extension message says %q", m.GetBody())
		}
		err = callErr(t, c, extendRR, &pdv1.ExtendRightsRequestRequest{IdempotencyKey: "ext-2", RequestId: r.GetRequestId(), Months: 1, Reason: "Igen."}, &pdv1.ExtendRightsRequestResponse{}, codes.FailedPrecondition)
		if !hasPrecondition(err, "ALREADY_EXTENDED") {
			t.Errorf("a second extension: %v", err)
		}
	})
}

// A refusal needs no verified identity, gives its reason and tells of
// the right to complain; a refused request is answered.
func TestRightsRequestRefused(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		create(t, c, 41)
		r := openRequest(t, c, openReq("rr-refuse", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ERASURE, 41))
		err := callErr(t, c, decideRR, &pdv1.DecideRightsRequestRequest{IdempotencyKey: "d-1", RequestId: r.GetRequestId(),
			Outcome: pdv1.DecisionOutcome_DECISION_OUTCOME_REFUSE, Reason: pdv1.DecisionReason_DECISION_REASON_RIGHT_APPLIES}, &pdv1.DecideRightsRequestResponse{}, codes.InvalidArgument)
		if f := badFields(err); strings.Join(f, ",") != "reason,explanation" {
			t.Errorf("a refusal without its reason names %v", f)
		}
		r = call(t, c, decideRR, &pdv1.DecideRightsRequestRequest{IdempotencyKey: "d-2", RequestId: r.GetRequestId(),
			Outcome: pdv1.DecisionOutcome_DECISION_OUTCOME_REFUSE, Reason: pdv1.DecisionReason_DECISION_REASON_KEPT_UNDER_LAW,
			Explanation: "Fakturorna sparas i sju år enligt bokföringslagen."}, &pdv1.DecideRightsRequestResponse{}).GetRequest()
		if r.GetState() != pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_REFUSED || r.GetDecision().GetExplanation() == "" {
			t.Errorf("refused: %v %v", r.GetState(), r.GetDecision())
		}
		m := takeMessage(t, e.mailer(t, c), r.GetRequestId(), pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_DECISION)
		for _, want := range []string{"avslagit", "bokföringslagen", "Integritetsskyddsmyndigheten", "domstol"} {
			if !strings.Contains(m.GetBody(), want) {
				t.Errorf("the refusal lacks %q: %q", want, m.GetBody())
			}
		}
		err = callErr(t, c, attestRR, &pdv1.AttestIdentityRequest{IdempotencyKey: "a-1", RequestId: r.GetRequestId(), Method: pdv1.VerificationMethod_VERIFICATION_METHOD_CALL_BACK, Reference: "call-1"},
			&pdv1.AttestIdentityResponse{}, codes.FailedPrecondition)
		if !hasPrecondition(err, "ALREADY_ANSWERED") {
			t.Errorf("a step after the answer: %v", err)
		}
	})
}

// A request about a customer's data goes to that customer's queue.
func TestRightsRequestForwarded(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		createAgreement(t, e, c, paReq(e, "pa-fwd", "customer-42", supportAndDelivery, allCategories...))
		create(t, c, 51)
		r := openRequest(t, c, openReq("rr-fwd", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, 51))
		err := callErr(t, c, forwardRR, &pdv1.ForwardRightsRequestRequest{IdempotencyKey: "f-0", RequestId: r.GetRequestId(), ControllerId: "customer-77"},
			&pdv1.ForwardRightsRequestResponse{}, codes.FailedPrecondition)
		if !hasPrecondition(err, "NO_PROCESSOR_AGREEMENT") {
			t.Errorf("forwarded to a customer without agreement: %v", err)
		}
		r = call(t, c, forwardRR, &pdv1.ForwardRightsRequestRequest{IdempotencyKey: "f-1", RequestId: r.GetRequestId(), ControllerId: "customer-42", Reference: "kundärende-9"},
			&pdv1.ForwardRightsRequestResponse{}).GetRequest()
		if r.GetState() != pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_FORWARDED || r.GetForwarding().GetControllerId() != "customer-42" {
			t.Fatalf("forwarded: %v %v", r.GetState(), r.GetForwarding())
		}
		takeMessage(t, e.mailer(t, c), r.GetRequestId(), pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_FORWARDED)
		customer := e.controller(t, c)
		queue := call(t, customer, listRR, &pdv1.ListRightsRequestsRequest{ForwardedTo: "customer-42"}, &pdv1.ListRightsRequestsResponse{}).GetRequests()
		if len(queue) != 1 || queue[0].GetRequestId() != r.GetRequestId() || queue[0].GetText() == "" {
			t.Fatalf("the customer's queue: %v", queue)
		}
		// The customer reads it, but does not act in the company's queue.
		call(t, customer, getRR, &pdv1.GetRightsRequestRequest{RequestId: r.GetRequestId()}, &pdv1.GetRightsRequestResponse{})
		callErr(t, customer, "personaldata.v1.RightsRequestService/OpenRightsRequest", openReq("rr-cust", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, 51), &pdv1.OpenRightsRequestResponse{}, codes.PermissionDenied)
	})
}

// One subject's requests, answered ones too, to see whether a new one
// repeats earlier ones; a subject id that is not one is named.
func TestRightsRequestsOfOneSubject(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		sub := create(t, c, 62)
		create(t, c, 63)
		first := openRequest(t, c, openReq("rr-one-1", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, 62))
		again := openRequest(t, c, openReq("rr-one-2", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, 62))
		call(t, c, decideRR, &pdv1.DecideRightsRequestRequest{IdempotencyKey: "d-one-2", RequestId: again.GetRequestId(), Outcome: pdv1.DecisionOutcome_DECISION_OUTCOME_REFUSE,
			Reason: pdv1.DecisionReason_DECISION_REASON_EXCESSIVE, Explanation: "Samma begäran två gånger samma dag."}, &pdv1.DecideRightsRequestResponse{})
		other := openRequest(t, c, openReq("rr-one-3", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, 63))
		if other.GetSubjectId() == sub.GetSubjectId() || first.GetSubjectId() != sub.GetSubjectId() {
			t.Fatalf("matched subjects %q %q, want %q for the first only", first.GetSubjectId(), other.GetSubjectId(), sub.GetSubjectId())
		}
		ids := func(req *pdv1.ListRightsRequestsRequest) []string {
			t.Helper()
			var out []string
			for _, r := range call(t, c, listRR, req, &pdv1.ListRightsRequestsResponse{}).GetRequests() {
				out = append(out, r.GetRequestId())
			}
			slices.Sort(out)
			return out
		}
		want := []string{first.GetRequestId(), again.GetRequestId()}
		slices.Sort(want)
		if got := ids(&pdv1.ListRightsRequestsRequest{ControllerId: "company", SubjectId: sub.GetSubjectId()}); !slices.Equal(got, want) {
			t.Errorf("the subject's requests: %v, want %v", got, want)
		}
		if got := ids(&pdv1.ListRightsRequestsRequest{ControllerId: "company", SubjectId: sub.GetSubjectId(),
			States: []pdv1.RightsRequestState{pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_RECEIVED}}); !slices.Equal(got, []string{first.GetRequestId()}) {
			t.Errorf("the subject's received requests: %v, want %v", got, first.GetRequestId())
		}
		if got := ids(&pdv1.ListRightsRequestsRequest{ControllerId: "company", SubjectId: "s-nobody"}); len(got) != 0 {
			t.Errorf("requests of an unknown subject: %v", got)
		}
		err := callErr(t, c, listRR, &pdv1.ListRightsRequestsRequest{ControllerId: "company", SubjectId: "not a subject"}, &pdv1.ListRightsRequestsResponse{}, codes.InvalidArgument)
		if f := badFields(err); !slices.Equal(f, []string{"subject_id"}) {
			t.Errorf("fields named %v, want subject_id", f)
		}
	})
}

// Overdue requests are listed and counted.
func TestRightsRequestOverdue(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		create(t, c, 61)
		late := openRequest(t, c, openReq("rr-late", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, 61))
		e.clock.Advance(20 * 24 * time.Hour)
		soon := openRequest(t, c, openReq("rr-soon", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_RECTIFICATION, 61))
		done := openRequest(t, c, openReq("rr-done", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, 61))
		call(t, c, decideRR, &pdv1.DecideRightsRequestRequest{IdempotencyKey: "d-done", RequestId: done.GetRequestId(), Outcome: pdv1.DecisionOutcome_DECISION_OUTCOME_REFUSE,
			Reason: pdv1.DecisionReason_DECISION_REASON_EXCESSIVE, Explanation: "Samma begäran för tredje gången i veckan."}, &pdv1.DecideRightsRequestResponse{})
		e.clock.Advance(12 * 24 * time.Hour) // 32 days after the first

		all := call(t, c, listRR, &pdv1.ListRightsRequestsRequest{ControllerId: "company", PageSize: 1}, &pdv1.ListRightsRequestsResponse{})
		if len(all.GetRequests()) != 1 || all.GetRequests()[0].GetRequestId() != late.GetRequestId() || !all.GetRequests()[0].GetOverdue() || all.GetNextPageToken() == "" {
			t.Fatalf("first page: %v", all)
		}
		next := call(t, c, listRR, &pdv1.ListRightsRequestsRequest{ControllerId: "company", PageSize: 1, PageToken: all.GetNextPageToken()}, &pdv1.ListRightsRequestsResponse{})
		if len(next.GetRequests()) != 1 || next.GetRequests()[0].GetRequestId() == late.GetRequestId() {
			t.Fatalf("second page: %v", next)
		}
		overdue := call(t, c, listRR, &pdv1.ListRightsRequestsRequest{ControllerId: "company", OverdueOnly: true}, &pdv1.ListRightsRequestsResponse{}).GetRequests()
		if len(overdue) != 1 || overdue[0].GetRequestId() != late.GetRequestId() {
			t.Errorf("overdue: %v", overdue)
		}
		open := call(t, c, listRR, &pdv1.ListRightsRequestsRequest{ControllerId: "company", States: []pdv1.RightsRequestState{pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_RECEIVED},
			Kinds: []pdv1.RightsRequestKind{pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_RECTIFICATION}}, &pdv1.ListRightsRequestsResponse{}).GetRequests()
		if len(open) != 1 || open[0].GetRequestId() != soon.GetRequestId() {
			t.Errorf("received rectifications: %v", open)
		}
		// Two states (the answered ones), each a parameter of its own over REST.
		answered := call(t, c, listRR, &pdv1.ListRightsRequestsRequest{ControllerId: "company", States: []pdv1.RightsRequestState{
			pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_REFUSED, pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_FULFILLED}}, &pdv1.ListRightsRequestsResponse{}).GetRequests()
		if len(answered) != 1 || answered[0].GetRequestId() != done.GetRequestId() {
			t.Errorf("refused or fulfilled: %v", answered)
		}
		res, body := e.restRaw(t, "GET", "/metrics", "", "")
		if res.StatusCode != http.StatusOK {
			t.Fatalf("/metrics: %d", res.StatusCode)
		}
		for _, want := range []string{"personaldata_rights_requests_open 2", "personaldata_rights_requests_overdue 1"} {
			if !strings.Contains(string(body), want+"\n") {
				t.Errorf("/metrics lacks %q", want)
			}
		}
	})
}

func statusCode(err error) codes.Code { return status.Code(err) }

// The mailer's stream sends what waits, then what is queued while it is
// open; only the mailer reads the outbox.
func TestOutboxStream(t *testing.T) {
	e := start(t)
	c := e.gc()
	create(t, c, 71)
	first := openRequest(t, c, openReq("rr-stream-1", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, 71))
	tok := e.principal(t, "mailer-stream", pdv1.PrincipalKind_PRINCIPAL_KIND_MAILER, []string{"company"}, nil)
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+tok), 20*time.Second)
	defer cancel()
	stream, err := pdv1.NewRequesterOutboxServiceClient(e.grpc).StreamOutboxMessages(ctx, &pdv1.StreamOutboxMessagesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := stream.Recv()
	if err != nil || m.GetMessage().GetRequestId() != first.GetRequestId() {
		t.Fatalf("first message %v, %v", m, err)
	}
	// Over REST too, as one JSON line a message.
	next := restStream(t, e.base+"/v1/outbox/messages:stream", tok)
	var line pdv1.StreamOutboxMessagesResponse
	if next(&line); line.GetMessage().GetRequestId() != first.GetRequestId() || line.GetMessage().GetTo() == "" {
		t.Fatalf("first message over REST: %v", &line)
	}
	second := openRequest(t, c, openReq("rr-stream-2", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ERASURE, 71))
	m, err = stream.Recv()
	if err != nil || m.GetMessage().GetRequestId() != second.GetRequestId() || m.GetMessage().GetKind() != pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_RECEIPT {
		t.Fatalf("second message %v, %v", m, err)
	}
	if next(&line); line.GetMessage().GetRequestId() != second.GetRequestId() || line.GetMessage().GetKind() != pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_RECEIPT {
		t.Fatalf("second message over REST: %v", &line)
	}
	// Support staff do not read the mailer's queue.
	callErr(t, c, listOutbox, &pdv1.ListOutboxMessagesRequest{}, &pdv1.ListOutboxMessagesResponse{}, codes.PermissionDenied)
	// A request without the support purpose is refused.
	billing := e.as(c, e.principal(t, "billing-rr", pdv1.PrincipalKind_PRINCIPAL_KIND_BILLING_SYSTEM, []string{"company"}, []pdv1.Purpose{pdv1.Purpose_PURPOSE_INVOICING}))
	callErr(t, billing, openRR, openReq("rr-billing", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, 71), &pdv1.OpenRightsRequestResponse{}, codes.PermissionDenied)
}

// Three years after its answer, a request's personal values are removed
// by the retention sweep, with its data key; the record of how it was
// handled stays.
func TestAnsweredRequestsLoseTheirPersonalValues(t *testing.T) {
	e := start(t)
	c := e.gc()
	create(t, c, 131)
	r := openRequest(t, c, openReq("rr-old", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ERASURE, 131))
	call(t, c, decideRR, &pdv1.DecideRightsRequestRequest{IdempotencyKey: "d-old", RequestId: r.GetRequestId(), Outcome: pdv1.DecisionOutcome_DECISION_OUTCOME_REFUSE,
		Reason: pdv1.DecisionReason_DECISION_REASON_KEPT_UNDER_LAW, Explanation: "Fakturorna sparas enligt bokföringslagen."}, &pdv1.DecideRightsRequestResponse{})
	open := openRequest(t, c, openReq("rr-open", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, 131)) // not answered: kept whole
	keyID := "rr_" + r.GetRequestId()
	if n, _ := e.coll("data_keys").CountDocuments(t.Context(), bson.D{{Key: "_id", Value: keyID}}); n != 1 {
		t.Fatalf("%d data keys of the request", n)
	}

	e.clock.Advance(3*365*24*time.Hour - 24*time.Hour)
	sweepNow(t, e, c)
	if got := call(t, c, getRR, &pdv1.GetRightsRequestRequest{RequestId: r.GetRequestId()}, &pdv1.GetRightsRequestResponse{}).GetRequest(); got.GetText() == "" {
		t.Fatal("purged before three years")
	}
	e.clock.Advance(3 * 24 * time.Hour)
	sweepNow(t, e, c)
	got := call(t, c, getRR, &pdv1.GetRightsRequestRequest{RequestId: r.GetRequestId()}, &pdv1.GetRightsRequestResponse{}).GetRequest()
	if got.GetText() != "" || got.GetClaimedIdentity() != nil || got.GetDecision().GetExplanation() != "" {
		t.Errorf("after three years: text %q, identity %v, explanation %q", got.GetText(), got.GetClaimedIdentity(), got.GetDecision().GetExplanation())
	}
	if got.GetState() != pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_REFUSED || got.GetDecision().GetReason() != pdv1.DecisionReason_DECISION_REASON_KEPT_UNDER_LAW ||
		got.GetSteps()[len(got.GetSteps())-1].GetStep() != "personal_data_removed" {
		t.Errorf("the record of the handling: %v", got)
	}
	if n, _ := e.coll("data_keys").CountDocuments(t.Context(), bson.D{{Key: "_id", Value: keyID}}); n != 0 {
		t.Errorf("the request's data key is still there")
	}
	if kept := call(t, c, getRR, &pdv1.GetRightsRequestRequest{RequestId: open.GetRequestId()}, &pdv1.GetRightsRequestResponse{}).GetRequest(); kept.GetText() == "" {
		t.Error("an unanswered request lost its text")
	}
}

// A crash between queueing a step's message and counting it queued leaves
// the message past the request's count. If the mailer sends and
// acknowledges it before the request is settled again, it is not queued a
// second time: every acknowledged message of a request is marked sent, and
// the marks go with the request's personal values after three years.
func TestOutboxMessageAcknowledgedBeforeCountedIsNotQueuedAgain(t *testing.T) {
	e := start(t)
	c := e.gc()
	create(t, c, 141)
	mailer := e.mailer(t, c)
	r := openRequest(t, c, openReq("rr-crash", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ERASURE, 141))
	// The state a crash after the insert of the receipt leaves.
	if res, err := e.coll("rights_requests").UpdateOne(t.Context(), bson.D{{Key: "_id", Value: r.GetRequestId()}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "queued", Value: 0}}}}); err != nil || res.ModifiedCount != 1 {
		t.Fatalf("rewind the queued count: %v, %v", res, err)
	}
	receipt := takeMessage(t, mailer, r.GetRequestId(), pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_RECEIPT)
	if n, _ := e.coll("outbox_sent").CountDocuments(t.Context(), bson.D{{Key: "_id", Value: receipt.GetMessageId()}}); n != 1 {
		t.Fatalf("%d sent marks of the uncounted receipt, want 1", n)
	}
	// Any read settles the request: it counts the receipt, and queues it not.
	call(t, c, getRR, &pdv1.GetRightsRequestRequest{RequestId: r.GetRequestId()}, &pdv1.GetRightsRequestResponse{})
	for _, m := range outbox(t, mailer) {
		if m.GetRequestId() == r.GetRequestId() {
			t.Errorf("queued again after it was sent: %v", m.GetKind())
		}
	}
	var stored struct {
		Queued int `bson:"queued"`
	}
	if err := e.coll("rights_requests").FindOne(t.Context(), bson.D{{Key: "_id", Value: r.GetRequestId()}}).Decode(&stored); err != nil || stored.Queued == 0 {
		t.Errorf("queued count %d after settling, %v", stored.Queued, err)
	}

	// Another request, whose marks stay while it is kept.
	kept := openRequest(t, c, openReq("rr-kept", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ERASURE, 141))
	m := takeMessage(t, mailer, kept.GetRequestId(), pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_RECEIPT)
	if n, _ := e.coll("outbox_sent").CountDocuments(t.Context(), bson.D{{Key: "_id", Value: m.GetMessageId()}}); n != 1 {
		t.Errorf("%d sent marks of an acknowledged message, want 1", n)
	}

	call(t, c, decideRR, &pdv1.DecideRightsRequestRequest{IdempotencyKey: "d-crash", RequestId: r.GetRequestId(), Outcome: pdv1.DecisionOutcome_DECISION_OUTCOME_REFUSE,
		Reason: pdv1.DecisionReason_DECISION_REASON_KEPT_UNDER_LAW, Explanation: "Fakturorna sparas enligt bokföringslagen."}, &pdv1.DecideRightsRequestResponse{})
	e.clock.Advance(3*365*24*time.Hour + 2*24*time.Hour)
	sweepNow(t, e, c)
	if n, _ := e.coll("outbox_sent").CountDocuments(t.Context(), bson.D{{Key: "_id", Value: receipt.GetMessageId()}}); n != 0 {
		t.Errorf("%d sent marks left after the request's personal values were removed", n)
	}
	if n, _ := e.coll("outbox_sent").CountDocuments(t.Context(), bson.D{{Key: "_id", Value: m.GetMessageId()}}); n != 1 {
		t.Errorf("%d sent marks of the open request after the sweep, want 1", n)
	}
}
