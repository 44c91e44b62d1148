package server_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/example/personaldata/cmd/personaldatad/server"
	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/storetest"
)

// Tracing, when configured, follows a REST call through the gateway into
// gRPC and the store, and no span holds a personal value.
func TestTracingCarriesNoPersonalData(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(context.Background())
	dir := t.TempDir()
	srv, _ := serve(t, dir, server.Config{
		Store:          store.Config{URI: storetest.URI(), DataDir: filepath.Join(dir, "data"), Database: "pdtrace_" + strings.ReplaceAll(t.Name(), "/", "_")},
		TracerProvider: tp,
	}, slog.New(slog.DiscardHandler))
	e := &env{srv: srv, grpc: dial(t, srv), base: "http://" + srv.HTTPAddr(), operator: readToken(t, filepath.Join(dir, "operator.token"))}
	e.token = e.principal(t, "tester", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, []string{"company"}, allPurposes)

	var people []*pdv1.Person
	for _, c := range []caller{e.rc(), e.gc()} {
		n := 111 + len(people)
		sub := create(t, c, n)
		people = append(people, sub.GetPerson())
		call(t, c, "FindSubject", &pdv1.FindSubjectRequest{ControllerId: "company", Key: &pdv1.FindSubjectRequest_Email{Email: sub.GetPerson().GetEmail()}}, &pdv1.FindSubjectResponse{})
		call(t, c, "FindSubject", &pdv1.FindSubjectRequest{ControllerId: "company", Key: &pdv1.FindSubjectRequest_IdentityNumber{IdentityNumber: sub.GetPerson().GetIdentityNumber()}}, &pdv1.FindSubjectResponse{})
		call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
	}
	spans := rec.Ended()
	var httpSpans, grpcSpans, storeSpans int
	byTrace := map[string][]string{}
	for _, s := range spans {
		name := s.Name()
		switch {
		case strings.HasPrefix(name, "HTTP "):
			httpSpans++
		case strings.HasPrefix(name, "personaldata.v1."):
			grpcSpans++
		case name == "find" || name == "insert" || name == "update":
			storeSpans++
		}
		byTrace[s.SpanContext().TraceID().String()] = append(byTrace[s.SpanContext().TraceID().String()], name)
		for _, p := range people {
			for _, v := range []string{p.GetIdentityNumber(), p.GetIdentityNumber()[2:], p.GetEmail(), p.GetGivenName(), p.GetFamilyName(), p.GetPhone()} {
				if strings.Contains(s.Name(), v) {
					t.Errorf("span name %q holds a personal value", s.Name())
				}
				for _, a := range s.Attributes() {
					if strings.Contains(a.Value.String(), v) {
						t.Errorf("span %s attribute %s holds a personal value", s.Name(), a.Key)
					}
				}
				for _, ev := range s.Events() {
					for _, a := range ev.Attributes {
						if strings.Contains(a.Value.String(), v) {
							t.Errorf("span %s event %s attribute %s holds a personal value", s.Name(), ev.Name, a.Key)
						}
					}
				}
			}
		}
	}
	if httpSpans == 0 || grpcSpans == 0 || storeSpans == 0 {
		t.Fatalf("spans: %d HTTP, %d gRPC, %d store", httpSpans, grpcSpans, storeSpans)
	}
	// A REST call is one trace: the HTTP span, the gateway's client span,
	// the gRPC server span and the store's.
	joined := false
	for _, names := range byTrace {
		var h, g, st bool
		for _, n := range names {
			h = h || strings.HasPrefix(n, "HTTP ")
			g = g || strings.HasPrefix(n, "personaldata.v1.PersonalDataService/")
			st = st || n == "find" || n == "insert"
		}
		joined = joined || (h && g && st)
	}
	if !joined {
		t.Error("no trace joins a REST call's HTTP, gRPC and store spans")
	}
}
