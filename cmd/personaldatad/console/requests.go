package console

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// The queue reads up to maxQueuePages pages of queuePageSize requests: the
// page token stays out of the URL, and a longer queue is narrowed by its
// filters.
const (
	queuePageSize = 100
	maxQueuePages = 5
)

// datetimeLocal is the format of an <input type="datetime-local">.
const datetimeLocal = "2006-01-02T15:04"

// requestNotices are the confirmations after a step, by the query
// parameter klart (never anything personal).
var requestNotices = map[string]string{
	"oppnad":          "Förfrågan är registrerad. Den registrerade får ett mottagningsbesked med sista svarsdag, om det finns en adress att skicka det till.",
	"kod-skickad":     "Koden är skickad till kontaktuppgiften i registret. Be den registrerade lämna tillbaka den, och ange den nedan.",
	"verifierad":      "Identiteten är styrkt.",
	"beslutad":        "Beslutet är registrerat. Den registrerade får besked om det.",
	"forlangd":        "Tidsfristen är förlängd. Den registrerade får veta varför och när svaret kommer.",
	"vidarebefordrad": "Förfrågan är vidarebefordrad till kunden. Den registrerade får besked om det.",
	"utford":          "Förfrågan är utförd. Den registrerade får besked om det.",
}

// queuePage lists the requests of a controller by due date, filtered by
// the query's state, kind and overdue flag (enum names only).
func (c *Console) queuePage(w http.ResponseWriter, r *http.Request, s *session) {
	p, err := c.caller(r, s)
	if err != nil {
		if !c.refused(w, r, s, err) {
			c.fail(w, r, s, apiProblem(err, nil))
		}
		return
	}
	q := r.URL.Query()
	tenants := p.GetTenantIds()
	v := &queueView{States: requestStates, Kinds: requestKinds, Controllers: tenants, MayOpen: mayCall(p.GetRpcs(), openRequestRPC),
		Controller: preferredController(tenants)}
	if a := q.Get("ansvarig"); slices.Contains(tenants, a) {
		v.Controller = a
	}
	req := &pdv1.ListRightsRequestsRequest{ControllerId: v.Controller}
	switch st := q.Get("status"); {
	case st == "alla":
		v.State = st
	case enumName(pdv1.RightsRequestState_value, st):
		v.State = st
		req.States = []pdv1.RightsRequestState{pdv1.RightsRequestState(pdv1.RightsRequestState_value[st])}
	default:
		req.States = openStates
	}
	if k := q.Get("slag"); enumName(pdv1.RightsRequestKind_value, k) {
		v.Kind = k
		req.Kinds = []pdv1.RightsRequestKind{pdv1.RightsRequestKind(pdv1.RightsRequestKind_value[k])}
	}
	if q.Get("forsenade") == "ja" {
		v.OverdueOnly, req.OverdueOnly = true, true
	}
	list, truncated, err := c.listRequests(r, s, req)
	if err != nil {
		if !c.refused(w, r, s, err) {
			c.fail(w, r, s, apiProblem(err, nil))
		}
		return
	}
	v.Truncated = truncated
	now := c.now()
	for _, rr := range list {
		row := newQueueRow(rr, now)
		if row.Due.Overdue {
			v.Overdue++
		} else if row.Due.Soon {
			v.Soon++
		}
		v.Rows = append(v.Rows, row)
	}
	c.render(w, r, http.StatusOK, "requests", &page{Title: "Förfrågningar", Section: Prefix + "requests",
		Principal: s.PrincipalID, CSRF: s.CSRF, Data: v})
}

// openData is the form of a new request.
type openData struct {
	Form        *form
	Controllers []string
	Controller  string
	Kinds       []option
	Channels    []option
	// Now is the time received the form suggests, and its latest.
	Now string
}

func (c *Console) newRequestPage(w http.ResponseWriter, r *http.Request, s *session) {
	c.renderNewRequest(w, r, s, http.StatusOK, nil)
}

func (c *Console) renderNewRequest(w http.ResponseWriter, r *http.Request, s *session, code int, state *formState) {
	p, err := c.caller(r, s)
	if err != nil {
		if !c.refused(w, r, s, err) {
			c.fail(w, r, s, apiProblem(err, nil))
		}
		return
	}
	pg := &page{Title: "Ny förfrågan", Section: Prefix + "requests", Principal: s.PrincipalID, CSRF: s.CSRF,
		Data: openData{Form: newForm("open", Prefix+"requests/new", state), Controllers: p.GetTenantIds(),
			Controller: preferredController(p.GetTenantIds()), Kinds: requestKinds, Channels: channels,
			Now: c.now().In(stockholm).Format(datetimeLocal)}}
	if state != nil {
		pg.Problem = state.Problem
	}
	c.render(w, r, code, "request-new", pg)
}

var openFields = apiFields{
	"controller_id":                    {"open-controller", "Personuppgiftsansvarig"},
	"kind":                             {"open-kind", "Vad den registrerade begär"},
	"channel":                          {"open-channel", "Hur förfrågan kom in"},
	"receive_time":                     {"open-receive_time", "När den kom in"},
	"claimed_identity":                 {"open-claimed", "Personnummer eller e-postadress"},
	"claimed_identity.identity_number": {"open-claimed", "Personnumret"},
	"claimed_identity.email":           {"open-claimed", "E-postadressen"},
	"text":                             {"open-text", "Förfrågan med den registrerades ord"},
	"reference":                        {"open-reference", "Referens"},
	"reply_email":                      {"open-reply_email", "Svarsadressen"},
}

// openRequest records a request as it arrived; the claimed identity and the
// words go in the POST body only.
func (c *Console) openRequest(w http.ResponseWriter, r *http.Request, s *session) {
	v := r.PostForm
	refuse := func(pr *problem) {
		c.renderNewRequest(w, r, s, pr.Status, &formState{Name: "open", Values: v, Problem: pr})
	}
	if !cleanForm(v) {
		refuse(&problem{Status: http.StatusBadRequest, Message: "Formuläret innehöll tecken som inte går att läsa."})
		return
	}
	var bad []fieldProblem
	received, err := time.ParseInLocation(datetimeLocal, strings.TrimSpace(v.Get("receive_time")), stockholm)
	if err != nil {
		bad = append(bad, fieldProblem{ID: "open-receive_time", Label: "När den kom in", Message: "ska vara en tidpunkt, som 2026-11-27 11:00"})
	}
	claimed := strings.TrimSpace(v.Get("claimed"))
	ci := &pdv1.ClaimedIdentity{}
	switch {
	case claimed == "":
		bad = append(bad, fieldProblem{ID: "open-claimed", Label: "Personnummer eller e-postadress", Message: "måste fyllas i"})
	case strings.Contains(claimed, "@"):
		ci.Key = &pdv1.ClaimedIdentity_Email{Email: claimed}
	default:
		ci.Key = &pdv1.ClaimedIdentity_IdentityNumber{IdentityNumber: claimed}
	}
	if len(bad) > 0 {
		refuse(&problem{Status: http.StatusBadRequest, Message: "Några uppgifter är inte giltiga. Rätta fälten som anges nedan och skicka igen.", Fields: bad})
		return
	}
	ctx, cancel := s.call(r.Context())
	defer cancel()
	res, err := c.requests.OpenRightsRequest(ctx, &pdv1.OpenRightsRequestRequest{
		IdempotencyKey:  v.Get("idempotency_key"),
		ControllerId:    v.Get("controller"),
		Kind:            enumOf[pdv1.RightsRequestKind](pdv1.RightsRequestKind_value, v.Get("kind")),
		Channel:         enumOf[pdv1.Channel](pdv1.Channel_value, v.Get("channel")),
		ReceiveTime:     timestamppb.New(received),
		ClaimedIdentity: ci,
		Text:            v.Get("text"),
		Reference:       strings.TrimSpace(v.Get("reference")),
		ReplyEmail:      strings.TrimSpace(v.Get("reply_email")),
	})
	if err != nil {
		if !c.refused(w, r, s, err) {
			refuse(eitherForm(requestProblem(err, openFields), "open-claimed"))
		}
		return
	}
	http.Redirect(w, r, requestPath(res.GetRequest().GetRequestId())+"?klart=oppnad", http.StatusSeeOther)
}

// requestProblem is apiProblem with the words of the request pages for a
// request that is not there.
func requestProblem(err error, fields apiFields) *problem {
	pr := apiProblem(err, fields)
	if status.Code(err) == codes.NotFound && pr.Status == http.StatusNotFound {
		pr.Message = "Förfrågan, eller personen den gäller, finns inte, eller hör till en personuppgiftsansvarig du inte arbetar för."
	}
	return pr
}

func (c *Console) requestPage(w http.ResponseWriter, r *http.Request, s *session) {
	c.renderRequest(w, r, s, http.StatusOK, &page{Notice: requestNotices[r.URL.Query().Get("klart")]}, nil)
}

// renderRequest shows a request's page; state, when set, is a refused
// submission of one of its forms.
func (c *Console) renderRequest(w http.ResponseWriter, r *http.Request, s *session, code int, pg *page, state *formState) {
	ctx, cancel := s.call(r.Context())
	defer cancel()
	res, err := c.requests.GetRightsRequest(ctx, &pdv1.GetRightsRequestRequest{RequestId: r.PathValue("id")})
	var p *pdv1.Principal
	if err == nil {
		p, err = c.caller(r, s)
	}
	if err != nil {
		if c.refused(w, r, s, err) {
			return
		}
		pr := requestProblem(err, nil)
		if status.Code(err) == codes.InvalidArgument {
			pr = problemNotFound()
		}
		c.fail(w, r, s, pr)
		return
	}
	rr := res.GetRequest()
	// A consent withdrawal is fulfilled by naming the consent: the
	// subject's consents are read for the form, only then.
	var consents []*pdv1.Consent
	unread := false
	if rr.GetKind() == pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_CONSENT_WITHDRAWAL && rr.GetSubjectId() != "" &&
		rr.GetState() == pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_GRANTED {
		doc, _, err := c.access(r, s, rr.GetSubjectId())
		if err != nil {
			if c.refused(w, r, s, err) {
				return
			}
			unread = true
		}
		consents = doc.GetConsents()
	}
	var earlier *earlierView
	if controller := earlierController(rr, p.GetTenantIds()); rr.GetSubjectId() != "" && controller != "" && mayCall(p.GetRpcs(), listRPC) {
		list, truncated, err := c.listRequests(r, s, &pdv1.ListRightsRequestsRequest{ControllerId: controller, SubjectId: rr.GetSubjectId()})
		if err != nil {
			if c.refused(w, r, s, err) {
				return
			}
			c.log.WarnContext(r.Context(), "console: the subject's requests", slog.String("code", status.Code(err).String()))
			earlier = &earlierView{Unread: true}
		} else {
			earlier = newEarlierView(rr.GetRequestId(), list, truncated, c.now())
		}
	}
	// Whether the person's data is erased decides how the identity can be
	// verified: read only while that is still to be done.
	var subject *pdv1.Subject
	if rr.GetSubjectId() != "" && openRequest(rr.GetState()) && rr.GetVerification() == nil {
		ctx, cancel := s.call(r.Context())
		doc, err := c.subjects.AccessSubject(ctx, &pdv1.AccessSubjectRequest{SubjectId: rr.GetSubjectId()})
		cancel()
		if c.refused(w, r, s, err) {
			return
		}
		subject = doc.GetSubject() // nil when it could not be read: every way is offered
	}
	pg.Title, pg.Section, pg.Principal, pg.CSRF = "Förfrågan", Prefix+"requests", s.PrincipalID, s.CSRF
	if state != nil {
		pg.Problem = state.Problem
	}
	v := newRequestViewOf(rr, c.now(), p.GetRpcs(), consents, unread, subject, state)
	v.Earlier = earlier
	if v.Forward != nil {
		customers, err := c.forwardCustomers(r, s, p.GetTenantIds())
		if c.refused(w, r, s, err) {
			return
		}
		v.Customers = customers
	}
	pg.Data = v
	c.render(w, r, code, "request", pg)
}

// listRequests reads the requests req asks for as the signed-in principal
// (and so audited under it), up to maxQueuePages pages; truncated says
// there were more.
func (c *Console) listRequests(r *http.Request, s *session, req *pdv1.ListRightsRequestsRequest) (list []*pdv1.RightsRequest, truncated bool, err error) {
	ctx, cancel := s.call(r.Context())
	defer cancel()
	req.PageSize = queuePageSize
	for page := 0; ; page++ {
		if page == maxQueuePages {
			return list, true, nil
		}
		res, err := c.requests.ListRightsRequests(ctx, req)
		if err != nil {
			return nil, false, err
		}
		list = append(list, res.GetRequests()...)
		if req.PageToken = res.GetNextPageToken(); req.PageToken == "" {
			return list, false, nil
		}
	}
}

// requestAct runs a step's RPC, which says which notice its success shows.
// A refusal shows the request's page again with the form as sent and what
// was wrong; success leads back to the page (Post/Redirect/Get).
func (c *Console) requestAct(w http.ResponseWriter, r *http.Request, s *session, name string, fields apiFields, rpc func(ctx context.Context, id string) (done string, err error)) {
	ctx, cancel := s.call(r.Context())
	done, err := rpc(ctx, r.PathValue("id"))
	cancel()
	if err == nil {
		http.Redirect(w, r, requestPath(r.PathValue("id"))+"?klart="+done, http.StatusSeeOther)
		return
	}
	if c.refused(w, r, s, err) {
		return
	}
	pr := requestProblem(err, fields)
	if pr.Status >= 500 {
		c.log.WarnContext(r.Context(), "console: request step failed", slog.String("step", name), slog.String("code", pr.Code))
	}
	c.invalidRequest(w, r, s, name, pr)
}

// invalidRequest shows a request's form again with what was wrong.
func (c *Console) invalidRequest(w http.ResponseWriter, r *http.Request, s *session, name string, pr *problem) {
	c.renderRequest(w, r, s, pr.Status, &page{}, &formState{Name: name, Values: r.PostForm, Problem: pr})
}

func (c *Console) sendCode(w http.ResponseWriter, r *http.Request, s *session) {
	v := r.PostForm
	c.requestAct(w, r, s, "send-code", apiFields{"channel": {"send-code-channel", "Skicka med"}}, func(ctx context.Context, id string) (string, error) {
		_, err := c.requests.SendVerificationCode(ctx, &pdv1.SendVerificationCodeRequest{
			IdempotencyKey: v.Get("idempotency_key"),
			RequestId:      id,
			Channel:        enumOf[pdv1.ContactChannel](pdv1.ContactChannel_value, v.Get("channel")),
		})
		return "kod-skickad", err
	})
}

func (c *Console) confirmCode(w http.ResponseWriter, r *http.Request, s *session) {
	v := r.PostForm
	c.requestAct(w, r, s, "confirm-code", apiFields{"code": {"confirm-code-code", "Koden"}}, func(ctx context.Context, id string) (string, error) {
		_, err := c.requests.ConfirmVerificationCode(ctx, &pdv1.ConfirmVerificationCodeRequest{
			IdempotencyKey: codeKey(s.CSRF, v.Get("idempotency_key"), v.Get("code")),
			RequestId:      id,
			Code:           v.Get("code"),
		})
		return "verifierad", err
	})
}

// codeKey is the idempotency key of one code typed into the form: the
// form's key with the code's digits, keyed-hashed with the session's secret
// (keys are no place for a code). A wrong code is recorded under its key, so
// the form shown again (with the same key) would otherwise refuse the
// corrected code as the key used with another request; the same code sent
// twice (a double click, a resend) is one call.
func codeKey(secret, formKey, code string) string {
	if formKey == "" {
		return "" // refused as missing, naming the field
	}
	digits := strings.Map(func(r rune) rune {
		if r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, code)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(formKey + "\x00" + digits))
	return formKey + ".code." + hex.EncodeToString(mac.Sum(nil)[:12])
}

func (c *Console) attest(w http.ResponseWriter, r *http.Request, s *session) {
	v := r.PostForm
	fields := apiFields{"method": {"attest-method", "Hur identiteten styrktes"}, "reference": {"attest-reference", "Kontrollens referens"}}
	c.requestAct(w, r, s, "attest", fields, func(ctx context.Context, id string) (string, error) {
		_, err := c.requests.AttestIdentity(ctx, &pdv1.AttestIdentityRequest{
			IdempotencyKey: v.Get("idempotency_key"),
			RequestId:      id,
			Method:         enumOf[pdv1.VerificationMethod](pdv1.VerificationMethod_value, v.Get("method")),
			Reference:      strings.TrimSpace(v.Get("reference")),
		})
		return "verifierad", err
	})
}

func (c *Console) decide(w http.ResponseWriter, r *http.Request, s *session) {
	v := r.PostForm
	fields := apiFields{"outcome": {"decide-outcome", "Beslut"}, "reason": {"decide-reason", "Skäl"},
		"explanation": {"decide-explanation", "Förklaring till den registrerade"}}
	c.requestAct(w, r, s, "decide", fields, func(ctx context.Context, id string) (string, error) {
		_, err := c.requests.DecideRightsRequest(ctx, &pdv1.DecideRightsRequestRequest{
			IdempotencyKey: v.Get("idempotency_key"),
			RequestId:      id,
			Outcome:        enumOf[pdv1.DecisionOutcome](pdv1.DecisionOutcome_value, v.Get("outcome")),
			Reason:         enumOf[pdv1.DecisionReason](pdv1.DecisionReason_value, v.Get("reason")),
			Explanation:    v.Get("explanation"),
		})
		return "beslutad", err
	})
}

func (c *Console) extend(w http.ResponseWriter, r *http.Request, s *session) {
	v := r.PostForm
	months, _ := strconv.Atoi(v.Get("months")) // anything else is 0, which the service refuses
	fields := apiFields{"months": {"extend-months", "Förlängningen"}, "reason": {"extend-reason", "Skälet"}}
	c.requestAct(w, r, s, "extend", fields, func(ctx context.Context, id string) (string, error) {
		_, err := c.requests.ExtendRightsRequest(ctx, &pdv1.ExtendRightsRequestRequest{
			IdempotencyKey: v.Get("idempotency_key"),
			RequestId:      id,
			Months:         int32(min(max(months, 0), 12)),
			Reason:         v.Get("reason"),
		})
		return "forlangd", err
	})
}

// forwardCustomers are the customers the forward form offers to choose
// among. Support staff may not read the processor agreements (issue 23:
// least privilege; service/auth/grants.md), and no RPC lists the customers
// that have one, so the list is derived from what they may read: the
// customers they act for, and those the company's requests were forwarded
// to before, which the service accepted only with an agreement on record.
// Any other customer is typed in; the service refuses one without an
// agreement (NO_PROCESSOR_AGREEMENT), and the page says so in Swedish.
func (c *Console) forwardCustomers(r *http.Request, s *session, tenants []string) ([]option, error) {
	seen := map[string]bool{}
	var out []option
	add := func(id string) {
		if id == "" || id == "company" || id == "*" || seen[id] {
			return
		}
		seen[id] = true
		out = append(out, option{Value: id, Label: "Kunden " + id})
	}
	for _, t := range tenants {
		add(t)
	}
	if slices.Contains(tenants, "company") || slices.Contains(tenants, "*") {
		list, _, err := c.listRequests(r, s, &pdv1.ListRightsRequestsRequest{ControllerId: "company",
			States: []pdv1.RightsRequestState{pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_FORWARDED}})
		if status.Code(err) == codes.Unauthenticated {
			return nil, err
		}
		for _, rr := range list { // none on another error: the field still takes any
			add(rr.GetForwarding().GetControllerId())
		}
	}
	slices.SortFunc(out, func(a, b option) int { return strings.Compare(a.Value, b.Value) })
	return out, nil
}

// otherCustomer is the forward form's choice of a customer not listed.
const otherCustomer = "annan"

func (c *Console) forward(w http.ResponseWriter, r *http.Request, s *session) {
	v := r.PostForm
	customer := strings.TrimSpace(v.Get("customer"))
	if customer == "" || customer == otherCustomer {
		customer = strings.TrimSpace(v.Get("controller_id"))
	}
	if customer == "" {
		c.invalidRequest(w, r, s, "forward", &problem{Status: http.StatusBadRequest,
			Message: "Välj kunden som förfrågan ska till, eller skriv kundens id.",
			Fields:  []fieldProblem{{ID: "forward-customer", Label: "Kunden", Message: "måste väljas"}}})
		return
	}
	fields := apiFields{"controller_id": {"forward-customer", "Kunden"}, "reference": {"forward-reference", "Referens"}}
	if v.Get("customer") == otherCustomer || v.Get("customer") == "" {
		fields["controller_id"] = fieldRef{"forward-controller_id", "Kundens id"}
	}
	c.requestAct(w, r, s, "forward", fields, func(ctx context.Context, id string) (string, error) {
		_, err := c.requests.ForwardRightsRequest(ctx, &pdv1.ForwardRightsRequestRequest{
			IdempotencyKey: v.Get("idempotency_key"),
			RequestId:      id,
			ControllerId:   customer,
			Reference:      strings.TrimSpace(v.Get("reference")),
		})
		return "vidarebefordrad", err
	})
}

// fulfilFields are the fulfil form's fields: the person's, for a
// rectification, and the ground or consent of the other kinds.
func fulfilFields() apiFields {
	f := personFields("fulfil")
	f["ground"] = fieldRef{"fulfil-ground", "Grund"}
	f["restrict.ground"] = fieldRef{"fulfil-ground", "Grund"}
	f["erase.ground"] = fieldRef{"fulfil-ground", "Grund"}
	f["consent_id"] = fieldRef{"fulfil-consent_id", "Samtycket"}
	f["withdraw_consent.consent_id"] = fieldRef{"fulfil-consent_id", "Samtycket"}
	return f
}

// fulfil carries out a granted request with its kind's action, which the
// form names.
func (c *Console) fulfil(w http.ResponseWriter, r *http.Request, s *session) {
	v := r.PostForm
	if !cleanForm(v) {
		c.invalidRequest(w, r, s, "fulfil", &problem{Status: http.StatusBadRequest, Message: "Formuläret innehöll tecken som inte går att läsa."})
		return
	}
	req := &pdv1.FulfilRightsRequestRequest{IdempotencyKey: v.Get("idempotency_key")}
	switch v.Get("action") {
	case "access":
		req.Action = &pdv1.FulfilRightsRequestRequest_Access{Access: &pdv1.AccessAction{}}
	case "rectify":
		person, mask := rectification(v)
		if len(mask) == 0 {
			c.invalidRequest(w, r, s, "fulfil", &problem{Status: http.StatusBadRequest,
				Message: "Fyll i de uppgifter som ska rättas. Inget fält var ifyllt, så ingenting gjordes."})
			return
		}
		req.Action = &pdv1.FulfilRightsRequestRequest_Rectify{Rectify: &pdv1.RectifyAction{Person: person, UpdateMask: &fieldmaskpb.FieldMask{Paths: mask}}}
	case "restrict":
		req.Action = &pdv1.FulfilRightsRequestRequest_Restrict{Restrict: &pdv1.RestrictAction{
			Ground: enumOf[pdv1.RestrictionGround](pdv1.RestrictionGround_value, v.Get("ground"))}}
	case "erase":
		if v.Get("confirm") == "" {
			c.invalidRequest(w, r, s, "fulfil", &problem{Status: http.StatusBadRequest,
				Message: "Bekräfta raderingen genom att kryssa i rutan.",
				Fields:  []fieldProblem{{ID: "fulfil-confirm", Label: "Rutan", Message: "måste kryssas i"}}})
			return
		}
		req.Action = &pdv1.FulfilRightsRequestRequest_Erase{Erase: &pdv1.EraseAction{
			Ground: enumOf[pdv1.ErasureGround](pdv1.ErasureGround_value, v.Get("ground"))}}
	case "stop_direct_marketing":
		req.Action = &pdv1.FulfilRightsRequestRequest_StopDirectMarketing{StopDirectMarketing: &pdv1.StopDirectMarketingAction{}}
	case "withdraw_consent":
		req.Action = &pdv1.FulfilRightsRequestRequest_WithdrawConsent{WithdrawConsent: &pdv1.WithdrawConsentAction{ConsentId: v.Get("consent_id")}}
	default:
		c.invalidRequest(w, r, s, "fulfil", &problem{Status: http.StatusBadRequest, Message: "Formuläret gick inte att läsa. Läs in sidan igen."})
		return
	}
	c.requestAct(w, r, s, "fulfil", fulfilFields(), func(ctx context.Context, id string) (string, error) {
		req.RequestId = id
		_, err := c.requests.FulfilRightsRequest(ctx, req)
		return "utford", err
	})
}

// rectification is what a rectification request's form changes: the
// fields filled in, each a path of the mask; the address is one path,
// changed when any of its fields is filled in.
func rectification(v map[string][]string) (*pdv1.Person, []string) {
	get := func(k string) string {
		if vs := v[k]; len(vs) > 0 {
			return strings.TrimSpace(vs[0])
		}
		return ""
	}
	p := &pdv1.Person{}
	var mask []string
	for _, in := range rectifyInputs {
		val := get(in)
		if val == "" {
			continue
		}
		mask = append(mask, in)
		switch in {
		case "identity_number":
			p.IdentityNumber = val
		case "given_name":
			p.GivenName = val
		case "family_name":
			p.FamilyName = val
		case "email":
			p.Email = val
		case "phone":
			p.Phone = val
		}
	}
	a := &pdv1.PostalAddress{PostalCode: get("postal_code"), Locality: get("locality"), CountryCode: get("country_code")}
	for _, l := range []string{"line1", "line2", "line3"} {
		if line := get(l); line != "" {
			a.Lines = append(a.Lines, line)
		}
	}
	if len(a.Lines) > 0 || a.PostalCode != "" || a.Locality != "" || a.CountryCode != "" {
		mask = append(mask, "postal_address")
		p.PostalAddress = a
	}
	return p, mask
}

// letter serves the reply letter of a fulfilled access or portability
// request, in Swedish or English, as a file to save.
func (c *Console) letter(w http.ResponseWriter, r *http.Request, s *session) {
	lang := r.PathValue("lang")
	if lang != "sv" && lang != "en" {
		c.notFound(w, r)
		return
	}
	id := r.PathValue("id")
	ctx, cancel := s.call(r.Context())
	defer cancel()
	body, err := c.requests.GetRightsRequestLetter(ctx, &pdv1.GetRightsRequestLetterRequest{RequestId: id, Language: lang})
	if err != nil {
		c.downloadRefused(w, r, s, err)
		return
	}
	attachment(w, body.GetContentType(), "svar-"+caseNumber(id)+"-"+lang+".html", body.GetData())
}

// exportJSON is the export's form: the API's JSON, as the REST gateway
// writes it.
var exportJSON = protojson.MarshalOptions{UseProtoNames: true}

// export serves the machine-readable reply (GetRightsRequestReply) as a
// JSON file to save.
func (c *Console) export(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	ctx, cancel := s.call(r.Context())
	defer cancel()
	reply, err := c.requests.GetRightsRequestReply(ctx, &pdv1.GetRightsRequestReplyRequest{RequestId: id})
	if err != nil {
		c.downloadRefused(w, r, s, err)
		return
	}
	b, err := exportJSON.Marshal(reply)
	var out bytes.Buffer
	if err == nil {
		// Indented to read, the same each time (protojson's own
		// indentation varies on purpose).
		err = json.Indent(&out, b, "", "  ")
	}
	if err != nil {
		c.log.ErrorContext(r.Context(), "console: export", slog.String("error", err.Error()))
		c.fail(w, r, s, &problem{Status: http.StatusInternalServerError, Message: "Exporten gick inte att skapa. Försök igen, och kontakta drift om det upprepas."})
		return
	}
	attachment(w, "application/json; charset=utf-8", "export-"+caseNumber(id)+".json", append(out.Bytes(), '\n'))
}

func (c *Console) downloadRefused(w http.ResponseWriter, r *http.Request, s *session, err error) {
	if c.refused(w, r, s, err) {
		return
	}
	pr := requestProblem(err, nil)
	if status.Code(err) == codes.InvalidArgument {
		pr = problemNotFound()
	}
	c.fail(w, r, s, pr)
}

// attachment writes data as a file to save, never to show in the console:
// Content-Disposition attachment, and (as every answer) no-store.
func attachment(w http.ResponseWriter, contentType, name string, data []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": name}))
	h.Set("Content-Length", strconv.Itoa(len(data)))
	_, _ = w.Write(data)
}
