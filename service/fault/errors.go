package fault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store"
)

// errorDomain names this service in google.rpc.ErrorInfo details.
const errorDomain = "personaldata.v1"

// Reasons in ErrorInfo and PreconditionFailure details, stable for callers.
const (
	ReasonErased     = "SUBJECT_ERASED"
	reasonRestricted = "PROCESSING_RESTRICTED"
	// PERMISSION_DENIED
	ReasonTenantNotPermitted    = "TENANT_NOT_PERMITTED"
	reasonPurposeNotPermitted   = "PURPOSE_NOT_PERMITTED"
	ReasonControllerInstruction = "CONTROLLER_INSTRUCTION_REQUIRED"
	ReasonKindNotPermitted      = "PRINCIPAL_KIND_NOT_PERMITTED"
	ReasonRPCNotPermitted       = "RPC_NOT_PERMITTED"
	ReasonAgreementInForce      = "AGREEMENT_IN_FORCE"
	// ALREADY_EXISTS
	ReasonSubjectExists   = "SUBJECT_EXISTS"
	ReasonPrincipalExists = "PRINCIPAL_EXISTS"
	// ABORTED
	reasonStaleVersion       = "STALE_VERSION"
	reasonConcurrentChange   = "CONCURRENT_CHANGE"
	ReasonRotationUnfinished = "ROTATION_UNFINISHED"
	// UNAVAILABLE
	ReasonStoreUnavailable = "STORE_UNAVAILABLE"
	ReasonShuttingDown     = "SHUTTING_DOWN"
)

// retryDelay is the RetryInfo of a refusal that the same request, sent
// again, may get past: a store outage or a lost race. The idempotency key
// makes the retry safe.
const retryDelay = time.Second

// WithDetails is a status carrying details. A detail that cannot be attached
// (it always can: they are registered messages) leaves the bare status.
func WithDetails(code codes.Code, msg string, details ...protoadapt.MessageV1) error {
	st := status.New(code, msg)
	if d, err := st.WithDetails(details...); err == nil {
		st = d
	}
	return st.Err()
}

// ErrorInfo is the machine-readable reason of a refusal; metadata holds ids,
// versions and enum names, never a personal value.
func ErrorInfo(reason string, metadata map[string]string) *errdetails.ErrorInfo {
	return &errdetails.ErrorInfo{Reason: reason, Domain: errorDomain, Metadata: metadata}
}

// retryInfo tells the caller when to send the same request again.
func retryInfo(after time.Duration) *errdetails.RetryInfo {
	return &errdetails.RetryInfo{RetryDelay: durationpb.New(after)}
}

// NotFound is the answer for an unknown subject.
func NotFound() error {
	return status.Error(codes.NotFound, "subject not found")
}

// ErasedError says that a subject was erased, when and on which ground,
// instead of a bare NOT_FOUND.
func ErasedError(sub *store.Subject) error {
	at := time.Unix(0, sub.Erasure.At).UTC().Format(time.RFC3339)
	return WithDetails(codes.NotFound, fmt.Sprintf("subject was erased at %s on ground %s", at, sub.Erasure.Ground),
		ErrorInfo(ReasonErased, map[string]string{"erase_time": at, "ground": sub.Erasure.Ground}))
}

// RestrictedError refuses a processing use of a restricted subject.
func RestrictedError(sub *store.Subject) error {
	since := time.Unix(0, sub.Restriction.At).UTC().Format(time.RFC3339)
	desc := fmt.Sprintf("processing is restricted to storage only since %s (ground %s)", since, sub.Restriction.Ground)
	return WithDetails(codes.FailedPrecondition, desc, &errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{{
		Type:        reasonRestricted,
		Subject:     "subjects/" + sub.ID,
		Description: desc,
	}}})
}

// FailedPrecondition refuses a request the subject's state does not allow.
func FailedPrecondition(format string, args ...any) error {
	return status.Errorf(codes.FailedPrecondition, format, args...)
}

// PermissionDenied refuses a caller, saying why in ErrorInfo.
func PermissionDenied(reason string, metadata map[string]string, msg string) error {
	return WithDetails(codes.PermissionDenied, msg, ErrorInfo(reason, metadata))
}

// PurposeDenied refuses a purpose the caller was not granted.
func PurposeDenied(p pdv1.Purpose) error {
	return PermissionDenied(reasonPurposeNotPermitted, map[string]string{"purpose": p.String()},
		fmt.Sprintf("the caller may not process for purpose %s", p))
}

// AlreadyExists refuses to create what exists: ResourceInfo names its type
// (and its name when that is not personal), ErrorInfo the reason.
func AlreadyExists(reason, resourceType, resourceName string, metadata map[string]string, msg string) error {
	return WithDetails(codes.AlreadyExists, msg, ErrorInfo(reason, metadata),
		&errdetails.ResourceInfo{ResourceType: resourceType, ResourceName: resourceName, Description: msg})
}

// StaleVersion is the answer for a lost optimistic-concurrency race on a
// resource ("subject", "principal", "agreement"): the current version is in
// ErrorInfo, so the caller can read again and decide.
func StaleVersion(resource string, expected, current int64) error {
	return WithDetails(codes.Aborted,
		fmt.Sprintf("expected_version %d is stale: the %s is at version %d", expected, resource, current),
		ErrorInfo(reasonStaleVersion, map[string]string{
			"resource":         resource,
			"expected_version": strconv.FormatInt(expected, 10),
			"current_version":  strconv.FormatInt(current, 10),
		}))
}

// ConcurrentChange is ABORTED for a race the same request may win if sent
// again.
func ConcurrentChange(msg string) error {
	return WithDetails(codes.Aborted, msg, ErrorInfo(reasonConcurrentChange, nil), retryInfo(retryDelay))
}

// Unavailable refuses for now, saying when to retry.
func Unavailable(reason, msg string) error {
	return WithDetails(codes.Unavailable, msg, ErrorInfo(reason, nil), retryInfo(retryDelay))
}

func hasDeadline(ctx context.Context) bool {
	_, ok := ctx.Deadline()
	return ok
}

// Internal maps an error from below the service to a status. Store and
// driver errors carry no personal values, only ids and codes, so they may be
// logged (to log); the caller sees a generic text.
func Internal(ctx context.Context, log *slog.Logger, op string, err error) error {
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
		log.WarnContext(ctx, "store unavailable", slog.String("op", op), slog.String("error", err.Error()))
		return Unavailable(ReasonStoreUnavailable, "store unavailable, retry later")
	case errors.Is(err, store.ErrConflict):
		return ConcurrentChange("too many concurrent changes to this subject, retry")
	}
	log.ErrorContext(ctx, "internal error", slog.String("op", op), slog.String("error", err.Error()))
	return status.Error(codes.Internal, "internal error")
}
