package server_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/envelope"
)

const (
	assessBreach = "personaldata.v1.BreachService/AssessBreachImpact"
	pdSvc        = "/personaldata.v1.PersonalDataService/"
)

var (
	invoicingView = []string{"email", "family_name", "given_name", "postal_address"}
	personFields  = []string{"email", "family_name", "given_name", "identity_number", "phone", "postal_address"}
)

// breachReport streams a report as token over c's transport: its summary,
// which must come first, and its chains.
func breachReport(t *testing.T, e *env, c caller, token string, req *pdv1.AssessBreachImpactRequest) (*pdv1.BreachSummary, []*pdv1.BreachChainImpact, error) {
	t.Helper()
	msgs, err := streamRPC(t, e, c.name(), token, req, http.MethodPost, "/v1/breachImpact:assess", nil,
		func(ctx context.Context, conn *grpc.ClientConn) (grpc.ServerStreamingClient[pdv1.AssessBreachImpactResponse], error) {
			return pdv1.NewBreachServiceClient(conn).AssessBreachImpact(ctx, req)
		})
	if err != nil {
		return nil, nil, err
	}
	if len(msgs) == 0 || msgs[0].GetSummary() == nil {
		t.Fatalf("report over %s does not start with its summary: %v", c.name(), msgs)
	}
	var chains []*pdv1.BreachChainImpact
	for i, m := range msgs[1:] {
		if m.GetChain() == nil {
			t.Fatalf("message %d of the report is not a chain: %v", i+1, m)
		}
		chains = append(chains, m.GetChain())
	}
	// Never a personal value: the made-up people's names, addresses,
	// e-mail addresses and identity numbers are nowhere in it.
	for _, m := range msgs {
		b, _ := protojson.Marshal(m)
		for n := range 10 {
			p := testPerson(n)
			for _, v := range []string{p.GetGivenName(), p.GetEmail(), p.GetIdentityNumber(), p.GetPostalAddress().GetLines()[0]} {
				if strings.Contains(string(b), v) {
					t.Fatalf("the report holds a personal value (%d chars)", len(v))
				}
			}
		}
	}
	return msgs[0].GetSummary(), chains, nil
}

// report is breachReport as the operator, failing the test on error.
func report(t *testing.T, e *env, c caller, req *pdv1.AssessBreachImpactRequest) (*pdv1.BreachSummary, []*pdv1.BreachChainImpact) {
	t.Helper()
	sum, chains, err := breachReport(t, e, c, e.operator, req)
	if err != nil {
		t.Fatalf("AssessBreachImpact over %s: %v", c.name(), err)
	}
	return sum, chains
}

// sameProto fails the test unless got is want, showing both.
func sameProto(t *testing.T, what string, got, want proto.Message) {
	t.Helper()
	if !proto.Equal(got, want) {
		o := protojson.MarshalOptions{Multiline: true, UseProtoNames: true}
		t.Errorf("%s:\ngot  %s\nwant %s", what, o.Format(got), o.Format(want))
	}
}

// sameChains compares a report's chains with those wanted, in chain order.
func sameChains(t *testing.T, what string, got, want []*pdv1.BreachChainImpact) {
	t.Helper()
	slices.SortFunc(want, func(a, b *pdv1.BreachChainImpact) int { return strings.Compare(a.GetChain(), b.GetChain()) })
	var gotNames, wantNames []string
	for _, c := range got {
		gotNames = append(gotNames, c.GetChain())
	}
	for _, c := range want {
		wantNames = append(wantNames, c.GetChain())
	}
	if !slices.Equal(gotNames, wantNames) {
		t.Fatalf("%s: chains %v, want %v", what, gotNames, wantNames)
	}
	for i := range got {
		sameProto(t, what+" "+got[i].GetChain(), got[i], want[i])
	}
}

// intact is the check of an intact chain of a subject, with as many events
// as ListAuditEvents lists.
// intact is the check of a chain whose events in scope, so many, are each
// proved a leaf of the Merkle tree.
func intact(events int64) *pdv1.BreachChainCheck {
	return &pdv1.BreachChainCheck{Intact: true, Events: events, LeafIndex: -1}
}

func rpc(name string, events, refusals int64) *pdv1.BreachRpcCount {
	return &pdv1.BreachRpcCount{Rpc: name, Events: events, Refusals: refusals}
}

func outcome(name string, events int64) *pdv1.BreachOutcomeCount {
	return &pdv1.BreachOutcomeCount{Outcome: name, Events: events}
}

// TestBreachImpactLeakedToken: the billing system's token leaks. Its
// principal read subjects 1 and 2 for invoicing (and found 1 by e-mail),
// was refused on restricted subject 3, on calls it may not make about 1, and
// probed a subject of another tenant (5), which it was told does not exist;
// support staff meanwhile worked on subject 4. The report names exactly
// what the billing principal touched, by chain, with the fields it read and
// was refused, and that the chains verify; a window shows the later work
// on 4 alone; a changed event shows its chain broken.
func TestBreachImpactLeakedToken(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		t0 := e.clock.Now()
		op := e.as(c, e.operator)
		call(t, op, "personaldata.v1.ProcessorAgreementService/CreateProcessorAgreement", agreementReq("pa-42", "customer-42", t0), &pdv1.CreateProcessorAgreementResponse{})
		var subs []*pdv1.Subject
		for n := 1; n <= 4; n++ {
			subs = append(subs, create(t, c, n))
		}
		other := createReq("create-5", 5)
		other.ControllerId = "customer-42"
		subs = append(subs, call(t, c, "CreateSubject", other, &pdv1.CreateSubjectResponse{}).GetSubject())
		s1, s2, s3, s4, s5 := subs[0], subs[1], subs[2], subs[3], subs[4]
		call(t, c, "RestrictProcessing", restrictReq(s3, "restrict-3"), &pdv1.RestrictProcessingResponse{})

		billing := e.as(c, e.principal(t, "billing", pdv1.PrincipalKind_PRINCIPAL_KIND_BILLING_SYSTEM, []string{"company"}, []pdv1.Purpose{pdv1.Purpose_PURPOSE_INVOICING}))
		invoice := func(s *pdv1.Subject) *pdv1.GetSubjectForPurposeRequest {
			return &pdv1.GetSubjectForPurposeRequest{SubjectId: s.GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_INVOICING}
		}
		call(t, billing, "GetSubjectForPurpose", invoice(s1), &pdv1.GetSubjectForPurposeResponse{})
		call(t, billing, "GetSubjectForPurpose", invoice(s2), &pdv1.GetSubjectForPurposeResponse{})
		call(t, billing, "GetSubjectForPurpose", invoice(s2), &pdv1.GetSubjectForPurposeResponse{})
		call(t, billing, "FindSubject", &pdv1.FindSubjectRequest{ControllerId: "company", Key: &pdv1.FindSubjectRequest_Email{Email: testPerson(1).GetEmail()}}, &pdv1.FindSubjectResponse{})
		callErr(t, billing, "FindSubject", &pdv1.FindSubjectRequest{ControllerId: "company", Key: &pdv1.FindSubjectRequest_Email{Email: "nobody@example.test"}}, &pdv1.FindSubjectResponse{}, codes.NotFound)
		callErr(t, billing, "GetSubjectForPurpose", invoice(s3), &pdv1.GetSubjectForPurposeResponse{}, codes.FailedPrecondition)
		callErr(t, billing, "GetSubjectForPurpose", invoice(s5), &pdv1.GetSubjectForPurposeResponse{}, codes.NotFound)
		callErr(t, billing, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: s1.GetSubjectId()}, &pdv1.AccessSubjectResponse{}, codes.PermissionDenied)
		callErr(t, billing, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: s1.GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_SUPPORT}, &pdv1.GetSubjectForPurposeResponse{}, codes.PermissionDenied)

		// An hour later support staff read subject 4 and rectify its phone.
		e.clock.Advance(time.Hour)
		t1 := e.clock.Now()
		call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: s4.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
		call(t, c, "RectifySubject", rectifyReq(s4, "rectify-4", &pdv1.Person{Phone: "070-111 22 33"}, "phone"), &pdv1.RectifySubjectResponse{})

		at0 := timestamppb.New(t0)
		subjectChain := func(s *pdv1.Subject, events int64, tenant string) *pdv1.BreachChainImpact {
			return &pdv1.BreachChainImpact{Chain: audit.SubjectChain(s.GetSubjectId()), SubjectId: s.GetSubjectId(), TenantId: tenant,
				Events: events, FirstEventTime: at0, LastEventTime: at0, Check: intact(events)}
		}
		c1 := subjectChain(s1, 4, "company")
		c1.FieldsRead, c1.CategoriesRead = invoicingView, []pdv1.DataCategory{identification, contactData}
		c1.Rpcs = []*pdv1.BreachRpcCount{rpc(pdSvc+"AccessSubject", 1, 1), rpc(pdSvc+"FindSubject", 1, 0), rpc(pdSvc+"GetSubjectForPurpose", 2, 1)}
		c1.Outcomes, c1.Refusals = []*pdv1.BreachOutcomeCount{outcome("OK", 2), outcome("PermissionDenied", 2)}, 2
		c2 := subjectChain(s2, 2, "company")
		c2.FieldsRead, c2.CategoriesRead = invoicingView, []pdv1.DataCategory{identification, contactData}
		c2.Rpcs, c2.Outcomes = []*pdv1.BreachRpcCount{rpc(pdSvc+"GetSubjectForPurpose", 2, 0)}, []*pdv1.BreachOutcomeCount{outcome("OK", 2)}
		c3 := subjectChain(s3, 1, "company")
		c3.FieldsAttempted = invoicingView
		c3.Rpcs = []*pdv1.BreachRpcCount{rpc(pdSvc+"GetSubjectForPurpose", 1, 1)}
		c3.Outcomes, c3.Refusals = []*pdv1.BreachOutcomeCount{outcome("FailedPrecondition", 1)}, 1
		c5 := subjectChain(s5, 1, "customer-42")
		c5.Rpcs, c5.Outcomes = []*pdv1.BreachRpcCount{rpc(pdSvc+"GetSubjectForPurpose", 1, 0)}, []*pdv1.BreachOutcomeCount{outcome("NotFound", 1)}
		tenant := &pdv1.BreachChainImpact{Chain: "tenants/company", TenantId: "company", Events: 1, FirstEventTime: at0, LastEventTime: at0,
			FieldsAttempted: []string{"email"}, Rpcs: []*pdv1.BreachRpcCount{rpc(pdSvc+"FindSubject", 1, 0)},
			Outcomes: []*pdv1.BreachOutcomeCount{outcome("NotFound", 1)}}
		tenant.Check = intact(1)
		wantChains := []*pdv1.BreachChainImpact{c1, c2, c3, c5, tenant}
		wantSummary := &pdv1.BreachSummary{
			PrincipalId: "billing", EndTime: timestamppb.New(t1), Events: 9, Subjects: 4, SubjectsRead: 2, Refusals: 3,
			Rpcs:       []*pdv1.BreachRpcCount{rpc(pdSvc+"AccessSubject", 1, 1), rpc(pdSvc+"FindSubject", 2, 0), rpc(pdSvc+"GetSubjectForPurpose", 6, 2)},
			Outcomes:   []*pdv1.BreachOutcomeCount{outcome("FailedPrecondition", 1), outcome("NotFound", 2), outcome("OK", 4), outcome("PermissionDenied", 2)},
			FieldsRead: invoicingView, CategoriesRead: []pdv1.DataCategory{identification, contactData}, Chains: 5,
		}
		sum, chains := report(t, e, c, &pdv1.AssessBreachImpactRequest{PrincipalId: "billing"})
		sameProto(t, "billing's summary", sum, wantSummary)
		sameChains(t, "billing's report", chains, wantChains)
		for _, ch := range chains {
			if ch.GetSubjectId() == s4.GetSubjectId() {
				t.Errorf("subject 4, which billing never touched, is in its report")
			}
		}

		// The same in a window that ends before the support staff's work;
		// nothing of billing's after it.
		sum, chains = report(t, e, c, &pdv1.AssessBreachImpactRequest{PrincipalId: "billing", StartTime: at0, EndTime: timestamppb.New(t1)})
		wantSummary.StartTime, wantSummary.EndTime = at0, timestamppb.New(t1)
		sameProto(t, "billing's summary in the first hour", sum, wantSummary)
		sameChains(t, "billing's report in the first hour", chains, wantChains)
		sum, chains = report(t, e, c, &pdv1.AssessBreachImpactRequest{PrincipalId: "billing", StartTime: timestamppb.New(t1)})
		sameProto(t, "billing's summary after the first hour", sum, &pdv1.BreachSummary{PrincipalId: "billing", StartTime: timestamppb.New(t1), EndTime: timestamppb.New(t1)})
		if len(chains) != 0 {
			t.Errorf("billing's report after the first hour lists %d chains", len(chains))
		}

		// A window alone: everything since t1 is the support staff's work on 4.
		c4 := &pdv1.BreachChainImpact{Chain: audit.SubjectChain(s4.GetSubjectId()), SubjectId: s4.GetSubjectId(), TenantId: "company",
			Events: 2, FirstEventTime: timestamppb.New(t1), LastEventTime: timestamppb.New(t1),
			FieldsRead:     []string{"changes", "email", "family_name", "given_name", "history", "identity_number", "phone", "postal_address"},
			FieldsChanged:  []string{"phone"},
			CategoriesRead: []pdv1.DataCategory{identification, contactData, historyData}, CategoriesChanged: []pdv1.DataCategory{contactData},
			Rpcs:     []*pdv1.BreachRpcCount{rpc(pdSvc+"AccessSubject", 1, 0), rpc(pdSvc+"RectifySubject", 1, 0)},
			Outcomes: []*pdv1.BreachOutcomeCount{outcome("OK", 2)}, Check: intact(2),
		}
		sum, chains = report(t, e, c, &pdv1.AssessBreachImpactRequest{StartTime: timestamppb.New(t1)})
		sameProto(t, "summary since t1", sum, &pdv1.BreachSummary{
			StartTime: timestamppb.New(t1), EndTime: timestamppb.New(t1), Events: 2, Subjects: 1, SubjectsRead: 1, SubjectsChanged: 1,
			Rpcs: c4.Rpcs, Outcomes: c4.Outcomes, FieldsRead: c4.FieldsRead, FieldsChanged: c4.FieldsChanged,
			CategoriesRead: c4.CategoriesRead, CategoriesChanged: c4.CategoriesChanged, Chains: 1,
		})
		sameChains(t, "report since t1", chains, []*pdv1.BreachChainImpact{c4})

		// Someone with access to the database hides one of billing's reads
		// of subject 2: the chain no longer verifies from that event on.
		var seq int64
		for _, ev := range subjectTrail(t, e, c, s2.GetSubjectId()) {
			if ev.GetPrincipalId() == "billing" {
				seq = ev.GetSeq()
				break
			}
		}
		if _, err := e.coll("audit_events").UpdateOne(context.Background(),
			bson.D{{Key: "_id", Value: store.AuditEventID(audit.SubjectChain(s2.GetSubjectId()), seq)}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "fields", Value: bson.A{"email"}}}}}); err != nil {
			t.Fatal(err)
		}
		sum, chains = report(t, e, c, &pdv1.AssessBreachImpactRequest{PrincipalId: "billing"})
		if sum.GetChains() != 5 || sum.GetChainsBroken() != 1 {
			t.Errorf("after the change: %d chains, %d broken, want 5 and 1", sum.GetChains(), sum.GetChainsBroken())
		}
		for _, ch := range chains {
			want := intact(ch.GetEvents())
			if ch.GetSubjectId() == s2.GetSubjectId() {
				// The first of billing's events there, proved against
				// the tree: none before it in scope.
				want = &pdv1.BreachChainCheck{Events: 0, FirstBrokenSeq: seq, Reason: audit.ReasonChanged, LeafIndex: ch.GetCheck().GetLeafIndex()}
				if want.LeafIndex < 0 {
					t.Errorf("the broken event's leaf is not named")
				}
			}
			sameProto(t, "check of "+ch.GetChain()+" after the change", ch.GetCheck(), want)
		}
	})
}

// TestBreachImpactMasterKey: a master key version is suspected. The report
// names the subjects whose data keys it wraps, the categories each holds
// (known from which fields are sealed, never opened), and their events.
func TestBreachImpactMasterKey(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		t0 := e.clock.Now()
		s1, s2 := create(t, c, 1), create(t, c, 2)
		call(t, c, "AddHistoryEntry", historyReq(s1, "history-1", 1), &pdv1.AddHistoryEntryResponse{})
		// Version 2 is added to the key file; a replica started now wraps
		// new data keys under it.
		if _, err := envelope.AddVersion(e.keyFile); err != nil {
			t.Fatal(err)
		}
		r := e.replica(t)
		s3 := create(t, r.as(c, e.token), 3)
		if v := e.keyVersions(t); v[s1.GetSubjectId()] != 1 || v[s2.GetSubjectId()] != 1 || v[s3.GetSubjectId()] != 2 {
			t.Fatalf("key versions %v", v)
		}
		e.clock.Advance(time.Hour)
		t1 := e.clock.Now()
		call(t, c, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: s1.GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_INVOICING}, &pdv1.GetSubjectForPurposeResponse{})

		at0 := timestamppb.New(t0)
		created := func(s *pdv1.Subject) *pdv1.BreachChainImpact {
			return &pdv1.BreachChainImpact{Chain: audit.SubjectChain(s.GetSubjectId()), SubjectId: s.GetSubjectId(), TenantId: "company",
				Events: 1, FirstEventTime: at0, LastEventTime: at0, FieldsChanged: personFields,
				CategoriesChanged: []pdv1.DataCategory{identification, contactData},
				Rpcs:              []*pdv1.BreachRpcCount{rpc(pdSvc+"CreateSubject", 1, 0)}, Outcomes: []*pdv1.BreachOutcomeCount{outcome("OK", 1)},
				Check: intact(1), CategoriesHeld: []pdv1.DataCategory{identification, contactData},
			}
		}
		c1 := created(s1)
		c1.Events, c1.LastEventTime, c1.Check = 3, timestamppb.New(t1), intact(3)
		c1.FieldsRead, c1.CategoriesRead = invoicingView, []pdv1.DataCategory{identification, contactData}
		c1.FieldsChanged = append(slices.Clone(personFields), "history")
		c1.CategoriesChanged = []pdv1.DataCategory{identification, contactData, historyData}
		c1.Rpcs = []*pdv1.BreachRpcCount{rpc(pdSvc+"AddHistoryEntry", 1, 0), rpc(pdSvc+"CreateSubject", 1, 0), rpc(pdSvc+"GetSubjectForPurpose", 1, 0)}
		c1.Outcomes = []*pdv1.BreachOutcomeCount{outcome("OK", 3)}
		c1.CategoriesHeld = []pdv1.DataCategory{identification, contactData, historyData}
		slices.Sort(c1.FieldsChanged)
		c2 := created(s2)
		sum, chains := report(t, e, c, &pdv1.AssessBreachImpactRequest{MasterKeyVersion: 1})
		sameProto(t, "version 1's summary", sum, &pdv1.BreachSummary{
			MasterKeyVersion: 1, EndTime: timestamppb.New(t1), Events: 4, Subjects: 2, SubjectsRead: 1, SubjectsChanged: 2,
			Rpcs:       []*pdv1.BreachRpcCount{rpc(pdSvc+"AddHistoryEntry", 1, 0), rpc(pdSvc+"CreateSubject", 2, 0), rpc(pdSvc+"GetSubjectForPurpose", 1, 0)},
			Outcomes:   []*pdv1.BreachOutcomeCount{outcome("OK", 4)},
			FieldsRead: invoicingView, FieldsChanged: c1.FieldsChanged,
			CategoriesRead: []pdv1.DataCategory{identification, contactData}, CategoriesChanged: c1.CategoriesChanged, Chains: 2,
			CategoriesHeld: []*pdv1.BreachCategoryCount{{Category: identification, Subjects: 2}, {Category: contactData, Subjects: 2}, {Category: historyData, Subjects: 1}},
		})
		sameChains(t, "version 1's report", chains, []*pdv1.BreachChainImpact{c1, c2})

		sum, chains = report(t, e, c, &pdv1.AssessBreachImpactRequest{MasterKeyVersion: 2})
		if sum.GetSubjects() != 1 || sum.GetEvents() != 1 || len(sum.GetCategoriesHeld()) != 2 {
			t.Errorf("version 2's summary: %v", sum)
		}
		sameChains(t, "version 2's report", chains, []*pdv1.BreachChainImpact{created(s3)})

		// In a window: every subject under the version is listed with what
		// it holds; only events in the window count.
		sum, chains = report(t, e, c, &pdv1.AssessBreachImpactRequest{MasterKeyVersion: 1, StartTime: timestamppb.New(t1)})
		if sum.GetSubjects() != 2 || sum.GetEvents() != 1 || sum.GetSubjectsRead() != 1 || sum.GetSubjectsChanged() != 0 {
			t.Errorf("version 1's summary since t1: %v", sum)
		}
		c1 = &pdv1.BreachChainImpact{Chain: c1.Chain, SubjectId: c1.SubjectId, TenantId: "company", Events: 1,
			FirstEventTime: timestamppb.New(t1), LastEventTime: timestamppb.New(t1),
			FieldsRead: invoicingView, CategoriesRead: []pdv1.DataCategory{identification, contactData},
			Rpcs: []*pdv1.BreachRpcCount{rpc(pdSvc+"GetSubjectForPurpose", 1, 0)}, Outcomes: []*pdv1.BreachOutcomeCount{outcome("OK", 1)},
			Check: intact(1), CategoriesHeld: c1.CategoriesHeld}
		c2 = &pdv1.BreachChainImpact{Chain: c2.Chain, SubjectId: c2.SubjectId, TenantId: "company", Check: intact(0), CategoriesHeld: c2.CategoriesHeld}
		sameChains(t, "version 1's report since t1", chains, []*pdv1.BreachChainImpact{c1, c2})

		// A version that wraps nothing.
		sum, chains = report(t, e, c, &pdv1.AssessBreachImpactRequest{MasterKeyVersion: 9})
		sameProto(t, "version 9's summary", sum, &pdv1.BreachSummary{MasterKeyVersion: 9, EndTime: timestamppb.New(t1)})
		if len(chains) != 0 {
			t.Errorf("version 9's report lists %d chains", len(chains))
		}
	})
}

// TestBreachImpactRefusals: bad input names its fields; only operators may
// ask, and a refusal is on record.
func TestBreachImpactRefusals(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		now := e.clock.Now()
		for _, tc := range []struct {
			name string
			req  *pdv1.AssessBreachImpactRequest
			want []string
		}{
			{"no scope", &pdv1.AssessBreachImpactRequest{}, []string{"principal_id", "master_key_version", "start_time", "end_time"}},
			{"principal and key", &pdv1.AssessBreachImpactRequest{PrincipalId: "billing", MasterKeyVersion: 1}, []string{"principal_id", "master_key_version"}},
			{"bad principal", &pdv1.AssessBreachImpactRequest{PrincipalId: "Not A Principal"}, []string{"principal_id"}},
			{"future start", &pdv1.AssessBreachImpactRequest{StartTime: timestamppb.New(now.Add(time.Hour))}, []string{"start_time"}},
			{"end before start", &pdv1.AssessBreachImpactRequest{StartTime: timestamppb.New(now.Add(-time.Hour)), EndTime: timestamppb.New(now.Add(-2 * time.Hour))}, []string{"end_time"}},
			{"several", &pdv1.AssessBreachImpactRequest{PrincipalId: "no/such", StartTime: timestamppb.New(now), EndTime: timestamppb.New(now)}, []string{"principal_id", "end_time"}},
		} {
			_, _, err := breachReport(t, e, c, e.operator, tc.req)
			if status.Code(err) != codes.InvalidArgument {
				t.Errorf("%s: %v, want INVALID_ARGUMENT", tc.name, err)
				continue
			}
			if got := badFields(err); !slices.Equal(got, tc.want) {
				t.Errorf("%s: fields %v, want %v", tc.name, got, tc.want)
			}
		}

		billing := e.principal(t, "billing", pdv1.PrincipalKind_PRINCIPAL_KIND_BILLING_SYSTEM, []string{"company"}, nil)
		ctl := e.principal(t, "ctl7", pdv1.PrincipalKind_PRINCIPAL_KIND_CUSTOMER_CONTROLLER, []string{"customer-7"}, nil)
		for who, token := range map[string]string{"support staff": e.token, "billing": billing, "a controller": ctl} {
			_, _, err := breachReport(t, e, c, token, &pdv1.AssessBreachImpactRequest{PrincipalId: "billing"})
			if status.Code(err) != codes.PermissionDenied {
				t.Errorf("%s asking for a report: %v, want PERMISSION_DENIED", who, err)
			}
		}
		// Nor can they be granted it: it is beyond their kinds' ceiling.
		callErr(t, e.as(c, e.operator), "personaldata.v1.PrincipalService/UpdatePrincipal", &pdv1.UpdatePrincipalRequest{
			IdempotencyKey: "grant-breach", PrincipalId: "ctl7", ExpectedVersion: 1,
			Rpcs: []string{"/" + assessBreach}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"rpcs"}},
		}, &pdv1.UpdatePrincipalResponse{}, codes.InvalidArgument)
		// The controller's refusal is on its tenant's chain.
		events := call(t, e.as(c, e.operator), listAuditEvents, &pdv1.ListAuditEventsRequest{TenantId: "customer-7", PageSize: 100}, &pdv1.ListAuditEventsResponse{}).GetEvents()
		var refused []string
		for _, ev := range events {
			if ev.GetRpc() == "/"+assessBreach {
				refused = append(refused, fmt.Sprintf("%s %s %v", ev.GetPrincipalId(), ev.GetOutcome(), ev.GetFields()))
			}
		}
		if want := []string{"ctl7 PermissionDenied [refused:RPC_NOT_PERMITTED]"}; !slices.Equal(refused, want) {
			t.Errorf("refusals on customer-7's chain: %v, want %v", refused, want)
		}
	})
}
