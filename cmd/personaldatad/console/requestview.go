package console

import (
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// nearlyDueDays is how many days before its due date an open request is
// marked as nearly due in the queue and on its page.
const nearlyDueDays = 7

// The Swedish names of the rights-request API's values, in the order the
// forms and filters offer them.
var (
	requestKinds = []option{
		{"RIGHTS_REQUEST_KIND_ACCESS", "Tillgång (registerutdrag)"},
		{"RIGHTS_REQUEST_KIND_PORTABILITY", "Dataportabilitet"},
		{"RIGHTS_REQUEST_KIND_RECTIFICATION", "Rättelse"},
		{"RIGHTS_REQUEST_KIND_RESTRICTION", "Begränsning av behandling"},
		{"RIGHTS_REQUEST_KIND_ERASURE", "Radering"},
		{"RIGHTS_REQUEST_KIND_DIRECT_MARKETING_OBJECTION", "Invändning mot direktmarknadsföring"},
		{"RIGHTS_REQUEST_KIND_CONSENT_WITHDRAWAL", "Återkallelse av samtycke"},
		{"RIGHTS_REQUEST_KIND_OBJECTION", "Invändning mot behandling"},
	}
	requestStates = []option{
		{"RIGHTS_REQUEST_STATE_RECEIVED", "Mottagen, identiteten inte styrkt"},
		{"RIGHTS_REQUEST_STATE_VERIFIED", "Identiteten styrkt, inte beslutad"},
		{"RIGHTS_REQUEST_STATE_GRANTED", "Beviljad, inte utförd"},
		{"RIGHTS_REQUEST_STATE_FULFILLED", "Utförd och besvarad"},
		{"RIGHTS_REQUEST_STATE_REFUSED", "Avslagen"},
		{"RIGHTS_REQUEST_STATE_FORWARDED", "Vidarebefordrad till kunden"},
	}
	contactChannels = []option{
		{"CONTACT_CHANNEL_EMAIL", "E-post"},
		{"CONTACT_CHANNEL_SMS", "Sms"},
	}
	// attestMethods are the checks staff may attest; a code is confirmed
	// with its own form.
	attestMethods = []option{
		{"VERIFICATION_METHOD_BANKID", "BankID"},
		{"VERIFICATION_METHOD_IDENTITY_DOCUMENT", "Id-handling som vi har kontrollerat"},
		{"VERIFICATION_METHOD_CALL_BACK", "Återuppringning till telefonnumret i registret"},
	}
	verificationMethods = append([]option{{"VERIFICATION_METHOD_CODE", "Kod till kontaktuppgiften i registret"},
		{"VERIFICATION_METHOD_OIDC", "E-legitimation vid inloggning på den egna sidan"}}, attestMethods...)
	decisionOutcomes = []option{
		{"DECISION_OUTCOME_GRANT", "Bevilja"},
		{"DECISION_OUTCOME_GRANT_IN_PART", "Bevilja delvis"},
		{"DECISION_OUTCOME_REFUSE", "Avslå"},
	}
	decidedOutcomes = []option{
		{"DECISION_OUTCOME_GRANT", "Beviljad"},
		{"DECISION_OUTCOME_GRANT_IN_PART", "Beviljad delvis"},
		{"DECISION_OUTCOME_REFUSE", "Avslagen"},
	}
	decisionReasons = []option{
		{"DECISION_REASON_RIGHT_APPLIES", "Rätten gäller (vid bifall)"},
		{"DECISION_REASON_MANIFESTLY_UNFOUNDED", "Uppenbart ogrundad (art. 12.5)"},
		{"DECISION_REASON_EXCESSIVE", "Orimlig, särskilt för att den upprepas (art. 12.5)"},
		{"DECISION_REASON_IDENTITY_NOT_ESTABLISHED", "Identiteten har inte kunnat fastställas (art. 12.6)"},
		{"DECISION_REASON_KEPT_UNDER_LAW", "Uppgifterna måste sparas enligt lag, till exempel bokföringslagen (art. 17.3 b)"},
		{"DECISION_REASON_KEPT_FOR_LEGAL_CLAIMS", "Uppgifterna behövs för rättsliga anspråk (art. 17.3 e)"},
	}
	// erasureExceptions are the reasons that only an erasure request may
	// be refused for: the exceptions of Art. 17(3).
	erasureExceptions = []string{"DECISION_REASON_KEPT_UNDER_LAW", "DECISION_REASON_KEPT_FOR_LEGAL_CLAIMS"}
	extensionMonths   = []option{
		{"1", "1 månad"},
		{"2", "2 månader"},
	}
	// stepLabels name the steps of a request's history.
	stepLabels = map[string]string{
		"opened":        "Registrerad",
		"code_sent":     "Kod skickad",
		"code_rejected": "Fel kod angiven",
		"verified":      "Identiteten styrkt",
		"decided":       "Beslut fattat",
		"extended":      "Tidsfristen förlängd",
		"forwarded":     "Vidarebefordrad",
		"fulfilled":     "Utförd",
	}
	// missingLabels say in Swedish what the API lists as missing.
	missingLabels = map[string]string{
		"the requester's identity is not verified":                   "Den registrerades identitet är inte styrkt.",
		"no decision: grant, grant in part or refuse, with a reason": "Inget beslut: bevilja, bevilja delvis eller avslå, med skäl.",
		"not carried out and answered":                               "Förfrågan är inte utförd och besvarad.",
	}
)

// results put the API's words for a fulfilment in Swedish, where it knows
// them.
var results = []struct {
	pattern *regexp.Regexp
	swedish func(m []string) string
}{
	{regexp.MustCompile(`^access reply made ready`), func([]string) string { return "Svaret är framtaget: brevet och exporten kan laddas ner." }},
	{regexp.MustCompile(`^nothing is held about the requester`), func([]string) string { return "Inga uppgifter finns om den registrerade; svaret säger det." }},
	{regexp.MustCompile(`^rectified (.*)$`), func(m []string) string { return "Rättat: " + fieldLabelList(strings.Split(m[1], ", ")) + "." }},
	{regexp.MustCompile(`^restricted on ground (\S+)$`), func(m []string) string {
		return "Behandlingen är begränsad. Grund: " + label(restrictionGrounds, m[1]) + "."
	}},
	{regexp.MustCompile(`^erased on ground (\S+)(.*)$`), func(m []string) string {
		s := "Uppgifterna är raderade. Grund: " + erasureGroundLabel(m[1]) + "."
		for _, k := range regexp.MustCompile(`; kept under (\S+) until (\S+)`).FindAllStringSubmatch(m[2], -1) {
			s += " Sparas som enbart lagring enligt " + strings.ToLower(holdBasisLabels[pdv1.HoldBasis(pdv1.HoldBasis_value[k[1]])]) + " till " + k[2] + "."
		}
		return s
	}},
	{regexp.MustCompile(`^direct marketing stopped: (\d+) consent`), func(m []string) string {
		return "Direktmarknadsföringen är stoppad: " + m[1] + " samtycken till den återkallade."
	}},
	{regexp.MustCompile(`^consent \S+ withdrawn`), func([]string) string { return "Samtycket är återkallat." }},
}

func resultText(s string) string {
	for _, r := range results {
		if m := r.pattern.FindStringSubmatch(s); m != nil {
			return r.swedish(m)
		}
	}
	return s
}

// caseNumber is the part of a request id a requester can quote, as the
// service's messages write it.
func caseNumber(id string) string { return strings.ToUpper(id[:min(8, len(id))]) }

func requestPath(id string) string { return Prefix + "requests/" + url.PathEscape(id) }

// openRequest says whether a request in state st is not answered yet.
func openRequest(st pdv1.RightsRequestState) bool {
	switch st {
	case pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_RECEIVED, pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_VERIFIED,
		pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_GRANTED:
		return true
	}
	return false
}

// dueView is a request's due date and how near it is, in words: overdue
// and nearly due are said in text, not by colour alone.
type dueView struct {
	Date    string
	Overdue bool
	Soon    bool
	// Text says how near the date is ("5 dagar kvar"); empty when the
	// request is answered or the date is far.
	Text string
}

// newDue is r's due date as of now.
func newDue(r *pdv1.RightsRequest, now time.Time) dueView {
	d := dueView{Date: r.GetDueDate()}
	if !openRequest(r.GetState()) {
		return d
	}
	due, err := time.Parse(time.DateOnly, r.GetDueDate())
	if err != nil {
		return d
	}
	y, m, day := now.In(stockholm).Date()
	days := int(due.Sub(time.Date(y, m, day, 0, 0, 0, 0, time.UTC)).Hours() / 24)
	switch {
	case r.GetOverdue():
		d.Overdue = true
		late := max(-days, 1)
		if late == 1 {
			d.Text = "Försenad sedan 1 dag"
		} else {
			d.Text = "Försenad sedan " + strconv.Itoa(late) + " dagar"
		}
	case days <= 0:
		d.Soon, d.Text = true, "Sista dagen i dag"
	case days == 1:
		d.Soon, d.Text = true, "Sista dagen i morgon"
	case days <= nearlyDueDays:
		d.Soon, d.Text = true, strconv.Itoa(days)+" dagar kvar"
	}
	return d
}

// queueRow is one request in the queue.
type queueRow struct {
	Path, Case, Kind, State, Received, Channel, Reference, Next string
	Due                                                         dueView
}

func newQueueRow(r *pdv1.RightsRequest, now time.Time) queueRow {
	row := queueRow{
		Path:      requestPath(r.GetRequestId()),
		Case:      caseNumber(r.GetRequestId()),
		Kind:      label(requestKinds, r.GetKind().String()),
		State:     label(requestStates, r.GetState().String()),
		Received:  formatDate(r.GetReceiveTime()),
		Channel:   channelLabel(r.GetChannel()),
		Reference: r.GetReference(),
		Due:       newDue(r, now),
	}
	if openRequest(r.GetState()) {
		row.Next = nextStep(r)
	}
	return row
}

// reasonsFor are the reasons a request of kind may be decided on: the
// exceptions to erasure (Art. 17(3)) only for an erasure.
func reasonsFor(kind pdv1.RightsRequestKind) []option {
	if kind == pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ERASURE {
		return decisionReasons
	}
	return slices.DeleteFunc(slices.Clone(decisionReasons), func(o option) bool { return slices.Contains(erasureExceptions, o.Value) })
}

// nextStep is what is to be done next with an open request, in words of
// the step: the first of what the request lacks.
func nextStep(r *pdv1.RightsRequest) string {
	switch {
	case r.GetVerification() == nil && r.GetCode() != nil:
		return "Styrk identiteten: ange koden som den registrerade fått, eller gör en starkare kontroll"
	case r.GetVerification() == nil && r.GetDecision() == nil:
		return "Styrk identiteten: skicka en kod eller gör en starkare kontroll"
	case r.GetDecision() == nil:
		return "Besluta: bevilja, bevilja delvis eller avslå"
	case r.GetState() == pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_GRANTED:
		return "Utför förfrågan, så får den registrerade svaret"
	}
	return ""
}

func missingText(s string) string {
	if l, ok := missingLabels[s]; ok {
		return l
	}
	return s
}

// queueView is the queue page: its filter and the requests it finds.
type queueView struct {
	Rows []queueRow
	// Filter: the chosen state ("" for open ones, "alla"), kind, and
	// whether only overdue requests are shown.
	State, Kind string
	OverdueOnly bool
	Controller  string
	Controllers []string
	States      []option
	Kinds       []option
	// Counts of what is shown.
	Overdue, Soon int
	Truncated     bool
	MayOpen       bool
}

// requestView is a request's page.
type requestView struct {
	ID, Case, Kind, KindValue, State string
	Open                             bool
	Due                              dueView
	Received, Channel, Reference     string
	Controller                       string
	SubjectPath                      string
	Claimed, ClaimedKind             string
	Text                             string
	Missing                          []string
	Steps                            []stepView
	Code                             *codeView
	Verification                     *verificationView
	Decision                         *decisionView
	Extension                        *extensionView
	Forwarding                       *forwardingView
	Fulfilment                       *fulfilmentView
	// Earlier are the subject's other requests, to see whether this one
	// repeats them (Art. 12(5)); nil when no subject matched or the
	// principal may not list requests.
	Earlier *earlierView
	// ExtendClosed says, when no extension was made and the first month
	// has ended, that it can no longer be.
	ExtendClosed bool
	// Downloads are offered for a fulfilled access or portability request.
	Downloads bool
	LetterSV  string
	LetterEN  string
	Export    string

	// Forms of the actions valid in the request's state and granted.
	SendCode, ConfirmCode, Attest, Decide, Extend, Forward, Fulfil *form
	// What the fulfil form asks for, by the request's kind.
	FulfilAction string
	// Next is the next step, in words; "" once answered.
	Next string
	// Erased, when set, says the person's data was erased (when, and the
	// ground): no code can be sent, nor a call made, to contact details
	// that are gone.
	Erased string
	// Customers are those the forward form offers: see forwardCustomers.
	Customers []option
	// Consents are the subject's live consents, for a withdrawal.
	Consents []option
	// ConsentsUnread says the subject's consents could not be read.
	ConsentsUnread bool
	// The choices of the forms' selects.
	ContactChannels, AttestMethods, Outcomes, Reasons, Months []option
	RestrictionGrounds, ErasureGrounds                        []option
}

type stepView struct{ Step, Time, By string }

type codeView struct {
	Channel, Sent, Expires string
	TriesLeft, SentCount   int32
	Expired                bool
}

type verificationView struct{ Method, Time, By, Reference string }

type decisionView struct{ Outcome, Reason, Explanation, Time, By string }

type extensionView struct {
	Months           int32
	Reason, Time, By string
}

type forwardingView struct{ Controller, Reference, Time, By string }

type fulfilmentView struct {
	Result, Time, By string
	NothingHeld      bool
}

// maxEarlier is how many of the subject's other requests a request's page
// lists; the rest are counted.
const maxEarlier = 10

// earlierView is the subject's other requests in the same controller's
// queue, newest first.
type earlierView struct {
	Rows []earlierRow
	// More are not listed; AtLeast says the count is a floor, as the list
	// was read only in part.
	More    int
	AtLeast bool
	// Unread says they could not be read.
	Unread bool
}

type earlierRow struct {
	queueRow
	// Answered is the date of the answer: the fulfilment, the refusal or
	// the forwarding; empty while the request is open.
	Answered string
}

// newEarlierView lists rs, less the request self, newest first.
func newEarlierView(self string, rs []*pdv1.RightsRequest, truncated bool, now time.Time) *earlierView {
	rs = slices.DeleteFunc(slices.Clone(rs), func(r *pdv1.RightsRequest) bool { return r.GetRequestId() == self })
	slices.SortFunc(rs, func(a, b *pdv1.RightsRequest) int {
		if c := b.GetReceiveTime().AsTime().Compare(a.GetReceiveTime().AsTime()); c != 0 {
			return c
		}
		return strings.Compare(b.GetRequestId(), a.GetRequestId())
	})
	v := &earlierView{AtLeast: truncated}
	for i, r := range rs {
		if i == maxEarlier {
			v.More = len(rs) - maxEarlier
			break
		}
		v.Rows = append(v.Rows, earlierRow{queueRow: newQueueRow(r, now), Answered: formatDate(answerTime(r))})
	}
	return v
}

// answerTime is when r was answered, nil while it is open.
func answerTime(r *pdv1.RightsRequest) *timestamppb.Timestamp {
	switch r.GetState() {
	case pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_FULFILLED:
		return r.GetFulfilment().GetFulfilTime()
	case pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_REFUSED:
		return r.GetDecision().GetDecideTime()
	case pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_FORWARDED:
		return r.GetForwarding().GetForwardTime()
	}
	return nil
}

// earlierController is the queue in which a request's page looks for the
// subject's other requests: the request's controller, or, for a customer,
// its own queue the request was forwarded to; "" when the principal acts
// for neither ("*" acts for all).
func earlierController(r *pdv1.RightsRequest, tenants []string) string {
	if slices.Contains(tenants, r.GetControllerId()) || slices.Contains(tenants, "*") {
		return r.GetControllerId()
	}
	if f := r.GetForwarding().GetControllerId(); f != "" && slices.Contains(tenants, f) {
		return f
	}
	return ""
}

// Methods of the rights-request workflow whose grant decides which forms a
// request's page offers; the service decides again when a form is sent.
const (
	openRequestRPC = pdv1.RightsRequestService_OpenRightsRequest_FullMethodName
	sendCodeRPC    = pdv1.RightsRequestService_SendVerificationCode_FullMethodName
	confirmCodeRPC = pdv1.RightsRequestService_ConfirmVerificationCode_FullMethodName
	attestRPC      = pdv1.RightsRequestService_AttestIdentity_FullMethodName
	decideRPC      = pdv1.RightsRequestService_DecideRightsRequest_FullMethodName
	extendRPC      = pdv1.RightsRequestService_ExtendRightsRequest_FullMethodName
	forwardRPC     = pdv1.RightsRequestService_ForwardRightsRequest_FullMethodName
	fulfilRPC      = pdv1.RightsRequestService_FulfilRightsRequest_FullMethodName
	replyRPC       = pdv1.RightsRequestService_GetRightsRequestReply_FullMethodName
	letterRPC      = pdv1.RightsRequestService_GetRightsRequestLetter_FullMethodName
	listRPC        = pdv1.RightsRequestService_ListRightsRequests_FullMethodName
)

// fulfilActions is what the fulfil form asks for, by kind: the action the
// service requires for it.
var fulfilActions = map[pdv1.RightsRequestKind]string{
	pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS:                     "access",
	pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_PORTABILITY:                "access",
	pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_RECTIFICATION:              "rectify",
	pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_RESTRICTION:                "restrict",
	pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ERASURE:                    "erase",
	pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_DIRECT_MARKETING_OBJECTION: "stop_direct_marketing",
	pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_CONSENT_WITHDRAWAL:         "withdraw_consent",
	pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_OBJECTION:                  "restrict",
}

// newRequestViewOf is r's page as of now, with the forms rpcs allow in its
// state; consents are the subject's, read for a consent withdrawal, and
// subject its record (nil when it was not read): an erased one has no
// contact details left to verify the identity with.
func newRequestViewOf(r *pdv1.RightsRequest, now time.Time, rpcs []string, consents []*pdv1.Consent, consentsUnread bool,
	subject *pdv1.Subject, state *formState) *requestView {
	id := r.GetRequestId()
	v := &requestView{
		ID:                 id,
		Case:               caseNumber(id),
		Kind:               label(requestKinds, r.GetKind().String()),
		KindValue:          r.GetKind().String(),
		State:              label(requestStates, r.GetState().String()),
		Open:               openRequest(r.GetState()),
		Due:                newDue(r, now),
		Received:           formatTimestamp(r.GetReceiveTime()),
		Channel:            channelLabel(r.GetChannel()),
		Reference:          r.GetReference(),
		Controller:         r.GetControllerId(),
		Text:               r.GetText(),
		ContactChannels:    contactChannels,
		AttestMethods:      attestMethods,
		Outcomes:           decisionOutcomes,
		Reasons:            reasonsFor(r.GetKind()),
		Months:             extensionMonths,
		RestrictionGrounds: restrictionGrounds,
		ErasureGrounds:     erasureGrounds,
		ConsentsUnread:     consentsUnread,
	}
	if openRequest(r.GetState()) {
		v.Next = nextStep(r)
	}
	if e := subject.GetErasure(); e != nil && subject.GetState() == pdv1.SubjectState_SUBJECT_STATE_ERASED {
		v.Erased = "Personens uppgifter raderades " + formatTimestamp(e.GetEraseTime()) + " (grund: " + strings.ToLower(erasureGroundLabel(e.GetGround().String())) + ")."
		if r.GetVerification() == nil && r.GetDecision() == nil {
			v.Next = "Styrk identiteten med BankID eller id-handling, eller avslå förfrågan"
		}
	}
	if sid := r.GetSubjectId(); sid != "" {
		v.SubjectPath = subjectPath(sid) + "?forfragan=" + url.PathEscape(id)
	}
	switch c := r.GetClaimedIdentity().GetKey().(type) {
	case *pdv1.ClaimedIdentity_IdentityNumber:
		v.Claimed, v.ClaimedKind = formatIdentityNumber(c.IdentityNumber), "Personnummer"
	case *pdv1.ClaimedIdentity_Email:
		v.Claimed, v.ClaimedKind = displayEmail(c.Email), "E-post"
	}
	for _, m := range r.GetMissing() {
		v.Missing = append(v.Missing, missingText(m))
	}
	for _, st := range r.GetSteps() {
		name, ok := stepLabels[st.GetStep()]
		if !ok {
			name = st.GetStep()
		}
		v.Steps = append(v.Steps, stepView{Step: name, Time: formatTimestamp(st.GetStepTime()), By: st.GetPerformedBy()})
	}
	if c := r.GetCode(); c != nil {
		v.Code = &codeView{Channel: label(contactChannels, c.GetChannel().String()), Sent: formatTimestamp(c.GetSendTime()),
			Expires: formatTimestamp(c.GetExpireTime()), TriesLeft: c.GetTriesLeft(), SentCount: c.GetSentCount(),
			Expired: now.After(c.GetExpireTime().AsTime())}
	}
	if x := r.GetVerification(); x != nil {
		v.Verification = &verificationView{Method: label(verificationMethods, x.GetMethod().String()), Time: formatTimestamp(x.GetVerifyTime()),
			By: x.GetVerifiedBy(), Reference: x.GetReference()}
	}
	if d := r.GetDecision(); d != nil {
		v.Decision = &decisionView{Outcome: label(decidedOutcomes, d.GetOutcome().String()), Reason: strings.TrimSuffix(label(decisionReasons, d.GetReason().String()), " (vid bifall)"),
			Explanation: d.GetExplanation(), Time: formatTimestamp(d.GetDecideTime()), By: d.GetDecidedBy()}
	}
	if e := r.GetExtension(); e != nil {
		v.Extension = &extensionView{Months: e.GetMonths(), Reason: e.GetReason(), Time: formatTimestamp(e.GetExtendTime()), By: e.GetExtendedBy()}
	}
	if f := r.GetForwarding(); f != nil {
		v.Forwarding = &forwardingView{Controller: f.GetControllerId(), Reference: f.GetReference(), Time: formatTimestamp(f.GetForwardTime()), By: f.GetForwardedBy()}
	}
	if f := r.GetFulfilment(); f != nil {
		v.Fulfilment = &fulfilmentView{Result: resultText(f.GetResult()), Time: formatTimestamp(f.GetFulfilTime()), By: f.GetFulfilledBy(), NothingHeld: f.GetNothingHeld()}
	}
	action := fulfilActions[r.GetKind()]
	if r.GetState() == pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_FULFILLED && action == "access" {
		v.Downloads = mayCall(rpcs, letterRPC) || mayCall(rpcs, replyRPC)
		base := requestPath(id)
		if mayCall(rpcs, letterRPC) {
			v.LetterSV, v.LetterEN = base+"/letter/sv", base+"/letter/en"
		}
		if mayCall(rpcs, replyRPC) {
			v.Export = base + "/export"
		}
	}
	for _, c := range consents {
		if c.GetWithdrawTime() != nil {
			continue
		}
		what := "Direktmarknadsföring"
		if c.GetPurpose() == pdv1.ConsentPurpose_CONSENT_PURPOSE_DISCLOSURE {
			what = "Utlämnande till " + c.GetRecipient()
		}
		what += ", givet " + formatTimestamp(c.GetGiveTime())
		if w := c.GetWordingReference(); w != "" {
			what += " (formulering " + w + ")"
		}
		v.Consents = append(v.Consents, option{Value: c.GetConsentId(), Label: what})
	}

	if !v.Open {
		return v
	}
	base := requestPath(id)
	verified := r.GetVerification() != nil
	if !verified {
		// An erased person's e-mail address and phone number are gone: no
		// code can reach them, nor a call back.
		if mayCall(rpcs, sendCodeRPC) && v.Erased == "" {
			v.SendCode = newForm("send-code", base+"/send-code", state)
		}
		if v.Erased != "" {
			v.AttestMethods = slices.DeleteFunc(slices.Clone(attestMethods), func(o option) bool { return o.Value == "VERIFICATION_METHOD_CALL_BACK" })
		}
		if mayCall(rpcs, confirmCodeRPC) && r.GetCode() != nil {
			v.ConfirmCode = newForm("confirm-code", base+"/confirm-code", state)
		}
		if mayCall(rpcs, attestRPC) {
			v.Attest = newForm("attest", base+"/attest", state)
		}
	}
	if r.GetDecision() == nil && mayCall(rpcs, decideRPC) {
		v.Decide = newForm("decide", base+"/decide", state)
		if !verified {
			// Only a refusal needs no verified identity.
			v.Outcomes = decisionOutcomes[2:]
		}
	}
	if r.GetExtension() == nil && mayCall(rpcs, extendRPC) {
		if r.GetOverdue() {
			v.ExtendClosed = true
		} else {
			v.Extend = newForm("extend", base+"/extend", state)
		}
	}
	if mayCall(rpcs, forwardRPC) && r.GetControllerId() == "company" {
		v.Forward = newForm("forward", base+"/forward", state)
	}
	if r.GetState() == pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_GRANTED && mayCall(rpcs, fulfilRPC) {
		v.Fulfil = newForm("fulfil", base+"/fulfil", state)
		v.FulfilAction = action
	}
	return v
}

// validRequestID says whether s could be a request id, before it goes in
// a link: the ids are opaque, lower-case letters and digits.
var requestIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

func validRequestID(s string) bool { return requestIDPattern.MatchString(s) }

// enumName says whether name is one of values' names, other than the
// unspecified zero.
func enumName(values map[string]int32, name string) bool {
	n, ok := values[name]
	return ok && n != 0
}

// openStates are the states of a request not answered, as the queue shows
// them by default.
var openStates = []pdv1.RightsRequestState{
	pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_RECEIVED,
	pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_VERIFIED,
	pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_GRANTED,
}

// preferredController is the controller whose queue a principal sees first:
// the company's, when it acts for it.
func preferredController(tenants []string) string {
	if slices.Contains(tenants, "company") || len(tenants) == 0 {
		return "company"
	}
	return tenants[0]
}
