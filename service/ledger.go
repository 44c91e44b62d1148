package service

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/ledger"
)

// recordErasure appends sub's erasure (kind ledger.KindErasure) or the purge
// of what a hold kept of it (ledger.KindPurge) to the erasure ledger, and
// returns once the entry is on stable storage. Every path that erases
// passes through here before it answers (eraseStored: EraseSubject, the
// rights requests that erase, a controller's bulk erasure; the retention
// sweeper's purges), so that a restore of an older backup can erase again
// everyone whose erasure was acknowledged after it. The entry holds ids, a
// time and a ground, never a personal value. A retried erasure appends
// again: the restore counts each subject once.
func (s *Service) recordErasure(ctx context.Context, kind string, sub *store.Subject) error {
	if s.ledger == nil {
		return nil
	}
	e := ledger.Entry{Kind: kind, Subject: sub.ID, Controller: sub.Controller, Time: s.now()}
	if sub.Erasure != nil {
		e.Ground = sub.Erasure.Ground
		if kind == ledger.KindErasure {
			e.Time = time.Unix(0, sub.Erasure.At)
		}
	}
	if _, err := s.ledger.Append(e); err != nil {
		s.log.ErrorContext(ctx, "erasure ledger append failed", slog.String("error", err.Error()))
		return status.Error(codes.Unavailable, "the erasure is stored but could not be recorded in the erasure ledger; retry the erasure")
	}
	return nil
}

// recordErased records sub's erasure (recordErasure).
func (s *Service) recordErased(ctx context.Context, sub *store.Subject) error {
	return s.recordErasure(ctx, ledger.KindErasure, sub)
}

// recordPurged records the purge of what a hold kept of sub (recordErasure).
func (s *Service) recordPurged(ctx context.Context, sub *store.Subject) error {
	return s.recordErasure(ctx, ledger.KindPurge, sub)
}

// recordWithdrawal records the withdrawal of consent consentID of sub,
// before it is answered, as recordErasure does an erasure.
func (s *Service) recordWithdrawal(ctx context.Context, sub *store.Subject, consentID string, at int64) error {
	if s.ledger == nil {
		return nil
	}
	e := ledger.Entry{Kind: ledger.KindConsentWithdrawal, Subject: sub.ID, Controller: sub.Controller, Consent: consentID, Time: time.Unix(0, at)}
	if _, err := s.ledger.Append(e); err != nil {
		s.log.ErrorContext(ctx, "erasure ledger append failed", slog.String("error", err.Error()))
		return status.Error(codes.Unavailable, "the withdrawal is stored but could not be recorded in the erasure ledger; retry it")
	}
	return nil
}

// Ledger is the erasure ledger the service appends to; nil when it keeps
// none.
func (s *Service) Ledger() *ledger.Ledger { return s.ledger }
