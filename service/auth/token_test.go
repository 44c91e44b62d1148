package auth

import (
	"strings"
	"testing"
)

func TestTokens(t *testing.T) {
	token, hash := NewToken("billing")
	if !strings.HasPrefix(token, "pd1.billing.") || HashToken(token) != hash || strings.Contains(hash, "billing") {
		t.Fatalf("token %q hash %q", token, hash)
	}
	if other, _ := NewToken("billing"); other == token {
		t.Fatal("two tokens are the same")
	}
	if id, ok := tokenPrincipal(token); !ok || id != "billing" {
		t.Errorf("tokenPrincipal(%q) = %q, %v", token, id, ok)
	}
	for _, bad := range []string{"", "pd1.", "pd1.billing", "pd1..x", "pd2.billing." + strings.Repeat("a", 43), "pd1.billing.short", token + "x"} {
		if _, ok := tokenPrincipal(bad); ok {
			t.Errorf("tokenPrincipal accepted %q", bad)
		}
	}
}

func TestDefaults(t *testing.T) {
	for kind := range kindDefaults {
		for _, m := range DefaultRPCs(kind) {
			if !KnownRPC(m) {
				t.Errorf("%v: unknown RPC %s", kind, m)
			}
		}
	}
	billing := DefaultRPCs(1) // billing system: least privilege
	for _, m := range billing {
		if strings.Contains(m, "AccessSubject") || strings.Contains(m, "EraseSubject") || strings.Contains(m, "PrincipalService") {
			t.Errorf("the billing system may call %s", m)
		}
	}
}
