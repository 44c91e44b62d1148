package server_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/auth"
)

// contactCodes are the codes to new contact details waiting in the outbox,
// as the mailer reads them: code by the address or number it goes to.
func contactCodes(t *testing.T, mailer caller) map[string]string {
	t.Helper()
	out := map[string]string{}
	digits := regexp.MustCompile(`är (\d{4}) (\d{4})\.`)
	for _, m := range outbox(t, mailer) {
		if m.GetKind() != pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_CONTACT_CODE {
			continue
		}
		d := digits.FindStringSubmatch(m.GetBody())
		if d == nil {
			t.Fatalf("contact code message without a code: %q", m.GetBody())
		}
		out[m.GetTo()] = d[1] + d[2]
	}
	return out
}

// person is the subject's record as staff read it.
func person(t *testing.T, c caller, id string) (*pdv1.Subject, *pdv1.AccessSubjectResponse) {
	t.Helper()
	a := call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: id}, &pdv1.AccessSubjectResponse{})
	return a.GetSubject(), a
}

// selfEvents are the audit events of rpc (short name) about subject id, made
// by the subject on the page.
func selfEvents(t *testing.T, e *env, c caller, id, rpc string) []*pdv1.AuditEvent {
	t.Helper()
	var out []*pdv1.AuditEvent
	for _, ev := range subjectTrail(t, e, c, id) {
		if strings.HasSuffix(ev.GetRpc(), "/"+rpc) && ev.GetPrincipalId() == id && slices.Contains(ev.GetFields(), "channel:SELF_SERVICE") {
			out = append(out, ev)
		}
	}
	return out
}

// lastChange is the subject's newest change record.
func lastChange(a *pdv1.AccessSubjectResponse) *pdv1.ChangeRecord {
	cs := a.GetChanges()
	if len(cs) == 0 {
		return nil
	}
	return cs[len(cs)-1]
}

// Corrections on the page, over HTTP without script: each change is the
// service's rectification (record, change record, audit as the person on
// SELF_SERVICE); bad input is refused naming the field in the person's
// language and changes nothing; a new e-mail or phone waits for the code
// sent to it; wrong and expired codes change nothing.
func TestSelfServiceCorrections(t *testing.T) {
	e := start(t)
	c := e.gc()
	sub := create(t, c, 270)
	id := sub.GetSubjectId()
	p := testPerson(270)
	mailer := e.mailer(t, c)
	sc := newSelfClient(t, e)
	page := sc.signIn(mailer, p)
	csrf := selfCSRF.FindStringSubmatch(page)[1]
	post := func(path string, form url.Values) (int, string) {
		t.Helper()
		form.Set("csrf", csrf)
		return sc.do(http.MethodPost, path, form)
	}
	unchanged := func(what string, before *pdv1.Subject) {
		t.Helper()
		if now, _ := person(t, c, id); now.GetVersion() != before.GetVersion() {
			t.Errorf("%s: the record changed (version %d -> %d)", what, before.GetVersion(), now.GetVersion())
		}
	}

	if st, body := sc.do(http.MethodGet, "/andra", nil); st != 200 || !strings.Contains(body, "Ditt personnummer kan du inte ändra här") ||
		!strings.Contains(body, `value="`+p.GetGivenName()+`"`) || !strings.Contains(body, `value="070-`) {
		t.Fatalf("change page: %d %s", st, body)
	}

	// Bad input: the field named in words, nothing written.
	before, _ := person(t, c, id)
	for _, tc := range []struct {
		path string
		form url.Values
		want string
	}{
		{"/andra/namn", url.Values{"fornamn": {""}, "efternamn": {"Tolvansson"}}, "Skriv ditt förnamn"},
		{"/andra/namn", url.Values{"fornamn": {"Tolvan"}, "efternamn": {"  "}}, "Skriv ditt efternamn"},
		{"/andra/adress", url.Values{"gata": {"Storgatan 1"}, "postnummer": {"12"}, "ort": {"Umeå"}}, "Skriv postnumret med fem siffror"},
		{"/andra/adress", url.Values{"gata": {""}, "postnummer": {"903 25"}, "ort": {"Umeå"}}, "Skriv din gatuadress"},
		{"/andra/kontakt", url.Values{"falt": {"epost"}, "epost": {"tolvan.example.se"}}, "Skriv en hel e-postadress"},
		{"/andra/kontakt", url.Values{"falt": {"telefon"}, "telefon": {"70 123"}}, "Skriv ett telefonnummer"},
		{"/andra/kontakt", url.Values{"falt": {"telefon"}, "telefon": {"070-123 45 6x"}}, "Skriv ett telefonnummer"},
	} {
		st, body := post(tc.path, tc.form)
		if st != http.StatusBadRequest || !strings.Contains(body, tc.want) || !strings.Contains(body, `aria-invalid="true"`) {
			t.Errorf("%s %v: %d, want 400 with %q", tc.path, tc.form, st, tc.want)
		}
		unchanged(tc.path, before)
	}
	if msgs := contactCodes(t, mailer); len(msgs) != 0 {
		t.Errorf("codes sent for bad input: %v", msgs)
	}
	// In English when the person chose it.
	u, _ := url.Parse(sc.base)
	sc.hc.Jar.SetCookies(u, []*http.Cookie{{Name: "__Host-pd-lang", Value: "en", Path: "/"}})
	if st, body := post("/andra/namn", url.Values{"fornamn": {""}, "efternamn": {"X"}}); st != 400 || !strings.Contains(body, "Type your given name") {
		t.Errorf("English: %d", st)
	}
	sc.hc.Jar.SetCookies(u, []*http.Cookie{{Name: "__Host-pd-lang", Value: "sv", Path: "/"}})

	// The name and the address: at once, as rectifications.
	if st, body := post("/andra/namn", url.Values{"fornamn": {"Tolvan"}, "efternamn": {"Tolvansson"}}); st != 200 || !strings.Contains(body, "Ditt namn är ändrat") {
		t.Fatalf("name: %d %s", st, body)
	}
	if st, body := post("/andra/adress", url.Values{"gata": {"Storgatan 1"}, "adressrad2": {"c/o Ek"}, "postnummer": {"90325"}, "ort": {"Umeå"}}); st != 200 || !strings.Contains(body, "Din adress är ändrad") {
		t.Fatalf("address: %d %s", st, body)
	}
	got, a := person(t, c, id)
	if pp := got.GetPerson(); pp.GetGivenName() != "Tolvan" || pp.GetFamilyName() != "Tolvansson" ||
		!slices.Equal(pp.GetPostalAddress().GetLines(), []string{"Storgatan 1", "c/o Ek"}) || pp.GetPostalAddress().GetPostalCode() != "903 25" {
		t.Errorf("after name and address: %v", pp)
	}
	var rectified [][]string
	for _, ch := range a.GetChanges() {
		if ch.GetKind() == pdv1.ChangeKind_CHANGE_KIND_RECTIFIED {
			if ch.GetChannel() != pdv1.Channel_CHANNEL_SELF_SERVICE || ch.GetPerformedBy() != id || ch.GetReference() != "self-service" {
				t.Errorf("change record %v", ch)
			}
			rectified = append(rectified, ch.GetFields())
		}
	}
	if len(rectified) != 2 || !slices.Equal(rectified[0], []string{"given_name", "family_name"}) || !slices.Equal(rectified[1], []string{"postal_address"}) {
		t.Errorf("rectifications %v", rectified)
	}
	if ev := selfEvents(t, e, c, id, "RectifySubject"); len(ev) != 2 {
		t.Errorf("%d audit events of the person's rectifications, want 2", len(ev))
	}
	// The same again changes nothing.
	v := got.GetVersion()
	if st, body := post("/andra/namn", url.Values{"fornamn": {"Tolvan"}, "efternamn": {"Tolvansson"}}); st != 200 || !strings.Contains(body, "Du ändrade ingenting") {
		t.Errorf("no change: %d", st)
	}
	unchanged("the same name", &pdv1.Subject{Version: v})

	// A new e-mail address: nothing changes until the code sent to it.
	const newEmail = "tolvan.tolvansson@example.se"
	st, body := post("/andra/kontakt", url.Values{"falt": {"epost"}, "epost": {newEmail}})
	if st != 200 || !strings.Contains(body, "Vi har skickat en kod till "+newEmail) || !strings.Contains(body, `name="falt" value="epost"`) {
		t.Fatalf("start e-mail: %d %s", st, body)
	}
	codes := contactCodes(t, mailer)
	code := codes[newEmail]
	if len(codes) != 1 || code == "" {
		t.Fatalf("contact codes %v, want one to the new address", codes)
	}
	now, _ := person(t, c, id)
	if now.GetPerson().GetEmail() != p.GetEmail() || now.GetVersion() != v {
		t.Fatalf("the e-mail changed before the code: %v", now.GetPerson().GetEmail())
	}
	// The overview still shows the old one.
	if _, body := sc.do(http.MethodGet, "/", nil); !strings.Contains(body, p.GetEmail()) || strings.Contains(body, newEmail) {
		t.Error("the overview shows the new address before the code")
	}
	wrong := "00000000"
	if code == wrong {
		wrong = "11111111"
	}
	if st, body := post("/andra/bekrafta", url.Values{"falt": {"epost"}, "kod": {wrong}}); st != 400 || !strings.Contains(body, "Koden stämmer inte") {
		t.Errorf("wrong code: %d", st)
	}
	unchanged("a wrong code", now)
	if st, body := post("/andra/bekrafta", url.Values{"falt": {"epost"}, "kod": {code[:4] + " " + code[4:]}}); st != 200 || !strings.Contains(body, "Din nya e-postadress gäller") {
		t.Fatalf("right code: %d %s", st, body)
	}
	got, a = person(t, c, id)
	if got.GetPerson().GetEmail() != newEmail {
		t.Fatalf("e-mail after the code: %q", got.GetPerson().GetEmail())
	}
	if ch := lastChange(a); ch.GetKind() != pdv1.ChangeKind_CHANGE_KIND_RECTIFIED || !slices.Equal(ch.GetFields(), []string{"email"}) || ch.GetChannel() != pdv1.Channel_CHANNEL_SELF_SERVICE {
		t.Errorf("change of the e-mail: %v", ch)
	}
	if len(selfEvents(t, e, c, id, "StartContactChange")) != 1 || len(selfEvents(t, e, c, id, "ConfirmContactChange")) != 2 {
		t.Errorf("audit of the e-mail change: %d starts, %d confirmations", len(selfEvents(t, e, c, id, "StartContactChange")), len(selfEvents(t, e, c, id, "ConfirmContactChange")))
	}
	// The code is spent: once more, it is gone.
	if st, _ := post("/andra/bekrafta", url.Values{"falt": {"epost"}, "kod": {code}}); st != 400 {
		t.Errorf("a spent code: %d, want 400", st)
	}

	// A new phone number in Swedish spelling, stored in E.164 and shown as
	// Swedes write it; an expired code changes nothing.
	st, _ = post("/andra/kontakt", url.Values{"falt": {"telefon"}, "telefon": {"+46 70 123 45 67"}})
	if st != 200 {
		t.Fatalf("start phone: %d", st)
	}
	expired := contactCodes(t, mailer)["+46701234567"]
	if expired == "" {
		t.Fatalf("no code to the new number: %v", contactCodes(t, mailer))
	}
	before, _ = person(t, c, id)
	e.clock.Advance(11 * time.Minute)
	if st, body := post("/andra/bekrafta", url.Values{"falt": {"telefon"}, "kod": {expired}}); st != 400 || !strings.Contains(body, "Koden går inte längre att använda") {
		t.Errorf("expired code: %d", st)
	}
	unchanged("an expired code", before)
	st, _ = post("/andra/kontakt", url.Values{"falt": {"telefon"}, "telefon": {"070-123 45 67"}})
	code = ""
	for to, c := range contactCodes(t, mailer) {
		if to == "+46701234567" && c != expired {
			code = c
		}
	}
	if st != 200 || code == "" {
		t.Fatalf("second phone start: %d, code %q", st, code)
	}
	if st, _ := post("/andra/bekrafta", url.Values{"falt": {"telefon"}, "kod": {code}}); st != 200 {
		t.Fatalf("phone code: %d", st)
	}
	if got, _ := person(t, c, id); got.GetPerson().GetPhone() != "+46701234567" {
		t.Errorf("phone stored as %q", got.GetPerson().GetPhone())
	}
	if _, body := sc.do(http.MethodGet, "/", nil); !strings.Contains(body, "070-123 45 67") {
		t.Error("the overview does not show the phone as 070-123 45 67")
	}
}

// Saying no to direct marketing and withdrawing a consent: one button
// each, at once; direct marketing is refused after it; the withdrawals are
// the person's, on SELF_SERVICE, the objection marked as such.
func TestSelfServiceMarketingAndConsents(t *testing.T) {
	e := start(t)
	c := e.gc()
	sub := create(t, c, 271)
	id := sub.GetSubjectId()
	call(t, c, recordConsentRPC, consentReq(sub, "c-dm", pdv1.ConsentPurpose_CONSENT_PURPOSE_DIRECT_MARKETING, "", e.clock.Now()), &pdv1.RecordConsentResponse{})
	call(t, c, recordConsentRPC, consentReq(sub, "c-iis", pdv1.ConsentPurpose_CONSENT_PURPOSE_DISCLOSURE, "iis.se", e.clock.Now()), &pdv1.RecordConsentResponse{})
	marketing := e.as(c, e.principal(t, "marketing", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, []string{"company"}, []pdv1.Purpose{pdv1.Purpose_PURPOSE_DIRECT_MARKETING}))
	dm := &pdv1.GetSubjectForPurposeRequest{SubjectId: id, Purpose: pdv1.Purpose_PURPOSE_DIRECT_MARKETING}
	call(t, marketing, "GetSubjectForPurpose", dm, &pdv1.GetSubjectForPurposeResponse{})

	mailer := e.mailer(t, c)
	sc := newSelfClient(t, e)
	page := sc.signIn(mailer, testPerson(271))
	csrf := selfCSRF.FindStringSubmatch(page)[1]
	if !strings.Contains(page, `action="/reklam"`) || strings.Count(page, `action="/samtycke"`) != 2 {
		t.Fatalf("overview without the buttons: %s", page)
	}
	st, body := sc.do(http.MethodPost, "/reklam", url.Values{"csrf": {csrf}})
	if st != 200 || !strings.Contains(body, "Vi skickar ingen direktreklam till dig") || strings.Contains(body, `action="/reklam"`) {
		t.Fatalf("no to marketing: %d %s", st, body)
	}
	if err := marketing.call(context.Background(), "GetSubjectForPurpose", dm, &pdv1.GetSubjectForPurposeResponse{}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("direct marketing after the no: %v", err)
	}
	_, a := person(t, c, id)
	for _, cn := range a.GetConsents() {
		dmc := cn.GetPurpose() == pdv1.ConsentPurpose_CONSENT_PURPOSE_DIRECT_MARKETING
		if dmc != (cn.GetWithdrawTime() != nil) {
			t.Errorf("consent %v after the no to marketing", cn)
		}
		if dmc && (cn.GetWithdrawChannel() != pdv1.Channel_CHANNEL_SELF_SERVICE || !strings.Contains(cn.GetWithdrawReference(), "direct-marketing-objection")) {
			t.Errorf("the objection is not recorded as one: %v", cn)
		}
	}
	// The other consent, by its button.
	iis := a.GetConsents()[1].GetConsentId()
	st, body = sc.do(http.MethodPost, "/samtycke", url.Values{"csrf": {csrf}, "samtycke": {iis}})
	if st != 200 || !strings.Contains(body, "Du har återkallat samtycket") || strings.Contains(body, `action="/samtycke"`) {
		t.Fatalf("withdraw: %d %s", st, body)
	}
	_, a = person(t, c, id)
	for _, cn := range a.GetConsents() {
		if cn.GetWithdrawTime() == nil || cn.GetWithdrawChannel() != pdv1.Channel_CHANNEL_SELF_SERVICE {
			t.Errorf("consent %v", cn)
		}
	}
	if n := len(selfEvents(t, e, c, id, "WithdrawConsent")); n != 2 {
		t.Errorf("%d audit events of the person's withdrawals, want 2", n)
	}
	// Without the page's token, nothing happens.
	call(t, c, recordConsentRPC, consentReq(sub, "c-dm-2", pdv1.ConsentPurpose_CONSENT_PURPOSE_DIRECT_MARKETING, "", e.clock.Now()), &pdv1.RecordConsentResponse{})
	if st, _ := sc.do(http.MethodPost, "/reklam", url.Values{"csrf": {"x"}}); st != http.StatusForbidden {
		t.Errorf("no CSRF token: %d", st)
	}
	if _, a := person(t, c, id); a.GetConsents()[2].GetWithdrawTime() != nil {
		t.Error("withdrawn without the token")
	}
}

// selfConn is a call as the person signed in on sc, on the page's own
// connection: what the page could send if it were made to.
func selfCtx(t *testing.T, sc *selfClient, subjectID string) context.Context {
	t.Helper()
	u, _ := url.Parse(sc.base)
	var session string
	for _, ck := range sc.hc.Jar.Cookies(u) {
		if ck.Name == "__Host-pd-self" {
			session = ck.Value
		}
	}
	if session == "" {
		t.Fatal("not signed in")
	}
	h := sha256.Sum256([]byte("self-service-session\x00" + session))
	return metadata.AppendToOutgoingContext(context.Background(), auth.SelfServiceSubjectKey, subjectID, auth.SelfServiceSessionKey, hex.EncodeToString(h[:]))
}

// The corrections reach the person's own record only: every id the page
// sends (consent ids, the hidden field) and every request the page could be
// made to send on its connection (another subject, another field, another
// channel, another's consent) is refused, and another's record is as it was.
func TestSelfServiceCorrectionsConfined(t *testing.T) {
	e := start(t)
	c := e.gc()
	subA, subB := create(t, c, 272), create(t, c, 273)
	a, b := subA.GetSubjectId(), subB.GetSubjectId()
	call(t, c, recordConsentRPC, consentReq(subA, "a-dm", pdv1.ConsentPurpose_CONSENT_PURPOSE_DIRECT_MARKETING, "", e.clock.Now()), &pdv1.RecordConsentResponse{})
	for _, k := range []string{"b-1", "b-2", "b-3"} {
		r := "iis.se"
		if k == "b-2" {
			r = "registry.example.net"
		}
		call(t, c, recordConsentRPC, consentReq(subB, k, pdv1.ConsentPurpose_CONSENT_PURPOSE_DISCLOSURE, r, e.clock.Now()), &pdv1.RecordConsentResponse{})
	}
	call(t, c, recordConsentRPC, consentReq(subB, "b-dm", pdv1.ConsentPurpose_CONSENT_PURPOSE_DIRECT_MARKETING, "", e.clock.Now()), &pdv1.RecordConsentResponse{})
	_, beforeB := person(t, c, b)

	mailer := e.mailer(t, c)
	sc := newSelfClient(t, e)
	page := sc.signIn(mailer, testPerson(272))
	csrf := selfCSRF.FindStringSubmatch(page)[1]

	// B's consent ids (2, 3, 4 exist only for B) answer as one that does
	// not exist at all.
	_, missing := sc.do(http.MethodPost, "/samtycke", url.Values{"csrf": {csrf}, "samtycke": {"99"}})
	for _, cid := range []string{"2", "3", "4", b, "1/../2", "-1"} {
		st, body := sc.do(http.MethodPost, "/samtycke", url.Values{"csrf": {csrf}, "samtycke": {cid}, "subject_id": {b}})
		if st != http.StatusNotFound || body != missing {
			t.Errorf("consent id %q: %d, want the answer of a missing one", cid, st)
		}
	}
	// Ids added to every form change nothing of whom they act on.
	extra := url.Values{"subject_id": {b}, "subjectId": {b}, "subject": {b}, "id": {b}, "samtycke": {"1"}}
	for path, form := range map[string]url.Values{
		"/andra/namn":     {"fornamn": {"Ny"}, "efternamn": {"Namnsson"}},
		"/andra/adress":   {"gata": {"Nygatan 2"}, "postnummer": {"111 22"}, "ort": {"Stockholm"}},
		"/andra/kontakt":  {"falt": {"epost"}, "epost": {"ny@example.se"}},
		"/andra/bekrafta": {"falt": {"epost"}, "kod": {"12345678"}},
		"/reklam":         {},
	} {
		for k, v := range extra {
			form[k] = v
		}
		form.Set("csrf", csrf)
		sc.do(http.MethodPost, path, form)
	}
	if _, afterB := person(t, c, b); afterB.GetSubject().GetVersion() != beforeB.GetSubject().GetVersion() || !sameConsents(afterB, beforeB) {
		t.Errorf("B's record changed through A's page")
	}
	if got, _ := person(t, c, a); got.GetPerson().GetGivenName() != "Ny" {
		t.Errorf("A's own change did not happen: %v", got.GetPerson())
	}

	// What the page never sends, sent on its connection as A.
	ctx := selfCtx(t, sc, a)
	pd := pdv1.NewPersonalDataServiceClient(e.srv.SelfServiceConn())
	cs := pdv1.NewConsentServiceClient(e.srv.SelfServiceConn())
	gotA, _ := person(t, c, a)
	self := pdv1.Channel_CHANNEL_SELF_SERVICE
	rect := func(subject string, person *pdv1.Person, channel pdv1.Channel, fields ...string) error {
		_, err := pd.RectifySubject(ctx, &pdv1.RectifySubjectRequest{IdempotencyKey: "x-" + strings.Join(fields, "-") + channel.String() + subject[:4], SubjectId: subject,
			ExpectedVersion: gotA.GetVersion(), Person: person, UpdateMask: &fieldmaskpb.FieldMask{Paths: fields}, Channel: channel, Reference: "r", PerformedBy: a})
		return err
	}
	for name, err := range map[string]error{
		"identity number": rect(a, &pdv1.Person{IdentityNumber: testPerson(274).GetIdentityNumber()}, self, "identity_number"),
		"e-mail directly": rect(a, &pdv1.Person{Email: "direct@example.se"}, self, "email"),
		"phone directly":  rect(a, &pdv1.Person{Phone: "070-111 22 33"}, self, "phone"),
		"name and e-mail": rect(a, &pdv1.Person{GivenName: "A", FamilyName: "B", Email: "direct@example.se"}, self, "given_name", "family_name", "email"),
		"as if by phone":  rect(a, &pdv1.Person{GivenName: "A", FamilyName: "B"}, pdv1.Channel_CHANNEL_PHONE, "given_name", "family_name"),
		"B's name":        rect(b, &pdv1.Person{GivenName: "A", FamilyName: "B"}, self, "given_name", "family_name"),
		"B's consent": func() error {
			_, err := cs.WithdrawConsent(ctx, &pdv1.WithdrawConsentRequest{IdempotencyKey: "wb", SubjectId: b, ConsentId: "1", Channel: self})
			return err
		}(),
		"B's new e-mail": func() error {
			_, err := pd.StartContactChange(ctx, &pdv1.StartContactChangeRequest{IdempotencyKey: "sb", SubjectId: b, Person: &pdv1.Person{Email: "x@example.se"},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"email"}}, Channel: self})
			return err
		}(),
		"B's confirmation": func() error {
			_, err := pd.ConfirmContactChange(ctx, &pdv1.ConfirmContactChangeRequest{IdempotencyKey: "cb", SubjectId: b, Code: "12345678",
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"email"}}, Channel: self, Reference: "r"})
			return err
		}(),
		"B's erasure": func() error {
			_, err := pd.EraseSubject(ctx, &pdv1.EraseSubjectRequest{IdempotencyKey: "eb", SubjectId: b, Ground: pdv1.ErasureGround_ERASURE_GROUND_NO_LEGAL_BASIS, Channel: self, Reference: "r", PerformedBy: a})
			return err
		}(),
	} {
		if status.Code(err) != codes.PermissionDenied {
			t.Errorf("%s: %v, want PermissionDenied", name, err)
		}
	}
	if now, _ := person(t, c, a); now.GetVersion() != gotA.GetVersion() {
		t.Errorf("A's record changed by a refused request: %v", now.GetPerson())
	}
	if _, afterB := person(t, c, b); afterB.GetSubject().GetVersion() != beforeB.GetSubject().GetVersion() || !sameConsents(afterB, beforeB) {
		t.Errorf("B's record changed")
	}
}

func sameConsents(x, y *pdv1.AccessSubjectResponse) bool {
	if len(x.GetConsents()) != len(y.GetConsents()) {
		return false
	}
	for i := range x.GetConsents() {
		if (x.GetConsents()[i].GetWithdrawTime() == nil) != (y.GetConsents()[i].GetWithdrawTime() == nil) {
			return false
		}
	}
	return true
}
