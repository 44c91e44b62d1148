package service

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/audit"
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

// Reasons in the PreconditionFailure of a refusal for want of consent.
const ()

// errConsentOnRecord stops an update that would record a consent twice.
var errConsentOnRecord = errors.New("consent on record")

// RecordConsent records a consent the subject gave.
func (s *Consents) RecordConsent(ctx context.Context, req *pdv1.RecordConsentRequest) (*pdv1.RecordConsentResponse, error) {
	now := s.now()
	var v violations
	key := v.idempotencyKey(req.GetIdempotencyKey())
	id := v.subjectID(req.GetSubjectId())
	purpose := v.enum("purpose", req.GetPurpose())
	var recipient string
	switch req.GetPurpose() {
	case pdv1.ConsentPurpose_CONSENT_PURPOSE_DISCLOSURE:
		recipient = v.recipient("recipient", req.GetRecipient())
	default:
		if req.GetRecipient() != "" {
			v.add("recipient", "is only for a consent to disclosure (CONSENT_PURPOSE_DISCLOSURE)")
		}
	}
	given := v.pastTime("give_time", req.GetGiveTime(), now)
	channel := v.channel(req.GetChannel(), true)
	wording := v.text("wording_reference", req.GetWordingReference(), maxReferenceLen, true, false)
	if err := v.err(); err != nil {
		return nil, err
	}
	fp := s.fingerprint(req)
	sub, err := s.consentSubject(ctx, "record consent", id)
	if err != nil {
		return nil, err
	}
	var memo store.OpMemo
	if err := s.subjectOp(ctx, sub, opKey(key), fp, &memo); err != nil {
		return consentReplay(sub, err, func(c *pdv1.Consent) *pdv1.RecordConsentResponse { return &pdv1.RecordConsentResponse{Consent: c} })
	}
	c, _ := s.caller(ctx)
	var consent store.Consent
	_, err = s.vault.updateSubject(ctx, id, func(sub *store.Subject) error {
		if sub.Erasure != nil {
			return erasedError(sub)
		}
		if err := s.subjectOp(ctx, sub, opKey(key), fp, &memo); err != nil {
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
		recordOp(sub, store.Op{Key: opKey(key), Fingerprint: fp, Result: int64(len(sub.Consents))}, s.now())
		return nil
	})
	if isReplay(err) {
		sub, rerr := s.vault.getSubject(ctx, id)
		if rerr != nil {
			return nil, s.internal(ctx, "record consent", rerr)
		}
		return consentReplay(sub, err, func(c *pdv1.Consent) *pdv1.RecordConsentResponse { return &pdv1.RecordConsentResponse{Consent: c} })
	}
	if err != nil && !errors.Is(err, errConsentOnRecord) {
		return nil, s.internal(ctx, "record consent", err)
	}
	return &pdv1.RecordConsentResponse{Consent: consentToProto(&consent)}, nil
}

// WithdrawConsent withdraws a consent; a withdrawn one is returned as it is.
func (s *Consents) WithdrawConsent(ctx context.Context, req *pdv1.WithdrawConsentRequest) (*pdv1.WithdrawConsentResponse, error) {
	now := s.now()
	var v violations
	key := v.idempotencyKey(req.GetIdempotencyKey())
	id := v.subjectID(req.GetSubjectId())
	consentID := v.seqID("consent_id", req.GetConsentId())
	channel := v.channel(req.GetChannel(), true)
	ref := v.text("reference", req.GetReference(), maxReferenceLen, false, false)
	if err := v.err(); err != nil {
		return nil, err
	}
	fp := s.fingerprint(req)
	sub, err := s.consentSubject(ctx, "withdraw consent", id)
	if err != nil {
		return nil, err
	}
	respond := func(c *pdv1.Consent) *pdv1.WithdrawConsentResponse { return &pdv1.WithdrawConsentResponse{Consent: c} }
	var memo store.OpMemo
	if err := s.subjectOp(ctx, sub, opKey(key), fp, &memo); err != nil {
		return consentReplay(sub, err, respond)
	}
	if findConsent(sub, consentID) == nil {
		return nil, consentNotFound()
	}
	c, _ := s.caller(ctx)
	errUnchanged := errors.New("withdrawn before")
	updated, err := s.vault.updateSubject(ctx, id, func(sub *store.Subject) error {
		if sub.Erasure != nil {
			return erasedError(sub)
		}
		if err := s.subjectOp(ctx, sub, opKey(key), fp, &memo); err != nil {
			return err
		}
		consent := findConsent(sub, consentID)
		if consent == nil {
			return consentNotFound()
		}
		if !consent.Live() {
			return errUnchanged
		}
		consent.WithdrawnAt, consent.WithdrawChannel, consent.WithdrawReference, consent.WithdrawnBy = now.UnixNano(), channel, ref, c.ID()
		n, _ := strconv.Atoi(consentID)
		recordOp(sub, store.Op{Key: opKey(key), Fingerprint: fp, Result: int64(n)}, s.now())
		return nil
	})
	switch {
	case isReplay(err), errors.Is(err, errUnchanged):
		if updated, err = s.vault.getSubject(ctx, id); err != nil {
			return nil, s.internal(ctx, "withdraw consent", err)
		}
	case err != nil:
		return nil, s.internal(ctx, "withdraw consent", err)
	}
	consent := findConsent(updated, consentID)
	if consent == nil {
		return nil, consentNotFound()
	}
	if err := s.recordWithdrawal(ctx, updated, consentID, consent.WithdrawnAt); err != nil {
		return nil, err
	}
	return respond(consentToProto(consent)), nil
}

// consentSubject reads a live subject for a change of its consents: a
// consent is given to the controller, so for a customer's data the change
// comes from that controller under an agreement in force.
func (s *Consents) consentSubject(ctx context.Context, op, id string) (*store.Subject, error) {
	sub, err := s.getSubject(ctx, op, id)
	if err != nil {
		return nil, err
	}
	note(ctx, audit.Touch{SubjectID: id, Fields: []string{"consents"}})
	if err := s.onControllersInstruction(ctx, sub); err != nil {
		return nil, err
	}
	if err := s.requireAgreement(ctx, sub.Controller, pdv1.Purpose_PURPOSE_UNSPECIFIED, nil); err != nil {
		return nil, err
	}
	return sub, nil
}

// consentReplay answers a consent request applied before with the consent
// it recorded, as it is now; another error passes on.
func consentReplay[R any](sub *store.Subject, err error, respond func(*pdv1.Consent) R) (R, error) {
	var zero R
	var r *replayed
	if !errors.As(err, &r) {
		return zero, err
	}
	c := findConsent(sub, strconv.FormatInt(r.op.Result, 10))
	if c == nil {
		return zero, consentNotFound()
	}
	return respond(consentToProto(c)), nil
}

func consentNotFound() error {
	return status.Error(codes.NotFound, "consent not found")
}

// seqID checks an id that is a number handed out by the service (a consent
// or a notification): 1 to 12 digits, not zero.
func (v *violations) seqID(field, s string) string {
	n, err := strconv.ParseInt(s, 10, 64)
	switch {
	case s == "":
		v.add(field, "is required")
	case err != nil || n < 1 || len(s) > 12 || strconv.FormatInt(n, 10) != s:
		v.add(field, "is not an id this service handed out")
	}
	return s
}

// recipient checks the name of a third party: a lower-case host name such
// as "iis.se", as sub-processors are named in agreements.
func (v *violations) recipient(field, s string) string {
	switch {
	case s == "":
		v.add(field, `is required: the third party's host name, such as "iis.se"`)
	case len(s) > maxSubProcessorLen || !hostPattern.MatchString(s):
		v.add(field, fmt.Sprintf(`must be a lower-case host name of at most %d characters, such as "iis.se"`, maxSubProcessorLen))
	}
	return s
}
