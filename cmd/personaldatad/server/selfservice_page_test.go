package server_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// The data subjects' page end to end over HTTP: sign in with the code the
// mailer reads from the outbox, see the page, download, sign out.
func TestSelfServicePage(t *testing.T) {
	e := start(t)
	c := e.gc()
	create(t, c, 262)
	person := testPerson(262)
	mailer := e.mailer(t, c)
	base := "http://" + e.srv.SelfServiceAddr()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	csrfRe := regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	get := func(path string) (int, string) {
		resp, err := hc.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	post := func(path, body string, form url.Values) (int, string, http.Header) {
		m := csrfRe.FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no csrf in %q", body)
		}
		form.Set("csrf", m[1])
		resp, err := hc.PostForm(base+path, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	_, page := get("/")
	st, page, _ := post("/logga-in", page, url.Values{"identitet": {person.GetIdentityNumber()}})
	if st != 200 || !strings.Contains(page, "Skriv in koden") {
		t.Fatalf("start: %d %s", st, page)
	}
	code := signInCodes(t, mailer)[person.GetEmail()]
	if st, p, _ := post("/kod", page, url.Values{"kod": {"00000000"}}); st != 400 || !strings.Contains(p, "stämmer inte") {
		t.Fatalf("wrong code: %d", st)
	}
	st, page, _ = post("/kod", page, url.Values{"kod": {code}})
	if st != 200 || !strings.Contains(page, "Dina personuppgifter") || !strings.Contains(page, person.GetEmail()) {
		t.Fatalf("signed in: %d %s", st, page)
	}
	if st, body := get("/export"); st != 200 || !strings.Contains(body, person.GetEmail()) {
		t.Fatalf("export: %d", st)
	}
	st, _, _ = post("/logga-ut", page, url.Values{})
	if st != 200 {
		t.Fatalf("sign out: %d", st)
	}
	if _, body := get("/"); !strings.Contains(body, "Skicka kod") {
		t.Fatal("still signed in after signing out")
	}
	// An unknown person gets the same page.
	_, page = get("/")
	if st, p, _ := post("/logga-in", page, url.Values{"identitet": {"okand@example.org"}}); st != 200 || !strings.Contains(p, "Skriv in koden") {
		t.Fatalf("unknown: %d", st)
	}
	// The limits answer 429 with Retry-After.
	for range 10 {
		_, page = get("/")
		if st, _, h := post("/logga-in", page, url.Values{"identitet": {"okand@example.org"}}); st == 429 {
			if h.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
			return
		}
	}
	t.Fatal("never limited")
}
