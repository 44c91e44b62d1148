package main

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/example/personaldata/cmd/personaldatad/server"
	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store"
)

// serverAddr is the gRPC address of the last server startServer started,
// storeURI the URI of its embedded store.
var serverAddr, storeURI string

// startServer runs a real server in dir until the test ends and returns
// pdctl for it, run with the token in tokenFile, and the operator's token file.
func startServer(t *testing.T, dir string) (pdctl func(tokenFile string, args ...string) (string, error), operatorToken string) {
	t.Helper()
	pdctl, operatorToken, _ = startServerWith(t, dir, nil)
	return pdctl, operatorToken
}

// startServerWith is startServer with the configuration changed by
// configure (when not nil); stop stops the server (also at the end of the
// test), so that another may start on dir.
func startServerWith(t *testing.T, dir string, configure func(*server.Config)) (pdctl func(tokenFile string, args ...string) (string, error), operatorToken string, stop func()) {
	t.Helper()
	operatorToken = filepath.Join(dir, "operator.token")
	cfg := server.Config{
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		Store:             store.Config{DataDir: filepath.Join(dir, "data")},
		OperatorTokenFile: operatorToken,
		Keys:              server.KeysConfig{KeyFile: filepath.Join(dir, "keyring.json"), CreateKeyFile: true},
	}
	if configure != nil {
		configure(&cfg)
	}
	srv, err := server.New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	serverAddr, storeURI = srv.GRPCAddr(), srv.StoreURI()
	return func(tokenFile string, args ...string) (string, error) {
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"-addr", srv.GRPCAddr(), "-token-file", tokenFile}, args...), &out)
		return out.String(), err
	}, operatorToken, stop
}

// TestPrincipalCommands runs pdctl against a real server: create a billing
// principal, use its printed token, list, revoke.
func TestPrincipalCommands(t *testing.T) {
	dir := t.TempDir()
	pdctl, tokenFile := startServer(t, dir)
	out, err := pdctl(tokenFile, "principal", "create", "-id", "billing", "-kind", "billing-system", "-tenant", "company")
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	token := lines[len(lines)-1]
	if !strings.HasPrefix(token, "pd1.billing.") || !strings.Contains(out, "purposes: invoicing") {
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

// TestPrincipalUpdateChangesOnlyTheGivenGrants: "principal update" sends
// only the grants given as flags, so new tenants keep the purposes.
func TestPrincipalUpdateChangesOnlyTheGivenGrants(t *testing.T) {
	pdctlAs, tokenFile := startServer(t, t.TempDir())
	pdctl := func(args ...string) (string, error) { return pdctlAs(tokenFile, args...) }
	stored := func() *pdv1.Principal {
		out, err := pdctl("principal", "get", "-id", "support-1")
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		var res pdv1.GetPrincipalResponse
		if err := protojson.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("get printed %q: %v", out, err)
		}
		return res.GetPrincipal()
	}
	if _, err := pdctl("principal", "create", "-id", "support-1", "-kind", "support-staff", "-tenant", "company", "-purpose", "support,invoicing"); err != nil {
		t.Fatalf("create: %v", err)
	}
	before := stored()
	if _, err := pdctl("principal", "update", "-id", "support-1", "-tenant", "company,customer-7"); err != nil {
		t.Fatalf("update: %v", err)
	}
	after := stored()
	purposes := []pdv1.Purpose{pdv1.Purpose_PURPOSE_SUPPORT, pdv1.Purpose_PURPOSE_INVOICING}
	if !slices.Equal(after.GetTenantIds(), []string{"company", "customer-7"}) || !slices.Equal(after.GetPurposes(), purposes) ||
		!slices.Equal(after.GetRpcs(), before.GetRpcs()) || after.GetVersion() != before.GetVersion()+1 {
		t.Errorf("after update -tenant: %v, before %v", after, before)
	}
	if _, err := pdctl("principal", "update", "-id", "support-1", "-purpose", "support"); err != nil {
		t.Fatalf("update: %v", err)
	}
	if p := stored(); !slices.Equal(p.GetTenantIds(), []string{"company", "customer-7"}) || !slices.Equal(p.GetPurposes(), purposes[:1]) {
		t.Errorf("after update -purpose: %v", p)
	}
	// Nothing to change is refused before anything is sent.
	if _, err := pdctl("principal", "update", "-id", "support-1"); err == nil {
		t.Errorf("an update without grants was accepted")
	}
}

// TestOutboxCommand: pdctl outbox prints, for an operator, how many
// messages wait by kind and how old the oldest is, nothing of any message;
// with a mailer's token --messages prints the messages and --ack
// acknowledges them (they are removed), as the mailer does. An operator is
// refused the messages.
func TestOutboxCommand(t *testing.T) {
	dir := t.TempDir()
	pdctl, tokenFile := startServer(t, dir)
	tokenOf := func(name string, args ...string) string {
		t.Helper()
		out, err := pdctl(tokenFile, append([]string{"principal", "create", "-id", name}, args...)...)
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		file := filepath.Join(dir, name+".token")
		if err := os.WriteFile(file, []byte(lines[len(lines)-1]), 0o600); err != nil {
			t.Fatal(err)
		}
		return file
	}
	supportFile := tokenOf("support", "-kind", "support-staff", "-tenant", "company", "-purpose", "support")
	mailerFile := tokenOf("mailer", "-kind", "mailer", "-tenant", "company")
	// A request from someone nothing is held about, with a reply address:
	// its receipt waits in the outbox.
	cc, err := (&conn{addr: serverAddr, tokenFile: supportFile}).dial()
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if _, err := pdv1.NewRightsRequestServiceClient(cc).OpenRightsRequest(context.Background(), &pdv1.OpenRightsRequestRequest{
		IdempotencyKey: "rr-1", Kind: pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, Channel: pdv1.Channel_CHANNEL_EMAIL,
		ClaimedIdentity: &pdv1.ClaimedIdentity{Key: &pdv1.ClaimedIdentity_Email{Email: "someone@example.test"}}, ReplyEmail: "someone@example.test",
	}); err != nil {
		t.Fatalf("open request: %v", err)
	}

	out, err := pdctl(tokenFile, "outbox")
	if err != nil {
		t.Fatalf("outbox as the operator: %v", err)
	}
	if !strings.Contains(out, "waiting: 1,") || !regexp.MustCompile(`(?m)^receipt +1 +\d+s$`).MatchString(out) || strings.Contains(out, "someone") {
		t.Errorf("pdctl outbox as the operator printed %q", out)
	}
	for _, args := range [][]string{{"outbox", "--messages"}, {"outbox", "-ack"}} {
		if out, err := pdctl(tokenFile, args...); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "mailer") || strings.Contains(out, "someone") {
			t.Errorf("pdctl %v as the operator: %v, printed %q; want refused, naming the mailer", args, err, out)
		}
	}

	for i, want := range []string{"to: someone@example.test", "to: someone@example.test", ""} {
		args := []string{"outbox", "--messages"}
		if i == 1 {
			args = []string{"outbox", "-ack"}
		}
		out, err := pdctl(mailerFile, args...)
		if err != nil {
			t.Fatalf("outbox %v: %v", args, err)
		}
		if want == "" && out != "" || want != "" && (!strings.Contains(out, want) || !strings.Contains(out, "OUTBOX_MESSAGE_KIND_RECEIPT")) {
			t.Errorf("pdctl %v printed %q", args, out)
		}
	}
	if out, err := pdctl(tokenFile, "outbox"); err != nil || out != "waiting: 0\n" {
		t.Errorf("pdctl outbox after the acknowledgement: %q, %v", out, err)
	}
}

// TestRegisterCommand: pdctl register prints the register as JSON.
func TestRegisterCommand(t *testing.T) {
	pdctl, tokenFile := startServer(t, t.TempDir())
	out, err := pdctl(tokenFile, "register")
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	var reg pdv1.GetProcessingRegisterResponse
	if err := protojson.Unmarshal([]byte(out), &reg); err != nil {
		t.Fatalf("register printed %q: %v", out, err)
	}
	if len(reg.GetController().GetPurposes()) == 0 || reg.GetController().GetSecurity().GetCurrentMasterKeyVersion() != 1 {
		t.Errorf("register: %v", reg.GetController())
	}
}

// TestBreachesCommand: pdctl breaches list prints the register of breaches
// as JSON, and get one record; the DPO's token works as well as an
// operator's.
func TestBreachesCommand(t *testing.T) {
	dir := t.TempDir()
	pdctl, tokenFile := startServer(t, dir)
	out, err := pdctl(tokenFile, "breaches", "list")
	if err != nil {
		t.Fatalf("breaches list: %v", err)
	}
	var reg pdv1.ListBreachRecordsResponse
	if err := protojson.Unmarshal([]byte(out), &reg); err != nil || len(reg.GetRecords()) != 0 {
		t.Fatalf("breaches list printed %q: %v", out, err)
	}
	dpo, err := pdctl(tokenFile, "principal", "create", "--id", "dpo-1", "--kind", "dpo", "--tenant", "*", "-o", "token")
	if err != nil {
		t.Fatalf("principal create dpo: %v", err)
	}
	dpoFile := filepath.Join(dir, "dpo.token")
	if err := os.WriteFile(dpoFile, []byte(dpo), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := pdctl(dpoFile, "breaches", "list", "--open"); err != nil || protojson.Unmarshal([]byte(out), &reg) != nil {
		t.Errorf("breaches list --open as the DPO: %q, %v", out, err)
	}
	if _, err := pdctl(dpoFile, "breaches", "get", "aaaaaaaaaaaaaaaaaaaaaaaaaa"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("breaches get of no record: %v", err)
	}
}

// TestTokenOutput: principal create and issue-token print what -o asks for:
// the token alone (-o token, --output token), one JSON object with the
// principal and the token (-o json), or by default a summary for people
// with the token on the last line. An unknown format is refused before
// anything is created, so no token is issued and lost.
func TestTokenOutput(t *testing.T) {
	dir := t.TempDir()
	pdctl, operator := startServer(t, dir)
	works := func(what, token string) {
		t.Helper()
		file := filepath.Join(dir, "t.token")
		if err := os.WriteFile(file, []byte(token), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := pdctl(file, "whoami"); err != nil || !strings.Contains(out, `"billing`) {
			t.Errorf("%s: the token %q does not work: %q %v", what, token, out, err)
		}
	}
	tokenLine := regexp.MustCompile(`^pd1\.billing-\d\.\S+\n$`)
	for i, args := range [][]string{{"-o", "token"}, {"--output", "token"}, {"-otoken"}, {"--output=token"}, {"-output", "token"}} {
		id := "billing-" + string(rune('1'+i))
		out, err := pdctl(operator, append([]string{"principal", "create", "--id", id, "--kind", "billing-system", "--tenant", "company"}, args...)...)
		if err != nil || !tokenLine.MatchString(out) {
			t.Fatalf("create %q: %q, %v; want the token alone", args, out, err)
		}
		works(strings.Join(args, " "), strings.TrimSpace(out))
	}
	out, err := pdctl(operator, "principal", "issue-token", "--id", "billing-1", "-o", "token")
	if err != nil || !tokenLine.MatchString(out) {
		t.Fatalf("issue-token -o token: %q, %v", out, err)
	}
	works("issue-token -o token", strings.TrimSpace(out))

	for _, args := range [][]string{
		{"principal", "create", "--id", "billing-8", "--kind", "billing-system", "--tenant", "company", "-o", "json"},
		{"principal", "issue-token", "--id", "billing-8", "-o", "json"},
	} {
		out, err := pdctl(operator, args...)
		var res pdv1.CreatePrincipalResponse // the same fields as IssueTokenResponse
		if err != nil || protojson.Unmarshal([]byte(out), &res) != nil || res.GetPrincipal().GetPrincipalId() != "billing-8" {
			t.Fatalf("%q: %q, %v; want one JSON object", args[1], out, err)
		}
		works(args[1]+" -o json", res.GetToken())
	}

	for _, args := range [][]string{
		{"principal", "create", "--id", "billing-9", "--kind", "billing-system", "--tenant", "company"},
		{"principal", "issue-token", "--id", "billing-9"},
	} {
		out, err := pdctl(operator, args...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if err != nil || strings.Contains(out, "{") || !strings.Contains(out, "principal billing-9 (billing-system)") || !strings.Contains(out, "invoicing") {
			t.Fatalf("%q: %q, %v; want a summary", args[1], out, err)
		}
		works(args[1], lines[len(lines)-1])
	}

	for _, args := range [][]string{
		{"principal", "create", "--id", "billing-10", "--kind", "billing-system", "--tenant", "company", "-o", "yaml"},
		{"principal", "issue-token", "--id", "billing-9", "-o", "tokens"},
	} {
		if out, err := pdctl(operator, args...); err == nil || !strings.Contains(err.Error(), "text, json or token") || out != "" {
			t.Errorf("%q with an unknown format: %q, %v", args[1], out, err)
		}
	}
	if _, err := pdctl(operator, "principal", "get", "--id", "billing-10"); status.Code(unwrapAll(err)) != codes.NotFound {
		t.Errorf("create -o yaml created the principal: %v", err)
	}
}

// TestNoTokenFileNamesTheFlag: run where there is no token file (outside the
// repository), pdctl says which file it looked for and how to give one.
func TestNoTokenFileNamesTheFlag(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "operator.token")
	_, err := noServerWith("--token-file", missing, "whoami")
	if err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "--token-file") ||
		!strings.Contains(err.Error(), "PDCTL_TOKEN_FILE") || !strings.Contains(err.Error(), "--cert") {
		t.Fatalf("whoami with no token file: %v", err)
	}
}

// TestUnreachableServerNamesTheAddress: with no server at the address,
// pdctl names the address it tried and how to give another, not the raw
// transport error; the gRPC code is still UNAVAILABLE.
func TestUnreachableServerNamesTheAddress(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	token := filepath.Join(t.TempDir(), "t.token")
	if err := os.WriteFile(token, []byte("pd1.x.y"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"whoami"}, {"audit", "verify", "--chain", "principals"}} {
		_, err := noServerWith(append([]string{"--addr", addr, "--token-file", token}, args...)...)
		if err == nil || !strings.Contains(err.Error(), "cannot reach personaldatad at "+addr) || !strings.Contains(err.Error(), "--addr") ||
			!strings.Contains(err.Error(), "PDCTL_ADDR") || strings.Contains(err.Error(), "transport") || status.Code(err) != codes.Unavailable {
			t.Errorf("%q with no server: %v", args, err)
		}
	}
}

// noServerWith runs pdctl with args alone.
func noServerWith(args ...string) (string, error) {
	var out, errOut bytes.Buffer
	err := execute(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return out.String() + errOut.String(), err
}
