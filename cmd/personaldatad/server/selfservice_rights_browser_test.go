package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// signInByClicks signs person p in on tb with the code the mailer reads
// from the outbox, clicking the buttons; the status of the overview.
func (tb *selfTab) signInByClicks(mailer caller, p *pdv1.Person) int64 {
	tb.t.Helper()
	tb.navigate("/")
	tb.do(chromedp.SendKeys(chromedp.ID("identitet"), p.GetIdentityNumber()))
	tb.submit(chromedp.Click(chromedp.CSS(`form[action="/logga-in"] button`)))
	tb.do(chromedp.SendKeys(chromedp.ID("kod"), signInCodes(tb.t, mailer)[p.GetEmail()]))
	return tb.submit(chromedp.Click(chromedp.CSS(`form[action="/kod"] button`)))
}

// pageState checks that the page shows want, keeps what every page keeps
// (checkPage) and saves its screenshots as name in dir.
func (tb *selfTab) pageState(dir, name string, st int64, want string, personal []string) {
	tb.t.Helper()
	if text := tb.text(); !strings.Contains(text, want) {
		tb.t.Fatalf("%s: %d, no %q in %q", name, st, want, text)
	}
	tb.checkPage(personal)
	tb.shots(dir, name)
}

// oldSessionAnswer is the page's HTTP status for a download with a session
// cookie that should be dead: 303 (to sign in) when it is.
func oldSessionAnswer(t *testing.T, base string, cookie *network.Cookie) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/export", nil)
	req.AddCookie(&http.Cookie{Name: cookie.Name, Value: cookie.Value})
	res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// The rights requests in headless Chromium, with axe-core on every page
// state and screenshots at 360 and 1,280 px (PERSONALDATA_SCREENSHOTS,
// names ssrights-*): the overview's section with a customer named, the
// request page, a refused text, the erasure's confirmation, the request
// listed with its due date, one sent on to the customer, and the page after
// staff carried the erasure out.
func TestSelfServiceRightsInBrowser(t *testing.T) {
	browser := newBrowser(t)
	e := start(t)
	c := e.gc()
	mailer := e.mailer(t, c)
	base := "http://" + e.srv.SelfServiceAddr()
	shots := screenshots(t)
	sub := create(t, c, 286)
	id := sub.GetSubjectId()
	createAgreement(t, e, c, paReq(e, "pa-browser", "customer-42", supportAndDelivery, allCategories...))
	createFor(t, c, "customer-42", 286)
	p := testPerson(286)
	personal := []string{p.GetEmail(), p.GetGivenName(), p.GetFamilyName(), p.GetIdentityNumber(), id}
	tb := newSelfTab(t, browser, base)
	step := func(name string, st int64, want string) {
		t.Helper()
		tb.pageState(shots, "ssrights-"+name, st, want, personal)
	}

	st := tb.signInByClicks(mailer, p)
	step("1-overview", st, "Vi har också uppgifter om dig för vår kund customer-42")
	if st, body := tb.download("/brev"); st != http.StatusOK || !strings.Contains(body, "attachment") || !strings.Contains(body, p.GetEmail()) {
		t.Errorf("the letter: %d %.200s", st, body)
	}

	st = tb.submit(chromedp.Click(chromedp.CSS(`a[href="/begar"]`)))
	step("2-request-page", st, "Uppgifter som customer-42 ansvarar för")

	selfEval[string](tb, `document.getElementById("varfor").value = "a".repeat(5001)`)
	st = tb.submit(chromedp.Click(chromedp.CSS(`#varfor ~ .choices button[value="begransning"]`)))
	if st != http.StatusBadRequest {
		t.Errorf("too long a text: %d", st)
	}
	step("3-bad-text", st, "Skriv högst 5 000 tecken.")

	selfEval[string](tb, `document.getElementById("varfor").value = "Jag vill inte vara kund längre."`)
	st = tb.submit(chromedp.Click(chromedp.CSS(`#varfor ~ .choices button[value="radering"]`)))
	step("4-confirm-erasure", st, "Ja, skicka begäran om radering")
	if n := len(requestsOf(t, c, id)); n != 0 {
		t.Fatalf("%d requests before the yes", n)
	}
	st = tb.submit(chromedp.Click(chromedp.CSS(`form[action="/begar"] button`)))
	step("5-sent", st, "Vi svarar senast")

	tb.navigate("/begar")
	st = tb.submit(chromedp.Click(chromedp.CSS(`#varfor-customer-42 ~ .choices button[value="begransning"]`)))
	step("6-forwarded", st, "Skickad vidare till customer-42")

	rs := requestsOf(t, c, id)
	erasure := requestOfKind(rs, pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ERASURE)
	if len(rs) != 2 || erasure == nil || erasure.GetText() != "Jag vill inte vara kund längre." {
		t.Fatalf("stored %v", rs)
	}
	grant(t, c, erasure.GetRequestId())
	fulfil(t, c, &pdv1.FulfilRightsRequestRequest{IdempotencyKey: "fulfil-browser", RequestId: erasure.GetRequestId(),
		Action: &pdv1.FulfilRightsRequestRequest_Erase{Erase: &pdv1.EraseAction{Ground: pdv1.ErasureGround_ERASURE_GROUND_NO_LEGITIMATE_REASON}}})
	st = tb.navigate("/")
	step("7-erased", st, "Vi har raderat dina uppgifter")
	if tb.sessionCookie() != nil {
		t.Error("the session cookie is still there after the erasure")
	}
	t.Logf("screenshots in %s", shots)
}

// The whole flow once with the keyboard alone: Tab to each link, field
// and button and Enter (typing in the fields), no click and no script
// sending a form. Sign in by code, see what is held, correct the name, ask
// for restriction, ask for erasure and confirm it, sign out.
func TestSelfServiceKeyboardOnly(t *testing.T) {
	browser := newBrowser(t)
	e := start(t)
	c := e.gc()
	mailer := e.mailer(t, c)
	base := "http://" + e.srv.SelfServiceAddr()
	sub := create(t, c, 287)
	id := sub.GetSubjectId()
	p := testPerson(287)
	personal := []string{p.GetEmail(), p.GetGivenName(), p.GetFamilyName(), p.GetIdentityNumber(), id}
	tb := newSelfTab(t, browser, base)
	enterOn := func(js, want string) {
		t.Helper()
		tb.focus(js)
		st := tb.submit(chromedp.KeyEvent("\r"))
		if text := tb.text(); st >= 400 || !strings.Contains(text, want) {
			t.Fatalf("Enter on %s: %d, no %q in %q", js, st, want, text)
		}
		tb.checkPage(personal)
	}
	typeIn := func(field, text string) {
		t.Helper()
		tb.focus(`document.getElementById("` + field + `")`)
		// Tab selects what the field holds: the typing replaces it.
		tb.do(chromedp.KeyEvent(text))
	}

	tb.navigate("/")
	typeIn("identitet", p.GetIdentityNumber())
	enterOn(`document.querySelector('form[action="/logga-in"] button')`, "Skriv in koden")
	typeIn("kod", signInCodes(t, mailer)[p.GetEmail()])
	enterOn(`document.querySelector('form[action="/kod"] button')`, "Varför vi använder uppgifterna")
	if !strings.Contains(tb.text(), p.GetEmail()) {
		t.Fatal("the overview does not show the e-mail on file")
	}

	enterOn(`document.querySelector('a[href="/andra"]')`, "Ändra dina uppgifter")
	typeIn("fornamn", "Tangentina")
	enterOn(`document.querySelector('form[action="/andra/namn"] button')`, "Ditt namn är ändrat.")
	if got, _ := person(t, c, id); got.GetPerson().GetGivenName() != "Tangentina" {
		t.Fatalf("the name after the change: %q", got.GetPerson().GetGivenName())
	}
	enterOn(`document.querySelector('main a[href="/"]')`, "Dina begäranden")

	enterOn(`document.querySelector('a[href="/begar"]')`, "Begär begränsning")
	enterOn(`document.querySelector('#varfor ~ .choices button[value="begransning"]')`, "Vi har tagit emot din begäran.")
	enterOn(`document.querySelector('a[href="/begar"]')`, "Begär radering")
	enterOn(`document.querySelector('#varfor ~ .choices button[value="radering"]')`, "Ja, skicka begäran om radering")
	enterOn(`document.querySelector('form[action="/begar"] button')`, "Radering")
	rs := requestsOf(t, c, id)
	if len(rs) != 2 || requestOfKind(rs, pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_RESTRICTION) == nil || requestOfKind(rs, pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ERASURE) == nil {
		t.Fatalf("requests after the keyboard flow: %v", rs)
	}
	for _, r := range rs {
		if r.GetVerification().GetMethod() != pdv1.VerificationMethod_VERIFICATION_METHOD_CODE || r.GetChannel() != pdv1.Channel_CHANNEL_SELF_SERVICE {
			t.Errorf("request %v", r)
		}
	}

	cookie := tb.sessionCookie()
	enterOn(`document.querySelector('form[action="/logga-ut"] button')`, "Du är utloggad")
	if st := oldSessionAnswer(t, base, cookie); st != http.StatusSeeOther {
		t.Errorf("the old session after signing out: %d, want 303", st)
	}
}
