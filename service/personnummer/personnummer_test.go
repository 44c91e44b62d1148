package personnummer

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// refNow is a fixed "today" so that century inference and the future check
// give the same answers whenever the tests run.
var refNow = time.Date(2026, time.June, 15, 12, 0, 0, 0, time.UTC)

// All numbers below are made up; their check digits were computed with an
// independent Luhn implementation. 19121212-1212 and 20000101-0008 are
// Skatteverket's well-known test numbers.
func TestParse(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		want      Number
		wantKind  Kind
		wantBirth string // YYYY-MM-DD
		wantErr   error
	}{
		// Accepted forms.
		{name: "12 digits with dash", in: "19121212-1212", want: "191212121212", wantKind: Personnummer, wantBirth: "1912-12-12"},
		{name: "12 digits no separator", in: "191212121212", want: "191212121212", wantKind: Personnummer, wantBirth: "1912-12-12"},
		{name: "12 digits plus is ignored", in: "19121212+1212", want: "191212121212", wantKind: Personnummer, wantBirth: "1912-12-12"},
		{name: "12 digits plus ignored even if young", in: "20000101+0008", want: "200001010008", wantKind: Personnummer, wantBirth: "2000-01-01"},
		{name: "skatteverket 2000 test number", in: "20000101-0008", want: "200001010008", wantKind: Personnummer, wantBirth: "2000-01-01"},
		{name: "surrounding whitespace trimmed", in: " \t19121212-1212\n", want: "191212121212", wantKind: Personnummer, wantBirth: "1912-12-12"},

		// Century inference for the 10-digit form.
		{name: "10 digits dash most recent century", in: "121212-1212", want: "201212121212", wantKind: Personnummer, wantBirth: "2012-12-12"},
		{name: "10 digits no separator most recent century", in: "1212121212", want: "201212121212", wantKind: Personnummer, wantBirth: "2012-12-12"},
		{name: "10 digits plus means 100 or older", in: "121212+1212", want: "191212121212", wantKind: Personnummer, wantBirth: "1912-12-12"},
		{name: "10 digits year 00 is 2000", in: "000101-0008", want: "200001010008", wantKind: Personnummer, wantBirth: "2000-01-01"},
		{name: "10 digits born today is this century", in: "260615-1237", want: "202606151237", wantKind: Personnummer, wantBirth: "2026-06-15"},
		{name: "10 digits tomorrow falls to previous century", in: "260616-1236", want: "192606161236", wantKind: Personnummer, wantBirth: "1926-06-16"},
		{name: "10 digits later this year falls to previous century", in: "991231-1231", want: "199912311231", wantKind: Personnummer, wantBirth: "1999-12-31"},
		{name: "plus turning 100 today", in: "260615+1237", want: "192606151237", wantKind: Personnummer, wantBirth: "1926-06-15"},
		{name: "plus turning 100 tomorrow is two centuries back", in: "260616+1236", want: "182606161236", wantKind: Personnummer, wantBirth: "1826-06-16"},

		// Leap years.
		{name: "leap day 2000 ok", in: "20000229-1235", want: "200002291235", wantKind: Personnummer, wantBirth: "2000-02-29"},
		{name: "leap day 2000 10 digits ok", in: "000229-1235", want: "200002291235", wantKind: Personnummer, wantBirth: "2000-02-29"},
		{name: "leap day 1900 invalid", in: "19000229-1235", wantErr: ErrDate},
		{name: "leap day with plus resolves to 1900 invalid", in: "000229+1235", wantErr: ErrDate},
		{name: "leap day 1996 ok", in: "19960229-1230", want: "199602291230", wantKind: Personnummer, wantBirth: "1996-02-29"},
		{name: "leap day 1997 invalid", in: "19970229-1239", wantErr: ErrDate},
		{name: "leap day 2024 10 digits ok", in: "240229-1237", want: "202402291237", wantKind: Personnummer, wantBirth: "2024-02-29"},

		// Samordningsnummer.
		{name: "samordningsnummer day 72", in: "19121272-1235", want: "191212721235", wantKind: Samordningsnummer, wantBirth: "1912-12-12"},
		{name: "samordningsnummer day 61 ok", in: "19121261-1238", want: "191212611238", wantKind: Samordningsnummer, wantBirth: "1912-12-01"},
		{name: "samordningsnummer day 91 ok", in: "19121291-1232", want: "191212911232", wantKind: Samordningsnummer, wantBirth: "1912-12-31"},
		{name: "samordningsnummer 10 digits", in: "121272-1235", want: "201212721235", wantKind: Samordningsnummer, wantBirth: "2012-12-12"},
		{name: "samordningsnummer leap day 2000", in: "20000289-1232", want: "200002891232", wantKind: Samordningsnummer, wantBirth: "2000-02-29"},
		{name: "samordningsnummer leap day 1900 invalid", in: "19000289-1232", wantErr: ErrDate},
		{name: "samordningsnummer day 92 invalid", in: "19121292-1231", wantErr: ErrDate},
		{name: "day 60 invalid", in: "19121260-1239", wantErr: ErrDate},
		{name: "day 32 invalid", in: "19121232-1234", wantErr: ErrDate},

		// Other impossible dates.
		{name: "month 13", in: "19121312-1237", wantErr: ErrDate},
		{name: "month 00", in: "19120012-1232", wantErr: ErrDate},
		{name: "day 00", in: "19121200-1232", wantErr: ErrDate},
		{name: "april 31", in: "20000431-1239", wantErr: ErrDate},
		{name: "april 30 ok", in: "20000430-1230", want: "200004301230", wantKind: Personnummer, wantBirth: "2000-04-30"},
		{name: "february 31", in: "20000231-1231", wantErr: ErrDate},

		// Future.
		{name: "future year rejected", in: "20300101-1232", wantErr: ErrFuture},
		{name: "tomorrow rejected", in: "20260616-1236", wantErr: ErrFuture},
		{name: "today ok", in: "20260615-1237", want: "202606151237", wantKind: Personnummer, wantBirth: "2026-06-15"},

		// Check digit.
		{name: "wrong check digit", in: "19121212-1213", wantErr: ErrCheckDigit},
		{name: "wrong check digit 10 digits", in: "1212121210", wantErr: ErrCheckDigit},
		{name: "transposed digits", in: "19121212-2112", wantErr: ErrCheckDigit},

		// Format.
		{name: "empty", in: "", wantErr: ErrFormat},
		{name: "only whitespace", in: "   ", wantErr: ErrFormat},
		{name: "letter check digit", in: "19121212-121X", wantErr: ErrFormat},
		{name: "all letters", in: "abcdefghij", wantErr: ErrFormat},
		{name: "8 digits", in: "19121212", wantErr: ErrFormat},
		{name: "9 digits", in: "121212121", wantErr: ErrFormat},
		{name: "11 digits", in: "19121212121", wantErr: ErrFormat},
		{name: "13 digits", in: "1912121212120", wantErr: ErrFormat},
		{name: "too many after separator", in: "19121212-12120", wantErr: ErrFormat},
		{name: "separator in wrong place", in: "1912121-21212", wantErr: ErrFormat},
		{name: "underscore separator", in: "19121212_1212", wantErr: ErrFormat},
		{name: "space separator", in: "19121212 1212", wantErr: ErrFormat},
		{name: "double separator", in: "121212--1212", wantErr: ErrFormat},
		{name: "dashes in date", in: "1912-12-12-1212", wantErr: ErrFormat},
		{name: "leading sign", in: "+1212121212", wantErr: ErrFormat},
		{name: "fullwidth digits", in: "１２１２１２-１２１２", wantErr: ErrFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in, refNow)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Parse() error = %v, want %v", err, tt.wantErr)
				}
				if got != "" {
					t.Errorf("Parse() = %q on error, want empty", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse() unexpected error: %v", err)
			}
			if got != tt.want {
				t.Errorf("Parse() = %q, want %q", got, tt.want)
			}
			if got.String() != string(tt.want) {
				t.Errorf("String() = %q, want %q", got.String(), tt.want)
			}
			if k := got.Kind(); k != tt.wantKind {
				t.Errorf("Kind() = %v, want %v", k, tt.wantKind)
			}
			if b := got.BirthDate().Format(time.DateOnly); b != tt.wantBirth {
				t.Errorf("BirthDate() = %s, want %s", b, tt.wantBirth)
			}
		})
	}
}

// TestParseNowLocation checks that "today" is taken in now's own location:
// at 23:30 UTC on June 14 it is already June 15 in Stockholm.
func TestParseNowLocation(t *testing.T) {
	stockholm := time.FixedZone("CEST", 2*60*60)
	utc := time.Date(2026, time.June, 14, 23, 30, 0, 0, time.UTC)
	if _, err := Parse("20260615-1237", utc); !errors.Is(err, ErrFuture) {
		t.Errorf("in UTC: error = %v, want %v", err, ErrFuture)
	}
	if _, err := Parse("20260615-1237", utc.In(stockholm)); err != nil {
		t.Errorf("in Stockholm: unexpected error %v", err)
	}
}

func TestErrorsArePlainReasons(t *testing.T) {
	for _, err := range []error{ErrFormat, ErrDate, ErrFuture, ErrCheckDigit} {
		msg := err.Error()
		// Go convention: no capital first letter (proper nouns inside are
		// fine) and no trailing punctuation, so it reads well when wrapped.
		if msg == "" || msg[:1] != strings.ToLower(msg[:1]) || strings.HasSuffix(msg, ".") {
			t.Errorf("error %q should be a short reason starting lower-case", msg)
		}
	}
}

func TestMalformedNumberMethods(t *testing.T) {
	tests := []struct {
		name string
		n    Number
	}{
		{name: "zero value", n: ""},
		{name: "too short", n: "1912"},
		{name: "letters", n: "19121212121X"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if k := tt.n.Kind(); k != 0 {
				t.Errorf("Kind() = %v, want 0", k)
			}
			if b := tt.n.BirthDate(); !b.IsZero() {
				t.Errorf("BirthDate() = %v, want zero", b)
			}
		})
	}
}

func TestKindString(t *testing.T) {
	tests := []struct {
		name string
		k    Kind
		want string
	}{
		{name: "personnummer", k: Personnummer, want: "personnummer"},
		{name: "samordningsnummer", k: Samordningsnummer, want: "samordningsnummer"},
		{name: "zero", k: 0, want: "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.k.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	seeds := []string{
		"19121212-1212", "191212121212", "121212-1212", "121212+1212",
		"20000101-0008", "000229+1235", "20000229-1235", "19000229-1235",
		"19121272-1235", "20000289-1232", "260616-1236", "260616+1236",
		"20300101-1232", "19121212-1213", "19121212-121X", " 1212121212 ",
		"", "+", "1912121-21212", "１２１２１２-１２１２",
	}
	for _, s := range seeds {
		f.Add(s, int32(0))
		f.Add(s, int32(-36600)) // about a century before refNow
	}
	f.Fuzz(func(t *testing.T, s string, dayOffset int32) {
		// Vary "today" by up to about +-270 years around refNow so the
		// century logic is exercised, while staying within four-digit years.
		now := refNow.AddDate(0, 0, int(dayOffset%100000))

		n, err := Parse(s, now)
		if err != nil {
			if n != "" {
				t.Fatalf("non-empty result %q with error", n)
			}
			msg := err.Error()
			if trimmed := strings.TrimSpace(s); len(trimmed) >= 6 && strings.Contains(msg, trimmed) {
				t.Fatalf("error %q contains the input", msg)
			}
			if d := digitsOf(s); len(d) >= 6 && strings.Contains(msg, d) {
				t.Fatalf("error %q contains the input digits", msg)
			}
			return
		}

		str := n.String()
		if len(str) != 12 || !allDigits(str) {
			t.Fatalf("String() = %q, want 12 digits", str)
		}
		if k := n.Kind(); k != Personnummer && k != Samordningsnummer {
			t.Fatalf("Kind() = %v for accepted number", k)
		}
		if n.BirthDate().After(time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)) {
			t.Fatalf("accepted birth date %v after now %v", n.BirthDate(), now)
		}

		// Canonical form must round-trip.
		n2, err := Parse(str, now)
		if err != nil {
			t.Fatalf("Parse(String()) error: %v", err)
		}
		if n2 != n {
			t.Fatalf("Parse(String()) = %q, want %q", n2, n)
		}

		// So must the 10-digit form with the separator a correct writer
		// would use, which checks century inference against BirthDate.
		// People 200 or older cannot be written in 10 digits at all.
		a := age(n.BirthDate(), now)
		if a >= 200 {
			return
		}
		sep := "-"
		if a >= 100 {
			sep = "+"
		}
		n3, err := Parse(str[2:8]+sep+str[8:], now)
		if err != nil {
			t.Fatalf("10-digit form rejected: %v", err)
		}
		if n3 != n {
			t.Fatalf("10-digit form parsed to %q, want %q", n3, n)
		}
	})
}

// digitsOf returns the ASCII digits of s in order.
func digitsOf(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// age returns completed years between birth and the calendar date of now.
func age(birth, now time.Time) int {
	y, m, d := now.Date()
	a := y - birth.Year()
	if m < birth.Month() || (m == birth.Month() && d < birth.Day()) {
		a--
	}
	return a
}
