package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/backupfile"
	"github.com/example/personaldata/store/durablefile"
	"github.com/example/personaldata/store/ledger"
)

// Backups is the BackupService: online backups of the embedded store, one
// at a time.
type Backups struct {
	pdv1.UnimplementedBackupServiceServer
	*Service
	version string

	running sync.Mutex // held while a backup runs

	mu          sync.Mutex
	lastSuccess *pdv1.BackupSummary
	lastFailure time.Time
	failure     string

	lastSuccessGauge prometheus.Gauge
}

// backupStatusFile keeps the last backup's summary in the data directory,
// so that GetBackupStatus and the metric outlive a restart.
const backupStatusFile = "backup-status.json"

// backupChunk is the size of the file's chunks on the stream.
const backupChunk = 256 << 10

// ledgerEntry is the erasure ledger's name in a backup.
const ledgerEntry = "erasure-ledger.jsonl"

// Backups returns the BackupService; version is the server's, written in
// every backup's header.
func (s *Service) Backups(version string) *Backups {
	b := &Backups{Service: s, version: version,
		lastSuccessGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "personaldata_backup_last_success_timestamp_seconds",
			Help: "When the last backup this server made completed (Unix time); 0 if none is known.",
		})}
	if dir := s.Store.DataDir(); dir != "" {
		// The copies of a backup that a crash cut short.
		if stale, err := filepath.Glob(filepath.Join(dir, ".backup-*")); err == nil {
			for _, d := range stale {
				_ = os.RemoveAll(d)
			}
		}
		if data, err := os.ReadFile(filepath.Join(dir, backupStatusFile)); err == nil {
			var sum pdv1.BackupSummary
			if err := protojson.Unmarshal(data, &sum); err == nil {
				b.lastSuccess = &sum
				b.lastSuccessGauge.Set(float64(sum.GetCreateTime().AsTime().Unix()) + sum.GetDurationSeconds())
			}
		}
	}
	return b
}

// Collectors are the backup's metrics.
func (b *Backups) Collectors() []prometheus.Collector {
	return []prometheus.Collector{b.lastSuccessGauge}
}

// GetBackupStatus says when the last backup was made and what it held.
func (b *Backups) GetBackupStatus(ctx context.Context, _ *pdv1.GetBackupStatusRequest) (*pdv1.GetBackupStatusResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := &pdv1.GetBackupStatusResponse{LastSuccess: b.lastSuccess, LastFailure: b.failure}
	if !b.lastFailure.IsZero() {
		out.LastFailureTime = timestamppb.New(b.lastFailure)
	}
	return out, nil
}

// CreateBackup streams a sealed, consistent backup of the embedded store
// and the erasure ledger (see the proto).
func (b *Backups) CreateBackup(_ *pdv1.CreateBackupRequest, stream grpc.ServerStreamingServer[pdv1.CreateBackupResponse]) error {
	ctx := stream.Context()
	if !b.Store.Embedded() {
		return status.Error(codes.FailedPrecondition, store.ErrNoSnapshot.Error())
	}
	if !b.running.TryLock() {
		return status.Error(codes.Aborted, "a backup is running already; retry when it has finished")
	}
	defer b.running.Unlock()
	sum, err := b.create(ctx, stream)
	if err != nil {
		b.mu.Lock()
		b.lastFailure, b.failure = b.Now(), failureText(err)
		b.mu.Unlock()
		if _, ok := status.FromError(err); ok {
			return err
		}
		return b.Internal(ctx, "backup", err)
	}
	b.mu.Lock()
	b.lastSuccess, b.lastFailure, b.failure = sum, time.Time{}, ""
	b.mu.Unlock()
	b.lastSuccessGauge.Set(float64(b.Now().UnixNano()) / 1e9)
	if data, err := protojson.Marshal(sum); err == nil {
		if err := durablefile.Write(filepath.Join(b.Store.DataDir(), backupStatusFile), data, true); err != nil {
			b.Log.WarnContext(ctx, "backup status not saved", slog.String("error", err.Error()))
		}
	}
	return stream.Send(&pdv1.CreateBackupResponse{Message: &pdv1.CreateBackupResponse_Summary{Summary: sum}})
}

// scratchFailed is a failure of the backup's own reads and writes of the
// store's disk (its copies of the databases beside them, and the ledger's):
// like any failure of the store (a full disk, an I/O error), UNAVAILABLE
// with RetryInfo, not INTERNAL. A canceled or ended call stays what it is.
func scratchFailed(err error) error {
	if _, ok := status.FromError(err); ok || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("backup: %w: %w", store.ErrUnavailable, err)
}

// failureText is what status says of a failure: a few words, no values.
func failureText(err error) string {
	switch {
	case errors.Is(err, context.Canceled), status.Code(err) == codes.Canceled:
		return "canceled by the caller"
	case errors.Is(err, context.DeadlineExceeded), status.Code(err) == codes.DeadlineExceeded:
		return "deadline exceeded"
	case errors.Is(err, store.ErrUnavailable):
		return "store unavailable"
	}
	return "internal error (see the server's log)"
}

// create takes the snapshot, copies it beside the data and streams the
// sealed file.
func (b *Backups) create(ctx context.Context, stream grpc.ServerStreamingServer[pdv1.CreateBackupResponse]) (*pdv1.BackupSummary, error) {
	start := b.Now()
	progress := func(stage string, done, total int64) error {
		return stream.Send(&pdv1.CreateBackupResponse{Message: &pdv1.CreateBackupResponse_Progress{Progress: &pdv1.BackupProgress{Stage: stage, Done: done, Total: total}}})
	}
	if err := progress("snapshot", 0, 1); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(b.Store.DataDir(), ".backup-")
	if err != nil {
		return nil, scratchFailed(err)
	}
	defer os.RemoveAll(tmp)

	var ledgerSize int64
	held := time.Now()
	var barrier time.Duration
	sn, err := b.Store.Snapshot(ctx, func() {
		if b.Ledger != nil {
			ledgerSize = b.Ledger.Size()
		}
		barrier = time.Since(held)
	})
	if err != nil {
		return nil, scratchFailed(err)
	}
	dbs := b.Store.Databases()
	var last time.Time
	for i, db := range dbs {
		err := sn.CopyTo(ctx, db, filepath.Join(tmp, db+".sqlite"), func(done, total int) {
			if time.Since(last) > 200*time.Millisecond || done == total {
				last = time.Now()
				// Database i of len(dbs), in pages.
				_ = progress(fmt.Sprintf("copy %d/%d", i+1, len(dbs)), int64(done), int64(total))
			}
		})
		if err != nil {
			_ = sn.Close()
			return nil, scratchFailed(err)
		}
	}
	if err := sn.Close(); err != nil {
		return nil, scratchFailed(err)
	}
	ledgerPath := filepath.Join(tmp, ledgerEntry)
	lf, err := os.OpenFile(ledgerPath, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		return nil, scratchFailed(err)
	}
	if b.Ledger != nil {
		err = b.Ledger.CopyTo(lf, ledgerSize)
	}
	if cerr := lf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, scratchFailed(err)
	}
	ls, err := ledger.ReadFile(ledgerPath)
	if err != nil {
		return nil, scratchFailed(err)
	}

	counts, err := store.CountSnapshot(ctx, tmp, dbs[0])
	if err != nil {
		return nil, scratchFailed(err)
	}
	h := backupfile.Header{
		Created: start.UTC(), ServerVersion: b.version, Database: dbs[0],
		Counts: backupfile.Counts{Subjects: counts.Subjects, ErasedSubjects: counts.ErasedSubjects, DataKeys: counts.DataKeys,
			AuditEvents: counts.AuditEvents, LedgerEntries: int64(len(ls.Entries))},
		Audit: auditSummary(counts.AuditHeads),
	}
	var sources []backupfile.Source
	var total int64
	for _, name := range append(fileNames(dbs), ledgerEntry) {
		path := filepath.Join(tmp, name)
		fi, err := os.Stat(path)
		if err != nil {
			return nil, scratchFailed(err)
		}
		total += fi.Size()
		sources = append(sources, backupfile.Source{Name: name, Size: fi.Size(), Open: func() (io.ReadCloser, error) { return os.Open(path) }})
	}
	out := &chunkWriter{send: func(p []byte) error {
		return stream.Send(&pdv1.CreateBackupResponse{Message: &pdv1.CreateBackupResponse_Chunk{Chunk: p}})
	}, progress: func(n int64) error { return progress("seal", n, total) }, hash: sha256.New()}
	ring := b.Vault.Keys.Ring()
	if err := backupfile.Write(out, ring, h, sources); err != nil {
		return nil, scratchFailed(err)
	}
	if err := out.flush(); err != nil {
		return nil, err
	}
	if err := progress("seal", out.n, out.n); err != nil {
		return nil, err
	}
	return &pdv1.BackupSummary{
		CreateTime: timestamppb.New(start), ServerVersion: b.version, KeyVersion: ring.Current(),
		Subjects: h.Counts.Subjects, ErasedSubjects: h.Counts.ErasedSubjects, DataKeys: h.Counts.DataKeys,
		AuditEvents: h.Counts.AuditEvents, AuditChains: h.Audit.Chains, LedgerEntries: h.Counts.LedgerEntries,
		Bytes: out.n, Sha256: hex.EncodeToString(out.hash.Sum(nil)),
		BarrierSeconds: barrier.Seconds(), DurationSeconds: b.Now().Sub(start).Seconds(),
	}, nil
}

// fileNames are the database files' names in a backup.
func fileNames(dbs []string) []string {
	out := make([]string, len(dbs))
	for i, db := range dbs {
		out[i] = db + ".sqlite"
	}
	return out
}

// AuditHeadsSHA256 is the digest of the audit chains' heads that a backup's
// header holds (backupfile.Audit.HeadsSHA256).
func AuditHeadsSHA256(heads []store.AuditHead) string { return auditSummary(heads).HeadsSHA256 }

// auditSummary sums the chains' heads up for the header.
func auditSummary(heads []store.AuditHead) backupfile.Audit {
	h := sha256.New()
	var a backupfile.Audit
	for _, head := range heads {
		fmt.Fprintf(h, "%s %d %s\n", head.ID, head.Seq, head.Hash)
		if head.ID == audit.PrincipalsChain {
			a.Principals = backupfile.Head{Seq: head.Seq, Hash: head.Hash}
		}
	}
	a.Chains = int64(len(heads))
	a.HeadsSHA256 = hex.EncodeToString(h.Sum(nil))
	return a
}

// chunkWriter sends what is written in chunks of backupChunk, hashing it.
type chunkWriter struct {
	send     func([]byte) error
	progress func(int64) error
	hash     hash.Hash
	buf      []byte
	n        int64
	last     time.Time
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	w.hash.Write(p)
	w.buf = append(w.buf, p...)
	w.n += int64(len(p))
	for len(w.buf) >= backupChunk {
		if err := w.send(w.buf[:backupChunk:backupChunk]); err != nil {
			return 0, err
		}
		w.buf = append([]byte(nil), w.buf[backupChunk:]...)
		if time.Since(w.last) > 200*time.Millisecond {
			w.last = time.Now()
			if err := w.progress(w.n); err != nil {
				return 0, err
			}
		}
	}
	return len(p), nil
}

func (w *chunkWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	err := w.send(w.buf)
	w.buf = nil
	return err
}
