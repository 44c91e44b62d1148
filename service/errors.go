package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/example/personaldata/store"
)

// errorDomain names this service in google.rpc.ErrorInfo details.
const errorDomain = "personaldata.v1"

// Reasons in ErrorInfo and PreconditionFailure details, stable for callers.
const (
	reasonErased     = "SUBJECT_ERASED"
	reasonRestricted = "PROCESSING_RESTRICTED"
)

// notFound is the answer for an unknown subject.
func notFound() error {
	return status.Error(codes.NotFound, "subject not found")
}

// erasedError says that a subject was erased, when and on which ground,
// instead of a bare NOT_FOUND.
func erasedError(sub *store.Subject) error {
	at := time.Unix(0, sub.Erasure.At).UTC().Format(time.RFC3339)
	st := status.New(codes.NotFound, fmt.Sprintf("subject was erased at %s on ground %s", at, sub.Erasure.Ground))
	if d, err := st.WithDetails(&errdetails.ErrorInfo{
		Reason:   reasonErased,
		Domain:   errorDomain,
		Metadata: map[string]string{"erase_time": at, "ground": sub.Erasure.Ground},
	}); err == nil {
		st = d
	}
	return st.Err()
}

// restrictedError refuses a processing use of a restricted subject.
func restrictedError(sub *store.Subject) error {
	since := time.Unix(0, sub.Restriction.At).UTC().Format(time.RFC3339)
	desc := fmt.Sprintf("processing is restricted to storage only since %s (ground %s)", since, sub.Restriction.Ground)
	st := status.New(codes.FailedPrecondition, desc)
	if d, err := st.WithDetails(&errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{{
		Type:        reasonRestricted,
		Subject:     "subjects/" + sub.ID,
		Description: desc,
	}}}); err == nil {
		st = d
	}
	return st.Err()
}

// failedPrecondition refuses a request the subject's state does not allow.
func failedPrecondition(format string, args ...any) error {
	return status.Errorf(codes.FailedPrecondition, format, args...)
}

// staleVersion is the answer for a lost optimistic-concurrency race.
func staleVersion(expected, current int64) error {
	return status.Errorf(codes.Aborted, "expected_version %d is stale: the subject is at version %d", expected, current)
}

// keyReused refuses an idempotency key sent again with a different request.
func keyReused() error {
	return violations{{Field: "idempotency_key", Description: "was used before with a different request"}}.err()
}

func hasDeadline(ctx context.Context) bool {
	_, ok := ctx.Deadline()
	return ok
}

// internal maps an error from below the service to a status. Store and
// driver errors carry no personal values, only ids and codes, so they may be
// logged; the caller sees a generic text.
func (s *Service) internal(ctx context.Context, op string, err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		// The caller's own deadline passed: say so, not that the store is down.
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case ctx.Err() != nil:
		return status.Error(codes.Canceled, "request canceled")
	case hasDeadline(ctx) && errors.Is(err, context.DeadlineExceeded):
		// The driver gives up just before the caller's deadline, while the
		// context is not yet done: the caller's deadline, not an outage.
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	case errors.Is(err, store.ErrUnavailable):
		s.log.WarnContext(ctx, "store unavailable", slog.String("op", op), slog.String("error", err.Error()))
		return status.Error(codes.Unavailable, "store unavailable, retry later")
	case errors.Is(err, store.ErrConflict):
		return status.Error(codes.Aborted, "too many concurrent changes to this subject, retry")
	}
	s.log.ErrorContext(ctx, "internal error", slog.String("op", op), slog.String("error", err.Error()))
	return status.Error(codes.Internal, "internal error")
}
