package requests

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
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

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/auth"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/fault"
	"github.com/example/personaldata/service/rules"
	"github.com/example/personaldata/service/validate"
	"github.com/example/personaldata/service/vault"
	"github.com/example/personaldata/store"
)

// RightsRequests implements RightsRequestService: a data subject's request
// as a record of its own, carried from arrival to answer. The rules:
//   - the answer is due one calendar month after receipt (duedate.go), and
//     may be extended once, by up to two months, before that month ends;
//   - nothing is carried out for a requester whose identity is not verified,
//     by a code sent to the contact details on file or by staff's
//     attestation of a stronger check;
//   - every decision has a reason from a stated list; a refusal tells the
//     requester of the right to complain (Art. 12(4));
//   - fulfilment goes through the same handlers as the direct RPCs, so the
//     same rules (restriction, erasure, agreements, audit) apply;
//   - each step that the requester must hear of queues a message in the
//     outbox (outbox.go).
type RightsRequests struct {
	pdv1.UnimplementedRightsRequestServiceServer
	*Service
}

// RightsRequests returns the RightsRequestService on the same store.
func (s *Service) RightsRequests() *RightsRequests { return &RightsRequests{Service: s} }

// Limits of the verification code.
const (
	codeLifetime = 30 * time.Minute
	codeTries    = 5
	// maxCodesSent bounds the codes one request may send, so the service
	// cannot be made to flood a person's inbox.
	maxCodesSent = 5
	maxWordsLen  = 5000
	maxReasonLen = 2000
)

// openStates are the states of a request not answered yet.
var openStates = []string{
	pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_RECEIVED.String(),
	pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_VERIFIED.String(),
	pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_GRANTED.String(),
}

// Reasons in the PreconditionFailure of a refused step.
const (
	reasonNotVerified     = "IDENTITY_NOT_VERIFIED"
	reasonNotDecided      = "NOT_DECIDED"
	reasonAnswered        = "ALREADY_ANSWERED"
	reasonNoContact       = "NO_CONTACT_ON_FILE"
	reasonNoSubject       = "NO_SUBJECT_MATCHED"
	reasonCodeExpired     = "CODE_EXPIRED"
	reasonCodeLocked      = "CODE_TRIES_EXHAUSTED"
	reasonNoCode          = "NO_CODE_SENT"
	reasonTooManyCodes    = "TOO_MANY_CODES"
	reasonExtended        = "ALREADY_EXTENDED"
	reasonFirstMonthEnded = "FIRST_MONTH_ENDED"
	reasonWrongAction     = "ACTION_DOES_NOT_MATCH_KIND"
	reasonNotFulfilled    = "NOT_FULFILLED"
	reasonReplyRemoved    = "REPLY_REMOVED"
)

// requestFields is what the audit trail says a step touched.
var requestFields = []string{"rights_request"}

// requestRefused is a FAILED_PRECONDITION naming what is missing.
func requestRefused(reason, desc string) error {
	return fault.WithDetails(codes.FailedPrecondition, desc, &errdetails.PreconditionFailure{
		Violations: []*errdetails.PreconditionFailure_Violation{{Type: reason, Subject: "rights-request", Description: desc}},
	})
}

// requestTouch is the audit touch of a step: the subject's chain, or the
// tenant's when no subject matched.
func requestTouch(r *store.RightsRequest, extra ...string) audit.Touch {
	return audit.Touch{SubjectID: r.SubjectID, Tenant: r.Controller, Fields: append(slices.Clone(requestFields), extra...)}
}

// handler is the common start of every RPC of the service: the caller, who
// must hold the support purpose (handling a rights request is support).
func (s *RightsRequests) handler(ctx context.Context) (*auth.Caller, error) {
	c, err := s.Caller(ctx)
	if err != nil {
		return nil, err
	}
	if !c.MayUse(pdv1.Purpose_PURPOSE_SUPPORT) {
		return nil, fault.PurposeDenied(pdv1.Purpose_PURPOSE_SUPPORT)
	}
	return c, nil
}

// OpenRightsRequest records a request as it arrived.
func (s *RightsRequests) OpenRightsRequest(ctx context.Context, req *pdv1.OpenRightsRequestRequest) (*pdv1.OpenRightsRequestResponse, error) {
	now := s.Now()
	c, err := s.handler(ctx)
	if err != nil {
		return nil, err
	}
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	controller := v.ControllerFor(c, req.GetControllerId())
	kind := v.Enum("kind", req.GetKind())
	channel := v.Channel(req.GetChannel(), true)
	received := now.UnixNano()
	if req.GetReceiveTime() != nil {
		received = v.PastTime("receive_time", req.GetReceiveTime(), now)
	}
	claimed, claimedField := validClaimedIdentity(&v, req.GetClaimedIdentity(), now)
	text := store.RequestText{
		IdentityNumber: claimed.IdentityNumber,
		Email:          claimed.Email,
		Words:          v.Text("text", req.GetText(), maxWordsLen, false, true),
	}
	reference := v.Text("reference", req.GetReference(), validate.MaxReferenceLen, false, false)
	if e := req.GetReplyEmail(); e != "" {
		p := v.PersonAt("reply_email", &pdv1.Person{Email: e}, rules.FieldEmail, now)
		text.ReplyEmail = p.Email
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	if !c.ActsFor(controller) {
		return nil, fault.PermissionDenied(fault.ReasonTenantNotPermitted, map[string]string{"controller_id": controller}, "the caller does not act for this controller")
	}
	id := s.DerivedID("rights_request", controller, key)
	fp := s.Fingerprint(req)
	// The subject the claimed identity finds, if any; none is an answer too.
	var subjectID string
	for _, k := range s.LookupKeys(controller, &claimed) {
		if k.Field != claimedField {
			continue
		}
		sub, err := s.FindByKey(ctx, k.ID)
		if err != nil {
			return nil, s.Internal(ctx, "open rights request", err)
		}
		if sub != nil && sub.Erasure == nil {
			subjectID = sub.ID
			text.ContactEmail, text.ContactPhone = sub.Person.Email, sub.Person.Phone
		}
	}
	dueDay, dueAt := dueDate(time.Unix(0, received), 0)
	r := &store.RightsRequest{
		ID: id, Version: 1, Controller: controller, Kind: kind, Channel: channel,
		ReceivedAt: received, DueDate: dueDay, DueAt: dueAt.UnixNano(),
		SubjectID: subjectID, Reference: reference, Text: text,
		State:     pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_RECEIVED.String(),
		Steps:     []store.RequestStep{{Step: "opened", At: now.UnixNano(), By: c.ID(), Message: pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_RECEIPT.String()}},
		Ops:       []store.Op{{Key: core.OpKey(key), Fingerprint: fp, Result: 1, At: now.UnixNano()}},
		CreatedAt: now.UnixNano(), UpdatedAt: now.UnixNano(),
	}
	core.Note(ctx, requestTouch(r, claimedField))
	if r, err = s.insertNewRequest(ctx, "open rights request", r, key, fp); err != nil {
		return nil, err
	}
	return &pdv1.OpenRightsRequestResponse{Request: s.requestToProto(r)}, nil
}

// insertNewRequest stores a request just opened under idempotency key,
// whose request had fingerprint fp, and queues its messages. When an
// earlier attempt stored it, that one is the answer; another request that
// reused the key is refused.
func (s *RightsRequests) insertNewRequest(ctx context.Context, op string, r *store.RightsRequest, key string, fp []byte) (*store.RightsRequest, error) {
	err := s.insertRequest(ctx, r)
	if errors.Is(err, store.ErrExists) {
		prev, err := s.readRequest(ctx, r.ID)
		if err != nil {
			return nil, s.Internal(ctx, op, err)
		}
		if err := core.CheckReplay(prev.Ops, core.OpKey(key), fp); !core.IsReplay(err) {
			if err == nil {
				err = validate.KeyReused()
			}
			return nil, err
		}
		r = prev
	} else if err != nil {
		return nil, s.Internal(ctx, op, err)
	}
	r, err = s.settleRequest(ctx, r)
	if err != nil {
		return nil, s.Internal(ctx, op, err)
	}
	return r, nil
}

// validClaimedIdentity checks the requester's claimed identity: an identity
// number or an e-mail address, in canonical form, and which it is.
func validClaimedIdentity(v *validate.Violations, ci *pdv1.ClaimedIdentity, now time.Time) (store.Person, string) {
	switch ci.GetKey().(type) {
	case *pdv1.ClaimedIdentity_IdentityNumber:
		return v.PersonAt("claimed_identity.identity_number", &pdv1.Person{IdentityNumber: ci.GetIdentityNumber()}, rules.FieldIdentityNumber, now), rules.FieldIdentityNumber
	case *pdv1.ClaimedIdentity_Email:
		return v.PersonAt("claimed_identity.email", &pdv1.Person{Email: ci.GetEmail()}, rules.FieldEmail, now), rules.FieldEmail
	}
	v.Add("claimed_identity", "an identity_number or an email is required")
	return store.Person{}, ""
}

// GetRightsRequest returns a request.
func (s *RightsRequests) GetRightsRequest(ctx context.Context, req *pdv1.GetRightsRequestRequest) (*pdv1.GetRightsRequestResponse, error) {
	r, _, err := s.requestFor(ctx, "get rights request", req.GetRequestId(), false)
	if err != nil {
		return nil, err
	}
	return &pdv1.GetRightsRequestResponse{Request: s.requestToProto(r)}, nil
}

// requestFor reads a request for a step: it must be visible to the caller
// (its queue's controller; a customer it was forwarded to may read it but
// not act on it, write false), and what an earlier step left pending is done.
func (s *RightsRequests) requestFor(ctx context.Context, op, id string, write bool) (*store.RightsRequest, *auth.Caller, error) {
	c, err := s.handler(ctx)
	if err != nil {
		return nil, nil, err
	}
	var v validate.Violations
	validRequestID(&v, id)
	if err := v.Err(); err != nil {
		return nil, nil, err
	}
	r, err := s.readRequest(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, status.Error(codes.NotFound, "rights request not found")
	}
	if err != nil {
		return nil, nil, s.Internal(ctx, op, err)
	}
	if !c.ActsFor(r.Controller) && (write || r.ForwardedTo == "" || !c.ActsFor(r.ForwardedTo)) {
		return nil, nil, status.Error(codes.NotFound, "rights request not found")
	}
	core.Note(ctx, requestTouch(r))
	if r, err = s.settleRequest(ctx, r); err != nil {
		s.Log.WarnContext(ctx, "messages to requester not queued yet", "request_id", r.ID, "error", err.Error())
	}
	return r, c, nil
}

func validRequestID(v *validate.Violations, s string) string {
	if s == "" {
		v.Add("request_id", "is required")
	} else if len(s) > validate.MaxIDLen || !validate.ControllerPattern.MatchString(s) {
		v.Add("request_id", "is not a rights request id")
	}
	return s
}

// step applies change to request id as one atomic update, under the
// idempotency key: a retry of a step that was applied answers the request as
// it is, and the step's messages are queued.
func (s *RightsRequests) step(ctx context.Context, op, id, key string, req proto.Message, change func(r *store.RightsRequest, c *auth.Caller, now time.Time) error) (*store.RightsRequest, error) {
	r, _, err := s.stepResult(ctx, op, id, key, req, func(r *store.RightsRequest, c *auth.Caller, now time.Time) (int64, error) {
		return 0, change(r, c, now)
	})
	return r, err
}

// errUnchanged, from a step's change, abandons the update: the step asks
// for nothing that is not so already, and the request is answered as it is.
var errUnchanged = errors.New("unchanged")

// stepResult is step whose change says what result to record with the key
// (0: the version written), and which returns the result recorded by the
// first call when this one is its retry (else 0).
func (s *RightsRequests) stepResult(ctx context.Context, op, id, key string, req proto.Message, change func(r *store.RightsRequest, c *auth.Caller, now time.Time) (int64, error)) (*store.RightsRequest, int64, error) {
	r, c, err := s.requestFor(ctx, op, id, true)
	if err != nil {
		return nil, 0, err
	}
	fp := s.Fingerprint(req)
	updated, err := s.updateRequest(ctx, r.ID, func(r *store.RightsRequest) error {
		if key != "" {
			if err := core.CheckReplay(r.Ops, core.OpKey(key), fp); err != nil {
				return err
			}
		}
		now := s.Now()
		result, err := change(r, c, now)
		if err != nil {
			return err
		}
		if result == 0 {
			result = r.Version + 1
		}
		if key != "" {
			r.Ops = core.AppendOp(r.Ops, store.Op{Key: core.OpKey(key), Fingerprint: fp, Result: result}, now)
		}
		r.UpdatedAt = now.UnixNano()
		return nil
	})
	var rep *core.Replayed
	var first int64
	switch {
	case errors.As(err, &rep):
		updated, first = r, rep.Op.Result
	case errors.Is(err, errUnchanged):
		updated = r
	case err != nil:
		return nil, 0, s.Internal(ctx, op, err)
	}
	if updated, err = s.settleRequest(ctx, updated); err != nil {
		return nil, 0, s.Internal(ctx, op, err)
	}
	return updated, first, nil
}

// addStep records a step, and the message it sends the requester if any.
func addStep(r *store.RightsRequest, name string, c *auth.Caller, now time.Time, message pdv1.OutboxMessageKind) {
	st := store.RequestStep{Step: name, At: now.UnixNano(), By: c.ID()}
	if message != pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_UNSPECIFIED {
		st.Message = message.String()
	}
	r.Steps = append(r.Steps, st)
}

// answered refuses a step on a request that was answered already.
func answered(r *store.RightsRequest) error {
	if slices.Contains(openStates, r.State) {
		return nil
	}
	return requestRefused(reasonAnswered, fmt.Sprintf("the request was answered already (%s)", r.State))
}

// verified refuses a step that needs the requester's identity verified.
func verified(r *store.RightsRequest) error {
	if r.Verification != nil {
		return nil
	}
	return requestRefused(reasonNotVerified, "the requester's identity is not verified: send a code to the contact details on file and confirm it, or attest a stronger check")
}

// SendVerificationCode sends a one-time code to the matched subject's
// contact details on file.
func (s *RightsRequests) SendVerificationCode(ctx context.Context, req *pdv1.SendVerificationCodeRequest) (*pdv1.SendVerificationCodeResponse, error) {
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	id := validRequestID(&v, req.GetRequestId())
	channel := req.GetChannel()
	if channel != pdv1.ContactChannel_CONTACT_CHANNEL_UNSPECIFIED {
		v.Enum("channel", channel)
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	// The contact on file is read before the update: the code goes only
	// there, whatever the request says.
	r, _, err := s.requestFor(ctx, "send verification code", id, true)
	if err != nil {
		return nil, err
	}
	// A retry of a code that was sent answers the request as it is, as
	// every step's retry does, also once the request was answered; the
	// same key with another request is refused as bad input.
	if err := core.CheckReplay(r.Ops, core.OpKey(key), s.Fingerprint(req)); core.IsReplay(err) {
		return &pdv1.SendVerificationCodeResponse{Request: s.requestToProto(r)}, nil
	} else if err != nil {
		return nil, err
	}
	if err := answered(r); err != nil {
		return nil, err
	}
	if r.Verification != nil {
		return &pdv1.SendVerificationCodeResponse{Request: s.requestToProto(r)}, nil
	}
	if r.SubjectID == "" {
		return nil, requestRefused(reasonNoSubject, "no subject matched the claimed identity, so no contact details are on file to send a code to: attest a check done another way")
	}
	to, ch, err := s.contactOnFile(ctx, r.SubjectID, channel)
	if err != nil {
		return nil, err
	}
	if to == "" {
		return nil, requestRefused(reasonNoContact, fmt.Sprintf("the subject has no %s on file to send a code to", contactName(channel)))
	}
	updated, err := s.step(ctx, "send verification code", id, key, req, func(r *store.RightsRequest, c *auth.Caller, now time.Time) error {
		if err := answered(r); err != nil {
			return err
		}
		sent := 0
		if r.Code != nil {
			sent = r.Code.Sent
		}
		if sent >= maxCodesSent {
			return requestRefused(reasonTooManyCodes, fmt.Sprintf("%d codes were sent for this request already: attest a check done another way", sent))
		}
		nonce := make([]byte, 16)
		_, _ = rand.Read(nonce)
		r.Code = &store.CodeChallenge{
			Channel: ch.String(), Nonce: nonce, Sent: sent + 1, SentAt: now.UnixNano(),
			ExpiresAt: now.Add(codeLifetime).UnixNano(), TriesLeft: codeTries,
		}
		r.Text.CodeTo = to
		addStep(r, "code_sent", c, now, pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_VERIFICATION_CODE)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &pdv1.SendVerificationCodeResponse{Request: s.requestToProto(updated)}, nil
}

func contactName(ch pdv1.ContactChannel) string {
	if ch == pdv1.ContactChannel_CONTACT_CHANNEL_SMS {
		return "phone number"
	}
	return "e-mail address or phone number"
}

// contactOnFile is where a message to the subject goes: the e-mail address
// on file, or (asked for, or with no e-mail) the phone number. Empty when
// none is on file. It reads the subject as the rights handling needs
// (purpose support), on the trail.
func (s *Service) contactOnFile(ctx context.Context, subjectID string, want pdv1.ContactChannel) (string, pdv1.ContactChannel, error) {
	sub, err := s.Vault.GetSubject(ctx, subjectID)
	if errors.Is(err, store.ErrNotFound) {
		return "", 0, nil
	}
	if err != nil {
		return "", 0, s.Internal(ctx, "contact on file", err)
	}
	if sub.Person == nil {
		return "", 0, nil // erased since
	}
	core.Note(ctx, audit.Touch{SubjectID: sub.ID, Tenant: sub.Controller, Purpose: pdv1.Purpose_PURPOSE_SUPPORT.String(), Fields: []string{rules.FieldEmail, rules.FieldPhone}})
	switch {
	case want != pdv1.ContactChannel_CONTACT_CHANNEL_SMS && sub.Person.Email != "":
		return sub.Person.Email, pdv1.ContactChannel_CONTACT_CHANNEL_EMAIL, nil
	case want != pdv1.ContactChannel_CONTACT_CHANNEL_EMAIL && sub.Person.Phone != "":
		return sub.Person.Phone, pdv1.ContactChannel_CONTACT_CHANNEL_SMS, nil
	}
	return "", 0, nil
}

// verificationCode is the code of a challenge: a keyed hash (the blind
// index key) of the request, the send count and a random nonce, as 8
// digits. The store holds the nonce, never the code: it can be made again,
// to send it or to check it, only with the master keys.
func (s *Service) verificationCode(requestID string, c *store.CodeChallenge) string {
	index := s.Vault.Keys.Ring().Index("verification_code", requestID, strconv.Itoa(c.Sent)+"."+hex.EncodeToString(c.Nonce))
	sum, _ := hex.DecodeString(index[strings.IndexByte(index, '.')+1:])
	return fmt.Sprintf("%0*d", core.CodeDigits, binary.BigEndian.Uint64(sum[:8])%100_000_000)
}

// ConfirmVerificationCode checks the code the requester gave back. A wrong
// code uses up a try; after the last, or past its expiry, the code is dead
// and a new one must be sent. A retry with the same key answers the first
// result and changes nothing: a wrong code's retry is refused alike without
// using up a try; a right code's retry, or the right code again once
// verified, answers the request as it is.
func (s *RightsRequests) ConfirmVerificationCode(ctx context.Context, req *pdv1.ConfirmVerificationCodeRequest) (*pdv1.ConfirmVerificationCodeResponse, error) {
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	id := validRequestID(&v, req.GetRequestId())
	code := strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, req.GetCode())
	if len(code) != core.CodeDigits || strings.Trim(code, "0123456789") != "" {
		v.Add("code", fmt.Sprintf("must be the %d digits of the code sent", core.CodeDigits))
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	// A wrong code is recorded with the key as the tries it left, negated
	// and less one (never 0 or a version), so that its retry is answered
	// the same refusal.
	var result int64 // of this call's change, as it was stored
	updated, first, err := s.stepResult(ctx, "confirm verification code", id, key, req, func(r *store.RightsRequest, c *auth.Caller, now time.Time) (int64, error) {
		result = 0
		if err := answered(r); err != nil {
			return 0, err
		}
		if r.Verification != nil {
			return 0, errUnchanged // confirmed before
		}
		switch {
		case r.Code == nil:
			return 0, requestRefused(reasonNoCode, "no code was sent for this request")
		case r.Code.TriesLeft <= 0:
			return 0, requestRefused(reasonCodeLocked, "the code was given wrong too many times: send a new one")
		case now.UnixNano() > r.Code.ExpiresAt:
			return 0, requestRefused(reasonCodeExpired, "the code has expired: send a new one")
		}
		if subtle.ConstantTimeCompare([]byte(code), []byte(s.verificationCode(r.ID, r.Code))) != 1 {
			r.Code.TriesLeft--
			addStep(r, "code_rejected", c, now, 0)
			result = -1 - int64(r.Code.TriesLeft)
			return result, nil // the used-up try is stored
		}
		r.Verification = &store.Verification{Method: pdv1.VerificationMethod_VERIFICATION_METHOD_CODE.String(), At: now.UnixNano(), By: c.ID()}
		r.State = pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_VERIFIED.String()
		addStep(r, "verified", c, now, 0)
		return 0, nil
	})
	if err != nil {
		return nil, err
	}
	if first == 0 { // not a retry: what this call did
		first = result
	}
	if first < 0 {
		return nil, fault.WithDetails(codes.InvalidArgument, "the code does not match", &errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "code", Description: fmt.Sprintf("does not match the code sent; %d tries left", -1-first)}},
		})
	}
	return &pdv1.ConfirmVerificationCodeResponse{Request: s.requestToProto(updated)}, nil
}

// AttestIdentity records staff's attestation of a stronger check.
func (s *RightsRequests) AttestIdentity(ctx context.Context, req *pdv1.AttestIdentityRequest) (*pdv1.AttestIdentityResponse, error) {
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	id := validRequestID(&v, req.GetRequestId())
	method := v.Enum("method", req.GetMethod())
	if req.GetMethod() == pdv1.VerificationMethod_VERIFICATION_METHOD_CODE {
		v.Add("method", "a code is confirmed with ConfirmVerificationCode; attest BANKID, IDENTITY_DOCUMENT or CALL_BACK")
	}
	reference := v.Text("reference", req.GetReference(), validate.MaxReferenceLen, true, false)
	if err := v.Err(); err != nil {
		return nil, err
	}
	updated, err := s.step(ctx, "attest identity", id, key, req, func(r *store.RightsRequest, c *auth.Caller, now time.Time) error {
		if err := answered(r); err != nil {
			return err
		}
		r.Verification = &store.Verification{Method: method, At: now.UnixNano(), By: c.ID(), Reference: reference}
		if r.State == pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_RECEIVED.String() {
			r.State = pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_VERIFIED.String()
		}
		addStep(r, "verified", c, now, 0)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &pdv1.AttestIdentityResponse{Request: s.requestToProto(updated)}, nil
}

// refusalReasons may be given for a refusal or a grant in part.
var refusalReasons = []pdv1.DecisionReason{
	pdv1.DecisionReason_DECISION_REASON_MANIFESTLY_UNFOUNDED,
	pdv1.DecisionReason_DECISION_REASON_EXCESSIVE,
	pdv1.DecisionReason_DECISION_REASON_IDENTITY_NOT_ESTABLISHED,
	pdv1.DecisionReason_DECISION_REASON_KEPT_UNDER_LAW,
	pdv1.DecisionReason_DECISION_REASON_KEPT_FOR_LEGAL_CLAIMS,
}

// DecideRightsRequest grants, grants in part or refuses.
func (s *RightsRequests) DecideRightsRequest(ctx context.Context, req *pdv1.DecideRightsRequestRequest) (*pdv1.DecideRightsRequestResponse, error) {
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	id := validRequestID(&v, req.GetRequestId())
	outcome := v.Enum("outcome", req.GetOutcome())
	reason := v.Enum("reason", req.GetReason())
	grant := req.GetOutcome() == pdv1.DecisionOutcome_DECISION_OUTCOME_GRANT
	switch {
	case reason == "" || outcome == "":
	case grant && req.GetReason() != pdv1.DecisionReason_DECISION_REASON_RIGHT_APPLIES:
		v.Add("reason", "a grant's reason is RIGHT_APPLIES")
	case !grant && !slices.Contains(refusalReasons, req.GetReason()):
		v.Add("reason", "a refusal or a grant in part needs the reason for what is refused: MANIFESTLY_UNFOUNDED, EXCESSIVE, IDENTITY_NOT_ESTABLISHED, KEPT_UNDER_LAW or KEPT_FOR_LEGAL_CLAIMS")
	}
	explanation := v.Text("explanation", req.GetExplanation(), maxReasonLen, !grant && outcome != "", true)
	if err := v.Err(); err != nil {
		return nil, err
	}
	updated, err := s.step(ctx, "decide", id, key, req, func(r *store.RightsRequest, c *auth.Caller, now time.Time) error {
		if err := answered(r); err != nil {
			return err
		}
		if r.Decision != nil {
			return requestRefused(reasonAnswered, "the request was decided already")
		}
		// A refusal needs no verified identity (not establishing it is a
		// reason to refuse); a grant does.
		if req.GetOutcome() != pdv1.DecisionOutcome_DECISION_OUTCOME_REFUSE {
			if err := verified(r); err != nil {
				return err
			}
		}
		r.Decision = &store.Decision{Outcome: outcome, Reason: reason, At: now.UnixNano(), By: c.ID()}
		r.Text.Explanation = explanation
		if req.GetOutcome() == pdv1.DecisionOutcome_DECISION_OUTCOME_REFUSE {
			r.State = pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_REFUSED.String()
			r.ClosedAt = now.UnixNano()
		} else {
			r.State = pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_GRANTED.String()
		}
		addStep(r, "decided", c, now, pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_DECISION)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &pdv1.DecideRightsRequestResponse{Request: s.requestToProto(updated)}, nil
}

// ExtendRightsRequest extends the time limit once, before the first month
// ends.
func (s *RightsRequests) ExtendRightsRequest(ctx context.Context, req *pdv1.ExtendRightsRequestRequest) (*pdv1.ExtendRightsRequestResponse, error) {
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	id := validRequestID(&v, req.GetRequestId())
	if m := req.GetMonths(); m != 1 && m != 2 {
		v.Add("months", "must be 1 or 2 (Art. 12(3): by two further months at most)")
	}
	reason := v.Text("reason", req.GetReason(), maxReasonLen, true, true)
	if err := v.Err(); err != nil {
		return nil, err
	}
	updated, err := s.step(ctx, "extend", id, key, req, func(r *store.RightsRequest, c *auth.Caller, now time.Time) error {
		if err := answered(r); err != nil {
			return err
		}
		if r.Extension != nil {
			return requestRefused(reasonExtended, "the time limit was extended already; it may be extended once")
		}
		if now.UnixNano() > r.DueAt {
			return requestRefused(reasonFirstMonthEnded, "the first month ended on "+r.DueDate+": the time limit can only be extended within it")
		}
		r.Extension = &store.Extension{Months: int(req.GetMonths()), At: now.UnixNano(), OriginalDueDate: r.DueDate, By: c.ID()}
		r.Text.Reason = reason
		day, end := dueDate(time.Unix(0, r.ReceivedAt), int(req.GetMonths()))
		r.DueDate, r.DueAt = day, end.UnixNano()
		addStep(r, "extended", c, now, pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_EXTENSION)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &pdv1.ExtendRightsRequestResponse{Request: s.requestToProto(updated)}, nil
}

// ForwardRightsRequest passes a request about a customer's data to that
// customer, whose processor the company is: the customer answers it.
func (s *RightsRequests) ForwardRightsRequest(ctx context.Context, req *pdv1.ForwardRightsRequestRequest) (*pdv1.ForwardRightsRequestResponse, error) {
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	id := validRequestID(&v, req.GetRequestId())
	customer := v.Controller(req.GetControllerId())
	if customer == rules.CompanyController {
		v.Add("controller_id", "must be a customer: the company's own requests are answered here")
	}
	reference := v.Text("reference", req.GetReference(), validate.MaxReferenceLen, false, false)
	if err := v.Err(); err != nil {
		return nil, err
	}
	// Any agreement, in force or ended: a request about data the company
	// still holds for a former customer goes to that customer too.
	if agreements, err := s.Store.GetAgreements(ctx, customer); err != nil {
		return nil, s.Internal(ctx, "forward rights request", err)
	} else if len(agreements.Agreements) == 0 {
		return nil, requestRefused(rules.ReasonNoAgreement, "no processor agreement with this customer is on record: the company processes no data for it")
	}
	updated, err := s.step(ctx, "forward", id, key, req, func(r *store.RightsRequest, c *auth.Caller, now time.Time) error {
		if err := answered(r); err != nil {
			return err
		}
		forward(r, customer, reference, c, now)
		return nil
	})
	if err != nil {
		return nil, err
	}
	core.Note(ctx, audit.Touch{Tenant: customer, Fields: requestFields})
	return &pdv1.ForwardRightsRequestResponse{Request: s.requestToProto(updated)}, nil
}

// forward passes r to customer, which answers it; the requester hears so.
func forward(r *store.RightsRequest, customer, reference string, c *auth.Caller, now time.Time) {
	r.ForwardedTo = customer
	r.Forwarding = &store.Forwarding{Controller: customer, Reference: reference, At: now.UnixNano(), By: c.ID()}
	r.State = pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_FORWARDED.String()
	r.ClosedAt = now.UnixNano()
	addStep(r, "forwarded", c, now, pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_FORWARDED)
}

// kindActions is the fulfilment each kind of request takes.
var kindActions = map[pdv1.RightsRequestKind]string{
	pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS:                     "access",
	pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_PORTABILITY:                "access",
	pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_RECTIFICATION:              "rectify",
	pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_RESTRICTION:                "restrict",
	pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ERASURE:                    "erase",
	pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_DIRECT_MARKETING_OBJECTION: "stop_direct_marketing",
	pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_CONSENT_WITHDRAWAL:         "withdraw_consent",
	// An objection stops the processing while it is weighed (Art. 18(1)(d)).
	pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_OBJECTION: "restrict",
}

// FulfilRightsRequest carries out a granted request through the handlers
// of the direct RPCs, with idempotency keys derived from the request, so a
// retry after a failure part way does not act twice.
func (s *RightsRequests) FulfilRightsRequest(ctx context.Context, req *pdv1.FulfilRightsRequestRequest) (*pdv1.FulfilRightsRequestResponse, error) {
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	id := validRequestID(&v, req.GetRequestId())
	var action string
	if req.GetAction() == nil {
		v.Add("action", "is required: access, rectify, restrict, erase, stop_direct_marketing or withdraw_consent")
	} else {
		action = string(req.ProtoReflect().WhichOneof(req.ProtoReflect().Descriptor().Oneofs().ByName("action")).Name())
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	r, c, err := s.requestFor(ctx, "fulfil rights request", id, true)
	if err != nil {
		return nil, err
	}
	if r.State == pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_FULFILLED.String() && core.FindOpIn(r.Ops, core.OpKey(key)) != nil {
		return &pdv1.FulfilRightsRequestResponse{Request: s.requestToProto(r)}, nil // a retry
	}
	if err := answered(r); err != nil {
		return nil, err
	}
	if want := kindActions[core.EnumValue[pdv1.RightsRequestKind](pdv1.RightsRequestKind_value, r.Kind)]; action != want {
		return nil, fault.WithDetails(codes.InvalidArgument, "the action does not fit the request", &errdetails.BadRequest{
			FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "action", Description: fmt.Sprintf("a %s request is fulfilled with %s", r.Kind, want)}},
		})
	}
	if err := verified(r); err != nil {
		return nil, err
	}
	if r.Decision == nil {
		return nil, requestRefused(reasonNotDecided, "the request is not decided: grant it (wholly or in part) first")
	}
	res, err := s.carryOut(ctx, r, c, req)
	if err != nil {
		return nil, err
	}
	// The reply to an access request is made and sealed now, as it is
	// answered: what is shown later is what was sent.
	var reply []byte
	if action == "access" {
		if reply, err = s.sealReply(ctx, r, res); err != nil {
			return nil, err
		}
	}
	updated, err := s.step(ctx, "fulfil rights request", id, key, req, func(r *store.RightsRequest, c *auth.Caller, now time.Time) error {
		if err := answered(r); err != nil {
			return err
		}
		if reply != nil {
			if r.Sealed == nil {
				r.Sealed = map[string][]byte{}
			}
			r.Sealed[vault.SealedReplyName] = reply
		}
		res.At, res.By = now.UnixNano(), c.ID()
		r.Fulfilment = &res
		r.State = pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_FULFILLED.String()
		r.ClosedAt = now.UnixNano()
		addStep(r, "fulfilled", c, now, pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_REPLY_READY)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &pdv1.FulfilRightsRequestResponse{Request: s.requestToProto(updated)}, nil
}

// carryOut does what a granted request asks, as the caller, through the
// direct RPCs' handlers.
func (s *RightsRequests) carryOut(ctx context.Context, r *store.RightsRequest, c *auth.Caller, req *pdv1.FulfilRightsRequestRequest) (store.Fulfilment, error) {
	if r.SubjectID == "" {
		if req.GetAccess() != nil {
			return store.Fulfilment{Result: "nothing is held about the requester", NothingHeld: true}, nil
		}
		return store.Fulfilment{}, requestRefused(reasonNoSubject, "no subject matched the claimed identity: there is nothing to carry out; answer that nothing is held")
	}
	innerKey := func(what string) string { return "rr." + r.ID + "." + what }
	channel := core.EnumValue[pdv1.Channel](pdv1.Channel_value, r.Channel)
	reference := r.Reference
	if reference == "" {
		reference = "rights-request:" + r.ID
	}
	switch {
	case req.GetAccess() != nil:
		pages := 0
		for token := ""; ; pages++ {
			page, err := s.subjects.AccessSubject(ctx, &pdv1.AccessSubjectRequest{SubjectId: r.SubjectID, PageToken: token})
			if err != nil {
				return store.Fulfilment{}, err
			}
			if token = page.GetNextPageToken(); token == "" {
				return store.Fulfilment{SubjectVersion: page.GetSubject().GetVersion(), Result: fmt.Sprintf("access reply made ready: %d page(s) of data", pages+1)}, nil
			}
		}
	case req.GetRectify() != nil:
		sub, err := s.GetSubject(ctx, "fulfil rights request", r.SubjectID)
		if err != nil {
			return store.Fulfilment{}, err
		}
		out, err := s.subjects.RectifySubject(ctx, &pdv1.RectifySubjectRequest{
			IdempotencyKey: innerKey("rectify"), SubjectId: r.SubjectID, ExpectedVersion: sub.Version,
			Person: req.GetRectify().GetPerson(), UpdateMask: req.GetRectify().GetUpdateMask(),
			Channel: channel, Reference: reference, PerformedBy: c.ID(),
		})
		if err != nil {
			return store.Fulfilment{}, err
		}
		return store.Fulfilment{SubjectVersion: out.GetSubject().GetVersion(), Result: "rectified " + strings.Join(out.GetChange().GetFields(), ", ")}, nil
	case req.GetRestrict() != nil:
		out, err := s.subjects.RestrictProcessing(ctx, &pdv1.RestrictProcessingRequest{
			IdempotencyKey: innerKey("restrict"), SubjectId: r.SubjectID, Ground: req.GetRestrict().GetGround(),
			Channel: channel, Reference: reference, PerformedBy: c.ID(),
		})
		if err != nil {
			return store.Fulfilment{}, err
		}
		return store.Fulfilment{SubjectVersion: out.GetSubject().GetVersion(), Result: "restricted on ground " + req.GetRestrict().GetGround().String()}, nil
	case req.GetErase() != nil:
		out, err := s.subjects.EraseSubject(ctx, &pdv1.EraseSubjectRequest{
			IdempotencyKey: innerKey("erase"), SubjectId: r.SubjectID, Ground: req.GetErase().GetGround(),
			Channel: channel, Reference: reference, PerformedBy: c.ID(),
		})
		if err != nil {
			return store.Fulfilment{}, err
		}
		result := "erased on ground " + req.GetErase().GetGround().String()
		for _, k := range out.GetKept() {
			result += fmt.Sprintf("; kept under %s until %s", k.GetBasis(), k.GetUntil().AsTime().In(core.Stockholm).Format(time.DateOnly))
		}
		return store.Fulfilment{SubjectVersion: out.GetSubject().GetVersion(), Result: result}, nil
	case req.GetStopDirectMarketing() != nil:
		sub, err := s.GetSubject(ctx, "fulfil rights request", r.SubjectID)
		if err != nil {
			return store.Fulfilment{}, err
		}
		n := 0
		for _, cn := range sub.Consents {
			if !cn.Live() || cn.Purpose != pdv1.ConsentPurpose_CONSENT_PURPOSE_DIRECT_MARKETING.String() {
				continue
			}
			if _, err := s.consents.WithdrawConsent(ctx, &pdv1.WithdrawConsentRequest{
				IdempotencyKey: innerKey("withdraw." + cn.ID), SubjectId: r.SubjectID, ConsentId: cn.ID,
				Channel: channel, Reference: reference,
			}); err != nil {
				return store.Fulfilment{}, err
			}
			n++
		}
		return store.Fulfilment{Result: fmt.Sprintf("direct marketing stopped: %d consent(s) to it withdrawn", n)}, nil
	case req.GetWithdrawConsent() != nil:
		var v validate.Violations
		if req.GetWithdrawConsent().GetConsentId() == "" {
			v.Add("withdraw_consent.consent_id", "is required")
		}
		if err := v.Err(); err != nil {
			return store.Fulfilment{}, err
		}
		out, err := s.consents.WithdrawConsent(ctx, &pdv1.WithdrawConsentRequest{
			IdempotencyKey: innerKey("withdraw." + req.GetWithdrawConsent().GetConsentId()), SubjectId: r.SubjectID,
			ConsentId: req.GetWithdrawConsent().GetConsentId(), Channel: channel, Reference: reference,
		})
		if err != nil {
			return store.Fulfilment{}, err
		}
		return store.Fulfilment{Result: "consent " + out.GetConsent().GetConsentId() + " withdrawn"}, nil
	}
	return store.Fulfilment{}, status.Error(codes.InvalidArgument, "unknown action")
}

// ListRightsRequests lists a queue by due date.
func (s *RightsRequests) ListRightsRequests(ctx context.Context, req *pdv1.ListRightsRequestsRequest) (*pdv1.ListRightsRequestsResponse, error) {
	c, err := s.handler(ctx)
	if err != nil {
		return nil, err
	}
	var v validate.Violations
	// controller_id filters by the queue a request is in, forwarded_to by
	// the customer it was forwarded to (forwarding.controller_id): each
	// lists what its field says. With forwarded_to, controller_id may be
	// left empty (any queue).
	forwardedTo := req.GetForwardedTo()
	controller := req.GetControllerId()
	if forwardedTo != "" {
		if !validate.ControllerPattern.MatchString(forwardedTo) || forwardedTo == rules.CompanyController {
			v.Add("forwarded_to", "must be a customer id of 1 to 63 characters a-z, 0-9, '_', '-'")
		}
		if controller != "" {
			v.Controller(controller)
		}
	} else {
		controller = v.ControllerFor(c, controller)
	}
	var states, kinds []string
	for i, st := range req.GetStates() {
		states = append(states, v.Enum(fmt.Sprintf("states[%d]", i), st))
	}
	for i, k := range req.GetKinds() {
		kinds = append(kinds, v.Enum(fmt.Sprintf("kinds[%d]", i), k))
	}
	subjectID := req.GetSubjectId()
	if subjectID != "" {
		v.SubjectID(subjectID)
	}
	size := v.PageSize(req.GetPageSize(), 50)
	scope := controller + "|" + forwardedTo
	afterDue, afterID := v.PositionToken(req.GetPageToken(), "rr", scope)
	if err := v.Err(); err != nil {
		return nil, err
	}
	// As GetRightsRequest: a request is seen by its queue's controller and
	// by the customer it was forwarded to.
	switch {
	case controller != "" && c.ActsFor(controller):
	case forwardedTo != "" && c.ActsFor(forwardedTo):
	case forwardedTo != "":
		return nil, fault.PermissionDenied(fault.ReasonTenantNotPermitted, map[string]string{"forwarded_to": forwardedTo}, "the caller does not act for this customer")
	default:
		return nil, fault.PermissionDenied(fault.ReasonTenantNotPermitted, map[string]string{"controller_id": controller}, "the caller does not act for this controller")
	}
	var filter []string
	if len(states) == 0 && req.GetOverdueOnly() {
		filter = openStates
	} else if len(states) > 0 {
		filter = states
	}
	all, err := s.Store.RightsRequestsOf(ctx, controller, forwardedTo, subjectID, filter)
	if err != nil {
		return nil, s.Internal(ctx, "list rights requests", err)
	}
	now := s.Now().UnixNano()
	out := &pdv1.ListRightsRequestsResponse{}
	for _, r := range all {
		if r.DueAt < afterDue || (r.DueAt == afterDue && r.ID <= afterID) {
			continue
		}
		if len(kinds) > 0 && !slices.Contains(kinds, r.Kind) {
			continue
		}
		if req.GetOverdueOnly() && !overdue(r, now) {
			continue
		}
		if len(out.Requests) == size {
			last := out.Requests[len(out.Requests)-1]
			out.NextPageToken = validate.PositionTokenOf("rr", scope, last.GetDueTime().AsTime().UnixNano(), last.GetRequestId())
			break
		}
		if err := s.Vault.OpenRequest(ctx, r); err != nil {
			return nil, s.Internal(ctx, "list rights requests", err)
		}
		core.Note(ctx, requestTouch(r))
		out.Requests = append(out.Requests, s.requestToProto(r))
	}
	return out, nil
}

// overdue: not answered, and past the end of its due date.
func overdue(r *store.RightsRequest, now int64) bool {
	return slices.Contains(openStates, r.State) && now > r.DueAt
}

// requestToProto is the API's view of a request, with what is missing.
func (s *Service) requestToProto(r *store.RightsRequest) *pdv1.RightsRequest {
	out := &pdv1.RightsRequest{
		RequestId:    r.ID,
		ControllerId: r.Controller,
		Kind:         core.EnumValue[pdv1.RightsRequestKind](pdv1.RightsRequestKind_value, r.Kind),
		Channel:      core.EnumValue[pdv1.Channel](pdv1.Channel_value, r.Channel),
		ReceiveTime:  core.Timestamp(r.ReceivedAt),
		Text:         r.Text.Words,
		Reference:    r.Reference,
		SubjectId:    r.SubjectID,
		State:        core.EnumValue[pdv1.RightsRequestState](pdv1.RightsRequestState_value, r.State),
		DueDate:      r.DueDate,
		DueTime:      core.Timestamp(r.DueAt),
		Overdue:      overdue(r, s.Now().UnixNano()),
		CreateTime:   core.Timestamp(r.CreatedAt),
		UpdateTime:   core.Timestamp(r.UpdatedAt),
	}
	switch {
	case r.Text.IdentityNumber != "":
		out.ClaimedIdentity = &pdv1.ClaimedIdentity{Key: &pdv1.ClaimedIdentity_IdentityNumber{IdentityNumber: r.Text.IdentityNumber}}
	case r.Text.Email != "":
		out.ClaimedIdentity = &pdv1.ClaimedIdentity{Key: &pdv1.ClaimedIdentity_Email{Email: r.Text.Email}}
	}
	if c := r.Code; c != nil {
		out.Code = &pdv1.CodeChallenge{
			Channel: core.EnumValue[pdv1.ContactChannel](pdv1.ContactChannel_value, c.Channel), SendTime: core.Timestamp(c.SentAt),
			ExpireTime: core.Timestamp(c.ExpiresAt), TriesLeft: int32(c.TriesLeft), SentCount: int32(c.Sent),
		}
	}
	if v := r.Verification; v != nil {
		out.Verification = &pdv1.Verification{Method: core.EnumValue[pdv1.VerificationMethod](pdv1.VerificationMethod_value, v.Method),
			VerifyTime: core.Timestamp(v.At), VerifiedBy: v.By, Reference: v.Reference}
	}
	if d := r.Decision; d != nil {
		out.Decision = &pdv1.Decision{Outcome: core.EnumValue[pdv1.DecisionOutcome](pdv1.DecisionOutcome_value, d.Outcome),
			Reason: core.EnumValue[pdv1.DecisionReason](pdv1.DecisionReason_value, d.Reason), Explanation: r.Text.Explanation,
			DecideTime: core.Timestamp(d.At), DecidedBy: d.By}
	}
	if e := r.Extension; e != nil {
		out.Extension = &pdv1.Extension{Months: int32(e.Months), Reason: r.Text.Reason, ExtendTime: core.Timestamp(e.At), ExtendedBy: e.By}
	}
	if f := r.Forwarding; f != nil {
		out.Forwarding = &pdv1.Forwarding{ControllerId: f.Controller, Reference: f.Reference, ForwardTime: core.Timestamp(f.At), ForwardedBy: f.By}
	}
	if f := r.Fulfilment; f != nil {
		out.Fulfilment = &pdv1.Fulfilment{FulfilTime: core.Timestamp(f.At), FulfilledBy: f.By, SubjectVersion: f.SubjectVersion, Result: f.Result, NothingHeld: f.NothingHeld}
	}
	for _, st := range r.Steps {
		out.Steps = append(out.Steps, &pdv1.RightsRequestStep{Step: st.Step, StepTime: core.Timestamp(st.At), PerformedBy: st.By})
	}
	out.Missing = missing(r)
	return out
}

// missing says what must happen next for an open request.
func missing(r *store.RightsRequest) []string {
	if !slices.Contains(openStates, r.State) {
		return nil
	}
	var out []string
	if r.Verification == nil {
		out = append(out, "the requester's identity is not verified")
	}
	if r.Decision == nil {
		out = append(out, "no decision: grant, grant in part or refuse, with a reason")
	}
	out = append(out, "not carried out and answered")
	return out
}

// readRequest reads and opens a request.
func (s *Service) readRequest(ctx context.Context, id string) (*store.RightsRequest, error) {
	r, err := s.Store.GetRightsRequest(ctx, id)
	if err != nil {
		return nil, err
	}
	return r, s.Vault.OpenRequest(ctx, r)
}

// insertRequest seals and stores a new request, with its data key.
func (s *Service) insertRequest(ctx context.Context, r *store.RightsRequest) error {
	if err := s.Vault.SealRequest(ctx, r, vault.NewSubjectKey); err != nil {
		return err
	}
	return s.Store.InsertRightsRequest(ctx, r)
}

// updateRequest changes a request atomically, sealing what change set.
func (s *Service) updateRequest(ctx context.Context, id string, change func(*store.RightsRequest) error) (*store.RightsRequest, error) {
	return s.Store.UpdateRightsRequest(ctx, id, func(r *store.RightsRequest) error {
		if err := s.Vault.OpenRequest(ctx, r); err != nil {
			return err
		}
		if err := change(r); err != nil {
			return err
		}
		return s.Vault.SealRequest(ctx, r, vault.ExistingKey)
	})
}
