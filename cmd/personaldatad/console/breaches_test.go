package console_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// TestConsoleBreaches: the DPO signs in to the console and lands on the
// open breaches, each with the deadline to report to IMY and the time
// left in plain Swedish, the overdue one marked in words; a closed one is
// not there; the DPO's navigation has that part alone; support staff are
// refused the page. axe-core clean, at 360 and 1280 px.
func TestConsoleBreaches(t *testing.T) {
	browserCtx := newBrowser(t)
	e := start(t)
	shots := screenshots(t)
	support := e.principal(t, "support-br", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF)
	tolvan := person{identity: "19121212-1212", given: "Tolvan", family: "Tolvansson", email: "tolvan@example.se", phone: "070-123 45 67"}
	sub := e.createSubject(t, support, tolvan)
	e.access(t, support, sub.GetSubjectId())

	dpoRes, err := pdv1.NewPrincipalServiceClient(e.conn).CreatePrincipal(as(e.operator), &pdv1.CreatePrincipalRequest{
		IdempotencyKey: "create-dpo", Principal: &pdv1.Principal{PrincipalId: "dpo-1", Kind: pdv1.PrincipalKind_PRINCIPAL_KIND_DPO, TenantIds: []string{"*"}}})
	if err != nil {
		t.Fatalf("CreatePrincipal dpo: %v", err)
	}
	dpo := dpoRes.GetToken()
	breaches := pdv1.NewBreachRecordServiceClient(e.conn)
	open := func(key string, ago time.Duration, risk pdv1.BreachRisk) *pdv1.BreachRecord {
		t.Helper()
		res, err := breaches.OpenBreachRecord(as(dpo), &pdv1.OpenBreachRecordRequest{IdempotencyKey: key,
			AwareTime:   timestamppb.New(e.clock.Now().Add(-ago)),
			Description: "En supportnyckel användes av någon obehörig.", Category: pdv1.BreachCategory_BREACH_CATEGORY_CONFIDENTIALITY,
			Risk: risk, RiskReason: "Kontaktuppgifter lästes.", Assessment: &pdv1.AssessBreachImpactRequest{PrincipalId: "support-br"}})
		if err != nil {
			t.Fatalf("OpenBreachRecord %s: %v", key, err)
		}
		return res.GetRecord()
	}
	open("late", 80*time.Hour, pdv1.BreachRisk_BREACH_RISK_HIGH)
	open("soon", 70*time.Hour, pdv1.BreachRisk_BREACH_RISK_RISK)
	open("fresh", time.Hour, pdv1.BreachRisk_BREACH_RISK_UNLIKELY)
	closed := open("closed", 2*time.Hour, pdv1.BreachRisk_BREACH_RISK_UNLIKELY)
	if _, err := breaches.UpdateBreachRecord(as(dpo), &pdv1.UpdateBreachRecordRequest{BreachId: closed.GetBreachId(), IdempotencyKey: "close",
		Close: true, Reason: "Falskt larm."}); err != nil {
		t.Fatalf("UpdateBreachRecord: %v", err)
	}

	tb := newTab(t, browserCtx, e.base)
	tb.navigate("/console/sign-in")
	tb.do(chromedp.SetValue(chromedp.ID("principal_id"), "dpo-1"))
	if code := tb.submit(chromedp.SendKeys(chromedp.ID("token"), dpo+"\r")); code != http.StatusOK || tb.path() != "/console/breaches" {
		t.Fatalf("the DPO's sign-in: HTTP %d at %s, want the breaches", code, tb.path())
	}
	if nav := tb.text("nav"); !strings.Contains(nav, "Incidenter") || strings.Contains(nav, "Hitta person") || strings.Contains(nav, "Förfrågningar") {
		t.Errorf("the DPO's navigation: %q", nav)
	}
	if s := tb.text(".summary"); !strings.HasPrefix(s, "3 öppna incidenter, varav 1 försenad.") || !strings.Contains(s, "inom 72 timmar") {
		t.Errorf("the summary says %q", s)
	}
	rows := eval[[]string](tb, `Array.from(document.querySelectorAll("tbody tr")).map(r => r.innerText.replace(/\s+/g, " ").trim())`)
	if len(rows) != 3 {
		t.Fatalf("%d rows: %q", len(rows), rows)
	}
	for i, want := range []string{"Försenad 8 tim", "2 tim kvar", "Behövs inte"} {
		if !strings.Contains(rows[i], want) {
			t.Errorf("row %d is %q, want it to say %q", i, rows[i], want)
		}
	}
	if !strings.Contains(rows[0], "Hög risk") || !strings.Contains(rows[0], "Obehörig åtkomst") {
		t.Errorf("the overdue row: %q", rows[0])
	}
	if n := eval[int](tb, `document.querySelectorAll("tr.overdue .badge-overdue").length`); n != 1 {
		t.Errorf("%d overdue marks, want 1", n)
	}
	if page := strings.ToLower(tb.text("main")); strings.Contains(page, "breach_") || strings.Contains(page, "principal") {
		t.Errorf("the page speaks the API's words: %q", page)
	}
	tb.checkPage(tolvan.personal())
	tb.shotAt(shots, "breaches", 360)
	tb.shotAt(shots, "breaches", 1280)
	tb.checkTrail(tolvan.personal())

	// Support staff have no such part, and the page refuses them.
	staff := newTab(t, browserCtx, e.base)
	staff.navigate("/console/sign-in")
	staff.do(chromedp.SetValue(chromedp.ID("principal_id"), "support-br"))
	staff.submit(chromedp.SendKeys(chromedp.ID("token"), support+"\r"))
	if nav := staff.text("nav"); strings.Contains(nav, "Incidenter") {
		t.Errorf("support staff's navigation shows the breaches: %q", nav)
	}
	if code := staff.navigate("/console/breaches"); code != http.StatusForbidden {
		t.Errorf("support staff on the breaches: HTTP %d, want 403", code)
	}
}
