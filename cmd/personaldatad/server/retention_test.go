package server_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/example/personaldata/cmd/personaldatad/server"
	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/ledger"
	"github.com/example/personaldata/store/storetest"
)

const (
	placeHold   = "personaldata.v1.RetentionService/PlaceHold"
	releaseHold = "personaldata.v1.RetentionService/ReleaseHold"
	runSweep    = "personaldata.v1.RetentionService/RunRetentionSweep"
)

var (
	identification = pdv1.DataCategory_DATA_CATEGORY_IDENTIFICATION
	contactData    = pdv1.DataCategory_DATA_CATEGORY_CONTACT
	historyData    = pdv1.DataCategory_DATA_CATEGORY_HISTORY
)

// bookkeepingReq is a bookkeeping hold on a transaction at tx.
func bookkeepingReq(sub *pdv1.Subject, key string, tx time.Time, cats ...pdv1.DataCategory) *pdv1.PlaceHoldRequest {
	return &pdv1.PlaceHoldRequest{
		IdempotencyKey: key, SubjectId: sub.GetSubjectId(), Basis: pdv1.HoldBasis_HOLD_BASIS_BOOKKEEPING,
		Categories: cats, TransactionTime: timestamppb.New(tx), Reference: "invoice-1001",
	}
}

// claimsReq is a legal-claims hold until the given time.
func claimsReq(sub *pdv1.Subject, key string, until time.Time, cats ...pdv1.DataCategory) *pdv1.PlaceHoldRequest {
	return &pdv1.PlaceHoldRequest{
		IdempotencyKey: key, SubjectId: sub.GetSubjectId(), Basis: pdv1.HoldBasis_HOLD_BASIS_LEGAL_CLAIMS,
		Categories: cats, Until: timestamppb.New(until), Reference: "case-77",
	}
}

func releaseReq(sub *pdv1.Subject, key, holdID string) *pdv1.ReleaseHoldRequest {
	return &pdv1.ReleaseHoldRequest{IdempotencyKey: key, SubjectId: sub.GetSubjectId(), HoldId: holdID, Reference: "case-77 settled"}
}

// sweepNow runs one pass of the sweeper as the operator.
func sweepNow(t *testing.T, e *env, c caller) *pdv1.RunRetentionSweepResponse {
	t.Helper()
	return call(t, e.as(c, e.operator), runSweep, &pdv1.RunRetentionSweepRequest{}, &pdv1.RunRetentionSweepResponse{})
}

// hasDataKey reports whether the subject's data key is still stored.
func (e *env) hasDataKey(t *testing.T, id string) bool {
	t.Helper()
	err := e.coll("data_keys").FindOne(context.Background(), bson.D{{Key: "_id", Value: id}}).Err()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false
	}
	if err != nil {
		t.Fatalf("data key: %v", err)
	}
	return true
}

// sealedFields names the sealed fields of the stored subject.
func (e *env) sealedFields(t *testing.T, id string) []string {
	t.Helper()
	var doc struct {
		Sealed map[string][]byte `bson:"sealed"`
	}
	if err := e.coll("subjects").FindOne(context.Background(), bson.D{{Key: "_id", Value: id}}).Decode(&doc); err != nil {
		t.Fatalf("stored subject: %v", err)
	}
	var out []string
	for f := range doc.Sealed {
		out = append(out, f)
	}
	slices.Sort(out)
	return out
}

// erasedReason is the ErrorInfo reason of err, if any.
func erasedReason(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

func TestBookkeepingHold(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		sub := create(t, c, 70)
		req := bookkeepingReq(sub, "hold-1", time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC), contactData)
		hold := call(t, c, placeHold, req, &pdv1.PlaceHoldResponse{}).GetHold()
		// The end of 2026 in Stockholm, plus seven years: 2034-01-01 00:00 CET.
		if want := time.Date(2033, 12, 31, 23, 0, 0, 0, time.UTC); !hold.GetUntil().AsTime().Equal(want) {
			t.Errorf("until %v, want %v", hold.GetUntil().AsTime(), want)
		}
		if hold.GetHoldId() == "" || hold.GetBasis() != pdv1.HoldBasis_HOLD_BASIS_BOOKKEEPING ||
			!slices.Equal(hold.GetCategories(), []pdv1.DataCategory{contactData}) || hold.GetReference() != "invoice-1001" ||
			!hold.GetPlaceTime().AsTime().Equal(e.clock.Now()) || hold.GetPlacedBy() != "tester" || hold.GetEndTime() != nil ||
			!hold.GetTransactionTime().AsTime().Equal(req.GetTransactionTime().AsTime()) {
			t.Errorf("hold %v", hold)
		}

		// The calendar year is Stockholm's: at 00:30 on 1 January 2026 there
		// it is still 2025 in UTC.
		newYear := call(t, c, placeHold, bookkeepingReq(sub, "hold-2", time.Date(2025, 12, 31, 23, 30, 0, 0, time.UTC), identification), &pdv1.PlaceHoldResponse{}).GetHold()
		if want := time.Date(2033, 12, 31, 23, 0, 0, 0, time.UTC); !newYear.GetUntil().AsTime().Equal(want) {
			t.Errorf("until %v, want %v", newYear.GetUntil().AsTime(), want)
		}

		// A retry answers the same hold without a second one; the key
		// with another request is refused.
		e.clock.Advance(time.Minute)
		again := call(t, c, placeHold, req, &pdv1.PlaceHoldResponse{}).GetHold()
		if !proto.Equal(again, hold) {
			t.Errorf("retry %v, want %v", again, hold)
		}
		other := bookkeepingReq(sub, "hold-1", time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), contactData)
		if err := callErr(t, c, placeHold, other, &pdv1.PlaceHoldResponse{}, codes.InvalidArgument); !slices.Equal(badFields(err), []string{"idempotency_key"}) {
			t.Errorf("fields %v", badFields(err))
		}
		access := call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
		if len(access.GetHolds()) != 2 || !proto.Equal(access.GetHolds()[0], hold) {
			t.Errorf("holds %v", access.GetHolds())
		}
		if !strings.Contains(access.GetRetention().GetPolicy(), hold.GetHoldId()) {
			t.Errorf("retention %q does not name the hold", access.GetRetention().GetPolicy())
		}
		// A live subject with a hold is processed as before.
		call(t, c, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: sub.GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_INVOICING}, &pdv1.GetSubjectForPurposeResponse{})
	})
}

func TestEraseWithContactHold(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		sub := create(t, c, 60)
		id := sub.GetSubjectId()
		for i := range 2 {
			call(t, c, "AddHistoryEntry", historyReq(sub, fmt.Sprintf("h-%d", i), i), &pdv1.AddHistoryEntryResponse{})
		}
		hold := call(t, c, placeHold, bookkeepingReq(sub, "hold", time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC), contactData), &pdv1.PlaceHoldResponse{}).GetHold()
		e.clock.Advance(time.Hour)

		res := call(t, c, "EraseSubject", eraseReq(sub, "erase"), &pdv1.EraseSubjectResponse{})
		if tomb := res.GetSubject(); tomb.GetState() != pdv1.SubjectState_SUBJECT_STATE_ERASED || tomb.GetPerson() != nil {
			t.Errorf("tombstone %v", tomb)
		}
		if !slices.Equal(res.GetErasedCategories(), []pdv1.DataCategory{pdv1.DataCategory_DATA_CATEGORY_IDENTIFICATION, pdv1.DataCategory_DATA_CATEGORY_HISTORY}) {
			t.Errorf("erased %v", res.GetErasedCategories())
		}
		wantKept := []*pdv1.KeptData{{Categories: []pdv1.DataCategory{contactData}, Basis: pdv1.HoldBasis_HOLD_BASIS_BOOKKEEPING, Until: hold.GetUntil(), HoldId: hold.GetHoldId()}}
		if len(res.GetKept()) != 1 || !proto.Equal(res.GetKept()[0], wantKept[0]) {
			t.Errorf("kept %v, want %v", res.GetKept(), wantKept)
		}

		// Stored: the contact fields, sealed under the data key, which stays;
		// no identification, no history, no lookup keys.
		if got := e.sealedFields(t, id); !slices.Equal(got, []string{"email", "phone", "postal_address"}) {
			t.Errorf("sealed fields %v", got)
		}
		if opened := e.openStored(t, id); opened["email"] != "testa60@example.test" {
			t.Errorf("kept e-mail does not open")
		}
		dump := e.rawDump(t)
		for _, v := range []string{"Testa60", "Testsson60", strings.ReplaceAll(sub.GetPerson().GetIdentityNumber(), "-", ""), "Order 1"} {
			if strings.Contains(dump, v) {
				t.Errorf("stored documents still contain an erased value (%d chars)", len(v))
			}
		}
		if n := e.count(t, "history"); n != 0 {
			t.Errorf("%d history documents left", n)
		}
		if n := e.count(t, "keys"); n != 0 {
			t.Errorf("%d lookup keys left", n)
		}

		// Storage only: not found by e-mail, no processing for any purpose.
		callErr(t, c, "FindSubject", &pdv1.FindSubjectRequest{ControllerId: "company", Key: &pdv1.FindSubjectRequest_Email{Email: "testa60@example.test"}}, &pdv1.FindSubjectResponse{}, codes.NotFound)
		for _, p := range allPurposes {
			err := callErr(t, c, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: id, Purpose: p}, &pdv1.GetSubjectForPurposeResponse{}, codes.NotFound)
			if erasedReason(err) != "SUBJECT_ERASED" {
				t.Errorf("%s: %v", p, err)
			}
		}
		refusedForMarketing(t, e, c, id)
		// The person may come back as a new subject: the keys are free.
		call(t, c, "CreateSubject", createReq("create-again", 60), &pdv1.CreateSubjectResponse{})

		// The subject still sees what is kept, and why.
		access := call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: id}, &pdv1.AccessSubjectResponse{})
		p := access.GetSubject().GetPerson()
		if access.GetSubject().GetState() != pdv1.SubjectState_SUBJECT_STATE_ERASED || p.GetEmail() != "testa60@example.test" ||
			p.GetPostalAddress().GetLines()[0] != "Provgatan 60" || p.GetGivenName() != "" || p.GetIdentityNumber() != "" ||
			len(access.GetHistory()) != 0 || len(access.GetPurposes()) != 0 {
			t.Errorf("access %v", access)
		}
		if len(access.GetHolds()) != 1 || !proto.Equal(access.GetHolds()[0], hold) {
			t.Errorf("holds %v", access.GetHolds())
		}

		// The hold ends: the next sweep purges what it kept.
		e.clock.Advance(hold.GetUntil().AsTime().Sub(e.clock.Now()) + time.Hour)
		swept := sweepNow(t, e, c)
		if !swept.GetRan() || !slices.Equal(swept.GetPurgedSubjectIds(), []string{id}) || swept.GetHoldsEnded() != 1 {
			t.Errorf("sweep %v", swept)
		}
		if got := e.ledgered(t, ledger.KindPurge); !slices.Equal(got, []string{id}) {
			t.Errorf("purges in the erasure ledger: %v, want [%s]", got, id)
		}
		if got := e.sealedFields(t, id); len(got) != 0 {
			t.Errorf("sealed fields after purge %v", got)
		}
		if e.hasDataKey(t, id) {
			t.Errorf("data key kept after the purge of everything")
		}
		if strings.Contains(e.rawDump(t), "testa60@") {
			t.Errorf("stored documents still hold the purged e-mail")
		}
		events := call(t, e.as(c, e.operator), listAuditEvents, &pdv1.ListAuditEventsRequest{SubjectId: id}, &pdv1.ListAuditEventsResponse{}).GetEvents()
		var purges int
		for _, ev := range events {
			if ev.GetPrincipalId() == "retention-sweeper" {
				purges++
				if !slices.Equal(ev.GetFields(), []string{"contact", "data_key"}) || ev.GetOutcome() != "OK" || ev.GetTenantId() != "company" {
					t.Errorf("purge event %v", ev)
				}
			}
		}
		if purges != 1 {
			t.Errorf("%d purge events, want 1", purges)
		}
		access = call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: id}, &pdv1.AccessSubjectResponse{})
		if access.GetSubject().GetPerson() != nil || !access.GetHolds()[0].GetEndTime().AsTime().Equal(e.clock.Now()) {
			t.Errorf("access after purge %v", access)
		}
		if last := access.GetChanges()[len(access.GetChanges())-1]; last.GetKind() != pdv1.ChangeKind_CHANGE_KIND_ERASED ||
			last.GetPerformedBy() != "retention-sweeper" || !slices.Equal(last.GetFields(), []string{"email", "phone", "postal_address"}) {
			t.Errorf("last change %v", last)
		}
		// Erasing again now reports everything erased; a second sweep has
		// nothing to do.
		if again := call(t, c, "EraseSubject", eraseReq(sub, "erase-2"), &pdv1.EraseSubjectResponse{}); len(again.GetKept()) != 0 || len(again.GetErasedCategories()) != 3 {
			t.Errorf("erase again %v", again)
		}
		if swept := sweepNow(t, e, c); !swept.GetRan() || len(swept.GetPurgedSubjectIds()) != 0 || swept.GetHoldsEnded() != 0 {
			t.Errorf("second sweep %v", swept)
		}
	})
}

// refusedForMarketing checks that the subject is refused for direct
// marketing, where a principal may use that purpose at all.
func refusedForMarketing(t *testing.T, e *env, c caller, id string) {
	t.Helper()
	dm := &pdv1.CreatePrincipalRequest{IdempotencyKey: "create-marketing", Principal: &pdv1.Principal{
		PrincipalId: "marketing", Kind: pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, TenantIds: []string{"company"},
		Purposes: []pdv1.Purpose{pdv1.Purpose_PURPOSE_DIRECT_MARKETING},
	}}
	var made pdv1.CreatePrincipalResponse
	err := e.as(c, e.operator).call(t.Context(), "personaldata.v1.PrincipalService/CreatePrincipal", dm, &made)
	if status.Code(err) == codes.InvalidArgument {
		return // no such purpose in this build
	}
	if err != nil {
		t.Fatalf("create marketing principal: %v", err)
	}
	err = callErr(t, e.as(c, made.GetToken()), "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: id, Purpose: pdv1.Purpose_PURPOSE_DIRECT_MARKETING}, &pdv1.GetSubjectForPurposeResponse{}, codes.NotFound)
	if erasedReason(err) != "SUBJECT_ERASED" {
		t.Errorf("direct marketing: %v", err)
	}
}

// TestMarketingObjectionWithHold erases on an objection to direct marketing
// while a hold keeps contact data: the objection is honoured all the same.
func TestMarketingObjectionWithHold(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		sub := create(t, c, 69)
		call(t, c, placeHold, bookkeepingReq(sub, "hold", time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC), contactData), &pdv1.PlaceHoldResponse{})
		req := eraseReq(sub, "object")
		req.Ground = pdv1.ErasureGround_ERASURE_GROUND_DIRECT_MARKETING_OBJECTION
		res := call(t, c, "EraseSubject", req, &pdv1.EraseSubjectResponse{})
		if len(res.GetKept()) != 1 || !slices.Equal(res.GetErasedCategories(), []pdv1.DataCategory{pdv1.DataCategory_DATA_CATEGORY_IDENTIFICATION, pdv1.DataCategory_DATA_CATEGORY_HISTORY}) {
			t.Errorf("erase %v", res)
		}
		refusedForMarketing(t, e, c, sub.GetSubjectId())
		for _, p := range allPurposes {
			callErr(t, c, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: sub.GetSubjectId(), Purpose: p}, &pdv1.GetSubjectForPurposeResponse{}, codes.NotFound)
		}
	})
}

func TestEraseWithoutActiveHold(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		// A released hold and one past its end keep nothing: full erasure.
		sub := create(t, c, 61)
		released := call(t, c, placeHold, claimsReq(sub, "claims", e.clock.Now().Add(24*time.Hour), contactData), &pdv1.PlaceHoldResponse{}).GetHold()
		call(t, c, releaseHold, releaseReq(sub, "release", released.GetHoldId()), &pdv1.ReleaseHoldResponse{})
		call(t, c, placeHold, claimsReq(sub, "short", e.clock.Now().Add(time.Hour), identification), &pdv1.PlaceHoldResponse{})
		e.clock.Advance(2 * time.Hour)
		res := call(t, c, "EraseSubject", eraseReq(sub, "erase"), &pdv1.EraseSubjectResponse{})
		if !slices.Equal(res.GetErasedCategories(), []pdv1.DataCategory{pdv1.DataCategory_DATA_CATEGORY_IDENTIFICATION, pdv1.DataCategory_DATA_CATEGORY_CONTACT, pdv1.DataCategory_DATA_CATEGORY_HISTORY}) || len(res.GetKept()) != 0 || res.GetSubject().GetPerson() != nil {
			t.Errorf("erase %v", res)
		}
		if e.hasDataKey(t, sub.GetSubjectId()) || len(e.sealedFields(t, sub.GetSubjectId())) != 0 {
			t.Errorf("data left after a full erasure")
		}
		// The sweep records the end of the expired hold and purges nothing.
		if swept := sweepNow(t, e, c); len(swept.GetPurgedSubjectIds()) != 0 || swept.GetHoldsEnded() != 1 {
			t.Errorf("sweep %v", swept)
		}
	})
}

func TestLegalClaimsReleasedEarly(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		sub := create(t, c, 62)
		id := sub.GetSubjectId()
		call(t, c, "AddHistoryEntry", historyReq(sub, "h", 1), &pdv1.AddHistoryEntryResponse{})
		claims := call(t, c, placeHold, claimsReq(sub, "claims", e.clock.Now().AddDate(2, 0, 0), identification, historyData), &pdv1.PlaceHoldResponse{}).GetHold()
		res := call(t, c, "EraseSubject", eraseReq(sub, "erase"), &pdv1.EraseSubjectResponse{})
		if !slices.Equal(res.GetErasedCategories(), []pdv1.DataCategory{pdv1.DataCategory_DATA_CATEGORY_CONTACT}) || len(res.GetKept()) != 1 ||
			!slices.Equal(res.GetKept()[0].GetCategories(), []pdv1.DataCategory{identification, historyData}) ||
			res.GetKept()[0].GetBasis() != pdv1.HoldBasis_HOLD_BASIS_LEGAL_CLAIMS {
			t.Errorf("erase %v", res)
		}
		access := call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: id}, &pdv1.AccessSubjectResponse{})
		if len(access.GetHistory()) != 1 || access.GetSubject().GetPerson().GetGivenName() != "Testa62" || access.GetSubject().GetPerson().GetEmail() != "" {
			t.Errorf("access %v", access)
		}
		callErr(t, c, "ListHistoryEntries", &pdv1.ListHistoryEntriesRequest{SubjectId: id}, &pdv1.ListHistoryEntriesResponse{}, codes.NotFound)
		// Nothing is due yet.
		if swept := sweepNow(t, e, c); len(swept.GetPurgedSubjectIds()) != 0 {
			t.Errorf("sweep before the release %v", swept)
		}

		// The claim is settled: released early, and releasing again is harmless.
		e.clock.Advance(24 * time.Hour)
		rel := call(t, c, releaseHold, releaseReq(sub, "release", claims.GetHoldId()), &pdv1.ReleaseHoldResponse{}).GetHold()
		if !rel.GetEndTime().AsTime().Equal(e.clock.Now()) || rel.GetHoldId() != claims.GetHoldId() {
			t.Errorf("released %v", rel)
		}
		e.clock.Advance(time.Minute)
		for _, key := range []string{"release", "release-again"} {
			if again := call(t, c, releaseHold, releaseReq(sub, key, claims.GetHoldId()), &pdv1.ReleaseHoldResponse{}).GetHold(); !proto.Equal(again, rel) {
				t.Errorf("release again (%s) %v, want %v", key, again, rel)
			}
		}
		callErr(t, c, releaseHold, releaseReq(sub, "release-none", "nosuchhold"), &pdv1.ReleaseHoldResponse{}, codes.NotFound)

		swept := sweepNow(t, e, c)
		if !slices.Equal(swept.GetPurgedSubjectIds(), []string{id}) || swept.GetHoldsEnded() != 0 {
			t.Errorf("sweep %v", swept)
		}
		if n := e.count(t, "history"); n != 0 {
			t.Errorf("%d history documents left", n)
		}
		if e.hasDataKey(t, id) || len(e.sealedFields(t, id)) != 0 {
			t.Errorf("data left after the purge")
		}
		if strings.Contains(e.rawDump(t), "Testa62") {
			t.Errorf("stored documents still hold the purged name")
		}
		access = call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: id}, &pdv1.AccessSubjectResponse{})
		if access.GetSubject().GetPerson() != nil || len(access.GetHistory()) != 0 {
			t.Errorf("access after purge %v", access)
		}
	})
}

func TestHoldsPartlyEnded(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		// Two holds on contact, one of them also on identification: the
		// shorter one's end purges only what the longer one does not cover.
		sub := create(t, c, 63)
		id := sub.GetSubjectId()
		short := call(t, c, placeHold, claimsReq(sub, "short", e.clock.Now().Add(24*time.Hour), identification, contactData), &pdv1.PlaceHoldResponse{}).GetHold()
		long := call(t, c, placeHold, claimsReq(sub, "long", e.clock.Now().Add(48*time.Hour), contactData), &pdv1.PlaceHoldResponse{}).GetHold()
		res := call(t, c, "EraseSubject", eraseReq(sub, "erase"), &pdv1.EraseSubjectResponse{})
		if !slices.Equal(res.GetErasedCategories(), []pdv1.DataCategory{pdv1.DataCategory_DATA_CATEGORY_HISTORY}) || len(res.GetKept()) != 2 ||
			res.GetKept()[0].GetHoldId() != short.GetHoldId() || res.GetKept()[1].GetHoldId() != long.GetHoldId() ||
			!slices.Equal(res.GetKept()[1].GetCategories(), []pdv1.DataCategory{contactData}) {
			t.Errorf("erase %v", res)
		}
		e.clock.Advance(25 * time.Hour)
		if swept := sweepNow(t, e, c); !slices.Equal(swept.GetPurgedSubjectIds(), []string{id}) || swept.GetHoldsEnded() != 1 {
			t.Errorf("first sweep %v", swept)
		}
		if got := e.sealedFields(t, id); !slices.Equal(got, []string{"email", "phone", "postal_address"}) || !e.hasDataKey(t, id) {
			t.Errorf("after the first sweep: sealed %v", got)
		}
		e.clock.Advance(24 * time.Hour)
		if swept := sweepNow(t, e, c); !slices.Equal(swept.GetPurgedSubjectIds(), []string{id}) || swept.GetHoldsEnded() != 1 {
			t.Errorf("second sweep %v", swept)
		}
		if e.hasDataKey(t, id) || len(e.sealedFields(t, id)) != 0 {
			t.Errorf("data left after the second sweep")
		}
	})
}

func TestRetentionSweepLease(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		sub := create(t, c, 64)
		hold := call(t, c, placeHold, claimsReq(sub, "claims", e.clock.Now().Add(time.Hour), contactData), &pdv1.PlaceHoldResponse{}).GetHold()
		call(t, c, "EraseSubject", eraseReq(sub, "erase"), &pdv1.EraseSubjectResponse{})
		call(t, c, releaseHold, releaseReq(sub, "release", hold.GetHoldId()), &pdv1.ReleaseHoldResponse{})

		// Another replica, with a client of its own, holds the lease.
		other, err := store.Open(context.Background(), store.Config{URI: e.srv.StoreURI(), Database: e.db.Name()})
		if err != nil {
			t.Fatalf("store.Open: %v", err)
		}
		t.Cleanup(func() { _ = other.Close(context.Background()) })
		if _, err := other.TakeLease(t.Context(), "retention-sweeper", "other-replica", e.clock.Now(), 10*time.Minute); err != nil {
			t.Fatalf("take lease: %v", err)
		}
		if swept := sweepNow(t, e, c); swept.GetRan() || len(swept.GetPurgedSubjectIds()) != 0 {
			t.Errorf("sweep while another replica holds the lease: %v", swept)
		}
		if got := e.sealedFields(t, sub.GetSubjectId()); len(got) == 0 {
			t.Errorf("purged while another replica held the lease")
		}
		// The other replica renews its lease; then it stops renewing and
		// the lease expires.
		e.clock.Advance(5 * time.Minute)
		if _, err := other.TakeLease(t.Context(), "retention-sweeper", "other-replica", e.clock.Now(), 10*time.Minute); err != nil {
			t.Fatalf("renew lease: %v", err)
		}
		e.clock.Advance(9 * time.Minute)
		if swept := sweepNow(t, e, c); swept.GetRan() {
			t.Errorf("sweep while the renewed lease lasts: %v", swept)
		}
		e.clock.Advance(2 * time.Minute)
		if swept := sweepNow(t, e, c); !swept.GetRan() || !slices.Equal(swept.GetPurgedSubjectIds(), []string{sub.GetSubjectId()}) {
			t.Errorf("sweep after the lease expired: %v", swept)
		}
		// The pass released the lease: the other replica may take it at once.
		if _, err := other.TakeLease(t.Context(), "retention-sweeper", "other-replica", e.clock.Now(), 10*time.Minute); err != nil {
			t.Errorf("take the lease after the pass: %v", err)
		}
	})
}

// TestLeaseExclusive has many replicas try to take one lease at once:
// exactly one gets it; it is free again when it expires.
func TestLeaseExclusive(t *testing.T) {
	storetest.SkipUnlessAtomic(t)
	st, err := store.Open(context.Background(), store.Config{URI: storetest.URI(), DataDir: filepath.Join(t.TempDir(), "data"), Database: fmt.Sprintf("pdlease_%d", time.Now().UnixNano())})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	for round := range 3 {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var winners []string
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				holder := fmt.Sprintf("replica-%d-%d", round, i)
				_, err := st.TakeLease(context.Background(), "work", holder, now, time.Minute)
				switch {
				case err == nil:
					mu.Lock()
					winners = append(winners, holder)
					mu.Unlock()
				case !errors.Is(err, store.ErrLeaseHeld):
					t.Errorf("take lease: %v", err)
				}
			}()
		}
		wg.Wait()
		if len(winners) != 1 {
			t.Fatalf("round %d: %d replicas got the lease: %v", round, len(winners), winners)
		}
		// Its holder renews it; another may not take it, nor release it.
		if _, err := st.TakeLease(context.Background(), "work", winners[0], now.Add(30*time.Second), time.Minute); err != nil {
			t.Errorf("renew: %v", err)
		}
		if err := st.ReleaseLease(context.Background(), "work", "someone-else"); err != nil {
			t.Errorf("release by another: %v", err)
		}
		if _, err := st.TakeLease(context.Background(), "work", "late", now.Add(80*time.Second), time.Minute); !errors.Is(err, store.ErrLeaseHeld) {
			t.Errorf("take a renewed lease: %v", err)
		}
		now = now.Add(2 * time.Minute) // expired: the next round starts free
	}
}

func TestHoldBadInput(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		sub := create(t, c, 65)
		now := e.clock.Now()
		bk := func(mod func(r *pdv1.PlaceHoldRequest)) *pdv1.PlaceHoldRequest {
			r := bookkeepingReq(sub, "bad", now.AddDate(0, -1, 0), contactData)
			mod(r)
			return r
		}
		lc := func(mod func(r *pdv1.PlaceHoldRequest)) *pdv1.PlaceHoldRequest {
			r := claimsReq(sub, "bad", now.AddDate(1, 0, 0), contactData)
			mod(r)
			return r
		}
		// Over REST the subject id is in the path, so never empty.
		emptyHold, wantEmpty := &pdv1.PlaceHoldRequest{SubjectId: sub.GetSubjectId()}, []string{"idempotency_key", "basis", "categories", "reference"}
		emptyRelease, wantEmptyRelease := &pdv1.ReleaseHoldRequest{SubjectId: sub.GetSubjectId(), HoldId: "h"}, []string{"idempotency_key", "reference"}
		if c.name() == "grpc" {
			emptyHold, wantEmpty = &pdv1.PlaceHoldRequest{}, []string{"idempotency_key", "subject_id", "basis", "categories", "reference"}
			emptyRelease, wantEmptyRelease = &pdv1.ReleaseHoldRequest{}, []string{"idempotency_key", "subject_id", "hold_id", "reference"}
		}
		for _, tc := range []struct {
			name string
			req  *pdv1.PlaceHoldRequest
			want []string
		}{
			{"empty", emptyHold, wantEmpty},
			{"no transaction", bk(func(r *pdv1.PlaceHoldRequest) { r.TransactionTime = nil }), []string{"transaction_time"}},
			{"future transaction", bk(func(r *pdv1.PlaceHoldRequest) { r.TransactionTime = timestamppb.New(now.Add(time.Hour)) }), []string{"transaction_time"}},
			{"bookkeeping over", bk(func(r *pdv1.PlaceHoldRequest) {
				r.TransactionTime = timestamppb.New(time.Date(2018, 6, 1, 0, 0, 0, 0, time.UTC))
			}), []string{"transaction_time"}},
			{"bookkeeping with until", bk(func(r *pdv1.PlaceHoldRequest) { r.Until = timestamppb.New(now.AddDate(1, 0, 0)) }), []string{"until"}},
			{"no until", lc(func(r *pdv1.PlaceHoldRequest) { r.Until = nil }), []string{"until"}},
			{"past until", lc(func(r *pdv1.PlaceHoldRequest) { r.Until = timestamppb.New(now.Add(-time.Second)) }), []string{"until"}},
			{"claims with transaction", lc(func(r *pdv1.PlaceHoldRequest) { r.TransactionTime = timestamppb.New(now) }), []string{"transaction_time"}},
			{"agreement without until", lc(func(r *pdv1.PlaceHoldRequest) {
				r.Basis = pdv1.HoldBasis_HOLD_BASIS_AGREEMENT_IN_FORCE
				r.Until = nil
			}), []string{"until"}},
			{"unspecified category", lc(func(r *pdv1.PlaceHoldRequest) { r.Categories = []pdv1.DataCategory{contactData, 0} }), []string{"categories"}},
			{"no reference", lc(func(r *pdv1.PlaceHoldRequest) { r.Reference = " " }), []string{"reference"}},
		} {
			err := callErr(t, c, placeHold, tc.req, &pdv1.PlaceHoldResponse{}, codes.InvalidArgument)
			if got := badFields(err); !slices.Equal(got, tc.want) {
				t.Errorf("%s: fields %v, want %v", tc.name, got, tc.want)
			}
		}
		for _, tc := range []struct {
			name string
			req  *pdv1.ReleaseHoldRequest
			want []string
		}{
			{"empty", emptyRelease, wantEmptyRelease},
			{"bad hold id", releaseReq(sub, "r", "NOT-A-HOLD"), []string{"hold_id"}},
		} {
			err := callErr(t, c, releaseHold, tc.req, &pdv1.ReleaseHoldResponse{}, codes.InvalidArgument)
			if got := badFields(err); !slices.Equal(got, tc.want) {
				t.Errorf("release %s: fields %v, want %v", tc.name, got, tc.want)
			}
		}
		if holds := call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{}).GetHolds(); len(holds) != 0 {
			t.Errorf("holds written by bad requests: %v", holds)
		}
		if n := e.count(t, "hold_deadlines"); n != 0 {
			t.Errorf("%d deadlines written by bad requests", n)
		}
		ghost := &pdv1.Subject{SubjectId: "nosuchsubject"}
		callErr(t, c, placeHold, claimsReq(ghost, "g", now.AddDate(1, 0, 0), contactData), &pdv1.PlaceHoldResponse{}, codes.NotFound)
		callErr(t, c, releaseHold, releaseReq(ghost, "g", "abc"), &pdv1.ReleaseHoldResponse{}, codes.NotFound)
		// An erased subject takes no new hold.
		call(t, c, "EraseSubject", eraseReq(sub, "erase"), &pdv1.EraseSubjectResponse{})
		err := callErr(t, c, placeHold, claimsReq(sub, "late", now.AddDate(1, 0, 0), contactData), &pdv1.PlaceHoldResponse{}, codes.NotFound)
		if erasedReason(err) != "SUBJECT_ERASED" {
			t.Errorf("hold on an erased subject: %v", err)
		}
	})
}

func TestHoldPermissions(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		sub := create(t, c, 66)
		billing := e.as(c, e.principal(t, "billing", pdv1.PrincipalKind_PRINCIPAL_KIND_BILLING_SYSTEM, []string{"company"}, nil))
		hold := call(t, billing, placeHold, bookkeepingReq(sub, "invoice", time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC), identification, contactData), &pdv1.PlaceHoldResponse{}).GetHold()
		if hold.GetPlacedBy() != "billing" {
			t.Errorf("placed by %q", hold.GetPlacedBy())
		}
		callErr(t, billing, releaseHold, releaseReq(sub, "r", hold.GetHoldId()), &pdv1.ReleaseHoldResponse{}, codes.PermissionDenied)
		callErr(t, billing, runSweep, &pdv1.RunRetentionSweepRequest{}, &pdv1.RunRetentionSweepResponse{}, codes.PermissionDenied)
		callErr(t, c, runSweep, &pdv1.RunRetentionSweepRequest{}, &pdv1.RunRetentionSweepResponse{}, codes.PermissionDenied)

		// A customer's data: holds are the controller's to place.
		call(t, e.as(c, e.operator), "personaldata.v1.ProcessorAgreementService/CreateProcessorAgreement", agreementReq("pa", "customer-42", e.clock.Now()), &pdv1.CreateProcessorAgreementResponse{})
		ctrl := e.controller(t, c)
		req := createReq("customer-subject", 67)
		req.ControllerId = "customer-42"
		theirs := call(t, ctrl, "CreateSubject", req, &pdv1.CreateSubjectResponse{}).GetSubject()
		callErr(t, c, placeHold, claimsReq(theirs, "staff", e.clock.Now().AddDate(1, 0, 0), contactData), &pdv1.PlaceHoldResponse{}, codes.PermissionDenied)
		callErr(t, billing, placeHold, claimsReq(theirs, "billing", e.clock.Now().AddDate(1, 0, 0), contactData), &pdv1.PlaceHoldResponse{}, codes.NotFound)
		h := call(t, ctrl, placeHold, claimsReq(theirs, "ctrl", e.clock.Now().AddDate(1, 0, 0), contactData), &pdv1.PlaceHoldResponse{}).GetHold()
		callErr(t, c, releaseHold, releaseReq(theirs, "staff", h.GetHoldId()), &pdv1.ReleaseHoldResponse{}, codes.PermissionDenied)
		call(t, ctrl, releaseHold, releaseReq(theirs, "ctrl-release", h.GetHoldId()), &pdv1.ReleaseHoldResponse{})
	})
}

// TestScheduledSweep runs a server whose sweeper runs by itself: once the
// injected clock passes a hold's end, the held data goes without anyone
// asking.
func TestScheduledSweep(t *testing.T) {
	dir := t.TempDir()
	clk := &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	srv, _ := serve(t, dir, server.Config{
		Store:                  store.Config{URI: storetest.URI(), DataDir: filepath.Join(dir, "data"), Database: fmt.Sprintf("pdsweep_%d", time.Now().UnixNano())},
		Now:                    clk.Now,
		RetentionSweepInterval: 20 * time.Millisecond,
	}, slog.New(slog.DiscardHandler))
	conn := dial(t, srv)
	op := grpcCaller{conn, readToken(t, filepath.Join(dir, "operator.token"))}
	c := grpcCaller{conn, createPrincipal(t, op, "tester", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, []string{"company"}, allPurposes)}
	sub := create(t, c, 68)
	call(t, c, placeHold, claimsReq(sub, "claims", clk.Now().Add(24*time.Hour), contactData), &pdv1.PlaceHoldResponse{})
	call(t, c, "EraseSubject", eraseReq(sub, "erase"), &pdv1.EraseSubjectResponse{})
	access := func() *pdv1.AccessSubjectResponse {
		return call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
	}
	if access().GetSubject().GetPerson().GetEmail() == "" {
		t.Fatalf("the hold kept no contact data")
	}
	clk.Advance(25 * time.Hour)
	deadline := time.Now().Add(20 * time.Second)
	for access().GetSubject().GetPerson() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the scheduled sweeper did not purge the data")
		}
		time.Sleep(20 * time.Millisecond) // waits for the background pass, not for retention time
	}
	if end := access().GetHolds()[0].GetEndTime(); end == nil {
		t.Errorf("hold not recorded ended")
	}
}

// TestPlaceHoldLateRetry retries a PlaceHold after more changes than the
// subject remembers idempotency keys for: it finds its hold and adds none.
func TestPlaceHoldLateRetry(t *testing.T) {
	e := start(t)
	c := e.gc()
	sub := create(t, c, 69)
	req := claimsReq(sub, "late", e.clock.Now().AddDate(1, 0, 0), contactData)
	first := call(t, c, placeHold, req, &pdv1.PlaceHoldResponse{}).GetHold()
	for i := range 40 {
		call(t, c, "AddHistoryEntry", historyReq(sub, fmt.Sprintf("h-%d", i), i), &pdv1.AddHistoryEntryResponse{})
	}
	again := call(t, c, placeHold, req, &pdv1.PlaceHoldResponse{}).GetHold()
	if again.GetHoldId() != first.GetHoldId() {
		t.Errorf("retry gave hold %s, want %s", again.GetHoldId(), first.GetHoldId())
	}
	access := call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
	if n := len(access.GetHolds()); n != 1 {
		t.Errorf("%d holds after a late retry, want 1", n)
	}
}
