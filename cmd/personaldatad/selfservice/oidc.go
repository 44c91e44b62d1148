package selfservice

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/example/personaldata/service/signin"
	"github.com/example/personaldata/store"
)

// Strong sign-in: the person signs in with BankID or Freja eID at an
// OpenID Connect provider (an e-ID broker), whose ID token carries their
// personnummer in a claim. The authorization code flow with PKCE; state,
// nonce and the PKCE verifier wait in a short-lived cookie of this
// browser, so that any replica can take the provider's answer. The
// personnummer is matched as the sign-in by code matches it; a person
// proven by an e-ID whom the company's own records lack is told so.

// OIDC configures strong sign-in; it is off while Issuer is empty.
type OIDC struct {
	// Issuer is the provider's issuer URL, where its discovery document
	// is (/.well-known/openid-configuration).
	Issuer string
	// ClientID and ClientSecret are the page's registration at the
	// provider; the secret may be empty for a public client (PKCE alone).
	ClientID, ClientSecret string
	// RedirectURL is where the provider sends the person back: the page's
	// own address with the path OIDCCallbackPath, as registered there.
	RedirectURL string
	// Claim is the ID token's claim that holds the personnummer
	// (DefaultOIDCClaim when empty).
	Claim string
	// Scopes are asked for besides openid (DefaultOIDCScope when nil).
	Scopes []string
	// ACR, when set, are the authentication context classes that count
	// as strong (such as LoA 3, http://id.elegnamnden.se/loa/1.0/loa3):
	// they are asked for, and an ID token whose acr is none of them signs
	// no one in. For a broker that offers weaker ways in as well.
	ACR []string
}

const (
	// DefaultOIDCClaim is the personnummer's claim in the Swedish OpenID
	// Connect profile (oidc.se), which Sweden Connect's brokers follow.
	DefaultOIDCClaim = "https://id.oidc.se/claim/personalIdentityNumber"
	// DefaultOIDCScope is that profile's scope that releases it.
	DefaultOIDCScope = "https://id.oidc.se/scope/naturalPersonNumber"
	// OIDCCallbackPath is the path of the page the provider sends the
	// person back to.
	OIDCCallbackPath = "/e-legitimation/retur"
)

// oidcCookie holds a strong sign-in under way: state, nonce, PKCE
// verifier and the page's language. SameSite=Lax, not Strict: the
// provider's redirect back is a navigation from another site, with which
// a browser sends Lax cookies and never Strict ones.
const (
	oidcCookie   = "__Host-pd-oidc"
	oidcLifetime = 10 * time.Minute
)

// strong is strong sign-in as configured; the provider is discovered on
// the first sign-in (and again after a failure), so that the page starts
// while the provider is away.
type strong struct {
	cfg OIDC
	now func() time.Time
	hc  *http.Client

	mu       sync.Mutex
	oauth    *oauth2.Config
	verifier *oidc.IDTokenVerifier
}

// newStrong checks cfg; nil when strong sign-in is off.
func newStrong(cfg OIDC, now func() time.Time) (*strong, error) {
	if cfg.Issuer == "" {
		return nil, nil
	}
	if err := webURL(cfg.Issuer); err != nil {
		return nil, fmt.Errorf("self-service OIDC issuer: %w", err)
	}
	if cfg.ClientID == "" {
		return nil, errors.New("self-service OIDC: a client id is needed with an issuer")
	}
	if err := webURL(cfg.RedirectURL); err != nil {
		return nil, fmt.Errorf("self-service OIDC redirect URL: %w", err)
	}
	if u, _ := url.Parse(cfg.RedirectURL); u.Path != OIDCCallbackPath || u.RawQuery != "" {
		return nil, fmt.Errorf("self-service OIDC redirect URL: its path must be %s (the page's own address, such as https://minasidor.example.se%s)", OIDCCallbackPath, OIDCCallbackPath)
	}
	if cfg.Claim == "" {
		cfg.Claim = DefaultOIDCClaim
	}
	if cfg.Scopes == nil {
		cfg.Scopes = []string{DefaultOIDCScope}
	}
	if !slices.Contains(cfg.Scopes, oidc.ScopeOpenID) {
		cfg.Scopes = append([]string{oidc.ScopeOpenID}, cfg.Scopes...)
	}
	return &strong{cfg: cfg, now: now, hc: &http.Client{Timeout: 10 * time.Second}}, nil
}

// webURL refuses anything but an https URL, or http to loopback (tests,
// and a provider on the same machine).
func webURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Host == "":
		return errors.New("not an absolute URL")
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http":
		if ip := net.ParseIP(u.Hostname()); u.Hostname() == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
	}
	return errors.New("must be https (http only to loopback)")
}

// client is the OAuth 2 configuration and the ID token verifier, from the
// provider's discovery document.
func (s *strong) client(ctx context.Context) (*oauth2.Config, *oidc.IDTokenVerifier, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.oauth != nil {
		return s.oauth, s.verifier, nil
	}
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, s.hc), s.cfg.Issuer)
	if err != nil {
		return nil, nil, err
	}
	s.oauth = &oauth2.Config{ClientID: s.cfg.ClientID, ClientSecret: s.cfg.ClientSecret, RedirectURL: s.cfg.RedirectURL,
		Endpoint: p.Endpoint(), Scopes: s.cfg.Scopes}
	// Its keys are fetched with the client's timeout, not the request's
	// context, which ends with the request.
	s.verifier = p.VerifierContext(oidc.ClientContext(context.Background(), s.hc), &oidc.Config{ClientID: s.cfg.ClientID, Now: s.now})
	return s.oauth, s.verifier, nil
}

// Why a provider's answer was refused, for the log: never a value of it.
var (
	errOIDCExchange = errors.New("the code could not be exchanged for tokens")
	errOIDCNoToken  = errors.New("no ID token in the token response")
	errOIDCNonce    = errors.New("the ID token's nonce is not this sign-in's")
	errOIDCNoClaim  = errors.New("the ID token holds no personnummer in the configured claim")
	errOIDCWeak     = errors.New("the ID token's acr is none of those configured")
)

// personnummer exchanges code for the ID token, checks it (signature,
// issuer, audience, expiry, nonce) and returns the personnummer it holds.
func (s *strong) personnummer(ctx context.Context, code, nonce, verifier string) (string, error) {
	oc, v, err := s.client(ctx)
	if err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	tok, err := oc.Exchange(context.WithValue(ctx, oauth2.HTTPClient, s.hc), code, oauth2.VerifierOption(verifier))
	if err != nil {
		// Only the provider's error code: its response is not ours to log.
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode != "" {
			return "", fmt.Errorf("%w: %s", errOIDCExchange, re.ErrorCode)
		}
		return "", errOIDCExchange
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return "", errOIDCNoToken
	}
	id, err := v.Verify(ctx, raw)
	if err != nil {
		return "", err
	}
	if subtle.ConstantTimeCompare([]byte(id.Nonce), []byte(nonce)) != 1 {
		return "", errOIDCNonce
	}
	var claims map[string]any
	if err := id.Claims(&claims); err != nil {
		return "", errOIDCNoClaim
	}
	if acr, _ := claims["acr"].(string); len(s.cfg.ACR) > 0 && !slices.Contains(s.cfg.ACR, acr) {
		return "", errOIDCWeak
	}
	number, _ := claims[s.cfg.Claim].(string)
	if number == "" {
		return "", errOIDCNoClaim
	}
	return number, nil
}

func (p *Page) strongRoutes() {
	if p.strong == nil {
		return
	}
	p.mux.HandleFunc("GET /e-legitimation", p.strongStart)
	p.mux.HandleFunc("GET "+OIDCCallbackPath, p.strongReturn)
}

// strongStart sends the person to the provider. A link, not a form: the
// page's CSP (form-action 'self') holds a form's redirects to this site,
// and starting a sign-in changes nothing but this browser's sign-in
// cookie, so it needs no CSRF token; the state is what binds the answer to
// this browser.
func (p *Page) strongStart(w http.ResponseWriter, r *http.Request) {
	l := language(r)
	oc, _, err := p.strong.client(r.Context())
	if err != nil {
		p.cfg.Log.Warn("self-service OIDC discovery", slog.String("error", err.Error()))
		p.render(w, view{Lang: l, Title: l.say("Logga in", "Sign in"), Step: "start", CSRF: p.preCSRF(w, r), Status: http.StatusServiceUnavailable,
			Error: l.say("Det går inte att logga in med e-legitimation just nu. Logga in med en kod i stället, eller försök igen om en stund.",
				"Signing in with an e-ID does not work just now. Sign in with a code instead, or try again in a while.")})
		return
	}
	state, nonce, verifier := random(), random(), oauth2.GenerateVerifier()
	http.SetCookie(w, &http.Cookie{Name: oidcCookie, Value: strings.Join([]string{state, nonce, verifier, string(l)}, "."), Path: "/",
		HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode, MaxAge: int(oidcLifetime / time.Second)})
	opts := []oauth2.AuthCodeOption{oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)}
	if len(p.strong.cfg.ACR) > 0 {
		opts = append(opts, oauth2.SetAuthURLParam("acr_values", strings.Join(p.strong.cfg.ACR, " ")))
	}
	http.Redirect(w, r, oc.AuthCodeURL(state, opts...), http.StatusSeeOther)
}

// strongReturn takes the provider's answer and signs the person in.
func (p *Page) strongReturn(w http.ResponseWriter, r *http.Request) {
	var state, nonce, verifier string
	l := language(r)
	if c, err := r.Cookie(oidcCookie); err == nil {
		if parts := strings.Split(c.Value, "."); len(parts) == 4 {
			state, nonce, verifier, l = parts[0], parts[1], parts[2], lang(parts[3])
			if l != "en" {
				l = "sv"
			}
		}
	}
	// The sign-in is over, whatever the answer: the cookie goes.
	p.setCookie(w, oidcCookie, "", -1)
	failed := func(status int, sv, en string) {
		p.render(w, view{Lang: l, Title: l.say("Logga in", "Sign in"), Step: "start", CSRF: p.preCSRF(w, r), Status: status, Error: l.say(sv, en)})
	}
	q := r.URL.Query()
	if state == "" || !sameToken(state, q.Get("state")) {
		failed(http.StatusBadRequest, "Inloggningen gick inte att slutföra. Börja om och försök igen.", "The sign-in could not be completed. Start again and try once more.")
		return
	}
	if q.Get("error") != "" {
		failed(http.StatusBadRequest, "Inloggningen med e-legitimation avbröts. Börja om och försök igen, eller logga in med en kod.",
			"The sign-in with an e-ID was cancelled. Start again and try once more, or sign in with a code.")
		return
	}
	att, lim := p.codeByAddr.Admit(p.clientKey(r), p.cfg.Now())
	if lim != nil {
		p.limitedAnswer(w, r, lim.Wait, "start")
		return
	}
	number, err := p.strong.personnummer(r.Context(), q.Get("code"), nonce, verifier)
	var subject string
	if err == nil {
		subject, err = p.cfg.SignIn.SelfServiceSubjectByIdentityNumber(r.Context(), number)
		if err != nil && !errors.Is(err, signin.ErrSelfServiceUnknown) && !errors.Is(err, signin.ErrSelfServiceIdentity) {
			att.Done(p.cfg.Now(), false)
			p.cfg.Log.Warn("self-service OIDC sign-in", slog.String("error", err.Error()))
			p.ourFault(w, r, "start")
			return
		}
	}
	att.Done(p.cfg.Now(), err != nil && !errors.Is(err, signin.ErrSelfServiceUnknown))
	switch {
	case errors.Is(err, signin.ErrSelfServiceUnknown):
		// No one of ours. Unlike a typed personnummer, this one is proven
		// by an e-ID: the only person told is the person it is about, who
		// has a right to know that nothing is held (Art. 15(1)).
		p.render(w, view{Lang: l, Title: l.say("Vi har inga uppgifter om dig", "We hold no details about you"), Step: "none",
			Info: l.say("Vi har letat efter ditt personnummer och har inga personuppgifter om dig i våra egna register.",
				"We have searched for your personal identity number and hold no personal data about you in our own records.")})
		return
	case errors.Is(err, errOIDCNoClaim), errors.Is(err, signin.ErrSelfServiceIdentity):
		p.cfg.Log.Warn("self-service OIDC sign-in refused", slog.String("error", errOIDCNoClaim.Error()), slog.String("claim", p.strong.cfg.Claim))
		failed(http.StatusBadRequest, "Vi fick inget personnummer från din e-legitimation, så vi vet inte vem du är. Logga in med en kod i stället.",
			"We got no Swedish personal identity number from your e-ID, so we do not know who you are. Sign in with a code instead.")
		return
	case errors.Is(err, errOIDCWeak):
		p.cfg.Log.Warn("self-service OIDC sign-in refused", slog.String("error", err.Error()))
		failed(http.StatusBadRequest, "Det sättet att logga in räcker inte här. Logga in med BankID eller Freja eID, eller med en kod.",
			"That way of signing in is not enough here. Sign in with BankID or Freja eID, or with a code.")
		return
	case err != nil:
		p.cfg.Log.Warn("self-service OIDC sign-in refused", slog.String("error", err.Error()))
		failed(http.StatusBadRequest, "Inloggningen gick inte att slutföra. Börja om och försök igen.", "The sign-in could not be completed. Start again and try once more.")
		return
	}
	if !p.newSession(w, r, subject, store.SignInOIDC) {
		return
	}
	// A page, not a redirect: the session cookie is Strict, and a browser
	// withholds it from every step of a redirect chain that another site
	// began. The page's own refresh is a navigation from this site.
	p.render(w, view{Lang: l, Title: l.say("Du är inloggad", "You are signed in"), Step: "continue"})
}

func init() {
	template.Must(pageTemplate.Parse(strongTemplate))
}

// strongCSS keeps a word with a hyphen on one line.
const strongCSS = `.word{white-space:nowrap}
`

const strongTemplate = `{{define "strong-head"}}{{if eq .Step "continue"}}<meta http-equiv="refresh" content="0;url=/">{{end}}{{end}}
{{define "strong"}}{{if .Strong}}
<h2>{{if eq .Lang "en"}}Or sign in with an <span class="word">e-ID</span>{{else}}Eller logga in med <span class="word">e-legitimation</span>{{end}}</h2>
<p>{{say .Lang "Med BankID eller Freja eID behöver du ingen kod." "With BankID or Freja eID you need no code."}}</p>
<p><a class="button" href="/e-legitimation">{{say .Lang "Logga in med BankID eller Freja eID" "Sign in with BankID or Freja eID"}}</a></p>
{{end}}{{end}}
{{define "continue"}}<p><a class="button" href="/">{{say .Lang "Fortsätt till dina uppgifter" "Go on to your details"}}</a></p>{{end}}
`
