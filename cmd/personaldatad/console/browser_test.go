package console_test

import (
	"context"
	_ "embed"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's Chromium, which .ci/run installs.
const chromiumPath = "/usr/bin/chromium"

// newBrowser starts one headless Chromium for the test and its subtests,
// each of which opens tabs of its own (see tab).
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if os.Getenv("PERSONALDATA_SKIP_BROWSER") == "1" {
		t.Skip("PERSONALDATA_SKIP_BROWSER=1: the console's browser tests do not run")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the console's tests need Chromium at %s (Debian package chromium; .ci/run installs it), "+
			"or PERSONALDATA_SKIP_BROWSER=1 to skip them: %v", chromiumPath, err)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("lang", "sv-SE"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	// Start it now, so that a browser that cannot start fails here.
	if err := chromedp.Do(browser); err != nil {
		cancelBrowser()
		cancelAlloc()
		t.Fatalf("start Chromium: %v", err)
	}
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	return browser
}

// tab is a page in a browser context of its own (its own cookies), which
// records every URL it requested and the headers of every page.
type tab struct {
	t    *testing.T
	ctx  context.Context
	base string

	mu    sync.Mutex
	urls  []string
	pages []*network.Response
}

func newTab(t *testing.T, browser context.Context, base string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel() })
	tb := &tab{t: t, ctx: ctx, base: base}
	if err := chromedp.Listen(ctx, func(ev any) {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			tb.urls = append(tb.urls, ev.Request.URL+ev.Request.URLFragment)
			if ev.RedirectResponse != nil {
				if loc, ok := header(ev.RedirectResponse.Headers, "Location"); ok {
					tb.urls = append(tb.urls, loc)
				}
			}
		case *network.EventResponseReceived:
			if ev.Type == network.ResourceTypeDocument {
				tb.pages = append(tb.pages, ev.Response)
			}
		}
	}); err != nil {
		t.Fatalf("listen: %v", err)
	}
	return tb
}

func header(h network.Headers, name string) (string, bool) {
	for k, v := range h {
		if strings.EqualFold(k, name) {
			s, ok := v.(string)
			return s, ok
		}
	}
	return "", false
}

// do runs actions, failing the test on an error.
func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, actions...); err != nil {
		tb.t.Fatalf("browser: %v", err)
	}
}

// navigate opens path and returns the final response's status.
func (tb *tab) navigate(path string) int64 {
	tb.t.Helper()
	res, err := chromedp.Run(tb.ctx, chromedp.NavigateResponse(tb.base+path))
	if err != nil {
		tb.t.Fatalf("navigate %s: %v", path, err)
	}
	return res.Status
}

// submit runs actions that send a form and returns the status of the page
// the browser lands on.
func (tb *tab) submit(actions ...chromedp.Action[chromedp.Void]) int64 {
	tb.t.Helper()
	res, err := chromedp.RunResponse(tb.ctx, actions...)
	if err != nil {
		tb.t.Fatalf("submit: %v", err)
	}
	if res == nil {
		tb.t.Fatal("submit: no page loaded")
	}
	return res.Status
}

// text is the text of the element sel finds.
func (tb *tab) text(sel string) string {
	tb.t.Helper()
	// An element that is not there fails in seconds, not at the tab's end.
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		tb.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// path is the path (and query) of the page shown.
func (tb *tab) path() string {
	tb.t.Helper()
	loc, err := chromedp.Run(tb.ctx, chromedp.Location())
	if err != nil {
		tb.t.Fatalf("location: %v", err)
	}
	u, err := url.Parse(loc)
	if err != nil {
		tb.t.Fatalf("location %q: %v", loc, err)
	}
	return u.RequestURI()
}

func eval[T any](tb *tab, js string) T {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[T](js))
	if err != nil {
		tb.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

// checkPage asserts what every page must keep: each form field labelled,
// nothing personal in the title, nothing in the browser's storage, no
// cookie that script can read.
func (tb *tab) checkPage(personal []string) {
	tb.t.Helper()
	if bad := eval[[]string](tb, `Array.from(document.querySelectorAll("input:not([type=hidden]), select, textarea"))
		.filter(e => e.labels.length === 0).map(e => e.id || e.name)`); len(bad) > 0 {
		tb.t.Errorf("%s: fields without a label: %v", tb.path(), bad)
	}
	title, err := chromedp.Run(tb.ctx, chromedp.Title())
	if err != nil {
		tb.t.Fatalf("title: %v", err)
	}
	for _, p := range personal {
		if strings.Contains(strings.ToLower(title), strings.ToLower(p)) {
			tb.t.Errorf("%s: the title %q holds personal data", tb.path(), title)
		}
	}
	if lang := eval[string](tb, `document.documentElement.lang`); lang != "sv" {
		tb.t.Errorf("%s: lang %q, want sv", tb.path(), lang)
	}
	if n := eval[int](tb, `localStorage.length + sessionStorage.length`); n != 0 {
		tb.t.Errorf("%s: %d items in the browser's storage", tb.path(), n)
	}
	if c := eval[string](tb, `document.cookie`); c != "" {
		tb.t.Errorf("%s: script can read the cookies %q", tb.path(), c)
	}
	tb.checkAxe()
}

// axeSource is axe-core, vendored under testdata (see its README).
//
//go:embed testdata/axe-core/axe.min.js
var axeSource string

// axeViolation is one rule axe-core found broken, with where.
type axeViolation struct {
	ID      string   `json:"id"`
	Help    string   `json:"help"`
	Targets []string `json:"targets"`
}

// checkAxe runs axe-core on the page shown, with every rule it runs by
// default (WCAG 2.x A and AA and its best practices), and fails the test
// on any violation. The script goes in through DevTools, which the
// page's Content-Security-Policy does not govern: the pages stay as
// served.
func (tb *tab) checkAxe() {
	tb.t.Helper()
	if !eval[bool](tb, `typeof window.axe === "object"`) {
		if _, err := chromedp.Run(tb.ctx, chromedp.Evaluate[any](axeSource+";0")); err != nil {
			tb.t.Fatalf("load axe-core: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(tb.ctx, time.Minute)
	defer cancel()
	vs, err := chromedp.Run(ctx, chromedp.Evaluate[[]axeViolation](`axe.run(document, {resultTypes: ["violations"]}).then(r =>
		r.violations.map(v => ({id: v.id, help: v.help, targets: v.nodes.map(n => n.target.join(" "))})))`, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("axe-core: %v", err)
	}
	for _, v := range vs {
		tb.t.Errorf("%s: axe-core %s (%s): %v", tb.path(), v.ID, v.Help, v.Targets)
	}
}

// shot saves a full-page PNG of what the tab shows.
func (tb *tab) shot(dir, name string) {
	tb.t.Helper()
	png, err := chromedp.Run(tb.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		tb.t.Fatalf("screenshot %s: %v", name, err)
	}
}

// checkTrail asserts that no URL the tab requested, or was sent to, holds
// a personal value, and that every page came with the console's security
// headers.
func (tb *tab) checkTrail(personal []string) {
	tb.t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if len(tb.urls) == 0 || len(tb.pages) == 0 {
		tb.t.Fatal("the tab recorded no request")
	}
	for _, u := range tb.urls {
		low := strings.ToLower(u)
		if un, err := url.PathUnescape(low); err == nil {
			low += " " + un
		}
		for _, p := range personal {
			if strings.Contains(low, strings.ToLower(p)) {
				tb.t.Errorf("a URL holds personal data: %s", u)
			}
		}
	}
	want := map[string]string{
		"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"Cache-Control":           "no-store",
	}
	for _, res := range tb.pages {
		if !strings.HasPrefix(res.URL, tb.base+"/console/") {
			continue
		}
		for name, v := range want {
			if got, _ := header(res.Headers, name); got != v {
				tb.t.Errorf("%s (HTTP %d): %s is %q, want %q", res.URL, res.Status, name, got, v)
			}
		}
	}
}

// cookie is the value of the tab's cookie name for the console.
func (tb *tab) cookie(name string) *network.Cookie {
	tb.t.Helper()
	res, err := chromedp.Call(tb.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{tb.base + "/console/"}})
	if err != nil {
		tb.t.Fatalf("cookies: %v", err)
	}
	for _, c := range res.Cookies {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// post sends a form to the console outside the browser, with the tab's
// session cookie and the given headers, and returns the status without
// following a redirect.
func (tb *tab) post(path string, form url.Values, headers map[string]string) (int, http.Header) {
	tb.t.Helper()
	req, err := http.NewRequest(http.MethodPost, tb.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		tb.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if c := tb.cookie("pd-console"); c != nil {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		tb.t.Fatalf("POST %s: %v", path, err)
	}
	res.Body.Close()
	return res.StatusCode, res.Header
}

// formValues are the values of the fields of the form sel finds, as the
// browser would send them.
func (tb *tab) formValues(sel string) url.Values {
	tb.t.Helper()
	pairs := eval[[][2]string](tb, fmt.Sprintf(`Array.from(new FormData(document.querySelector(%q)).entries())`, sel))
	v := url.Values{}
	for _, p := range pairs {
		v.Add(p[0], p[1])
	}
	return v
}
