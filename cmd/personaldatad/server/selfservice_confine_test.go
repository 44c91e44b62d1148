package server_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// selfClient is a browser of the data subjects' page, without script.
type selfClient struct {
	t    *testing.T
	base string
	hc   *http.Client
}

var selfCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func newSelfClient(t *testing.T, e *env) *selfClient {
	jar, _ := cookiejar.New(nil)
	return &selfClient{t: t, base: "http://" + e.srv.SelfServiceAddr(), hc: &http.Client{Jar: jar}}
}

func (c *selfClient) do(method, path string, form url.Values) (int, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		c.t.Fatal(err)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// signIn signs the person in by the code the mailer reads from the outbox,
// and returns the overview.
func (c *selfClient) signIn(mailer caller, person *pdv1.Person) string {
	c.t.Helper()
	_, page := c.do(http.MethodGet, "/", nil)
	csrf := selfCSRF.FindStringSubmatch(page)[1]
	if st, _ := c.do(http.MethodPost, "/logga-in", url.Values{"csrf": {csrf}, "identitet": {person.GetIdentityNumber()}}); st != 200 {
		c.t.Fatalf("start: %d", st)
	}
	code := signInCodes(c.t, mailer)[person.GetEmail()]
	st, page := c.do(http.MethodPost, "/kod", url.Values{"csrf": {csrf}, "kod": {code}})
	if st != 200 || !strings.Contains(page, person.GetEmail()) {
		c.t.Fatalf("sign in: %d %s", st, page)
	}
	return page
}

// A person signed in to the page reaches their own record and nothing
// else, whatever id they add to a request: the forms take no id, and no
// parameter, path or cookie the browser can send names another subject.
func TestSelfServicePageConfinesToOwnSubject(t *testing.T) {
	e := start(t)
	c := e.gc()
	create(t, c, 263)
	b := create(t, c, 264)
	personA, personB := testPerson(263), testPerson(264)
	mailer := e.mailer(t, c)
	sc := newSelfClient(t, e)
	page := sc.signIn(mailer, personA)
	csrf := selfCSRF.FindStringSubmatch(page)[1]

	// What of B's must never show.
	secretsOfB := []string{b.GetSubjectId(), personB.GetEmail(), personB.GetGivenName(), personB.GetFamilyName(), personB.GetIdentityNumber()}
	check := func(what string, status int, body string) {
		t.Helper()
		for _, s := range secretsOfB {
			if strings.Contains(body, s) {
				t.Errorf("%s (HTTP %d): B's %q shows", what, status, s)
			}
		}
	}
	ids := []string{b.GetSubjectId(), personB.GetIdentityNumber(), personB.GetEmail()}
	params := []string{"subject_id", "subjectId", "subject", "id", "identitet"}
	for _, id := range ids {
		for _, p := range params {
			q := "?" + url.Values{p: {id}}.Encode()
			for _, path := range []string{"/", "/export"} {
				st, body := sc.do(http.MethodGet, path+q, nil)
				check("GET "+path+q, st, body)
				if st != 200 || !strings.Contains(body, personA.GetEmail()) {
					t.Errorf("GET %s%s: %d, want A's own page", path, q, st)
				}
			}
			// A form posted with an id added changes nothing about whom
			// the session names.
			st, body := sc.do(http.MethodPost, "/kod", url.Values{"csrf": {csrf}, "kod": {"12345678"}, p: {id}})
			check("POST /kod +"+p, st, body)
		}
		for _, path := range []string{
			"/" + url.PathEscape(id), "/export/" + url.PathEscape(id), "/subjects/" + url.PathEscape(id),
			"/v1/subjects/" + url.PathEscape(id) + ":access", "/v1/subjects/" + url.PathEscape(id) + ":streamAccess",
			"/console/subjects/" + url.PathEscape(id),
		} {
			st, body := sc.do(http.MethodGet, path, nil)
			check("GET "+path, st, body)
			if st != http.StatusNotFound {
				t.Errorf("GET %s: %d, want 404", path, st)
			}
		}
	}
	// The session is still A's, and only A's.
	st, body := sc.do(http.MethodGet, "/", nil)
	if st != 200 || !strings.Contains(body, personA.GetEmail()) {
		t.Fatalf("A's page after the tries: %d", st)
	}
	check("GET / after the tries", st, body)

	// A cookie the browser makes up, naming B, is no session.
	other := newSelfClient(t, e)
	u, _ := url.Parse(other.base)
	for _, v := range ids {
		other.hc.Jar.SetCookies(u, []*http.Cookie{{Name: "__Host-pd-self", Value: v, Path: "/"}})
		st, body := other.do(http.MethodGet, "/export", nil)
		check("export with a made-up cookie", st, body)
		if strings.Contains(body, "{") {
			t.Errorf("a made-up cookie %q downloaded a file", v)
		}
	}
}
