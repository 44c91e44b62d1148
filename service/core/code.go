package core

import (
	"context"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/example/personaldata/store"
)

// CodeDigits is how many digits a one-time code has: a rights request's
// verification code, a sign-in code, a contact change's code.
const CodeDigits = 8

// Sign-in codes: as many digits as a rights request's, a shorter life.
const (
	SelfServiceCodeLifetime = 10 * time.Minute
	SelfServiceCodeTries    = 5
)

// Refusals of a one-time code. The page tells the person which, in words.
var (
	// ErrSelfServiceCodeWrong: a wrong code (a try used), or a sign-in
	// that does not exist or matched no one, which answers alike.
	ErrSelfServiceCodeWrong = errors.New("self-service: wrong code")
	// ErrSelfServiceCodeExpired: the code's time ran out.
	ErrSelfServiceCodeExpired = errors.New("self-service: code expired")
	// ErrSelfServiceCodeExhausted: the last try was used.
	ErrSelfServiceCodeExhausted = errors.New("self-service: code tries used up")
)

// CheckSelfServiceCode checks code against the challenge stored under key
// and returns the challenge when it is right; the caller ends it. A wrong
// code uses up a try (ErrSelfServiceCodeWrong, or ErrSelfServiceCodeExhausted
// for the last); past its expiry it is ErrSelfServiceCodeExpired; a missing
// challenge, or one that matched no one, answers as a wrong code.
func (s *Service) CheckSelfServiceCode(ctx context.Context, key, code string) (*store.SelfServiceChallenge, error) {
	code = strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, code)
	now := s.Now()
	var outcome error
	c, err := s.Store.UpdateSelfServiceChallenge(ctx, key, func(c *store.SelfServiceChallenge) error {
		switch {
		case now.UnixNano() >= c.Expires:
			return ErrSelfServiceCodeExpired
		case c.Tries >= SelfServiceCodeTries:
			return ErrSelfServiceCodeExhausted
		}
		want := s.SelfServiceCode(c)
		if c.SubjectID != "" && len(code) == CodeDigits && subtle.ConstantTimeCompare([]byte(code), []byte(want)) == 1 {
			outcome = nil
			return nil
		}
		c.Tries++
		outcome = ErrSelfServiceCodeWrong
		if c.Tries >= SelfServiceCodeTries {
			outcome = ErrSelfServiceCodeExhausted
		}
		return nil
	})
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, ErrSelfServiceCodeWrong
	case errors.Is(err, ErrSelfServiceCodeExpired), errors.Is(err, ErrSelfServiceCodeExhausted):
		return nil, unwrapSelfService(err)
	case err != nil:
		return nil, s.Internal(ctx, "self-service code", err)
	case outcome != nil:
		return nil, outcome
	}
	return c, nil
}

// SelfServiceCode is the code of challenge c: a keyed hash of its id and
// nonce, so that the store holds no code.
func (s *Service) SelfServiceCode(c *store.SelfServiceChallenge) string {
	index := s.Vault.Keys.Ring().Index("self_service_code", c.ID, hex.EncodeToString(c.Nonce))
	sum, _ := hex.DecodeString(index[strings.IndexByte(index, '.')+1:])
	return fmt.Sprintf("%0*d", CodeDigits, binary.BigEndian.Uint64(sum[:8])%100_000_000)
}

func unwrapSelfService(err error) error {
	for _, e := range []error{ErrSelfServiceCodeExpired, ErrSelfServiceCodeExhausted} {
		if errors.Is(err, e) {
			return e
		}
	}
	return err
}
