package server_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// TestRejectedPrincipalIDsAreNotStored sends principal ids that are not ids
// (an identity number, markup, a NUL byte) to the principal RPCs that take
// one in the URL: each is INVALID_ARGUMENT, the attempt is in the audit trail
// under a keyed hash, and none of the values is stored anywhere.
func TestRejectedPrincipalIDsAreNotStored(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		op := e.as(c, e.operator)
		bad := []string{"19121212-1212", "191212121212", "<script>alert(1)", "nul\x00byte"}
		for i, id := range bad {
			callErr(t, op, "personaldata.v1.PrincipalService/RevokePrincipal", &pdv1.RevokePrincipalRequest{
				IdempotencyKey: "revoke-bad-" + string(rune('a'+i)), PrincipalId: id, Reason: "test",
			}, &pdv1.RevokePrincipalResponse{}, codes.InvalidArgument)
			callErr(t, op, "personaldata.v1.PrincipalService/IssueToken", &pdv1.IssueTokenRequest{
				IdempotencyKey: "issue-bad-" + string(rune('a'+i)), PrincipalId: id,
			}, &pdv1.IssueTokenResponse{}, codes.InvalidArgument)
		}
		// An identity number cannot name a new principal either.
		callErr(t, op, "personaldata.v1.PrincipalService/CreatePrincipal", &pdv1.CreatePrincipalRequest{
			IdempotencyKey: "create-pnr",
			Principal:      &pdv1.Principal{PrincipalId: "191212121212", Kind: pdv1.PrincipalKind_PRINCIPAL_KIND_BILLING_SYSTEM, TenantIds: []string{"company"}},
		}, &pdv1.CreatePrincipalResponse{}, codes.InvalidArgument)

		dump := e.rawDump(t)
		for _, v := range []string{"19121212", "121212-1212", "<script>", "alert(1)", "nul\x00", "byte"} {
			if strings.Contains(dump, v) {
				t.Errorf("a rejected principal id (%d chars) is stored", len(v))
			}
		}
		if n := strings.Count(dump, "principal/rejected-id:"); n < 2*len(bad) {
			t.Errorf("%d audited attempts with a rejected id, want %d", n, 2*len(bad))
		}
	})
}

// TestRefusalsAreAudited has the billing system try what it may not: an RPC
// it was not granted (AccessSubject) and a view for a purpose it may not use
// (SUPPORT). Each refusal is in the subject's chain with the principal, the
// RPC, the purpose and the outcome, and is counted by reason.
func TestRefusalsAreAudited(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		sub := create(t, c, 340)
		billing := e.as(c, e.principal(t, "billing", pdv1.PrincipalKind_PRINCIPAL_KIND_BILLING_SYSTEM, []string{"company"}, nil))
		id := sub.GetSubjectId()
		callErr(t, billing, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: id}, &pdv1.AccessSubjectResponse{}, codes.PermissionDenied)
		callErr(t, billing, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: id, Purpose: pdv1.Purpose_PURPOSE_SUPPORT}, &pdv1.GetSubjectForPurposeResponse{}, codes.PermissionDenied)
		call(t, billing, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: id, Purpose: pdv1.Purpose_PURPOSE_INVOICING}, &pdv1.GetSubjectForPurposeResponse{})
		// A value of another form than a subject id is not recorded.
		callErr(t, billing, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: "191212121212"}, &pdv1.AccessSubjectResponse{}, codes.PermissionDenied)

		op := e.as(c, e.operator)
		res := call(t, op, listAuditEvents, &pdv1.ListAuditEventsRequest{SubjectId: id, PageSize: 100}, &pdv1.ListAuditEventsResponse{})
		var got []string
		for _, ev := range res.GetEvents() {
			if ev.GetPrincipalId() != "billing" {
				continue
			}
			got = append(got, fmt.Sprintf("%s %s %s %v", strings.TrimPrefix(ev.GetRpc(), "/personaldata.v1.PersonalDataService/"), ev.GetPurpose(), ev.GetOutcome(), ev.GetFields()))
		}
		want := []string{
			"AccessSubject PURPOSE_UNSPECIFIED PermissionDenied [refused:RPC_NOT_PERMITTED]",
			"GetSubjectForPurpose PURPOSE_SUPPORT PermissionDenied [refused:PURPOSE_NOT_PERMITTED]",
			"GetSubjectForPurpose PURPOSE_INVOICING OK [email family_name given_name postal_address]",
		}
		if !slices.Equal(got, want) {
			t.Errorf("billing's events in the subject's chain:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		// The refusal that named no subject id is on the caller's tenant's chain.
		tenant := call(t, op, listAuditEvents, &pdv1.ListAuditEventsRequest{TenantId: "company", PageSize: 100}, &pdv1.ListAuditEventsResponse{})
		var onTenant int
		for _, ev := range tenant.GetEvents() {
			if ev.GetChain() == "tenants/company" && ev.GetPrincipalId() == "billing" && ev.GetOutcome() == "PermissionDenied" {
				onTenant++
			}
		}
		if onTenant != 1 {
			t.Errorf("%d refusals without a subject id on the tenant's chain, want 1", onTenant)
		}
		if strings.Contains(e.rawDump(t), "191212121212") {
			t.Error("a refused request's value is stored")
		}
		_, metrics := httpGet(t, e.base+"/metrics")
		for _, line := range []string{
			`personaldata_refusals_total{method="/personaldata.v1.PersonalDataService/AccessSubject",reason="RPC_NOT_PERMITTED"} 2`,
			`personaldata_refusals_total{method="/personaldata.v1.PersonalDataService/GetSubjectForPurpose",reason="PURPOSE_NOT_PERMITTED"} 1`,
		} {
			if !strings.Contains(metrics, line) {
				t.Errorf("metrics lack %s", line)
			}
		}
	})
}

// TestGrantsStayWithinTheKind: an operator cannot grant itself or anyone an
// RPC or purpose beyond the principal's kind, and a grant beyond it that is
// in the store anyway (written before the rule, or by hand) does not count.
// A token issued and grants changed by an operator show in the principal's
// tenant's chain.
func TestGrantsStayWithinTheKind(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		op := e.as(c, e.operator)
		sub := create(t, c, 350)
		self := call(t, op, "personaldata.v1.PrincipalService/GetPrincipal", &pdv1.GetPrincipalRequest{PrincipalId: "operator"}, &pdv1.GetPrincipalResponse{}).GetPrincipal()
		err := callErr(t, op, "personaldata.v1.PrincipalService/UpdatePrincipal", &pdv1.UpdatePrincipalRequest{
			IdempotencyKey: "self-grant", PrincipalId: "operator", ExpectedVersion: self.GetVersion(),
			Rpcs:       append(self.GetRpcs(), pdv1.PersonalDataService_AccessSubject_FullMethodName),
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"rpcs"}},
		}, &pdv1.UpdatePrincipalResponse{}, codes.InvalidArgument)
		if !slices.Equal(badFields(err), []string{"rpcs"}) {
			t.Errorf("self-grant refused on %v, want rpcs", badFields(err))
		}
		callErr(t, op, "personaldata.v1.PrincipalService/CreatePrincipal", &pdv1.CreatePrincipalRequest{
			IdempotencyKey: "create-reader-op",
			Principal: &pdv1.Principal{PrincipalId: "reader-op", Kind: pdv1.PrincipalKind_PRINCIPAL_KIND_OPERATOR, TenantIds: []string{"*"},
				Rpcs: []string{pdv1.PersonalDataService_AccessSubject_FullMethodName}},
		}, &pdv1.CreatePrincipalResponse{}, codes.InvalidArgument)
		err = callErr(t, op, "personaldata.v1.PrincipalService/CreatePrincipal", &pdv1.CreatePrincipalRequest{
			IdempotencyKey: "create-nosy-billing",
			Principal: &pdv1.Principal{PrincipalId: "nosy-billing", Kind: pdv1.PrincipalKind_PRINCIPAL_KIND_BILLING_SYSTEM, TenantIds: []string{"company"},
				Purposes: []pdv1.Purpose{pdv1.Purpose_PURPOSE_SUPPORT}},
		}, &pdv1.CreatePrincipalResponse{}, codes.InvalidArgument)
		if !slices.Equal(badFields(err), []string{"principal.purposes"}) && !slices.Equal(badFields(err), []string{"purposes"}) {
			t.Errorf("billing with SUPPORT refused on %v, want purposes", badFields(err))
		}

		// A grant written into the store by hand is not honoured.
		if _, err := e.coll("principals").UpdateOne(context.Background(), bson.D{{Key: "_id", Value: "operator"}},
			bson.D{{Key: "$push", Value: bson.D{{Key: "rpcs", Value: pdv1.PersonalDataService_AccessSubject_FullMethodName}}}}); err != nil {
			t.Fatal(err)
		}
		callErr(t, op, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{}, codes.PermissionDenied)

		// The operator issues a token for support staff of the company: the
		// company's chain shows it, naming the operator.
		e.principal(t, "support-9", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, []string{"company"}, nil)
		call(t, op, "personaldata.v1.PrincipalService/IssueToken", &pdv1.IssueTokenRequest{IdempotencyKey: "issue-support-9", PrincipalId: "support-9"}, &pdv1.IssueTokenResponse{})
		tenant := call(t, op, listAuditEvents, &pdv1.ListAuditEventsRequest{TenantId: "company", PageSize: 100}, &pdv1.ListAuditEventsResponse{})
		var seen []string
		for _, ev := range tenant.GetEvents() {
			if slices.Contains(ev.GetFields(), "principal/support-9") {
				seen = append(seen, strings.TrimPrefix(ev.GetRpc(), "/personaldata.v1.PrincipalService/")+" by "+ev.GetPrincipalId()+" "+ev.GetOutcome())
			}
		}
		if want := []string{"CreatePrincipal by operator OK", "IssueToken by operator OK"}; !slices.Equal(seen, want) {
			t.Errorf("the company's chain shows %v, want %v", seen, want)
		}

		// A tenant that an update grants sees the update in its own chain.
		p9 := call(t, op, "personaldata.v1.PrincipalService/GetPrincipal", &pdv1.GetPrincipalRequest{PrincipalId: "support-9"}, &pdv1.GetPrincipalResponse{}).GetPrincipal()
		call(t, op, "personaldata.v1.PrincipalService/UpdatePrincipal", &pdv1.UpdatePrincipalRequest{
			IdempotencyKey: "grant-customer-42", PrincipalId: "support-9", ExpectedVersion: p9.GetVersion(),
			TenantIds: []string{"company", "customer-42"}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"tenant_ids"}},
		}, &pdv1.UpdatePrincipalResponse{})
		granted := call(t, op, listAuditEvents, &pdv1.ListAuditEventsRequest{TenantId: "customer-42", PageSize: 100}, &pdv1.ListAuditEventsResponse{})
		var grants int
		for _, ev := range granted.GetEvents() {
			if slices.Contains(ev.GetFields(), "principal/support-9") && strings.HasSuffix(ev.GetRpc(), "/UpdatePrincipal") {
				grants++
			}
		}
		if grants != 1 {
			t.Errorf("customer-42's chain shows %d grants to support-9, want 1", grants)
		}

		// A refused call to the audit trail itself is on record and counted.
		callErr(t, e.as(c, e.token), listAuditEvents, &pdv1.ListAuditEventsRequest{TenantId: "company"}, &pdv1.ListAuditEventsResponse{}, codes.PermissionDenied)
		_, metrics := httpGet(t, e.base+"/metrics")
		if !strings.Contains(metrics, `personaldata_refusals_total{method="/personaldata.v1.AuditService/ListAuditEvents",reason="RPC_NOT_PERMITTED"} 1`) {
			t.Error("the refused audit listing is not counted")
		}
	})
}
