package console_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// shotAt saves a full-page screenshot of the tab at a window width of
// width CSS pixels, and says whether anything is wider than the window.
func (tb *tab) shotAt(dir, name string, width int64) {
	tb.t.Helper()
	tb.do(chromedp.EmulateViewport(width, 900))
	defer tb.do(chromedp.EmulateViewport(1280, 900))
	if w := eval[[]int](tb, `[document.documentElement.scrollWidth, document.documentElement.clientWidth]`); w[0] > w[1] {
		tb.t.Errorf("%s at %d px: the page is %d CSS pixels wide", tb.path(), width, w[0])
	}
	tb.shot(dir, fmt.Sprintf("%s-%d", name, width))
}

// TestConsolePlainSwedish walks what a Swedish support agent meets (issue
// 25, "The console") in Chromium: every page in words of the trade, no
// name of the API's codes, numbers and addresses as Swedes write them, the
// choices that apply and no others, and axe-core clean on every page
// (checkPage).
func TestConsolePlainSwedish(t *testing.T) {
	browserCtx := newBrowser(t)
	e := start(t)
	shots := screenshots(t)
	support := e.principal(t, "support-sv", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF)
	requests := pdv1.NewRightsRequestServiceClient(e.conn)

	tolvan := person{identity: "19121212-1212", given: "Tolvan", family: "Tolvansson", email: "tolvan@example.se", phone: "070-123 45 67"}
	olle := person{identity: identityNumber("19800101", 11), given: "Olle", family: "Raderadsson", email: "olle@example.se", phone: "070-123 45 67"}
	everyone := append(tolvan.personal(), olle.personal()...)
	sub := e.createSubject(t, support, tolvan)
	erased := e.createSubject(t, support, olle)

	open := func(key string, kind pdv1.RightsRequestKind, identity string) *pdv1.RightsRequest {
		t.Helper()
		res, err := requests.OpenRightsRequest(as(support), &pdv1.OpenRightsRequestRequest{IdempotencyKey: key, ControllerId: "company",
			Kind: kind, Channel: pdv1.Channel_CHANNEL_LETTER, ReceiveTime: timestamppb.New(e.clock.Now().Add(-time.Hour)),
			ClaimedIdentity: &pdv1.ClaimedIdentity{Key: &pdv1.ClaimedIdentity_IdentityNumber{IdentityNumber: identity}},
			Reference:       "brev-2026-11-27-nummer-" + key})
		if err != nil {
			t.Fatalf("OpenRightsRequest %s: %v", key, err)
		}
		return res.GetRequest()
	}
	access := open("access", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, tolvan.identity)
	erasure := open("erasure", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ERASURE, tolvan.identity)
	ofErased := open("of-erased", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, olle.identity)
	if _, err := e.subjects().EraseSubject(as(support), &pdv1.EraseSubjectRequest{IdempotencyKey: "erase-olle", SubjectId: erased.GetSubjectId(),
		Ground: pdv1.ErasureGround_ERASURE_GROUND_NO_LEGITIMATE_REASON, Channel: pdv1.Channel_CHANNEL_LETTER, Reference: "ärende-9", PerformedBy: "support-sv"}); err != nil {
		t.Fatalf("EraseSubject: %v", err)
	}

	tb := newTab(t, browserCtx, e.base)

	// Signed out, a link to a request leads to the sign-in page, which
	// asks in a support agent's words, and then to that request.
	want := "/console/requests/" + access.GetRequestId()
	tb.navigate(want)
	if p := tb.path(); !strings.HasPrefix(p, "/console/sign-in?") || !strings.Contains(p, url.QueryEscape(want)) {
		t.Fatalf("signed out, %s led to %s", want, p)
	}
	if l := tb.text(`label[for="principal_id"]`); l != "Ditt användar-id" {
		t.Errorf("the id's label is %q", l)
	}
	if l := tb.text(`label[for="token"]`); l != "Din inloggningsnyckel" {
		t.Errorf("the token's label is %q", l)
	}
	if h := tb.text("#token-hint"); !strings.Contains(h, "IT-driften") {
		t.Errorf("the sign-in does not say where the key comes from: %q", h)
	}
	if page := strings.ToLower(tb.text("main")); strings.Contains(page, "principal") || strings.Contains(page, "token") {
		t.Errorf("the sign-in page speaks of principals or tokens: %q", page)
	}
	tb.checkPage(everyone)
	tb.shotAt(shots, "sv-1-sign-in", 360)
	tb.do(chromedp.SetValue(chromedp.ID("principal_id"), "support-sv"))
	if code := tb.submit(chromedp.SendKeys(chromedp.ID("token"), support+"\r")); code != http.StatusOK || tb.path() != want {
		t.Fatalf("after signing in: HTTP %d at %s, want %s", code, tb.path(), want)
	}

	// The request's page: the next step in words, the reasons an access
	// request can be refused for (no exception to erasure), the customers
	// to forward to as choices, and axe-core clean.
	if n := tb.text("#next-step"); !strings.HasPrefix(n, "Styrk identiteten") {
		t.Errorf("the next step says %q", n)
	}
	reasons := eval[[]string](tb, `Array.from(document.querySelectorAll("#decide-reason option")).map(o => o.textContent)`)
	for _, r := range reasons {
		if strings.Contains(r, "17.3") {
			t.Errorf("an access request offers the erasure exception %q", r)
		}
	}
	tb.checkPage(everyone)
	tb.shotAt(shots, "sv-2-request", 1280)
	tb.shotAt(shots, "sv-2-request", 360)

	// A wrong code: its message once in the summary, once at the field,
	// never the API's name of the code.
	if _, err := requests.SendVerificationCode(as(support), &pdv1.SendVerificationCodeRequest{IdempotencyKey: "code-1", RequestId: access.GetRequestId(),
		Channel: pdv1.ContactChannel_CONTACT_CHANNEL_EMAIL}); err != nil {
		t.Fatalf("SendVerificationCode: %v", err)
	}
	tb.navigate(want)
	tb.do(chromedp.SendKeys(chromedp.ID("confirm-code-code"), "00000000"))
	tb.submit(chromedp.Click(chromedp.CSS("#confirm-code button[type=submit]")))
	box := tb.text("#problem")
	if n := strings.Count(box, "stämmer inte"); n != 1 {
		t.Errorf("the problem box says the code does not match %d times: %q", n, box)
	}
	if strings.Contains(box, "InvalidArgument") || strings.Contains(box, "Felkod") {
		t.Errorf("the problem box names the API's code: %q", box)
	}
	tb.checkPage(everyone)
	tb.shotAt(shots, "sv-3-wrong-code", 1280)

	// An erasure request offers the exceptions to erasure.
	tb.navigate("/console/requests/" + erasure.GetRequestId())
	reasons = eval[[]string](tb, `Array.from(document.querySelectorAll("#decide-reason option")).map(o => o.textContent)`)
	if !strings.Contains(strings.Join(reasons, "|"), "17.3 b") {
		t.Errorf("an erasure request does not offer the exceptions to erasure: %q", reasons)
	}
	tb.checkPage(everyone)

	// An erased person's request offers no code and no call back, and
	// says why.
	tb.navigate("/console/requests/" + ofErased.GetRequestId())
	if n := eval[int](tb, `document.querySelectorAll("#send-code").length`); n != 0 {
		t.Error("an erased person's request offers to send a code")
	}
	if b := tb.text("#erased-banner"); !strings.Contains(b, "raderade") || !strings.Contains(b, "ingen kod") {
		t.Errorf("the erased person's request says %q", b)
	}
	methods := eval[[]string](tb, `Array.from(document.querySelectorAll("#attest-method option")).map(o => o.value)`)
	if strings.Contains(strings.Join(methods, " "), "CALL_BACK") {
		t.Errorf("an erased person's request offers a call back: %q", methods)
	}
	tb.checkPage(everyone)
	tb.shotAt(shots, "sv-4-request-of-erased", 1280)

	// The queue at 1280 px: every column in view, the next step in words.
	tb.navigate("/console/requests")
	if w := eval[[]int](tb, `(e => [e.scrollWidth, e.clientWidth])(document.querySelector(".queue").parentElement)`); w[0] > w[1] {
		t.Errorf("at 1280 px the queue is %d pixels wide in %d: the last columns are cut", w[0], w[1])
	}
	next := eval[[]string](tb, `Array.from(document.querySelectorAll('.queue td[data-label="Nästa steg"]')).map(c => c.textContent)`)
	for _, n := range next {
		if strings.Contains(n, "inte styrkt") {
			t.Errorf("the queue's next step is a state: %q", n)
		}
	}
	tb.checkPage(everyone)
	tb.shotAt(shots, "sv-5-queue", 1280)
	tb.shotAt(shots, "sv-5-queue", 360)

	// Find: "abc" is neither form, and the message names both.
	tb.navigate("/console/find")
	tb.submit(chromedp.SendKeys(chromedp.ID("find-query"), "abc\r"))
	if msg := tb.text("#find-query-error"); !strings.Contains(msg, "e-postadress") || !strings.Contains(msg, "siffror") {
		t.Errorf("searching abc says %q", msg)
	}
	if box := tb.text("#problem"); strings.Contains(box, "InvalidArgument") || strings.Contains(box, "Felkod") {
		t.Errorf("the problem box names the API's code: %q", box)
	}
	tb.checkPage(everyone)
	tb.shotAt(shots, "sv-6-find-abc", 360)

	// The subject's page: the phone number as Swedes write it, the
	// retention in Swedish, no version that disagrees with the changes.
	tb.navigate("/console/subjects/" + sub.GetSubjectId())
	page := tb.text("main")
	if !strings.Contains(page, "070-123 45 67") || strings.Contains(page, "+46701234567") {
		t.Errorf("the phone number is not written the Swedish way: %q", page)
	}
	if r := tb.text("#retention"); !strings.Contains(r, "bokföringslagen") || strings.Contains(r, "Kept") {
		t.Errorf("the retention says %q", r)
	}
	tb.checkPage(everyone)
	tb.shotAt(shots, "sv-7-subject", 1280)
	tb.shotAt(shots, "sv-7-subject", 360)

	// The erased subject: every change the version counts is listed, or
	// no version is shown.
	tb.navigate("/console/subjects/" + erased.GetSubjectId())
	if page := tb.text("main"); strings.Contains(page, "Version") {
		t.Errorf("the erased subject's page shows a version its changes do not explain: %q", page)
	}
	tb.checkPage(everyone)

	// The 404 page says it once.
	if code := tb.navigate("/console/nowhere"); code != http.StatusNotFound {
		t.Errorf("a path the console lacks: HTTP %d", code)
	}
	if n := strings.Count(tb.text("main"), "Sidan finns inte"); n != 1 {
		t.Errorf("the 404 page says \"Sidan finns inte\" %d times", n)
	}
	tb.checkPage(everyone)
	tb.shotAt(shots, "sv-8-not-found", 360)
	tb.checkTrail(everyone)
}

// TestSignInReturnsNoFurther: the sign-in form returns only to the
// console's own pages; any other address leads to the first section.
func TestSignInReturnsNoFurther(t *testing.T) {
	e := start(t)
	support := e.principal(t, "support-ret", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF)
	jar := &cookieJar{}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct{ till, want string }{
		{"/console/requests?status=alla", "/console/requests?status=alla"},
		{"//evil.example/console/", "/console/find"},
		{"https://evil.example/console/find", "/console/find"},
		{"/\\evil.example", "/console/find"},
		{"/console/../admin", "/console/find"},
		{"/console/sign-out", "/console/find"},
		{"", "/console/find"},
	} {
		// The form, with its cookie and token.
		res, err := client.Get(e.base + "/console/sign-in?till=" + url.QueryEscape(tc.till))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		jar.take(res)
		csrf := between(string(body), `name="csrf" value="`, `"`)
		form := url.Values{"csrf": {csrf}, "principal_id": {"support-ret"}, "token": {support}, "till": {tc.till}}
		req, _ := http.NewRequest(http.MethodPost, e.base+"/console/sign-in", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		jar.add(req)
		res, err = client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if loc := res.Header.Get("Location"); res.StatusCode != http.StatusSeeOther || loc != tc.want {
			t.Errorf("till %q: HTTP %d to %q, want %s", tc.till, res.StatusCode, loc, tc.want)
		}
		jar.cookies = nil
	}
}

// cookieJar keeps the cookies of one sign-in, for plain HTTP clients.
type cookieJar struct{ cookies []*http.Cookie }

func (j *cookieJar) take(res *http.Response) { j.cookies = append(j.cookies, res.Cookies()...) }
func (j *cookieJar) add(req *http.Request) {
	for _, c := range j.cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
}

func between(s, start, end string) string {
	_, rest, ok := strings.Cut(s, start)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, end)
	return v
}
