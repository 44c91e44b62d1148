// Package contact validates and normalises contact details (phone numbers
// and e-mail addresses) so that they can be stored in one canonical form and
// compared reliably.
//
// Whether a number or a domain is valid is decided by the libraries built for
// it: github.com/nyaruka/phonenumbers (Google's libphonenumber metadata) for
// phone numbers and golang.org/x/net/idna for internationalised domains. This
// package adds only the form rules on top: which spellings it accepts, and
// what it stores.
//
// Contact details are personal data, so errors from this package never
// include the value being checked: they are fixed, short, lower-case reasons
// that can be shown to the user and logged as they are.
package contact

import (
	"errors"
	"net/mail"
	"strings"

	"github.com/nyaruka/phonenumbers"
	"golang.org/x/net/idna"
)

// Errors returned by Phone and Email. Their texts are meant to be shown to
// end users as they are and never include the input.
var (
	// ErrPhone means the input is not a valid phone number in a form Phone
	// accepts.
	ErrPhone = errors.New("must be a valid phone number, Swedish with a leading 0 or international with + or 00")
	// ErrEmail means the input is not a plain e-mail address with a valid
	// domain.
	ErrEmail = errors.New("not a valid e-mail address")
	// ErrTooLong means the input, or a part of it, exceeds a length limit.
	ErrTooLong = errors.New("too long")
)

const (
	// maxPhoneInput bounds the raw phone input. A real number with
	// generous separators fits easily; the bound stops absurd inputs early.
	maxPhoneInput = 64
	// phoneRegion is the region a number without a country code belongs
	// to: the company is Swedish, and so are most of its customers.
	phoneRegion = "SE"

	// maxEmail is the longest address that fits in an SMTP path (RFC 5321),
	// checked on the stored (ASCII) form.
	maxEmail = 254
	// maxEmailInput bounds the raw e-mail input before the domain is
	// converted; a Unicode domain may be longer in UTF-8 than in ASCII.
	maxEmailInput = 4 * maxEmail
	// maxLocal is the RFC 5321 limit on the part before the "@".
	maxLocal = 64
	// maxLabel is the DNS limit on one label of the domain.
	maxLabel = 63
)

// Phone checks a phone number and returns it in E.164, e.g. "+46701234567".
//
// The number must be valid in its country's numbering plan
// (phonenumbers.IsValidNumber): a number of the wrong length for its range,
// or in a range or country code not in use, is refused.
//
// Accepted spellings are Swedish national numbers with the trunk 0 ("070-123
// 45 67", "(08) 123 456 78") and international numbers written with "+" or
// the "00" international prefix ("+46 70 123 45 67", "0046701234567", "+44
// (0)20 7946 0958"). Spaces, dashes, dots and parentheses may separate ASCII
// digits. The library would also read letters as keypad digits, pick a
// number out of surrounding text, split off an extension and take a number
// without the trunk 0 as Swedish; all of that is refused here rather than
// guessed at, because the result is stored as the subject's number.
func Phone(s string) (string, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxPhoneInput {
		return "", ErrTooLong
	}
	if !phoneSpelling(s) {
		return "", ErrPhone
	}
	// The library's errors are not passed on: they may quote the input.
	n, err := phonenumbers.Parse(s, phoneRegion)
	if err != nil || n.Extension != nil || !phonenumbers.IsValidNumber(n) {
		return "", ErrPhone
	}
	return phonenumbers.Format(n, phonenumbers.E164), nil
}

// PhoneDisplay is a stored (E.164) number as people write it: a Swedish
// one in the national form ("070-123 45 67"), another in the international
// form ("+44 20 7946 0958"). What cannot be read is returned as it is.
func PhoneDisplay(e164 string) string {
	n, err := phonenumbers.Parse(e164, phoneRegion)
	if err != nil {
		return e164
	}
	if phonenumbers.GetRegionCodeForNumber(n) == phoneRegion {
		return phonenumbers.Format(n, phonenumbers.NATIONAL)
	}
	return phonenumbers.Format(n, phonenumbers.INTERNATIONAL)
}

// phoneSpelling reports whether s is written in a form Phone accepts: ASCII
// digits and separators, with either a leading "+" or a first digit 0 (the
// Swedish trunk prefix, or the first of the "00" international prefix).
func phoneSpelling(s string) bool {
	first := byte(0) // first digit
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			if first == 0 {
				first = c
			}
		case c == '+' && i == 0:
			first = c
		case c == ' ' || c == '-' || c == '.' || c == '(' || c == ')':
		default:
			return false
		}
	}
	return first == '+' || first == '0'
}

// Email checks an e-mail address and returns it in its canonical form:
// surrounding whitespace removed and the domain in its IDNA ASCII form
// (lower case, internationalised labels as A-labels: "a@Räksmörgås.SE"
// becomes "a@xn--rksmrgs-5wao1o.se"). The local part keeps its case because
// RFC 5321 lets servers treat it as case-sensitive.
//
// The ASCII form is the one stored: it is how the domain travels in DNS and
// SMTP, and with one form stored, an address matches whether it is given
// with the Unicode (U-label) or the ASCII (A-label) domain. For display,
// idna.Display.ToUnicode turns it back into what people read.
//
// Only the bare address form is accepted ("user@example.com"), not a display
// name, angle brackets, comments or a quoted local part, because the result
// is stored and used as an address, not as a header value. Syntax is checked
// with net/mail, the domain with the IDNA lookup profile (UTS #46 mapping:
// case and width folded, then IDNA2008 validity, bidi and joiner rules,
// punycode that decodes to a valid label). On top of that the stored form
// must fit an SMTP path (254 bytes, 64 for the local part) and its domain
// must be a host name of at least two DNS labels (ASCII letters, digits and
// inner hyphens, each at most 63 bytes) whose last label is not all digits.
// That rules out IP addresses, both as literals ("[192.0.2.1]") and dotted,
// and single-label domains such as "localhost", which are not deliverable
// on the public internet.
func Email(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", ErrEmail
	}
	if len(s) > maxEmailInput {
		return "", ErrTooLong
	}
	addr, err := mail.ParseAddress(s)
	// net/mail also accepts "Name <addr>", comments and quoted local parts;
	// requiring the parsed address to be the whole input rejects them all.
	// Its error is not passed on: it may quote part of the input.
	if err != nil || addr.Name != "" || addr.Address != s {
		return "", ErrEmail
	}
	at := strings.LastIndexByte(s, '@')
	if at < 0 { // cannot happen after ParseAddress; kept so slicing is safe
		return "", ErrEmail
	}
	local, domain := s[:at], s[at+1:]
	if len(local) > maxLocal {
		return "", ErrTooLong
	}
	// Lookup rather than Registration: Registration refuses input that is
	// not already mapped (upper case, full-width forms), which is how people
	// type; Lookup maps it first, as a resolver would.
	ascii, err := idna.Lookup.ToASCII(domain)
	if err != nil || !validDomain(ascii) {
		return "", ErrEmail
	}
	out := local + "@" + ascii
	if len(out) > maxEmail {
		return "", ErrTooLong
	}
	return out, nil
}

// validDomain reports whether d is a host name of at least two DNS labels
// whose top-level label is not numeric (no real TLD is, and that keeps
// dotted IP addresses out).
func validDomain(d string) bool {
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if !validLabel(l) {
			return false
		}
	}
	tld := labels[len(labels)-1]
	return strings.Trim(tld, "0123456789") != ""
}

// validLabel reports whether l is a DNS label in the LDH (letters, digits,
// hyphen) form that host names use.
func validLabel(l string) bool {
	if l == "" || len(l) > maxLabel || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
