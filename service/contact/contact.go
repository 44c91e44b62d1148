// Package contact validates and normalises contact details (phone numbers
// and e-mail addresses) so that they can be stored in one canonical form and
// compared reliably.
//
// Contact details are personal data, so errors from this package never
// include the value being checked: they are fixed, short, lower-case reasons
// that can be shown to the user and logged as they are.
package contact

import (
	"errors"
	"net/mail"
	"strings"
)

// Errors returned by Phone and Email. Their texts are meant to be shown to
// end users as they are and never include the input.
var (
	// ErrPhone means the input is not a phone number in a form Phone
	// understands.
	ErrPhone = errors.New("must be a phone number in Swedish or international (+) form")
	// ErrEmail means the input is not a plain e-mail address.
	ErrEmail = errors.New("not a valid e-mail address")
	// ErrTooLong means the input, or a part of it, exceeds a length limit.
	ErrTooLong = errors.New("too long")
)

const (
	// maxPhoneInput bounds the raw phone input. A real number with
	// generous separators fits easily; the bound stops absurd inputs early.
	maxPhoneInput = 64
	// maxE164Digits is the E.164 limit on country code plus number.
	maxE164Digits = 15
	// minE164Digits is the shortest country code plus number in use (some
	// small numbering plans have 4-digit subscriber numbers).
	minE164Digits = 7
	// Swedish national significant numbers (after the trunk 0) are 7 to 9
	// digits: e.g. 8-123 45 for short Stockholm numbers up to 70-123 45 67
	// for mobiles.
	minSwedishNSN = 7
	maxSwedishNSN = 9
	// swedenCC is Sweden's country code. Country codes are prefix-free, so
	// E.164 digits starting with it are Swedish.
	swedenCC = "46"

	// maxEmail is the longest address that fits in an SMTP path (RFC 5321).
	maxEmail = 254
	// maxLocal is the RFC 5321 limit on the part before the "@".
	maxLocal = 64
	// maxLabel is the DNS limit on one label of the domain.
	maxLabel = 63
)

// Phone normalises a phone number to E.164, e.g. "+46701234567".
//
// Accepted forms are Swedish national numbers with the trunk 0 ("070-123 45
// 67", "08-123 456 78"), which are given country code 46, and international
// numbers written with "+" or the "00" international prefix ("+46 70 123 45
// 67", "0046701234567", "+44 20 7946 0000"). Spaces, dashes, dots and
// parentheses may separate digits; anything else is rejected rather than
// guessed at. A number without a leading "+" or "0" is rejected because its
// country cannot be known.
//
// The trunk 0 that people often write after a country code, as "(0)" or, for
// Sweden, as a bare 0 ("+46 (0)70...", "+46 070..."), is dropped: it is never
// dialled from abroad and would make the E.164 form wrong.
//
// Only the country code's first digit and the total length are checked for
// countries other than Sweden; whether a number is actually assigned is not.
func Phone(s string) (string, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxPhoneInput {
		return "", ErrTooLong
	}

	digits := make([]byte, 0, len(s))
	plus := false
	inParen := false
	// trunkIdx is the index in digits of the 0 in the first "(0)" group, or
	// -1. Whether it is a trunk prefix is decided once the form is known.
	trunkIdx := -1
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits = append(digits, c)
		case c == '+' && i == 0:
			plus = true
		case c == ' ' || c == '-' || c == '.':
		case c == '(':
			if inParen {
				return "", ErrPhone
			}
			if trunkIdx < 0 && strings.HasPrefix(s[i:], "(0)") {
				trunkIdx = len(digits)
			}
			inParen = true
		case c == ')':
			if !inParen {
				return "", ErrPhone
			}
			inParen = false
		default:
			return "", ErrPhone
		}
	}
	if inParen || len(digits) == 0 {
		return "", ErrPhone
	}

	// Work out the form. prefix is how many leading digits are an
	// international prefix rather than part of the E.164 number.
	national := false
	prefix := 0
	switch {
	case plus:
	case len(digits) >= 2 && digits[0] == '0' && digits[1] == '0':
		// "00" is the international prefix in Sweden, so no national
		// number starts with it.
		prefix = 2
	case digits[0] == '0':
		national = true
	default:
		return "", ErrPhone
	}

	// A "(0)" is a trunk prefix only right after the country code of an
	// international number; anywhere else it is an ordinary parenthesised
	// digit and stays. Without a table of country codes, "right after" is
	// approximated as after 1 to 3 digits (their possible lengths), except
	// for Sweden, whose code length is known.
	trunkDropped := false
	cc := trunkIdx - prefix
	ccOK := cc >= 1 && cc <= 3
	if strings.HasPrefix(string(digits[prefix:]), swedenCC) {
		ccOK = cc == len(swedenCC)
	}
	if !national && trunkIdx >= 0 && ccOK {
		digits = append(digits[:trunkIdx], digits[trunkIdx+1:]...)
		trunkDropped = true
	}
	digits = digits[prefix:]

	if national {
		return swedish(string(digits[1:]))
	}
	if len(digits) == 0 || digits[0] == '0' {
		return "", ErrPhone // country codes never start with 0
	}
	if strings.HasPrefix(string(digits), swedenCC) {
		nsn := string(digits[len(swedenCC):])
		if !trunkDropped && strings.HasPrefix(nsn, "0") {
			nsn = nsn[1:]
		}
		return swedish(nsn)
	}
	if len(digits) > maxE164Digits {
		return "", ErrTooLong
	}
	if len(digits) < minE164Digits {
		return "", ErrPhone
	}
	return "+" + string(digits), nil
}

// swedish checks a Swedish national significant number (without trunk 0)
// and returns it in E.164 form.
func swedish(nsn string) (string, error) {
	// A Swedish NSN never starts with 0; accepting one would also make
	// Phone(Phone(x)) differ from Phone(x), since the 0 would be taken as a
	// trunk prefix the second time. Checked first because a stray 0 is the
	// likelier mistake than a number that is really too long.
	if nsn == "" || nsn[0] == '0' {
		return "", ErrPhone
	}
	if len(nsn) > maxSwedishNSN {
		return "", ErrTooLong
	}
	if len(nsn) < minSwedishNSN {
		return "", ErrPhone
	}
	return "+" + swedenCC + nsn, nil
}

// Email checks an e-mail address and returns it normalised: surrounding
// whitespace removed and the domain lower-cased. The local part keeps its
// case because RFC 5321 lets servers treat it as case-sensitive.
//
// Only the bare address form is accepted ("user@example.com"), not a display
// name, angle brackets, comments or a quoted local part, because the result
// is stored and used as an address, not as a header value. Syntax is checked
// with net/mail; on top of that the address must fit an SMTP path (254
// bytes, 64 for the local part) and the domain must be a host name of at
// least two DNS labels (ASCII letters, digits and inner hyphens, each at most
// 63 bytes) whose last label is not all digits. That rules out IP addresses,
// both as literals ("[192.0.2.1]") and dotted, and single-label domains such
// as "localhost", which are not deliverable on the public internet.
// Internationalised domains must be given in their ASCII (xn--) form.
func Email(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", ErrEmail
	}
	if len(s) > maxEmail {
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
	if !validDomain(domain) {
		return "", ErrEmail
	}
	return local + "@" + strings.ToLower(domain), nil
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
