package server_test

import (
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// screenshots is the folder PERSONALDATA_SCREENSHOTS names, or the test's
// temporary folder.
func screenshots(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("PERSONALDATA_SCREENSHOTS"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.TempDir()
}

// The data subjects' page in headless Chromium: sign in with the code the
// mailer reads from the outbox, the overview, the download and signing
// out, with axe-core on every page; once with the mouse's way of doing
// things (clicks), once with the keyboard alone.
func TestSelfServiceInBrowser(t *testing.T) {
	browser := newBrowser(t)
	e := start(t)
	c := e.gc()
	mailer := e.mailer(t, c)
	base := "http://" + e.srv.SelfServiceAddr()
	shots := screenshots(t)

	flow := func(t *testing.T, n int, keyboard bool) {
		sub := create(t, c, n)
		person := testPerson(n)
		personal := []string{person.GetEmail(), person.GetGivenName(), person.GetFamilyName(), person.GetIdentityNumber(), sub.GetSubjectId()}
		tb := newSelfTab(t, browser, base)
		shot := func(name string) {
			if !keyboard {
				tb.shots(shots, name)
			}
		}
		if st := tb.navigate("/"); st != 200 {
			t.Fatalf("start page: %d", st)
		}
		tb.checkPage(personal)
		shot("self-1-start")
		var st int64
		if keyboard {
			tb.focus(`document.getElementById("identitet")`)
			tb.do(chromedp.KeyEvent(person.GetIdentityNumber()))
			st = tb.submit(chromedp.KeyEvent("\r"))
		} else {
			tb.do(chromedp.SendKeys(chromedp.ID("identitet"), person.GetIdentityNumber()))
			st = tb.submit(chromedp.Click(chromedp.CSS(`form[action="/logga-in"] button`)))
		}
		if st != 200 || !strings.Contains(tb.text(), "Skriv in koden") {
			t.Fatalf("after the identity: %d %q", st, tb.text())
		}
		tb.checkPage(personal)
		shot("self-2-code")
		code := signInCodes(t, mailer)[person.GetEmail()]
		if code == "" {
			t.Fatal("no code in the outbox")
		}
		if keyboard {
			tb.focus(`document.getElementById("kod")`)
			tb.do(chromedp.KeyEvent(code))
			st = tb.submit(chromedp.KeyEvent("\r"))
		} else {
			tb.do(chromedp.SendKeys(chromedp.ID("kod"), code))
			st = tb.submit(chromedp.Click(chromedp.CSS(`form[action="/kod"] button`)))
		}
		text := tb.text()
		if st != 200 || !strings.Contains(text, person.GetEmail()) || !strings.Contains(text, "Varför vi använder uppgifterna") {
			t.Fatalf("overview: %d %q", st, text)
		}
		tb.checkPage(personal)
		shot("self-3-overview")

		// The download, as the link the person follows.
		link := `document.querySelector('a[href="/export"]')`
		if keyboard {
			tb.focus(link)
		}
		if !selfEval[bool](tb, link+` !== null && `+link+`.hasAttribute("download")`) {
			t.Fatal("no download link")
		}
		if st, body := tb.download("/export"); st != http.StatusOK || !strings.Contains(body, "attachment") || !strings.Contains(body, person.GetEmail()) {
			t.Fatalf("download: %d %.200s", st, body)
		}

		// Sign out; the session is gone on the server.
		cookie := tb.sessionCookie()
		if cookie == nil || !cookie.HTTPOnly || cookie.SameSite != "Strict" {
			t.Fatalf("session cookie %+v", cookie)
		}
		if keyboard {
			tb.focus(`document.querySelector('form[action="/logga-ut"] button')`)
			st = tb.submit(chromedp.KeyEvent("\r"))
		} else {
			st = tb.submit(chromedp.Click(chromedp.CSS(`form[action="/logga-ut"] button`)))
		}
		if st != 200 || !strings.Contains(tb.text(), "Du är utloggad") {
			t.Fatalf("sign out: %d %q", st, tb.text())
		}
		tb.checkPage(personal)
		shot("self-4-signed-out")
		if st := oldSessionAnswer(t, base, cookie); st != http.StatusSeeOther {
			t.Errorf("the old session cookie after signing out: %d, want 303", st)
		}
	}
	t.Run("mouse", func(t *testing.T) { flow(t, 265, false) })
	t.Run("keyboard", func(t *testing.T) { flow(t, 266, true) })
	t.Logf("screenshots in %s", shots)
}
