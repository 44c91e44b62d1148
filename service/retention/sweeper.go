package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"google.golang.org/grpc/codes"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/rules"
	"github.com/example/personaldata/service/subjects"
	"github.com/example/personaldata/store"
)

// The retention sweeper purges what legal holds kept of an erased subject's
// data once no active hold covers it any more, and records the end of holds
// that ran out. Several replicas may run it: a lease in the store lets one
// pass run at a time, so no purge is done (and audited) twice.
//
// It finds its work without reading every subject: each hold has a deadline
// document (store.HoldDeadline) written before the hold itself, and moved to
// the release time when the hold is released early. A pass reads the
// deadlines due, a range scan over their _ids, and settles each one's
// subject.

// Names of the sweeper.
const (
	// sweepLeaseName is the _id of the sweeper's lease.
	sweepLeaseName = "retention-sweeper"
	// sweeperPrincipal is who the audit trail and the record of changes
	// say purged held data.
	sweeperPrincipal = "retention-sweeper"
	// sweepTrigger is the audit event's RPC for a scheduled pass.
	sweepTrigger = "retention-sweeper/scheduled"
)

// sweepLease is how long a pass holds the lease before it must renew it: far
// longer than one subject takes. A replica that dies mid-pass keeps the
// others waiting this long at most. A pass releases the lease when it ends.
const sweepLease = 5 * time.Minute

// sweepPage is how many deadlines one read returns.
const sweepPage = 200

// sweepReplans bounds how often one deadline is planned again when its
// subject changed between the plan and the write; it is tried again in the
// next pass.
const sweepReplans = 3

// errReplan abandons a sweep update whose plan no longer fits the subject.
var errReplan = errors.New("subject changed since the plan")

// errNothingToDo abandons a sweep update that would write nothing.
var errNothingToDo = errors.New("nothing to do")

// SweepResult is what one pass of the sweeper did.
type SweepResult struct {
	// Ran is false when another replica held the lease: nothing was done.
	Ran bool
	// PurgedSubjectIDs are the subjects some of whose held data was purged.
	PurgedSubjectIDs []string
	// HoldsEnded counts the holds found past their end and recorded ended.
	HoldsEnded int64
	// RequestsPurged counts the answered rights requests whose personal
	// values were removed (requestRetention).
	RequestsPurged int64
	// OpsExpired counts the idempotency records of subjects' changes
	// removed once their window was over.
	OpsExpired int64
}

// Run sweeps at once and then every interval until ctx ends. A failed pass
// is logged, and the next one tries again.
func (s *Retention) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		res, err := s.Sweep(ctx, sweepTrigger)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.Log.WarnContext(ctx, "retention sweep failed", slog.String("error", err.Error()))
		case len(res.PurgedSubjectIDs) > 0 || res.HoldsEnded > 0 || res.RequestsPurged > 0 || res.OpsExpired > 0:
			s.Log.InfoContext(ctx, "retention sweep", slog.Int("purged_subjects", len(res.PurgedSubjectIDs)), slog.Int64("holds_ended", res.HoldsEnded),
				slog.Int64("purged_requests", res.RequestsPurged), slog.Int64("expired_ops", res.OpsExpired))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sweep runs one pass if it gets the lease. trigger names what started it
// in the audit events of its purges.
func (s *Retention) Sweep(ctx context.Context, trigger string) (res SweepResult, err error) {
	defer func() { s.observe(res, err) }()
	if !s.passMu.TryLock() {
		return res, nil // a pass is running in this process: it did not run
	}
	defer s.passMu.Unlock()
	lease, err := s.Store.TakeLease(ctx, sweepLeaseName, s.holder, s.Now(), sweepLease)
	if errors.Is(err, store.ErrLeaseHeld) {
		return res, nil
	}
	if err != nil {
		return res, err
	}
	res.Ran = true
	defer func() {
		// Let the next pass, here or on another replica, start at once.
		_ = s.Store.ReleaseLease(context.WithoutCancel(ctx), sweepLeaseName, s.holder) // best effort: it expires anyway
	}()
	now := s.Now()
	after := ""
	for {
		due, err := s.Store.HoldDeadlinesDue(ctx, now.UnixNano(), after, sweepPage)
		if err != nil {
			return res, err
		}
		for _, d := range due {
			if s.Now().Add(sweepLease/2).UnixNano() > lease.Expires {
				lease, err = s.Store.TakeLease(ctx, sweepLeaseName, s.holder, s.Now(), sweepLease)
				if errors.Is(err, store.ErrLeaseHeld) {
					return res, nil // it lapsed and another replica took over
				}
				if err != nil {
					return res, err
				}
			}
			if err := s.settle(ctx, d, now, trigger, &res); err != nil {
				if ctx.Err() != nil || errors.Is(err, errAuditDown) {
					return res, err
				}
				// One subject that fails must not hold up every later
				// deadline: this one stays for the next pass.
				s.Log.WarnContext(ctx, "retention sweep: a subject failed; its deadline stays", slog.String("error", err.Error()))
			}
			after = d.ID
		}
		if len(due) < sweepPage {
			break
		}
	}
	if err := s.purgeAnsweredRequests(ctx, now, trigger, &res); err != nil {
		return res, err
	}
	return res, s.expireOps(ctx, now, &res)
}

// opsPage is how many expired idempotency records one step removes.
const opsPage = 500

// expireOps removes the idempotency records of subjects' changes whose
// window is over (they count as absent already), a page at a time, while
// the pass holds its lease. They hold no personal value, so their removal
// is not audited.
func (s *Retention) expireOps(ctx context.Context, now time.Time, res *SweepResult) error {
	cutoff := now.Add(-core.IdempotencyWindow).UnixNano()
	for {
		n, err := s.Store.DeleteSubjectOpsBefore(ctx, cutoff, opsPage)
		res.OpsExpired += int64(n)
		if err != nil || n < opsPage {
			return err
		}
	}
}

// requestRetentionYears is how long an answered rights request keeps its
// personal values (the claimed identity, the requester's words, the
// addresses, the explanations): three years, to show how it was handled
// (Art. 5(2)) should the requester complain to IMY or bring a claim. Then
// they are shredded with the request's data key; the record of its
// handling (kind, dates, decision and reason, steps, by whom) stays, with
// no personal value.
const requestRetentionYears = 3

// purgeAnsweredRequests removes the personal values of the requests
// answered more than requestRetentionYears ago: first from the request
// (so that it never refers to a key that is gone), then the key.
func (s *Retention) purgeAnsweredRequests(ctx context.Context, now time.Time, trigger string, res *SweepResult) error {
	cutoff := now.AddDate(-requestRetentionYears, 0, 0).UnixNano()
	for {
		page, err := s.Store.AnsweredRightsRequestsBefore(ctx, cutoff, "", sweepPage)
		if err != nil {
			return err
		}
		for _, r := range page {
			chain := audit.TenantChain(r.Controller)
			if r.SubjectID != "" {
				chain = audit.SubjectChain(r.SubjectID)
			}
			if _, err := s.AuditLog.Append(ctx, audit.Event{
				Chain: chain, Time: now, Principal: sweeperPrincipal, Tenant: r.Controller, RPC: trigger,
				SubjectID: r.SubjectID, Fields: []string{"rights_request", "data_key"}, Outcome: codes.OK.String(),
			}); err != nil {
				return fmt.Errorf("%w: %w", errAuditDown, err)
			}
			// The marks of its sent messages go first: once its values are
			// gone the sweep does not come back to the request.
			if err := s.Store.ForgetSentOutboxMessages(ctx, r.ID, len(r.Steps)); err != nil {
				return err
			}
			_, err := s.Store.UpdateRightsRequest(ctx, r.ID, func(d *store.RightsRequest) error {
				d.Sealed = nil
				d.Steps = append(d.Steps, store.RequestStep{Step: "personal_data_removed", At: now.UnixNano(), By: sweeperPrincipal})
				d.Queued = len(d.Steps)
				return nil
			})
			if err != nil {
				return err
			}
			if err := s.Vault.Shred(ctx, r.DataKeyID()); err != nil {
				return err
			}
			res.RequestsPurged++
		}
		if len(page) < sweepPage {
			return nil
		}
	}
}

// errAuditDown stops a sweep: no purge goes unrecorded.
var errAuditDown = errors.New("the audit trail cannot be written")

// settle does what a due deadline asks for, then removes the deadline.
func (s *Retention) settle(ctx context.Context, d *store.HoldDeadline, now time.Time, trigger string, res *SweepResult) error {
	for range sweepReplans {
		done, err := s.settleSubject(ctx, d.SubjectID, now, trigger, res)
		if err != nil {
			return fmt.Errorf("retention sweep of a subject: %w", err)
		}
		if done {
			return s.Store.DeleteHoldDeadline(ctx, d.ID)
		}
	}
	return nil // the deadline stays for the next pass
}

// settleSubject records the end of the subject's holds that are past their
// end, and purges what its erasure kept that no active hold covers any more.
// It reports false when the subject changed under the plan.
func (s *Retention) settleSubject(ctx context.Context, id string, now time.Time, trigger string, res *SweepResult) (bool, error) {
	sub, err := s.Vault.GetSubject(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	purge := purgeable(sub, now)
	if len(purge) > 0 {
		// On the trail before the data goes: no trail, no purge.
		fields := make([]string, 0, len(purge)+1)
		for _, c := range purge {
			fields = append(fields, rules.CategoryLabel(c))
		}
		if len(purge) == len(sub.Kept) {
			fields = append(fields, "data_key") // nothing left: crypto-shredded
		}
		if _, err := s.AuditLog.Append(ctx, audit.Event{
			Chain: audit.SubjectChain(id), Time: now, Principal: sweeperPrincipal, Tenant: sub.Controller,
			RPC: trigger, SubjectID: id, Fields: fields, Outcome: codes.OK.String(),
		}); err != nil {
			return false, fmt.Errorf("%w: %w", errAuditDown, err)
		}
	}
	var ended int64
	updated, err := s.Vault.UpdateSubject(ctx, id, func(sub *store.Subject) error {
		if !slices.Equal(purgeable(sub, now), purge) {
			return errReplan
		}
		ended = 0
		for i := range sub.Holds {
			if h := &sub.Holds[i]; h.EndedAt == 0 && h.Until <= now.UnixNano() {
				h.EndedAt = now.UnixNano()
				ended++
			}
		}
		if len(purge) == 0 && ended == 0 {
			return errNothingToDo
		}
		if len(purge) > 0 {
			purgeKept(sub, purge, now)
		}
		sub.UpdatedAt = now.UnixNano()
		return nil
	})
	switch {
	case errors.Is(err, errReplan):
		return false, nil
	case errors.Is(err, errNothingToDo):
		updated = sub
	case errors.Is(err, store.ErrNotFound):
		return true, nil
	case err != nil:
		return false, err
	}
	res.HoldsEnded += ended
	if len(purge) > 0 {
		if err := s.RecordPurged(ctx, updated); err != nil {
			return false, err
		}
	}
	// Recipients of earlier disclosures learn of it (Art. 19); until they
	// have, the deadline stays and the next pass tries again.
	if updated, err = s.SettleChange(ctx, updated); err != nil {
		return false, err
	}
	if len(purge) > 0 && !slices.Contains(res.PurgedSubjectIDs, id) {
		res.PurgedSubjectIDs = append(res.PurgedSubjectIDs, id)
	}
	if updated.Erasure != nil && updated.CleanupPending {
		// Remove the purged history and, with nothing left, the data key;
		// this also finishes an erasure that was interrupted.
		if _, err := s.subjects.FinishErasure(ctx, updated); err != nil {
			return false, err
		}
	}
	return true, nil
}

// purgeable lists the categories an erased subject's erasure kept that no
// hold active at now covers any more.
func purgeable(sub *store.Subject, now time.Time) []pdv1.DataCategory {
	if sub.Erasure == nil {
		return nil
	}
	var out []pdv1.DataCategory
	for _, c := range rules.DataCategories {
		if slices.Contains(sub.Kept, c.String()) && !subjects.Covered(sub, c, now.UnixNano()) {
			out = append(out, c)
		}
	}
	return out
}

// purgeKept removes the kept categories purge from an erased subject and
// records it in the record of changes. The history entries and the data key
// go in FinishErasure, which CleanupPending calls for.
func purgeKept(sub *store.Subject, purge []pdv1.DataCategory, now time.Time) {
	var fields []string
	for _, c := range purge {
		for _, f := range rules.PersonFields {
			if rules.FieldCategories[f] == c && sub.Person != nil && !subjects.FieldEmpty(sub.Person, f) {
				fields = append(fields, f)
			}
		}
		if c == pdv1.DataCategory_DATA_CATEGORY_HISTORY {
			fields = append(fields, "history")
		}
		sub.Kept = slices.DeleteFunc(sub.Kept, func(k string) bool { return k == c.String() })
	}
	if len(sub.Kept) == 0 {
		sub.Kept = nil
	}
	sub.Person = subjects.KeepFields(sub.Person, sub.Kept)
	sub.CleanupPending = true
	sub.Changes = append(sub.Changes, store.Change{
		Kind: pdv1.ChangeKind_CHANGE_KIND_ERASED.String(), Fields: fields, At: now.UnixNano(),
		Reference: "retention holds ended", PerformedBy: sweeperPrincipal,
		Version: sub.Version + 1, ErasureGround: sub.Erasure.Ground,
	})
}
