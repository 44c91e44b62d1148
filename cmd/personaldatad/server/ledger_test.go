package server_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/example/personaldata/cmd/personaldatad/server"
	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/ledger"
	"github.com/example/personaldata/store/storetest"
)

// TestErasureLedger: every acknowledged erasure is in the ledger, with ids
// and the ground and no personal value; a retry appends again (a restore
// counts each subject once).
func TestErasureLedger(t *testing.T) {
	e := start(t)
	c := e.gc()
	sub := create(t, c, 60)
	keep := create(t, c, 61)
	call(t, c, "EraseSubject", eraseReq(sub, "erase-1"), &pdv1.EraseSubjectResponse{})
	call(t, c, "EraseSubject", eraseReq(sub, "erase-1"), &pdv1.EraseSubjectResponse{})

	path := filepath.Join(e.dir, "data", ledger.DefaultName)
	st, err := ledger.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Entries) != 2 || st.TornBytes != 0 {
		t.Fatalf("ledger: %d entries (%d torn bytes), want 2", len(st.Entries), st.TornBytes)
	}
	for _, en := range st.Entries {
		if en.Kind != ledger.KindErasure || en.Subject != sub.GetSubjectId() || en.Controller != "company" ||
			en.Ground != pdv1.ErasureGround_ERASURE_GROUND_CONSENT_WITHDRAWN.String() || !en.Time.Equal(e.clock.Now()) {
			t.Errorf("entry %+v", en)
		}
	}
	raw, _ := os.ReadFile(path)
	for _, v := range []string{testPerson(60).GetGivenName(), testPerson(60).GetEmail(), testPerson(60).GetIdentityNumber(), keep.GetSubjectId()} {
		if strings.Contains(string(raw), v) {
			t.Errorf("the ledger holds %q", v)
		}
	}
}

// ledgered lists the subjects of the ledger's entries of kind, each once.
func (e *env) ledgered(t *testing.T, kind string) []string {
	t.Helper()
	st, err := ledger.ReadFile(filepath.Join(e.dir, "data", ledger.DefaultName))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, en := range st.Entries {
		if en.Kind == kind && !slices.Contains(ids, en.Subject) {
			ids = append(ids, en.Subject)
		}
	}
	return ids
}

// TestLostLedgerRebuilt: a server that finds its ledger missing while the
// store holds subjects rebuilds it from the store before it serves (every
// erased subject with its erasure's time and ground, every withdrawn
// consent), says so at WARN with counts, and a restore of a backup taken
// before those erasures, with the rebuilt ledger, erases them again.
func TestLostLedgerRebuilt(t *testing.T) {
	storetest.SkipInMongoMode(t) // backups are the embedded store's
	dir := t.TempDir()
	clk := &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	ledgerPath := filepath.Join(dir, "ledger-disk", ledger.DefaultName)
	cfg := server.Config{Store: store.Config{DataDir: filepath.Join(dir, "data"), Database: "lost"}, Now: clk.Now, ErasureLedger: ledgerPath}
	logs := &syncBuffer{}
	srv, stop := serve(t, dir, cfg, slog.New(slog.NewJSONHandler(logs, nil)))
	conn := dial(t, srv)
	opToken := readToken(t, filepath.Join(dir, "operator.token"))
	staff := grpcCaller{conn, createPrincipal(t, grpcCaller{conn, opToken}, "tester", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, []string{"company"}, allPurposes)}
	gone, also, withdrew, kept := create(t, staff, 90), create(t, staff, 91), create(t, staff, 92), create(t, staff, 93)
	given := call(t, staff, recordConsentRPC, consentReq(withdrew, "consent-1", pdv1.ConsentPurpose_CONSENT_PURPOSE_DIRECT_MARKETING, "", clk.Now().Add(-time.Hour)), &pdv1.RecordConsentResponse{}).GetConsent()
	file, _, err := backupOver(context.Background(), &env{grpc: conn}, opToken)
	if err != nil {
		t.Fatal(err)
	}
	backup := filepath.Join(dir, "before.pdbackup")
	if err := os.WriteFile(backup, file, 0o600); err != nil {
		t.Fatal(err)
	}
	// After the backup: two erasures, a withdrawal, at times of their own.
	clk.Advance(time.Hour)
	erasedAt := clk.Now()
	call(t, staff, "EraseSubject", eraseReq(gone, "erase-1"), &pdv1.EraseSubjectResponse{})
	call(t, staff, "EraseSubject", eraseReq(also, "erase-2"), &pdv1.EraseSubjectResponse{})
	clk.Advance(time.Minute)
	withdrawnAt := clk.Now()
	call(t, staff, withdrawConsentRPC, withdrawReq(withdrew, "withdraw-1", given.GetConsentId()), &pdv1.WithdrawConsentResponse{})
	stop()

	// The ledger disk is lost; the server starts on the data.
	if err := os.RemoveAll(filepath.Dir(ledgerPath)); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)
	logs = &syncBuffer{}
	_, stop = serve(t, dir, cfg, slog.New(slog.NewJSONHandler(logs, nil)))
	// Written before server.New returned, so before anything was served.
	st, err := ledger.ReadFile(ledgerPath)
	if err != nil {
		t.Fatal(err)
	}
	want := []ledger.Entry{
		{Seq: 1, Time: erasedAt, Kind: ledger.KindErasure, Subject: gone.GetSubjectId(), Controller: "company", Ground: "ERASURE_GROUND_CONSENT_WITHDRAWN"},
		{Seq: 2, Time: erasedAt, Kind: ledger.KindErasure, Subject: also.GetSubjectId(), Controller: "company", Ground: "ERASURE_GROUND_CONSENT_WITHDRAWN"},
		{Seq: 3, Time: withdrawnAt, Kind: ledger.KindConsentWithdrawal, Subject: withdrew.GetSubjectId(), Controller: "company", Consent: given.GetConsentId()},
		{Seq: 4, Time: clk.Now(), Kind: ledger.KindRebuilt},
	}
	// The two erasures share a time: they come in the store's (_id) order.
	if want[0].Subject > want[1].Subject {
		want[0].Subject, want[1].Subject = want[1].Subject, want[0].Subject
	}
	if len(st.Entries) != len(want) {
		t.Errorf("rebuilt ledger: %+v, want %+v", st.Entries, want)
		st.Entries = nil
	}
	for i, en := range st.Entries {
		if w := want[i]; en.Seq != w.Seq || !en.Time.Equal(w.Time) || en.Kind != w.Kind || en.Subject != w.Subject ||
			en.Controller != w.Controller || en.Ground != w.Ground || en.Consent != w.Consent {
			t.Errorf("entry %d: %+v, want %+v", i, en, w)
		}
	}
	if out := logs.String(); !strings.Contains(out, `"level":"WARN","msg":"erasure ledger missing or empty while the store holds subjects`) ||
		!strings.Contains(out, `"subjects":4,"erasures":2,"consent_withdrawals":1`) {
		t.Errorf("no WARN with the counts:\n%s", out)
	} else if strings.Contains(out, kept.GetSubjectId()) || strings.Contains(out, gone.GetSubjectId()) {
		t.Errorf("the log names a subject:\n%s", out)
	}
	stop()
	// A start on the rebuilt ledger leaves it as it is.
	logs = &syncBuffer{}
	_, stop = serve(t, dir, cfg, slog.New(slog.NewJSONHandler(logs, nil)))
	stop()
	if again, err := ledger.ReadFile(ledgerPath); err != nil || len(again.Entries) != len(want) || strings.Contains(logs.String(), "rebuilt") {
		t.Errorf("a second start changed the ledger (%d entries, %v) or warned again:\n%s", len(again.Entries), err, logs.String())
	}

	// The data disk is lost too: the backup from before the erasures,
	// restored with the rebuilt ledger, erases them again.
	rep, err := server.Restore(context.Background(), server.RestoreConfig{
		From: backup, DataDir: filepath.Join(dir, "restored"), Database: "lost",
		Keys: server.KeysConfig{KeyFile: filepath.Join(dir, "keyring.json")}, ErasureLedger: ledgerPath, Now: clk.Now,
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	sorted := func(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }
	if got, want := sorted(rep.ReplayReport.Reapplied), sorted([]string{gone.GetSubjectId(), also.GetSubjectId()}); !slices.Equal(got, want) {
		t.Errorf("erasures re-applied: %v, want %v", got, want)
	}
	if got := rep.WithdrawalsReapplied; !slices.Equal(got, []string{withdrew.GetSubjectId() + "/" + given.GetConsentId()}) {
		t.Errorf("withdrawals re-applied: %v", got)
	}
}
