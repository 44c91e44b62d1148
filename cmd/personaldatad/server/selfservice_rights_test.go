package server_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

const openOwnRR = rrService + "OpenOwnRightsRequest"

// requestsOf are the requests about subject id in the company's queue, as
// staff list them.
func requestsOf(t *testing.T, c caller, id string) []*pdv1.RightsRequest {
	t.Helper()
	return call(t, c, listRR, &pdv1.ListRightsRequestsRequest{ControllerId: "company", SubjectId: id}, &pdv1.ListRightsRequestsResponse{}).GetRequests()
}

// requestOfKind is the one request of kind among rs, or nil.
func requestOfKind(rs []*pdv1.RightsRequest, kind pdv1.RightsRequestKind) *pdv1.RightsRequest {
	for _, r := range rs {
		if r.GetKind() == kind {
			return r
		}
	}
	return nil
}

// Restriction, objection and erasure asked for on the page, over HTTP
// without script: each is a rights request stored verified by the sign-in
// (method CODE, by the person), with the staff path's due date, receipt and
// audit (the person as actor, channel SELF_SERVICE); erasure asks once more;
// a request about a customer's data goes to that customer; the page lists
// the requests with state and due date; the letter downloads; bad input
// changes nothing and names nothing the person did not type; an erasure
// carried out ends the session and says so.
func TestSelfServiceRightsRequests(t *testing.T) {
	e := start(t)
	c := e.gc()
	sub := create(t, c, 280)
	id := sub.GetSubjectId()
	me := testPerson(280)
	// customer-42 holds the same person's data in the company's systems.
	createAgreement(t, e, c, paReq(e, "pa-self", "customer-42", supportAndDelivery, allCategories...))
	createFor(t, c, "customer-42", 280)
	mailer := e.mailer(t, c)
	sc := newSelfClient(t, e)
	page := sc.signIn(mailer, me)
	csrf := selfCSRF.FindStringSubmatch(page)[1]
	for _, want := range []string{"customer-42", "Det är de som ansvarar för de uppgifterna", "Du har inga begäranden hos oss.", `href="/brev"`, `href="/begar"`} {
		if !strings.Contains(page, want) {
			t.Errorf("overview lacks %q", want)
		}
	}
	st, form := sc.do(http.MethodGet, "/begar", nil)
	if st != 200 || !strings.Contains(form, `name="hos" value=""`) || !strings.Contains(form, `name="hos" value="customer-42"`) ||
		!strings.Contains(form, "Vår kund customer-42 har uppgifter om dig") {
		t.Fatalf("request page: %d %s", st, form)
	}
	ask := func(typ, hos, text string, extra ...string) (int, string) {
		t.Helper()
		f := url.Values{"csrf": {csrf}, "typ": {typ}, "hos": {hos}, "text": {text}}
		for i := 0; i+1 < len(extra); i += 2 {
			f.Set(extra[i], extra[i+1])
		}
		return sc.do(http.MethodPost, "/begar", f)
	}

	// A restriction, with the staff path's due date: a staff request
	// opened at the same time is due the same day.
	st, page = ask("begransning", "", "Min adress stämmer inte.")
	if st != 200 || !strings.Contains(page, "Vi har tagit emot din begäran.") || !strings.Contains(page, "Begränsning: att vi bara sparar uppgifterna") ||
		!strings.Contains(page, "Mottagen. Vi går igenom den.") || !strings.Contains(page, "Vi svarar senast") {
		t.Fatalf("after the restriction: %d %s", st, page)
	}
	staff := openRequest(t, c, openReq("staff-281", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, 281))
	rs := requestsOf(t, c, id)
	restriction := requestOfKind(rs, pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_RESTRICTION)
	if len(rs) != 1 || restriction == nil {
		t.Fatalf("stored %v", rs)
	}
	v := restriction.GetVerification()
	if restriction.GetState() != pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_VERIFIED || restriction.GetChannel() != pdv1.Channel_CHANNEL_SELF_SERVICE ||
		v.GetMethod() != pdv1.VerificationMethod_VERIFICATION_METHOD_CODE || v.GetVerifiedBy() != id ||
		restriction.GetText() != "Min adress stämmer inte." || restriction.GetClaimedIdentity().GetIdentityNumber() != strings.ReplaceAll(me.GetIdentityNumber(), "-", "") ||
		restriction.GetDueDate() != staff.GetDueDate() || restriction.GetControllerId() != "company" {
		t.Errorf("restriction stored as %v (staff's due date %s)", restriction, staff.GetDueDate())
	}
	if !strings.Contains(page, dateWords(restriction.GetDueDate())) {
		t.Errorf("the page does not show the due date %s", restriction.GetDueDate())
	}
	var receipt bool
	for _, m := range outbox(t, mailer) {
		receipt = receipt || (m.GetRequestId() == restriction.GetRequestId() && m.GetKind() == pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_RECEIPT && m.GetTo() == me.GetEmail())
	}
	if !receipt {
		t.Error("no receipt queued to the e-mail on file")
	}
	evs := selfEvents(t, e, c, id, "OpenOwnRightsRequest")
	if len(evs) != 1 || !slices.Contains(evs[0].GetFields(), "sign_in:code") || evs[0].GetOutcome() != "OK" {
		t.Errorf("audit of the request: %v", evs)
	}
	if len(selfEvents(t, e, c, id, "ListOwnRightsRequests")) == 0 {
		t.Error("the list of the person's requests is not audited as theirs")
	}

	// The same again, while the first is open: refused, nothing new.
	if st, page = ask("begransning", "", ""); st != http.StatusConflict || !strings.Contains(page, "Du har redan en sådan begäran") {
		t.Errorf("a second restriction: %d", st)
	}
	// An objection.
	if st, _ = ask("invandning", "", "Jag vill inte att ni använder mina uppgifter."); st != 200 {
		t.Errorf("objection: %d", st)
	}
	// Erasure asks once more; nothing is sent before the yes.
	st, page = ask("radering", "", "Radera allt.")
	if st != 200 || !strings.Contains(page, "Ja, skicka begäran om radering") || !strings.Contains(page, `name="bekraftat" value="ja"`) || !strings.Contains(page, "Nej, gå tillbaka") {
		t.Fatalf("erasure without a yes: %d %s", st, page)
	}
	if n := len(requestsOf(t, c, id)); n != 2 {
		t.Fatalf("%d requests before the yes, want 2", n)
	}
	if st, page = ask("radering", "", "Radera allt.", "bekraftat", "ja"); st != 200 || !strings.Contains(page, "Radering") {
		t.Fatalf("erasure confirmed: %d", st)
	}
	rs = requestsOf(t, c, id)
	erasure := requestOfKind(rs, pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ERASURE)
	if len(rs) != 3 || erasure == nil || requestOfKind(rs, pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_OBJECTION) == nil || erasure.GetText() != "Radera allt." {
		t.Fatalf("stored %v", rs)
	}

	// customer-42's data: the request goes to customer-42, as forwarding does.
	st, page = ask("radering", "customer-42", "")
	if st != 200 || !strings.Contains(page, "Vi skickar begäran vidare till <strong>customer-42</strong>") {
		t.Fatalf("customer's erasure, asked: %d %s", st, page)
	}
	if st, page = ask("radering", "customer-42", "", "bekraftat", "ja"); st != 200 || !strings.Contains(page, "Vi har skickat din begäran vidare") ||
		!strings.Contains(page, "Skickad vidare till customer-42") {
		t.Fatalf("customer's erasure: %d %s", st, page)
	}
	fwd := call(t, e.controller(t, c), listRR, &pdv1.ListRightsRequestsRequest{ForwardedTo: "customer-42"}, &pdv1.ListRightsRequestsResponse{}).GetRequests()
	if len(fwd) != 1 || fwd[0].GetState() != pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_FORWARDED || fwd[0].GetForwarding().GetControllerId() != "customer-42" ||
		fwd[0].GetVerification().GetMethod() != pdv1.VerificationMethod_VERIFICATION_METHOD_CODE || fwd[0].GetSubjectId() != id ||
		fwd[0].GetKind() != pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ERASURE {
		t.Fatalf("customer-42 sees %v", fwd)
	}
	var forwarded bool
	for _, m := range outbox(t, mailer) {
		forwarded = forwarded || (m.GetRequestId() == fwd[0].GetRequestId() && m.GetKind() == pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_FORWARDED)
	}
	if !forwarded {
		t.Error("no message to the person that the request was forwarded")
	}

	// Bad input: a clear message in the person's language, nothing stored,
	// and no value the person did not type.
	before := len(requestsOf(t, c, id))
	long := strings.Repeat("a", 5001)
	if st, page = ask("invandning", "customer-42", long); st != http.StatusBadRequest || !strings.Contains(page, "Skriv högst 5 000 tecken.") || !strings.Contains(page, `aria-invalid="true"`) {
		t.Errorf("too long a text: %d", st)
	}
	for name, f := range map[string][2]string{
		"unknown kind":      {"atkomst-XQZ", ""},
		"unknown customer":  {"begransning", "customer-XQZ"},
		"the company by id": {"begransning", "company"},
	} {
		st, page := ask(f[0], f[1], "")
		if st != http.StatusBadRequest || !strings.Contains(page, "Vi förstod inte vad du ville begära.") || strings.Contains(page, "XQZ") {
			t.Errorf("%s: %d", name, st)
		}
	}
	sc.do(http.MethodGet, "/sprak/en", nil)
	if _, page = sc.do(http.MethodGet, "/", nil); !strings.Contains(page, "Your requests") || !strings.Contains(page, "Restriction: that we only store the details") ||
		!strings.Contains(page, "Passed on to customer-42, who is responsible for the details") || !strings.Contains(page, "We answer by") {
		t.Errorf("the requests in English: %s", page)
	}
	if _, page = sc.do(http.MethodGet, "/begar", nil); !strings.Contains(page, "Details customer-42 is responsible for") || !strings.Contains(page, "Ask for erasure") {
		t.Errorf("the request page in English: %s", page)
	}
	if _, page = ask("radering", "", ""); !strings.Contains(page, "Yes, send the request for erasure") {
		t.Errorf("the confirmation in English: %s", page)
	}
	if st, page = ask("invandning", "", long); st != http.StatusBadRequest || !strings.Contains(page, "Type at most 5,000 characters.") {
		t.Errorf("too long a text in English: %d", st)
	}
	if st, page = ask("begransning", "", ""); st != http.StatusConflict || !strings.Contains(page, "You already have such a request") {
		t.Errorf("a second restriction in English: %d", st)
	}
	if st, _ = sc.do(http.MethodPost, "/begar", url.Values{"csrf": {"not-the-token"}, "typ": {"begransning"}}); st != http.StatusForbidden {
		t.Errorf("no CSRF token: %d", st)
	}
	if n := len(requestsOf(t, c, id)); n != before {
		t.Errorf("bad input stored requests: %d, want %d", n, before)
	}

	// The letter, in the page's language, as the person.
	resp, err := sc.hc.Get(sc.base + "/brev")
	if err != nil {
		t.Fatal(err)
	}
	letter := readAll(t, resp)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), "attachment") ||
		!strings.Contains(letter, me.GetGivenName()) || !strings.Contains(letter, me.GetEmail()) || !strings.Contains(letter, `lang="en"`) ||
		strings.Contains(letter, "Case  ·") {
		t.Errorf("letter: %d %v %.300s", resp.StatusCode, resp.Header, letter)
	}
	if len(selfEvents(t, e, c, id, "GetOwnAccessLetter")) != 1 {
		t.Error("the letter is not audited as the person's")
	}
	sc.do(http.MethodGet, "/sprak/sv", nil)

	// Staff grant the restriction: the page says so.
	grant(t, c, restriction.GetRequestId())
	if _, page = sc.do(http.MethodGet, "/", nil); !strings.Contains(page, "Beviljad. Vi håller på att göra det du bad om.") {
		t.Error("the granted restriction is not shown as granted")
	}

	// Staff carry the objection out as a restriction while it is weighed.
	objection := requestOfKind(rs, pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_OBJECTION)
	grant(t, c, objection.GetRequestId())
	fulfil(t, c, &pdv1.FulfilRightsRequestRequest{IdempotencyKey: "fulfil-self-objection", RequestId: objection.GetRequestId(),
		Action: &pdv1.FulfilRightsRequestRequest_Restrict{Restrict: &pdv1.RestrictAction{Ground: pdv1.RestrictionGround_RESTRICTION_GROUND_OBJECTION_PENDING}}})
	if s, _ := person(t, c, id); s.GetState() != pdv1.SubjectState_SUBJECT_STATE_RESTRICTED {
		t.Errorf("after the objection the record is %v", s.GetState())
	}
	if _, page = sc.do(http.MethodGet, "/", nil); !strings.Contains(page, "Klar. Vi har gjort det du bad om") || !strings.Contains(page, "sparar vi bara uppgifterna") {
		t.Error("the carried-out objection is not shown as done, or the restriction not shown")
	}

	// Staff carry out the erasure: the record is erased; the page signs the
	// person out, on the server too, and says what happened.
	ctx := selfCtx(t, sc, id)
	grant(t, c, erasure.GetRequestId())
	fulfil(t, c, &pdv1.FulfilRightsRequestRequest{IdempotencyKey: "fulfil-self-erasure", RequestId: erasure.GetRequestId(),
		Action: &pdv1.FulfilRightsRequestRequest_Erase{Erase: &pdv1.EraseAction{Ground: pdv1.ErasureGround_ERASURE_GROUND_NO_LEGITIMATE_REASON}}})
	if s, _ := person(t, c, id); s.GetState() != pdv1.SubjectState_SUBJECT_STATE_ERASED {
		t.Fatalf("after the fulfilment the record is %v", s.GetState())
	}
	st, page = sc.do(http.MethodGet, "/", nil)
	if st != 200 || !strings.Contains(page, "Vi har raderat dina uppgifter, som du bad om. Därför är du nu utloggad") || strings.Contains(page, "<form") ||
		strings.Contains(page, me.GetEmail()) {
		t.Fatalf("after the erasure: %d %s", st, page)
	}
	if _, err := pdv1.NewRightsRequestServiceClient(e.srv.SelfServiceConn()).ListOwnRightsRequests(ctx, &pdv1.ListOwnRightsRequestsRequest{SubjectId: id}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("the session after the erasure: %v, want Unauthenticated", err)
	}
	if _, page = sc.do(http.MethodGet, "/", nil); strings.Contains(page, "raderat") || !strings.Contains(page, `action="/logga-in"`) {
		t.Error("the next visit is not a plain sign-in page")
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// dateWords is a YYYY-MM-DD day as the Swedish page writes it.
func dateWords(day string) string {
	months := []string{"januari", "februari", "mars", "april", "maj", "juni", "juli", "augusti", "september", "oktober", "november", "december"}
	d, err := time.Parse(time.DateOnly, day)
	if err != nil {
		return day
	}
	return fmt.Sprintf("%d %s %d", d.Day(), months[d.Month()-1], d.Year())
}

// The rights requests reach the person's own record only: every id the
// request forms send (the customer, the kind, ids added to the form) and
// every request the page could be made to send on its connection (another
// subject, another's request, a customer holding nothing about the person,
// a staff RPC) is refused, and nothing of another's changes or shows.
func TestSelfServiceRightsConfined(t *testing.T) {
	e := start(t)
	c := e.gc()
	a, b := create(t, c, 284).GetSubjectId(), create(t, c, 285).GetSubjectId()
	personB := testPerson(285)
	// customer-42 holds B, not A; B has a request of its own.
	createAgreement(t, e, c, paReq(e, "pa-conf", "customer-42", supportAndDelivery, allCategories...))
	createFor(t, c, "customer-42", 285)
	reqB := openRequest(t, c, openReq("b-erasure", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ERASURE, 285))
	mailer := e.mailer(t, c)
	sc := newSelfClient(t, e)
	page := sc.signIn(mailer, testPerson(284))
	csrf := selfCSRF.FindStringSubmatch(page)[1]
	secretsOfB := []string{b, personB.GetEmail(), personB.GetGivenName(), personB.GetIdentityNumber(), reqB.GetRequestId(), "customer-42"}
	check := func(what string, body string) {
		t.Helper()
		for _, s := range secretsOfB {
			if strings.Contains(body, s) {
				t.Errorf("%s: B's %q shows", what, s)
			}
		}
	}
	check("overview", page)
	_, form := sc.do(http.MethodGet, "/begar", nil)
	check("request page", form)

	// The forms, with B's ids and the customer that holds B: nothing is
	// opened for B, and nothing goes to customer-42.
	extra := []string{b, reqB.GetRequestId(), personB.GetIdentityNumber(), personB.GetEmail()}
	for _, typ := range []string{"begransning", "invandning", "radering"} {
		for _, id := range extra {
			f := url.Values{"csrf": {csrf}, "typ": {typ}, "hos": {"customer-42"}, "bekraftat": {"ja"}, "subject_id": {id}, "request_id": {id}, "id": {id}}
			st, body := sc.do(http.MethodPost, "/begar", f)
			check("POST /begar to customer-42", body)
			if st != http.StatusBadRequest {
				t.Errorf("%s to a customer holding nothing of A's: %d", typ, st)
			}
			for _, p := range []string{"/brev", "/begar", "/"} {
				_, body := sc.do(http.MethodGet, p+"?"+url.Values{"subject_id": {id}, "request_id": {id}}.Encode(), nil)
				check("GET "+p, body)
			}
		}
	}
	// With ids added, A's own request is A's.
	if st, _ := sc.do(http.MethodPost, "/begar", url.Values{"csrf": {csrf}, "typ": {"invandning"}, "hos": {""}, "subject_id": {b}, "subjectId": {b}, "id": {b}}); st != 200 {
		t.Fatalf("A's objection: %d", st)
	}
	if rs := requestsOf(t, c, a); len(rs) != 1 || rs[0].GetSubjectId() != a {
		t.Errorf("A's requests: %v", rs)
	}
	if rs := requestsOf(t, c, b); len(rs) != 1 || rs[0].GetRequestId() != reqB.GetRequestId() {
		t.Errorf("B's requests changed: %v", rs)
	}
	if fwd := call(t, c, listRR, &pdv1.ListRightsRequestsRequest{ForwardedTo: "customer-42"}, &pdv1.ListRightsRequestsResponse{}).GetRequests(); len(fwd) != 0 {
		t.Errorf("forwarded to customer-42: %v", fwd)
	}

	// What the page never sends, sent on its connection as A.
	ctx := selfCtx(t, sc, a)
	rr := pdv1.NewRightsRequestServiceClient(e.srv.SelfServiceConn())
	self := pdv1.Channel_CHANNEL_SELF_SERVICE
	restriction := pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_RESTRICTION
	for name, tc := range map[string]struct {
		err  error
		want codes.Code
	}{
		"B's request opened": {func() error {
			_, err := rr.OpenOwnRightsRequest(ctx, &pdv1.OpenOwnRightsRequestRequest{IdempotencyKey: "k1", SubjectId: b, Kind: restriction, Channel: self})
			return err
		}(), codes.PermissionDenied},
		"as if by e-mail": {func() error {
			_, err := rr.OpenOwnRightsRequest(ctx, &pdv1.OpenOwnRightsRequestRequest{IdempotencyKey: "k2", SubjectId: a, Kind: restriction, Channel: pdv1.Channel_CHANNEL_EMAIL})
			return err
		}(), codes.PermissionDenied},
		"to a customer holding nothing of A's": {func() error {
			_, err := rr.OpenOwnRightsRequest(ctx, &pdv1.OpenOwnRightsRequestRequest{IdempotencyKey: "k3", SubjectId: a, Kind: restriction, Channel: self, ControllerId: "customer-42"})
			return err
		}(), codes.NotFound},
		"an access request": {func() error {
			_, err := rr.OpenOwnRightsRequest(ctx, &pdv1.OpenOwnRightsRequestRequest{IdempotencyKey: "k4", SubjectId: a, Kind: pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, Channel: self})
			return err
		}(), codes.InvalidArgument},
		"B's requests listed": {func() error {
			_, err := rr.ListOwnRightsRequests(ctx, &pdv1.ListOwnRightsRequestsRequest{SubjectId: b})
			return err
		}(), codes.PermissionDenied},
		"B's controllers": {func() error {
			_, err := rr.ListOwnControllers(ctx, &pdv1.ListOwnControllersRequest{SubjectId: b})
			return err
		}(), codes.PermissionDenied},
		"B's letter": {func() error {
			_, err := rr.GetOwnAccessLetter(ctx, &pdv1.GetOwnAccessLetterRequest{SubjectId: b})
			return err
		}(), codes.PermissionDenied},
		"B's request read": {func() error {
			_, err := rr.GetRightsRequest(ctx, &pdv1.GetRightsRequestRequest{RequestId: reqB.GetRequestId()})
			return err
		}(), codes.PermissionDenied},
		"B's request's letter": {func() error {
			_, err := rr.GetRightsRequestLetter(ctx, &pdv1.GetRightsRequestLetterRequest{RequestId: reqB.GetRequestId()})
			return err
		}(), codes.PermissionDenied},
		"B's request forwarded": {func() error {
			_, err := rr.ForwardRightsRequest(ctx, &pdv1.ForwardRightsRequestRequest{IdempotencyKey: "f", RequestId: reqB.GetRequestId(), ControllerId: "customer-42"})
			return err
		}(), codes.PermissionDenied},
		"the queue about A": {func() error {
			_, err := rr.ListRightsRequests(ctx, &pdv1.ListRightsRequestsRequest{SubjectId: a})
			return err
		}(), codes.PermissionDenied},
	} {
		if status.Code(tc.err) != tc.want {
			t.Errorf("%s: %v, want %v", name, tc.err, tc.want)
		}
	}
	// Staff may not open a request as if the person had (no grant gives
	// it), over gRPC or REST.
	for _, cc := range []caller{c, e.rc()} {
		callErr(t, cc, openOwnRR, &pdv1.OpenOwnRightsRequestRequest{IdempotencyKey: "staff", SubjectId: a, Kind: restriction, Channel: self},
			&pdv1.OpenOwnRightsRequestResponse{}, codes.PermissionDenied)
	}
	if rs := requestsOf(t, c, b); len(rs) != 1 {
		t.Errorf("B's requests: %v", rs)
	}
	if rs := requestsOf(t, c, a); len(rs) != 1 {
		t.Errorf("A's requests after the refusals: %v", rs)
	}
}

// A person signed in through OpenID Connect (the provider the test runs,
// oidc_provider_test.go) asks on the page: the request is verified by
// OIDC, and the audit says so.
func TestSelfServiceRightsAfterOIDCSignIn(t *testing.T) {
	e, provider := startWithOIDC(t)
	c := e.gc()
	id := create(t, c, 288).GetSubjectId()
	provider.login(oidcLogin{number: strings.ReplaceAll(testPerson(288).GetIdentityNumber(), "-", "")})
	v := visitFrom(t, e, "127.0.0.1")
	if got := v.strongSignIn(); got.status != 200 || !strings.Contains(got.body, "Du är inloggad") {
		t.Fatalf("strong sign-in: %d %s", got.status, got.body)
	}
	sc, csrf := v.selfClient, v.csrf(v.send(http.MethodGet, "/", nil).body)
	if st, page := sc.do(http.MethodPost, "/begar", url.Values{"csrf": {csrf}, "typ": {"invandning"}, "hos": {""}}); st != 200 || !strings.Contains(page, "Vi har tagit emot din begäran.") {
		t.Fatalf("objection after an OIDC sign-in: %d %s", st, page)
	}
	rs := requestsOf(t, c, id)
	if len(rs) != 1 || rs[0].GetVerification().GetMethod() != pdv1.VerificationMethod_VERIFICATION_METHOD_OIDC || rs[0].GetVerification().GetVerifiedBy() != id {
		t.Fatalf("stored %v", rs)
	}
	evs := selfEvents(t, e, c, id, "OpenOwnRightsRequest")
	if len(evs) != 1 || !slices.Contains(evs[0].GetFields(), "sign_in:oidc") {
		t.Errorf("audit: %v", evs)
	}
}
