// The full-disk test: the real personaldatad binary with its embedded
// store on the power-cut FUSE filesystem (store/powercut), which Fill makes
// full (every write that needs space fails with ENOSPC) and Free empties
// again. It runs in the ordinary test command, skipped with -short or
// where FUSE cannot be mounted, as the power-cut test is:
//
//   - writes: each write RPC, on a disk full but for the audit trail's
//     files (as when the trail's log still had room: the issue's
//     CreateSubject), over gRPC and over REST, answers UNAVAILABLE with
//     RetryInfo and reason STORE_UNAVAILABLE (HTTP 503), never INTERNAL;
//     nothing is written; once space is freed the same request succeeds.
//     The writing streams (RotateDataKeys, EraseControllerSubjects,
//     NotifyPolicyChange) end with that status: their audit events have
//     room, and each refuses at its first store write (the key's rewrap,
//     the job's record), before any progress. The daemon logs no error.
//   - readiness: on a disk full everywhere, right after the first call that
//     fails, /readyz and gRPC health (of "" and of each API service) agree
//     at once; freed, the next call makes both ready again.
//   - restart: started on a full disk (but for SQLite's shared-memory
//     files, without which no database opens), the daemon is not ready by
//     /readyz nor by gRPC health from its first answers; freed, both say
//     ready.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store/envelope"
	"github.com/example/personaldata/store/powercut"
	"github.com/example/personaldata/store/storetest"
)

// auditRoom are the audit trail's files, which keep room in the writes
// subtest, so that each call's refusal is the store's own answer to the
// handler and not the trail's (which answers UNAVAILABLE by itself).
const auditRoom = "personaldata_audit.sqlite*"

// fullDiskReads are the RPCs that change nothing: POST routes that only
// read are named here, the GET routes are reads by their verb.
var fullDiskReads = []string{
	"personaldata.v1.PersonalDataService/FindSubject",
	"personaldata.v1.ProcessorAgreementService/CheckProcessorAgreement",
	"personaldata.v1.ProcessorAgreementService/ExportControllerSubjects",
	"personaldata.v1.AuditService/VerifyAuditChain",
	"personaldata.v1.BreachService/AssessBreachImpact",
}

// fullDiskNotCovered are write RPCs the writes subtest does not call, with
// why; TestFullDiskCoversEveryWrite keeps this list honest.
var fullDiskNotCovered = map[string]string{
	// Only a data subject signed in to the self-service page calls these
	// (in-process, with a session of the store), never a principal of this
	// fixture. Their store writes are those of the calls covered here: a
	// challenge like the sign-in's, an outbox message, and RectifySubject's.
	"personaldata.v1.PersonalDataService/StartContactChange":    "data subjects only, through the self-service page; writes as RectifySubject and the outbox do",
	"personaldata.v1.PersonalDataService/ConfirmContactChange":  "data subjects only, through the self-service page; writes as RectifySubject does",
	"personaldata.v1.RightsRequestService/OpenOwnRightsRequest": "data subjects only, through the self-service page; writes as OpenRightsRequest and ForwardRightsRequest do",
	// It writes the audit database alone, which the writes subtest keeps
	// room for (auditRoom); with that database full, its store write fails
	// as every audit append does (UNAVAILABLE).
	"personaldata.v1.AuditService/CreateAuditCheckpoint": "writes only the audit database, which the writes subtest keeps room for",
}

// fullDiskCase is one write RPC: prepare makes what it needs (with space)
// and returns its request, called as who; done sees the response of the
// call that succeeded once space was freed (for a stream, its last
// message).
type fullDiskCase struct {
	method string
	// name tells apart two cases of one method in the subtests' names.
	name    string
	who     func(f *fullDiskFixture) client
	prepare func(t *testing.T, f *fullDiskFixture) proto.Message
	resp    func() proto.Message
	done    func(t *testing.T, f *fullDiskFixture, resp proto.Message)
	// unchanged, when set, checks after the refusals (space freed, before
	// the retry) that nothing was written. A case that has nothing to read
	// it by checks in done that the retry is what did the write.
	unchanged func(t *testing.T, f *fullDiskFixture)
}

// fullDiskFixture is the daemon and what the cases made.
type fullDiskFixture struct {
	ctx                  context.Context
	conn                 *grpc.ClientConn
	base                 string // http://host:port of the REST gateway
	keyFile              string // the daemon's master key file
	op, staff, dom, cust client
	mailer               client // the only kind that reads the outbox's messages
	subject              *pdv1.Subject
	version              int64
	consentID            string
	holdID               string
	requestID            string // the rights request carried to its fulfilment
	forwardID            string // the rights request forwarded to the customer
	principalID          string
	agreementID          string
	custSubjectID        string // a subject of the customer, cust-full
	keyVersion           uint32 // the master key version added for the rotation
	breachID             string // the breach record opened on the subjects touched
	freed                time.Time
}

func (f *fullDiskFixture) call(via client, method string, req, resp proto.Message) error {
	ctx, cancel := context.WithTimeout(f.ctx, requestTimeout)
	defer cancel()
	if isServerStream(method) {
		last, err := via.stream(ctx, method, req, func() proto.Message { return proto.Clone(resp) })
		if last != nil {
			proto.Reset(resp)
			proto.Merge(resp, last)
		}
		return err
	}
	return via.call(ctx, method, req, resp)
}

// must calls method and fails the test unless it succeeds: the set-up of a
// case, with space.
func (f *fullDiskFixture) must(t *testing.T, via client, method string, req, resp proto.Message) {
	t.Helper()
	if err := f.call(via, method, req, resp); err != nil {
		t.Fatalf("%s: %s %v", method[strings.LastIndexByte(method, '/')+1:], outcome(err), status.Convert(err).Details())
	}
}

// principal creates a principal of kind for tenant and returns it as a
// client over gRPC (other() is REST).
func (f *fullDiskFixture) principal(t *testing.T, id string, kind pdv1.PrincipalKind, tenant string, purposes ...pdv1.Purpose) client {
	t.Helper()
	var made pdv1.CreatePrincipalResponse
	f.must(t, f.op, principalRPC, &pdv1.CreatePrincipalRequest{IdempotencyKey: id, Principal: &pdv1.Principal{
		PrincipalId: id, Kind: kind, TenantIds: []string{tenant}, Purposes: purposes}}, &made)
	return client{conn: f.conn, base: f.base, token: made.GetToken()}
}

// subjectVersion reads the subject's version as support staff.
func (f *fullDiskFixture) subjectVersion(t *testing.T) int64 {
	t.Helper()
	// An access request, which a restriction does not refuse.
	var res pdv1.AccessSubjectResponse
	if err := f.call(f.staff, accessRPC, &pdv1.AccessSubjectRequest{SubjectId: f.subject.GetSubjectId()}, &res); err != nil {
		t.Fatalf("read the subject: %s", outcome(err))
	}
	return res.GetSubject().GetVersion()
}

// openRequest opens an access request by the fixture's subject, by
// letter, and returns its id.
func (f *fullDiskFixture) openRequest(t *testing.T, key string) string {
	t.Helper()
	var res pdv1.OpenRightsRequestResponse
	f.must(t, f.staff, openRequestRPC, openRequestOf(f, key), &res)
	return res.GetRequest().GetRequestId()
}

func openRequestOf(f *fullDiskFixture, key string) *pdv1.OpenRightsRequestRequest {
	return &pdv1.OpenRightsRequestRequest{IdempotencyKey: key, ControllerId: "company",
		Kind: pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, Channel: pdv1.Channel_CHANNEL_LETTER,
		ClaimedIdentity: &pdv1.ClaimedIdentity{Key: &pdv1.ClaimedIdentity_IdentityNumber{IdentityNumber: f.subject.GetPerson().GetIdentityNumber()}},
		Reference:       "letter-" + key}
}

// outbox lists the unacknowledged messages to requesters, as the mailer.
func (f *fullDiskFixture) outbox(t *testing.T) []*pdv1.OutboxMessage {
	t.Helper()
	var out []*pdv1.OutboxMessage
	for token := ""; ; {
		var res pdv1.ListOutboxMessagesResponse
		f.must(t, f.mailer, listOutboxRPC, &pdv1.ListOutboxMessagesRequest{PageSize: 100, PageToken: token}, &res)
		out = append(out, res.GetMessages()...)
		if token = res.GetNextPageToken(); token == "" {
			return out
		}
	}
}

// outboxMessage is the first message of kind about the request id ("" for
// any), or fails the test.
func (f *fullDiskFixture) outboxMessage(t *testing.T, kind pdv1.OutboxMessageKind, requestID string) *pdv1.OutboxMessage {
	t.Helper()
	for _, m := range f.outbox(t) {
		if m.GetKind() == kind && (requestID == "" || m.GetRequestId() == requestID) {
			return m
		}
	}
	t.Fatalf("no %s message in the outbox", kind)
	return nil
}

// The snapshots of what a case may write, read with space; a case compares
// them before its calls on the full disk and after.

func subjectSnapshot(t *testing.T, f *fullDiskFixture) string {
	return fmt.Sprintf("subject at version %d", f.subjectVersion(t))
}

func requestSnapshot(id func(*fullDiskFixture) string) func(t *testing.T, f *fullDiskFixture) string {
	return func(t *testing.T, f *fullDiskFixture) string {
		t.Helper()
		var res pdv1.GetRightsRequestResponse
		f.must(t, f.staff, getRequestRPC, &pdv1.GetRightsRequestRequest{RequestId: id(f)}, &res)
		r := res.GetRequest()
		return fmt.Sprintf("request %s with %d steps, %d tries left, updated %s", r.GetState(), len(r.GetSteps()),
			r.GetCode().GetTriesLeft(), r.GetUpdateTime().AsTime().Format(time.RFC3339Nano))
	}
}

func principalSnapshot(t *testing.T, f *fullDiskFixture) string {
	t.Helper()
	var res pdv1.GetPrincipalResponse
	f.must(t, f.op, "personaldata.v1.PrincipalService/GetPrincipal", &pdv1.GetPrincipalRequest{PrincipalId: f.principalID}, &res)
	p := res.GetPrincipal()
	return fmt.Sprintf("principal at version %d, revoked %t, %d tokens, tenants %v", p.GetVersion(), p.GetRevoked(), p.GetTokenCount(), p.GetTenantIds())
}

func agreementSnapshot(t *testing.T, f *fullDiskFixture) string {
	t.Helper()
	var res pdv1.GetProcessorAgreementResponse
	f.must(t, f.op, "personaldata.v1.ProcessorAgreementService/GetProcessorAgreement", &pdv1.GetProcessorAgreementRequest{AgreementId: f.agreementID}, &res)
	a := res.GetAgreement()
	return fmt.Sprintf("agreement %s at version %d, terminated %v", a.GetState(), a.GetVersion(), a.GetTerminateTime() != nil)
}

func outboxSnapshot(t *testing.T, f *fullDiskFixture) string {
	var ids []string
	for _, m := range f.outbox(t) {
		ids = append(ids, m.GetKind().String()+" "+m.GetMessageId())
	}
	slices.Sort(ids)
	return fmt.Sprintf("outbox %v", ids)
}

func noticesSnapshot(t *testing.T, f *fullDiskFixture) string {
	t.Helper()
	var res pdv1.ListRecipientNotificationsResponse
	f.must(t, f.dom, listNoticesRPC, &pdv1.ListRecipientNotificationsRequest{Recipient: "iis.se"}, &res)
	var ids []string
	for _, n := range res.GetNotifications() {
		ids = append(ids, n.GetNotificationId())
	}
	return fmt.Sprintf("notifications pending %v", ids)
}

func custSubjectSnapshot(t *testing.T, f *fullDiskFixture) string {
	t.Helper()
	var res pdv1.AccessSubjectResponse
	err := f.call(f.cust, accessRPC, &pdv1.AccessSubjectRequest{SubjectId: f.custSubjectID}, &res)
	return fmt.Sprintf("customer's subject: %s, version %d", outcome(err), res.GetSubject().GetVersion())
}

// watching makes c check that what snapshot reads is the same after the
// refused calls as before them (read once prepare has run).
func watching(snapshot func(t *testing.T, f *fullDiskFixture) string, c fullDiskCase) fullDiskCase {
	prepare := c.prepare
	var before string
	c.prepare = func(t *testing.T, f *fullDiskFixture) proto.Message {
		req := prepare(t, f)
		before = snapshot(t, f)
		return req
	}
	c.unchanged = func(t *testing.T, f *fullDiskFixture) {
		t.Helper()
		if after := snapshot(t, f); after != before {
			t.Errorf("after the refused calls: %s; before them: %s: something was written", after, before)
		}
	}
	return c
}

// onSubject is a case on the fixture's subject: f.version is its version
// before prepare, and the refused calls must leave it there.
func onSubject(c fullDiskCase) fullDiskCase {
	prepare := c.prepare
	c.prepare = func(t *testing.T, f *fullDiskFixture) proto.Message {
		f.version = f.subjectVersion(t)
		return prepare(t, f)
	}
	return watching(subjectSnapshot, c)
}

func staffOf(f *fullDiskFixture) client  { return f.staff }
func opOf(f *fullDiskFixture) client     { return f.op }
func domOf(f *fullDiskFixture) client    { return f.dom }
func custOf(f *fullDiskFixture) client   { return f.cust }
func mailerOf(f *fullDiskFixture) client { return f.mailer }

func theRequest(f *fullDiskFixture) string   { return f.requestID }
func theForwarded(f *fullDiskFixture) string { return f.forwardID }

// policyVersion is a version of the privacy policy to publish.
func policyVersion(version string, material bool, effective time.Time) *pdv1.PolicyVersion {
	return &pdv1.PolicyVersion{Version: version, EffectiveTime: timestamppb.New(effective), Language: "sv",
		TextSha256: "3f1c9a1e6b1d0c2a4e5f60718293a4b5c6d7e8f90123456789abcdef01234567",
		Url:        "https://example.test/dataskyddspolicy/" + version, ChangeSummary: "Förtydliganden.", Material: material}
}

// agreementTerms are the customer's terms, in force for an hour.
func agreementTerms(reference string) *pdv1.AgreementTerms {
	now := time.Now()
	return &pdv1.AgreementTerms{SignTime: timestamppb.New(now.Add(-2 * time.Hour)), InForceFrom: timestamppb.New(now.Add(-time.Hour)),
		Purposes:      []pdv1.Purpose{pdv1.Purpose_PURPOSE_SUPPORT},
		Categories:    []pdv1.DataCategory{pdv1.DataCategory_DATA_CATEGORY_IDENTIFICATION, pdv1.DataCategory_DATA_CATEGORY_CONTACT},
		SubProcessors: []string{"iis.se"}, DocumentReference: reference}
}

// fullDiskCases are the write RPCs in an order in which each finds what it
// needs: the subject's changes, the rights request's steps, the principals,
// the agreement, the policy, the key rotation; last the erasure, the
// release of its hold and the sweep that purges what the hold kept.
func fullDiskCases() []fullDiskCase {
	const (
		pd  = "personaldata.v1.PersonalDataService/"
		rr  = "personaldata.v1.RightsRequestService/"
		prs = "personaldata.v1.PrincipalService/"
		pa  = "personaldata.v1.ProcessorAgreementService/"
		pol = "personaldata.v1.PolicyService/"
		ret = "personaldata.v1.RetentionService/"
		br  = "personaldata.v1.BreachRecordService/"
	)
	return []fullDiskCase{
		// The subject and its record.
		{method: pd + "CreateSubject", who: staffOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.CreateSubjectRequest{IdempotencyKey: "full-create", ControllerId: "company", Person: campaignPerson(7_100_001),
					Channel: pdv1.Channel_CHANNEL_PORTAL, Reference: "full-disk"}
			},
			resp: func() proto.Message { return &pdv1.CreateSubjectResponse{} },
			unchanged: func(t *testing.T, f *fullDiskFixture) {
				err := f.call(f.staff, pd+"FindSubject", &pdv1.FindSubjectRequest{ControllerId: "company",
					Key: &pdv1.FindSubjectRequest_Email{Email: campaignPerson(7_100_001).GetEmail()}}, &pdv1.FindSubjectResponse{})
				if status.Code(err) != codes.NotFound {
					t.Errorf("FindSubject of the refused create once space is freed: %s, want NotFound", outcome(err))
				}
			},
			done: func(t *testing.T, f *fullDiskFixture, resp proto.Message) {
				f.subject = resp.(*pdv1.CreateSubjectResponse).GetSubject()
			}},
		onSubject(fullDiskCase{method: pd + "RectifySubject", who: staffOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.RectifySubjectRequest{IdempotencyKey: "full-rectify", SubjectId: f.subject.GetSubjectId(), ExpectedVersion: f.version,
					Person: &pdv1.Person{Phone: "+46709990001"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"phone"}},
					Channel: pdv1.Channel_CHANNEL_PHONE, Reference: "ticket-full", PerformedBy: "support-agent-7"}
			},
			resp: func() proto.Message { return &pdv1.RectifySubjectResponse{} }}),
		onSubject(fullDiskCase{method: pd + "AddHistoryEntry", who: staffOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.AddHistoryEntryRequest{IdempotencyKey: "full-history", SubjectId: f.subject.GetSubjectId(), Entry: &pdv1.HistoryEntry{
					Kind: pdv1.HistoryKind_HISTORY_KIND_EMAIL_CONVERSATION, Title: "Order 1", Body: "Hej!\nJag vill ändra min order.\n",
					OccurTime: timestamppb.New(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)), Reference: "order-1"}}
			},
			resp: func() proto.Message { return &pdv1.AddHistoryEntryResponse{} }}),
		onSubject(fullDiskCase{method: "personaldata.v1.ConsentService/RecordConsent", who: staffOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.RecordConsentRequest{IdempotencyKey: "full-consent", SubjectId: f.subject.GetSubjectId(),
					Purpose: pdv1.ConsentPurpose_CONSENT_PURPOSE_DIRECT_MARKETING, GiveTime: timestamppb.New(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)),
					Channel: pdv1.Channel_CHANNEL_PORTAL, WordingReference: "marketing-consent-v3"}
			},
			resp: func() proto.Message { return &pdv1.RecordConsentResponse{} },
			done: func(t *testing.T, f *fullDiskFixture, resp proto.Message) {
				f.consentID = resp.(*pdv1.RecordConsentResponse).GetConsent().GetConsentId()
			}}),
		onSubject(fullDiskCase{method: "personaldata.v1.ConsentService/WithdrawConsent", who: staffOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.WithdrawConsentRequest{IdempotencyKey: "full-withdraw", SubjectId: f.subject.GetSubjectId(), ConsentId: f.consentID,
					Channel: pdv1.Channel_CHANNEL_EMAIL, Reference: "mail-withdraw"}
			},
			resp: func() proto.Message { return &pdv1.WithdrawConsentResponse{} },
			done: func(t *testing.T, f *fullDiskFixture, resp proto.Message) {
				if resp.(*pdv1.WithdrawConsentResponse).GetConsent().GetWithdrawTime() == nil {
					t.Error("the consent is not withdrawn after the retry")
				}
			}}),
		onSubject(fullDiskCase{method: "personaldata.v1.DisclosureService/Disclose", who: domOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.DiscloseRequest{IdempotencyKey: "full-disclose", SubjectId: f.subject.GetSubjectId(), Recipient: "iis.se",
					Purpose: pdv1.Purpose_PURPOSE_DOMAIN_REGISTRATION, Categories: []pdv1.DataCategory{pdv1.DataCategory_DATA_CATEGORY_CONTACT},
					Basis: pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONTRACT, Reference: "order-full"}
			},
			resp: func() proto.Message { return &pdv1.DiscloseResponse{} }}),
		onSubject(fullDiskCase{method: ret + "PlaceHold", who: staffOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.PlaceHoldRequest{IdempotencyKey: "full-hold", SubjectId: f.subject.GetSubjectId(), Basis: pdv1.HoldBasis_HOLD_BASIS_BOOKKEEPING,
					Categories: []pdv1.DataCategory{pdv1.DataCategory_DATA_CATEGORY_CONTACT}, TransactionTime: timestamppb.New(time.Now().AddDate(0, -1, 0)),
					Reference: "invoice-1001"}
			},
			resp: func() proto.Message { return &pdv1.PlaceHoldResponse{} },
			done: func(t *testing.T, f *fullDiskFixture, resp proto.Message) {
				f.holdID = resp.(*pdv1.PlaceHoldResponse).GetHold().GetHoldId()
			}}),
		// Restricting tells iis.se, to which the subject's data was
		// disclosed (Art. 19).
		onSubject(fullDiskCase{method: pd + "RestrictProcessing", who: staffOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.RestrictProcessingRequest{IdempotencyKey: "full-restrict", SubjectId: f.subject.GetSubjectId(),
					Ground: pdv1.RestrictionGround_RESTRICTION_GROUND_ACCURACY_CONTESTED, Channel: pdv1.Channel_CHANNEL_PHONE,
					Reference: "ticket-200", PerformedBy: "support-agent-7"}
			},
			resp: func() proto.Message { return &pdv1.RestrictProcessingResponse{} }}),
		watching(noticesSnapshot, fullDiskCase{method: "personaldata.v1.DisclosureService/AcknowledgeNotification", who: domOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				var res pdv1.ListRecipientNotificationsResponse
				f.must(t, f.dom, listNoticesRPC, &pdv1.ListRecipientNotificationsRequest{Recipient: "iis.se"}, &res)
				if len(res.GetNotifications()) == 0 {
					t.Fatal("the restriction queued no notification for iis.se")
				}
				return &pdv1.AcknowledgeNotificationRequest{Recipient: "iis.se", NotificationId: res.GetNotifications()[0].GetNotificationId()}
			},
			resp: func() proto.Message { return &pdv1.AcknowledgeNotificationResponse{} }}),
		onSubject(fullDiskCase{method: pd + "LiftRestriction", who: staffOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.LiftRestrictionRequest{IdempotencyKey: "full-lift", SubjectId: f.subject.GetSubjectId(),
					Resolution: pdv1.LiftResolution_LIFT_RESOLUTION_CONFIRMED_CORRECT, Channel: pdv1.Channel_CHANNEL_PHONE,
					Reference: "ticket-201", PerformedBy: "support-agent-7"}
			},
			resp: func() proto.Message { return &pdv1.LiftRestrictionResponse{} }}),

		// A rights request, from its opening to its fulfilment, and the
		// messages it queues for the requester.
		{method: rr + "OpenRightsRequest", who: staffOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message { return openRequestOf(f, "full-open") },
			resp:    func() proto.Message { return &pdv1.OpenRightsRequestResponse{} },
			unchanged: func(t *testing.T, f *fullDiskFixture) {
				var res pdv1.ListRightsRequestsResponse
				f.must(t, f.staff, "personaldata.v1.RightsRequestService/ListRightsRequests", &pdv1.ListRightsRequestsRequest{ControllerId: "company"}, &res)
				if n := len(res.GetRequests()); n != 0 {
					t.Errorf("%d rights requests after the refused opening", n)
				}
			},
			done: func(t *testing.T, f *fullDiskFixture, resp proto.Message) {
				f.requestID = resp.(*pdv1.OpenRightsRequestResponse).GetRequest().GetRequestId()
			}},
		watching(outboxSnapshot, fullDiskCase{method: "personaldata.v1.RequesterOutboxService/AcknowledgeOutboxMessage", who: mailerOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				m := f.outboxMessage(t, pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_RECEIPT, f.requestID)
				return &pdv1.AcknowledgeOutboxMessageRequest{MessageId: m.GetMessageId()}
			},
			resp: func() proto.Message { return &pdv1.AcknowledgeOutboxMessageResponse{} },
			done: func(t *testing.T, f *fullDiskFixture, _ proto.Message) {
				if slices.ContainsFunc(f.outbox(t), func(m *pdv1.OutboxMessage) bool { return m.GetRequestId() == f.requestID }) {
					t.Error("the receipt is still in the outbox after the acknowledgement")
				}
			}}),
		watching(requestSnapshot(theRequest), fullDiskCase{method: rr + "SendVerificationCode", who: staffOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.SendVerificationCodeRequest{IdempotencyKey: "full-code", RequestId: f.requestID}
			},
			resp: func() proto.Message { return &pdv1.SendVerificationCodeResponse{} }}),
		watching(requestSnapshot(theRequest), fullDiskCase{method: rr + "ConfirmVerificationCode", who: staffOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				m := f.outboxMessage(t, pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_VERIFICATION_CODE, f.requestID)
				code := codePattern.FindStringSubmatch(m.GetBody())
				if code == nil {
					t.Fatal("no code in the code message")
				}
				return &pdv1.ConfirmVerificationCodeRequest{IdempotencyKey: "full-confirm", RequestId: f.requestID, Code: code[1] + code[2]}
			},
			resp: func() proto.Message { return &pdv1.ConfirmVerificationCodeResponse{} },
			done: func(t *testing.T, f *fullDiskFixture, resp proto.Message) {
				if st := resp.(*pdv1.ConfirmVerificationCodeResponse).GetRequest().GetState(); st != pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_VERIFIED {
					t.Errorf("the request is %s after the confirmation, want VERIFIED", st)
				}
			}}),
		watching(requestSnapshot(theRequest), fullDiskCase{method: rr + "AttestIdentity", who: staffOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.AttestIdentityRequest{IdempotencyKey: "full-attest", RequestId: f.requestID,
					Method: pdv1.VerificationMethod_VERIFICATION_METHOD_BANKID, Reference: "bankid-order-full"}
			},
			resp: func() proto.Message { return &pdv1.AttestIdentityResponse{} }}),
		watching(requestSnapshot(theRequest), fullDiskCase{method: rr + "ExtendRightsRequest", who: staffOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.ExtendRightsRequestRequest{IdempotencyKey: "full-extend", RequestId: f.requestID, Months: 1,
					Reason: "The request covers many years of records."}
			},
			resp: func() proto.Message { return &pdv1.ExtendRightsRequestResponse{} }}),
		watching(requestSnapshot(theRequest), fullDiskCase{method: rr + "DecideRightsRequest", who: staffOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.DecideRightsRequestRequest{IdempotencyKey: "full-decide", RequestId: f.requestID,
					Outcome: pdv1.DecisionOutcome_DECISION_OUTCOME_GRANT, Reason: pdv1.DecisionReason_DECISION_REASON_RIGHT_APPLIES}
			},
			resp: func() proto.Message { return &pdv1.DecideRightsRequestResponse{} }}),
		watching(requestSnapshot(theRequest), fullDiskCase{method: rr + "FulfilRightsRequest", who: staffOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.FulfilRightsRequestRequest{IdempotencyKey: "full-fulfil", RequestId: f.requestID,
					Action: &pdv1.FulfilRightsRequestRequest_Access{Access: &pdv1.AccessAction{}}}
			},
			resp: func() proto.Message { return &pdv1.FulfilRightsRequestResponse{} },
			done: func(t *testing.T, f *fullDiskFixture, resp proto.Message) {
				if st := resp.(*pdv1.FulfilRightsRequestResponse).GetRequest().GetState(); st != pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_FULFILLED {
					t.Errorf("the request is %s after the fulfilment, want FULFILLED", st)
				}
			}}),

		// Principals.
		{method: prs + "CreatePrincipal", who: opOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.CreatePrincipalRequest{IdempotencyKey: "full-principal", Principal: &pdv1.Principal{PrincipalId: "full-billing",
					Kind: pdv1.PrincipalKind_PRINCIPAL_KIND_BILLING_SYSTEM, TenantIds: []string{"company"}}}
			},
			resp: func() proto.Message { return &pdv1.CreatePrincipalResponse{} },
			unchanged: func(t *testing.T, f *fullDiskFixture) {
				err := f.call(f.op, prs+"GetPrincipal", &pdv1.GetPrincipalRequest{PrincipalId: "full-billing"}, &pdv1.GetPrincipalResponse{})
				if status.Code(err) != codes.NotFound {
					t.Errorf("GetPrincipal of the refused create once space is freed: %s, want NotFound", outcome(err))
				}
			},
			done: func(t *testing.T, f *fullDiskFixture, resp proto.Message) {
				f.principalID = resp.(*pdv1.CreatePrincipalResponse).GetPrincipal().GetPrincipalId()
			}},
		watching(principalSnapshot, fullDiskCase{method: prs + "IssueToken", who: opOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.IssueTokenRequest{IdempotencyKey: "full-token", PrincipalId: f.principalID}
			},
			resp: func() proto.Message { return &pdv1.IssueTokenResponse{} }}),
		watching(principalSnapshot, fullDiskCase{method: prs + "UpdatePrincipal", who: opOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				var res pdv1.GetPrincipalResponse
				f.must(t, f.op, prs+"GetPrincipal", &pdv1.GetPrincipalRequest{PrincipalId: f.principalID}, &res)
				return &pdv1.UpdatePrincipalRequest{IdempotencyKey: "full-update-principal", PrincipalId: f.principalID,
					ExpectedVersion: res.GetPrincipal().GetVersion(), TenantIds: []string{"company", "cust-full"},
					UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"tenant_ids"}}}
			},
			resp: func() proto.Message { return &pdv1.UpdatePrincipalResponse{} }}),
		watching(principalSnapshot, fullDiskCase{method: prs + "RevokePrincipal", who: opOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.RevokePrincipalRequest{IdempotencyKey: "full-revoke", PrincipalId: f.principalID, Reason: "retired"}
			},
			resp: func() proto.Message { return &pdv1.RevokePrincipalResponse{} },
			done: func(t *testing.T, f *fullDiskFixture, resp proto.Message) {
				if !resp.(*pdv1.RevokePrincipalResponse).GetPrincipal().GetRevoked() {
					t.Error("the principal is not revoked after the retry")
				}
			}}),

		// A customer's agreement, a request forwarded to the customer, the
		// customer's erasure of its subjects, the end of the agreement.
		{method: pa + "CreateProcessorAgreement", who: opOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.CreateProcessorAgreementRequest{IdempotencyKey: "full-agreement", CustomerId: "cust-full", Terms: agreementTerms("dpa/cust-full")}
			},
			resp: func() proto.Message { return &pdv1.CreateProcessorAgreementResponse{} },
			unchanged: func(t *testing.T, f *fullDiskFixture) {
				var res pdv1.ListProcessorAgreementsResponse
				f.must(t, f.op, pa+"ListProcessorAgreements", &pdv1.ListProcessorAgreementsRequest{CustomerId: "cust-full"}, &res)
				if n := len(res.GetAgreements()); n != 0 {
					t.Errorf("%d agreements after the refused create", n)
				}
			},
			done: func(t *testing.T, f *fullDiskFixture, resp proto.Message) {
				f.agreementID = resp.(*pdv1.CreateProcessorAgreementResponse).GetAgreement().GetAgreementId()
			}},
		watching(agreementSnapshot, fullDiskCase{method: pa + "AmendProcessorAgreement", who: opOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.AmendProcessorAgreementRequest{IdempotencyKey: "full-amend", AgreementId: f.agreementID, ExpectedVersion: 1,
					Terms: agreementTerms("dpa/cust-full-2")}
			},
			resp: func() proto.Message { return &pdv1.AmendProcessorAgreementResponse{} },
			done: func(t *testing.T, f *fullDiskFixture, resp proto.Message) {
				if v := resp.(*pdv1.AmendProcessorAgreementResponse).GetAgreement().GetVersion(); v != 2 {
					t.Errorf("the agreement is at version %d after the amendment, want 2", v)
				}
			}}),
		watching(requestSnapshot(theForwarded), fullDiskCase{method: rr + "ForwardRightsRequest", who: staffOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				f.forwardID = f.openRequest(t, "full-open-forward")
				return &pdv1.ForwardRightsRequestRequest{IdempotencyKey: "full-forward", RequestId: f.forwardID, ControllerId: "cust-full",
					Reference: "forwarded-full"}
			},
			resp: func() proto.Message { return &pdv1.ForwardRightsRequestResponse{} }}),
		// As the customer, who may erase its own subjects: with one subject,
		// the job is recorded before any is erased.
		watching(custSubjectSnapshot, fullDiskCase{method: pa + "EraseControllerSubjects", who: custOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				f.cust = f.principal(t, "full-customer", pdv1.PrincipalKind_PRINCIPAL_KIND_CUSTOMER_CONTROLLER, "cust-full", pdv1.Purpose_PURPOSE_SUPPORT)
				var made pdv1.CreateSubjectResponse
				f.must(t, f.cust, createRPC, &pdv1.CreateSubjectRequest{IdempotencyKey: "full-cust-subject", ControllerId: "cust-full",
					Person: campaignPerson(7_100_003), Channel: pdv1.Channel_CHANNEL_PORTAL, Reference: "full-disk"}, &made)
				f.custSubjectID = made.GetSubject().GetSubjectId()
				return &pdv1.EraseControllerSubjectsRequest{IdempotencyKey: "full-erase-customer", CustomerId: "cust-full",
					Ground: pdv1.ErasureGround_ERASURE_GROUND_NO_LEGAL_BASIS, Reference: "end-of-contract"}
			},
			resp: func() proto.Message { return &pdv1.EraseControllerSubjectsResponse{} },
			done: func(t *testing.T, f *fullDiskFixture, resp proto.Message) {
				r := resp.(*pdv1.EraseControllerSubjectsResponse)
				if !r.GetFinished() || r.GetDone() != 1 {
					t.Errorf("the customer's erasure ended with %d of %d done, finished %t; want 1 done, finished", r.GetDone(), r.GetTotal(), r.GetFinished())
				}
			}}),
		watching(agreementSnapshot, fullDiskCase{method: pa + "TerminateProcessorAgreement", who: opOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.TerminateProcessorAgreementRequest{IdempotencyKey: "full-terminate", AgreementId: f.agreementID, Reference: "end-of-contract"}
			},
			resp: func() proto.Message { return &pdv1.TerminateProcessorAgreementResponse{} },
			done: func(t *testing.T, f *fullDiskFixture, resp proto.Message) {
				if st := resp.(*pdv1.TerminateProcessorAgreementResponse).GetAgreement().GetState(); st != pdv1.AgreementState_AGREEMENT_STATE_TERMINATED {
					t.Errorf("the agreement is %s after the termination", st)
				}
			}}),

		// The privacy policy.
		{method: pol + "PublishPolicyVersion", who: opOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.PublishPolicyVersionRequest{IdempotencyKey: "full-policy", PolicyVersion: policyVersion("2030-01", false, time.Now().Add(24*time.Hour))}
			},
			resp: func() proto.Message { return &pdv1.PublishPolicyVersionResponse{} },
			unchanged: func(t *testing.T, f *fullDiskFixture) {
				var res pdv1.ListPolicyVersionsResponse
				f.must(t, f.op, pol+"ListPolicyVersions", &pdv1.ListPolicyVersionsRequest{}, &res)
				if n := len(res.GetPolicyVersions()); n != 0 {
					t.Errorf("%d policy versions after the refused publication", n)
				}
			}},
		onSubject(fullDiskCase{method: pol + "RecordPolicyAcknowledgement", who: staffOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.RecordPolicyAcknowledgementRequest{IdempotencyKey: "full-policy-ack", SubjectId: f.subject.GetSubjectId(), Version: "2030-01",
					Kind: pdv1.PolicyAcknowledgementKind_POLICY_ACKNOWLEDGEMENT_KIND_ACCEPTED, AcknowledgeTime: timestamppb.Now(), // after the version was published
					Channel: pdv1.Channel_CHANNEL_PORTAL, Reference: "portal-login"}
			},
			resp: func() proto.Message { return &pdv1.RecordPolicyAcknowledgementResponse{} }}),
		// A stream: the job is recorded before any message is queued.
		watching(outboxSnapshot, fullDiskCase{method: pol + "NotifyPolicyChange", who: opOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				f.must(t, f.op, pol+"PublishPolicyVersion", &pdv1.PublishPolicyVersionRequest{IdempotencyKey: "full-policy-material",
					PolicyVersion: policyVersion("2030-02", true, time.Now().Add(48*time.Hour))}, &pdv1.PublishPolicyVersionResponse{})
				return &pdv1.NotifyPolicyChangeRequest{IdempotencyKey: "full-notify", Version: "2030-02"}
			},
			resp: func() proto.Message { return &pdv1.NotifyPolicyChangeResponse{} },
			done: func(t *testing.T, f *fullDiskFixture, resp proto.Message) {
				if r := resp.(*pdv1.NotifyPolicyChangeResponse); !r.GetFinished() || r.GetQueued() != 1 {
					t.Errorf("the notification ended with %d queued, finished %t; want the subject's message queued", r.GetQueued(), r.GetFinished())
				}
			}}),

		// The mailer's acknowledgement of a policy notice records the
		// subject informed before it removes the message.
		watching(func(t *testing.T, f *fullDiskFixture) string {
			return subjectSnapshot(t, f) + "; " + outboxSnapshot(t, f)
		},
			fullDiskCase{method: "personaldata.v1.RequesterOutboxService/AcknowledgeOutboxMessage", name: "policy notice", who: mailerOf,
				prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
					m := f.outboxMessage(t, pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_POLICY_CHANGE, "")
					return &pdv1.AcknowledgeOutboxMessageRequest{MessageId: m.GetMessageId()}
				},
				resp: func() proto.Message { return &pdv1.AcknowledgeOutboxMessageResponse{} },
				done: func(t *testing.T, f *fullDiskFixture, _ proto.Message) {
					var res pdv1.ListUninformedSubjectsResponse
					f.must(t, f.staff, pol+"ListUninformedSubjects", &pdv1.ListUninformedSubjectsRequest{Version: "2030-02"}, &res)
					if slices.Contains(res.GetSubjectIds(), f.subject.GetSubjectId()) {
						t.Error("the subject is not recorded informed of 2030-02 after the acknowledgement of its notice")
					}
				}}),

		// A breach on everything touched so far, as high risk: recorded,
		// decided, reported, and its notices queued, each by the retry.
		{method: br + "OpenBreachRecord", who: opOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.OpenBreachRecordRequest{IdempotencyKey: "full-breach", AwareTime: timestamppb.Now(),
					Description: "Provincident", Category: pdv1.BreachCategory_BREACH_CATEGORY_CONFIDENTIALITY,
					Risk: pdv1.BreachRisk_BREACH_RISK_RISK, RiskReason: "prov",
					Assessment: &pdv1.AssessBreachImpactRequest{StartTime: timestamppb.New(time.Now().Add(-24 * time.Hour))}}
			},
			resp: func() proto.Message { return &pdv1.OpenBreachRecordResponse{} },
			unchanged: func(t *testing.T, f *fullDiskFixture) {
				var res pdv1.ListBreachRecordsResponse
				f.must(t, f.op, br+"ListBreachRecords", &pdv1.ListBreachRecordsRequest{}, &res)
				if len(res.GetRecords()) != 0 {
					t.Errorf("the refused opens recorded %d breaches", len(res.GetRecords()))
				}
			},
			done: func(t *testing.T, f *fullDiskFixture, resp proto.Message) {
				f.breachID = resp.(*pdv1.OpenBreachRecordResponse).GetRecord().GetBreachId()
			}},
		{method: br + "UpdateBreachRecord", who: opOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.UpdateBreachRecordRequest{BreachId: f.breachID, IdempotencyKey: "full-breach-risk", Risk: pdv1.BreachRisk_BREACH_RISK_HIGH, Reason: "prov"}
			},
			resp: func() proto.Message { return &pdv1.UpdateBreachRecordResponse{} },
			done: func(t *testing.T, f *fullDiskFixture, resp proto.Message) {
				if ds := resp.(*pdv1.UpdateBreachRecordResponse).GetRecord().GetDecisions(); len(ds) != 3 {
					t.Errorf("the record holds %d decisions after the refused updates and the retry, want 3", len(ds))
				}
			}},
		{method: br + "ReportBreachToAuthority", who: opOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.ReportBreachToAuthorityRequest{BreachId: f.breachID, IdempotencyKey: "full-breach-report", Phase: pdv1.BreachReportPhase_BREACH_REPORT_PHASE_INITIAL}
			},
			resp: func() proto.Message { return &pdv1.ReportBreachToAuthorityResponse{} },
			done: func(t *testing.T, f *fullDiskFixture, resp proto.Message) {
				if rs := resp.(*pdv1.ReportBreachToAuthorityResponse).GetRecord().GetReports(); len(rs) != 1 {
					t.Errorf("the record holds %d reports after the refused ones and the retry, want 1", len(rs))
				}
			}},
		{method: br + "NotifyBreachSubjects", who: opOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.NotifyBreachSubjectsRequest{BreachId: f.breachID, IdempotencyKey: "full-breach-notify"}
			},
			resp: func() proto.Message { return &pdv1.NotifyBreachSubjectsResponse{} },
			done: func(t *testing.T, f *fullDiskFixture, resp proto.Message) {
				if r := resp.(*pdv1.NotifyBreachSubjectsResponse); !r.GetFinished() || r.GetQueued() == 0 || r.GetQueued() != r.GetNotices().GetNotified() {
					t.Errorf("the notification ended with %d queued of %d told, finished %t; want every notice queued by the retry", r.GetQueued(), r.GetNotices().GetNotified(), r.GetFinished())
				}
			}},
		{method: br + "NotifyBreachControllers", who: opOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.NotifyBreachControllersRequest{BreachId: f.breachID, IdempotencyKey: "full-breach-customers",
					Contacts: []*pdv1.BreachControllerContact{{ControllerId: "cust-full", Email: "dpo@cust-full.example"}}}
			},
			resp: func() proto.Message { return &pdv1.NotifyBreachControllersResponse{} },
			done: func(t *testing.T, f *fullDiskFixture, resp proto.Message) {
				if q := resp.(*pdv1.NotifyBreachControllersResponse).GetQueued(); !slices.Equal(q, []string{"cust-full"}) {
					t.Errorf("the retry queued customer notices for %v, want cust-full's: a refused call queued it", q)
				}
			}},

		// A stream: the rotation to a master key version added with space.
		// There is no read of a data key's version: the retry must be what
		// rewrapped every key.
		{method: "personaldata.v1.KeyService/RotateDataKeys", who: opOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				v, err := envelope.AddVersion(f.keyFile)
				if err != nil {
					t.Fatalf("add a master key version: %v", err)
				}
				f.keyVersion = v
				return &pdv1.RotateDataKeysRequest{}
			},
			resp: func() proto.Message { return &pdv1.RotateDataKeysResponse{} },
			done: func(t *testing.T, f *fullDiskFixture, resp proto.Message) {
				r := resp.(*pdv1.RotateDataKeysResponse)
				if !r.GetFinished() || r.GetCurrentVersion() != f.keyVersion || r.GetTotal() == 0 || r.GetRewrapped() != r.GetTotal() {
					t.Errorf("the rotation ended under version %d (want %d), finished %t, %d of %d keys rewrapped by the retry: the refused calls wrote some",
						r.GetCurrentVersion(), f.keyVersion, r.GetFinished(), r.GetRewrapped(), r.GetTotal())
				}
			}},

		// The end of the subject: erased, what its hold kept is released,
		// and a sweep purges it.
		onSubject(fullDiskCase{method: pd + "EraseSubject", who: staffOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.EraseSubjectRequest{IdempotencyKey: "full-erase", SubjectId: f.subject.GetSubjectId(),
					Ground: pdv1.ErasureGround_ERASURE_GROUND_NO_LEGITIMATE_REASON, Channel: pdv1.Channel_CHANNEL_EMAIL,
					Reference: "ticket-erase", PerformedBy: "support-agent-7"}
			},
			resp: func() proto.Message { return &pdv1.EraseSubjectResponse{} },
			done: func(t *testing.T, f *fullDiskFixture, resp proto.Message) {
				if len(resp.(*pdv1.EraseSubjectResponse).GetKept()) == 0 {
					t.Error("the erasure kept nothing under the bookkeeping hold")
				}
			}}),
		// An erased subject is not read by AccessSubject: the retry must be
		// what released the hold.
		{method: ret + "ReleaseHold", who: staffOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.ReleaseHoldRequest{IdempotencyKey: "full-release", SubjectId: f.subject.GetSubjectId(), HoldId: f.holdID, Reference: "invoice-1001-paid"}
			},
			resp: func() proto.Message { return &pdv1.ReleaseHoldResponse{} },
			done: func(t *testing.T, f *fullDiskFixture, resp proto.Message) {
				if end := resp.(*pdv1.ReleaseHoldResponse).GetHold().GetEndTime(); end == nil || end.AsTime().Before(f.freed) {
					t.Errorf("the hold ended at %v, before space was freed at %v: a refused call released it", end.AsTime(), f.freed)
				}
			}},
		{method: ret + "RunRetentionSweep", who: opOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message { return &pdv1.RunRetentionSweepRequest{} },
			resp:    func() proto.Message { return &pdv1.RunRetentionSweepResponse{} },
			done: func(t *testing.T, f *fullDiskFixture, resp proto.Message) {
				if r := resp.(*pdv1.RunRetentionSweepResponse); !r.GetRan() || !slices.Contains(r.GetPurgedSubjectIds(), f.subject.GetSubjectId()) {
					t.Errorf("the sweep after the refused ones: ran %t, purged %v; want the subject's released data purged by it", r.GetRan(), r.GetPurgedSubjectIds())
				}
			}},

		// A backup writes no data, but copies the databases beside them
		// first: a full disk refuses it as the store's failure, and leaves
		// no copy behind.
		{method: "personaldata.v1.BackupService/CreateBackup", who: opOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message { return &pdv1.CreateBackupRequest{} },
			resp:    func() proto.Message { return &pdv1.CreateBackupResponse{} },
			unchanged: func(t *testing.T, f *fullDiskFixture) {
				if left, _ := filepath.Glob(filepath.Join(filepath.Dir(f.keyFile), ".backup-*")); len(left) > 0 {
					t.Errorf("the refused backups left %d copies in the data directory", len(left))
				}
			},
			done: func(t *testing.T, f *fullDiskFixture, resp proto.Message) {
				if sum := resp.(*pdv1.CreateBackupResponse).GetSummary(); sum.GetSubjects() == 0 || sum.GetBytes() == 0 {
					t.Errorf("the backup after the refused ones ended with %v, want a summary of a backup holding the subjects", resp)
				}
			}},
	}
}

// isServerStream says the RPC streams its responses.
func isServerStream(method string) bool {
	svc, name, _ := strings.Cut(method, "/")
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return false
	}
	md := d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(name))
	return md != nil && md.IsStreamingServer()
}

// stream invokes a server-streaming RPC and reads it to its end, returning
// its last message (nil if none) and how it ended (nil for a normal end);
// over REST through restStream.
func (c client) stream(ctx context.Context, method string, req proto.Message, newResp func() proto.Message) (proto.Message, error) {
	var last proto.Message
	if !c.rest {
		st, err := c.conn.NewStream(c.outgoing(ctx), &grpc.StreamDesc{ServerStreams: true}, "/"+method)
		if err != nil {
			return nil, err
		}
		if err := st.SendMsg(req); err != nil {
			return nil, err
		}
		if err := st.CloseSend(); err != nil {
			return nil, err
		}
		for {
			m := newResp()
			if err := st.RecvMsg(m); err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				return last, err
			}
			last = m
		}
	}
	err := c.restStream(ctx, method, req, newResp, func(m proto.Message) error { last = m; return nil })
	return last, err
}

// allRPCs are the full names ("package.Service/Method") of every RPC of
// the API, from the descriptors.
func allRPCs(t *testing.T) []string {
	t.Helper()
	var out []string
	protoregistry.GlobalFiles.RangeFilesByPackage("personaldata.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := 0; i < fd.Services().Len(); i++ {
			sd := fd.Services().Get(i)
			for j := 0; j < sd.Methods().Len(); j++ {
				out = append(out, string(sd.FullName())+"/"+string(sd.Methods().Get(j).Name()))
			}
		}
		return true
	})
	if len(out) == 0 {
		t.Fatal("no RPCs in the descriptors")
	}
	slices.Sort(out)
	return out
}

// isGet says the RPC's REST route is a GET: a read.
func isGet(method string) bool {
	svc, name, _ := strings.Cut(method, "/")
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return false
	}
	md := d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(name))
	rule, _ := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule)
	return rule.GetGet() != ""
}

// TestFullDiskCoversEveryWrite: every RPC of the descriptors is a read, a
// case of the full-disk test, or named as not covered, with why.
func TestFullDiskCoversEveryWrite(t *testing.T) {
	cases := map[string]bool{}
	for _, c := range fullDiskCases() {
		cases[c.method] = true
	}
	for _, m := range allRPCs(t) {
		read := isGet(m) || slices.Contains(fullDiskReads, m)
		_, notCovered := fullDiskNotCovered[m]
		switch {
		case read && cases[m]:
			t.Errorf("%s is listed as a read and as a write case", m)
		case !read && !cases[m] && !notCovered:
			t.Errorf("%s changes data but the full-disk test neither calls it nor says why not", m)
		case notCovered && (read || cases[m]):
			t.Errorf("%s is listed as not covered, but it is a read or a case", m)
		}
	}
	t.Logf("write RPCs called on a full disk: %d; not called: %d", len(cases), len(fullDiskNotCovered))
}

func TestFullDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("the full-disk test runs the daemon on a FUSE filesystem: skipped with -short")
	}
	if err := powercut.Available(); err != nil {
		t.Skipf("the full-disk test needs a FUSE filesystem it can mount: %v", err)
	}
	storetest.SkipInMongoMode(t)
	bin := buildDaemon(t, t.TempDir())
	pfs, d := daemonOnPowerCut(t, bin)
	t.Cleanup(pfs.Free) // so that the daemon can stop
	if _, err := d.start(); err != nil {
		t.Fatal(err)
	}
	token, err := os.ReadFile(filepath.Join(d.dataDir, "operator.token"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := dialDaemon(d.grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	f := &fullDiskFixture{ctx: context.Background(), conn: conn, base: "http://" + d.httpAddr, keyFile: filepath.Join(d.dataDir, "keyring.json")}
	f.op = client{conn: conn, base: f.base, token: strings.TrimSpace(string(token))}
	f.staff = f.principal(t, "full-staff", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, "company", pdv1.Purpose_PURPOSE_SUPPORT)
	f.dom = f.principal(t, "full-registrar", pdv1.PrincipalKind_PRINCIPAL_KIND_DOMAIN_REGISTRATION, "company", pdv1.Purpose_PURPOSE_DOMAIN_REGISTRATION)
	f.mailer = f.principal(t, "full-mailer", pdv1.PrincipalKind_PRINCIPAL_KIND_MAILER, "company")

	t.Run("writes", func(t *testing.T) {
		for _, c := range fullDiskCases() {
			name := c.method[strings.LastIndexByte(c.method, '/')+1:]
			if c.name != "" {
				name += "/" + c.name
			}
			ok := t.Run(name, func(t *testing.T) {
				req := c.prepare(t, f)
				pfs.Fill(auditRoom)
				for _, via := range []client{c.who(f), c.who(f).other()} {
					err := f.call(via, c.method, req, c.resp())
					checkStoreUnavailable(t, via, err, "STORE_UNAVAILABLE")
				}
				refused := pfs.Stats().NoSpace
				pfs.Free()
				f.freed = time.Now()
				if refused == 0 {
					t.Fatal("the full disk refused no write: the test shows nothing")
				}
				if c.unchanged != nil {
					c.unchanged(t, f)
				}
				resp := c.resp()
				if err := f.call(c.who(f), c.method, req, resp); err != nil {
					t.Fatalf("the same request once space is freed: %s", outcome(err))
				}
				if c.done != nil {
					c.done(t, f, resp)
				}
			})
			if !ok {
				break // later cases build on earlier ones
			}
		}
		// No refusal was an internal error on the daemon's side either.
		logged, err := logSummary(d.log.Name())
		if err != nil {
			t.Fatal(err)
		}
		for msg, n := range logged {
			if strings.HasPrefix(msg, "ERROR ") {
				t.Errorf("the daemon logged %d× %s", n, msg)
			}
		}
	})

	t.Run("readiness", func(t *testing.T) {
		checkProbes(t, d, conn, true, "before the disk fills")
		pfs.Fill()
		err := f.call(f.staff, createRPC, &pdv1.CreateSubjectRequest{IdempotencyKey: "full-ready", ControllerId: "company",
			Person: campaignPerson(7_100_002), Channel: pdv1.Channel_CHANNEL_PORTAL, Reference: "full-disk"}, &pdv1.CreateSubjectResponse{})
		checkStoreUnavailable(t, f.staff, err, "")
		// At once: no wait for a tick.
		checkProbes(t, d, conn, false, "right after the first call on a full disk")
		pfs.Free()
		err = f.call(f.staff, createRPC, &pdv1.CreateSubjectRequest{IdempotencyKey: "full-ready", ControllerId: "company",
			Person: campaignPerson(7_100_002), Channel: pdv1.Channel_CHANNEL_PORTAL, Reference: "full-disk"}, &pdv1.CreateSubjectResponse{})
		if err != nil {
			t.Fatalf("the create once space is freed: %s", outcome(err))
		}
		checkProbes(t, d, conn, true, "right after the first call once space is freed")
	})

	t.Run("restart", func(t *testing.T) {
		if err := d.stop(); err != nil {
			t.Fatalf("graceful stop: %v", err)
		}
		// SQLite's shared-memory index of each log still fits, as a few
		// blocks do on a real disk that is full: without it no database
		// opens at all.
		pfs.Fill("*.sqlite-shm")
		startAnswering(t, d)
		conn2, err := dialDaemon(d.grpcAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn2.Close()
		checkProbes(t, d, conn2, false, "right after a start on a full disk")
		pfs.Free()
		checkProbes(t, d, conn2, true, "once space is freed after a start on a full disk")
	})
}

// checkStoreUnavailable: err is UNAVAILABLE with RetryInfo (HTTP 503 over
// REST, which the client turns back into the status), and with the
// reason given unless it is empty.
func checkStoreUnavailable(t *testing.T, via client, err error, reason string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != codes.Unavailable {
		t.Errorf("over %s on a full disk: %s %q, want Unavailable", via.transport(), outcome(err), st.Message())
		return
	}
	var retry, why bool
	got := ""
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.RetryInfo:
			retry = d.GetRetryDelay().AsDuration() > 0
		case *errdetails.ErrorInfo:
			got = d.GetReason()
			why = reason == "" || got == reason
		}
	}
	if !retry {
		t.Errorf("over %s on a full disk: Unavailable without RetryInfo", via.transport())
	}
	if !why {
		t.Errorf("over %s on a full disk: reason %q, want %q", via.transport(), got, reason)
	}
}

// checkProbes asks every probe once, at once, and wants each to say ready
// (or not): /readyz, /healthz, gRPC health of each API service; and /livez
// and gRPC health of "" to say live throughout (a full disk is no reason to
// restart).
func checkProbes(t *testing.T, d *daemon, cc *grpc.ClientConn, ready bool, when string) {
	conn := healthpb.NewHealthClient(cc)
	t.Helper()
	for _, path := range []string{"/readyz", "/healthz", "/livez"} {
		res, err := http.Get("http://" + d.httpAddr + path)
		if err != nil {
			t.Errorf("%s %s: %v", path, when, err)
			continue
		}
		res.Body.Close()
		want := http.StatusOK
		if !ready && path != "/livez" {
			want = http.StatusServiceUnavailable
		}
		if res.StatusCode != want {
			t.Errorf("%s %s: %d, want %d", path, when, res.StatusCode, want)
		}
	}
	for _, svc := range []string{"", "personaldata.v1.PersonalDataService", "personaldata.v1.PrincipalService", "personaldata.v1.RightsRequestService"} {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		res, err := conn.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		cancel()
		want := healthpb.HealthCheckResponse_SERVING
		if !ready && svc != "" {
			want = healthpb.HealthCheckResponse_NOT_SERVING
		}
		if err != nil || res.GetStatus() != want {
			t.Errorf("gRPC health of %q %s: %v %v, want %v", svc, when, res.GetStatus(), err, want)
		}
	}
}

// startAnswering starts the daemon and waits until it answers /readyz,
// ready or not (start waits for ready).
func startAnswering(t *testing.T, d *daemon) {
	t.Helper()
	done := make(chan error, 1)
	go func() { _, err := d.start(); done <- err }()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		res, err := http.Get("http://" + d.httpAddr + "/readyz")
		if err == nil {
			res.Body.Close()
			// d.start goes on waiting for ready; it ends with the test's
			// Free or with its minute.
			go func() { <-done }()
			return
		}
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("start on a full disk: %v; its log: %s", err, readLog(d.log.Name()))
			}
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("personaldatad does not answer a minute after a start on a full disk; its log: %s", readLog(d.log.Name()))
}
