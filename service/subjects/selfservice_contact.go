package subjects

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/fault"
	"github.com/example/personaldata/service/rules"
	"github.com/example/personaldata/service/validate"
	"github.com/example/personaldata/service/vault"
	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/envelope"
)

// A data subject corrects their own record on their page (Art. 16): their
// name and postal address through RectifySubject, their e-mail address and
// phone number only once a code sent to the new one has been given back
// (StartContactChange, ConfirmContactChange), so that no one can move the
// sign-in and the company's messages to an address they do not hold. The
// personnummer is not theirs to change: the sign-in and every lookup rest
// on it, and the company corrects it when the person gets in touch.

// selfServiceRectifyFields are the fields a data subject may rectify
// directly; the e-mail and phone go through a code.
var selfServiceRectifyFields = []string{rules.FieldGivenName, rules.FieldFamilyName, rules.FieldPostalAddress}

// contactChangeFields are the fields changed with a code to the new value.
var contactChangeFields = []string{rules.FieldEmail, rules.FieldPhone}

// Reasons of refusals of a data subject's change.
const (
	reasonSelfServiceField     = "SELF_SERVICE_FIELD"
	reasonContactCodeExpired   = "CONTACT_CODE_EXPIRED"
	reasonContactCodeExhausted = "CONTACT_CODE_EXHAUSTED"
)

// selfServiceRectifiable refuses a data subject's rectification of a field
// not theirs to change directly. Bad paths are left to rectify to report.
func (s *Service) selfServiceRectifiable(ctx context.Context, paths []string) error {
	c, err := s.Caller(ctx)
	if err != nil || c.SelfServiceSubject() == "" {
		return nil
	}
	var v validate.Violations
	for _, f := range v.UpdateMask(paths, rules.PersonFields) {
		if !slices.Contains(selfServiceRectifyFields, f) {
			return fault.PermissionDenied(reasonSelfServiceField, map[string]string{"field": "person." + f},
				"a data subject may rectify only given_name, family_name and postal_address; email and phone go through StartContactChange, the identity number through support")
		}
	}
	return nil
}

// validContactField checks an update mask naming exactly one of email and phone.
func validContactField(v *validate.Violations, mask *fieldmaskpb.FieldMask) string {
	fields := v.UpdateMask(mask.GetPaths(), contactChangeFields)
	if len(mask.GetPaths()) > 0 && len(fields) != 1 {
		v.Add("update_mask", "must name exactly one of email, phone")
		return ""
	}
	if len(fields) != 1 {
		return ""
	}
	return fields[0]
}

// contactChallengeKey is the store's key of the change of field waiting
// for its code: one per subject and field, so a new start replaces it and
// no id of another subject's change can be sent.
func contactChallengeKey(subjectID, field string) string {
	h := sha256.Sum256([]byte("self-service-contact\x00" + subjectID + "\x00" + field))
	return hex.EncodeToString(h[:])
}

func contactAAD(key string) []byte { return envelope.AAD("contact-change", key) }

// onlyDataSubject refuses a caller that is not a data subject acting for
// themselves: these changes are the subject's own (staff rectify directly).
func (s *Service) onlyDataSubject(ctx context.Context) error {
	c, err := s.Caller(ctx)
	if err != nil {
		return err
	}
	if c.SelfServiceSubject() == "" {
		return fault.PermissionDenied(reasonSelfServiceField, nil, "only a data subject on their own page confirms a new contact detail with a code")
	}
	return nil
}

// StartContactChange sends a code to a new e-mail address or phone number.
func (s *Service) StartContactChange(ctx context.Context, req *pdv1.StartContactChangeRequest) (*pdv1.StartContactChangeResponse, error) {
	now := s.Now()
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	id := v.SubjectID(req.GetSubjectId())
	field := validContactField(&v, req.GetUpdateMask())
	var value store.Person
	if field != "" {
		value = v.Person(req.GetPerson(), []string{field}, now)
		if field == rules.FieldPhone && req.GetPerson().GetPhone() == "" {
			v.Add("person.phone", "is required")
		}
	}
	v.Channel(req.GetChannel(), true)
	if err := v.Err(); err != nil {
		return nil, err
	}
	if err := s.onlyDataSubject(ctx); err != nil {
		return nil, err
	}
	sub, err := s.GetSubject(ctx, "start contact change", id)
	if err != nil {
		return nil, err
	}
	core.Note(ctx, audit.Touch{SubjectID: id, Fields: []string{field}})
	if err := s.OnControllersInstruction(ctx, sub); err != nil {
		return nil, err
	}
	fp := s.Fingerprint(req)
	ckey := contactChallengeKey(id, field)
	old, err := s.Store.GetSelfServiceChallenge(ctx, ckey)
	switch {
	case err == nil && old.Op == core.OpKey(key) && string(old.Fingerprint) == string(fp) && now.UnixNano() < old.Expires:
		return &pdv1.StartContactChangeResponse{ExpireTime: core.Timestamp(old.Expires)}, nil // a retry: no second code
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return nil, s.Internal(ctx, "start contact change", err)
	}
	newValue := value.Email
	content := vault.OutboxContent{Language: "sv", Channel: pdv1.ContactChannel_CONTACT_CHANNEL_EMAIL.String(), To: value.Email,
		Subject: "Din kod för att bekräfta din nya e-postadress"}
	what := "din nya e-postadress"
	if field == rules.FieldPhone {
		newValue, what = value.Phone, "ditt nya telefonnummer"
		content.Channel, content.To, content.Subject = pdv1.ContactChannel_CONTACT_CHANNEL_SMS.String(), value.Phone, "Din kod för att bekräfta ditt nya telefonnummer"
	}
	c := &store.SelfServiceChallenge{ID: ckey, SubjectID: id, Nonce: make([]byte, 16), Created: now.UnixNano(),
		Expires: now.Add(core.SelfServiceCodeLifetime).UnixNano(), Op: core.OpKey(key), Fingerprint: fp}
	_, _ = rand.Read(c.Nonce) // never fails (crypto/rand)
	dk, err := s.Vault.DataKey(ctx, id, vault.ExistingKey)
	if err != nil {
		return nil, s.Internal(ctx, "start contact change", err)
	}
	if c.Sealed, err = dk.SealString(newValue, contactAAD(ckey)); err != nil {
		return nil, s.Internal(ctx, "start contact change", err)
	}
	code := s.SelfServiceCode(c)
	content.Body = fmt.Sprintf("Din kod för att bekräfta %s är %s %s.\n"+
		"Skriv in den på sidan om dina personuppgifter. Koden gäller i %d minuter.\n"+
		"Har du inte bett om att ändra dina uppgifter kan du bortse från meddelandet.\n",
		what, code[:4], code[4:], int(core.SelfServiceCodeLifetime/time.Minute))
	// The one waiting is replaced: its code no longer works.
	if err := s.Store.DeleteSelfServiceChallenge(ctx, ckey); err != nil {
		return nil, s.Internal(ctx, "start contact change", err)
	}
	if err := s.Store.InsertSelfServiceChallenge(ctx, c); err != nil {
		if errors.Is(err, store.ErrExists) {
			return nil, fault.ConcurrentChange("another change of the same detail started at the same time; try again")
		}
		return nil, s.Internal(ctx, "start contact change", err)
	}
	sum := sha256.Sum256(append([]byte(ckey), c.Nonce...))
	m := &store.OutboxMessage{
		ID: "contact." + hex.EncodeToString(sum[:16]), SubjectID: id,
		Kind: pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_CONTACT_CODE.String(), CreatedAt: now.UnixNano(),
	}
	if m.Sealed, err = vault.SealContent(dk, m.ID, content); err != nil {
		return nil, s.Internal(ctx, "start contact change", err)
	}
	if _, err := s.Store.EnqueueOutboxMessage(ctx, m); err != nil {
		return nil, s.Internal(ctx, "start contact change", err)
	}
	return &pdv1.StartContactChangeResponse{ExpireTime: core.Timestamp(c.Expires)}, nil
}

// ConfirmContactChange rectifies the field once the code sent to its new
// value is given back.
func (s *Service) ConfirmContactChange(ctx context.Context, req *pdv1.ConfirmContactChangeRequest) (*pdv1.ConfirmContactChangeResponse, error) {
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	id := v.SubjectID(req.GetSubjectId())
	field := validContactField(&v, req.GetUpdateMask())
	if req.GetCode() == "" {
		v.Add("code", "is required")
	} else if len(req.GetCode()) > 20 {
		v.Add("code", "is not the code sent")
	}
	prov := v.Provenance(req.GetChannel(), req.GetReference(), "", false)
	if prov.Reference == "" {
		v.Add("reference", "is required")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	if err := s.onlyDataSubject(ctx); err != nil {
		return nil, err
	}
	sub, err := s.GetSubject(ctx, "confirm contact change", id)
	if err != nil {
		return nil, err
	}
	core.Note(ctx, audit.Touch{SubjectID: id, Fields: []string{field}})
	if err := s.OnControllersInstruction(ctx, sub); err != nil {
		return nil, err
	}
	c, _ := s.Caller(ctx)
	// The rectification is recorded under a key of its own, derived from
	// this one: a retry after it was applied answers it again.
	inner := sha256.Sum256([]byte("contact-change\x00" + key + "\x00" + field))
	innerKey := "cc." + hex.EncodeToString(inner[:20])
	if op, err := s.Store.FindSubjectOp(ctx, sub, core.OpKey(innerKey), s.Now().Add(-core.IdempotencyWindow).UnixNano(), nil); err != nil {
		return nil, s.Internal(ctx, "confirm contact change", err)
	} else if op != nil {
		out, err := s.rectifyReplay(sub, &core.Replayed{Op: *op})
		if err != nil {
			return nil, err
		}
		return &pdv1.ConfirmContactChangeResponse{Subject: out.GetSubject(), Change: out.GetChange()}, nil
	}
	ckey := contactChallengeKey(id, field)
	ch, err := s.CheckSelfServiceCode(ctx, ckey, req.GetCode())
	switch {
	case errors.Is(err, core.ErrSelfServiceCodeWrong):
		v.Add("code", "is not the code sent to the new "+field)
		return nil, v.Err()
	case errors.Is(err, core.ErrSelfServiceCodeExpired):
		return nil, contactCodeRefused(reasonContactCodeExpired, "the code's time ran out: start the change again")
	case errors.Is(err, core.ErrSelfServiceCodeExhausted):
		return nil, contactCodeRefused(reasonContactCodeExhausted, "the code's tries are used up: start the change again")
	case err != nil:
		return nil, err
	}
	if ch.SubjectID != id { // its key is the subject's: never, but checked
		v.Add("code", "is not the code sent to the new "+field)
		return nil, v.Err()
	}
	dk, err := s.Vault.DataKey(ctx, id, vault.ExistingKey)
	if err != nil {
		return nil, s.Internal(ctx, "confirm contact change", err)
	}
	value, err := dk.OpenString(ch.Sealed, contactAAD(ckey))
	if err != nil {
		return nil, s.Internal(ctx, "confirm contact change", err)
	}
	person := &pdv1.Person{Email: value}
	if field == rules.FieldPhone {
		person = &pdv1.Person{Phone: value}
	}
	var out *pdv1.RectifySubjectResponse
	// A change of another field in between moves the version on: read it
	// again and apply, a few times.
	for try := 0; ; try++ {
		out, err = s.rectify(ctx, &pdv1.RectifySubjectRequest{
			IdempotencyKey: innerKey, SubjectId: id, ExpectedVersion: sub.Version, Person: person,
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{field}}, Channel: req.GetChannel(),
			Reference: prov.Reference, PerformedBy: c.ID(),
		})
		if status.Code(err) != codes.Aborted || try == 2 {
			break
		}
		if sub, err = s.GetSubject(ctx, "confirm contact change", id); err != nil {
			return nil, err
		}
	}
	if err != nil {
		return nil, err
	}
	if err := s.Store.DeleteSelfServiceChallenge(ctx, ckey); err != nil {
		return nil, s.Internal(ctx, "confirm contact change", err)
	}
	return &pdv1.ConfirmContactChangeResponse{Subject: out.GetSubject(), Change: out.GetChange()}, nil
}

func contactCodeRefused(reason, desc string) error {
	return fault.WithDetails(codes.FailedPrecondition, desc, fault.ErrorInfo(reason, nil))
}
