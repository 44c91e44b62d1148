package accountability

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/auth"
	"github.com/example/personaldata/service/fault"
	"github.com/example/personaldata/service/principals"
	"github.com/example/personaldata/service/rules"
	"github.com/example/personaldata/service/validate"
	"github.com/example/personaldata/store"
)

// Breach implements BreachService: what a suspected compromise of a
// credential or a master key affected (GDPR Art. 33 and 34), answered from
// the audit trail with ids, field names and counts, never a personal value.
type Breach struct {
	pdv1.UnimplementedBreachServiceServer
	*Service
}

// Breach returns the BreachService on the same store and audit log.
func (s *Service) Breach() *Breach { return &Breach{Service: s} }

// changingRPCs are the RPCs whose successful calls change what their events
// name; the fields named by every other RPC's successful calls were read
// (a disclosure's were handed over). A new RPC that changes personal data
// belongs here, or the report counts its changes as reads.
var changingRPCs = map[string]bool{
	pdv1.PersonalDataService_CreateSubject_FullMethodName:                     true,
	pdv1.PersonalDataService_RectifySubject_FullMethodName:                    true,
	pdv1.PersonalDataService_AddHistoryEntry_FullMethodName:                   true,
	pdv1.PersonalDataService_RestrictProcessing_FullMethodName:                true,
	pdv1.PersonalDataService_LiftRestriction_FullMethodName:                   true,
	pdv1.PersonalDataService_EraseSubject_FullMethodName:                      true,
	pdv1.ProcessorAgreementService_CreateProcessorAgreement_FullMethodName:    true,
	pdv1.ProcessorAgreementService_AmendProcessorAgreement_FullMethodName:     true,
	pdv1.ProcessorAgreementService_TerminateProcessorAgreement_FullMethodName: true,
	pdv1.ProcessorAgreementService_EraseControllerSubjects_FullMethodName:     true,
	pdv1.ConsentService_RecordConsent_FullMethodName:                          true,
	pdv1.ConsentService_WithdrawConsent_FullMethodName:                        true,
	pdv1.DisclosureService_AcknowledgeNotification_FullMethodName:             true,
	pdv1.RetentionService_PlaceHold_FullMethodName:                            true,
	pdv1.RetentionService_ReleaseHold_FullMethodName:                          true,
	pdv1.RetentionService_RunRetentionSweep_FullMethodName:                    true,
	pdv1.PrincipalService_CreatePrincipal_FullMethodName:                      true,
	pdv1.PrincipalService_UpdatePrincipal_FullMethodName:                      true,
	pdv1.PrincipalService_IssueToken_FullMethodName:                           true,
	pdv1.PrincipalService_RevokePrincipal_FullMethodName:                      true,
	pdv1.RightsRequestService_OpenRightsRequest_FullMethodName:                true,
	pdv1.RightsRequestService_ConfirmVerificationCode_FullMethodName:          true,
	pdv1.RightsRequestService_AttestIdentity_FullMethodName:                   true,
	pdv1.RightsRequestService_DecideRightsRequest_FullMethodName:              true,
	pdv1.RightsRequestService_ExtendRightsRequest_FullMethodName:              true,
	pdv1.RightsRequestService_ForwardRightsRequest_FullMethodName:             true,
	pdv1.RightsRequestService_FulfilRightsRequest_FullMethodName:              true,
	pdv1.RequesterOutboxService_AcknowledgeOutboxMessage_FullMethodName:       true,
	pdv1.PolicyService_PublishPolicyVersion_FullMethodName:                    true,
	pdv1.PolicyService_RecordPolicyAcknowledgement_FullMethodName:             true,
}

// eventCategories are the categories of data that the names in events stand
// for, beside the Person fields (FieldCategories): what an access or an
// erasure names.
var eventCategories = map[string]pdv1.DataCategory{
	"history":        pdv1.DataCategory_DATA_CATEGORY_HISTORY,
	"identification": pdv1.DataCategory_DATA_CATEGORY_IDENTIFICATION,
	"contact":        pdv1.DataCategory_DATA_CATEGORY_CONTACT,
}

// refusedOutcomes are the outcomes of calls a rule refused, as the audit
// recorder counts refusals.
var refusedOutcomes = []string{codes.PermissionDenied.String(), codes.FailedPrecondition.String()}

// refusalPrefix marks the reason the recorder gives a refused call, which
// is not a field.
const refusalPrefix = "refused:"

// breachScope is what a report covers.
type breachScope struct {
	principal  string
	keyVersion uint32
	// from and to bound event times in Unix nanoseconds, from inclusive (0:
	// open), to exclusive (never open: at most just after the report's time).
	from, to int64
	// end is the end of the window as the summary gives it.
	end time.Time
}

func (b breachScope) inWindow(t time.Time) bool {
	n := t.UnixNano()
	return n >= b.from && n < b.to
}

// AssessBreachImpact streams the report: the summary, then each chain.
// Counts come first, so the trail is read twice, a few chains at a time;
// only the chains being read and the totals are held.
func (s *Breach) AssessBreachImpact(req *pdv1.AssessBreachImpactRequest, stream grpc.ServerStreamingServer[pdv1.AssessBreachImpactResponse]) error {
	ctx := stream.Context()
	c, err := s.Caller(ctx)
	if err != nil {
		return err
	}
	scope, err := s.breachScope(req)
	if err != nil {
		return err
	}
	if !c.ActsFor(auth.AllTenants) {
		return fault.PermissionDenied(fault.ReasonKindNotPermitted, nil, "the breach-impact report spans every tenant: it is for operators")
	}
	win, err := s.readWindow(ctx, scope)
	if err != nil {
		return s.Internal(ctx, "assess breach", err)
	}
	sum := newBreachTotals()
	if err := s.assess(ctx, scope, win, func(ci *pdv1.BreachChainImpact) error { sum.add(ci); return nil }); err != nil {
		return err
	}
	if err := stream.Send(&pdv1.AssessBreachImpactResponse{Impact: &pdv1.AssessBreachImpactResponse_Summary{Summary: sum.summary(scope)}}); err != nil {
		return err
	}
	return s.assess(ctx, scope, win, func(ci *pdv1.BreachChainImpact) error {
		return stream.Send(&pdv1.AssessBreachImpactResponse{Impact: &pdv1.AssessBreachImpactResponse_Chain{Chain: ci}})
	})
}

// breachScope validates a request, naming every bad field.
func (s *Breach) breachScope(req *pdv1.AssessBreachImpactRequest) (breachScope, error) {
	now := s.Now()
	var v validate.Violations
	sc := breachScope{principal: req.GetPrincipalId(), keyVersion: req.GetMasterKeyVersion()}
	start, end := req.GetStartTime(), req.GetEndTime()
	switch {
	case sc.principal == "" && sc.keyVersion == 0 && start == nil && end == nil:
		for _, f := range []string{"principal_id", "master_key_version", "start_time", "end_time"} {
			v.Add(f, "a scope is required: a principal_id, a master_key_version or a time window")
		}
	case sc.principal != "" && sc.keyVersion != 0:
		v.Add("principal_id", "give one of principal_id and master_key_version")
		v.Add("master_key_version", "give one of principal_id and master_key_version")
	case sc.principal != "" && !principals.ValidPrincipalID(sc.principal):
		v.Add("principal_id", "is not a principal id")
	}
	if start != nil {
		sc.from = v.PastTime("start_time", start, now)
	}
	sc.end, sc.to = now, now.UnixNano()+1 // up to and including the report's time
	if end != nil {
		switch {
		case end.CheckValid() != nil:
			v.Add("end_time", "is not a valid time")
		case start != nil && start.CheckValid() == nil && !end.AsTime().After(start.AsTime()):
			v.Add("end_time", "must be after start_time")
		case end.AsTime().Before(now):
			sc.end, sc.to = end.AsTime(), end.AsTime().UnixNano()
		}
	}
	return sc, v.Err()
}

// assess hands emit what the scope touched, chain by chain in chain order:
// for a master key version, each subject whose data key it wraps; else
// each chain with events of the principal or window. A window read from
// the tree's leaves (win, complete) is emitted as read; otherwise each
// chain's events in scope are proved, a series of store reads, up to
// breachWorkers chains at once, emitted in order. The faults of the tree
// itself come last (TreeChain).
func (s *Breach) assess(ctx context.Context, sc breachScope, win *breachWindow, emit func(*pdv1.BreachChainImpact) error) error {
	run := newInOrder(ctx, breachWorkers, func(ci *pdv1.BreachChainImpact) error {
		if ci == nil {
			return nil // a job that found nothing in scope
		}
		return emit(ci)
	})
	defer run.stop()
	// One prover for the report: the events in scope are proved against
	// the newest checkpoint, sharing the tree's nodes read.
	pr, err := s.AuditLog.NewProver(ctx)
	if err != nil {
		return s.Internal(ctx, "assess breach", err)
	}
	switch {
	case win != nil && win.complete:
		for _, ci := range win.chains {
			if err = run.start(func(context.Context) (*pdv1.BreachChainImpact, error) { return ci, nil }); err != nil {
				break
			}
		}
		if err == nil && sc.principal != "" {
			err = run.start(func(ctx context.Context) (*pdv1.BreachChainImpact, error) { return s.attemptsNaming(ctx, sc, pr) })
		}
	case sc.keyVersion != 0:
		err = s.Store.EachDataKeyAt(ctx, sc.keyVersion, func(k *store.DataKey) error {
			return run.start(func(ctx context.Context) (*pdv1.BreachChainImpact, error) { return s.underKey(ctx, sc, pr, k.ID) })
		})
	default:
		var cur *chainTally
		finish := func() error {
			t := cur
			return run.start(func(ctx context.Context) (*pdv1.BreachChainImpact, error) { return s.checked(ctx, pr, t) })
		}
		err = s.AuditLog.Scan(ctx, store.AuditScan{Principal: sc.principal, From: sc.from, To: sc.to}, func(e audit.Event) error {
			// A principal's refused authentications name it in their
			// fields, not as the principal: found below.
			if e.Chain == audit.ReadinessChain {
				return nil // probes of the store, no one's data
			}
			if cur != nil && cur.chain != e.Chain {
				if err := finish(); err != nil {
					return err
				}
				cur = nil
			}
			if cur == nil {
				cur = newChainTally(e.Chain)
			}
			cur.add(e)
			return nil
		})
		if err == nil && cur != nil {
			err = finish()
		}
		if err == nil && sc.principal != "" {
			// Last, in chain order ("unauthenticated" sorts after every
			// other chain).
			err = run.start(func(ctx context.Context) (*pdv1.BreachChainImpact, error) { return s.attemptsNaming(ctx, sc, pr) })
		}
	}
	if err == nil && win != nil && win.tree != nil {
		err = run.start(func(context.Context) (*pdv1.BreachChainImpact, error) { return win.tree, nil })
	}
	if err == nil {
		err = run.wait()
	}
	if err != nil {
		return s.Internal(ctx, "assess breach", err)
	}
	return nil
}

// attemptsNaming is the report of the refused authentications in the
// window whose credentials named sc's principal: a walk of the chain
// "unauthenticated", which grows by at most some 70 events a second however
// many attempts are made (audit.Attempts).
func (s *Breach) attemptsNaming(ctx context.Context, sc breachScope, pr *audit.Prover) (*pdv1.BreachChainImpact, error) {
	t := newChainTally(audit.UnauthenticatedChain)
	const page = 500
	for from := int64(1); ; {
		evs, err := s.AuditLog.List(ctx, t.chain, from, page)
		if err != nil {
			return nil, err
		}
		for _, e := range evs {
			if _, _, _, named := audit.ParseAttempt(e); sc.inWindow(e.Time) && slices.Contains(named, sc.principal) {
				t.add(e)
			}
		}
		if len(evs) < page {
			break
		}
		from = evs[len(evs)-1].Seq + 1
	}
	if t.events == 0 {
		return nil, nil
	}
	return s.checked(ctx, pr, t)
}

// breachWorkers is how many chains a report reads at once: enough to keep
// the store busy while each chain's reads wait on it.
const breachWorkers = 4

// underKey is what a subject whose data key a master key version wraps
// holds (read from which of its fields are sealed, never opened), and its
// chain's events in the window.
func (s *Breach) underKey(ctx context.Context, sc breachScope, pr *audit.Prover, id string) (*pdv1.BreachChainImpact, error) {
	t := newChainTally(audit.SubjectChain(id))
	var held []pdv1.DataCategory
	sub, err := s.Store.GetSubject(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound): // a key whose create did not finish
	case err != nil:
		return nil, err
	default:
		t.tenant, held = sub.Controller, categoriesHeld(sub)
	}
	const page = 200
	for from := int64(1); ; {
		evs, err := s.AuditLog.List(ctx, t.chain, from, page)
		if err != nil {
			return nil, err
		}
		for _, e := range evs {
			if sc.inWindow(e.Time) {
				t.add(e)
			}
		}
		if len(evs) < page {
			break // the end, or a gap, which the check reports
		}
		from = evs[len(evs)-1].Seq + 1
	}
	ci, err := s.checked(ctx, pr, t)
	if err != nil {
		return nil, err
	}
	ci.CategoriesHeld = held
	return ci, nil
}

// checked is t's report with the events it counts proved against the
// Merkle tree, and the tree against the newest checkpoint (audit.Prover):
// the time it takes grows with the events in scope, not with the chain's
// history. A chain with events from before the tree began is verified
// whole, as VerifyAuditChain did before the tree.
func (s *Breach) checked(ctx context.Context, pr *audit.Prover, t *chainTally) (*pdv1.BreachChainImpact, error) {
	res, ok, err := pr.Check(ctx, t.evs)
	if err == nil && !ok {
		res, err = s.AuditLog.Verify(ctx, t.chain)
	}
	if err != nil {
		return nil, err
	}
	ci := t.proto()
	ci.Check = &pdv1.BreachChainCheck{Intact: res.Intact(), Events: res.Events, FirstBrokenSeq: res.FirstBroken, Reason: res.Reason,
		LeafIndex: res.Leaf, CheckpointSize: int64(res.Checkpoint)}
	return ci, nil
}

// categoriesHeld are the categories of data a subject holds, from which of
// its fields are sealed and whether it has history: what a master key
// version exposes.
func categoriesHeld(sub *store.Subject) []pdv1.DataCategory {
	var fields []string
	if p := sub.Sealed; p != nil {
		for f, v := range map[string][]byte{
			rules.FieldIdentityNumber: p.IdentityNumber, rules.FieldGivenName: p.GivenName, rules.FieldFamilyName: p.FamilyName,
			rules.FieldEmail: p.Email, rules.FieldPhone: p.Phone, rules.FieldPostalAddress: p.Address,
		} {
			if len(v) > 0 {
				fields = append(fields, f)
			}
		}
	}
	history := pdv1.DataCategory_DATA_CATEGORY_HISTORY
	if sub.HistoryCount > 0 && (sub.Erasure == nil || slices.Contains(sub.Kept, history.String())) {
		fields = append(fields, "history")
	}
	return categoriesNamed(fields)
}

// categoriesNamed are the categories of data that names in events stand
// for, each once, in enum order.
func categoriesNamed(names []string) []pdv1.DataCategory {
	var out []pdv1.DataCategory
	for _, n := range names {
		c, ok := rules.FieldCategories[n]
		if !ok {
			c, ok = eventCategories[n]
		}
		if ok && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

// chainTally gathers the events in scope of one chain.
type chainTally struct {
	chain, tenant            string
	events, refusals         int64
	first, last              time.Time
	rpcs                     map[string]*pdv1.BreachRpcCount
	outcomes                 map[string]int64
	read, changed, attempted map[string]bool
	// failures counts the refused authentications of the chain
	// "unauthenticated", by reason and source.
	failures map[[2]string]int64
	// evs are the events counted, which the report proves.
	evs []audit.Event
}

func newChainTally(chain string) *chainTally {
	t := &chainTally{chain: chain, rpcs: map[string]*pdv1.BreachRpcCount{}, outcomes: map[string]int64{},
		read: map[string]bool{}, changed: map[string]bool{}, attempted: map[string]bool{}, failures: map[[2]string]int64{}}
	if id, ok := strings.CutPrefix(chain, "tenants/"); ok {
		t.tenant = id
	}
	return t
}

func (t *chainTally) add(e audit.Event) {
	t.events++
	t.evs = append(t.evs, e)
	if t.tenant == "" {
		t.tenant = e.Tenant
	}
	if t.first.IsZero() || e.Time.Before(t.first) {
		t.first = e.Time
	}
	if e.Time.After(t.last) {
		t.last = e.Time
	}
	rc := t.rpcs[e.RPC]
	if rc == nil {
		rc = &pdv1.BreachRpcCount{Rpc: e.RPC}
		t.rpcs[e.RPC] = rc
	}
	rc.Events++
	t.outcomes[e.Outcome]++
	if slices.Contains(refusedOutcomes, e.Outcome) {
		t.refusals++
		rc.Refusals++
	}
	if e.Chain == audit.UnauthenticatedChain {
		// Its fields say who tried and why, not what data.
		reason, source, n, _ := audit.ParseAttempt(e)
		t.failures[[2]string{reason, source}] += n
		return
	}
	into := t.attempted
	if e.Outcome == codes.OK.String() {
		into = t.read
		if changingRPCs[e.RPC] {
			into = t.changed
		}
	}
	for _, f := range e.Fields {
		if !strings.HasPrefix(f, refusalPrefix) {
			into[f] = true
		}
	}
}

func (t *chainTally) proto() *pdv1.BreachChainImpact {
	ci := &pdv1.BreachChainImpact{
		Chain: t.chain, TenantId: t.tenant, Events: t.events, Refusals: t.refusals,
		FieldsRead: sortedKeys(t.read), FieldsChanged: sortedKeys(t.changed), FieldsAttempted: sortedKeys(t.attempted),
		Rpcs: rpcCounts(t.rpcs), Outcomes: outcomeCounts(t.outcomes), FailedAuthentications: failureCounts(t.failures),
	}
	ci.CategoriesRead, ci.CategoriesChanged = categoriesNamed(ci.FieldsRead), categoriesNamed(ci.FieldsChanged)
	if id, ok := strings.CutPrefix(t.chain, "subjects/"); ok {
		ci.SubjectId = id
	}
	if t.events > 0 {
		ci.FirstEventTime, ci.LastEventTime = timestamppb.New(t.first), timestamppb.New(t.last)
	}
	return ci
}

// breachTotals adds up the chains of a report for its summary.
type breachTotals struct {
	sum           *pdv1.BreachSummary
	rpcs          map[string]*pdv1.BreachRpcCount
	outcomes      map[string]int64
	read, changed map[string]bool
	held          map[pdv1.DataCategory]int64
	failures      map[[2]string]int64
}

func newBreachTotals() *breachTotals {
	return &breachTotals{sum: &pdv1.BreachSummary{}, rpcs: map[string]*pdv1.BreachRpcCount{}, outcomes: map[string]int64{},
		read: map[string]bool{}, changed: map[string]bool{}, held: map[pdv1.DataCategory]int64{},
		failures: map[[2]string]int64{}}
}

func (t *breachTotals) add(ci *pdv1.BreachChainImpact) {
	s := t.sum
	s.Chains++
	if !ci.GetCheck().GetIntact() {
		s.ChainsBroken++
	}
	s.Events += ci.GetEvents()
	s.Refusals += ci.GetRefusals()
	if ci.GetSubjectId() != "" {
		s.Subjects++
		if len(ci.GetFieldsRead()) > 0 {
			s.SubjectsRead++
		}
		if len(ci.GetFieldsChanged()) > 0 {
			s.SubjectsChanged++
		}
	}
	for _, rc := range ci.GetRpcs() {
		sum := t.rpcs[rc.GetRpc()]
		if sum == nil {
			sum = &pdv1.BreachRpcCount{Rpc: rc.GetRpc()}
			t.rpcs[rc.GetRpc()] = sum
		}
		sum.Events += rc.GetEvents()
		sum.Refusals += rc.GetRefusals()
	}
	for _, oc := range ci.GetOutcomes() {
		t.outcomes[oc.GetOutcome()] += oc.GetEvents()
	}
	for _, f := range ci.GetFieldsRead() {
		t.read[f] = true
	}
	for _, f := range ci.GetFieldsChanged() {
		t.changed[f] = true
	}
	for _, c := range ci.GetCategoriesHeld() {
		t.held[c]++
	}
	for _, f := range ci.GetFailedAuthentications() {
		t.failures[[2]string{f.GetReason(), f.GetSource()}] += f.GetAttempts()
		t.sum.FailedAuthenticationAttempts += f.GetAttempts()
	}
}

func (t *breachTotals) summary(sc breachScope) *pdv1.BreachSummary {
	s := t.sum
	s.PrincipalId, s.MasterKeyVersion, s.EndTime = sc.principal, sc.keyVersion, timestamppb.New(sc.end)
	if sc.from != 0 {
		s.StartTime = timestamppb.New(time.Unix(0, sc.from).UTC())
	}
	s.Rpcs, s.Outcomes = rpcCounts(t.rpcs), outcomeCounts(t.outcomes)
	s.FailedAuthentications = failureCounts(t.failures)
	s.FieldsRead, s.FieldsChanged = sortedKeys(t.read), sortedKeys(t.changed)
	s.CategoriesRead, s.CategoriesChanged = categoriesNamed(s.FieldsRead), categoriesNamed(s.FieldsChanged)
	for _, c := range slices.Sorted(maps.Keys(t.held)) {
		s.CategoriesHeld = append(s.CategoriesHeld, &pdv1.BreachCategoryCount{Category: c, Subjects: t.held[c]})
	}
	return s
}

func sortedKeys(m map[string]bool) []string { return slices.Sorted(maps.Keys(m)) }

func rpcCounts(m map[string]*pdv1.BreachRpcCount) []*pdv1.BreachRpcCount {
	return slices.SortedFunc(maps.Values(m), func(a, b *pdv1.BreachRpcCount) int { return cmp.Compare(a.GetRpc(), b.GetRpc()) })
}

// failureCounts are the refused authentications by reason and source, in
// that order.
func failureCounts(m map[[2]string]int64) []*pdv1.BreachAuthFailureCount {
	var out []*pdv1.BreachAuthFailureCount
	for _, k := range slices.SortedFunc(maps.Keys(m), func(a, b [2]string) int {
		return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
	}) {
		out = append(out, &pdv1.BreachAuthFailureCount{Reason: k[0], Source: k[1], Attempts: m[k]})
	}
	return out
}

func outcomeCounts(m map[string]int64) []*pdv1.BreachOutcomeCount {
	var out []*pdv1.BreachOutcomeCount
	for _, o := range slices.Sorted(maps.Keys(m)) {
		out = append(out, &pdv1.BreachOutcomeCount{Outcome: o, Events: m[o]})
	}
	return out
}
