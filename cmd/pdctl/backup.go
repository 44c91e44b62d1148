package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store/durablefile"
)

func (a *app) backupCommand() *cobra.Command {
	c := group("backup", "Take backups of the embedded store while it serves, and see the last one",
		a.backupCreateCommand(), a.backupStatusCommand())
	c.Long = `Back the embedded store up while it serves: one consistent snapshot of the
data, the audit trail and the data keys, with the erasure ledger, sealed under
the master key in force (the key file is not in it: keep it apart).

  pdctl backup create --out backups/pd-2026-12-07.pdbackup
  pdctl backup status

Restore on a stopped server with: personaldatad restore --from FILE
(it re-applies every erasure in the erasure ledger made after the backup).`
	return c
}

func (a *app) backupCreateCommand() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "create --out FILE",
		Short: "Write a sealed backup of the running server to FILE, with progress",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("--out: give the file to write the backup to")
			}
			if _, err := os.Lstat(out); err == nil {
				return fmt.Errorf("--out: %s exists; give a new file", out)
			}
			return a.call(cmd, 24*time.Hour, func(ctx context.Context, cc grpc.ClientConnInterface) error {
				return a.backupTo(ctx, cc, out)
			})
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "file to write the backup to (must not exist)")
	return cmd
}

// backupTo streams a backup into a temporary file beside out and moves it
// into place once the server's summary came: a cut backup leaves no file.
func (a *app) backupTo(ctx context.Context, cc grpc.ClientConnInterface, out string) (err error) {
	stream, err := pdv1.NewBackupServiceClient(cc).CreateBackup(ctx, &pdv1.CreateBackupRequest{})
	if err != nil {
		return err
	}
	dir := filepath.Dir(out)
	f, err := os.CreateTemp(dir, "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if f != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	for {
		m, err := stream.Recv()
		if err != nil {
			return fmt.Errorf("backup: %w (no file written)", err)
		}
		switch {
		case m.GetChunk() != nil:
			if _, err := f.Write(m.GetChunk()); err != nil {
				return err
			}
		case m.GetProgress() != nil:
			p := m.GetProgress()
			pct := 100.0
			if p.GetTotal() > 0 {
				pct = 100 * float64(p.GetDone()) / float64(p.GetTotal())
			}
			fmt.Fprintf(a.errOut, "%s: %.0f%%\n", p.GetStage(), pct)
		case m.GetSummary() != nil:
			s := m.GetSummary()
			if err := f.Sync(); err != nil {
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			name := f.Name()
			f = nil
			if err := os.Link(name, out); err != nil {
				_ = os.Remove(name)
				return fmt.Errorf("--out: %w", err)
			}
			_ = os.Remove(name)
			if err := durablefile.SyncDir(dir); err != nil {
				return err
			}
			_, err := fmt.Fprintf(a.out, "backup written to %s: %d bytes, sha256 %s\n%s\n", out, s.GetBytes(), s.GetSha256(), summaryText(s))
			return err
		}
	}
}

// summaryText is what a backup holds, in a few lines.
func summaryText(s *pdv1.BackupSummary) string {
	return fmt.Sprintf("taken %s by server %s, sealed under master key version %d\n"+
		"subjects %d (erased %d), data keys %d, audit events %d in %d chains, erasure ledger entries %d\n"+
		"writers held %.3fs, took %.1fs",
		s.GetCreateTime().AsTime().Format(time.RFC3339), s.GetServerVersion(), s.GetKeyVersion(),
		s.GetSubjects(), s.GetErasedSubjects(), s.GetDataKeys(), s.GetAuditEvents(), s.GetAuditChains(), s.GetLedgerEntries(),
		s.GetBarrierSeconds(), s.GetDurationSeconds())
}

func (a *app) backupStatusCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Say when the server last made a backup and what it held (counts only)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.call(cmd, 30*time.Second, func(ctx context.Context, cc grpc.ClientConnInterface) error {
				st, err := pdv1.NewBackupServiceClient(cc).GetBackupStatus(ctx, &pdv1.GetBackupStatusRequest{})
				if err != nil {
					return err
				}
				if st.GetLastSuccess() == nil {
					fmt.Fprintln(a.out, "no backup known")
				} else {
					fmt.Fprintf(a.out, "last backup: %s\n", summaryText(st.GetLastSuccess()))
				}
				if st.GetLastFailureTime() != nil {
					fmt.Fprintf(a.out, "last failure: %s: %s\n", st.GetLastFailureTime().AsTime().Format(time.RFC3339), st.GetLastFailure())
				}
				return nil
			})
		},
	}
}
