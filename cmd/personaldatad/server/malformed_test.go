package server_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
)

// TestMalformedPathsMethodsAndBodies sends REST requests that are malformed
// in the URL, the method or the body: none is a 500 or 501, each gets the
// status HTTP gives it (400, 405 with Allow, 413) in the one error shape,
// naming what is wrong, and each is logged and counted.
func TestMalformedPathsMethodsAndBodies(t *testing.T) {
	e := start(t)
	auth := "Bearer " + e.token
	sub := create(t, e.gc(), 360)
	big := `{"identity_number": "` + strings.Repeat("1", 2<<20) + `"}`
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		field, allow             string
	}{
		{"invalid UTF-8 in a path parameter", "GET", "/v1/subjects/%ff%fe:access", "", 400, "subject_id", ""},
		{"invalid UTF-8 in a query parameter", "GET", "/v1/subjects/" + sub.GetSubjectId() + "/history?page_token=%ff", "", 400, "page_token", ""},
		{"invalid UTF-8 in a stream's path", "GET", "/v1/subjects/%ff:streamAccess", "", 400, "subject_id", ""},
		{"a method the route does not take", "DELETE", "/v1/subjects", "", 405, "", "POST"},
		{"another", "PUT", "/v1/subjects/" + sub.GetSubjectId() + ":access", "", 405, "", "GET"},
		{"a body over the limit", "POST", "/v1/subjects:find", big, 413, "body", ""},
		{"a second JSON object after the body", "POST", "/v1/subjects:find", `{"identity_number": "121212+1212"} {"email": "x@example.test"}`, 400, "body", ""},
		{"text after the body", "POST", "/v1/subjects:find", `{"identity_number": "121212+1212"}trailing`, 400, "body", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(rpcLogLines(t, e.logs.String()))
			res, body := e.restRaw(t, tc.method, tc.path, tc.body, auth)
			if res.StatusCode != tc.status {
				t.Fatalf("HTTP %d %s, want %d", res.StatusCode, body, tc.status)
			}
			st := restStatus(t, body)
			if tc.field != "" {
				var fields []string
				for _, d := range st.Details() {
					if br, ok := d.(*errdetails.BadRequest); ok {
						for _, fv := range br.GetFieldViolations() {
							fields = append(fields, fv.GetField())
						}
					}
				}
				if !slices.Equal(fields, []string{tc.field}) {
					t.Errorf("fields %v, want [%s]", fields, tc.field)
				}
			}
			if got := res.Header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow %q, want %q", got, tc.allow)
			}
			if len(rpcLogLines(t, e.logs.String())) != before+1 {
				t.Errorf("the refusal was not logged once: %d lines", len(rpcLogLines(t, e.logs.String()))-before)
			}
		})
	}
	// A body with only white space after the object is fine.
	res, body := e.restRaw(t, "POST", "/v1/subjects:find", fmt.Sprintf("{\"controller_id\": \"company\", \"email\": %q}\n  \n", "testa360@example.test"), auth)
	if res.StatusCode != http.StatusOK {
		t.Errorf("a body with trailing white space: HTTP %d %s", res.StatusCode, body)
	}
	_, metrics := httpGet(t, e.base+"/metrics")
	if strings.Contains(metrics, `code="Internal"`) || strings.Contains(metrics, `code="Unimplemented"`) && !strings.Contains(metrics, `method="(no route)"`) {
		t.Errorf("metrics count an INTERNAL or UNIMPLEMENTED answer")
	}
}
