package audit

import (
	"context"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/prometheus/client_golang/prometheus"

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
	// NewChain says the handler has just created the subject whose chain
	// this is, so the chain is most likely empty: the append goes to seq 1
	// without reading the chain's end first (if an earlier attempt left
	// events there, the insert collides and the append finds the true end).
	NewChain bool
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
// when the handler returns, with its outcome, before the response leaves. In
// a stream (flush set) they are appended with outcome OK just before the
// next message leaves, or at Flush, so that no data goes out and no change
// is made before its event is written; a stream that then ends in an error
// appends another event, with that error, for the touches whose data was
// still being sent (not yet marked Sent).
type record struct {
	mu      sync.Mutex
	touches []Touch // noted, not yet appended
	// flush, in a stream, appends the noted touches with outcome OK and
	// moves them to open; nil in a unary call.
	flush func() error
	// open are the touches of a stream appended with OK whose data has not
	// all been sent yet.
	open []Touch
	// req is a stream's request, once received.
	req any
}

type recordKey struct{}

// Note records that the request touched personal data. Handlers call it as
// soon as they have read a subject, before any refusal, so that refused
// attempts are on record too; later notes about the same chain, before its
// event is appended, add their fields.
func Note(ctx context.Context, t Touch) {
	r, _ := ctx.Value(recordKey{}).(*record)
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.touches = merge(r.touches, t)
}

// merge adds t to touches, into the touch of the same chain if there is one.
func merge(touches []Touch, t Touch) []Touch {
	for i := range touches {
		if touches[i].chain() == t.chain() {
			m := &touches[i]
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
			m.NewChain = m.NewChain || t.NewChain
			return touches
		}
	}
	return append(touches, t)
}

// Flush appends, in a stream, the events of the touches noted so far, as
// sending a message does; a stream handler calls it before a change. On
// error the handler must stop without sending or changing anything (fail
// closed). In a unary call it does nothing: the events follow the outcome.
func Flush(ctx context.Context) error {
	if r, _ := ctx.Value(recordKey{}).(*record); r != nil && r.flush != nil {
		return r.flush()
	}
	return nil
}

// Sent tells, in a stream, that the data of the touches noted so far has
// been sent in full: if the stream fails later, their events stand as OK.
func Sent(ctx context.Context) {
	r, _ := ctx.Value(recordKey{}).(*record)
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.open = nil
}

// Recorder is the one place that writes audit events: an interceptor around
// every RPC, after authentication and before the RPC rule.
type Recorder struct {
	log      *Log
	logger   *slog.Logger
	now      func() time.Time
	refusals *prometheus.CounterVec
	// appendSeconds and appendFailures measure the appends of calls' events.
	appendSeconds  prometheus.Histogram
	appendFailures prometheus.Counter
}

// NewRecorder returns the interceptors that append to l. Refusals are
// counted by RPC and reason in personaldata_refusals_total on reg.
func NewRecorder(l *Log, logger *slog.Logger, now func() time.Time, reg prometheus.Registerer) *Recorder {
	if now == nil {
		now = time.Now
	}
	r := &Recorder{log: l, logger: logger, now: now, refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "personaldata_refusals_total",
		Help: "Calls of authenticated principals refused by a rule (RPC, tenant, purpose, agreement, restriction), by RPC and reason.",
	}, []string{"method", "reason"})}
	r.appendSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "personaldata_audit_append_seconds",
		Help:    "Time to append a call's audit event (group commit included).",
		Buckets: prometheus.ExponentialBuckets(0.0002, 2, 16),
	})
	r.appendFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "personaldata_audit_append_failures_total",
		Help: "Audit events that could not be written; each failed its call with UNAVAILABLE.",
	})
	reg.MustRegister(r.refusals, r.appendSeconds, r.appendFailures)
	return r
}

// errAuditDown is the answer when the trail cannot be written: the request
// fails and returns no personal data. The trail is in the store, whose
// outages pass: RetryInfo says when to send the request again (the details
// are those of the service's other refusals, service/fault).
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
		likelyNew: t.NewChain,
	}
	if c := auth.FromContext(ctx); c != nil {
		e.Principal = c.ID()
		if c.SelfServiceSubject() != "" {
			// The person acted themselves, on their own page.
			e.Fields = append(e.Fields, "channel:SELF_SERVICE", "sign_in:"+c.SignIn)
		}
	}
	return e
}

// Unary appends the events of a unary call when its handler returns, and
// replaces the response with UNAVAILABLE if it cannot.
func (r *Recorder) Unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if !audited(info.FullMethod) {
		// Not audited when answered, but a refusal is, as everywhere.
		resp, err := handler(ctx, req)
		if t, ok := r.refused(ctx, info.FullMethod, req, nil, err); ok {
			if !r.append(ctx, info.FullMethod, t, err) {
				return nil, errAuditDown
			}
			return resp, err
		}
		return resp, r.durable(ctx, err)
	}
	rec := &record{}
	resp, err := handler(context.WithValue(ctx, recordKey{}, rec), req)
	if t, ok := r.refused(ctx, info.FullMethod, req, rec.touches, err); ok {
		rec.touches = append(rec.touches, t)
	}
	if len(rec.touches) == 0 {
		return resp, r.durable(ctx, err)
	}
	for _, t := range rec.touches {
		if !r.append(ctx, info.FullMethod, t, err) {
			return nil, errAuditDown
		}
	}
	return resp, err
}

// durable, for a call that appends no event (whose append would), waits
// before it answers until what it may have read is durable: another
// caller's write it saw may not be synced yet. err is the call's own
// outcome, returned unless the wait fails.
func (r *Recorder) durable(ctx context.Context, err error) error {
	if derr := r.log.st.Durable(ctx); derr != nil {
		r.logger.ErrorContext(ctx, "what the call read cannot be made durable", slog.String("error", derr.Error()))
		return errAuditDown
	}
	return err
}

// Stream appends the events of a stream's touches before the data they
// concern leaves (see record), and, when the stream ends in an error, the
// outcome the caller got for the data it did not receive in full.
func (r *Recorder) Stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if !audited(info.FullMethod) {
		return handler(srv, ss)
	}
	ctx := ss.Context()
	rec := &record{}
	rec.flush = func() error {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for len(rec.touches) > 0 {
			t := rec.touches[0]
			if !r.append(ctx, info.FullMethod, t, nil) {
				return errAuditDown
			}
			rec.touches = rec.touches[1:]
			rec.open = merge(rec.open, t)
		}
		return nil
	}
	err := handler(srv, &recordStream{ServerStream: ss, ctx: context.WithValue(ctx, recordKey{}, rec), rec: rec})
	// The caller may be gone: what is left to record is written regardless.
	ctx = context.WithoutCancel(ctx)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if t, ok := r.refused(ctx, info.FullMethod, rec.req, rec.touches, err); ok {
		rec.touches = append(rec.touches, t)
	}
	// Notes whose data never left (refusals, mostly): their outcome is the
	// stream's, as in a unary call. A call whose event cannot be written
	// fails as unavailable, whatever else it ended with.
	written := true
	for _, t := range rec.touches {
		written = r.append(ctx, info.FullMethod, t, err) && written
	}
	if err != nil {
		// Data that went out with OK on record, but not in full.
		for _, t := range rec.open {
			written = r.append(ctx, info.FullMethod, t, err) && written
		}
	}
	if !written {
		return errAuditDown
	}
	return err
}

// append writes the event of t with the outcome of err, and says whether it
// could.
func (r *Recorder) append(ctx context.Context, method string, t Touch, err error) bool {
	start := time.Now()
	_, aerr := r.log.Append(ctx, r.event(ctx, method, t, err))
	r.appendSeconds.Observe(time.Since(start).Seconds())
	if aerr != nil {
		r.appendFailures.Inc()
		r.logger.ErrorContext(ctx, "audit trail not written", slog.String("method", method), slog.String("error", aerr.Error()))
		return false
	}
	return true
}

// recordStream is a stream whose messages leave only after the events of
// what they carry are written.
type recordStream struct {
	grpc.ServerStream
	ctx context.Context
	rec *record
}

func (s *recordStream) Context() context.Context { return s.ctx }

// RecvMsg keeps the request, which a refusal's event names.
func (s *recordStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	if err == nil {
		s.rec.mu.Lock()
		if s.rec.req == nil {
			s.rec.req = m
		}
		s.rec.mu.Unlock()
	}
	return err
}

func (s *recordStream) SendMsg(m any) error {
	if err := s.rec.flush(); err != nil {
		return err
	}
	return s.ServerStream.SendMsg(m)
}

// refused returns the event of a refused call whose handler noted nothing
// (the RPC rule refuses before the handler runs; a purpose or tenant rule
// before anything is read), and counts the refusal. Every refusal is thus on
// record: who, which RPC, which purpose, and the subject when the request
// names one, in that subject's chain, or else in the chain of the tenant the
// request names (when the caller acts for it) or of the caller's first
// tenant. A stream refused by the RPC rule has not read its request yet, so
// its refusal goes to the tenant's chain. Only ids of the form the service issues are taken from the
// request; the request is never recorded otherwise.
func (r *Recorder) refused(ctx context.Context, method string, req any, noted []Touch, err error) (Touch, bool) {
	code := status.Code(err)
	if code != codes.PermissionDenied && code != codes.FailedPrecondition {
		return Touch{}, false
	}
	reason := code.String()
	for _, d := range status.Convert(err).Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			reason = d.GetReason()
		case *errdetails.PreconditionFailure:
			if v := d.GetViolations(); len(v) > 0 {
				reason = v[0].GetType()
			}
		}
	}
	r.refusals.WithLabelValues(method, reason).Inc()
	if len(noted) > 0 {
		return Touch{}, false // the handler's own notes carry the outcome
	}
	t := Touch{Fields: []string{"refused:" + reason}}
	if m, ok := req.(proto.Message); ok {
		fields := m.ProtoReflect().Descriptor().Fields()
		if f := fields.ByName("subject_id"); f != nil && f.Kind() == protoreflect.StringKind {
			if id := m.ProtoReflect().Get(f).String(); subjectIDPattern.MatchString(id) {
				t.SubjectID = id
			}
		}
		if f := fields.ByName("purpose"); f != nil && f.Kind() == protoreflect.EnumKind {
			if v := f.Enum().Values().ByNumber(m.ProtoReflect().Get(f).Enum()); v != nil && v.Number() != 0 {
				t.Purpose = string(v.Name())
			}
		}
	}
	c := auth.FromContext(ctx)
	switch named := requestTenant(req); {
	case t.SubjectID != "":
	case strings.HasPrefix(method, "/personaldata.v1.PrincipalService/"):
		t.Chain = PrincipalsChain
	case named != "" && c != nil && c.ActsFor(named):
		t.Tenant = named // the controller the request names, if the caller acts for it
	case c != nil && len(c.Principal.TenantIDs) > 0 && c.Principal.TenantIDs[0] != auth.AllTenants:
		t.Tenant = c.Principal.TenantIDs[0]
	default:
		t.Chain = PrincipalsChain
	}
	return t, true
}

// requestTenant is the controller a request names (controller_id,
// customer_id or tenant_id), if any.
func requestTenant(req any) string {
	m, ok := req.(proto.Message)
	if !ok {
		return ""
	}
	fields := m.ProtoReflect().Descriptor().Fields()
	for _, name := range []protoreflect.Name{"controller_id", "customer_id", "tenant_id"} {
		if f := fields.ByName(name); f != nil && f.Kind() == protoreflect.StringKind && !f.IsList() {
			if v := m.ProtoReflect().Get(f).String(); v != "" && v != auth.AllTenants {
				return v
			}
		}
	}
	return ""
}

// subjectIDPattern is the form of the subject ids the service issues
// (base32 of 128 bits, lower case): a value of any other form in a refused
// request is not recorded, since it may be anything, personal data too.
var subjectIDPattern = regexp.MustCompile(`^[a-z2-7]{26}$`)

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
