package server_test

import (
	"context"
	"io"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// leakmark is in every field name, value and token the unauthenticated
// send: no answer may repeat it.
const leakmark = "leakmark"

// badTokens are credentials that authenticate no one: none, not a bearer
// token, a token of no principal, a false token of a real one.
func badTokens() map[string]string {
	return map[string]string{
		"missing":           "",
		"malformed":         "Bearer " + leakmark,
		"unknown principal": "Bearer pd1.nobody." + strings.Repeat("L", 43),
		"bad token":         "Bearer pd1.tester." + strings.Repeat("K", 43),
	}
}

// TestAuthFirstREST: every REST route authenticates before it reads the
// path, query or body: without valid credentials, a request with an unknown
// field, a malformed body or a bad path variable is 401 UNAUTHENTICATED,
// never a 400 that names what the request may hold; so is a path that
// matches no route. With credentials the same request is 400 as before.
func TestAuthFirstREST(t *testing.T) {
	e := start(t)
	routes := httpRoutes(t)
	if len(routes) < 50 {
		t.Fatalf("only %d routes found", len(routes))
	}
	for _, rt := range routes {
		path := pathVariable.ReplaceAllString(rt.path, leakmark+"%ff") // a variable that is not UTF-8
		method := strings.ToUpper(rt.verb)
		body := ""
		if method == http.MethodGet {
			path += "?" + leakmark + "_unknown=1"
		} else {
			body = `{"` + leakmark + `_unknown":1, "x": [}`
		}
		for what, token := range badTokens() {
			res, b := e.restRaw(t, method, path, body, token)
			if res.StatusCode != http.StatusUnauthorized || restStatus(t, b).Code() != codes.Unauthenticated {
				t.Errorf("%s %s, credentials %s: HTTP %d %s, want 401 UNAUTHENTICATED", method, rt.path, what, res.StatusCode, b)
				continue
			}
			if res.Header.Get("WWW-Authenticate") != "Bearer" {
				t.Errorf("%s %s: 401 without WWW-Authenticate: Bearer", method, rt.path)
			}
			if strings.Contains(strings.ToLower(string(b)), leakmark) {
				t.Errorf("%s %s: the 401 repeats the request: %s", method, rt.path, b)
			}
		}
	}
	// No route: 401 too, for a route with another method as well.
	for _, r := range [][2]string{{http.MethodGet, "/v1/" + leakmark}, {http.MethodDelete, "/v1/subjects:find"}} {
		if res, b := e.restRaw(t, r[0], r[1], "", ""); res.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s without credentials: HTTP %d %s, want 401", r[0], r[1], res.StatusCode, b)
		}
	}
	// The example, with and without a token.
	if res, b := e.restRaw(t, http.MethodPost, "/v1/subjects:find", `{"leakmark_unknown":1}`, ""); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST /v1/subjects:find with an unknown field and no token: HTTP %d %s, want 401", res.StatusCode, b)
	}
	if res, b := e.restRaw(t, http.MethodPost, "/v1/subjects:find", `{"leakmark_unknown":1}`, "Bearer "+e.token); res.StatusCode != http.StatusBadRequest {
		t.Errorf("POST /v1/subjects:find with an unknown field as the tester: HTTP %d %s, want 400", res.StatusCode, b)
	}
	// What needs no credentials stays open.
	for _, path := range []string{"/livez", "/readyz", "/healthz", "/openapi.json", "/metrics", "/console/sign-in"} {
		res, err := http.Get(e.base + path)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s without credentials: HTTP %d, want 200", path, res.StatusCode)
		}
	}
}

// rawCodec sends the bytes it is given as the request message, as they are:
// the "proto" codec's name, so the server decodes them as protobuf.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(b []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), b...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// TestAuthFirstGRPC: every RPC of every service authenticates before the
// request message is decoded: without valid credentials, a message that is
// not protobuf at all is UNAUTHENTICATED, not INTERNAL (or whatever its
// decoding says), and so is a method that does not exist. Health checks
// need no credentials; a bad message with credentials still fails to
// decode.
func TestAuthFirstGRPC(t *testing.T) {
	e := start(t)
	malformed := []byte{0x0a, 0xff, 0x01, 'l', 'e', 'a', 'k'} // a length past the end
	var methods []string
	protoregistry.GlobalFiles.RangeFilesByPackage("personaldata.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			for j := range sd.Methods().Len() {
				methods = append(methods, "/"+string(sd.FullName())+"/"+string(sd.Methods().Get(j).Name()))
			}
		}
		return true
	})
	if len(methods) < 50 {
		t.Fatalf("only %d methods found", len(methods))
	}
	methods = append(methods, "/personaldata.v1."+leakmark+"Service/Nothing")
	invoke := func(ctx context.Context, method string) error {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		s, err := e.grpc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, method, grpc.ForceCodec(rawCodec{}))
		if err != nil {
			return err
		}
		req := malformed
		if err := s.SendMsg(&req); err != nil {
			return err
		}
		_ = s.CloseSend()
		var resp []byte
		return s.RecvMsg(&resp)
	}
	for _, m := range methods {
		for what, token := range badTokens() {
			ctx := context.Background()
			if token != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", token)
			}
			err := invoke(ctx, m)
			if status.Code(err) != codes.Unauthenticated {
				t.Errorf("%s with a malformed message, credentials %s: %v, want UNAUTHENTICATED", m, what, err)
			}
			if strings.Contains(status.Convert(err).Message(), leakmark) {
				t.Errorf("%s: the refusal repeats the request: %v", m, err)
			}
		}
	}
	// With credentials the message is decoded, and fails to.
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+e.token)
	if err := invoke(ctx, pdSvc+"FindSubject"); status.Code(err) == codes.Unauthenticated || status.Code(err) == codes.OK {
		t.Errorf("FindSubject with a malformed message as the tester: %v, want a decoding error", err)
	}
	// Health checks need no credentials.
	res, err := healthpb.NewHealthClient(e.grpc).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health check without credentials: %v %v, want SERVING", res, err)
	}
}

// consoleSignIn fails a console sign-in as principal id with token, as a
// browser would send it, and returns the HTTP status.
func consoleSignIn(t *testing.T, e *env, id, token string) int {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Get(e.base + "/console/sign-in")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatal("the sign-in page has no form token")
	}
	res, err = client.PostForm(e.base+"/console/sign-in", url.Values{"csrf": {string(m[1])}, "principal_id": {id}, "token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	return res.StatusCode
}

// TestAuthFailuresAudited: refused authentications, over gRPC and REST, and
// failed console sign-ins are in the audit trail's chain "unauthenticated":
// one event per source address and reason (a second's worth), with the
// count, the RPCs and the existing principal the credentials named; an
// operator lists them, and a breach report of the window counts them by
// reason and source. No token, nor any part of its secret, is stored or
// logged.
func TestAuthFailuresAudited(t *testing.T) {
	e := start(t)
	opg := e.as(e.gc(), e.operator)
	// A principal whose token is then revoked.
	gone := e.principal(t, "gone", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, []string{"company"}, allPurposes)
	call(t, opg, principalSvc+"RevokePrincipal", &pdv1.RevokePrincipalRequest{IdempotencyKey: "r", PrincipalId: "gone", Reason: "left"}, &pdv1.RevokePrincipalResponse{})

	secretA := "SECRETa" + strings.Repeat("A", 36) // 43 characters, as a token's secret
	secretB := "SECRETb" + strings.Repeat("B", 36)
	secretC := "SECRETc" + strings.Repeat("C", 36)
	falseTester := "pd1.tester." + secretA
	// gRPC: none, twice; a false token of the tester; a revoked token.
	for range 2 {
		callErr(t, e.as(e.gc(), ""), principalSvc+"GetCaller", &pdv1.GetCallerRequest{}, &pdv1.GetCallerResponse{}, codes.Unauthenticated)
	}
	callErr(t, e.as(e.gc(), falseTester), pdSvc[1:]+"FindSubject", &pdv1.FindSubjectRequest{}, &pdv1.FindSubjectResponse{}, codes.Unauthenticated)
	callErr(t, e.as(e.gc(), gone), principalSvc+"GetCaller", &pdv1.GetCallerRequest{}, &pdv1.GetCallerResponse{}, codes.Unauthenticated)
	// REST: a malformed token, an unknown principal's, a false one.
	for _, tok := range []string{"Bearer " + secretB, "Bearer pd1.nobody." + secretB, "Bearer pd1.tester." + secretC} {
		if res, b := e.restRaw(t, http.MethodPost, "/v1/subjects:find", `{"leakmark_unknown":1}`, tok); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("REST with a bad token: HTTP %d %s", res.StatusCode, b)
		}
	}
	// The console: a false token of the tester, and the operator's own
	// token for the tester.
	if code := consoleSignIn(t, e, "tester", "pd1.tester."+secretC); code != http.StatusUnauthorized {
		t.Fatalf("console sign-in with a false token: HTTP %d, want 401", code)
	}
	if code := consoleSignIn(t, e, "tester", e.operator); code != http.StatusUnauthorized {
		t.Fatalf("console sign-in with another principal's token: HTTP %d, want 401", code)
	}

	// The events, as an operator lists them, once written (within a second
	// or so). Attempts of one second from one source for one reason are one
	// event, so the counts are by reason, with the RPCs each names.
	want := map[string]int64{"missing": 2, "bad_token": 3, "revoked": 1, "malformed": 1, "unknown_principal": 1, "other_principal": 1}
	wantRPCs := map[string][]string{
		"missing": {"/" + principalSvc + "GetCaller"}, "revoked": {"/" + principalSvc + "GetCaller"},
		"bad_token": {pdSvc + "FindSubject", "console sign-in"}, "malformed": {pdSvc + "FindSubject"},
		"unknown_principal": {pdSvc + "FindSubject"}, "other_principal": {"console sign-in"},
	}
	var got map[string]int64
	var events []*pdv1.AuditEvent
	var rpcs map[string][]string
	deadline := time.Now().Add(15 * time.Second)
	for {
		events = call(t, opg, "personaldata.v1.AuditService/ListAuditEvents", &pdv1.ListAuditEventsRequest{Chain: "unauthenticated", PageSize: 100}, &pdv1.ListAuditEventsResponse{}).GetEvents()
		got, rpcs = map[string]int64{}, map[string][]string{}
		for _, ev := range events {
			var reason string
			var n int64
			for _, f := range ev.GetFields() {
				switch {
				case strings.HasPrefix(f, "reason:"):
					reason = strings.TrimPrefix(f, "reason:")
				case strings.HasPrefix(f, "attempts:"):
					n, _ = strconv.ParseInt(strings.TrimPrefix(f, "attempts:"), 10, 64)
				}
			}
			got[reason] += n
			for _, f := range ev.GetFields() {
				if r, ok := strings.CutPrefix(f, "rpc:"); ok && !slices.Contains(rpcs[reason], r) {
					rpcs[reason] = append(rpcs[reason], r)
				}
			}
		}
		if maps.Equal(got, want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("refused authentications on record: %v, want %v (events %v)", got, want, events)
	}
	for reason, want := range wantRPCs {
		if slices.Sort(rpcs[reason]); !slices.Equal(rpcs[reason], want) {
			t.Errorf("%s: RPCs on record %v, want %v", reason, rpcs[reason], want)
		}
	}
	for _, ev := range events {
		if ev.GetOutcome() != codes.Unauthenticated.String() || ev.GetPrincipalId() != "" || ev.GetTenantId() != "" || !slices.Contains(ev.GetFields(), "source:127.0.0.1") {
			t.Errorf("event %v: want outcome Unauthenticated, no principal or tenant, source 127.0.0.1", ev)
		}
		for reason, named := range map[string]string{"reason:bad_token": "principal:tester", "reason:revoked": "principal:gone", "reason:other_principal": "principal:operator"} {
			if slices.Contains(ev.GetFields(), reason) && !slices.Contains(ev.GetFields(), named) {
				t.Errorf("event %v does not name %s", ev, named)
			}
		}
		if slices.Contains(ev.GetFields(), "reason:unknown_principal") && slices.ContainsFunc(ev.GetFields(), func(f string) bool { return strings.HasPrefix(f, "principal:") }) {
			t.Errorf("event %v names an unknown principal, the caller's own text", ev)
		}
	}
	if res := call(t, opg, "personaldata.v1.AuditService/VerifyAuditChain", &pdv1.VerifyAuditChainRequest{Chain: "unauthenticated"}, &pdv1.VerifyAuditChainResponse{}); !res.GetIntact() || res.GetEvents() != int64(len(events)) {
		t.Errorf("VerifyAuditChain unauthenticated: %v", res)
	}
	// Not for support staff.
	callErr(t, e.gc(), "personaldata.v1.AuditService/ListAuditEvents", &pdv1.ListAuditEventsRequest{Chain: "unauthenticated"}, &pdv1.ListAuditEventsResponse{}, codes.PermissionDenied)

	// A breach report of the window counts them by reason and source; one
	// of the tester counts those that named it.
	hour := timestamppb.New(e.clock.Now().Add(-time.Hour))
	for _, c := range []caller{e.gc(), e.rc()} {
		sum, _ := report(t, e, c, &pdv1.AssessBreachImpactRequest{StartTime: hour})
		byReason := map[string]int64{}
		for _, f := range sum.GetFailedAuthentications() {
			if f.GetSource() != "127.0.0.1" {
				t.Errorf("over %s: failed authentications from %q, want 127.0.0.1", c.name(), f.GetSource())
			}
			byReason[f.GetReason()] += f.GetAttempts()
		}
		wantReasons := map[string]int64{"missing": 2, "bad_token": 3, "revoked": 1, "malformed": 1, "unknown_principal": 1, "other_principal": 1}
		if !maps.Equal(byReason, wantReasons) || sum.GetFailedAuthenticationAttempts() != 9 {
			t.Errorf("over %s: breach report's failed authentications %v (%d), want %v (9)", c.name(), byReason, sum.GetFailedAuthenticationAttempts(), wantReasons)
		}
		sum, _ = report(t, e, c, &pdv1.AssessBreachImpactRequest{PrincipalId: "tester", StartTime: hour})
		if n := sum.GetFailedAuthenticationAttempts(); n != 3 {
			t.Errorf("over %s: the tester's breach report counts %d failed authentications naming it, want 3 (%v)", c.name(), n, sum.GetFailedAuthentications())
		}
	}

	// No token, nor its secret, anywhere in the store or the logs.
	dump, logs := e.rawDump(t), e.logs.String()
	for _, secret := range []string{secretA, secretB, secretC, "SECRET", gone[len(gone)-43:], e.operator[len(e.operator)-43:]} {
		if strings.Contains(dump, secret) {
			t.Errorf("the store holds a token's secret (%d chars)", len(secret))
		}
		if strings.Contains(logs, secret) {
			t.Errorf("the logs hold a token's secret (%d chars)", len(secret))
		}
	}
}
