package selfservice

import "html/template"

// The templates of the rights requests, parsed into the page's template:
// the overview's part ("rights"), the request page ("rightsForms") and the
// confirmation of an erasure ("erase"). Every choice is a button of its
// own, so that the page is used with Tab and Enter alone.

func init() {
	template.Must(pageTemplate.Parse(rightsTemplate))
}

const rightsTemplate = `
{{define "rights"}}{{if .Rights}}
<section aria-labelledby="h-rights">
<h2 id="h-rights">{{say .Lang "Begränsning, invändning och radering" "Restriction, objection and erasure"}}</h2>
<p>{{say .Lang "Du kan be oss att bara spara dina uppgifter och inte använda dem (begränsning), invända mot hur vi använder dem, eller be oss radera dem. Vi svarar inom en månad." "You can ask us to only store your details and not use them (restriction), object to how we use them, or ask us to erase them. We answer within a month."}}</p>
{{range .Rights.Customers}}<p>{{say $.Lang "Vi har också uppgifter om dig för vår kund" "We also hold details about you for our customer"}} <strong>{{.}}</strong>. {{say $.Lang "Det är de som ansvarar för de uppgifterna, och det du begär om dem skickar vi vidare till dem." "They are responsible for those details, and what you ask about them we pass on to them."}}</p>
{{end}}
<p><a class="button" href="/begar">{{say .Lang "Begär begränsning, invändning eller radering" "Ask for restriction, objection or erasure"}}</a></p>
<h3>{{say .Lang "Dina begäranden" "Your requests"}}</h3>
{{range .Rights.Requests}}
<dl class="request">
<dt>{{say $.Lang "Vad" "What"}}</dt><dd>{{.What}}</dd>
<dt>{{say $.Lang "Skickad" "Sent"}}</dt><dd>{{.Sent}}</dd>
<dt>{{say $.Lang "Läge" "Status"}}</dt><dd>{{.State}}</dd>
{{if .Due}}<dt>{{say $.Lang "Vi svarar senast" "We answer by"}}</dt><dd>{{.Due}}</dd>{{end}}
</dl>
{{else}}
<p>{{say .Lang "Du har inga begäranden hos oss." "You have no requests with us."}}</p>
{{end}}
</section>
{{end}}{{end}}

{{define "rightsForms"}}
<p><a href="/">{{say .Lang "Tillbaka till dina uppgifter" "Back to your details"}}</a></p>
<p>{{say .Lang "Du behöver inte visa vem du är en gång till: det gjorde du när du loggade in. Vi svarar inom en månad, och du ser hur det går på sidan med dina uppgifter." "You do not need to show who you are again: you did that when you signed in. We answer within a month, and you see how it goes on the page with your details."}}</p>
<dl class="kinds">
<dt>{{say .Lang "Begränsning" "Restriction"}}</dt><dd>{{say .Lang "Vi sparar uppgifterna men använder dem inte till något annat, till exempel medan vi kontrollerar att de stämmer. Tjänster du har hos oss kan stå still under tiden." "We store the details but use them for nothing else, for example while we check that they are right. Services you have with us may stop meanwhile."}}</dd>
<dt>{{say .Lang "Invändning" "Objection"}}</dt><dd>{{say .Lang "Du invänder mot att vi använder uppgifterna, på grund av din särskilda situation. Vi slutar använda dem medan vi prövar det." "You object to our using the details, because of your particular situation. We stop using them while we look into it."}}</dd>
<dt>{{say .Lang "Radering" "Erasure"}}</dt><dd>{{say .Lang "Vi tar bort uppgifterna. Det vi måste spara enligt lag, till exempel för bokföringen, sparar vi så länge lagen kräver." "We remove the details. What we must keep by law, for example for the accounts, we keep as long as the law requires."}}</dd>
</dl>
{{range .Rights.Forms}}
<section aria-labelledby="h-{{if .Controller}}c-{{.Controller}}{{else}}own{{end}}">
<h2 id="h-{{if .Controller}}c-{{.Controller}}{{else}}own{{end}}">{{.Heading}}</h2>
<p>{{.Intro}}</p>
<form method="post" action="/begar" novalidate>
<input type="hidden" name="csrf" value="{{$.CSRF}}">
<input type="hidden" name="hos" value="{{.Controller}}">
{{$id := "varfor"}}{{if .Controller}}{{$id = print "varfor-" .Controller}}{{end}}
<label for="{{$id}}">{{say $.Lang "Vill du berätta varför? (frivilligt)" "Do you want to tell us why? (optional)"}}</label>
{{if .Bad}}<p class="field-error" id="{{$id}}-error">{{.Bad}}</p>{{end}}
<textarea id="{{$id}}" name="text" rows="3"{{if .Bad}} aria-invalid="true" aria-describedby="{{$id}}-error"{{end}}>{{.Text}}</textarea>
<div class="choices">
<button type="submit" name="typ" value="begransning">{{say $.Lang "Begär begränsning" "Ask for restriction"}}</button>
<button type="submit" name="typ" value="invandning">{{say $.Lang "Invänd" "Object"}}</button>
<button type="submit" name="typ" value="radering" class="danger">{{say $.Lang "Begär radering" "Ask for erasure"}}</button>
</div>
</form>
</section>
{{end}}
{{end}}

{{define "erase"}}{{with index .Rights.Forms 0}}
<p>{{say $.Lang "När uppgifterna är raderade kan vi inte ta fram dem igen, och du kan inte längre logga in här. Tjänster du har hos oss kan sluta fungera. Det vi måste spara enligt lag, till exempel för bokföringen, sparar vi så länge lagen kräver." "Once the details are erased we cannot get them back, and you can no longer sign in here. Services you have with us may stop working. What we must keep by law, for example for the accounts, we keep as long as the law requires."}}</p>
{{if .Controller}}<p>{{say $.Lang "Vi skickar begäran vidare till" "We pass the request on to"}} <strong>{{.Controller}}</strong>{{say $.Lang ", som ansvarar för uppgifterna och bestämmer." ", who is responsible for the details and decides."}}</p>{{end}}
<form method="post" action="/begar">
<input type="hidden" name="csrf" value="{{$.CSRF}}">
<input type="hidden" name="hos" value="{{.Controller}}">
<input type="hidden" name="typ" value="{{.Kind}}">
<input type="hidden" name="text" value="{{.Text}}">
<input type="hidden" name="bekraftat" value="ja">
<button type="submit" class="danger">{{say $.Lang "Ja, skicka begäran om radering" "Yes, send the request for erasure"}}</button>
</form>
<p><a href="/begar">{{say $.Lang "Nej, gå tillbaka" "No, go back"}}</a></p>
{{end}}{{end}}
`

const rightsCSS = `textarea{width:100%;font:inherit;padding:.6rem;border:2px solid #555;border-radius:4px}
textarea[aria-invalid=true]{border-color:#b00020}
.choices{display:flex;flex-wrap:wrap;gap:0 .75rem}
button.danger{background:#8a1020}
dl.request{border-top:1px solid #ddd;padding-top:.5rem;grid-template-columns:10rem 1fr}
@media (max-width:30rem){dl.request{grid-template-columns:1fr}}
`
