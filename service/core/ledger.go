package core

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/ledger"
)

// recordErasure appends sub's erasure (kind ledger.KindErasure) or the purge
// of what a hold kept of it (ledger.KindPurge) to the erasure ledger, and
// returns once the entry is on stable storage. Every path that erases
// passes through here before it answers (EraseStored: EraseSubject, the
// rights requests that erase, a controller's bulk erasure; the retention
// sweeper's purges), so that a restore of an older backup can erase again
// everyone whose erasure was acknowledged after it. The entry holds ids, a
// time and a ground, never a personal value. A retried erasure appends
// again: the restore counts each subject once.
func (s *Service) recordErasure(ctx context.Context, kind string, sub *store.Subject) error {
	if s.Ledger == nil {
		return nil
	}
	e := ledger.Entry{Kind: kind, Subject: sub.ID, Controller: sub.Controller, Time: s.Now()}
	if sub.Erasure != nil {
		e.Ground = sub.Erasure.Ground
		if kind == ledger.KindErasure {
			e.Time = time.Unix(0, sub.Erasure.At)
		}
	}
	if _, err := s.Ledger.Append(e); err != nil {
		s.Log.ErrorContext(ctx, "erasure ledger append failed", slog.String("error", err.Error()))
		return status.Error(codes.Unavailable, "the erasure is stored but could not be recorded in the erasure ledger; retry the erasure")
	}
	return nil
}

// RecordErased records sub's erasure (recordErasure).
func (s *Service) RecordErased(ctx context.Context, sub *store.Subject) error {
	return s.recordErasure(ctx, ledger.KindErasure, sub)
}

// RecordPurged records the purge of what a hold kept of sub (recordErasure).
func (s *Service) RecordPurged(ctx context.Context, sub *store.Subject) error {
	return s.recordErasure(ctx, ledger.KindPurge, sub)
}

// RecordWithdrawal records the withdrawal of consent consentID of sub,
// before it is answered, as recordErasure does an erasure.
func (s *Service) RecordWithdrawal(ctx context.Context, sub *store.Subject, consentID string, at int64) error {
	if s.Ledger == nil {
		return nil
	}
	e := ledger.Entry{Kind: ledger.KindConsentWithdrawal, Subject: sub.ID, Controller: sub.Controller, Consent: consentID, Time: time.Unix(0, at)}
	if _, err := s.Ledger.Append(e); err != nil {
		s.Log.ErrorContext(ctx, "erasure ledger append failed", slog.String("error", err.Error()))
		return status.Error(codes.Unavailable, "the withdrawal is stored but could not be recorded in the erasure ledger; retry it")
	}
	return nil
}

// LedgerRebuild is what RebuildLedger wrote: counts only.
type LedgerRebuild struct {
	// Subjects is how many subjects the store holds, erased ones included.
	Subjects int
	// Erasures and Withdrawals are the entries written: one per erased
	// subject, one per withdrawn consent.
	Erasures, Withdrawals int
}

// RebuildLedger makes the erasure ledger complete again for everything the
// store shows, when it finds the ledger empty (missing at start: ledger.Open
// created it) while the store holds subjects: a lost ledger disk, or a
// store older than the ledger. Without it a restore of an older backup
// would miss every erasure made before the loss. Every erased subject's
// tombstone keeps its erasure's time and ground, and every withdrawn
// consent its withdrawal's time: each becomes an entry, in time order, then
// an entry of kind ledger.KindRebuilt, all on stable storage before it
// returns (one sync). A purge is not rebuilt: the restore's retention sweep
// purges what a hold that ended kept. It returns nil when it had nothing
// to do (no ledger, a ledger with entries, or an empty store). It must run
// before the service serves: an erasure answered during the scan could be
// missed by it and come after its entries.
func (s *Service) RebuildLedger(ctx context.Context) (*LedgerRebuild, error) {
	if s.Ledger == nil || s.Ledger.Len() > 0 {
		return nil, nil
	}
	held, err := s.Store.AnySubject(ctx)
	if err != nil || !held {
		return nil, err
	}
	var rb LedgerRebuild
	var entries []ledger.Entry
	err = s.Store.EachSubject(ctx, func(sub *store.Subject) error {
		rb.Subjects++
		if sub.Erasure != nil {
			rb.Erasures++
			entries = append(entries, ledger.Entry{Kind: ledger.KindErasure, Subject: sub.ID, Controller: sub.Controller,
				Ground: sub.Erasure.Ground, Time: time.Unix(0, sub.Erasure.At)})
		}
		for _, c := range sub.Consents {
			if !c.Live() {
				rb.Withdrawals++
				entries = append(entries, ledger.Entry{Kind: ledger.KindConsentWithdrawal, Subject: sub.ID, Controller: sub.Controller,
					Consent: c.ID, Time: time.Unix(0, c.WithdrawnAt)})
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rebuild the erasure ledger: %w", err)
	}
	slices.SortStableFunc(entries, func(a, b ledger.Entry) int { return a.Time.Compare(b.Time) })
	entries = append(entries, ledger.Entry{Kind: ledger.KindRebuilt, Time: s.Now()})
	if _, err := s.Ledger.AppendAll(entries); err != nil {
		return nil, fmt.Errorf("rebuild the erasure ledger: %w", err)
	}
	return &rb, nil
}

// RestoreChain is the audit chain of the restores.
const RestoreChain = "restores"
