package accountability

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/fault"
	"github.com/example/personaldata/service/rules"
	"github.com/example/personaldata/service/validate"
	"github.com/example/personaldata/store"
)

// The report to IMY (Art. 33(3)): the questions of IMY's notification form
// ("Anmälan av personuppgiftsincident"), answered in Swedish from the record
// and its assessment. It names categories and counts, never a subject or a
// personal value.

// breachCategoriesSV name the kinds of breach as IMY's form does.
var breachCategoriesSV = map[string]string{
	pdv1.BreachCategory_BREACH_CATEGORY_CONFIDENTIALITY.String(): "Konfidentialitetsincident: obehörigt röjande av eller obehörig åtkomst till personuppgifter",
	pdv1.BreachCategory_BREACH_CATEGORY_INTEGRITY.String():       "Riktighetsincident: obehörig eller oavsiktlig ändring av personuppgifter",
	pdv1.BreachCategory_BREACH_CATEGORY_AVAILABILITY.String():    "Tillgänglighetsincident: förlust av åtkomst till eller förstöring av personuppgifter",
}

// dataCategoriesSV name the categories of data in plain Swedish.
var dataCategoriesSV = map[string]string{
	pdv1.DataCategory_DATA_CATEGORY_IDENTIFICATION.String(): "identitetsuppgifter (personnummer och namn)",
	pdv1.DataCategory_DATA_CATEGORY_CONTACT.String():        "kontaktuppgifter (e-postadress, telefonnummer, postadress)",
	pdv1.DataCategory_DATA_CATEGORY_HISTORY.String():        "historik (e-post om beställningar och ändringar, felanmälningar)",
}

var risksSV = map[string]string{
	riskUnlikely: "Det är osannolikt att incidenten medför en risk för de registrerades rättigheter och friheter.",
	pdv1.BreachRisk_BREACH_RISK_RISK.String(): "Incidenten kan medföra en risk för de registrerades rättigheter och friheter.",
	riskHigh: "Incidenten medför sannolikt en hög risk för de registrerades rättigheter och friheter.",
}

var phasesSV = map[string]string{
	pdv1.BreachReportPhase_BREACH_REPORT_PHASE_INITIAL.String():       "Inledande anmälan (fler uppgifter lämnas senare)",
	pdv1.BreachReportPhase_BREACH_REPORT_PHASE_SUPPLEMENTARY.String(): "Komplettering av tidigare anmälan",
	pdv1.BreachReportPhase_BREACH_REPORT_PHASE_FINAL.String():         "Fullständig anmälan (slutlig)",
}

// whenSV is a time as a Swede reads it: date and time in Sweden.
func whenSV(ns int64) string {
	return time.Unix(0, ns).In(core.Stockholm).Format("2006-01-02 kl. 15:04")
}

// orSV is s, or what to say when it is empty.
func orSV(s, none string) string {
	if s == "" {
		return none
	}
	return s
}

// categoriesSV lists counts by category in Swedish, one a line.
func categoriesSV(cs []store.BreachCount) string {
	if len(cs) == 0 {
		return "Inga personuppgifter har konstaterats berörda."
	}
	var lines []string
	for _, c := range cs {
		lines = append(lines, fmt.Sprintf("%s: %d registrerade", dataCategoriesSV[c.Category], c.Subjects))
	}
	return strings.Join(lines, "\n")
}

// reportFields answers IMY's form from r, for a report of phase sent at
// `at` by `by`; late and reasons say whether it is a late first report.
func (s *Service) reportFields(r *store.BreachRecord, phase, by string, at int64, late bool, reasons string) []store.ReportField {
	snd := s.Sender.View()
	reporter := orSV(snd.Name, "Personuppgiftsansvarig")
	if len(snd.Address) > 0 {
		reporter += ", " + strings.Join(snd.Address, ", ")
	}
	contact := r.Contact
	if contact == "" {
		contact = strings.Join(nonEmpty(snd.Email, snd.Phone), ", ")
	}
	happened := "Okänt när incidenten började; bedömningen omfattar tiden fram till " + whenSV(r.Scope.To) + "."
	if r.Scope.From != 0 {
		happened = "Från " + whenSV(r.Scope.From) + " till " + whenSV(r.Scope.To) + " (den tid bedömningen omfattar)."
	}
	timely := "Anmälan görs inom 72 timmar från att vi fick kännedom om incidenten."
	if late {
		timely = "Anmälan görs senare än 72 timmar efter att vi fick kännedom om incidenten. Skälen till förseningen: " + reasons
	} else if len(r.Reports) > 0 {
		timely = "Den första anmälan gjordes " + whenSV(r.Reports[0].SentAt) + "."
	}
	customers := 0
	for _, p := range r.Controllers {
		if p.Controller != rules.CompanyController {
			customers++
		}
	}
	kinds := "Våra kunder (fysiska personer) och kontaktpersoner hos våra kunder."
	if customers > 0 {
		kinds += fmt.Sprintf(" Dessutom registrerade hos %d kunder för vilka vi är personuppgiftsbiträde; kunderna har underrättats eller underrättas enligt artikel 33.2.", customers)
	}
	return []store.ReportField{
		{Name: "Typ av anmälan", Value: phasesSV[phase]},
		{Name: "Personuppgiftsansvarig som anmäler", Value: reporter},
		{Name: "Anmälan lämnad av", Value: by + " (behörighet i vårt system), " + whenSV(at)},
		{Name: "Kontaktperson", Value: orSV(contact, "Se personuppgiftsansvarig ovan.")},
		{Name: "När inträffade incidenten", Value: happened},
		{Name: "När fick vi kännedom om incidenten", Value: whenSV(r.AwareAt)},
		{Name: "Anmälan i tid", Value: timely},
		{Name: "Vad har hänt", Value: r.Description},
		{Name: "Typ av incident", Value: breachCategoriesSV[r.Category]},
		{Name: "Kategorier av personuppgifter", Value: categoriesSV(r.Categories)},
		{Name: "Kategorier av registrerade", Value: kinds},
		{Name: "Ungefärligt antal berörda registrerade", Value: fmt.Sprint(r.Subjects)},
		{Name: "Ungefärligt antal berörda personuppgiftsposter", Value: fmt.Sprintf("%d (en post per registrerad och kategori av uppgifter)", r.Records)},
		{Name: "Sannolika konsekvenser för de registrerade", Value: strings.TrimSpace(risksSV[r.Risk] + " " + r.Consequences)},
		{Name: "Vidtagna åtgärder", Value: orSV(r.MeasuresTaken, "Inga ännu.")},
		{Name: "Planerade åtgärder", Value: orSV(r.MeasuresPlanned, "Inga ännu.")},
		{Name: "Har de registrerade informerats", Value: toldSV(r)},
	}
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// toldSV says whether, and how many of, the people affected were told.
func toldSV(r *store.BreachRecord) string {
	n := r.Notices
	switch {
	case n != nil && n.Notified > 0:
		s := fmt.Sprintf("Ja: %d registrerade har fått ett meddelande (artikel 34), senast %s.", n.Notified, whenSV(n.At))
		if n.Unreachable > 0 {
			s += fmt.Sprintf(" %d saknar kontaktuppgifter hos oss och informeras genom ett offentligt meddelande.", n.Unreachable)
		}
		if n.Erased > 0 {
			s += fmt.Sprintf(" %d har raderats sedan incidenten; inga uppgifter om dem finns kvar.", n.Erased)
		}
		if n.LeftToControllers > 0 {
			s += fmt.Sprintf(" %d är registrerade hos kunder, som informerar dem.", n.LeftToControllers)
		}
		return s
	case r.Risk == riskHigh:
		return "Inte ännu: de registrerade kommer att informeras, eftersom risken bedöms som hög."
	}
	return "Nej: risken bedöms inte som hög, så de registrerade informeras inte enligt artikel 34."
}

// reportDocument is the report as a plain text document.
func reportDocument(id string, fields []store.ReportField) string {
	var b strings.Builder
	b.WriteString("ANMÄLAN AV PERSONUPPGIFTSINCIDENT TILL INTEGRITETSSKYDDSMYNDIGHETEN (IMY)\n")
	fmt.Fprintf(&b, "Vårt ärende: %s\n", core.ShortID(id))
	for _, f := range fields {
		fmt.Fprintf(&b, "\n%s\n%s\n", f.Name, f.Value)
	}
	return b.String()
}

func reportView(id string, rep *store.BreachReport) *pdv1.BreachReport {
	out := &pdv1.BreachReport{Document: reportDocument(id, rep.Fields),
		Phase:    core.EnumValue[pdv1.BreachReportPhase](pdv1.BreachReportPhase_value, rep.Phase),
		SendTime: core.Timestamp(rep.SentAt), SentBy: rep.SentBy, Late: rep.Late, DelayReasons: rep.DelayReasons,
	}
	for _, f := range rep.Fields {
		out.Fields = append(out.Fields, &pdv1.BreachReportField{Name: f.Name, Value: f.Value})
	}
	return out
}

// ReportBreachToAuthority makes and keeps the report of one phase.
func (s *BreachRecords) ReportBreachToAuthority(ctx context.Context, req *pdv1.ReportBreachToAuthorityRequest) (*pdv1.ReportBreachToAuthorityResponse, error) {
	var v validate.Violations
	id := validBreachID(&v, req.GetBreachId())
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	phase := v.Enum("phase", req.GetPhase())
	reasons := validBreachText(&v, "delay_reasons", req.GetDelayReasons(), false, s.Now())
	c, err := s.change(ctx, v)
	if err != nil {
		return nil, err
	}
	core.Note(ctx, audit.Touch{Tenant: rules.CompanyController, Fields: []string{"breach_report"}})
	fp, k, now := s.Fingerprint(req), core.OpKey(key), s.Now()
	var index int64
	r, err := s.Store.UpdateBreachRecord(ctx, id, func(r *store.BreachRecord) error {
		if err := core.CheckReplay(r.Ops, k, fp); err != nil {
			return err
		}
		first := len(r.Reports) == 0
		switch {
		case r.ClosedAt != 0:
			return fault.FailedPrecondition("the breach record is closed")
		case !first && r.Reports[len(r.Reports)-1].Phase == pdv1.BreachReportPhase_BREACH_REPORT_PHASE_FINAL.String():
			return fault.FailedPrecondition("the final report was sent: no report follows it")
		case first && phase == pdv1.BreachReportPhase_BREACH_REPORT_PHASE_SUPPLEMENTARY.String():
			return fault.FailedPrecondition("a supplementary report follows an initial one: send the initial report first")
		case !first && phase == pdv1.BreachReportPhase_BREACH_REPORT_PHASE_INITIAL.String():
			return fault.FailedPrecondition("the initial report was sent: send a supplementary or the final report")
		}
		late := first && now.After(breachDeadline(r))
		if late && reasons == "" {
			var v validate.Violations
			v.Add("delay_reasons", "is required: the report is sent more than 72 hours after the company became aware of the breach (Art. 33(1))")
			return v.Err()
		}
		at := now.UnixNano()
		rep := store.BreachReport{Phase: phase, SentAt: at, SentBy: c.ID(), Late: late, DelayReasons: reasons}
		rep.Fields = s.reportFields(r, phase, c.ID(), at, late, reasons)
		index = int64(len(r.Reports))
		r.Reports = append(r.Reports, rep)
		decision := phase
		if late {
			decision += ", late"
		}
		r.Decisions = append(r.Decisions, store.BreachDecision{Kind: decisionReported, At: at, By: c.ID(), Decision: decision, Reason: reasons})
		r.Ops = core.AppendOp(r.Ops, store.Op{Key: k, Fingerprint: fp, Result: index}, now)
		return nil
	})
	var rep *core.Replayed
	if errors.As(err, &rep) {
		index = rep.Op.Result
	}
	if r, err = s.afterUpdate(ctx, id, r, err); err != nil {
		return nil, err
	}
	if index >= int64(len(r.Reports)) {
		return nil, s.Internal(ctx, "report breach", fmt.Errorf("report %d of %d", index, len(r.Reports)))
	}
	return &pdv1.ReportBreachToAuthorityResponse{Report: reportView(r.ID, &r.Reports[index]), Record: s.recordView(r, now, nil)}, nil
}
