package server_test

// Two replicas of the service over one store, each with caches of its own:
// principals, unwrapped data keys, the ends of audit chains. What one
// replica is told holds on the other from the next call on: a revocation or
// a narrower grant, an erasure, and the rule that no call answers before
// its audit event is written.

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// replicas runs f over gRPC and over REST, each time with a fresh server A
// and a replica B of it on A's store; c is the transport.
func replicas(t *testing.T, f func(t *testing.T, a, b *env, c caller)) {
	t.Helper()
	transportsOn(t, sharedStore, func(t *testing.T, a *env, c caller) {
		f(t, a, a.replica(t), c)
	})
}

func purposeReq(id string, p pdv1.Purpose) *pdv1.GetSubjectForPurposeRequest {
	return &pdv1.GetSubjectForPurposeRequest{SubjectId: id, Purpose: p}
}

// reason is the ErrorInfo reason of err ("" if none).
func reason(err error) string { return detail[*errdetails.ErrorInfo](err).GetReason() }

// TestReplicaRevocation: a principal that both replicas have authenticated
// (and cached) is revoked through A; from the revocation's answer on, B
// refuses it, and so does A. While the revocation is under way the principal
// keeps calling B: calls sent before the answer may pass, none sent after.
func TestReplicaRevocation(t *testing.T) {
	replicas(t, func(t *testing.T, a, b *env, c caller) {
		sub := create(t, a.as(c, a.token), 700)
		token := createPrincipal(t, a.as(c, a.operator), "agent-revoked", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF,
			[]string{"company"}, []pdv1.Purpose{pdv1.Purpose_PURPOSE_SUPPORT})
		read := purposeReq(sub.GetSubjectId(), pdv1.Purpose_PURPOSE_SUPPORT)
		for _, r := range []*env{a, b, a, b} {
			call(t, r.as(c, token), "GetSubjectForPurpose", read, &pdv1.GetSubjectForPurposeResponse{})
		}

		var answered atomic.Bool
		type outcome struct {
			afterAnswer bool
			err         error
		}
		outcomes := make(chan []outcome, 1)
		go func() {
			var seen []outcome
			for after := 0; after < 3; {
				sentAfter := answered.Load()
				err := b.as(c, token).call(context.Background(), "GetSubjectForPurpose", read, &pdv1.GetSubjectForPurposeResponse{})
				seen = append(seen, outcome{sentAfter, err})
				if sentAfter {
					after++
				}
			}
			outcomes <- seen
		}()
		call(t, a.as(c, a.operator), principalSvc+"RevokePrincipal", &pdv1.RevokePrincipalRequest{
			IdempotencyKey: "revoke-agent", PrincipalId: "agent-revoked", Reason: "left the company",
		}, &pdv1.RevokePrincipalResponse{})
		answered.Store(true)
		seen := <-outcomes
		for i, o := range seen {
			switch code := status.Code(o.err); {
			case o.afterAnswer && code != codes.Unauthenticated:
				t.Errorf("call %d on B, sent after the revocation was answered: %v, want UNAUTHENTICATED", i, o.err)
			case code != codes.OK && code != codes.Unauthenticated:
				t.Errorf("call %d on B during the revocation: %v", i, o.err)
			}
		}

		var res pdv1.GetSubjectForPurposeResponse
		callErr(t, b.as(c, token), "GetSubjectForPurpose", read, &res, codes.Unauthenticated)
		callErr(t, a.as(c, token), "GetSubjectForPurpose", read, &res, codes.Unauthenticated)
		if res.GetPerson() != nil {
			t.Errorf("a refused call returned data")
		}
		// The other principals are unaffected on both.
		for _, r := range []*env{b, a} {
			call(t, r.as(c, r.token), "GetSubjectForPurpose", read, &pdv1.GetSubjectForPurposeResponse{})
		}
	})
}

// TestReplicaGrantRemoval: grants taken away through B hold on A from the
// next call, although A has the principal cached with the grants it had: a
// purpose first, then a tenant.
func TestReplicaGrantRemoval(t *testing.T) {
	replicas(t, func(t *testing.T, a, b *env, c caller) {
		sub := create(t, a.as(c, a.token), 710)
		token := createPrincipal(t, a.as(c, a.operator), "agent-narrowed", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF,
			[]string{"company", "customer-7"}, []pdv1.Purpose{pdv1.Purpose_PURPOSE_SUPPORT, pdv1.Purpose_PURPOSE_INVOICING})
		invoicing := purposeReq(sub.GetSubjectId(), pdv1.Purpose_PURPOSE_INVOICING)
		support := purposeReq(sub.GetSubjectId(), pdv1.Purpose_PURPOSE_SUPPORT)
		for i, r := range []*env{a, b} {
			call(t, r.as(c, token), "GetSubjectForPurpose", invoicing, &pdv1.GetSubjectForPurposeResponse{})
			call(t, r.as(c, token), "CreateSubject", createReq(fmt.Sprintf("narrowed-before-%d", i), 711+i), &pdv1.CreateSubjectResponse{})
		}
		opB := b.as(c, b.operator)
		update := func(key string, req *pdv1.UpdatePrincipalRequest, path string) {
			t.Helper()
			p := call(t, opB, principalSvc+"GetPrincipal", &pdv1.GetPrincipalRequest{PrincipalId: "agent-narrowed"}, &pdv1.GetPrincipalResponse{}).GetPrincipal()
			req.IdempotencyKey, req.PrincipalId, req.ExpectedVersion = key, "agent-narrowed", p.GetVersion()
			req.UpdateMask = &fieldmaskpb.FieldMask{Paths: []string{path}}
			call(t, opB, principalSvc+"UpdatePrincipal", req, &pdv1.UpdatePrincipalResponse{})
		}

		// Invoicing taken away through B: A refuses it at once, serves support.
		update("drop-invoicing", &pdv1.UpdatePrincipalRequest{Purposes: []pdv1.Purpose{pdv1.Purpose_PURPOSE_SUPPORT}}, "purposes")
		var view pdv1.GetSubjectForPurposeResponse
		err := callErr(t, a.as(c, token), "GetSubjectForPurpose", invoicing, &view, codes.PermissionDenied)
		if reason(err) != "PURPOSE_NOT_PERMITTED" || view.GetPerson() != nil {
			t.Errorf("invoicing on A after it was taken away on B: %v, person %v", err, view.GetPerson())
		}
		call(t, a.as(c, token), "GetSubjectForPurpose", support, &pdv1.GetSubjectForPurposeResponse{})

		// The company taken away through B: A refuses to create its subjects.
		update("drop-company", &pdv1.UpdatePrincipalRequest{TenantIds: []string{"customer-7"}}, "tenant_ids")
		err = callErr(t, a.as(c, token), "CreateSubject", createReq("narrowed-after", 713), &pdv1.CreateSubjectResponse{}, codes.PermissionDenied)
		if reason(err) != "TENANT_NOT_PERMITTED" {
			t.Errorf("create for the company on A after it was taken away on B: %v", err)
		}
		// Its subjects are no longer visible to the principal either.
		callErr(t, a.as(c, token), "GetSubjectForPurpose", support, &pdv1.GetSubjectForPurposeResponse{}, codes.NotFound)
		if n, err := a.coll("subjects").CountDocuments(context.Background(), bson.D{}); err != nil || n != 3 {
			t.Errorf("%d subjects stored (%v), want the 3 made before the change", n, err)
		}
	})
}

// TestReplicaIssuedToken: a token issued through A authenticates on B at
// once, although B has the principal cached without it.
func TestReplicaIssuedToken(t *testing.T) {
	replicas(t, func(t *testing.T, a, b *env, c caller) {
		sub := create(t, a.as(c, a.token), 720)
		first := createPrincipal(t, a.as(c, a.operator), "agent-tokens", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF,
			[]string{"company"}, []pdv1.Purpose{pdv1.Purpose_PURPOSE_SUPPORT})
		read := purposeReq(sub.GetSubjectId(), pdv1.Purpose_PURPOSE_SUPPORT)
		call(t, b.as(c, first), "GetSubjectForPurpose", read, &pdv1.GetSubjectForPurposeResponse{})
		issued := call(t, a.as(c, a.operator), principalSvc+"IssueToken", &pdv1.IssueTokenRequest{
			IdempotencyKey: "second-token", PrincipalId: "agent-tokens",
		}, &pdv1.IssueTokenResponse{})
		second := issued.GetToken()
		if second == "" || second == first {
			t.Fatalf("IssueToken gave no new token")
		}
		for _, token := range []string{second, first} {
			view := call(t, b.as(c, token), "GetSubjectForPurpose", read, &pdv1.GetSubjectForPurposeResponse{})
			if view.GetSubjectId() != sub.GetSubjectId() {
				t.Errorf("B with a token issued on A: %v", view)
			}
		}
	})
}

// personValues are the values of a person as the tests look for them.
func personValues(p *pdv1.Person) []string {
	return []string{p.GetGivenName(), p.GetFamilyName(), p.GetEmail(), p.GetPhone(), p.GetIdentityNumber(),
		strings.ReplaceAll(p.GetIdentityNumber(), "-", ""), p.GetPostalAddress().GetLines()[0]}
}

// leaks names what of p's values appear in what a call gave back: the
// response as JSON, and the error with its details.
func leaks(p *pdv1.Person, resp proto.Message, err error) []string {
	b, _ := protojson.Marshal(resp)
	seen := string(b)
	if err != nil {
		d, _ := protojson.Marshal(status.Convert(err).Proto())
		seen += err.Error() + string(d)
	}
	var out []string
	for i, v := range personValues(p) {
		if v != "" && strings.Contains(seen, v) {
			out = append(out, fmt.Sprintf("value %d (%d chars)", i, len(v)))
		}
	}
	return out
}

// TestReplicaErasure: a subject whose data key both replicas have cached
// is erased through one; the next reads on the other (and on the one)
// return nothing of the person, and the data key is gone from the store.
// Both ways: erased through A and read on B, then the other way round.
func TestReplicaErasure(t *testing.T) {
	replicas(t, func(t *testing.T, a, b *env, c caller) {
		for i, way := range []struct {
			name          string
			eraser, other *env
		}{{"erased through A", a, b}, {"erased through B", b, a}} {
			n := 730 + i
			sub := create(t, way.eraser.as(c, a.token), n)
			id := sub.GetSubjectId()
			call(t, way.other.as(c, a.token), "AddHistoryEntry", historyReq(sub, fmt.Sprintf("history-%d", n), n), &pdv1.AddHistoryEntryResponse{})
			// Both replicas read the person, so both have its data key cached.
			for _, r := range []*env{way.other, way.eraser} {
				access := call(t, r.as(c, a.token), "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: id}, &pdv1.AccessSubjectResponse{})
				view := call(t, r.as(c, a.token), "GetSubjectForPurpose", purposeReq(id, pdv1.Purpose_PURPOSE_INVOICING), &pdv1.GetSubjectForPurposeResponse{})
				if access.GetSubject().GetPerson().GetGivenName() != sub.GetPerson().GetGivenName() || len(access.GetHistory()) != 1 ||
					view.GetPerson().GetGivenName() != sub.GetPerson().GetGivenName() {
					t.Fatalf("%s: a replica did not read the person before the erasure", way.name)
				}
			}

			tomb := call(t, way.eraser.as(c, a.token), "EraseSubject", eraseReq(sub, fmt.Sprintf("erase-%d", n)), &pdv1.EraseSubjectResponse{}).GetSubject()

			for _, r := range []*env{way.other, way.eraser} {
				which := "the other replica"
				if r == way.eraser {
					which = "the erasing replica"
				}
				rc := r.as(c, a.token)
				access := call(t, rc, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: id}, &pdv1.AccessSubjectResponse{})
				if access.GetSubject().GetState() != pdv1.SubjectState_SUBJECT_STATE_ERASED || access.GetSubject().GetPerson() != nil || len(access.GetHistory()) != 0 {
					t.Errorf("%s, AccessSubject on %s: state %v, person %v, %d history entries", way.name, which,
						access.GetSubject().GetState(), access.GetSubject().GetPerson() != nil, len(access.GetHistory()))
				}
				if l := leaks(sub.GetPerson(), access, nil); len(l) > 0 {
					t.Errorf("%s, AccessSubject on %s gave back %v of the person", way.name, which, l)
				}
				for _, tc := range []struct {
					rpc       string
					req, resp proto.Message
				}{
					{"GetSubjectForPurpose", purposeReq(id, pdv1.Purpose_PURPOSE_INVOICING), &pdv1.GetSubjectForPurposeResponse{}},
					{"GetSubjectForPurpose", purposeReq(id, pdv1.Purpose_PURPOSE_SUPPORT), &pdv1.GetSubjectForPurposeResponse{}},
					{"ListHistoryEntries", &pdv1.ListHistoryEntriesRequest{SubjectId: id}, &pdv1.ListHistoryEntriesResponse{}},
					// Nor may a write seal anything anew under a key cached before.
					{"RectifySubject", rectifyReq(tomb, fmt.Sprintf("rectify-after-%d", n), &pdv1.Person{GivenName: "Efter"}, "given_name"), &pdv1.RectifySubjectResponse{}},
					{"AddHistoryEntry", historyReq(sub, fmt.Sprintf("history-after-%d", n), n+100), &pdv1.AddHistoryEntryResponse{}},
				} {
					err := callErr(t, rc, tc.rpc, tc.req, tc.resp, codes.NotFound)
					if reason(err) != "SUBJECT_ERASED" {
						t.Errorf("%s, %s on %s: %v, want SUBJECT_ERASED", way.name, tc.rpc, which, err)
					}
					if l := leaks(sub.GetPerson(), tc.resp, err); len(l) > 0 {
						t.Errorf("%s, %s on %s gave back %v of the person", way.name, tc.rpc, which, l)
					}
				}
			}
			for _, coll := range []string{"data_keys", "history"} {
				field := "_id"
				if coll == "history" {
					field = "subject_id"
				}
				if k, err := a.coll(coll).CountDocuments(context.Background(), bson.D{{Key: field, Value: id}}); err != nil || k != 0 {
					t.Errorf("%s: %d documents of the subject left in %s (%v)", way.name, k, coll, err)
				}
			}
		}
	})
}

// TestReplicaAuditTrail: calls through either replica append to one
// subject's chain, each before it answers, also when both append at once
// (each replica's cached end of the chain goes stale with every append of
// the other); either replica lists the same intact chain.
func TestReplicaAuditTrail(t *testing.T) {
	replicas(t, func(t *testing.T, a, b *env, c caller) {
		sub := create(t, a.as(c, a.token), 740)
		id := sub.GetSubjectId()
		// One at a time, alternating: each append finds the other's events.
		bCalls := map[string]int{}
		for i := range 3 {
			call(t, b.as(c, b.token), "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: id}, &pdv1.AccessSubjectResponse{})
			call(t, a.as(c, a.token), "GetSubjectForPurpose", purposeReq(id, pdv1.Purpose_PURPOSE_SUPPORT), &pdv1.GetSubjectForPurposeResponse{})
			call(t, b.as(c, b.token), "AddHistoryEntry", historyReq(sub, fmt.Sprintf("b-history-%d", i), i), &pdv1.AddHistoryEntryResponse{})
			bCalls["AccessSubject"]++
			bCalls["AddHistoryEntry"]++
		}
		rectified := rectifyPhone(t, b.as(c, b.token), sub, "b-rectify", "070-111 22 33")
		bCalls["GetSubjectForPurpose"]++ // the version read
		bCalls["RectifySubject"]++
		// Both at once, four calls each.
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for _, r := range []*env{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 4 {
					errs <- r.as(c, r.token).call(context.Background(), "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: id}, &pdv1.AccessSubjectResponse{})
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("AccessSubject on both replicas at once: %v", err)
			}
		}
		bCalls["AccessSubject"] += 4
		if rectified.GetSubject().GetPerson().GetPhone() != "+46701112233" {
			t.Errorf("rectified on B: %v", rectified.GetSubject().GetPerson().GetPhone())
		}

		// 1 create, 3 rounds of 3, the version read and the rectification,
		// and 8 concurrent reads.
		const want = 1 + 9 + 2 + 8
		trailA := subjectTrail(t, a, c, id)
		trailB := subjectTrail(t, b, c, id)
		if len(trailA) != want || len(trailB) != len(trailA) {
			t.Fatalf("the chain has %d events listed on A, %d on B; want %d", len(trailA), len(trailB), want)
		}
		for i, ev := range trailA {
			if ev.GetSeq() != int64(i+1) || !proto.Equal(ev, trailB[i]) || ev.GetOutcome() != "OK" || ev.GetPrincipalId() != "tester" {
				t.Errorf("event %d: %v (B lists %v)", i+1, ev, trailB[i])
			}
		}
		for rpc, n := range bCalls {
			if got := outcomes(trailA, rpc)["OK"]; got < n {
				t.Errorf("%s: %d events with outcome OK, want at least the %d calls through B", rpc, got, n)
			}
		}
		for _, r := range []*env{a, b} {
			v := call(t, r.as(c, r.operator), verifyAuditChain, &pdv1.VerifyAuditChainRequest{Chain: "subjects/" + id}, &pdv1.VerifyAuditChainResponse{})
			if !v.GetIntact() || v.GetEvents() != want {
				t.Errorf("VerifyAuditChain: %v, want intact with %d events", v, want)
			}
		}
	})
}

// TestReplicaAuditFailsClosed: when the trail refuses appends, a read of
// personal data through B and through A, over gRPC and REST, answers
// UNAVAILABLE with nothing of the person; once appends work again, both
// serve, and the chain is intact.
func TestReplicaAuditFailsClosed(t *testing.T) {
	a := start(t)
	b := a.replica(t)
	sub := create(t, a.gc(), 750)
	id := sub.GetSubjectId()
	access := &pdv1.AccessSubjectRequest{SubjectId: id}
	view := purposeReq(id, pdv1.Purpose_PURPOSE_SUPPORT)
	// Both replicas append to the chain (and cache its end), each with
	// another RPC, so that the unique index below can be built.
	call(t, a.gc(), "AccessSubject", access, &pdv1.AccessSubjectResponse{})
	call(t, b.gc(), "GetSubjectForPurpose", view, &pdv1.GetSubjectForPurposeResponse{})
	// The trail now refuses every further event of an RPC already in a chain.
	index, err := a.coll("audit_events").Indexes().CreateOne(context.Background(), mongo.IndexModel{
		Keys: bson.D{{Key: "subject_id", Value: 1}, {Key: "rpc", Value: 1}}, Options: options.Index().SetUnique(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*env{"B": b, "A": a} {
		for _, rc := range []caller{r.gc(), r.rc()} {
			var got pdv1.AccessSubjectResponse
			err := rc.call(context.Background(), "AccessSubject", access, &got)
			if status.Code(err) != codes.Unavailable || got.GetSubject() != nil || len(leaks(sub.GetPerson(), &got, err)) > 0 {
				t.Errorf("AccessSubject through %s over %s with the trail refusing writes: %v, response %v", name, rc.name(), err, &got)
			}
			var v pdv1.GetSubjectForPurposeResponse
			err = rc.call(context.Background(), "GetSubjectForPurpose", view, &v)
			if status.Code(err) != codes.Unavailable || v.GetPerson() != nil || len(leaks(sub.GetPerson(), &v, err)) > 0 {
				t.Errorf("GetSubjectForPurpose through %s over %s with the trail refusing writes: %v, response %v", name, rc.name(), err, &v)
			}
		}
	}
	if err := a.coll("audit_events").Indexes().DropOne(context.Background(), index); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*env{b, a} {
		got := call(t, r.gc(), "AccessSubject", access, &pdv1.AccessSubjectResponse{})
		if got.GetSubject().GetPerson().GetGivenName() != sub.GetPerson().GetGivenName() {
			t.Errorf("AccessSubject once the trail takes writes again: %v", got.GetSubject())
		}
	}
	v := call(t, a.as(a.gc(), a.operator), verifyAuditChain, &pdv1.VerifyAuditChainRequest{Chain: "subjects/" + id}, &pdv1.VerifyAuditChainResponse{})
	trail := subjectTrail(t, a, a.gc(), id)
	if !v.GetIntact() || v.GetEvents() != int64(len(trail)) || outcomes(trail, "AccessSubject")["OK"] != 3 {
		t.Errorf("after the failures: chain %v, AccessSubject events %v", v, outcomes(trail, "AccessSubject"))
	}
}
