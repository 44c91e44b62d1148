package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/example/personaldata/cmd/personaldatad/server"
	"github.com/example/personaldata/store"
)

// TestPrincipalCommands runs pdctl against a real server: create a billing
// principal, use its printed token, list, revoke.
func TestPrincipalCommands(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "operator.token")
	srv, err := server.New(context.Background(), server.Config{
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		Store:             store.Config{DataDir: filepath.Join(dir, "data")},
		OperatorTokenFile: tokenFile,
		Keys:              server.KeysConfig{KeyFile: filepath.Join(dir, "keyring.json"), CreateKeyFile: true},
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() { stop(); <-done })

	pdctl := func(tokenFile string, args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"-addr", srv.GRPCAddr(), "-token-file", tokenFile}, args...), &out)
		return out.String(), err
	}
	out, err := pdctl(tokenFile, "principal", "create", "-id", "billing", "-kind", "billing-system", "-tenant", "company")
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	token := lines[len(lines)-1]
	if !strings.HasPrefix(token, "pd1.billing.") || !strings.Contains(out, "PURPOSE_INVOICING") {
		t.Fatalf("create printed %q", out)
	}
	billingFile := filepath.Join(dir, "billing.token")
	if err := os.WriteFile(billingFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := pdctl(billingFile, "whoami"); err != nil || !strings.Contains(out, `"billing"`) {
		t.Errorf("whoami as billing: %q %v", out, err)
	}
	if out, err := pdctl(tokenFile, "principal", "list"); err != nil || !strings.Contains(out, "billing") || !strings.Contains(out, "operator") {
		t.Errorf("list: %q %v", out, err)
	}
	if _, err := pdctl(tokenFile, "principal", "revoke", "-id", "billing", "-reason", "test"); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if _, err := pdctl(billingFile, "whoami"); err == nil || !strings.Contains(err.Error(), "Unauthenticated") {
		t.Errorf("whoami after revocation: %v", err)
	}
	if _, err := pdctl(tokenFile, "principal", "create", "-id", "x", "-kind", "nonsense", "-tenant", "company"); err == nil {
		t.Errorf("an unknown kind was accepted")
	}
}
