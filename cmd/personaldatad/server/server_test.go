package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/example/personaldata/cmd/personaldatad/server"
	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/embedded"
	"github.com/example/personaldata/store/storetest"
)

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func TestHealthAndReflection(t *testing.T) {
	e := start(t)
	ctx := context.Background()
	hc := healthpb.NewHealthClient(e.grpc)
	for _, svc := range []string{"", "personaldata.v1.PersonalDataService"} {
		res, err := hc.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health of %q: %v %v", svc, res, err)
		}
	}
	if code, body := httpGet(t, e.base+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}

	// Health needs no credentials; reflection does.
	if _, err := reflectionpb.NewServerReflectionClient(e.grpc).ServerReflectionInfo(ctx); err == nil {
		s, _ := reflectionpb.NewServerReflectionClient(e.grpc).ServerReflectionInfo(ctx)
		_ = s.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
		if _, err := s.Recv(); status.Code(err) != codes.Unauthenticated {
			t.Errorf("reflection without credentials: %v, want UNAUTHENTICATED", err)
		}
	}
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+e.token)
	stream, err := reflectionpb.NewServerReflectionClient(e.grpc).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	res, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range res.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	if !strings.Contains(strings.Join(names, " "), "personaldata.v1.PersonalDataService") {
		t.Errorf("reflection lists %v", names)
	}
}

// TestNoPersonalDataInLogsOrMetrics runs a scenario with successes and
// errors, then searches the server's whole log output and its metrics for
// the test person's values.
func TestNoPersonalDataInLogsOrMetrics(t *testing.T) {
	e := start(t)
	for _, c := range []caller{e.gc(), e.rc()} {
		ctx := context.Background()
		n := 90
		if c.name() == "rest" {
			n = 91
		}
		sub := create(t, c, n)
		_ = c.call(ctx, "CreateSubject", createReq("dup-"+c.name(), n), &pdv1.CreateSubjectResponse{})
		bad := createReq("bad-"+c.name(), n)
		bad.Person.Email = "not-an-address-" + c.name()
		_ = c.call(ctx, "CreateSubject", bad, &pdv1.CreateSubjectResponse{})
		call(t, c, "AddHistoryEntry", historyReq(sub, "h", n), &pdv1.AddHistoryEntryResponse{})
		call(t, c, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: sub.GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_INVOICING}, &pdv1.GetSubjectForPurposeResponse{})
		call(t, c, "FindSubject", &pdv1.FindSubjectRequest{ControllerId: "company", Key: &pdv1.FindSubjectRequest_Email{Email: sub.GetPerson().GetEmail()}}, &pdv1.FindSubjectResponse{})
		_ = c.call(ctx, "FindSubject", &pdv1.FindSubjectRequest{ControllerId: "company", Key: &pdv1.FindSubjectRequest_Email{Email: "absent-" + c.name() + "@example.test"}}, &pdv1.FindSubjectResponse{})
		call(t, c, "RestrictProcessing", restrictReq(sub, "r"), &pdv1.RestrictProcessingResponse{})
		_ = c.call(ctx, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: sub.GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_INVOICING}, &pdv1.GetSubjectForPurposeResponse{})
		_ = c.call(ctx, "RectifySubject", rectifyReq(sub, "stale", &pdv1.Person{GivenName: "Nyname"}, "given_name"), &pdv1.RectifySubjectResponse{})
		call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
		call(t, c, "EraseSubject", eraseReq(sub, "e"), &pdv1.EraseSubjectResponse{})
	}
	_, metrics := httpGet(t, e.base+"/metrics")
	if !strings.Contains(metrics, `grpc_server_handled_total{grpc_code="AlreadyExists",grpc_method="CreateSubject",grpc_service="personaldata.v1.PersonalDataService",grpc_type="unary"} 2`) {
		t.Errorf("metrics lack the per-method, per-code count of refused creates")
	}
	if !strings.Contains(metrics, `grpc_server_handled_total{grpc_code="OK",grpc_method="EraseSubject",grpc_service="personaldata.v1.PersonalDataService",grpc_type="unary"} 2`) {
		t.Errorf("metrics lack the count of erasures")
	}
	if !strings.Contains(metrics, `http_requests_total{code="200",handler="gateway",method="post"}`) || !strings.Contains(metrics, "grpc_server_handling_seconds_bucket") {
		t.Errorf("metrics lack the HTTP requests or the gRPC handling times")
	}
	logs := e.logs.String()
	if !strings.Contains(logs, `"code":"FailedPrecondition"`) {
		t.Errorf("logs lack the refused purpose view; the test would see nothing")
	}
	for _, n := range []int{90, 91} {
		p := testPerson(n)
		values := []string{p.GetGivenName(), p.GetFamilyName(), p.GetEmail(), strings.ReplaceAll(p.GetIdentityNumber(), "-", ""), p.GetIdentityNumber(), p.GetPostalAddress().GetLines()[0], "Order", "not-an-address", "absent-", "Nyname"}
		for _, v := range values {
			if strings.Contains(logs, v) {
				t.Errorf("logs contain a personal value (%d chars)", len(v))
			}
			if strings.Contains(metrics, v) {
				t.Errorf("metrics contain a personal value (%d chars)", len(v))
			}
		}
	}
}

func TestRequestLimits(t *testing.T) {
	e := start(t)
	big := strings.Repeat("x", 2<<20)
	res, err := http.Post(e.base+"/v1/subjects", "application/json", strings.NewReader(`{"idempotency_key":"k","controller_id":"company","person":{"given_name":"`+big+`"}}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode < 400 || res.StatusCode >= 500 {
		t.Errorf("2 MiB REST body: HTTP %d, want 4xx", res.StatusCode)
	}
	req := createReq("k", 1)
	req.Person.GivenName = big
	err = e.gc().call(context.Background(), "CreateSubject", req, &pdv1.CreateSubjectResponse{})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("2 MiB gRPC message: %v, want ResourceExhausted", err)
	}
	if n := e.count(t, "subjects"); n != 0 {
		t.Errorf("%d subjects written", n)
	}
}

// TestRestartKeepsData stops a server and starts another on the same data
// directory: what was acknowledged is there.
func TestRestartKeepsData(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts the server")
	}
	dir := t.TempDir()
	var token string // the tester's, created on the first run, valid after the restart
	run := func(f func(c caller)) {
		srv, stop := serve(t, dir, server.Config{Store: store.Config{DataDir: filepath.Join(dir, "data"), Database: "restart"}}, slog.New(slog.DiscardHandler))
		conn := dial(t, srv)
		if token == "" {
			op := grpcCaller{conn, readToken(t, filepath.Join(dir, "operator.token"))}
			token = createPrincipal(t, op, "tester", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, []string{"company"}, nil)
		}
		f(grpcCaller{conn, token})
		stop()
	}
	var id string
	run(func(c caller) {
		sub := create(t, c, 95)
		call(t, c, "AddHistoryEntry", historyReq(sub, "h", 1), &pdv1.AddHistoryEntryResponse{})
		id = sub.GetSubjectId()
	})
	run(func(c caller) {
		got := call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: id}, &pdv1.AccessSubjectResponse{})
		if got.GetSubject().GetPerson().GetGivenName() != "Testa95" || len(got.GetHistory()) != 1 {
			t.Errorf("after restart: %v", got)
		}
		// The same create again is still recognised as a retry.
		again := call(t, c, "CreateSubject", createReq("create-95", 95), &pdv1.CreateSubjectResponse{})
		if again.GetSubject().GetSubjectId() != id {
			t.Errorf("retry after restart made %s", again.GetSubject().GetSubjectId())
		}
	})
	_ = fmt.Sprint
}

// TestStoreOutage takes the database away under a running server: calls fail
// with UNAVAILABLE (not INTERNAL), and what was acknowledged before is there
// when the database is back.
func TestStoreOutage(t *testing.T) {
	storetest.SkipInMongoMode(t)
	dir := t.TempDir()
	db, err := embedded.Start(context.Background(), dir, embedded.Durable)
	if err != nil {
		t.Fatal(err)
	}
	uri := db.URI() + "&serverSelectionTimeoutMS=500"
	if !strings.Contains(db.URI(), "?") {
		uri = db.URI() + "?serverSelectionTimeoutMS=500"
	}
	srv, stop := serve(t, dir, server.Config{Store: store.Config{URI: uri, Database: "outage"}}, slog.New(slog.DiscardHandler))
	conn := dial(t, srv)
	op := grpcCaller{conn, readToken(t, filepath.Join(dir, "operator.token"))}
	token := createPrincipal(t, op, "tester", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, []string{"company"}, nil)
	sub := create(t, grpcCaller{conn, token}, 96)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []caller{grpcCaller{conn, token}, restCaller{"http://" + srv.HTTPAddr(), token}} {
		for _, r := range []struct {
			method    string
			req, resp proto.Message
		}{
			{"AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{}},
			{"CreateSubject", createReq("during-outage", 97), &pdv1.CreateSubjectResponse{}},
		} {
			method := r.method
			err := c.call(context.Background(), method, r.req, r.resp)
			if status.Code(err) != codes.Unavailable {
				t.Errorf("%s %s with the store down: %v, want UNAVAILABLE", c.name(), method, err)
			}
			if re, ok := err.(*restError); ok && re.httpCode != http.StatusServiceUnavailable {
				t.Errorf("REST %s with the store down: HTTP %d, want 503", method, re.httpCode)
			}
			// The details say it is the store, and when to try again.
			if ri := detail[*errdetails.RetryInfo](err); ri.GetRetryDelay().AsDuration() <= 0 {
				t.Errorf("%s %s with the store down: RetryInfo %v", c.name(), method, ri)
			}
			if info := detail[*errdetails.ErrorInfo](err); info.GetReason() != "STORE_UNAVAILABLE" {
				t.Errorf("%s %s with the store down: ErrorInfo %v", c.name(), method, info)
			}
		}
	}
	if code, _ := httpGet(t, "http://"+srv.HTTPAddr()+"/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz with the store down: %d", code)
	}
	// Back on the same data: the acknowledged subject is there. (The
	// server's client still points at the old port; the store is checked
	// directly.)
	if db, err = embedded.Start(context.Background(), dir, embedded.Durable); err != nil {
		t.Fatal(err)
	}
	check, err := store.Open(context.Background(), store.Config{URI: db.URI(), Database: "outage"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := check.GetSubject(context.Background(), sub.GetSubjectId()); err != nil {
		t.Errorf("acknowledged subject after the outage: %v", err)
	}
	_ = check.Close(context.Background())
	stop()
	_ = db.Close()
}

// TestOperatorTokenMovedIntoPlace: a first start cut after it stored the
// operator and before its token file was moved into place (the token still
// under its pending name) is finished by the next start, which moves the
// file; the token then works. A pending file whose token the operator does
// not hold is left alone.
func TestOperatorTokenMovedIntoPlace(t *testing.T) {
	storetest.SkipInMongoMode(t)
	dir := t.TempDir()
	cfg := server.Config{Store: store.Config{DataDir: filepath.Join(dir, "data"), Database: "bootstrap"}}
	_, stop := serve(t, dir, cfg, slog.New(slog.DiscardHandler))
	stop()
	path := filepath.Join(dir, "operator.token")
	token := readToken(t, path)
	if err := os.Rename(path, path+".pending-cut"); err != nil {
		t.Fatal(err)
	}
	stranger := path + ".pending-other"
	if err := os.WriteFile(stranger, []byte("pd1.operator.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, _ := serve(t, dir, cfg, slog.New(slog.DiscardHandler))
	if got := readToken(t, path); got != token {
		t.Fatal("the token file in place after the next start is not the first operator's")
	}
	if _, err := os.Stat(stranger); err != nil {
		t.Errorf("a pending file of a token the operator does not hold: %v, want it left alone", err)
	}
	who := call(t, grpcCaller{dial(t, srv), token}, "personaldata.v1.PrincipalService/GetCaller", &pdv1.GetCallerRequest{}, &pdv1.GetCallerResponse{})
	if who.GetPrincipal().GetPrincipalId() != "operator" {
		t.Errorf("the moved token is %q's, want the operator's", who.GetPrincipal().GetPrincipalId())
	}
}
