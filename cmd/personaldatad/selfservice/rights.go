package selfservice

import (
	"context"
	"net/http"
	"slices"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store"
)

// Restriction, objection and erasure on the person's own page: each is a
// rights request (OpenOwnRightsRequest), opened with the identity the
// sign-in verified and handled by staff with the same rules, audit and
// time limit as one that came by letter. Erasure asks once more before it
// is sent. Where a customer of the company is responsible for data about
// the person (the company its processor), the page names the customer and
// the request goes to it. The page lists the person's requests with their
// state and the day they are answered by, offers the Art. 15 letter to
// download, and says so and signs the person out once their record has
// been erased.

// rights is what the page shows of the person's requests.
type rights struct {
	// On the overview: the requests, and the customers responsible for
	// data about the person.
	Requests  []ownRequest
	Customers []string
	// On the request page: one form for the company's own data, then one
	// for each customer's; on the confirmation of an erasure, the one.
	Forms []rightsForm
}

type ownRequest struct{ What, Sent, State, Due string }

// rightsForm is the form for the data one controller is responsible for:
// Controller is "" for the company's own.
type rightsForm struct {
	Controller, Heading, Intro string
	// What the person typed, and the message when it must be corrected.
	Text, Bad string
	// On the confirmation: what is asked for ("radering").
	Kind string
}

// kinds are the page's names of what may be asked for.
var kinds = map[string]pdv1.RightsRequestKind{
	"begransning": pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_RESTRICTION,
	"invandning":  pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_OBJECTION,
	"radering":    pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ERASURE,
}

func (p *Page) rightsRoutes() {
	p.mux.HandleFunc("GET /begar", p.rightsPage)
	p.mux.HandleFunc("POST /begar", p.askFor)
	p.mux.HandleFunc("GET /brev", p.letter)
}

func (p *Page) rightsClient() pdv1.RightsRequestServiceClient {
	return pdv1.NewRightsRequestServiceClient(p.cfg.Conn)
}

// rightsOverview is the overview's part: the person's requests and the
// customers responsible for data about them.
func (p *Page) rightsOverview(ctx context.Context, s *store.SelfServiceSession, key string, l lang) (*rights, error) {
	list, err := p.rightsClient().ListOwnRightsRequests(callCtx(ctx, s, key), &pdv1.ListOwnRightsRequestsRequest{SubjectId: s.SubjectID})
	if err != nil {
		return nil, err
	}
	customers, err := p.customers(ctx, s, key)
	if err != nil {
		return nil, err
	}
	out := &rights{Customers: customers}
	// The newest first.
	for _, r := range slices.Backward(list.GetRequests()) {
		out.Requests = append(out.Requests, requestWords(r, l))
	}
	return out, nil
}

func (p *Page) customers(ctx context.Context, s *store.SelfServiceSession, key string) ([]string, error) {
	c, err := p.rightsClient().ListOwnControllers(callCtx(ctx, s, key), &pdv1.ListOwnControllersRequest{SubjectId: s.SubjectID})
	return c.GetControllerIds(), err
}

// rightsForms are the request page's forms: the company's data, then each
// customer's.
func rightsForms(customers []string, l lang) []rightsForm {
	forms := []rightsForm{{Heading: l.say("Uppgifter som vi ansvarar för", "Details we are responsible for"),
		Intro: l.say("Det här gäller uppgifterna om dig som du ser på sidan med dina uppgifter.", "This is about the details about you that you see on the page with your details.")}}
	for _, c := range customers {
		forms = append(forms, rightsForm{Controller: c, Heading: l.say("Uppgifter som "+c+" ansvarar för", "Details "+c+" is responsible for"),
			Intro: l.say("Vår kund "+c+" har uppgifter om dig i våra system. Det är "+c+" som ansvarar för dem och bestämmer om dem; vi hanterar dem bara för deras räkning. Det du begär här skickar vi vidare till "+c+", som svarar dig.",
				"Our customer "+c+" has details about you in our systems. "+c+" is responsible for them and decides about them; we only handle them on their behalf. What you ask for here we pass on to "+c+", who will answer you.")})
	}
	return forms
}

func (p *Page) rightsView(l lang, s *store.SelfServiceSession, forms []rightsForm) view {
	return view{Lang: l, Title: l.say("Begär begränsning, invändning eller radering", "Ask for restriction, objection or erasure"), Step: "rights", CSRF: s.CSRF,
		Rights: &rights{Forms: forms}}
}

func (p *Page) rightsPage(w http.ResponseWriter, r *http.Request) {
	s, key, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	l := language(r)
	customers, err := p.customers(r.Context(), s, key)
	if err != nil {
		p.failed(w, r, s, err)
		return
	}
	p.render(w, p.rightsView(l, s, rightsForms(customers, l)))
}

// askFor opens the request the person asked for; an erasure only once
// they have confirmed it.
func (p *Page) askFor(w http.ResponseWriter, r *http.Request) {
	s, key, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	l := language(r)
	name, controller, text := r.PostFormValue("typ"), r.PostFormValue("hos"), r.PostFormValue("text")
	customers, err := p.customers(r.Context(), s, key)
	if err != nil {
		p.failed(w, r, s, err)
		return
	}
	forms := rightsForms(customers, l)
	form := -1
	for i, f := range forms {
		if f.Controller == controller {
			form = i
		}
	}
	kind, known := kinds[name]
	if form < 0 || !known {
		// Only a changed form sends these: say what to do, name nothing.
		v := p.rightsView(l, s, forms)
		v.Status = http.StatusBadRequest
		v.Error = l.say("Vi förstod inte vad du ville begära. Välj en av knapparna nedan.", "We did not understand what you wanted to ask for. Choose one of the buttons below.")
		p.render(w, v)
		return
	}
	forms[form].Text = text
	if kind == pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ERASURE && r.PostFormValue("bekraftat") != "ja" {
		f := forms[form]
		f.Kind = name
		p.render(w, view{Lang: l, Title: l.say("Vill du att vi raderar dina uppgifter?", "Do you want us to erase your details?"), Step: "erase", CSRF: s.CSRF,
			Rights: &rights{Forms: []rightsForm{f}}})
		return
	}
	_, err = p.rightsClient().OpenOwnRightsRequest(callCtx(r.Context(), s, key), &pdv1.OpenOwnRightsRequestRequest{
		IdempotencyKey: "self." + random()[:24], SubjectId: s.SubjectID, Kind: kind,
		Channel: pdv1.Channel_CHANNEL_SELF_SERVICE, Text: text, ControllerId: controller,
	})
	switch {
	case err == nil:
		done := "begaran"
		if controller != "" {
			done = "vidare"
		}
		http.Redirect(w, r, "/?klart="+done, http.StatusSeeOther)
	case badField(err) == "text":
		forms[form].Bad = l.say("Skriv högst 5 000 tecken.", "Type at most 5,000 characters.")
		v := p.rightsView(l, s, forms)
		v.Status = http.StatusBadRequest
		v.Error = l.say("Något behöver rättas. Se meddelandet vid fältet.", "Something needs correcting. See the message at the field.")
		p.render(w, v)
	case preconditionReason(err) == "REQUEST_ALREADY_OPEN":
		v := p.rightsView(l, s, forms)
		v.Status = http.StatusConflict
		v.Error = l.say("Du har redan en sådan begäran som vi inte har svarat på. Du ser den och när vi svarar senast på sidan med dina uppgifter.",
			"You already have such a request that we have not answered. You see it, and when we will answer by, on the page with your details.")
		p.render(w, v)
	case preconditionReason(err) == "SUBJECT_ERASED":
		http.Redirect(w, r, "/", http.StatusSeeOther) // the overview says what happened
	case status.Code(err) == codes.NotFound:
		v := p.rightsView(l, s, forms)
		v.Status = http.StatusNotFound
		v.Error = l.say("Vi hittade inga sådana uppgifter om dig. Välj en av knapparna nedan.", "We found no such details about you. Choose one of the buttons below.")
		p.render(w, v)
	default:
		p.failed(w, r, s, err)
	}
}

// badField is the first field an INVALID_ARGUMENT names; "" for any other
// error.
func badField(err error) string {
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && status.Code(err) == codes.InvalidArgument {
			for _, fv := range br.GetFieldViolations() {
				return fv.GetField()
			}
		}
	}
	return ""
}

// preconditionReason is the reason of a FAILED_PRECONDITION; "" for any
// other error.
func preconditionReason(err error) string {
	st := status.Convert(err)
	if st.Code() != codes.FailedPrecondition {
		return ""
	}
	for _, d := range st.Details() {
		if pf, ok := d.(*errdetails.PreconditionFailure); ok {
			for _, v := range pf.GetViolations() {
				return v.GetType()
			}
		}
	}
	return ""
}

// rightsDone is the message after a request, by the redirect's ?klart=.
func rightsDone(r *http.Request, l lang) string {
	switch r.URL.Query().Get("klart") {
	case "begaran":
		return l.say("Vi har tagit emot din begäran. Du ser den nedan, och den dag vi svarar senast.",
			"We have received your request. You see it below, and the day we will answer by.")
	case "vidare":
		return l.say("Vi har skickat din begäran vidare till kunden som ansvarar för uppgifterna. De svarar dig. Du ser den nedan.",
			"We have passed your request on to the customer who is responsible for the details. They will answer you. You see it below.")
	}
	return ""
}

// letter is the Art. 15 letter about what is held now, to download.
func (p *Page) letter(w http.ResponseWriter, r *http.Request) {
	s, key, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	l := language(r)
	body, err := p.rightsClient().GetOwnAccessLetter(callCtx(r.Context(), s, key), &pdv1.GetOwnAccessLetterRequest{SubjectId: s.SubjectID, Language: string(l)})
	if err != nil {
		p.failed(w, r, s, err)
		return
	}
	w.Header().Set("Content-Type", body.GetContentType())
	w.Header().Set("Content-Disposition", `attachment; filename="`+l.say("brev-om-dina-personuppgifter", "letter-about-your-personal-data")+`.html"`)
	_, _ = w.Write(body.GetData())
}

// erased ends the session of a person whose record has been erased, and
// tells them.
func (p *Page) erased(w http.ResponseWriter, r *http.Request, key string, a *pdv1.AccessSubjectResponse) {
	_ = p.cfg.Sessions.DeleteSelfServiceSession(r.Context(), key)
	p.setCookie(w, sessionCookie, "", -1)
	l := language(r)
	info := l.say("Vi har raderat dina uppgifter, som du bad om. Därför är du nu utloggad, och du kan inte logga in här igen.",
		"We have erased your details, as you asked. You are therefore signed out now, and you cannot sign in here again.")
	if len(a.GetHolds()) > 0 {
		info += " " + l.say("Det vi måste spara enligt lag, till exempel för bokföringen, sparar vi bara så länge lagen kräver, och vi använder det inte till något annat.",
			"What we must keep by law, for example for the accounts, we keep only as long as the law requires, and we use it for nothing else.")
	}
	p.render(w, view{Lang: l, Title: l.say("Dina uppgifter är raderade", "Your details have been erased"), Step: "gone", Info: info})
}

// requestWords is a request as the page tells it.
func requestWords(r *pdv1.OwnRightsRequest, l lang) ownRequest {
	out := ownRequest{What: kindWords(r.GetKind(), l), Sent: date(r.GetReceiveTime(), l)}
	switch r.GetState() {
	case pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_RECEIVED:
		out.State = l.say("Mottagen. Vi behöver kontrollera att det är du.", "Received. We need to check that it is you.")
	case pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_VERIFIED:
		out.State = l.say("Mottagen. Vi går igenom den.", "Received. We are looking into it.")
	case pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_GRANTED:
		out.State = l.say("Beviljad. Vi håller på att göra det du bad om.", "Granted. We are doing what you asked for.")
	case pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_FULFILLED:
		out.State = l.say("Klar. Vi har gjort det du bad om och skickat dig ett svar.", "Done. We have done what you asked for and sent you an answer.")
	case pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_REFUSED:
		out.State = l.say("Avslagen. Vi har skickat dig skälen och hur du kan klaga.", "Refused. We have sent you the reasons and how you can complain.")
	case pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_FORWARDED:
		c := r.GetForwardedTo()
		out.State = l.say("Skickad vidare till "+c+", som ansvarar för uppgifterna och svarar dig.", "Passed on to "+c+", who is responsible for the details and will answer you.")
	}
	switch r.GetState() {
	case pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_RECEIVED, pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_VERIFIED, pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_GRANTED:
		if d, err := time.ParseInLocation(time.DateOnly, r.GetDueDate(), stockholm); err == nil {
			out.Due = date(timestamppb.New(d), l)
			if r.GetExtended() {
				out.Due += l.say(" (vi har förlängt tiden och sagt varför)", " (we have extended the time and told you why)")
			}
		}
	}
	return out
}

func kindWords(k pdv1.RightsRequestKind, l lang) string {
	switch k {
	case pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS:
		return l.say("Få veta vilka uppgifter vi har", "To know what details we hold")
	case pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_PORTABILITY:
		return l.say("Få ut uppgifterna i en fil", "To get the details in a file")
	case pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_RECTIFICATION:
		return l.say("Rättelse", "Correction")
	case pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_RESTRICTION:
		return l.say("Begränsning: att vi bara sparar uppgifterna", "Restriction: that we only store the details")
	case pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ERASURE:
		return l.say("Radering", "Erasure")
	case pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_DIRECT_MARKETING_OBJECTION:
		return l.say("Nej till direktreklam", "No to direct marketing")
	case pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_CONSENT_WITHDRAWAL:
		return l.say("Återkalla ett samtycke", "Withdraw a consent")
	case pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_OBJECTION:
		return l.say("Invändning mot hur vi använder uppgifterna", "Objection to how we use the details")
	}
	return ""
}
