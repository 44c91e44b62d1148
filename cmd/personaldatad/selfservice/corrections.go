package selfservice

import (
	"context"
	"net/http"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/contact"
	"github.com/example/personaldata/store"
)

// Corrections (Art. 16), saying no to direct marketing (Art. 21(3)) and
// withdrawing consents, on the person's own page. Every change goes through
// the service's RPCs as the person (RectifySubject, StartContactChange and
// ConfirmContactChange, WithdrawConsent), which decide what is allowed:
// the page sends the session's subject and nothing the browser could turn
// into another's. A new e-mail address or phone number takes effect only
// once the code sent to it is typed in here.

// selfReference is the reference of the changes made on the page.
const selfReference = "self-service"

// marketingReference marks a withdrawal as the person's objection to
// direct marketing, not only the end of a consent.
const marketingReference = "direct-marketing-objection (Art. 21(3))"

// own is what the page shows of the person's own actions.
type own struct {
	// On the overview: the consents in force, and whether one of them is to
	// direct marketing.
	Consents  []consentAction
	Marketing bool
	// On the change page: the values in the forms, and the messages of the
	// fields the person has to correct (by form field name).
	Given, Family, Line1, Line2, PostalCode, Locality, Email, Phone string
	Bad                                                             map[string]string
	// On the code page: which detail waits ("epost" or "telefon") and
	// where the code went (as the person typed it).
	Field, SentTo string
}

type consentAction struct{ ID, What, Since string }

// ownOverview is the overview's part: the consents the person may withdraw.
func ownOverview(a *pdv1.AccessSubjectResponse, l lang) *own {
	o := &own{}
	for _, c := range a.GetConsents() {
		if c.GetWithdrawTime() != nil {
			continue
		}
		what := enumName(c.GetPurpose().String(), l)
		if c.GetRecipient() != "" {
			what = strings.TrimSpace(what + " " + c.GetRecipient())
		}
		o.Consents = append(o.Consents, consentAction{ID: c.GetConsentId(), What: what, Since: date(c.GetGiveTime(), l)})
		if c.GetPurpose() == pdv1.ConsentPurpose_CONSENT_PURPOSE_DIRECT_MARKETING {
			o.Marketing = true
		}
	}
	return o
}

// doneInfo is the message after a change, by the redirect's ?klart= (never
// a value, only which change).
func doneInfo(r *http.Request, l lang) string {
	switch r.URL.Query().Get("klart") {
	case "namn":
		return l.say("Ditt namn är ändrat.", "Your name has been changed.")
	case "adress":
		return l.say("Din adress är ändrad.", "Your address has been changed.")
	case "epost":
		return l.say("Din nya e-postadress gäller från och med nu.", "Your new e-mail address applies from now on.")
	case "telefon":
		return l.say("Ditt nya telefonnummer gäller från och med nu.", "Your new phone number applies from now on.")
	case "inget":
		return l.say("Du ändrade ingenting, så vi sparade inget.", "You did not change anything, so we saved nothing.")
	case "reklam":
		return l.say("Klart. Vi skickar ingen direktreklam till dig.", "Done. We will not send you any direct marketing.")
	case "samtycke":
		return l.say("Klart. Du har återkallat samtycket.", "Done. You have withdrawn the consent.")
	}
	return ""
}

func (p *Page) correctionRoutes() {
	p.mux.HandleFunc("GET /andra", p.changePage)
	p.mux.HandleFunc("POST /andra/namn", p.changeName)
	p.mux.HandleFunc("POST /andra/adress", p.changeAddress)
	p.mux.HandleFunc("POST /andra/kontakt", p.startContact)
	p.mux.HandleFunc("POST /andra/bekrafta", p.confirmContact)
	p.mux.HandleFunc("POST /samtycke", p.withdrawConsent)
	p.mux.HandleFunc("POST /reklam", p.stopMarketing)
}

// signedIn is the session of a request to a signed-in page; for a form,
// its CSRF token must be the session's. It answers itself when not.
func (p *Page) signedIn(w http.ResponseWriter, r *http.Request) (*store.SelfServiceSession, string, bool) {
	s, key := p.session(r)
	if s == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return nil, "", false
	}
	if r.Method == http.MethodPost && !sameToken(s.CSRF, r.PostFormValue("csrf")) {
		l := language(r)
		p.render(w, view{Lang: l, Title: l.say("Försök igen", "Please try again"), Step: "me-error", CSRF: s.CSRF, Status: http.StatusForbidden,
			Error: l.say("Sidan hade hunnit bli för gammal. Gå tillbaka och försök igen.", "The page had become too old. Go back and try again.")})
		return nil, "", false
	}
	return s, key, true
}

func (p *Page) client() pdv1.PersonalDataServiceClient {
	return pdv1.NewPersonalDataServiceClient(p.cfg.Conn)
}

// current is the person's record as it is now (the first page of access).
func (p *Page) current(ctx context.Context, s *store.SelfServiceSession, key string) (*pdv1.Subject, *pdv1.AccessSubjectResponse, error) {
	a, err := p.client().AccessSubject(callCtx(ctx, s, key), &pdv1.AccessSubjectRequest{SubjectId: s.SubjectID})
	if err != nil {
		return nil, nil, err
	}
	return a.GetSubject(), a, nil
}

// formOf fills the change page's forms from the record.
func formOf(sub *pdv1.Subject) *own {
	pp := sub.GetPerson()
	o := &own{Given: pp.GetGivenName(), Family: pp.GetFamilyName(), Email: pp.GetEmail(), Bad: map[string]string{}}
	if pp.GetPhone() != "" {
		o.Phone = contact.PhoneDisplay(pp.GetPhone())
	}
	if a := pp.GetPostalAddress(); a != nil {
		lines := a.GetLines()
		if len(lines) > 0 {
			o.Line1 = lines[0]
		}
		if len(lines) > 1 {
			o.Line2 = strings.Join(lines[1:], ", ")
		}
		o.PostalCode, o.Locality = a.GetPostalCode(), a.GetLocality()
	}
	return o
}

func (p *Page) changeView(l lang, s *store.SelfServiceSession, o *own) view {
	return view{Lang: l, Title: l.say("Ändra dina uppgifter", "Change your details"), Step: "change", CSRF: s.CSRF, Own: o}
}

func (p *Page) changePage(w http.ResponseWriter, r *http.Request) {
	s, key, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	l := language(r)
	sub, _, err := p.current(r.Context(), s, key)
	if err != nil {
		p.failed(w, r, s, err)
		return
	}
	v := p.changeView(l, s, formOf(sub))
	v.Info = doneInfo(r, l)
	p.render(w, v)
}

// failed answers a call that failed on our side (or a record that changed
// under the person's feet).
func (p *Page) failed(w http.ResponseWriter, r *http.Request, s *store.SelfServiceSession, err error) {
	l := language(r)
	v := view{Lang: l, Title: l.say("Något gick fel", "Something went wrong"), Step: "me-error", CSRF: s.CSRF, Status: http.StatusInternalServerError,
		Error: l.say("Något gick fel hos oss. Försök igen om en stund.", "Something went wrong on our side. Please try again in a while.")}
	switch status.Code(err) {
	case codes.Aborted:
		v.Status, v.Error = http.StatusConflict, l.say("Dina uppgifter ändrades samtidigt på annat håll. Gå tillbaka, kontrollera och försök igen.",
			"Your details were changed elsewhere at the same time. Go back, check them and try again.")
	case codes.NotFound:
		v.Status, v.Error = http.StatusNotFound, l.say("Vi hittade inte det du ville ändra. Gå tillbaka och försök igen.",
			"We did not find what you wanted to change. Go back and try again.")
	default:
		p.cfg.Log.Warn("self-service change", "code", status.Code(err).String())
	}
	p.render(w, v)
}

// fieldMessages are the words for each field the service can refuse, by
// the service's field path, with the form field they belong to.
var fieldMessages = map[string]struct{ form, sv, en string }{
	"person.given_name":           {"fornamn", "Skriv ditt förnamn, högst 100 tecken.", "Type your given name, at most 100 characters."},
	"person.family_name":          {"efternamn", "Skriv ditt efternamn, högst 100 tecken.", "Type your family name, at most 100 characters."},
	"person.postal_address.lines": {"gata", "Skriv din gatuadress.", "Type your street address."},
	"person.postal_address.lines[0]": {"gata", "Skriv din gatuadress, högst 100 tecken.",
		"Type your street address, at most 100 characters."},
	"person.postal_address.lines[1]":    {"adressrad2", "Skriv högst 100 tecken på den här raden.", "Type at most 100 characters on this line."},
	"person.postal_address.lines[2]":    {"adressrad2", "Skriv högst 100 tecken på den här raden.", "Type at most 100 characters on this line."},
	"person.postal_address.postal_code": {"postnummer", "Skriv postnumret med fem siffror, till exempel 123 45.", "Type the postcode as five digits, for example 123 45."},
	"person.postal_address.locality":    {"ort", "Skriv orten.", "Type the town or city."},
	"person.email":                      {"epost", "Skriv en hel e-postadress, till exempel namn@exempel.se.", "Type a whole e-mail address, for example name@example.com."},
	"person.phone": {"telefon", "Skriv ett telefonnummer, till exempel 070-123 45 67 eller +46 70 123 45 67.",
		"Type a phone number, for example 070-123 45 67 or +46 70 123 45 67."},
	"code": {"kod", "Koden stämmer inte. Kontrollera siffrorna och försök igen.", "The code is not right. Check the digits and try again."},
}

// badFields are the messages of an INVALID_ARGUMENT by form field; nil for
// another error, or one naming no field the page knows.
func badFields(err error, l lang) map[string]string {
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		return nil
	}
	out := map[string]string{}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, fv := range br.GetFieldViolations() {
				if m, ok := fieldMessages[fv.GetField()]; ok && out[m.form] == "" {
					out[m.form] = l.say(m.sv, m.en)
				}
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// refused renders the change page again with what the person typed and
// the message of each field to correct.
func (p *Page) refused(w http.ResponseWriter, r *http.Request, s *store.SelfServiceSession, o *own, bad map[string]string, step string) {
	l := language(r)
	o.Bad = bad
	v := p.changeView(l, s, o)
	v.Step, v.Status = step, http.StatusBadRequest
	v.Error = l.say("Något behöver rättas. Se meddelandet vid fältet.", "Something needs correcting. See the message at the field.")
	if step == "verify" {
		v.Title = l.say("Skriv in koden", "Type in the code")
	}
	p.render(w, v)
}

func (p *Page) rectify(ctx context.Context, s *store.SelfServiceSession, key string, version int64, person *pdv1.Person, fields ...string) error {
	_, err := p.client().RectifySubject(callCtx(ctx, s, key), &pdv1.RectifySubjectRequest{
		IdempotencyKey: "self." + random()[:24], SubjectId: s.SubjectID, ExpectedVersion: version, Person: person,
		UpdateMask: &fieldmaskpb.FieldMask{Paths: fields}, Channel: pdv1.Channel_CHANNEL_SELF_SERVICE,
		Reference: selfReference, PerformedBy: s.SubjectID,
	})
	return err
}

// typed is the forms' values as the person sent them, for a page shown again.
func typed(r *http.Request, sub *pdv1.Subject) *own {
	o := formOf(sub)
	for name, f := range map[string]*string{"fornamn": &o.Given, "efternamn": &o.Family, "gata": &o.Line1, "adressrad2": &o.Line2,
		"postnummer": &o.PostalCode, "ort": &o.Locality, "epost": &o.Email, "telefon": &o.Phone} {
		if v, ok := r.PostForm[name]; ok && len(v) == 1 {
			*f = v[0]
		}
	}
	return o
}

func (p *Page) changeName(w http.ResponseWriter, r *http.Request) {
	s, key, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	sub, _, err := p.current(r.Context(), s, key)
	if err != nil {
		p.failed(w, r, s, err)
		return
	}
	given, family := strings.TrimSpace(r.PostFormValue("fornamn")), strings.TrimSpace(r.PostFormValue("efternamn"))
	if given == sub.GetPerson().GetGivenName() && family == sub.GetPerson().GetFamilyName() {
		http.Redirect(w, r, "/andra?klart=inget", http.StatusSeeOther)
		return
	}
	err = p.rectify(r.Context(), s, key, sub.GetVersion(), &pdv1.Person{GivenName: given, FamilyName: family}, "given_name", "family_name")
	p.afterChange(w, r, s, sub, err, "namn")
}

func (p *Page) changeAddress(w http.ResponseWriter, r *http.Request) {
	s, key, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	sub, _, err := p.current(r.Context(), s, key)
	if err != nil {
		p.failed(w, r, s, err)
		return
	}
	a := &pdv1.PostalAddress{PostalCode: strings.TrimSpace(r.PostFormValue("postnummer")), Locality: strings.TrimSpace(r.PostFormValue("ort")),
		CountryCode: sub.GetPerson().GetPostalAddress().GetCountryCode()}
	for _, name := range []string{"gata", "adressrad2"} {
		if line := strings.TrimSpace(r.PostFormValue(name)); line != "" || name == "gata" {
			a.Lines = append(a.Lines, line)
		}
	}
	if old := sub.GetPerson().GetPostalAddress(); old != nil && strings.Join(old.GetLines(), "\n") == strings.Join(a.GetLines(), "\n") &&
		strings.ReplaceAll(old.GetPostalCode(), " ", "") == strings.ReplaceAll(a.GetPostalCode(), " ", "") && old.GetLocality() == a.GetLocality() {
		http.Redirect(w, r, "/andra?klart=inget", http.StatusSeeOther)
		return
	}
	err = p.rectify(r.Context(), s, key, sub.GetVersion(), &pdv1.Person{PostalAddress: a}, "postal_address")
	p.afterChange(w, r, s, sub, err, "adress")
}

func (p *Page) afterChange(w http.ResponseWriter, r *http.Request, s *store.SelfServiceSession, sub *pdv1.Subject, err error, done string) {
	if bad := badFields(err, language(r)); bad != nil {
		p.refused(w, r, s, typed(r, sub), bad, "change")
		return
	}
	if err != nil {
		p.failed(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/andra?klart="+done, http.StatusSeeOther)
}

// contactFields are the page's names of the details changed with a code.
var contactFields = map[string]string{"epost": "email", "telefon": "phone"}

// contactForm is the session of a form about a contact detail and which
// detail: its name on the page and in the service.
func (p *Page) contactForm(w http.ResponseWriter, r *http.Request) (s *store.SelfServiceSession, key, name, field string, ok bool) {
	if s, key, ok = p.signedIn(w, r); !ok {
		return nil, "", "", "", false
	}
	name = r.PostFormValue("falt")
	if field, ok = contactFields[name]; !ok {
		http.Redirect(w, r, "/andra", http.StatusSeeOther)
	}
	return s, key, name, field, ok
}

func (p *Page) startContact(w http.ResponseWriter, r *http.Request) {
	s, key, name, field, ok := p.contactForm(w, r)
	if !ok {
		return
	}
	l := language(r)
	sub, _, err := p.current(r.Context(), s, key)
	if err != nil {
		p.failed(w, r, s, err)
		return
	}
	value := strings.TrimSpace(r.PostFormValue(name))
	person := &pdv1.Person{Email: value}
	if field == "phone" {
		person = &pdv1.Person{Phone: value}
	}
	_, err = p.client().StartContactChange(callCtx(r.Context(), s, key), &pdv1.StartContactChangeRequest{
		IdempotencyKey: "self." + random()[:24], SubjectId: s.SubjectID, Person: person,
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{field}}, Channel: pdv1.Channel_CHANNEL_SELF_SERVICE,
	})
	if bad := badFields(err, l); bad != nil {
		p.refused(w, r, s, typed(r, sub), bad, "change")
		return
	}
	if err != nil {
		p.failed(w, r, s, err)
		return
	}
	p.render(w, view{Lang: l, Title: l.say("Skriv in koden", "Type in the code"), Step: "verify", CSRF: s.CSRF, Own: &own{Field: name, SentTo: value},
		Info: l.say("Vi har skickat en kod till "+value+". Ingenting ändras förrän du har skrivit in koden här. Koden gäller i 10 minuter.",
			"We have sent a code to "+value+". Nothing changes until you type the code in here. The code is valid for 10 minutes.")})
}

func (p *Page) confirmContact(w http.ResponseWriter, r *http.Request) {
	s, key, name, field, ok := p.contactForm(w, r)
	if !ok {
		return
	}
	l := language(r)
	_, err := p.client().ConfirmContactChange(callCtx(r.Context(), s, key), &pdv1.ConfirmContactChangeRequest{
		IdempotencyKey: "self." + random()[:24], SubjectId: s.SubjectID, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{field}},
		Code: r.PostFormValue("kod"), Channel: pdv1.Channel_CHANNEL_SELF_SERVICE, Reference: selfReference,
	})
	if bad := badFields(err, l); bad != nil {
		p.refused(w, r, s, &own{Field: name, Bad: bad}, bad, "verify")
		return
	}
	if status.Code(err) == codes.FailedPrecondition {
		sub, _, rerr := p.current(r.Context(), s, key)
		if rerr != nil {
			p.failed(w, r, s, rerr)
			return
		}
		v := p.changeView(l, s, formOf(sub))
		v.Status = http.StatusBadRequest
		v.Error = l.say("Koden går inte längre att använda. Skriv in den nya uppgiften igen, så skickar vi en ny kod.",
			"The code can no longer be used. Type the new detail again and we will send a new code.")
		p.render(w, v)
		return
	}
	if err != nil {
		p.failed(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/andra?klart="+name, http.StatusSeeOther)
}

func (p *Page) withdraw(ctx context.Context, s *store.SelfServiceSession, key, id, idemPrefix, reference string) error {
	_, err := pdv1.NewConsentServiceClient(p.cfg.Conn).WithdrawConsent(callCtx(ctx, s, key), &pdv1.WithdrawConsentRequest{
		IdempotencyKey: idemPrefix + id, SubjectId: s.SubjectID, ConsentId: id,
		Channel: pdv1.Channel_CHANNEL_SELF_SERVICE, Reference: reference,
	})
	return err
}

func (p *Page) withdrawConsent(w http.ResponseWriter, r *http.Request) {
	s, key, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	id := r.PostFormValue("samtycke")
	if err := p.withdraw(r.Context(), s, key, id, "self.withdraw.", selfReference); err != nil {
		// Not the person's (or no consent at all): the same answer.
		if c := status.Code(err); c == codes.InvalidArgument {
			err = status.Error(codes.NotFound, "consent")
		}
		p.failed(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/?klart=samtycke", http.StatusSeeOther)
}

// stopMarketing is the objection to direct marketing: at once, no
// questions, every consent to it withdrawn, each marked as the objection.
func (p *Page) stopMarketing(w http.ResponseWriter, r *http.Request) {
	s, key, ok := p.signedIn(w, r)
	if !ok {
		return
	}
	a, err := p.access(r.Context(), s, key)
	if err == nil {
		for _, c := range a.GetConsents() {
			if c.GetWithdrawTime() == nil && c.GetPurpose() == pdv1.ConsentPurpose_CONSENT_PURPOSE_DIRECT_MARKETING {
				if err = p.withdraw(r.Context(), s, key, c.GetConsentId(), "self.dm.", marketingReference); err != nil {
					break
				}
			}
		}
	}
	if err != nil {
		p.failed(w, r, s, err)
		return
	}
	http.Redirect(w, r, "/?klart=reklam", http.StatusSeeOther)
}
