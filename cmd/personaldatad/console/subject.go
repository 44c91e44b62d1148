package console

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// maxAccessPages bounds the pages of AccessSubject one subject page reads
// (about 1 MiB each); the rest is for the export.
const maxAccessPages = 8

// notices are the confirmations after an action, by the query parameter
// klart (never anything personal).
var notices = map[string]string{
	"rattad":         "Uppgifterna är rättade.",
	"oforandrad":     "Inget fält var ändrat, så ingenting sparades.",
	"begransad":      "Behandlingen är begränsad till enbart lagring. Leveransen av tjänsterna vilar tills begränsningen hävs.",
	"havd":           "Begränsningen är hävd.",
	"historik":       "Historikposten är sparad.",
	"raderad":        "Personens uppgifter är raderade.",
	"raderad-delvis": "Personens uppgifter är raderade, utom det som lagen kräver att vi sparar (se Lagringskrav). Det finns kvar som enbart lagring tills tiden har gått ut.",
}

// refused handles an RPC error common to every page: a principal no longer
// accepted (its token or itself revoked) ends the session. It reports
// whether it answered the request.
func (c *Console) refused(w http.ResponseWriter, r *http.Request, s *session, err error) bool {
	if status.Code(err) != codes.Unauthenticated {
		return false
	}
	c.endSession(w, r, s)
	q := url.Values{"orsak": {"indragen"}}
	if ret := returnPath(r.URL.RequestURI()); ret != "" && r.Method == http.MethodGet {
		q.Set("till", ret)
	}
	http.Redirect(w, r, Prefix+"sign-in?"+q.Encode(), http.StatusSeeOther)
	return true
}

// caller is the signed-in principal as the service sees it now.
func (c *Console) caller(r *http.Request, s *session) (*pdv1.Principal, error) {
	ctx, cancel := s.call(r.Context())
	defer cancel()
	res, err := c.principals.GetCaller(ctx, &pdv1.GetCallerRequest{})
	return res.GetPrincipal(), err
}

// findData is the find page's form.
type findData struct {
	Form        *form
	Controllers []string
}

var findFields = apiFields{
	"identity_number": {"find-query", "Personnummer eller e-postadress"},
	"email":           {"find-query", "Personnummer eller e-postadress"},
	"controller_id":   {"find-controller", "Personuppgiftsansvarig"},
}

func (c *Console) findPage(w http.ResponseWriter, r *http.Request, s *session) {
	c.renderFind(w, r, s, http.StatusOK, nil)
}

func (c *Console) renderFind(w http.ResponseWriter, r *http.Request, s *session, code int, state *formState) {
	p, err := c.caller(r, s)
	if err != nil {
		if !c.refused(w, r, s, err) {
			c.fail(w, r, s, apiProblem(err, nil))
		}
		return
	}
	f := newForm("find", Prefix+"find", state)
	pg := &page{Title: "Hitta person", Section: Prefix + "find", Principal: s.PrincipalID, CSRF: s.CSRF,
		Data: findData{Form: f, Controllers: p.GetTenantIds()}}
	if state != nil {
		pg.Problem = state.Problem
	}
	c.render(w, r, code, "find", pg)
}

// find looks a person up by identity number or e-mail address, both sent in
// the POST body, and leads to the subject's page, whose URL holds only the
// subject's opaque id.
func (c *Console) find(w http.ResponseWriter, r *http.Request, s *session) {
	v := r.PostForm
	if !cleanForm(v) {
		c.fail(w, r, s, &problem{Status: http.StatusBadRequest, Message: "Formuläret innehöll tecken som inte går att läsa."})
		return
	}
	query := strings.TrimSpace(v.Get("query"))
	req := &pdv1.FindSubjectRequest{ControllerId: v.Get("controller")}
	switch {
	case query == "":
		c.renderFind(w, r, s, http.StatusBadRequest, &formState{Name: "find", Values: v, Problem: &problem{
			Status: http.StatusBadRequest, Message: "Skriv ett personnummer eller en e-postadress.",
			Fields: []fieldProblem{{ID: "find-query", Label: "Personnummer eller e-postadress", Message: "måste fyllas i"}}}})
		return
	case strings.Contains(query, "@"):
		req.Key = &pdv1.FindSubjectRequest_Email{Email: query}
	default:
		req.Key = &pdv1.FindSubjectRequest_IdentityNumber{IdentityNumber: query}
	}
	ctx, cancel := s.call(r.Context())
	defer cancel()
	res, err := c.subjects.FindSubject(ctx, req)
	if err != nil {
		if c.refused(w, r, s, err) {
			return
		}
		pr := eitherForm(apiProblem(err, findFields), "find-query")
		if status.Code(err) == codes.NotFound && pr.Status == http.StatusNotFound {
			pr.Message = "Ingen person med de uppgifterna finns hos den personuppgiftsansvarige."
		}
		c.renderFind(w, r, s, pr.Status, &formState{Name: "find", Values: v, Problem: pr})
		return
	}
	http.Redirect(w, r, subjectPath(res.GetSubject().GetSubjectId()), http.StatusSeeOther)
}

// eitherFormText says what a field that takes an identity number or an
// e-mail address takes: both forms, as the label does.
const eitherFormText = "ska vara ett personnummer med 10 eller 12 siffror, som 19121212-1212, eller en e-postadress, som namn@example.se"

// eitherForm words the problem of the field of element id, which takes an
// identity number or an e-mail address, so that it names both forms: a
// value without "@" is sent as an identity number, and the API's words
// about the digits would mislead who meant neither.
func eitherForm(pr *problem, id string) *problem {
	for i, f := range pr.Fields {
		if f.ID == id && strings.HasPrefix(f.Message, "ska vara 10 eller 12 siffror") {
			pr.Fields[i].Label, pr.Fields[i].Message = "Personnummer eller e-postadress", eitherFormText
		}
	}
	return pr
}

func subjectPath(id string) string { return Prefix + "subjects/" + url.PathEscape(id) }

// access reads everything held about subject id, page by page.
func (c *Console) access(r *http.Request, s *session, id string) (*pdv1.AccessSubjectResponse, bool, error) {
	ctx, cancel := s.call(r.Context())
	defer cancel()
	var all *pdv1.AccessSubjectResponse
	token := ""
	for range maxAccessPages {
		page, err := c.subjects.AccessSubject(ctx, &pdv1.AccessSubjectRequest{SubjectId: id, PageToken: token})
		if err != nil {
			return nil, false, err
		}
		if all == nil {
			all = page
		} else {
			all.Subject = page.Subject
			all.History = append(all.History, page.History...)
			all.Changes = append(all.Changes, page.Changes...)
			all.Consents = append(all.Consents, page.Consents...)
			all.Disclosures = append(all.Disclosures, page.Disclosures...)
			all.Holds = append(all.Holds, page.Holds...)
		}
		if token = page.GetNextPageToken(); token == "" {
			return all, false, nil
		}
	}
	return all, true, nil
}

func (c *Console) subjectPage(w http.ResponseWriter, r *http.Request, s *session) {
	pg := &page{Notice: notices[r.URL.Query().Get("klart")]}
	c.renderSubject(w, r, s, http.StatusOK, pg, nil)
}

// renderSubject shows the subject's page; state, when set, is a refused
// submission of one of its forms.
func (c *Console) renderSubject(w http.ResponseWriter, r *http.Request, s *session, code int, pg *page, state *formState) {
	id := r.PathValue("id")
	doc, truncated, err := c.access(r, s, id)
	if err == nil {
		var p *pdv1.Principal
		if p, err = c.caller(r, s); err == nil {
			pg.Title, pg.Section, pg.Principal, pg.CSRF = "Registrerad", Prefix+"find", s.PrincipalID, s.CSRF
			if state != nil {
				pg.Problem = state.Problem
			}
			v := newSubjectView(s, doc, truncated, p.GetRpcs(), state)
			// Opened from a request's page: a way back to it.
			if from := r.URL.Query().Get("forfragan"); validRequestID(from) {
				v.RequestPath = requestPath(from)
			}
			pg.Data = v
			c.render(w, r, code, "subject", pg)
			return
		}
	}
	if c.refused(w, r, s, err) {
		return
	}
	pr := apiProblem(err, nil)
	if status.Code(err) == codes.InvalidArgument {
		pr = problemNotFound()
	}
	c.fail(w, r, s, pr)
}

// act runs an action's RPC, which says which notice its success shows. A refusal shows the subject's page again with
// the form as sent and what was wrong; success leads back to the page with
// the notice done (Post/Redirect/Get, so a reload does not send again).
func (c *Console) act(w http.ResponseWriter, r *http.Request, s *session, name string, fields apiFields, rpc func() (done string, err error)) {
	done, err := rpc()
	if err == nil {
		http.Redirect(w, r, subjectPath(r.PathValue("id"))+"?klart="+done, http.StatusSeeOther)
		return
	}
	if c.refused(w, r, s, err) {
		return
	}
	pr := apiProblem(err, fields)
	if pr.Status >= 500 {
		c.log.WarnContext(r.Context(), "console: action failed", slog.String("action", name), slog.String("code", pr.Code))
	}
	c.renderSubject(w, r, s, pr.Status, &page{}, &formState{Name: name, Values: r.PostForm, Problem: pr})
}

// invalid shows a form again with the console's own check of it.
func (c *Console) invalid(w http.ResponseWriter, r *http.Request, s *session, name string, pr *problem) {
	c.renderSubject(w, r, s, pr.Status, &page{}, &formState{Name: name, Values: r.PostForm, Problem: pr})
}

// actionFields are the fields every action asks for.
func actionFields(form string) apiFields {
	return apiFields{
		"channel":    {form + "-channel", "Kanal"},
		"reference":  {form + "-reference", "Referens"},
		"ground":     {form + "-ground", "Grund"},
		"resolution": {form + "-resolution", "Hur begränsningen upphör"},
	}
}

func enumOf[E ~int32](values map[string]int32, name string) E {
	return E(values[name])
}

// rectifyInputs are the rectify form's simple fields, each a path of the
// update mask.
var rectifyInputs = []string{"identity_number", "given_name", "family_name", "email", "phone"}

// addressInputs are the rectify form's fields of the postal address, which
// is one path of the mask.
var addressInputs = []string{"line1", "line2", "line3", "postal_code", "locality", "country_code"}

func addressValue(v url.Values) string {
	parts := make([]string, len(addressInputs))
	for i, in := range addressInputs {
		parts[i] = strings.TrimSpace(v.Get(in))
	}
	return strings.Join(parts, "\x00")
}

func rectifyFields() apiFields {
	f := actionFields("rectify")
	for k, ref := range personFields("rectify") {
		f[k] = ref
	}
	return f
}

// personFields map the API's paths of a person's fields to those of form.
func personFields(form string) apiFields {
	f := apiFields{}
	for _, in := range rectifyInputs {
		f[in] = fieldRef{form + "-" + in, fieldLabel(in)}
	}
	f["postal_address.lines"] = fieldRef{form + "-line1", "Adressrad 1"}
	for i := range 3 {
		f[fmt.Sprintf("postal_address.lines[%d]", i)] = fieldRef{fmt.Sprintf("%s-line%d", form, i+1), fmt.Sprintf("Adressrad %d", i+1)}
	}
	for _, in := range []string{"postal_code", "locality", "country_code"} {
		f["postal_address."+in] = fieldRef{form + "-" + in, fieldLabel("postal_address." + in)}
	}
	return f
}

// rectify changes the fields the form shows changed, and only those.
func (c *Console) rectify(w http.ResponseWriter, r *http.Request, s *session) {
	v := r.PostForm
	version, err := strconv.ParseInt(v.Get("version"), 10, 64)
	if !cleanForm(v) || err != nil {
		c.invalid(w, r, s, "rectify", &problem{Status: http.StatusBadRequest, Message: "Formuläret gick inte att läsa. Läs in sidan igen."})
		return
	}
	person := &pdv1.Person{}
	var mask []string
	for _, in := range rectifyInputs {
		val := strings.TrimSpace(v.Get(in))
		if !changed(s, v, in, val) {
			continue
		}
		mask = append(mask, in)
		switch in {
		case "identity_number":
			person.IdentityNumber = val
		case "given_name":
			person.GivenName = val
		case "family_name":
			person.FamilyName = val
		case "email":
			person.Email = val
		case "phone":
			person.Phone = val
		}
	}
	if addr := addressValue(v); changed(s, v, "postal_address", addr) {
		mask = append(mask, "postal_address")
		if strings.Trim(addr, "\x00") != "" {
			a := &pdv1.PostalAddress{PostalCode: strings.TrimSpace(v.Get("postal_code")),
				Locality: strings.TrimSpace(v.Get("locality")), CountryCode: strings.TrimSpace(v.Get("country_code"))}
			for _, l := range []string{"line1", "line2", "line3"} {
				if line := strings.TrimSpace(v.Get(l)); line != "" {
					a.Lines = append(a.Lines, line)
				}
			}
			person.PostalAddress = a
		}
	}
	if len(mask) == 0 {
		http.Redirect(w, r, subjectPath(r.PathValue("id"))+"?klart=oforandrad", http.StatusSeeOther)
		return
	}
	c.act(w, r, s, "rectify", rectifyFields(), func() (string, error) {
		ctx, cancel := s.call(r.Context())
		defer cancel()
		_, err := c.subjects.RectifySubject(ctx, &pdv1.RectifySubjectRequest{
			IdempotencyKey:  v.Get("idempotency_key"),
			SubjectId:       r.PathValue("id"),
			ExpectedVersion: version,
			Person:          person,
			UpdateMask:      &fieldmaskpb.FieldMask{Paths: mask},
			Channel:         enumOf[pdv1.Channel](pdv1.Channel_value, v.Get("channel")),
			Reference:       v.Get("reference"),
			PerformedBy:     s.PrincipalID,
		})
		return "rattad", err
	})
}

func (c *Console) restrict(w http.ResponseWriter, r *http.Request, s *session) {
	v := r.PostForm
	c.act(w, r, s, "restrict", actionFields("restrict"), func() (string, error) {
		ctx, cancel := s.call(r.Context())
		defer cancel()
		_, err := c.subjects.RestrictProcessing(ctx, &pdv1.RestrictProcessingRequest{
			IdempotencyKey: v.Get("idempotency_key"),
			SubjectId:      r.PathValue("id"),
			Ground:         enumOf[pdv1.RestrictionGround](pdv1.RestrictionGround_value, v.Get("ground")),
			Channel:        enumOf[pdv1.Channel](pdv1.Channel_value, v.Get("channel")),
			Reference:      v.Get("reference"),
			PerformedBy:    s.PrincipalID,
		})
		return "begransad", err
	})
}

func (c *Console) lift(w http.ResponseWriter, r *http.Request, s *session) {
	v := r.PostForm
	c.act(w, r, s, "lift", actionFields("lift"), func() (string, error) {
		ctx, cancel := s.call(r.Context())
		defer cancel()
		_, err := c.subjects.LiftRestriction(ctx, &pdv1.LiftRestrictionRequest{
			IdempotencyKey: v.Get("idempotency_key"),
			SubjectId:      r.PathValue("id"),
			Resolution:     enumOf[pdv1.LiftResolution](pdv1.LiftResolution_value, v.Get("resolution")),
			Channel:        enumOf[pdv1.Channel](pdv1.Channel_value, v.Get("channel")),
			Reference:      v.Get("reference"),
			PerformedBy:    s.PrincipalID,
		})
		return "havd", err
	})
}

var historyFields = apiFields{
	"entry.kind":       {"history-kind", "Slag"},
	"entry.title":      {"history-title", "Rubrik"},
	"entry.body":       {"history-body", "Text"},
	"entry.occur_time": {"history-date", "Datum"},
	"entry.reference":  {"history-reference", "Referens"},
}

// occurTime is the moment of a history entry dated day (YYYY-MM-DD): the
// day's start in Swedish time. A day in the future is the service's to
// refuse.
func occurTime(day string) (*timestamppb.Timestamp, bool) {
	d, err := time.ParseInLocation("2006-01-02", day, stockholm)
	if err != nil {
		return nil, false
	}
	return timestamppb.New(d), true
}

func (c *Console) addHistory(w http.ResponseWriter, r *http.Request, s *session) {
	v := r.PostForm
	occur, ok := occurTime(v.Get("date"))
	if !cleanForm(v) || !ok {
		c.invalid(w, r, s, "history", &problem{Status: http.StatusBadRequest,
			Message: "Några uppgifter är inte giltiga. Rätta fälten som anges nedan och skicka igen.",
			Fields:  []fieldProblem{{ID: "history-date", Label: "Datum", Message: "ska vara ett datum som 2026-11-27"}}})
		return
	}
	c.act(w, r, s, "history", historyFields, func() (string, error) {
		ctx, cancel := s.call(r.Context())
		defer cancel()
		_, err := c.subjects.AddHistoryEntry(ctx, &pdv1.AddHistoryEntryRequest{
			IdempotencyKey: v.Get("idempotency_key"),
			SubjectId:      r.PathValue("id"),
			Entry: &pdv1.HistoryEntry{
				Kind:      enumOf[pdv1.HistoryKind](pdv1.HistoryKind_value, v.Get("kind")),
				Title:     v.Get("title"),
				Body:      v.Get("body"),
				OccurTime: occur,
				Reference: v.Get("reference"),
			},
		})
		return "historik", err
	})
}

func (c *Console) erase(w http.ResponseWriter, r *http.Request, s *session) {
	v := r.PostForm
	if v.Get("confirm") == "" {
		c.invalid(w, r, s, "erase", &problem{Status: http.StatusBadRequest,
			Message: "Bekräfta raderingen genom att kryssa i rutan.",
			Fields:  []fieldProblem{{ID: "erase-confirm", Label: "Rutan", Message: "måste kryssas i"}}})
		return
	}
	c.act(w, r, s, "erase", actionFields("erase"), func() (string, error) {
		ctx, cancel := s.call(r.Context())
		defer cancel()
		res, err := c.subjects.EraseSubject(ctx, &pdv1.EraseSubjectRequest{
			IdempotencyKey: v.Get("idempotency_key"),
			SubjectId:      r.PathValue("id"),
			Ground:         enumOf[pdv1.ErasureGround](pdv1.ErasureGround_value, v.Get("ground")),
			Channel:        enumOf[pdv1.Channel](pdv1.Channel_value, v.Get("channel")),
			Reference:      v.Get("reference"),
			PerformedBy:    s.PrincipalID,
		})
		// What the erasure kept decides the notice.
		if len(res.GetKept()) > 0 {
			return "raderad-delvis", err
		}
		return "raderad", err
	})
}

// mayCall says whether rpcs grant method.
func mayCall(rpcs []string, method string) bool { return slices.Contains(rpcs, method) }
