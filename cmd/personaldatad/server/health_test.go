package server_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/example/personaldata/cmd/personaldatad/server"
	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/storetest"
)

// TestReadinessFollowsAFullDisk runs the server on a small file system of
// its own and fills it: every call fails (reads too, since each appends an
// audit event), so readiness (/readyz, gRPC health of each API service)
// turns NOT_SERVING, while liveness (/livez, gRPC health of "") stays up so
// the process is not restarted in a loop. Freed space makes it ready again,
// and nothing acknowledged is lost. Needs root to mount a tmpfs.
func TestReadinessFollowsAFullDisk(t *testing.T) {
	storetest.SkipInMongoMode(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", data).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small file system here (needs root): %v %s", err, out)
	}
	t.Cleanup(func() { // after the server has stopped (cleanups run last first)
		if out, err := exec.Command("umount", data).CombinedOutput(); err != nil {
			t.Errorf("umount: %v %s", err, out)
		}
	})
	srv, _ := serve(t, dir, server.Config{Store: store.Config{DataDir: data, Database: "full"}}, slog.New(slog.DiscardHandler))
	conn := dial(t, srv)
	base := "http://" + srv.HTTPAddr()
	op := grpcCaller{conn, readToken(t, filepath.Join(dir, "operator.token"))}
	token := createPrincipal(t, op, "tester", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, []string{"company"}, nil)
	c := grpcCaller{conn, token}
	sub := create(t, c, 330)
	health := healthpb.NewHealthClient(conn)
	const api = "personaldata.v1.PersonalDataService"
	// Every probe answers from one state, at once: no waiting for a tick.
	checkHealth := func(svc string, want healthpb.HealthCheckResponse_ServingStatus) {
		t.Helper()
		res, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || res.GetStatus() != want {
			t.Fatalf("gRPC health of %q: %v %v, want %v", svc, res.GetStatus(), err, want)
		}
	}
	expectHTTP := func(path string, want int) {
		t.Helper()
		if code, body := httpGet(t, base+path); code != want {
			t.Fatalf("%s: %d %q, want %d", path, code, body, want)
		}
	}
	checkHealth(api, healthpb.HealthCheckResponse_SERVING)
	expectHTTP("/readyz", http.StatusOK)
	expectHTTP("/livez", http.StatusOK)

	filler := filepath.Join(data, "filler")
	fillDisk(t, filler)
	access := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return c.call(ctx, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
	}
	// Keep the store writing until it runs into the full disk.
	var err error
	for i := 0; i < 200 && err == nil; i++ {
		err = access()
	}
	if err == nil {
		t.Fatal("calls still succeed on a full disk; the test shows nothing")
	}
	if status.Code(err) != codes.Unavailable {
		t.Errorf("a read on a full disk: %v, want UNAVAILABLE", err)
	}
	expectHTTP("/readyz", http.StatusServiceUnavailable)
	expectHTTP("/healthz", http.StatusServiceUnavailable)
	expectHTTP("/livez", http.StatusOK)
	checkHealth(api, healthpb.HealthCheckResponse_NOT_SERVING)
	checkHealth("", healthpb.HealthCheckResponse_SERVING)

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	checkHealth(api, healthpb.HealthCheckResponse_SERVING)
	expectHTTP("/readyz", http.StatusOK)
	if err := access(); err != nil {
		t.Fatalf("a read after space was freed: %v", err)
	}
}

// fillDisk writes path until the file system is full.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill: %v", err)
			}
			break
		}
	}
	// The last few bytes too, so that no page fits anywhere.
	for _, err := f.Write(chunk[:512]); err == nil; _, err = f.Write(chunk[:512]) {
	}
}
