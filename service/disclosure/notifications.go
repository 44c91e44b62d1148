package disclosure

import (
	"context"
	"errors"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/auth"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/fault"
	"github.com/example/personaldata/service/validate"
	"github.com/example/personaldata/store"
)

// Recipients are told (Art. 19) when a subject whose data went to them is
// rectified, restricted or erased. What to tell follows from the subject's
// own document, which records both the changes (sub.Changes, written in the
// same atomic update as the change itself) and the disclosures: every change
// of those kinds with a version above sub.NotifiedVersion is news to each
// recipient of a disclosure recorded before it (a lower version). Queueing
// is therefore crash-safe without a transaction: the handler that made the
// change queues at once (core.Service.SettleChange), and should it stop before that, the
// next call that reads the subject, or a retry, does it. Each notification
// has a key (subject and change version), and the store queues a key once
// per recipient, so doing it again never queues it twice.

// Limits of the recipients' queues.
const (
	defaultNotificationPageSize = 50
	// maxNotificationReads bounds the notifications one listing reads
	// (acknowledged ones and other tenants' are read and skipped).
	maxNotificationReads = 1000
)

// queueReaders are the kinds of principal that may read and acknowledge a
// recipient's queue: the domain-registration integration, which passes the
// notifications on to the registries and registrars, and operators. A
// reader sees only notifications about subjects of controllers it acts for.
var queueReaders = map[string]bool{
	pdv1.PrincipalKind_PRINCIPAL_KIND_DOMAIN_REGISTRATION.String(): true,
	pdv1.PrincipalKind_PRINCIPAL_KIND_OPERATOR.String():            true,
}

// notificationReaderDenied refuses a kind of principal that does not read
// recipients' notifications.
func notificationReaderDenied() error {
	return fault.PermissionDenied(fault.ReasonKindNotPermitted, nil, "recipients' notifications are read by the domain-registration integration and operators")
}

func (s *Disclosures) queueReader(ctx context.Context) (*auth.Caller, error) {
	c, err := s.Caller(ctx)
	if err != nil {
		return nil, err
	}
	if !queueReaders[c.Principal.Kind] {
		return nil, notificationReaderDenied()
	}
	return c, nil
}

// pending reads recipient's notifications from seq from on (at the earliest
// after its head's AckedUpto) and returns up to limit that are not
// acknowledged and concern controllers c acts for, the seq to go on from,
// and whether more may follow.
func (s *Disclosures) pending(ctx context.Context, c *auth.Caller, recipient string, from int64, limit int) ([]*store.Notification, int64, bool, error) {
	head, err := s.Store.GetNotificationHead(ctx, recipient)
	if err != nil {
		return nil, 0, false, err
	}
	pos := max(from, head.AckedUpto+1)
	var out []*store.Notification
	for reads := 0; reads < maxNotificationReads; {
		batch, err := s.Store.NotificationsFrom(ctx, recipient, pos, limit)
		if err != nil {
			return nil, 0, false, err
		}
		for _, n := range batch {
			reads++
			pos = n.Seq + 1
			if !n.Acked && c.ActsFor(n.Controller) {
				out = append(out, n)
				if len(out) == limit {
					return out, pos, true, nil
				}
			}
		}
		if len(batch) < limit {
			return out, pos, false, nil
		}
	}
	return out, pos, true, nil
}

// ListRecipientNotifications lists a recipient's unacknowledged
// notifications, oldest first.
func (s *Disclosures) ListRecipientNotifications(ctx context.Context, req *pdv1.ListRecipientNotificationsRequest) (*pdv1.ListRecipientNotificationsResponse, error) {
	var v validate.Violations
	recipient := validRecipient(&v, "recipient", req.GetRecipient())
	size := v.PageSize(req.GetPageSize(), defaultNotificationPageSize)
	var from int64
	if len(v) == 0 {
		if pos := v.AuditPageToken(req.GetPageToken(), "n", recipient); pos != "" {
			var err error
			if from, err = strconv.ParseInt(pos, 10, 64); err != nil || from < 1 {
				v.Add("page_token", "is not a token from this listing")
			}
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	c, err := s.queueReader(ctx)
	if err != nil {
		return nil, err
	}
	ns, next, more, err := s.pending(ctx, c, recipient, from, size)
	if err != nil {
		return nil, s.Internal(ctx, "list notifications", err)
	}
	out := &pdv1.ListRecipientNotificationsResponse{}
	for _, n := range ns {
		core.Note(ctx, noticeTouch(n))
		out.Notifications = append(out.Notifications, notificationToProto(n))
	}
	if more {
		out.NextPageToken = validate.AuditPageToken("n", recipient, strconv.FormatInt(next, 10))
	}
	return out, nil
}

// StreamRecipientNotifications sends a recipient's unacknowledged
// notifications, then new ones as they are queued (looked for every
// NotificationPollInterval, so those queued by other replicas come too),
// until the caller ends the stream. Each is sent once per stream; one not
// acknowledged is sent again by the next stream or listing.
func (s *Disclosures) StreamRecipientNotifications(req *pdv1.StreamRecipientNotificationsRequest, stream grpc.ServerStreamingServer[pdv1.StreamRecipientNotificationsResponse]) error {
	ctx := stream.Context()
	var v validate.Violations
	recipient := validRecipient(&v, "recipient", req.GetRecipient())
	if err := v.Err(); err != nil {
		return err
	}
	c, err := s.queueReader(ctx)
	if err != nil {
		return err
	}
	tick := time.NewTicker(core.NotificationPollInterval)
	defer tick.Stop()
	var next int64
	for {
		ns, pos, more, err := s.pending(ctx, c, recipient, next, validate.MaxPageSize)
		if err != nil {
			return s.Internal(ctx, "stream notifications", err)
		}
		for _, n := range ns {
			// On the trail before it leaves (Send writes it); no trail,
			// nothing sent.
			audit.Note(ctx, noticeTouch(n))
			if err := stream.Send(&pdv1.StreamRecipientNotificationsResponse{Notification: notificationToProto(n)}); err != nil {
				return err
			}
			audit.Sent(ctx)
		}
		next = pos
		if more {
			continue
		}
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-s.ShuttingDown():
			return fault.Unavailable(fault.ReasonShuttingDown, "the server is shutting down: reconnect to go on from the first unacknowledged notification")
		case <-tick.C:
		}
		// A stream outlives its authentication: read the principal again,
		// so a revocation or a tenant taken away ends it.
		if c, err = s.recheck(ctx, c); err != nil {
			return err
		}
	}
}

// recheck reads a streaming caller's principal again.
func (s *Disclosures) recheck(ctx context.Context, c *auth.Caller) (*auth.Caller, error) {
	p, err := s.Store.GetPrincipal(ctx, c.ID())
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && p.Revoked):
		return nil, status.Error(codes.Unauthenticated, "the principal was revoked")
	case err != nil:
		return nil, s.Internal(ctx, "stream notifications", err)
	}
	fresh := &auth.Caller{Principal: p, Method: c.Method}
	if !queueReaders[p.Kind] {
		return nil, notificationReaderDenied()
	}
	return fresh, nil
}

// AcknowledgeNotification marks a notification delivered; it is not sent
// again. Acknowledging twice is harmless.
func (s *Disclosures) AcknowledgeNotification(ctx context.Context, req *pdv1.AcknowledgeNotificationRequest) (*pdv1.AcknowledgeNotificationResponse, error) {
	var v validate.Violations
	recipient := validRecipient(&v, "recipient", req.GetRecipient())
	id := validSeqID(&v, "notification_id", req.GetNotificationId())
	if err := v.Err(); err != nil {
		return nil, err
	}
	seq, _ := strconv.ParseInt(id, 10, 64)
	c, err := s.queueReader(ctx)
	if err != nil {
		return nil, err
	}
	n, err := s.Store.GetNotification(ctx, recipient, seq)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notificationNotFound()
	}
	if err != nil {
		return nil, s.Internal(ctx, "acknowledge notification", err)
	}
	if !c.ActsFor(n.Controller) {
		return nil, notificationNotFound() // another tenant's, as if it did not exist
	}
	core.Note(ctx, noticeTouch(n))
	if n, err = s.Store.AckNotification(ctx, recipient, seq, s.Now().UnixNano(), c.ID()); err != nil {
		return nil, s.Internal(ctx, "acknowledge notification", err)
	}
	return &pdv1.AcknowledgeNotificationResponse{Notification: notificationToProto(n)}, nil
}

func notificationNotFound() error {
	return status.Error(codes.NotFound, "notification not found")
}

// noticeTouch is what passing on or acknowledging a notification touches:
// news about the subject, no personal values.
func noticeTouch(n *store.Notification) audit.Touch {
	return audit.Touch{SubjectID: n.SubjectID, Tenant: n.Controller, Fields: []string{"recipient_notification"}}
}

func notificationToProto(n *store.Notification) *pdv1.RecipientNotification {
	return &pdv1.RecipientNotification{
		NotificationId: strconv.FormatInt(n.Seq, 10),
		Recipient:      n.Recipient,
		SubjectId:      n.SubjectID,
		Kind:           core.EnumValue[pdv1.NotificationKind](pdv1.NotificationKind_value, n.Kind),
		Fields:         n.Fields,
		CreateTime:     core.Timestamp(n.CreatedAt),
	}
}
