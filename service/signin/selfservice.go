package signin

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/rules"
	"github.com/example/personaldata/service/validate"
	"github.com/example/personaldata/service/vault"
	"github.com/example/personaldata/store"
)

// The data subject's own page signs a person in with a one-time code sent
// to the e-mail address or phone number on file: never to one typed into
// the page. These are the service's side of it, called in-process by the
// page (cmd/personaldatad/selfservice), not over the API: a sign-in is not
// a call of any principal.

// ErrSelfServiceIdentity: what was typed is neither a personnummer nor an
// e-mail address. (The refusals of a code itself are core's, shared with a
// contact change: core.ErrSelfServiceCodeWrong and the others.)
var ErrSelfServiceIdentity = errors.New("self-service: not a personnummer or an e-mail address")

// SelfServiceIdentityKey is what StartSelfServiceSignIn makes of what the
// person typed: a normalised personnummer or e-mail address, for the page's
// per-identity limit (never logged, never shown).
func (s *Service) SelfServiceIdentityKey(typed string) (string, error) {
	field, p, err := s.selfServiceIdentity(typed)
	if err != nil {
		return "", err
	}
	if field == rules.FieldIdentityNumber {
		return s.Vault.Keys.Ring().Index("self_service_identity", field, p.IdentityNumber), nil
	}
	return s.Vault.Keys.Ring().Index("self_service_identity", field, strings.ToLower(p.Email)), nil
}

func (s *Service) selfServiceIdentity(typed string) (string, store.Person, error) {
	typed = strings.TrimSpace(typed)
	var v validate.Violations
	var field string
	var p store.Person
	if strings.Contains(typed, "@") {
		field = rules.FieldEmail
		p = v.PersonAt(field, &pdv1.Person{Email: typed}, field, s.Now())
	} else {
		field = rules.FieldIdentityNumber
		p = v.PersonAt(field, &pdv1.Person{IdentityNumber: typed}, field, s.Now())
	}
	if typed == "" || len(typed) > 254 || v.Err() != nil {
		return "", p, ErrSelfServiceIdentity
	}
	return field, p, nil
}

// StartSelfServiceSignIn begins a sign-in for the person typed: a
// personnummer or an e-mail address, of the company's own records. It
// returns the token the browser keeps until it gives the code back. When a
// live subject matches and has an e-mail address or phone number on file,
// a code goes to that (the e-mail first) through the outbox; else nothing
// is sent, and the token is stored all the same, so that the answer is the
// same whether or not anyone matched.
func (s *Service) StartSelfServiceSignIn(ctx context.Context, typed string) (token string, err error) {
	field, p, err := s.selfServiceIdentity(typed)
	if err != nil {
		return "", err
	}
	sub, err := s.selfServiceSubject(ctx, field, &p)
	if err != nil {
		return "", s.Internal(ctx, "self-service sign-in", err)
	}
	now := s.Now()
	token = randomSelfServiceToken()
	c := &store.SelfServiceChallenge{
		ID: SelfServiceChallengeKey(token), Nonce: make([]byte, 16),
		Created: now.UnixNano(), Expires: now.Add(core.SelfServiceCodeLifetime).UnixNano(),
	}
	_, _ = rand.Read(c.Nonce) // never fails (crypto/rand)
	var content vault.OutboxContent
	if sub != nil && sub.Erasure == nil && sub.Person != nil {
		code := s.SelfServiceCode(c)
		content = vault.OutboxContent{Language: "sv", Subject: "Din kod för att logga in",
			Body: fmt.Sprintf("Din kod för att logga in på sidan om dina personuppgifter är %s %s.\n"+
				"Koden gäller i %d minuter. Har du inte försökt logga in kan du bortse från meddelandet.\n",
				code[:4], code[4:], int(core.SelfServiceCodeLifetime/time.Minute))}
		switch {
		case sub.Person.Email != "":
			content.Channel, content.To = pdv1.ContactChannel_CONTACT_CHANNEL_EMAIL.String(), sub.Person.Email
		case sub.Person.Phone != "":
			content.Channel, content.To = pdv1.ContactChannel_CONTACT_CHANNEL_SMS.String(), sub.Person.Phone
		}
		if content.To != "" {
			c.SubjectID = sub.ID
		}
	}
	if err := s.Store.DeleteExpiredSelfServiceChallenges(ctx, now.UnixNano()); err != nil {
		return "", s.Internal(ctx, "self-service sign-in", err)
	}
	if err := s.Store.InsertSelfServiceChallenge(ctx, c); err != nil {
		return "", s.Internal(ctx, "self-service sign-in", err)
	}
	if c.SubjectID == "" {
		return token, nil
	}
	m := &store.OutboxMessage{
		ID: selfServiceMessageID(c.ID), SubjectID: c.SubjectID,
		Kind: pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_SIGN_IN_CODE.String(), CreatedAt: now.UnixNano(),
	}
	dk, err := s.Vault.DataKey(ctx, c.SubjectID, vault.ExistingKey)
	if err != nil {
		return "", s.Internal(ctx, "self-service sign-in", err)
	}
	if m.Sealed, err = vault.SealContent(dk, m.ID, content); err != nil {
		return "", s.Internal(ctx, "self-service sign-in", err)
	}
	if _, err := s.Store.EnqueueOutboxMessage(ctx, m); err != nil {
		return "", s.Internal(ctx, "self-service sign-in", err)
	}
	return token, nil
}

// ConfirmSelfServiceSignIn checks the code given back for the sign-in of
// token, and returns the subject signed in. A wrong code uses up a try;
// after the last, or past its expiry, the sign-in is dead. A sign-in that
// matched no one refuses every code as wrong, alike. A right code ends the
// challenge: it signs in once.
func (s *Service) ConfirmSelfServiceSignIn(ctx context.Context, token, code string) (subjectID string, err error) {
	key := SelfServiceChallengeKey(token)
	c, err := s.CheckSelfServiceCode(ctx, key, code)
	if err != nil {
		return "", err
	}
	if err := s.Store.DeleteSelfServiceChallenge(ctx, key); err != nil {
		return "", s.Internal(ctx, "self-service sign-in", err)
	}
	return c.SubjectID, nil
}

// SelfServiceChallengeKey is the store's key of a sign-in token: what the
// store holds cannot be sent back as the token.
func SelfServiceChallengeKey(token string) string {
	h := sha256.Sum256([]byte("self-service-challenge\x00" + token))
	return hex.EncodeToString(h[:])
}

// selfServiceMessageID is the outbox id of a sign-in code's message.
func selfServiceMessageID(challengeKey string) string { return "signin." + challengeKey[:32] }

func randomSelfServiceToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}
