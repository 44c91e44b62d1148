// Package websec is what the daemon's two sets of pages, the support
// console and the data subjects' own page, do alike to keep a browser's
// session safe: random tokens, the stored key of a session id, and the
// security headers of every answer.
package websec

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
)

// Token is 256 random bits, URL-safe: a session id, a CSRF token.
func Token() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Key is what a store keeps of the secret id in domain (such as
// "console-session"): a hash, so that what the store holds cannot be sent
// back as the id.
func Key(domain, id string) string {
	h := sha256.Sum256([]byte(domain + "\x00" + id))
	return hex.EncodeToString(h[:])
}

// Headers sets the security headers of an answer that may hold personal
// data: the page's CSP, no type sniffing, no referrer, no framing, no
// window or resource shared with another origin, no copy in any cache
// (the few static files are small enough to fetch each time as well), and,
// over TLS, HSTS.
func Headers(h http.Header, csp string, tls bool) {
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	if tls {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
}
