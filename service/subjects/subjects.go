package subjects

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/fault"
	"github.com/example/personaldata/service/rules"
	"github.com/example/personaldata/service/validate"
	"github.com/example/personaldata/service/vault"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store"
)

// CreateSubject records a new subject.
func (s *Service) CreateSubject(ctx context.Context, req *pdv1.CreateSubjectRequest) (*pdv1.CreateSubjectResponse, error) {
	now := s.Now()
	var v validate.Violations
	c, err := s.Caller(ctx)
	if err != nil {
		return nil, err
	}
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	controller := v.ControllerFor(c, req.GetControllerId())
	person := v.Person(req.GetPerson(), rules.PersonFields, now)
	prov := v.Provenance(req.GetChannel(), req.GetReference(), req.GetPerformedBy(), false)
	if err := v.Err(); err != nil {
		return nil, err
	}
	if !c.ActsFor(controller) {
		return nil, fault.PermissionDenied(fault.ReasonTenantNotPermitted, map[string]string{"controller_id": controller}, "the caller does not act for this controller")
	}
	prov = prov.By(c)
	if err := s.RequireAgreement(ctx, controller, pdv1.Purpose_PURPOSE_UNSPECIFIED, rules.CategoriesOf(presentFields(&person))); err != nil {
		return nil, err
	}
	// The id follows from the idempotency key, so a retry finds the
	// subject its first attempt made: not by reading first (a new subject
	// is the common case), but when its insert collides.
	id := s.subjectIDFor(controller, key)
	fp := s.Fingerprint(req)
	keys := s.LookupKeys(controller, &person)
	// The data key is stored while the lookup keys are claimed: neither
	// write needs the other, so a create waits for one round trip less.
	dataKey := make(chan vault.NewKey, 1)
	go func() { dataKey <- s.Vault.NewSubjectKey(ctx, id) }()
	taken, err := s.claimKeys(ctx, id, keys)
	dk := <-dataKey
	if err != nil {
		if status.Code(err) == codes.AlreadyExists {
			// Perhaps held by this very subject, rectified since the
			// first attempt of this create.
			if resp, ok, rerr := s.createdBefore(ctx, id, key, fp, nil); ok {
				return resp, rerr
			}
		}
		s.Vault.DropNewKey(ctx, id, dk)
		core.Note(ctx, audit.Touch{Tenant: controller, Fields: keyFields})
		return nil, s.Internal(ctx, "create", err)
	}
	if dk.Err != nil {
		s.releaseKeys(ctx, id, taken)
		return nil, s.Internal(ctx, "create", dk.Err)
	}
	core.Note(ctx, audit.Touch{SubjectID: id, Tenant: controller, Fields: presentFields(&person)})
	sub := &store.Subject{
		ID:         id,
		Version:    1,
		Controller: controller,
		Person:     &person,
		Changes: []store.Change{{
			Kind:        pdv1.ChangeKind_CHANGE_KIND_CREATED.String(),
			Fields:      presentFields(&person),
			At:          now.UnixNano(),
			Channel:     prov.Channel,
			Reference:   prov.Reference,
			PerformedBy: prov.PerformedBy,
			Version:     1,
		}},
		Keys:      core.KeyIDs(keys),
		CreateOp:  &store.Op{Key: core.OpKey(key), Fingerprint: fp, Result: 1, At: now.UnixNano()},
		CreatedAt: now.UnixNano(),
		UpdatedAt: now.UnixNano(),
	}
	err = s.Vault.InsertSubject(ctx, sub)
	if errors.Is(err, store.ErrExists) {
		// An earlier attempt of the same request made the subject.
		if resp, ok, rerr := s.createdBefore(ctx, id, key, fp, taken); ok {
			return resp, rerr
		}
		err = fmt.Errorf("subject %w, then vanished", store.ErrExists)
	}
	if err != nil {
		// The claimed keys stay: if the insert did land, they are right; if
		// not, they are stale and get taken over after their lease.
		return nil, s.Internal(ctx, "create", err)
	}
	core.Note(ctx, audit.Touch{SubjectID: id, NewChain: true})
	return &pdv1.CreateSubjectResponse{Subject: subjectToProto(sub)}, nil
}

// createdBefore answers a create whose subject an earlier attempt made, if
// it exists (ok). Of the keys this attempt took for the person as the
// request gives it, those the subject no longer holds (it was rectified or
// erased since) are given back. An erased subject's data key, which this
// attempt may have stored anew, is destroyed again.
func (s *Service) createdBefore(ctx context.Context, id, key string, fp []byte, taken []string) (*pdv1.CreateSubjectResponse, bool, error) {
	sub, err := s.Vault.GetSubject(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, s.Internal(ctx, "create", err)
	}
	var stale []string
	for _, k := range taken {
		if !s.HoldsKey(sub, k) {
			stale = append(stale, k)
		}
	}
	s.releaseKeys(ctx, id, stale)
	if sub.Erasure != nil {
		if err := s.Vault.Shred(ctx, id); err != nil {
			return nil, true, s.Internal(ctx, "create", err)
		}
	}
	core.Note(ctx, audit.Touch{SubjectID: sub.ID, Tenant: sub.Controller, Fields: presentFields(sub.Person)})
	resp, err := s.replayCreate(sub, key, fp)
	return resp, true, err
}

// replayCreate answers a create whose subject exists already.
func (s *Service) replayCreate(sub *store.Subject, key string, fp []byte) (*pdv1.CreateSubjectResponse, error) {
	if sub.Erasure != nil {
		return nil, fault.ErasedError(sub) // created by this key once, erased since
	}
	if op := createOpOf(sub, core.OpKey(key)); op == nil || !bytes.Equal(op.Fingerprint, fp) {
		return nil, validate.KeyReused()
	}
	return &pdv1.CreateSubjectResponse{Subject: subjectToProto(sub)}, nil
}

// presentFields names the fields of p that hold a value.
func presentFields(p *store.Person) []string {
	if p == nil {
		return nil
	}
	var out []string
	for _, f := range rules.PersonFields {
		if !FieldEmpty(p, f) {
			out = append(out, f)
		}
	}
	return out
}

// FieldEmpty reports whether p holds nothing in field f.
func FieldEmpty(p *store.Person, f string) bool {
	switch f {
	case rules.FieldIdentityNumber:
		return p.IdentityNumber == ""
	case rules.FieldGivenName:
		return p.GivenName == ""
	case rules.FieldFamilyName:
		return p.FamilyName == ""
	case rules.FieldEmail:
		return p.Email == ""
	case rules.FieldPhone:
		return p.Phone == ""
	case rules.FieldPostalAddress:
		return len(p.Address.Lines) == 0
	}
	return true
}

// FindSubject looks a subject up by identity number or e-mail address.
func (s *Service) FindSubject(ctx context.Context, req *pdv1.FindSubjectRequest) (*pdv1.FindSubjectResponse, error) {
	c, err := s.Caller(ctx)
	if err != nil {
		return nil, err
	}
	var v validate.Violations
	controller := v.ControllerFor(c, req.GetControllerId())
	var field string
	var p store.Person
	// The person rules check the key; the request names it at its top level.
	switch req.GetKey().(type) {
	case *pdv1.FindSubjectRequest_IdentityNumber:
		field = rules.FieldIdentityNumber
		p = v.PersonAt(field, &pdv1.Person{IdentityNumber: req.GetIdentityNumber()}, field, s.Now())
	case *pdv1.FindSubjectRequest_Email:
		field = rules.FieldEmail
		p = v.PersonAt(field, &pdv1.Person{Email: req.GetEmail()}, field, s.Now())
	default:
		v.Add("identity_number", "either identity_number or email is required")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	if !c.ActsFor(controller) {
		// Another tenant's records do not exist for this caller; the
		// attempt is on that tenant's trail, so a probe by a leaked token
		// shows in a breach assessment.
		core.Note(ctx, audit.Touch{Tenant: controller, Fields: []string{field}})
		return nil, fault.NotFound()
	}
	if err := s.RequireAgreement(ctx, controller, pdv1.Purpose_PURPOSE_UNSPECIFIED, rules.CategoriesOf([]string{field})); err != nil {
		return nil, err
	}
	var id string
	for _, k := range s.LookupKeys(controller, &p) {
		if k.Field == field {
			id = k.ID
		}
	}
	sub, err := s.FindByKey(ctx, id)
	if err != nil {
		return nil, s.Internal(ctx, "find", err)
	}
	if sub == nil {
		core.Note(ctx, audit.Touch{Tenant: controller, Fields: []string{field}})
		return nil, fault.NotFound()
	}
	core.Note(ctx, audit.Touch{SubjectID: sub.ID, Tenant: controller, Fields: []string{field}})
	// Which subject, and its state; the data itself only through a purpose
	// view or an access request, where the purpose and rights rules apply.
	found := subjectToProto(sub)
	found.Person = nil
	return &pdv1.FindSubjectResponse{Subject: found}, nil
}

// keyFields are what a lookup or a uniqueness check reads.
var keyFields = []string{rules.FieldIdentityNumber, rules.FieldEmail}

// RectifySubject changes the fields named in the update mask.
func (s *Service) RectifySubject(ctx context.Context, req *pdv1.RectifySubjectRequest) (*pdv1.RectifySubjectResponse, error) {
	if err := s.selfServiceRectifiable(ctx, req.GetUpdateMask().GetPaths()); err != nil {
		return nil, err
	}
	return s.rectify(ctx, req)
}

// rectify is RectifySubject after the data subject's limits: a new e-mail
// address or phone number of theirs comes here once its code was given
// (ConfirmContactChange).
func (s *Service) rectify(ctx context.Context, req *pdv1.RectifySubjectRequest) (*pdv1.RectifySubjectResponse, error) {
	now := s.Now()
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	id := v.SubjectID(req.GetSubjectId())
	if req.GetExpectedVersion() <= 0 {
		v.Add("expected_version", "is required: the version read before the change")
	}
	fields := v.UpdateMask(req.GetUpdateMask().GetPaths(), rules.PersonFields)
	newValues := v.Person(req.GetPerson(), fields, now)
	prov := v.Provenance(req.GetChannel(), req.GetReference(), req.GetPerformedBy(), true)
	if err := v.Err(); err != nil {
		return nil, err
	}
	fp := s.Fingerprint(req)
	sub, err := s.GetSubject(ctx, "rectify", id)
	if err != nil {
		return nil, err
	}
	core.Note(ctx, audit.Touch{SubjectID: id, Fields: fields})
	if err := s.OnControllersInstruction(ctx, sub); err != nil {
		return nil, err
	}
	if err := s.RequireAgreement(ctx, sub.Controller, pdv1.Purpose_PURPOSE_UNSPECIFIED, rules.CategoriesOf(fields)); err != nil {
		return nil, err
	}
	c, _ := s.Caller(ctx)
	prov = prov.By(c)
	// A retry answers what it did before any other check: its
	// expected_version is stale by then.
	var memo store.OpMemo
	if err := s.SubjectOp(ctx, sub, core.OpKey(key), fp, &memo); err != nil {
		return s.rectifyReplay(sub, err)
	}
	if sub.Version != req.GetExpectedVersion() {
		return nil, fault.StaleVersion("subject", req.GetExpectedVersion(), sub.Version)
	}
	oldKeys := s.LookupKeys(sub.Controller, sub.Person)
	person := applyFields(*sub.Person, newValues, fields)
	newKeys := s.LookupKeys(sub.Controller, &person)
	var added []core.LookupKey
	for i, k := range newKeys {
		if k.ID != oldKeys[i].ID {
			added = append(added, k)
		}
	}
	taken, err := s.claimKeys(ctx, id, added)
	if err != nil {
		return nil, s.Internal(ctx, "rectify", err)
	}
	var change store.Change
	updated, err := s.Vault.UpdateSubject(ctx, id, func(sub *store.Subject) error {
		if sub.Erasure != nil {
			return fault.ErasedError(sub)
		}
		if err := s.SubjectOp(ctx, sub, core.OpKey(key), fp, &memo); err != nil {
			return err
		}
		if sub.Version != req.GetExpectedVersion() {
			return fault.StaleVersion("subject", req.GetExpectedVersion(), sub.Version)
		}
		p := applyFields(*sub.Person, newValues, fields)
		sub.Person = &p
		// The old keys stay listed until erasure, which releases every key
		// the subject ever held; releasing them below is best effort.
		sub.Keys = mergeKeyIDs(sub.Keys, core.KeyIDs(newKeys))
		sub.UpdatedAt = now.UnixNano()
		change = store.Change{
			Kind:        pdv1.ChangeKind_CHANGE_KIND_RECTIFIED.String(),
			Fields:      fields,
			At:          now.UnixNano(),
			Channel:     prov.Channel,
			Reference:   prov.Reference,
			PerformedBy: prov.PerformedBy,
			Version:     sub.Version + 1,
		}
		sub.Changes = append(sub.Changes, change)
		core.RecordOp(sub, store.Op{Key: core.OpKey(key), Fingerprint: fp, Result: sub.Version + 1}, s.Now())
		return nil
	})
	if r := (*core.Replayed)(nil); errors.As(err, &r) {
		// Applied by a concurrent attempt, which holds the keys now.
		if updated, err = s.GetSubject(ctx, "rectify", id); err != nil {
			return nil, err
		}
		return s.rectifyReplay(updated, r)
	}
	if err != nil {
		s.releaseKeys(ctx, id, taken) // only those this call took
		return nil, s.Internal(ctx, "rectify", err)
	}
	for i, k := range oldKeys {
		if k.ID != newKeys[i].ID {
			s.releaseKeys(ctx, id, []string{k.ID})
		}
	}
	// Tell the recipients of earlier disclosures (Art. 19); if that fails,
	// so does the request, and its retry finishes it.
	if updated, err = s.SettleChange(ctx, updated); err != nil {
		return nil, s.Internal(ctx, "rectify", err)
	}
	return &pdv1.RectifySubjectResponse{Subject: subjectToProto(updated), Change: changeToProto(change)}, nil
}

// rectifyReplay answers a rectification that was applied before, or passes
// on another refusal.
func (s *Service) rectifyReplay(sub *store.Subject, err error) (*pdv1.RectifySubjectResponse, error) {
	var r *core.Replayed
	if !errors.As(err, &r) {
		return nil, err
	}
	if sub == nil {
		return nil, fault.NotFound()
	}
	out := &pdv1.RectifySubjectResponse{Subject: subjectToProto(sub)}
	for _, c := range sub.Changes {
		if c.Version == r.Op.Result {
			out.Change = changeToProto(c)
		}
	}
	return out, nil
}

// applyFields returns p with the named fields taken from values.
func applyFields(p, values store.Person, fields []string) store.Person {
	for _, f := range fields {
		switch f {
		case rules.FieldIdentityNumber:
			p.IdentityNumber = values.IdentityNumber
		case rules.FieldGivenName:
			p.GivenName = values.GivenName
		case rules.FieldFamilyName:
			p.FamilyName = values.FamilyName
		case rules.FieldEmail:
			p.Email = values.Email
		case rules.FieldPhone:
			p.Phone = values.Phone
		case rules.FieldPostalAddress:
			p.Address = values.Address
		}
	}
	return p
}

// AddHistoryEntry stores an e-mail conversation or error report.
func (s *Service) AddHistoryEntry(ctx context.Context, req *pdv1.AddHistoryEntryRequest) (*pdv1.AddHistoryEntryResponse, error) {
	now := s.Now()
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	id := v.SubjectID(req.GetSubjectId())
	entry := v.HistoryEntry(req.GetEntry(), now)
	if err := v.Err(); err != nil {
		return nil, err
	}
	fp := s.Fingerprint(req)
	core.Note(ctx, audit.Touch{SubjectID: id, Fields: []string{"history"}})
	if _, err := s.checkSubject(ctx, "add history", id, pdv1.Purpose_PURPOSE_UNSPECIFIED, historyCategory); err != nil {
		return nil, err
	}
	entry.SubjectID = id
	entry.CreatedAt = now.UnixNano()
	updated, err := s.Vault.UpdateSubject(ctx, id, func(sub *store.Subject) error {
		if sub.Erasure != nil {
			return fault.ErasedError(sub)
		}
		if err := s.SubjectOp(ctx, sub, core.OpKey(key), fp, nil); err != nil {
			return err
		}
		entry.Seq = sub.HistoryCount
		sub.HistoryCount++
		core.RecordOp(sub, store.Op{Key: core.OpKey(key), Fingerprint: fp, Result: entry.Seq}, s.Now())
		return nil
	})
	var r *core.Replayed
	switch {
	case errors.As(err, &r):
		// Applied before: make sure its entry exists (the first attempt may
		// have stopped before writing it), then answer with it.
		entry.Seq = r.Op.Result
	case errors.Is(err, store.ErrNotFound):
		return nil, fault.NotFound()
	case err != nil:
		return nil, s.Internal(ctx, "add history", err)
	}
	_ = updated
	if err := s.Vault.PutHistoryEntry(ctx, &entry); err != nil {
		return nil, s.Internal(ctx, "add history", err)
	}
	stored, err := s.Vault.GetHistoryEntry(ctx, id, entry.Seq)
	if err != nil {
		return nil, s.Internal(ctx, "add history", err)
	}
	return &pdv1.AddHistoryEntryResponse{Entry: historyToProto(stored)}, nil
}

// ListHistoryEntries pages through a subject's history, oldest first.
func (s *Service) ListHistoryEntries(ctx context.Context, req *pdv1.ListHistoryEntriesRequest) (*pdv1.ListHistoryEntriesResponse, error) {
	var v validate.Violations
	id := v.SubjectID(req.GetSubjectId())
	size := int64(v.PageSize(req.GetPageSize(), validate.DefaultPageSize))
	from, ok := decodePageToken(req.GetPageToken(), id)
	if !ok {
		v.Add("page_token", "is not a token from this listing")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	sub, err := s.GetSubject(ctx, "list history", id)
	if err != nil {
		return nil, err
	}
	core.Note(ctx, audit.Touch{SubjectID: id, Fields: []string{"history"}})
	if err := s.RequireAgreement(ctx, sub.Controller, pdv1.Purpose_PURPOSE_UNSPECIFIED, historyCategory); err != nil {
		return nil, err
	}
	// Up to size entries, fewer when they reach maxPageBytes (access.go).
	out := &pdv1.ListHistoryEntriesResponse{}
	to, pageBytes := min(from+size, sub.HistoryCount), 0
	next := from
	for ; next < to && pageBytes < maxPageBytes; next++ {
		e, err := s.historyEntry(ctx, id, next)
		if err != nil {
			return nil, s.Internal(ctx, "list history", err)
		}
		if e != nil {
			out.Entries = append(out.Entries, e)
			pageBytes += proto.Size(e)
		}
	}
	if next < sub.HistoryCount {
		out.NextPageToken = encodePageToken(id, next)
	}
	return out, nil
}

// Page tokens are opaque to callers: the subject and the next sequence
// number, so a token cannot be used on another subject's listing.
func encodePageToken(subjectID string, next int64) string {
	return subjectToken(subjectID, strconv.FormatInt(next, 10))
}

func decodePageToken(token, subjectID string) (int64, bool) {
	if token == "" {
		return 0, true
	}
	parts, ok := subjectTokenParts(token, subjectID, 1)
	if !ok {
		return 0, false
	}
	next, err := strconv.ParseInt(parts[0], 10, 64)
	return next, err == nil && next >= 0
}

// subjectToken is an opaque page token bound to one subject: its id and the
// cursor's parts, so that a token of another subject's listing is refused.
// Ids and parts hold no "/".
func subjectToken(subjectID string, parts ...string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strings.Join(append([]string{subjectID}, parts...), "/")))
}

// subjectTokenParts returns the n parts of a subjectToken of subjectID.
func subjectTokenParts(token, subjectID string, n int) ([]string, bool) {
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return nil, false
	}
	parts := strings.Split(string(b), "/")
	if len(parts) != n+1 || parts[0] != subjectID {
		return nil, false
	}
	return parts[1:], true
}

// RestrictProcessing limits processing of a subject to storage only.
func (s *Service) RestrictProcessing(ctx context.Context, req *pdv1.RestrictProcessingRequest) (*pdv1.RestrictProcessingResponse, error) {
	now := s.Now()
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	id := v.SubjectID(req.GetSubjectId())
	ground := v.Enum("ground", req.GetGround())
	prov := v.Provenance(req.GetChannel(), req.GetReference(), req.GetPerformedBy(), true)
	if err := v.Err(); err != nil {
		return nil, err
	}
	c, err := s.Caller(ctx)
	if err != nil {
		return nil, err
	}
	prov = prov.By(c)
	sub, err := s.updateForRequest(ctx, "restrict", id, key, s.Fingerprint(req), func(sub *store.Subject) error {
		if sub.Restriction != nil {
			return fault.FailedPrecondition("processing is already restricted (ground %s)", sub.Restriction.Ground)
		}
		sub.Restriction = &store.Restriction{Ground: ground, At: now.UnixNano(), Channel: prov.Channel, Reference: prov.Reference, PerformedBy: prov.PerformedBy}
		sub.Changes = append(sub.Changes, store.Change{
			Kind: pdv1.ChangeKind_CHANGE_KIND_RESTRICTED.String(), At: now.UnixNano(),
			Channel: prov.Channel, Reference: prov.Reference, PerformedBy: prov.PerformedBy,
			Version: sub.Version + 1, RestrictionGround: ground,
		})
		sub.UpdatedAt = now.UnixNano()
		return nil
	})
	if err != nil {
		return nil, err
	}
	if sub, err = s.SettleChange(ctx, sub); err != nil { // tell the recipients (Art. 19)
		return nil, s.Internal(ctx, "restrict", err)
	}
	return &pdv1.RestrictProcessingResponse{Subject: subjectToProto(sub)}, nil
}

// LiftRestriction ends a restriction of processing.
func (s *Service) LiftRestriction(ctx context.Context, req *pdv1.LiftRestrictionRequest) (*pdv1.LiftRestrictionResponse, error) {
	now := s.Now()
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	id := v.SubjectID(req.GetSubjectId())
	resolution := v.Enum("resolution", req.GetResolution())
	prov := v.Provenance(req.GetChannel(), req.GetReference(), req.GetPerformedBy(), true)
	if err := v.Err(); err != nil {
		return nil, err
	}
	c, err := s.Caller(ctx)
	if err != nil {
		return nil, err
	}
	prov = prov.By(c)
	sub, err := s.updateForRequest(ctx, "lift restriction", id, key, s.Fingerprint(req), func(sub *store.Subject) error {
		if sub.Restriction == nil {
			return fault.FailedPrecondition("processing is not restricted")
		}
		if resolution == pdv1.LiftResolution_LIFT_RESOLUTION_CORRECTED.String() && !rectifiedSince(sub, sub.Restriction.At) {
			return fault.FailedPrecondition("resolution CORRECTED needs a rectification since the restriction; rectify first or use CONFIRMED_CORRECT")
		}
		sub.Restriction = nil
		sub.Changes = append(sub.Changes, store.Change{
			Kind: pdv1.ChangeKind_CHANGE_KIND_RESTRICTION_LIFTED.String(), At: now.UnixNano(),
			Channel: prov.Channel, Reference: prov.Reference, PerformedBy: prov.PerformedBy,
			Version: sub.Version + 1, LiftResolution: resolution,
		})
		sub.UpdatedAt = now.UnixNano()
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &pdv1.LiftRestrictionResponse{Subject: subjectToProto(sub)}, nil
}

// rectifiedSince reports whether the subject was rectified at or after at.
func rectifiedSince(sub *store.Subject, at int64) bool {
	for _, c := range sub.Changes {
		if c.Kind == pdv1.ChangeKind_CHANGE_KIND_RECTIFIED.String() && c.At >= at {
			return true
		}
	}
	return false
}

// updateForRequest applies change to a live subject under the idempotency
// key: a replay returns the subject as it is now without writing.
func (s *Service) updateForRequest(ctx context.Context, op, id, key string, fp []byte, change func(*store.Subject) error) (*store.Subject, error) {
	core.Note(ctx, audit.Touch{SubjectID: id, Fields: []string{"restriction"}})
	sub, err := s.checkSubject(ctx, op, id, pdv1.Purpose_PURPOSE_UNSPECIFIED, nil)
	if err != nil {
		return nil, err
	}
	if err := s.OnControllersInstruction(ctx, sub); err != nil {
		return nil, err
	}
	var replay bool
	sub, err = s.Vault.UpdateSubject(ctx, id, func(sub *store.Subject) error {
		if sub.Erasure != nil {
			return fault.ErasedError(sub)
		}
		if err := s.SubjectOp(ctx, sub, core.OpKey(key), fp, nil); err != nil {
			return err
		}
		if err := change(sub); err != nil {
			return err
		}
		core.RecordOp(sub, store.Op{Key: core.OpKey(key), Fingerprint: fp, Result: sub.Version + 1}, s.Now())
		return nil
	})
	switch {
	case core.IsReplay(err):
		replay = true
	case errors.Is(err, store.ErrNotFound):
		return nil, fault.NotFound()
	case err != nil:
		return nil, s.Internal(ctx, op, err)
	}
	if replay {
		return s.GetSubject(ctx, op, id)
	}
	return sub, nil
}

// GetSubjectForPurpose returns only the fields a purpose needs, and refuses
// while processing is restricted.
func (s *Service) GetSubjectForPurpose(ctx context.Context, req *pdv1.GetSubjectForPurposeRequest) (*pdv1.GetSubjectForPurposeResponse, error) {
	var v validate.Violations
	id := v.SubjectID(req.GetSubjectId())
	rule, ok := rules.PurposeRules[req.GetPurpose()]
	if !ok {
		v.Add("purpose", "is required: one of the documented purposes")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	c, err := s.Caller(ctx)
	if err != nil {
		return nil, err
	}
	if !c.MayUse(req.GetPurpose()) {
		return nil, fault.PurposeDenied(req.GetPurpose())
	}
	sub, err := s.GetSubject(ctx, "purpose view", id)
	if err != nil {
		return nil, err
	}
	core.Note(ctx, audit.Touch{SubjectID: id, Purpose: req.GetPurpose().String(), Fields: rule.Fields})
	if err := RefuseIfRestricted(sub); err != nil {
		return nil, err
	}
	if err := core.RequireConsent(sub, req.GetPurpose()); err != nil { // direct marketing (core/consent.go)
		return nil, err
	}
	if err := s.RequireAgreement(ctx, sub.Controller, req.GetPurpose(), rules.CategoriesOf(rule.Fields)); err != nil {
		return nil, err
	}
	return &pdv1.GetSubjectForPurposeResponse{
		SubjectId: sub.ID,
		Purpose:   req.GetPurpose(),
		Version:   sub.Version,
		Person:    PersonToProto(sub.Person, rule.Fields),
		Fields:    rule.Fields,
	}, nil
}

// historyCategory is what history entries are.
var historyCategory = []pdv1.DataCategory{pdv1.DataCategory_DATA_CATEGORY_HISTORY}

// checkSubject makes sure, before a change, that the subject exists, is
// not erased, is visible to the caller, and that an agreement covers the
// change when the data is a customer's.
func (s *Service) checkSubject(ctx context.Context, op, id string, purpose pdv1.Purpose, categories []pdv1.DataCategory) (*store.Subject, error) {
	sub, err := s.GetSubject(ctx, op, id)
	if err != nil {
		return nil, err
	}
	return sub, s.RequireAgreement(ctx, sub.Controller, purpose, categories)
}

// isErased reports whether err is the answer for an erased subject.
func isErased(err error) bool {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() == fault.ReasonErased {
			return true
		}
	}
	return false
}

// RefuseIfRestricted is the rule that a restricted subject's data is not
// processed: only storage and the subject's own rights go on.
func RefuseIfRestricted(sub *store.Subject) error {
	if sub.Restriction != nil {
		return fault.RestrictedError(sub)
	}
	return nil
}

// EraseSubject removes a subject's personal data and leaves a tombstone.
func (s *Service) EraseSubject(ctx context.Context, req *pdv1.EraseSubjectRequest) (*pdv1.EraseSubjectResponse, error) {
	now := s.Now()
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	id := v.SubjectID(req.GetSubjectId())
	ground := v.Enum("ground", req.GetGround())
	prov := v.Provenance(req.GetChannel(), req.GetReference(), req.GetPerformedBy(), true)
	if err := v.Err(); err != nil {
		return nil, err
	}
	fp := s.Fingerprint(req)
	// Erasure needs no agreement in force: deleting is what the end of one
	// requires. It does need the caller to act for the controller.
	current, err := s.GetSubject(ctx, "erase", id)
	if err != nil && !isErased(err) {
		return nil, err
	}
	if err := s.OnControllersInstruction(ctx, current); err != nil {
		return nil, err
	}
	core.Note(ctx, audit.Touch{SubjectID: id, Fields: append([]string{"erasure"}, rules.ErasedCategories...)})
	c, _ := s.Caller(ctx)
	prov = prov.By(c)
	sub, err := s.EraseStored(ctx, id, ground, prov, store.Op{Key: core.OpKey(key), Fingerprint: fp}, now)
	if err != nil {
		return nil, err
	}
	return erasureResponse(sub, now), nil
}

// EraseStored erases the stored subject id: it leaves a tombstone that
// records ground, provenance and op, then removes the keys and history.
// Erasing an erased subject writes nothing but finishes an interrupted
// cleanup, so it may be repeated.
func (s *Service) EraseStored(ctx context.Context, id, ground string, prov validate.Provenance, op store.Op, now time.Time) (*store.Subject, error) {
	sub, err := s.Vault.UpdateSubject(ctx, id, func(sub *store.Subject) error {
		// Erasing again is fine, but not under a key used for another
		// request. Looked up on a live subject too, so that the op the
		// erasure overwrites is kept (store.FindSubjectOp).
		if err := s.SubjectOp(ctx, sub, op.Key, op.Fingerprint, nil); err != nil && !core.IsReplay(err) {
			return err
		}
		if sub.Erasure != nil {
			if sub.CleanupPending {
				return nil // finish what an interrupted erasure left
			}
			return &core.Replayed{}
		}
		sub.Erasure = &store.Erasure{Ground: ground, At: now.UnixNano(), Channel: prov.Channel, Reference: prov.Reference, PerformedBy: prov.PerformedBy}
		keepHeld(sub, now) // what active legal holds cover stays, storage only
		sub.Restriction = nil
		sub.CleanupPending = true
		// Forget the fingerprints of earlier requests that the document
		// holds: they were taken over personal data. Those in the
		// collection of ops, keyed hashes too, go with their window
		// (retention/sweeper.go); a retry of a change to the erased subject answers
		// the erasure first.
		sub.CreateOp, sub.Ops = nil, nil
		core.RecordOp(sub, store.Op{Key: op.Key, Fingerprint: op.Fingerprint, Result: sub.Version + 1}, now)
		sub.Changes = append(sub.Changes, store.Change{
			Kind: pdv1.ChangeKind_CHANGE_KIND_ERASED.String(), At: now.UnixNano(),
			Channel: prov.Channel, Reference: prov.Reference, PerformedBy: prov.PerformedBy,
			Version: sub.Version + 1, ErasureGround: ground,
		})
		sub.UpdatedAt = now.UnixNano()
		return nil
	})
	switch {
	case core.IsReplay(err):
		if sub, err = s.Vault.GetSubject(ctx, id); err != nil {
			return nil, s.Internal(ctx, "erase", err)
		}
	case errors.Is(err, store.ErrNotFound):
		return nil, fault.NotFound()
	case err != nil:
		return nil, s.Internal(ctx, "erase", err)
	}
	if err := s.RecordErased(ctx, sub); err != nil {
		return nil, err
	}
	// Tell the recipients (Art. 19); an objection withdraws consents.
	if sub, err = s.SettleChange(ctx, sub); err != nil {
		return nil, s.Internal(ctx, "erase", err)
	}
	if sub.CleanupPending {
		if sub, err = s.FinishErasure(ctx, sub); err != nil {
			return nil, s.Internal(ctx, "erase", err)
		}
	}
	return sub, nil
}

// FinishErasure removes the documents beside the subject's own that hold or
// point to its personal data: the lookup keys and the history entries. Each
// step may be repeated, so a retried erasure completes an interrupted one.
func (s *Service) FinishErasure(ctx context.Context, sub *store.Subject) (*store.Subject, error) {
	for _, k := range sub.Keys {
		if err := s.Store.ReleaseKey(ctx, k, sub.ID); err != nil {
			return nil, err
		}
	}
	for seq := range sub.HistoryCount {
		if keepsHistory(sub) {
			break // a legal hold keeps it
		}
		if err := s.Store.DeleteHistoryEntry(ctx, sub.ID, seq); err != nil {
			return nil, err
		}
	}
	// Crypto-shredding: without its data key, nothing of the subject that
	// survives in a copy of the data (a backup) can be decrypted. Data that
	// legal holds keep still needs it; the retention sweeper shreds it.
	if len(sub.Kept) == 0 {
		if err := s.Vault.Shred(ctx, sub.ID); err != nil {
			return nil, err
		}
	}
	kept := sub.Kept
	return s.Vault.UpdateSubject(ctx, sub.ID, func(sub *store.Subject) error {
		sub.Keys = nil
		// Unless the retention sweeper purged meanwhile: it finishes that.
		if slices.Equal(sub.Kept, kept) {
			sub.CleanupPending = false
		}
		return nil
	})
}
