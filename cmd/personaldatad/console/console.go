// Package console is the support console: web pages, in Swedish, served by
// personaldatad under /console/, where support staff sign in with their own
// principal's credentials, find a person and carry out the data subject's
// rights on the subject's record, and carry a data subject's rights request
// from its arrival to its answer.
//
// The pages are server-rendered (html/template, embedded with the CSS and
// the one small script), so the binary needs no build step. Every action
// is an RPC to the service, in-process (the REST gateway's connection),
// made as the signed-in principal: the same interceptors authenticate it, apply the RPC rule and
// write the audit trail, which names that principal.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/example/personaldata/cmd/personaldatad/internal/signinlimit"
	"github.com/example/personaldata/cmd/personaldatad/internal/websec"
	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/auth"
	"github.com/example/personaldata/store"
)

// Prefix is where the console is served on the HTTP port.
const Prefix = "/console/"

// Session lifetimes: a session ends after IdleTimeout without use, and
// after MaxLifetime however busy.
const (
	IdleTimeout = 30 * time.Minute
	MaxLifetime = 8 * time.Hour
)

// callTimeout bounds each RPC a page makes.
const callTimeout = 15 * time.Second

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// Sessions is where sign-in sessions are kept: in the store, so that every
// replica serves them.
type Sessions interface {
	InsertConsoleSession(ctx context.Context, cs *store.ConsoleSession) error
	GetConsoleSession(ctx context.Context, id string) (*store.ConsoleSession, error)
	TouchConsoleSession(ctx context.Context, id string, lastSeen, expires int64) error
	DeleteConsoleSession(ctx context.Context, id string) error
	DeleteExpiredConsoleSessions(ctx context.Context, now int64) error
}

// Config is what the console needs.
type Config struct {
	// Conn reaches the service as the REST gateway does, in-process, where
	// the identities this process forwards are believed (its secret is
	// attached to every call).
	Conn grpc.ClientConnInterface
	// Sessions keeps the sign-in sessions.
	Sessions Sessions
	// Now is the clock; time.Now when nil. The service's clock, so that
	// dates on the pages agree with the service's checks.
	Now func() time.Time
	Log *slog.Logger
	// SignIn bounds failed sign-ins; zero fields take the defaults.
	SignIn SignInLimits
	// Metrics, when set, registers the console's metrics.
	Metrics prometheus.Registerer
	// SignInFailures, when set, is told of the failed sign-ins the API's
	// authentication does not see (a token of another principal, one too
	// long to check, one refused unchecked by the limits): the audit
	// trail's record, with those the API records itself. It must not block.
	SignInFailures func(context.Context, auth.Failure)
}

// Console serves the support console's pages.
type Console struct {
	subjects   pdv1.PersonalDataServiceClient
	principals pdv1.PrincipalServiceClient
	requests   pdv1.RightsRequestServiceClient
	sessions   Sessions
	now        func() time.Time
	log        *slog.Logger
	pages      map[string]*template.Template
	mux        *http.ServeMux
	static     http.Handler
	signIns    *signinlimit.Limiter
	// signInLimited counts sign-ins refused unchecked, by scope.
	signInLimited *prometheus.CounterVec
	failures      func(context.Context, auth.Failure)
}

// New returns the console.
func New(cfg Config) (*Console, error) {
	c := &Console{
		subjects:   pdv1.NewPersonalDataServiceClient(cfg.Conn),
		principals: pdv1.NewPrincipalServiceClient(cfg.Conn),
		requests:   pdv1.NewRightsRequestServiceClient(cfg.Conn),
		sessions:   cfg.Sessions,
		now:        cfg.Now,
		log:        cfg.Log,
		pages:      map[string]*template.Template{},
		mux:        http.NewServeMux(),
		failures:   cfg.SignInFailures,
	}
	if c.now == nil {
		c.now = time.Now
	}
	var err error
	if c.signIns, err = signinlimit.New(cfg.SignIn); err != nil {
		return nil, fmt.Errorf("console.New: %w", err)
	}
	c.signInLimited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "personaldata_console_sign_in_limited_total",
		Help: "Console sign-ins refused without checking the credentials, after too many failures from the client address or in all, by scope.",
	}, []string{"scope"})
	for _, scope := range []string{signinlimit.ScopeAddress, signinlimit.ScopeGlobal} {
		c.signInLimited.WithLabelValues(scope) // shown at 0 before the first
	}
	if cfg.Metrics != nil {
		if err := cfg.Metrics.Register(c.signInLimited); err != nil {
			return nil, fmt.Errorf("console.New: %w", err)
		}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	names, err := fs.Glob(templateFiles, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("console.New: %w", err)
	}
	for _, name := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(name, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New(base).Funcs(templateFuncs).ParseFS(templateFiles, "templates/layout.html", name)
		if err != nil {
			return nil, fmt.Errorf("console.New: template %s: %w", base, err)
		}
		c.pages[base] = t
	}
	static, err := fs.Sub(staticFiles, "static")
	if err != nil {
		return nil, fmt.Errorf("console.New: %w", err)
	}
	files := http.StripPrefix(Prefix+"static/", http.FileServerFS(static))
	c.static = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			c.notFound(w, r) // no listing of the folder
			return
		}
		files.ServeHTTP(w, r)
	})
	for _, r := range c.routes() {
		c.mux.Handle(r.pattern, r.handler)
	}
	return c, nil
}

// section is a part of the console in its navigation.
type section struct {
	Path, Label string
}

// sections are the console's parts, in the order of the navigation. The
// first is where signing in leads. A part is added here and in routes.
var sections = []section{
	{Path: Prefix + "find", Label: "Hitta person"},
	{Path: Prefix + "requests", Label: "Förfrågningar"},
}

// route is a pattern of the console's mux and what serves it.
type route struct {
	pattern string
	handler http.Handler
}

// routes is the console's route table. Pages for a signed-in principal go
// through c.signedIn, which also checks every POST against cross-site
// requests; the sign-in form has a check of its own.
func (c *Console) routes() []route {
	return []route{
		{"GET " + Prefix + "{$}", http.HandlerFunc(c.home)},
		{"GET " + Prefix + "static/", c.static},
		{"GET " + Prefix + "sign-in", http.HandlerFunc(c.signInPage)},
		{"POST " + Prefix + "sign-in", http.HandlerFunc(c.signIn)},
		{"POST " + Prefix + "sign-out", c.signedIn(c.signOut)},
		{"GET " + Prefix + "find", c.signedIn(c.findPage)},
		{"POST " + Prefix + "find", c.signedIn(c.find)},
		{"GET " + Prefix + "subjects/{id}", c.signedIn(c.subjectPage)},
		{"POST " + Prefix + "subjects/{id}/rectify", c.signedIn(c.rectify)},
		{"POST " + Prefix + "subjects/{id}/restrict", c.signedIn(c.restrict)},
		{"POST " + Prefix + "subjects/{id}/lift", c.signedIn(c.lift)},
		{"POST " + Prefix + "subjects/{id}/history", c.signedIn(c.addHistory)},
		{"POST " + Prefix + "subjects/{id}/erase", c.signedIn(c.erase)},
		{"GET " + Prefix + "requests", c.signedIn(c.queuePage)},
		{"GET " + Prefix + "requests/new", c.signedIn(c.newRequestPage)},
		{"POST " + Prefix + "requests/new", c.signedIn(c.openRequest)},
		{"GET " + Prefix + "requests/{id}", c.signedIn(c.requestPage)},
		{"POST " + Prefix + "requests/{id}/send-code", c.signedIn(c.sendCode)},
		{"POST " + Prefix + "requests/{id}/confirm-code", c.signedIn(c.confirmCode)},
		{"POST " + Prefix + "requests/{id}/attest", c.signedIn(c.attest)},
		{"POST " + Prefix + "requests/{id}/decide", c.signedIn(c.decide)},
		{"POST " + Prefix + "requests/{id}/extend", c.signedIn(c.extend)},
		{"POST " + Prefix + "requests/{id}/forward", c.signedIn(c.forward)},
		{"POST " + Prefix + "requests/{id}/fulfil", c.signedIn(c.fulfil)},
		{"GET " + Prefix + "requests/{id}/letter/{lang}", c.signedIn(c.letter)},
		{"GET " + Prefix + "requests/{id}/export", c.signedIn(c.export)},
		{Prefix, http.HandlerFunc(c.notFound)},
	}
}

// notFound answers a path the console does not have.
func (c *Console) notFound(w http.ResponseWriter, r *http.Request) {
	p := &page{Title: "Sidan finns inte", Problem: problemNotFound()}
	if s, err := c.session(r); err == nil {
		p.Principal, p.CSRF = s.PrincipalID, s.CSRF
	}
	c.render(w, r, http.StatusNotFound, "problem", p)
}

// contentSecurityPolicy allows only the console's own script and styles,
// no framing, and forms only to itself.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"

// ServeHTTP serves the console, with its security headers on every answer.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	websec.Headers(w.Header(), contentSecurityPolicy, r.TLS != nil)
	c.mux.ServeHTTP(w, r)
}

// home leads to the first section, or to signing in.
func (c *Console) home(w http.ResponseWriter, r *http.Request) {
	if _, err := c.session(r); err != nil {
		http.Redirect(w, r, Prefix+"sign-in", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, sections[0].Path, http.StatusSeeOther)
}

// page is what every page's template gets.
type page struct {
	Title string
	// Section is the path of the navigation's current part.
	Section   string
	Sections  []section
	Principal string
	CSRF      string
	// Notice is a confirmation; Problem, what went wrong.
	Notice  string
	Problem *problem
	Data    any
}

// render writes page name with status.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p *page) {
	t, ok := c.pages[name]
	if !ok {
		c.log.ErrorContext(r.Context(), "console: no template", slog.String("template", name))
		http.Error(w, "Internt fel", http.StatusInternalServerError)
		return
	}
	if p.Principal != "" {
		p.Sections = sections
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout", p); err != nil {
		c.log.ErrorContext(r.Context(), "console: render", slog.String("template", name), slog.String("error", err.Error()))
		http.Error(w, "Internt fel", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// fail renders a page that says only what went wrong.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *session, pr *problem) {
	p := &page{Title: "Något gick fel", Problem: pr}
	if s != nil {
		p.Principal, p.CSRF = s.PrincipalID, s.CSRF
	}
	c.render(w, r, pr.Status, "problem", p)
}

// errNoSession: the request has no live session.
var errNoSession = errors.New("no session")
