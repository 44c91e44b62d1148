package server_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// Strong sign-in in headless Chromium, where SameSite counts: the provider
// (localhost) is another site than the page (127.0.0.1), and the person
// goes back from a page of the provider's, so that navigation carries the
// Lax cookie of the sign-in and no Strict one; the page's own refresh then
// reaches the overview with the Strict session cookie (a redirect there
// would not: TestSelfServiceOIDCInBrowser fails with one). axe-core on the start page with the e-ID button and on a
// refused sign-in; screenshots of both.
func TestSelfServiceOIDCInBrowser(t *testing.T) {
	browser := newBrowser(t)
	e, provider := startWithOIDC(t)
	c := e.gc()
	sub := create(t, c, 272)
	person := testPerson(272)
	number := strings.ReplaceAll(person.GetIdentityNumber(), "-", "")
	personal := []string{person.GetEmail(), person.GetGivenName(), person.GetFamilyName(), person.GetIdentityNumber(), number, sub.GetSubjectId()}
	base := "http://" + e.srv.SelfServiceAddr()
	shots := screenshots(t)
	button := `a[href="/e-legitimation"]`

	// Refused: a token without the personnummer.
	provider.login(oidcLogin{})
	tb := newSelfTab(t, browser, base)
	if st := tb.navigate("/"); st != 200 {
		t.Fatalf("start page: %d", st)
	}
	tb.checkPage(personal)
	tb.shots(shots, "self-oidc-1-start")
	if st := tb.submit(chromedp.Click(chromedp.CSS(button))); st != 400 || !strings.Contains(tb.text(), "Vi fick inget personnummer") {
		t.Fatalf("a token without the claim: %d %q", st, tb.text())
	}
	tb.checkPage(personal)
	tb.shots(shots, "self-oidc-2-refused")

	// Signed in, with the keyboard.
	provider.login(oidcLogin{number: number, page: true})
	tb = newSelfTab(t, browser, base)
	tb.navigate("/")
	tb.focus(`document.querySelector('` + button + `')`)
	tb.submit(chromedp.KeyEvent("\r"))
	tb.do(chromedp.WaitVisible(chromedp.ID("approve")))
	tb.focus(`document.getElementById("approve")`)
	tb.submit(chromedp.KeyEvent("\r"))
	// The page on the way refreshes itself to the overview.
	tb.do(chromedp.WaitVisible(chromedp.CSS(`a[href="/export"]`)))
	text := tb.text()
	if !strings.Contains(text, person.GetEmail()) || !strings.Contains(text, "Varför vi använder uppgifterna") {
		t.Fatalf("overview after strong sign-in: %q", text)
	}
	if u := selfEval[string](tb, `location.href`); u != base+"/" {
		t.Errorf("the overview at %s, want %s/", u, base)
	}
	tb.checkPage(personal)
	if c := tb.sessionCookie(); c == nil || !c.HTTPOnly || c.SameSite != "Strict" {
		t.Fatalf("session cookie %+v", c)
	}
	t.Logf("screenshots in %s", shots)
}
