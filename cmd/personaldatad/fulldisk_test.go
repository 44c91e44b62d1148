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

// fullDiskNotCovered are write RPCs the writes subtest does not call yet,
// with why; TestFullDiskCoversEveryWrite keeps this list honest.
var fullDiskNotCovered = map[string]string{
	"personaldata.v1.PersonalDataService/LiftRestriction":                   "not called yet",
	"personaldata.v1.ConsentService/WithdrawConsent":                        "not called yet",
	"personaldata.v1.RetentionService/ReleaseHold":                          "not called yet",
	"personaldata.v1.RetentionService/RunRetentionSweep":                    "not called yet: a sweep that finds nothing due writes nothing",
	"personaldata.v1.RightsRequestService/SendVerificationCode":             "not called yet",
	"personaldata.v1.RightsRequestService/ConfirmVerificationCode":          "not called yet: needs the code from the mailer's outbox",
	"personaldata.v1.RightsRequestService/AttestIdentity":                   "not called yet",
	"personaldata.v1.RightsRequestService/DecideRightsRequest":              "not called yet",
	"personaldata.v1.RightsRequestService/ExtendRightsRequest":              "not called yet",
	"personaldata.v1.RightsRequestService/ForwardRightsRequest":             "not called yet",
	"personaldata.v1.RightsRequestService/FulfilRightsRequest":              "not called yet",
	"personaldata.v1.RequesterOutboxService/AcknowledgeOutboxMessage":       "not called yet: needs a mailer and a queued message",
	"personaldata.v1.DisclosureService/AcknowledgeNotification":             "not called yet: needs a recipient's queued notification",
	"personaldata.v1.PrincipalService/UpdatePrincipal":                      "not called yet",
	"personaldata.v1.PrincipalService/RevokePrincipal":                      "not called yet",
	"personaldata.v1.PolicyService/RecordPolicyAcknowledgement":             "not called yet: needs a version in effect",
	"personaldata.v1.PolicyService/NotifyPolicyChange":                      "not called yet: a stream, which appends its audit event before it writes",
	"personaldata.v1.ProcessorAgreementService/AmendProcessorAgreement":     "not called yet",
	"personaldata.v1.ProcessorAgreementService/TerminateProcessorAgreement": "not called yet",
	"personaldata.v1.ProcessorAgreementService/EraseControllerSubjects":     "not called yet: a stream, which appends its audit event before it writes",
	"personaldata.v1.KeyService/RotateDataKeys":                             "not called yet: a stream, which appends its audit event before it writes",
}

// fullDiskCase is one write RPC: prepare makes what it needs (with space)
// and returns its request, called as who; done sees the response of the
// call that succeeded once space was freed.
type fullDiskCase struct {
	method  string
	who     func(f *fullDiskFixture) client
	prepare func(t *testing.T, f *fullDiskFixture) proto.Message
	resp    func() proto.Message
	done    func(f *fullDiskFixture, resp proto.Message)
	// unchanged, when set, checks after the refusals (space freed, before
	// the retry) that nothing was written.
	unchanged func(t *testing.T, f *fullDiskFixture)
}

// fullDiskFixture is the daemon and what the cases made.
type fullDiskFixture struct {
	ctx              context.Context
	op, staff, dom   client
	subject          *pdv1.Subject
	version          int64
	consentID        string
	holdID           string
	requestID        string
	principalID      string
	agreementID      string
	agreementVersion int64
}

func (f *fullDiskFixture) call(via client, method string, req, resp proto.Message) error {
	ctx, cancel := context.WithTimeout(f.ctx, requestTimeout)
	defer cancel()
	return via.call(ctx, method, req, resp)
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

func staffOf(f *fullDiskFixture) client { return f.staff }
func opOf(f *fullDiskFixture) client    { return f.op }

// sameVersion is unchanged for the cases on the fixture's subject.
func sameVersion(t *testing.T, f *fullDiskFixture) {
	t.Helper()
	if v := f.subjectVersion(t); v != f.version {
		t.Errorf("the subject is at version %d after the refused calls, was %d: something was written", v, f.version)
	}
}

func fullDiskCases() []fullDiskCase {
	pd := "personaldata.v1.PersonalDataService/"
	onSubject := func(c fullDiskCase) fullDiskCase {
		prepare := c.prepare
		c.prepare = func(t *testing.T, f *fullDiskFixture) proto.Message {
			f.version = f.subjectVersion(t)
			return prepare(t, f)
		}
		c.unchanged = sameVersion
		return c
	}
	return []fullDiskCase{
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
			done: func(f *fullDiskFixture, resp proto.Message) {
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
			done: func(f *fullDiskFixture, resp proto.Message) {
				f.consentID = resp.(*pdv1.RecordConsentResponse).GetConsent().GetConsentId()
			}}),
		onSubject(fullDiskCase{method: "personaldata.v1.DisclosureService/Disclose", who: func(f *fullDiskFixture) client { return f.dom },
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.DiscloseRequest{IdempotencyKey: "full-disclose", SubjectId: f.subject.GetSubjectId(), Recipient: "iis.se",
					Purpose: pdv1.Purpose_PURPOSE_DOMAIN_REGISTRATION, Categories: []pdv1.DataCategory{pdv1.DataCategory_DATA_CATEGORY_CONTACT},
					Basis: pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONTRACT, Reference: "order-full"}
			},
			resp: func() proto.Message { return &pdv1.DiscloseResponse{} }}),
		onSubject(fullDiskCase{method: "personaldata.v1.RetentionService/PlaceHold", who: staffOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.PlaceHoldRequest{IdempotencyKey: "full-hold", SubjectId: f.subject.GetSubjectId(), Basis: pdv1.HoldBasis_HOLD_BASIS_BOOKKEEPING,
					Categories: []pdv1.DataCategory{pdv1.DataCategory_DATA_CATEGORY_CONTACT}, TransactionTime: timestamppb.New(time.Now().AddDate(0, -1, 0)),
					Reference: "invoice-1001"}
			},
			resp: func() proto.Message { return &pdv1.PlaceHoldResponse{} }}),
		onSubject(fullDiskCase{method: pd + "RestrictProcessing", who: staffOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.RestrictProcessingRequest{IdempotencyKey: "full-restrict", SubjectId: f.subject.GetSubjectId(),
					Ground: pdv1.RestrictionGround_RESTRICTION_GROUND_ACCURACY_CONTESTED, Channel: pdv1.Channel_CHANNEL_PHONE,
					Reference: "ticket-200", PerformedBy: "support-agent-7"}
			},
			resp: func() proto.Message { return &pdv1.RestrictProcessingResponse{} }}),
		{method: "personaldata.v1.RightsRequestService/OpenRightsRequest", who: staffOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.OpenRightsRequestRequest{IdempotencyKey: "full-open", ControllerId: "company",
					Kind: pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, Channel: pdv1.Channel_CHANNEL_LETTER,
					ClaimedIdentity: &pdv1.ClaimedIdentity{Key: &pdv1.ClaimedIdentity_IdentityNumber{IdentityNumber: f.subject.GetPerson().GetIdentityNumber()}},
					Reference:       "letter-full"}
			},
			resp: func() proto.Message { return &pdv1.OpenRightsRequestResponse{} },
			done: func(f *fullDiskFixture, resp proto.Message) {
				f.requestID = resp.(*pdv1.OpenRightsRequestResponse).GetRequest().GetRequestId()
			}},
		{method: "personaldata.v1.PrincipalService/CreatePrincipal", who: opOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.CreatePrincipalRequest{IdempotencyKey: "full-principal", Principal: &pdv1.Principal{PrincipalId: "full-billing",
					Kind: pdv1.PrincipalKind_PRINCIPAL_KIND_BILLING_SYSTEM, TenantIds: []string{"company"}}}
			},
			resp: func() proto.Message { return &pdv1.CreatePrincipalResponse{} },
			unchanged: func(t *testing.T, f *fullDiskFixture) {
				err := f.call(f.op, "personaldata.v1.PrincipalService/GetPrincipal", &pdv1.GetPrincipalRequest{PrincipalId: "full-billing"}, &pdv1.GetPrincipalResponse{})
				if status.Code(err) != codes.NotFound {
					t.Errorf("GetPrincipal of the refused create once space is freed: %s, want NotFound", outcome(err))
				}
			},
			done: func(f *fullDiskFixture, resp proto.Message) {
				f.principalID = resp.(*pdv1.CreatePrincipalResponse).GetPrincipal().GetPrincipalId()
			}},
		{method: "personaldata.v1.PrincipalService/IssueToken", who: opOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.IssueTokenRequest{IdempotencyKey: "full-token", PrincipalId: f.principalID}
			},
			resp: func() proto.Message { return &pdv1.IssueTokenResponse{} }},
		{method: "personaldata.v1.ProcessorAgreementService/CreateProcessorAgreement", who: opOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				now := time.Now()
				return &pdv1.CreateProcessorAgreementRequest{IdempotencyKey: "full-agreement", CustomerId: "cust-full", Terms: &pdv1.AgreementTerms{
					SignTime: timestamppb.New(now.Add(-2 * time.Hour)), InForceFrom: timestamppb.New(now.Add(-time.Hour)),
					Purposes:      []pdv1.Purpose{pdv1.Purpose_PURPOSE_SUPPORT},
					Categories:    []pdv1.DataCategory{pdv1.DataCategory_DATA_CATEGORY_CONTACT},
					SubProcessors: []string{"iis.se"}, DocumentReference: "dpa/cust-full"}}
			},
			resp: func() proto.Message { return &pdv1.CreateProcessorAgreementResponse{} }},
		{method: "personaldata.v1.PolicyService/PublishPolicyVersion", who: opOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.PublishPolicyVersionRequest{IdempotencyKey: "full-policy", PolicyVersion: &pdv1.PolicyVersion{
					Version: "2030-01", EffectiveTime: timestamppb.New(time.Now().Add(24 * time.Hour)), Language: "sv",
					TextSha256: "3f1c9a1e6b1d0c2a4e5f60718293a4b5c6d7e8f90123456789abcdef01234567",
					Url:        "https://example.test/dataskyddspolicy/2030-01", ChangeSummary: "Förtydliganden.", Material: false}}
			},
			resp: func() proto.Message { return &pdv1.PublishPolicyVersionResponse{} }},
		// Last: it ends the subject.
		onSubject(fullDiskCase{method: pd + "EraseSubject", who: staffOf,
			prepare: func(t *testing.T, f *fullDiskFixture) proto.Message {
				return &pdv1.EraseSubjectRequest{IdempotencyKey: "full-erase", SubjectId: f.subject.GetSubjectId(),
					Ground: pdv1.ErasureGround_ERASURE_GROUND_NO_LEGITIMATE_REASON, Channel: pdv1.Channel_CHANNEL_EMAIL,
					Reference: "ticket-erase", PerformedBy: "support-agent-7"}
			},
			resp: func() proto.Message { return &pdv1.EraseSubjectResponse{} }}),
	}
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
// case of the full-disk test, or named as not covered yet, with why.
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
	t.Logf("write RPCs called on a full disk: %d; not yet: %d", len(cases), len(fullDiskNotCovered))
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
	f := &fullDiskFixture{ctx: context.Background(), op: client{conn: conn, token: strings.TrimSpace(string(token))}}
	mk := func(id string, kind pdv1.PrincipalKind, purposes ...pdv1.Purpose) client {
		var made pdv1.CreatePrincipalResponse
		if err := f.call(f.op, principalRPC, &pdv1.CreatePrincipalRequest{IdempotencyKey: id, Principal: &pdv1.Principal{
			PrincipalId: id, Kind: kind, TenantIds: []string{"company"}, Purposes: purposes}}, &made); err != nil {
			t.Fatalf("CreatePrincipal %s: %s", id, outcome(err))
		}
		return client{conn: conn, base: "http://" + d.httpAddr, token: made.GetToken()}
	}
	f.staff = mk("full-staff", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, pdv1.Purpose_PURPOSE_SUPPORT)
	f.dom = mk("full-registrar", pdv1.PrincipalKind_PRINCIPAL_KIND_DOMAIN_REGISTRATION, pdv1.Purpose_PURPOSE_DOMAIN_REGISTRATION)
	f.op.base = "http://" + d.httpAddr

	t.Run("writes", func(t *testing.T) {
		for _, c := range fullDiskCases() {
			name := c.method[strings.LastIndexByte(c.method, '/')+1:]
			ok := t.Run(name, func(t *testing.T) {
				req := c.prepare(t, f)
				pfs.Fill(auditRoom)
				for _, via := range []client{c.who(f), c.who(f).other()} {
					err := f.call(via, c.method, req, c.resp())
					checkStoreUnavailable(t, via, err, "STORE_UNAVAILABLE")
				}
				refused := pfs.Stats().NoSpace
				pfs.Free()
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
					c.done(f, resp)
				}
			})
			if !ok {
				break // later cases build on earlier ones
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
