package core

import (
	"context"
	"errors"
	"log/slog"
	"strconv"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store"
)

// withdrawObjectedConsents withdraws, in the record, the consents to a
// purpose the subject objected to: an objection to direct marketing is a
// withdrawal of that consent too. RequireConsent refuses the purpose on the
// objection alone, so this only keeps the record of consents true; it may
// run late (after an interruption) and more than once.
func (s *Service) withdrawObjectedConsents(ctx context.Context, sub *store.Subject) (*store.Subject, error) {
	if !objectedConsentsLive(sub) {
		return sub, nil
	}
	errNone := errors.New("nothing to withdraw")
	updated, err := s.Vault.UpdateSubject(ctx, sub.ID, func(sub *store.Subject) error {
		if !objectedConsentsLive(sub) {
			return errNone
		}
		for _, rule := range consentRules {
			ch := objection(sub, rule.objection)
			if ch == nil {
				continue
			}
			for i := range sub.Consents {
				if c := &sub.Consents[i]; c.Live() && c.Purpose == rule.consent.String() {
					c.WithdrawnAt, c.WithdrawChannel, c.WithdrawReference, c.WithdrawnBy = ch.At, ch.Channel, ch.Reference, ch.PerformedBy
				}
			}
		}
		return nil
	})
	if errors.Is(err, errNone) {
		return sub, nil
	}
	return updated, err
}

// objectedConsentsLive reports whether a consent is still live for a
// purpose the subject objected to.
func objectedConsentsLive(sub *store.Subject) bool {
	for _, rule := range consentRules {
		if objection(sub, rule.objection) == nil {
			continue
		}
		for i := range sub.Consents {
			if c := &sub.Consents[i]; c.Live() && c.Purpose == rule.consent.String() {
				return true
			}
		}
	}
	return false
}

// noticeKinds are the changes recipients are told of, and how.
var noticeKinds = map[string]pdv1.NotificationKind{
	pdv1.ChangeKind_CHANGE_KIND_RECTIFIED.String():  pdv1.NotificationKind_NOTIFICATION_KIND_RECTIFIED,
	pdv1.ChangeKind_CHANGE_KIND_RESTRICTED.String(): pdv1.NotificationKind_NOTIFICATION_KIND_RESTRICTED,
	pdv1.ChangeKind_CHANGE_KIND_ERASED.String():     pdv1.NotificationKind_NOTIFICATION_KIND_ERASED,
}

// afterChange finishes what follows from a change of a subject beyond its
// own document: the recipients' notifications, and withdrawing in the
// record the consents the subject objected to. It runs after each change
// and on every read of a subject, does nothing when nothing is pending, and
// is best effort: what fails is done by a later call. It returns the
// subject as it is now.
func (s *Service) afterChange(ctx context.Context, sub *store.Subject) *store.Subject {
	sub, _ = s.SettleChange(ctx, sub)
	return sub
}

// SettleChange is afterChange for the request that made the change: it
// says when a notification could not be queued, so that the request fails
// (its retry, or any later read, queues it) instead of reporting success.
func (s *Service) SettleChange(ctx context.Context, sub *store.Subject) (*store.Subject, error) {
	if sub == nil {
		return nil, nil
	}
	updated, err := s.withdrawObjectedConsents(ctx, sub)
	if err == nil {
		sub = updated
	} else if ctx.Err() == nil {
		s.Log.WarnContext(ctx, "consents not withdrawn yet", slog.String("subject_id", sub.ID), slog.String("error", err.Error()))
	}
	if err := s.queueNotices(ctx, sub); err != nil {
		if ctx.Err() == nil {
			s.Log.WarnContext(ctx, "recipient notifications not queued yet", slog.String("subject_id", sub.ID), slog.String("error", err.Error()))
		}
		return sub, err
	}
	return sub, nil
}

// queueNotices queues the notifications of sub's changes that are news to
// recipients of earlier disclosures, then marks them queued.
func (s *Service) queueNotices(ctx context.Context, sub *store.Subject) error {
	if len(sub.Disclosures) == 0 {
		return nil
	}
	var upto int64
	for _, ch := range sub.Changes {
		kind, ok := noticeKinds[ch.Kind]
		if !ok || ch.Version <= sub.NotifiedVersion {
			continue
		}
		for _, r := range recipientsBefore(sub, ch.Version) {
			n := &store.Notification{
				Recipient: r, Key: sub.ID + "." + strconv.FormatInt(ch.Version, 10),
				SubjectID: sub.ID, Controller: sub.Controller, Kind: kind.String(), CreatedAt: ch.At,
			}
			if kind == pdv1.NotificationKind_NOTIFICATION_KIND_RECTIFIED {
				n.Fields = ch.Fields
			}
			if _, err := s.Store.EnqueueNotification(ctx, n); err != nil {
				return err
			}
			upto = ch.Version
		}
	}
	if upto == 0 {
		return nil
	}
	if err := s.Store.MarkSubjectNotified(ctx, sub.ID, upto); err != nil {
		return err
	}
	sub.NotifiedVersion = max(sub.NotifiedVersion, upto)
	return nil
}

// recipientsBefore lists, once each and in the order of their first
// disclosure, the recipients of sub's disclosures recorded before version.
func recipientsBefore(sub *store.Subject, version int64) []string {
	var out []string
	seen := map[string]bool{}
	for _, d := range sub.Disclosures {
		if d.Version < version && !seen[d.Recipient] {
			seen[d.Recipient] = true
			out = append(out, d.Recipient)
		}
	}
	return out
}
