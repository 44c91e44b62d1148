package console_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// TestConsoleRequests drives the rights-request workflow of the console in
// headless Chromium against the real server: the queue, a new request, its
// page at each state, verification with a code taken from the outbox as the
// mailer would, the decision, the fulfilment of an access request and its
// downloads.
func TestConsoleRequests(t *testing.T) {
	browserCtx := newBrowser(t)
	e := start(t)
	shots := screenshots(t)
	support := e.principal(t, "support-rr", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF)
	mailer := e.principal(t, "mailer-rr", pdv1.PrincipalKind_PRINCIPAL_KIND_MAILER)
	requests := pdv1.NewRightsRequestServiceClient(e.conn)

	tolvan := person{identity: "19121212-1212", given: "Tolvan", family: "Tolvansson", email: "tolvan@example.se", phone: "070-123 45 67"}
	sen := person{identity: identityNumber("19800101", 7), given: "Vilma", family: "Väntesson", email: "vilma@example.se", phone: "070-123 45 67"}
	const stranger = "okand.person@example.se"
	everyone := append(append(tolvan.personal(), sen.personal()...), stranger, strings.ReplaceAll(stranger, "@", "%40"))
	sub := e.createSubject(t, support, tolvan)
	e.createSubject(t, support, sen)

	// Requests already in the queue: one overdue, one due in three days.
	// The clock is 2026-11-27 11:00 in Sweden.
	open := func(key string, kind pdv1.RightsRequestKind, claimed *pdv1.ClaimedIdentity, received time.Time) *pdv1.RightsRequest {
		t.Helper()
		res, err := requests.OpenRightsRequest(as(support), &pdv1.OpenRightsRequestRequest{IdempotencyKey: key, ControllerId: "company",
			Kind: kind, Channel: pdv1.Channel_CHANNEL_LETTER, ClaimedIdentity: claimed, ReceiveTime: timestamppb.New(received), Reference: "brev-" + key})
		if err != nil {
			t.Fatalf("OpenRightsRequest %s: %v", key, err)
		}
		return res.GetRequest()
	}
	late := open("late", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ERASURE,
		&pdv1.ClaimedIdentity{Key: &pdv1.ClaimedIdentity_IdentityNumber{IdentityNumber: sen.identity}}, e.clock.Now().Add(-40*24*time.Hour))
	soon := open("soon", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_RECTIFICATION,
		&pdv1.ClaimedIdentity{Key: &pdv1.ClaimedIdentity_Email{Email: stranger}}, e.clock.Now().Add(-27*24*time.Hour))
	if !late.GetOverdue() || late.GetDueDate() != "2026-11-18" || soon.GetDueDate() != "2026-11-30" {
		t.Fatalf("set-up: late due %s (overdue %v), soon due %s", late.GetDueDate(), late.GetOverdue(), soon.GetDueDate())
	}

	signIn := func(tb *tab) {
		t.Helper()
		tb.navigate("/console/sign-in")
		tb.do(chromedp.SetValue(chromedp.ID("principal_id"), "support-rr"))
		if code := tb.submit(chromedp.SendKeys(chromedp.ID("token"), support+"\r")); code != http.StatusOK || tb.path() != "/console/find" {
			t.Fatalf("sign-in: HTTP %d at %s", code, tb.path())
		}
	}
	get := func(id string) *pdv1.RightsRequest {
		t.Helper()
		res, err := requests.GetRightsRequest(as(support), &pdv1.GetRightsRequestRequest{RequestId: id})
		if err != nil {
			t.Fatalf("GetRightsRequest: %v", err)
		}
		return res.GetRequest()
	}

	t.Run("Journey", func(t *testing.T) {
		tb := newTab(t, browserCtx, e.base)
		signIn(tb)

		// The queue is in the navigation; it lists by due date, the
		// overdue and nearly due marked in words.
		if code := tb.submit(chromedp.Click(chromedp.CSS(`nav a[href="/console/requests"]`))); code != http.StatusOK || tb.path() != "/console/requests" {
			t.Fatalf("the queue: HTTP %d at %s", code, tb.path())
		}
		if cur := tb.text(`nav a[aria-current="page"]`); cur != "Förfrågningar" {
			t.Errorf("the navigation marks %q as current", cur)
		}
		rows := eval[[]string](tb, `Array.from(document.querySelectorAll(".queue tbody tr")).map(r => r.innerText)`)
		if len(rows) != 2 || !strings.Contains(rows[0], caseOf(late)) || !strings.Contains(rows[1], caseOf(soon)) {
			t.Fatalf("the queue shows %q: want %s, then %s", rows, caseOf(late), caseOf(soon))
		}
		if b := tb.text(".queue tr.overdue .badge-overdue"); !strings.Contains(b, "Försenad sedan 9 dagar") {
			t.Errorf("the overdue request's mark says %q", b)
		}
		if b := tb.text(".queue tr.soon .badge-soon"); b != "3 dagar kvar" {
			t.Errorf("the nearly due request's mark says %q", b)
		}
		if s := tb.text(".summary"); !strings.Contains(s, "1 försenad") || !strings.Contains(s, "1 med sista svarsdag inom 7 dagar") {
			t.Errorf("the queue's summary says %q", s)
		}
		tb.checkPage(everyone)

		// Open a new request, with the keyboard's Enter on the last field.
		if code := tb.submit(chromedp.Click(chromedp.CSS(`a[href="/console/requests/new"]`))); code != http.StatusOK {
			t.Fatalf("the new request form: HTTP %d", code)
		}
		if v := eval[string](tb, `document.getElementById("open-receive_time").value`); v != "2026-11-27T11:00" {
			t.Errorf("the form suggests it came in at %q, want now in Swedish time", v)
		}
		tb.do(chromedp.SetValue(chromedp.ID("open-kind"), "RIGHTS_REQUEST_KIND_ACCESS"),
			chromedp.SetValue(chromedp.ID("open-channel"), "CHANNEL_EMAIL"),
			chromedp.SendKeys(chromedp.ID("open-claimed"), "19121212-1213"),
			chromedp.SendKeys(chromedp.ID("open-text"), "Jag vill veta vad ni har om mig."),
			chromedp.SendKeys(chromedp.ID("open-reference"), "ärende-5001"))
		tb.checkPage(everyone)
		// A mistyped identity number is refused naming the field, and the
		// form keeps what was written.
		if code := tb.submit(chromedp.SendKeys(chromedp.ID("open-reply_email"), "\r")); code != http.StatusBadRequest {
			t.Errorf("a bad identity number: HTTP %d, want 400", code)
		}
		if msg := tb.text("#open-claimed-error"); !strings.Contains(msg, "Personnumret har fel kontrollsiffra") {
			t.Errorf("the claimed identity's error says %q", msg)
		}
		if v := eval[string](tb, `document.getElementById("open-text").value`); v != "Jag vill veta vad ni har om mig." {
			t.Errorf("the refused form lost the text: %q", v)
		}
		if n := len(list(t, requests, support)); n != 2 {
			t.Errorf("a refused form opened a request: %d in the queue", n)
		}
		tb.do(chromedp.SetValue(chromedp.ID("open-claimed"), tolvan.identity))
		tb.shot(shots, "requests-2-new")
		if code := tb.submit(chromedp.Click(chromedp.CSS("#open-form button[type=submit]"))); code != http.StatusOK {
			t.Fatalf("open: HTTP %d: %s", code, tb.text("main"))
		}
		id, ok := strings.CutPrefix(strings.Split(tb.path(), "?")[0], "/console/requests/")
		if !ok || id == "" {
			t.Fatalf("opening led to %s", tb.path())
		}
		if n := tb.text(".notice"); !strings.Contains(n, "Förfrågan är registrerad") {
			t.Errorf("after opening, the notice says %q", n)
		}
		r := get(id)
		if r.GetSubjectId() != sub.GetSubjectId() || r.GetKind() != pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS ||
			r.GetChannel() != pdv1.Channel_CHANNEL_EMAIL || r.GetClaimedIdentity().GetIdentityNumber() != "191212121212" ||
			r.GetText() != "Jag vill veta vad ni har om mig." || r.GetReference() != "ärende-5001" || r.GetDueDate() != "2026-12-27" ||
			!r.GetReceiveTime().AsTime().Equal(e.clock.Now()) {
			t.Errorf("the request stored: %v", r)
		}

		// It is in the queue, last by due date; open it from there.
		tb.navigate("/console/requests")
		rows = eval[[]string](tb, `Array.from(document.querySelectorAll(".queue tbody tr")).map(r => r.innerText)`)
		if len(rows) != 3 || !strings.Contains(rows[2], caseOf(r)) || strings.Contains(rows[2], "kvar") || strings.Contains(rows[2], "Försenad") {
			t.Fatalf("the queue shows %q", rows)
		}
		tb.shot(shots, "requests-1-queue")
		if code := tb.submit(chromedp.Click(chromedp.CSS(fmt.Sprintf(`.queue a[href="/console/requests/%s"]`, id)))); code != http.StatusOK || tb.path() != "/console/requests/"+id {
			t.Fatalf("opened from the queue: HTTP %d at %s", code, tb.path())
		}
		page := tb.text("main")
		for _, want := range []string{"Tillgång (registerutdrag)", "Ärende " + caseOf(r), "2026-12-27", "Mottagen, identiteten inte styrkt", tolvan.identity,
			"Jag vill veta vad ni har om mig.", "ärende-5001"} {
			if !strings.Contains(page, want) {
				t.Errorf("the request's page lacks %q", want)
			}
		}
		if m := tb.text(".missing"); !strings.Contains(m, "identitet är inte styrkt") || !strings.Contains(m, "Inget beslut") {
			t.Errorf("what is missing: %q", m)
		}
		if s := tb.text(".steps tbody"); !strings.Contains(s, "Registrerad") || !strings.Contains(s, "support-rr") {
			t.Errorf("the steps: %q", s)
		}
		tb.checkPage(everyone)
		tb.shot(shots, "requests-3-received")

		// To the subject's page and back.
		if code := tb.submit(chromedp.Click(chromedp.CSS(".facts a"))); code != http.StatusOK || !strings.HasPrefix(tb.path(), "/console/subjects/"+sub.GetSubjectId()) {
			t.Fatalf("the subject's page: HTTP %d at %s", code, tb.path())
		}
		if h := tb.text("h1"); h != "Tolvan Tolvansson" {
			t.Errorf("the subject's page is of %q", h)
		}
		if code := tb.submit(chromedp.Click(chromedp.CSS(".back a"))); code != http.StatusOK || tb.path() != "/console/requests/"+id {
			t.Fatalf("back from the subject: HTTP %d at %s", code, tb.path())
		}

		// Send a code: it goes to the e-mail on file.
		tb.do(chromedp.Click(chromedp.CSS("#send-code summary")))
		if code := tb.submit(chromedp.Click(chromedp.CSS("#send-code button[type=submit]"))); code != http.StatusOK {
			t.Fatalf("send a code: HTTP %d: %s", code, tb.text("main"))
		}
		if n := tb.text(".notice"); !strings.Contains(n, "Koden är skickad") {
			t.Errorf("after sending, the notice says %q", n)
		}
		code, to := e.takeCode(t, mailer, id)
		if to != tolvan.email {
			t.Errorf("the code went to %q, want the e-mail on file", to)
		}
		if s := tb.text("#handling"); !strings.Contains(s, "5 försök kvar") {
			t.Errorf("the record of the code says %q", s)
		}

		// A wrong code is refused in words, naming the field and the tries left.
		wrong := fmt.Sprintf("%08d", (atoi(code)+1)%100000000)
		tb.do(chromedp.SendKeys(chromedp.ID("confirm-code-code"), wrong))
		if status := tb.submit(chromedp.Click(chromedp.CSS("#confirm-code button[type=submit]"))); status != http.StatusBadRequest {
			t.Errorf("a wrong code: HTTP %d, want 400", status)
		}
		if p := tb.text("#problem"); !strings.Contains(p, "Koden stämmer inte med koden som skickades (4 försök kvar)") {
			t.Errorf("the refusal of a wrong code says %q", p)
		}
		if p := tb.text("#confirm-code-code-error"); !strings.Contains(p, "4 försök kvar") {
			t.Errorf("the code field's error says %q", p)
		}
		if get(id).GetVerification() != nil {
			t.Fatal("a wrong code verified the requester")
		}
		tb.checkPage(everyone)
		tb.shot(shots, "requests-4-wrong-code")

		// The right one, as people read it out, with a space.
		tb.do(chromedp.SetValue(chromedp.ID("confirm-code-code"), code[:4]+" "+code[4:]))
		if status := tb.submit(chromedp.Click(chromedp.CSS("#confirm-code button[type=submit]"))); status != http.StatusOK {
			t.Fatalf("the right code: HTTP %d: %s", status, tb.text("main"))
		}
		if n := tb.text(".notice"); n != "Identiteten är styrkt." {
			t.Errorf("after the code, the notice says %q", n)
		}
		if v := get(id).GetVerification(); v.GetMethod() != pdv1.VerificationMethod_VERIFICATION_METHOD_CODE || v.GetVerifiedBy() != "support-rr" {
			t.Errorf("verification %v", v)
		}
		tb.shot(shots, "requests-5-verified")

		// Decide: a grant with a refusal's reason is refused naming the
		// field; then the grant.
		tb.do(chromedp.Click(chromedp.CSS("#decide summary")),
			chromedp.SetValue(chromedp.ID("decide-outcome"), "DECISION_OUTCOME_GRANT"),
			chromedp.SetValue(chromedp.ID("decide-reason"), "DECISION_REASON_EXCESSIVE"))
		tb.shot(shots, "requests-6-decide-form")
		if status := tb.submit(chromedp.Click(chromedp.CSS("#decide button[type=submit]"))); status != http.StatusBadRequest {
			t.Errorf("a grant with a refusal's reason: HTTP %d, want 400", status)
		}
		if p := tb.text("#decide-reason-error"); !strings.Contains(p, "Skäl ska vara ”Rätten gäller”") {
			t.Errorf("the reason's error says %q", p)
		}
		tb.do(chromedp.SetValue(chromedp.ID("decide-reason"), "DECISION_REASON_RIGHT_APPLIES"))
		if status := tb.submit(chromedp.Click(chromedp.CSS("#decide button[type=submit]"))); status != http.StatusOK {
			t.Fatalf("grant: HTTP %d: %s", status, tb.text("main"))
		}
		if d := get(id).GetDecision(); d.GetOutcome() != pdv1.DecisionOutcome_DECISION_OUTCOME_GRANT || d.GetDecidedBy() != "support-rr" {
			t.Errorf("decision %v", d)
		}
		if s := tb.text(".facts"); !strings.Contains(s, "Beviljad, inte utförd") {
			t.Errorf("after the grant, the facts say %q", s)
		}
		tb.checkPage(everyone)
		tb.shot(shots, "requests-7-granted")

		// Fulfil: the reply is made ready, and can be downloaded.
		if status := tb.submit(chromedp.Click(chromedp.CSS("#fulfil button[type=submit]"))); status != http.StatusOK {
			t.Fatalf("fulfil: HTTP %d: %s", status, tb.text("main"))
		}
		if n := tb.text(".notice"); !strings.Contains(n, "Förfrågan är utförd") {
			t.Errorf("after fulfilling, the notice says %q", n)
		}
		if got := get(id); got.GetState() != pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_FULFILLED || len(got.GetMissing()) != 0 {
			t.Errorf("after fulfilling: %v, missing %q", got.GetState(), got.GetMissing())
		}
		if m := tb.text("#h-missing + p"); !strings.Contains(m, "besvarad") {
			t.Errorf("what is missing once answered: %q", m)
		}
		tb.checkPage(everyone)
		tb.shot(shots, "requests-8-fulfilled")

		dir := t.TempDir()
		name, letter := tb.download("#letter-sv", dir)
		if name != "svar-"+caseOf(r)+"-sv.html" {
			t.Errorf("the letter is saved as %q", name)
		}
		for _, want := range []string{`lang="sv"`, "Ändamål och rättslig grund", "Kategorier av personuppgifter", "Mottagare", "Hur länge uppgifterna sparas",
			"Varifrån uppgifterna kommer", "Dina rättigheter", "Rätt att klaga", "Integritetsskyddsmyndigheten", "Automatiserat beslutsfattande",
			"Överföring till tredje land", "Dina uppgifter", tolvan.given, tolvan.family, tolvan.email, tolvan.identity} {
			if !strings.Contains(string(letter), want) {
				t.Errorf("the Swedish letter lacks %q", want)
			}
		}
		if _, en := tb.download("#letter-en", dir); !strings.Contains(string(en), "Purposes and legal basis") || !strings.Contains(string(en), tolvan.family) {
			t.Errorf("the English letter: %.200q", en)
		}
		name, export := tb.download("#export", dir)
		if name != "export-"+caseOf(r)+".json" {
			t.Errorf("the export is saved as %q", name)
		}
		var reply pdv1.GetRightsRequestReplyResponse
		if err := protojson.Unmarshal(export, &reply); err != nil {
			t.Fatalf("the export is not the API's JSON: %v", err)
		}
		if reply.GetRequestId() != id || !reply.GetDataHeld() || reply.GetData().GetSubject().GetPerson().GetFamilyName() != tolvan.family ||
			len(reply.GetInformation().GetPurposes()) == 0 || reply.GetInformation().GetComplaint() == "" {
			t.Errorf("the export: %.300v", &reply)
		}
		if !strings.Contains(string(export), `"given_name": "Tolvan"`) {
			t.Error("the export does not use the API's field names")
		}
		// Files to save, never kept in a cache.
		for _, path := range []string{"/console/requests/" + id + "/letter/sv", "/console/requests/" + id + "/export"} {
			h, err := chromedp.Run(tb.ctx, chromedp.Evaluate[map[string]string](fmt.Sprintf(`fetch(%q).then(r => ({status: String(r.status), cd: r.headers.get("Content-Disposition"), cc: r.headers.get("Cache-Control")}))`, path), chromedp.EvalAwaitPromise))
			if err != nil {
				t.Fatalf("fetch %s: %v", path, err)
			}
			if h["status"] != "200" || !strings.HasPrefix(h["cd"], "attachment;") || h["cc"] != "no-store" {
				t.Errorf("GET %s: %v", path, h)
			}
		}
		// Every step names the signed-in principal.
		for _, st := range get(id).GetSteps() {
			if st.GetPerformedBy() != "support-rr" {
				t.Errorf("step %s by %q", st.GetStep(), st.GetPerformedBy())
			}
		}
		tb.checkTrail(everyone)
	})

	t.Run("Filters", func(t *testing.T) {
		tb := newTab(t, browserCtx, e.base)
		signIn(tb)
		tb.navigate("/console/requests")
		tb.do(chromedp.SetValue(chromedp.ID("filter-status"), "alla"),
			chromedp.SetValue(chromedp.ID("filter-kind"), "RIGHTS_REQUEST_KIND_RECTIFICATION"))
		if code := tb.submit(chromedp.Click(chromedp.CSS(".filters button"))); code != http.StatusOK {
			t.Fatalf("filter: HTTP %d", code)
		}
		if p := tb.path(); p != "/console/requests?status=alla&slag=RIGHTS_REQUEST_KIND_RECTIFICATION" {
			t.Errorf("the filter's URL is %s", p)
		}
		if rows := eval[[]string](tb, `Array.from(document.querySelectorAll(".queue tbody tr")).map(r => r.innerText)`); len(rows) != 1 || !strings.Contains(rows[0], caseOf(soon)) {
			t.Errorf("rectifications: %q", rows)
		}
		tb.navigate("/console/requests?forsenade=ja")
		if rows := eval[[]string](tb, `Array.from(document.querySelectorAll(".queue tbody tr")).map(r => r.innerText)`); len(rows) != 1 || !strings.Contains(rows[0], caseOf(late)) {
			t.Errorf("overdue only: %q", rows)
		}
		// Finished requests leave the default queue.
		tb.navigate("/console/requests?status=RIGHTS_REQUEST_STATE_FULFILLED")
		if rows := eval[[]string](tb, `Array.from(document.querySelectorAll(".queue tbody tr")).map(r => r.innerText)`); len(rows) != 1 || !strings.Contains(rows[0], "Utförd och besvarad") {
			t.Errorf("fulfilled: %q", rows)
		}
		tb.navigate("/console/requests")
		if n := eval[int](tb, `document.querySelectorAll(".queue tbody tr").length`); n != 2 {
			t.Errorf("the open queue has %d rows after one was answered, want 2", n)
		}

		// At 200 % zoom (a 1280 pixel window shows 640 CSS pixels) the queue
		// reflows: nothing wider than the window.
		tb.do(func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			_, err := cdp.Call(ctx, tg, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{Width: 640, Height: 450, DeviceScaleFactor: 2})
			return chromedp.Void{}, err
		})
		if w := eval[[]int](tb, `[document.documentElement.scrollWidth, document.documentElement.clientWidth]`); w[0] > w[1] {
			t.Errorf("at 200 %% zoom the queue is %d CSS pixels wide in a window of %d", w[0], w[1])
		}
		tb.shot(shots, "requests-10-queue-200-percent")
		tb.navigate("/console/requests/" + late.GetRequestId())
		if w := eval[[]int](tb, `[document.documentElement.scrollWidth, document.documentElement.clientWidth]`); w[0] > w[1] {
			t.Errorf("at 200 %% zoom the request's page is %d CSS pixels wide in a window of %d", w[0], w[1])
		}
		tb.shot(shots, "requests-11-request-200-percent")
		tb.checkTrail(everyone)
	})

	t.Run("CSRF", func(t *testing.T) {
		r := open("csrf", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS,
			&pdv1.ClaimedIdentity{Key: &pdv1.ClaimedIdentity_Email{Email: tolvan.email}}, e.clock.Now())
		tb := newTab(t, browserCtx, e.base)
		signIn(tb)
		before := len(list(t, requests, support))

		// The new request form without its token: refused, nothing opened.
		tb.navigate("/console/requests/new")
		tb.do(chromedp.SetValue(chromedp.ID("open-kind"), "RIGHTS_REQUEST_KIND_ERASURE"),
			chromedp.SetValue(chromedp.ID("open-channel"), "CHANNEL_PHONE"),
			chromedp.SetValue(chromedp.ID("open-claimed"), tolvan.identity))
		code := tb.submit(chromedp.Evaluate[chromedp.Void](`(() => {
			const f = document.getElementById("open-form");
			f.querySelector("input[name=csrf]").remove();
			f.submit();
		})()`))
		if code != http.StatusForbidden || !strings.Contains(tb.text("#problem"), "ingenting gjordes") {
			t.Errorf("a new request without the CSRF token: HTTP %d", code)
		}
		if n := len(list(t, requests, support)); n != before {
			t.Errorf("a refused form opened a request: %d requests, want %d", n, before)
		}

		// Each step's form, without the token or with a wrong one.
		tb.navigate("/console/requests/" + r.GetRequestId())
		form := tb.formValues("#attest form")
		steps := len(get(r.GetRequestId()).GetSteps())
		for _, step := range []string{"send-code", "confirm-code", "attest", "decide", "extend", "forward", "fulfil"} {
			v := cloneValues(form)
			v.Set("code", "12345678")
			v.Set("method", "VERIFICATION_METHOD_BANKID")
			v.Set("reference", "bankid-1")
			v.Set("outcome", "DECISION_OUTCOME_REFUSE")
			v.Set("reason", "DECISION_REASON_EXCESSIVE")
			v.Set("explanation", "Upprepad.")
			v.Set("months", "1")
			v.Set("action", "access")
			for _, token := range []string{"", "AAAA" + form.Get("csrf")[4:]} {
				if token == "" {
					v.Del("csrf")
				} else {
					v.Set("csrf", token)
				}
				if status, _ := tb.post("/console/requests/"+r.GetRequestId()+"/"+step, v, map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": e.base}); status != http.StatusForbidden {
					t.Errorf("%s with CSRF token %q: HTTP %d, want 403", step, token, status)
				}
			}
		}
		if got := get(r.GetRequestId()); len(got.GetSteps()) != steps || got.GetState() != pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_RECEIVED {
			t.Errorf("after refused POSTs: %d steps, %v", len(got.GetSteps()), got.GetState())
		}
		// The same form with its token acts: what was refused was the token.
		form.Set("method", "VERIFICATION_METHOD_BANKID")
		form.Set("reference", "bankid-1")
		if status, _ := tb.post("/console/requests/"+r.GetRequestId()+"/attest", form, map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": e.base}); status != http.StatusSeeOther {
			t.Errorf("the attestation with its token: HTTP %d, want 303", status)
		}
		if got := get(r.GetRequestId()); got.GetState() != pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_VERIFIED {
			t.Errorf("after the accepted POST: %v", got.GetState())
		}
		tb.checkTrail(everyone)
	})

	t.Run("FulfilEachKind", func(t *testing.T) {
		p := person{identity: identityNumber("19800101", 8), given: "Elsa", family: "Exempelsson", email: "elsa@example.se", phone: "070-123 45 67"}
		everyone = append(everyone, append(p.personal(), "Exempelsdotter")...)
		s := e.createSubject(t, support, p)
		consent, err := pdv1.NewConsentServiceClient(e.conn).RecordConsent(as(support), &pdv1.RecordConsentRequest{IdempotencyKey: "consent-elsa",
			SubjectId: s.GetSubjectId(), Purpose: pdv1.ConsentPurpose_CONSENT_PURPOSE_DIRECT_MARKETING, GiveTime: timestamppb.New(e.clock.Now().Add(-time.Hour)),
			Channel: pdv1.Channel_CHANNEL_PORTAL, WordingReference: "marknadsforing-v2"})
		if err != nil {
			t.Fatalf("RecordConsent: %v", err)
		}
		// granted is a request of kind, verified and granted.
		granted := func(key string, kind pdv1.RightsRequestKind) string {
			t.Helper()
			r := open(key, kind, &pdv1.ClaimedIdentity{Key: &pdv1.ClaimedIdentity_IdentityNumber{IdentityNumber: p.identity}}, e.clock.Now())
			if _, err := requests.AttestIdentity(as(support), &pdv1.AttestIdentityRequest{IdempotencyKey: "attest-" + key, RequestId: r.GetRequestId(),
				Method: pdv1.VerificationMethod_VERIFICATION_METHOD_BANKID, Reference: "bankid-" + key}); err != nil {
				t.Fatalf("AttestIdentity: %v", err)
			}
			if _, err := requests.DecideRightsRequest(as(support), &pdv1.DecideRightsRequestRequest{IdempotencyKey: "grant-" + key, RequestId: r.GetRequestId(),
				Outcome: pdv1.DecisionOutcome_DECISION_OUTCOME_GRANT, Reason: pdv1.DecisionReason_DECISION_REASON_RIGHT_APPLIES}); err != nil {
				t.Fatalf("DecideRightsRequest: %v", err)
			}
			return r.GetRequestId()
		}
		subject := func() *pdv1.AccessSubjectResponse { t.Helper(); return e.access(t, support, s.GetSubjectId()) }
		tb := newTab(t, browserCtx, e.base)
		signIn(tb)
		fulfil := func(id string, fill ...chromedp.Action[chromedp.Void]) {
			t.Helper()
			tb.navigate("/console/requests/" + id)
			tb.do(fill...)
			if status := tb.submit(chromedp.Click(chromedp.CSS("#fulfil button[type=submit]"))); status != http.StatusOK {
				t.Fatalf("fulfil: HTTP %d: %s", status, tb.text("main"))
			}
			if got := get(id); got.GetState() != pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_FULFILLED || got.GetFulfilment().GetFulfilledBy() != "support-rr" {
				t.Errorf("after fulfilling: %v, %v", got.GetState(), got.GetFulfilment())
			}
		}

		// Rectification: the fields filled in, and only those.
		fulfil(granted("rectify", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_RECTIFICATION),
			chromedp.SetValue(chromedp.ID("fulfil-family_name"), "Exempelsdotter"))
		if got := subject().GetSubject().GetPerson(); got.GetFamilyName() != "Exempelsdotter" || got.GetGivenName() != p.given || got.GetEmail() != p.email {
			t.Errorf("after the rectification: %v", got)
		}
		if h := tb.text("#handling"); !strings.Contains(h, "Rättat: efternamn.") {
			t.Errorf("the rectification's result says %q", h)
		}

		// Consent withdrawal: the consent chosen among the subject's own.
		id := granted("withdraw", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_CONSENT_WITHDRAWAL)
		tb.navigate("/console/requests/" + id)
		if o := eval[string](tb, `document.querySelector('#fulfil-consent_id option[value="`+consent.GetConsent().GetConsentId()+`"]').textContent`); !strings.Contains(o, "Direktmarknadsföring") || !strings.Contains(o, "marknadsforing-v2") {
			t.Errorf("the consent is offered as %q", o)
		}
		fulfil(id, chromedp.SetValue(chromedp.ID("fulfil-consent_id"), consent.GetConsent().GetConsentId()))
		if c := subject().GetConsents(); len(c) != 1 || c[0].GetWithdrawTime() == nil {
			t.Errorf("after the withdrawal: %v", c)
		}

		// Restriction, with its ground.
		fulfil(granted("restrict", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_RESTRICTION),
			chromedp.SetValue(chromedp.ID("fulfil-ground"), "RESTRICTION_GROUND_ACCURACY_CONTESTED"))
		if st := subject().GetSubject().GetState(); st != pdv1.SubjectState_SUBJECT_STATE_RESTRICTED {
			t.Errorf("after the restriction: %v", st)
		}
		if h := tb.text("#handling"); !strings.Contains(h, "Behandlingen är begränsad. Grund: Den registrerade bestrider") {
			t.Errorf("the restriction's result says %q", h)
		}
		tb.checkPage(everyone)
		tb.checkTrail(everyone)
	})

	// A request's page lists the subject's other requests, to see whether
	// it repeats them (Art. 12(5)), read as the signed-in principal.
	t.Run("EarlierRequests", func(t *testing.T) {
		p := person{identity: identityNumber("19800101", 9), given: "Rut", family: "Repetersson", email: "rut@example.se", phone: "070-123 45 67"}
		everyone = append(everyone, p.personal()...)
		s := e.createSubject(t, support, p)
		claim := &pdv1.ClaimedIdentity{Key: &pdv1.ClaimedIdentity_IdentityNumber{IdentityNumber: p.identity}}
		// An erasure refused as manifestly unfounded, an access request
		// answered, and a new access request.
		refused := open("rut-erase", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ERASURE, claim, e.clock.Now().Add(-70*24*time.Hour))
		if _, err := requests.DecideRightsRequest(as(support), &pdv1.DecideRightsRequestRequest{IdempotencyKey: "refuse-rut", RequestId: refused.GetRequestId(),
			Outcome: pdv1.DecisionOutcome_DECISION_OUTCOME_REFUSE, Reason: pdv1.DecisionReason_DECISION_REASON_MANIFESTLY_UNFOUNDED,
			Explanation: "Det finns inget avtal att radera."}); err != nil {
			t.Fatalf("DecideRightsRequest: %v", err)
		}
		answered := open("rut-access", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, claim, e.clock.Now().Add(-40*24*time.Hour))
		if _, err := requests.AttestIdentity(as(support), &pdv1.AttestIdentityRequest{IdempotencyKey: "attest-rut", RequestId: answered.GetRequestId(),
			Method: pdv1.VerificationMethod_VERIFICATION_METHOD_BANKID, Reference: "bankid-rut"}); err != nil {
			t.Fatalf("AttestIdentity: %v", err)
		}
		if _, err := requests.DecideRightsRequest(as(support), &pdv1.DecideRightsRequestRequest{IdempotencyKey: "grant-rut", RequestId: answered.GetRequestId(),
			Outcome: pdv1.DecisionOutcome_DECISION_OUTCOME_GRANT, Reason: pdv1.DecisionReason_DECISION_REASON_RIGHT_APPLIES}); err != nil {
			t.Fatalf("DecideRightsRequest: %v", err)
		}
		if _, err := requests.FulfilRightsRequest(as(support), &pdv1.FulfilRightsRequestRequest{IdempotencyKey: "fulfil-rut", RequestId: answered.GetRequestId(),
			Action: &pdv1.FulfilRightsRequestRequest_Access{Access: &pdv1.AccessAction{}}}); err != nil {
			t.Fatalf("FulfilRightsRequest: %v", err)
		}
		current := open("rut-again", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, claim, e.clock.Now().Add(-time.Hour))
		if st := get(refused.GetRequestId()).GetState(); st != pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_REFUSED {
			t.Fatalf("set-up: the refused request is %v", st)
		}
		lists := func() int {
			t.Helper()
			res, err := pdv1.NewAuditServiceClient(e.conn).ListAuditEvents(as(e.operator), &pdv1.ListAuditEventsRequest{SubjectId: s.GetSubjectId(), PageSize: 100})
			if err != nil {
				t.Fatalf("ListAuditEvents: %v", err)
			}
			n := 0
			for _, ev := range res.GetEvents() {
				if ev.GetRpc() == pdv1.RightsRequestService_ListRightsRequests_FullMethodName && ev.GetPrincipalId() == "support-rr" && ev.GetOutcome() == "OK" {
					n++
				}
			}
			return n
		}
		before := lists()

		tb := newTab(t, browserCtx, e.base)
		signIn(tb)
		// earlier is what the page shows of the subject's other requests:
		// each row's text and link.
		earlier := func() (rows, links []string) {
			t.Helper()
			rows = eval[[]string](tb, `Array.from(document.querySelectorAll("#earlier tbody tr")).map(r => r.innerText)`)
			links = eval[[]string](tb, `Array.from(document.querySelectorAll("#earlier tbody a")).map(a => a.getAttribute("href"))`)
			return rows, links
		}
		path := func(r *pdv1.RightsRequest) string { return "/console/requests/" + r.GetRequestId() }

		tb.navigate(path(current))
		if h := tb.text("#h-earlier"); h != "Personens tidigare förfrågningar" {
			t.Errorf("the section's heading is %q", h)
		}
		rows, links := earlier()
		if len(rows) != 2 || len(links) != 2 || links[0] != path(answered) || links[1] != path(refused) {
			t.Fatalf("the new request's page lists %q, linking %q: want %s, then %s", rows, links, caseOf(answered), caseOf(refused))
		}
		for i, want := range [][]string{
			{caseOf(answered), "Tillgång (registerutdrag)", "Utförd och besvarad", "2026-10-18", answered.GetDueDate(), "2026-11-27"},
			{caseOf(refused), "Radering", "Avslagen", "2026-09-18", refused.GetDueDate(), "2026-11-27"},
		} {
			for _, w := range want {
				if !strings.Contains(rows[i], w) {
					t.Errorf("row %d %q lacks %q", i+1, rows[i], w)
				}
			}
		}
		if n := eval[int](tb, `document.querySelectorAll("#earlier-more").length`); n != 0 {
			t.Error("the page counts more requests than it lists")
		}
		if after := lists(); after <= before {
			t.Errorf("reading the subject's requests left no ListRightsRequests event by support-rr in the subject's audit trail (%d before, %d after)", before, after)
		}
		tb.checkPage(everyone)
		tb.shot(shots, "requests-12-earlier")

		// The links open the earlier requests, whose pages list the others.
		if code := tb.submit(chromedp.Click(chromedp.CSS(`#earlier a[href="` + path(answered) + `"]`))); code != http.StatusOK || tb.path() != path(answered) {
			t.Fatalf("the answered request's link: HTTP %d at %s", code, tb.path())
		}
		if h := tb.text("h1"); !strings.Contains(h, "Tillgång") || !strings.Contains(h, caseOf(answered)) {
			t.Errorf("the answered request's link opened %q", h)
		}
		if _, links := earlier(); len(links) != 2 || links[0] != path(current) || links[1] != path(refused) {
			t.Errorf("the answered request's page links %q", links)
		}
		if code := tb.submit(chromedp.Click(chromedp.CSS(`#earlier a[href="` + path(refused) + `"]`))); code != http.StatusOK || tb.path() != path(refused) {
			t.Fatalf("the refused request's link: HTTP %d at %s", code, tb.path())
		}
		if h := tb.text("h1"); !strings.Contains(h, "Radering") || !strings.Contains(h, caseOf(refused)) {
			t.Errorf("the refused request's link opened %q", h)
		}
		if _, links := earlier(); len(links) != 2 || links[0] != path(current) || links[1] != path(answered) {
			t.Errorf("the refused request's page links %q", links)
		}
		tb.checkPage(everyone)

		// A subject's only request says so in one line; a request that
		// matched no one has no such section.
		tb.navigate(path(late))
		if got := tb.text("#earlier p"); got != "Inga tidigare förfrågningar från personen." {
			t.Errorf("a subject's only request: %q", got)
		}
		if n := eval[int](tb, `document.querySelectorAll("#earlier table").length`); n != 0 {
			t.Error("a subject's only request has a table of earlier ones")
		}
		tb.checkPage(everyone)
		tb.navigate(path(soon))
		if n := eval[int](tb, `document.querySelectorAll("#earlier").length`); n != 0 {
			t.Error("a request that matched no one lists earlier requests")
		}

		// Of many, the newest ten are listed and the rest counted.
		q := person{identity: identityNumber("19800101", 10), given: "Rune", family: "Återkommer", email: "rune@example.se", phone: "070-123 45 67"}
		everyone = append(everyone, q.personal()...)
		e.createSubject(t, support, q)
		var many []*pdv1.RightsRequest
		for i := range 12 {
			many = append(many, open(fmt.Sprintf("rune-%d", i), pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS,
				&pdv1.ClaimedIdentity{Key: &pdv1.ClaimedIdentity_Email{Email: q.email}}, e.clock.Now().Add(-time.Duration(i+1)*24*time.Hour)))
		}
		tb.navigate(path(many[0]))
		_, links = earlier()
		var want []string
		for _, r := range many[1:11] {
			want = append(want, path(r))
		}
		if !slices.Equal(links, want) {
			t.Errorf("of 11 other requests the page links %q, want the newest ten %q", links, want)
		}
		if m := tb.text("#earlier-more"); m != "Och 1 äldre förfrågan till, som inte visas här." {
			t.Errorf("the rest are counted as %q", m)
		}
		tb.checkPage(everyone)

		// At 200 % zoom the table reflows.
		tb.navigate(path(current))
		tb.do(func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			_, err := cdp.Call(ctx, tg, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{Width: 640, Height: 450, DeviceScaleFactor: 2})
			return chromedp.Void{}, err
		})
		if w := eval[[]int](tb, `[document.documentElement.scrollWidth, document.documentElement.clientWidth]`); w[0] > w[1] {
			t.Errorf("at 200 %% zoom the page is %d CSS pixels wide in a window of %d", w[0], w[1])
		}
		tb.shot(shots, "requests-13-earlier-200-percent")
		tb.checkTrail(everyone)
	})

	// Last: it moves the clock to the end of the day.
	t.Run("ExtendAfterTheFirstMonth", func(t *testing.T) {
		// Received a month ago: today is the last day.
		r := open("last-day", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS,
			&pdv1.ClaimedIdentity{Key: &pdv1.ClaimedIdentity_IdentityNumber{IdentityNumber: tolvan.identity}}, time.Date(2026, 10, 27, 9, 0, 0, 0, time.UTC))
		if r.GetDueDate() != "2026-11-27" {
			t.Fatalf("due %s", r.GetDueDate())
		}
		e.clock.Advance(12*time.Hour + 50*time.Minute) // 23:50 in Sweden
		tb := newTab(t, browserCtx, e.base)
		signIn(tb)
		tb.navigate("/console/requests/" + r.GetRequestId())
		if b := tb.text("#due-banner"); !strings.Contains(b, "sista dagen i dag") {
			t.Errorf("on the last day the banner says %q", b)
		}
		tb.do(chromedp.Click(chromedp.CSS("#extend summary")),
			chromedp.SetValue(chromedp.ID("extend-months"), "2"),
			chromedp.SendKeys(chromedp.ID("extend-reason"), "Begäran är omfattande."))
		e.clock.Advance(15 * time.Minute) // the month has ended
		if status := tb.submit(chromedp.Click(chromedp.CSS("#extend button[type=submit]"))); status != http.StatusConflict {
			t.Errorf("an extension after the first month: HTTP %d, want 409", status)
		}
		if p := tb.text("#problem"); !strings.Contains(p, "bara förlängas under den första månaden, och den gick ut den 2026-11-27") {
			t.Errorf("the refusal says %q", p)
		}
		if b := tb.text("#due-banner"); !strings.Contains(b, "Försenad") {
			t.Errorf("past the due date the banner says %q", b)
		}
		if n := eval[int](tb, `document.querySelectorAll("#extend").length`); n != 0 {
			t.Error("the page still offers an extension")
		}
		if got := get(r.GetRequestId()); got.GetExtension() != nil || got.GetDueDate() != "2026-11-27" {
			t.Errorf("a refused extension changed the request: %v", got.GetExtension())
		}
		tb.checkPage(everyone)
		tb.shot(shots, "requests-9-overdue-extend-refused")
		tb.checkTrail(everyone)
	})

	logs := strings.ToLower(e.logs.String())
	for _, p := range everyone {
		if i := strings.Index(logs, strings.ToLower(p)); i >= 0 {
			t.Errorf("the server's log holds %q: …%s…", p, logs[max(0, i-200):min(len(logs), i+100)])
		}
	}
}

// caseOf is a request's case number as the console shows it.
func caseOf(r *pdv1.RightsRequest) string { return strings.ToUpper(r.GetRequestId()[:8]) }

func atoi(s string) int {
	n := 0
	for _, r := range s {
		n = n*10 + int(r-'0')
	}
	return n
}

// list is the company's whole queue, as token's principal.
func list(t *testing.T, c pdv1.RightsRequestServiceClient, token string) []*pdv1.RightsRequest {
	t.Helper()
	res, err := c.ListRightsRequests(as(token), &pdv1.ListRightsRequestsRequest{ControllerId: "company", PageSize: 100})
	if err != nil {
		t.Fatalf("ListRightsRequests: %v", err)
	}
	return res.GetRequests()
}

// codeInMessage is how the code message writes the code.
var codeInMessage = regexp.MustCompile(`(\d{4}) (\d{4})`)

// takeCode reads the verification code of request id from the outbox, as
// the company's mailer (token's principal) does, and acknowledges it.
func (e *env) takeCode(t *testing.T, token, id string) (code, to string) {
	t.Helper()
	outbox := pdv1.NewRequesterOutboxServiceClient(e.conn)
	var found []*pdv1.OutboxMessage
	for page := ""; ; {
		res, err := outbox.ListOutboxMessages(as(token), &pdv1.ListOutboxMessagesRequest{PageToken: page})
		if err != nil {
			t.Fatalf("ListOutboxMessages: %v", err)
		}
		for _, m := range res.GetMessages() {
			if m.GetRequestId() == id && m.GetKind() == pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_VERIFICATION_CODE {
				found = append(found, m)
			}
		}
		if page = res.GetNextPageToken(); page == "" {
			break
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d code messages for the request in the outbox, want 1", len(found))
	}
	if _, err := outbox.AcknowledgeOutboxMessage(as(token), &pdv1.AcknowledgeOutboxMessageRequest{MessageId: found[0].GetMessageId()}); err != nil {
		t.Fatalf("AcknowledgeOutboxMessage: %v", err)
	}
	g := codeInMessage.FindStringSubmatch(found[0].GetBody())
	if g == nil {
		t.Fatal("no code in the code message")
	}
	return g[1] + g[2], found[0].GetTo()
}

// download clicks the link sel finds and returns the name the browser was
// told to save the file as, and the file.
func (tb *tab) download(sel, dir string) (string, []byte) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	begin := chromedp.Events(ctx, browser.DownloadWillBegin)
	progress := chromedp.Events(ctx, browser.DownloadProgress)
	events := true
	if _, err := chromedp.Call(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, BrowserContextID: chromedp.FromContext(tb.ctx).BrowserContextID,
		DownloadPath: dir, EventsEnabled: &events,
	}); err != nil {
		tb.t.Fatalf("download behaviour: %v", err)
	}
	tb.do(chromedp.Click(chromedp.CSS(sel)))
	var name string
	for ev, err := range begin {
		if err != nil {
			tb.t.Fatalf("download of %s: %v", sel, err)
		}
		name = ev.SuggestedFilename
		break
	}
	for ev, err := range progress {
		if err != nil {
			tb.t.Fatalf("download of %s: %v", sel, err)
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			tb.t.Fatalf("download of %s canceled", sel)
		}
		if ev.State != browser.DownloadProgressStateCompleted {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, ev.GUID))
		if err != nil {
			tb.t.Fatalf("downloaded %s: %v", sel, err)
		}
		return name, b
	}
	tb.t.Fatalf("download of %s did not complete", sel)
	return "", nil
}
