package accountability

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/fault"
	"github.com/example/personaldata/service/jobs"
	"github.com/example/personaldata/service/rules"
	"github.com/example/personaldata/service/subjects"
	"github.com/example/personaldata/service/validate"
	"github.com/example/personaldata/service/vault"
	"github.com/example/personaldata/store"
)

// Policy implements PolicyService: the privacy policy's versions (the
// policy's last section: "it may change over time"), which version each
// subject was informed of and accepted, and telling every subject of a
// material change through the requesters' outbox.
type Policy struct {
	pdv1.UnimplementedPolicyServiceServer
	*Service
}

// Policy returns the PolicyService on the same store.
func (s *Service) Policy() *Policy { return &Policy{Service: s} }

var (
	policyVersionPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{0,31}$`)
	sha256Pattern        = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

const (
	jobKindPolicyNotice = "POLICY_NOTICE"
	maxSummaryLen       = 2000
	maxURLLen           = 500
)

// policyFields is what the trail says a policy step touched.
var policyFields = []string{"policy_version"}

// PublishPolicyVersion records a new version.
func (s *Policy) PublishPolicyVersion(ctx context.Context, req *pdv1.PublishPolicyVersionRequest) (*pdv1.PublishPolicyVersionResponse, error) {
	now := s.Now()
	c, err := s.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	pv := req.GetPolicyVersion()
	if pv == nil {
		v.Add("policy_version", "is required")
	}
	version := validPolicyVersion(&v, "policy_version.version", pv.GetVersion())
	var effective int64
	switch t := pv.GetEffectiveTime(); {
	case pv == nil:
	case t == nil:
		v.Add("policy_version.effective_time", "is required")
	case t.CheckValid() != nil:
		v.Add("policy_version.effective_time", "is not a valid time")
	default:
		effective = t.AsTime().UnixNano()
	}
	if l := pv.GetLanguage(); pv != nil && l != "sv" && l != "en" {
		v.Add("policy_version.language", `must be "sv" or "en"`)
	}
	if pv != nil && !sha256Pattern.MatchString(pv.GetTextSha256()) {
		v.Add("policy_version.text_sha256", "must be the SHA-256 of the text: 64 lower-case hex digits")
	}
	if u := pv.GetUrl(); pv != nil && (!strings.HasPrefix(u, "https://") || len(u) > maxURLLen || strings.ContainsAny(u, " \t\n")) {
		v.Add("policy_version.url", fmt.Sprintf("must be an https URL of at most %d characters", maxURLLen))
	}
	summary := ""
	if pv != nil {
		summary = v.Text("policy_version.change_summary", pv.GetChangeSummary(), maxSummaryLen, true, true)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	fp := s.Fingerprint(req)
	core.Note(ctx, audit.Touch{Tenant: rules.CompanyController, Fields: policyFields})
	var out store.PolicyVersion
	_, err = s.Store.UpdatePolicies(ctx, func(p *store.Policies) error {
		if err := core.CheckReplay(p.Ops, core.OpKey(key), fp); err != nil {
			return err
		}
		for _, old := range p.Versions {
			if old.Version == version {
				return fault.AlreadyExists("POLICY_VERSION_EXISTS", "personaldata.v1.PolicyVersion", version, nil, "this version was published already")
			}
		}
		if n := len(p.Versions); n > 0 && effective < p.Versions[n-1].EffectiveAt {
			return fault.WithDetails(codes.InvalidArgument, "versions take effect in order", badField("policy_version.effective_time", "must not be before the last version's"))
		}
		out = store.PolicyVersion{
			Version: version, EffectiveAt: effective, Language: pv.GetLanguage(), TextSHA256: pv.GetTextSha256(), URL: pv.GetUrl(),
			ChangeSummary: summary, Material: pv.GetMaterial(), PublishedAt: now.UnixNano(), PublishedBy: c.ID(),
		}
		p.Versions = append(p.Versions, out)
		p.Ops = core.AppendOp(p.Ops, store.Op{Key: core.OpKey(key), Fingerprint: fp, Result: int64(len(p.Versions))}, now)
		return nil
	})
	var rep *core.Replayed
	if errors.As(err, &rep) {
		p, err := s.Store.GetPolicies(ctx)
		if err != nil {
			return nil, s.Internal(ctx, "publish policy", err)
		}
		return &pdv1.PublishPolicyVersionResponse{PolicyVersion: policyVersionToProto(&p.Versions[rep.Op.Result-1])}, nil
	}
	if err != nil {
		return nil, s.Internal(ctx, "publish policy", err)
	}
	return &pdv1.PublishPolicyVersionResponse{PolicyVersion: policyVersionToProto(&out)}, nil
}

// badField is the BadRequest detail naming one field.
func badField(field, desc string) *errdetails.BadRequest {
	return &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: desc}}}
}

func validPolicyVersion(v *validate.Violations, field, s string) string {
	if s == "" {
		v.Add(field, "is required")
	} else if !policyVersionPattern.MatchString(s) {
		v.Add(field, "must be 1 to 32 characters of a-z, 0-9, '.', '-'")
	}
	return s
}

// inForce is the version in force at now: the last to have taken effect.
func inForce(p *store.Policies, now int64) *store.PolicyVersion {
	var out *store.PolicyVersion
	for i := range p.Versions {
		if p.Versions[i].EffectiveAt <= now {
			out = &p.Versions[i]
		}
	}
	return out
}

func findPolicyVersion(p *store.Policies, version string) *store.PolicyVersion {
	for i := range p.Versions {
		if p.Versions[i].Version == version {
			return &p.Versions[i]
		}
	}
	return nil
}

// ListPolicyVersions lists the versions and names the one in force.
func (s *Policy) ListPolicyVersions(ctx context.Context, _ *pdv1.ListPolicyVersionsRequest) (*pdv1.ListPolicyVersionsResponse, error) {
	if _, err := s.Caller(ctx); err != nil {
		return nil, err
	}
	p, err := s.Store.GetPolicies(ctx)
	if err != nil {
		return nil, s.Internal(ctx, "list policy versions", err)
	}
	out := &pdv1.ListPolicyVersionsResponse{}
	for i := range p.Versions {
		out.PolicyVersions = append(out.PolicyVersions, policyVersionToProto(&p.Versions[i]))
	}
	if v := inForce(p, s.Now().UnixNano()); v != nil {
		out.InForce = v.Version
	}
	return out, nil
}

// InformedOf reports whether sub was informed of (or accepted) version.
func InformedOf(sub *store.Subject, version string) bool {
	return slices.ContainsFunc(sub.PolicyAcks, func(a store.PolicyAck) bool { return a.Version == version })
}

// RecordPolicyAcknowledgement records a subject informed of, or accepting,
// a version.
func (s *Policy) RecordPolicyAcknowledgement(ctx context.Context, req *pdv1.RecordPolicyAcknowledgementRequest) (*pdv1.RecordPolicyAcknowledgementResponse, error) {
	now := s.Now()
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	id := v.SubjectID(req.GetSubjectId())
	version := validPolicyVersion(&v, "version", req.GetVersion())
	kind := v.Enum("kind", req.GetKind())
	at := v.PastTime("acknowledge_time", req.GetAcknowledgeTime(), now)
	channel := v.Channel(req.GetChannel(), true)
	reference := v.Text("reference", req.GetReference(), validate.MaxReferenceLen, false, false)
	if err := v.Err(); err != nil {
		return nil, err
	}
	c, err := s.Caller(ctx)
	if err != nil {
		return nil, err
	}
	p, err := s.Store.GetPolicies(ctx)
	if err != nil {
		return nil, s.Internal(ctx, "record policy acknowledgement", err)
	}
	pv := findPolicyVersion(p, version)
	if pv == nil {
		return nil, noSuchPolicyVersion(version)
	}
	// The text existed from when it was recorded here or, for a version
	// recorded after it took effect, from then: no one was told of it
	// before both.
	if since := min(pv.PublishedAt, pv.EffectiveAt); at < since {
		return nil, fault.WithDetails(codes.InvalidArgument, "the acknowledgement is dated before the version was published",
			badField("acknowledge_time", "must not be before the version was published ("+core.Timestamp(since).AsTime().UTC().Format(time.RFC3339)+")"))
	}
	if _, err := s.GetSubject(ctx, "record policy acknowledgement", id); err != nil {
		return nil, err
	}
	core.Note(ctx, audit.Touch{SubjectID: id, Fields: []string{"policy_acknowledgement"}})
	ack := store.PolicyAck{Version: version, Kind: kind, At: at, Channel: channel, Reference: reference, RecordedBy: c.ID()}
	fp := s.Fingerprint(req)
	_, err = s.Store.UpdateSubject(ctx, id, func(sub *store.Subject) error {
		if sub.Erasure != nil {
			return fault.ErasedError(sub)
		}
		if err := s.SubjectOp(ctx, sub, core.OpKey(key), fp, nil); err != nil {
			return err
		}
		// The same acknowledgement again under another key (a retry that
		// lost its key) records nothing new: it answers the one recorded,
		// as a retry with the key would.
		if i := slices.IndexFunc(sub.PolicyAcks, func(a store.PolicyAck) bool { return sameAck(a, ack) }); i >= 0 {
			return &core.Replayed{Op: store.Op{Result: int64(i + 1)}}
		}
		sub.PolicyAcks = append(sub.PolicyAcks, ack)
		core.RecordOp(sub, store.Op{Key: core.OpKey(key), Fingerprint: fp, Result: int64(len(sub.PolicyAcks))}, now)
		return nil
	})
	var rep *core.Replayed
	switch {
	case errors.As(err, &rep):
		sub, err := s.Store.GetSubject(ctx, id)
		if err != nil || rep.Op.Result < 1 || int(rep.Op.Result) > len(sub.PolicyAcks) {
			return nil, s.Internal(ctx, "record policy acknowledgement", fmt.Errorf("replay: %v", err))
		}
		ack = sub.PolicyAcks[rep.Op.Result-1]
	case err != nil:
		return nil, s.Internal(ctx, "record policy acknowledgement", err)
	}
	return &pdv1.RecordPolicyAcknowledgementResponse{Acknowledgement: subjects.PolicyAckToProto(&ack)}, nil
}

// sameAck says whether a and b record the same thing: the same version,
// kind, time, channel and reference (who recorded it aside).
func sameAck(a, b store.PolicyAck) bool {
	return a.Version == b.Version && a.Kind == b.Kind && a.At == b.At && a.Channel == b.Channel && a.Reference == b.Reference
}

// noSuchPolicyVersion is the answer wherever a well-formed version is
// named that was never published.
func noSuchPolicyVersion(version string) error {
	return fault.WithDetails(codes.NotFound, fmt.Sprintf("no such policy version: %q was never published", version),
		&errdetails.ResourceInfo{ResourceType: "personaldata.v1.PolicyVersion", ResourceName: version, Description: "never published"})
}

// uninformedScanLimit bounds the subjects one listing reads.
const uninformedScanLimit = 10 * jobs.PageSize

// ListUninformedSubjects lists the live subjects of the company not yet
// informed of a version, by id. Only ids: the follow-up goes through the
// rights RPCs or NotifyPolicyChange.
func (s *Policy) ListUninformedSubjects(ctx context.Context, req *pdv1.ListUninformedSubjectsRequest) (*pdv1.ListUninformedSubjectsResponse, error) {
	var v validate.Violations
	size := int(req.GetPageSize())
	switch {
	case size == 0:
		size = 100
	case size < 0 || size > 1000:
		v.Add("page_size", "must be 0 to 1000")
	}
	version := req.GetVersion()
	if version != "" {
		validPolicyVersion(&v, "version", version)
	}
	after := ""
	if t := req.GetPageToken(); t != "" && len(v) == 0 {
		after = v.AuditPageToken(t, "uninformed", version)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	c, err := s.Caller(ctx)
	if err != nil {
		return nil, err
	}
	if !c.ActsFor(rules.CompanyController) {
		return nil, fault.PermissionDenied(fault.ReasonTenantNotPermitted, map[string]string{"controller_id": rules.CompanyController}, "the caller does not act for the company")
	}
	p, err := s.Store.GetPolicies(ctx)
	if err != nil {
		return nil, s.Internal(ctx, "list uninformed subjects", err)
	}
	var pv *store.PolicyVersion
	switch {
	case version != "":
		if pv = findPolicyVersion(p, version); pv == nil {
			return nil, noSuchPolicyVersion(version)
		}
	default:
		if pv = inForce(p, s.Now().UnixNano()); pv == nil {
			return nil, status.Error(codes.NotFound, "no policy version is in force yet: name a version")
		}
	}
	out := &pdv1.ListUninformedSubjectsResponse{Version: pv.Version}
	for scanned := 0; scanned < uninformedScanLimit; {
		page, err := s.Store.SubjectsOfController(ctx, rules.CompanyController, after, jobs.PageSize)
		if err != nil {
			return nil, s.Internal(ctx, "list uninformed subjects", err)
		}
		for _, sub := range page {
			scanned++
			after = sub.ID
			if sub.Erasure == nil && !InformedOf(sub, pv.Version) {
				out.SubjectIds = append(out.SubjectIds, sub.ID)
				if len(out.SubjectIds) == size {
					out.NextPageToken = validate.AuditPageToken("uninformed", version, after)
					return out, nil
				}
			}
		}
		if len(page) < jobs.PageSize {
			return out, nil
		}
	}
	out.NextPageToken = validate.AuditPageToken("uninformed", version, after)
	return out, nil
}

// NotifyPolicyChange queues one message per subject to be told of a
// material version. The job is recorded; a call with the same key resumes
// after the last subject it recorded. A subject gets one message: its id
// is the version and the subject, and once the mailer acknowledges it the
// subject is recorded informed, which the job skips.
func (s *Policy) NotifyPolicyChange(req *pdv1.NotifyPolicyChangeRequest, stream grpc.ServerStreamingServer[pdv1.NotifyPolicyChangeResponse]) error {
	ctx := stream.Context()
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	version := validPolicyVersion(&v, "version", req.GetVersion())
	if err := v.Err(); err != nil {
		return err
	}
	c, err := s.Caller(ctx)
	if err != nil {
		return err
	}
	p, err := s.Store.GetPolicies(ctx)
	if err != nil {
		return s.Internal(ctx, "notify policy change", err)
	}
	pv := findPolicyVersion(p, version)
	switch {
	case pv == nil:
		return noSuchPolicyVersion(version)
	case !pv.Material:
		return fault.FailedPrecondition("version %s is not a material change: subjects are told of material changes", version)
	}
	fp := s.Fingerprint(req)
	id := s.DerivedID("policy-notice", version, key)
	job, err := s.Jobs.StartOrResume(ctx, &store.Job{ID: id, Kind: jobKindPolicyNotice, Customer: rules.CompanyController, Reference: version, Principal: c.ID(), Fingerprint: fp})
	if err != nil {
		return err
	}
	return s.Jobs.Run(ctx, job, jobs.Run{
		Op: "notify policy change",
		Step: func(ctx context.Context, sub *store.Subject) (bool, error) {
			if sub.Erasure != nil || sub.Restriction != nil || sub.Person == nil || sub.Person.Email == "" || InformedOf(sub, version) {
				return false, nil
			}
			// On the trail before the message is queued.
			audit.Note(ctx, audit.Touch{SubjectID: sub.ID, Tenant: sub.Controller, Purpose: pdv1.Purpose_PURPOSE_ACCOUNT_COMMUNICATION.String(), Fields: []string{rules.FieldEmail}})
			if err := audit.Flush(ctx); err != nil {
				return false, err
			}
			// A notice an earlier job queued, still waiting, is not queued
			// again, and not counted as queued by this one.
			queued, err := s.queuePolicyNotice(ctx, sub, pv, job.ID)
			if err != nil {
				return false, s.Internal(ctx, "notify policy change", err)
			}
			return queued, nil
		},
		Progress: func(j *store.Job) error {
			return stream.Send(&pdv1.NotifyPolicyChangeResponse{JobId: j.ID, Done: j.Done, Total: j.Total, Queued: j.Queued, Skipped: j.Skipped, Finished: j.State == jobs.Finished})
		},
	})
}

// policyNoticeID is the outbox id of the message telling a subject of a
// version.
func policyNoticeID(version, subjectID string) string { return "policy." + version + "." + subjectID }

// queuePolicyNotice queues the message telling sub of version pv, sealed
// under the subject's data key, for the job jobID; queued is false when it
// waits already, queued by another job. One the same job queued before it
// could count it (a call cut off, resumed with the same key) counts.
func (s *Service) queuePolicyNotice(ctx context.Context, sub *store.Subject, pv *store.PolicyVersion, jobID string) (queued bool, err error) {
	content := vault.OutboxContent{
		Channel: pdv1.ContactChannel_CONTACT_CHANNEL_EMAIL.String(), To: sub.Person.Email, Language: "sv",
		Subject: "Vi har ändrat vår dataskyddspolicy",
		Body: fmt.Sprintf("Vår dataskyddspolicy ändras från och med %s.\n\nDet här har ändrats:\n%s\n\nHela policyn finns på %s\n",
			core.Day(pv.EffectiveAt), pv.ChangeSummary, pv.URL),
	}
	m := &store.OutboxMessage{
		ID: policyNoticeID(pv.Version, sub.ID), SubjectID: sub.ID, PolicyVersion: pv.Version, Job: jobID,
		Kind: pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_POLICY_CHANGE.String(), CreatedAt: s.Now().UnixNano(),
	}
	dk, err := s.Vault.DataKey(ctx, sub.ID, vault.ExistingKey)
	if err != nil {
		return false, err
	}
	if m.Sealed, err = vault.SealContent(dk, m.ID, content); err != nil {
		return false, err
	}
	if queued, err = s.Store.EnqueueOutboxMessage(ctx, m); err != nil || queued {
		return queued, err
	}
	waiting, err := s.Store.GetOutboxMessage(ctx, m.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil // acknowledged since
	case err != nil:
		return false, err
	}
	return waiting.Job == jobID, nil
}

// AcknowledgedPolicyNotice records, when the mailer acknowledges a policy
// notice, that its subject was informed: before the message is removed, so
// that a resumed notification skips the subject and it is told once.
func (s *Service) AcknowledgedPolicyNotice(ctx context.Context, m *store.OutboxMessage, by string) error {
	_, err := s.Store.UpdateSubject(ctx, m.SubjectID, func(sub *store.Subject) error {
		if sub.Erasure != nil || InformedOf(sub, m.PolicyVersion) {
			return core.ErrNothingToQueue
		}
		sub.PolicyAcks = append(sub.PolicyAcks, store.PolicyAck{
			Version: m.PolicyVersion, Kind: pdv1.PolicyAcknowledgementKind_POLICY_ACKNOWLEDGEMENT_KIND_INFORMED.String(),
			At: s.Now().UnixNano(), Channel: pdv1.Channel_CHANNEL_EMAIL.String(), Reference: "outbox " + m.ID, RecordedBy: by,
		})
		return nil
	})
	if errors.Is(err, core.ErrNothingToQueue) || errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

func policyVersionToProto(v *store.PolicyVersion) *pdv1.PolicyVersion {
	return &pdv1.PolicyVersion{
		Version: v.Version, EffectiveTime: core.Timestamp(v.EffectiveAt), Language: v.Language, TextSha256: v.TextSHA256, Url: v.URL,
		ChangeSummary: v.ChangeSummary, Material: v.Material, PublishTime: core.Timestamp(v.PublishedAt), PublishedBy: v.PublishedBy,
	}
}
