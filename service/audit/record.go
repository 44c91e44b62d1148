package audit

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/example/personaldata/service/auth"
)

// Touch is what a handler tells the audit trail it touched: a subject (or,
// with no subject, a tenant or another chain), under which purpose, which
// fields or categories. Never a value.
type Touch struct {
	// Chain overrides the chain the event goes to (PrincipalsChain); by
	// default a subject's chain, or else its tenant's.
	Chain     string
	SubjectID string
	Tenant    string
	Purpose   string
	Fields    []string
}

func (t Touch) chain() string {
	switch {
	case t.Chain != "":
		return t.Chain
	case t.SubjectID != "":
		return SubjectChain(t.SubjectID)
	}
	return TenantChain(t.Tenant)
}

// record gathers a request's touches. In a unary call they are appended
// when the handler returns, with its outcome, before the response leaves;
// in a stream (immediate), each is appended as it is noted, before the data
// it concerns is sent.
type record struct {
	mu        sync.Mutex
	touches   []Touch
	immediate func(Touch) error
}

type recordKey struct{}

// Note records that the request touched personal data. In a stream it
// appends the event at once and returns its error: the handler must then
// stop without sending the data (fail closed). Handlers call it as soon as
// they have read a subject, before any refusal, so that refused attempts are
// on record too; later notes about the same chain add their fields.
func Note(ctx context.Context, t Touch) error {
	r, _ := ctx.Value(recordKey{}).(*record)
	if r == nil {
		return nil
	}
	if r.immediate != nil {
		return r.immediate(t)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.touches {
		if r.touches[i].chain() == t.chain() {
			m := &r.touches[i]
			m.Fields = append(m.Fields, t.Fields...)
			if t.Purpose != "" {
				m.Purpose = t.Purpose
			}
			if t.Tenant != "" {
				m.Tenant = t.Tenant
			}
			if t.SubjectID != "" {
				m.SubjectID = t.SubjectID
			}
			return nil
		}
	}
	r.touches = append(r.touches, t)
	return nil
}

// Recorder is the one place that writes audit events: an interceptor around
// every RPC, after authentication.
type Recorder struct {
	log    *Log
	logger *slog.Logger
	now    func() time.Time
}

// NewRecorder returns the interceptors that append to l.
func NewRecorder(l *Log, logger *slog.Logger, now func() time.Time) *Recorder {
	if now == nil {
		now = time.Now
	}
	return &Recorder{log: l, logger: logger, now: now}
}

// errAuditDown is the answer when the trail cannot be written: the request
// fails and returns no personal data. The trail is in the store, whose
// outages pass: RetryInfo says when to send the request again (the details
// are those of the service's other refusals, service/errors.go).
var errAuditDown = func() error {
	st := status.New(codes.Unavailable, "the audit trail cannot be written; the request was refused, retry later")
	if d, err := st.WithDetails(
		&errdetails.ErrorInfo{Reason: "AUDIT_UNAVAILABLE", Domain: "personaldata.v1"},
		&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)},
	); err == nil {
		st = d
	}
	return st.Err()
}()

func (r *Recorder) event(ctx context.Context, method string, t Touch, err error) Event {
	e := Event{
		Chain: t.chain(), Time: r.now(), RPC: method, SubjectID: t.SubjectID, Tenant: t.Tenant,
		Purpose: t.Purpose, Fields: slices.Compact(slices.Sorted(slices.Values(t.Fields))), Outcome: status.Code(err).String(),
	}
	if c := auth.FromContext(ctx); c != nil {
		e.Principal = c.ID()
	}
	return e
}

// Unary appends the events of a unary call when its handler returns, and
// replaces the response with UNAVAILABLE if it cannot.
func (r *Recorder) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !audited(info.FullMethod) {
		return handler(ctx, req)
	}
	rec := &record{}
	resp, err := handler(context.WithValue(ctx, recordKey{}, rec), req)
	for _, t := range rec.touches {
		if _, aerr := r.log.Append(ctx, r.event(ctx, info.FullMethod, t, err)); aerr != nil {
			r.logger.ErrorContext(ctx, "audit trail not written; request refused", slog.String("method", info.FullMethod), slog.String("error", aerr.Error()))
			return nil, errAuditDown
		}
	}
	return resp, err
}

// Stream makes notes in a stream append at once.
func (r *Recorder) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !audited(info.FullMethod) {
		return handler(srv, ss)
	}
	ctx := ss.Context()
	rec := &record{immediate: func(t Touch) error {
		if _, err := r.log.Append(ctx, r.event(ctx, info.FullMethod, t, nil)); err != nil {
			r.logger.ErrorContext(ctx, "audit trail not written; stream stopped", slog.String("method", info.FullMethod), slog.String("error", err.Error()))
			return errAuditDown
		}
		return nil
	}}
	return handler(srv, &recordStream{ServerStream: ss, ctx: context.WithValue(ctx, recordKey{}, rec)})
}

type recordStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *recordStream) Context() context.Context { return s.ctx }

// audited says which RPCs touch personal data or who may: everything but
// health, reflection, the caller's own identity and the audit trail itself.
func audited(method string) bool {
	for _, skip := range []string{"/grpc.", "/personaldata.v1.AuditService/", "/personaldata.v1.PrincipalService/GetCaller"} {
		if strings.HasPrefix(method, skip) {
			return false
		}
	}
	return true
}
