package console

import (
	"context"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/example/personaldata/cmd/personaldatad/internal/signinlimit"
	"github.com/example/personaldata/cmd/personaldatad/internal/websec"
	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/auth"
	"github.com/example/personaldata/store"
)

// touchEvery is how stale a session's last use may be before a request
// records a new one: a write per minute of work, not per page.
const touchEvery = time.Minute

// session is the signed-in principal of a request.
type session struct {
	// key is the session's _id in the store: a hash of the cookie's value.
	key         string
	PrincipalID string
	TokenHash   string
	CSRF        string
}

// call returns a context for an RPC made as the session's principal: the
// gRPC server believes the identity because this process's connection
// carries the gateway's secret, and accepts it only while the principal
// still holds the token it signed in with.
func (s *session) call(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx = metadata.AppendToOutgoingContext(ctx,
		auth.ConsolePrincipalKey, s.PrincipalID,
		auth.ConsoleTokenHashKey, s.TokenHash)
	return context.WithTimeout(ctx, callTimeout)
}

// randomToken is 256 random bits, URL-safe.
func randomToken() string { return websec.Token() }

// sessionKey is the store's key of a session id: what the store holds
// cannot be sent back as a cookie.
func sessionKey(id string) string { return websec.Key("console-session", id) }

// Cookie names: with TLS the __Host- prefix binds a cookie to this host,
// secure and for the whole site, so that no other site can set it.
func sessionCookie(r *http.Request) string {
	if r.TLS != nil {
		return "__Host-pd-console"
	}
	return "pd-console"
}

func signInCookie(r *http.Request) string {
	if r.TLS != nil {
		return "__Host-pd-console-signin"
	}
	return "pd-console-signin"
}

// setCookie sets an HttpOnly, SameSite=Strict cookie, Secure under TLS, for
// maxAge (deleting it when negative).
func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge time.Duration) {
	path := Prefix
	if r.TLS != nil {
		path = "/" // the __Host- prefix requires it
	}
	ck := &http.Cookie{
		Name: name, Value: value, Path: path,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
		MaxAge: int(maxAge / time.Second),
	}
	if maxAge < 0 {
		ck.MaxAge = -1
	}
	http.SetCookie(w, ck)
}

// session is the request's live session, or errNoSession. A use after a
// minute records itself, which moves the idle expiry on.
func (c *Console) session(r *http.Request) (*session, error) {
	ck, err := r.Cookie(sessionCookie(r))
	if err != nil || ck.Value == "" {
		return nil, errNoSession
	}
	key := sessionKey(ck.Value)
	cs, err := c.sessions.GetConsoleSession(r.Context(), key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errNoSession
	}
	if err != nil {
		return nil, err
	}
	now := c.now()
	if now.UnixNano() >= cs.Expires || now.UnixNano() >= cs.Ends {
		_ = c.sessions.DeleteConsoleSession(r.Context(), key)
		return nil, errNoSession
	}
	if now.Sub(time.Unix(0, cs.LastSeen)) >= touchEvery {
		expires := min(now.Add(IdleTimeout).UnixNano(), cs.Ends)
		if err := c.sessions.TouchConsoleSession(r.Context(), key, now.UnixNano(), expires); err != nil {
			return nil, err
		}
	}
	return &session{key: key, PrincipalID: cs.PrincipalID, TokenHash: cs.TokenHash, CSRF: cs.CSRF}, nil
}

// crossOrigin refuses a state-changing request that a browser marks as
// coming from another site (Sec-Fetch-Site, else Origin against Host).
var crossOrigin = http.NewCrossOriginProtection()

// tokenMatches compares a form's token with the expected one in constant time.
func tokenMatches(got, want string) bool {
	return want != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// signedIn serves h to a signed-in principal, and sends anyone else to
// sign in. Every POST must come from the console's own pages: the browser
// must not mark it cross-site, and it must carry the session's CSRF token.
func (c *Console) signedIn(h func(http.ResponseWriter, *http.Request, *session)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := c.session(r)
		switch {
		case errors.Is(err, errNoSession):
			q := url.Values{}
			if _, noCookie := r.Cookie(sessionCookie(r)); noCookie == nil {
				q.Set("orsak", "utgangen") // it had one, which no longer counts
			}
			// Back to the page asked for once signed in; a form sent
			// is not sent again, so a POST returns to the start.
			if r.Method == http.MethodGet {
				if ret := returnPath(r.URL.RequestURI()); ret != "" {
					q.Set("till", ret)
				}
			}
			target := Prefix + "sign-in"
			if len(q) > 0 {
				target += "?" + q.Encode()
			}
			http.Redirect(w, r, target, http.StatusSeeOther)
			return
		case err != nil:
			c.log.WarnContext(r.Context(), "console: session", slog.String("error", err.Error()))
			c.fail(w, r, nil, problemUnavailable())
			return
		}
		if r.Method == http.MethodPost {
			if err := r.ParseForm(); err != nil {
				c.fail(w, r, s, &problem{Status: http.StatusBadRequest, Message: "Formuläret gick inte att läsa, eller var för stort. Ingenting gjordes."})
				return
			}
			if err := crossOrigin.Check(r); err != nil {
				c.fail(w, r, s, problemForbiddenOrigin())
				return
			}
			if !tokenMatches(r.PostForm.Get("csrf"), s.CSRF) {
				c.fail(w, r, s, problemCSRF())
				return
			}
		}
		h(w, r, s)
	})
}

// signInData is the sign-in form.
type signInData struct {
	PrincipalID string
	Token       string // the form's CSRF token (there is no session yet)
	Reason      string
	// Return is the console's page to show once signed in, if not the
	// first section (see returnPath).
	Return string
}

// returnPath is p if it is a page of this console to return to after
// signing in, else "": a path on this origin under Prefix, never a URL of
// another site ("//host", "/\\host", "https:"), never the sign-in or
// sign-out itself, and unchanged by cleaning (no "..").
func returnPath(p string) string {
	if len(p) > 2000 || !strings.HasPrefix(p, Prefix) || strings.HasPrefix(p, "//") ||
		strings.ContainsAny(p, "\\\x00\r\n\t ") {
		return ""
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || u.Fragment != "" {
		return ""
	}
	clean := path.Clean(u.Path)
	if strings.HasSuffix(u.Path, "/") && clean != "/" {
		clean += "/"
	}
	if clean != u.Path || !strings.HasPrefix(clean, Prefix) {
		return ""
	}
	switch clean {
	case Prefix, Prefix + "sign-in", Prefix + "sign-out":
		return ""
	}
	return u.RequestURI()
}

// afterSignIn is where a signed-in browser goes from the sign-in form.
func afterSignIn(r *http.Request) string {
	if ret := returnPath(r.FormValue("till")); ret != "" {
		return ret
	}
	return sections[0].Path
}

// signInReasons are the notices the sign-in page shows, by the query
// parameter orsak (never anything personal).
var signInReasons = map[string]string{
	"utloggad": "Du är utloggad.",
	"utgangen": "Din inloggning har gått ut. Logga in igen.",
	"indragen": "Din inloggning gäller inte längre: inloggningsnyckeln eller behörigheten är återkallad. Logga in igen, eller be IT-driften om en ny nyckel.",
}

// signInPage shows the sign-in form, with a token of its own in a cookie
// and in the form, so that no other site can sign a browser in.
func (c *Console) signInPage(w http.ResponseWriter, r *http.Request) {
	if _, err := c.session(r); err == nil {
		http.Redirect(w, r, afterSignIn(r), http.StatusSeeOther)
		return
	}
	c.renderSignIn(w, r, http.StatusOK, "", nil)
}

func (c *Console) renderSignIn(w http.ResponseWriter, r *http.Request, status int, principalID string, pr *problem) {
	token := randomToken()
	setCookie(w, r, signInCookie(r), token, time.Hour)
	c.render(w, r, status, "signin", &page{
		Title:   "Logga in",
		Notice:  signInReasons[r.URL.Query().Get("orsak")],
		Problem: pr,
		Data:    signInData{PrincipalID: principalID, Token: token, Return: returnPath(r.FormValue("till"))},
	})
}

// Bounds on what the sign-in form takes, far above any real value.
const (
	maxPrincipalIDLen = 63
	maxTokenLen       = 200
)

// signIn checks the principal's own credentials the way the API does, by
// calling the API with them, and starts a session. While the client's
// address, or everyone, has failed too often, the credentials are not
// checked at all: a refused attempt costs no store read and no hash.
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	ck, err := r.Cookie(signInCookie(r))
	if crossOrigin.Check(r) != nil || err != nil || !tokenMatches(r.PostFormValue("csrf"), ck.Value) {
		c.renderSignIn(w, r, http.StatusForbidden, "", problemSignInForm())
		return
	}
	id := strings.TrimSpace(r.PostFormValue("principal_id"))
	att, refused := c.signIns.Admit(signinlimit.ClientKey(r.RemoteAddr), c.now())
	if refused != nil {
		c.signInLimited.WithLabelValues(refused.Scope).Inc()
		c.signInFailed(r, reasonLimited, "")
		w.Header().Set("Retry-After", signinlimit.RetryAfter(refused.Wait))
		c.renderSignIn(w, r, http.StatusTooManyRequests, id, problemSignInLimited(refused.Wait))
		return
	}
	failed := false // wrong credentials; not a form left empty, nor a store down
	defer func() {
		// The address is personal data: the log says only which limit.
		for _, scope := range att.Done(c.now(), failed) {
			c.log.WarnContext(r.Context(), "console: sign-in failures reached the limit", slog.String("scope", scope))
		}
	}()
	token := strings.TrimSpace(r.PostFormValue("token"))
	if id == "" || token == "" {
		pr := &problem{Status: http.StatusBadRequest, Message: "Fyll i både ditt användar-id och din inloggningsnyckel."}
		if id == "" {
			pr.Fields = append(pr.Fields, fieldProblem{ID: "principal_id", Label: "Ditt användar-id", Message: "måste fyllas i"})
		}
		if token == "" {
			pr.Fields = append(pr.Fields, fieldProblem{ID: "token", Label: "Din inloggningsnyckel", Message: "måste fyllas i"})
		}
		c.renderSignIn(w, r, http.StatusBadRequest, id, pr)
		return
	}
	if len(id) > maxPrincipalIDLen || len(token) > maxTokenLen {
		failed = true
		c.signInFailed(r, "malformed", "")
		c.renderSignIn(w, r, http.StatusUnauthorized, "", problemSignIn())
		return
	}
	// The API records a refusal of the credentials as a failed sign-in
	// from the client's address.
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(r.Context(), "authorization", "Bearer "+token,
		auth.ConsoleSignInKey, r.RemoteAddr), callTimeout)
	defer cancel()
	res, err := c.principals.GetCaller(ctx, &pdv1.GetCallerRequest{})
	switch status.Code(err) {
	case codes.OK:
	case codes.Unauthenticated:
		failed = true
		c.renderSignIn(w, r, http.StatusUnauthorized, id, problemSignIn())
		return
	default:
		c.log.WarnContext(r.Context(), "console: sign-in", slog.String("code", status.Code(err).String()))
		c.renderSignIn(w, r, http.StatusServiceUnavailable, id, problemUnavailable())
		return
	}
	// A token names its principal; one of another principal is as wrong
	// as a false one, and the page says no more than for that.
	if res.GetPrincipal().GetPrincipalId() != id {
		failed = true
		// The token's own principal is named: it exists, and its
		// token was used to try another.
		c.signInFailed(r, reasonOtherPrincipal, res.GetPrincipal().GetPrincipalId())
		c.renderSignIn(w, r, http.StatusUnauthorized, id, problemSignIn())
		return
	}
	if res.GetPrincipal().GetKind() != pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF {
		c.renderSignIn(w, r, http.StatusForbidden, id, &problem{Status: http.StatusForbidden,
			Message: "Konsolen är till för supportpersonal. Den här behörigheten kan inte logga in här."})
		return
	}
	now := c.now()
	// Expired sessions are removed as others sign in: no sweeper needed,
	// and any replica may do it.
	if err := c.sessions.DeleteExpiredConsoleSessions(r.Context(), now.UnixNano()); err != nil {
		c.log.WarnContext(r.Context(), "console: remove expired sessions", slog.String("error", err.Error()))
	}
	if old, err := r.Cookie(sessionCookie(r)); err == nil && old.Value != "" {
		_ = c.sessions.DeleteConsoleSession(r.Context(), sessionKey(old.Value))
	}
	// Always a new session id at sign-in, so none planted before counts.
	sid := randomToken()
	cs := &store.ConsoleSession{
		ID:          sessionKey(sid),
		PrincipalID: id,
		TokenHash:   auth.HashToken(token),
		CSRF:        randomToken(),
		Created:     now.UnixNano(),
		Ends:        now.Add(MaxLifetime).UnixNano(),
		LastSeen:    now.UnixNano(),
		Expires:     now.Add(IdleTimeout).UnixNano(),
	}
	if err := c.sessions.InsertConsoleSession(r.Context(), cs); err != nil {
		c.log.WarnContext(r.Context(), "console: start session", slog.String("error", err.Error()))
		c.renderSignIn(w, r, http.StatusServiceUnavailable, id, problemUnavailable())
		return
	}
	setCookie(w, r, signInCookie(r), "", -1)
	setCookie(w, r, sessionCookie(r), sid, MaxLifetime)
	c.log.InfoContext(r.Context(), "console: signed in", slog.String("principal", id))
	http.Redirect(w, r, afterSignIn(r), http.StatusSeeOther)
}

// Reasons of failed sign-ins that the API's authentication does not see.
const (
	// reasonOtherPrincipal: a valid token of another principal than the
	// one named in the form.
	reasonOtherPrincipal = "other_principal"
	// reasonLimited: refused unchecked, after too many failures.
	reasonLimited = "sign_in_limited"
)

// signInFailed tells the audit trail of a failed sign-in; principal is an
// existing principal's id, or "".
func (c *Console) signInFailed(r *http.Request, reason, principal string) {
	if c.failures != nil {
		c.failures(r.Context(), auth.Failure{Source: auth.SourceAddress(r.RemoteAddr), Method: auth.ConsoleSignInRoute,
			Reason: reason, Principal: principal})
	}
}

// signOut ends the session here and in the store.
func (c *Console) signOut(w http.ResponseWriter, r *http.Request, s *session) {
	c.endSession(w, r, s)
	c.log.InfoContext(r.Context(), "console: signed out", slog.String("principal", s.PrincipalID))
	http.Redirect(w, r, Prefix+"sign-in?orsak=utloggad", http.StatusSeeOther)
}

func (c *Console) endSession(w http.ResponseWriter, r *http.Request, s *session) {
	if err := c.sessions.DeleteConsoleSession(r.Context(), s.key); err != nil {
		c.log.WarnContext(r.Context(), "console: end session", slog.String("error", err.Error()))
	}
	setCookie(w, r, sessionCookie(r), "", -1)
	w.Header().Set("Clear-Site-Data", `"cache", "storage"`)
}
