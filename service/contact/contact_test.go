package contact

import (
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestPhone(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr error
	}{
		// Numbers that look like phone numbers but are not valid in their
		// country's numbering plan.
		{name: "swedish mobile one digit short", in: "070-123 45 6", wantErr: ErrPhone},
		{name: "country code not in use", in: "+999 1234567", wantErr: ErrPhone},
		{name: "nanp area code 555 and wrong length", in: "+1 555 0100 12", wantErr: ErrPhone},
		{name: "swedish mobile one digit long", in: "070-123 45 678", wantErr: ErrPhone},
		{name: "stockholm too short", in: "08-12 34 5", wantErr: ErrPhone},
		{name: "plus 46 too short", in: "+46 8 123 45", wantErr: ErrPhone},
		{name: "plus 46 too long", in: "+46 70 123 45 678", wantErr: ErrPhone},
		{name: "two trunk zeros", in: "+46 (0)070 123 45 67", wantErr: ErrPhone},
		{name: "46 followed by 00", in: "+46 00 123 45 67", wantErr: ErrPhone},
		{name: "00 then 0", in: "000701234567", wantErr: ErrPhone},
		{name: "16 digits", in: "+1234567890123456", wantErr: ErrPhone},

		// Swedish mobile, one number in several spellings.
		{name: "mobile with dash and spaces", in: "070-123 45 67", want: "+46701234567"},
		{name: "mobile digits only", in: "0701234567", want: "+46701234567"},
		{name: "mobile dots", in: "070.123.45.67", want: "+46701234567"},
		{name: "mobile surrounding whitespace", in: "  0701234567\t\n", want: "+46701234567"},
		{name: "mobile plus 46 with spaces", in: "+46 70 123 45 67", want: "+46701234567"},
		{name: "mobile already e164", in: "+46701234567", want: "+46701234567"},
		{name: "mobile 00 prefix", in: "0046701234567", want: "+46701234567"},
		{name: "mobile 00 prefix with spaces", in: "00 46 70-123 45 67", want: "+46701234567"},
		{name: "mobile parenthesised trunk zero", in: "+46 (0)70 123 45 67", want: "+46701234567"},
		{name: "mobile parenthesised trunk zero after 00", in: "0046 (0)70 123 45 67", want: "+46701234567"},
		{name: "mobile bare trunk zero after 46", in: "+46 070-123 45 67", want: "+46701234567"},

		// Swedish landlines, in several spellings.
		{name: "stockholm with dash and spaces", in: "08-123 456 78", want: "+46812345678"},
		{name: "stockholm area code in parentheses", in: "(08) 123 456 78", want: "+46812345678"},
		{name: "stockholm plus 46 trunk zero in parentheses", in: "+46(0)8-123 456 78", want: "+46812345678"},
		{name: "stockholm short number", in: "08-12 34 56", want: "+468123456"},
		{name: "gothenburg", in: "031-123 45 67", want: "+46311234567"},
		{name: "gothenburg international", in: "+46 31 123 45 67", want: "+46311234567"},
		{name: "four-digit area code", in: "0470-12 34 56", want: "+46470123456"},

		// Other countries.
		{name: "uk", in: "+44 20 7946 0958", want: "+442079460958"},
		{name: "uk with parenthesised trunk zero", in: "+44 (0)20 7946 0958", want: "+442079460958"},
		{name: "uk with 00 prefix", in: "0044 20 7946 0958", want: "+442079460958"},
		{name: "us with area code in parentheses", in: "+1 (212) 555-0100", want: "+12125550100"},
		{name: "italy keeps leading zero", in: "+39 06 1234 5678", want: "+390612345678"},
		{name: "finland mobile", in: "+358 40 1234567", want: "+358401234567"},
		{name: "norway mobile", in: "+47 412 34 567", want: "+4741234567"},
		{name: "niue 7 digits", in: "+683 4002", want: "+6834002"},

		// Spellings refused rather than guessed at.
		{name: "empty", in: "", wantErr: ErrPhone},
		{name: "only separators", in: " - . ", wantErr: ErrPhone},
		{name: "plus only", in: "+", wantErr: ErrPhone},
		{name: "no trunk zero", in: "701234567", wantErr: ErrPhone},
		{name: "country code without plus", in: "46701234567", wantErr: ErrPhone},
		{name: "letters as keypad digits", in: "070-ABC 45 67", wantErr: ErrPhone},
		{name: "surrounding text", in: "ring 070-123 45 67", wantErr: ErrPhone},
		{name: "tel uri", in: "tel:+46701234567", wantErr: ErrPhone},
		{name: "extension", in: "070-123 45 67 ext 5", wantErr: ErrPhone},
		{name: "extension with hash", in: "070-123 45 67 #5", wantErr: ErrPhone},
		{name: "plus in the middle", in: "070+1234567", wantErr: ErrPhone},
		{name: "double plus", in: "++46701234567", wantErr: ErrPhone},
		{name: "slash", in: "070/123 45 67", wantErr: ErrPhone},
		{name: "non-breaking space", in: "070\u00a0123 45 67", wantErr: ErrPhone},
		{name: "fullwidth digits", in: "０７０１２３４５６７", wantErr: ErrPhone},
		{name: "input too long", in: "070" + strings.Repeat(" ", 60) + "1234567", wantErr: ErrTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Phone(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Phone() error = %v, want %v", err, tt.wantErr)
				}
				if got != "" {
					t.Errorf("Phone() = %q on error, want empty", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Phone() unexpected error: %v", err)
			}
			if got != tt.want {
				t.Errorf("Phone() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEmail(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr error
	}{
		// Accepted, with normalisation.
		{name: "simple", in: "user@example.com", want: "user@example.com"},
		{name: "domain lower-cased local kept", in: "User.Name+tag@Example.COM", want: "User.Name+tag@example.com"},
		{name: "surrounding whitespace", in: "  user@example.com \n", want: "user@example.com"},
		{name: "subdomains", in: "first.last@sub.example.co.uk", want: "first.last@sub.example.co.uk"},
		{name: "hyphen inside label", in: "user@my-host.example.com", want: "user@my-host.example.com"},
		{name: "digits in labels", in: "user@123.example.com", want: "user@123.example.com"},
		{name: "punycode domain", in: "user@xn--bcher-kva.example", want: "user@xn--bcher-kva.example"},
		{name: "apostrophe in local part", in: "o'brien@example.com", want: "o'brien@example.com"},
		{name: "short", in: "a@b.co", want: "a@b.co"},
		{name: "local part 64", in: strings.Repeat("a", 64) + "@example.com", want: strings.Repeat("a", 64) + "@example.com"},
		{name: "label 63", in: "user@" + strings.Repeat("a", 63) + ".com", want: "user@" + strings.Repeat("a", 63) + ".com"},
		{name: "total 254", in: long254(), want: long254()},

		// Internationalised domains: stored in the IDNA ASCII form, whichever
		// form and case they are given in.
		{name: "swedish letters", in: "a@räksmörgås.se", want: "a@" + raksmorgas},
		{name: "swedish letters mixed case", in: "a@RäkSMÖRgås.Se", want: "a@" + raksmorgas},
		{name: "swedish letters local part case kept", in: "Tolvan.T@Räksmörgås.se", want: "Tolvan.T@" + raksmorgas},
		{name: "a-label", in: "a@xn--rksmrgs-5wao1o.se", want: "a@" + raksmorgas},
		{name: "a-label upper case", in: "a@XN--RKSMRGS-5WAO1O.SE", want: "a@" + raksmorgas},
		{name: "swedish letters in a subdomain", in: "a@post.älvdalen.example", want: "a@post.xn--lvdalen-4wa.example"},
		{name: "full-width letters and ideographic full stop", in: "a@ｅｘａｍｐｌｅ。com", want: "a@example.com"},
		{name: "a-label of 63 bytes", in: "a@ä" + strings.Repeat("c", 55) + ".se", want: "a@xn--" + strings.Repeat("c", 55) + "-9te.se"},

		// Syntax.
		{name: "empty", in: "", wantErr: ErrEmail},
		{name: "no at", in: "plainaddress", wantErr: ErrEmail},
		{name: "no local part", in: "@example.com", wantErr: ErrEmail},
		{name: "no domain", in: "user@", wantErr: ErrEmail},
		{name: "two ats", in: "user@@example.com", wantErr: ErrEmail},
		{name: "space in local part", in: "user name@example.com", wantErr: ErrEmail},
		{name: "consecutive dots in local part", in: "user..name@example.com", wantErr: ErrEmail},
		{name: "leading dot in local part", in: ".user@example.com", wantErr: ErrEmail},
		{name: "trailing dot in local part", in: "user.@example.com", wantErr: ErrEmail},
		{name: "address list", in: "a@example.com, b@example.com", wantErr: ErrEmail},

		// Only the bare form.
		{name: "display name", in: "User <user@example.com>", wantErr: ErrEmail},
		{name: "angle brackets", in: "<user@example.com>", wantErr: ErrEmail},
		{name: "quoted local part", in: `"user"@example.com`, wantErr: ErrEmail},
		{name: "quoted local part with space", in: `"john doe"@example.com`, wantErr: ErrEmail},
		{name: "comment", in: "user@example.com (work)", wantErr: ErrEmail},

		// Domain.
		{name: "single label", in: "user@localhost", wantErr: ErrEmail},
		{name: "consecutive dots", in: "user@example..com", wantErr: ErrEmail},
		{name: "leading dot", in: "user@.example.com", wantErr: ErrEmail},
		{name: "trailing dot", in: "user@example.com.", wantErr: ErrEmail},
		{name: "label starts with hyphen", in: "user@-example.com", wantErr: ErrEmail},
		{name: "label ends with hyphen", in: "user@example-.com", wantErr: ErrEmail},
		{name: "underscore", in: "user@exa_mple.com", wantErr: ErrEmail},
		{name: "punycode that does not decode", in: "a@xn--zz.se", wantErr: ErrEmail},
		{name: "punycode of a control character", in: "a@xn--a.se", wantErr: ErrEmail},
		{name: "empty punycode label", in: "a@xn--.se", wantErr: ErrEmail},
		{name: "hyphens in third and fourth place", in: "a@ab--cd.se", wantErr: ErrEmail},
		{name: "zero width joiner", in: "a@ä\u200d.se", wantErr: ErrEmail},
		{name: "left-to-right and right-to-left mixed", in: "a@aא.se", wantErr: ErrEmail},
		{name: "a-label over 63 bytes", in: "a@ä" + strings.Repeat("c", 57) + ".se", wantErr: ErrEmail},
		{name: "ip literal", in: "user@[192.0.2.1]", wantErr: ErrEmail},
		{name: "ipv6 literal", in: "user@[IPv6:2001:db8::1]", wantErr: ErrEmail},
		{name: "dotted ip", in: "user@192.0.2.1", wantErr: ErrEmail},
		{name: "label 64", in: "user@" + strings.Repeat("a", 64) + ".com", wantErr: ErrEmail},

		// Length.
		{name: "local part 65", in: strings.Repeat("a", 65) + "@example.com", wantErr: ErrTooLong},
		{name: "total 255", in: "a" + long254(), wantErr: ErrTooLong},
		{name: "total over 254 only as ascii", in: longUnicode(), wantErr: ErrTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Email(tt.in)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Email() error = %v, want %v", err, tt.wantErr)
				}
				if got != "" {
					t.Errorf("Email() = %q on error, want empty", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Email() unexpected error: %v", err)
			}
			if got != tt.want {
				t.Errorf("Email() = %q, want %q", got, tt.want)
			}
		})
	}
}

// long254 builds a valid address of exactly 254 bytes.
func long254() string {
	local := strings.Repeat("a", 64)
	label := strings.Repeat("b", 63)
	// 64 + "@" + two 63-byte labels with their dots leaves 61 bytes for
	// the last label.
	domain := label + "." + label + "." + strings.Repeat("c", 254-len(local)-1-2*64)
	return local + "@" + domain
}

// raksmorgas is the ASCII form of the made-up domain räksmörgås.se.
const raksmorgas = "xn--rksmrgs-5wao1o.se"

// longUnicode builds an address of 250 bytes whose domain's ASCII form
// makes it 256 bytes: too long, though it does not look it.
func longUnicode() string {
	label := strings.Repeat("b", 63)
	return strings.Repeat("a", 64) + "@" + label + "." + label + ".ä" + strings.Repeat("c", 55)
}

func TestLong254(t *testing.T) {
	if n := len(long254()); n != 254 {
		t.Fatalf("long254() is %d bytes", n)
	}
	if n := len(longUnicode()); n > 254 {
		t.Fatalf("longUnicode() is %d bytes, want at most 254", n)
	}
}

func TestErrorsArePlainReasons(t *testing.T) {
	for _, err := range []error{ErrPhone, ErrEmail, ErrTooLong} {
		msg := err.Error()
		// Go convention: no capital first letter (proper nouns inside are
		// fine) and no trailing punctuation, so it reads well when wrapped.
		if msg == "" || msg[:1] != strings.ToLower(msg[:1]) || strings.HasSuffix(msg, ".") {
			t.Errorf("error %q should be a short reason starting lower-case", msg)
		}
	}
}

// e164 matches the library's E.164 output: "+" and the digits. Up to 20 of
// them, not E.164's 15: the library's metadata takes some longer numbers as
// valid (German ranges with extension digits, e.g. +49 201 00000000000), and
// it allows 3 digits of country code and 17 of national number.
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,19}$`)

func FuzzPhone(f *testing.F) {
	for _, s := range []string{
		"070-123 45 67", "08-123 456 78", "0701234567", "+46 70 123 45 67",
		"0046701234567", "+46 (0)70 123 45 67", "+46 070 123 45 67",
		"+44 (0)20 7946 0958", "+1 (212) 555-0100", "+39 06 1234 5678",
		"0(0)46701234567", "+(0)1234567", "+46 8 (0)12 34 56", "((08))", "+", "", "070+1234567",
		"+1234567890123456", "070-123 45 6", "+999 1234567", "+1 555 0100 12", "070-ABC 45 67",
		"+4920100000000000",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := Phone(s)
		if err != nil {
			if out != "" {
				t.Fatalf("non-empty result %q with error", out)
			}
			if trimmed := strings.TrimSpace(s); len(trimmed) >= 6 && strings.Contains(err.Error(), trimmed) {
				t.Fatalf("error %q contains the input", err)
			}
			return
		}
		if !e164.MatchString(out) {
			t.Fatalf("Phone(%q) = %q, not E.164", s, out)
		}
		again, err := Phone(out)
		if err != nil {
			t.Fatalf("Phone(%q) rejected its own output: %v", out, err)
		}
		if again != out {
			t.Fatalf("Phone not idempotent: %q -> %q", out, again)
		}
	})
}

func FuzzEmail(f *testing.F) {
	for _, s := range []string{
		"user@example.com", "User.Name+tag@Example.COM", "User <user@example.com>",
		`"john doe"@example.com`, "user@[192.0.2.1]", "user@192.0.2.1", "a@b.co",
		"user@example.com (work)", "user@xn--bcher-kva.example", "ü@example.com",
		"a@räksmörgås.se", "a@XN--RKSMRGS-5WAO1O.SE", "a@xn--zz.se", "a@ｅｘａｍｐｌｅ。com",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := Email(s)
		if err != nil {
			if out != "" {
				t.Fatalf("non-empty result %q with error", out)
			}
			if trimmed := strings.TrimSpace(s); len(trimmed) >= 6 && strings.Contains(err.Error(), trimmed) {
				t.Fatalf("error %q contains the input", err)
			}
			return
		}
		again, err := Email(out)
		if err != nil {
			t.Fatalf("Email(%q) rejected its own output: %v", out, err)
		}
		if again != out {
			t.Fatalf("Email not idempotent: %q -> %q", out, again)
		}
		domain := out[strings.LastIndexByte(out, '@')+1:]
		if domain != strings.ToLower(domain) || !strings.Contains(domain, ".") || !isASCII(domain) {
			t.Fatalf("Email(%q) = %q: domain not an ASCII lower-case host name", s, out)
		}
	})
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// TestPhoneDisplay: a stored number reads as Swedes write it, and every
// spelling Phone accepts comes back to the same display.
func TestPhoneDisplay(t *testing.T) {
	for in, want := range map[string]string{
		"070-123 45 67":    "070-123 45 67",
		"+46 70 123 45 67": "070-123 45 67",
		"0046701234567":    "070-123 45 67",
		"(08) 123 456 78":  "08-123 456 78",
		"+44 20 7946 0958": "+44 20 7946 0958",
	} {
		e164, err := Phone(in)
		if err != nil {
			t.Fatalf("Phone(%q): %v", in, err)
		}
		if got := PhoneDisplay(e164); got != want {
			t.Errorf("PhoneDisplay(Phone(%q)) = %q, want %q", in, got, want)
		}
	}
	if got := PhoneDisplay("not a number"); got != "not a number" {
		t.Errorf("unreadable: %q", got)
	}
}
