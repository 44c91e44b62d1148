package server_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/example/personaldata/cmd/personaldatad/selfservice"
	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/signin"
)

// strongSignIn presses the e-ID button on the start page and follows the
// provider's redirects back to the page.
func (v *pageVisit) strongSignIn() pageAnswer {
	v.t.Helper()
	start := v.send(http.MethodGet, "/", nil)
	if !strings.Contains(start.body, `<a class="button" href="/e-legitimation">Logga in med BankID eller Freja eID</a>`) &&
		!strings.Contains(start.body, `<a class="button" href="/e-legitimation">Sign in with BankID or Freja eID</a>`) {
		v.t.Fatalf("no e-ID button on the start page: %s", start.body)
	}
	return v.send(http.MethodGet, "/e-legitimation", nil)
}

func cookieNamed(cs []*http.Cookie, name string) *http.Cookie {
	for _, c := range cs {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Strong sign-in through an OpenID Connect provider the test runs itself,
// over HTTP through the real server: a person whose personnummer the ID
// token carries is signed in (the session says OIDC, and so does every
// audit event of theirs), with PKCE, state and nonce; a forged state, a
// foreign nonce, a token without the claim, an expired token and a
// replayed answer sign no one in; a person proven by the e-ID whom the
// company's records lack is told that nothing is held, with no session.
func TestSelfServiceOIDCSignIn(t *testing.T) {
	e, provider := startWithOIDC(t)
	c := e.gc()
	sub := create(t, c, 271)
	person := testPerson(271)
	mailer := e.mailer(t, c)
	number := strings.ReplaceAll(person.GetIdentityNumber(), "-", "") // as brokers give it
	personal := []string{person.GetIdentityNumber(), number, person.GetEmail(), person.GetGivenName(), sub.GetSubjectId()}
	sessions := func() int64 {
		n, err := e.coll("self_service_sessions").CountDocuments(context.Background(), bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}

	t.Run("success", func(t *testing.T) {
		provider.login(oidcLogin{number: number})
		b := visitFrom(t, e, "127.0.3.1")
		b.send(http.MethodGet, "/", nil)
		// The start, without following: where it sends the person, and the
		// cookie that waits for the answer.
		req, _ := http.NewRequest(http.MethodGet, b.base+"/e-legitimation", nil)
		noFollow := &http.Client{Jar: b.hc.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		to, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(to.String(), provider.issuer+"/authorize?") {
			t.Fatalf("start: %d to %s, want 303 to the provider", resp.StatusCode, to)
		}
		tx := cookieNamed(resp.Cookies(), "__Host-pd-oidc")
		if tx == nil || !tx.HttpOnly || !tx.Secure || tx.SameSite != http.SameSiteLaxMode || tx.Path != "/" || tx.MaxAge != 600 {
			t.Fatalf("the sign-in's cookie %+v, want __Host-pd-oidc HttpOnly, Secure, SameSite=Lax, 10 minutes", tx)
		}
		if strings.Contains(tx.Value, to.Query().Get("code_challenge")) || !strings.Contains(tx.Value, to.Query().Get("state")) {
			t.Error("the cookie should hold the state and the PKCE verifier, not its challenge")
		}
		// Then on to the provider, which sends the person back.
		req, _ = http.NewRequest(http.MethodGet, to.String(), nil)
		back := b.do(req)
		if back.status != 200 || back.url.Path != selfservice.OIDCCallbackPath || !strings.Contains(back.body, "Du är inloggad") ||
			!strings.Contains(back.body, `<meta http-equiv="refresh" content="0;url=/">`) {
			t.Fatalf("back from the provider: %d at %s: %s", back.status, back.url, back.body)
		}
		if c := cookieNamed(back.cookies, "__Host-pd-oidc"); c == nil || c.MaxAge >= 0 {
			t.Errorf("the sign-in's cookie is not removed once it is used: %+v", c)
		}
		s := cookieNamed(back.cookies, "__Host-pd-self")
		if s == nil || !s.HttpOnly || !s.Secure || s.SameSite != http.SameSiteStrictMode {
			t.Fatalf("session cookie %+v", s)
		}
		me := b.send(http.MethodGet, "/", nil)
		if me.status != 200 || !strings.Contains(me.body, person.GetEmail()) || !strings.Contains(me.body, "Logga ut") {
			t.Fatalf("signed in: %d %s", me.status, me.body)
		}
		var stored bson.M
		if err := e.coll("self_service_sessions").FindOne(context.Background(), bson.D{{Key: "subject", Value: sub.GetSubjectId()}}).Decode(&stored); err != nil || stored["sign_in"] != "oidc" {
			t.Errorf("the stored session %v (%v), want sign_in oidc", stored, err)
		}
		var signIns []*pdv1.AuditEvent
		for _, ev := range subjectTrail(t, e, c, sub.GetSubjectId()) {
			if ev.GetRpc() == signin.SelfServiceSignInRoute {
				signIns = append(signIns, ev)
			}
		}
		if len(signIns) != 1 || signIns[0].GetPrincipalId() != sub.GetSubjectId() || !slices.Contains(signIns[0].GetFields(), "sign_in:oidc") ||
			!slices.Contains(signIns[0].GetFields(), "channel:SELF_SERVICE") {
			t.Errorf("the sign-in's audit events %v, want one with sign_in:oidc", signIns)
		}
		events := selfEvents(t, e, c, sub.GetSubjectId(), "StreamSubjectAccess")
		if len(events) == 0 {
			t.Fatal("no audit event of the overview")
		}
		for _, ev := range events {
			if !slices.Contains(ev.GetFields(), "sign_in:oidc") {
				t.Errorf("audit event %v, want sign_in:oidc", ev.GetFields())
			}
		}
		// The provider's answer again (the back button, or one who saw the
		// address): the cookie is gone, so it signs no one in.
		n := sessions()
		again := b.send(http.MethodGet, back.url.RequestURI(), nil)
		if again.status != http.StatusBadRequest || !strings.Contains(again.body, "gick inte att slutföra") || sessions() != n {
			t.Errorf("the answer replayed: %d, sessions %d then %d", again.status, n, sessions())
		}
		if codes := signInCodes(t, mailer); len(codes) != 0 {
			t.Errorf("codes sent on a strong sign-in: %v", codes)
		}
		b.noPersonal(personal...)
	})

	refused := []struct {
		name  string
		login oidcLogin
		words string
	}{
		{"wrong state", oidcLogin{number: number, state: "forged-state"}, "gick inte att slutföra"},
		{"wrong nonce", oidcLogin{number: number, nonce: "another-sign-in"}, "gick inte att slutföra"},
		{"no personnummer claim", oidcLogin{}, "Vi fick inget personnummer"},
		{"expired token", oidcLogin{number: number, expired: true}, "gick inte att slutföra"},
		{"weaker sign-in than configured", oidcLogin{number: number, acr: "http://id.elegnamnden.se/loa/1.0/loa2"}, "Det sättet att logga in räcker inte här."},
	}
	// Each from an address of its own: the limit of failed sign-ins per
	// address counts these too.
	for i, r := range refused {
		t.Run(r.name, func(t *testing.T) {
			provider.login(r.login)
			b := visitFrom(t, e, "127.0.3."+strconv.Itoa(10+i))
			n := sessions()
			got := b.strongSignIn()
			if got.status != http.StatusBadRequest || !strings.Contains(got.body, r.words) || !strings.Contains(got.body, `action="/logga-in"`) {
				t.Fatalf("%d %s, want 400 with %q and the start page", got.status, got.body, r.words)
			}
			if cookieNamed(got.cookies, "__Host-pd-self") != nil || sessions() != n {
				t.Error("a refused sign-in made a session")
			}
			if me := b.send(http.MethodGet, "/", nil); strings.Contains(me.body, person.GetEmail()) {
				t.Error("signed in after a refused answer")
			}
			b.noPersonal(personal...)
		})
	}
	if logs := e.logs.String(); strings.Contains(logs, number) || strings.Contains(logs, person.GetIdentityNumber()) {
		t.Error("the log names the personnummer")
	}

	// Failed answers count against the address's limit, as wrong codes do.
	t.Run("limited", func(t *testing.T) {
		provider.login(oidcLogin{})
		b := visitFrom(t, e, "127.0.3.90")
		var got pageAnswer
		for range 20 {
			if got = b.strongSignIn(); got.status != http.StatusBadRequest {
				break
			}
		}
		if got.status != http.StatusTooManyRequests || got.header.Get("Retry-After") == "" || !strings.Contains(got.body, "Du har försökt för många gånger.") {
			t.Fatalf("%d %s, want 429 with Retry-After", got.status, got.body)
		}
	})

	// In English, through the provider and back: the language waits in
	// the sign-in's cookie, since the Strict one is not sent back.
	t.Run("in English", func(t *testing.T) {
		provider.login(oidcLogin{})
		b := visitFrom(t, e, "127.0.3.50")
		b.send(http.MethodGet, "/sprak/en", nil)
		got := b.strongSignIn()
		if got.status != http.StatusBadRequest || !strings.Contains(got.body, `<html lang="en">`) || !strings.Contains(got.body, "We got no Swedish personal identity number from your e-ID") {
			t.Fatalf("%d %s, want the refusal in English", got.status, got.body)
		}
	})

	t.Run("unknown personnummer", func(t *testing.T) {
		unknown := pnr(1955, 5, 5, 555)
		provider.login(oidcLogin{number: strings.ReplaceAll(unknown, "-", "")})
		n := sessions()
		strong := visitFrom(t, e, "127.0.3.60").strongSignIn()
		// Proven by the e-ID, the person is told that nothing is held
		// (Art. 15(1)); a typed personnummer never is.
		if strong.status != http.StatusOK || !strings.Contains(strong.body, "har inga personuppgifter om dig i våra egna register") || strings.Contains(strong.body, unknown) {
			t.Fatalf("an unknown personnummer: %d %s, want the page saying nothing is held", strong.status, strong.body)
		}
		if cookieNamed(strong.cookies, "__Host-pd-self") != nil || sessions() != n {
			t.Error("an unknown personnummer made a session")
		}
		if codes := signInCodes(t, mailer); len(codes) != 0 {
			t.Errorf("codes sent for an unknown person: %v", codes)
		}
	})

	// Last, for it leaves the trail refusing writes: a second sign-in of
	// the same person whose audit event cannot be written gets no session
	// (a unique index that the event breaks, as TestAuditFailsClosed does).
	t.Run("no trail, no session", func(t *testing.T) {
		if _, err := e.coll("audit_events").Indexes().CreateOne(context.Background(), mongo.IndexModel{
			Keys: bson.D{{Key: "subject_id", Value: 1}, {Key: "rpc", Value: 1}}, Options: options.Index().SetUnique(true),
		}); err != nil {
			t.Fatal(err)
		}
		provider.login(oidcLogin{number: number})
		n := sessions()
		b := visitFrom(t, e, "127.0.3.95")
		got := b.strongSignIn()
		if got.status != http.StatusInternalServerError || cookieNamed(got.cookies, "__Host-pd-self") != nil || sessions() != n {
			t.Errorf("a sign-in the trail cannot take: %d, sessions %d then %d; want 500 and no session", got.status, n, sessions())
		}
	})
}

// Without an issuer the page offers no strong sign-in.
func TestSelfServiceOIDCOff(t *testing.T) {
	e := start(t)
	b := visitFrom(t, e, "127.0.0.1")
	if page := b.send(http.MethodGet, "/", nil); strings.Contains(page.body, "e-legitimation") || strings.Contains(page.body, "BankID") {
		t.Errorf("an e-ID button without an issuer: %s", page.body)
	}
	if got := b.send(http.MethodGet, selfservice.OIDCCallbackPath+"?code=x&state=y", nil); got.status != http.StatusNotFound {
		t.Errorf("the provider's return without an issuer: %d, want 404", got.status)
	}
}
