package console

import (
	"strconv"
	"strings"

	"github.com/nyaruka/phonenumbers"
	"golang.org/x/text/language"
	"golang.org/x/text/language/display"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// subjectView is the subject's page: everything AccessSubject returned, in
// Swedish, and the forms of the actions the principal may take.
type subjectView struct {
	// Heading is the person's name, or what stands for it when none is held.
	Heading string
	// Missing is what a field not held shows.
	Missing          string
	ID, Controller   string
	Version          string
	State, Delivery  string
	Restricted       bool
	Erased           bool
	Created, Updated string
	Person           *personView
	Restriction      *recordView
	Erasure          *recordView
	History          []historyView
	Changes          []changeView
	Consents         []consentView
	Disclosures      []disclosureView
	Holds            []holdView
	Purposes         []purposeView
	Retention        string
	AgreementID      string
	Truncated        bool
	// RequestPath leads back to the rights request the page was opened
	// from, if any.
	RequestPath       string
	Rectify, Restrict *form
	Lift, AddHistory  *form
	Erase             *form
	// Digests mark the values the rectify form shows (see digest).
	Digests map[string]string
	// The choices of the forms' selects.
	Channels, RestrictionGrounds, LiftResolutions, ErasureGrounds, HistoryKinds []option
	Today                                                                       string
}

type personView struct {
	IdentityNumber, IdentityKind  string
	GivenName, FamilyName         string
	Email, Phone                  string
	Lines                         []string
	PostalCode, Locality, Country string
	// CountryName is the country in Swedish, set only when it is not
	// Sweden: a Swedish address ends with its locality.
	CountryName string
	HasAddress  bool
}

// Line is address line i (from 1), or "".
func (p *personView) Line(i int) string {
	if i-1 < len(p.Lines) {
		return p.Lines[i-1]
	}
	return ""
}

// recordView is a restriction or an erasure: why, when, how it came, by whom.
type recordView struct {
	Ground, Time, Channel, Reference, PerformedBy string
}

type historyView struct {
	Kind, Title, Body, Date, Reference, Created string
}

type changeView struct {
	Kind, Detail, Fields, Time, Channel, Reference, PerformedBy, Version string
}

type consentView struct {
	Purpose, Given, Channel, Wording              string
	Withdrawn, WithdrawChannel, WithdrawReference string
}

type disclosureView struct {
	Recipient, Purpose, Categories, Basis, Reference, Time, Principal string
}

type holdView struct {
	Basis, Categories, Until, Reference, Placed, PlacedBy, Ended string
}

type purposeView struct {
	Purpose, Fields, LegalBasis string
}

// formatIdentityNumber writes a stored identity number as people do,
// "19121212-1212".
func formatIdentityNumber(n string) string {
	if len(n) == 12 {
		return n[:8] + "-" + n[8:]
	}
	return n
}

func newPersonView(p *pdv1.Person) *personView {
	if p == nil {
		return nil
	}
	v := &personView{
		IdentityNumber: formatIdentityNumber(p.GetIdentityNumber()),
		IdentityKind:   identityKindLabels[p.GetIdentityNumberKind()],
		GivenName:      p.GetGivenName(),
		FamilyName:     p.GetFamilyName(),
		Email:          displayEmail(p.GetEmail()),
		Phone:          displayPhone(p.GetPhone()),
	}
	if a := p.GetPostalAddress(); a != nil {
		v.HasAddress = true
		v.Lines, v.PostalCode, v.Locality, v.Country = a.GetLines(), a.GetPostalCode(), a.GetLocality(), a.GetCountryCode()
		if v.Country != "" && v.Country != "SE" {
			v.CountryName = countryName(v.Country)
		}
	}
	return v
}

// displayPhone writes a stored phone number (E.164) as people write it: a
// Swedish number the Swedish way, "070-123 45 67", any other in its
// international form, "+47 412 34 567". What does not parse is shown as
// stored.
func displayPhone(n string) string {
	if n == "" {
		return ""
	}
	num, err := phonenumbers.Parse(n, "SE")
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return n
	}
	if phonenumbers.GetRegionCodeForNumber(num) == "SE" {
		return phonenumbers.Format(num, phonenumbers.NATIONAL)
	}
	return phonenumbers.Format(num, phonenumbers.INTERNATIONAL)
}

// Methods whose grant decides which forms the page offers; the service
// decides again when the form is sent.
const (
	rectifyRPC  = pdv1.PersonalDataService_RectifySubject_FullMethodName
	restrictRPC = pdv1.PersonalDataService_RestrictProcessing_FullMethodName
	liftRPC     = pdv1.PersonalDataService_LiftRestriction_FullMethodName
	historyRPC  = pdv1.PersonalDataService_AddHistoryEntry_FullMethodName
	eraseRPC    = pdv1.PersonalDataService_EraseSubject_FullMethodName
)

func newSubjectView(s *session, doc *pdv1.AccessSubjectResponse, truncated bool, rpcs []string, state *formState) *subjectView {
	sub := doc.GetSubject()
	v := &subjectView{
		ID:                 sub.GetSubjectId(),
		Controller:         sub.GetControllerId(),
		Version:            strconv.FormatInt(sub.GetVersion(), 10),
		State:              stateLabels[sub.GetState()],
		Delivery:           deliveryLabels[sub.GetServiceDelivery()],
		Restricted:         sub.GetState() == pdv1.SubjectState_SUBJECT_STATE_RESTRICTED,
		Erased:             sub.GetState() == pdv1.SubjectState_SUBJECT_STATE_ERASED,
		Created:            formatTimestamp(sub.GetCreateTime()),
		Updated:            formatTimestamp(sub.GetUpdateTime()),
		Person:             newPersonView(sub.GetPerson()),
		Retention:          retentionText(sub, doc.GetRetention().GetAgreementId()),
		AgreementID:        doc.GetRetention().GetAgreementId(),
		Truncated:          truncated,
		Channels:           channels,
		RestrictionGrounds: restrictionGrounds,
		LiftResolutions:    liftResolutions,
		ErasureGrounds:     erasureGrounds,
		HistoryKinds:       historyKinds,
		Today:              formatDate(doc.GetGenerateTime()),
	}
	v.Heading, v.Missing = "Registrerad", "–"
	if v.Erased {
		v.Heading, v.Missing = "Raderad registrerad", "raderad"
	}
	if p := v.Person; p != nil && strings.TrimSpace(p.GivenName+p.FamilyName) != "" {
		v.Heading = strings.TrimSpace(p.GivenName + " " + p.FamilyName)
	}
	if r := sub.GetRestriction(); r != nil {
		v.Restriction = &recordView{Ground: label(restrictionGrounds, r.GetGround().String()), Time: formatTimestamp(r.GetRestrictTime()),
			Channel: channelLabel(r.GetChannel()), Reference: r.GetReference(), PerformedBy: r.GetPerformedBy()}
	}
	if e := sub.GetErasure(); e != nil {
		v.Erasure = &recordView{Ground: erasureGroundLabel(e.GetGround().String()), Time: formatTimestamp(e.GetEraseTime()),
			Channel: channelLabel(e.GetChannel()), Reference: e.GetReference(), PerformedBy: e.GetPerformedBy()}
	}
	for _, h := range doc.GetHistory() {
		v.History = append(v.History, historyView{Kind: label(historyKinds, h.GetKind().String()), Title: h.GetTitle(), Body: h.GetBody(),
			Date: formatDate(h.GetOccurTime()), Reference: h.GetReference(), Created: formatTimestamp(h.GetCreateTime())})
	}
	for _, ch := range doc.GetChanges() {
		cv := changeView{Kind: changeLabels[ch.GetKind()], Fields: fieldLabelList(ch.GetFields()), Time: formatTimestamp(ch.GetChangeTime()),
			Channel: channelLabel(ch.GetChannel()), Reference: ch.GetReference(), PerformedBy: ch.GetPerformedBy(),
			Version: strconv.FormatInt(ch.GetVersion(), 10)}
		switch {
		case ch.GetRestrictionGround() != pdv1.RestrictionGround_RESTRICTION_GROUND_UNSPECIFIED:
			cv.Detail = label(restrictionGrounds, ch.GetRestrictionGround().String())
		case ch.GetLiftResolution() != pdv1.LiftResolution_LIFT_RESOLUTION_UNSPECIFIED:
			cv.Detail = label(liftResolutions, ch.GetLiftResolution().String())
		case ch.GetErasureGround() != pdv1.ErasureGround_ERASURE_GROUND_UNSPECIFIED:
			cv.Detail = erasureGroundLabel(ch.GetErasureGround().String())
		}
		v.Changes = append(v.Changes, cv)
	}
	for _, c := range doc.GetConsents() {
		purpose := "Direktmarknadsföring"
		if c.GetPurpose() == pdv1.ConsentPurpose_CONSENT_PURPOSE_DISCLOSURE {
			purpose = "Utlämnande till " + c.GetRecipient()
		}
		v.Consents = append(v.Consents, consentView{Purpose: purpose, Given: formatTimestamp(c.GetGiveTime()), Channel: channelLabel(c.GetChannel()),
			Wording: c.GetWordingReference(), Withdrawn: formatTimestamp(c.GetWithdrawTime()), WithdrawChannel: channelLabel(c.GetWithdrawChannel()),
			WithdrawReference: c.GetWithdrawReference()})
	}
	for _, d := range doc.GetDisclosures() {
		v.Disclosures = append(v.Disclosures, disclosureView{Recipient: d.GetRecipient(), Purpose: purposeLabels[d.GetPurpose()],
			Categories: categoryList(d.GetCategories()), Basis: disclosureBasisLabels[d.GetBasis()], Reference: d.GetReference(),
			Time: formatTimestamp(d.GetDiscloseTime()), Principal: d.GetPrincipalId()})
	}
	for _, h := range doc.GetHolds() {
		v.Holds = append(v.Holds, holdView{Basis: holdBasisLabels[h.GetBasis()], Categories: categoryList(h.GetCategories()),
			Until: formatDate(h.GetUntil()), Reference: h.GetReference(), Placed: formatTimestamp(h.GetPlaceTime()),
			PlacedBy: h.GetPlacedBy(), Ended: formatTimestamp(h.GetEndTime())})
	}
	for _, p := range doc.GetPurposes() {
		v.Purposes = append(v.Purposes, purposeView{Purpose: purposeLabels[p.GetPurpose()], Fields: fieldLabelList(p.GetFields()),
			LegalBasis: legalBasis(p.GetLegalBasis())})
	}

	action := subjectPath(v.ID)
	if !v.Erased {
		if mayCall(rpcs, rectifyRPC) && v.Person != nil {
			v.Rectify = newForm("rectify", action+"/rectify", state)
			v.Digests = map[string]string{
				"identity_number": digest(s, "identity_number", v.Person.IdentityNumber),
				"given_name":      digest(s, "given_name", v.Person.GivenName),
				"family_name":     digest(s, "family_name", v.Person.FamilyName),
				"email":           digest(s, "email", v.Person.Email),
				"phone":           digest(s, "phone", v.Person.Phone),
				"postal_address":  digest(s, "postal_address", addressOf(v.Person)),
			}
		}
		if mayCall(rpcs, restrictRPC) && !v.Restricted {
			v.Restrict = newForm("restrict", action+"/restrict", state)
		}
		if mayCall(rpcs, liftRPC) && v.Restricted {
			v.Lift = newForm("lift", action+"/lift", state)
		}
		if mayCall(rpcs, historyRPC) {
			v.AddHistory = newForm("history", action+"/history", state)
		}
		if mayCall(rpcs, eraseRPC) {
			v.Erase = newForm("erase", action+"/erase", state)
		}
	}
	return v
}

// addressOf is the address as the rectify form shows it, in the form of
// addressValue.
func addressOf(p *personView) string {
	if !p.HasAddress {
		return "\x00\x00\x00\x00\x00"
	}
	return p.Line(1) + "\x00" + p.Line(2) + "\x00" + p.Line(3) + "\x00" + p.PostalCode + "\x00" + p.Locality + "\x00" + p.Country
}

// countryName is an ISO 3166-1 alpha-2 code's country in Swedish, "Norge",
// or the code when it names none.
func countryName(code string) string {
	r, err := language.ParseRegion(code)
	if err != nil {
		return code
	}
	if n := display.Swedish.Regions().Name(r); n != "" {
		return n
	}
	return code
}

// retentionText says in Swedish how long the subject's data is kept, as the
// service's rule does (service/rules and service/subjects/kept.go, whose words are English): the
// company's privacy policy for its own customers, the processor agreement
// for a customer's. What legal holds keep is the page's Lagringskrav.
func retentionText(sub *pdv1.Subject, agreementID string) string {
	const holds = " Det som omfattas av ett lagringskrav (se Lagringskrav) sparas efter en radering, enbart lagrat, tills kravet upphör, och tas sedan bort."
	erased := sub.GetState() == pdv1.SubjectState_SUBJECT_STATE_ERASED
	if c := sub.GetControllerId(); c != "company" {
		switch {
		case erased:
			return "Uppgifterna sparades för kunden " + c + " enligt ett personuppgiftsbiträdesavtal och raderades på kundens instruktion. " +
				"Kvar finns bara en markering utan personuppgifter."
		case agreementID == "":
			return "Uppgifterna sparas för kunden " + c + ". Inget personuppgiftsbiträdesavtal som täcker dem gäller, så de får bara lagras " +
				"tills kunden har fått tillbaka dem (export) eller låtit radera dem (GDPR art. 28.3 g)."
		}
		return "Uppgifterna sparas för kunden " + c + " så länge kunden ger instruktioner om det, enligt personuppgiftsbiträdesavtal " + agreementID + ". " +
			"När avtalet upphör bestämmer kunden om uppgifterna ska lämnas tillbaka (export) eller raderas (GDPR art. 28.3 g)."
	}
	return "Uppgifterna sparas så länge de behövs för att leverera tjänsterna och så länge lagen kräver det: bokföringsunderlag i sju år " +
		"efter utgången av det kalenderår de gäller (bokföringslagen). Historiken sparas för att kunna kontrollera tidigare ändringar " +
		"och underlätta felsökning. Vid radering tas uppgifterna bort och kvar finns bara en markering utan personuppgifter." + holds
}
