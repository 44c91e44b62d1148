package console

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"strings"
	"unicode/utf8"
)

// form is one form on a page: where it goes, the idempotency key it
// carries, and after a refused submission what was sent and what was wrong.
type form struct {
	Name   string
	Action string
	// Key is the idempotency key of this rendering of the form: a double
	// submission sends it twice and the service acts once. A form shown
	// again after a refusal keeps its key, since the refused request wrote
	// nothing, and a request that did act answers the same again.
	Key     string
	Problem *problem
	sent    url.Values
}

// newForm is form name of the page, fresh, or as submitted when state is
// its refused submission.
func newForm(name, action string, state *formState) *form {
	f := &form{Name: name, Action: action, Key: "console." + randomToken()}
	if state != nil && state.Name == name {
		f.sent, f.Problem = state.Values, state.Problem
		if k := state.Values.Get("idempotency_key"); validKey(k) {
			f.Key = k
		}
	}
	return f
}

// Value is what the field shows: what was sent, or else def.
func (f *form) Value(field, def string) string {
	if f.sent != nil {
		return f.sent.Get(field)
	}
	return def
}

// Selected says whether value is the field's choice (def when unsent).
func (f *form) Selected(field, value, def string) bool {
	return f.Value(field, def) == value
}

// Checked says whether a checkbox was sent checked.
func (f *form) Checked(field string) bool {
	return f.sent != nil && f.sent.Get(field) != ""
}

// Error is the problem with the field of element id, if any.
func (f *form) Error(id string) string { return f.Problem.FieldMessage(id) }

// formState is a refused submission, shown again with its problem.
type formState struct {
	Name    string
	Values  url.Values
	Problem *problem
}

// validKey says whether k is an idempotency key this console issued.
func validKey(k string) bool {
	rest, ok := strings.CutPrefix(k, "console.")
	return ok && len(rest) == 43 && !strings.ContainsFunc(rest, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
	})
}

// digest marks a value shown in a form, so that the submission tells which
// fields were changed without sending the old values back: an HMAC under
// the session's CSRF token, which the page holds anyway.
func digest(s *session, field, value string) string {
	m := hmac.New(sha256.New, []byte(s.CSRF))
	m.Write([]byte(field + "\x00" + value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// changed says whether field was sent with another value than shown.
func changed(s *session, v url.Values, field, value string) bool {
	return !hmac.Equal([]byte(v.Get("orig."+field)), []byte(digest(s, field, value)))
}

// cleanForm refuses a submission that is not valid UTF-8, which the API
// could not carry, before anything is sent.
func cleanForm(v url.Values) bool {
	for k, vs := range v {
		if !utf8.ValidString(k) {
			return false
		}
		for _, s := range vs {
			if !utf8.ValidString(s) {
				return false
			}
		}
	}
	return true
}
