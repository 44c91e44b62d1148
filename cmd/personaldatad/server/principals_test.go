package server_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

const principalSvc = "personaldata.v1.PrincipalService/"

func TestAuthentication(t *testing.T) {
	e := start(t)
	sub := create(t, e.gc(), 1)
	access := &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}
	for name, token := range map[string]string{
		"no token":          "",
		"not a token":       "hello",
		"unknown principal": "pd1.nobody.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"wrong secret":      e.token[:len(e.token)-4] + "AAAA",
	} {
		for _, c := range []caller{grpcCaller{e.grpc, token}, restCaller{e.base, token}} {
			callErr(t, c, "AccessSubject", access, &pdv1.AccessSubjectResponse{}, codes.Unauthenticated)
			_ = name
		}
	}
	// A bare REST call without a token is 401 too.
	res, err := http.Get(e.base + "/v1/subjects/" + sub.GetSubjectId() + ":access")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("REST without credentials: HTTP %d, want 401", res.StatusCode)
	}
	_, metrics := httpGet(t, e.base+"/metrics")
	for _, reason := range []string{"missing", "malformed", "unknown_principal", "bad_token"} {
		if !strings.Contains(metrics, fmt.Sprintf(`personaldata_auth_failures_total{reason=%q}`, reason)) {
			t.Errorf("metrics do not count %s credentials", reason)
		}
	}
	// Health needs no credentials.
	if code, _ := httpGet(t, e.base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
}

func TestPrincipalManagement(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		opc := e.as(c, e.operator)
		created := call(t, opc, principalSvc+"CreatePrincipal", &pdv1.CreatePrincipalRequest{
			IdempotencyKey: "p1",
			Principal:      &pdv1.Principal{PrincipalId: "billing", Kind: pdv1.PrincipalKind_PRINCIPAL_KIND_BILLING_SYSTEM, TenantIds: []string{"company"}},
		}, &pdv1.CreatePrincipalResponse{})
		p := created.GetPrincipal()
		if !strings.HasPrefix(created.GetToken(), "pd1.billing.") || p.GetTokenCount() != 1 ||
			!slices.Equal(p.GetPurposes(), []pdv1.Purpose{pdv1.Purpose_PURPOSE_INVOICING}) ||
			!slices.Contains(p.GetRpcs(), "/personaldata.v1.PersonalDataService/GetSubjectForPurpose") ||
			!slices.Contains(p.GetRpcs(), "/personaldata.v1.RetentionService/PlaceHold") || len(p.GetRpcs()) != 3 {
			t.Errorf("created %v", created)
		}
		// The token is stored only as a hash.
		if strings.Contains(e.dumpCollection(t, "principals"), created.GetToken()) {
			t.Errorf("the token is stored in the clear")
		}
		// A retry returns the principal but not the token again.
		again := call(t, opc, principalSvc+"CreatePrincipal", &pdv1.CreatePrincipalRequest{
			IdempotencyKey: "p1",
			Principal:      &pdv1.Principal{PrincipalId: "billing", Kind: pdv1.PrincipalKind_PRINCIPAL_KIND_BILLING_SYSTEM, TenantIds: []string{"company"}},
		}, &pdv1.CreatePrincipalResponse{})
		if again.GetToken() != "" || again.GetPrincipal().GetPrincipalId() != "billing" {
			t.Errorf("retry: %v", again)
		}
		callErr(t, opc, principalSvc+"CreatePrincipal", &pdv1.CreatePrincipalRequest{
			IdempotencyKey: "p2",
			Principal:      &pdv1.Principal{PrincipalId: "billing", Kind: pdv1.PrincipalKind_PRINCIPAL_KIND_BILLING_SYSTEM, TenantIds: []string{"company"}},
		}, &pdv1.CreatePrincipalResponse{}, codes.AlreadyExists)
		for _, tc := range []struct {
			p     *pdv1.Principal
			field string
		}{
			{&pdv1.Principal{PrincipalId: "Bad Id", Kind: 1, TenantIds: []string{"company"}}, "principal.principal_id"},
			{&pdv1.Principal{PrincipalId: "x", TenantIds: []string{"company"}}, "principal.kind"},
			{&pdv1.Principal{PrincipalId: "x", Kind: 1}, "tenant_ids"},
			{&pdv1.Principal{PrincipalId: "x", Kind: 1, TenantIds: []string{"*"}}, "tenant_ids"},
			{&pdv1.Principal{PrincipalId: "x", Kind: 1, TenantIds: []string{"company"}, Rpcs: []string{"/x/Y"}}, "rpcs"},
		} {
			err := callErr(t, opc, principalSvc+"CreatePrincipal", &pdv1.CreatePrincipalRequest{IdempotencyKey: "bad", Principal: tc.p}, &pdv1.CreatePrincipalResponse{}, codes.InvalidArgument)
			if !slices.Equal(badFields(err), []string{tc.field}) {
				t.Errorf("fields %v, want [%s]", badFields(err), tc.field)
			}
		}

		billing := e.as(c, created.GetToken())
		who := call(t, billing, principalSvc+"GetCaller", &pdv1.GetCallerRequest{}, &pdv1.GetCallerResponse{})
		if who.GetPrincipal().GetPrincipalId() != "billing" || who.GetMethod() != "bearer" {
			t.Errorf("GetCaller: %v", who)
		}
		sub := create(t, c, 2)
		call(t, billing, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: sub.GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_INVOICING}, &pdv1.GetSubjectForPurposeResponse{})

		// A second token works beside the first; listing shows both principals.
		issued := call(t, opc, principalSvc+"IssueToken", &pdv1.IssueTokenRequest{IdempotencyKey: "t2", PrincipalId: "billing"}, &pdv1.IssueTokenResponse{})
		if issued.GetPrincipal().GetTokenCount() != 2 || issued.GetToken() == "" {
			t.Errorf("issue token: %v", issued)
		}
		list := call(t, opc, principalSvc+"ListPrincipals", &pdv1.ListPrincipalsRequest{PageSize: 2}, &pdv1.ListPrincipalsResponse{})
		next := call(t, opc, principalSvc+"ListPrincipals", &pdv1.ListPrincipalsRequest{PageSize: 2, PageToken: list.GetNextPageToken()}, &pdv1.ListPrincipalsResponse{})
		var ids []string
		for _, p := range append(list.GetPrincipals(), next.GetPrincipals()...) {
			ids = append(ids, p.GetPrincipalId())
		}
		if !slices.Equal(ids, []string{"billing", "operator", "tester"}) {
			t.Errorf("listed %v", ids)
		}

		// A purpose beyond a billing system's (INVOICING) cannot be granted.
		got := call(t, opc, principalSvc+"GetPrincipal", &pdv1.GetPrincipalRequest{PrincipalId: "billing"}, &pdv1.GetPrincipalResponse{}).GetPrincipal()
		callErr(t, billing, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: sub.GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_SUPPORT}, &pdv1.GetSubjectForPurposeResponse{}, codes.PermissionDenied)
		callErr(t, opc, principalSvc+"UpdatePrincipal", &pdv1.UpdatePrincipalRequest{
			IdempotencyKey: "u0", PrincipalId: "billing", ExpectedVersion: got.GetVersion(),
			Purposes:   []pdv1.Purpose{pdv1.Purpose_PURPOSE_INVOICING, pdv1.Purpose_PURPOSE_SUPPORT},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"purposes"}},
		}, &pdv1.UpdatePrincipalResponse{}, codes.InvalidArgument)
		// Narrowing a grant takes effect at once: without FindSubject, billing
		// can no longer look subjects up.
		find := &pdv1.FindSubjectRequest{ControllerId: "company", Key: &pdv1.FindSubjectRequest_Email{Email: sub.GetPerson().GetEmail()}}
		call(t, billing, "FindSubject", find, &pdv1.FindSubjectResponse{})
		call(t, opc, principalSvc+"UpdatePrincipal", &pdv1.UpdatePrincipalRequest{
			IdempotencyKey: "u1", PrincipalId: "billing", ExpectedVersion: got.GetVersion(),
			Rpcs:       []string{pdv1.PersonalDataService_GetSubjectForPurpose_FullMethodName},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"rpcs"}},
		}, &pdv1.UpdatePrincipalResponse{})
		callErr(t, billing, "FindSubject", find, &pdv1.FindSubjectResponse{}, codes.PermissionDenied)
		call(t, billing, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: sub.GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_INVOICING}, &pdv1.GetSubjectForPurposeResponse{})
		callErr(t, opc, principalSvc+"UpdatePrincipal", &pdv1.UpdatePrincipalRequest{
			IdempotencyKey: "u2", PrincipalId: "billing", ExpectedVersion: got.GetVersion(), TenantIds: []string{"company"},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"tenant_ids"}},
		}, &pdv1.UpdatePrincipalResponse{}, codes.Aborted)

		// Revocation is immediate, for every token.
		call(t, opc, principalSvc+"RevokePrincipal", &pdv1.RevokePrincipalRequest{IdempotencyKey: "r1", PrincipalId: "billing", Reason: "system retired"}, &pdv1.RevokePrincipalResponse{})
		callErr(t, billing, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: sub.GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_INVOICING}, &pdv1.GetSubjectForPurposeResponse{}, codes.Unauthenticated)
		second := e.as(c, issued.GetToken())
		callErr(t, second, principalSvc+"GetCaller", &pdv1.GetCallerRequest{}, &pdv1.GetCallerResponse{}, codes.Unauthenticated)
		callErr(t, opc, principalSvc+"IssueToken", &pdv1.IssueTokenRequest{IdempotencyKey: "t3", PrincipalId: "billing"}, &pdv1.IssueTokenResponse{}, codes.FailedPrecondition)
		callErr(t, opc, principalSvc+"RevokePrincipal", &pdv1.RevokePrincipalRequest{IdempotencyKey: "r2", PrincipalId: "operator"}, &pdv1.RevokePrincipalResponse{}, codes.FailedPrecondition)
		callErr(t, opc, principalSvc+"GetPrincipal", &pdv1.GetPrincipalRequest{PrincipalId: "nobody"}, &pdv1.GetPrincipalResponse{}, codes.NotFound)

		// Only operators manage principals.
		callErr(t, c, principalSvc+"ListPrincipals", &pdv1.ListPrincipalsRequest{}, &pdv1.ListPrincipalsResponse{}, codes.PermissionDenied)
	})
}

// TestUpdatePrincipalMask: an update changes the grants its mask names and
// keeps the others; the mask is required and names only grants.
func TestUpdatePrincipalMask(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		opc := e.as(c, e.operator)
		support := []pdv1.Purpose{pdv1.Purpose_PURPOSE_SUPPORT, pdv1.Purpose_PURPOSE_INVOICING}
		e.principal(t, "support-1", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, []string{"company"}, support)
		get := func() *pdv1.Principal {
			return call(t, opc, principalSvc+"GetPrincipal", &pdv1.GetPrincipalRequest{PrincipalId: "support-1"}, &pdv1.GetPrincipalResponse{}).GetPrincipal()
		}
		before := get()
		update := func(key string, version int64, req *pdv1.UpdatePrincipalRequest, paths ...string) *pdv1.UpdatePrincipalRequest {
			req.IdempotencyKey, req.PrincipalId, req.ExpectedVersion = key, "support-1", version
			if paths != nil {
				req.UpdateMask = &fieldmaskpb.FieldMask{Paths: paths}
			}
			return req
		}

		// New tenants; the purposes (not in the mask, and empty in the
		// request) stay as they were, not the kind's defaults.
		got := call(t, opc, principalSvc+"UpdatePrincipal", update("u1", before.GetVersion(),
			&pdv1.UpdatePrincipalRequest{TenantIds: []string{"company", "customer-7"}}, "tenant_ids"), &pdv1.UpdatePrincipalResponse{}).GetPrincipal()
		stored := get()
		for _, p := range []*pdv1.Principal{got, stored} {
			if !slices.Equal(p.GetTenantIds(), []string{"company", "customer-7"}) || !slices.Equal(p.GetPurposes(), support) ||
				!slices.Equal(p.GetRpcs(), before.GetRpcs()) || p.GetVersion() != before.GetVersion()+1 {
				t.Errorf("after a tenants update: %v", p)
			}
		}
		// New purposes; the tenants stay.
		call(t, opc, principalSvc+"UpdatePrincipal", update("u2", stored.GetVersion(),
			&pdv1.UpdatePrincipalRequest{Purposes: []pdv1.Purpose{pdv1.Purpose_PURPOSE_SUPPORT}, TenantIds: []string{"ignored"}}, "purposes"), &pdv1.UpdatePrincipalResponse{})
		stored = get()
		if !slices.Equal(stored.GetTenantIds(), []string{"company", "customer-7"}) || !slices.Equal(stored.GetPurposes(), []pdv1.Purpose{pdv1.Purpose_PURPOSE_SUPPORT}) {
			t.Errorf("after a purposes update: %v", stored)
		}

		// No mask, or a path that is not a grant: INVALID_ARGUMENT naming
		// update_mask, and nothing changes.
		for _, paths := range [][]string{nil, {}, {"kind"}, {"tenant_ids", "description"}} {
			err := callErr(t, opc, principalSvc+"UpdatePrincipal", update("bad", stored.GetVersion(),
				&pdv1.UpdatePrincipalRequest{TenantIds: []string{"company"}}, paths...), &pdv1.UpdatePrincipalResponse{}, codes.InvalidArgument)
			if !slices.Equal(badFields(err), []string{"update_mask"}) {
				t.Errorf("mask %q: fields %v", paths, badFields(err))
			}
		}
		if after := get(); !proto.Equal(after, stored) {
			t.Errorf("a refused update changed the principal: %v", after)
		}
	})
}

// dumpCollection is one collection's documents as extended JSON.
func (e *env) dumpCollection(t *testing.T, name string) string {
	t.Helper()
	cur, err := e.coll(name).Find(context.Background(), map[string]any{})
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for cur.Next(context.Background()) {
		sb.WriteString(cur.Current.String())
	}
	return sb.String()
}

// TestRightsRequestsOnCustomerData shows that rights requests about data a
// customer controls come from the controller's principal: the company's
// support staff, even acting for that customer, may store and process but
// not answer them.
func TestRightsRequestsOnCustomerData(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		call(t, e.as(c, e.operator), "personaldata.v1.ProcessorAgreementService/CreateProcessorAgreement", agreementReq("pa", "customer-42", e.clock.Now()), &pdv1.CreateProcessorAgreementResponse{})
		req := createReq("c42", 900)
		req.ControllerId = "customer-42"
		sub := call(t, c, "CreateSubject", req, &pdv1.CreateSubjectResponse{}).GetSubject()
		ctl := e.controller(t, c)
		callErr(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{}, codes.PermissionDenied)
		callErr(t, c, "RestrictProcessing", restrictReq(sub, "x"), &pdv1.RestrictProcessingResponse{}, codes.PermissionDenied)
		callErr(t, c, "EraseSubject", eraseReq(sub, "e"), &pdv1.EraseSubjectResponse{}, codes.PermissionDenied)
		call(t, ctl, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
		rect := call(t, ctl, "RectifySubject", rectifyReq(sub, "r", &pdv1.Person{Phone: "+46701234000"}, "phone"), &pdv1.RectifySubjectResponse{})
		if rect.GetChange().GetPerformedBy() != "customer-42-admin for support-agent-7" {
			t.Errorf("performed by %q", rect.GetChange().GetPerformedBy())
		}
		call(t, c, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: sub.GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_SUPPORT}, &pdv1.GetSubjectForPurposeResponse{})
		call(t, ctl, "EraseSubject", eraseReq(sub, "e"), &pdv1.EraseSubjectResponse{})
	})
}
