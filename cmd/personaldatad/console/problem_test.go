package console

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
)

func refusal(code codes.Code, msg string, details ...protoadapt.MessageV1) error {
	st, err := status.New(code, msg).WithDetails(details...)
	if err != nil {
		panic(err)
	}
	return st.Err()
}

// TestAPIProblem covers the refusals the browser tests do not reach: each
// comes out as plain Swedish, never as the API's English text.
func TestAPIProblem(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		status int
		says   string
		field  string // element id named, if any
	}{
		{"restricted", refusal(codes.FailedPrecondition, "processing is restricted to storage only since 2026-11-27T10:00:00Z (ground RESTRICTION_GROUND_ACCURACY_CONTESTED)",
			&errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{{Type: "PROCESSING_RESTRICTED", Subject: "subjects/x"}}}),
			http.StatusConflict, "begränsad till enbart lagring", ""},
		{"no agreement", refusal(codes.FailedPrecondition, "no processor agreement in force covers purpose SUPPORT",
			&errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{{Type: "NO_PROCESSOR_AGREEMENT", Subject: "customers/c"}}}),
			http.StatusConflict, "inget personuppgiftsbiträdesavtal", ""},
		{"erased", refusal(codes.NotFound, "subject was erased",
			&errdetails.ErrorInfo{Reason: "SUBJECT_ERASED", Metadata: map[string]string{"erase_time": "2026-11-27T10:00:00Z", "ground": "ERASURE_GROUND_NO_LEGAL_BASIS"}}),
			http.StatusGone, "raderade sedan 2026-11-27 11:00 (grund: det finns ingen rättslig grund", ""},
		{"tenant", refusal(codes.PermissionDenied, "the caller does not act for this controller", &errdetails.ErrorInfo{Reason: "TENANT_NOT_PERMITTED"}),
			http.StatusForbidden, "inte behörighet", ""},
		{"controller's instruction", refusal(codes.PermissionDenied, "…", &errdetails.ErrorInfo{Reason: "CONTROLLER_INSTRUCTION_REQUIRED"}),
			http.StatusForbidden, "kundens instruktion", ""},
		{"stale", refusal(codes.Aborted, "expected_version 3 is stale", &errdetails.ErrorInfo{Reason: "STALE_VERSION"}),
			http.StatusConflict, "Läs in sidan igen", ""},
		{"exists", refusal(codes.AlreadyExists, "…", &errdetails.ErrorInfo{Reason: "SUBJECT_EXISTS", Metadata: map[string]string{"field": "email"}}),
			http.StatusConflict, "den e-postadressen", ""},
		{"bad field", refusal(codes.InvalidArgument, "invalid request",
			&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
				{Field: "person.postal_address.postal_code", Description: "must be five digits for a Swedish address"}}}),
			http.StatusBadRequest, "Postnummer ska vara fem siffror", "rectify-postal_code"},
		{"address line", refusal(codes.InvalidArgument, "invalid request",
			&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
				{Field: "person.postal_address.lines[1]", Description: "must not contain control characters"}}}),
			http.StatusBadRequest, "Adressrad 2 får inte innehålla styrtecken", "rectify-line2"},
		{"long reference", refusal(codes.InvalidArgument, "invalid request",
			&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
				{Field: "reference", Description: "must be at most 200 characters"}}}),
			http.StatusBadRequest, "Referens får vara högst 200 tecken", "rectify-reference"},
		{"unavailable", refusal(codes.Unavailable, "store unavailable, retry later"), http.StatusServiceUnavailable, "försök igen", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := apiProblem(tc.err, rectifyFields())
			text := p.Message
			for _, f := range p.Fields {
				text += " " + f.Text()
			}
			if p.Status != tc.status || !strings.Contains(text, tc.says) {
				t.Errorf("got HTTP %d %q, want %d saying %q", p.Status, text, tc.status, tc.says)
			}
			if tc.field != "" && p.FieldMessage(tc.field) == "" {
				t.Errorf("%v names no field %s", p.Fields, tc.field)
			}
			if strings.Contains(text, status.Convert(tc.err).Message()) {
				t.Errorf("%q quotes the API's text", text)
			}
		})
	}
}

// TestCookiesUnderTLS: over TLS the cookies are Secure, bound to the host
// (__Host-), and the answer asks for HTTPS from then on.
func TestCookiesUnderTLS(t *testing.T) {
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "https://console.example/console/sign-in", nil)
	r.TLS = &tls.ConnectionState{}
	w := httptest.NewRecorder()
	c.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("sign-in page over TLS: HTTP %d", w.Code)
	}
	cookies := w.Result().Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies %v, want the sign-in form's", cookies)
	}
	ck := cookies[0]
	if ck.Name != "__Host-pd-console-signin" || !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.Domain != "" {
		t.Errorf("cookie %+v: want __Host-, Secure, HttpOnly, SameSite=Strict, Path=/, no Domain", ck)
	}
	if h := w.Header().Get("Strict-Transport-Security"); h == "" {
		t.Error("no Strict-Transport-Security over TLS")
	}
}

// TestNotFound: a path the console does not have, and the static folder
// itself, are a page of its own with the security headers, no listing.
func TestNotFound(t *testing.T) {
	c, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/console/nowhere", "/console/static/", "/console/subjects/x/nowhere"} {
		w := httptest.NewRecorder()
		c.ServeHTTP(w, httptest.NewRequest(http.MethodGet, path, nil))
		if w.Code != http.StatusNotFound || strings.Contains(w.Body.String(), `href="console.css"`) ||
			w.Header().Get("Content-Security-Policy") == "" || w.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: HTTP %d, headers %v", path, w.Code, w.Header())
		}
	}
	w := httptest.NewRecorder()
	c.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/console/static/console.css", nil))
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/css") {
		t.Errorf("the style sheet: HTTP %d, %s", w.Code, w.Header().Get("Content-Type"))
	}
}

// TestRequestProblem covers the refusals of a rights request's steps that
// the browser tests do not reach, each in Swedish words.
func TestRequestProblem(t *testing.T) {
	pre := func(typ, msg string) error {
		return refusal(codes.FailedPrecondition, msg, &errdetails.PreconditionFailure{
			Violations: []*errdetails.PreconditionFailure_Violation{{Type: typ, Subject: "rights-request", Description: msg}}})
	}
	codeFields := apiFields{"code": {"confirm-code-code", "Koden"}}
	for _, tc := range []struct {
		name string
		err  error
		says string
	}{
		{"expired", pre("CODE_EXPIRED", "the code has expired: send a new one"), "Koden har gått ut"},
		{"tries used up", pre("CODE_TRIES_EXHAUSTED", "the code was given wrong too many times: send a new one"), "fel för många gånger"},
		{"last try", refusal(codes.InvalidArgument, "the code does not match", &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: "code", Description: "does not match the code sent; 0 tries left"}}}), "Koden stämmer inte med koden som skickades, och inga försök finns kvar"},
		{"too many codes", pre("TOO_MANY_CODES", "5 codes were sent for this request already: attest a check done another way"), "redan skickats 5 koder"},
		{"no one matched", pre("NO_SUBJECT_MATCHED", "no subject matched the claimed identity, so no contact details are on file to send a code to: attest a check done another way"),
			"ingen kontaktuppgift att skicka en kod till"},
		{"nothing to carry out", pre("NO_SUBJECT_MATCHED", "no subject matched the claimed identity: there is nothing to carry out; answer that nothing is held"), "inget att utföra"},
		{"extended", pre("ALREADY_EXTENDED", "the time limit was extended already; it may be extended once"), "redan förlängd"},
		{"unverified", pre("IDENTITY_NOT_VERIFIED", "the requester's identity is not verified: …"), "identitet är inte styrkt"},
		{"decided", pre("ALREADY_ANSWERED", "the request was decided already"), "redan beslutad"},
		{"answered", pre("ALREADY_ANSWERED", "the request was answered already (REFUSED)"), "redan besvarad"},
		{"no agreement with the customer", pre("NO_PROCESSOR_AGREEMENT", "no processor agreement with this customer is on record: the company processes no data for it"),
			"inget personuppgiftsbiträdesavtal med den kunden"},
		{"not found", refusal(codes.NotFound, "rights request not found"), "Förfrågan, eller personen den gäller, finns inte"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := requestProblem(tc.err, codeFields)
			text := p.Message
			for _, f := range p.Fields {
				text += " " + f.Text()
			}
			if !strings.Contains(text, tc.says) {
				t.Errorf("got %q, want it to say %q", text, tc.says)
			}
			if strings.Contains(text, status.Convert(tc.err).Message()) {
				t.Errorf("%q quotes the API's text", text)
			}
		})
	}
}
