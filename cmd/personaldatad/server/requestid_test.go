package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// requestInfo is the request id an error carries, or "".
func requestInfo(st *status.Status) string {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RequestInfo); ok {
			return ri.GetRequestId()
		}
	}
	return ""
}

// Every request has an id: the caller's when well formed, else a new one;
// it comes back in a header, in every error, and is on the log lines.
func TestRequestID(t *testing.T) {
	e := start(t)

	// REST: the caller's id is kept, returned, and in the error body.
	res, body := e.restRawWith(t, "POST", "/v1/subjects:find", `{"controller_id": "company", "email": "nobody@example.test"}`, "Bearer "+e.token, "support-ticket-77")
	if res.StatusCode != http.StatusNotFound || res.Header.Get("X-Request-Id") != "support-ticket-77" {
		t.Fatalf("HTTP %d with X-Request-Id %q", res.StatusCode, res.Header.Get("X-Request-Id"))
	}
	if id := requestInfo(restStatus(t, body)); id != "support-ticket-77" {
		t.Errorf("the error body's RequestInfo: %q", id)
	}
	// The gateway's own refusal carries one too; an id that is not well
	// formed is replaced.
	res, body = e.restRawWith(t, "POST", "/v1/subjects", `{"person": 7}`, "Bearer "+e.token, "19121212-1212 Tolvan")
	got := res.Header.Get("X-Request-Id")
	if res.StatusCode != http.StatusBadRequest || got == "" || strings.Contains(got, "Tolvan") || requestInfo(restStatus(t, body)) != got {
		t.Errorf("gateway refusal: HTTP %d, header %q, body id %q", res.StatusCode, got, requestInfo(restStatus(t, body)))
	}

	// gRPC: the header and the error detail.
	var header metadata.MD
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+e.token, "x-request-id", "billing-run-5")
	_, err := pdv1.NewPersonalDataServiceClient(e.grpc).AccessSubject(ctx, &pdv1.AccessSubjectRequest{SubjectId: "nosuchsubject"}, grpc.Header(&header))
	if status.Code(err) != codes.NotFound || requestInfo(status.Convert(err)) != "billing-run-5" {
		t.Errorf("gRPC error %v with request id %q", err, requestInfo(status.Convert(err)))
	}
	if v := header.Get("x-request-id"); len(v) != 1 || v[0] != "billing-run-5" {
		t.Errorf("x-request-id header %v", v)
	}
	// Without one, a new id, the same in the header and the error.
	_, err = pdv1.NewPersonalDataServiceClient(e.grpc).AccessSubject(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+e.token),
		&pdv1.AccessSubjectRequest{SubjectId: "nosuchsubject"}, grpc.Header(&header))
	if id := requestInfo(status.Convert(err)); id == "" || header.Get("x-request-id")[0] != id {
		t.Errorf("a new id %q, header %v", id, header.Get("x-request-id"))
	}

	// The log lines of those calls name their ids.
	logs := e.logs.String()
	for _, id := range []string{"support-ticket-77", "billing-run-5", got} {
		if !strings.Contains(logs, `"request_id":"`+id+`"`) {
			t.Errorf("no log line with request id %s", id)
		}
	}
}
