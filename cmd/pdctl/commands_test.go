package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"gocloud.dev/secrets/localsecrets"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/envelope"
)

// pdctlWith runs pdctl against the last server startServer started, with
// stdin as its standard input, and returns what it wrote to standard
// output and standard error.
func pdctlWith(tokenFile, stdin string, args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	err = execute(context.Background(), append([]string{"--addr", serverAddr, "--token-file", tokenFile}, args...),
		strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), err
}

// noServer runs pdctl with nothing to talk to: help, completion and the key
// file need none.
func noServer(args ...string) (string, error) {
	var out, errOut bytes.Buffer
	err := execute(context.Background(), append([]string{"--addr", "127.0.0.1:1", "--token-file", "/nonexistent"}, args...),
		strings.NewReader(""), &out, &errOut)
	return out.String() + errOut.String(), err
}

// newPrincipal has the operator create a principal and returns the file
// holding its token.
func newPrincipal(t *testing.T, pdctl func(string, ...string) (string, error), operatorToken, dir, id string, args ...string) string {
	t.Helper()
	out, err := pdctl(operatorToken, append([]string{"principal", "create", "--id", id}, args...)...)
	if err != nil {
		t.Fatalf("create %s: %v", id, err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	file := filepath.Join(dir, id+".token")
	if err := os.WriteFile(file, []byte(lines[len(lines)-1]), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// api is a gRPC connection as the principal whose token is in tokenFile.
func api(t *testing.T, tokenFile string) (pdv1.PersonalDataServiceClient, pdv1.RightsRequestServiceClient) {
	t.Helper()
	cc, err := (&conn{addr: serverAddr, tokenFile: tokenFile}).dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return pdv1.NewPersonalDataServiceClient(cc), pdv1.NewRightsRequestServiceClient(cc)
}

// tolvan creates the made-up Tolvan Tolvansson and returns his id.
func tolvan(t *testing.T, pd pdv1.PersonalDataServiceClient) string {
	t.Helper()
	res, err := pd.CreateSubject(context.Background(), &pdv1.CreateSubjectRequest{
		IdempotencyKey: "tolvan", ControllerId: "company", Channel: pdv1.Channel_CHANNEL_PORTAL, Reference: "signup-1",
		Person: &pdv1.Person{
			IdentityNumber: "19121212-1212", GivenName: "Tolvan", FamilyName: "Tolvansson", Email: "tolvan@example.test",
			PostalAddress: &pdv1.PostalAddress{Lines: []string{"Provgatan 12"}, PostalCode: "123 45", Locality: "Provstad"},
		},
	})
	if err != nil {
		t.Fatalf("create subject: %v", err)
	}
	return res.GetSubject().GetSubjectId()
}

// TestHelpInsteadOfErrors: a command group alone, "help" and no command at
// all print help; an unknown command fails and says so.
func TestHelpInsteadOfErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"nothing", nil, []string{"Available Commands:", "principal", "subject", "requests", "audit", "completion"}},
		{"help", []string{"help"}, []string{"Available Commands:", "keys", "outbox", "register", "agreements", "whoami"}},
		{"keys", []string{"keys"}, []string{"add-version", "rotate", "remove-version"}},
		{"principal", []string{"principal"}, []string{"create", "get", "list", "update", "issue-token", "revoke"}},
		{"help principal", []string{"help", "principal"}, []string{"create", "issue-token"}},
		{"subject", []string{"subject"}, []string{"find", "access"}},
		{"requests", []string{"requests"}, []string{"list", "show"}},
		{"agreements", []string{"agreements"}, []string{"list", "get"}},
		{"audit", []string{"audit"}, []string{"verify"}},
		{"one-dash help", []string{"keys", "rotate", "-help"}, []string{"--resume-after"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := noServer(tc.args...)
			if err != nil {
				t.Fatalf("pdctl %v: %v\n%s", tc.args, err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("pdctl %v does not mention %q:\n%s", tc.args, w, out)
				}
			}
		})
	}
	for _, args := range [][]string{{"bogus"}, {"principal", "bogus"}, {"keys", "bogus"}} {
		if _, err := noServer(args...); err == nil || !strings.Contains(err.Error(), `unknown command "bogus"`) {
			t.Errorf("pdctl %v: %v, want unknown command", args, err)
		}
	}
}

// TestEachPrincipalCommandShowsItsOwnFlags: the help of a principal
// subcommand lists its flags and no other's.
func TestEachPrincipalCommandShowsItsOwnFlags(t *testing.T) {
	all := []string{"--id", "--kind", "--tenant", "--purpose", "--rpc", "--description", "--reason", "--output"}
	for cmd, own := range map[string][]string{
		"create":      {"--id", "--kind", "--tenant", "--purpose", "--rpc", "--description", "--output"},
		"get":         {"--id"},
		"list":        {},
		"update":      {"--id", "--tenant", "--purpose", "--rpc"},
		"issue-token": {"--id", "--output"},
		"revoke":      {"--id", "--reason"},
	} {
		out, err := noServer("principal", cmd, "--help")
		if err != nil {
			t.Fatalf("principal %s --help: %v", cmd, err)
		}
		// The command's own flags come before the global ones.
		local, _, _ := strings.Cut(out, "Global Flags:")
		for _, f := range all {
			if has, want := strings.Contains(local, f+" "), slices.Contains(own, f); has != want {
				t.Errorf("principal %s --help shows %s: %v, want %v\n%s", cmd, f, has, want, local)
			}
		}
		if !strings.Contains(out, "--token-file") {
			t.Errorf("principal %s --help lacks the global flags", cmd)
		}
	}
}

// TestCompletion: completion scripts for the usual shells, and completion
// of a flag's values from the API's enums.
func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{"bash": "__start_pdctl", "zsh": "#compdef pdctl", "fish": "complete -c pdctl"} {
		out, err := noServer("completion", shell)
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("completion %s: %v, want %q in\n%.300s", shell, err, want, out)
		}
	}
	out, err := noServer("__complete", "principal", "create", "--kind", "")
	if err != nil || !strings.Contains(out, "support-staff\n") || !strings.Contains(out, "billing-system\n") {
		t.Errorf("completing --kind: %v\n%s", err, out)
	}
	out, err = noServer("__complete", "requests", "list", "--state", "received,")
	if err != nil || !strings.Contains(out, "received,verified\n") {
		t.Errorf("completing --state: %v\n%s", err, out)
	}
}

// TestKeysCommands: a new master key version, a rotation with its progress,
// the old version removed; the subject still reads back.
func TestKeysCommands(t *testing.T) {
	dir := t.TempDir()
	pdctl, opToken := startServer(t, dir)
	support := newPrincipal(t, pdctl, opToken, dir, "support-1", "--kind", "support-staff", "--tenant", "company")
	pd, _ := api(t, support)
	id := tolvan(t, pd)
	keyFile := filepath.Join(dir, "keyring.json")

	out, err := pdctl(opToken, "keys", "add-version", "--key-file", keyFile)
	if err != nil || !strings.Contains(out, "master key version 2 added") {
		t.Fatalf("add-version: %q %v", out, err)
	}
	out, err = pdctl(opToken, "keys", "rotate")
	if err != nil || !strings.Contains(out, "version 2: 1 of 1 keys, 1 re-wrapped") || !strings.Contains(out, "finished") {
		t.Fatalf("rotate: %q %v", out, err)
	}
	if out, err := pdctl(opToken, "keys", "remove-version", "-key-file", keyFile, "-version", "1"); err != nil || out != "master key version 1 removed\n" {
		t.Fatalf("remove-version: %q %v", out, err)
	}
	out, _, err = pdctlWith(support, "", "subject", "access", id, "-o", "-")
	if err != nil || !strings.Contains(out, "Tolvansson") {
		t.Errorf("access after the rotation: %v\n%s", err, out)
	}
	if _, err := pdctl(opToken, "keys", "remove-version", "--key-file", keyFile); err == nil || !strings.Contains(err.Error(), "version") {
		t.Errorf("remove-version without --version: %v", err)
	}
}

// TestKeysThroughTheKeyService: with --master-key-keeper the key file,
// which holds only the key service's ciphertext, is changed through it;
// without, it cannot be read.
func TestKeysThroughTheKeyService(t *testing.T) {
	key, err := localsecrets.NewRandomKey()
	if err != nil {
		t.Fatal(err)
	}
	keeper := localsecrets.NewKeeper(key)
	defer keeper.Close()
	file := envelope.WrappedFile{Path: filepath.Join(t.TempDir(), "keyring.json"), Wrapper: keeper}
	url := "base64key://" + base64.URLEncoding.EncodeToString(key[:])
	if out, err := noServer("keys", "create", "--key-file", file.Path, "--master-key-keeper", url); err != nil || !strings.Contains(out, "created") {
		t.Fatalf("create through the key service: %q %v", out, err)
	}
	if _, err := noServer("keys", "create", "--key-file", file.Path, "--master-key-keeper", url); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Errorf("a second create: %v", err)
	}
	if ring, err := file.Load(context.Background()); err != nil || ring.Current() != 1 {
		t.Fatalf("the created file: %v %v", ring, err)
	}
	if out, err := noServer("keys", "add-version", "--key-file", file.Path, "--master-key-keeper", url); err != nil || !strings.Contains(out, "master key version 2 added") {
		t.Fatalf("add-version through the key service: %q %v", out, err)
	}
	t.Setenv("PERSONALDATA_MASTER_KEY_KEEPER", url)
	if out, err := noServer("keys", "remove-version", "--key-file", file.Path, "--version", "1"); err != nil || out != "master key version 1 removed\n" {
		t.Fatalf("remove-version with the key service from the environment: %q %v", out, err)
	}
	ring, err := file.Load(context.Background())
	if err != nil || ring.Current() != 2 || !slices.Equal(ring.Versions(), []uint32{2}) {
		t.Fatalf("the wrapped file after the changes: %v %v", ring, err)
	}
	t.Setenv("PERSONALDATA_MASTER_KEY_KEEPER", "")
	if _, err := noServer("keys", "add-version", "--key-file", file.Path); err == nil {
		t.Errorf("the wrapped file was changed without its key service")
	}
}

// TestSubjectFind: the value comes from standard input (or a flag) and
// never appears in an error; the reply names the subject.
func TestSubjectFind(t *testing.T) {
	dir := t.TempDir()
	pdctl, opToken := startServer(t, dir)
	support := newPrincipal(t, pdctl, opToken, dir, "support-1", "--kind", "support-staff", "--tenant", "company")
	pd, _ := api(t, support)
	id := tolvan(t, pd)

	for _, tc := range []struct {
		name, stdin string
		args        []string
	}{
		{"identity number on stdin", "121212+1212\n", nil},
		{"e-mail on stdin", "TOLVAN@example.test", []string{"--controller", "company"}},
		{"e-mail as a flag", "", []string{"--email", "tolvan@example.test"}},
		{"identity number as a flag", "", []string{"-identity-number", "191212121212"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := pdctlWith(support, tc.stdin, append([]string{"subject", "find"}, tc.args...)...)
			if err != nil {
				t.Fatalf("find: %v", err)
			}
			var res pdv1.FindSubjectResponse
			if err := protojson.Unmarshal([]byte(out), &res); err != nil {
				t.Fatalf("find printed %q: %v", out, err)
			}
			if res.GetSubject().GetSubjectId() != id {
				t.Errorf("found %v, want %s", res.GetSubject(), id)
			}
		})
	}
	_, _, err := pdctlWith(support, "nobody@example.test\n", "subject", "find")
	if err == nil || !strings.Contains(err.Error(), "NotFound") || strings.Contains(err.Error(), "nobody") {
		t.Errorf("find someone unknown: %v", err)
	}
	if _, _, err := pdctlWith(support, "\n", "subject", "find"); err == nil || !strings.Contains(err.Error(), "standard input") {
		t.Errorf("find with nothing on stdin: %v", err)
	}
	if _, _, err := pdctlWith(support, "", "subject", "find", "--email", "a@example.test", "--identity-number", "191212121212"); err == nil {
		t.Errorf("find with both flags was accepted")
	}
	// Operators process no one's data.
	if _, _, err := pdctlWith(opToken, "tolvan@example.test\n", "subject", "find"); err == nil || !strings.Contains(err.Error(), "PermissionDenied") {
		t.Errorf("find as the operator: %v", err)
	}
}

// TestSubjectAccess: the export is one document with every page's lists,
// saved owner-only under the cache directory (never the working
// directory), or where -o says; an existing file is never replaced.
func TestSubjectAccess(t *testing.T) {
	dir := t.TempDir()
	pdctl, opToken := startServer(t, dir)
	support := newPrincipal(t, pdctl, opToken, dir, "support-1", "--kind", "support-staff", "--tenant", "company")
	pd, _ := api(t, support)
	id := tolvan(t, pd)
	// Enough history for more than one page of about 1 MiB.
	body := strings.Repeat("Hej! Jag vill flytta min domän. ", 1900)
	const entries = 20
	for i := range entries {
		if _, err := pd.AddHistoryEntry(context.Background(), &pdv1.AddHistoryEntryRequest{
			IdempotencyKey: fmt.Sprintf("h-%d", i), SubjectId: id, Entry: &pdv1.HistoryEntry{
				Kind: pdv1.HistoryKind_HISTORY_KIND_EMAIL_CONVERSATION, Title: fmt.Sprintf("Ärende %d", i), Body: body,
				OccurTime: timestamppb.New(time.Date(2026, 11, 20, 9, 0, i, 0, time.UTC)), Reference: fmt.Sprintf("order-%d", i),
			},
		}); err != nil {
			t.Fatalf("history %d: %v", i, err)
		}
	}
	if res, err := pd.AccessSubject(context.Background(), &pdv1.AccessSubjectRequest{SubjectId: id}); err != nil || res.GetNextPageToken() == "" {
		t.Fatalf("the access reply fits one page (%v); the test needs more", err)
	}

	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	work := t.TempDir()
	t.Chdir(work)
	out, errOut, err := pdctlWith(support, "", "subject", "access", id)
	if err != nil {
		t.Fatalf("access: %v", err)
	}
	path := strings.TrimSpace(out)
	if filepath.Dir(path) != filepath.Join(cache, "pdctl", "access") || !strings.Contains(errOut, "readable by you only") {
		t.Errorf("saved to %q (%s), want under %s", path, errOut, cache)
	}
	for file, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700 | os.ModeDir} {
		if st, err := os.Stat(file); err != nil || st.Mode() != want {
			t.Errorf("%s: mode %v (%v), want %v", file, st.Mode(), err, want)
		}
	}
	if left, _ := os.ReadDir(work); len(left) != 0 {
		t.Errorf("the working directory has %v", left)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc pdv1.AccessSubjectResponse
	if err := protojson.Unmarshal(b, &doc); err != nil {
		t.Fatalf("the export is not one access document: %v", err)
	}
	if doc.GetSubject().GetPerson().GetFamilyName() != "Tolvansson" || len(doc.GetHistory()) != entries || doc.GetNextPageToken() != "" ||
		len(doc.GetPurposes()) == 0 || doc.GetHistory()[entries-1].GetTitle() != fmt.Sprintf("Ärende %d", entries-1) {
		t.Errorf("export: %s, %d history entries, %d purposes", doc.GetSubject().GetPerson(), len(doc.GetHistory()), len(doc.GetPurposes()))
	}

	// -o names the file; it is created owner-only and never replaces one.
	mine := filepath.Join(work, "export.json")
	if out, _, err := pdctlWith(support, "", "subject", "access", id, "-o", mine); err != nil || strings.TrimSpace(out) != mine {
		t.Fatalf("access -o: %q %v", out, err)
	}
	if st, err := os.Stat(mine); err != nil || st.Mode() != 0o600 {
		t.Errorf("-o file: %v %v", st, err)
	}
	if _, _, err := pdctlWith(support, "", "subject", "access", id, "--output", mine); err == nil || !os.IsExist(unwrapAll(err)) {
		t.Errorf("an existing file was replaced: %v", err)
	}
	// An unknown subject leaves no file behind.
	before, _ := os.ReadDir(filepath.Dir(path))
	if _, _, err := pdctlWith(support, "", "subject", "access", "0123456789abcdef0123456789abcdef"); err == nil {
		t.Errorf("access to an unknown subject succeeded")
	}
	if after, _ := os.ReadDir(filepath.Dir(path)); len(after) != len(before) {
		t.Errorf("a failed access left a file: %v", after)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

// TestRequestsCommands: the queue as a table without personal values,
// filtered by state and overdue, and one request in full.
func TestRequestsCommands(t *testing.T) {
	dir := t.TempDir()
	pdctl, opToken := startServer(t, dir)
	support := newPrincipal(t, pdctl, opToken, dir, "support-1", "--kind", "support-staff", "--tenant", "company")
	pd, rr := api(t, support)
	id := tolvan(t, pd)
	open := func(key string, received time.Time) string {
		t.Helper()
		res, err := rr.OpenRightsRequest(context.Background(), &pdv1.OpenRightsRequestRequest{
			IdempotencyKey: key, Kind: pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS, Channel: pdv1.Channel_CHANNEL_EMAIL,
			ReceiveTime:     timestamppb.New(received),
			ClaimedIdentity: &pdv1.ClaimedIdentity{Key: &pdv1.ClaimedIdentity_IdentityNumber{IdentityNumber: "19121212-1212"}},
			Text:            "Vad har ni om mig?",
		})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		return res.GetRequest().GetRequestId()
	}
	fresh := open("rr-fresh", time.Now().Add(-time.Hour))
	late := open("rr-late", time.Now().AddDate(0, -2, 0))

	rows := func(args ...string) map[string]string {
		t.Helper()
		out, _, err := pdctlWith(support, "", append([]string{"requests", "list"}, args...)...)
		if err != nil {
			t.Fatalf("requests list %v: %v", args, err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if !strings.HasPrefix(lines[0], "REQUEST") {
			t.Fatalf("no header: %q", out)
		}
		if strings.Contains(out, "1212") || strings.Contains(out, "Vad har") {
			t.Errorf("the queue shows personal values:\n%s", out)
		}
		got := map[string]string{}
		for _, l := range lines[1:] {
			f := strings.Fields(l)
			got[f[0]] = strings.Join(f[1:], " ")
		}
		return got
	}
	all := rows()
	if len(all) != 2 || !strings.HasPrefix(all[fresh], "access received ") || !strings.Contains(all[late], "overdue "+id) {
		t.Errorf("queue: %v", all)
	}
	if got := rows("-overdue"); len(got) != 1 || got[late] == "" {
		t.Errorf("overdue: %v", got)
	}
	if got := rows("--state", "verified,granted"); len(got) != 0 {
		t.Errorf("verified: %v", got)
	}
	if got := rows("--state", "received", "--kind", "access,erasure"); len(got) != 2 {
		t.Errorf("received access: %v", got)
	}
	out, _, err := pdctlWith(support, "", "requests", "list", "--json")
	var page pdv1.ListRightsRequestsResponse
	if err != nil || protojson.Unmarshal([]byte(out), &page) != nil || len(page.GetRequests()) != 2 {
		t.Errorf("list --json: %v\n%s", err, out)
	}
	if _, _, err := pdctlWith(support, "", "requests", "list", "--state", "pending"); err == nil {
		t.Errorf("an unknown state was accepted")
	}

	out, _, err = pdctlWith(support, "", "requests", "show", late)
	var shown pdv1.GetRightsRequestResponse
	if err != nil || protojson.Unmarshal([]byte(out), &shown) != nil {
		t.Fatalf("show: %v\n%s", err, out)
	}
	if r := shown.GetRequest(); r.GetRequestId() != late || !r.GetOverdue() || r.GetSubjectId() != id || r.GetText() != "Vad har ni om mig?" {
		t.Errorf("show: %v", r)
	}
	if _, _, err := pdctlWith(support, "", "requests", "show"); err == nil {
		t.Errorf("show without an id was accepted")
	}
}

// TestAgreementsCommands: list a customer's agreements and get one.
func TestAgreementsCommands(t *testing.T) {
	dir := t.TempDir()
	pdctl, opToken := startServer(t, dir)
	cc, err := (&conn{addr: serverAddr, tokenFile: opToken}).dial()
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	created, err := pdv1.NewProcessorAgreementServiceClient(cc).CreateProcessorAgreement(context.Background(), &pdv1.CreateProcessorAgreementRequest{
		IdempotencyKey: "pa-1", CustomerId: "customer-42", Terms: &pdv1.AgreementTerms{
			SignTime: timestamppb.New(time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)), InForceFrom: timestamppb.New(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)),
			Purposes:          []pdv1.Purpose{pdv1.Purpose_PURPOSE_SERVICE_DELIVERY},
			Categories:        []pdv1.DataCategory{pdv1.DataCategory_DATA_CATEGORY_CONTACT},
			DocumentReference: "dpa/customer-42/2026",
		},
	})
	if err != nil {
		t.Fatalf("create agreement: %v", err)
	}
	agreementID := created.GetAgreement().GetAgreementId()

	out, err := pdctl(opToken, "agreements", "list", "--customer", "customer-42")
	var listed pdv1.ListProcessorAgreementsResponse
	if err != nil || protojson.Unmarshal([]byte(out), &listed) != nil || len(listed.GetAgreements()) != 1 || listed.GetAgreements()[0].GetAgreementId() != agreementID {
		t.Errorf("agreements list: %v\n%s", err, out)
	}
	if out, err := pdctl(opToken, "agreements", "list", "--customer", "customer-7"); err != nil || strings.Contains(out, "agreement_id") {
		t.Errorf("agreements of a customer without any: %v\n%s", err, out)
	}
	out, err = pdctl(opToken, "agreements", "get", agreementID)
	var got pdv1.GetProcessorAgreementResponse
	if err != nil || protojson.Unmarshal([]byte(out), &got) != nil || got.GetAgreement().GetTerms().GetDocumentReference() != "dpa/customer-42/2026" {
		t.Errorf("agreements get: %v\n%s", err, out)
	}
	if _, err := pdctl(opToken, "agreements", "list"); err == nil || !strings.Contains(err.Error(), "customer") {
		t.Errorf("list without --customer: %v", err)
	}
}

// TestAuditVerify: a subject's chain and the principals' verify intact; a
// chain changed in the store is named broken and pdctl fails.
func TestAuditVerify(t *testing.T) {
	dir := t.TempDir()
	pdctl, opToken := startServer(t, dir)
	support := newPrincipal(t, pdctl, opToken, dir, "support-1", "--kind", "support-staff", "--tenant", "company")
	pd, _ := api(t, support)
	id := tolvan(t, pd)
	if _, err := pd.AccessSubject(context.Background(), &pdv1.AccessSubjectRequest{SubjectId: id}); err != nil {
		t.Fatal(err)
	}
	out, err := pdctl(opToken, "audit", "verify", "--subject", id)
	if err != nil || out != fmt.Sprintf("subjects/%s: intact, 2 events\n", id) {
		t.Errorf("verify the subject: %q %v", out, err)
	}
	if out, err := pdctl(opToken, "audit", "verify", "--principals"); err != nil || !strings.HasPrefix(out, "principals: intact, ") {
		t.Errorf("verify principals: %q %v", out, err)
	}
	if out, err := pdctl(opToken, "audit", "verify", "-chain", "tenants/company"); err != nil || !strings.HasPrefix(out, "tenants/company: intact") {
		t.Errorf("verify the tenant: %q %v", out, err)
	}
	if _, err := pdctl(opToken, "audit", "verify"); err == nil {
		t.Errorf("verify without a chain was accepted")
	}
	if _, err := pdctl(opToken, "audit", "verify", "--subject", id, "--principals"); err == nil {
		t.Errorf("verify with two chains was accepted")
	}
	if _, err := pdctl(support, "audit", "verify", "--subject", id); err == nil || !strings.Contains(err.Error(), "PermissionDenied") {
		t.Errorf("verify as support staff: %v", err)
	}

	// The second event changed under the service.
	client, err := mongo.Connect(options.Client().ApplyURI(storeURI))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Disconnect(context.Background())
	if res, err := client.Database(store.AuditDatabase("personaldata")).Collection("audit_events").UpdateOne(context.Background(),
		bson.D{{Key: "_id", Value: store.AuditEventID("subjects/"+id, 2)}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "purpose", Value: "PURPOSE_INVOICING"}}}}); err != nil || res.ModifiedCount != 1 {
		t.Fatalf("change an event: %v %v", res, err)
	}
	out, err = pdctl(opToken, "audit", "verify", "--subject", id)
	if !errors.Is(err, errChainBroken) || !strings.HasPrefix(out, fmt.Sprintf("subjects/%s: BROKEN at event 2 of ", id)) {
		t.Errorf("verify a changed chain: %q %v", out, err)
	}
}
