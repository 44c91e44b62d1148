package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/example/personaldata/cmd/personaldatad/server"
	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/backupfile"
	"github.com/example/personaldata/store/ledger"
	"github.com/example/personaldata/store/storetest"
)

// backupOver runs CreateBackup as token and returns the file and the summary.
func backupOver(ctx context.Context, e *env, token string) ([]byte, *pdv1.BackupSummary, error) {
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	st, err := pdv1.NewBackupServiceClient(e.grpc).CreateBackup(ctx, &pdv1.CreateBackupRequest{})
	if err != nil {
		return nil, nil, err
	}
	var file bytes.Buffer
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return nil, nil, errors.New("the stream ended without a summary")
		}
		if err != nil {
			return nil, nil, err
		}
		file.Write(m.GetChunk())
		if s := m.GetSummary(); s != nil {
			return file.Bytes(), s, nil
		}
	}
}

// TestBackupService: operators take backups, whose header and summary say
// what they hold; the status and the metric show the last one; others are
// refused.
func TestBackupService(t *testing.T) {
	storetest.SkipInMongoMode(t)
	e := start(t)
	c := e.gc()
	var erased *pdv1.Subject
	for n := range 5 {
		s := create(t, c, 70+n)
		if n == 0 {
			erased = s
		}
	}
	call(t, c, "EraseSubject", eraseReq(erased, "erase-1"), &pdv1.EraseSubjectResponse{})

	ctx := context.Background()
	if _, _, err := backupOver(ctx, e, e.token); status.Code(err) != codes.PermissionDenied {
		t.Errorf("support staff's backup: %v, want PERMISSION_DENIED", err)
	}
	file, sum, err := backupOver(ctx, e, e.operator)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(file)
	if sum.GetSubjects() != 5 || sum.GetErasedSubjects() != 1 || sum.GetDataKeys() != 4 || sum.GetLedgerEntries() != 1 ||
		sum.GetAuditChains() < 5 || sum.GetKeyVersion() != 1 || sum.GetBytes() != int64(len(file)) || sum.GetSha256() != hex.EncodeToString(digest[:]) {
		t.Errorf("summary %v", sum)
	}
	h, _, err := backupfile.ReadHeader(backupfile.NewReader(bytes.NewReader(file)))
	if err != nil {
		t.Fatal(err)
	}
	if h.Counts.Subjects != 5 || h.Counts.LedgerEntries != 1 || h.Audit.Chains != sum.GetAuditChains() || h.KeyVersion != 1 {
		t.Errorf("header %+v", h)
	}
	for _, v := range []string{testPerson(70).GetGivenName(), testPerson(71).GetEmail(), erased.GetSubjectId()} {
		if bytes.Contains(file, []byte(v)) {
			t.Errorf("the backup holds %q in clear", v)
		}
	}

	var st pdv1.GetBackupStatusResponse
	call(t, e.as(e.rc(), e.operator), "personaldata.v1.BackupService/GetBackupStatus", &pdv1.GetBackupStatusRequest{}, &st)
	if st.GetLastSuccess().GetSha256() != sum.GetSha256() {
		t.Errorf("status %v", &st)
	}
	_, metrics := httpGet(t, e.base+"/metrics")
	if !strings.Contains(metrics, "personaldata_backup_last_success_timestamp_seconds ") ||
		strings.Contains(metrics, "personaldata_backup_last_success_timestamp_seconds 0\n") {
		t.Errorf("/metrics lacks the last backup's time")
	}
}

// TestBackupRestoreScale times a backup while writes go on and a restore,
// at PERSONALDATA_TEST_BACKUP_SUBJECTS subjects (skipped when unset): the
// figures in cmd/personaldatad/README.md.
func TestBackupRestoreScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("PERSONALDATA_TEST_BACKUP_SUBJECTS"))
	if n == 0 {
		t.Skip("set PERSONALDATA_TEST_BACKUP_SUBJECTS to the number of subjects")
	}
	storetest.SkipInMongoMode(t)
	e := start(t)
	c := e.gc()
	ctx := context.Background()
	begin := time.Now()
	var wg sync.WaitGroup
	next := atomic.Int64{}
	var erased []*pdv1.Subject
	var mu sync.Mutex
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1)); i <= n; i = int(next.Add(1)) {
				s := createScale(t, c, i)
				if i%100 == 0 {
					mu.Lock()
					erased = append(erased, s)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	t.Logf("seeded %d subjects in %v", n, time.Since(begin))

	// Writes go on during the backup; erasures after it.
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			createScale(t, c, n+1+i)
		}
	})
	begin = time.Now()
	file, sum, err := backupOver(ctx, e, e.operator)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("backup: %v, %d bytes, writers held %.4fs, %d subjects, %d audit events in %d chains",
		time.Since(begin), len(file), sum.GetBarrierSeconds(), sum.GetSubjects(), sum.GetAuditEvents(), sum.GetAuditChains())
	for i, s := range erased {
		call(t, c, "EraseSubject", eraseReq(s, fmt.Sprintf("scale-%d", i)), &pdv1.EraseSubjectResponse{})
	}
	path := filepath.Join(t.TempDir(), "scale.pdbackup")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	begin = time.Now()
	rep, err := server.Restore(ctx, server.RestoreConfig{
		From: path, DataDir: filepath.Join(t.TempDir(), "restored"), Database: e.db.Name(),
		Keys: server.KeysConfig{KeyFile: e.keyFile}, ErasureLedger: filepath.Join(e.dir, "data", ledger.DefaultName),
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restore: %v, %d chains (%d events) verified, %d erasures re-applied", time.Since(begin), rep.AuditChains, rep.AuditEvents, rep.Reapplied)
	if rep.Reapplied != len(erased) {
		t.Errorf("re-applied %d erasures, want %d", rep.Reapplied, len(erased))
	}
}

// TestReplayErasuresByURI: restore --replay-erasures against a database
// reached by URI (a MongoDB deployment restored with mongorestore): every
// erasure in the ledgers that the database does not show is made, with its
// data key destroyed; those it shows are counted as applied.
func TestReplayErasuresByURI(t *testing.T) {
	e := startOn(t, sharedStore(t))
	c := e.gc()
	gone, back, keep := create(t, c, 80), create(t, c, 81), create(t, c, 82)
	call(t, c, "EraseSubject", eraseReq(gone, "erase-1"), &pdv1.EraseSubjectResponse{})
	// A ledger from elsewhere (another replica's) names back, which this
	// database holds unerased, as a restored older dump would.
	other := filepath.Join(t.TempDir(), "replica-2.jsonl")
	l, err := ledger.Open(other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ledger.Entry{Kind: ledger.KindErasure, Subject: back.GetSubjectId(), Controller: "company", Ground: "ERASURE_GROUND_CONSENT_WITHDRAWN"}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	rep, err := server.ReplayErasures(context.Background(), server.ReplayConfig{
		Store: store.Config{URI: e.srv.StoreURI(), Database: e.db.Name()},
		Keys:  server.KeysConfig{KeyFile: e.keyFile}, ErasureLedger: filepath.Join(t.TempDir(), "live.jsonl"),
		Ledgers: []string{filepath.Join(e.dir, "data", ledger.DefaultName), other},
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Reapplied != 1 || rep.ReplayReport.Reapplied[0] != back.GetSubjectId() || rep.AlreadyApplied != 1 || rep.ReplayReport.AlreadyApplied[0] != gone.GetSubjectId() {
		t.Errorf("report %+v", rep)
	}
	for _, s := range []*pdv1.Subject{gone, back} {
		if n, err := e.coll("data_keys").CountDocuments(context.Background(), bson.D{{Key: "_id", Value: s.GetSubjectId()}}); err != nil || n != 0 {
			t.Errorf("subject %s: %d data keys, %v", s.GetSubjectId(), n, err)
		}
	}
	if n, _ := e.coll("data_keys").CountDocuments(context.Background(), bson.D{{Key: "_id", Value: keep.GetSubjectId()}}); n != 1 {
		t.Errorf("a subject no ledger names lost its data key")
	}
}

// createScale creates made-up person n, unique up to millions (testPerson
// repeats an identity number every 8,400).
func createScale(t *testing.T, c caller, n int) *pdv1.Subject {
	t.Helper()
	req := createReq(fmt.Sprintf("scale-%d", n), n)
	req.Person.IdentityNumber = pnr(1950+n%50, 1+(n/50)%12, 1+(n/600)%28, 100+(n/16800)%800)
	req.Person.Email = fmt.Sprintf("scale%d@example.test", n)
	return call(t, c, "CreateSubject", req, &pdv1.CreateSubjectResponse{}).GetSubject()
}

// TestRestoresChain: the restore's audit event, in the chain "restores",
// is listed (ListAuditEvents' chain) and verified (VerifyAuditChain) by
// operators over gRPC and REST, and refused to others.
func TestRestoresChain(t *testing.T) {
	storetest.SkipInMongoMode(t) // backups are the embedded store's
	e := start(t)
	c := e.gc()
	gone := create(t, c, 85)
	create(t, c, 86)
	file, _, err := backupOver(context.Background(), e, e.operator)
	if err != nil {
		t.Fatal(err)
	}
	call(t, c, "EraseSubject", eraseReq(gone, "erase-1"), &pdv1.EraseSubjectResponse{})
	dir := t.TempDir()
	path := filepath.Join(dir, "b.pdbackup")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Restore(context.Background(), server.RestoreConfig{
		From: path, DataDir: filepath.Join(dir, "data"), Database: e.db.Name(),
		Keys: server.KeysConfig{KeyFile: e.keyFile}, ErasureLedger: filepath.Join(e.dir, "data", ledger.DefaultName),
	}, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	// A server on the restored directory, with the keys and the
	// operator's token of the one backed up.
	for _, name := range []string{"keyring.json", "operator.token"} {
		b, err := os.ReadFile(filepath.Join(e.dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	srv, _ := serve(t, dir, server.Config{Store: store.Config{DataDir: filepath.Join(dir, "data"), Database: e.db.Name()}}, slog.New(slog.DiscardHandler))
	conn := dial(t, srv)
	base := "http://" + srv.HTTPAddr()
	for _, op := range []caller{grpcCaller{conn, e.operator}, restCaller{base, e.operator}} {
		evs := call(t, op, "personaldata.v1.AuditService/ListAuditEvents", &pdv1.ListAuditEventsRequest{Chain: "restores"}, &pdv1.ListAuditEventsResponse{}).GetEvents()
		if len(evs) != 1 || evs[0].GetChain() != "restores" || evs[0].GetPrincipalId() != "restore" || evs[0].GetSeq() != 1 ||
			!slices.Contains(evs[0].GetFields(), "erasures_reapplied:1") {
			t.Errorf("the restores chain: %v", evs)
		}
		if v := call(t, op, "personaldata.v1.AuditService/VerifyAuditChain", &pdv1.VerifyAuditChainRequest{Chain: "restores"}, &pdv1.VerifyAuditChainResponse{}); !v.GetIntact() || v.GetEvents() != 1 {
			t.Errorf("verify the restores chain: %v", v)
		}
	}
	for _, staff := range []caller{grpcCaller{conn, e.token}, restCaller{base, e.token}} {
		callErr(t, staff, "personaldata.v1.AuditService/ListAuditEvents", &pdv1.ListAuditEventsRequest{Chain: "restores"}, &pdv1.ListAuditEventsResponse{}, codes.PermissionDenied)
		callErr(t, staff, "personaldata.v1.AuditService/VerifyAuditChain", &pdv1.VerifyAuditChainRequest{Chain: "restores"}, &pdv1.VerifyAuditChainResponse{}, codes.PermissionDenied)
	}
}

// backupOverREST runs CreateBackup through the gateway (POST /v1/backups,
// one JSON line a message) as token and returns the file, the summary and
// the stages of the progress messages; a refusal is the call's error, as
// the status of the response or as the stream's error line.
func backupOverREST(t *testing.T, base, token string) ([]byte, *pdv1.BackupSummary, []string, error) {
	t.Helper()
	hr, err := http.NewRequest(http.MethodPost, base+"/v1/backups", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Authorization", "Bearer "+token)
	hr.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		// Refused before the first message: answered as a unary call is.
		err := restRefusal(body, res.StatusCode)
		if res.StatusCode != httpStatus(status.Code(err)) {
			t.Fatalf("HTTP %d: %s", res.StatusCode, body)
		}
		return nil, nil, nil, err
	}
	var file bytes.Buffer
	var stages []string
	lines := bytes.Split(bytes.TrimSpace(body), []byte("\n"))
	if !bytes.HasPrefix(lines[len(lines)-1], []byte(`{"end":`)) && !bytes.HasPrefix(lines[len(lines)-1], []byte(`{"error":`)) {
		t.Fatalf("stream without its end line: %s", lines[len(lines)-1])
	}
	for _, line := range lines {
		var m pdv1.CreateBackupResponse
		// Each line read as a stream of its own: the line, then an end.
		if err := streamResult(slices.Concat(line, []byte("\n"+`{"end":{}}`)), &m); err != nil {
			return nil, nil, nil, err
		}
		file.Write(m.GetChunk())
		if p := m.GetProgress(); p != nil && !slices.Contains(stages, p.GetStage()) {
			stages = append(stages, p.GetStage())
		}
		if s := m.GetSummary(); s != nil {
			return file.Bytes(), s, stages, nil
		}
	}
	return nil, nil, nil, errors.New("the stream ended without a summary")
}

// TestBackupOverREST: POST /v1/backups streams the backup through the
// gateway as JSON lines (chunks, progress, the summary last), the file the
// chunks make is the one the summary describes and restores, and support
// staff are refused.
func TestBackupOverREST(t *testing.T) {
	storetest.SkipInMongoMode(t)
	e := start(t)
	c := e.rc()
	gone := create(t, c, 75)
	for n := range 3 {
		create(t, c, 76+n)
	}
	if _, _, _, err := backupOverREST(t, e.base, e.token); status.Code(err) != codes.PermissionDenied {
		t.Errorf("support staff's backup over REST: %v, want PERMISSION_DENIED", err)
	}
	file, sum, stages, err := backupOverREST(t, e.base, e.operator)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(file)
	if sum.GetSubjects() != 4 || sum.GetErasedSubjects() != 0 || sum.GetDataKeys() != 4 || sum.GetBytes() != int64(len(file)) ||
		sum.GetSha256() != hex.EncodeToString(digest[:]) || sum.GetAuditChains() < 4 {
		t.Errorf("summary %v", sum)
	}
	if !slices.Equal(stages, []string{"snapshot", "copy 1/3", "copy 2/3", "copy 3/3", "seal"}) {
		t.Errorf("progress stages %v", stages)
	}
	h, _, err := backupfile.ReadHeader(backupfile.NewReader(bytes.NewReader(file)))
	if err != nil || h.Counts.Subjects != 4 {
		t.Fatalf("header %+v, %v", h, err)
	}
	var st pdv1.GetBackupStatusResponse
	call(t, e.as(c, e.operator), "personaldata.v1.BackupService/GetBackupStatus", &pdv1.GetBackupStatusRequest{}, &st)
	if st.GetLastSuccess().GetSha256() != sum.GetSha256() {
		t.Errorf("status %v", &st)
	}
	// The file restores, and the erasure after it is made again.
	call(t, c, "EraseSubject", eraseReq(gone, "erase-1"), &pdv1.EraseSubjectResponse{})
	path := filepath.Join(t.TempDir(), "rest.pdbackup")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := server.Restore(context.Background(), server.RestoreConfig{
		From: path, DataDir: filepath.Join(t.TempDir(), "restored"), Database: e.db.Name(),
		Keys: server.KeysConfig{KeyFile: e.keyFile}, ErasureLedger: filepath.Join(e.dir, "data", ledger.DefaultName),
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.ReplayReport.Reapplied, []string{gone.GetSubjectId()}) {
		t.Errorf("re-applied %v, want the erased subject", rep.ReplayReport.Reapplied)
	}
}

// TestRestoreRefusesWithoutALiveLedger: a restore that finds no ledger
// besides the backup's (the live one left in a data directory moved aside,
// say) is refused and writes nothing, since the erasures made after the
// backup would come back; --backup-ledger-only is the operator accepting
// that, and the live ledger given with --ledger re-applies them.
func TestRestoreRefusesWithoutALiveLedger(t *testing.T) {
	storetest.SkipInMongoMode(t) // backups are the embedded store's
	e := start(t)
	c := e.gc()
	gone := create(t, c, 87)
	file, _, err := backupOver(context.Background(), e, e.operator)
	if err != nil {
		t.Fatal(err)
	}
	call(t, c, "EraseSubject", eraseReq(gone, "erase-1"), &pdv1.EraseSubjectResponse{})
	dir := t.TempDir()
	path := filepath.Join(dir, "b.pdbackup")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	restore := func(target string, only bool, ledgers ...string) (*server.RestoreReport, error) {
		return server.Restore(context.Background(), server.RestoreConfig{
			From: path, DataDir: target, Database: e.db.Name(), Keys: server.KeysConfig{KeyFile: e.keyFile},
			Ledgers: ledgers, BackupLedgerOnly: only, // -erasure-ledger left at its default, in the new directory
		}, slog.New(slog.DiscardHandler))
	}
	target := filepath.Join(dir, "data")
	_, err = restore(target, false)
	if err == nil || !strings.Contains(err.Error(), "--ledger") || !strings.Contains(err.Error(), "--backup-ledger-only") {
		t.Fatalf("restore with no ledger but the backup's: %v, want a refusal naming --ledger and --backup-ledger-only", err)
	}
	if _, err := os.Stat(target); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the refused restore left %s behind (%v)", target, err)
	}
	rep, err := restore(target, false, filepath.Join(e.dir, "data", ledger.DefaultName))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.ReplayReport.Reapplied, []string{gone.GetSubjectId()}) {
		t.Errorf("with the live ledger given: re-applied %v, want the subject erased after the backup", rep.ReplayReport.Reapplied)
	}
	rep, err = restore(filepath.Join(dir, "only"), true)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.ReplayReport.Reapplied) != 0 {
		t.Errorf("with --backup-ledger-only: re-applied %v, want nothing (the erasure is after the backup)", rep.ReplayReport.Reapplied)
	}
}
