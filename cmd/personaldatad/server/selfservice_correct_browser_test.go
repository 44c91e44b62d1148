package server_test

import (
	"net/http"
	"testing"

	"github.com/chromedp/chromedp"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// The corrections in headless Chromium, with axe-core on every page state
// and screenshots at 360 and 1,280 px (PERSONALDATA_SCREENSHOTS, names
// sscorrect-*): the overview's own section, the change page, a refused name,
// the code page for a new e-mail, a wrong code, the saved change, the no to
// direct marketing, a consent id changed in the page (refused) and the
// consent withdrawn.
func TestSelfServiceCorrectionsInBrowser(t *testing.T) {
	browser := newBrowser(t)
	e := start(t)
	c := e.gc()
	mailer := e.mailer(t, c)
	base := "http://" + e.srv.SelfServiceAddr()
	shots := screenshots(t)
	sub := create(t, c, 276)
	id := sub.GetSubjectId()
	call(t, c, recordConsentRPC, consentReq(sub, "c-dm", pdv1.ConsentPurpose_CONSENT_PURPOSE_DIRECT_MARKETING, "", e.clock.Now()), &pdv1.RecordConsentResponse{})
	call(t, c, recordConsentRPC, consentReq(sub, "c-iis", pdv1.ConsentPurpose_CONSENT_PURPOSE_DISCLOSURE, "iis.se", e.clock.Now()), &pdv1.RecordConsentResponse{})
	p := testPerson(276)
	personal := []string{p.GetEmail(), p.GetGivenName(), p.GetFamilyName(), p.GetIdentityNumber(), id}
	tb := newSelfTab(t, browser, base)
	step := func(name string, st int64, want string) {
		t.Helper()
		tb.pageState(shots, "sscorrect-"+name, st, want, personal)
	}

	st := tb.signInByClicks(mailer, p)
	step("1-overview", st, "Nej tack till direktreklam")

	st = tb.submit(chromedp.Click(chromedp.CSS(`a[href="/andra"]`)))
	step("2-change", st, "Ditt personnummer kan du inte ändra här")

	selfEval[string](tb, `document.getElementById("fornamn").value = ""`)
	st = tb.submit(chromedp.Click(chromedp.CSS(`form[action="/andra/namn"] button`)))
	if st != http.StatusBadRequest {
		t.Errorf("empty name: %d", st)
	}
	step("3-bad-name", st, "Skriv ditt förnamn")

	const newEmail = "tolvan.ny@example.se"
	selfEval[string](tb, `document.getElementById("epost").value = "`+newEmail+`"`)
	st = tb.submit(chromedp.Click(chromedp.CSS(`form[action="/andra/kontakt"] button`)))
	step("4-code", st, "Ingenting ändras förrän du har skrivit in koden")
	code := contactCodes(t, mailer)[newEmail]
	wrong := "00000000"
	if code == wrong {
		wrong = "11111111"
	}
	tb.do(chromedp.SendKeys(chromedp.ID("kod"), wrong))
	st = tb.submit(chromedp.Click(chromedp.CSS(`form[action="/andra/bekrafta"] button`)))
	step("5-wrong-code", st, "Koden stämmer inte")
	tb.do(chromedp.SendKeys(chromedp.ID("kod"), code))
	st = tb.submit(chromedp.Click(chromedp.CSS(`form[action="/andra/bekrafta"] button`)))
	step("6-saved", st, "Din nya e-postadress gäller")
	if got, _ := person(t, c, id); got.GetPerson().GetEmail() != newEmail {
		t.Errorf("e-mail %q after the code", got.GetPerson().GetEmail())
	}

	tb.navigate("/")
	st = tb.submit(chromedp.Click(chromedp.CSS(`form[action="/reklam"] button`)))
	step("7-no-marketing", st, "Vi skickar ingen direktreklam till dig")

	// The consent's id changed in the page: another's, or none, is not found.
	selfEval[string](tb, `document.querySelector('form[action="/samtycke"] input[name="samtycke"]').value = "7"`)
	st = tb.submit(chromedp.Click(chromedp.CSS(`form[action="/samtycke"] button`)))
	if st != http.StatusNotFound {
		t.Errorf("a changed consent id: %d", st)
	}
	step("8-not-found", st, "Vi hittade inte det du ville ändra")
	tb.navigate("/")
	st = tb.submit(chromedp.Click(chromedp.CSS(`form[action="/samtycke"] button`)))
	step("9-withdrawn", st, "Du har återkallat samtycket")
	_, a := person(t, c, id)
	for _, cn := range a.GetConsents() {
		if cn.GetWithdrawTime() == nil || cn.GetWithdrawChannel() != pdv1.Channel_CHANNEL_SELF_SERVICE {
			t.Errorf("consent %v", cn)
		}
	}
	t.Logf("screenshots in %s", shots)
}
