package server_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

const (
	streamOutbox  = "personaldata.v1.RequesterOutboxService/StreamOutboxMessages"
	outboxSummary = "personaldata.v1.RequesterOutboxService/GetOutboxSummary"
)

// storeGrants adds RPCs to a stored principal's grants behind the service's
// back, as an earlier version stored them, and waits until no replica uses
// the principal as it was cached: creating a principal publishes a change.
func storeGrants(t *testing.T, e *env, id string, rpcs ...string) {
	t.Helper()
	var p struct {
		RPCs []string `bson:"rpcs"`
	}
	if err := e.coll("principals").FindOne(t.Context(), bson.D{{Key: "_id", Value: id}}).Decode(&p); err != nil {
		t.Fatal(err)
	}
	for _, m := range rpcs {
		if !slices.Contains(p.RPCs, "/"+m) {
			p.RPCs = append(p.RPCs, "/"+m)
		}
	}
	if _, err := e.coll("principals").UpdateOne(t.Context(), bson.D{{Key: "_id", Value: id}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "rpcs", Value: p.RPCs}}}}); err != nil {
		t.Fatal(err)
	}
	e.principal(t, "after-"+id+"-stored", pdv1.PrincipalKind_PRINCIPAL_KIND_BILLING_SYSTEM, []string{"company"}, nil)
}

// callWithin is c.call bounded by a few seconds, so that a stream that was
// not refused ends the call instead of waiting for messages.
func callWithin(c caller, method string, req, resp proto.Message) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	return c.call(ctx, method, req, resp)
}

// Operators see how many messages wait for the mailer, by kind, and how
// long the oldest has waited: never an address, a text, a code or an id.
// Only the mailer lists, streams and acknowledges the messages. The first
// operator holding the outbox grants an earlier version stored with it
// loses them: the operator's kind no longer has them.
func TestOutboxOperatorsSeeCountsNotMessages(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		sub := create(t, c, 151)
		first := openRequest(t, c, openReq("rr-summary-1", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, 151)) // a receipt
		call(t, c, sendCodeRR, &pdv1.SendVerificationCodeRequest{IdempotencyKey: "summary-code-1", RequestId: first.GetRequestId()}, &pdv1.SendVerificationCodeResponse{})
		e.clock.Advance(10 * time.Minute)
		second := openRequest(t, c, openReq("rr-summary-2", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ERASURE, 151)) // a younger receipt
		e.clock.Advance(time.Minute)

		storeGrants(t, e, "operator", listOutbox, streamOutbox, ackOutbox)
		operator := e.as(c, e.operator)
		mailer := e.mailer(t, c)
		messages := outbox(t, mailer)
		if len(messages) != 3 {
			t.Fatalf("%d messages waiting, want 3", len(messages))
		}

		sum := call(t, operator, outboxSummary, &pdv1.GetOutboxSummaryRequest{}, &pdv1.GetOutboxSummaryResponse{})
		want := &pdv1.GetOutboxSummaryResponse{
			Waiting: 3, OldestCreateTime: messages[0].GetCreateTime(), OldestAge: sum.GetOldestAge(),
			Kinds: []*pdv1.OutboxKindSummary{
				{Kind: pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_VERIFICATION_CODE, Waiting: 1, OldestCreateTime: messages[0].GetCreateTime()},
				{Kind: pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_RECEIPT, Waiting: 2, OldestCreateTime: messages[0].GetCreateTime()},
			},
			ReadTime: sum.GetReadTime(),
		}
		for i, k := range sum.GetKinds() {
			if i < len(want.Kinds) {
				want.Kinds[i].OldestAge = k.GetOldestAge()
			}
			if k.GetOldestAge().AsDuration() != 11*time.Minute {
				t.Errorf("%v: the oldest waited %v, want 11m", k.GetKind(), k.GetOldestAge().AsDuration())
			}
		}
		if !proto.Equal(sum, want) || sum.GetOldestAge().AsDuration() != 11*time.Minute || !sum.GetReadTime().AsTime().Equal(e.clock.Now()) {
			t.Errorf("summary %v, want %v with the oldest 11m old", sum, want)
		}
		// Nothing of any message is in it.
		b, err := protojson.Marshal(sum)
		if err != nil {
			t.Fatal(err)
		}
		secrets := []string{first.GetRequestId(), second.GetRequestId(), sub.GetSubjectId(), sub.GetPerson().GetEmail(), codeOf(t, messages[1]), "Ärende"}
		for _, m := range messages {
			secrets = append(secrets, m.GetMessageId(), m.GetTo(), m.GetSubject())
		}
		for _, s := range secrets {
			if s != "" && strings.Contains(string(b), s) {
				t.Errorf("the summary holds %q: %s", s, b)
			}
		}

		// The operator reads, streams and acknowledges no message, though
		// its stored grants name those RPCs; nor do support staff.
		for _, who := range []caller{operator, c} {
			for method, req := range map[string]proto.Message{
				listOutbox:   &pdv1.ListOutboxMessagesRequest{},
				streamOutbox: &pdv1.StreamOutboxMessagesRequest{},
				ackOutbox:    &pdv1.AcknowledgeOutboxMessageRequest{MessageId: messages[1].GetMessageId()},
			} {
				md, err := methodDescriptor(method)
				if err != nil {
					t.Fatal(err)
				}
				err = callWithin(who, method, req, dynamicpb.NewMessage(md.Output()))
				if status.Code(err) != codes.PermissionDenied || !rpcNotPermitted(err) {
					t.Errorf("%s as %s: %v, want PERMISSION_DENIED (RPC_NOT_PERMITTED)", method, who.name(), err)
				}
			}
		}
		if got := outbox(t, mailer); len(got) != 3 {
			t.Errorf("%d messages waiting after the refused acknowledgement, want 3", len(got))
		}

		// The mailer sees the same counts, and they follow its work.
		call(t, mailer, ackOutbox, &pdv1.AcknowledgeOutboxMessageRequest{MessageId: messages[0].GetMessageId()}, &pdv1.AcknowledgeOutboxMessageResponse{})
		call(t, mailer, ackOutbox, &pdv1.AcknowledgeOutboxMessageRequest{MessageId: messages[1].GetMessageId()}, &pdv1.AcknowledgeOutboxMessageResponse{})
		after := call(t, mailer, outboxSummary, &pdv1.GetOutboxSummaryRequest{}, &pdv1.GetOutboxSummaryResponse{})
		if after.GetWaiting() != 1 || len(after.GetKinds()) != 1 || after.GetKinds()[0].GetKind() != pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_RECEIPT ||
			after.GetOldestAge().AsDuration() != time.Minute {
			t.Errorf("after two acknowledgements: %v, want one receipt a minute old", after)
		}
		call(t, mailer, ackOutbox, &pdv1.AcknowledgeOutboxMessageRequest{MessageId: messages[2].GetMessageId()}, &pdv1.AcknowledgeOutboxMessageResponse{})
		if empty := call(t, operator, outboxSummary, &pdv1.GetOutboxSummaryRequest{}, &pdv1.GetOutboxSummaryResponse{}); empty.GetWaiting() != 0 ||
			len(empty.GetKinds()) != 0 || empty.GetOldestCreateTime() != nil || empty.GetOldestAge() != nil {
			t.Errorf("an empty outbox: %v", empty)
		}
	})
}

// AcknowledgeOutboxMessage answers INVALID_ARGUMENT naming message_id for
// an id of another form than the service issues, NOT_FOUND for one of no
// message ever queued, and OK for a message acknowledged again (a request's
// by its sent mark, a policy notice's by the subject informed through it).
func TestAcknowledgeOutboxMessageAnswersExactly(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		sub := create(t, c, 161)
		other := create(t, c, 162)
		third := create(t, c, 163)
		mailer := e.mailer(t, c)
		r := openRequest(t, c, openReq("rr-ack-1", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, 161))
		receipt := takeMessage(t, mailer, r.GetRequestId(), pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_RECEIPT) // acknowledged once
		if want := r.GetRequestId() + ".0"; receipt.GetMessageId() != want {
			t.Fatalf("the receipt's id is %q, want %q", receipt.GetMessageId(), want)
		}
		op := e.as(c, e.operator)
		call(t, op, publishPolicy, policyReq("ack-pol-1", "2027-01", e.clock.Now().Add(time.Hour), true), &pdv1.PublishPolicyVersionResponse{})
		call(t, c, "EraseSubject", &pdv1.EraseSubjectRequest{IdempotencyKey: "ack-erase-162", SubjectId: other.GetSubjectId(),
			Ground: pdv1.ErasureGround_ERASURE_GROUND_NO_LEGITIMATE_REASON, Channel: pdv1.Channel_CHANNEL_EMAIL, Reference: "ticket-162", PerformedBy: "agent-1"},
			&pdv1.EraseSubjectResponse{})
		notifyPolicy(t, e, "ack-notify-1", "2027-01", 0)
		var notices []string
		for _, m := range policyNotices(t, mailer) {
			notices = append(notices, m.GetMessageId())
		}
		slices.Sort(notices)
		want := []string{"policy.2027-01." + sub.GetSubjectId(), "policy.2027-01." + third.GetSubjectId()}
		if slices.Sort(want); !slices.Equal(notices, want) {
			t.Fatalf("policy notices %v, want %v", notices, want)
		}
		// Support staff record one subject informed by phone while its
		// notice waits: acknowledging the notice then records nothing more.
		call(t, c, recordPolicyAck, &pdv1.RecordPolicyAcknowledgementRequest{IdempotencyKey: "ack-informed-163", SubjectId: third.GetSubjectId(), Version: "2027-01",
			Kind: pdv1.PolicyAcknowledgementKind_POLICY_ACKNOWLEDGEMENT_KIND_INFORMED, Channel: pdv1.Channel_CHANNEL_PHONE, Reference: "call-163",
			AcknowledgeTime: timestamppb.New(e.clock.Now())},
			&pdv1.RecordPolicyAcknowledgementResponse{})
		for _, id := range notices {
			callMessage(t, mailer, id, codes.OK)
		}

		for _, id := range []string{
			"..", ".", "-", "x", r.GetRequestId(), r.GetRequestId() + ".", r.GetRequestId() + ".-1", r.GetRequestId() + ".01",
			r.GetRequestId() + ".0.0", r.GetRequestId() + ".1e3", strings.ToUpper(r.GetRequestId()) + ".0", r.GetRequestId() + "..0",
			r.GetRequestId()[:25] + ".0", r.GetRequestId() + "a.0", r.GetRequestId() + ".0123456789", "policy", "policy..",
			"policy.2027-01", "policy.2027-01." + sub.GetSubjectId()[:25], "policy.." + sub.GetSubjectId(), "policy.2027-01." + sub.GetSubjectId() + ".0",
			"policy.-x." + sub.GetSubjectId(), "notice.2027-01." + sub.GetSubjectId(), strings.Repeat("a", 200),
		} {
			err := callMessage(t, mailer, id, codes.InvalidArgument)
			if f := badFields(err); !slices.Equal(f, []string{"message_id"}) {
				t.Errorf("acknowledge %q: bad fields %v, want message_id", id, f)
			}
			if len(id) > 8 && strings.Contains(fmt.Sprint(status.Convert(err).Proto()), id) {
				t.Errorf("acknowledge %q: the error quotes the id", id)
			}
		}
		if c.name() == "grpc" {
			callMessage(t, mailer, "", codes.InvalidArgument)
		}
		for _, id := range []string{
			strings.Repeat("a", 26) + ".0",           // no such request
			r.GetRequestId() + ".7",                  // a step the request never had
			r.GetRequestId() + ".1",                  // a step with no message queued
			"policy.2027-01." + other.GetSubjectId(), // a subject erased before the notice: none was queued
			"policy.2031-01." + sub.GetSubjectId(),   // no such version
			"policy.2027-01." + strings.Repeat("b", 26),
		} {
			callMessage(t, mailer, id, codes.NotFound)
		}
		// A repeat of a real acknowledgement, of a request's message and of
		// a policy notice, is harmless.
		for range 2 {
			callMessage(t, mailer, receipt.GetMessageId(), codes.OK)
			for _, id := range notices {
				callMessage(t, mailer, id, codes.OK)
			}
		}
		if left := outbox(t, mailer); len(left) != 0 {
			t.Errorf("%d messages left, want none", len(left))
		}
	})
}

// callMessage acknowledges message id as c and checks the answer's code
// (over REST, its HTTP status too).
func callMessage(t *testing.T, c caller, id string, code codes.Code) error {
	t.Helper()
	req := &pdv1.AcknowledgeOutboxMessageRequest{MessageId: id}
	if code == codes.OK {
		call(t, c, ackOutbox, req, &pdv1.AcknowledgeOutboxMessageResponse{})
		return nil
	}
	return callErr(t, c, ackOutbox, req, &pdv1.AcknowledgeOutboxMessageResponse{}, code)
}
