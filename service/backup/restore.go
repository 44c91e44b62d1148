package backup

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/rules"
	"github.com/example/personaldata/service/validate"
	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/ledger"
)

// RestorePrincipal names a restore in the audit events it appends.
const RestorePrincipal = "restore"

// ReplayReport is what ReplayErasures did: counts and subject ids only.
type ReplayReport struct {
	// Reapplied are the subjects the restored store held unerased, erased
	// now.
	Reapplied []string `json:"reapplied_subject_ids"`
	// AlreadyApplied are the subjects the restored store shows erased.
	AlreadyApplied []string `json:"already_applied_subject_ids"`
	// NotInBackup are the subjects the restored store does not hold
	// (created after the snapshot): only a data key a snapshot may have
	// caught before its subject is destroyed.
	NotInBackup []string `json:"not_in_backup_subject_ids"`
	// The consent withdrawals, as "<subject id>/<consent id>": withdrawn
	// again now; withdrawn (or erased) in the backup already; and those
	// whose consent the backup does not hold (recorded after it).
	WithdrawalsReapplied      []string `json:"consent_withdrawals_reapplied"`
	WithdrawalsAlreadyApplied []string `json:"consent_withdrawals_already_applied"`
	WithdrawalsNotInBackup    []string `json:"consent_withdrawals_not_in_backup"`
}

// ReplayErasures erases again, through the service's own erasure
// (EraseStored: the tombstone, the lookup keys and history removed, the
// data key destroyed), every subject that an erasure entry of entries names
// and the store does not show erased; each subject once, in ledger order,
// with the ground and time its entry records. Each is on the audit trail,
// under RestorePrincipal, before it is changed. Then it withdraws again each
// consent withdrawal of entries that the store does not show. Purge entries
// are left to the retention sweep the restore runs next, which purges
// whatever holds ended by then.
func (s *Service) ReplayErasures(ctx context.Context, entries []ledger.Entry) (ReplayReport, error) {
	var rep ReplayReport
	if err := s.replayErasures(ctx, entries, &rep); err != nil {
		return rep, err
	}
	// After the erasures: an erased subject has no consent to withdraw.
	return rep, s.replayWithdrawals(ctx, entries, &rep)
}

// replayErasures is ReplayErasures' first pass.
func (s *Service) replayErasures(ctx context.Context, entries []ledger.Entry, rep *ReplayReport) error {
	seen := map[string]bool{}
	for _, e := range entries {
		if e.Kind != ledger.KindErasure || seen[e.Subject] {
			continue
		}
		seen[e.Subject] = true
		sub, err := s.Store.GetSubject(ctx, e.Subject)
		switch {
		case errors.Is(err, store.ErrNotFound):
			// A data key inserted before its subject may be in the snapshot.
			if err := s.Vault.Shred(ctx, e.Subject); err != nil {
				return fmt.Errorf("replay: %w", err)
			}
			rep.NotInBackup = append(rep.NotInBackup, e.Subject)
			continue
		case err != nil:
			return fmt.Errorf("replay: %w", err)
		}
		already := sub.Erasure != nil
		if already && !sub.CleanupPending {
			rep.AlreadyApplied = append(rep.AlreadyApplied, e.Subject)
			continue
		}
		// On the trail before the change; no trail, no erasure.
		if _, err := s.AuditLog.Append(ctx, audit.Event{
			Chain: audit.SubjectChain(e.Subject), Time: s.Now(), Principal: RestorePrincipal, Tenant: sub.Controller,
			RPC: "personaldatad restore: erasure ledger seq " + strconv.FormatInt(e.Seq, 10), SubjectID: e.Subject,
			Fields: append([]string{"erasure"}, rules.ErasedCategories...), Outcome: codes.OK.String(),
		}); err != nil {
			return fmt.Errorf("replay: audit: %w", err)
		}
		at := e.Time
		if at.IsZero() {
			at = s.Now()
		}
		prov := validate.Provenance{Reference: "erasure ledger seq " + strconv.FormatInt(e.Seq, 10), PerformedBy: RestorePrincipal}
		op := store.Op{Key: core.OpKey("restore:" + strconv.FormatInt(e.Seq, 10))}
		if _, err := s.subjects.EraseStored(ctx, e.Subject, e.Ground, prov, op, at); err != nil {
			return fmt.Errorf("replay: erase a subject again (ledger seq %d): %w", e.Seq, err)
		}
		if already {
			rep.AlreadyApplied = append(rep.AlreadyApplied, e.Subject)
		} else {
			rep.Reapplied = append(rep.Reapplied, e.Subject)
		}
	}
	return nil
}

// replayWithdrawals is ReplayErasures' second pass: each consent withdrawal
// of the ledgers that the store does not show is made again, on the audit
// trail first, with the time the ledger records.
func (s *Service) replayWithdrawals(ctx context.Context, entries []ledger.Entry, rep *ReplayReport) error {
	seen := map[string]bool{}
	for _, e := range entries {
		name := e.Subject + "/" + e.Consent
		if e.Kind != ledger.KindConsentWithdrawal || seen[name] {
			continue
		}
		seen[name] = true
		sub, err := s.Store.GetSubject(ctx, e.Subject)
		if errors.Is(err, store.ErrNotFound) {
			rep.WithdrawalsNotInBackup = append(rep.WithdrawalsNotInBackup, name)
			continue
		}
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		c := core.FindConsent(sub, e.Consent)
		switch {
		case c == nil:
			rep.WithdrawalsNotInBackup = append(rep.WithdrawalsNotInBackup, name)
			continue
		case sub.Erasure != nil || !c.Live():
			rep.WithdrawalsAlreadyApplied = append(rep.WithdrawalsAlreadyApplied, name)
			continue
		}
		if _, err := s.AuditLog.Append(ctx, audit.Event{
			Chain: audit.SubjectChain(e.Subject), Time: s.Now(), Principal: RestorePrincipal, Tenant: sub.Controller,
			RPC: "personaldatad restore: erasure ledger seq " + strconv.FormatInt(e.Seq, 10), SubjectID: e.Subject,
			Fields: []string{"consents"}, Outcome: codes.OK.String(),
		}); err != nil {
			return fmt.Errorf("replay: audit: %w", err)
		}
		at := e.Time.UnixNano()
		_, err = s.Vault.UpdateSubject(ctx, e.Subject, func(sub *store.Subject) error {
			if c := core.FindConsent(sub, e.Consent); c != nil && c.Live() {
				c.WithdrawnAt, c.WithdrawReference, c.WithdrawnBy = at, "erasure ledger seq "+strconv.FormatInt(e.Seq, 10), RestorePrincipal
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("replay: withdraw a consent again (ledger seq %d): %w", e.Seq, err)
		}
		rep.WithdrawalsReapplied = append(rep.WithdrawalsReapplied, name)
	}
	return nil
}

// RecordRestore appends the restore to the audit trail (chain RestoreChain):
// which backup, and what the replay did, in counts.
func (s *Service) RecordRestore(ctx context.Context, backupCreated time.Time, rep ReplayReport, purged int) error {
	_, err := s.AuditLog.Append(ctx, audit.Event{
		Chain: core.RestoreChain, Time: s.Now(), Principal: RestorePrincipal, RPC: "personaldatad restore",
		Fields: []string{
			"backup_created:" + backupCreated.UTC().Format(time.RFC3339Nano),
			"erasures_reapplied:" + strconv.Itoa(len(rep.Reapplied)),
			"erasures_already_applied:" + strconv.Itoa(len(rep.AlreadyApplied)),
			"erasures_not_in_backup:" + strconv.Itoa(len(rep.NotInBackup)),
			"consent_withdrawals_reapplied:" + strconv.Itoa(len(rep.WithdrawalsReapplied)),
			"purged_by_sweep:" + strconv.Itoa(purged),
		},
		Outcome: codes.OK.String(),
	})
	if err != nil {
		return fmt.Errorf("record the restore: %w", err)
	}
	return nil
}
