package console

import (
	"fmt"
	"net/http"
	"time"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// breachesView is the operators' and the DPO's view of the open breaches:
// each with its 72-hour deadline to report to IMY and the time left.
type breachesView struct {
	Rows            []breachRow
	Overdue, Unsent int
	Read            string
}

// breachRow is one open breach.
type breachRow struct {
	Case, Aware, Category, Risk, Subjects, Reported string
	Due                                             dueView
}

var breachCategories = map[pdv1.BreachCategory]string{
	pdv1.BreachCategory_BREACH_CATEGORY_CONFIDENTIALITY: "Obehörig åtkomst (konfidentialitet)",
	pdv1.BreachCategory_BREACH_CATEGORY_INTEGRITY:       "Ändrade uppgifter (riktighet)",
	pdv1.BreachCategory_BREACH_CATEGORY_AVAILABILITY:    "Förlorade uppgifter (tillgänglighet)",
}

var breachRisks = map[pdv1.BreachRisk]string{
	pdv1.BreachRisk_BREACH_RISK_UNLIKELY: "Ingen risk (anmäls inte)",
	pdv1.BreachRisk_BREACH_RISK_RISK:     "Risk",
	pdv1.BreachRisk_BREACH_RISK_HIGH:     "Hög risk (de drabbade ska få veta)",
}

// timeLeft says in words how long is left of d, or how late it is.
func timeLeft(d time.Duration) string {
	late := d < 0
	if late {
		d = -d
	}
	days, hours := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
	var s string
	switch {
	case days > 0:
		s = fmt.Sprintf("%d dygn %d tim", days, hours)
	case hours > 0:
		s = fmt.Sprintf("%d tim", hours)
	default:
		s = fmt.Sprintf("%d min", int(d/time.Minute))
	}
	if late {
		return "Försenad " + s
	}
	return s + " kvar"
}

func newBreachRow(b *pdv1.BreachRecord) breachRow {
	row := breachRow{
		Case: caseNumber(b.GetBreachId()), Aware: formatTimestamp(b.GetAwareTime()),
		Category: breachCategories[b.GetCategory()], Risk: breachRisks[b.GetRisk()],
		Subjects: fmt.Sprint(b.GetSubjects()), Due: dueView{Date: formatTimestamp(b.GetDeadlineTime())},
	}
	switch reps := b.GetReports(); {
	case len(reps) > 0:
		row.Reported = "Ja, " + formatTimestamp(reps[0].GetSendTime())
	case b.GetRisk() == pdv1.BreachRisk_BREACH_RISK_UNLIKELY:
		row.Reported, row.Due.Date = "Behövs inte", "–" // no deadline to keep
	default:
		row.Reported = "Nej"
		left := b.GetTimeLeft().AsDuration()
		row.Due.Overdue, row.Due.Soon = b.GetOverdue(), left >= 0 && left < 24*time.Hour
		row.Due.Text = timeLeft(left)
	}
	return row
}

// breachesPage lists the open breaches, the most urgent first as the
// register orders them (by awareness).
func (c *Console) breachesPage(w http.ResponseWriter, r *http.Request, s *session) {
	ctx, cancel := s.call(r.Context())
	defer cancel()
	res, err := c.breaches.ListBreachRecords(ctx, &pdv1.ListBreachRecordsRequest{OpenOnly: true})
	if err != nil {
		if !c.refused(w, r, s, err) {
			c.fail(w, r, s, apiProblem(err, nil))
		}
		return
	}
	v := &breachesView{Read: formatTimestamp(res.GetReadTime())}
	for _, b := range res.GetRecords() {
		row := newBreachRow(b)
		if row.Due.Overdue {
			v.Overdue++
		}
		if row.Reported == "Nej" {
			v.Unsent++
		}
		v.Rows = append(v.Rows, row)
	}
	c.render(w, r, http.StatusOK, "breaches", &page{Title: "Incidenter", Section: Prefix + "breaches",
		Principal: s.PrincipalID, CSRF: s.CSRF, kind: s.Kind, Data: v})
}
