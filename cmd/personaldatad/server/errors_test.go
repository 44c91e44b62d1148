package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// restRaw sends a REST request exactly as given, with the authorization
// header auth when not empty, and returns the response and its body.
func (e *env) restRaw(t *testing.T, method, path, body, auth string) (*http.Response, []byte) {
	t.Helper()
	return e.restRawWith(t, method, path, body, auth, "")
}

// restRawWith is restRaw with an X-Request-Id.
func (e *env) restRawWith(t *testing.T, method, path, body, auth, requestID string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if requestID != "" {
		req.Header.Set("X-Request-Id", requestID)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, b
}

// errorShape is the top-level keys of a REST error body and the keys of
// each of its details, to compare the shape of two errors.
func errorShape(t *testing.T, body []byte) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("error body is not a JSON object: %v", err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var details []map[string]json.RawMessage
	_ = json.Unmarshal(m["details"], &details)
	shape := strings.Join(keys, ",")
	for _, d := range details {
		var dk []string
		for k := range d {
			dk = append(dk, k)
		}
		slices.Sort(dk)
		shape += fmt.Sprintf(" %s{%s}", d["@type"], strings.Join(dk, ","))
	}
	return shape
}

// restStatus reads a REST error body as a google.rpc.Status.
func restStatus(t *testing.T, body []byte) *status.Status {
	t.Helper()
	var st spb.Status
	if err := protojson.Unmarshal(body, &st); err != nil {
		t.Fatalf("error body %s is not a status: %v", body, err)
	}
	return status.FromProto(&st)
}

// rpcLogLines is the server's "rpc" log lines, decoded.
func rpcLogLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line is not JSON: %v", err)
		}
		if line["msg"] == "rpc" {
			out = append(out, line)
		}
	}
	return out
}

// TestGatewayRejectionsNameTheFieldNotTheValue sends REST requests the
// gateway cannot read into their request message: each is 400 with the same
// JSON shape as the service's own INVALID_ARGUMENT, a BadRequest naming the
// field in proto spelling, and the made-up value nowhere in the response or
// the logs; each is logged and counted under the RPC of its route.
func TestGatewayRejectionsNameTheFieldNotTheValue(t *testing.T) {
	e := start(t)
	const (
		createSubject = "/personaldata.v1.PersonalDataService/CreateSubject"
		forPurpose    = "/personaldata.v1.PersonalDataService/GetSubjectForPurpose"
		listPrincipal = "/personaldata.v1.PrincipalService/ListPrincipals"
	)
	bearer := "Bearer " + e.token
	// The shape of the service's own answer to a bad field.
	res, body := e.restRaw(t, "POST", "/v1/subjects", `{"idempotency_key":"k0","controller_id":"company","person":{"given_name":"Tolvan","email":"not-an-address"}}`, bearer)
	if res.StatusCode != http.StatusBadRequest || !slices.Contains(badFields(restStatus(t, body).Err()), "person.email") {
		t.Fatalf("the service's rejection: HTTP %d %s", res.StatusCode, body)
	}
	want := errorShape(t, body)

	for _, tc := range []struct {
		name, method, path, body string
		field, value, rpc        string
	}{
		{"a number for a string", "POST", "/v1/subjects",
			`{"idempotency_key":"k1","controller_id":"company","person":{"identity_number":191212121212,"given_name":"Tolvan"}}`,
			"person.identity_number", "191212121212", createSubject},
		{"an unknown enum value name", "POST", "/v1/subjects",
			`{"idempotency_key":"k2","controller_id":"company","channel":"CHANNEL_TOLVANSSON","person":{"given_name":"Tolvan"}}`,
			"channel", "TOLVANSSON", createSubject},
		{"JSON that does not parse", "POST", "/v1/subjects",
			`{"idempotency_key":"k3","controller_id":"company","person":{"given_name":Tolvansson}}`,
			"body", "Tolvansson", createSubject},
		{"a field the request does not have", "POST", "/v1/subjects",
			`{"idempotency_key":"k4","19121212-1212":"Tolvan"}`,
			"body", "19121212-1212", createSubject},
		{"a query parameter of the wrong type", "GET", "/v1/principals?page_size=1912121212x", "",
			"page_size", "1912121212x", listPrincipal},
		{"an unknown enum value name in the query", "GET", "/v1/subjects/s-1:forPurpose?purpose=PURPOSE_TOLVAN", "",
			"purpose", "TOLVAN", forPurpose},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := e.restRaw(t, tc.method, tc.path, tc.body, bearer)
			if res.StatusCode != http.StatusBadRequest {
				t.Fatalf("HTTP %d %s, want 400", res.StatusCode, body)
			}
			st := restStatus(t, body)
			if st.Code() != codes.InvalidArgument || !slices.Equal(badFields(st.Err()), []string{tc.field}) {
				t.Errorf("got %v fields %v, want INVALID_ARGUMENT naming %s", st.Err(), badFields(st.Err()), tc.field)
			}
			if got := errorShape(t, body); got != want {
				t.Errorf("shape %s, want the service's %s", got, want)
			}
			if strings.Contains(string(body), tc.value) {
				t.Errorf("the response quotes the value: %s", body)
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
	// A URL that matches no route is refused in the same shape.
	res, body = e.restRaw(t, "GET", "/v1/tolvan/19121212-1212", "", bearer)
	if res.StatusCode != http.StatusNotFound || restStatus(t, body).Code() != codes.NotFound || strings.Contains(string(body), "19121212") {
		t.Errorf("no route: HTTP %d %s", res.StatusCode, body)
	}

	logs := e.logs.String()
	for _, v := range []string{"191212121212", "TOLVANSSON", "Tolvansson", "19121212-1212", "1912121212x", "PURPOSE_TOLVAN", "not-an-address"} {
		if strings.Contains(logs, v) {
			t.Errorf("the logs quote the value %q", v)
		}
	}
	refused := map[string]int{}
	for _, l := range rpcLogLines(t, logs) {
		if l["refused_by"] == "gateway" && l["code"] == "InvalidArgument" {
			refused[l["method"].(string)]++
		}
	}
	if refused[createSubject] != 4 || refused[listPrincipal] != 1 || refused[forPurpose] != 1 {
		t.Errorf("log lines of the gateway's refusals by method: %v", refused)
	}
	_, metrics := httpGet(t, e.base+"/metrics")
	for _, line := range []string{
		// 4 refused by the gateway, 1 by the service.
		`personaldata_gateway_refusals_total{code="InvalidArgument",method="` + createSubject + `"} 4`,
		`grpc_server_handled_total{grpc_code="InvalidArgument",grpc_method="CreateSubject",grpc_service="personaldata.v1.PersonalDataService",grpc_type="unary"} 1`,
		`personaldata_gateway_refusals_total{code="InvalidArgument",method="` + listPrincipal + `"} 1`,
		`personaldata_gateway_refusals_total{code="InvalidArgument",method="` + forPurpose + `"} 1`,
		`personaldata_gateway_refusals_total{code="NotFound",method="(no route)"} 1`,
	} {
		if !strings.Contains(metrics, line) {
			t.Errorf("metrics lack %s", line)
		}
	}
	if n := e.count(t, "subjects"); n != 0 {
		t.Errorf("%d subjects written", n)
	}
}

// TestBearerSchemeAndHeaders: the scheme's name is matched in any case, a
// 401 says which scheme it wants, and no gRPC metadata reaches a REST client.
func TestBearerSchemeAndHeaders(t *testing.T) {
	e := start(t)
	for _, scheme := range []string{"Bearer", "bearer", "BEARER"} {
		res, body := e.restRaw(t, "GET", "/v1/caller", "", scheme+" "+e.token)
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"tester"`) {
			t.Errorf("REST with scheme %q: HTTP %d %s", scheme, res.StatusCode, body)
		}
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", scheme+" "+e.token)
		var who pdv1.GetCallerResponse
		if err := e.grpc.Invoke(ctx, "/personaldata.v1.PrincipalService/GetCaller", &pdv1.GetCallerRequest{}, &who); err != nil || who.GetPrincipal().GetPrincipalId() != "tester" {
			t.Errorf("gRPC with scheme %q: %v %v", scheme, &who, err)
		}
	}
	for _, auth := range []string{"", "Basic dGVzdGVyOnRlc3Q=", "Bearer", "Bearer " + e.token[:len(e.token)-4] + "AAAA"} {
		res, body := e.restRaw(t, "GET", "/v1/caller", "", auth)
		if res.StatusCode != http.StatusUnauthorized || restStatus(t, body).Code() != codes.Unauthenticated {
			t.Errorf("REST with authorization %q: HTTP %d %s", auth, res.StatusCode, body)
		}
		if got := res.Header.Get("WWW-Authenticate"); got != "Bearer" {
			t.Errorf("401 with WWW-Authenticate %q, want Bearer", got)
		}
	}
	// A stream's 401 names the scheme too.
	if res, body := e.restRaw(t, "GET", "/v1/subjects/abcdefghijklmnopqrstuvwxyz:streamAccess", "", ""); res.StatusCode != http.StatusUnauthorized || res.Header.Get("WWW-Authenticate") != "Bearer" {
		t.Errorf("a stream without credentials: HTTP %d, WWW-Authenticate %q, %s", res.StatusCode, res.Header.Get("WWW-Authenticate"), body)
	}
	err := grpcCaller{e.grpc, ""}.call(context.Background(), "personaldata.v1.PrincipalService/GetCaller", &pdv1.GetCallerRequest{}, &pdv1.GetCallerResponse{})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("gRPC without credentials: %v", err)
	}

	// A success, the service's refusal, the gateway's refusal, a 401.
	sub := create(t, e.rc(), 300)
	bearer := "Bearer " + e.token
	for _, r := range []struct{ method, path, body, auth string }{
		{"GET", "/v1/subjects/" + sub.GetSubjectId() + ":access", "", bearer},
		{"GET", "/v1/subjects/nobody:access", "", bearer},
		{"POST", "/v1/subjects", `{"person":{"identity_number":1}}`, bearer},
		{"GET", "/v1/caller", "", ""},
	} {
		res, _ := e.restRaw(t, r.method, r.path, r.body, r.auth)
		for h := range res.Header {
			if strings.HasPrefix(h, "Grpc-Metadata-") || strings.HasPrefix(h, "Grpc-Trailer-") {
				t.Errorf("%s %s (HTTP %d) sends header %s", r.method, r.path, res.StatusCode, h)
			}
		}
	}
}

// detail is the first detail of type T in err's status (a zero T if none).
func detail[T proto.Message](err error) T {
	var zero T
	for _, d := range status.Convert(err).Details() {
		if v, ok := d.(T); ok {
			return v
		}
	}
	return zero
}

// TestRefusalDetails: every refusal says why in its details, over gRPC
// (status details) and REST (details in the JSON body).
func TestRefusalDetails(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		sub := create(t, c, 310)

		// PERMISSION_DENIED: a purpose not granted, an RPC not granted.
		billing := e.as(c, e.principal(t, "billing", pdv1.PrincipalKind_PRINCIPAL_KIND_BILLING_SYSTEM, []string{"company"}, nil))
		err := callErr(t, billing, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: sub.GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_SUPPORT}, &pdv1.GetSubjectForPurposeResponse{}, codes.PermissionDenied)
		if info := detail[*errdetails.ErrorInfo](err); info.GetReason() != "PURPOSE_NOT_PERMITTED" || info.GetDomain() != "personaldata.v1" || info.GetMetadata()["purpose"] != "PURPOSE_SUPPORT" {
			t.Errorf("purpose refused with %v", info)
		}
		err = callErr(t, c, principalSvc+"ListPrincipals", &pdv1.ListPrincipalsRequest{}, &pdv1.ListPrincipalsResponse{}, codes.PermissionDenied)
		if info := detail[*errdetails.ErrorInfo](err); info.GetReason() != "RPC_NOT_PERMITTED" || info.GetMetadata()["method"] != "/personaldata.v1.PrincipalService/ListPrincipals" {
			t.Errorf("RPC refused with %v", info)
		}

		// ALREADY_EXISTS: the same person again; the details name the field,
		// never the value or the subject that holds it.
		err = callErr(t, c, "CreateSubject", createReq("again", 310), &pdv1.CreateSubjectResponse{}, codes.AlreadyExists)
		info, res := detail[*errdetails.ErrorInfo](err), detail[*errdetails.ResourceInfo](err)
		if info.GetReason() != "SUBJECT_EXISTS" || info.GetMetadata()["field"] != "identity_number" || res.GetResourceType() != "personaldata.v1.Subject" || res.GetResourceName() != "" {
			t.Errorf("duplicate subject refused with %v %v", info, res)
		}
		if s := fmt.Sprint(status.Convert(err).Proto()); strings.Contains(s, sub.GetSubjectId()) || strings.Contains(s, testPerson(310).GetGivenName()) {
			t.Errorf("ALREADY_EXISTS tells who holds the key: %s", s)
		}
		op := e.as(c, e.operator)
		err = callErr(t, op, principalSvc+"CreatePrincipal", &pdv1.CreatePrincipalRequest{
			IdempotencyKey: "again", Principal: &pdv1.Principal{PrincipalId: "billing", Kind: pdv1.PrincipalKind_PRINCIPAL_KIND_BILLING_SYSTEM, TenantIds: []string{"company"}},
		}, &pdv1.CreatePrincipalResponse{}, codes.AlreadyExists)
		if info, res := detail[*errdetails.ErrorInfo](err), detail[*errdetails.ResourceInfo](err); info.GetReason() != "PRINCIPAL_EXISTS" || res.GetResourceName() != "principals/billing" {
			t.Errorf("duplicate principal refused with %v %v", info, res)
		}

		// ABORTED: a stale version; the details give the current one, with
		// which the caller reads again and retries.
		call(t, c, "RectifySubject", rectifyReq(sub, "r1", &pdv1.Person{GivenName: "Tolvan"}, "given_name"), &pdv1.RectifySubjectResponse{})
		err = callErr(t, c, "RectifySubject", rectifyReq(sub, "r2", &pdv1.Person{FamilyName: "Tolvansson"}, "family_name"), &pdv1.RectifySubjectResponse{}, codes.Aborted)
		info = detail[*errdetails.ErrorInfo](err)
		if info.GetReason() != "STALE_VERSION" || info.GetMetadata()["current_version"] != "2" || info.GetMetadata()["expected_version"] != "1" {
			t.Fatalf("stale version refused with %v", info)
		}
		retry := rectifyReq(sub, "r3", &pdv1.Person{FamilyName: "Tolvansson"}, "family_name")
		retry.ExpectedVersion = 2
		if got := call(t, c, "RectifySubject", retry, &pdv1.RectifySubjectResponse{}); got.GetSubject().GetVersion() != 3 {
			t.Errorf("retry at the current version: %v", got)
		}
	})
}
