package requests

import (
	"context"
	_ "embed"
	"html/template"
	"slices"
	"strings"
	"time"

	"golang.org/x/text/language"
	"golang.org/x/text/language/display"
	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/rules"
	"github.com/example/personaldata/service/subjects"
	"github.com/example/personaldata/service/validate"
	"github.com/example/personaldata/service/vault"
	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/envelope"
)

// The reply to an access request (Art. 15) is the information the article
// lists, built from the tables the service enforces (PurposeRules,
// retentionOf, the recorded disclosures), together with the data: as the
// machine-readable document (GetRightsRequestReply, also the portability
// export of Art. 20) and as a letter to read (GetRightsRequestLetter). It
// is made when the request is fulfilled and kept sealed with the request's
// other personal values, under its data key (SealedReplyName): both are
// made from that copy, so they show what was sent even after the subject's
// data changed or was erased, and both go with the request's personal
// values when the retention sweep removes them.

// sealReply makes r's reply as fulfilled by res, sealed under the
// request's data key.
func (s *RightsRequests) sealReply(ctx context.Context, r *store.RightsRequest, res store.Fulfilment) ([]byte, error) {
	answered := *r
	answered.Fulfilment = &res
	reply, err := s.reply(ctx, &answered)
	if err != nil {
		return nil, err
	}
	b, err := proto.Marshal(reply)
	if err != nil {
		return nil, s.Internal(ctx, "seal reply", err)
	}
	dk, err := s.Vault.DataKey(ctx, r.DataKeyID(), vault.ExistingKey)
	if err != nil {
		return nil, s.Internal(ctx, "seal reply", err)
	}
	sealed, err := dk.Seal(b, envelope.AAD("rights_request", r.ID, vault.SealedReplyName))
	if err != nil {
		return nil, s.Internal(ctx, "seal reply", err)
	}
	return sealed, nil
}

// answeredReply is the reply as it was made when r was answered. A request
// answered before replies were kept has it made anew, from the data as it
// is now.
func (s *RightsRequests) answeredReply(ctx context.Context, r *store.RightsRequest) (*pdv1.GetRightsRequestReplyResponse, error) {
	sealed, ok := r.Sealed[vault.SealedReplyName]
	switch {
	case !ok && len(r.Sealed) == 0:
		return nil, requestRefused(reasonReplyRemoved, "the reply was removed with the request's personal values, three years after the answer")
	case !ok:
		return s.reply(ctx, r)
	}
	dk, err := s.Vault.DataKey(ctx, r.DataKeyID(), vault.ExistingKey)
	if err != nil {
		return nil, s.Internal(ctx, "reply", err)
	}
	b, err := dk.Open(sealed, envelope.AAD("rights_request", r.ID, vault.SealedReplyName))
	if err != nil {
		return nil, s.Internal(ctx, "reply", err)
	}
	out := &pdv1.GetRightsRequestReplyResponse{}
	if err := proto.Unmarshal(b, out); err != nil {
		return nil, s.Internal(ctx, "reply", err)
	}
	return out, nil
}

// GetRightsRequestReply returns the machine-readable reply.
func (s *RightsRequests) GetRightsRequestReply(ctx context.Context, req *pdv1.GetRightsRequestReplyRequest) (*pdv1.GetRightsRequestReplyResponse, error) {
	r, err := s.fulfilledAccess(ctx, req.GetRequestId())
	if err != nil {
		return nil, err
	}
	return s.answeredReply(ctx, r)
}

// GetRightsRequestLetter returns the reply as an HTML letter.
func (s *RightsRequests) GetRightsRequestLetter(ctx context.Context, req *pdv1.GetRightsRequestLetterRequest) (*httpbody.HttpBody, error) {
	var v validate.Violations
	lang := validLetterLanguage(&v, req.GetLanguage())
	validRequestID(&v, req.GetRequestId())
	if err := v.Err(); err != nil {
		return nil, err
	}
	r, err := s.fulfilledAccess(ctx, req.GetRequestId())
	if err != nil {
		return nil, err
	}
	reply, err := s.answeredReply(ctx, r)
	if err != nil {
		return nil, err
	}
	return s.letter(ctx, r, reply, lang)
}

// fulfilledAccess reads a request whose reply can be made: an access or
// portability request, fulfilled.
func (s *RightsRequests) fulfilledAccess(ctx context.Context, id string) (*store.RightsRequest, error) {
	r, _, err := s.requestFor(ctx, "reply", id, true)
	if err != nil {
		return nil, err
	}
	if kindActions[core.EnumValue[pdv1.RightsRequestKind](pdv1.RightsRequestKind_value, r.Kind)] != "access" {
		return nil, requestRefused(reasonWrongAction, "only an access or portability request has a reply with the data")
	}
	if r.State != pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_FULFILLED.String() {
		return nil, requestRefused(reasonNotFulfilled, "the request is not fulfilled yet")
	}
	return r, nil
}

// reply builds the Art. 15 reply for r.
func (s *RightsRequests) reply(ctx context.Context, r *store.RightsRequest) (*pdv1.GetRightsRequestReplyResponse, error) {
	now := s.Now()
	out := &pdv1.GetRightsRequestReplyResponse{RequestId: r.ID, GenerateTime: timestamppb.New(now)}
	info := &pdv1.ReplyInformation{
		Rights:             rightsText,
		Complaint:          complaintText,
		AutomatedDecisions: "No decision based solely on automated processing, including profiling, is made about you (Art. 22).",
		Transfers:          "The data is not transferred outside the EU/EEA by this service; the recipients it was disclosed to are listed.",
		Controller:         "The company, for its own customers' data; contact its support by e-mail, phone or the contact form.",
	}
	out.Information = info
	if r.SubjectID == "" || (r.Fulfilment != nil && r.Fulfilment.NothingHeld) {
		// Nothing is held: the general information still answers.
		info.Purposes = rules.ProcessingPurposes(rules.CompanyController, nil, now.UnixNano())
		info.Retention = &pdv1.Retention{Policy: rules.RetentionPolicy}
		info.Source = "Nothing is held about you."
		return out, nil
	}
	sub, agreements, err := s.subjects.SubjectForAccess(ctx, r.SubjectID)
	if sub == nil {
		return nil, err
	}
	data := &pdv1.AccessSubjectResponse{}
	for c := (subjects.AccessCursor{}); !c.Done(); {
		var page *pdv1.AccessSubjectResponse
		if page, c, err = s.subjects.AccessPage(ctx, sub, agreements, c); err != nil {
			return nil, s.Internal(ctx, "reply", err)
		}
		if data.Subject == nil {
			data.Subject, data.Purposes, data.Retention, data.GenerateTime = page.Subject, page.Purposes, page.Retention, page.GenerateTime
			data.PolicyAcknowledgements = page.PolicyAcknowledgements
		}
		data.Changes = append(data.Changes, page.Changes...)
		data.Consents = append(data.Consents, page.Consents...)
		data.Disclosures = append(data.Disclosures, page.Disclosures...)
		data.Holds = append(data.Holds, page.Holds...)
		data.History = append(data.History, page.History...)
	}
	out.DataHeld = sub.Erasure == nil
	out.Data = data
	info.Purposes = data.Purposes
	info.Retention = data.Retention
	if sub.Erasure == nil {
		info.Categories = subjects.HeldCategories(sub)
	}
	for _, d := range data.Disclosures {
		if !slices.Contains(info.Recipients, d.GetRecipient()) {
			info.Recipients = append(info.Recipients, d.GetRecipient())
		}
	}
	info.Source = "From you, when you became a customer and when you asked for changes; the history and usage log from your use of the services."
	if len(data.Changes) > 0 {
		info.Source += " The record was created through " + strings.ToLower(strings.TrimPrefix(data.Changes[0].GetChannel().String(), "CHANNEL_")) + "."
	}
	return out, nil
}

// rightsText and complaintText are the rights Art. 15(1)(e) and (f) name.
var rightsText = []string{
	"rectification of inaccurate data (Art. 16)",
	"erasure (Art. 17)",
	"restriction of processing to storage only (Art. 18)",
	"objection to processing, always to direct marketing (Art. 21)",
	"data portability (Art. 20)",
	"withdrawal of a consent at any time (Art. 7(3))",
}

const complaintText = "You may complain to the Swedish Authority for Privacy Protection (Integritetsskyddsmyndigheten, IMY), " +
	"Box 8114, 104 20 Stockholm, imy.se, and bring proceedings before a court (Art. 77 and 79)."

//go:embed letter.html.tmpl
var letterSource string

var letterTemplate = template.Must(template.New("letter").Parse(letterSource))

// letterText is the letter's wording in one language.
type letterText struct {
	Lang, Title, Intro, NothingHeld, Purpose                                                     string
	Purposes, Categories, Recipients, Retention, Source, Rights, Complaint, Automated            string
	Transfers, YourData, Field, Value, Changes, Consents, Disclosures, Holds, History            string
	NoRecipients, Date, Kind, Fields, Given, Withdrawn, Recipient, Basis, Until, Request, Policy string
	RightsList                                                                                   []string
	ComplaintText, AutomatedText, TransfersText, RetentionNote                                   string
	// The sender and the signature.
	From, Contact, ContactText, ContactSupport, Regards, Signature, EmailLabel, PhoneLabel, WebLabel string
}

var letterTexts = map[string]letterText{
	"sv": {
		Lang: "sv", Title: "Svar på din begäran om tillgång till personuppgifter", Purpose: "Ändamål",
		Intro:       "Här är de personuppgifter vi behandlar om dig och den information du har rätt till enligt artikel 15 i dataskyddsförordningen.",
		NothingHeld: "Vi behandlar inga personuppgifter om dig.",
		Purposes:    "Ändamål och rättslig grund", Categories: "Kategorier av personuppgifter", Recipients: "Mottagare",
		Retention: "Hur länge uppgifterna sparas", Source: "Varifrån uppgifterna kommer", Rights: "Dina rättigheter",
		Complaint: "Rätt att klaga", Automated: "Automatiserat beslutsfattande", Transfers: "Överföring till tredje land",
		YourData: "Dina uppgifter", Field: "Uppgift", Value: "Värde", Changes: "Ändringar", Consents: "Samtycken",
		Disclosures: "Utlämnanden", Holds: "Lagringskrav", History: "Historik", NoRecipients: "Uppgifterna har inte lämnats ut till någon.",
		Date: "Datum", Kind: "Typ", Fields: "Uppgifter", Given: "Lämnat", Withdrawn: "Återkallat", Recipient: "Mottagare",
		Basis: "Grund", Until: "Till och med", Request: "Ärende", Policy: "Dataskyddspolicy",
		RightsList: []string{
			"att få felaktiga uppgifter rättade (artikel 16)",
			"att få uppgifterna raderade (artikel 17)",
			"att begära att behandlingen begränsas till lagring (artikel 18)",
			"att invända mot behandling, alltid mot direktmarknadsföring (artikel 21)",
			"att få ut uppgifterna i ett maskinläsbart format (artikel 20)",
			"att när som helst återkalla ett samtycke (artikel 7.3)",
		},
		ComplaintText: core.ComplaintSV,
		AutomatedText: "Vi fattar inga beslut om dig som enbart grundas på automatiserad behandling, inklusive profilering (artikel 22).",
		TransfersText: "Uppgifterna överförs inte till länder utanför EU/EES av denna tjänst; mottagarna av utlämnade uppgifter anges ovan.",
		From:          "Från", Contact: "Kontakta oss", EmailLabel: "E-post", PhoneLabel: "Telefon", WebLabel: "Webb",
		ContactText:    "Har du frågor om svaret eller om hur vi behandlar dina personuppgifter, kontakta vår support. Ange ärendenumret.",
		ContactSupport: "Du når vår support via e-post, telefon eller vårt kontaktformulär.",
		Regards:        "Med vänliga hälsningar", Signature: "Supporten",
		RetentionNote: "Vi sparar uppgifterna så länge de behövs för att leverera tjänsterna och så länge lagen kräver: bokföringsunderlag i sju år efter utgången av det kalenderår de gäller (bokföringslagen).",
	},
	"en": {
		Lang: "en", Title: "Reply to your request for access to personal data", Purpose: "Purpose",
		Intro:       "Here is the personal data we process about you, and the information Article 15 of the General Data Protection Regulation entitles you to.",
		NothingHeld: "We process no personal data about you.",
		Purposes:    "Purposes and legal basis", Categories: "Categories of personal data", Recipients: "Recipients",
		Retention: "How long the data is kept", Source: "Where the data comes from", Rights: "Your rights",
		Complaint: "Right to complain", Automated: "Automated decision-making", Transfers: "Transfers to third countries",
		YourData: "Your data", Field: "Item", Value: "Value", Changes: "Changes", Consents: "Consents",
		Disclosures: "Disclosures", Holds: "Legal retention", History: "History", NoRecipients: "The data has not been disclosed to anyone.",
		Date: "Date", Kind: "Kind", Fields: "Items", Given: "Given", Withdrawn: "Withdrawn", Recipient: "Recipient",
		Basis: "Basis", Until: "Until", Request: "Case", Policy: "Privacy policy",
		RightsList:    rightsText,
		ComplaintText: complaintText,
		AutomatedText: "No decision based solely on automated processing, including profiling, is made about you (Art. 22).",
		TransfersText: "The data is not transferred outside the EU/EEA by this service; the recipients of disclosed data are listed above.",
		From:          "From", Contact: "Contact us", EmailLabel: "E-mail", PhoneLabel: "Phone", WebLabel: "Web",
		ContactText:    "If you have questions about this reply or about how we process your personal data, contact our support. Quote the case number.",
		ContactSupport: "You can reach our support by e-mail, by phone or through our contact form.",
		Regards:        "Kind regards", Signature: "Customer support",
		RetentionNote: "We keep the data as long as needed to deliver the services and as long as the law requires: accounting records for seven years after the end of the calendar year they concern (Swedish accounting law).",
	},
}

// Names in the letter of fields, purposes and categories, by language.
var letterNames = map[string]map[string]string{
	"sv": {
		rules.FieldIdentityNumber: "Personnummer", rules.FieldGivenName: "Förnamn", rules.FieldFamilyName: "Efternamn", rules.FieldEmail: "E-post",
		rules.FieldPhone: "Telefon", rules.FieldPostalAddress: "Postadress",
		"PURPOSE_INVOICING": "Fakturering av tjänsterna", "PURPOSE_SERVICE_DELIVERY": "Leverans av tjänsterna",
		"PURPOSE_ACCOUNT_COMMUNICATION": "Kommunikation om ditt konto per e-post eller telefon",
		"PURPOSE_SUPPORT":               "Support, även hantering av dina förfrågningar",
		"PURPOSE_DOMAIN_REGISTRATION":   "Registrering av domännamn du beställt hos registret",
		"PURPOSE_DIRECT_MARKETING":      "Direktmarknadsföring per e-post, bara med ditt samtycke",
		"DATA_CATEGORY_IDENTIFICATION":  "Identifiering (personnummer och namn)", "DATA_CATEGORY_CONTACT": "Kontaktinformation (e-post, telefon, adress)",
		"DATA_CATEGORY_HISTORY": "Historik (e-postkonversationer och felrapporter)",
		rules.ContractBasis:     "Avtalet med dig (artikel 6.1 b)",
		"CHANGE_KIND_CREATED":   "Registrerad", "CHANGE_KIND_RECTIFIED": "Rättad", "CHANGE_KIND_RESTRICTED": "Behandlingen begränsad",
		"CHANGE_KIND_RESTRICTION_LIFTED": "Begränsningen hävd", "CHANGE_KIND_ERASED": "Raderad",
		"CONSENT_PURPOSE_DIRECT_MARKETING": "Direktmarknadsföring", "CONSENT_PURPOSE_DISCLOSURE": "Utlämnande till",
		"DISCLOSURE_BASIS_CONSENT": "Ditt samtycke", "DISCLOSURE_BASIS_CONTRACT": "Avtalet (din beställning)",
		"DISCLOSURE_BASIS_BREACH_OF_TERMS": "Brott mot avtalsvillkoren", "DISCLOSURE_BASIS_LEGAL_PROCEEDINGS": "Rättsliga åtgärder",
		"DISCLOSURE_BASIS_AUTHORITY_REQUEST":   "En myndighets begäran enligt svensk lag",
		"POLICY_ACKNOWLEDGEMENT_KIND_INFORMED": "Informerad", "POLICY_ACKNOWLEDGEMENT_KIND_ACCEPTED": "Godkänd",
		"HOLD_BASIS_BOOKKEEPING": "Bokföringslagen", "HOLD_BASIS_LEGAL_CLAIMS": "Rättsliga anspråk", "HOLD_BASIS_AGREEMENT_IN_FORCE": "Avtal som gäller",
		rules.PurposeRules[pdv1.Purpose_PURPOSE_DIRECT_MARKETING].Basis: "Ditt samtycke (artikel 6.1 a); upphör när du återkallar det eller invänder (artikel 7.3, 21.3)",
	},
	"en": {
		rules.FieldIdentityNumber: "Identity number", rules.FieldGivenName: "Given name", rules.FieldFamilyName: "Family name", rules.FieldEmail: "E-mail",
		rules.FieldPhone: "Phone", rules.FieldPostalAddress: "Postal address",
		"DATA_CATEGORY_IDENTIFICATION": "Identification (identity number and name)", "DATA_CATEGORY_CONTACT": "Contact (e-mail, phone, address)",
		"DATA_CATEGORY_HISTORY": "History (e-mail conversations and error reports)",
		"CHANGE_KIND_CREATED":   "Registered", "CHANGE_KIND_RECTIFIED": "Rectified", "CHANGE_KIND_RESTRICTED": "Processing restricted",
		"CHANGE_KIND_RESTRICTION_LIFTED": "Restriction lifted", "CHANGE_KIND_ERASED": "Erased",
		"CONSENT_PURPOSE_DIRECT_MARKETING": "Direct marketing", "CONSENT_PURPOSE_DISCLOSURE": "Disclosure to",
		"DISCLOSURE_BASIS_CONSENT": "Your consent", "DISCLOSURE_BASIS_CONTRACT": "The contract (your order)",
		"DISCLOSURE_BASIS_BREACH_OF_TERMS": "Breach of the terms", "DISCLOSURE_BASIS_LEGAL_PROCEEDINGS": "Legal proceedings",
		"DISCLOSURE_BASIS_AUTHORITY_REQUEST":   "An authority's request under Swedish law",
		"POLICY_ACKNOWLEDGEMENT_KIND_INFORMED": "Informed", "POLICY_ACKNOWLEDGEMENT_KIND_ACCEPTED": "Accepted",
		"HOLD_BASIS_BOOKKEEPING": "Swedish accounting law", "HOLD_BASIS_LEGAL_CLAIMS": "Legal claims", "HOLD_BASIS_AGREEMENT_IN_FORCE": "An agreement in force",
		"PURPOSE_INVOICING": "Invoicing for the services", "PURPOSE_SERVICE_DELIVERY": "Delivering the services",
		"PURPOSE_ACCOUNT_COMMUNICATION": "Communication about your account by e-mail or phone",
		"PURPOSE_SUPPORT":               "Support, including handling your requests",
		"PURPOSE_DOMAIN_REGISTRATION":   "Registering domain names you ordered with the registry",
		"PURPOSE_DIRECT_MARKETING":      "Direct marketing by e-mail, only with your consent",
		rules.ContractBasis:             "The contract with you (Article 6(1)(b))",
		rules.PurposeRules[pdv1.Purpose_PURPOSE_DIRECT_MARKETING].Basis: "Your consent (Article 6(1)(a)); it stops when you withdraw it or object (Articles 7(3), 21(3))",
	},
}

// letterView is what the letter template shows.
type letterView struct {
	T           letterText
	Case        string
	Date        string
	DataHeld    bool
	Purposes    [][2]string // name, basis
	Categories  []string
	Recipients  []string
	Retention   string
	Source      string
	Person      [][2]string
	Changes     [][3]string
	Consents    [][3]string
	Disclosures [][4]string
	Holds       [][3]string
	History     [][3]string
	Policy      [][3]string // version, informed or accepted, date
	// Sender signs the letter.
	Sender core.SenderView
}

func letterData(r *store.RightsRequest, reply *pdv1.GetRightsRequestReplyResponse, lang string) letterView {
	t := letterTexts[lang]
	names := letterNames[lang]
	name := func(key, fallback string) string {
		if n, ok := names[key]; ok {
			return n
		}
		return fallback
	}
	date := func(ts *timestamppb.Timestamp) string {
		if ts == nil {
			return ""
		}
		return ts.AsTime().In(core.Stockholm).Format(time.DateOnly)
	}
	info := reply.GetInformation()
	v := letterView{T: t, Case: core.ShortID(r.ID), Date: date(reply.GetGenerateTime()), DataHeld: reply.GetDataHeld(),
		Retention: info.GetRetention().GetPolicy(), Source: info.GetSource(), Recipients: info.GetRecipients()}
	if r.Controller == rules.CompanyController {
		// The company's policy in the letter's language; what holds keep
		// is listed with the data.
		v.Retention = t.RetentionNote
	}
	if lang == "sv" {
		v.Source = "Från dig, när du blev kund och när du bett om ändringar; historik och loggar från din användning av tjänsterna."
	}
	for _, p := range info.GetPurposes() {
		v.Purposes = append(v.Purposes, [2]string{name(p.GetPurpose().String(), p.GetDescription()), name(p.GetLegalBasis(), p.GetLegalBasis())})
	}
	for _, c := range info.GetCategories() {
		v.Categories = append(v.Categories, name(c.String(), c.String()))
	}
	data := reply.GetData()
	if p := data.GetSubject().GetPerson(); p != nil {
		add := func(field, value string) {
			if value != "" {
				v.Person = append(v.Person, [2]string{name(field, field), value})
			}
		}
		if n := p.GetIdentityNumber(); len(n) == 12 {
			add(rules.FieldIdentityNumber, n[:8]+"-"+n[8:]) // as it is written
		}
		add(rules.FieldGivenName, p.GetGivenName())
		add(rules.FieldFamilyName, p.GetFamilyName())
		add(rules.FieldEmail, p.GetEmail())
		add(rules.FieldPhone, p.GetPhone())
		if a := p.GetPostalAddress(); a != nil {
			parts := append(slices.Clone(a.GetLines()), strings.TrimSpace(a.GetPostalCode()+" "+a.GetLocality()))
			if c := a.GetCountryCode(); c != "" && c != "SE" {
				parts = append(parts, countryName(c, lang)) // a Swedish address ends with its locality
			}
			add(rules.FieldPostalAddress, strings.Join(parts, ", "))
		}
	}
	for _, c := range data.GetChanges() {
		var fields []string
		for _, f := range c.GetFields() {
			fields = append(fields, name(f, f))
		}
		v.Changes = append(v.Changes, [3]string{date(c.GetChangeTime()), name(c.GetKind().String(), c.GetKind().String()), strings.Join(fields, ", ")})
	}
	for _, c := range data.GetConsents() {
		v.Consents = append(v.Consents, [3]string{strings.TrimSpace(name(c.GetPurpose().String(), c.GetPurpose().String()) + " " + c.GetRecipient()), date(c.GetGiveTime()), date(c.GetWithdrawTime())})
	}
	for _, d := range data.GetDisclosures() {
		var cats []string
		for _, c := range d.GetCategories() {
			cats = append(cats, name(c.String(), c.String()))
		}
		v.Disclosures = append(v.Disclosures, [4]string{date(d.GetDiscloseTime()), d.GetRecipient(), strings.Join(cats, ", "), name(d.GetBasis().String(), d.GetBasis().String())})
	}
	for _, h := range data.GetHolds() {
		v.Holds = append(v.Holds, [3]string{name(h.GetBasis().String(), h.GetBasis().String()), date(h.GetPlaceTime()), date(h.GetUntil())})
	}
	for _, a := range data.GetPolicyAcknowledgements() {
		v.Policy = append(v.Policy, [3]string{a.GetVersion(), name(a.GetKind().String(), a.GetKind().String()), date(a.GetAcknowledgeTime())})
	}
	for _, h := range data.GetHistory() {
		v.History = append(v.History, [3]string{date(h.GetOccurTime()), h.GetTitle(), h.GetBody()})
	}
	return v
}

// countryName is an ISO 3166-1 alpha-2 code's country in the letter's
// language, or the code when it names none.
func countryName(code, lang string) string {
	r, err := language.ParseRegion(code)
	if err != nil {
		return code
	}
	names := display.English.Regions()
	if lang == "sv" {
		names = display.Swedish.Regions()
	}
	if n := names.Name(r); n != "" {
		return n
	}
	return code
}

// PlainName is what the access letter in lang calls key: a field of a
// person ("given_name"), an enum value's name ("PURPOSE_INVOICING",
// "DISCLOSURE_BASIS_CONSENT") or the company's legal basis; "" when the
// letter has no name for it.
func PlainName(lang, key string) string { return letterNames[lang][key] }

// CompanyRetentionNote is the company's retention policy in lang, as the
// letter words it to the person.
func CompanyRetentionNote(lang string) string { return letterTexts[lang].RetentionNote }

// CountryName is the name in lang of the country with ISO code code.
func CountryName(code, lang string) string { return countryName(code, lang) }
