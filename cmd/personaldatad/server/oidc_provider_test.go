package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/example/personaldata/cmd/personaldatad/selfservice"
	"github.com/example/personaldata/cmd/personaldatad/server"
	"github.com/example/personaldata/store/storetest"
)

// oidcProvider is an OpenID Connect provider the test runs itself, as an
// e-ID broker would be: discovery, keys, an authorization endpoint that
// signs in at once whoever the test named, and a token endpoint that
// checks the client, the code and its PKCE verifier before it signs an ID
// token (ES256, go-jose). Its issuer is http://localhost:PORT, another
// site than the page's http://127.0.0.1:PORT, as a broker is.
type oidcProvider struct {
	t        *testing.T
	issuer   string
	redirect string // the page's redirect URL, as registered
	now      func() time.Time
	signer   jose.Signer
	jwks     []byte

	mu      sync.Mutex
	next    oidcLogin
	pending map[string]oidcGrant // by code
}

// oidcLogin is what the provider answers the next sign-in with.
type oidcLogin struct {
	number  string // the personnummer claim's value; "" leaves the claim out
	state   string // sent back instead of the page's state, when set
	nonce   string // put in the ID token instead of the page's, when set
	expired bool   // an ID token whose time ran out a minute ago
	acr     string // the ID token's acr (oidcStrong when empty)
	// page shows a page of the provider's own, where the person goes on
	// with a link (as after BankID), instead of sending them straight back.
	page bool
}

type oidcGrant struct {
	oidcLogin
	nonce, challenge string
}

const (
	oidcClientID     = "personaldata-test"
	oidcClientSecret = "test-secret-not-personal"
	// oidcStrong is the one acr the page is configured to accept.
	oidcStrong = "http://id.elegnamnden.se/loa/1.0/loa3"
)

// startWithOIDC starts a provider and a server whose page offers strong
// sign-in through it.
func startWithOIDC(t *testing.T) (*env, *oidcProvider) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := &oidcProvider{t: t, pending: map[string]oidcGrant{}}
	if p.signer, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1")); err != nil {
		t.Fatal(err)
	}
	if p.jwks, err = json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: key.Public(), KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(p.jwks) })
	mux.HandleFunc("GET /authorize", p.authorize)
	mux.HandleFunc("POST /token", p.token)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p.issuer = "http://localhost:" + port

	// The page's address must be known before it starts, to be registered.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	selfAddr := l.Addr().String()
	l.Close()
	p.redirect = "http://" + selfAddr + selfservice.OIDCCallbackPath
	e := startOn(t, storetest.URI(), func(c *server.Config) {
		c.SelfServiceAddr = selfAddr
		c.SelfServiceOIDC = selfservice.OIDC{Issuer: p.issuer, ClientID: oidcClientID, ClientSecret: oidcClientSecret, RedirectURL: p.redirect,
			ACR: []string{oidcStrong}}
	})
	p.now = e.clock.Now
	return e, p
}

// login sets what the next sign-in at the provider answers.
func (p *oidcProvider) login(l oidcLogin) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.next = l
}

func (p *oidcProvider) discovery(w http.ResponseWriter, _ *http.Request) {
	_ = json.NewEncoder(w).Encode(map[string]any{
		"issuer": p.issuer, "authorization_endpoint": p.issuer + "/authorize", "token_endpoint": p.issuer + "/token",
		"jwks_uri": p.issuer + "/jwks", "response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
		"id_token_signing_alg_values_supported": []string{"ES256"}, "code_challenge_methods_supported": []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic"},
	})
}

// authorize checks the page's request (code flow, PKCE S256, the scopes,
// a nonce) and sends the person straight back with a code.
func (p *oidcProvider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	scopes := strings.Fields(q.Get("scope"))
	if q.Get("client_id") != oidcClientID || q.Get("response_type") != "code" || q.Get("redirect_uri") != p.redirect ||
		q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("nonce") == "" || q.Get("state") == "" ||
		!slices.Contains(scopes, "openid") || !slices.Contains(scopes, selfservice.DefaultOIDCScope) || q.Get("acr_values") != oidcStrong {
		p.t.Errorf("provider: a bad authorization request %v", q)
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	code := randomString()
	p.pending[code] = oidcGrant{oidcLogin: p.next, nonce: q.Get("nonce"), challenge: q.Get("code_challenge")}
	next := p.next
	p.mu.Unlock()
	state := q.Get("state")
	if next.state != "" {
		state = next.state
	}
	back := p.redirect + "?" + url.Values{"code": {code}, "state": {state}}.Encode()
	if next.page {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html lang="sv"><title>Provider</title><a id="approve" href="%s">Fortsätt</a></html>`, html.EscapeString(back))
		return
	}
	http.Redirect(w, r, back, http.StatusFound)
}

// token gives the ID token for a code, once, to the client that shows its
// secret and the verifier of the code's challenge.
func (p *oidcProvider) token(w http.ResponseWriter, r *http.Request) {
	id, secret, _ := r.BasicAuth()
	code := r.PostFormValue("code")
	p.mu.Lock()
	g, ok := p.pending[code]
	delete(p.pending, code)
	p.mu.Unlock()
	sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
	if id != oidcClientID || secret != oidcClientSecret || !ok || r.PostFormValue("grant_type") != "authorization_code" ||
		r.PostFormValue("redirect_uri") != p.redirect || base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
		return
	}
	now := p.now()
	exp := now.Add(5 * time.Minute)
	if g.expired {
		exp = now.Add(-time.Minute)
	}
	nonce := g.oidcLogin.nonce
	if nonce == "" {
		nonce = g.nonce
	}
	claims := map[string]any{"iss": p.issuer, "sub": "broker-subject-" + code[:8], "aud": oidcClientID,
		"iat": now.Add(-2 * time.Minute).Unix(), "exp": exp.Unix(), "nonce": nonce}
	claims["acr"] = g.acr
	if g.acr == "" {
		claims["acr"] = oidcStrong
	}
	if g.number != "" {
		claims[selfservice.DefaultOIDCClaim] = g.number
	}
	raw, err := jwt.Signed(p.signer).Claims(claims).Serialize()
	if err != nil {
		p.t.Errorf("provider: sign: %v", err)
		http.Error(w, "sign", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": randomString(), "token_type": "Bearer", "expires_in": 300, "id_token": raw})
}

func randomString() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
