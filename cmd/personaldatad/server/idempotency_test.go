package server_test

import (
	"testing"

	"google.golang.org/grpc/codes"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// A retried SendVerificationCode answers as every other step's retry does,
// also once the request was answered: the request, with no second code.
// Another key after the answer is still refused, and the same key with
// another request is bad input.
func TestSendVerificationCodeRetryAfterAnswer(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		mailer := e.mailer(t, c)
		create(t, c, 61)
		r := openRequest(t, c, openReq("rr-code-retry", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ERASURE, 61))
		id := r.GetRequestId()
		send := &pdv1.SendVerificationCodeRequest{IdempotencyKey: "send-once", RequestId: id}
		first := call(t, c, sendCodeRR, send, &pdv1.SendVerificationCodeResponse{}).GetRequest()
		takeMessage(t, mailer, id, pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_VERIFICATION_CODE)
		call(t, c, decideRR, &pdv1.DecideRightsRequestRequest{IdempotencyKey: "refuse-once", RequestId: id,
			Outcome: pdv1.DecisionOutcome_DECISION_OUTCOME_REFUSE, Reason: pdv1.DecisionReason_DECISION_REASON_KEPT_UNDER_LAW,
			Explanation: "Fakturorna sparas i sju år enligt bokföringslagen."}, &pdv1.DecideRightsRequestResponse{})
		takeMessage(t, mailer, id, pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_DECISION)

		again := call(t, c, sendCodeRR, send, &pdv1.SendVerificationCodeResponse{}).GetRequest()
		if again.GetRequestId() != id || again.GetCode().GetSentCount() != first.GetCode().GetSentCount() {
			t.Errorf("the retry answered request %s with %d codes sent, want %s with %d", again.GetRequestId(), again.GetCode().GetSentCount(), id, first.GetCode().GetSentCount())
		}
		for _, m := range outbox(t, mailer) {
			if m.GetRequestId() == id && m.GetKind() == pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_VERIFICATION_CODE {
				t.Errorf("the retry queued another code")
			}
		}
		err := callErr(t, c, sendCodeRR, &pdv1.SendVerificationCodeRequest{IdempotencyKey: "send-after", RequestId: id}, &pdv1.SendVerificationCodeResponse{}, codes.FailedPrecondition)
		if !hasPrecondition(err, "ALREADY_ANSWERED") {
			t.Errorf("another key after the answer: %v, want ALREADY_ANSWERED", err)
		}
		other := &pdv1.SendVerificationCodeRequest{IdempotencyKey: "send-once", RequestId: id, Channel: pdv1.ContactChannel_CONTACT_CHANNEL_SMS}
		err = callErr(t, c, sendCodeRR, other, &pdv1.SendVerificationCodeResponse{}, codes.InvalidArgument)
		if f := badFields(err); len(f) != 1 || f[0] != "idempotency_key" {
			t.Errorf("the key of another request names %v, want [idempotency_key]", f)
		}
	})
}
