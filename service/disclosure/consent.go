package disclosure

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/fault"
	"github.com/example/personaldata/service/subjects"
	"github.com/example/personaldata/service/validate"
	"github.com/example/personaldata/store"
)

// Consents implements ConsentService: the subject's consents, given and
// withdrawn, kept in the subject's own document.
type Consents struct {
	pdv1.UnimplementedConsentServiceServer
	*Service
}

// Consents returns the ConsentService on the same store and clock.
func (s *Service) Consents() *Consents { return &Consents{Service: s} }

// errConsentOnRecord stops an update that would record a consent twice.
var errConsentOnRecord = errors.New("consent on record")

// RecordConsent records a consent the subject gave.
func (s *Consents) RecordConsent(ctx context.Context, req *pdv1.RecordConsentRequest) (*pdv1.RecordConsentResponse, error) {
	now := s.Now()
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	id := v.SubjectID(req.GetSubjectId())
	purpose := v.Enum("purpose", req.GetPurpose())
	var recipient string
	switch req.GetPurpose() {
	case pdv1.ConsentPurpose_CONSENT_PURPOSE_DISCLOSURE:
		recipient = validRecipient(&v, "recipient", req.GetRecipient())
	default:
		if req.GetRecipient() != "" {
			v.Add("recipient", "is only for a consent to disclosure (CONSENT_PURPOSE_DISCLOSURE)")
		}
	}
	given := v.PastTime("give_time", req.GetGiveTime(), now)
	channel := v.Channel(req.GetChannel(), true)
	wording := v.Text("wording_reference", req.GetWordingReference(), validate.MaxReferenceLen, true, false)
	if err := v.Err(); err != nil {
		return nil, err
	}
	fp := s.Fingerprint(req)
	sub, err := s.consentSubject(ctx, "record consent", id)
	if err != nil {
		return nil, err
	}
	var memo store.OpMemo
	if err := s.SubjectOp(ctx, sub, core.OpKey(key), fp, &memo); err != nil {
		return consentReplay(sub, err, func(c *pdv1.Consent) *pdv1.RecordConsentResponse { return &pdv1.RecordConsentResponse{Consent: c} })
	}
	c, _ := s.Caller(ctx)
	var consent store.Consent
	_, err = s.Vault.UpdateSubject(ctx, id, func(sub *store.Subject) error {
		if sub.Erasure != nil {
			return fault.ErasedError(sub)
		}
		if err := s.SubjectOp(ctx, sub, core.OpKey(key), fp, &memo); err != nil {
			return err
		}
		// One live consent per purpose and recipient: a second, or a retry
		// later than the ops the subject remembers, answers the one on
		// record, so a single withdrawal always stops the processing.
		for i := range sub.Consents {
			if c := &sub.Consents[i]; c.Live() && c.Purpose == purpose && c.Recipient == recipient {
				consent = *c
				return errConsentOnRecord
			}
		}
		consent = store.Consent{
			ID: strconv.Itoa(len(sub.Consents) + 1), Purpose: purpose, Recipient: recipient,
			GivenAt: given, Channel: channel, WordingReference: wording,
			RecordedAt: now.UnixNano(), RecordedBy: c.ID(),
		}
		sub.Consents = append(sub.Consents, consent)
		core.RecordOp(sub, store.Op{Key: core.OpKey(key), Fingerprint: fp, Result: int64(len(sub.Consents))}, s.Now())
		return nil
	})
	if core.IsReplay(err) {
		sub, rerr := s.Vault.GetSubject(ctx, id)
		if rerr != nil {
			return nil, s.Internal(ctx, "record consent", rerr)
		}
		return consentReplay(sub, err, func(c *pdv1.Consent) *pdv1.RecordConsentResponse { return &pdv1.RecordConsentResponse{Consent: c} })
	}
	if err != nil && !errors.Is(err, errConsentOnRecord) {
		return nil, s.Internal(ctx, "record consent", err)
	}
	return &pdv1.RecordConsentResponse{Consent: subjects.ConsentToProto(&consent)}, nil
}

// WithdrawConsent withdraws a consent; a withdrawn one is returned as it is.
func (s *Consents) WithdrawConsent(ctx context.Context, req *pdv1.WithdrawConsentRequest) (*pdv1.WithdrawConsentResponse, error) {
	now := s.Now()
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	id := v.SubjectID(req.GetSubjectId())
	consentID := validSeqID(&v, "consent_id", req.GetConsentId())
	channel := v.Channel(req.GetChannel(), true)
	ref := v.Text("reference", req.GetReference(), validate.MaxReferenceLen, false, false)
	if err := v.Err(); err != nil {
		return nil, err
	}
	fp := s.Fingerprint(req)
	sub, err := s.consentSubject(ctx, "withdraw consent", id)
	if err != nil {
		return nil, err
	}
	respond := func(c *pdv1.Consent) *pdv1.WithdrawConsentResponse { return &pdv1.WithdrawConsentResponse{Consent: c} }
	var memo store.OpMemo
	if err := s.SubjectOp(ctx, sub, core.OpKey(key), fp, &memo); err != nil {
		return consentReplay(sub, err, respond)
	}
	if core.FindConsent(sub, consentID) == nil {
		return nil, consentNotFound()
	}
	c, _ := s.Caller(ctx)
	errUnchanged := errors.New("withdrawn before")
	updated, err := s.Vault.UpdateSubject(ctx, id, func(sub *store.Subject) error {
		if sub.Erasure != nil {
			return fault.ErasedError(sub)
		}
		if err := s.SubjectOp(ctx, sub, core.OpKey(key), fp, &memo); err != nil {
			return err
		}
		consent := core.FindConsent(sub, consentID)
		if consent == nil {
			return consentNotFound()
		}
		if !consent.Live() {
			return errUnchanged
		}
		consent.WithdrawnAt, consent.WithdrawChannel, consent.WithdrawReference, consent.WithdrawnBy = now.UnixNano(), channel, ref, c.ID()
		n, _ := strconv.Atoi(consentID)
		core.RecordOp(sub, store.Op{Key: core.OpKey(key), Fingerprint: fp, Result: int64(n)}, s.Now())
		return nil
	})
	switch {
	case core.IsReplay(err), errors.Is(err, errUnchanged):
		if updated, err = s.Vault.GetSubject(ctx, id); err != nil {
			return nil, s.Internal(ctx, "withdraw consent", err)
		}
	case err != nil:
		return nil, s.Internal(ctx, "withdraw consent", err)
	}
	consent := core.FindConsent(updated, consentID)
	if consent == nil {
		return nil, consentNotFound()
	}
	if err := s.RecordWithdrawal(ctx, updated, consentID, consent.WithdrawnAt); err != nil {
		return nil, err
	}
	return respond(subjects.ConsentToProto(consent)), nil
}

// consentSubject reads a live subject for a change of its consents: a
// consent is given to the controller, so for a customer's data the change
// comes from that controller under an agreement in force.
func (s *Consents) consentSubject(ctx context.Context, op, id string) (*store.Subject, error) {
	sub, err := s.GetSubject(ctx, op, id)
	if err != nil {
		return nil, err
	}
	core.Note(ctx, audit.Touch{SubjectID: id, Fields: []string{"consents"}})
	if err := s.OnControllersInstruction(ctx, sub); err != nil {
		return nil, err
	}
	if err := s.RequireAgreement(ctx, sub.Controller, pdv1.Purpose_PURPOSE_UNSPECIFIED, nil); err != nil {
		return nil, err
	}
	return sub, nil
}

// consentReplay answers a consent request applied before with the consent
// it recorded, as it is now; another error passes on.
func consentReplay[R any](sub *store.Subject, err error, respond func(*pdv1.Consent) R) (R, error) {
	var zero R
	var r *core.Replayed
	if !errors.As(err, &r) {
		return zero, err
	}
	c := core.FindConsent(sub, strconv.FormatInt(r.Op.Result, 10))
	if c == nil {
		return zero, consentNotFound()
	}
	return respond(subjects.ConsentToProto(c)), nil
}

func consentNotFound() error {
	return status.Error(codes.NotFound, "consent not found")
}

// validSeqID checks an id that is a number handed out by the service (a consent
// or a notification): 1 to 12 digits, not zero.
func validSeqID(v *validate.Violations, field, s string) string {
	n, err := strconv.ParseInt(s, 10, 64)
	switch {
	case s == "":
		v.Add(field, "is required")
	case err != nil || n < 1 || len(s) > 12 || strconv.FormatInt(n, 10) != s:
		v.Add(field, "is not an id this service handed out")
	}
	return s
}

// validRecipient checks the name of a third party: a lower-case host name such
// as "iis.se", as sub-processors are named in agreements.
func validRecipient(v *validate.Violations, field, s string) string {
	switch {
	case s == "":
		v.Add(field, `is required: the third party's host name, such as "iis.se"`)
	case len(s) > validate.MaxSubProcessorLen || !validate.HostPattern.MatchString(s):
		v.Add(field, fmt.Sprintf(`must be a lower-case host name of at most %d characters, such as "iis.se"`, validate.MaxSubProcessorLen))
	}
	return s
}
