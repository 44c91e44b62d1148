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

	"github.com/example/personaldata/cmd/personaldatad/internal/signinlimit"
)

// problem is what went wrong, in plain Swedish, for a page to show.
type problem struct {
	// Status is the HTTP status of the page that shows it.
	Status  int
	Message string
	// Fields are the form fields at fault, each linked from the summary.
	Fields []fieldProblem
	// Code is the API's status code, for the console's log only: the
	// page shows ForIT.
	Code string
	// RequestID is the service's id of the call that was refused (its
	// log and audit trail name it), for whoever the staff ask for help.
	RequestID string
}

// codeLabels are the Swedish words for the API's status codes that the
// staff may need to quote to IT; the others are explained in full by the
// message and need no help.
var codeLabels = map[string]string{
	codes.PermissionDenied.String():  "behörighet saknas",
	codes.Unavailable.String():       "tjänsten svarar inte",
	codes.DeadlineExceeded.String():  "tjänsten svarade inte i tid",
	codes.Internal.String():          "internt fel i tjänsten",
	codes.Unknown.String():           "okänt fel i tjänsten",
	codes.DataLoss.String():          "internt fel i tjänsten",
	codes.Unimplemented.String():     "åtgärden finns inte i tjänsten",
	codes.ResourceExhausted.String(): "för mycket på en gång",
}

// ForIT is what the staff can quote to IT about a refusal they cannot
// help by themselves, in Swedish: what kind of fault, and the call's id.
// Empty when the message says all there is to do.
func (p *problem) ForIT() string {
	if p == nil {
		return ""
	}
	what, ok := codeLabels[p.Code]
	if !ok && p.Status < 500 {
		return ""
	}
	if what == "" {
		what = "internt fel i tjänsten"
	}
	s := "Om du behöver hjälp av IT-driften, uppge: " + what
	if p.RequestID != "" {
		s += ", händelse-id " + p.RequestID
	}
	return s + "."
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

// problemSignInLimited: too many failed sign-ins, from this address or in
// all; the page does not say which, nor anything of the credentials given.
func problemSignInLimited(wait time.Duration) *problem {
	return &problem{Status: http.StatusTooManyRequests,
		Message: "För många misslyckade inloggningsförsök. Inloggningen är spärrad en stund: vänta " + signinlimit.WaitWords(wait) + " och försök sedan igen."}
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
	return &problem{Status: http.StatusNotFound, Message: "Det finns ingen sida på den adressen. Länken kan vara felskriven eller gammal."}
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
	// The rights requests' fields.
	{regexp.MustCompile(`^does not match the code sent; 0 tries left`), "stämmer inte med koden som skickades, och inga försök finns kvar: skicka en ny kod"},
	{regexp.MustCompile(`^does not match the code sent; 1 tries left`), "stämmer inte med koden som skickades (1 försök kvar)"},
	{regexp.MustCompile(`^does not match the code sent; (\d+) tries left`), "stämmer inte med koden som skickades ($1 försök kvar)"},
	{regexp.MustCompile(`^must be the (\d+) digits of the code sent`), "ska vara de $1 siffrorna i koden som skickades"},
	{regexp.MustCompile(`^an identity_number or an email is required`), "måste fyllas i: ett personnummer eller en e-postadress"},
	{regexp.MustCompile(`^must be 1 or 2`), "ska vara 1 eller 2 månader"},
	{regexp.MustCompile(`^a grant's reason is RIGHT_APPLIES`), "ska vara ”Rätten gäller” när förfrågan beviljas helt"},
	{regexp.MustCompile(`^a refusal or a grant in part needs the reason`), "ska vara skälet för det som avslås, inte ”Rätten gäller”"},
	{regexp.MustCompile(`^a code is confirmed with`), "kan inte vara en kod: ange koden i formuläret för koden"},
	{regexp.MustCompile(`^must be a customer: the company`), "ska vara en kund, inte företaget självt"},
	{regexp.MustCompile(`^must be a customer id`), "ska vara ett kund-id: 1 till 63 tecken a–z, 0–9, _ och -"},
	{regexp.MustCompile(`^a \S+ request is fulfilled with`), "passar inte förfrågans slag. Läs in sidan igen"},
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
	defer func() {
		for _, d := range st.Details() {
			if ri, ok := d.(*errdetails.RequestInfo); ok {
				p.RequestID = ri.GetRequestId()
			}
		}
	}()
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
			if v.GetField() == "code" && strings.HasPrefix(v.GetDescription(), "does not match") {
				// The field's own sentence says it does not match, and how
				// many tries are left: the message does not say it again.
				p.Message = "Kontrollera koden med den registrerade och försök igen."
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
		case preType == "NO_PROCESSOR_AGREEMENT" && strings.Contains(st.Message(), "with this customer"):
			p.Message = "Det finns inget personuppgiftsbiträdesavtal med den kunden, så företaget behandlar inga uppgifter åt den. Kontrollera kundens id."
		case preType == "NO_PROCESSOR_AGREEMENT":
			p.Message = "Det finns inget personuppgiftsbiträdesavtal i kraft som täcker detta för kunden, så uppgifterna får inte behandlas."
		case preType != "" && requestPreconditions[preType] != nil:
			p.Message = requestPreconditions[preType](st.Message())
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
		p.Status = http.StatusServiceUnavailable
		p.Message = "Tjänsten kunde inte svara just nu. Vänta en stund och försök igen; ingenting görs två gånger."
	case codes.ResourceExhausted:
		p.Status = http.StatusRequestEntityTooLarge
		p.Message = "Det blev för mycket på en gång. Försök med mindre text."
	default:
		p.Status = http.StatusInternalServerError
		p.Message = "Något gick fel i tjänsten. Försök igen, och kontakta drift om det upprepas."
	}
	return p
}

// requestPreconditions say in Swedish why a step of a rights request was
// refused, by the API's PreconditionFailure type, given its message.
var requestPreconditions = map[string]func(msg string) string{
	"IDENTITY_NOT_VERIFIED": func(string) string {
		return "Den registrerades identitet är inte styrkt. Skicka en kod till kontaktuppgiften i registret och ange koden, " +
			"eller intyga en starkare kontroll (BankID, id-handling, återuppringning). Bara ett avslag kräver det inte."
	},
	"NOT_DECIDED": func(string) string {
		return "Förfrågan är inte beslutad. Bevilja den, helt eller delvis, innan den utförs."
	},
	"ALREADY_ANSWERED": func(msg string) string {
		if strings.Contains(msg, "decided already") {
			return "Förfrågan är redan beslutad."
		}
		return "Förfrågan är redan besvarad, så inget mer kan göras med den."
	},
	"NO_CONTACT_ON_FILE": func(string) string {
		return "Personen har ingen sådan kontaktuppgift i registret att skicka en kod till. Välj e-post eller sms, " +
			"eller intyga en kontroll som gjorts på annat sätt."
	},
	"NO_SUBJECT_MATCHED": func(msg string) string {
		if strings.Contains(msg, "code") {
			return "Ingen registrerad matchade den uppgivna identiteten, så det finns ingen kontaktuppgift att skicka en kod till. " +
				"Intyga en kontroll som gjorts på annat sätt."
		}
		return "Ingen registrerad matchade den uppgivna identiteten, så det finns inget att utföra."
	},
	"CODE_EXPIRED": func(string) string {
		return "Koden har gått ut: den gäller i 30 minuter. Skicka en ny kod."
	},
	"CODE_TRIES_EXHAUSTED": func(string) string {
		return "Koden har angetts fel för många gånger och gäller inte längre. Skicka en ny kod."
	},
	"NO_CODE_SENT": func(string) string {
		return "Ingen kod har skickats för den här förfrågan. Skicka en kod först."
	},
	"TOO_MANY_CODES": func(msg string) string {
		n := "flera"
		if m := leadingNumber.FindString(msg); m != "" {
			n = m
		}
		return "Det har redan skickats " + n + " koder för den här förfrågan, och fler skickas inte. " +
			"Styrk identiteten på annat sätt: BankID, id-handling eller återuppringning."
	},
	"ALREADY_EXTENDED": func(string) string {
		return "Tidsfristen är redan förlängd. Den får bara förlängas en gång."
	},
	"FIRST_MONTH_ENDED": func(msg string) string {
		when := ""
		if d := isoDate.FindString(msg); d != "" {
			when = " den " + d
		}
		return "Tidsfristen kan bara förlängas under den första månaden, och den gick ut" + when + ". Förfrågan ska besvaras nu."
	},
	"ACTION_DOES_NOT_MATCH_KIND": func(string) string {
		return "Bara en förfrågan om tillgång eller dataportabilitet har ett svar med uppgifterna."
	},
	"NOT_FULFILLED": func(string) string {
		return "Förfrågan är inte utförd än, så svaret finns inte."
	},
}

var (
	leadingNumber = regexp.MustCompile(`^\d+`)
	isoDate       = regexp.MustCompile(`\d{4}-\d{2}-\d{2}`)
)
