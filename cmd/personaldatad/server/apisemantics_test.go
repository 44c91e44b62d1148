package server_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// A policy version that was never published is NOT_FOUND wherever it is
// named, with a message that says so; a malformed one is INVALID_ARGUMENT
// naming the field.
func TestPolicyVersionUnknownAnswersAlike(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		op := e.as(c, e.operator)
		now := e.clock.Now()
		// Before any version: none in force, and none named.
		err := callErr(t, c, listUninformed, &pdv1.ListUninformedSubjectsRequest{}, &pdv1.ListUninformedSubjectsResponse{}, codes.NotFound)
		if msg := status.Convert(err).Message(); !strings.Contains(msg, "no policy version is in force") {
			t.Errorf("none in force: %q", msg)
		}
		call(t, op, publishPolicy, policyReq("unk-1", "2018-05", now.Add(-24*time.Hour), true), &pdv1.PublishPolicyVersionResponse{})
		sub := create(t, c, 31)
		ack := func(key, version string) *pdv1.RecordPolicyAcknowledgementRequest {
			return &pdv1.RecordPolicyAcknowledgementRequest{IdempotencyKey: key, SubjectId: sub.GetSubjectId(), Version: version,
				Kind: pdv1.PolicyAcknowledgementKind_POLICY_ACKNOWLEDGEMENT_KIND_INFORMED, AcknowledgeTime: timestamppb.New(now), Channel: pdv1.Channel_CHANNEL_PORTAL}
		}
		for name, run := range map[string]func(version string, want codes.Code) error{
			"ListUninformedSubjects": func(version string, want codes.Code) error {
				return callErr(t, c, listUninformed, &pdv1.ListUninformedSubjectsRequest{Version: version}, &pdv1.ListUninformedSubjectsResponse{}, want)
			},
			"RecordPolicyAcknowledgement": func(version string, want codes.Code) error {
				return callErr(t, c, recordPolicyAck, ack("unk-ack-"+strings.ReplaceAll(version, " ", "-"), version), &pdv1.RecordPolicyAcknowledgementResponse{}, want)
			},
			"NotifyPolicyChange": func(version string, want codes.Code) error {
				// Over gRPC: a stream's error over REST is another piece of work.
				return callErr(t, e.as(e.gc(), e.operator), policyService+"NotifyPolicyChange", &pdv1.NotifyPolicyChangeRequest{IdempotencyKey: "unk-n-" + strings.ReplaceAll(version, " ", "-"), Version: version}, &pdv1.NotifyPolicyChangeResponse{}, want)
			},
		} {
			err := run("2026-zz", codes.NotFound)
			if msg := status.Convert(err).Message(); msg != `no such policy version: "2026-zz" was never published` {
				t.Errorf("%s of an unpublished version says %q", name, msg)
			}
			err = run("Inte En Version", codes.InvalidArgument)
			if f := badFields(err); !slices.Equal(f, []string{"version"}) {
				t.Errorf("%s of a malformed version names %v, want [version]", name, f)
			}
		}
	})
}

// An acknowledgement dated before its version was published is refused,
// naming the time; the same acknowledgement under a second key records
// nothing new and answers the one recorded.
func TestPolicyAcknowledgementDatesAndDuplicates(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		op := e.as(c, e.operator)
		e.clock.Advance(time.Hour)
		published := e.clock.Now()
		call(t, op, publishPolicy, policyReq("ackd-1", "2026-11", published, false), &pdv1.PublishPolicyVersionResponse{})
		e.clock.Advance(time.Hour)
		sub := create(t, c, 32)
		ack := func(key string, at time.Time) *pdv1.RecordPolicyAcknowledgementRequest {
			return &pdv1.RecordPolicyAcknowledgementRequest{IdempotencyKey: key, SubjectId: sub.GetSubjectId(), Version: "2026-11",
				Kind: pdv1.PolicyAcknowledgementKind_POLICY_ACKNOWLEDGEMENT_KIND_ACCEPTED, AcknowledgeTime: timestamppb.New(at),
				Channel: pdv1.Channel_CHANNEL_PORTAL, Reference: "signup-32"}
		}
		err := callErr(t, c, recordPolicyAck, ack("ackd-early", published.Add(-time.Minute)), &pdv1.RecordPolicyAcknowledgementResponse{}, codes.InvalidArgument)
		if f := badFields(err); !slices.Equal(f, []string{"acknowledge_time"}) {
			t.Errorf("an acknowledgement before publication names %v, want [acknowledge_time]", f)
		}
		at := published.Add(30 * time.Minute)
		first := call(t, c, recordPolicyAck, ack("ackd-1", at), &pdv1.RecordPolicyAcknowledgementResponse{}).GetAcknowledgement()
		second := call(t, c, recordPolicyAck, ack("ackd-2", at), &pdv1.RecordPolicyAcknowledgementResponse{}).GetAcknowledgement()
		if !first.GetAcknowledgeTime().AsTime().Equal(second.GetAcknowledgeTime().AsTime()) || second.GetVersion() != "2026-11" {
			t.Errorf("second key answered %v, want the first %v", second, first)
		}
		doc := call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
		if n := len(doc.GetPolicyAcknowledgements()); n != 1 {
			t.Errorf("%d acknowledgements recorded after the same one under two keys, want 1", n)
		}
		// Another time is another acknowledgement.
		call(t, c, recordPolicyAck, ack("ackd-3", at.Add(time.Minute)), &pdv1.RecordPolicyAcknowledgementResponse{})
		doc = call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
		if n := len(doc.GetPolicyAcknowledgements()); n != 2 {
			t.Errorf("%d acknowledgements after a later one, want 2", n)
		}
	})
}

// A second notification run queues nothing new while the first run's
// notices wait, and says so: queued counts what the run queued.
func TestNotifyPolicyChangeCountsOnlyWhatItQueued(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		op := e.as(c, e.operator)
		call(t, op, publishPolicy, policyReq("cnt-1", "2027-02", e.clock.Now().Add(time.Hour), true), &pdv1.PublishPolicyVersionResponse{})
		create(t, c, 33)
		var first, second pdv1.NotifyPolicyChangeResponse
		call(t, op, policyService+"NotifyPolicyChange", &pdv1.NotifyPolicyChangeRequest{IdempotencyKey: "cnt-run-1", Version: "2027-02"}, &first)
		call(t, op, policyService+"NotifyPolicyChange", &pdv1.NotifyPolicyChangeRequest{IdempotencyKey: "cnt-run-2", Version: "2027-02"}, &second)
		if first.GetQueued() != 1 || first.GetSkipped() != 0 {
			t.Errorf("first run: %v, want 1 queued", &first)
		}
		if !second.GetFinished() || second.GetQueued() != 0 || second.GetSkipped() != 1 {
			t.Errorf("second run: %v, want 0 queued, 1 skipped (its notice waits)", &second)
		}
		if n := len(policyNotices(t, e.mailer(t, c))); n != 1 {
			t.Errorf("%d notices waiting, want 1", n)
		}
	})
}

// ConfirmVerificationCode takes an idempotency key: a wrong code's retry
// gets the same refusal and uses no second try; a right code's retry adds
// no step and leaves update_time.
func TestConfirmVerificationCodeRetries(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		create(t, c, 34)
		mailer := e.mailer(t, c)
		r := openRequest(t, c, openReq("cvc-open", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, 34))
		id := r.GetRequestId()
		call(t, c, sendCodeRR, &pdv1.SendVerificationCodeRequest{IdempotencyKey: "cvc-code", RequestId: id}, &pdv1.SendVerificationCodeResponse{})
		code := codeOf(t, takeMessage(t, mailer, id, pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_VERIFICATION_CODE))
		wrong := fmt.Sprintf("%08d", (atoi(code)+1)%100000000)

		err := callErr(t, c, confirmRR, &pdv1.ConfirmVerificationCodeRequest{RequestId: id, Code: code}, &pdv1.ConfirmVerificationCodeResponse{}, codes.InvalidArgument)
		if f := badFields(err); !slices.Equal(f, []string{"idempotency_key"}) {
			t.Errorf("no key names %v, want [idempotency_key]", f)
		}
		for range 2 {
			err := callErr(t, c, confirmRR, &pdv1.ConfirmVerificationCodeRequest{IdempotencyKey: "cvc-wrong", RequestId: id, Code: wrong}, &pdv1.ConfirmVerificationCodeResponse{}, codes.InvalidArgument)
			if f := badFields(err); !slices.Equal(f, []string{"code"}) || !strings.Contains(fmt.Sprint(status.Convert(err).Details()), "4 tries left") {
				t.Errorf("a wrong code (and its retry): %v", status.Convert(err).Details())
			}
		}
		r = call(t, c, getRR, &pdv1.GetRightsRequestRequest{RequestId: id}, &pdv1.GetRightsRequestResponse{}).GetRequest()
		if r.GetCode().GetTriesLeft() != 4 {
			t.Errorf("%d tries left after a wrong code and its retry, want 4", r.GetCode().GetTriesLeft())
		}
		// The same key with another code is refused.
		err = callErr(t, c, confirmRR, &pdv1.ConfirmVerificationCodeRequest{IdempotencyKey: "cvc-wrong", RequestId: id, Code: code}, &pdv1.ConfirmVerificationCodeResponse{}, codes.InvalidArgument)
		if f := badFields(err); !slices.Equal(f, []string{"idempotency_key"}) {
			t.Errorf("a key reused with another code names %v", f)
		}
		done := call(t, c, confirmRR, &pdv1.ConfirmVerificationCodeRequest{IdempotencyKey: "cvc-right", RequestId: id, Code: code}, &pdv1.ConfirmVerificationCodeResponse{}).GetRequest()
		if done.GetState() != pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_VERIFIED {
			t.Fatalf("after the right code: %v", done.GetState())
		}
		e.clock.Advance(time.Minute)
		for _, key := range []string{"cvc-right", "cvc-right-again"} {
			again := call(t, c, confirmRR, &pdv1.ConfirmVerificationCodeRequest{IdempotencyKey: key, RequestId: id, Code: code}, &pdv1.ConfirmVerificationCodeResponse{}).GetRequest()
			if !again.GetUpdateTime().AsTime().Equal(done.GetUpdateTime().AsTime()) || len(again.GetSteps()) != len(done.GetSteps()) ||
				again.GetState() != pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_VERIFIED {
				t.Errorf("a retry (%s) changed the request: update %v → %v, %d → %d steps", key,
					done.GetUpdateTime().AsTime(), again.GetUpdateTime().AsTime(), len(done.GetSteps()), len(again.GetSteps()))
			}
		}
	})
}

// A forwarded request stays in the company's queue (controller_id
// "company") and is listed there; the customer lists it with forwarded_to,
// and a controller_id filter lists only what the field says.
func TestForwardedRequestFieldAndFilterAgree(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		createAgreement(t, e, c, paReq(e, "pa-fwd-f", "customer-42", supportAndDelivery, allCategories...))
		create(t, c, 35)
		r := openRequest(t, c, openReq("fwdf-open", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, 35))
		r = call(t, c, forwardRR, &pdv1.ForwardRightsRequestRequest{IdempotencyKey: "fwdf-1", RequestId: r.GetRequestId(), ControllerId: "customer-42"},
			&pdv1.ForwardRightsRequestResponse{}).GetRequest()
		if r.GetControllerId() != "company" || r.GetForwarding().GetControllerId() != "customer-42" {
			t.Fatalf("forwarded: controller %q, forwarded to %q", r.GetControllerId(), r.GetForwarding().GetControllerId())
		}
		customer := e.controller(t, c)
		ids := func(who caller, req *pdv1.ListRightsRequestsRequest) []string {
			t.Helper()
			var out []string
			for _, x := range call(t, who, listRR, req, &pdv1.ListRightsRequestsResponse{}).GetRequests() {
				if filter := req.GetControllerId(); filter != "" && x.GetControllerId() != filter {
					t.Errorf("controller_id filter %q listed a request of %q", filter, x.GetControllerId())
				}
				if to := req.GetForwardedTo(); to != "" && x.GetForwarding().GetControllerId() != to {
					t.Errorf("forwarded_to filter %q listed a request forwarded to %q", to, x.GetForwarding().GetControllerId())
				}
				out = append(out, x.GetRequestId())
			}
			return out
		}
		if got := ids(customer, &pdv1.ListRightsRequestsRequest{ControllerId: "customer-42"}); len(got) != 0 {
			t.Errorf("customer-42's own queue: %v, want none (the request is the company's)", got)
		}
		if got := ids(customer, &pdv1.ListRightsRequestsRequest{ForwardedTo: "customer-42"}); !slices.Equal(got, []string{r.GetRequestId()}) {
			t.Errorf("forwarded to customer-42: %v, want %s", got, r.GetRequestId())
		}
		if got := ids(c, &pdv1.ListRightsRequestsRequest{ControllerId: "company"}); !slices.Contains(got, r.GetRequestId()) {
			t.Errorf("the company's queue lacks the forwarded request: %v", got)
		}
		for _, who := range []caller{c, customer} {
			if got := ids(who, &pdv1.ListRightsRequestsRequest{ControllerId: "company", ForwardedTo: "customer-42"}); !slices.Equal(got, []string{r.GetRequestId()}) {
				t.Errorf("the company's requests forwarded to customer-42: %v", got)
			}
		}
		// The customer does not list the company's queue, nor what was
		// forwarded to another customer.
		callErr(t, customer, listRR, &pdv1.ListRightsRequestsRequest{ControllerId: "company"}, &pdv1.ListRightsRequestsResponse{}, codes.PermissionDenied)
		callErr(t, customer, listRR, &pdv1.ListRightsRequestsRequest{ForwardedTo: "customer-7"}, &pdv1.ListRightsRequestsResponse{}, codes.PermissionDenied)
	})
}

// The reply and letter are what was sent at the answer: a later erasure of
// the subject does not turn the letter into "we process no data about you".
func TestAnsweredReplyIsSealedAsSent(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		sub := create(t, c, 36)
		r := openRequest(t, c, openReq("seal-open", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, 36))
		attest(t, c, r.GetRequestId())
		grant(t, c, r.GetRequestId())
		fulfil(t, c, &pdv1.FulfilRightsRequestRequest{IdempotencyKey: "seal-fulfil", RequestId: r.GetRequestId(),
			Action: &pdv1.FulfilRightsRequestRequest_Access{Access: &pdv1.AccessAction{}}})
		before := call(t, c, replyRR, &pdv1.GetRightsRequestReplyRequest{RequestId: r.GetRequestId()}, &pdv1.GetRightsRequestReplyResponse{})
		html, _ := letter(t, e, r.GetRequestId(), "sv")
		if !before.GetDataHeld() || !strings.Contains(html, sub.GetPerson().GetEmail()) {
			t.Fatalf("the reply as answered: held %v", before.GetDataHeld())
		}
		// The reply is sealed at rest, as the request's other values are.
		if raw := e.rawDump(t); strings.Contains(raw, sub.GetPerson().GetFamilyName()) {
			t.Errorf("the store holds the family name as it is")
		}
		e.clock.Advance(24 * time.Hour)
		call(t, c, "EraseSubject", eraseReq(sub, "seal-erase"), &pdv1.EraseSubjectResponse{})

		after := call(t, c, replyRR, &pdv1.GetRightsRequestReplyRequest{RequestId: r.GetRequestId()}, &pdv1.GetRightsRequestReplyResponse{})
		if !after.GetDataHeld() || after.GetData().GetSubject().GetPerson().GetEmail() != sub.GetPerson().GetEmail() ||
			!after.GetGenerateTime().AsTime().Equal(before.GetGenerateTime().AsTime()) {
			t.Errorf("the reply after an erasure: held %v, generated %v (was %v)", after.GetDataHeld(), after.GetGenerateTime().AsTime(), before.GetGenerateTime().AsTime())
		}
		again, _ := letter(t, e, r.GetRequestId(), "sv")
		if again != html || strings.Contains(again, "Vi behandlar inga personuppgifter om dig") {
			t.Errorf("the letter changed after the erasure")
		}
		body, err := pdv1.NewRightsRequestServiceClient(e.grpc).GetRightsRequestLetter(metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+e.token),
			&pdv1.GetRightsRequestLetterRequest{RequestId: r.GetRequestId(), Language: "sv"})
		if err != nil || string(body.GetData()) != html {
			t.Errorf("the letter over gRPC after the erasure: %v, same %v", err, string(body.GetData()) == html)
		}
	})
}
