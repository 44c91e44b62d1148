package validate

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/example/personaldata/service/auth"
	"github.com/example/personaldata/service/rules"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/contact"
	"github.com/example/personaldata/service/personnummer"
	"github.com/example/personaldata/store"
)

// Limits on string fields, in characters.
const (
	maxNameLen        = 100
	maxAddressLines   = 3
	maxAddressLineLen = 100
	maxLocalityLen    = 100
	maxPostalCodeLen  = 16
	MaxReferenceLen   = 200
	maxPerformedByLen = 100
	maxTitleLen       = 200
	maxBodyLen        = 64 << 10
	maxKeyLen         = 128
	MaxIDLen          = 64
	MaxPageSize       = 100
	DefaultPageSize   = 20
)

var (
	// ControllerPattern is a controller, customer or subject id.
	ControllerPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	keyPattern        = regexp.MustCompile(`^[A-Za-z0-9._:-]+$`)
	countryPattern    = regexp.MustCompile(`^[A-Z]{2}$`)
)

// Violations collects every bad field of a request, so the caller learns of
// all of them at once. Descriptions never quote the value: it may be personal.
type Violations []*errdetails.BadRequest_FieldViolation

// Add records that field is bad, and why.
func (v *Violations) Add(field, description string) {
	*v = append(*v, &errdetails.BadRequest_FieldViolation{Field: field, Description: description})
}

// Err is nil when no field was bad, else INVALID_ARGUMENT naming each field.
func (v Violations) Err() error {
	if len(v) == 0 {
		return nil
	}
	parts := make([]string, len(v))
	for i, fv := range v {
		parts[i] = fv.Field + ": " + fv.Description
	}
	st := status.New(codes.InvalidArgument, "invalid request: "+strings.Join(parts, "; "))
	if d, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: v}); err == nil {
		st = d
	}
	return st.Err()
}

// Text checks a free-text field: trimmed, within max characters, no control
// characters (newlines allowed only where multiline is true).
func (v *Violations) Text(field, s string, max int, required, multiline bool) string {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		if required {
			v.Add(field, "is required")
		}
	case utf8.RuneCountInString(s) > max:
		v.Add(field, fmt.Sprintf("must be at most %d characters", max))
	case strings.ContainsFunc(s, func(r rune) bool {
		return unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\r' || r == '\t'))
	}):
		v.Add(field, "must not contain control characters")
	}
	return s
}

// IdempotencyKey checks a change's idempotency key.
func (v *Violations) IdempotencyKey(s string) string {
	switch {
	case s == "":
		v.Add("idempotency_key", "is required")
	case len(s) > maxKeyLen || !keyPattern.MatchString(s):
		v.Add("idempotency_key", fmt.Sprintf("must be 1 to %d characters of A-Z, a-z, 0-9, '.', '_', ':', '-'", maxKeyLen))
	default:
		// Keys are remembered (hashed): they must not be personal data.
		if _, err := personnummer.Parse(s, time.Now()); err == nil {
			v.Add("idempotency_key", "must not be personal data such as an identity number")
		}
	}
	return s
}

// SubjectID checks a subject id.
func (v *Violations) SubjectID(s string) string {
	if s == "" {
		v.Add("subject_id", "is required")
	} else if len(s) > MaxIDLen || !ControllerPattern.MatchString(s) {
		v.Add("subject_id", "is not a subject id")
	}
	return s
}

// Controller checks a controller id.
func (v *Violations) Controller(s string) string {
	if s == "" {
		v.Add("controller_id", "is required")
	} else if !ControllerPattern.MatchString(s) {
		v.Add("controller_id", `must be "company" or a customer id of 1 to 63 characters a-z, 0-9, '_', '-'`)
	}
	return s
}

// Channel checks the channel a change came through; UNSPECIFIED only when
// not required.
func (v *Violations) Channel(c pdv1.Channel, required bool) string {
	if c == pdv1.Channel_CHANNEL_UNSPECIFIED && !required {
		return ""
	}
	return v.Enum("channel", c)
}

// Enum checks that e is a known, specified value of its enum and returns its
// name, which is how enums are stored.
func (v *Violations) Enum(field string, e protoreflect.Enum) string {
	if e.Number() == 0 {
		v.Add(field, "is required")
		return ""
	}
	val := e.Descriptor().Values().ByNumber(e.Number())
	if val == nil {
		v.Add(field, "is not a known value")
		return ""
	}
	return string(val.Name())
}

// Provenance is who carried out a request, by which channel and reference.
type Provenance struct {
	Channel, Reference, PerformedBy string
}

// Provenance checks channel, reference and performed_by; they are required
// for the rights requests a person carries out on the subject's behalf.
func (v *Violations) Provenance(c pdv1.Channel, reference, performedBy string, required bool) Provenance {
	return Provenance{
		Channel:     v.Channel(c, required),
		Reference:   v.Text("reference", reference, MaxReferenceLen, required, false),
		PerformedBy: v.Text("performed_by", performedBy, maxPerformedByLen, required, false),
	}
}

// Person checks the fields of p named in fields and returns them in
// canonical form: the identity number as 12 digits, the phone in E.164, the
// e-mail with its domain in IDNA ASCII form (lower case, xn-- labels), a
// Swedish postal code as "NNN NN".
func (v *Violations) Person(p *pdv1.Person, fields []string, now time.Time) store.Person {
	var out store.Person
	if p == nil {
		v.Add("person", "is required")
		return out
	}
	for _, f := range fields {
		path := "person." + f
		switch f {
		case rules.FieldIdentityNumber:
			if p.GetIdentityNumber() == "" {
				v.Add(path, "is required")
				continue
			}
			n, err := personnummer.Parse(p.GetIdentityNumber(), now)
			if err != nil {
				v.Add(path, err.Error())
				continue
			}
			out.IdentityNumber = n.String()
		case rules.FieldGivenName:
			out.GivenName = v.Text(path, p.GetGivenName(), maxNameLen, true, false)
		case rules.FieldFamilyName:
			out.FamilyName = v.Text(path, p.GetFamilyName(), maxNameLen, true, false)
		case rules.FieldEmail:
			if p.GetEmail() == "" {
				v.Add(path, "is required")
				continue
			}
			e, err := contact.Email(p.GetEmail())
			if err != nil {
				v.Add(path, err.Error())
				continue
			}
			out.Email = e
		case rules.FieldPhone:
			if p.GetPhone() == "" {
				continue // optional
			}
			ph, err := contact.Phone(p.GetPhone())
			if err != nil {
				v.Add(path, err.Error())
				continue
			}
			out.Phone = ph
		case rules.FieldPostalAddress:
			out.Address = v.address(path, p.GetPostalAddress())
		}
	}
	return out
}

// address checks a postal address; an absent address is allowed.
func (v *Violations) address(path string, a *pdv1.PostalAddress) store.Address {
	var out store.Address
	if a == nil {
		return out
	}
	if len(a.GetLines()) == 0 || len(a.GetLines()) > maxAddressLines {
		v.Add(path+".lines", fmt.Sprintf("must have 1 to %d lines", maxAddressLines))
	}
	for i, l := range a.GetLines() {
		if i >= maxAddressLines {
			break
		}
		out.Lines = append(out.Lines, v.Text(fmt.Sprintf("%s.lines[%d]", path, i), l, maxAddressLineLen, true, false))
	}
	out.Locality = v.Text(path+".locality", a.GetLocality(), maxLocalityLen, true, false)
	out.CountryCode = strings.ToUpper(strings.TrimSpace(a.GetCountryCode()))
	if out.CountryCode == "" {
		out.CountryCode = "SE"
	}
	if !countryPattern.MatchString(out.CountryCode) {
		v.Add(path+".country_code", "must be an ISO 3166-1 alpha-2 code such as SE")
	}
	code := v.Text(path+".postal_code", a.GetPostalCode(), maxPostalCodeLen, true, false)
	if out.CountryCode == "SE" && code != "" {
		digits := strings.ReplaceAll(code, " ", "")
		if len(digits) != 5 || strings.ContainsFunc(digits, func(r rune) bool { return r < '0' || r > '9' }) {
			v.Add(path+".postal_code", "must be five digits for a Swedish address")
		} else {
			code = digits[:3] + " " + digits[3:]
		}
	}
	out.PostalCode = code
	return out
}

// HistoryEntry checks an entry to add.
func (v *Violations) HistoryEntry(e *pdv1.HistoryEntry, now time.Time) store.HistoryEntry {
	var out store.HistoryEntry
	if e == nil {
		v.Add("entry", "is required")
		return out
	}
	out.Kind = v.Enum("entry.kind", e.GetKind())
	out.Title = v.Text("entry.title", e.GetTitle(), maxTitleLen, true, false)
	out.Body = v.Text("entry.body", e.GetBody(), maxBodyLen, true, true)
	out.Reference = v.Text("entry.reference", e.GetReference(), MaxReferenceLen, false, false)
	out.OccurAt = v.PastTime("entry.occur_time", e.GetOccurTime(), now)
	return out
}

// PastTime checks a required time that is not in the future (a minute of
// clock skew allowed) and returns it in Unix nanoseconds.
func (v *Violations) PastTime(field string, t *timestamppb.Timestamp, now time.Time) int64 {
	switch {
	case t == nil:
		v.Add(field, "is required")
	case t.CheckValid() != nil:
		v.Add(field, "is not a valid time")
	case t.AsTime().After(now.Add(time.Minute)):
		v.Add(field, "must not be in the future")
	case t.AsTime().Year() < 1970:
		v.Add(field, "must not be before 1970")
	default:
		return t.AsTime().UnixNano()
	}
	return 0
}

// PageSize checks a page_size of 0 to MaxPageSize and returns it, or def
// for 0.
func (v *Violations) PageSize(n int32, def int) int {
	switch {
	case n == 0:
		return def
	case n < 0 || n > MaxPageSize:
		v.Add("page_size", fmt.Sprintf("must be 0 to %d", MaxPageSize))
	}
	return int(n)
}

// PositionToken reads a page token of a listing ordered by a number (a
// time) then an id, made by PositionTokenOf; zeros when token is empty.
func (v *Violations) PositionToken(token, kind, scope string) (int64, string) {
	if token == "" || len(*v) > 0 {
		return 0, ""
	}
	at, id, ok := strings.Cut(v.AuditPageToken(token, kind, scope), "/")
	n, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil {
		v.Add("page_token", "is not a token from this listing")
		return 0, ""
	}
	return n, id
}

// PositionTokenOf is the page token that goes on after (at, id).
func PositionTokenOf(kind, scope string, at int64, id string) string {
	return AuditPageToken(kind, scope, strconv.FormatInt(at, 10)+"/"+id)
}

// AuditPageToken decodes a page token of the listing kind/id and returns
// its position; "" for no token.
func (v *Violations) AuditPageToken(token, kind, id string) string {
	if token == "" {
		return ""
	}
	bad := func() string {
		v.Add("page_token", "is not a token from this listing")
		return ""
	}
	if len(token) > maxAuditTokenLen {
		return bad()
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return bad()
	}
	parts := strings.Split(string(b), "\x00")
	if len(parts) != 3 || parts[0] != kind || parts[1] != id || parts[2] == "" {
		return bad()
	}
	return parts[2]
}

// KeyReused refuses an idempotency key sent again with a different request.
func KeyReused() error {
	return Violations{{Field: "idempotency_key", Description: "was used before with a different request"}}.Err()
}

// PersonAt checks one field of a person with the person rules and reports
// its violations under name.
func (v *Violations) PersonAt(name string, p *pdv1.Person, field string, now time.Time) store.Person {
	var pv Violations
	out := pv.Person(p, []string{field}, now)
	for _, fv := range pv {
		v.Add(name, fv.Description)
	}
	return out
}

// By records who carried out a change: the authenticated principal, and the
// person it names when it is a tool that acts for staff.
func (p Provenance) By(c *auth.Caller) Provenance {
	if p.PerformedBy != "" && p.PerformedBy != c.ID() {
		p.PerformedBy = c.ID() + " for " + p.PerformedBy
	} else {
		p.PerformedBy = c.ID()
	}
	return p
}

// ControllerFor checks the controller of a request: the given one, or the
// caller's only tenant when none is given.
func (v *Violations) ControllerFor(c *auth.Caller, id string) string {
	if id == "" {
		if t, ok := c.SoleTenant(); ok {
			return t
		}
	}
	return v.Controller(id)
}

// UpdateMask checks the paths of an update's field mask against the fields
// it may name (allowed) and returns them without repeats.
func (v *Violations) UpdateMask(paths, allowed []string) []string {
	if len(paths) == 0 {
		v.Add("update_mask", "is required: name the fields to change")
		return nil
	}
	var fields []string
	for _, p := range paths {
		if !slices.Contains(allowed, p) {
			v.Add("update_mask", fmt.Sprintf("path %q is not one of %s", p, strings.Join(allowed, ", ")))
			continue
		}
		if !slices.Contains(fields, p) {
			fields = append(fields, p)
		}
	}
	return fields
}

// MaxSubProcessorLen bounds a sub-processor's or recipient's host name.
const MaxSubProcessorLen = 100

// HostPattern is a lower-case host name of at least two labels, such as
// "iis.se": how registries and registrars are named.
var HostPattern = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)

// maxAuditTokenLen bounds a page token before it is decoded.
const maxAuditTokenLen = 512

// AuditPageToken is an opaque page token: the position to go on from, bound
// to the listing (kind "s" for a subject, "t" for a tenant, and its id), so a
// token is refused by another listing.
func AuditPageToken(kind, id, pos string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + "\x00" + id + "\x00" + pos))
}
