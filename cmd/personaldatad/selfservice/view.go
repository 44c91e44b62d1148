package selfservice

import (
	"fmt"
	"html/template"
	"regexp"
	"slices"
	"strings"

	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/requests"
)

// The overview speaks to the person in plain Swedish, or plain English on
// the switch: each section and row is written out here, with the words the
// access letter uses (requests.PlainName), and no field or value of the API
// reaches the page by its name.

// lang is the page's language: "sv", the default, or "en".
type lang string

// say is the text in the page's language: Swedish or English.
func (l lang) say(sv, en string) string {
	if l == "en" {
		return en
	}
	return sv
}

// sections is the access document in sections with headings in l.
func sections(a *pdv1.AccessSubjectResponse, l lang) []section {
	var out []section
	add := func(heading, empty string, items []item) {
		out = append(out, section{Heading: heading, Empty: empty, Items: items})
	}
	add(l.say("Uppgifter om dig", "About you"), l.say("Vi har inga uppgifter om dig.", "We hold no details about you."), subjectItems(a.GetSubject(), l))
	var purposes []item
	for _, p := range a.GetPurposes() {
		purposes = append(purposes, item{Rows: rowsOf(
			l.say("Varför", "Why"), purposeWords(p.GetPurpose(), p.GetDescription(), l),
			l.say("Med vilken rätt", "On what legal basis"), legalBasisWords(p.GetLegalBasis(), l),
			l.say("Uppgifter vi använder till det", "Details we use for it"), fieldList(p.GetFields(), l),
		)})
	}
	add(l.say("Varför vi använder uppgifterna och med vilken rätt", "Why we use your details and on what legal basis"),
		l.say("Vi använder inte dina uppgifter till något.", "We do not use your details for anything."), purposes)
	var retention []item
	if r := a.GetRetention(); r != nil {
		if r.GetAgreementId() == "" {
			retention = []item{{Rows: rowsOf(l.say("Så länge sparar vi dem", "How long we keep them"), requests.CompanyRetentionNote(string(l)))}}
		} else {
			retention = []item{{Rows: rowsOf(l.say("Så länge sparas de", "How long they are kept"), r.GetPolicy(), l.say("Enligt avtal", "Under agreement"), r.GetAgreementId())}}
		}
	}
	add(l.say("Hur länge vi sparar uppgifterna", "How long we keep your details"), l.say("Vi har inga uppgifter om hur länge de sparas.", "We hold nothing on how long they are kept."), retention)
	var disclosures []item
	for _, d := range a.GetDisclosures() {
		disclosures = append(disclosures, item{Rows: rowsOf(
			l.say("Till", "To"), d.GetRecipient(),
			l.say("Datum", "Date"), date(d.GetDiscloseTime(), l),
			l.say("Vilka uppgifter", "Which details"), categoryList(d.GetCategories(), l),
			l.say("Varför", "Why"), purposeWords(d.GetPurpose(), "", l),
			l.say("Med vilken rätt", "On what legal basis"), enumName(d.GetBasis().String(), l),
		)})
	}
	add(l.say("Vilka vi har lämnat ut uppgifter till", "Whom we have given your details to"), l.say("Vi har inte lämnat ut dina uppgifter till någon.", "We have not given your details to anyone."), disclosures)
	var consents []item
	for _, c := range a.GetConsents() {
		what := enumName(c.GetPurpose().String(), l)
		if c.GetRecipient() != "" {
			what = strings.TrimSpace(what + " " + c.GetRecipient())
		}
		withdrawn := l.say("Nej, samtycket gäller", "No, the consent is in force")
		if c.GetWithdrawTime() != nil {
			withdrawn = l.say("Ja, ", "Yes, ") + date(c.GetWithdrawTime(), l)
		}
		consents = append(consents, item{Rows: rowsOf(l.say("Vad du har samtyckt till", "What you consented to"), what, l.say("Datum", "Date"), date(c.GetGiveTime(), l),
			l.say("Återkallat", "Withdrawn"), withdrawn)})
	}
	add(l.say("Dina samtycken", "Your consents"), l.say("Du har inte lämnat något samtycke.", "You have not given any consent."), consents)
	var changes []item
	for _, c := range a.GetChanges() {
		changes = append(changes, item{Rows: rowsOf(l.say("Datum", "Date"), date(c.GetChangeTime(), l), l.say("Vad som hände", "What happened"), enumName(c.GetKind().String(), l),
			l.say("Vilka uppgifter", "Which details"), fieldList(c.GetFields(), l))})
	}
	add(l.say("Ändringar av dina uppgifter", "Changes to your details"), l.say("Inga ändringar.", "No changes."), changes)
	var history []item
	for _, h := range a.GetHistory() {
		history = append(history, item{Rows: rowsOf(l.say("Datum", "Date"), date(h.GetOccurTime(), l), l.say("Slag", "Kind"), historyKind(h.GetKind(), l),
			l.say("Rubrik", "Subject"), h.GetTitle(), l.say("Text", "Text"), h.GetBody())})
	}
	add(l.say("Kontakter med oss", "Your contacts with us"), l.say("Vi har inga sparade kontakter med dig.", "We have kept no contacts with you."), history)
	var policy []item
	for _, p := range a.GetPolicyAcknowledgements() {
		how := l.say("Du fick information om den", "You were told of it")
		if p.GetKind() == pdv1.PolicyAcknowledgementKind_POLICY_ACKNOWLEDGEMENT_KIND_ACCEPTED {
			how = l.say("Du godkände den", "You accepted it")
		}
		policy = append(policy, item{Rows: rowsOf("Version", p.GetVersion(), l.say("Datum", "Date"), date(p.GetAcknowledgeTime(), l), l.say("Hur", "How"), how)})
	}
	add(l.say("Vår integritetspolicy", "Our privacy policy"), l.say("Vi har inte noterat att du har fått vår integritetspolicy.", "We have no note that you were given our privacy policy."), policy)
	var holds []item
	for _, h := range a.GetHolds() {
		end := ""
		if h.GetEndTime() != nil {
			end = date(h.GetEndTime(), l)
		}
		holds = append(holds, item{Rows: rowsOf(l.say("Varför", "Why"), enumName(h.GetBasis().String(), l), l.say("Vilka uppgifter", "Which details"), categoryList(h.GetCategories(), l),
			l.say("Sedan", "Since"), date(h.GetPlaceTime(), l), l.say("Till och med", "Until"), date(h.GetUntil(), l), l.say("Upphörde", "Ended"), end)})
	}
	add(l.say("Uppgifter vi måste spara längre", "Details we must keep longer"), l.say("Inga.", "None."), holds)
	return out
}

// subjectItems are the person's own details.
func subjectItems(s *pdv1.Subject, l lang) []item {
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
			parts = append(parts, requests.CountryName(c, string(l)))
		}
		address = strings.Join(parts, ", ")
	}
	rs := rowsOf(
		identityWord(p.GetIdentityNumberKind(), l), number,
		l.say("Förnamn", "Given name"), p.GetGivenName(),
		l.say("Efternamn", "Family name"), p.GetFamilyName(),
		l.say("E-post", "E-mail"), p.GetEmail(),
		l.say("Telefon", "Phone"), phoneWords(p.GetPhone()),
		l.say("Postadress", "Postal address"), address,
		l.say("Registrerad", "Registered"), date(s.GetCreateTime(), l),
		l.say("Senast ändrad", "Last changed"), date(s.GetUpdateTime(), l),
	)
	if c := s.GetControllerId(); c != "" && c != "company" {
		rs = append(rs, row{l.say("Vem som ansvarar för uppgifterna", "Who is responsible for the details"),
			l.say("Vår kund "+c+". Vi hanterar uppgifterna för deras räkning.", "Our customer "+c+". We handle the details on their behalf.")})
	}
	switch s.GetState() {
	case pdv1.SubjectState_SUBJECT_STATE_RESTRICTED:
		since := date(s.GetRestriction().GetRestrictTime(), l)
		rs = append(rs, row{l.say("Begränsning", "Restriction"), l.say("Sedan "+since+" sparar vi bara uppgifterna och använder dem inte till något annat.",
			"Since "+since+" we only store the details and use them for nothing else.")})
	case pdv1.SubjectState_SUBJECT_STATE_ERASED:
		on := date(s.GetErasure().GetEraseTime(), l)
		rs = append(rs, row{l.say("Radering", "Erasure"), l.say("Uppgifterna raderades "+on+".", "The details were erased on "+on+".")})
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

// enumName is the name in l of an enum value; "" for one without.
func enumName(name string, l lang) string { return requests.PlainName(string(l), name) }

func identityWord(k pdv1.IdentityNumberKind, l lang) string {
	if k == pdv1.IdentityNumberKind_IDENTITY_NUMBER_KIND_SAMORDNINGSNUMMER {
		return l.say("Samordningsnummer", "Co-ordination number")
	}
	return l.say("Personnummer", "Personal identity number")
}

// purposeWords names a purpose; one the letter does not know is shown by
// its description.
func purposeWords(p pdv1.Purpose, description string, l lang) string {
	if p == pdv1.Purpose_PURPOSE_UNSPECIFIED {
		return ""
	}
	if n := enumName(p.String(), l); n != "" {
		return n
	}
	return description
}

var processorBasis = regexp.MustCompile(`^processing on the controller's instruction under processor agreement (\S+)`)

// legalBasisWords is a legal basis in l.
func legalBasisWords(b string, l lang) string {
	if n := requests.PlainName(string(l), b); n != "" {
		return n
	}
	if m := processorBasis.FindStringSubmatch(b); m != nil {
		return l.say("Vi hanterar uppgifterna på uppdrag av den som ansvarar för dem, enligt personuppgiftsbiträdesavtal "+m[1]+" (artikel 28)",
			"We handle the details on behalf of whoever is responsible for them, under data processing agreement "+m[1]+" (Article 28)")
	}
	return b
}

// fieldList names fields of a person, in lower case after the first.
func fieldList(fields []string, l lang) string {
	var out []string
	for _, f := range fields {
		n := requests.PlainName(string(l), f)
		if n == "" {
			n = l.say("övriga uppgifter", "other details")
		}
		if len(out) > 0 {
			n = strings.ToLower(n[:1]) + n[1:]
		}
		out = append(out, n)
	}
	return strings.Join(out, ", ")
}

func categoryList(cs []pdv1.DataCategory, l lang) string {
	var out []string
	for _, c := range cs {
		out = append(out, enumName(c.String(), l))
	}
	return strings.Join(out, "; ")
}

func historyKind(k pdv1.HistoryKind, l lang) string {
	switch k {
	case pdv1.HistoryKind_HISTORY_KIND_EMAIL_CONVERSATION:
		return l.say("E-post mellan dig och oss", "E-mail between you and us")
	case pdv1.HistoryKind_HISTORY_KIND_ERROR_REPORT:
		return l.say("Felanmälan", "Fault report")
	}
	return ""
}

var months = [...]string{"januari", "februari", "mars", "april", "maj", "juni", "juli", "augusti", "september", "oktober", "november", "december"}

// date is a day as it is written in text in l: "27 november 2026", or
// "27 November 2026" in English. The day is Stockholm's.
func date(ts *timestamppb.Timestamp, l lang) string {
	if ts == nil {
		return ""
	}
	t := ts.AsTime().In(stockholm)
	if l == "en" {
		return fmt.Sprintf("%d %s %d", t.Day(), t.Month(), t.Year())
	}
	return fmt.Sprintf("%d %s %d", t.Day(), months[t.Month()-1], t.Year())
}

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"say": func(l lang, sv, en string) string { return l.say(sv, en) },
}).Parse(`<!doctype html>
<html lang="{{if eq .Lang "en"}}en{{else}}sv{{end}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} – {{say .Lang "Dina personuppgifter" "Your personal data"}}</title>
<link rel="stylesheet" href="/style.css">
{{template "strong-head" .}}
</head>
<body>
<header><p class="brand">{{say .Lang "Dina personuppgifter" "Your personal data"}}</p>
{{if eq .Lang "en"}}<a class="lang" href="/sprak/sv" lang="sv" hreflang="sv">På svenska</a>{{else}}<a class="lang" href="/sprak/en" lang="en" hreflang="en">In English</a>{{end}}
</header>
<main>
<h1>{{.Title}}</h1>
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
{{if .Info}}<p class="info" role="status">{{.Info}}</p>{{end}}
{{if eq .Step "start"}}
<p>{{say .Lang "Här kan du se vilka uppgifter vi har om dig. Logga in med en kod som vi skickar till den e-postadress eller det mobilnummer som vi redan har till dig." "Here you can see what details we hold about you. Sign in with a code that we send to the e-mail address or mobile number we already have for you."}}</p>
<form method="post" action="/logga-in">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="identitet">{{say .Lang "Personnummer eller e-postadress" "Swedish personal identity number or e-mail address"}}</label>
<input id="identitet" name="identitet" type="text" autocomplete="username" required maxlength="254">
<button type="submit">{{say .Lang "Skicka kod" "Send code"}}</button>
</form>
{{template "strong" .}}
{{else if eq .Step "code"}}
<form method="post" action="/kod">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<label for="kod">{{say .Lang "Kod (8 siffror)" "Code (8 digits)"}}</label>
<input id="kod" name="kod" type="text" inputmode="numeric" autocomplete="one-time-code" required maxlength="20">
<button type="submit">{{say .Lang "Logga in" "Sign in"}}</button>
</form>
<p><a href="/">{{say .Lang "Börja om" "Start again"}}</a></p>
{{else if eq .Step "change"}}{{template "change" .}}
{{else if eq .Step "verify"}}{{template "verify" .}}
{{else if eq .Step "continue"}}{{template "continue" .}}
{{else if eq .Step "rights"}}{{template "rightsForms" .}}
{{else if eq .Step "erase"}}{{template "erase" .}}
{{else if eq .Step "gone"}}
{{else if eq .Step "none"}}<p>{{say .Lang "Har ett företag som är vår kund uppgifter om dig, så är det företaget som svarar för dem. Fråga företaget direkt." "If a company that is our customer holds details about you, that company answers for them. Ask the company directly."}}</p><p><a href="/">{{say .Lang "Till början" "To the start"}}</a></p>
{{else if eq .Step "me-error"}}<p><a href="/">{{say .Lang "Tillbaka till dina uppgifter" "Back to your details"}}</a></p>
{{else}}
<p>{{say .Lang "Det här är allt vi har om dig just nu." "This is everything we hold about you right now."}}</p>
<p><a class="button" href="/export" download>{{say .Lang "Ladda ner allt som en fil (JSON)" "Download everything as a file (JSON)"}}</a></p>
<p><a class="button" href="/brev" download>{{say .Lang "Ladda ner allt som ett brev att läsa" "Download everything as a letter to read"}}</a></p>
{{template "own" .}}
{{template "rights" .}}
{{range .Sections}}
<section>
<h2>{{.Heading}}</h2>
{{if not .Items}}<p>{{.Empty}}</p>{{end}}
{{range .Items}}<dl>{{range .Rows}}<dt>{{.Label}}</dt><dd>{{.Value}}</dd>{{end}}</dl>{{end}}
</section>
{{end}}
<form method="post" action="/logga-ut">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<button type="submit">{{say .Lang "Logga ut" "Sign out"}}</button>
</form>
{{end}}
</main>
</body>
</html>
`))

const styleCSS = `*{box-sizing:border-box}
body{margin:0;font:1.0625rem/1.5 system-ui,sans-serif;color:#1a1a1a;background:#fff}
header{background:#0b3d5c;color:#fff;padding:.75rem 1rem;display:flex;justify-content:space-between;align-items:center;gap:1rem}
.brand{margin:0;font-weight:600}
header a.lang{color:#fff}
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
