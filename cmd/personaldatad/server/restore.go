package server

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/example/personaldata/service"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/backup"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/retention"
	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/backupfile"
	"github.com/example/personaldata/store/durablefile"
	"github.com/example/personaldata/store/ledger"
)

// RestoreConfig says what to restore where.
type RestoreConfig struct {
	// From is the backup file.
	From string
	// DataDir is the data directory to restore into: it must not exist, or
	// be empty. The restore is made in a directory beside it and renamed
	// into place at the end, so a failed restore leaves it as it was.
	DataDir string
	// Database must be the backup's database name.
	Database string
	// Keys are the master keys; the backup's key version must be among them.
	Keys KeysConfig
	// ErasureLedger is the live erasure ledger's file; Ledgers are more
	// ledgers the operator gives (from other disks, other replicas). Every
	// erasure in any of them, or in the backup's, is re-applied.
	ErasureLedger string
	Ledgers       []string
	// BackupLedgerOnly lets the restore go on when no ledger but the
	// backup's is found: the operator accepts that erasures made after the
	// backup are not re-applied. Without it such a restore is refused, so
	// that a ledger left behind (in a data directory moved aside, say) is
	// not silently missed.
	BackupLedgerOnly bool
	// Version is this server's version: a backup of a newer one is refused.
	Version string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// RestoreReport is what a restore did: counts and ids, no personal data.
type RestoreReport struct {
	Backup           backupfile.Header `json:"backup"`
	AuditChains      int               `json:"audit_chains_verified"`
	AuditEvents      int64             `json:"audit_events_verified"`
	Ledger           string            `json:"ledger"`
	LedgerEntries    int               `json:"ledger_entries"`
	EntriesAfterSnap int               `json:"ledger_entries_after_backup"`
	Reapplied        int               `json:"erasures_reapplied"`
	AlreadyApplied   int               `json:"erasures_already_applied"`
	NotInBackup      int               `json:"erasures_of_subjects_not_in_backup"`
	backup.ReplayReport
	PurgedBySweep int     `json:"purged_by_sweep"`
	Seconds       float64 `json:"duration_seconds"`
	// Unknown says what no record shows: changes other than erasures
	// made after the backup (creations, rectifications, consents) are lost.
	Unknown string `json:"changes_after_backup"`
}

// backupLedger is the erasure ledger's name inside a backup, and
// backupLedgerCopy where the restore puts it until it has read it.
const (
	backupLedger     = "erasure-ledger.jsonl"
	backupLedgerCopy = ".backup-erasure-ledger.jsonl"
)

// Restore restores a backup into an empty data directory: it verifies the
// file (authentication, format, key version, server version) and every
// audit chain in it, restores the three databases, re-applies every
// erasure in the newest ledgers it finds that the backup does not show
// (through the service's own erasure, so data keys are destroyed), runs the
// retention sweep, records the restore in the audit trail, and only then
// moves the directory into place. Start the server on it afterwards.
func Restore(ctx context.Context, cfg RestoreConfig, log *slog.Logger) (*RestoreReport, error) {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	start := time.Now()
	target, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("restore: -data-dir: %w", err)
	}
	if err := emptyTarget(target); err != nil {
		return nil, err
	}
	keys, err := (&Server{}).loadKeys(KeysConfig{MasterKeys: cfg.Keys.MasterKeys, KeyFile: cfg.Keys.KeyFile, Keeper: cfg.Keys.Keeper})
	if err != nil {
		return nil, fmt.Errorf("restore: %w (the master keys are never in a backup: give the key file the backup was sealed with)", err)
	}
	if err := durablefile.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(target), "."+filepath.Base(target)+".restore-")
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	done := false
	defer func() {
		if !done {
			_ = os.RemoveAll(tmp)
		}
	}()

	// 1. The file: every entry authenticated before the restore goes on.
	f, err := os.Open(cfg.From)
	if err != nil {
		return nil, fmt.Errorf("restore: --from: %w", err)
	}
	defer f.Close()
	wanted := map[string]bool{backupLedger: true}
	for _, db := range []string{cfg.Database, store.AuditDatabase(cfg.Database), store.KeysDatabase(cfg.Database)} {
		wanted[db+".sqlite"] = true
	}
	got := map[string]bool{}
	h, err := backupfile.Open(f, keys.Ring(), cfg.Version, func(h backupfile.Header, th *tar.Header, r io.Reader) error {
		if h.Database != cfg.Database {
			return fmt.Errorf("the backup is of database %q, not %q: run with -database %s", h.Database, cfg.Database, h.Database)
		}
		if !wanted[th.Name] || got[th.Name] || th.Typeflag != tar.TypeReg {
			return fmt.Errorf("%w: unexpected entry %q", backupfile.ErrCorrupt, th.Name)
		}
		got[th.Name] = true
		name := th.Name
		if name == backupLedger {
			name = backupLedgerCopy
		}
		out, err := os.OpenFile(filepath.Join(tmp, name), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, r); err != nil {
			out.Close()
			return err
		}
		if err := out.Sync(); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		return nil, fmt.Errorf("restore: %s: %w", cfg.From, err)
	}
	if len(got) != len(wanted) {
		return nil, fmt.Errorf("restore: %s: %w: entries missing (has %d of %d)", cfg.From, backupfile.ErrCorrupt, len(got), len(wanted))
	}
	rep := &RestoreReport{Backup: h}

	// 2. The audit chains, as stored, against the header's heads.
	counts, err := store.CountSnapshot(ctx, tmp, cfg.Database)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if counts.Subjects != h.Counts.Subjects || counts.DataKeys != h.Counts.DataKeys || counts.AuditEvents != h.Counts.AuditEvents {
		return nil, fmt.Errorf("restore: %w: the databases do not hold what the header counts", backupfile.ErrCorrupt)
	}
	if sum := summariseHeads(counts.AuditHeads); sum != h.Audit.HeadsSHA256 {
		return nil, fmt.Errorf("restore: %w: the audit chains' heads differ from the header's", backupfile.ErrCorrupt)
	}

	// 3. The ledgers: the backup's, the live one, and those given.
	ledgerPath := cfg.ErasureLedger
	if ledgerPath == "" {
		ledgerPath = filepath.Join(target, ledger.DefaultName)
	}
	ledgerPath, err = filepath.Abs(ledgerPath)
	if err != nil {
		return nil, fmt.Errorf("restore: -erasure-ledger: %w", err)
	}
	if _, err := os.Stat(ledgerPath); errors.Is(err, fs.ErrNotExist) && len(cfg.Ledgers) == 0 && !cfg.BackupLedgerOnly {
		return nil, fmt.Errorf("restore: no erasure ledger besides the backup's: the live one (-erasure-ledger %s) does not exist, "+
			"so erasures made after the backup would come back; give the live ledger with --ledger FILE "+
			"(after moving a data directory aside, its %s), or --backup-ledger-only to re-apply only the backup's", ledgerPath, ledger.DefaultName)
	}
	entries, newest, backupEntries, err := readLedgers(filepath.Join(tmp, backupLedgerCopy), ledgerPath, cfg.Ledgers)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	rep.Ledger, rep.LedgerEntries, rep.EntriesAfterSnap = newest.name, len(newest.st.Entries), len(newest.st.Entries)-backupEntries
	// The live ledger of the restored server: kept where it is if it
	// exists; else made from the newest found, inside the new directory
	// when that is where it lives.
	liveIn := ledgerPath
	if rel, err := filepath.Rel(target, ledgerPath); err == nil && !strings.HasPrefix(rel, "..") {
		liveIn = filepath.Join(tmp, rel)
	}
	if _, err := os.Stat(liveIn); errors.Is(err, fs.ErrNotExist) {
		if err := durablefile.MkdirAll(filepath.Dir(liveIn), 0o700); err != nil {
			return nil, fmt.Errorf("restore: %w", err)
		}
		if err := durablefile.Write(liveIn, newest.data, false); err != nil {
			return nil, fmt.Errorf("restore: write the erasure ledger: %w", err)
		}
	}
	if err := os.Remove(filepath.Join(tmp, backupLedgerCopy)); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}

	// 4. Open the restored store and check every chain.
	st, err := store.Open(ctx, store.Config{DataDir: tmp, Database: cfg.Database})
	if err != nil {
		return nil, fmt.Errorf("restore: open the restored store: %w", err)
	}
	closeStore := func() error { return st.Close(context.Background()) }
	defer func() {
		if closeStore != nil {
			_ = closeStore()
		}
	}()
	// One pass over the trail, in _id order (each chain in seq order):
	// every event's hash recomputes and follows from the one before it,
	// from seq 1 on, as audit.Log.Verify checks one chain.
	type link struct {
		seq  int64
		hash string
	}
	chains := map[string]link{}
	var broken error
	err = audit.New(st).Scan(ctx, store.AuditScan{}, func(e audit.Event) error {
		prev := chains[e.Chain]
		switch {
		case e.Seq != prev.seq+1:
			broken = fmt.Errorf("restore: %w: audit chain %s misses seq %d", backupfile.ErrCorrupt, e.Chain, prev.seq+1)
		case audit.Hash(e) != e.Hash:
			broken = fmt.Errorf("restore: %w: audit chain %s is broken at seq %d (%s)", backupfile.ErrCorrupt, e.Chain, e.Seq, audit.ReasonChanged)
		case e.PrevHash != prev.hash:
			broken = fmt.Errorf("restore: %w: audit chain %s is broken at seq %d (%s)", backupfile.ErrCorrupt, e.Chain, e.Seq, audit.ReasonOutOfPlace)
		}
		if broken != nil {
			return broken
		}
		chains[e.Chain] = link{e.Seq, e.Hash}
		rep.AuditEvents++
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("restore: verify the audit trail: %w", err)
	}
	for _, head := range counts.AuditHeads {
		if l := chains[head.ID]; l.seq != head.Seq || l.hash != head.Hash {
			return nil, fmt.Errorf("restore: %w: audit chain %s does not end where the header says", backupfile.ErrCorrupt, head.ID)
		}
	}
	rep.AuditChains = len(chains)

	// 5. Erase again, sweep, and record it, before anything is served.
	live, err := ledger.Open(liveIn)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	defer live.Close()
	svc := service.New(st, keys, core.Options{Now: now, Logger: log, Ledger: live})
	if rep.ReplayReport, err = svc.Backup.ReplayErasures(ctx, entries); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	rep.Reapplied, rep.AlreadyApplied, rep.NotInBackup = len(rep.ReplayReport.Reapplied), len(rep.ReplayReport.AlreadyApplied), len(rep.ReplayReport.NotInBackup)
	swept, err := retention.NewRetention(svc.Retention).Sweep(ctx, "personaldatad restore")
	if err != nil {
		return nil, fmt.Errorf("restore: retention sweep: %w", err)
	}
	rep.PurgedBySweep = len(swept.PurgedSubjectIDs)
	if err := svc.Backup.RecordRestore(ctx, h.Created, rep.ReplayReport, rep.PurgedBySweep); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	if err := st.Durable(ctx); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	err, closeStore = closeStore(), nil
	if err != nil {
		return nil, fmt.Errorf("restore: close the restored store: %w", err)
	}
	if err := live.Close(); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}

	// 6. Into place: nothing above touched the target.
	if err := os.Rename(tmp, target); err != nil {
		return nil, fmt.Errorf("restore: move the restored directory into place: %w", err)
	}
	done = true
	if err := durablefile.SyncDir(filepath.Dir(target)); err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	rep.Seconds = time.Since(start).Seconds()
	rep.Unknown = "changes other than erasures made after the backup (creations, rectifications, consents) are not recorded outside the store: they are lost"
	return rep, nil
}

// emptyTarget refuses a data directory that holds anything.
func emptyTarget(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("restore: -data-dir: %w", err)
	}
	if len(entries) > 0 {
		names := make([]string, 0, 3)
		for _, e := range entries[:min(3, len(entries))] {
			names = append(names, e.Name())
		}
		return fmt.Errorf("restore: -data-dir %s is not empty (%s…): restore into a new or empty directory, and move this one aside (give its erasure ledger, if it is there, with --ledger)", dir, strings.Join(names, ", "))
	}
	return nil
}

type foundLedger struct {
	name string
	st   ledger.State
	data []byte
}

// readLedgers reads the backup's ledger, the live one (if it exists) and
// those given; it returns the entries of all, the newest ledger (most
// entries; the live one on a tie) and the backup's count.
func readLedgers(inBackup, live string, given []string) ([]ledger.Entry, foundLedger, int, error) {
	var all []foundLedger
	read := func(name, path string, must bool) error {
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) && !must {
			return nil
		}
		if err != nil {
			return fmt.Errorf("erasure ledger %s: %w", name, err)
		}
		st, err := ledger.Read(strings.NewReader(string(data)))
		if err != nil {
			return fmt.Errorf("erasure ledger %s: %w", name, err)
		}
		all = append(all, foundLedger{name: name, st: st, data: data[:st.Size]})
		return nil
	}
	if err := read("in the backup", inBackup, true); err != nil {
		return nil, foundLedger{}, 0, err
	}
	if err := read(live, live, false); err != nil {
		return nil, foundLedger{}, 0, err
	}
	for _, g := range given {
		if err := read(g, g, true); err != nil {
			return nil, foundLedger{}, 0, err
		}
	}
	newest := all[0]
	for _, l := range all {
		if len(l.st.Entries) >= len(newest.st.Entries) {
			newest = l
		}
	}
	// The newest first, then what only the others hold.
	entries := slices.Clone(newest.st.Entries)
	type key struct{ subject, kind, consent string }
	seen := map[key]bool{}
	for _, e := range entries {
		seen[key{e.Subject, e.Kind, e.Consent}] = true
	}
	for _, l := range all {
		for _, e := range l.st.Entries {
			if k := (key{e.Subject, e.Kind, e.Consent}); !seen[k] {
				seen[k] = true
				entries = append(entries, e)
			}
		}
	}
	return entries, newest, len(all[0].st.Entries), nil
}

// summariseHeads is the digest of the audit heads that a backup's header
// records (backup.AuditHeadsSHA256; the restore drill compares the two).
func summariseHeads(heads []store.AuditHead) string {
	return backup.AuditHeadsSHA256(heads)
}

// ReplayConfig says which store to erase again from which ledgers: for a
// MongoDB deployment restored with mongorestore or a storage snapshot.
type ReplayConfig struct {
	Store         store.Config
	Keys          KeysConfig
	ErasureLedger string   // the live ledger: read, and appended to
	Ledgers       []string // more ledgers to read
	Now           func() time.Time
}

// ReplayErasures re-applies, on a restored store that no server is serving
// yet, every erasure in the ledgers that the store does not show, runs the
// retention sweep and records the replay in the audit trail, as Restore
// does after it has restored an embedded store's backup.
func ReplayErasures(ctx context.Context, cfg ReplayConfig, log *slog.Logger) (*RestoreReport, error) {
	start := time.Now()
	if cfg.ErasureLedger == "" && len(cfg.Ledgers) == 0 {
		return nil, errors.New("replay: give the erasure ledgers to replay (-erasure-ledger, --ledger)")
	}
	keys, err := (&Server{}).loadKeys(KeysConfig{MasterKeys: cfg.Keys.MasterKeys, KeyFile: cfg.Keys.KeyFile, Keeper: cfg.Keys.Keeper})
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	var all []foundLedger
	var entries []ledger.Entry
	seen := map[string]bool{}
	for i, path := range append([]string{cfg.ErasureLedger}, cfg.Ledgers...) {
		if path == "" {
			continue
		}
		st, err := ledger.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) && i == 0 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("replay: %w", err)
		}
		all = append(all, foundLedger{name: path, st: st})
		for _, e := range st.Entries {
			if k := e.Kind + "\x00" + e.Subject + "\x00" + e.Consent; !seen[k] {
				seen[k] = true
				entries = append(entries, e)
			}
		}
	}
	if len(all) == 0 {
		return nil, errors.New("replay: no erasure ledger found")
	}
	st, err := store.Open(ctx, cfg.Store)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	defer st.Close(context.Background())
	var live *ledger.Ledger
	if cfg.ErasureLedger != "" {
		if live, err = ledger.Open(cfg.ErasureLedger); err != nil {
			return nil, fmt.Errorf("replay: %w", err)
		}
		defer live.Close()
	}
	svc := service.New(st, keys, core.Options{Now: cfg.Now, Logger: log, Ledger: live})
	rep := &RestoreReport{LedgerEntries: len(entries)}
	newest := all[0]
	for _, l := range all {
		if len(l.st.Entries) >= len(newest.st.Entries) {
			newest = l
		}
	}
	rep.Ledger = newest.name
	if rep.ReplayReport, err = svc.Backup.ReplayErasures(ctx, entries); err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	rep.Reapplied, rep.AlreadyApplied, rep.NotInBackup = len(rep.ReplayReport.Reapplied), len(rep.ReplayReport.AlreadyApplied), len(rep.ReplayReport.NotInBackup)
	swept, err := retention.NewRetention(svc.Retention).Sweep(ctx, "personaldatad restore --replay-erasures")
	if err != nil {
		return nil, fmt.Errorf("replay: retention sweep: %w", err)
	}
	rep.PurgedBySweep = len(swept.PurgedSubjectIDs)
	if err := svc.Backup.RecordRestore(ctx, time.Time{}, rep.ReplayReport, rep.PurgedBySweep); err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	if err := st.Durable(ctx); err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	rep.Seconds = time.Since(start).Seconds()
	rep.Unknown = "changes other than erasures made after the database's backup are not recorded outside it: they are lost"
	return rep, nil
}
