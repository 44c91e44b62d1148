package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// tokenPrefix marks the token format, so a leaked token is recognisable by
// secret scanners and a future format can be told apart.
const tokenPrefix = "pd1."

// NewToken returns a fresh bearer token for a principal and the hash to
// store. The token names its principal, so checking it is one read by _id;
// its 256 random bits make it unguessable, so a fast hash is enough.
func NewToken(principalID string) (token, hash string) {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret) // never fails (crypto/rand)
	token = tokenPrefix + principalID + "." + base64.RawURLEncoding.EncodeToString(secret)
	return token, HashToken(token)
}

// HashToken is the stored form of a token.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// tokenPrincipal returns the principal id a token names.
func tokenPrincipal(token string) (string, bool) {
	rest, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return "", false
	}
	id, secret, ok := strings.Cut(rest, ".")
	if !ok || id == "" || len(secret) != 43 {
		return "", false
	}
	return id, true
}

// hashMatches compares in constant time.
func hashMatches(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
