package selfservice

import (
	"fmt"
	"html/template"
	"regexp"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service"
)

// The overview speaks to the person in plain Swedish: each section and row
// is written out here, with the words the access letter uses
// (service.PlainName), and no field or value of the API reaches the page
// by its name.

// sections is the access document in sections with Swedish headings.
func sections(a *pdv1.AccessSubjectResponse) []section {
	var out []section
	add := func(heading, empty string, items []item) {
		out = append(out, section{Heading: heading, Empty: empty, Items: items})
	}
	add("Uppgifter om dig", "Vi har inga uppgifter om dig.", subjectItems(a.GetSubject()))
	var purposes []item
	for _, p := range a.GetPurposes() {
		purposes = append(purposes, item{Rows: rowsOf(
			"Varför", purposeWords(p.GetPurpose(), p.GetDescription()),
			"Med vilken rätt", legalBasisWords(p.GetLegalBasis()),
			"Uppgifter vi använder till det", fieldList(p.GetFields()),
		)})
	}
	add("Varför vi använder uppgifterna och med vilken rätt", "Vi använder inte dina uppgifter till något.", purposes)
	var retention []item
	if r := a.GetRetention(); r != nil {
		if r.GetAgreementId() == "" {
			retention = []item{{Rows: rowsOf("Så länge sparar vi dem", service.CompanyRetentionNote("sv"))}}
		} else {
			retention = []item{{Rows: rowsOf("Så länge sparas de", r.GetPolicy(), "Enligt avtal", r.GetAgreementId())}}
		}
	}
	add("Hur länge vi sparar uppgifterna", "Vi har inga uppgifter om hur länge de sparas.", retention)
	var disclosures []item
	for _, d := range a.GetDisclosures() {
		disclosures = append(disclosures, item{Rows: rowsOf(
			"Till", d.GetRecipient(),
			"Datum", date(d.GetDiscloseTime()),
			"Vilka uppgifter", categoryList(d.GetCategories()),
			"Varför", purposeWords(d.GetPurpose(), ""),
			"Med vilken rätt", enumName(d.GetBasis().String()),
		)})
	}
	add("Vilka vi har lämnat ut uppgifter till", "Vi har inte lämnat ut dina uppgifter till någon.", disclosures)
	var consents []item
	for _, c := range a.GetConsents() {
		what := enumName(c.GetPurpose().String())
		if c.GetRecipient() != "" {
			what = strings.TrimSpace(what + " " + c.GetRecipient())
		}
		withdrawn := "Nej, samtycket gäller"
		if c.GetWithdrawTime() != nil {
			withdrawn = "Ja, " + date(c.GetWithdrawTime())
		}
		consents = append(consents, item{Rows: rowsOf("Vad du har samtyckt till", what, "Datum", date(c.GetGiveTime()), "Återkallat", withdrawn)})
	}
	add("Dina samtycken", "Du har inte lämnat något samtycke.", consents)
	var changes []item
	for _, c := range a.GetChanges() {
		changes = append(changes, item{Rows: rowsOf("Datum", date(c.GetChangeTime()), "Vad som hände", enumName(c.GetKind().String()), "Vilka uppgifter", fieldList(c.GetFields()))})
	}
	add("Ändringar av dina uppgifter", "Inga ändringar.", changes)
	var history []item
	for _, h := range a.GetHistory() {
		history = append(history, item{Rows: rowsOf("Datum", date(h.GetOccurTime()), "Slag", historyKinds[h.GetKind()], "Rubrik", h.GetTitle(), "Text", h.GetBody())})
	}
	add("Kontakter med oss", "Vi har inga sparade kontakter med dig.", history)
	var policy []item
	for _, p := range a.GetPolicyAcknowledgements() {
		how := "Du fick information om den"
		if p.GetKind() == pdv1.PolicyAcknowledgementKind_POLICY_ACKNOWLEDGEMENT_KIND_ACCEPTED {
			how = "Du godkände den"
		}
		policy = append(policy, item{Rows: rowsOf("Version", p.GetVersion(), "Datum", date(p.GetAcknowledgeTime()), "Hur", how)})
	}
	add("Vår integritetspolicy", "Vi har inte noterat att du har fått vår integritetspolicy.", policy)
	var holds []item
	for _, h := range a.GetHolds() {
		end := ""
		if h.GetEndTime() != nil {
			end = date(h.GetEndTime())
		}
		holds = append(holds, item{Rows: rowsOf("Varför", enumName(h.GetBasis().String()), "Vilka uppgifter", categoryList(h.GetCategories()),
			"Sedan", date(h.GetPlaceTime()), "Till och med", date(h.GetUntil()), "Upphörde", end)})
	}
	add("Uppgifter vi måste spara längre", "Inga.", holds)
	return out
}

// subjectItems are the person's own details.
func subjectItems(s *pdv1.Subject) []item {
	if s == nil {
		return nil
	}
	p := s.GetPerson()
	number := p.GetIdentityNumber()
	if len(number) == 12 {
		number = number[:8] + "-" + number[8:]
	}
	var address string
	if a := p.GetPostalAddress(); a != nil {
		parts := append(slices.Clone(a.GetLines()), strings.TrimSpace(a.GetPostalCode()+" "+a.GetLocality()))
		if c := a.GetCountryCode(); c != "" && c != "SE" {
			parts = append(parts, service.CountryName(c, "sv"))
		}
		address = strings.Join(parts, ", ")
	}
	rs := rowsOf(
		identityWord(p.GetIdentityNumberKind()), number,
		"Förnamn", p.GetGivenName(),
		"Efternamn", p.GetFamilyName(),
		"E-post", p.GetEmail(),
		"Telefon", p.GetPhone(),
		"Postadress", address,
		"Registrerad", date(s.GetCreateTime()),
		"Senast ändrad", date(s.GetUpdateTime()),
	)
	if c := s.GetControllerId(); c != "" && c != "company" {
		rs = append(rs, row{"Vem som ansvarar för uppgifterna", "Vår kund " + c + ". Vi hanterar uppgifterna för deras räkning."})
	}
	switch s.GetState() {
	case pdv1.SubjectState_SUBJECT_STATE_RESTRICTED:
		rs = append(rs, row{"Begränsning", "Sedan " + date(s.GetRestriction().GetRestrictTime()) + " sparar vi bara uppgifterna och använder dem inte till något annat."})
	case pdv1.SubjectState_SUBJECT_STATE_ERASED:
		rs = append(rs, row{"Radering", "Uppgifterna raderades " + date(s.GetErasure().GetEraseTime()) + "."})
	}
	return []item{{Rows: rs}}
}

// rowsOf pairs labels and values, leaving out the empty values.
func rowsOf(pairs ...string) []row {
	var out []row
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			out = append(out, row{pairs[i], pairs[i+1]})
		}
	}
	return out
}

// enumName is the Swedish name of an enum value; "" for one without.
func enumName(name string) string { return service.PlainName("sv", name) }

func identityWord(k pdv1.IdentityNumberKind) string {
	if k == pdv1.IdentityNumberKind_IDENTITY_NUMBER_KIND_SAMORDNINGSNUMMER {
		return "Samordningsnummer"
	}
	return "Personnummer"
}

// purposeWords names a purpose; one the letter does not know is shown by
// its description.
func purposeWords(p pdv1.Purpose, description string) string {
	if p == pdv1.Purpose_PURPOSE_UNSPECIFIED {
		return ""
	}
	if n := enumName(p.String()); n != "" {
		return n
	}
	return description
}

var processorBasis = regexp.MustCompile(`^processing on the controller's instruction under processor agreement (\S+)`)

// legalBasisWords is a legal basis in Swedish.
func legalBasisWords(b string) string {
	if n := service.PlainName("sv", b); n != "" {
		return n
	}
	if m := processorBasis.FindStringSubmatch(b); m != nil {
		return "Vi hanterar uppgifterna på uppdrag av den som ansvarar för dem, enligt personuppgiftsbiträdesavtal " + m[1] + " (artikel 28)"
	}
	return b
}

// fieldList names fields of a person, in lower case after the first.
func fieldList(fields []string) string {
	var out []string
	for _, f := range fields {
		n := service.PlainName("sv", f)
		if n == "" {
			n = "övriga uppgifter"
		}
		if len(out) > 0 {
			n = strings.ToLower(n[:1]) + n[1:]
		}
		out = append(out, n)
	}
	return strings.Join(out, ", ")
}

func categoryList(cs []pdv1.DataCategory) string {
	var out []string
	for _, c := range cs {
		out = append(out, enumName(c.String()))
	}
	return strings.Join(out, "; ")
}

var historyKinds = map[pdv1.HistoryKind]string{
	pdv1.HistoryKind_HISTORY_KIND_EMAIL_CONVERSATION: "E-post mellan dig och oss",
	pdv1.HistoryKind_HISTORY_KIND_ERROR_REPORT:       "Felanmälan",
}

var months = [...]string{"januari", "februari", "mars", "april", "maj", "juni", "juli", "augusti", "september", "oktober", "november", "december"}

// date is a day as Swedes write it in text: "27 november 2026".
func date(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	t := ts.AsTime().In(stockholm)
	return fmt.Sprintf("%d %s %d", t.Day(), months[t.Month()-1], t.Year())
}

var pageTemplate = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="sv">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} – Dina personuppgifter</title>
<link rel="stylesheet" href="/style.css">
</head>
<body>
<header><p class="brand">Dina personuppgifter</p></header>
<main>
<h1>{{.Title}}</h1>
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
{{if .Info}}<p class="info" role="status">{{.Info}}</p>{{end}}
{{if eq .Step "start"}}
<p>Här kan du se vilka uppgifter vi har om dig. Logga in med en kod som vi skickar till den e-postadress eller det mobilnummer som vi redan har till dig.</p>
<form method="post" action="/logga-in">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="identitet">Personnummer eller e-postadress</label>
<input id="identitet" name="identitet" type="text" autocomplete="username" required maxlength="254">
<button type="submit">Skicka kod</button>
</form>
{{else if eq .Step "code"}}
<form method="post" action="/kod">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="kod">Kod (8 siffror)</label>
<input id="kod" name="kod" type="text" inputmode="numeric" autocomplete="one-time-code" required maxlength="20">
<button type="submit">Logga in</button>
</form>
<p><a href="/">Börja om</a></p>
{{else}}
<p>Det här är allt vi har om dig just nu.</p>
<p><a class="button" href="/export" download>Ladda ner allt som en fil (JSON)</a></p>
{{range .Sections}}
<section>
<h2>{{.Heading}}</h2>
{{if not .Items}}<p>{{.Empty}}</p>{{end}}
{{range .Items}}<dl>{{range .Rows}}<dt>{{.Label}}</dt><dd>{{.Value}}</dd>{{end}}</dl>{{end}}
</section>
{{end}}
<form method="post" action="/logga-ut">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<button type="submit">Logga ut</button>
</form>
{{end}}
</main>
</body>
</html>
`))

const styleCSS = `*{box-sizing:border-box}
body{margin:0;font:1.0625rem/1.5 system-ui,sans-serif;color:#1a1a1a;background:#fff}
header{background:#0b3d5c;color:#fff;padding:.75rem 1rem}
.brand{margin:0;font-weight:600}
main{max-width:42rem;margin:0 auto;padding:1rem}
h1{font-size:1.6rem;margin:.5rem 0 1rem}
h2{font-size:1.2rem;margin:1.5rem 0 .5rem;border-top:1px solid #ccc;padding-top:1rem}
label{display:block;font-weight:600;margin:.75rem 0 .25rem}
input[type=text]{width:100%;font:inherit;padding:.6rem;border:2px solid #555;border-radius:4px}
button,.button{display:inline-block;margin-top:1rem;font:inherit;font-weight:600;padding:.6rem 1.2rem;border:0;border-radius:4px;background:#0b3d5c;color:#fff;text-decoration:none;cursor:pointer}
:focus-visible{outline:3px solid #e07b00;outline-offset:2px}
a{color:#0b3d5c}
.error{border-left:5px solid #b00020;background:#fdecee;padding:.75rem}
.info{border-left:5px solid #0b3d5c;background:#e8f1f7;padding:.75rem}
dl{margin:0 0 1rem;display:grid;grid-template-columns:minmax(8rem,max-content) 1fr;gap:.25rem 1rem;overflow-wrap:anywhere}
dt{font-weight:600}dd{margin:0}
@media (max-width:30rem){dl{grid-template-columns:1fr}dd{margin-bottom:.5rem}}
`
