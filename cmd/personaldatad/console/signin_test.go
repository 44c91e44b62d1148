package console_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/example/personaldata/cmd/personaldatad/console"
	"github.com/example/personaldata/cmd/personaldatad/server"
	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// browserless is a plain HTTP client of the console from one loopback
// address, with its own cookies, that does not follow redirects.
type browserless struct {
	t    *testing.T
	base string
	c    *http.Client
}

func (e *env) clientFrom(t *testing.T, ip string) *browserless {
	t.Helper()
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 10 * time.Second}
	return &browserless{t: t, base: e.base, c: &http.Client{
		Timeout:       30 * time.Second,
		Transport:     &http.Transport{DialContext: dialer.DialContext, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn fills in the sign-in form, with no session yet, and sends it: the
// status, the answer's headers and its page.
func (b *browserless) signIn(id, token string) (int, http.Header, string) {
	b.t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		b.t.Fatal(err)
	}
	b.c.Jar = jar
	_, _, page := b.do(http.MethodGet, "/console/sign-in", nil)
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		b.t.Fatal("the sign-in page has no form token")
	}
	return b.do(http.MethodPost, "/console/sign-in", url.Values{"csrf": {m[1]}, "principal_id": {id}, "token": {token}})
}

func (b *browserless) do(method, path string, form url.Values) (int, http.Header, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(context.Background(), method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	page, err := io.ReadAll(res.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return res.StatusCode, res.Header, string(page)
}

// metric is the sum of the samples of the family name on /metrics whose
// labels contain every one of labels.
func (e *env) metric(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	res, err := http.Get(e.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var sum float64
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(line, l)
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return sum
}

// TestSignInLimit: failed sign-ins are limited per client address and in
// all; a limited attempt is answered 429 with Retry-After and a page that
// says why, its credentials never checked, not even right ones.
func TestSignInLimit(t *testing.T) {
	e := startWith(t, func(cfg *server.Config) {
		cfg.ConsoleSignIn = console.SignInLimits{
			PerAddress: console.Limit{Every: time.Hour, Burst: 3},
			Global:     console.Limit{Every: time.Hour, Burst: 5},
		}
	})
	support := e.principal(t, "support-1", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF)
	wrong := "pd1.support-1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	one, two, three := e.clientFrom(t, "127.0.0.1"), e.clientFrom(t, "127.0.0.2"), e.clientFrom(t, "127.0.0.3")

	// checks counts the credentials the console had the service check.
	checks := func() float64 {
		return e.metric(t, "grpc_server_started_total", `grpc_method="GetCaller"`)
	}
	expect := func(b *browserless, token string, want int) (http.Header, string) {
		t.Helper()
		code, h, page := b.signIn("support-1", token)
		if code != want {
			t.Fatalf("sign-in: HTTP %d, want %d", code, want)
		}
		return h, page
	}
	signedIn := func(b *browserless, token string) {
		t.Helper()
		h, _ := expect(b, token, http.StatusSeeOther)
		if loc := h.Get("Location"); loc != "/console/find" {
			t.Fatalf("signed in: sent to %q", loc)
		}
	}
	limited := func(b *browserless, token, scope string) {
		t.Helper()
		before, counted := checks(), e.metric(t, "personaldata_console_sign_in_limited_total", `scope="`+scope+`"`)
		h, page := expect(b, token, http.StatusTooManyRequests)
		if ra := h.Get("Retry-After"); ra != "3600" {
			t.Errorf("Retry-After %q, want 3600 (a failure comes back each hour)", ra)
		}
		if !strings.Contains(page, "För många misslyckade inloggningsförsök") || !strings.Contains(page, "vänta 60 minuter") {
			t.Errorf("the limited page does not say so:\n%s", page)
		}
		if !strings.Contains(page, `id="token"`) {
			t.Error("the limited page has no sign-in form")
		}
		if strings.Contains(page, token) {
			t.Error("the limited page shows the token")
		}
		for _, ck := range h.Values("Set-Cookie") {
			if strings.HasPrefix(ck, "pd-console=") {
				t.Errorf("a limited sign-in set a session cookie: %s", ck)
			}
		}
		if after := checks(); after != before {
			t.Errorf("a limited sign-in had its credentials checked (%v GetCaller calls, then %v)", before, after)
		}
		if got := e.metric(t, "personaldata_console_sign_in_limited_total", `scope="`+scope+`"`); got != counted+1 {
			t.Errorf("personaldata_console_sign_in_limited_total{scope=%q} %v, want %v", scope, got, counted+1)
		}
	}

	// Under its limit an address signs in, failures before or not; a
	// success takes nothing of the limit.
	n := checks()
	expect(one, wrong, http.StatusUnauthorized)
	expect(one, wrong, http.StatusUnauthorized)
	if got := checks(); got != n+2 {
		t.Fatalf("the failures were not checked: %v GetCaller calls, want %v", got, n+2)
	}
	signedIn(one, support)
	signedIn(one, support)
	expect(one, wrong, http.StatusUnauthorized) // its third failure, the last of its burst

	// Now the next attempt is refused unchecked, right token or wrong.
	limited(one, support, "address")
	limited(one, wrong, "address")

	// Another address is not hindered by the first one's failures...
	signedIn(two, support)
	expect(two, wrong, http.StatusUnauthorized)
	expect(two, wrong, http.StatusUnauthorized) // the fifth failure in all

	// ...until all of them have failed as often as the global ceiling
	// allows: then every address waits, under its own limit or not.
	limited(three, support, "global")
	limited(two, support, "global")

	// A failure comes back each hour.
	e.clock.Advance(time.Hour)
	signedIn(one, support)

	// The log says a limit was reached, never by which address or token.
	logs := e.logs.String()
	if !strings.Contains(logs, "sign-in failures reached the limit") {
		t.Error("the log does not say a limit was reached")
	}
	for _, s := range []string{"127.0.0.2", "127.0.0.3", wrong, support} {
		if strings.Contains(logs, s) {
			t.Errorf("the log holds %q", s)
		}
	}
}

// What a person sees in the browser when sign-ins are limited: the form
// again, with the wait in words, and the page as safe as any other.
func TestSignInLimitedInBrowser(t *testing.T) {
	browser := newBrowser(t)
	e := startWith(t, func(cfg *server.Config) {
		cfg.ConsoleSignIn = console.SignInLimits{PerAddress: console.Limit{Every: time.Hour, Burst: 1}}
	})
	tb := newTab(t, browser, e.base)
	tb.navigate("/console/sign-in")
	for _, want := range []int64{http.StatusUnauthorized, http.StatusTooManyRequests} {
		tb.do(chromedp.SetValue(chromedp.ID("principal_id"), "support-1"))
		if code := tb.submit(chromedp.SendKeys(chromedp.ID("token"), "pd1.support-1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r")); code != want {
			t.Fatalf("sign-in: HTTP %d, want %d", code, want)
		}
	}
	if msg := tb.text("#problem"); !strings.Contains(msg, "För många misslyckade inloggningsförsök") || !strings.Contains(msg, "60 minuter") {
		t.Errorf("limited: the page says %q", msg)
	}
	tb.checkPage(nil)
	tb.shot(screenshots(t), "2b-sign-in-limited")
}
