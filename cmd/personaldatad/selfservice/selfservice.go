// Package selfservice is the data subjects' own page: a person signs in
// with a one-time code sent to the contact details on file, sees what is
// held about them, downloads it and signs out. It calls the service in
// this process as a data subject confined to their own record
// (service/auth/selfservice.go); the subject's id never comes from the
// browser.
package selfservice

import (
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/example/personaldata/cmd/personaldatad/internal/signinlimit"
	"github.com/example/personaldata/cmd/personaldatad/internal/websec"
	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/auth"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/store"
)

// SignIn is the service's sign-in by code (service/signin).
type SignIn interface {
	SelfServiceIdentityKey(typed string) (string, error)
	StartSelfServiceSignIn(ctx context.Context, typed string) (token string, err error)
	ConfirmSelfServiceSignIn(ctx context.Context, token, code string) (subjectID string, err error)
	// For strong sign-in (oidc.go): whose personnummer the provider vouched for.
	SelfServiceSubjectByIdentityNumber(ctx context.Context, number string) (subjectID string, err error)
	// RecordSelfServiceSignIn audits a sign-in, before its session.
	RecordSelfServiceSignIn(ctx context.Context, subjectID, signIn string) error
}

// Sessions stores the page's sessions.
type Sessions interface {
	InsertSelfServiceSession(ctx context.Context, c *store.SelfServiceSession) error
	GetSelfServiceSession(ctx context.Context, id string) (*store.SelfServiceSession, error)
	UpdateSelfServiceSession(ctx context.Context, id string, f func(*store.SelfServiceSession) error) (*store.SelfServiceSession, error)
	DeleteSelfServiceSession(ctx context.Context, id string) error
}

// Config is what the page needs.
type Config struct {
	Conn     grpc.ClientConnInterface
	SignIn   SignIn
	Sessions Sessions
	Log      *slog.Logger
	Now      func() time.Time
	// Secure says the listener serves TLS. The cookies are Secure either
	// way: a browser keeps a __Host- cookie only when it is, which it
	// accepts over plain HTTP from loopback alone. The page is for HTTPS
	// (here or at a proxy in front); plain HTTP works only on loopback.
	Secure bool
	// PerAddress and PerIdentity bound starting a sign-in and giving a
	// code; zero fields take signinlimit's defaults.
	PerAddress, PerIdentity signinlimit.Limits
	// MinStart is the least time an answer to a sign-in takes, so that a
	// known person's (a code queued) cannot be told from an unknown one's
	// (500 ms when 0).
	MinStart time.Duration
	// OIDC, when its Issuer is set, offers strong sign-in through an
	// OpenID Connect provider (oidc.go).
	OIDC OIDC
	// TrustedProxies are the reverse proxies in front of the page, whose
	// X-Forwarded-For names the client the limits count
	// (signinlimit.ClientAddr); none by default.
	TrustedProxies []netip.Prefix
}

// Cookie names: __Host- keeps them to this host and path /.
const (
	sessionCookie = "__Host-pd-self"
	langCookie    = "__Host-pd-lang"
	signInCookie  = "__Host-pd-signin"
	csrfCookie    = "__Host-pd-csrf"
)

// Page is the http.Handler of the page.
type Page struct {
	cfg             Config
	byAddr, byIdent *signinlimit.Limiter
	codeByAddr      *signinlimit.Limiter
	mux             *http.ServeMux
	strong          *strong // nil when OIDC is off
}

// New returns the page.
func New(cfg Config) (*Page, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MinStart <= 0 {
		cfg.MinStart = 500 * time.Millisecond
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	p := &Page{cfg: cfg, mux: http.NewServeMux()}
	var err error
	if p.byAddr, err = signinlimit.New(cfg.PerAddress); err != nil {
		return nil, err
	}
	if p.codeByAddr, err = signinlimit.New(cfg.PerAddress); err != nil {
		return nil, err
	}
	if p.byIdent, err = signinlimit.New(cfg.PerIdentity); err != nil {
		return nil, err
	}
	p.mux.HandleFunc("GET /{$}", p.home)
	p.mux.HandleFunc("POST /logga-in", p.start)
	p.mux.HandleFunc("POST /kod", p.code)
	p.mux.HandleFunc("GET /export", p.export)
	p.mux.HandleFunc("POST /logga-ut", p.signOut)
	p.mux.HandleFunc("GET /sprak/{lang}", p.switchLanguage)
	p.correctionRoutes()
	p.rightsRoutes()
	if p.strong, err = newStrong(cfg.OIDC, cfg.Now); err != nil {
		return nil, err
	}
	p.strongRoutes()
	p.mux.HandleFunc("GET /style.css", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		_, _ = io.WriteString(w, styleCSS+correctionsCSS+rightsCSS+strongCSS)
	})
	return p, nil
}

func (p *Page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	websec.Headers(w.Header(), "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'", r.TLS != nil)
	p.mux.ServeHTTP(w, r)
}

// clientKey is the key of r's client in the limits.
func (p *Page) clientKey(r *http.Request) string {
	return signinlimit.ClientKey(signinlimit.ClientAddr(r, p.cfg.TrustedProxies))
}

// random is a fresh token: a session id, a CSRF token, a state.
func random() string { return websec.Token() }

// sessionKey is the store's key of a session id: a hash.
func sessionKey(id string) string { return websec.Key("self-service-session", id) }

func (p *Page) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, Secure: true,
		SameSite: http.SameSiteStrictMode, MaxAge: maxAge})
}

// preCSRF is the token of the forms before sign-in: a cookie the form
// must repeat.
func (p *Page) preCSRF(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	t := random()
	p.setCookie(w, csrfCookie, t, 0)
	return t
}

func sameToken(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func (p *Page) preCSRFOK(r *http.Request) bool {
	c, err := r.Cookie(csrfCookie)
	return err == nil && sameToken(c.Value, r.PostFormValue("csrf"))
}

// session is the live session of r, touched; nil when none.
func (p *Page) session(r *http.Request) (*store.SelfServiceSession, string) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, ""
	}
	key := sessionKey(c.Value)
	now := p.cfg.Now()
	s, err := p.cfg.Sessions.UpdateSelfServiceSession(r.Context(), key, func(s *store.SelfServiceSession) error {
		if !auth.SelfServiceSessionLive(s, now) {
			return errDead
		}
		s.LastSeen = now.UnixNano()
		return nil
	})
	if err != nil {
		if errors.Is(err, errDead) {
			_ = p.cfg.Sessions.DeleteSelfServiceSession(r.Context(), key)
		}
		return nil, ""
	}
	return s, key
}

var errDead = errors.New("session ended")

// callCtx is the context of a call for the session's subject.
func callCtx(ctx context.Context, s *store.SelfServiceSession, key string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, auth.SelfServiceSubjectKey, s.SubjectID, auth.SelfServiceSessionKey, key)
}

type view struct {
	Lang                     lang
	Title, CSRF, Error, Info string
	Step                     string // "start", "code", "me"
	Sections                 []section
	Status                   int
	Own                      *own // the person's own changes (corrections.go)
	Rights                   *rights
	Strong                   bool // strong sign-in is offered (oidc.go)
}

type section struct {
	Heading string
	Empty   string
	Items   []item
}

type item struct{ Rows []row }
type row struct{ Label, Value string }

func (p *Page) render(w http.ResponseWriter, v view) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	v.Strong = p.strong != nil
	if v.Status != 0 {
		w.WriteHeader(v.Status)
	}
	if err := pageTemplate.Execute(w, v); err != nil {
		p.cfg.Log.Warn("self-service page", slog.String("error", err.Error()))
	}
}

// language is the language the person chose: Swedish unless they switched.
func language(r *http.Request) lang {
	if c, err := r.Cookie(langCookie); err == nil && c.Value == "en" {
		return "en"
	}
	return "sv"
}

// switchLanguage keeps the language chosen in a cookie and goes back to
// the start: a link, so that it works without JavaScript.
func (p *Page) switchLanguage(w http.ResponseWriter, r *http.Request) {
	l := r.PathValue("lang")
	if l != "en" {
		l = "sv"
	}
	p.setCookie(w, langCookie, l, 365*24*3600)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (p *Page) home(w http.ResponseWriter, r *http.Request) {
	l := language(r)
	s, key := p.session(r)
	if s == nil {
		p.render(w, view{Lang: l, Title: l.say("Logga in", "Sign in"), Step: "start", CSRF: p.preCSRF(w, r)})
		return
	}
	page, err := p.access(r.Context(), s, key)
	if err != nil {
		p.cfg.Log.Warn("self-service access", slog.String("error", err.Error()))
		p.render(w, view{Lang: l, Title: l.say("Något gick fel", "Something went wrong"), Step: "start", CSRF: p.preCSRF(w, r), Status: http.StatusInternalServerError,
			Error: l.say("Vi kunde inte hämta dina uppgifter just nu. Försök igen om en stund.", "We could not fetch your details just now. Please try again in a while.")})
		return
	}
	if page.GetSubject().GetErasure() != nil {
		p.erased(w, r, key, page)
		return
	}
	rights, err := p.rightsOverview(r.Context(), s, key, l)
	if err != nil {
		p.failed(w, r, s, err)
		return
	}
	p.render(w, view{Lang: l, Title: l.say("Dina personuppgifter", "Your personal data"), Step: "me", CSRF: s.CSRF, Sections: sections(page, l),
		Info: doneInfo(r, l) + rightsDone(r, l), Own: ownOverview(page, l), Rights: rights})
}

// access is every page of the subject's access document, merged.
func (p *Page) access(ctx context.Context, s *store.SelfServiceSession, key string) (*pdv1.AccessSubjectResponse, error) {
	stream, err := pdv1.NewPersonalDataServiceClient(p.cfg.Conn).StreamSubjectAccess(callCtx(ctx, s, key), &pdv1.StreamSubjectAccessRequest{SubjectId: s.SubjectID})
	if err != nil {
		return nil, err
	}
	var all *pdv1.AccessSubjectResponse
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if all == nil {
			all = m.GetPage()
			continue
		}
		pg := m.GetPage()
		all.History = append(all.History, pg.GetHistory()...)
		all.Changes = append(all.Changes, pg.GetChanges()...)
		all.Consents = append(all.Consents, pg.GetConsents()...)
		all.Disclosures = append(all.Disclosures, pg.GetDisclosures()...)
		all.Holds = append(all.Holds, pg.GetHolds()...)
		all.PolicyAcknowledgements = append(all.PolicyAcknowledgements, pg.GetPolicyAcknowledgements()...)
	}
	if all == nil {
		return nil, errors.New("no access page")
	}
	all.NextPageToken = ""
	return all, nil
}

func (p *Page) limitedAnswer(w http.ResponseWriter, r *http.Request, wait time.Duration, step string) {
	l := language(r)
	w.Header().Set("Retry-After", signinlimit.RetryAfter(wait))
	p.render(w, view{Lang: l, Title: l.say("Vänta en stund", "Please wait a while"), Step: step, CSRF: p.preCSRF(w, r), Status: http.StatusTooManyRequests,
		Error: l.say("Du har försökt för många gånger. Vänta "+signinlimit.WaitWords(wait)+" och försök sedan igen.",
			"You have tried too many times. Wait "+signinlimit.WaitWordsEnglish(wait)+" and then try again.")})
}

// tooOld is the answer to a form whose CSRF token is not the one given.
func (p *Page) tooOld(w http.ResponseWriter, r *http.Request) {
	l := language(r)
	p.render(w, view{Lang: l, Title: l.say("Logga in", "Sign in"), Step: "start", CSRF: p.preCSRF(w, r), Status: http.StatusForbidden,
		Error: l.say("Sidan hade hunnit bli för gammal. Försök igen.", "The page had become too old. Please try again.")})
}

// ourFault is the answer when something failed on our side.
func (p *Page) ourFault(w http.ResponseWriter, r *http.Request, step string) {
	l := language(r)
	p.render(w, view{Lang: l, Title: l.say("Något gick fel", "Something went wrong"), Step: step, CSRF: p.preCSRF(w, r), Status: http.StatusInternalServerError,
		Error: l.say("Något gick fel hos oss. Försök igen om en stund.", "Something went wrong on our side. Please try again in a while.")})
}

func (p *Page) start(w http.ResponseWriter, r *http.Request) {
	l := language(r)
	if !p.preCSRFOK(r) {
		p.tooOld(w, r)
		return
	}
	now := p.cfg.Now()
	att, lim := p.byAddr.Admit(p.clientKey(r), now)
	if lim != nil {
		p.limitedAnswer(w, r, lim.Wait, "start")
		return
	}
	// Every start counts against the limits, matched or not.
	defer att.Done(p.cfg.Now(), true)
	typed := r.PostFormValue("identitet")
	ident, err := p.cfg.SignIn.SelfServiceIdentityKey(typed)
	if err != nil {
		p.render(w, view{Lang: l, Title: l.say("Logga in", "Sign in"), Step: "start", CSRF: p.preCSRF(w, r), Status: http.StatusBadRequest,
			Error: l.say("Skriv ditt personnummer (12 siffror, till exempel 19811218-9876) eller din e-postadress.",
				"Type your Swedish personal identity number (12 digits, for example 19811218-9876) or your e-mail address.")})
		return
	}
	iatt, lim := p.byIdent.Admit(ident, now)
	if lim != nil {
		p.limitedAnswer(w, r, lim.Wait, "start")
		return
	}
	defer iatt.Done(p.cfg.Now(), true)
	// The same time for everyone: a known person's code is queued within it.
	deadline := time.Now().Add(p.cfg.MinStart)
	token, err := p.cfg.SignIn.StartSelfServiceSignIn(r.Context(), typed)
	time.Sleep(time.Until(deadline))
	if err != nil {
		p.cfg.Log.Warn("self-service sign-in", slog.String("error", err.Error()))
		p.ourFault(w, r, "start")
		return
	}
	p.codeSent(w, r, l, token)
}

// codeSent is the answer to a sign-in started, whether or not anyone
// matched: the page where the code is typed in.
func (p *Page) codeSent(w http.ResponseWriter, r *http.Request, l lang, token string) {
	p.setCookie(w, signInCookie, token, int(core.SelfServiceCodeLifetime/time.Second))
	p.render(w, view{Lang: l, Title: l.say("Skriv in koden", "Type in the code"), Step: "code", CSRF: p.preCSRF(w, r),
		Info: l.say("Om vi har dina uppgifter har vi nu skickat en kod till den e-postadress eller det mobilnummer vi har till dig. Koden gäller i 10 minuter.",
			"If we hold your details, we have now sent a code to the e-mail address or mobile number we have for you. The code is valid for 10 minutes.")})
}

func (p *Page) code(w http.ResponseWriter, r *http.Request) {
	l := language(r)
	if !p.preCSRFOK(r) {
		p.tooOld(w, r)
		return
	}
	c, err := r.Cookie(signInCookie)
	if err != nil || c.Value == "" {
		p.render(w, view{Lang: l, Title: l.say("Logga in", "Sign in"), Step: "start", CSRF: p.preCSRF(w, r), Status: http.StatusBadRequest,
			Error: l.say("Koden har slutat gälla. Börja om och be om en ny kod.", "The code is no longer valid. Start again and ask for a new code.")})
		return
	}
	att, lim := p.codeByAddr.Admit(p.clientKey(r), p.cfg.Now())
	if lim != nil {
		p.limitedAnswer(w, r, lim.Wait, "code")
		return
	}
	subject, err := p.cfg.SignIn.ConfirmSelfServiceSignIn(r.Context(), c.Value, r.PostFormValue("kod"))
	att.Done(p.cfg.Now(), err != nil)
	switch {
	case errors.Is(err, core.ErrSelfServiceCodeWrong):
		p.render(w, view{Lang: l, Title: l.say("Skriv in koden", "Type in the code"), Step: "code", CSRF: p.preCSRF(w, r), Status: http.StatusBadRequest,
			Error: l.say("Koden stämmer inte. Kontrollera siffrorna och försök igen.", "The code is not right. Check the digits and try again.")})
		return
	case errors.Is(err, core.ErrSelfServiceCodeExpired), errors.Is(err, core.ErrSelfServiceCodeExhausted):
		p.setCookie(w, signInCookie, "", -1)
		p.render(w, view{Lang: l, Title: l.say("Logga in", "Sign in"), Step: "start", CSRF: p.preCSRF(w, r), Status: http.StatusBadRequest,
			Error: l.say("Koden går inte längre att använda. Börja om och be om en ny kod.", "The code can no longer be used. Start again and ask for a new code.")})
		return
	case err != nil:
		p.cfg.Log.Warn("self-service sign-in", slog.String("error", err.Error()))
		p.ourFault(w, r, "code")
		return
	}
	if !p.newSession(w, r, subject, store.SignInCode) {
		return
	}
	p.setCookie(w, signInCookie, "", -1)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// newSession signs subject in, by signIn (store.SignInCode or
// store.SignInOIDC): an audit event, a session on the server, its id in
// the cookie. It answers itself when it cannot.
func (p *Page) newSession(w http.ResponseWriter, r *http.Request, subject, signIn string) bool {
	id, now := random(), p.cfg.Now()
	s := &store.SelfServiceSession{ID: sessionKey(id), SubjectID: subject, SignIn: signIn, CSRF: random(), Created: now.UnixNano(), LastSeen: now.UnixNano()}
	err := p.cfg.SignIn.RecordSelfServiceSignIn(r.Context(), subject, signIn)
	if err == nil {
		err = p.cfg.Sessions.InsertSelfServiceSession(r.Context(), s)
	}
	if err != nil {
		p.cfg.Log.Warn("self-service session", slog.String("error", err.Error()))
		p.ourFault(w, r, "start")
		return false
	}
	p.setCookie(w, sessionCookie, id, 0)
	return true
}

func (p *Page) export(w http.ResponseWriter, r *http.Request) {
	s, key := p.session(r)
	if s == nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	l := language(r)
	page, err := p.access(r.Context(), s, key)
	if err != nil {
		p.cfg.Log.Warn("self-service export", slog.String("error", err.Error()))
		http.Error(w, l.say("Vi kunde inte ta fram filen just nu. Försök igen om en stund.", "We could not make the file just now. Please try again in a while."), http.StatusInternalServerError)
		return
	}
	b, err := protojson.MarshalOptions{Multiline: true}.Marshal(page)
	if err != nil {
		http.Error(w, l.say("Vi kunde inte ta fram filen just nu. Försök igen om en stund.", "We could not make the file just now. Please try again in a while."), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", `attachment; filename="mina-personuppgifter.json"`)
	_, _ = w.Write(b)
}

func (p *Page) signOut(w http.ResponseWriter, r *http.Request) {
	s, key := p.session(r)
	if s != nil && sameToken(s.CSRF, r.PostFormValue("csrf")) {
		_ = p.cfg.Sessions.DeleteSelfServiceSession(r.Context(), key)
	} else if s != nil {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	l := language(r)
	p.setCookie(w, sessionCookie, "", -1)
	p.render(w, view{Lang: l, Title: l.say("Du är utloggad", "You are signed out"), Step: "start", CSRF: p.preCSRF(w, r), Info: l.say("Du är utloggad.", "You are signed out.")})
}

var stockholm = func() *time.Location {
	l, err := time.LoadLocation("Europe/Stockholm")
	if err != nil {
		return time.UTC
	}
	return l
}()
