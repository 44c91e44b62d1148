package server_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/example/personaldata/cmd/personaldatad/server"
	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/auth"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/signin"
	"github.com/example/personaldata/store/storetest"
)

// The sign-in by code through the page, over HTTP as a browser without
// script sends it: what the issue asks of it that the other tests of the
// page do not show (TestSelfServicePage has the wrong code and one 429,
// TestSelfServiceSignInByCode the service's side).

// pageVisit is a browser of the page from client address ip (any
// 127.x.y.z reaches the loopback listener from an address of its own), that
// notes every address, title and cookie value the page gave it.
type pageVisit struct {
	*selfClient
	seen []string
}

func visitFrom(t *testing.T, e *env, ip string) *pageVisit {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	v := &pageVisit{}
	v.selfClient = &selfClient{t: t, base: "http://" + e.srv.SelfServiceAddr(), hc: &http.Client{Jar: jar,
		Transport: &http.Transport{DialContext: d.DialContext},
		CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			v.seen = append(v.seen, req.URL.String())
			return nil
		}}}
	return v
}

type pageAnswer struct {
	status  int
	body    string
	header  http.Header
	cookies []*http.Cookie // set by the last answer
	url     *url.URL       // where the redirects ended
}

var pageTitle = regexp.MustCompile(`<title>([^<]*)</title>`)

// send sends a request to the page (a form when form is not nil).
func (v *pageVisit) send(method, path string, form url.Values) pageAnswer {
	v.t.Helper()
	req, err := http.NewRequest(method, v.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		v.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return v.do(req)
}

// do sends req and follows redirects.
func (v *pageVisit) do(req *http.Request) pageAnswer {
	v.t.Helper()
	v.seen = append(v.seen, req.URL.String())
	resp, err := v.hc.Do(req)
	if err != nil {
		v.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := pageAnswer{status: resp.StatusCode, body: string(b), header: resp.Header, cookies: resp.Cookies(), url: resp.Request.URL}
	if m := pageTitle.FindStringSubmatch(a.body); m != nil {
		v.seen = append(v.seen, m[1])
	}
	u, _ := url.Parse(v.base)
	for _, c := range v.hc.Jar.Cookies(u) {
		v.seen = append(v.seen, c.Value)
	}
	return a
}

// csrf is the CSRF token of the visit's last page with a form.
func (v *pageVisit) csrf(body string) string {
	v.t.Helper()
	m := selfCSRF.FindStringSubmatch(body)
	if m == nil {
		v.t.Fatalf("no CSRF token in %s", body)
	}
	return m[1]
}

// startSignIn opens the page and asks for a code for typed.
func (v *pageVisit) startSignIn(typed string) pageAnswer {
	v.t.Helper()
	home := v.send(http.MethodGet, "/", nil)
	return v.send(http.MethodPost, "/logga-in", url.Values{"csrf": {v.csrf(home.body)}, "identitet": {typed}})
}

// code gives a code on the page of the answer before.
func (v *pageVisit) code(page pageAnswer, code string) pageAnswer {
	v.t.Helper()
	return v.send(http.MethodPost, "/kod", url.Values{"csrf": {v.csrf(page.body)}, "kod": {code}})
}

// signInAs signs person in and returns the overview.
func (v *pageVisit) signInAs(mailer caller, person *pdv1.Person) pageAnswer {
	v.t.Helper()
	ackAll(v.t, mailer)
	page := v.startSignIn(person.GetIdentityNumber())
	code := signInCodes(v.t, mailer)[person.GetEmail()]
	me := v.code(page, code)
	if me.status != 200 || !strings.Contains(me.body, person.GetEmail()) {
		v.t.Fatalf("sign in: %d %s", me.status, me.body)
	}
	return me
}

// noPersonal fails if anything the visit saw in an address, a title or a
// cookie holds one of personal.
func (v *pageVisit) noPersonal(personal ...string) {
	v.t.Helper()
	for _, s := range v.seen {
		for _, p := range personal {
			if p != "" && (strings.Contains(s, p) || strings.Contains(s, url.QueryEscape(p))) {
				v.t.Errorf("an address, title or cookie holds %q: %q", p, s)
			}
		}
	}
}

// ackAll acknowledges every message waiting in the outbox.
func ackAll(t *testing.T, mailer caller) {
	t.Helper()
	for _, m := range outbox(t, mailer) {
		call(t, mailer, ackOutbox, &pdv1.AcknowledgeOutboxMessageRequest{MessageId: m.GetMessageId()}, &pdv1.AcknowledgeOutboxMessageResponse{})
	}
}

func personalOf(p *pdv1.Person, subjectID string) []string {
	return []string{p.GetIdentityNumber(), strings.ReplaceAll(p.GetIdentityNumber(), "-", ""), p.GetEmail(), p.GetGivenName(), p.GetFamilyName(), subjectID}
}

func otherCode(code string) string {
	if code == "00000000" {
		return "11111111"
	}
	return "00000000"
}

// Codes through the page: an expired code and a used-up one end the
// sign-in with a message in words and no session, the right code too once
// that has happened; a code goes only to the contact on file, whatever was
// typed; an unknown person gets the known person's answer, cookies and
// all; nothing personal in an address, a title or a cookie on the way.
func TestSelfServicePageCodes(t *testing.T) {
	e := start(t)
	c := e.gc()
	sub := create(t, c, 281)
	person := testPerson(281)
	mailer := e.mailer(t, c)
	noSession := func(t *testing.T, v *pageVisit, a pageAnswer) {
		t.Helper()
		if cookieNamed(a.cookies, "__Host-pd-self") != nil {
			t.Error("a session cookie was set")
		}
		if home := v.send(http.MethodGet, "/", nil); strings.Contains(home.body, person.GetEmail()) {
			t.Error("signed in")
		}
	}

	t.Run("expired", func(t *testing.T) {
		ackAll(t, mailer)
		v := visitFrom(t, e, "127.0.0.11")
		page := v.startSignIn(person.GetIdentityNumber())
		code := signInCodes(t, mailer)[person.GetEmail()]
		e.clock.Advance(core.SelfServiceCodeLifetime + time.Second)
		got := v.code(page, code)
		if got.status != http.StatusBadRequest || !strings.Contains(got.body, "Koden går inte längre att använda. Börja om och be om en ny kod.") {
			t.Fatalf("an expired code: %d %s", got.status, got.body)
		}
		if c := cookieNamed(got.cookies, "__Host-pd-signin"); c == nil || c.MaxAge >= 0 {
			t.Errorf("the sign-in's cookie is not removed: %+v", c)
		}
		noSession(t, v, got)
		v.noPersonal(personalOf(person, sub.GetSubjectId())...)
	})

	t.Run("exhausted", func(t *testing.T) {
		ackAll(t, mailer)
		v := visitFrom(t, e, "127.0.0.12")
		page := v.startSignIn(person.GetIdentityNumber())
		code := signInCodes(t, mailer)[person.GetEmail()]
		token := cookieNamed(page.cookies, "__Host-pd-signin")
		if token == nil {
			t.Fatal("no sign-in cookie")
		}
		for i := range core.SelfServiceCodeTries {
			got := v.code(page, otherCode(code))
			want := "Koden stämmer inte."
			if i == core.SelfServiceCodeTries-1 {
				want = "Koden går inte längre att använda."
			}
			if got.status != http.StatusBadRequest || !strings.Contains(got.body, want) {
				t.Fatalf("wrong code %d: %d, want 400 with %q: %s", i+1, got.status, want, got.body)
			}
			page = got
		}
		// The address's limit has a token again, and the browser gives
		// back the sign-in's cookie the page removed: the right code is
		// too late all the same.
		e.clock.Advance(13 * time.Second)
		u, _ := url.Parse(v.base)
		v.hc.Jar.SetCookies(u, []*http.Cookie{{Name: token.Name, Value: token.Value, Path: "/"}})
		got := v.send(http.MethodPost, "/kod", url.Values{"csrf": {v.csrf(page.body)}, "kod": {code}})
		if got.status != http.StatusBadRequest || !strings.Contains(got.body, "Koden går inte längre att använda.") {
			t.Fatalf("the right code after the tries: %d %s", got.status, got.body)
		}
		noSession(t, v, got)
		v.noPersonal(personalOf(person, sub.GetSubjectId())...)
	})

	t.Run("only to the contact on file", func(t *testing.T) {
		ackAll(t, mailer)
		v := visitFrom(t, e, "127.0.0.13")
		typed := []string{"inkraktare@example.test", strings.ToUpper(person.GetEmail()), " " + person.GetEmail() + " ", person.GetIdentityNumber(),
			strings.ReplaceAll(person.GetIdentityNumber(), "-", "")}
		for _, s := range typed {
			e.clock.Advance(13 * time.Second) // a token back for each start
			if got := v.startSignIn(s); got.status != 200 {
				t.Fatalf("start with %q: %d", s, got.status)
			}
		}
		msgs := outbox(t, mailer)
		for _, m := range msgs {
			if m.GetTo() != person.GetEmail() {
				t.Errorf("a code went to %q, not to the address on file", m.GetTo())
			}
		}
		if len(msgs) != len(typed)-1 {
			t.Errorf("%d codes sent, want %d (none for the address not on file)", len(msgs), len(typed)-1)
		}
	})

	t.Run("unknown person answered alike", func(t *testing.T) {
		known := visitFrom(t, e, "127.0.0.14").startSignIn(person.GetIdentityNumber())
		unknown := visitFrom(t, e, "127.0.0.15").startSignIn(pnr(1956, 6, 6, 666))
		unknownMail := visitFrom(t, e, "127.0.0.16").startSignIn("okand.person@example.test")
		csrf := regexp.MustCompile(`name="csrf" value="[^"]+"`)
		norm := func(s string) string { return csrf.ReplaceAllString(s, "") }
		shape := func(cs []*http.Cookie) string {
			var out []string
			for _, c := range cs {
				out = append(out, c.Name+" "+strconv.Itoa(len(c.Value))+" "+strconv.Itoa(c.MaxAge)+" "+strconv.FormatBool(c.HttpOnly)+strconv.FormatBool(c.Secure)+" "+strconv.Itoa(int(c.SameSite))+" "+c.Path)
			}
			return strings.Join(out, "; ")
		}
		for name, a := range map[string]pageAnswer{"personnummer": unknown, "e-mail": unknownMail} {
			if a.status != known.status || norm(a.body) != norm(known.body) || shape(a.cookies) != shape(known.cookies) {
				t.Errorf("unknown by %s: %d, cookies %s, body %s\nknown: %d, cookies %s, body %s",
					name, a.status, shape(a.cookies), a.body, known.status, shape(known.cookies), known.body)
			}
		}
	})
}

// The limits through the page: per client address and per identity, each
// with a 429, a Retry-After in seconds and a message in Swedish words; the
// wait over, a start goes through again.
func TestSelfServicePageLimits(t *testing.T) {
	e := start(t)
	c := e.gc()
	create(t, c, 282)
	person := testPerson(282)
	limited := func(t *testing.T, a pageAnswer) time.Duration {
		t.Helper()
		secs, err := strconv.Atoi(a.header.Get("Retry-After"))
		if a.status != http.StatusTooManyRequests || err != nil || secs <= 0 ||
			!strings.Contains(a.body, "Du har försökt för många gånger. Vänta ") || !strings.Contains(a.body, "och försök sedan igen.") {
			t.Fatalf("%d, Retry-After %q: %s; want 429 with a wait in seconds and words", a.status, a.header.Get("Retry-After"), a.body)
		}
		return time.Duration(secs) * time.Second
	}

	t.Run("per address", func(t *testing.T) {
		v := visitFrom(t, e, "127.0.0.21")
		var got pageAnswer
		for i := range 20 {
			if got = v.startSignIn(pnr(1960, 1, 1+i, 100+i)); got.status != 200 {
				break
			}
		}
		wait := limited(t, got)
		// Another address is not held back.
		if other := visitFrom(t, e, "127.0.0.22").startSignIn(pnr(1960, 2, 2, 222)); other.status != 200 {
			t.Errorf("another address: %d", other.status)
		}
		e.clock.Advance(wait)
		if again := v.startSignIn(pnr(1960, 3, 3, 333)); again.status != 200 {
			t.Errorf("after Retry-After: %d", again.status)
		}
	})

	t.Run("per identity", func(t *testing.T) {
		// The same person typed from ever new addresses.
		var got pageAnswer
		for i := range 20 {
			if got = visitFrom(t, e, "127.0.1."+strconv.Itoa(1+i)).startSignIn(person.GetEmail()); got.status != 200 {
				break
			}
		}
		wait := limited(t, got)
		// Another identity from a new address is not held back.
		if other := visitFrom(t, e, "127.0.2.1").startSignIn(pnr(1961, 4, 4, 444)); other.status != 200 {
			t.Errorf("another identity: %d", other.status)
		}
		e.clock.Advance(wait)
		if again := visitFrom(t, e, "127.0.2.2").startSignIn(person.GetEmail()); again.status != 200 {
			t.Errorf("after Retry-After: %d", again.status)
		}
	})
}

// Sessions through the page on the server's clock: 15 minutes idle end
// one, use keeps it alive, but never past an hour; signing out ends it on
// the server, so the old cookie is refused.
func TestSelfServicePageSessions(t *testing.T) {
	e := start(t)
	c := e.gc()
	sub := create(t, c, 283)
	person := testPerson(283)
	mailer := e.mailer(t, c)
	signedIn := func(v *pageVisit) bool {
		return strings.Contains(v.send(http.MethodGet, "/", nil).body, person.GetEmail())
	}
	stored := func() int64 {
		n, err := e.coll("self_service_sessions").CountDocuments(context.Background(), bson.D{{Key: "subject", Value: sub.GetSubjectId()}})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	ended := func(t *testing.T, v *pageVisit, when string) {
		t.Helper()
		if signedIn(v) {
			t.Fatal("still signed in " + when)
		}
		if n := stored(); n != 0 {
			t.Errorf("%d sessions left in the store %s", n, when)
		}
	}

	t.Run("idle", func(t *testing.T) {
		v := visitFrom(t, e, "127.0.0.31")
		v.signInAs(mailer, person)
		// The sign-in is on the person's trail, by code.
		var signIns int
		for _, ev := range subjectTrail(t, e, c, sub.GetSubjectId()) {
			if ev.GetRpc() == signin.SelfServiceSignInRoute && ev.GetPrincipalId() == sub.GetSubjectId() && slices.Contains(ev.GetFields(), "sign_in:code") {
				signIns++
			}
		}
		if signIns != 1 {
			t.Errorf("%d audit events of the sign-in by code, want 1", signIns)
		}
		e.clock.Advance(auth.SelfServiceIdle - time.Second)
		if !signedIn(v) {
			t.Fatal("signed out before 15 minutes idle")
		}
		e.clock.Advance(auth.SelfServiceIdle)
		ended(t, v, "after 15 minutes idle")
	})

	t.Run("at most an hour", func(t *testing.T) {
		v := visitFrom(t, e, "127.0.0.32")
		v.signInAs(mailer, person)
		var used time.Duration
		for used+10*time.Minute < auth.SelfServiceMaxLife {
			e.clock.Advance(10 * time.Minute)
			used += 10 * time.Minute
			if !signedIn(v) {
				t.Fatalf("signed out after %v in use", used)
			}
		}
		e.clock.Advance(auth.SelfServiceMaxLife - used)
		ended(t, v, "after an hour")
	})

	t.Run("sign out", func(t *testing.T) {
		v := visitFrom(t, e, "127.0.0.33")
		me := v.signInAs(mailer, person)
		u, _ := url.Parse(v.base)
		var old *http.Cookie
		for _, c := range v.hc.Jar.Cookies(u) {
			if c.Name == "__Host-pd-self" {
				old = c
			}
		}
		if old == nil {
			t.Fatal("no session cookie")
		}
		out := v.send(http.MethodPost, "/logga-ut", url.Values{"csrf": {v.csrf(me.body)}})
		if out.status != 200 || !strings.Contains(out.body, "Du är utloggad") {
			t.Fatalf("sign out: %d", out.status)
		}
		if n := stored(); n != 0 {
			t.Errorf("%d sessions left in the store after signing out", n)
		}
		// The old cookie, sent again as one who kept it would.
		replay := visitFrom(t, e, "127.0.0.34")
		replay.hc.Jar.SetCookies(u, []*http.Cookie{{Name: old.Name, Value: old.Value, Path: "/"}})
		for _, path := range []string{"/", "/export", "/andra"} {
			got := replay.send(http.MethodGet, path, nil)
			if strings.Contains(got.body, person.GetEmail()) || strings.Contains(got.body, "Logga ut") {
				t.Errorf("GET %s with the old cookie: %d, still signed in", path, got.status)
			}
		}
		v.noPersonal(personalOf(person, sub.GetSubjectId())...)
	})
}

var formAction = regexp.MustCompile(`<form method="post" action="([^"]+)"`)

// Every form the page shows, before and after sign-in, is refused without
// its CSRF token, with a wrong one, and with another session's: nothing
// is changed, no code is sent, and the session goes on.
func TestSelfServicePageCSRF(t *testing.T) {
	e := start(t)
	c := e.gc()
	subA := create(t, c, 284)
	create(t, c, 285)
	personA, personB := testPerson(284), testPerson(285)
	mailer := e.mailer(t, c)

	// Before sign-in: the start and the code.
	v := visitFrom(t, e, "127.0.0.41")
	home := v.send(http.MethodGet, "/", nil)
	forms := formAction.FindAllStringSubmatch(home.body, -1)
	codePage := v.startSignIn(personA.GetIdentityNumber())
	forms = append(forms, formAction.FindAllStringSubmatch(codePage.body, -1)...)
	ackAll(t, mailer)
	other := visitFrom(t, e, "127.0.0.42")
	otherToken := other.csrf(other.send(http.MethodGet, "/", nil).body)
	for _, f := range forms {
		for name, token := range map[string][]string{"none": nil, "wrong": {"x"}, "another browser's": {otherToken}} {
			form := url.Values{"identitet": {personA.GetIdentityNumber()}, "kod": {"12345678"}}
			if token != nil {
				form["csrf"] = token
			}
			got := v.send(http.MethodPost, f[1], form)
			if got.status != http.StatusForbidden || !strings.Contains(got.body, "Sidan hade hunnit bli för gammal") {
				t.Errorf("POST %s with %s CSRF token: %d, want 403", f[1], name, got.status)
			}
		}
	}
	if n := len(outbox(t, mailer)); n != 0 {
		t.Errorf("%d codes sent by forms without their token", n)
	}

	// Signed in: every form of the overview and of the change page.
	me := v.signInAs(mailer, personA)
	b := visitFrom(t, e, "127.0.0.43")
	tokenOfB := b.csrf(b.signInAs(mailer, personB).body)
	change := v.send(http.MethodGet, "/andra", nil)
	// The forms shown, and those shown only in some states (the code to a
	// new address, a consent, direct marketing).
	paths := map[string]bool{"/andra/bekrafta": true, "/samtycke": true, "/reklam": true}
	for _, f := range append(formAction.FindAllStringSubmatch(me.body, -1), formAction.FindAllStringSubmatch(change.body, -1)...) {
		paths[f[1]] = true
	}
	if !paths["/logga-ut"] || !paths["/andra/namn"] {
		t.Fatalf("the signed-in pages' forms: %v", paths)
	}
	ackAll(t, mailer)
	before, beforeAccess := person(t, c, subA.GetSubjectId())
	for path := range paths {
		for name, token := range map[string][]string{"none": nil, "wrong": {"x"}, "another session's": {tokenOfB}} {
			form := url.Values{"fornamn": {"Ändrad"}, "efternamn": {"Ändrad"}, "epost": {"ny@example.test"}, "telefon": {"0701234567"},
				"samtycke": {"1"}, "kod": {"12345678"}}
			if token != nil {
				form["csrf"] = token
			}
			got := v.send(http.MethodPost, path, form)
			if got.status != http.StatusForbidden && path != "/logga-ut" {
				t.Errorf("POST %s with %s CSRF token: %d, want 403", path, name, got.status)
			}
			if !strings.Contains(v.send(http.MethodGet, "/", nil).body, personA.GetEmail()) {
				t.Fatalf("POST %s with %s CSRF token ended the session", path, name)
			}
		}
	}
	after, afterAccess := person(t, c, subA.GetSubjectId())
	if after.GetVersion() != before.GetVersion() || len(afterAccess.GetConsents()) != len(beforeAccess.GetConsents()) || !sameConsents(beforeAccess, afterAccess) {
		t.Errorf("the record changed by forms without their token: version %d to %d", before.GetVersion(), after.GetVersion())
	}
	if n := len(outbox(t, mailer)); n != 0 {
		t.Errorf("%d messages sent by forms without their token", n)
	}
}

// forwarding is a reverse proxy's side of a request: it sends For as
// X-Forwarded-For.
type forwarding struct {
	http.RoundTripper
	For string
}

func (f *forwarding) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", f.For)
	return f.RoundTripper.RoundTrip(r)
}

// Behind a trusted reverse proxy the limits count each client it names,
// not the proxy; another peer's X-Forwarded-For is not believed.
func TestSelfServicePageBehindProxy(t *testing.T) {
	e := startOn(t, storetest.URI(), func(c *server.Config) {
		c.SelfServiceTrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.51/32")}
	})
	through := func(peer string) (*pageVisit, *forwarding) {
		v := visitFrom(t, e, peer)
		f := &forwarding{RoundTripper: v.hc.Transport}
		v.hc.Transport = f
		return v, f
	}
	// Many clients through the proxy, each well within its limit.
	proxy, fwd := through("127.0.0.51")
	for i := range 12 {
		fwd.For = "192.0.2.99, 198.51.100." + strconv.Itoa(1+i) // the first written by the client
		if got := proxy.startSignIn(pnr(1962, 1, 1+i, 100+i)); got.status != 200 {
			t.Fatalf("client %d through the proxy: %d, want each client counted apart", i+1, got.status)
		}
	}
	// One client through the proxy, over its limit.
	fwd.For = "198.51.100.200"
	var got pageAnswer
	for i := range 20 {
		if got = proxy.startSignIn(pnr(1963, 1, 1+i, 100+i)); got.status != 200 {
			break
		}
	}
	if got.status != http.StatusTooManyRequests {
		t.Errorf("one client through the proxy: %d, want 429 at its limit", got.status)
	}
	// A peer that is no trusted proxy names itself in vain.
	direct, own := through("127.0.0.52")
	for i := range 20 {
		own.For = "198.51.100." + strconv.Itoa(100+i)
		if got = direct.startSignIn(pnr(1964, 1, 1+i, 100+i)); got.status != 200 {
			break
		}
	}
	if got.status != http.StatusTooManyRequests {
		t.Errorf("an untrusted peer's X-Forwarded-For: %d, want 429 at the peer's limit", got.status)
	}
}
