package server_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store/storetest"
)

func createReq(key string, n int) *pdv1.CreateSubjectRequest {
	return &pdv1.CreateSubjectRequest{
		IdempotencyKey: key,
		ControllerId:   "company",
		Person:         testPerson(n),
		Channel:        pdv1.Channel_CHANNEL_PORTAL,
		Reference:      fmt.Sprintf("signup-%d", n),
	}
}

func create(t *testing.T, c caller, n int) *pdv1.Subject {
	t.Helper()
	return call(t, c, "CreateSubject", createReq(fmt.Sprintf("create-%d", n), n), &pdv1.CreateSubjectResponse{}).GetSubject()
}

func TestCreateSubject(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		req := createReq("create-1", 1)
		twelve := strings.ReplaceAll(pnr(1980, 1, 2, 10), "-", "")
		req.Person.IdentityNumber = twelve[2:] // 10 digits, no separator
		req.Person.Phone = "070-123 45 67"
		req.Person.PostalAddress.PostalCode = "12345"
		sub := call(t, c, "CreateSubject", req, &pdv1.CreateSubjectResponse{}).GetSubject()
		p := sub.GetPerson()
		if p.GetIdentityNumber() != twelve || p.GetIdentityNumberKind() != pdv1.IdentityNumberKind_IDENTITY_NUMBER_KIND_PERSONNUMMER {
			t.Errorf("identity number %q kind %v, want canonical %s personnummer", p.GetIdentityNumber(), p.GetIdentityNumberKind(), twelve)
		}
		if p.GetPhone() != "+46701234567" {
			t.Errorf("phone %q, want +46701234567", p.GetPhone())
		}
		if got := p.GetPostalAddress(); got.GetPostalCode() != "123 45" || got.GetCountryCode() != "SE" {
			t.Errorf("address %v, want postal code 123 45 in SE", got)
		}
		if sub.GetVersion() != 1 || sub.GetState() != pdv1.SubjectState_SUBJECT_STATE_ACTIVE || sub.GetServiceDelivery() != pdv1.ServiceDelivery_SERVICE_DELIVERY_ACTIVE {
			t.Errorf("version %d state %v delivery %v, want 1 active active", sub.GetVersion(), sub.GetState(), sub.GetServiceDelivery())
		}

		// What was stored: the canonical forms, under the returned id, each
		// encrypted; nothing in the clear.
		stored := e.openStored(t, sub.GetSubjectId())
		if stored["identity_number"] != twelve || stored["phone"] != "+46701234567" || stored["given_name"] != "Testa1" {
			t.Errorf("stored %v", stored)
		}
		if dump := e.rawDump(t); strings.Contains(dump, twelve) || strings.Contains(dump, "Testa1") || strings.Contains(dump, "testa1@") {
			t.Errorf("a personal value is stored in the clear")
		}
		if n := e.count(t, "keys"); n != 2 {
			t.Errorf("%d key documents, want 2 (identity number and e-mail)", n)
		}

		// A retry with the same key answers the first result and writes nothing.
		again := call(t, c, "CreateSubject", req, &pdv1.CreateSubjectResponse{}).GetSubject()
		if again.GetSubjectId() != sub.GetSubjectId() || again.GetVersion() != 1 {
			t.Errorf("retry gave %s v%d, want %s v1", again.GetSubjectId(), again.GetVersion(), sub.GetSubjectId())
		}
		if n := e.count(t, "subjects"); n != 1 {
			t.Errorf("%d subjects after a retry, want 1", n)
		}

		// The same key with another request is refused.
		other := proto.Clone(req).(*pdv1.CreateSubjectRequest)
		other.Person.GivenName = "Annan"
		err := callErr(t, c, "CreateSubject", other, &pdv1.CreateSubjectResponse{}, codes.InvalidArgument)
		if !slices.Equal(badFields(err), []string{"idempotency_key"}) {
			t.Errorf("fields %v, want [idempotency_key]", badFields(err))
		}

		// One subject per identity number, and per e-mail, per controller.
		dupPNR := createReq("create-dup-pnr", 2)
		dupPNR.Person.IdentityNumber = twelve[:8] + "-" + twelve[8:]
		callErr(t, c, "CreateSubject", dupPNR, &pdv1.CreateSubjectResponse{}, codes.AlreadyExists)
		dupEmail := createReq("create-dup-email", 3)
		dupEmail.Person.Email = "TESTA1@example.test"
		callErr(t, c, "CreateSubject", dupEmail, &pdv1.CreateSubjectResponse{}, codes.AlreadyExists)
		if n := e.count(t, "subjects"); n != 1 {
			t.Errorf("%d subjects after refused duplicates, want 1", n)
		}
		// A customer's data needs a processor agreement in force.
		forCustomer := createReq("create-customer", 1)
		forCustomer.ControllerId = "customer-42"
		forCustomer.Person = req.Person
		callErr(t, c, "CreateSubject", forCustomer, &pdv1.CreateSubjectResponse{}, codes.FailedPrecondition)
	})
}

func TestCreateSubjectBadInput(t *testing.T) {
	cases := []struct {
		name   string
		change func(r *pdv1.CreateSubjectRequest)
		fields []string
	}{
		{"no idempotency key", func(r *pdv1.CreateSubjectRequest) { r.IdempotencyKey = "" }, []string{"idempotency_key"}},
		{"idempotency key with spaces", func(r *pdv1.CreateSubjectRequest) { r.IdempotencyKey = "a b" }, []string{"idempotency_key"}},
		{"idempotency key too long", func(r *pdv1.CreateSubjectRequest) { r.IdempotencyKey = strings.Repeat("k", 129) }, []string{"idempotency_key"}},
		{"idempotency key is an identity number", func(r *pdv1.CreateSubjectRequest) { r.IdempotencyKey = "19121212-1212" }, []string{"idempotency_key"}},
		{"no controller", func(r *pdv1.CreateSubjectRequest) { r.ControllerId = "" }, []string{"controller_id"}},
		{"bad controller", func(r *pdv1.CreateSubjectRequest) { r.ControllerId = "Company!" }, []string{"controller_id"}},
		{"no person", func(r *pdv1.CreateSubjectRequest) { r.Person = nil }, []string{"person"}},
		{"no identity number", func(r *pdv1.CreateSubjectRequest) { r.Person.IdentityNumber = "" }, []string{"person.identity_number"}},
		{"identity number check digit", func(r *pdv1.CreateSubjectRequest) { r.Person.IdentityNumber = "19800102-0105" }, []string{"person.identity_number"}},
		{"identity number not a date", func(r *pdv1.CreateSubjectRequest) { r.Person.IdentityNumber = "19800230-0101" }, []string{"person.identity_number"}},
		{"identity number length", func(r *pdv1.CreateSubjectRequest) { r.Person.IdentityNumber = "12345" }, []string{"person.identity_number"}},
		{"no given name", func(r *pdv1.CreateSubjectRequest) { r.Person.GivenName = " " }, []string{"person.given_name"}},
		{"given name too long", func(r *pdv1.CreateSubjectRequest) { r.Person.GivenName = strings.Repeat("å", 101) }, []string{"person.given_name"}},
		{"family name control character", func(r *pdv1.CreateSubjectRequest) { r.Person.FamilyName = "Test\x00sson" }, []string{"person.family_name"}},
		{"no e-mail", func(r *pdv1.CreateSubjectRequest) { r.Person.Email = "" }, []string{"person.email"}},
		{"bad e-mail", func(r *pdv1.CreateSubjectRequest) { r.Person.Email = "testa@" }, []string{"person.email"}},
		{"bad phone", func(r *pdv1.CreateSubjectRequest) { r.Person.Phone = "call me" }, []string{"person.phone"}},
		{"address without lines", func(r *pdv1.CreateSubjectRequest) { r.Person.PostalAddress.Lines = nil }, []string{"person.postal_address.lines"}},
		{"address line too long", func(r *pdv1.CreateSubjectRequest) {
			r.Person.PostalAddress.Lines = []string{strings.Repeat("x", 101)}
		}, []string{"person.postal_address.lines[0]"}},
		{"swedish postal code", func(r *pdv1.CreateSubjectRequest) { r.Person.PostalAddress.PostalCode = "1234" }, []string{"person.postal_address.postal_code"}},
		{"no locality", func(r *pdv1.CreateSubjectRequest) { r.Person.PostalAddress.Locality = "" }, []string{"person.postal_address.locality"}},
		{"bad country", func(r *pdv1.CreateSubjectRequest) { r.Person.PostalAddress.CountryCode = "Sweden" }, []string{"person.postal_address.country_code"}},
		{"unknown channel", func(r *pdv1.CreateSubjectRequest) { r.Channel = 99 }, []string{"channel"}},
		{"reference too long", func(r *pdv1.CreateSubjectRequest) { r.Reference = strings.Repeat("r", 201) }, []string{"reference"}},
		{"several at once", func(r *pdv1.CreateSubjectRequest) {
			r.Person.Email = "nope"
			r.Person.Phone = "nope"
			r.Person.GivenName = ""
		}, []string{"person.given_name", "person.email", "person.phone"}},
	}
	transports(t, func(t *testing.T, e *env, c caller) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				req := createReq("bad-input", 7)
				tc.change(req)
				err := callErr(t, c, "CreateSubject", req, &pdv1.CreateSubjectResponse{}, codes.InvalidArgument)
				if got := badFields(err); !slices.Equal(got, tc.fields) {
					t.Errorf("fields %v, want %v", got, tc.fields)
				}
				// The message names the fields but never quotes a value.
				msg := status.Convert(err).Message()
				for _, v := range []string{"Testa7", "testa7@", "Provgatan"} {
					if strings.Contains(msg, v) {
						t.Errorf("error text %q contains a personal value", msg)
					}
				}
			})
		}
		if n := e.count(t, "subjects") + e.count(t, "keys"); n != 0 {
			t.Errorf("%d documents written by bad requests, want 0", n)
		}
	})
}

func TestFindSubject(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		sub := create(t, c, 5)
		canonical := sub.GetPerson().GetIdentityNumber()
		ten := canonical[2:8] + "-" + canonical[8:]
		for _, req := range []*pdv1.FindSubjectRequest{
			{ControllerId: "company", Key: &pdv1.FindSubjectRequest_IdentityNumber{IdentityNumber: canonical}},
			{ControllerId: "company", Key: &pdv1.FindSubjectRequest_IdentityNumber{IdentityNumber: ten}},
			{ControllerId: "company", Key: &pdv1.FindSubjectRequest_Email{Email: "testa5@EXAMPLE.test"}},
		} {
			got := call(t, c, "FindSubject", req, &pdv1.FindSubjectResponse{}).GetSubject()
			if got.GetSubjectId() != sub.GetSubjectId() {
				t.Errorf("FindSubject(%v) found %s, want %s", req.GetKey(), got.GetSubjectId(), sub.GetSubjectId())
			}
			if got.GetPerson() != nil || got.GetState() != pdv1.SubjectState_SUBJECT_STATE_ACTIVE {
				t.Errorf("FindSubject returns personal data or no state: %v", got)
			}
		}
		callErr(t, c, "FindSubject", &pdv1.FindSubjectRequest{ControllerId: "company", Key: &pdv1.FindSubjectRequest_Email{Email: "nobody@example.test"}}, &pdv1.FindSubjectResponse{}, codes.NotFound)
		callErr(t, c, "FindSubject", &pdv1.FindSubjectRequest{ControllerId: "customer-1", Key: &pdv1.FindSubjectRequest_IdentityNumber{IdentityNumber: canonical}}, &pdv1.FindSubjectResponse{}, codes.NotFound)
		for name, req := range map[string]*pdv1.FindSubjectRequest{
			"identity_number": {ControllerId: "company", Key: &pdv1.FindSubjectRequest_IdentityNumber{IdentityNumber: "123"}},
			"email":           {ControllerId: "company", Key: &pdv1.FindSubjectRequest_Email{Email: "x"}},
			"controller_id":   {Key: &pdv1.FindSubjectRequest_Email{Email: "testa5@example.test"}},
		} {
			err := callErr(t, c, "FindSubject", req, &pdv1.FindSubjectResponse{}, codes.InvalidArgument)
			if fields := badFields(err); len(fields) != 1 || fields[0] != name {
				t.Errorf("bad %s: fields %v", name, fields)
			}
		}
		callErr(t, c, "FindSubject", &pdv1.FindSubjectRequest{ControllerId: "company"}, &pdv1.FindSubjectResponse{}, codes.InvalidArgument)
	})
}

func rectifyReq(sub *pdv1.Subject, key string, person *pdv1.Person, paths ...string) *pdv1.RectifySubjectRequest {
	return &pdv1.RectifySubjectRequest{
		IdempotencyKey:  key,
		SubjectId:       sub.GetSubjectId(),
		ExpectedVersion: sub.GetVersion(),
		Person:          person,
		UpdateMask:      &fieldmaskpb.FieldMask{Paths: paths},
		Channel:         pdv1.Channel_CHANNEL_EMAIL,
		Reference:       "ticket-100",
		PerformedBy:     "support-agent-7",
	}
}

func TestRectifySubject(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		sub := create(t, c, 10)
		other := create(t, c, 11)
		e.clock.Advance(time.Hour)

		req := rectifyReq(sub, "rectify-1", &pdv1.Person{Email: "ny.adress@example.test", Phone: "+46 8 123 456 78", GivenName: "ignored"}, "email", "phone")
		res := call(t, c, "RectifySubject", req, &pdv1.RectifySubjectResponse{})
		got := res.GetSubject()
		if got.GetVersion() != 2 || got.GetPerson().GetEmail() != "ny.adress@example.test" || got.GetPerson().GetPhone() != "+46812345678" {
			t.Errorf("after rectify: v%d %v", got.GetVersion(), got.GetPerson())
		}
		if got.GetPerson().GetGivenName() != "Testa10" {
			t.Errorf("a field outside the mask changed: given name %q", got.GetPerson().GetGivenName())
		}
		ch := res.GetChange()
		if ch.GetKind() != pdv1.ChangeKind_CHANGE_KIND_RECTIFIED || !slices.Equal(ch.GetFields(), []string{"email", "phone"}) ||
			ch.GetChannel() != pdv1.Channel_CHANNEL_EMAIL || ch.GetReference() != "ticket-100" || ch.GetPerformedBy() != "tester for support-agent-7" || ch.GetVersion() != 2 {
			t.Errorf("change record %v", ch)
		}
		// The new e-mail finds the subject, the old one does not, and no copy
		// of the old values is kept anywhere.
		found := call(t, c, "FindSubject", &pdv1.FindSubjectRequest{ControllerId: "company", Key: &pdv1.FindSubjectRequest_Email{Email: "ny.adress@example.test"}}, &pdv1.FindSubjectResponse{})
		if found.GetSubject().GetSubjectId() != sub.GetSubjectId() {
			t.Errorf("new e-mail finds %s", found.GetSubject().GetSubjectId())
		}
		callErr(t, c, "FindSubject", &pdv1.FindSubjectRequest{ControllerId: "company", Key: &pdv1.FindSubjectRequest_Email{Email: "testa10@example.test"}}, &pdv1.FindSubjectResponse{}, codes.NotFound)
		if dump := e.rawDump(t); strings.Contains(dump, "testa10@example.test") || strings.Contains(dump, "+46701") && strings.Contains(dump, sub.GetPerson().GetPhone()) {
			t.Errorf("an old value is still stored")
		}
		if n := e.count(t, "keys"); n != 4 {
			t.Errorf("%d keys, want 4 (the old e-mail key released)", n)
		}

		// A retry answers the same and writes nothing; the same key with
		// another request is refused.
		again := call(t, c, "RectifySubject", req, &pdv1.RectifySubjectResponse{})
		if again.GetSubject().GetVersion() != 2 || again.GetChange().GetVersion() != 2 {
			t.Errorf("retry: v%d change v%d, want 2 and 2", again.GetSubject().GetVersion(), again.GetChange().GetVersion())
		}
		changed := proto.Clone(req).(*pdv1.RectifySubjectRequest)
		changed.Reference = "ticket-101"
		callErr(t, c, "RectifySubject", changed, &pdv1.RectifySubjectResponse{}, codes.InvalidArgument)

		// A stale version is ABORTED and changes nothing.
		stale := rectifyReq(sub, "rectify-stale", &pdv1.Person{GivenName: "Stale"}, "given_name")
		callErr(t, c, "RectifySubject", stale, &pdv1.RectifySubjectResponse{}, codes.Aborted)

		// Taking another subject's e-mail is ALREADY_EXISTS.
		cur := got
		taken := rectifyReq(cur, "rectify-taken", &pdv1.Person{Email: other.GetPerson().GetEmail()}, "email")
		callErr(t, c, "RectifySubject", taken, &pdv1.RectifySubjectResponse{}, codes.AlreadyExists)

		// The identity number and the address can be rectified too.
		fix := rectifyReq(cur, "rectify-2", &pdv1.Person{IdentityNumber: pnr(1975, 5, 5, 555), PostalAddress: &pdv1.PostalAddress{Lines: []string{"Nygatan 2", "lgh 1101"}, PostalCode: "54321", Locality: "Nystad"}}, "identity_number", "postal_address")
		fixed := call(t, c, "RectifySubject", fix, &pdv1.RectifySubjectResponse{}).GetSubject()
		if fixed.GetPerson().GetIdentityNumber() != strings.ReplaceAll(pnr(1975, 5, 5, 555), "-", "") || fixed.GetPerson().GetPostalAddress().GetPostalCode() != "543 21" {
			t.Errorf("after second rectify: %v", fixed.GetPerson())
		}

		access := call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
		var kinds []pdv1.ChangeKind
		for _, ch := range access.GetChanges() {
			kinds = append(kinds, ch.GetKind())
		}
		want := []pdv1.ChangeKind{pdv1.ChangeKind_CHANGE_KIND_CREATED, pdv1.ChangeKind_CHANGE_KIND_RECTIFIED, pdv1.ChangeKind_CHANGE_KIND_RECTIFIED}
		if !slices.Equal(kinds, want) {
			t.Errorf("changes %v, want %v", kinds, want)
		}

		// Bad input names the field and writes nothing.
		for _, tc := range []struct {
			name  string
			req   *pdv1.RectifySubjectRequest
			field string
		}{
			{"no mask", rectifyReq(fixed, "r-bad-1", &pdv1.Person{}), "update_mask"},
			{"unknown path", rectifyReq(fixed, "r-bad-2", &pdv1.Person{}, "shoe_size"), "update_mask"},
			{"bad value", rectifyReq(fixed, "r-bad-3", &pdv1.Person{Email: "x@"}, "email"), "person.email"},
			{"required value cleared", rectifyReq(fixed, "r-bad-4", &pdv1.Person{}, "family_name"), "person.family_name"},
			{"no version", func() *pdv1.RectifySubjectRequest {
				r := rectifyReq(fixed, "r-bad-5", &pdv1.Person{GivenName: "A"}, "given_name")
				r.ExpectedVersion = 0
				return r
			}(), "expected_version"},
			{"no channel", func() *pdv1.RectifySubjectRequest {
				r := rectifyReq(fixed, "r-bad-6", &pdv1.Person{GivenName: "A"}, "given_name")
				r.Channel = 0
				return r
			}(), "channel"},
			{"no reference", func() *pdv1.RectifySubjectRequest {
				r := rectifyReq(fixed, "r-bad-7", &pdv1.Person{GivenName: "A"}, "given_name")
				r.Reference = ""
				return r
			}(), "reference"},
			{"no performer", func() *pdv1.RectifySubjectRequest {
				r := rectifyReq(fixed, "r-bad-8", &pdv1.Person{GivenName: "A"}, "given_name")
				r.PerformedBy = ""
				return r
			}(), "performed_by"},
		} {
			err := callErr(t, c, "RectifySubject", tc.req, &pdv1.RectifySubjectResponse{}, codes.InvalidArgument)
			if !slices.Equal(badFields(err), []string{tc.field}) {
				t.Errorf("%s: fields %v, want [%s]", tc.name, badFields(err), tc.field)
			}
		}
		after := call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
		if after.GetSubject().GetVersion() != fixed.GetVersion() {
			t.Errorf("bad requests changed the version to %d", after.GetSubject().GetVersion())
		}
	})
}

func historyReq(sub *pdv1.Subject, key string, n int) *pdv1.AddHistoryEntryRequest {
	return &pdv1.AddHistoryEntryRequest{
		IdempotencyKey: key,
		SubjectId:      sub.GetSubjectId(),
		Entry: &pdv1.HistoryEntry{
			Kind:      pdv1.HistoryKind_HISTORY_KIND_EMAIL_CONVERSATION,
			Title:     fmt.Sprintf("Order %d", n),
			Body:      fmt.Sprintf("Hej!\nJag vill ändra order %d.\n", n),
			OccurTime: timestamppb.New(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Hour)),
			Reference: fmt.Sprintf("order-%d", n),
		},
	}
}

func TestHistory(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		sub := create(t, c, 20)
		for i := range 25 {
			res := call(t, c, "AddHistoryEntry", historyReq(sub, fmt.Sprintf("h-%d", i), i), &pdv1.AddHistoryEntryResponse{})
			if res.GetEntry().GetTitle() != fmt.Sprintf("Order %d", i) || res.GetEntry().GetEntryId() == "" {
				t.Fatalf("entry %d: %v", i, res.GetEntry())
			}
		}
		// A retry adds nothing; a reused key with another entry is refused.
		call(t, c, "AddHistoryEntry", historyReq(sub, "h-3", 3), &pdv1.AddHistoryEntryResponse{})
		callErr(t, c, "AddHistoryEntry", historyReq(sub, "h-3", 4), &pdv1.AddHistoryEntryResponse{}, codes.InvalidArgument)
		if n := e.count(t, "history"); n != 25 {
			t.Errorf("%d history documents, want 25", n)
		}

		var titles []string
		token := ""
		pages := 0
		for {
			res := call(t, c, "ListHistoryEntries", &pdv1.ListHistoryEntriesRequest{SubjectId: sub.GetSubjectId(), PageSize: 10, PageToken: token}, &pdv1.ListHistoryEntriesResponse{})
			pages++
			for _, en := range res.GetEntries() {
				titles = append(titles, en.GetTitle())
			}
			if token = res.GetNextPageToken(); token == "" {
				break
			}
		}
		if pages != 3 || len(titles) != 25 || titles[0] != "Order 0" || titles[24] != "Order 24" {
			t.Errorf("%d pages, %d entries (%v ... )", pages, len(titles), titles[:min(3, len(titles))])
		}
		access := call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
		if len(access.GetHistory()) != 25 || access.GetSubject().GetHistoryCount() != 25 {
			t.Errorf("access shows %d entries, count %d", len(access.GetHistory()), access.GetSubject().GetHistoryCount())
		}

		other := create(t, c, 21)
		first := call(t, c, "ListHistoryEntries", &pdv1.ListHistoryEntriesRequest{SubjectId: sub.GetSubjectId(), PageSize: 10}, &pdv1.ListHistoryEntriesResponse{})
		err := callErr(t, c, "ListHistoryEntries", &pdv1.ListHistoryEntriesRequest{SubjectId: other.GetSubjectId(), PageToken: first.GetNextPageToken()}, &pdv1.ListHistoryEntriesResponse{}, codes.InvalidArgument)
		if !slices.Equal(badFields(err), []string{"page_token"}) {
			t.Errorf("token of another subject: fields %v", badFields(err))
		}
		err = callErr(t, c, "ListHistoryEntries", &pdv1.ListHistoryEntriesRequest{SubjectId: sub.GetSubjectId(), PageSize: 1000}, &pdv1.ListHistoryEntriesResponse{}, codes.InvalidArgument)
		if !slices.Equal(badFields(err), []string{"page_size"}) {
			t.Errorf("page size: fields %v", badFields(err))
		}

		for _, tc := range []struct {
			change func(*pdv1.AddHistoryEntryRequest)
			field  string
		}{
			{func(r *pdv1.AddHistoryEntryRequest) { r.Entry = nil }, "entry"},
			{func(r *pdv1.AddHistoryEntryRequest) { r.Entry.Kind = 0 }, "entry.kind"},
			{func(r *pdv1.AddHistoryEntryRequest) { r.Entry.Title = "" }, "entry.title"},
			{func(r *pdv1.AddHistoryEntryRequest) { r.Entry.Body = "" }, "entry.body"},
			{func(r *pdv1.AddHistoryEntryRequest) { r.Entry.Body = strings.Repeat("b", 64<<10+1) }, "entry.body"},
			{func(r *pdv1.AddHistoryEntryRequest) { r.Entry.OccurTime = nil }, "entry.occur_time"},
			{func(r *pdv1.AddHistoryEntryRequest) {
				r.Entry.OccurTime = timestamppb.New(e.clock.Now().Add(24 * time.Hour))
			}, "entry.occur_time"},
			{func(r *pdv1.AddHistoryEntryRequest) { r.SubjectId = "Not An Id" }, "subject_id"},
			{func(r *pdv1.AddHistoryEntryRequest) { r.IdempotencyKey = "" }, "idempotency_key"},
		} {
			req := historyReq(sub, "h-bad", 99)
			tc.change(req)
			err := callErr(t, c, "AddHistoryEntry", req, &pdv1.AddHistoryEntryResponse{}, codes.InvalidArgument)
			if !slices.Equal(badFields(err), []string{tc.field}) {
				t.Errorf("fields %v, want [%s]", badFields(err), tc.field)
			}
		}
		if n := e.count(t, "history"); n != 25 {
			t.Errorf("%d history documents after bad requests, want 25", n)
		}
	})
}

func TestGetSubjectForPurpose(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		sub := create(t, c, 30)
		want := map[pdv1.Purpose][]string{
			pdv1.Purpose_PURPOSE_INVOICING:             {"given_name", "family_name", "email", "postal_address"},
			pdv1.Purpose_PURPOSE_SERVICE_DELIVERY:      {"given_name", "family_name", "email", "phone"},
			pdv1.Purpose_PURPOSE_ACCOUNT_COMMUNICATION: {"given_name", "family_name", "email", "phone"},
			pdv1.Purpose_PURPOSE_SUPPORT:               {"identity_number", "given_name", "family_name", "email", "phone"},
			pdv1.Purpose_PURPOSE_DOMAIN_REGISTRATION:   {"identity_number", "given_name", "family_name", "email", "phone", "postal_address"},
		}
		for purpose, fields := range want {
			res := call(t, c, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: sub.GetSubjectId(), Purpose: purpose}, &pdv1.GetSubjectForPurposeResponse{})
			if !slices.Equal(res.GetFields(), fields) {
				t.Errorf("%v: fields %v, want %v", purpose, res.GetFields(), fields)
			}
			if got := setPersonFields(res.GetPerson()); !slices.Equal(got, fields) {
				t.Errorf("%v: response carries %v, want exactly %v", purpose, got, fields)
			}
		}
		inv := call(t, c, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: sub.GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_INVOICING}, &pdv1.GetSubjectForPurposeResponse{})
		if inv.GetPerson().GetEmail() != "testa30@example.test" || inv.GetPerson().GetPostalAddress().GetLocality() != "Provstad" {
			t.Errorf("invoicing view %v", inv.GetPerson())
		}
		err := callErr(t, c, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: sub.GetSubjectId()}, &pdv1.GetSubjectForPurposeResponse{}, codes.InvalidArgument)
		if !slices.Equal(badFields(err), []string{"purpose"}) {
			t.Errorf("fields %v", badFields(err))
		}
	})
}

// setPersonFields names the fields of p that carry a value.
func setPersonFields(p *pdv1.Person) []string {
	var out []string
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"identity_number", p.GetIdentityNumber() != ""},
		{"given_name", p.GetGivenName() != ""},
		{"family_name", p.GetFamilyName() != ""},
		{"email", p.GetEmail() != ""},
		{"phone", p.GetPhone() != ""},
		{"postal_address", p.GetPostalAddress() != nil},
	} {
		if f.set {
			out = append(out, f.name)
		}
	}
	return out
}

func restrictReq(sub *pdv1.Subject, key string) *pdv1.RestrictProcessingRequest {
	return &pdv1.RestrictProcessingRequest{
		IdempotencyKey: key,
		SubjectId:      sub.GetSubjectId(),
		Ground:         pdv1.RestrictionGround_RESTRICTION_GROUND_ACCURACY_CONTESTED,
		Channel:        pdv1.Channel_CHANNEL_PHONE,
		Reference:      "ticket-200",
		PerformedBy:    "support-agent-7",
	}
}

func liftReq(sub *pdv1.Subject, key string, r pdv1.LiftResolution) *pdv1.LiftRestrictionRequest {
	return &pdv1.LiftRestrictionRequest{
		IdempotencyKey: key,
		SubjectId:      sub.GetSubjectId(),
		Resolution:     r,
		Channel:        pdv1.Channel_CHANNEL_EMAIL,
		Reference:      "ticket-201",
		PerformedBy:    "support-agent-7",
	}
}

func TestRestriction(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		sub := create(t, c, 40)
		res := call(t, c, "RestrictProcessing", restrictReq(sub, "restrict-1"), &pdv1.RestrictProcessingResponse{}).GetSubject()
		if res.GetState() != pdv1.SubjectState_SUBJECT_STATE_RESTRICTED || res.GetServiceDelivery() != pdv1.ServiceDelivery_SERVICE_DELIVERY_SUSPENDED ||
			res.GetRestriction().GetGround() != pdv1.RestrictionGround_RESTRICTION_GROUND_ACCURACY_CONTESTED {
			t.Errorf("restricted subject: %v %v %v", res.GetState(), res.GetServiceDelivery(), res.GetRestriction())
		}
		// Retry is harmless; a second restriction is refused.
		call(t, c, "RestrictProcessing", restrictReq(sub, "restrict-1"), &pdv1.RestrictProcessingResponse{})
		callErr(t, c, "RestrictProcessing", restrictReq(sub, "restrict-2"), &pdv1.RestrictProcessingResponse{}, codes.FailedPrecondition)

		// Every processing use is refused, naming the restriction.
		for p := range 5 {
			err := callErr(t, c, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: sub.GetSubjectId(), Purpose: pdv1.Purpose(p + 1)}, &pdv1.GetSubjectForPurposeResponse{}, codes.FailedPrecondition)
			var named bool
			for _, d := range status.Convert(err).Details() {
				if pf, ok := d.(*errdetails.PreconditionFailure); ok && pf.GetViolations()[0].GetType() == "PROCESSING_RESTRICTED" {
					named = true
				}
			}
			if !named || !strings.Contains(status.Convert(err).Message(), "restricted") {
				t.Errorf("refusal does not name the restriction: %v", err)
			}
		}
		// Storage and the subject's own rights go on.
		access := call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
		if access.GetSubject().GetServiceDelivery() != pdv1.ServiceDelivery_SERVICE_DELIVERY_SUSPENDED {
			t.Errorf("access shows delivery %v", access.GetSubject().GetServiceDelivery())
		}
		call(t, c, "AddHistoryEntry", historyReq(sub, "h-restricted", 1), &pdv1.AddHistoryEntryResponse{})
		call(t, c, "FindSubject", &pdv1.FindSubjectRequest{ControllerId: "company", Key: &pdv1.FindSubjectRequest_Email{Email: "testa40@example.test"}}, &pdv1.FindSubjectResponse{})

		// CORRECTED needs a rectification first.
		callErr(t, c, "LiftRestriction", liftReq(sub, "lift-1", pdv1.LiftResolution_LIFT_RESOLUTION_CORRECTED), &pdv1.LiftRestrictionResponse{}, codes.FailedPrecondition)
		cur := call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{}).GetSubject()
		e.clock.Advance(time.Minute)
		call(t, c, "RectifySubject", rectifyReq(cur, "rectify-r", &pdv1.Person{FamilyName: "Rättadsson"}, "family_name"), &pdv1.RectifySubjectResponse{})
		lifted := call(t, c, "LiftRestriction", liftReq(sub, "lift-2", pdv1.LiftResolution_LIFT_RESOLUTION_CORRECTED), &pdv1.LiftRestrictionResponse{}).GetSubject()
		if lifted.GetState() != pdv1.SubjectState_SUBJECT_STATE_ACTIVE || lifted.GetServiceDelivery() != pdv1.ServiceDelivery_SERVICE_DELIVERY_ACTIVE || lifted.GetRestriction() != nil {
			t.Errorf("after lift: %v %v %v", lifted.GetState(), lifted.GetServiceDelivery(), lifted.GetRestriction())
		}
		callErr(t, c, "LiftRestriction", liftReq(sub, "lift-3", pdv1.LiftResolution_LIFT_RESOLUTION_CONFIRMED_CORRECT), &pdv1.LiftRestrictionResponse{}, codes.FailedPrecondition)
		view := call(t, c, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: sub.GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_INVOICING}, &pdv1.GetSubjectForPurposeResponse{})
		if view.GetPerson().GetFamilyName() != "Rättadsson" {
			t.Errorf("purpose view after lift: %v", view.GetPerson())
		}

		// Restrict again, lift as confirmed correct; the record shows it all.
		call(t, c, "RestrictProcessing", restrictReq(sub, "restrict-3"), &pdv1.RestrictProcessingResponse{})
		call(t, c, "LiftRestriction", liftReq(sub, "lift-4", pdv1.LiftResolution_LIFT_RESOLUTION_CONFIRMED_CORRECT), &pdv1.LiftRestrictionResponse{})
		access = call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
		var kinds []string
		for _, ch := range access.GetChanges() {
			kinds = append(kinds, strings.TrimPrefix(ch.GetKind().String(), "CHANGE_KIND_")+"/"+strings.TrimPrefix(ch.GetLiftResolution().String(), "LIFT_RESOLUTION_"))
		}
		want := []string{"CREATED/UNSPECIFIED", "RESTRICTED/UNSPECIFIED", "RECTIFIED/UNSPECIFIED", "RESTRICTION_LIFTED/CORRECTED", "RESTRICTED/UNSPECIFIED", "RESTRICTION_LIFTED/CONFIRMED_CORRECT"}
		if !slices.Equal(kinds, want) {
			t.Errorf("changes %v, want %v", kinds, want)
		}

		for _, tc := range []struct {
			req   proto.Message
			resp  proto.Message
			rpc   string
			field string
		}{
			{&pdv1.RestrictProcessingRequest{IdempotencyKey: "x", SubjectId: sub.GetSubjectId(), Channel: 1, Reference: "r", PerformedBy: "p"}, &pdv1.RestrictProcessingResponse{}, "RestrictProcessing", "ground"},
			{&pdv1.RestrictProcessingRequest{IdempotencyKey: "x", SubjectId: sub.GetSubjectId(), Ground: 1, Reference: "r", PerformedBy: "p"}, &pdv1.RestrictProcessingResponse{}, "RestrictProcessing", "channel"},
			{&pdv1.LiftRestrictionRequest{IdempotencyKey: "x", SubjectId: sub.GetSubjectId(), Channel: 1, Reference: "r", PerformedBy: "p"}, &pdv1.LiftRestrictionResponse{}, "LiftRestriction", "resolution"},
			{&pdv1.LiftRestrictionRequest{IdempotencyKey: "x", SubjectId: sub.GetSubjectId(), Resolution: 1, Channel: 1, PerformedBy: "p"}, &pdv1.LiftRestrictionResponse{}, "LiftRestriction", "reference"},
		} {
			err := callErr(t, c, tc.rpc, tc.req, tc.resp, codes.InvalidArgument)
			if !slices.Equal(badFields(err), []string{tc.field}) {
				t.Errorf("%s: fields %v, want [%s]", tc.rpc, badFields(err), tc.field)
			}
		}
	})
}

func eraseReq(sub *pdv1.Subject, key string) *pdv1.EraseSubjectRequest {
	return &pdv1.EraseSubjectRequest{
		IdempotencyKey: key,
		SubjectId:      sub.GetSubjectId(),
		Ground:         pdv1.ErasureGround_ERASURE_GROUND_CONSENT_WITHDRAWN,
		Channel:        pdv1.Channel_CHANNEL_EMAIL,
		Reference:      "ticket-300",
		PerformedBy:    "support-agent-7",
	}
}

func TestEraseSubject(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		sub := create(t, c, 50)
		keep := create(t, c, 51)
		for i := range 3 {
			call(t, c, "AddHistoryEntry", historyReq(sub, fmt.Sprintf("h-%d", i), i), &pdv1.AddHistoryEntryResponse{})
		}
		call(t, c, "RestrictProcessing", restrictReq(sub, "restrict"), &pdv1.RestrictProcessingResponse{})
		e.clock.Advance(time.Hour)

		res := call(t, c, "EraseSubject", eraseReq(sub, "erase-1"), &pdv1.EraseSubjectResponse{})
		tomb := res.GetSubject()
		if tomb.GetState() != pdv1.SubjectState_SUBJECT_STATE_ERASED || tomb.GetPerson() != nil ||
			tomb.GetErasure().GetGround() != pdv1.ErasureGround_ERASURE_GROUND_CONSENT_WITHDRAWN ||
			!tomb.GetErasure().GetEraseTime().AsTime().Equal(e.clock.Now()) {
			t.Errorf("tombstone %v", tomb)
		}
		if !slices.Equal(res.GetErasedCategories(), []pdv1.DataCategory{pdv1.DataCategory_DATA_CATEGORY_IDENTIFICATION, pdv1.DataCategory_DATA_CATEGORY_CONTACT, pdv1.DataCategory_DATA_CATEGORY_HISTORY}) {
			t.Errorf("erased categories %v", res.GetErasedCategories())
		}

		// Nothing of the person is stored any more; the other subject is intact.
		dump := e.rawDump(t)
		for _, v := range []string{"Testa50", "Testsson50", "testa50@", "Provgatan 50", strings.ReplaceAll(sub.GetPerson().GetIdentityNumber(), "-", ""), sub.GetPerson().GetPhone(), "Order 1"} {
			if strings.Contains(dump, v) {
				t.Errorf("stored documents still contain a value of the erased subject (%d chars)", len(v))
			}
		}
		if other := call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: keep.GetSubjectId()}, &pdv1.AccessSubjectResponse{}); other.GetSubject().GetPerson().GetGivenName() != "Testa51" {
			t.Errorf("the other subject's data is gone")
		}
		if n := e.count(t, "history"); n != 0 {
			t.Errorf("%d history documents left", n)
		}
		if n := e.count(t, "keys"); n != 2 {
			t.Errorf("%d keys left, want the other subject's 2", n)
		}

		// Later calls say it was erased, when and on which ground.
		access := call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
		if access.GetSubject().GetState() != pdv1.SubjectState_SUBJECT_STATE_ERASED || access.GetSubject().GetPerson() != nil || len(access.GetHistory()) != 0 {
			t.Errorf("access after erasure: %v", access)
		}
		if last := access.GetChanges()[len(access.GetChanges())-1]; last.GetKind() != pdv1.ChangeKind_CHANGE_KIND_ERASED {
			t.Errorf("last change %v, want ERASED", last)
		}
		for _, tc := range []struct {
			rpc  string
			req  proto.Message
			resp proto.Message
		}{
			{"GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: sub.GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_INVOICING}, &pdv1.GetSubjectForPurposeResponse{}},
			{"RectifySubject", rectifyReq(tomb, "r-after", &pdv1.Person{GivenName: "X"}, "given_name"), &pdv1.RectifySubjectResponse{}},
			{"AddHistoryEntry", historyReq(sub, "h-after", 9), &pdv1.AddHistoryEntryResponse{}},
			{"ListHistoryEntries", &pdv1.ListHistoryEntriesRequest{SubjectId: sub.GetSubjectId()}, &pdv1.ListHistoryEntriesResponse{}},
			{"RestrictProcessing", restrictReq(sub, "restrict-after"), &pdv1.RestrictProcessingResponse{}},
			{"LiftRestriction", liftReq(sub, "lift-after", pdv1.LiftResolution_LIFT_RESOLUTION_CONFIRMED_CORRECT), &pdv1.LiftRestrictionResponse{}},
		} {
			err := callErr(t, c, tc.rpc, tc.req, tc.resp, codes.NotFound)
			var info *errdetails.ErrorInfo
			for _, d := range status.Convert(err).Details() {
				if i, ok := d.(*errdetails.ErrorInfo); ok {
					info = i
				}
			}
			if info.GetReason() != "SUBJECT_ERASED" || info.GetMetadata()["ground"] != "ERASURE_GROUND_CONSENT_WITHDRAWN" || info.GetMetadata()["erase_time"] == "" {
				t.Errorf("%s after erasure: %v", tc.rpc, err)
			}
		}
		callErr(t, c, "FindSubject", &pdv1.FindSubjectRequest{ControllerId: "company", Key: &pdv1.FindSubjectRequest_Email{Email: "testa50@example.test"}}, &pdv1.FindSubjectResponse{}, codes.NotFound)

		// The erasure's key with another request is refused.
		reused := eraseReq(sub, "erase-1")
		reused.Reference = "ticket-999"
		callErr(t, c, "EraseSubject", reused, &pdv1.EraseSubjectResponse{}, codes.InvalidArgument)
		// Erasing again is idempotent, with the same key or another.
		for _, key := range []string{"erase-1", "erase-2"} {
			again := call(t, c, "EraseSubject", eraseReq(sub, key), &pdv1.EraseSubjectResponse{}).GetSubject()
			if again.GetState() != pdv1.SubjectState_SUBJECT_STATE_ERASED || !proto.Equal(again.GetErasure(), tomb.GetErasure()) {
				t.Errorf("erase again (%s): %v", key, again)
			}
		}
		// The first create, retried, learns of the erasure.
		callErr(t, c, "CreateSubject", createReq("create-50", 50), &pdv1.CreateSubjectResponse{}, codes.NotFound)
		// The person may come back as a new subject.
		back := createReq("create-again", 50)
		if got := call(t, c, "CreateSubject", back, &pdv1.CreateSubjectResponse{}).GetSubject(); got.GetSubjectId() == sub.GetSubjectId() {
			t.Errorf("re-created subject reuses the erased id")
		}
		err := callErr(t, c, "EraseSubject", &pdv1.EraseSubjectRequest{IdempotencyKey: "e", SubjectId: sub.GetSubjectId(), Channel: 1, Reference: "r", PerformedBy: "p"}, &pdv1.EraseSubjectResponse{}, codes.InvalidArgument)
		if !slices.Equal(badFields(err), []string{"ground"}) {
			t.Errorf("fields %v", badFields(err))
		}
	})
}

func TestUnknownSubject(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		ghost := &pdv1.Subject{SubjectId: "nosuchsubject", Version: 1}
		for _, tc := range []struct {
			rpc  string
			req  proto.Message
			resp proto.Message
		}{
			{"AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: ghost.GetSubjectId()}, &pdv1.AccessSubjectResponse{}},
			{"GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: ghost.GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_INVOICING}, &pdv1.GetSubjectForPurposeResponse{}},
			{"RectifySubject", rectifyReq(ghost, "r", &pdv1.Person{GivenName: "X"}, "given_name"), &pdv1.RectifySubjectResponse{}},
			{"AddHistoryEntry", historyReq(ghost, "h", 1), &pdv1.AddHistoryEntryResponse{}},
			{"ListHistoryEntries", &pdv1.ListHistoryEntriesRequest{SubjectId: ghost.GetSubjectId()}, &pdv1.ListHistoryEntriesResponse{}},
			{"RestrictProcessing", restrictReq(ghost, "rp"), &pdv1.RestrictProcessingResponse{}},
			{"LiftRestriction", liftReq(ghost, "lr", pdv1.LiftResolution_LIFT_RESOLUTION_CONFIRMED_CORRECT), &pdv1.LiftRestrictionResponse{}},
			{"EraseSubject", eraseReq(ghost, "e"), &pdv1.EraseSubjectResponse{}},
		} {
			callErr(t, c, tc.rpc, tc.req, tc.resp, codes.NotFound)
		}
		if n := e.count(t, "subjects") + e.count(t, "history") + e.count(t, "keys"); n != 0 {
			t.Errorf("%d documents written for an unknown subject", n)
		}
	})
}

// TestConcurrentChanges has many clients change one subject at once: no
// update may be lost, and of rectifications from the same version exactly
// one wins.
func TestConcurrentChanges(t *testing.T) {
	storetest.SkipUnlessAtomic(t)
	e := start(t)
	c := e.gc()
	sub := create(t, c, 60)
	const workers, each = 8, 10
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				req := historyReq(sub, fmt.Sprintf("h-%d-%d", w, i), i)
				if err := c.call(context.Background(), "AddHistoryEntry", req, &pdv1.AddHistoryEntryResponse{}); err != nil {
					t.Errorf("AddHistoryEntry: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	access := call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
	if got := access.GetSubject().GetHistoryCount(); got != workers*each || len(access.GetHistory()) != workers*each {
		t.Errorf("history count %d, entries %d, want %d", got, len(access.GetHistory()), workers*each)
	}

	cur := access.GetSubject()
	var won, aborted int
	var mu sync.Mutex
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := rectifyReq(cur, fmt.Sprintf("r-%d", w), &pdv1.Person{GivenName: fmt.Sprintf("Vinnare%d", w)}, "given_name")
			err := c.call(context.Background(), "RectifySubject", req, &pdv1.RectifySubjectResponse{})
			mu.Lock()
			defer mu.Unlock()
			switch status.Code(err) {
			case codes.OK:
				won++
			case codes.Aborted:
				aborted++
			default:
				t.Errorf("RectifySubject: %v", err)
			}
		}()
	}
	wg.Wait()
	if won != 1 || aborted != workers-1 {
		t.Errorf("%d won and %d aborted, want 1 and %d", won, aborted, workers-1)
	}
}

// TestKeyReservationRace has many clients create the same person at once,
// each with its own idempotency key: exactly one subject may result.
func TestKeyReservationRace(t *testing.T) {
	e := start(t)
	c := e.gc()
	const workers = 12
	var wg sync.WaitGroup
	var mu sync.Mutex
	codesSeen := map[codes.Code]int{}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.call(context.Background(), "CreateSubject", createReq(fmt.Sprintf("race-%d", w), 70), &pdv1.CreateSubjectResponse{})
			mu.Lock()
			codesSeen[status.Code(err)]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codesSeen[codes.OK] != 1 || codesSeen[codes.OK]+codesSeen[codes.AlreadyExists]+codesSeen[codes.Aborted] != workers {
		t.Errorf("outcomes %v, want one OK and the rest ALREADY_EXISTS or ABORTED", codesSeen)
	}
	if n := e.count(t, "subjects"); n != 1 {
		t.Errorf("%d subjects, want 1", n)
	}
	if n := e.count(t, "keys"); n != 2 {
		t.Errorf("%d keys, want 2", n)
	}
}

// TestAbandonedReservation shows that a key reserved by a create that died
// before writing its subject blocks others only for the lease.
func TestAbandonedReservation(t *testing.T) {
	e := start(t)
	c := e.gc()
	req := createReq("first", 80)
	sub := call(t, c, "CreateSubject", req, &pdv1.CreateSubjectResponse{}).GetSubject()
	// Simulate the crash: the keys stay, the subject document is gone.
	if _, err := e.coll("subjects").DeleteOne(context.Background(), bson.D{{Key: "_id", Value: sub.GetSubjectId()}}); err != nil {
		t.Fatal(err)
	}
	callErr(t, c, "CreateSubject", createReq("second", 80), &pdv1.CreateSubjectResponse{}, codes.Aborted)
	// The first request's own retry completes it.
	if got := call(t, c, "CreateSubject", req, &pdv1.CreateSubjectResponse{}).GetSubject(); got.GetSubjectId() != sub.GetSubjectId() {
		t.Errorf("retry made %s, want %s", got.GetSubjectId(), sub.GetSubjectId())
	}
	if _, err := e.coll("subjects").DeleteOne(context.Background(), bson.D{{Key: "_id", Value: sub.GetSubjectId()}}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(3 * time.Minute)
	if got := call(t, c, "CreateSubject", createReq("third", 80), &pdv1.CreateSubjectResponse{}).GetSubject(); got.GetSubjectId() == sub.GetSubjectId() {
		t.Errorf("takeover reused the dead subject's id")
	}
}
