package server_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/grpc/codes"

	"github.com/example/personaldata/audit"
	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
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

// auditLog opens a second client on the server's database, as another
// replica would, and returns an audit log on it, to put events in place
// until the service writes them itself.
func auditLog(t *testing.T, e *env) *audit.Log {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{URI: e.srv.StoreURI(), Database: e.db.Name()})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	return audit.New(st)
}

func auditEvent(chain, tenant, subjectID string) audit.Event {
	return audit.Event{
		Chain:     chain,
		Principal: "tester",
		Tenant:    tenant,
		Purpose:   pdv1.Purpose_PURPOSE_SUPPORT.String(),
		RPC:       pdv1.PersonalDataService_AccessSubject_FullMethodName,
		SubjectID: subjectID,
		Fields:    []string{"email", "phone"},
		Outcome:   codes.OK.String(),
	}
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
		if res := call(t, ctl, listAuditEvents, &pdv1.ListAuditEventsRequest{TenantId: "customer-7"}, &pdv1.ListAuditEventsResponse{}); len(res.GetEvents()) != 0 || res.GetNextPageToken() != "" {
			t.Errorf("empty tenant: %v", res)
		}
		if res := call(t, op, listAuditEvents, &pdv1.ListAuditEventsRequest{TenantId: "customer-9"}, &pdv1.ListAuditEventsResponse{}); len(res.GetEvents()) != 0 || res.GetNextPageToken() != "" {
			t.Errorf("empty tenant: %v", res)
		}
		for _, chain := range []string{"tenants/customer-9", "principals", "subjects/" + sub.GetSubjectId()} {
			res := call(t, op, verifyAuditChain, &pdv1.VerifyAuditChainRequest{Chain: chain}, &pdv1.VerifyAuditChainResponse{})
			if !res.GetIntact() || res.GetEvents() != 0 || res.GetFirstBrokenSeq() != 0 || res.GetReason() != "" {
				t.Errorf("empty chain %s: %v", chain, res)
			}
		}
	})
}

// TestAuditEventsListedAndVerified reads events put in place through an
// audit log on the server's database, and finds a changed one.
func TestAuditEventsListedAndVerified(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		ctx := context.Background()
		op := e.as(c, e.operator)
		ctl := e.as(c, e.principal(t, "ctl7", pdv1.PrincipalKind_PRINCIPAL_KIND_CUSTOMER_CONTROLLER, []string{"customer-7"}, nil))
		sub := auditSubject(t, e, c, 2)
		id := sub.GetSubjectId()
		log := auditLog(t, e)
		var appended []audit.Event
		for i, ev := range []audit.Event{
			auditEvent(audit.SubjectChain(id), "company", id),
			auditEvent(audit.SubjectChain(id), "company", id),
			auditEvent(audit.TenantChain("company"), "company", ""),
			auditEvent(audit.SubjectChain(id), "company", id),
			auditEvent(audit.TenantChain("customer-7"), "customer-7", ""),
			auditEvent(audit.SubjectChain(id), "company", id),
			auditEvent(audit.SubjectChain(id), "company", id),
		} {
			got, err := log.Append(ctx, ev)
			if err != nil {
				t.Fatalf("Append %d: %v", i, err)
			}
			appended = append(appended, got)
		}

		// A subject's chain, in pages of two.
		var seqs []int64
		token := ""
		for page := 0; ; page++ {
			res := call(t, op, listAuditEvents, &pdv1.ListAuditEventsRequest{SubjectId: id, PageSize: 2, PageToken: token}, &pdv1.ListAuditEventsResponse{})
			for _, ev := range res.GetEvents() {
				seqs = append(seqs, ev.GetSeq())
				if ev.GetChain() != audit.SubjectChain(id) || ev.GetTenantId() != "company" || ev.GetPurpose() != pdv1.Purpose_PURPOSE_SUPPORT ||
					!slices.Equal(ev.GetFields(), []string{"email", "phone"}) || ev.GetOutcome() != "OK" || ev.GetHash() == "" || ev.GetEventTime() == nil {
					t.Errorf("event %v", ev)
				}
			}
			if token = res.GetNextPageToken(); token == "" {
				break
			}
			if page > 3 {
				t.Fatal("the listing does not end")
			}
		}
		if !slices.Equal(seqs, []int64{1, 2, 3, 4, 5}) {
			t.Errorf("subject chain seqs %v", seqs)
		}

		// A tenant's events, every chain, in pages of two; a page token of
		// one listing is refused by another.
		var chains []string
		token = ""
		for {
			res := call(t, op, listAuditEvents, &pdv1.ListAuditEventsRequest{TenantId: "company", PageSize: 2, PageToken: token}, &pdv1.ListAuditEventsResponse{})
			for _, ev := range res.GetEvents() {
				chains = append(chains, ev.GetChain())
			}
			if token = res.GetNextPageToken(); token == "" {
				break
			}
			callErr(t, op, listAuditEvents, &pdv1.ListAuditEventsRequest{TenantId: "customer-7", PageToken: token}, &pdv1.ListAuditEventsResponse{}, codes.InvalidArgument)
			callErr(t, op, listAuditEvents, &pdv1.ListAuditEventsRequest{SubjectId: id, PageToken: token}, &pdv1.ListAuditEventsResponse{}, codes.InvalidArgument)
		}
		if len(chains) != 6 || slices.Contains(chains, audit.TenantChain("customer-7")) {
			t.Errorf("tenant listing: chains %v", chains)
		}
		res := call(t, ctl, listAuditEvents, &pdv1.ListAuditEventsRequest{TenantId: "customer-7"}, &pdv1.ListAuditEventsResponse{})
		if len(res.GetEvents()) != 1 || res.GetEvents()[0].GetHash() != appended[4].Hash {
			t.Errorf("customer-7 listing: %v", res)
		}

		// Intact, then changed under the service.
		v := call(t, op, verifyAuditChain, &pdv1.VerifyAuditChainRequest{Chain: audit.SubjectChain(id)}, &pdv1.VerifyAuditChainResponse{})
		if !v.GetIntact() || v.GetEvents() != 5 {
			t.Errorf("verify: %v", v)
		}
		if _, err := e.db.Collection("audit_events").UpdateOne(ctx,
			bson.D{{Key: "_id", Value: store.AuditEventID(audit.SubjectChain(id), 3)}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "fields", Value: bson.A{"email"}}}}}); err != nil {
			t.Fatal(err)
		}
		v = call(t, op, verifyAuditChain, &pdv1.VerifyAuditChainRequest{Chain: audit.SubjectChain(id)}, &pdv1.VerifyAuditChainResponse{})
		if v.GetIntact() || v.GetFirstBrokenSeq() != 3 || v.GetReason() != audit.ReasonChanged || v.GetEvents() != 2 {
			t.Errorf("verify after a change: %v", v)
		}

		// An erased subject's chain stays readable.
		call(t, e.as(c, e.token), "EraseSubject", &pdv1.EraseSubjectRequest{
			IdempotencyKey: "audit-erase", SubjectId: id, Ground: pdv1.ErasureGround_ERASURE_GROUND_CONSENT_WITHDRAWN,
			Channel: pdv1.Channel_CHANNEL_EMAIL, Reference: "audit-test", PerformedBy: "support-agent",
		}, &pdv1.EraseSubjectResponse{})
		if res := call(t, op, listAuditEvents, &pdv1.ListAuditEventsRequest{SubjectId: id}, &pdv1.ListAuditEventsResponse{}); len(res.GetEvents()) != 5 {
			t.Errorf("erased subject: %d events, want 5", len(res.GetEvents()))
		}
	})
}
