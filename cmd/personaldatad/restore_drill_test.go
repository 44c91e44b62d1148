package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store/backupfile"
	"github.com/example/personaldata/store/envelope"
	"github.com/example/personaldata/store/ledger"
	"github.com/example/personaldata/store/storetest"
)

// TestRestoreDrill backs a running daemon up with pdctl, goes on changing
// and erasing, restores the backup with `personaldatad restore` into a new
// data directory, starts the daemon on it and checks that every erasure
// made after the backup holds, that the changes before it are there, that
// the audit chains verify and that the report counts exactly; and that
// corrupted, truncated, unknown-key and newer-format files are refused
// and change nothing.
func TestRestoreDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("the restore drill builds and runs the binaries: skipped with -short")
	}
	storetest.SkipInMongoMode(t)
	ctx := context.Background()
	dir := t.TempDir()
	bin := buildDaemon(t, dir)
	pdctl := filepath.Join(dir, "pdctl")
	if out, err := exec.Command("go", "build", "-o", pdctl, "../pdctl").CombinedOutput(); err != nil {
		t.Fatalf("build pdctl: %v\n%s", err, out)
	}
	// The keys, the ledger and the data each on a "disk" of its own.
	keyFile := filepath.Join(dir, "keys", "keyring.json")
	ledgerPath := filepath.Join(dir, "ledger-disk", ledger.DefaultName)
	if err := os.MkdirAll(filepath.Dir(keyFile), 0o700); err != nil {
		t.Fatal(err)
	}
	args := []string{"-key-file", keyFile, "-erasure-ledger", ledgerPath}
	logFile, err := os.Create(filepath.Join(dir, "personaldatad.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	d := &daemon{bin: bin, dataDir: filepath.Join(dir, "data1"), grpcAddr: freeAddr(t), httpAddr: freeAddr(t), log: logFile, args: args}
	t.Cleanup(func() { d.kill9() })
	if _, err := d.start(); err != nil {
		t.Fatal(err)
	}
	conn, err := dialDaemon(d.grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tokenFile := filepath.Join(d.dataDir, "operator.token")
	opToken, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	op := client{conn: conn, token: strings.TrimSpace(string(opToken))}
	var pr pdv1.CreatePrincipalResponse
	must(t, op.call(ctx, principalRPC, &pdv1.CreatePrincipalRequest{IdempotencyKey: "p", Principal: &pdv1.Principal{
		PrincipalId: "drill-staff", Kind: pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, TenantIds: []string{"company"},
		Purposes: []pdv1.Purpose{pdv1.Purpose_PURPOSE_SUPPORT, pdv1.Purpose_PURPOSE_ACCOUNT_COMMUNICATION},
	}}, &pr))
	staff := client{conn: conn, token: pr.GetToken()}

	create := func(n int) string {
		var r pdv1.CreateSubjectResponse
		must(t, staff.call(ctx, createRPC, &pdv1.CreateSubjectRequest{IdempotencyKey: fmt.Sprintf("c%d", n), ControllerId: "company",
			Person: campaignPerson(n), Channel: pdv1.Channel_CHANNEL_PORTAL, Reference: "drill"}, &r))
		return r.GetSubject().GetSubjectId()
	}
	rectify := func(id, email string) {
		var a pdv1.AccessSubjectResponse
		must(t, staff.call(ctx, accessRPC, &pdv1.AccessSubjectRequest{SubjectId: id}, &a))
		must(t, staff.call(ctx, rectifyRPC, &pdv1.RectifySubjectRequest{IdempotencyKey: "r-" + id, SubjectId: id,
			ExpectedVersion: a.GetSubject().GetVersion(), Person: &pdv1.Person{Email: email}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"email"}},
			Channel: pdv1.Channel_CHANNEL_EMAIL, Reference: "drill", PerformedBy: "agent"}, &pdv1.RectifySubjectResponse{}))
	}
	erase := func(id string) {
		must(t, staff.call(ctx, eraseRPC, &pdv1.EraseSubjectRequest{IdempotencyKey: "e-" + id, SubjectId: id,
			Ground: pdv1.ErasureGround_ERASURE_GROUND_CONSENT_WITHDRAWN, Channel: pdv1.Channel_CHANNEL_EMAIL, Reference: "drill", PerformedBy: "agent"},
			&pdv1.EraseSubjectResponse{}))
	}

	consent := func(id string) string {
		var r pdv1.RecordConsentResponse
		must(t, staff.call(ctx, recordConsentRPC, &pdv1.RecordConsentRequest{IdempotencyKey: "k-" + id, SubjectId: id,
			Purpose: pdv1.ConsentPurpose_CONSENT_PURPOSE_DIRECT_MARKETING, GiveTime: timestamppb.New(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)),
			Channel: pdv1.Channel_CHANNEL_PORTAL, WordingReference: "marketing-consent-v3"}, &r))
		return r.GetConsent().GetConsentId()
	}
	withdraw := func(id, consentID string) {
		must(t, staff.call(ctx, withdrawConsentRPC, &pdv1.WithdrawConsentRequest{IdempotencyKey: "w-" + id, SubjectId: id, ConsentId: consentID,
			Channel: pdv1.Channel_CHANNEL_EMAIL, Reference: "drill"}, &pdv1.WithdrawConsentResponse{}))
	}

	// Before the backup: 12 subjects, one erased, one rectified, two
	// consents given and one of them withdrawn.
	ids := map[int]string{}
	for n := 1; n <= 12; n++ {
		ids[n] = create(n)
	}
	erase(ids[1])
	rectify(ids[2], "before@example.test")
	c7, c8 := consent(ids[7]), consent(ids[8])
	withdraw(ids[8], c8)

	// The backup, through pdctl, while the daemon serves.
	backup := filepath.Join(dir, "drill.pdbackup")
	out, err := exec.Command(pdctl, "--addr", d.grpcAddr, "--token-file", tokenFile, "backup", "create", "--out", backup).CombinedOutput()
	if err != nil {
		t.Fatalf("pdctl backup create: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "subjects 12 (erased 1)") || !strings.Contains(string(out), "seal: 100%") {
		t.Errorf("pdctl backup create said:\n%s", out)
	}
	out, err = exec.Command(pdctl, "--addr", d.grpcAddr, "--token-file", tokenFile, "backup", "status").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "subjects 12 (erased 1)") {
		t.Errorf("pdctl backup status: %v\n%s", err, out)
	}

	// After the backup: creations, a rectification, erasures of subjects
	// in the backup and of one created after it.
	for n := 13; n <= 15; n++ {
		ids[n] = create(n)
	}
	rectify(ids[3], "after@example.test")
	for _, n := range []int{4, 5, 6, 13} {
		erase(ids[n])
	}
	withdraw(ids[7], c7)
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	ledgerBefore, err := os.ReadFile(ledgerPath)
	if err != nil {
		t.Fatal(err)
	}

	restore := func(from, dataDir, keys string) (string, error) {
		cmd := exec.Command(bin, "restore", "--from", from, "-data-dir", dataDir, "-key-file", keys, "-erasure-ledger", ledgerPath)
		cmd.Env = daemonEnv()
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err != nil {
			return stderr.String(), err
		}
		return stdout.String(), nil
	}

	// Files that must be refused, each changing nothing.
	good, err := os.ReadFile(backup)
	if err != nil {
		t.Fatal(err)
	}
	otherKeys := filepath.Join(dir, "keys-v2", "keyring.json")
	if err := os.MkdirAll(filepath.Dir(otherKeys), 0o700); err != nil {
		t.Fatal(err)
	}
	keyData, _ := os.ReadFile(keyFile)
	if err := os.WriteFile(otherKeys, keyData, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := envelope.AddVersion(otherKeys); err != nil {
		t.Fatal(err)
	}
	ringV2, err := envelope.Load(otherKeys)
	if err != nil {
		t.Fatal(err)
	}
	var underV2 bytes.Buffer
	if err := backupfile.Write(&underV2, ringV2, backupfile.Header{Created: time.Now(), ServerVersion: "devel", Database: "personaldata"}, nil); err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(good)
	flipped[len(flipped)*2/3] ^= 0x10
	for _, c := range []struct {
		name string
		file []byte
		want string
	}{
		{"corrupted", flipped, "corrupted or truncated"},
		{"truncated", good[:len(good)-777], "corrupted or truncated"},
		{"unknown key version", underV2.Bytes(), "master key version 2, which the keyring does not hold"},
		{"newer format", bytes.Replace(good, []byte(`"format":1`), []byte(`"format":7`), 1), "newer server: file format 7"},
		{"not a backup", []byte("PK\x03\x04 a zip file"), "not a personaldata backup file"},
	} {
		bad := filepath.Join(dir, "bad.pdbackup")
		if err := os.WriteFile(bad, c.file, 0o600); err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dir, "refused", "data")
		msg, err := restore(bad, target, keyFile)
		if err == nil || !strings.Contains(msg, c.want) {
			t.Errorf("%s: restore %v, said %q; want a refusal saying %q", c.name, err, msg, c.want)
		}
		left, _ := os.ReadDir(filepath.Dir(target))
		if len(left) != 0 {
			t.Errorf("%s: the refused restore left %v beside the target", c.name, left)
		}
		if now, _ := os.ReadFile(ledgerPath); !bytes.Equal(now, ledgerBefore) {
			t.Errorf("%s: the refused restore changed the live ledger", c.name)
		}
	}
	// A target that holds anything is refused too.
	if msg, err := restore(backup, d.dataDir, keyFile); err == nil || !strings.Contains(msg, "is not empty") {
		t.Errorf("restore over the live data directory: %v, %q", err, msg)
	}

	// The restore.
	data2 := filepath.Join(dir, "data2")
	begin := time.Now()
	msg, err := restore(backup, data2, keyFile)
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, msg)
	}
	t.Logf("restore took %v", time.Since(begin))
	var rep struct {
		Reapplied      int      `json:"erasures_reapplied"`
		AlreadyApplied int      `json:"erasures_already_applied"`
		NotInBackup    int      `json:"erasures_of_subjects_not_in_backup"`
		ReapIDs        []string `json:"reapplied_subject_ids"`
		AlreadyIDs     []string `json:"already_applied_subject_ids"`
		NotInIDs       []string `json:"not_in_backup_subject_ids"`
		AfterSnap      int      `json:"ledger_entries_after_backup"`
		Withdrawn      []string `json:"consent_withdrawals_reapplied"`
		WithdrawnPre   []string `json:"consent_withdrawals_already_applied"`
		Chains         int      `json:"audit_chains_verified"`
	}
	if err := json.Unmarshal([]byte(msg), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, msg)
	}
	want := func(ns ...int) []string {
		var out []string
		for _, n := range ns {
			out = append(out, ids[n])
		}
		slices.Sort(out)
		return out
	}
	sorted := func(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }
	if rep.Reapplied != 3 || !slices.Equal(sorted(rep.ReapIDs), want(4, 5, 6)) || rep.AlreadyApplied != 1 || !slices.Equal(rep.AlreadyIDs, want(1)) ||
		rep.NotInBackup != 1 || !slices.Equal(rep.NotInIDs, want(13)) || rep.AfterSnap != 5 || rep.Chains == 0 ||
		!slices.Equal(rep.Withdrawn, []string{ids[7] + "/" + c7}) || !slices.Equal(rep.WithdrawnPre, []string{ids[8] + "/" + c8}) {
		t.Errorf("report:\n%s", msg)
	}

	// The daemon on the restored directory.
	d2 := &daemon{bin: bin, dataDir: data2, grpcAddr: freeAddr(t), httpAddr: freeAddr(t), log: logFile, args: args}
	t.Cleanup(func() { d2.kill9() })
	if _, err := d2.start(); err != nil {
		t.Fatal(err)
	}
	conn2, err := dialDaemon(d2.grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	staff2, op2 := client{conn: conn2, token: staff.token}, client{conn: conn2, token: op.token}
	access := func(n int) (*pdv1.Subject, error) {
		var a pdv1.AccessSubjectResponse
		err := staff2.call(ctx, accessRPC, &pdv1.AccessSubjectRequest{SubjectId: ids[n]}, &a)
		return a.GetSubject(), err
	}
	for _, n := range []int{1, 4, 5, 6} {
		s, err := access(n)
		if err != nil || s.GetState() != pdv1.SubjectState_SUBJECT_STATE_ERASED || s.GetPerson() != nil {
			t.Errorf("subject %d after the restore: %v, %v; want erased", n, s, err)
		}
	}
	if s, err := access(2); err != nil || s.GetPerson().GetEmail() != "before@example.test" {
		t.Errorf("the rectification before the backup: %v, %v", s.GetPerson().GetEmail(), err)
	}
	if s, err := access(3); err != nil || s.GetPerson().GetEmail() != campaignPerson(3).GetEmail() {
		t.Errorf("subject 3 as backed up: %v, %v", s.GetPerson().GetEmail(), err)
	}
	var a7 pdv1.AccessSubjectResponse
	must(t, staff2.call(ctx, accessRPC, &pdv1.AccessSubjectRequest{SubjectId: ids[7]}, &a7))
	if cs := a7.GetConsents(); len(cs) != 1 || cs[0].GetWithdrawTime() == nil {
		t.Errorf("the consent withdrawn after the backup: %v", cs)
	}
	// The idempotency records (subject_ops) are in the backup like every
	// other collection: a retry of the consent given to subject 8 before
	// the backup, withdrawn since, answers that consent (its record is
	// only in subject_ops: the withdrawal is the subject's last op), not
	// a new one.
	var retried pdv1.RecordConsentResponse
	must(t, staff2.call(ctx, recordConsentRPC, &pdv1.RecordConsentRequest{IdempotencyKey: "k-" + ids[8], SubjectId: ids[8],
		Purpose: pdv1.ConsentPurpose_CONSENT_PURPOSE_DIRECT_MARKETING, GiveTime: timestamppb.New(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)),
		Channel: pdv1.Channel_CHANNEL_PORTAL, WordingReference: "marketing-consent-v3"}, &retried))
	if c := retried.GetConsent(); c.GetConsentId() != c8 || c.GetWithdrawTime() == nil {
		t.Errorf("a retried consent of before the backup, withdrawn since: %v; want consent %s, withdrawn", c, c8)
	}
	for _, n := range []int{7, 12} {
		if s, err := access(n); err != nil || s.GetState() != pdv1.SubjectState_SUBJECT_STATE_ACTIVE || s.GetPerson().GetGivenName() != campaignPerson(n).GetGivenName() {
			t.Errorf("subject %d: %v, %v", n, s, err)
		}
	}
	for _, n := range []int{13, 14} {
		if _, err := access(n); status.Code(err) != codes.NotFound {
			t.Errorf("subject %d, created after the backup: %v, want NOT_FOUND", n, err)
		}
	}
	for _, chain := range []string{"subjects/" + ids[4], "subjects/" + ids[1], "subjects/" + ids[2], "principals", "restores"} {
		var v pdv1.VerifyAuditChainResponse
		if err := op2.call(ctx, verifyChainRPC, &pdv1.VerifyAuditChainRequest{Chain: chain}, &v); err != nil || !v.GetIntact() || v.GetEvents() == 0 {
			t.Errorf("chain %s: %v, %v", chain, &v, err)
		}
	}
	if err := d2.stop(); err != nil {
		t.Fatal(err)
	}

	// The raw store: no data key and no lookup key of the re-erased.
	raw, err := readRaw(ctx, data2)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 4, 5, 6, 13} {
		if _, ok := raw.dataKeys[ids[n]]; ok {
			t.Errorf("subject %d still has a data key", n)
		}
		if raw.lookups[ids[n]] != 0 || raw.history[ids[n]] != 0 {
			t.Errorf("subject %d: %d lookup keys, %d history entries left", n, raw.lookups[ids[n]], raw.history[ids[n]])
		}
	}
	for _, n := range []int{2, 7} {
		if _, ok := raw.dataKeys[ids[n]]; !ok {
			t.Errorf("subject %d lost its data key", n)
		}
	}
	files, _ := filepath.Glob(filepath.Join(data2, "*.sqlite*"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, n := range []int{4, 5, 6} {
			if bytes.Contains(b, []byte(campaignPerson(n).GetGivenName())) || bytes.Contains(b, []byte(campaignPerson(n).GetEmail())) {
				t.Errorf("%s holds subject %d's plaintext", filepath.Base(f), n)
			}
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(errors.Join(err))
	}
}
