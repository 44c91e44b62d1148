package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
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

// getSubject reads a subject's current state.
func getSubject(t *testing.T, c caller, id string) *pdv1.Subject {
	t.Helper()
	return call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: id}, &pdv1.AccessSubjectResponse{}).GetSubject()
}

// A retry after more than a thousand other changes to the same subject
// (more than a subject's document used to remember) replays: no second
// entry, no second rectification; the same key with another request is
// refused, naming the key.
func TestRetryAfterThousandsOfChangesReplays(t *testing.T) {
	e := start(t)
	c, rest := e.gc(), e.rc()
	sub := create(t, c, 71)
	id := sub.GetSubjectId()
	rectify := rectifyReq(sub, "rectify-early", &pdv1.Person{Phone: "070-111 22 33"}, "phone")
	rectified := call(t, c, "RectifySubject", rectify, &pdv1.RectifySubjectResponse{})
	first := call(t, c, "AddHistoryEntry", historyReq(sub, "history-early", 1), &pdv1.AddHistoryEntryResponse{}).GetEntry()
	const others = 1005
	for i := range others {
		call(t, c, "AddHistoryEntry", historyReq(sub, fmt.Sprintf("history-%d", i), i+10), &pdv1.AddHistoryEntryResponse{})
	}
	before := getSubject(t, c, id)
	entries := e.count(t, "history")

	for _, cl := range []caller{c, rest} {
		again := call(t, cl, "AddHistoryEntry", historyReq(sub, "history-early", 1), &pdv1.AddHistoryEntryResponse{}).GetEntry()
		if again.GetEntryId() != first.GetEntryId() {
			t.Errorf("%s: the retried entry is %q, want the first %q", cl.name(), again.GetEntryId(), first.GetEntryId())
		}
		r := call(t, cl, "RectifySubject", rectify, &pdv1.RectifySubjectResponse{})
		if r.GetChange().GetVersion() != rectified.GetChange().GetVersion() || r.GetSubject().GetVersion() != before.GetVersion() {
			t.Errorf("%s: the retried rectification answers change %d at version %d, want change %d at version %d",
				cl.name(), r.GetChange().GetVersion(), r.GetSubject().GetVersion(), rectified.GetChange().GetVersion(), before.GetVersion())
		}
		err := callErr(t, cl, "AddHistoryEntry", historyReq(sub, "history-early", 2), &pdv1.AddHistoryEntryResponse{}, codes.InvalidArgument)
		if f := badFields(err); len(f) != 1 || f[0] != "idempotency_key" {
			t.Errorf("%s: the key of another request names %v, want [idempotency_key]", cl.name(), f)
		}
	}
	if after := getSubject(t, c, id); after.GetVersion() != before.GetVersion() {
		t.Errorf("after the retries: version %d, want %d", after.GetVersion(), before.GetVersion())
	}
	if n := e.count(t, "history"); n != entries || n != others+1 {
		t.Errorf("%d history entries after the retries, want %d", n, others+1)
	}
}

// The invariant across a crash between a change's write of its subject and
// its write of the op record: the op is still the subject's last, so the
// next change keeps it before overwriting it, and a retry of it replays
// however many changes come later. The crash is simulated on a store the
// server does not own (so it keeps no copy of the subject) by removing the
// op record with the driver; the changes after it go to another replica,
// which knows nothing of the records this one wrote.
func TestRetryOfAChangeWhoseRecordWasLostReplays(t *testing.T) {
	e := startOn(t, sharedStore(t))
	c := e.gc()
	sub := create(t, c, 72)
	id := sub.GetSubjectId()
	lost := historyReq(sub, "history-lost", 1)
	first := call(t, c, "AddHistoryEntry", lost, &pdv1.AddHistoryEntryResponse{}).GetEntry()
	ctx := context.Background()
	if _, err := e.coll("subject_ops").DeleteMany(ctx, bson.D{}); err != nil {
		t.Fatal(err)
	}
	// What the subject's document held of its keys before they had a
	// collection goes too, so that only the protocol can find the op.
	if _, err := e.coll("subjects").UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$unset", Value: bson.D{{Key: "ops", Value: ""}}}}); err != nil {
		t.Fatal(err)
	}
	r := e.replica(t)
	rc := r.gc()
	for i := range 3 {
		call(t, rc, "AddHistoryEntry", historyReq(sub, fmt.Sprintf("history-after-%d", i), i+10), &pdv1.AddHistoryEntryResponse{})
	}
	entries := e.count(t, "history")
	for _, cl := range []caller{rc, e.rc()} {
		again := call(t, cl, "AddHistoryEntry", lost, &pdv1.AddHistoryEntryResponse{}).GetEntry()
		if again.GetEntryId() != first.GetEntryId() {
			t.Errorf("%s: the retry of the change whose record was lost added entry %q, want the first %q", cl.name(), again.GetEntryId(), first.GetEntryId())
		}
	}
	if n := e.count(t, "history"); n != entries || n != 4 {
		t.Errorf("%d history entries after the retries, want 4", n)
	}
}

// The sweeper removes the records of keys older than the window, and only
// those; a key past its window counts as new.
func TestSweeperRemovesExpiredIdempotencyRecords(t *testing.T) {
	e := start(t)
	c := e.gc()
	sub := create(t, c, 73)
	call(t, c, "AddHistoryEntry", historyReq(sub, "history-day-1", 1), &pdv1.AddHistoryEntryResponse{})
	call(t, c, "AddHistoryEntry", historyReq(sub, "history-day-1b", 2), &pdv1.AddHistoryEntryResponse{})
	e.clock.Advance(25 * time.Hour)
	call(t, c, "AddHistoryEntry", historyReq(sub, "history-day-2", 3), &pdv1.AddHistoryEntryResponse{})
	if n := e.count(t, "subject_ops"); n != 3 {
		t.Fatalf("%d idempotency records before the sweep, want 3", n)
	}
	sweepNow(t, e, c)
	if n := e.count(t, "subject_ops"); n != 1 {
		t.Errorf("%d idempotency records after the sweep, want 1: the one younger than a day", n)
	}
	// Within its window a key replays; past it, it is a new change.
	call(t, c, "AddHistoryEntry", historyReq(sub, "history-day-2", 3), &pdv1.AddHistoryEntryResponse{})
	if n := e.count(t, "history"); n != 3 {
		t.Errorf("%d history entries after a retry within the window, want 3", n)
	}
	call(t, c, "AddHistoryEntry", historyReq(sub, "history-day-1", 1), &pdv1.AddHistoryEntryResponse{})
	if n := e.count(t, "history"); n != 4 {
		t.Errorf("%d history entries after a key past its window, want 4", n)
	}
}
