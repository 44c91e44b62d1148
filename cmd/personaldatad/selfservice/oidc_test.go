package selfservice

import (
	"strings"
	"testing"
	"time"
)

// newStrong refuses a configuration that would send people or tokens
// where they should not go.
func TestNewStrongChecksConfig(t *testing.T) {
	ok := OIDC{Issuer: "https://broker.example.test", ClientID: "pd", RedirectURL: "https://minasidor.example.test" + OIDCCallbackPath}
	for _, c := range []struct {
		name    string
		change  func(*OIDC)
		wantErr string
	}{
		{name: "ok", change: func(*OIDC) {}},
		{name: "http issuer off loopback", change: func(o *OIDC) { o.Issuer = "http://broker.example.test" }, wantErr: "https"},
		{name: "no client id", change: func(o *OIDC) { o.ClientID = "" }, wantErr: "client id"},
		{name: "redirect elsewhere", change: func(o *OIDC) { o.RedirectURL = "https://minasidor.example.test/callback" }, wantErr: OIDCCallbackPath},
		{name: "relative redirect", change: func(o *OIDC) { o.RedirectURL = OIDCCallbackPath }, wantErr: "absolute"},
		{name: "http to loopback", change: func(o *OIDC) {
			o.Issuer, o.RedirectURL = "http://localhost:9000", "http://127.0.0.1:8443"+OIDCCallbackPath
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := ok
			c.change(&cfg)
			s, err := newStrong(cfg, time.Now)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("%v, want an error about %q", err, c.wantErr)
				}
				return
			}
			if err != nil || s == nil || s.cfg.Claim != DefaultOIDCClaim || s.cfg.Scopes[0] != "openid" {
				t.Fatalf("%+v, %v", s, err)
			}
		})
	}
	if s, err := newStrong(OIDC{}, time.Now); s != nil || err != nil {
		t.Errorf("no issuer: %v, %v; want off", s, err)
	}
}
