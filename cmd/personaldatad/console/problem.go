package console

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// problem is what went wrong, in plain Swedish, for a page to show.
type problem struct {
	// Status is the HTTP status of the page that shows it.
	Status  int
	Message string
	// Fields are the form fields at fault, each linked from the summary.
	Fields []fieldProblem
	// Code is the API's status code, for whoever the staff ask for help.
	Code string
}

// fieldProblem is one bad form field: ID is the field's element id.
type fieldProblem struct {
	ID, Label, Message string
}

// Text is the problem as a sentence: "Telefon är inget giltigt telefonnummer".
func (f fieldProblem) Text() string { return f.Label + " " + f.Message }

// FieldMessage is the sentence about the field with element id, if any.
func (p *problem) FieldMessage(id string) string {
	if p == nil {
		return ""
	}
	for _, f := range p.Fields {
		if f.ID == id {
			return f.Text()
		}
	}
	return ""
}

func problemUnavailable() *problem {
	return &problem{Status: http.StatusServiceUnavailable,
		Message: "Tjänsten kan inte nå sin databas just nu. Vänta en stund och försök igen."}
}

func problemSignIn() *problem {
	return &problem{Status: http.StatusUnauthorized,
		Message: "Inloggningen misslyckades. Kontrollera uppgifterna och försök igen."}
}

func problemSignInForm() *problem {
	return &problem{Status: http.StatusForbidden,
		Message: "Inloggningsformuläret hade gått ut eller kom från en annan webbplats. Försök igen."}
}

func problemCSRF() *problem {
	return &problem{Status: http.StatusForbidden,
		Message: "Formuläret saknade en giltig säkerhetskod, så ingenting gjordes. Gå tillbaka, läs in sidan igen och försök på nytt."}
}

func problemForbiddenOrigin() *problem {
	return &problem{Status: http.StatusForbidden,
		Message: "Begäran kom från en annan webbplats, så ingenting gjordes."}
}

func problemNotFound() *problem {
	return &problem{Status: http.StatusNotFound, Message: "Sidan finns inte."}
}

// fieldRef is a form field an API field path maps to.
type fieldRef struct{ id, label string }

// apiFields maps the API's field paths (as in BadRequest) of one form to its
// fields; paths not listed fall back to the form's whole.
type apiFields map[string]fieldRef

// lineField matches a path of an address line, "…lines[1]".
var lineField = regexp.MustCompile(`lines\[(\d)\]$`)

// lookup finds the form field of an API path: exactly, without its
// "person." prefix, or as an address line.
func (f apiFields) lookup(path string) (fieldRef, bool) {
	for _, p := range []string{path, strings.TrimPrefix(path, "person.")} {
		if r, ok := f[p]; ok {
			return r, true
		}
	}
	if m := lineField.FindStringSubmatch(path); m != nil {
		if r, ok := f["postal_address.lines["+m[1]+"]"]; ok {
			return r, true
		}
	}
	return fieldRef{}, false
}

// descriptions are the API's descriptions of bad fields in Swedish; a
// description not listed is shown as "har ett ogiltigt värde".
var descriptions = []struct {
	pattern *regexp.Regexp
	swedish string
}{
	{regexp.MustCompile(`^is required`), "måste fyllas i"},
	{regexp.MustCompile(`^either identity_number or email is required`), "fyll i personnummer eller e-postadress"},
	{regexp.MustCompile(`^must be at most (\d+) characters`), "får vara högst $1 tecken"},
	{regexp.MustCompile(`^must not contain control characters`), "får inte innehålla styrtecken"},
	{regexp.MustCompile(`^must be 10 or 12 digits`), "ska vara 10 eller 12 siffror, som ÅÅMMDD-NNNN"},
	{regexp.MustCompile(`^not a real date`), "innehåller inget riktigt datum"},
	{regexp.MustCompile(`^birth date is in the future`), "har ett födelsedatum i framtiden"},
	{regexp.MustCompile(`^check digit does not match`), "har fel kontrollsiffra"},
	{regexp.MustCompile(`^must be a valid phone number`), "är inget giltigt telefonnummer (svenskt med inledande 0, eller internationellt med + eller 00)"},
	{regexp.MustCompile(`^not a valid e-mail address`), "är ingen giltig e-postadress"},
	{regexp.MustCompile(`^too long`), "är för långt"},
	{regexp.MustCompile(`^must have 1 to (\d) lines`), "ska ha 1 till $1 rader"},
	{regexp.MustCompile(`^must be an ISO 3166-1 alpha-2 code`), "ska vara en landskod med två bokstäver, som SE"},
	{regexp.MustCompile(`^must be five digits for a Swedish address`), "ska vara fem siffror för en svensk adress"},
	{regexp.MustCompile(`^is not a known value`), "måste väljas"},
	{regexp.MustCompile(`^must not be in the future`), "får inte ligga i framtiden"},
	{regexp.MustCompile(`^must not be before 1970`), "får inte vara före 1970"},
	{regexp.MustCompile(`^is not a valid time`), "är ingen giltig tidpunkt"},
}

func swedishDescription(d string) string {
	for _, t := range descriptions {
		if t.pattern.MatchString(d) {
			return t.pattern.ReplaceAllString(t.pattern.FindString(d), t.swedish)
		}
	}
	return "har ett ogiltigt värde"
}

// subjectErased is the page's words for an erased subject's refusal.
func subjectErased(info *errdetails.ErrorInfo) string {
	msg := "Personens uppgifter är raderade"
	if t, err := time.Parse(time.RFC3339, info.GetMetadata()["erase_time"]); err == nil {
		msg += " sedan " + formatTime(t)
	}
	if g := info.GetMetadata()["ground"]; g != "" {
		msg += " (grund: " + strings.ToLower(erasureGroundLabel(g)) + ")"
	}
	return msg + ". Det finns inget kvar att ändra."
}

// apiProblem says in Swedish why the API refused, naming the form's fields
// where the API named fields. Unauthenticated is not handled here: it ends
// the session.
func apiProblem(err error, fields apiFields) *problem {
	st := status.Convert(err)
	p := &problem{Code: st.Code().String()}
	var info *errdetails.ErrorInfo
	var bad *errdetails.BadRequest
	var pre *errdetails.PreconditionFailure
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			info = d
		case *errdetails.BadRequest:
			bad = d
		case *errdetails.PreconditionFailure:
			pre = d
		}
	}
	preType := ""
	if len(pre.GetViolations()) > 0 {
		preType = pre.GetViolations()[0].GetType()
	}
	switch st.Code() {
	case codes.InvalidArgument:
		p.Status = http.StatusBadRequest
		p.Message = "Några uppgifter är inte giltiga. Rätta fälten som anges nedan och skicka igen."
		for _, v := range bad.GetFieldViolations() {
			if v.GetField() == "idempotency_key" {
				// The form's own key, sent before with other values: the
				// first submission acted.
				if strings.Contains(v.GetDescription(), "used before") {
					p.Message = "Den här åtgärden är redan utförd med andra uppgifter. Läs in sidan igen innan du gör en ny ändring."
				} else {
					p.Message = "Formuläret saknade sin engångsnyckel. Läs in sidan igen och försök på nytt."
				}
				continue
			}
			if r, ok := fields.lookup(v.GetField()); ok {
				p.Fields = append(p.Fields, fieldProblem{ID: r.id, Label: r.label, Message: swedishDescription(v.GetDescription())})
			} else {
				p.Fields = append(p.Fields, fieldProblem{Label: fieldLabel(v.GetField()), Message: swedishDescription(v.GetDescription())})
			}
		}
	case codes.FailedPrecondition:
		p.Status = http.StatusConflict
		switch {
		case preType == "PROCESSING_RESTRICTED":
			p.Message = "Behandlingen av personens uppgifter är begränsad till enbart lagring, så det här får inte göras nu."
		case preType == "NO_PROCESSOR_AGREEMENT":
			p.Message = "Det finns inget personuppgiftsbiträdesavtal i kraft som täcker detta för kunden, så uppgifterna får inte behandlas."
		case strings.Contains(st.Message(), "already restricted"):
			p.Message = "Behandlingen är redan begränsad."
		case strings.Contains(st.Message(), "not restricted"):
			p.Message = "Behandlingen är inte begränsad, så det finns ingen begränsning att häva."
		case strings.Contains(st.Message(), "CORRECTED needs a rectification"):
			p.Message = "”Uppgifterna har rättats” kräver att uppgifterna rättats sedan begränsningen. Rätta dem först, eller välj ”Uppgifterna är kontrollerade och korrekta”."
		default:
			p.Message = "Det går inte att göra detta i det läge personens uppgifter är nu."
		}
	case codes.NotFound:
		p.Status = http.StatusNotFound
		if info.GetReason() == "SUBJECT_ERASED" {
			p.Status = http.StatusGone
			p.Message = subjectErased(info)
		} else {
			p.Message = "Ingen sådan person finns."
		}
	case codes.PermissionDenied:
		p.Status = http.StatusForbidden
		switch info.GetReason() {
		case "TENANT_NOT_PERMITTED":
			p.Message = "Du har inte behörighet till uppgifter som den här personuppgiftsansvarige bestämmer över."
		case "RPC_NOT_PERMITTED":
			p.Message = "Din behörighet omfattar inte den här åtgärden."
		case "CONTROLLER_INSTRUCTION_REQUIRED":
			p.Message = "Uppgifterna tillhör en kund som är personuppgiftsansvarig. Begäran ska utföras på kundens instruktion, av kunden själv."
		default:
			p.Message = "Du har inte behörighet att göra detta."
		}
	case codes.Aborted:
		p.Status = http.StatusConflict
		if info.GetReason() == "STALE_VERSION" {
			p.Message = "Uppgifterna har ändrats sedan sidan visades. Läs in sidan igen och gör om ändringen."
		} else {
			p.Message = "Någon annan ändrade uppgifterna i samma stund. Skicka igen."
		}
	case codes.AlreadyExists:
		p.Status = http.StatusConflict
		what := "de uppgifterna"
		switch info.GetMetadata()["field"] {
		case "identity_number", "person.identity_number":
			what = "det personnumret"
		case "email", "person.email":
			what = "den e-postadressen"
		}
		p.Message = fmt.Sprintf("En annan registrerad hos samma personuppgiftsansvarige har redan %s.", what)
	case codes.Unavailable, codes.DeadlineExceeded:
		return &problem{Status: http.StatusServiceUnavailable, Code: p.Code,
			Message: "Tjänsten kunde inte svara just nu. Vänta en stund och försök igen; ingenting görs två gånger."}
	case codes.ResourceExhausted:
		p.Status = http.StatusRequestEntityTooLarge
		p.Message = "Det blev för mycket på en gång. Försök med mindre text."
	default:
		p.Status = http.StatusInternalServerError
		p.Message = "Något gick fel i tjänsten. Försök igen, och kontakta drift om det upprepas."
	}
	return p
}
