package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/auth"
)

// screenshots is where the tests leave their screenshots: the folder
// PERSONALDATA_SCREENSHOTS names, or the test's temporary folder.
func screenshots(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("PERSONALDATA_SCREENSHOTS"); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.TempDir()
}

// TestConsole drives the support console in a real headless Chromium
// against the real server on loopback: one server and one browser for all
// of its parts, each part in a browser context of its own.
func TestConsole(t *testing.T) {
	browser := newBrowser(t)
	e := start(t)
	shots := screenshots(t)
	support := e.principal(t, "support-1", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF)
	billing := e.principal(t, "billing-1", pdv1.PrincipalKind_PRINCIPAL_KIND_BILLING_SYSTEM, pdv1.Purpose_PURPOSE_INVOICING)
	var everyone []string // every personal value of every made-up person

	newPerson := func(given, family string, serial int) person {
		p := person{identity: identityNumber("19800101", serial), given: given, family: family,
			email: strings.ToLower(given) + "@example.se", phone: "070-123 45 67"}
		everyone = append(everyone, p.personal()...)
		return p
	}
	tolvan := person{identity: "19121212-1212", given: "Tolvan", family: "Tolvansson", email: "tolvan@example.se", phone: "070-123 45 67"}
	everyone = append(everyone, tolvan.personal()...)
	everyone = append(everyone, "tolvan.ny@example.se", "tolvan.ny%40example.se")

	signIn := func(tb *tab, id, token string) {
		t.Helper()
		tb.navigate("/console/sign-in")
		tb.do(chromedp.SetValue(chromedp.ID("principal_id"), id))
		if code := tb.submit(chromedp.SendKeys(chromedp.ID("token"), token+"\r")); code != http.StatusOK || tb.path() != "/console/find" {
			t.Fatalf("sign-in: HTTP %d at %s", code, tb.path())
		}
	}

	t.Run("Journey", func(t *testing.T) {
		sub := e.createSubject(t, support, tolvan)
		tb := newTab(t, browser, e.base)

		// Anyone not signed in is sent to sign in.
		tb.navigate("/console/")
		if p := tb.path(); p != "/console/sign-in" {
			t.Fatalf("not signed in: at %s, want the sign-in page", p)
		}
		tb.checkPage(everyone)
		tb.shot(shots, "1-sign-in")

		// A wrong credential is refused, saying nothing of which part was
		// wrong: a false token, and a real token of another principal.
		var refusals []string
		for _, token := range []string{"pd1.support-1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", billing} {
			tb.do(chromedp.SetValue(chromedp.ID("principal_id"), "support-1"))
			if code := tb.submit(chromedp.SendKeys(chromedp.ID("token"), token+"\r")); code != http.StatusUnauthorized {
				t.Errorf("wrong credential: HTTP %d, want 401", code)
			}
			refusals = append(refusals, tb.text("#problem"))
			if tb.cookie("pd-console") != nil {
				t.Error("a refused sign-in left a session cookie")
			}
		}
		if refusals[0] != refusals[1] || !strings.Contains(refusals[0], "Inloggningen misslyckades") {
			t.Errorf("refusals %q and %q: want the same plain message", refusals[0], refusals[1])
		}
		for _, word := range []string{"token", "principal", "lösenord", "finns inte"} {
			if strings.Contains(strings.ToLower(refusals[0]), word) {
				t.Errorf("the refusal %q says which part was wrong (%q)", refusals[0], word)
			}
		}
		tb.checkPage(everyone)
		tb.shot(shots, "2-sign-in-refused")

		// The principal's own credentials open a session: a cookie script
		// cannot read, not sent cross-site, with an expiry.
		tb.do(chromedp.SetValue(chromedp.ID("principal_id"), "support-1"))
		if code := tb.submit(chromedp.SendKeys(chromedp.ID("token"), support+"\r")); code != http.StatusOK || tb.path() != "/console/find" {
			t.Fatalf("sign-in: HTTP %d at %s", code, tb.path())
		}
		ck := tb.cookie("pd-console")
		switch {
		case ck == nil:
			t.Fatal("no session cookie")
		case !ck.HTTPOnly || ck.SameSite != network.CookieSameSiteStrict || ck.Session:
			t.Errorf("session cookie: HttpOnly %v, SameSite %v, session-only %v; want HttpOnly, Strict, an expiry", ck.HTTPOnly, ck.SameSite, ck.Session)
		case ck.Expires > float64(time.Now().Add(8*time.Hour+time.Minute).Unix()):
			t.Errorf("session cookie expires %v, more than 8 h from now", time.Unix(int64(ck.Expires), 0))
		}
		tb.checkPage(everyone)
		tb.shot(shots, "3-find")

		// Find the person by identity number, with the keyboard.
		if code := tb.submit(chromedp.SendKeys(chromedp.ID("find-query"), tolvan.identity+"\r")); code != http.StatusOK {
			t.Fatalf("find: HTTP %d", code)
		}
		if want := "/console/subjects/" + sub.GetSubjectId(); tb.path() != want {
			t.Fatalf("find led to %s, want %s", tb.path(), want)
		}
		page := tb.text("main")
		for _, want := range []string{"Tolvan Tolvansson", "19121212-1212", "tolvan@example.se", "070-123 45 67", "Testgatan 12", "123 45 Teststad", "Aktiv", "Levereras"} {
			if !strings.Contains(page, want) {
				t.Errorf("the subject's page lacks %q", want)
			}
		}
		tb.checkPage(everyone)
		tb.shot(shots, "4-subject")

		// Restrict: the page says so, and a billing system's purpose view
		// is refused.
		tb.do(chromedp.Click(chromedp.CSS("#restrict summary")),
			chromedp.SetValue(chromedp.ID("restrict-ground"), "RESTRICTION_GROUND_ACCURACY_CONTESTED"),
			chromedp.SetValue(chromedp.ID("restrict-channel"), "CHANNEL_PHONE"),
			chromedp.SendKeys(chromedp.ID("restrict-reference"), "ärende-1001"))
		if code := tb.submit(chromedp.Click(chromedp.CSS("#restrict button[type=submit]"))); code != http.StatusOK {
			t.Fatalf("restrict: HTTP %d: %s", code, tb.text("main"))
		}
		if n := tb.text(".notice"); !strings.Contains(n, "begränsad") {
			t.Errorf("after restricting, the notice says %q", n)
		}
		if !strings.Contains(tb.text("main"), "Behandlingen är begränsad") {
			t.Error("the page does not say the processing is restricted")
		}
		_, err := e.subjects().GetSubjectForPurpose(as(billing), &pdv1.GetSubjectForPurposeRequest{SubjectId: sub.GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_INVOICING})
		if !isRestricted(err) {
			t.Errorf("billing's purpose view of a restricted subject: %v, want FAILED_PRECONDITION PROCESSING_RESTRICTED", err)
		}

		// Lifting as corrected before any rectification is refused, in
		// words, and nothing changes.
		before := e.access(t, support, sub.GetSubjectId()).GetSubject().GetVersion()
		tb.do(chromedp.Click(chromedp.CSS("#lift summary")),
			chromedp.SetValue(chromedp.ID("lift-resolution"), "LIFT_RESOLUTION_CORRECTED"),
			chromedp.SetValue(chromedp.ID("lift-channel"), "CHANNEL_EMAIL"),
			chromedp.SendKeys(chromedp.ID("lift-reference"), "ärende-1001"))
		if code := tb.submit(chromedp.Click(chromedp.CSS("#lift button[type=submit]"))); code != http.StatusConflict {
			t.Errorf("lift as corrected before rectifying: HTTP %d, want 409", code)
		}
		if p := tb.text("#problem"); !strings.Contains(p, "kräver att uppgifterna rättats") {
			t.Errorf("the refusal says %q", p)
		}
		if v := e.access(t, support, sub.GetSubjectId()).GetSubject().GetVersion(); v != before {
			t.Errorf("a refused lift changed the version from %d to %d", before, v)
		}
		tb.checkPage(everyone)
		tb.shot(shots, "5-refused-lift")

		// Rectify with a bad phone number: refused naming the field, the
		// form keeps what was typed, nothing stored.
		tb.do(chromedp.Click(chromedp.CSS("#rectify summary")),
			chromedp.SetValue(chromedp.ID("rectify-email"), "tolvan.ny@example.se"),
			chromedp.SetValue(chromedp.ID("rectify-phone"), "12"),
			chromedp.SetValue(chromedp.ID("rectify-channel"), "CHANNEL_EMAIL"),
			chromedp.SendKeys(chromedp.ID("rectify-reference"), "ärende-1002"))
		if code := tb.submit(chromedp.Click(chromedp.CSS("#rectify button[type=submit]"))); code != http.StatusBadRequest {
			t.Errorf("rectify with a bad phone: HTTP %d, want 400", code)
		}
		if p := tb.text("#problem"); !strings.Contains(p, "Telefon") || !strings.Contains(p, "inget giltigt telefonnummer") {
			t.Errorf("the refusal of a bad phone says %q", p)
		}
		if msg := tb.text("#rectify-phone-error"); !strings.Contains(msg, "telefonnummer") {
			t.Errorf("the phone field's error says %q", msg)
		}
		if v := eval[string](tb, `document.getElementById("rectify-email").value`); v != "tolvan.ny@example.se" {
			t.Errorf("the refused form lost what was typed: email %q", v)
		}
		if got := e.access(t, support, sub.GetSubjectId()).GetSubject(); got.GetVersion() != before {
			t.Errorf("a refused rectification changed the subject (version %d to %d)", before, got.GetVersion())
		}
		tb.checkPage(everyone)
		tb.shot(shots, "6-refused-rectify")

		// Put the phone back as the form showed it: only the e-mail changes, recorded as done by
		// the signed-in principal.
		tb.do(chromedp.SetValue(chromedp.ID("rectify-phone"), "070-123 45 67"))
		if code := tb.submit(chromedp.Click(chromedp.CSS("#rectify button[type=submit]"))); code != http.StatusOK {
			t.Fatalf("rectify: HTTP %d: %s", code, tb.text("main"))
		}
		if n := tb.text(".notice"); !strings.Contains(n, "rättade") {
			t.Errorf("after rectifying, the notice says %q", n)
		}
		doc := e.access(t, support, sub.GetSubjectId())
		if got := doc.GetSubject().GetPerson().GetEmail(); got != "tolvan.ny@example.se" {
			t.Errorf("stored e-mail %q after rectifying", got)
		}
		if got := doc.GetSubject().GetPerson().GetPhone(); got != "+46701234567" {
			t.Errorf("stored phone %q after rectifying", got)
		}
		last := doc.GetChanges()[len(doc.GetChanges())-1]
		if last.GetKind() != pdv1.ChangeKind_CHANGE_KIND_RECTIFIED || !slices.Equal(last.GetFields(), []string{"email"}) ||
			last.GetPerformedBy() != "support-1" || last.GetChannel() != pdv1.Channel_CHANNEL_EMAIL || last.GetReference() != "ärende-1002" {
			t.Errorf("change record %v: want RECTIFIED [email] by support-1 over e-mail, ärende-1002", last)
		}

		// Now lifting as corrected works.
		tb.do(chromedp.Click(chromedp.CSS("#lift summary")),
			chromedp.SetValue(chromedp.ID("lift-resolution"), "LIFT_RESOLUTION_CORRECTED"),
			chromedp.SetValue(chromedp.ID("lift-channel"), "CHANNEL_EMAIL"),
			chromedp.SendKeys(chromedp.ID("lift-reference"), "ärende-1001"))
		if code := tb.submit(chromedp.Click(chromedp.CSS("#lift button[type=submit]"))); code != http.StatusOK {
			t.Fatalf("lift: HTTP %d: %s", code, tb.text("main"))
		}
		if _, err := e.subjects().GetSubjectForPurpose(as(billing), &pdv1.GetSubjectForPurposeRequest{SubjectId: sub.GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_INVOICING}); err != nil {
			t.Errorf("billing's purpose view after the lift: %v", err)
		}

		// A history entry.
		tb.do(chromedp.Click(chromedp.CSS("#history-form summary")),
			chromedp.SetValue(chromedp.ID("history-kind"), "HISTORY_KIND_EMAIL_CONVERSATION"),
			chromedp.SendKeys(chromedp.ID("history-title"), "Fråga om faktura 4711"),
			chromedp.SendKeys(chromedp.ID("history-body"), "Kunden undrar över en faktura.\nSvar skickat."),
			chromedp.SendKeys(chromedp.ID("history-reference"), "order-4711"))
		if code := tb.submit(chromedp.Click(chromedp.CSS("#history-form button[type=submit]"))); code != http.StatusOK {
			t.Fatalf("add history: HTTP %d: %s", code, tb.text("main"))
		}
		if h := tb.text(".history"); !strings.Contains(h, "Fråga om faktura 4711") || !strings.Contains(h, "Svar skickat.") {
			t.Errorf("the history shows %q", h)
		}
		if n := e.access(t, support, sub.GetSubjectId()).GetSubject().GetHistoryCount(); n != 1 {
			t.Errorf("%d history entries stored, want 1", n)
		}

		// The audit trail names the signed-in principal for each change.
		audit, err := pdv1.NewAuditServiceClient(e.conn).ListAuditEvents(as(e.operator), &pdv1.ListAuditEventsRequest{SubjectId: sub.GetSubjectId(), PageSize: 100})
		if err != nil {
			t.Fatalf("ListAuditEvents: %v", err)
		}
		seen := map[string]string{}
		for _, ev := range audit.GetEvents() {
			method := ev.GetRpc()[strings.LastIndex(ev.GetRpc(), "/")+1:]
			if ev.GetOutcome() == "OK" {
				seen[method] = ev.GetPrincipalId()
			}
		}
		for _, m := range []string{"FindSubject", "AccessSubject", "RestrictProcessing", "RectifySubject", "LiftRestriction", "AddHistoryEntry"} {
			if seen[m] != "support-1" {
				t.Errorf("audit trail: %s by %q, want support-1", m, seen[m])
			}
		}

		// At 200 % zoom (a 1280 pixel window shows 640 CSS pixels) the page
		// reflows: nothing wider than the window.
		tb.do(func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			_, err := cdp.Call(ctx, tg, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{Width: 640, Height: 450, DeviceScaleFactor: 2})
			return chromedp.Void{}, err
		})
		tb.do(chromedp.Click(chromedp.CSS("#rectify summary")))
		if w := eval[[]int](tb, `[document.documentElement.scrollWidth, document.documentElement.clientWidth]`); w[0] > w[1] {
			t.Errorf("at 200 %% zoom the page is %d CSS pixels wide in a window of %d", w[0], w[1])
		}
		tb.shot(shots, "7-subject-200-percent")
		tb.do(func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			_, err := cdp.Call(ctx, tg, emulation.ClearDeviceMetricsOverride, cdp.Empty{})
			return chromedp.Void{}, err
		})

		// Erase, with its ground: the page shows the tombstone.
		tb.do(chromedp.Click(chromedp.CSS("#erase summary")),
			chromedp.SetValue(chromedp.ID("erase-ground"), "ERASURE_GROUND_NO_LEGITIMATE_REASON"),
			chromedp.SetValue(chromedp.ID("erase-channel"), "CHANNEL_LETTER"),
			chromedp.SendKeys(chromedp.ID("erase-reference"), "ärende-1003"),
			chromedp.Click(chromedp.ID("erase-confirm")))
		if code := tb.submit(chromedp.Click(chromedp.CSS("#erase button[type=submit]"))); code != http.StatusOK {
			t.Fatalf("erase: HTTP %d: %s", code, tb.text("main"))
		}
		if page := tb.text("main"); !strings.Contains(page, "Uppgifterna är raderade") || strings.Contains(page, "Tolvansson") {
			t.Errorf("after erasing, the page says %q", page)
		}
		if n := tb.text(".notice"); n != "Personens uppgifter är raderade." {
			t.Errorf("after erasing with nothing kept, the notice says %q", n)
		}
		if st := e.access(t, support, sub.GetSubjectId()).GetSubject().GetState(); st != pdv1.SubjectState_SUBJECT_STATE_ERASED {
			t.Errorf("state %v after erasing", st)
		}
		tb.checkPage(everyone)
		tb.shot(shots, "8-erased")

		// Sign out: the session is gone.
		if code := tb.submit(chromedp.Click(chromedp.CSS(".signout button"))); code != http.StatusOK || !strings.HasPrefix(tb.path(), "/console/sign-in") {
			t.Fatalf("sign-out: HTTP %d at %s", code, tb.path())
		}
		if n := tb.text(".notice"); !strings.Contains(n, "utloggad") {
			t.Errorf("after signing out, the notice says %q", n)
		}
		// It leads to signing in, and back to the page once signed in.
		tb.navigate("/console/find")
		if p := tb.path(); p != "/console/sign-in?till=%2Fconsole%2Ffind" {
			t.Errorf("after signing out, /console/find shows %s", p)
		}
		tb.checkTrail(everyone)
	})

	t.Run("CSRF", func(t *testing.T) {
		p := newPerson("Testa", "Testsson", 2)
		sub := e.createSubject(t, support, p)
		tb := newTab(t, browser, e.base)
		signIn(tb, "support-1", support)
		tb.navigate("/console/subjects/" + sub.GetSubjectId())
		tb.do(chromedp.Click(chromedp.CSS("#restrict summary")),
			chromedp.SetValue(chromedp.ID("restrict-ground"), "RESTRICTION_GROUND_LEGAL_CLAIMS"),
			chromedp.SetValue(chromedp.ID("restrict-channel"), "CHANNEL_PHONE"),
			chromedp.SetValue(chromedp.ID("restrict-reference"), "ärende-2001"))
		form := tb.formValues("#restrict form")

		// The browser sends the form without its token: refused, nothing done.
		code := tb.submit(chromedp.Evaluate[chromedp.Void](`(() => {
			const f = document.querySelector("#restrict form");
			f.querySelector("input[name=csrf]").remove();
			f.submit();
		})()`))
		if code != http.StatusForbidden {
			t.Errorf("a POST without the CSRF token: HTTP %d, want 403", code)
		}
		if msg := tb.text("#problem"); !strings.Contains(msg, "ingenting gjordes") {
			t.Errorf("the refusal says %q", msg)
		}
		tb.shot(shots, "9-csrf-refused")

		// With a wrong token, or from another site with the right one.
		wrong := cloneValues(form)
		wrong.Set("csrf", "AAAA"+form.Get("csrf")[4:])
		if code, _ := tb.post("/console/subjects/"+sub.GetSubjectId()+"/restrict", wrong, nil); code != http.StatusForbidden {
			t.Errorf("a POST with a wrong CSRF token: HTTP %d, want 403", code)
		}
		for _, h := range []map[string]string{
			{"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"},
			{"Origin": "http://evil.example"},
		} {
			if code, _ := tb.post("/console/subjects/"+sub.GetSubjectId()+"/restrict", form, h); code != http.StatusForbidden {
				t.Errorf("a cross-site POST (%v) with the right token: HTTP %d, want 403", h, code)
			}
		}
		got := e.access(t, support, sub.GetSubjectId()).GetSubject()
		if got.GetState() != pdv1.SubjectState_SUBJECT_STATE_ACTIVE || got.GetVersion() != sub.GetVersion() {
			t.Errorf("after refused POSTs: state %v, version %d; want ACTIVE, %d", got.GetState(), got.GetVersion(), sub.GetVersion())
		}
		// The same form from the console's own page acts: what was refused
		// was the token or the origin.
		if code, _ := tb.post("/console/subjects/"+sub.GetSubjectId()+"/restrict", form, map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": e.base}); code != http.StatusSeeOther {
			t.Errorf("the form with its token, same-origin: HTTP %d, want 303", code)
		}
		if st := e.access(t, support, sub.GetSubjectId()).GetSubject().GetState(); st != pdv1.SubjectState_SUBJECT_STATE_RESTRICTED {
			t.Errorf("state %v after the accepted POST", st)
		}
		tb.checkTrail(everyone)
	})

	t.Run("DoubleSubmit", func(t *testing.T) {
		p := newPerson("Dubbel", "Dubbelsson", 3)
		sub := e.createSubject(t, support, p)
		tb := newTab(t, browser, e.base)
		signIn(tb, "support-1", support)
		tb.navigate("/console/subjects/" + sub.GetSubjectId())
		tb.do(chromedp.Click(chromedp.CSS("#history-form summary")),
			chromedp.SetValue(chromedp.ID("history-kind"), "HISTORY_KIND_ERROR_REPORT"),
			chromedp.SetValue(chromedp.ID("history-title"), "Felanmälan"),
			chromedp.SetValue(chromedp.ID("history-body"), "Det går inte att logga in."))
		form := tb.formValues("#history-form form")
		path := "/console/subjects/" + sub.GetSubjectId() + "/history"
		same := map[string]string{"Sec-Fetch-Site": "same-origin", "Origin": e.base}
		for i := range 2 {
			if code, _ := tb.post(path, form, same); code != http.StatusSeeOther {
				t.Fatalf("submission %d: HTTP %d, want 303", i+1, code)
			}
		}
		if n := e.access(t, support, sub.GetSubjectId()).GetSubject().GetHistoryCount(); n != 1 {
			t.Errorf("one form sent twice stored %d entries, want 1", n)
		}
		// A new rendering of the form has a key of its own.
		tb.navigate("/console/subjects/" + sub.GetSubjectId())
		again := tb.formValues("#history-form form")
		if again.Get("idempotency_key") == form.Get("idempotency_key") {
			t.Fatal("a new rendering of the form reused the idempotency key")
		}
		for _, k := range []string{"kind", "title", "body"} {
			again.Set(k, form.Get(k))
		}
		if code, _ := tb.post(path, again, same); code != http.StatusSeeOther {
			t.Fatalf("a new form: HTTP %d, want 303", code)
		}
		if n := e.access(t, support, sub.GetSubjectId()).GetSubject().GetHistoryCount(); n != 2 {
			t.Errorf("after a second form: %d entries, want 2", n)
		}
	})

	t.Run("ErasedMeanwhile", func(t *testing.T) {
		p := newPerson("Borta", "Bortasson", 4)
		sub := e.createSubject(t, support, p)
		tb := newTab(t, browser, e.base)
		signIn(tb, "support-1", support)
		tb.navigate("/console/subjects/" + sub.GetSubjectId())
		if _, err := e.subjects().EraseSubject(as(support), &pdv1.EraseSubjectRequest{IdempotencyKey: "erase-meanwhile", SubjectId: sub.GetSubjectId(),
			Ground: pdv1.ErasureGround_ERASURE_GROUND_CONSENT_WITHDRAWN, Channel: pdv1.Channel_CHANNEL_EMAIL, Reference: "ärende-3001", PerformedBy: "support-1"}); err != nil {
			t.Fatalf("EraseSubject: %v", err)
		}
		tb.do(chromedp.Click(chromedp.CSS("#restrict summary")),
			chromedp.SetValue(chromedp.ID("restrict-ground"), "RESTRICTION_GROUND_ACCURACY_CONTESTED"),
			chromedp.SetValue(chromedp.ID("restrict-channel"), "CHANNEL_PHONE"),
			chromedp.SetValue(chromedp.ID("restrict-reference"), "ärende-3002"))
		if code := tb.submit(chromedp.Click(chromedp.CSS("#restrict button[type=submit]"))); code != http.StatusGone {
			t.Errorf("restricting an erased subject: HTTP %d, want 410", code)
		}
		if msg := tb.text("#problem"); !strings.Contains(msg, "raderade") || !strings.Contains(msg, "samtycke") {
			t.Errorf("the refusal says %q", msg)
		}
		tb.shot(shots, "10-refused-erased")
	})

	t.Run("EraseWithHold", func(t *testing.T) {
		// What a legal hold keeps, the page says is kept.
		p := newPerson("Bokförd", "Bokföringsson", 5)
		sub := e.createSubject(t, support, p)
		if _, err := pdv1.NewRetentionServiceClient(e.conn).PlaceHold(as(support), &pdv1.PlaceHoldRequest{IdempotencyKey: "hold-bokford", SubjectId: sub.GetSubjectId(),
			Basis: pdv1.HoldBasis_HOLD_BASIS_BOOKKEEPING, Categories: []pdv1.DataCategory{pdv1.DataCategory_DATA_CATEGORY_CONTACT},
			TransactionTime: timestamppb.New(e.clock.Now().Add(-24 * time.Hour)), Reference: "faktura-77"}); err != nil {
			t.Fatalf("PlaceHold: %v", err)
		}
		tb := newTab(t, browser, e.base)
		signIn(tb, "support-1", support)
		tb.navigate("/console/subjects/" + sub.GetSubjectId())
		tb.do(chromedp.Click(chromedp.CSS("#erase summary")),
			chromedp.SetValue(chromedp.ID("erase-ground"), "ERASURE_GROUND_NO_LEGITIMATE_REASON"),
			chromedp.SetValue(chromedp.ID("erase-channel"), "CHANNEL_EMAIL"),
			chromedp.SetValue(chromedp.ID("erase-reference"), "ärende-4001"),
			chromedp.Click(chromedp.ID("erase-confirm")))
		if code := tb.submit(chromedp.Click(chromedp.CSS("#erase button[type=submit]"))); code != http.StatusOK {
			t.Fatalf("erase: HTTP %d: %s", code, tb.text("main"))
		}
		if n := tb.text(".notice"); !strings.Contains(n, "utom det som lagen kräver") {
			t.Errorf("after erasing with a hold, the notice says %q", n)
		}
		if h := tb.text("h1"); h != "Raderad registrerad" {
			t.Errorf("the heading of an erased subject whose contact data is kept: %q", h)
		}
		if d := tb.text(".data"); !strings.Contains(d, p.email) || !strings.Contains(d, "raderad") {
			t.Errorf("the kept data shows %q: want the e-mail kept, the rest erased", d)
		}
		if h := tb.text("#h-holds + .table-wrap"); !strings.Contains(h, "Bokföring") || !strings.Contains(h, "faktura-77") {
			t.Errorf("the holds show %q", h)
		}
		tb.shot(shots, "11-erased-with-hold")
	})

	t.Run("FindNobody", func(t *testing.T) {
		tb := newTab(t, browser, e.base)
		signIn(tb, "support-1", support)
		nobody := identityNumber("19800101", 9)
		everyone = append(everyone, nobody, strings.ReplaceAll(nobody, "-", ""))
		if code := tb.submit(chromedp.SendKeys(chromedp.ID("find-query"), nobody+"\r")); code != http.StatusNotFound {
			t.Errorf("find nobody: HTTP %d, want 404", code)
		}
		if msg := tb.text("#problem"); !strings.Contains(msg, "Ingen person") {
			t.Errorf("finding nobody says %q", msg)
		}
		if code := tb.submit(chromedp.SetValue(chromedp.ID("find-query"), "19800101-0000"), chromedp.Submit(chromedp.CSS("main form"))); code != http.StatusBadRequest {
			t.Errorf("find a bad number: HTTP %d, want 400", code)
		}
		if msg := tb.text("#find-query-error"); !strings.Contains(msg, "kontrollsiffra") {
			t.Errorf("a bad check digit says %q", msg)
		}
		tb.checkTrail(everyone)
	})

	t.Run("RevokedPrincipal", func(t *testing.T) {
		token := e.principal(t, "support-2", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF)
		tb := newTab(t, browser, e.base)
		signIn(tb, "support-2", token)
		if _, err := pdv1.NewPrincipalServiceClient(e.conn).RevokePrincipal(as(e.operator), &pdv1.RevokePrincipalRequest{IdempotencyKey: "revoke-support-2", PrincipalId: "support-2"}); err != nil {
			t.Fatalf("RevokePrincipal: %v", err)
		}
		tb.navigate("/console/find")
		if p := tb.path(); !strings.HasPrefix(p, "/console/sign-in") {
			t.Fatalf("a revoked principal's session shows %s", p)
		}
		if n := tb.text(".notice"); !strings.Contains(n, "gäller inte längre") {
			t.Errorf("the notice says %q", n)
		}
		if tb.cookie("pd-console") != nil {
			t.Error("the ended session's cookie is still set")
		}
	})

	t.Run("RotatedToken", func(t *testing.T) {
		// A session lasts while the principal holds the token it signed in
		// with: five newer tokens push it out (the service keeps five).
		token := e.principal(t, "support-3", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF)
		tb := newTab(t, browser, e.base)
		signIn(tb, "support-3", token)
		principals := pdv1.NewPrincipalServiceClient(e.conn)
		for i := range 4 {
			if _, err := principals.IssueToken(as(e.operator), &pdv1.IssueTokenRequest{IdempotencyKey: fmt.Sprintf("rotate-%d", i), PrincipalId: "support-3"}); err != nil {
				t.Fatalf("IssueToken: %v", err)
			}
		}
		if tb.navigate("/console/find"); tb.path() != "/console/find" {
			t.Fatalf("with its token among the five kept: at %s", tb.path())
		}
		if _, err := principals.IssueToken(as(e.operator), &pdv1.IssueTokenRequest{IdempotencyKey: "rotate-4", PrincipalId: "support-3"}); err != nil {
			t.Fatalf("IssueToken: %v", err)
		}
		tb.navigate("/console/find")
		if p := tb.path(); !strings.HasPrefix(p, "/console/sign-in") {
			t.Fatalf("a session whose token was rotated out shows %s", p)
		}
	})

	t.Run("NoConsoleIdentityFromOutside", func(t *testing.T) {
		// The identity the console forwards counts only from this process:
		// neither a REST client nor a gRPC client can claim it, even with
		// the right token hash.
		hash := auth.HashToken(support)
		req, err := http.NewRequest(http.MethodGet, e.base+"/v1/caller", nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, prefix := range []string{"Grpc-Metadata-", ""} {
			req.Header.Set(prefix+auth.ConsolePrincipalKey, "support-1")
			req.Header.Set(prefix+auth.ConsoleTokenHashKey, hash)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Errorf("REST with the console's headers: HTTP %d, want 401", res.StatusCode)
		}
		ctx := metadata.AppendToOutgoingContext(context.Background(), auth.ConsolePrincipalKey, "support-1", auth.ConsoleTokenHashKey, hash)
		if _, err := pdv1.NewPrincipalServiceClient(e.conn).GetCaller(ctx, &pdv1.GetCallerRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Errorf("gRPC with the console's metadata: %v, want UNAUTHENTICATED", err)
		}
	})

	t.Run("IdleExpiry", func(t *testing.T) {
		tb := newTab(t, browser, e.base)
		signIn(tb, "support-1", support)
		e.clock.Advance(29 * time.Minute)
		tb.navigate("/console/find")
		if p := tb.path(); p != "/console/find" {
			t.Fatalf("after 29 idle minutes: at %s", p)
		}
		e.clock.Advance(31 * time.Minute)
		tb.navigate("/console/find")
		if p := tb.path(); !strings.HasPrefix(p, "/console/sign-in") {
			t.Fatalf("after 31 idle minutes: at %s, want the sign-in page", p)
		}
		if n := tb.text(".notice"); !strings.Contains(n, "gått ut") {
			t.Errorf("the notice says %q", n)
		}
		// The sessions of everyone who stopped (all of the earlier parts')
		// are removed as someone signs in.
		if _, expired := e.sessions(t); expired == 0 {
			t.Fatal("no expired session in the store to remove")
		}
		signIn(tb, "support-1", support)
		if all, expired := e.sessions(t); expired != 0 || all == 0 {
			t.Errorf("after a sign-in: %d sessions, %d of them expired; want none expired", all, expired)
		}
	})

	t.Run("NotSupportStaff", func(t *testing.T) {
		tb := newTab(t, browser, e.base)
		tb.navigate("/console/sign-in")
		tb.do(chromedp.SetValue(chromedp.ID("principal_id"), "billing-1"))
		if code := tb.submit(chromedp.SendKeys(chromedp.ID("token"), billing+"\r")); code != http.StatusForbidden {
			t.Errorf("a billing system signing in: HTTP %d, want 403", code)
		}
		if tb.cookie("pd-console") != nil {
			t.Error("a billing system got a session")
		}
	})

	// Nothing personal in the server's log either.
	logs := strings.ToLower(e.logs.String())
	for _, p := range everyone {
		if strings.Contains(logs, strings.ToLower(p)) {
			t.Errorf("the server's log holds a personal value")
		}
	}
}

func isRestricted(err error) bool {
	st := status.Convert(err)
	if st.Code() != codes.FailedPrecondition {
		return false
	}
	for _, d := range st.Details() {
		if pf, ok := d.(*errdetails.PreconditionFailure); ok && len(pf.GetViolations()) > 0 && pf.GetViolations()[0].GetType() == "PROCESSING_RESTRICTED" {
			return true
		}
	}
	return false
}

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	return out
}
