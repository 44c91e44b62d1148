package server_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

const (
	// bigEntries history entries of the largest body allowed (64 Ki
	// characters) make a subject hold more than one gRPC message may carry
	// by default (4 MiB).
	bigEntries = 70
	maxBody    = 64 << 10
	// maxMessage is that default limit.
	maxMessage = 4 << 20
)

// addBigHistory gives sub bigEntries history entries of the largest body
// allowed, each told apart by its first line, and returns their bodies.
func addBigHistory(t *testing.T, c caller, sub *pdv1.Subject) []string {
	t.Helper()
	var bodies []string
	for i := range bigEntries {
		head := fmt.Sprintf("Ärende %02d: byte av domän\n", i)
		body := head + strings.Repeat("x", maxBody-utf8.RuneCountInString(head))
		call(t, c, "AddHistoryEntry", &pdv1.AddHistoryEntryRequest{
			IdempotencyKey: fmt.Sprintf("big-%d", i),
			SubjectId:      sub.GetSubjectId(),
			Entry: &pdv1.HistoryEntry{
				Kind:      pdv1.HistoryKind_HISTORY_KIND_EMAIL_CONVERSATION,
				Title:     fmt.Sprintf("Ärende %d", i),
				Body:      body,
				OccurTime: timestamppb.New(time.Date(2026, 3, 1, 9, i, 0, 0, time.UTC)),
				Reference: fmt.Sprintf("ticket-%d", i),
			},
		}, &pdv1.AddHistoryEntryResponse{})
		bodies = append(bodies, body)
	}
	return bodies
}

// accessPages pages through AccessSubject from the first page to the last.
func accessPages(t *testing.T, c caller, id string) []*pdv1.AccessSubjectResponse {
	t.Helper()
	var pages []*pdv1.AccessSubjectResponse
	for token := ""; len(pages) < 100; {
		p := call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: id, PageToken: token}, &pdv1.AccessSubjectResponse{})
		pages = append(pages, p)
		if token = p.GetNextPageToken(); token == "" {
			return pages
		}
	}
	t.Fatalf("AccessSubject: no last page after %d", len(pages))
	return nil
}

// streamAccess reads StreamSubjectAccess to its end over the named transport
// (over REST, GET .../subjects/{id}:streamAccess, one JSON line a page).
func streamAccess(t *testing.T, e *env, transport, token string, req *pdv1.StreamSubjectAccessRequest) ([]*pdv1.AccessSubjectResponse, error) {
	t.Helper()
	path := "/v1/subjects/" + req.GetSubjectId() + ":streamAccess"
	if req.GetPageToken() != "" {
		path += "?page_token=" + url.QueryEscape(req.GetPageToken())
	}
	msgs, err := streamRPC(t, e, transport, token, req, http.MethodGet, path, nil,
		func(ctx context.Context, conn *grpc.ClientConn) (grpc.ServerStreamingClient[pdv1.StreamSubjectAccessResponse], error) {
			return pdv1.NewPersonalDataServiceClient(conn).StreamSubjectAccess(ctx, req)
		})
	var pages []*pdv1.AccessSubjectResponse
	for _, m := range msgs {
		pages = append(pages, m.GetPage())
	}
	return pages, err
}

// checkDocument checks that pages make one access document of subject id
// whose history holds the bodies, in order: each page bounded, the
// purposes and retention on the first only, a next_page_token on every page
// but the last.
func checkDocument(t *testing.T, what string, pages []*pdv1.AccessSubjectResponse, id string, bodies []string) {
	t.Helper()
	var history []*pdv1.HistoryEntry
	for i, p := range pages {
		if n := proto.Size(p); n > maxMessage/2 {
			t.Errorf("%s: page %d is %d bytes", what, i, n)
		}
		if p.GetSubject().GetSubjectId() != id || (p.GetNextPageToken() == "") != (i == len(pages)-1) {
			t.Errorf("%s: page %d of %d: subject %q, next_page_token %q", what, i, len(pages), p.GetSubject().GetSubjectId(), p.GetNextPageToken())
		}
		if (i == 0) != (p.GetRetention() != nil) || (i > 0 && len(p.GetPurposes()) > 0) {
			t.Errorf("%s: page %d: purposes %d, retention %v: want them on the first page only", what, i, len(p.GetPurposes()), p.GetRetention())
		}
		history = append(history, p.GetHistory()...)
	}
	if len(history) != len(bodies) {
		t.Fatalf("%s: %d history entries in %d pages, want %d", what, len(history), len(pages), len(bodies))
	}
	for i, h := range history {
		if h.GetBody() != bodies[i] || h.GetTitle() != fmt.Sprintf("Ärende %d", i) {
			t.Errorf("%s: entry %d is %q (%d characters)", what, i, h.GetTitle(), utf8.RuneCountInString(h.GetBody()))
		}
	}
	if changes := pages[0].GetChanges(); len(changes) != 1 || changes[0].GetKind() != pdv1.ChangeKind_CHANGE_KIND_CREATED {
		t.Errorf("%s: changes %v", what, changes)
	}
}

// subjectTrail is the audit trail of a subject, read by the operator.
func subjectTrail(t *testing.T, e *env, c caller, id string) []*pdv1.AuditEvent {
	t.Helper()
	var events []*pdv1.AuditEvent
	for token := ""; ; {
		res := call(t, e.as(c, e.operator), listAuditEvents, &pdv1.ListAuditEventsRequest{SubjectId: id, PageSize: 100, PageToken: token}, &pdv1.ListAuditEventsResponse{})
		events = append(events, res.GetEvents()...)
		if token = res.GetNextPageToken(); token == "" {
			return events
		}
	}
}

// outcomes counts the outcomes of the events of one RPC ("Method" or
// "package.Service/Method").
func outcomes(events []*pdv1.AuditEvent, method string) map[string]int {
	out := map[string]int{}
	for _, ev := range events {
		if ev.GetRpc() == fullMethod(method) {
			out[ev.GetOutcome()]++
		}
	}
	return out
}

// TestAccessLargeSubject gives a customer's subject more history than one
// message may carry. AccessSubject answers in pages, StreamSubjectAccess
// sends all of them in one call, the customer's export sends the subject in
// pages too; together each returns every entry with its body, and the trail
// records each call as it ended.
func TestAccessLargeSubject(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		createAgreement(t, e, c, paReq(e, "pa-1", "customer-42", supportAndDelivery, allCategories...))
		sub := createFor(t, c, "customer-42", 1)
		id := sub.GetSubjectId()
		bodies := addBigHistory(t, c, sub)
		ctl := e.controller(t, c)

		pages := accessPages(t, ctl, id)
		if len(pages) < 4 {
			t.Errorf("%d pages, want the 4.5 MiB of history in pages of about 1 MiB", len(pages))
		}
		checkDocument(t, "AccessSubject", pages, id, bodies)

		streamed, err := streamAccess(t, e, c.name(), e.customer42, &pdv1.StreamSubjectAccessRequest{SubjectId: id})
		if err != nil {
			t.Fatalf("StreamSubjectAccess: %v", err)
		}
		checkDocument(t, "StreamSubjectAccess", streamed, id, bodies)
		// A broken download goes on from the last page received.
		last := streamed[len(streamed)-1]
		rest, err := streamAccess(t, e, c.name(), e.customer42, &pdv1.StreamSubjectAccessRequest{SubjectId: id, PageToken: streamed[len(streamed)-2].GetNextPageToken()})
		if err != nil || len(rest) != 1 || !proto.Equal(rest[0].GetHistory()[0], last.GetHistory()[0]) || rest[0].GetNextPageToken() != "" {
			t.Errorf("resumed: %d pages, %v; want the last one", len(rest), err)
		}

		// A page token is for its own subject's document only.
		err = callErr(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: create(t, c, 2).GetSubjectId(), PageToken: pages[0].GetNextPageToken()}, &pdv1.AccessSubjectResponse{}, codes.InvalidArgument)
		if !slices.Equal(badFields(err), []string{"page_token"}) {
			t.Errorf("another subject's token: %v", err)
		}

		// The history listing is bounded the same way, whatever page_size.
		list := call(t, c, "ListHistoryEntries", &pdv1.ListHistoryEntriesRequest{SubjectId: id, PageSize: 100}, &pdv1.ListHistoryEntriesResponse{})
		if n := len(list.GetEntries()); n == 0 || n >= bigEntries || list.GetNextPageToken() == "" || proto.Size(list) > maxMessage/2 {
			t.Errorf("ListHistoryEntries: %d entries, %d bytes, next %q", n, proto.Size(list), list.GetNextPageToken())
		}

		// The customer's export sends the subject in pages; done counts it
		// once it is complete.
		exported, err := exportSubjects(t, e, c.name(), e.customer42, &pdv1.ExportControllerSubjectsRequest{CustomerId: "customer-42"}, 0)
		if err != nil {
			t.Fatalf("export: %v", err)
		}
		var docs []*pdv1.AccessSubjectResponse
		for i, m := range exported {
			last := i == len(exported)-1
			if (m.GetDone() == 1) != last || (m.GetResumeToken() != "") != last || m.GetTotal() != 1 || proto.Size(m) > maxMessage/2 {
				t.Errorf("export message %d of %d: done %d, total %d, token %q, %d bytes", i, len(exported), m.GetDone(), m.GetTotal(), m.GetResumeToken(), proto.Size(m))
			}
			docs = append(docs, m.GetSubject())
		}
		checkDocument(t, "export", docs, id, bodies)

		trail := subjectTrail(t, e, c, id)
		for method, want := range map[string]map[string]int{
			"AccessSubject":       {"OK": len(pages)},
			"StreamSubjectAccess": {"OK": 2},
			"personaldata.v1.ProcessorAgreementService/ExportControllerSubjects": {"OK": 1},
		} {
			if got := outcomes(trail, method); !maps.Equal(got, want) {
				t.Errorf("%s on the trail: %v, want %v", method, got, want)
			}
		}

		if c.name() != "grpc" {
			return
		}
		// A caller that stops reading and goes away did not get the
		// document: after the OK written before the first page left, the
		// trail says how the call ended. (Fixed small windows, so the server
		// cannot hand the whole document to the transport first.)
		conn, err := grpc.NewClient(e.srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+e.customer42))
		st, err := pdv1.NewPersonalDataServiceClient(conn).StreamSubjectAccess(ctx, &pdv1.StreamSubjectAccessRequest{SubjectId: id})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); err != nil {
			t.Fatalf("first page: %v", err)
		}
		cancel()
		deadline := time.Now().Add(20 * time.Second)
		for {
			got := outcomes(subjectTrail(t, e, c, id), "StreamSubjectAccess")
			failed := 0
			for outcome, n := range got {
				if outcome != "OK" {
					failed += n
				}
			}
			if got["OK"] == 3 && failed == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("StreamSubjectAccess on the trail after the caller left: %v, want 3 OK and one failure", got)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

// TestAccessCustomerTerms: for a customer's data the access document states
// what the processor agreement in force gives, the purposes it covers on the
// processor basis and its retention, not the company's own; for the
// company's data, the company's. An erasure names erased and kept
// categories alike.
func TestAccessCustomerTerms(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		createAgreement(t, e, c, paReq(e, "pa-1", "customer-42", supportAndDelivery, allCategories...))
		sub := createFor(t, c, "customer-42", 1)
		ctl := e.controller(t, c)
		check := func(want []pdv1.Purpose) {
			t.Helper()
			a := call(t, ctl, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
			var got []pdv1.Purpose
			for _, p := range a.GetPurposes() {
				got = append(got, p.GetPurpose())
				if b := p.GetLegalBasis(); !strings.Contains(b, "under processor agreement customer-42.1 (GDPR Art. 28)") {
					t.Errorf("%v: legal basis %q", p.GetPurpose(), b)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("purposes %v, want %v", got, want)
			}
			r := a.GetRetention()
			if r.GetAgreementId() != "customer-42.1" || !strings.Contains(r.GetPolicy(), "processor agreement customer-42.1 (contracts/dpa-2026-001.pdf)") ||
				!strings.Contains(r.GetPolicy(), "until terminated") || !strings.Contains(r.GetPolicy(), "returned to it (export) or erased") ||
				strings.Contains(r.GetPolicy(), "accounting records") {
				t.Errorf("retention %v", r)
			}
		}
		check([]pdv1.Purpose{pdv1.Purpose_PURPOSE_SERVICE_DELIVERY, pdv1.Purpose_PURPOSE_SUPPORT})
		// Amended to cover invoicing too: the document follows the terms in force.
		call(t, e.as(c, e.operator), amendAgreementRPC, &pdv1.AmendProcessorAgreementRequest{
			IdempotencyKey: "amend-1", AgreementId: "customer-42.1", ExpectedVersion: 1,
			Terms: paTerms(e, slices.Concat(supportAndDelivery, []pdv1.Purpose{pdv1.Purpose_PURPOSE_INVOICING}), allCategories...),
		}, &pdv1.AmendProcessorAgreementResponse{})
		check([]pdv1.Purpose{pdv1.Purpose_PURPOSE_INVOICING, pdv1.Purpose_PURPOSE_SERVICE_DELIVERY, pdv1.Purpose_PURPOSE_SUPPORT})

		// The company's own data: every purpose on its own basis, and its policy.
		own := call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: create(t, c, 2).GetSubjectId()}, &pdv1.AccessSubjectResponse{})
		if ps := own.GetPurposes(); len(ps) != 6 || ps[0].GetPurpose() != pdv1.Purpose_PURPOSE_INVOICING || !strings.Contains(ps[0].GetLegalBasis(), "contract with the customer") {
			t.Errorf("the company's purposes: %v", ps)
		}
		if r := own.GetRetention(); r.GetAgreementId() != "" || !strings.Contains(r.GetPolicy(), "accounting records for seven years") {
			t.Errorf("the company's retention: %v", r)
		}

		// Erased on the customer's instruction: erased and kept categories
		// are DataCategory values both; the tombstone states no purpose.
		res := call(t, ctl, "EraseSubject", eraseReq(sub, "erase-1"), &pdv1.EraseSubjectResponse{})
		if !slices.Equal(res.GetErasedCategories(), allCategories) || len(res.GetKept()) != 0 {
			t.Errorf("erased %v, kept %v", res.GetErasedCategories(), res.GetKept())
		}
		tomb := call(t, ctl, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
		if len(tomb.GetPurposes()) != 0 || tomb.GetRetention().GetAgreementId() != "" || !strings.Contains(tomb.GetRetention().GetPolicy(), "Erased on the controller's instruction") {
			t.Errorf("tombstone: purposes %v, retention %v", tomb.GetPurposes(), tomb.GetRetention())
		}
	})
}

// TestAccessBadInput: a page token from elsewhere is INVALID_ARGUMENT naming
// it, for the paged call and the stream.
func TestAccessBadInput(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		sub := create(t, c, 1)
		call(t, c, "AddHistoryEntry", historyReq(sub, "h-1", 1), &pdv1.AddHistoryEntryResponse{})
		call(t, c, "AddHistoryEntry", historyReq(sub, "h-2", 2), &pdv1.AddHistoryEntryResponse{})
		listing := call(t, c, "ListHistoryEntries", &pdv1.ListHistoryEntriesRequest{SubjectId: sub.GetSubjectId(), PageSize: 1}, &pdv1.ListHistoryEntriesResponse{})
		if listing.GetNextPageToken() == "" {
			t.Fatal("no second page of history")
		}
		for _, token := range []string{"not a token", listing.GetNextPageToken()} {
			err := callErr(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId(), PageToken: token}, &pdv1.AccessSubjectResponse{}, codes.InvalidArgument)
			if !slices.Equal(badFields(err), []string{"page_token"}) {
				t.Errorf("token %q: %v", token, err)
			}
			pages, err := streamAccess(t, e, c.name(), e.token, &pdv1.StreamSubjectAccessRequest{SubjectId: sub.GetSubjectId(), PageToken: token})
			if status.Code(err) != codes.InvalidArgument || !slices.Equal(badFields(err), []string{"page_token"}) || len(pages) != 0 {
				t.Errorf("stream, token %q: %v, %d pages", token, err, len(pages))
			}
		}
	})
}
