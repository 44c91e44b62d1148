package accountability

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/auth"
	"github.com/example/personaldata/service/contact"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/fault"
	"github.com/example/personaldata/service/personnummer"
	"github.com/example/personaldata/service/rules"
	"github.com/example/personaldata/service/validate"
	"github.com/example/personaldata/service/vault"
	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/envelope"
)

// BreachRecords implements BreachRecordService: a breach from its record,
// which rests on a saved AssessBreachImpact, to the report to IMY
// (breach_report.go), the notices to the people and the customers
// (breach_notices.go) and the register of breaches. A record holds counts,
// categories and controller ids; the affected subjects' ids are sealed
// under the record's own data key, in chunks beside it (putAffected).
type BreachRecords struct {
	pdv1.UnimplementedBreachRecordServiceServer
	*Service
}

// BreachRecords returns the BreachRecordService on the same store.
func (s *Service) BreachRecords() *BreachRecords { return &BreachRecords{Service: s} }

// notifyWithin is the time Art. 33(1) gives from awareness to the report to
// the supervisory authority.
const notifyWithin = 72 * time.Hour

// maxBreachText bounds the free texts of a record, maxContactText its
// contact person.
const (
	maxBreachText  = 2000
	maxContactText = 500
)

// affectedSubject is one subject in a record's sealed list.
type affectedSubject struct {
	ID         string   `json:"id"`
	Controller string   `json:"controller"`
	Categories []string `json:"categories"`
}

// Decisions of a record, as stored (BreachDecisionKind names).
var (
	decisionOpened     = pdv1.BreachDecisionKind_BREACH_DECISION_KIND_OPENED.String()
	decisionRisk       = pdv1.BreachDecisionKind_BREACH_DECISION_KIND_RISK_ASSESSED.String()
	decisionReported   = pdv1.BreachDecisionKind_BREACH_DECISION_KIND_AUTHORITY_REPORTED.String()
	decisionSubjects   = pdv1.BreachDecisionKind_BREACH_DECISION_KIND_SUBJECTS_NOTIFIED.String()
	decisionCustomers  = pdv1.BreachDecisionKind_BREACH_DECISION_KIND_CONTROLLERS_NOTIFIED.String()
	decisionClosed     = pdv1.BreachDecisionKind_BREACH_DECISION_KIND_CLOSED.String()
	riskUnlikely       = pdv1.BreachRisk_BREACH_RISK_UNLIKELY.String()
	riskHigh           = pdv1.BreachRisk_BREACH_RISK_HIGH.String()
	breachRecordFields = []string{"breach_record"}
)

// overseer is the caller when it acts for every controller: an operator or
// the DPO, who see every breach.
func (s *BreachRecords) overseer(ctx context.Context) (*auth.Caller, error) {
	c, err := s.Caller(ctx)
	if err != nil {
		return nil, err
	}
	if !c.ActsFor(auth.AllTenants) {
		return nil, fault.PermissionDenied(fault.ReasonKindNotPermitted, nil, "breach records span every controller: they are for operators and the DPO")
	}
	return c, nil
}

// change begins a change of the breach records: the request's bad fields
// first, then the caller, who must be an overseer; on the trail.
func (s *BreachRecords) change(ctx context.Context, v validate.Violations) (*auth.Caller, error) {
	if err := v.Err(); err != nil {
		return nil, err
	}
	c, err := s.overseer(ctx)
	if err != nil {
		return nil, err
	}
	core.Note(ctx, audit.Touch{Tenant: rules.CompanyController, Fields: breachRecordFields})
	return c, nil
}

// OpenBreachRecord records a breach with the assessment it rests on.
func (s *BreachRecords) OpenBreachRecord(ctx context.Context, req *pdv1.OpenBreachRecordRequest) (*pdv1.OpenBreachRecordResponse, error) {
	now := s.Now()
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	aware := v.PastTime("aware_time", req.GetAwareTime(), now)
	r := &store.BreachRecord{
		AwareAt:         aware,
		Description:     validBreachText(&v, "description", req.GetDescription(), true, now),
		Category:        v.Enum("category", req.GetCategory()),
		Risk:            v.Enum("risk", req.GetRisk()),
		Consequences:    validBreachText(&v, "likely_consequences", req.GetLikelyConsequences(), false, now),
		MeasuresTaken:   validBreachText(&v, "measures_taken", req.GetMeasuresTaken(), false, now),
		MeasuresPlanned: validBreachText(&v, "measures_planned", req.GetMeasuresPlanned(), false, now),
		Contact:         v.Text("contact", req.GetContact(), maxContactText, false, false),
	}
	reason := validBreachText(&v, "risk_reason", req.GetRiskReason(), true, now)
	var scope breachScope
	if req.GetAssessment() == nil {
		v.Add("assessment", "is required: the scope of the assessment, as AssessBreachImpact takes it")
	} else {
		var err error
		if scope, err = (&Breach{Service: s.Service}).breachScope(req.GetAssessment()); err != nil {
			v = append(v, fieldsUnder("assessment.", err)...)
		}
	}
	c, err := s.change(ctx, v)
	if err != nil {
		return nil, err
	}
	fp := s.Fingerprint(req)
	r.ID = s.DerivedID("breach", rules.CompanyController, key)
	switch old, err := s.Store.GetBreachRecord(ctx, r.ID); {
	case err == nil:
		return s.replayedOpen(ctx, old, fp)
	case !errors.Is(err, store.ErrNotFound):
		return nil, s.Internal(ctx, "open breach record", err)
	}
	affected, chainsBroken, err := s.affected(ctx, scope)
	if err != nil {
		return nil, err
	}
	r.Version, r.Fingerprint, r.OpenedBy, r.OpenedAt, r.AssessedAt = 1, fp, c.ID(), now.UnixNano(), now.UnixNano()
	r.Scope = store.BreachScope{Principal: scope.principal, KeyVersion: scope.keyVersion, From: scope.from, To: scope.end.UnixNano()}
	r.ChainsBroken = chainsBroken
	countAffected(r, affected)
	// The list first, durably, then the record that names it.
	if err := s.putAffected(ctx, r, affected); err != nil {
		return nil, s.Internal(ctx, "open breach record", err)
	}
	r.Decisions = []store.BreachDecision{
		{Kind: decisionOpened, At: r.OpenedAt, By: c.ID(), Decision: fmt.Sprintf("%s; %d subjects affected", r.Category, r.Subjects)},
		{Kind: decisionRisk, At: r.OpenedAt, By: c.ID(), Decision: r.Risk, Reason: reason},
	}
	for _, p := range r.Controllers {
		if p.Controller != rules.CompanyController {
			// The customer's trail shows that a breach touched its data.
			core.Note(ctx, audit.Touch{Tenant: p.Controller, Fields: breachRecordFields})
		}
	}
	switch err := s.Store.InsertBreachRecord(ctx, r); {
	case errors.Is(err, store.ErrExists): // a concurrent retry stored it first
		old, err := s.Store.GetBreachRecord(ctx, r.ID)
		if err != nil {
			return nil, s.Internal(ctx, "open breach record", err)
		}
		if old.SubjectSet != r.SubjectSet {
			// It saw other subjects: this list is named by no record.
			if err := s.Store.DeleteBreachSubjects(ctx, r.ID, r.SubjectSet, r.SubjectChunks); err != nil {
				return nil, s.Internal(ctx, "open breach record", err)
			}
		}
		return s.replayedOpen(ctx, old, fp)
	case err != nil:
		return nil, s.Internal(ctx, "open breach record", err)
	}
	return &pdv1.OpenBreachRecordResponse{Record: s.recordView(r, now, nil)}, nil
}

func (s *BreachRecords) replayedOpen(_ context.Context, old *store.BreachRecord, fp []byte) (*pdv1.OpenBreachRecordResponse, error) {
	if !slices.Equal(old.Fingerprint, fp) {
		return nil, validate.KeyReused()
	}
	return &pdv1.OpenBreachRecordResponse{Record: s.recordView(old, s.Now(), nil)}, nil
}

// validBreachText checks a free text of a record, which goes into the report to
// IMY and the register: besides text's rules, it must not hold an identity
// number or an e-mail address, the personal data most likely pasted into a
// description by mistake.
func validBreachText(v *validate.Violations, field, s string, required bool, now time.Time) string {
	s = v.Text(field, s, maxBreachText, required, true)
	for _, word := range strings.Fields(s) {
		word = strings.Trim(word, ".,;:()[]<>\"'")
		_, pnrErr := personnummer.Parse(word, now)
		_, mailErr := contact.Email(word)
		if pnrErr == nil || mailErr == nil && strings.Contains(word, "@") {
			v.Add(field, "must not hold personal data such as an identity number or an e-mail address: it goes into the report to IMY and the register")
			break
		}
	}
	return s
}

// fieldsUnder is the field violations of an INVALID_ARGUMENT error, each
// named under prefix: the assessment's fields within the request.
func fieldsUnder(prefix string, err error) validate.Violations {
	var out validate.Violations
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, fv := range br.GetFieldViolations() {
				out.Add(prefix+fv.GetField(), fv.GetDescription())
			}
		}
	}
	if len(out) == 0 {
		out.Add(strings.TrimSuffix(prefix, "."), "is not a valid scope")
	}
	return out
}

// affected runs the assessment and returns the subjects whose data it
// found read, changed or (under a master key version) exposed, with their
// categories, in id order; and how many chains did not verify. A subject
// only refused is not affected: nothing was given.
func (s *BreachRecords) affected(ctx context.Context, sc breachScope) ([]affectedSubject, int64, error) {
	var out []affectedSubject
	var broken int64
	b := &Breach{Service: s.Service}
	win, err := b.readWindow(ctx, sc)
	if err != nil {
		return nil, 0, err
	}
	err = b.assess(ctx, sc, win, func(ci *pdv1.BreachChainImpact) error {
		if !ci.GetCheck().GetIntact() {
			broken++
		}
		if ci.GetSubjectId() == "" {
			return nil
		}
		cats := slices.Concat(ci.GetCategoriesRead(), ci.GetCategoriesChanged(), ci.GetCategoriesHeld())
		slices.Sort(cats)
		cats = slices.Compact(cats)
		if len(cats) == 0 {
			return nil
		}
		a := affectedSubject{ID: ci.GetSubjectId(), Controller: cmp.Or(ci.GetTenantId(), rules.CompanyController)}
		for _, c := range cats {
			a.Categories = append(a.Categories, c.String())
		}
		out = append(out, a)
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	slices.SortFunc(out, func(a, b affectedSubject) int { return cmp.Compare(a.ID, b.ID) })
	return out, broken, nil
}

// countAffected sets the record's counts: subjects, records (one a subject
// and category), by category and by controller.
func countAffected(r *store.BreachRecord, affected []affectedSubject) {
	total := map[string]int64{}
	parts := map[string]map[string]int64{}
	partSubjects := map[string]int64{}
	for _, a := range affected {
		r.Subjects++
		r.Records += int64(len(a.Categories))
		if parts[a.Controller] == nil {
			parts[a.Controller] = map[string]int64{}
		}
		partSubjects[a.Controller]++
		for _, c := range a.Categories {
			total[c]++
			parts[a.Controller][c]++
		}
	}
	r.Categories = breachCounts(total)
	r.Controllers = nil
	for _, ctrl := range slices.Sorted(maps.Keys(parts)) {
		r.Controllers = append(r.Controllers, store.BreachControllerPart{Controller: ctrl, Subjects: partSubjects[ctrl], Categories: breachCounts(parts[ctrl])})
	}
}

// breachCounts are counts by category, in enum order.
func breachCounts(m map[string]int64) []store.BreachCount {
	var out []store.BreachCount
	for c, n := range m {
		out = append(out, store.BreachCount{Category: c, Subjects: n})
	}
	slices.SortFunc(out, func(a, b store.BreachCount) int {
		return cmp.Compare(pdv1.DataCategory_value[a.Category], pdv1.DataCategory_value[b.Category])
	})
	return out
}

// putAffected writes the list of affected subjects beside the record, in
// chunks in id order, each sealed under the record's data key and bound to
// its chunk, and names the list in the record. The list's name follows
// from its content, so a retry of the same open rewrites the same chunks
// and a crash before the record is written leaves nothing a retry does not
// replace; an open that saw other subjects writes a list of its own.
func (s *BreachRecords) putAffected(ctx context.Context, r *store.BreachRecord, affected []affectedSubject) error {
	if len(affected) == 0 {
		return nil
	}
	b, err := json.Marshal(affected)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	r.SubjectSet = s.DerivedID("breach-subjects", r.ID, fmt.Sprintf("%x/%d", sum, s.breachChunk))
	dk, err := s.Vault.DataKey(ctx, r.DataKeyID(), vault.ReadOrCreateKey)
	if err != nil {
		return err
	}
	var chunks []*store.BreachSubjects
	for part := range slices.Chunk(affected, s.breachChunk) {
		b, err := json.Marshal(part)
		if err != nil {
			return err
		}
		c := &store.BreachSubjects{ID: store.BreachSubjectsID(r.ID, r.SubjectSet, int64(len(chunks)+1)), Breach: r.ID}
		if c.Sealed, err = dk.Seal(b, envelope.AAD("breach", r.ID, "subjects", c.ID)); err != nil {
			return err
		}
		chunks = append(chunks, c)
	}
	r.SubjectChunks = int64(len(chunks))
	return s.Store.PutBreachSubjects(ctx, chunks)
}

// eachAffected hands fn a record's affected subjects a chunk at a time, in
// id order: one exact read each, so a breach of everyone is never held
// whole.
func (s *Service) eachAffected(ctx context.Context, r *store.BreachRecord, fn func([]affectedSubject) error) error {
	for seq := int64(1); seq <= r.SubjectChunks; seq++ {
		part, err := s.affectedChunk(ctx, r, seq)
		if err != nil {
			return err
		}
		if err := fn(part); err != nil {
			return err
		}
	}
	return nil
}

// affectedChunk reads and opens chunk seq (from 1) of a record's list of
// affected subjects.
func (s *Service) affectedChunk(ctx context.Context, r *store.BreachRecord, seq int64) ([]affectedSubject, error) {
	chunks, err := s.Store.BreachSubjectChunks(ctx, r.ID, r.SubjectSet, seq, 1)
	if err != nil {
		return nil, err
	}
	if len(chunks) == 0 {
		return nil, fmt.Errorf("breach record %s: chunk %d of %d of its subjects is missing", r.ID, seq, r.SubjectChunks)
	}
	dk, err := s.Vault.DataKey(ctx, r.DataKeyID(), vault.ExistingKey)
	if err != nil {
		return nil, err
	}
	b, err := dk.Open(chunks[0].Sealed, envelope.AAD("breach", r.ID, "subjects", chunks[0].ID))
	if err != nil {
		return nil, err
	}
	var part []affectedSubject
	return part, json.Unmarshal(b, &part)
}

// affectedIDs is the ids of a record's affected subjects by controller,
// for the controllers want keeps.
func (s *Service) affectedIDs(ctx context.Context, r *store.BreachRecord, want func(controller string) bool) (map[string][]string, error) {
	out := map[string][]string{}
	err := s.eachAffected(ctx, r, func(part []affectedSubject) error {
		for _, a := range part {
			if want(a.Controller) {
				out[a.Controller] = append(out[a.Controller], a.ID)
			}
		}
		return nil
	})
	return out, err
}

// breachDeadline is when the report to IMY is due.
func breachDeadline(r *store.BreachRecord) time.Time {
	return time.Unix(0, r.AwareAt).Add(notifyWithin)
}

// breachOverdue says whether a record is open, its risk calls for a report to
// IMY, none was sent, and the deadline is past.
func breachOverdue(r *store.BreachRecord, now time.Time) bool {
	return r.ClosedAt == 0 && r.Risk != riskUnlikely && len(r.Reports) == 0 && now.After(breachDeadline(r))
}

// recordView is a record as the API shows it to an operator or the DPO;
// ids, when given, are each controller's subjects.
func (s *Service) recordView(r *store.BreachRecord, now time.Time, ids map[string][]string) *pdv1.BreachRecord {
	out := &pdv1.BreachRecord{
		BreachId: r.ID, AwareTime: core.Timestamp(r.AwareAt), Description: r.Description,
		Category:   core.EnumValue[pdv1.BreachCategory](pdv1.BreachCategory_value, r.Category),
		Risk:       core.EnumValue[pdv1.BreachRisk](pdv1.BreachRisk_value, r.Risk),
		Assessment: &pdv1.BreachAssessmentScope{PrincipalId: r.Scope.Principal, MasterKeyVersion: r.Scope.KeyVersion, StartTime: core.Timestamp(r.Scope.From), EndTime: core.Timestamp(r.Scope.To)},
		AssessTime: core.Timestamp(r.AssessedAt), Subjects: r.Subjects, Records: r.Records, Categories: categoryCounts(r.Categories),
		ChainsBroken: r.ChainsBroken, LikelyConsequences: r.Consequences, MeasuresTaken: r.MeasuresTaken,
		MeasuresPlanned: r.MeasuresPlanned, Contact: r.Contact, DeadlineTime: core.Timestamp(breachDeadline(r).UnixNano()),
		TimeLeft: durationpb.New(breachDeadline(r).Sub(now)), Overdue: breachOverdue(r, now),
		OpenTime: core.Timestamp(r.OpenedAt), OpenedBy: r.OpenedBy, CloseTime: core.Timestamp(r.ClosedAt),
	}
	for _, p := range r.Controllers {
		out.Controllers = append(out.Controllers, partView(p, ids[p.Controller]))
	}
	for _, rep := range r.Reports {
		out.Reports = append(out.Reports, reportView(r.ID, &rep))
	}
	for _, d := range r.Decisions {
		out.Decisions = append(out.Decisions, &pdv1.BreachDecision{
			Kind: core.EnumValue[pdv1.BreachDecisionKind](pdv1.BreachDecisionKind_value, d.Kind), DecideTime: core.Timestamp(d.At),
			DecidedBy: d.By, Decision: d.Decision, Reason: d.Reason,
		})
	}
	if n := r.Notices; n != nil {
		out.SubjectNotices = &pdv1.BreachSubjectNotices{
			Subjects: n.Subjects, Notified: n.Notified, RestrictedNotified: n.RestrictedNotified, Erased: n.Erased,
			Unreachable: n.Unreachable, LeftToControllers: n.LeftToControllers, NotifyTime: core.Timestamp(n.At),
		}
	}
	return out
}

func partView(p store.BreachControllerPart, ids []string) *pdv1.BreachControllerPart {
	return &pdv1.BreachControllerPart{ControllerId: p.Controller, Subjects: p.Subjects, Categories: categoryCounts(p.Categories), SubjectIds: ids, NoticeTime: core.Timestamp(p.NoticeAt)}
}

func categoryCounts(cs []store.BreachCount) []*pdv1.BreachCategoryCount {
	var out []*pdv1.BreachCategoryCount
	for _, c := range cs {
		out = append(out, &pdv1.BreachCategoryCount{Category: core.EnumValue[pdv1.DataCategory](pdv1.DataCategory_value, c.Category), Subjects: c.Subjects})
	}
	return out
}

// GetBreachRecord returns a record: whole to an operator or the DPO, only
// the part about its own data to a customer's controller (NOT_FOUND when
// the breach touched none of it, as for a record that does not exist).
func (s *BreachRecords) GetBreachRecord(ctx context.Context, req *pdv1.GetBreachRecordRequest) (*pdv1.GetBreachRecordResponse, error) {
	var v validate.Violations
	id := validBreachID(&v, req.GetBreachId())
	if err := v.Err(); err != nil {
		return nil, err
	}
	c, err := s.Caller(ctx)
	if err != nil {
		return nil, err
	}
	r, err := s.Store.GetBreachRecord(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFoundRecord()
	}
	if err != nil {
		return nil, s.Internal(ctx, "get breach record", err)
	}
	now := s.Now()
	if !c.ActsFor(auth.AllTenants) {
		return s.customerPart(ctx, c, r, now)
	}
	core.Note(ctx, audit.Touch{Tenant: rules.CompanyController, Fields: breachRecordFields})
	var ids map[string][]string
	if req.GetSubjectIds() {
		core.Note(ctx, audit.Touch{Tenant: rules.CompanyController, Fields: []string{"breach_subjects"}})
		if ids, err = s.affectedIDs(ctx, r, func(string) bool { return true }); err != nil {
			return nil, s.Internal(ctx, "get breach record", err)
		}
	}
	return &pdv1.GetBreachRecordResponse{Record: s.recordView(r, now, ids)}, nil
}

// customerPart is what a customer's controller reads of a record: what
// happened, the risk and the measures, and the parts of the controllers it
// acts for, with their subjects' ids; nothing of the company's or other
// customers' data, nor the company's reports and decisions.
func (s *BreachRecords) customerPart(ctx context.Context, c *auth.Caller, r *store.BreachRecord, now time.Time) (*pdv1.GetBreachRecordResponse, error) {
	var parts []store.BreachControllerPart
	for _, p := range r.Controllers {
		if p.Controller != rules.CompanyController && c.ActsFor(p.Controller) {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return nil, notFoundRecord()
	}
	for _, p := range parts {
		core.Note(ctx, audit.Touch{Tenant: p.Controller, Fields: []string{"breach_record", "breach_subjects"}})
	}
	ids, err := s.affectedIDs(ctx, r, func(ctrl string) bool { return ctrl != rules.CompanyController && c.ActsFor(ctrl) })
	if err != nil {
		return nil, s.Internal(ctx, "get breach record", err)
	}
	out := &pdv1.BreachRecord{
		BreachId: r.ID, AwareTime: core.Timestamp(r.AwareAt), Description: r.Description,
		Category:           core.EnumValue[pdv1.BreachCategory](pdv1.BreachCategory_value, r.Category),
		Risk:               core.EnumValue[pdv1.BreachRisk](pdv1.BreachRisk_value, r.Risk),
		AssessTime:         core.Timestamp(r.AssessedAt),
		LikelyConsequences: r.Consequences, MeasuresTaken: r.MeasuresTaken, MeasuresPlanned: r.MeasuresPlanned,
		Contact: r.Contact, OpenTime: core.Timestamp(r.OpenedAt), CloseTime: core.Timestamp(r.ClosedAt),
	}
	for _, p := range parts {
		out.Subjects += p.Subjects
		out.Controllers = append(out.Controllers, partView(p, ids[p.Controller]))
	}
	return &pdv1.GetBreachRecordResponse{Record: out}, nil
}

// breachIDPattern is the form of a record's id (DerivedID).
var breachIDPattern = regexp.MustCompile(`^[a-z2-7]{26}$`)

func validBreachID(v *validate.Violations, id string) string {
	switch {
	case id == "":
		v.Add("breach_id", "is required")
	case !breachIDPattern.MatchString(id):
		v.Add("breach_id", "is not a breach record id")
	}
	return id
}

// breachRegister is every record, by the time the company became aware of
// it, oldest first (ties by id); with how many are open and overdue.
func (s *Service) breachRegister(ctx context.Context, now time.Time) (records []*store.BreachRecord, open, late int64, err error) {
	err = s.Store.EachBreachRecord(ctx, func(r *store.BreachRecord) error {
		records = append(records, r)
		if r.ClosedAt == 0 {
			open++
		}
		if breachOverdue(r, now) {
			late++
		}
		return nil
	})
	slices.SortFunc(records, func(a, b *store.BreachRecord) int {
		return cmp.Or(cmp.Compare(a.AwareAt, b.AwareAt), cmp.Compare(a.ID, b.ID))
	})
	return records, open, late, err
}

// ListBreachRecords is the register of breaches (Art. 33(5)).
func (s *BreachRecords) ListBreachRecords(ctx context.Context, req *pdv1.ListBreachRecordsRequest) (*pdv1.ListBreachRecordsResponse, error) {
	if _, err := s.overseer(ctx); err != nil {
		return nil, err
	}
	core.Note(ctx, audit.Touch{Tenant: rules.CompanyController, Fields: []string{"breach_register"}})
	now := s.Now()
	records, open, late, err := s.breachRegister(ctx, now)
	if err != nil {
		return nil, s.Internal(ctx, "list breach records", err)
	}
	out := &pdv1.ListBreachRecordsResponse{ReadTime: core.Timestamp(now.UnixNano()), Open: open, Overdue: late}
	for _, r := range records {
		if req.GetOpenOnly() && r.ClosedAt != 0 {
			continue
		}
		out.Records = append(out.Records, s.recordView(r, now, nil))
	}
	return out, nil
}

// UpdateBreachRecord records decisions on a record, each with the reason.
func (s *BreachRecords) UpdateBreachRecord(ctx context.Context, req *pdv1.UpdateBreachRecordRequest) (*pdv1.UpdateBreachRecordResponse, error) {
	var v validate.Violations
	id := validBreachID(&v, req.GetBreachId())
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	reason := validBreachText(&v, "reason", req.GetReason(), true, s.Now())
	risk := ""
	if req.GetRisk() != pdv1.BreachRisk_BREACH_RISK_UNSPECIFIED {
		risk = v.Enum("risk", req.GetRisk())
	}
	changes := []struct {
		kind, field, value string
		into               func(*store.BreachRecord) *string
	}{
		{pdv1.BreachDecisionKind_BREACH_DECISION_KIND_CONSEQUENCES.String(), "likely_consequences", req.GetLikelyConsequences(), func(r *store.BreachRecord) *string { return &r.Consequences }},
		{pdv1.BreachDecisionKind_BREACH_DECISION_KIND_MEASURES.String(), "measures_taken", req.GetMeasuresTaken(), func(r *store.BreachRecord) *string { return &r.MeasuresTaken }},
		{pdv1.BreachDecisionKind_BREACH_DECISION_KIND_MEASURES.String(), "measures_planned", req.GetMeasuresPlanned(), func(r *store.BreachRecord) *string { return &r.MeasuresPlanned }},
		{pdv1.BreachDecisionKind_BREACH_DECISION_KIND_CONTACT.String(), "contact", req.GetContact(), func(r *store.BreachRecord) *string { return &r.Contact }},
	}
	any := risk != "" || req.GetClose()
	for i := range changes {
		if changes[i].field == "contact" {
			changes[i].value = v.Text("contact", changes[i].value, maxContactText, false, false)
		} else {
			changes[i].value = validBreachText(&v, changes[i].field, changes[i].value, false, s.Now())
		}
		any = any || changes[i].value != ""
	}
	if !any {
		v.Add("risk", "nothing to change: give a risk, a text to change, or close")
	}
	c, err := s.change(ctx, v)
	if err != nil {
		return nil, err
	}
	fp, k, now := s.Fingerprint(req), core.OpKey(key), s.Now()
	r, err := s.Store.UpdateBreachRecord(ctx, id, func(r *store.BreachRecord) error {
		if err := core.CheckReplay(r.Ops, k, fp); err != nil {
			return err
		}
		if r.ClosedAt != 0 {
			return fault.FailedPrecondition("the breach record is closed")
		}
		at := now.UnixNano()
		if risk != "" {
			r.Risk = risk
			r.Decisions = append(r.Decisions, store.BreachDecision{Kind: decisionRisk, At: at, By: c.ID(), Decision: risk, Reason: reason})
		}
		for _, ch := range changes {
			if ch.value != "" {
				*ch.into(r) = ch.value
				r.Decisions = append(r.Decisions, store.BreachDecision{Kind: ch.kind, At: at, By: c.ID(), Decision: ch.field + " changed", Reason: reason})
			}
		}
		if req.GetClose() {
			r.ClosedAt = at
			r.Decisions = append(r.Decisions, store.BreachDecision{Kind: decisionClosed, At: at, By: c.ID(), Decision: "closed", Reason: reason})
		}
		r.Ops = core.AppendOp(r.Ops, store.Op{Key: k, Fingerprint: fp}, now)
		return nil
	})
	if r, err = s.afterUpdate(ctx, id, r, err); err != nil {
		return nil, err
	}
	return &pdv1.UpdateBreachRecordResponse{Record: s.recordView(r, now, nil)}, nil
}

// afterUpdate is the record after an update of it that returned r and err:
// for a replay, the record as it is now; a missing record is NOT_FOUND.
func (s *BreachRecords) afterUpdate(ctx context.Context, id string, r *store.BreachRecord, err error) (*store.BreachRecord, error) {
	var rep *core.Replayed
	switch {
	case err == nil:
		return r, nil
	case errors.As(err, &rep):
		if r, err = s.Store.GetBreachRecord(ctx, id); err == nil {
			return r, nil
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFoundRecord()
	}
	return nil, s.Internal(ctx, "breach record", err)
}

// notFoundRecord answers a breach record that does not exist, or that the
// caller may not see.
func notFoundRecord() error { return status.Error(codes.NotFound, "breach record not found") }

// breachGauges are the open and overdue breach records, read from the
// store when scraped: records are few, and a breach's deadline is counted
// in hours, so every scrape reads them afresh.
type breachGauges struct {
	s             *Service
	open, overdue *prometheus.Desc
}

// BreachMetrics is the collector of the breach gauges.
func (s *Service) BreachMetrics() prometheus.Collector {
	return &breachGauges{
		s:       s,
		open:    prometheus.NewDesc("personaldata_breaches_open", "Breach records not closed.", nil, nil),
		overdue: prometheus.NewDesc("personaldata_breaches_overdue", "Open breach records past their 72-hour deadline with no report to the supervisory authority (Art. 33(1)).", nil, nil),
	}
}

func (g *breachGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.open
	ch <- g.overdue
}

func (g *breachGauges) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, open, late, err := g.s.breachRegister(ctx, g.s.Now())
	if err != nil {
		return // nothing true to say
	}
	ch <- prometheus.MustNewConstMetric(g.open, prometheus.GaugeValue, float64(open))
	ch <- prometheus.MustNewConstMetric(g.overdue, prometheus.GaugeValue, float64(late))
}

// breachRecordViews is the register of breaches as the API shows it.
func (s *Service) breachRecordViews(ctx context.Context, now time.Time) ([]*pdv1.BreachRecord, error) {
	records, _, _, err := s.breachRegister(ctx, now)
	if err != nil {
		return nil, err
	}
	out := make([]*pdv1.BreachRecord, 0, len(records))
	for _, r := range records {
		out = append(out, s.recordView(r, now, nil))
	}
	return out, nil
}

// breachSubjectsPerChunk is how many affected subjects a chunk of a
// record's list holds by default: some 125 bytes each sealed (with two
// categories), so a chunk is about 250 KB, far below a document's 16 MB,
// and a breach of a million subjects is 500 chunks.
const breachSubjectsPerChunk = 2000
