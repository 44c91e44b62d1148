package server_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/signin"
)

// signInCodes are the sign-in codes waiting in the outbox, as the mailer
// reads them: code by the address it goes to.
func signInCodes(t *testing.T, mailer caller) map[string]string {
	t.Helper()
	out := map[string]string{}
	digits := regexp.MustCompile(`är (\d{4}) (\d{4})\.`)
	for _, m := range outbox(t, mailer) {
		if m.GetKind() != pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_SIGN_IN_CODE {
			continue
		}
		d := digits.FindStringSubmatch(m.GetBody())
		if d == nil {
			t.Fatalf("sign-in message without a code: %q", m.GetBody())
		}
		out[m.GetTo()] = d[1] + d[2]
	}
	return out
}

// A data subject signs in with a code that goes only to the e-mail address
// on file, whether the person typed the personnummer or the address; an
// unknown person gets a token all the same and no code; wrong, expired and
// used-up codes are refused; a right code signs in once.
func TestSelfServiceSignInByCode(t *testing.T) {
	e := start(t)
	c := e.gc()
	sub := create(t, c, 261)
	person := testPerson(261)
	mailer := e.mailer(t, c)
	signIn := e.srv.SelfServiceSignIn()
	ctx := context.Background()

	// By personnummer: the code goes to the address on file.
	token, err := signIn.StartSelfServiceSignIn(ctx, person.GetIdentityNumber())
	if err != nil {
		t.Fatal(err)
	}
	codes := signInCodes(t, mailer)
	if len(codes) != 1 || codes[person.GetEmail()] == "" {
		t.Fatalf("codes sent %v, want one to the address on file %s", codes, person.GetEmail())
	}
	code := codes[person.GetEmail()]
	wrong := "00000000"
	if wrong == code {
		wrong = "11111111"
	}
	if _, err := signIn.ConfirmSelfServiceSignIn(ctx, token, wrong); !errors.Is(err, core.ErrSelfServiceCodeWrong) {
		t.Fatalf("wrong code: %v, want ErrSelfServiceCodeWrong", err)
	}
	if _, err := signIn.ConfirmSelfServiceSignIn(ctx, "another token", code); !errors.Is(err, core.ErrSelfServiceCodeWrong) {
		t.Fatalf("the code with another token: %v, want ErrSelfServiceCodeWrong", err)
	}
	got, err := signIn.ConfirmSelfServiceSignIn(ctx, token, code[:4]+" "+code[4:])
	if err != nil || got != sub.GetSubjectId() {
		t.Fatalf("right code: subject %q, %v; want %q", got, err, sub.GetSubjectId())
	}
	if _, err := signIn.ConfirmSelfServiceSignIn(ctx, token, code); !errors.Is(err, core.ErrSelfServiceCodeWrong) {
		t.Fatalf("the code again: %v, want it refused: a code signs in once", err)
	}

	// By e-mail address, typed in another case: the code goes to the
	// address on file, never to what was typed.
	for _, m := range outbox(t, mailer) {
		call(t, mailer, ackOutbox, &pdv1.AcknowledgeOutboxMessageRequest{MessageId: m.GetMessageId()}, &pdv1.AcknowledgeOutboxMessageResponse{})
	}
	typed := strings.ToUpper(person.GetEmail())
	if _, err := signIn.StartSelfServiceSignIn(ctx, typed); err != nil {
		t.Fatal(err)
	}
	if codes := signInCodes(t, mailer); len(codes) != 1 || codes[person.GetEmail()] == "" {
		t.Fatalf("codes sent %v, want one to the address on file, not to %s", codes, typed)
	}
	for _, m := range outbox(t, mailer) {
		call(t, mailer, ackOutbox, &pdv1.AcknowledgeOutboxMessageRequest{MessageId: m.GetMessageId()}, &pdv1.AcknowledgeOutboxMessageResponse{})
		// A repeat of the acknowledgement is harmless.
		call(t, mailer, ackOutbox, &pdv1.AcknowledgeOutboxMessageRequest{MessageId: m.GetMessageId()}, &pdv1.AcknowledgeOutboxMessageResponse{})
	}

	// An unknown person: a token alike, no code, every code refused alike.
	unknown, err := signIn.StartSelfServiceSignIn(ctx, "okand@example.test")
	if err != nil || len(unknown) != len(token) {
		t.Fatalf("unknown person: token %q, %v; want one like a known person's", unknown, err)
	}
	if codes := signInCodes(t, mailer); len(codes) != 0 {
		t.Fatalf("codes sent for an unknown person: %v", codes)
	}
	if _, err := signIn.ConfirmSelfServiceSignIn(ctx, unknown, code); !errors.Is(err, core.ErrSelfServiceCodeWrong) {
		t.Fatalf("unknown person's code: %v, want ErrSelfServiceCodeWrong", err)
	}

	// Not a personnummer or an address.
	if _, err := signIn.StartSelfServiceSignIn(ctx, "19800101-0000"); !errors.Is(err, signin.ErrSelfServiceIdentity) {
		t.Fatalf("a false personnummer: %v, want ErrSelfServiceIdentity", err)
	}

	// Used up: the fifth wrong code ends the sign-in, and then even the
	// right one is refused.
	token, err = signIn.StartSelfServiceSignIn(ctx, person.GetIdentityNumber())
	if err != nil {
		t.Fatal(err)
	}
	code = signInCodes(t, mailer)[person.GetEmail()]
	wrong = "00000000"
	if wrong == code {
		wrong = "11111111"
	}
	for i := range core.SelfServiceCodeTries {
		_, err := signIn.ConfirmSelfServiceSignIn(ctx, token, wrong)
		want := core.ErrSelfServiceCodeWrong
		if i == core.SelfServiceCodeTries-1 {
			want = core.ErrSelfServiceCodeExhausted
		}
		if !errors.Is(err, want) {
			t.Fatalf("wrong code %d: %v, want %v", i+1, err, want)
		}
	}
	if _, err := signIn.ConfirmSelfServiceSignIn(ctx, token, code); !errors.Is(err, core.ErrSelfServiceCodeExhausted) {
		t.Fatalf("the right code after the tries: %v, want ErrSelfServiceCodeExhausted", err)
	}

	// Expired.
	for _, m := range outbox(t, mailer) {
		call(t, mailer, ackOutbox, &pdv1.AcknowledgeOutboxMessageRequest{MessageId: m.GetMessageId()}, &pdv1.AcknowledgeOutboxMessageResponse{})
	}
	token, err = signIn.StartSelfServiceSignIn(ctx, person.GetIdentityNumber())
	if err != nil {
		t.Fatal(err)
	}
	code = signInCodes(t, mailer)[person.GetEmail()]
	e.clock.Advance(core.SelfServiceCodeLifetime + time.Second)
	if _, err := signIn.ConfirmSelfServiceSignIn(ctx, token, code); !errors.Is(err, core.ErrSelfServiceCodeExpired) {
		t.Fatalf("an expired code: %v, want ErrSelfServiceCodeExpired", err)
	}

	// The store holds no code and no token.
	if dump := e.rawDump(t); strings.Contains(dump, code) || strings.Contains(dump, token) {
		t.Error("the store holds a sign-in code or token in the clear")
	}
}
