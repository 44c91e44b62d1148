package retention

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // Europe/Stockholm also where the machine has no zoneinfo

	"github.com/prometheus/client_golang/prometheus"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/fault"
	"github.com/example/personaldata/service/rules"
	"github.com/example/personaldata/service/subjects"
	"github.com/example/personaldata/service/validate"
	"github.com/example/personaldata/store"
)

// Retention implements RetentionService: legal retention holds, which keep
// categories of a subject's data past an erasure, storage only, until the
// hold ends; and the retention sweeper, which purges that data then
// (sweeper.go).
type Retention struct {
	pdv1.UnimplementedRetentionServiceServer
	*Service
	// holder names this process in the sweeper's lease.
	holder string
	// passMu runs one sweep at a time in this process: the background one
	// or one asked for by RunRetentionSweep.
	passMu sync.Mutex
	// metrics of the sweeps this process ran.
	sweeps         *prometheus.CounterVec
	lastSweep      prometheus.Gauge
	purged, ended  prometheus.Counter
	requestsPurged prometheus.Counter
}

// NewRetention returns the RetentionService on s's store and clock. Make one
// per process and register it on every listener: it is the process's
// identity in the sweeper's lease.
func NewRetention(s *Service) *Retention {
	b := make([]byte, 12)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return &Retention{
		Service: s, holder: "sweeper-" + hex.EncodeToString(b),
		sweeps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "personaldata_retention_sweeps_total",
			Help: "Retention sweep passes of this process, by result: ran, skipped (another replica held the lease) or failed.",
		}, []string{"result"}),
		lastSweep: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "personaldata_retention_last_sweep_timestamp_seconds",
			Help: "When this process last completed a retention sweep pass (Unix time).",
		}),
		purged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "personaldata_retention_purged_subjects_total",
			Help: "Subjects some of whose held data the sweeps of this process purged.",
		}),
		ended: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "personaldata_retention_holds_ended_total",
			Help: "Legal holds the sweeps of this process found past their end.",
		}),
		requestsPurged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "personaldata_retention_requests_purged_total",
			Help: "Answered rights requests whose personal values the sweeps of this process removed.",
		}),
	}
}

// Collectors are the sweeper's metrics, to register once.
func (s *Retention) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.sweeps, s.lastSweep, s.purged, s.ended, s.requestsPurged}
}

// observe counts one pass.
func (s *Retention) observe(res SweepResult, err error) {
	switch {
	case err != nil:
		s.sweeps.WithLabelValues("failed").Inc()
	case !res.Ran:
		s.sweeps.WithLabelValues("skipped").Inc()
	default:
		s.sweeps.WithLabelValues("ran").Inc()
		s.lastSweep.SetToCurrentTime()
		s.purged.Add(float64(len(res.PurgedSubjectIDs)))
		s.ended.Add(float64(res.HoldsEnded))
		s.requestsPurged.Add(float64(res.RequestsPurged))
	}
}

// maxHolds bounds the holds of one subject, active and ended.
const maxHolds = 100

// bookkeepingYears is how long after the end of the calendar year of a
// transaction Swedish accounting law keeps its records.
const bookkeepingYears = 7

// bookkeepingUntil is when a bookkeeping hold on a transaction at tx ends:
// seven years after the end of the calendar year of the transaction, the
// year taken in Swedish time. The year ends at 00:00 on 1 January of the
// next one, so the hold ends at 00:00 Europe/Stockholm on 1 January of the
// transaction's year + 8: a transaction on 2026-03-10 is kept until
// 2034-01-01T00:00+01:00, which is 2033-12-31T23:00Z.
func bookkeepingUntil(tx time.Time) time.Time {
	return time.Date(tx.In(core.Stockholm).Year()+1+bookkeepingYears, time.January, 1, 0, 0, 0, 0, core.Stockholm)
}

// holdIDPattern is what hold ids look like.
var holdIDPattern = regexp.MustCompile(`^[a-z0-9]{1,64}$`)

// holdIDFor derives a hold's id from its subject and the idempotency key of
// the request that placed it, so a retry names the same hold (and the same
// deadline, written before the hold).
func holdIDFor(subjectID, key string) string {
	h := sha256.Sum256([]byte("hold\x00" + subjectID + "\x00" + key))
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(h[:10]))
}

// holdNotFound is the answer for a hold the subject does not have.
func holdNotFound() error {
	return status.Error(codes.NotFound, "retention hold not found")
}

// validHoldCategories checks the categories of a hold and returns their names,
// each once, in report order.
func validHoldCategories(v *validate.Violations, cs []pdv1.DataCategory) []string {
	if len(cs) == 0 {
		v.Add("categories", "is required: one or more of DATA_CATEGORY_IDENTIFICATION, DATA_CATEGORY_CONTACT, DATA_CATEGORY_HISTORY")
		return nil
	}
	var out []string
	for _, c := range rules.DataCategories {
		if slices.Contains(cs, c) {
			out = append(out, c.String())
		}
	}
	for _, c := range cs {
		if !slices.Contains(rules.DataCategories, c) {
			v.Add("categories", "must be DATA_CATEGORY_IDENTIFICATION, DATA_CATEGORY_CONTACT or DATA_CATEGORY_HISTORY")
			break
		}
	}
	return out
}

// validFutureTime checks a required time after now, within what is stored.
func validFutureTime(v *validate.Violations, field string, t *timestamppb.Timestamp, now time.Time) int64 {
	switch {
	case t == nil:
		v.Add(field, "is required")
	case t.CheckValid() != nil:
		v.Add(field, "is not a valid time")
	case !t.AsTime().After(now):
		v.Add(field, "must be in the future")
	case t.AsTime().After(core.MaxTime):
		v.Add(field, "is too far in the future")
	default:
		return t.AsTime().UnixNano()
	}
	return 0
}

// validHold checks the hold a PlaceHold request asks for.
func validHold(v *validate.Violations, req *pdv1.PlaceHoldRequest, now time.Time) store.Hold {
	h := store.Hold{
		Basis:      v.Enum("basis", req.GetBasis()),
		Categories: validHoldCategories(v, req.GetCategories()),
		Reference:  v.Text("reference", req.GetReference(), validate.MaxReferenceLen, true, false),
	}
	rule, ok := rules.HoldRules[req.GetBasis()]
	if !ok {
		return h // basis is named already; the times depend on it
	}
	if !rule.FromTransaction {
		if req.GetTransactionTime() != nil {
			v.Add("transaction_time", "is only for HOLD_BASIS_BOOKKEEPING")
		}
		h.Until = validFutureTime(v, "until", req.GetUntil(), now)
		return h
	}
	if req.GetUntil() != nil {
		v.Add("until", "is computed from transaction_time for HOLD_BASIS_BOOKKEEPING: leave it unset")
	}
	if h.TransactionAt = v.PastTime("transaction_time", req.GetTransactionTime(), now); h.TransactionAt != 0 {
		until := bookkeepingUntil(time.Unix(0, h.TransactionAt))
		if !until.After(now) {
			v.Add("transaction_time", fmt.Sprintf("its bookkeeping period ended at %s: there is nothing left to hold", until.Format(time.RFC3339)))
		}
		h.Until = until.UnixNano()
	}
	return h
}

// PlaceHold keeps categories of a subject's data past an erasure until the
// hold ends. A hold on data a customer controls is the controller's to
// place, under an agreement that covers the categories.
func (s *Retention) PlaceHold(ctx context.Context, req *pdv1.PlaceHoldRequest) (*pdv1.PlaceHoldResponse, error) {
	now := s.Now()
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	id := v.SubjectID(req.GetSubjectId())
	hold := validHold(&v, req, now)
	if err := v.Err(); err != nil {
		return nil, err
	}
	c, err := s.Caller(ctx)
	if err != nil {
		return nil, err
	}
	sub, err := s.GetSubject(ctx, "place hold", id)
	if err != nil {
		return nil, err // an erased subject has nothing left to hold
	}
	core.Note(ctx, audit.Touch{SubjectID: id, Fields: []string{"holds"}})
	if err := s.OnControllersInstruction(ctx, sub); err != nil {
		return nil, err
	}
	var cats []pdv1.DataCategory
	for _, name := range hold.Categories {
		cats = append(cats, pdv1.DataCategory(pdv1.DataCategory_value[name]))
	}
	if err := s.RequireAgreement(ctx, sub.Controller, pdv1.Purpose_PURPOSE_UNSPECIFIED, cats); err != nil {
		return nil, err
	}
	fp := s.Fingerprint(req)
	hold.ID = holdIDFor(id, key)
	hold.PlacedAt = now.UnixNano()
	hold.PlacedBy = c.ID()
	var memo store.OpMemo
	if err := s.SubjectOp(ctx, sub, core.OpKey(key), fp, &memo); err != nil {
		return s.placeReplay(ctx, id, hold.ID, err)
	}
	// The deadline before the hold: the sweeper must find every hold that
	// may keep data. One whose hold never lands is removed when it is due.
	if err := s.Store.PutHoldDeadline(ctx, hold.Until, id, hold.ID); err != nil {
		return nil, s.Internal(ctx, "place hold", err)
	}
	updated, err := s.Vault.UpdateSubject(ctx, id, func(sub *store.Subject) error {
		if sub.Erasure != nil {
			return fault.ErasedError(sub)
		}
		if err := s.SubjectOp(ctx, sub, core.OpKey(key), fp, &memo); err != nil {
			return err
		}
		// The hold id comes from the key: a retry later than the ops the
		// subject remembers still finds its hold, and adds no second one.
		if findHold(sub.Holds, hold.ID) != nil {
			return &core.Replayed{}
		}
		if len(sub.Holds) >= maxHolds {
			return fault.FailedPrecondition("the subject has %d retention holds, the most it may have", maxHolds)
		}
		sub.Holds = append(sub.Holds, hold)
		core.RecordOp(sub, store.Op{Key: core.OpKey(key), Fingerprint: fp, Result: sub.Version + 1}, s.Now())
		sub.UpdatedAt = now.UnixNano()
		return nil
	})
	switch {
	case core.IsReplay(err):
		return s.placeReplay(ctx, id, hold.ID, err)
	case errors.Is(err, store.ErrNotFound):
		return nil, fault.NotFound()
	case err != nil:
		return nil, s.Internal(ctx, "place hold", err)
	}
	return &pdv1.PlaceHoldResponse{Hold: subjects.HoldToProto(findHold(updated.Holds, hold.ID))}, nil
}

// placeReplay answers a PlaceHold that was applied before with its hold.
func (s *Retention) placeReplay(ctx context.Context, subjectID, holdID string, err error) (*pdv1.PlaceHoldResponse, error) {
	h, err := s.replayedHold(ctx, subjectID, holdID, err)
	if err != nil {
		return nil, err
	}
	return &pdv1.PlaceHoldResponse{Hold: h}, nil
}

// replayedHold is the hold as it is now, for a request applied before; any
// other error is passed on.
func (s *Retention) replayedHold(ctx context.Context, subjectID, holdID string, err error) (*pdv1.RetentionHold, error) {
	if !core.IsReplay(err) {
		return nil, err
	}
	sub, err := s.Vault.GetSubject(ctx, subjectID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fault.NotFound()
	}
	if err != nil {
		return nil, s.Internal(ctx, "hold", err)
	}
	h := findHold(sub.Holds, holdID)
	if h == nil {
		return nil, holdNotFound()
	}
	return subjects.HoldToProto(h), nil
}

// ReleaseHold ends a hold early. Releasing an ended hold returns it as it
// is. It also works on an erased subject: what the hold kept is then purged
// by the next sweep, unless another hold still covers it.
func (s *Retention) ReleaseHold(ctx context.Context, req *pdv1.ReleaseHoldRequest) (*pdv1.ReleaseHoldResponse, error) {
	now := s.Now()
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	id := v.SubjectID(req.GetSubjectId())
	holdID := req.GetHoldId()
	if holdID == "" {
		v.Add("hold_id", "is required")
	} else if !holdIDPattern.MatchString(holdID) {
		v.Add("hold_id", "is not a hold id")
	}
	ref := v.Text("reference", req.GetReference(), validate.MaxReferenceLen, true, false)
	if err := v.Err(); err != nil {
		return nil, err
	}
	c, err := s.Caller(ctx)
	if err != nil {
		return nil, err
	}
	sub, err := s.GetSubject(ctx, "release hold", id)
	if sub == nil {
		return nil, err // erased subjects come with their tombstone: go on
	}
	core.Note(ctx, audit.Touch{SubjectID: id, Fields: []string{"holds"}})
	if err := s.OnControllersInstruction(ctx, sub); err != nil {
		return nil, err
	}
	fp := s.Fingerprint(req)
	var memo store.OpMemo
	if err := s.SubjectOp(ctx, sub, core.OpKey(key), fp, &memo); err != nil {
		return s.releaseReplay(ctx, id, holdID, err)
	}
	h := findHold(sub.Holds, holdID)
	if h == nil {
		return nil, holdNotFound()
	}
	if h.EndedAt != 0 {
		return &pdv1.ReleaseHoldResponse{Hold: subjects.HoldToProto(h)}, nil
	}
	// The new deadline before the release, as for a new hold.
	if err := s.Store.PutHoldDeadline(ctx, now.UnixNano(), id, holdID); err != nil {
		return nil, s.Internal(ctx, "release hold", err)
	}
	updated, err := s.Vault.UpdateSubject(ctx, id, func(sub *store.Subject) error {
		if err := s.SubjectOp(ctx, sub, core.OpKey(key), fp, &memo); err != nil {
			return err
		}
		h := findHold(sub.Holds, holdID)
		switch {
		case h == nil:
			return holdNotFound()
		case h.EndedAt != 0:
			return &core.Replayed{} // ended meanwhile: answer it as it is
		}
		h.EndedAt = now.UnixNano()
		h.ReleasedBy = c.ID()
		h.ReleaseReference = ref
		core.RecordOp(sub, store.Op{Key: core.OpKey(key), Fingerprint: fp, Result: sub.Version + 1}, s.Now())
		sub.UpdatedAt = now.UnixNano()
		return nil
	})
	switch {
	case core.IsReplay(err):
		return s.releaseReplay(ctx, id, holdID, err)
	case errors.Is(err, store.ErrNotFound):
		return nil, fault.NotFound()
	case err != nil:
		return nil, s.Internal(ctx, "release hold", err)
	}
	// Written again now that the release is committed: a sweep that read
	// the hold as still active in between may have removed it.
	if err := s.Store.PutHoldDeadline(ctx, now.UnixNano(), id, holdID); err != nil {
		return nil, s.Internal(ctx, "release hold", err)
	}
	if h.Until > now.UnixNano() {
		// The release's deadline stands in for the later one.
		_ = s.Store.DeleteHoldDeadline(ctx, store.HoldDeadlineID(h.Until, id, holdID)) // best effort: a stale deadline is harmless
	}
	return &pdv1.ReleaseHoldResponse{Hold: subjects.HoldToProto(findHold(updated.Holds, holdID))}, nil
}

// releaseReplay answers a ReleaseHold that was applied before.
func (s *Retention) releaseReplay(ctx context.Context, subjectID, holdID string, err error) (*pdv1.ReleaseHoldResponse, error) {
	h, err := s.replayedHold(ctx, subjectID, holdID, err)
	if err != nil {
		return nil, err
	}
	return &pdv1.ReleaseHoldResponse{Hold: h}, nil
}

// RunRetentionSweep runs one pass of the sweeper now, if this replica gets
// the sweeper's lease, and says what it did.
func (s *Retention) RunRetentionSweep(ctx context.Context, _ *pdv1.RunRetentionSweepRequest) (*pdv1.RunRetentionSweepResponse, error) {
	res, err := s.Sweep(ctx, pdv1.RetentionService_RunRetentionSweep_FullMethodName)
	if err != nil {
		return nil, s.Internal(ctx, "retention sweep", err)
	}
	return &pdv1.RunRetentionSweepResponse{PurgedSubjectIds: res.PurgedSubjectIDs, HoldsEnded: res.HoldsEnded, Ran: res.Ran}, nil
}

// findHold returns the hold with this id, or nil.
func findHold(holds []store.Hold, id string) *store.Hold {
	for i := range holds {
		if holds[i].ID == id {
			return &holds[i]
		}
	}
	return nil
}
