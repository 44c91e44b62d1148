package server_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/store"
)

const (
	listAuditEvents  = "personaldata.v1.AuditService/ListAuditEvents"
	verifyAuditChain = "personaldata.v1.AuditService/VerifyAuditChain"
)

// auditSubject creates a subject of the company as the tester and returns it.
func auditSubject(t *testing.T, e *env, c caller, n int) *pdv1.Subject {
	t.Helper()
	return call(t, e.as(c, e.token), "CreateSubject", &pdv1.CreateSubjectRequest{
		IdempotencyKey: fmt.Sprintf("audit-create-%d", n),
		ControllerId:   "company",
		Person:         testPerson(n),
		Channel:        pdv1.Channel_CHANNEL_PORTAL,
		Reference:      "audit-test",
	}, &pdv1.CreateSubjectResponse{}).GetSubject()
}

func TestAuditBadInput(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		op := e.as(c, e.operator)
		for _, tc := range []struct {
			name string
			req  *pdv1.ListAuditEventsRequest
			want []string
		}{
			{"neither", &pdv1.ListAuditEventsRequest{}, []string{"subject_id", "tenant_id"}},
			{"both", &pdv1.ListAuditEventsRequest{SubjectId: "abc", TenantId: "company"}, []string{"subject_id", "tenant_id"}},
			{"bad tenant", &pdv1.ListAuditEventsRequest{TenantId: "Not A Tenant"}, []string{"tenant_id"}},
			{"bad subject", &pdv1.ListAuditEventsRequest{SubjectId: "no/such"}, []string{"subject_id"}},
			{"page size", &pdv1.ListAuditEventsRequest{TenantId: "company", PageSize: 101}, []string{"page_size"}},
			{"page token", &pdv1.ListAuditEventsRequest{TenantId: "company", PageToken: "not-a-token"}, []string{"page_token"}},
		} {
			err := callErr(t, op, listAuditEvents, tc.req, &pdv1.ListAuditEventsResponse{}, codes.InvalidArgument)
			if got := badFields(err); !slices.Equal(got, tc.want) {
				t.Errorf("%s: fields %v, want %v", tc.name, got, tc.want)
			}
		}
		for _, chain := range []string{"", "subjects/", "tenants/Not A Tenant", "nonsense", "subjects/a/b"} {
			err := callErr(t, op, verifyAuditChain, &pdv1.VerifyAuditChainRequest{Chain: chain}, &pdv1.VerifyAuditChainResponse{}, codes.InvalidArgument)
			if got := badFields(err); !slices.Equal(got, []string{"chain"}) {
				t.Errorf("chain %q: fields %v", chain, got)
			}
		}
	})
}

func TestAuditTenantIsolation(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		op := e.as(c, e.operator)
		ctl := e.as(c, e.principal(t, "ctl7", pdv1.PrincipalKind_PRINCIPAL_KIND_CUSTOMER_CONTROLLER, []string{"customer-7"}, nil))
		sub := auditSubject(t, e, c, 1)

		// Another tenant's data is NOT_FOUND, as if absent.
		callErr(t, ctl, listAuditEvents, &pdv1.ListAuditEventsRequest{TenantId: "company"}, &pdv1.ListAuditEventsResponse{}, codes.NotFound)
		callErr(t, ctl, listAuditEvents, &pdv1.ListAuditEventsRequest{SubjectId: sub.GetSubjectId()}, &pdv1.ListAuditEventsResponse{}, codes.NotFound)
		callErr(t, ctl, listAuditEvents, &pdv1.ListAuditEventsRequest{SubjectId: "nosuchsubject"}, &pdv1.ListAuditEventsResponse{}, codes.NotFound)
		callErr(t, ctl, verifyAuditChain, &pdv1.VerifyAuditChainRequest{Chain: "tenants/company"}, &pdv1.VerifyAuditChainResponse{}, codes.NotFound)
		callErr(t, ctl, verifyAuditChain, &pdv1.VerifyAuditChainRequest{Chain: "subjects/" + sub.GetSubjectId()}, &pdv1.VerifyAuditChainResponse{}, codes.NotFound)
		// The chain of principals is for operators.
		callErr(t, ctl, verifyAuditChain, &pdv1.VerifyAuditChainRequest{Chain: "principals"}, &pdv1.VerifyAuditChainResponse{}, codes.PermissionDenied)
		// Support staff may not call the audit RPCs at all.
		callErr(t, e.as(c, e.token), listAuditEvents, &pdv1.ListAuditEventsRequest{TenantId: "company"}, &pdv1.ListAuditEventsResponse{}, codes.PermissionDenied)
		callErr(t, e.as(c, e.token), verifyAuditChain, &pdv1.VerifyAuditChainRequest{Chain: "tenants/company"}, &pdv1.VerifyAuditChainResponse{}, codes.PermissionDenied)

		// A controller sees its own tenant; an operator sees every tenant.
		// Its own chain shows the creation of its principal, by the operator,
		// and its one refused attempt (the chain of principals).
		res := call(t, ctl, listAuditEvents, &pdv1.ListAuditEventsRequest{TenantId: "customer-7"}, &pdv1.ListAuditEventsResponse{})
		var got []string
		for _, ev := range res.GetEvents() {
			got = append(got, fmt.Sprintf("%s %s %s %v", ev.GetPrincipalId(), ev.GetRpc()[strings.LastIndex(ev.GetRpc(), "/")+1:], ev.GetOutcome(), ev.GetFields()))
		}
		if want := []string{"operator CreatePrincipal OK [principal/ctl7]", "ctl7 VerifyAuditChain PermissionDenied [refused:PRINCIPAL_KIND_NOT_PERMITTED]"}; !slices.Equal(got, want) || res.GetNextPageToken() != "" {
			t.Errorf("customer-7's chain: %v, want %v", got, want)
		}
		if res := call(t, op, listAuditEvents, &pdv1.ListAuditEventsRequest{TenantId: "customer-9"}, &pdv1.ListAuditEventsResponse{}); len(res.GetEvents()) != 0 || res.GetNextPageToken() != "" {
			t.Errorf("empty tenant: %v", res)
		}
		for _, chain := range []string{"tenants/customer-9"} {
			res := call(t, op, verifyAuditChain, &pdv1.VerifyAuditChainRequest{Chain: chain}, &pdv1.VerifyAuditChainResponse{})
			if !res.GetIntact() || res.GetEvents() != 0 || res.GetFirstBrokenSeq() != 0 || res.GetReason() != "" {
				t.Errorf("empty chain %s: %v", chain, res)
			}
		}
	})
}

// TestAuditTrail drives a subject through the service and reads its trail:
// one event per touch, in order, naming principal, tenant, purpose, RPC,
// fields and outcome, never a value; hash-chained, so a change is found.
func TestAuditTrail(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		ctx := context.Background()
		op := e.as(c, e.operator)
		sub := create(t, c, 800)
		id := sub.GetSubjectId()
		call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: id}, &pdv1.AccessSubjectResponse{})
		call(t, c, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: id, Purpose: pdv1.Purpose_PURPOSE_INVOICING}, &pdv1.GetSubjectForPurposeResponse{})
		call(t, c, "RectifySubject", rectifyReq(sub, "r", &pdv1.Person{Email: "ny800@example.test"}, "email"), &pdv1.RectifySubjectResponse{})
		cur := call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: id}, &pdv1.AccessSubjectResponse{}).GetSubject()
		call(t, c, "RestrictProcessing", restrictReq(cur, "x"), &pdv1.RestrictProcessingResponse{})
		callErr(t, c, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: id, Purpose: pdv1.Purpose_PURPOSE_INVOICING}, &pdv1.GetSubjectForPurposeResponse{}, codes.FailedPrecondition)
		callErr(t, c, "FindSubject", &pdv1.FindSubjectRequest{ControllerId: "company", Key: &pdv1.FindSubjectRequest_Email{Email: "nobody@example.test"}}, &pdv1.FindSubjectResponse{}, codes.NotFound)

		var events []*pdv1.AuditEvent
		token := ""
		for {
			res := call(t, op, listAuditEvents, &pdv1.ListAuditEventsRequest{SubjectId: id, PageSize: 3, PageToken: token}, &pdv1.ListAuditEventsResponse{})
			events = append(events, res.GetEvents()...)
			if token = res.GetNextPageToken(); token == "" {
				break
			}
		}
		var got []string
		for i, ev := range events {
			got = append(got, strings.TrimPrefix(ev.GetRpc(), "/personaldata.v1.PersonalDataService/")+":"+ev.GetOutcome())
			if ev.GetSeq() != int64(i+1) || ev.GetPrincipalId() != "tester" || ev.GetTenantId() != "company" || ev.GetSubjectId() != id || ev.GetHash() == "" {
				t.Errorf("event %d: %v", i+1, ev)
			}
		}
		want := []string{"CreateSubject:OK", "AccessSubject:OK", "GetSubjectForPurpose:OK", "RectifySubject:OK", "AccessSubject:OK",
			"RestrictProcessing:OK", "GetSubjectForPurpose:FailedPrecondition"}
		if !slices.Equal(got, want) {
			t.Fatalf("trail %v, want %v", got, want)
		}
		if ev := events[2]; ev.GetPurpose() != pdv1.Purpose_PURPOSE_INVOICING || !slices.Equal(ev.GetFields(), []string{"email", "family_name", "given_name", "postal_address"}) {
			t.Errorf("purpose view event: %v", ev)
		}
		if !slices.Equal(events[3].GetFields(), []string{"email"}) {
			t.Errorf("rectify event fields %v", events[3].GetFields())
		}
		// The lookup that found no one is on the tenant's chain.
		tenant := call(t, op, listAuditEvents, &pdv1.ListAuditEventsRequest{TenantId: "company", PageSize: 100}, &pdv1.ListAuditEventsResponse{})
		var onTenant int
		for _, ev := range tenant.GetEvents() {
			if ev.GetChain() == "tenants/company" && strings.HasSuffix(ev.GetRpc(), "/FindSubject") && ev.GetOutcome() == "NotFound" {
				onTenant++
			}
		}
		var ofSubjects int // the rest are the principals acting for the tenant
		for _, ev := range tenant.GetEvents() {
			if strings.HasPrefix(ev.GetRpc(), "/personaldata.v1.PersonalDataService/") {
				ofSubjects++
			}
		}
		if onTenant != 1 || ofSubjects != len(events)+1 {
			t.Errorf("tenant listing: %d events, %d failed lookups", len(tenant.GetEvents()), onTenant)
		}
		// Never a value in the trail.
		trail := e.dumpCollection(t, "audit_events")
		for _, v := range []string{"Testa800", "testa800@", "ny800@", "nobody@", "Provgatan"} {
			if strings.Contains(trail, v) {
				t.Errorf("the audit trail holds a personal value (%d chars)", len(v))
			}
		}

		// Intact, then changed under the service: the first broken link is named.
		v := call(t, op, verifyAuditChain, &pdv1.VerifyAuditChainRequest{Chain: audit.SubjectChain(id)}, &pdv1.VerifyAuditChainResponse{})
		if !v.GetIntact() || v.GetEvents() != int64(len(events)) {
			t.Errorf("verify: %v", v)
		}
		if _, err := e.coll("audit_events").UpdateOne(ctx,
			bson.D{{Key: "_id", Value: store.AuditEventID(audit.SubjectChain(id), 3)}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "purpose", Value: "PURPOSE_SUPPORT"}}}}); err != nil {
			t.Fatal(err)
		}
		v = call(t, op, verifyAuditChain, &pdv1.VerifyAuditChainRequest{Chain: audit.SubjectChain(id)}, &pdv1.VerifyAuditChainResponse{})
		if v.GetIntact() || v.GetFirstBrokenSeq() != 3 || v.GetReason() != audit.ReasonChanged {
			t.Errorf("verify after a change: %v", v)
		}

		// Principal changes are on the principals' chain.
		v = call(t, op, verifyAuditChain, &pdv1.VerifyAuditChainRequest{Chain: "principals"}, &pdv1.VerifyAuditChainResponse{})
		if !v.GetIntact() || v.GetEvents() < 1 {
			t.Errorf("principals chain: %v", v)
		}
		// An erased subject's chain stays readable, with the erasure on it.
		call(t, c, "EraseSubject", eraseReq(sub, "e"), &pdv1.EraseSubjectResponse{})
		res := call(t, op, listAuditEvents, &pdv1.ListAuditEventsRequest{SubjectId: id, PageSize: 100}, &pdv1.ListAuditEventsResponse{})
		if last := res.GetEvents()[len(res.GetEvents())-1]; !strings.HasSuffix(last.GetRpc(), "/EraseSubject") || last.GetOutcome() != "OK" {
			t.Errorf("last event after erasure: %v", last)
		}
	})
}

// TestAuditFailsClosed makes the audit trail refuse writes (a unique index
// that the next event breaks, put in place under the service): the request
// fails, and no personal data is returned.
func TestAuditFailsClosed(t *testing.T) {
	e := start(t)
	c := e.gc()
	sub := create(t, c, 810)
	call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
	if _, err := streamAccess(t, e, "grpc", e.token, &pdv1.StreamSubjectAccessRequest{SubjectId: sub.GetSubjectId()}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.coll("audit_events").Indexes().CreateOne(context.Background(), mongo.IndexModel{
		Keys: bson.D{{Key: "subject_id", Value: 1}, {Key: "rpc", Value: 1}}, Options: options.Index().SetUnique(true),
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []caller{e.gc(), e.rc()} {
		var res pdv1.AccessSubjectResponse
		err := c.call(context.Background(), "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &res)
		if status.Code(err) != codes.Unavailable || res.GetSubject() != nil {
			t.Errorf("%s with the trail refusing writes: %v, response %v", c.name(), err, &res)
		}
		if ri := detail[*errdetails.RetryInfo](err); ri.GetRetryDelay().AsDuration() <= 0 {
			t.Errorf("%s with the trail refusing writes: RetryInfo %v", c.name(), ri)
		}
		// A stream sends nothing before its event is written.
		pages, err := streamAccess(t, e, c.name(), e.token, &pdv1.StreamSubjectAccessRequest{SubjectId: sub.GetSubjectId()})
		if status.Code(err) != codes.Unavailable || len(pages) != 0 {
			t.Errorf("%s stream with the trail refusing writes: %v, %d pages", c.name(), err, len(pages))
		}
	}
}

// A lookup in another tenant's records answers NOT_FOUND, as if nothing
// were there, and is on that tenant's trail.
func TestFindInAnotherTenantIsOnItsTrail(t *testing.T) {
	e := start(t)
	c := e.gc()
	billing := e.as(c, e.principal(t, "billing-probe", pdv1.PrincipalKind_PRINCIPAL_KIND_BILLING_SYSTEM, []string{"company"}, []pdv1.Purpose{pdv1.Purpose_PURPOSE_INVOICING}))
	callErr(t, billing, "FindSubject", &pdv1.FindSubjectRequest{ControllerId: "customer-42", Key: &pdv1.FindSubjectRequest_Email{Email: "someone@example.test"}}, &pdv1.FindSubjectResponse{}, codes.NotFound)
	res := call(t, e.as(c, e.operator), listAuditEvents, &pdv1.ListAuditEventsRequest{TenantId: "customer-42"}, &pdv1.ListAuditEventsResponse{})
	var found bool
	for _, ev := range res.GetEvents() {
		if ev.GetPrincipalId() == "billing-probe" && ev.GetRpc() == fullMethod("FindSubject") && ev.GetOutcome() == "NotFound" && slices.Equal(ev.GetFields(), []string{"email"}) {
			found = true
		}
	}
	if !found {
		t.Errorf("the probe is not on customer-42's trail: %v", res.GetEvents())
	}
}
