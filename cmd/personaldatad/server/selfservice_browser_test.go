package server_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The browser harness of the data subjects' page follows the console's
// (cmd/personaldatad/console/browser_test.go): Debian's Chromium, one
// browser per test and a browser context per tab, axe-core from the
// console's vendored copy, full-page screenshots.

const chromiumPath = "/usr/bin/chromium"

func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if os.Getenv("PERSONALDATA_SKIP_BROWSER") == "1" {
		t.Skip("PERSONALDATA_SKIP_BROWSER=1: the browser tests do not run")
	}
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("the page's tests need Chromium at %s (Debian package chromium; .ci/run installs it), "+
			"or PERSONALDATA_SKIP_BROWSER=1 to skip them: %v", chromiumPath, err)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("disable-extensions", true),
		chromedp.Flag("lang", "sv-SE"), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
	)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	if err := chromedp.Do(browser); err != nil {
		cancelBrowser()
		cancelAlloc()
		t.Fatalf("start Chromium: %v", err)
	}
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	return browser
}

// selfTab is a tab of its own browser context on the page at base.
type selfTab struct {
	t    *testing.T
	ctx  context.Context
	base string
}

func newSelfTab(t *testing.T, browser context.Context, base string) *selfTab {
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancel() })
	return &selfTab{t: t, ctx: ctx, base: base}
}

func (tb *selfTab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, actions...); err != nil {
		tb.t.Fatalf("browser: %v", err)
	}
}

func (tb *selfTab) navigate(path string) int64 {
	tb.t.Helper()
	res, err := chromedp.Run(tb.ctx, chromedp.NavigateResponse(tb.base+path))
	if err != nil {
		tb.t.Fatalf("navigate %s: %v", path, err)
	}
	return res.Status
}

// submit runs actions that send a form; the status of the page landed on.
func (tb *selfTab) submit(actions ...chromedp.Action[chromedp.Void]) int64 {
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

func selfEval[T any](tb *selfTab, js string) T {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[T](js))
	if err != nil {
		tb.t.Fatalf("evaluate %s: %v", js, err)
	}
	return v
}

func (tb *selfTab) text() string { return selfEval[string](tb, `document.body.innerText`) }

// checkPage asserts what every page keeps: Swedish, labelled fields,
// nothing personal in the title or the browser's storage, no cookie that
// script reads, and no axe-core violation.
func (tb *selfTab) checkPage(personal []string) {
	tb.t.Helper()
	if bad := selfEval[[]string](tb, `Array.from(document.querySelectorAll("input:not([type=hidden]), select, textarea"))
		.filter(e => e.labels.length === 0).map(e => e.id || e.name)`); len(bad) > 0 {
		tb.t.Errorf("fields without a label: %v", bad)
	}
	title := selfEval[string](tb, `document.title`)
	for _, p := range personal {
		if strings.Contains(strings.ToLower(title), strings.ToLower(p)) {
			tb.t.Errorf("the title %q holds personal data", title)
		}
	}
	if lang := selfEval[string](tb, `document.documentElement.lang`); lang != "sv" {
		tb.t.Errorf("lang %q, want sv", lang)
	}
	if n := selfEval[int](tb, `localStorage.length + sessionStorage.length`); n != 0 {
		tb.t.Errorf("%d items in the browser's storage", n)
	}
	if c := selfEval[string](tb, `document.cookie`); c != "" {
		tb.t.Errorf("script can read the cookies %q", c)
	}
	if over := selfEval[bool](tb, `document.documentElement.scrollWidth > window.innerWidth`); over {
		tb.t.Errorf("%q: the page is wider than the window", title)
	}
	tb.checkAxe(title)
}

type axeViolation struct {
	ID      string   `json:"id"`
	Help    string   `json:"help"`
	Targets []string `json:"targets"`
}

// checkAxe runs axe-core (the console's vendored copy, injected through
// DevTools so the page's CSP stays as served) and fails on any violation.
func (tb *selfTab) checkAxe(where string) {
	tb.t.Helper()
	if !selfEval[bool](tb, `typeof window.axe === "object"`) {
		src, err := os.ReadFile(filepath.Join("..", "console", "testdata", "axe-core", "axe.min.js"))
		if err != nil {
			tb.t.Fatalf("axe-core: %v", err)
		}
		if _, err := chromedp.Run(tb.ctx, chromedp.Evaluate[any](string(src)+";0")); err != nil {
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
		tb.t.Errorf("%q: axe-core %s (%s): %v", where, v.ID, v.Help, v.Targets)
	}
}

// shots saves the page at 1,280 px and at 360 px wide.
func (tb *selfTab) shots(dir, name string) {
	tb.t.Helper()
	for _, w := range []int64{1280, 360} {
		tb.do(chromedp.EmulateViewport(w, 800))
		png, err := chromedp.Run(tb.ctx, chromedp.FullScreenshot(100))
		if err != nil {
			tb.t.Fatalf("screenshot %s: %v", name, err)
		}
		if w == 360 {
			if over := selfEval[bool](tb, `document.documentElement.scrollWidth > window.innerWidth`); over {
				tb.t.Errorf("%s: wider than 360 px", name)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name+"-"+map[int64]string{1280: "1280", 360: "360"}[w]+".png"), png, 0o644); err != nil {
			tb.t.Fatal(err)
		}
	}
	tb.do(chromedp.EmulateReset())
}

// sessionCookie is the tab's session cookie for the page, or nil.
func (tb *selfTab) sessionCookie() *network.Cookie {
	tb.t.Helper()
	res, err := chromedp.Call(tb.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{tb.base + "/"}})
	if err != nil {
		tb.t.Fatalf("cookies: %v", err)
	}
	for _, c := range res.Cookies {
		if c.Name == "__Host-pd-self" {
			return c
		}
	}
	return nil
}

// download fetches href as the tab's session would.
func (tb *selfTab) download(href string) (int, string) {
	tb.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, tb.base+href, nil)
	if c := tb.sessionCookie(); c != nil {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Content-Disposition") + "\n" + string(b)
}

// focus presses Tab until the element js finds has the focus.
func (tb *selfTab) focus(js string) {
	tb.t.Helper()
	for range 20 {
		tb.do(chromedp.KeyEvent("\t"))
		if selfEval[bool](tb, `document.activeElement === (`+js+`)`) {
			if !selfEval[bool](tb, `getComputedStyle(document.activeElement).outlineStyle !== "none"`) {
				tb.t.Errorf("%s has the focus and shows no outline", js)
			}
			return
		}
	}
	tb.t.Fatalf("Tab never reached %s", js)
}
