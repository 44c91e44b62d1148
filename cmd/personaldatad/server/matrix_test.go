package server_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/auth"
)

// matrixFixture is what the authorization matrix calls on: a subject in
// each tenant, made by a setup principal that acts for all of them.
type matrixFixture struct {
	e     *env
	setup caller
	// discloser is a domain-registration integration for the company, which
	// discloses (support staff do not).
	discloser caller
	n         int
}

func (f *matrixFixture) person() *pdv1.Person {
	f.n++
	return testPerson(500 + f.n)
}

// fresh makes a new subject in tenant for one principal's calls.
func (f *matrixFixture) fresh(t *testing.T, tenant string) *pdv1.Subject {
	t.Helper()
	f.n++
	req := createReq(fmt.Sprintf("matrix-%d", f.n), 500+f.n)
	req.ControllerId = tenant
	return call(t, f.setup, "CreateSubject", req, &pdv1.CreateSubjectResponse{}).GetSubject()
}

// version is the subject's current version, read by the setup principal.
func (f *matrixFixture) version(t *testing.T, id string) int64 {
	t.Helper()
	// A purpose view, not an access request: those on a customer's data are
	// the controller's to make.
	return call(t, f.setup, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: id, Purpose: pdv1.Purpose_PURPOSE_SUPPORT}, &pdv1.GetSubjectForPurposeResponse{}).GetVersion()
}

// matrixRPC is one RPC of the matrix: how to call it on a tenant's subject,
// and what a caller that may call it but does not act for the tenant gets.
type matrixRPC struct {
	method string
	req    func(t *testing.T, f *matrixFixture, p matrixPrincipal, tenant string, sub *pdv1.Subject) proto.Message
	resp   func() proto.Message
	// otherTenant is the answer for another tenant's data: NOT_FOUND, as if
	// it did not exist, except where no record is involved.
	otherTenant codes.Code
	// tenantFree RPCs act on no tenant's data.
	tenantFree bool
	// onCompany is the answer on the company's own data where it is not OK:
	// the company, being controller, has no processor agreements.
	onCompany codes.Code
	// endless streams (the recipients' notifications) run until the caller
	// stops them: matrixCall stops them (disclosure_test.go).
	endless bool
}

type matrixPrincipal struct {
	id      string
	kind    pdv1.PrincipalKind
	tenant  string // its own
	other   string // a tenant it does not act for
	purpose pdv1.Purpose
	token   string
}

func subjectRPC(name string, req func(t *testing.T, f *matrixFixture, p matrixPrincipal, tenant string, sub *pdv1.Subject) proto.Message, resp func() proto.Message) matrixRPC {
	return matrixRPC{method: "personaldata.v1.PersonalDataService/" + name, req: req, resp: resp, otherTenant: codes.NotFound}
}

// matrixRPCs is every RPC of the API but health, in an order where each
// call leaves the subject fit for the next (erasure last).
func matrixRPCs() []matrixRPC {
	key := func(p matrixPrincipal, what, tenant string) string { return "m-" + p.id + "-" + what + "-" + tenant }
	agreement := func(tenant string) string { return tenant + ".1" }
	return []matrixRPC{
		{method: "personaldata.v1.PersonalDataService/CreateSubject", otherTenant: codes.PermissionDenied,
			req: func(t *testing.T, f *matrixFixture, p matrixPrincipal, tenant string, _ *pdv1.Subject) proto.Message {
				return &pdv1.CreateSubjectRequest{IdempotencyKey: key(p, "create", tenant), ControllerId: tenant, Person: f.person()}
			}, resp: func() proto.Message { return &pdv1.CreateSubjectResponse{} }},
		subjectRPC("FindSubject", func(t *testing.T, f *matrixFixture, p matrixPrincipal, tenant string, sub *pdv1.Subject) proto.Message {
			return &pdv1.FindSubjectRequest{ControllerId: tenant, Key: &pdv1.FindSubjectRequest_Email{Email: sub.GetPerson().GetEmail()}}
		}, func() proto.Message { return &pdv1.FindSubjectResponse{} }),
		subjectRPC("AccessSubject", func(t *testing.T, f *matrixFixture, p matrixPrincipal, tenant string, sub *pdv1.Subject) proto.Message {
			return &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}
		}, func() proto.Message { return &pdv1.AccessSubjectResponse{} }),
		subjectRPC("GetSubjectForPurpose", func(t *testing.T, f *matrixFixture, p matrixPrincipal, tenant string, sub *pdv1.Subject) proto.Message {
			return &pdv1.GetSubjectForPurposeRequest{SubjectId: sub.GetSubjectId(), Purpose: p.purpose}
		}, func() proto.Message { return &pdv1.GetSubjectForPurposeResponse{} }),
		matrixRecordConsent(), matrixWithdrawConsent(), matrixDisclose(), // disclosure_test.go
		subjectRPC("RectifySubject", func(t *testing.T, f *matrixFixture, p matrixPrincipal, tenant string, sub *pdv1.Subject) proto.Message {
			return &pdv1.RectifySubjectRequest{IdempotencyKey: key(p, "rectify", tenant), SubjectId: sub.GetSubjectId(),
				ExpectedVersion: f.version(t, sub.GetSubjectId()), Person: &pdv1.Person{Phone: "+46701112233"},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"phone"}}, Channel: pdv1.Channel_CHANNEL_PHONE, Reference: "m", PerformedBy: "m"}
		}, func() proto.Message { return &pdv1.RectifySubjectResponse{} }),
		subjectRPC("AddHistoryEntry", func(t *testing.T, f *matrixFixture, p matrixPrincipal, tenant string, sub *pdv1.Subject) proto.Message {
			return historyReq(sub, key(p, "history", tenant), 1)
		}, func() proto.Message { return &pdv1.AddHistoryEntryResponse{} }),
		subjectRPC("ListHistoryEntries", func(t *testing.T, f *matrixFixture, p matrixPrincipal, tenant string, sub *pdv1.Subject) proto.Message {
			return &pdv1.ListHistoryEntriesRequest{SubjectId: sub.GetSubjectId()}
		}, func() proto.Message { return &pdv1.ListHistoryEntriesResponse{} }),
		subjectRPC("RestrictProcessing", func(t *testing.T, f *matrixFixture, p matrixPrincipal, tenant string, sub *pdv1.Subject) proto.Message {
			return restrictReq(sub, key(p, "restrict", tenant))
		}, func() proto.Message { return &pdv1.RestrictProcessingResponse{} }),
		subjectRPC("LiftRestriction", func(t *testing.T, f *matrixFixture, p matrixPrincipal, tenant string, sub *pdv1.Subject) proto.Message {
			return liftReq(sub, key(p, "lift", tenant), pdv1.LiftResolution_LIFT_RESOLUTION_CONFIRMED_CORRECT)
		}, func() proto.Message { return &pdv1.LiftRestrictionResponse{} }),
		{method: placeHold, otherTenant: codes.NotFound,
			req: func(t *testing.T, f *matrixFixture, p matrixPrincipal, tenant string, sub *pdv1.Subject) proto.Message {
				return bookkeepingReq(sub, key(p, "hold", tenant), f.e.clock.Now().AddDate(0, -1, 0), pdv1.DataCategory_DATA_CATEGORY_CONTACT)
			}, resp: func() proto.Message { return &pdv1.PlaceHoldResponse{} }},
		{method: releaseHold, otherTenant: codes.NotFound,
			req: func(t *testing.T, f *matrixFixture, p matrixPrincipal, tenant string, sub *pdv1.Subject) proto.Message {
				// A hold to release, placed by whoever may: the setup principal
				// on the company's data, the controller on its own. Where
				// none may, the release is refused before its hold is looked at.
				placer := f.setup
				if tenant != "company" {
					placer = f.e.as(f.setup, p.token)
				}
				var placed pdv1.PlaceHoldResponse
				_ = placer.call(t.Context(), placeHold, claimsReq(sub, key(p, "hold-to-release", tenant), f.e.clock.Now().AddDate(1, 0, 0), pdv1.DataCategory_DATA_CATEGORY_HISTORY), &placed)
				id := placed.GetHold().GetHoldId()
				if id == "" {
					id = "nohold"
				}
				return releaseReq(sub, key(p, "release", tenant), id)
			}, resp: func() proto.Message { return &pdv1.ReleaseHoldResponse{} }},
		subjectRPC("EraseSubject", func(t *testing.T, f *matrixFixture, p matrixPrincipal, tenant string, sub *pdv1.Subject) proto.Message {
			return eraseReq(sub, key(p, "erase", tenant))
		}, func() proto.Message { return &pdv1.EraseSubjectResponse{} }),

		{method: "personaldata.v1.ProcessorAgreementService/GetProcessorAgreement", otherTenant: codes.NotFound, onCompany: codes.InvalidArgument,
			req: func(t *testing.T, f *matrixFixture, p matrixPrincipal, tenant string, _ *pdv1.Subject) proto.Message {
				return &pdv1.GetProcessorAgreementRequest{AgreementId: agreement(tenant)}
			}, resp: func() proto.Message { return &pdv1.GetProcessorAgreementResponse{} }},
		{method: "personaldata.v1.ProcessorAgreementService/ListProcessorAgreements", otherTenant: codes.NotFound, onCompany: codes.InvalidArgument,
			req: func(t *testing.T, f *matrixFixture, p matrixPrincipal, tenant string, _ *pdv1.Subject) proto.Message {
				return &pdv1.ListProcessorAgreementsRequest{CustomerId: tenant}
			}, resp: func() proto.Message { return &pdv1.ListProcessorAgreementsResponse{} }},
		{method: "personaldata.v1.ProcessorAgreementService/CheckProcessorAgreement", otherTenant: codes.NotFound,
			req: func(t *testing.T, f *matrixFixture, p matrixPrincipal, tenant string, _ *pdv1.Subject) proto.Message {
				return &pdv1.CheckProcessorAgreementRequest{ControllerId: tenant, Category: pdv1.DataCategory_DATA_CATEGORY_CONTACT}
			}, resp: func() proto.Message { return &pdv1.CheckProcessorAgreementResponse{} }},
		{method: "personaldata.v1.ProcessorAgreementService/CreateProcessorAgreement", otherTenant: codes.NotFound,
			req: func(t *testing.T, f *matrixFixture, p matrixPrincipal, tenant string, _ *pdv1.Subject) proto.Message {
				return agreementReq(key(p, "agreement", tenant), tenant, f.e.clock.Now())
			}, resp: func() proto.Message { return &pdv1.CreateProcessorAgreementResponse{} }},
		{method: "personaldata.v1.ProcessorAgreementService/AmendProcessorAgreement", otherTenant: codes.NotFound,
			req: func(t *testing.T, f *matrixFixture, p matrixPrincipal, tenant string, _ *pdv1.Subject) proto.Message {
				return &pdv1.AmendProcessorAgreementRequest{IdempotencyKey: key(p, "amend", tenant), AgreementId: tenant + ".2",
					ExpectedVersion: 1, Terms: agreementReq("", tenant, f.e.clock.Now()).GetTerms()}
			}, resp: func() proto.Message { return &pdv1.AmendProcessorAgreementResponse{} }},
		{method: "personaldata.v1.ProcessorAgreementService/TerminateProcessorAgreement", otherTenant: codes.NotFound,
			req: func(t *testing.T, f *matrixFixture, p matrixPrincipal, tenant string, _ *pdv1.Subject) proto.Message {
				return &pdv1.TerminateProcessorAgreementRequest{IdempotencyKey: key(p, "terminate", tenant), AgreementId: tenant + ".2", Reference: "m"}
			}, resp: func() proto.Message { return &pdv1.TerminateProcessorAgreementResponse{} }},
		{method: "personaldata.v1.ProcessorAgreementService/ExportControllerSubjects", otherTenant: codes.NotFound,
			req: func(t *testing.T, f *matrixFixture, p matrixPrincipal, tenant string, _ *pdv1.Subject) proto.Message {
				return &pdv1.ExportControllerSubjectsRequest{CustomerId: tenant}
			}, resp: func() proto.Message { return &pdv1.ExportControllerSubjectsResponse{} }},

		{method: "personaldata.v1.AuditService/ListAuditEvents", otherTenant: codes.NotFound,
			req: func(t *testing.T, f *matrixFixture, p matrixPrincipal, tenant string, _ *pdv1.Subject) proto.Message {
				return &pdv1.ListAuditEventsRequest{TenantId: tenant}
			}, resp: func() proto.Message { return &pdv1.ListAuditEventsResponse{} }},
		{method: "personaldata.v1.AuditService/VerifyAuditChain", otherTenant: codes.NotFound,
			req: func(t *testing.T, f *matrixFixture, p matrixPrincipal, tenant string, sub *pdv1.Subject) proto.Message {
				return &pdv1.VerifyAuditChainRequest{Chain: "subjects/" + sub.GetSubjectId()}
			}, resp: func() proto.Message { return &pdv1.VerifyAuditChainResponse{} }},
		{method: "personaldata.v1.AuditService/ProveAuditInclusion", otherTenant: codes.NotFound,
			req: func(t *testing.T, f *matrixFixture, p matrixPrincipal, tenant string, sub *pdv1.Subject) proto.Message {
				return &pdv1.ProveAuditInclusionRequest{Chain: "subjects/" + sub.GetSubjectId(), Seq: 1}
			}, resp: func() proto.Message { return &pdv1.ProveAuditInclusionResponse{} }},
		{method: "personaldata.v1.AuditService/CreateAuditCheckpoint", tenantFree: true,
			req: func(*testing.T, *matrixFixture, matrixPrincipal, string, *pdv1.Subject) proto.Message {
				return &pdv1.CreateAuditCheckpointRequest{}
			}, resp: func() proto.Message { return &pdv1.CreateAuditCheckpointResponse{} }},
		{method: "personaldata.v1.AuditService/GetLatestAuditCheckpoint", tenantFree: true,
			req: func(*testing.T, *matrixFixture, matrixPrincipal, string, *pdv1.Subject) proto.Message {
				return &pdv1.GetLatestAuditCheckpointRequest{}
			}, resp: func() proto.Message { return &pdv1.GetLatestAuditCheckpointResponse{} }},
		{method: "personaldata.v1.AuditService/ProveAuditConsistency", tenantFree: true,
			req: func(*testing.T, *matrixFixture, matrixPrincipal, string, *pdv1.Subject) proto.Message {
				return &pdv1.ProveAuditConsistencyRequest{FromSize: 1}
			}, resp: func() proto.Message { return &pdv1.ProveAuditConsistencyResponse{} }},
		{method: "personaldata.v1.AuditService/ListAuditTreeLeaves", tenantFree: true,
			req: func(*testing.T, *matrixFixture, matrixPrincipal, string, *pdv1.Subject) proto.Message {
				return &pdv1.ListAuditTreeLeavesRequest{PageSize: 2}
			}, resp: func() proto.Message { return &pdv1.ListAuditTreeLeavesResponse{} }},

		{method: "personaldata.v1.PrincipalService/GetCaller", tenantFree: true,
			req: func(*testing.T, *matrixFixture, matrixPrincipal, string, *pdv1.Subject) proto.Message {
				return &pdv1.GetCallerRequest{}
			},
			resp: func() proto.Message { return &pdv1.GetCallerResponse{} }},
		{method: "personaldata.v1.PrincipalService/ListPrincipals", tenantFree: true,
			req: func(*testing.T, *matrixFixture, matrixPrincipal, string, *pdv1.Subject) proto.Message {
				return &pdv1.ListPrincipalsRequest{}
			},
			resp: func() proto.Message { return &pdv1.ListPrincipalsResponse{} }},
		{method: "personaldata.v1.PrincipalService/GetPrincipal", tenantFree: true,
			req: func(_ *testing.T, _ *matrixFixture, p matrixPrincipal, _ string, _ *pdv1.Subject) proto.Message {
				return &pdv1.GetPrincipalRequest{PrincipalId: "setup"}
			}, resp: func() proto.Message { return &pdv1.GetPrincipalResponse{} }},
		{method: "personaldata.v1.PrincipalService/CreatePrincipal", tenantFree: true,
			req: func(_ *testing.T, _ *matrixFixture, p matrixPrincipal, _ string, _ *pdv1.Subject) proto.Message {
				return &pdv1.CreatePrincipalRequest{IdempotencyKey: "m-" + p.id, Principal: &pdv1.Principal{PrincipalId: "made-by-" + p.id, Kind: pdv1.PrincipalKind_PRINCIPAL_KIND_BILLING_SYSTEM, TenantIds: []string{"company"}}}
			}, resp: func() proto.Message { return &pdv1.CreatePrincipalResponse{} }},
		{method: "personaldata.v1.PrincipalService/UpdatePrincipal", tenantFree: true,
			req: func(_ *testing.T, _ *matrixFixture, p matrixPrincipal, _ string, _ *pdv1.Subject) proto.Message {
				return &pdv1.UpdatePrincipalRequest{IdempotencyKey: "mu-" + p.id, PrincipalId: "made-by-" + p.id, ExpectedVersion: 1, TenantIds: []string{"company"},
					UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"tenant_ids"}}}
			}, resp: func() proto.Message { return &pdv1.UpdatePrincipalResponse{} }},
		{method: "personaldata.v1.PrincipalService/IssueToken", tenantFree: true,
			req: func(_ *testing.T, _ *matrixFixture, p matrixPrincipal, _ string, _ *pdv1.Subject) proto.Message {
				return &pdv1.IssueTokenRequest{IdempotencyKey: "mi-" + p.id, PrincipalId: "made-by-" + p.id}
			}, resp: func() proto.Message { return &pdv1.IssueTokenResponse{} }},
		{method: "personaldata.v1.PrincipalService/RevokePrincipal", tenantFree: true,
			req: func(_ *testing.T, _ *matrixFixture, p matrixPrincipal, _ string, _ *pdv1.Subject) proto.Message {
				return &pdv1.RevokePrincipalRequest{IdempotencyKey: "mr-" + p.id, PrincipalId: "made-by-" + p.id}
			}, resp: func() proto.Message { return &pdv1.RevokePrincipalResponse{} }},

		{method: "personaldata.v1.KeyService/RotateDataKeys", tenantFree: true,
			req: func(*testing.T, *matrixFixture, matrixPrincipal, string, *pdv1.Subject) proto.Message {
				return &pdv1.RotateDataKeysRequest{}
			},
			resp: func() proto.Message { return &pdv1.RotateDataKeysResponse{} }},
		matrixListNotifications(), matrixStreamNotifications(), matrixAckNotification(), // disclosure_test.go
		{method: runSweep, tenantFree: true,
			req: func(*testing.T, *matrixFixture, matrixPrincipal, string, *pdv1.Subject) proto.Message {
				return &pdv1.RunRetentionSweepRequest{}
			},
			resp: func() proto.Message { return &pdv1.RunRetentionSweepResponse{} }},

		// Last: it erases every subject of the tenant. An operator ends the
		// agreement in force in the same call (operator_bounds_test.go).
		{method: "personaldata.v1.ProcessorAgreementService/EraseControllerSubjects", otherTenant: codes.NotFound,
			req: func(t *testing.T, f *matrixFixture, p matrixPrincipal, tenant string, _ *pdv1.Subject) proto.Message {
				req := &pdv1.EraseControllerSubjectsRequest{IdempotencyKey: key(p, "bulk-erase", tenant), CustomerId: tenant,
					Ground: pdv1.ErasureGround_ERASURE_GROUND_NO_LEGAL_BASIS, Reference: "m"}
				if p.kind == pdv1.PrincipalKind_PRINCIPAL_KIND_OPERATOR {
					req.TerminateAgreementId = agreement(tenant)
				}
				return req
			}, resp: func() proto.Message { return &pdv1.EraseControllerSubjectsResponse{} }},
	}
}

// agreementReq is an agreement in force from an hour before now, covering
// every purpose and category.
func agreementReq(key, customer string, now time.Time) *pdv1.CreateProcessorAgreementRequest {
	return &pdv1.CreateProcessorAgreementRequest{IdempotencyKey: key, CustomerId: customer, Terms: &pdv1.AgreementTerms{
		SignTime: timestamppb.New(now.Add(-2 * time.Hour)), InForceFrom: timestamppb.New(now.Add(-time.Hour)),
		Purposes:      allPurposes,
		Categories:    []pdv1.DataCategory{pdv1.DataCategory_DATA_CATEGORY_IDENTIFICATION, pdv1.DataCategory_DATA_CATEGORY_CONTACT, pdv1.DataCategory_DATA_CATEGORY_HISTORY},
		SubProcessors: []string{"iis.se"}, DocumentReference: "dpa/" + customer,
	}}
}

// TestAuthorizationMatrix calls every RPC as every kind of principal, on its
// own tenant's data and on another tenant's, over gRPC and REST: a caller
// gets what its kind may call, on its own tenants only; another tenant's
// records are NOT_FOUND exactly as if they did not exist.
func TestAuthorizationMatrix(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		op := e.as(c, e.operator)
		for _, customer := range []string{"customer-7", "customer-8"} {
			call(t, op, "personaldata.v1.ProcessorAgreementService/CreateProcessorAgreement", agreementReq("setup-"+customer, customer, e.clock.Now()), &pdv1.CreateProcessorAgreementResponse{})
		}
		f := &matrixFixture{e: e, setup: e.as(c, e.principal(t, "setup", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, []string{"company", "customer-7", "customer-8"}, allPurposes)),
			discloser: e.as(c, e.principal(t, "setup-domreg", pdv1.PrincipalKind_PRINCIPAL_KIND_DOMAIN_REGISTRATION, []string{"company"}, nil))}
		principals := []matrixPrincipal{
			{id: "billing", kind: pdv1.PrincipalKind_PRINCIPAL_KIND_BILLING_SYSTEM, tenant: "company", other: "customer-7", purpose: pdv1.Purpose_PURPOSE_INVOICING},
			{id: "domreg", kind: pdv1.PrincipalKind_PRINCIPAL_KIND_DOMAIN_REGISTRATION, tenant: "company", other: "customer-7", purpose: pdv1.Purpose_PURPOSE_DOMAIN_REGISTRATION},
			{id: "support", kind: pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, tenant: "company", other: "customer-7", purpose: pdv1.Purpose_PURPOSE_SUPPORT},
			// Operators act for every tenant; its bulk erasure empties customer-8.
			{id: "operator2", kind: pdv1.PrincipalKind_PRINCIPAL_KIND_OPERATOR, tenant: "customer-8", purpose: pdv1.Purpose_PURPOSE_SUPPORT},
			// Last: its bulk erasure empties customer-7.
			{id: "controller", kind: pdv1.PrincipalKind_PRINCIPAL_KIND_CUSTOMER_CONTROLLER, tenant: "customer-7", other: "customer-8", purpose: pdv1.Purpose_PURPOSE_SERVICE_DELIVERY},
		}
		for _, p := range principals {
			tenants := []string{p.tenant}
			if p.kind == pdv1.PrincipalKind_PRINCIPAL_KIND_OPERATOR {
				tenants = []string{auth.AllTenants}
			}
			p.token = e.principal(t, p.id, p.kind, tenants, nil)
			as := e.as(c, p.token)
			allowed := auth.DefaultRPCs(p.kind)
			subjects := map[string]*pdv1.Subject{}
			for _, tenant := range []string{p.tenant, p.other} {
				if tenant != "" {
					subjects[tenant] = f.fresh(t, tenant)
				}
			}
			for _, rpc := range matrixRPCs() {
				for _, tenant := range []string{p.tenant, p.other} {
					if tenant == "" || (rpc.tenantFree && tenant != p.tenant) {
						continue
					}
					sub := subjects[tenant]
					want := codes.OK
					switch {
					case rpc.method == "personaldata.v1.PrincipalService/GetCaller":
					case !slices.Contains(allowed, "/"+rpc.method):
						want = codes.PermissionDenied
					case tenant == p.other:
						want = rpc.otherTenant
					case tenant == "company" && rpc.onCompany != codes.OK:
						want = rpc.onCompany
					}
					t.Run(fmt.Sprintf("%s/%s/%s", p.id, rpc.method[len("personaldata.v1."):], map[bool]string{true: "own", false: "other"}[tenant == p.tenant]), func(t *testing.T) {
						err := matrixCall(t, as, rpc, rpc.req(t, f, p, tenant, sub))
						if got := status.Code(err); got != want {
							t.Errorf("got %v (%v), want %v", got, err, want)
						}
					})
				}
			}
			if p.kind == pdv1.PrincipalKind_PRINCIPAL_KIND_OPERATOR {
				// Its bulk erasure ended the tenant's agreement: a new one
				// for the principals after it.
				call(t, op, "personaldata.v1.ProcessorAgreementService/CreateProcessorAgreement", agreementReq("again-"+p.tenant, p.tenant, e.clock.Now()), &pdv1.CreateProcessorAgreementResponse{})
			}
		}
		// Every RPC and every refusal went through the logs: no person's
		// value may be in them.
		logs := e.logs.String()
		for n := 1; n <= f.n; n++ {
			p := testPerson(500 + n)
			for _, v := range []string{p.GetGivenName(), p.GetFamilyName(), p.GetEmail(), strings.ReplaceAll(p.GetIdentityNumber(), "-", "")} {
				if strings.Contains(logs, v) {
					t.Errorf("the server's logs hold a personal value (%d chars)", len(v))
				}
			}
		}
	})
}
