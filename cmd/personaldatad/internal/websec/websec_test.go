package websec

import (
	"net/http"
	"testing"
)

func TestTokenAndKey(t *testing.T) {
	a, b := Token(), Token()
	if len(a) != 43 || a == b {
		t.Errorf("tokens %q and %q: want 43 characters each, and different", a, b)
	}
	k := Key("console-session", a)
	if k != Key("console-session", a+"") || k == Key("self-service-session", a) || k == a || len(k) != 64 {
		t.Error("a key must be the same for the same domain and id, differ between domains, and not be the id")
	}
}

func TestHeaders(t *testing.T) {
	h := http.Header{}
	Headers(h, "default-src 'none'", false)
	for name, want := range map[string]string{"Content-Security-Policy": "default-src 'none'", "Cache-Control": "no-store", "X-Frame-Options": "DENY",
		"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Strict-Transport-Security": ""} {
		if got := h.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	Headers(h, "x", true)
	if h.Get("Strict-Transport-Security") == "" {
		t.Error("no HSTS over TLS")
	}
}
