// Package personnummer parses and validates Swedish personal identity
// numbers (personnummer) and coordination numbers (samordningsnummer).
//
// Identity numbers are personal data, so nothing in this package ever puts
// the number being checked into an error message: the errors are fixed,
// short, lower-case reasons that can be shown to the person who typed the
// number and written to logs without leaking it.
package personnummer

import (
	"errors"
	"strings"
	"time"
)

// Number is a validated identity number in canonical 12-digit form
// YYYYMMDDNNNC. The full year is kept because the 10-digit form is ambiguous
// without knowing when it was written (and whether a "+" was used).
//
// Values should come from Parse; the methods are safe on any string but
// return zero values for one that is not a well-formed 12-digit number.
type Number string

// Kind tells a personnummer from a samordningsnummer. It starts at 1 so that
// the zero value means "unknown" rather than silently meaning Personnummer.
type Kind int

const (
	// Personnummer is a number issued to someone who is or has been
	// registered as living in Sweden; the day digits are the real birth day.
	Personnummer Kind = iota + 1
	// Samordningsnummer is a coordination number for someone who is not
	// population-registered; its day digits are the birth day plus 60.
	Samordningsnummer
)

// String returns the Swedish name of the kind, as used in forms and logs.
func (k Kind) String() string {
	switch k {
	case Personnummer:
		return "personnummer"
	case Samordningsnummer:
		return "samordningsnummer"
	default:
		return "unknown"
	}
}

// Errors returned by Parse. Their texts are short, lower-case reasons meant
// to be shown to end users as they are; they never include the input.
var (
	// ErrFormat means the input is not 10 or 12 digits with an optional
	// "-" or "+" before the last four.
	ErrFormat = errors.New("must be 10 or 12 digits")
	// ErrDate means the date part is not a real calendar date (or, for a
	// samordningsnummer, the day minus 60 is not).
	ErrDate = errors.New("not a real date")
	// ErrFuture means the birth date is after the reference time.
	ErrFuture = errors.New("birth date is in the future")
	// ErrCheckDigit means the Luhn check digit is wrong, typically a typo.
	ErrCheckDigit = errors.New("check digit does not match")
)

// coordinationOffset is what is added to the day of month in a
// samordningsnummer.
const coordinationOffset = 60

// Parse validates s and returns it in canonical 12-digit form.
//
// Accepted forms, with surrounding whitespace ignored, are YYMMDDNNNC and
// YYYYMMDDNNNC, each optionally with "-" or "+" before the last four digits.
// For the 10-digit form the century is not written, so it is derived from
// now: with "-" or no separator it is the most recent century that does not
// put the birth date after now; with "+" (which Swedish convention uses once
// a person turns 100) it is the most recent century that makes the person at
// least 100 years old on now. For the 12-digit form the separator carries no
// information and is ignored.
//
// now is read as a calendar date in its own location, so callers should pass
// a time in the location whose "today" matters (normally Europe/Stockholm).
// It is a parameter rather than time.Now so results are reproducible.
//
// Checks are done in the order format, date, future, check digit, so a
// number that is wrong in several ways reports the first of these.
func Parse(s string, now time.Time) (Number, error) {
	s = strings.TrimSpace(s)

	var sep byte
	digits := s
	switch len(s) {
	case 10, 12:
	case 11, 13:
		i := len(s) - 5
		sep = s[i]
		if sep != '-' && sep != '+' {
			return "", ErrFormat
		}
		digits = s[:i] + s[i+1:]
	default:
		return "", ErrFormat
	}
	if !allDigits(digits) {
		return "", ErrFormat
	}

	nowYear, nowMonth, nowDay := now.Date()

	// ten is the 10-digit form YYMMDDNNNC that the check digit is over.
	var ten string
	var year int
	if len(digits) == 12 {
		year = atoi(digits[:4])
		ten = digits[2:]
	} else {
		ten = digits
		month, day := atoi(ten[2:4]), realDay(atoi(ten[4:6]))
		// Most recent year ending in YY that is not after today. The
		// comparison runs on raw numbers, before the date is validated,
		// because which century is meant decides whether e.g. Feb 29 exists.
		year = nowYear - mod(nowYear, 100) + atoi(ten[:2])
		if after(year, month, day, nowYear, int(nowMonth), nowDay) {
			year -= 100
		}
		if sep == '+' {
			// The most recent candidate gives age 0..99; one century
			// earlier gives the most recent one with age >= 100.
			year -= 100
		}
	}

	month := atoi(ten[2:4])
	day := atoi(ten[4:6])
	switch {
	case day >= 1 && day <= 31:
	case day >= 1+coordinationOffset && day <= 31+coordinationOffset:
		day -= coordinationOffset
	default:
		return "", ErrDate
	}
	// Years outside 0..9999 only arise from an absurd now, but they could
	// not be written back in four digits.
	if year < 0 || year > 9999 || month < 1 || month > 12 || day > daysIn(year, month) {
		return "", ErrDate
	}
	if after(year, month, day, nowYear, int(nowMonth), nowDay) {
		return "", ErrFuture
	}
	if luhn(ten[:9]) != ten[9]-'0' {
		return "", ErrCheckDigit
	}

	return Number(pad4(year) + ten[2:]), nil
}

// String returns the canonical 12-digit form YYYYMMDDNNNC, which is
// unambiguous and what should be stored.
func (n Number) String() string { return string(n) }

// Kind reports whether n is a personnummer or a samordningsnummer, or 0 if n
// is not well formed.
func (n Number) Kind() Kind {
	if !n.wellFormed() {
		return 0
	}
	if atoi(string(n[6:8])) > 31 {
		return Samordningsnummer
	}
	return Personnummer
}

// BirthDate returns the birth date encoded in n, at midnight UTC so that it
// compares as a plain date regardless of the caller's location. For a
// samordningsnummer the 60 added to the day is removed. It returns the zero
// time if n is not well formed.
func (n Number) BirthDate() time.Time {
	if !n.wellFormed() {
		return time.Time{}
	}
	day := realDay(atoi(string(n[6:8])))
	return time.Date(atoi(string(n[:4])), time.Month(atoi(string(n[4:6]))), day, 0, 0, 0, 0, time.UTC)
}

// wellFormed is a cheap shape check so the methods cannot panic or return
// nonsense on a Number made by conversion instead of by Parse.
func (n Number) wellFormed() bool {
	return len(n) == 12 && allDigits(string(n))
}

// realDay undoes the samordningsnummer offset; other days pass through.
func realDay(day int) int {
	if day > coordinationOffset {
		return day - coordinationOffset
	}
	return day
}

// luhn returns the check digit for the digits in s using the Luhn algorithm
// with weights 2,1,2,1,... from the left, as Skatteverket specifies.
func luhn(s string) byte {
	sum := 0
	for i := 0; i < len(s); i++ {
		d := int(s[i] - '0')
		if i%2 == 0 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return byte((10 - sum%10) % 10)
}

// after reports whether date (y, m, d) is after (y2, m2, d2). It works on
// plain numbers so that it is meaningful even for dates not yet validated.
func after(y, m, d, y2, m2, d2 int) bool {
	if y != y2 {
		return y > y2
	}
	if m != m2 {
		return m > m2
	}
	return d > d2
}

// daysIn returns the number of days in month m of year y (proleptic
// Gregorian), which is where the leap-year rules come in.
func daysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	default:
		return 31
	}
}

// allDigits reports whether s is non-empty and only ASCII digits; other
// Unicode digits are deliberately not accepted.
func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// atoi converts a string already known to be ASCII digits.
func atoi(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// mod is a remainder that is never negative, so century arithmetic also
// works for years before 0.
func mod(a, b int) int {
	return ((a % b) + b) % b
}

// pad4 formats a year in 0..9999 as four digits.
func pad4(y int) string {
	return string([]byte{byte('0' + y/1000), byte('0' + y/100%10), byte('0' + y/10%10), byte('0' + y%10)})
}
