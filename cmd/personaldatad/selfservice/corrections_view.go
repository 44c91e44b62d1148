package selfservice

import (
	"html/template"

	"github.com/example/personaldata/service/contact"
)

// The templates of the corrections, parsed into the page's template: the
// overview's part ("own"), the change page ("change") and the page where
// the code sent to a new e-mail address or phone number is typed
// ("verify"). The forms have novalidate, so that the service's rule, and
// its message in the person's language, is the one that counts.

// phoneWords is a stored phone number as people write it.
func phoneWords(e164 string) string {
	if e164 == "" {
		return ""
	}
	return contact.PhoneDisplay(e164)
}

// formField is one labelled field of a form.
type formField struct {
	ID, Label, Hint, Type, Auto, Mode, Value, Bad string
}

func init() {
	template.Must(pageTemplate.Funcs(template.FuncMap{
		"field": func(l lang, o *own, id, sv, en, typ, auto, value string) formField {
			f := formField{ID: id, Label: l.say(sv, en), Type: typ, Auto: auto, Value: value}
			if o != nil {
				f.Bad = o.Bad[id]
			}
			switch id {
			case "telefon":
				f.Hint, f.Mode = l.say("Till exempel 070-123 45 67 eller +46 70 123 45 67.", "For example 070-123 45 67 or +46 70 123 45 67."), "tel"
			case "postnummer":
				f.Hint, f.Mode = l.say("Fem siffror, till exempel 123 45.", "Five digits, for example 123 45."), "numeric"
			case "kod":
				f.Mode = "numeric"
			}
			return f
		},
	}).Parse(correctionsTemplate))
}

const correctionsTemplate = `
{{define "field"}}<label for="{{.ID}}">{{.Label}}</label>
{{if .Hint}}<p class="hint" id="{{.ID}}-hint">{{.Hint}}</p>{{end}}
{{if .Bad}}<p class="field-error" id="{{.ID}}-error">{{.Bad}}</p>{{end}}
<input id="{{.ID}}" name="{{.ID}}" type="{{.Type}}"{{if .Auto}} autocomplete="{{.Auto}}"{{end}}{{if .Mode}} inputmode="{{.Mode}}"{{end}} value="{{.Value}}" maxlength="254"{{if .Bad}} aria-invalid="true"{{end}}{{if or .Hint .Bad}} aria-describedby="{{if .Hint}}{{.ID}}-hint{{end}}{{if and .Hint .Bad}} {{end}}{{if .Bad}}{{.ID}}-error{{end}}"{{end}}>
{{end}}

{{define "own"}}{{if .Own}}
<section aria-labelledby="h-own">
<h2 id="h-own">{{say .Lang "Ändra och bestäm själv" "Change and decide for yourself"}}</h2>
<p>{{say .Lang "Är något fel kan du rätta det själv." "If something is wrong, you can correct it yourself."}}</p>
<p><a class="button" href="/andra">{{say .Lang "Ändra namn, adress, e-post eller telefon" "Change name, address, e-mail or phone"}}</a></p>
<h3>{{say .Lang "Direktreklam" "Direct marketing"}}</h3>
{{if .Own.Marketing}}
<p>{{say .Lang "Du har sagt ja till direktreklam från oss. Du kan säga nej när du vill, utan att förklara varför. Det gäller direkt." "You have said yes to direct marketing from us. You can say no whenever you like, without giving a reason. It applies at once."}}</p>
<form method="post" action="/reklam">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<button type="submit">{{say .Lang "Nej tack till direktreklam" "No thanks to direct marketing"}}</button>
</form>
{{else}}
<p>{{say .Lang "Vi skickar ingen direktreklam till dig. Det gör vi bara om du har sagt ja till det." "We do not send you any direct marketing. We only do that if you have said yes to it."}}</p>
{{end}}
<h3>{{say .Lang "Samtycken som gäller" "Consents in force"}}</h3>
{{range .Own.Consents}}
<form method="post" action="/samtycke" class="consent">
<p>{{.What}}. {{say $.Lang "Du gav samtycket" "You gave the consent on"}} {{.Since}}.</p>
<input type="hidden" name="csrf" value="{{$.CSRF}}">
<input type="hidden" name="samtycke" value="{{.ID}}">
<button type="submit">{{say $.Lang "Återkalla samtycket" "Withdraw the consent"}}: {{.What}}</button>
</form>
{{else}}
<p>{{say .Lang "Du har inga samtycken som gäller just nu." "You have no consents in force right now."}}</p>
{{end}}
</section>
{{end}}{{end}}

{{define "change"}}
<p><a href="/">{{say .Lang "Tillbaka till dina uppgifter" "Back to your details"}}</a></p>
<section aria-labelledby="h-name">
<h2 id="h-name">{{say .Lang "Namn" "Name"}}</h2>
<form method="post" action="/andra/namn" novalidate>
<input type="hidden" name="csrf" value="{{.CSRF}}">
{{template "field" (field .Lang .Own "fornamn" "Förnamn" "Given name" "text" "given-name" .Own.Given)}}
{{template "field" (field .Lang .Own "efternamn" "Efternamn" "Family name" "text" "family-name" .Own.Family)}}
<button type="submit">{{say .Lang "Spara namnet" "Save the name"}}</button>
</form>
</section>
<section aria-labelledby="h-address">
<h2 id="h-address">{{say .Lang "Postadress" "Postal address"}}</h2>
<form method="post" action="/andra/adress" novalidate>
<input type="hidden" name="csrf" value="{{.CSRF}}">
{{template "field" (field .Lang .Own "gata" "Gatuadress" "Street address" "text" "address-line1" .Own.Line1)}}
{{template "field" (field .Lang .Own "adressrad2" "c/o eller annan adressrad (om du behöver)" "c/o or another address line (if you need one)" "text" "address-line2" .Own.Line2)}}
{{template "field" (field .Lang .Own "postnummer" "Postnummer" "Postcode" "text" "postal-code" .Own.PostalCode)}}
{{template "field" (field .Lang .Own "ort" "Ort" "Town or city" "text" "address-level2" .Own.Locality)}}
<button type="submit">{{say .Lang "Spara adressen" "Save the address"}}</button>
</form>
</section>
<section aria-labelledby="h-email">
<h2 id="h-email">{{say .Lang "E-post" "E-mail"}}</h2>
<p>{{say .Lang "Vi skickar en kod till den nya adressen. Den nya adressen börjar gälla först när du har skrivit in koden här." "We send a code to the new address. The new address applies only once you have typed the code in here."}}</p>
<form method="post" action="/andra/kontakt" novalidate>
<input type="hidden" name="csrf" value="{{.CSRF}}">
<input type="hidden" name="falt" value="epost">
{{template "field" (field .Lang .Own "epost" "Ny e-postadress" "New e-mail address" "email" "email" .Own.Email)}}
<button type="submit">{{say .Lang "Skicka kod till den nya adressen" "Send a code to the new address"}}</button>
</form>
</section>
<section aria-labelledby="h-phone">
<h2 id="h-phone">{{say .Lang "Telefon" "Phone"}}</h2>
<p>{{say .Lang "Vi skickar en kod i ett sms till det nya numret. Det nya numret börjar gälla först när du har skrivit in koden här." "We send a code by text message to the new number. The new number applies only once you have typed the code in here."}}</p>
<form method="post" action="/andra/kontakt" novalidate>
<input type="hidden" name="csrf" value="{{.CSRF}}">
<input type="hidden" name="falt" value="telefon">
{{template "field" (field .Lang .Own "telefon" "Nytt telefonnummer" "New phone number" "tel" "tel" .Own.Phone)}}
<button type="submit">{{say .Lang "Skicka kod till det nya numret" "Send a code to the new number"}}</button>
</form>
</section>
<section aria-labelledby="h-pnr">
<h2 id="h-pnr">{{say .Lang "Personnummer" "Personal identity number"}}</h2>
<p>{{say .Lang "Ditt personnummer kan du inte ändra här. Vi använder det för att veta att det är du, också när du loggar in. Är det fel? Kontakta oss, så rättar vi det när vi har kontrollerat vem du är." "You cannot change your personal identity number here. We use it to know that it is you, also when you sign in. Is it wrong? Contact us and we will correct it once we have checked who you are."}}</p>
</section>
{{end}}

{{define "verify"}}
<form method="post" action="/andra/bekrafta" novalidate>
<input type="hidden" name="csrf" value="{{.CSRF}}">
<input type="hidden" name="falt" value="{{.Own.Field}}">
{{template "field" (field .Lang .Own "kod" "Kod (8 siffror)" "Code (8 digits)" "text" "one-time-code" "")}}
<button type="submit">{{say .Lang "Bekräfta" "Confirm"}}</button>
</form>
<p><a href="/andra">{{say .Lang "Avbryt och gå tillbaka" "Cancel and go back"}}</a></p>
{{end}}
`

const correctionsCSS = `h3{font-size:1.05rem;margin:1.25rem 0 .5rem}
input[type=email],input[type=tel]{width:100%;font:inherit;padding:.6rem;border:2px solid #555;border-radius:4px}
input[aria-invalid=true]{border-color:#b00020}
.hint{margin:0 0 .25rem;color:#444}
.field-error{margin:0 0 .25rem;color:#b00020;font-weight:600}
form.consent{border-top:1px solid #ddd;padding:.5rem 0 1rem}
form.consent p{margin:.25rem 0}
`
