package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// The REST surface as issue 25 names it: lowerCamelCase collections,
// AIP-134 updates, masks spelt as the bodies spell fields, no-store and
// nosniff on every answer, streams of one content type with an explicit end,
// and a stream's refusal in the shape of a unary one.

// do sends one REST request and returns the response with its body read.
func do(t *testing.T, method, url, token, body string) (*http.Response, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	hr, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Content-Type", "application/json")
	if token != "" {
		hr.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, b
}

// TestRightsRequestsCollection: the collection is /v1/rightsRequests; the
// kebab-case path is no route.
func TestRightsRequestsCollection(t *testing.T) {
	e := start(t)
	if res, b := do(t, http.MethodGet, e.base+"/v1/rightsRequests?controller_id=company", e.token, ""); res.StatusCode != http.StatusOK {
		t.Errorf("GET /v1/rightsRequests: HTTP %d %s", res.StatusCode, b)
	}
	if res, _ := do(t, http.MethodGet, e.base+"/v1/rights-requests?controller_id=company", e.token, ""); res.StatusCode != http.StatusNotFound {
		t.Errorf("GET /v1/rights-requests: HTTP %d, want 404", res.StatusCode)
	}
}

// TestUpdatePrincipalPatch: UpdatePrincipal is PATCH /v1/principals/{id}
// (AIP-134) with its update_mask spelt either way; POST …:update is gone,
// and the resource's path allows GET and PATCH.
func TestUpdatePrincipalPatch(t *testing.T) {
	e := start(t)
	op := e.as(e.rc(), e.operator)
	createPrincipal(t, op, "billing-1", pdv1.PrincipalKind_PRINCIPAL_KIND_BILLING_SYSTEM, []string{"company"}, nil)
	version := int64(1)
	for i, mask := range []string{"tenant_ids", "tenantIds"} {
		tenant := fmt.Sprintf("customer-%d", 50+i)
		body := fmt.Sprintf(`{"idempotency_key":"patch-%d","expected_version":"%d","tenant_ids":[%q],"update_mask":%q}`, i, version, tenant, mask)
		res, b := do(t, http.MethodPatch, e.base+"/v1/principals/billing-1", e.operator, body)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("PATCH with update_mask %q: HTTP %d %s", mask, res.StatusCode, b)
		}
		var got pdv1.UpdatePrincipalResponse
		if err := protojson.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.GetPrincipal().GetTenantIds(), []string{tenant}) {
			t.Errorf("update_mask %q: tenant_ids %v, want [%s]", mask, got.GetPrincipal().GetTenantIds(), tenant)
		}
		version = got.GetPrincipal().GetVersion()
	}
	body := fmt.Sprintf(`{"idempotency_key":"patch-old","expected_version":"%d","tenant_ids":["company"],"update_mask":"tenant_ids"}`, version)
	if res, _ := do(t, http.MethodPost, e.base+"/v1/principals/billing-1:update", e.operator, body); res.StatusCode != http.StatusNotFound && res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST …:update: HTTP %d, want no route (404 or 405)", res.StatusCode)
	}
	res, _ := do(t, http.MethodDelete, e.base+"/v1/principals/billing-1", e.operator, "")
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, PATCH" {
		t.Errorf("DELETE: HTTP %d, Allow %q; want 405 with GET, PATCH", res.StatusCode, res.Header.Get("Allow"))
	}
}

// TestRectifyMaskSpelling: RectifySubject's update_mask over REST takes the
// paths as the body spells the fields (given_name) or in lowerCamelCase,
// and a mask that names no field is refused naming update_mask.
func TestRectifyMaskSpelling(t *testing.T) {
	e := start(t)
	sub := create(t, e.rc(), 31)
	version := sub.GetVersion()
	for i, mask := range []string{"given_name,family_name", "givenName,familyName"} {
		given := fmt.Sprintf("Ny%c", 'a'+i)
		body := fmt.Sprintf(`{"idempotency_key":"rect-%d","expected_version":"%d","person":{"given_name":%q,"family_name":"Berg"},"update_mask":%q,"channel":"CHANNEL_EMAIL","reference":"ticket-%d","performed_by":"agent-7"}`,
			i, version, given, mask, i)
		res, b := do(t, http.MethodPost, e.base+"/v1/subjects/"+sub.GetSubjectId()+":rectify", e.token, body)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("update_mask %q: HTTP %d %s", mask, res.StatusCode, b)
		}
		var got pdv1.RectifySubjectResponse
		if err := protojson.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if p := got.GetSubject().GetPerson(); p.GetGivenName() != given || p.GetFamilyName() != "Berg" {
			t.Errorf("update_mask %q: %s %s", mask, p.GetGivenName(), p.GetFamilyName())
		}
		version = got.GetSubject().GetVersion()
	}
	for _, mask := range []string{"Given-Name", "given_name,no_such_field"} {
		body := fmt.Sprintf(`{"idempotency_key":"rect-bad","expected_version":"%d","person":{"given_name":"X"},"update_mask":%q,"channel":"CHANNEL_EMAIL","reference":"t","performed_by":"agent-7"}`, version, mask)
		res, b := do(t, http.MethodPost, e.base+"/v1/subjects/"+sub.GetSubjectId()+":rectify", e.token, body)
		err := restRefusal(b, res.StatusCode)
		if res.StatusCode != http.StatusBadRequest || !slices.Contains(badFields(err), "update_mask") {
			t.Errorf("update_mask %q: HTTP %d, fields %v; want 400 naming update_mask (%s)", mask, res.StatusCode, badFields(err), b)
		}
		if strings.Contains(string(b), "Given-Name") {
			t.Errorf("update_mask %q: the refusal repeats the value: %s", mask, b)
		}
	}
}

// TestNoStoreNoSniff: every REST answer of the API, unary or streamed,
// success or refusal (a 401 of the auth-first check included), is not to be
// stored or sniffed.
func TestNoStoreNoSniff(t *testing.T) {
	e := start(t)
	sub := create(t, e.rc(), 32)
	for _, rq := range []struct{ method, path, token, body string }{
		{http.MethodGet, "/v1/subjects/" + sub.GetSubjectId(), e.token, ""},
		{http.MethodGet, "/v1/subjects/no-such-subject", e.token, ""},
		{http.MethodGet, "/v1/subjects/" + sub.GetSubjectId(), "", ""},
		{http.MethodGet, "/v1/no-such-route", e.token, ""},
		{http.MethodGet, "/v1/subjects/" + sub.GetSubjectId() + ":streamAccess", e.token, ""},
		{http.MethodPost, "/v1/subjects", e.token, "{not json"},
	} {
		res, _ := do(t, rq.method, e.base+rq.path, rq.token, rq.body)
		if res.Header.Get("Cache-Control") != "no-store" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s %s (HTTP %d): Cache-Control %q, X-Content-Type-Options %q", rq.method, rq.path, res.StatusCode,
				res.Header.Get("Cache-Control"), res.Header.Get("X-Content-Type-Options"))
		}
	}
}

// TestStreamEnd: a stream over REST is application/x-ndjson and ends with
// {"end":{"results":n}}, an empty one too, so a client tells it from a hang.
func TestStreamEnd(t *testing.T) {
	e := start(t)
	c := e.rc()
	createAgreement(t, e, c, paReq(e, "pa-1", "customer-42", supportAndDelivery, allCategories...))
	token := e.principal(t, "customer-42-portal", pdv1.PrincipalKind_PRINCIPAL_KIND_CUSTOMER_CONTROLLER, []string{"customer-42"}, nil)
	export := func() (*http.Response, [][]byte) {
		res, b := do(t, http.MethodPost, e.base+"/v1/customers/customer-42/subjects:export", token, "{}")
		return res, bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
	}

	res, lines := export()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Errorf("empty export: HTTP %d, Content-Type %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if len(lines) != 1 || string(lines[0]) != `{"end":{"results":0}}` {
		t.Errorf("empty export: %q, want the one end line", lines)
	}

	for i := range 2 {
		createFor(t, c, "customer-42", 40+i)
	}
	res, lines = export()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Errorf("export: HTTP %d, Content-Type %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if len(lines) != 3 || string(lines[2]) != `{"end":{"results":2}}` || !bytes.HasPrefix(lines[0], []byte(`{"result":`)) {
		t.Errorf("export of 2: %q, want two results and the end line", lines)
	}
}

// TestStreamRefusalShape: a stream refused before its first message is
// answered as a unary call with the same refusal is: the error's HTTP
// status and the google.rpc.Status body, with the same detail types.
func TestStreamRefusalShape(t *testing.T) {
	e := start(t)
	unary, ub := do(t, http.MethodGet, e.base+"/v1/subjects/no-such-subject", e.token, "")
	stream, sb := do(t, http.MethodGet, e.base+"/v1/subjects/no-such-subject:streamAccess", e.token, "")
	detailTypes := func(b []byte) []string {
		var st spb.Status
		if err := protojson.Unmarshal(b, &st); err != nil {
			t.Fatalf("not a google.rpc.Status: %s", b)
		}
		var out []string
		for _, d := range st.GetDetails() {
			out = append(out, d.GetTypeUrl())
		}
		slices.Sort(out)
		return out
	}
	if unary.StatusCode != http.StatusNotFound || stream.StatusCode != http.StatusNotFound {
		t.Fatalf("HTTP %d (unary) and %d (stream), want 404", unary.StatusCode, stream.StatusCode)
	}
	if ct := stream.Header.Get("Content-Type"); ct != unary.Header.Get("Content-Type") {
		t.Errorf("Content-Type %q (stream), %q (unary)", ct, unary.Header.Get("Content-Type"))
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(sb, &top); err != nil || top["code"] == nil || top["error"] != nil {
		t.Errorf("stream refusal is not a google.rpc.Status body: %s", sb)
	}
	if u, s := detailTypes(ub), detailTypes(sb); !slices.Equal(u, s) || len(u) == 0 {
		t.Errorf("detail types %v (unary), %v (stream)", u, s)
	}
}
