package server_test

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gocloud.dev/secrets/localsecrets"
	"google.golang.org/grpc/metadata"

	"github.com/example/personaldata/cmd/personaldatad/server"
	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/envelope"
	"github.com/example/personaldata/store/storetest"
)

// The operators' metrics: build info, the audit appends, the sweeper, the
// backlogs of the outbox and the recipients' notifications.
func TestOperationalMetrics(t *testing.T) {
	e := start(t)
	c := e.gc()
	sub := create(t, c, 101)
	call(t, e.domreg(t, c), "personaldata.v1.DisclosureService/Disclose",
		discloseReq(sub, "disclose-101", "iis.se", pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONTRACT, "order-101", pdv1.DataCategory_DATA_CATEGORY_CONTACT), &pdv1.DiscloseResponse{})
	call(t, c, "RestrictProcessing", restrictReq(sub, "restrict-101"), &pdv1.RestrictProcessingResponse{}) // a notification for iis.se
	openRequest(t, c, openReq("rr-metrics", pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, 101))       // a receipt in the outbox
	sweepNow(t, e, c)
	_, metrics := httpGet(t, e.base+"/metrics")
	for _, want := range []string{
		`personaldata_build_info{go_version="go`,
		"personaldata_audit_append_seconds_count ",
		"personaldata_audit_append_failures_total 0",
		`personaldata_retention_sweeps_total{result="ran"} 1`,
		"personaldata_retention_last_sweep_timestamp_seconds ",
		"personaldata_outbox_messages 1",
		"personaldata_recipient_notifications_pending 1",
		"personaldata_rights_requests_open 1",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// On shutdown the server first reports not ready while it still serves,
// for the drain delay, then closes.
func TestDrainBeforeShutdown(t *testing.T) {
	dir := t.TempDir()
	srv, stop := serve(t, dir, server.Config{
		Store:      store.Config{URI: storetest.URI(), DataDir: filepath.Join(dir, "data"), Database: "pddrain_" + strings.ReplaceAll(t.Name(), "/", "_")},
		DrainDelay: 1500 * time.Millisecond,
	}, slog.New(slog.DiscardHandler))
	conn := dial(t, srv)
	operator := readToken(t, filepath.Join(dir, "operator.token"))
	base := "http://" + srv.HTTPAddr()
	if code, _ := httpGet(t, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz before shutdown: %d", code)
	}
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	deadline := time.Now().Add(time.Second)
	for {
		res, err := http.Get(base + "/readyz")
		if err != nil {
			t.Fatalf("the listener closed before the drain delay: %v", err)
		}
		res.Body.Close()
		if res.StatusCode == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz still OK a second after shutdown began")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Not ready, yet still answering.
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+operator)
	if _, err := pdv1.NewPrincipalServiceClient(conn).GetCaller(ctx, &pdv1.GetCallerRequest{}); err != nil {
		t.Errorf("a call during the drain: %v", err)
	}
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("no shutdown after the drain")
	}
}

// Master keys from a key service: the key file holds only the key
// service's ciphertext; the server reads it through the service, and not
// without it.
func TestMasterKeysFromAKeyService(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "keyring.wrapped")
	kek, err := localsecrets.NewRandomKey()
	if err != nil {
		t.Fatal(err)
	}
	keeper := localsecrets.NewKeeper(kek)
	defer keeper.Close()
	database := "pdkms_" + strings.ReplaceAll(t.Name(), "/", "_")
	open := func(k envelope.Wrapper) (*server.Server, error) {
		return server.New(context.Background(), server.Config{
			GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
			Store:             store.Config{URI: storetest.URI(), DataDir: filepath.Join(dir, "data"), Database: database},
			OperatorTokenFile: filepath.Join(dir, "operator.token"),
			Keys:              server.KeysConfig{KeyFile: keyFile, CreateKeyFile: true, Keeper: k},
		}, slog.New(slog.DiscardHandler))
	}
	srv, err := open(keeper)
	if err != nil {
		t.Fatal(err)
	}
	if !srv.KeyFileCreated {
		t.Error("the wrapped key file was not created")
	}
	raw, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), "master_keys") || strings.Contains(string(raw), "index_key") {
		t.Error("the key file holds the keyring in the clear")
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	// Another key service's key cannot read it; the right one can.
	other, _ := localsecrets.NewRandomKey()
	if s, err := open(localsecrets.NewKeeper(other)); err == nil {
		s.Close()
		t.Fatal("a server started with another key service's key")
	}
	if s, err := open(nil); err == nil {
		s.Close()
		t.Fatal("a server read the wrapped key file without its key service")
	}
	srv, err = open(keeper)
	if err != nil {
		t.Fatalf("restart with the key service: %v", err)
	}
	defer srv.Close()
	// A version added through the key service is in the file, wrapped.
	v, err := envelope.WrappedFile{Path: keyFile, Wrapper: keeper}.AddVersion(context.Background())
	if err != nil || v != 2 {
		t.Fatalf("add a version: %d, %v", v, err)
	}
	ring, err := envelope.WrappedFile{Path: keyFile, Wrapper: keeper}.Load(context.Background())
	if err != nil || ring.Current() != 2 {
		t.Fatalf("reload: %v, %v", ring, err)
	}
}

// With a metrics listener of its own, /metrics is served there only.
func TestMetricsOnTheirOwnListener(t *testing.T) {
	dir := t.TempDir()
	srv, _ := serve(t, dir, server.Config{
		Store:       store.Config{URI: storetest.URI(), DataDir: filepath.Join(dir, "data"), Database: "pdmetrics_" + strings.ReplaceAll(t.Name(), "/", "_")},
		MetricsAddr: "127.0.0.1:0",
	}, slog.New(slog.DiscardHandler))
	if srv.MetricsAddr() == srv.HTTPAddr() {
		t.Fatal("no listener of its own")
	}
	if code, body := httpGet(t, "http://"+srv.MetricsAddr()+"/metrics"); code != http.StatusOK || !strings.Contains(body, "personaldata_build_info") {
		t.Errorf("own listener: %d", code)
	}
	if code, _ := httpGet(t, "http://"+srv.HTTPAddr()+"/metrics"); code != http.StatusNotFound {
		t.Errorf("/metrics on the HTTP port: %d, want 404", code)
	}
}
