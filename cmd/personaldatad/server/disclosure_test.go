package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/example/personaldata/cmd/personaldatad/server"
	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/ledger"
)

// RPC names of the ConsentService and DisclosureService, for call and callErr.
const (
	recordConsentRPC   = "personaldata.v1.ConsentService/RecordConsent"
	withdrawConsentRPC = "personaldata.v1.ConsentService/WithdrawConsent"
	discloseRPC        = "personaldata.v1.DisclosureService/Disclose"
	listNoticesRPC     = "personaldata.v1.DisclosureService/ListRecipientNotifications"
	streamNoticesRPC   = "personaldata.v1.DisclosureService/StreamRecipientNotifications"
	ackNoticeRPC       = "personaldata.v1.DisclosureService/AcknowledgeNotification"
)

const registry = "iis.se"

func consentReq(sub *pdv1.Subject, key string, purpose pdv1.ConsentPurpose, recipient string, given time.Time) *pdv1.RecordConsentRequest {
	return &pdv1.RecordConsentRequest{
		IdempotencyKey: key, SubjectId: sub.GetSubjectId(), Purpose: purpose, Recipient: recipient,
		GiveTime: timestamppb.New(given), Channel: pdv1.Channel_CHANNEL_PORTAL, WordingReference: "consent-text-v3",
	}
}

func withdrawReq(sub *pdv1.Subject, key, id string) *pdv1.WithdrawConsentRequest {
	return &pdv1.WithdrawConsentRequest{IdempotencyKey: key, SubjectId: sub.GetSubjectId(), ConsentId: id, Channel: pdv1.Channel_CHANNEL_EMAIL, Reference: "ticket-400"}
}

func discloseReq(sub *pdv1.Subject, key, recipient string, basis pdv1.DisclosureBasis, reference string, cats ...pdv1.DataCategory) *pdv1.DiscloseRequest {
	return &pdv1.DiscloseRequest{
		IdempotencyKey: key, SubjectId: sub.GetSubjectId(), Recipient: recipient, Purpose: pdv1.Purpose_PURPOSE_DOMAIN_REGISTRATION,
		Categories: cats, Basis: basis, Reference: reference,
	}
}

// domreg is c's transport as the domain-registration integration, acting
// for the company and customer-42.
func (e *env) domreg(t *testing.T, c caller) caller {
	t.Helper()
	return e.as(c, e.principal(t, "domreg", pdv1.PrincipalKind_PRINCIPAL_KIND_DOMAIN_REGISTRATION, []string{"company", "customer-42"}, nil))
}

// notices lists a recipient's unacknowledged notifications, every page.
func notices(t *testing.T, c caller, recipient string) []*pdv1.RecipientNotification {
	t.Helper()
	var out []*pdv1.RecipientNotification
	token := ""
	for {
		res := call(t, c, listNoticesRPC, &pdv1.ListRecipientNotificationsRequest{Recipient: recipient, PageToken: token}, &pdv1.ListRecipientNotificationsResponse{})
		out = append(out, res.GetNotifications()...)
		if token = res.GetNextPageToken(); token == "" {
			return out
		}
	}
}

// noticeSummary is "subject:kind[fields]" for each notification, to compare.
func noticeSummary(ns []*pdv1.RecipientNotification, names map[string]string) []string {
	var out []string
	for _, n := range ns {
		s := names[n.GetSubjectId()] + ":" + strings.TrimPrefix(n.GetKind().String(), "NOTIFICATION_KIND_")
		if len(n.GetFields()) > 0 {
			s += fmt.Sprint(n.GetFields())
		}
		out = append(out, s)
	}
	return out
}

// noticeSeq is a notification's place in its queue.
func noticeSeq(n *pdv1.RecipientNotification) int64 {
	seq, _ := strconv.ParseInt(n.GetNotificationId(), 10, 64)
	return seq
}

func version(t *testing.T, c caller, id string) int64 {
	t.Helper()
	return call(t, c, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: id, Purpose: pdv1.Purpose_PURPOSE_SUPPORT}, &pdv1.GetSubjectForPurposeResponse{}).GetVersion()
}

// rectifyPhone rectifies a subject's phone as c, from its current version.
func rectifyPhone(t *testing.T, c caller, sub *pdv1.Subject, key, phone string) *pdv1.RectifySubjectResponse {
	t.Helper()
	req := rectifyReq(sub, key, &pdv1.Person{Phone: phone}, "phone")
	req.ExpectedVersion = version(t, c, sub.GetSubjectId())
	return call(t, c, "RectifySubject", req, &pdv1.RectifySubjectResponse{})
}

// assertNoPersonalValues fails if a value of test person n is stored in the
// clear anywhere, the recipients' queues included.
func assertNoPersonalValues(t *testing.T, e *env, ns ...int) {
	t.Helper()
	dump := e.rawDump(t)
	for _, n := range ns {
		p := testPerson(n)
		for _, v := range []string{p.GetGivenName(), p.GetFamilyName(), p.GetEmail(), strings.ReplaceAll(p.GetIdentityNumber(), "-", ""), p.GetPostalAddress().GetLines()[0]} {
			if strings.Contains(dump, v) {
				t.Errorf("a personal value (%d chars) of person %d is stored in the clear", len(v), n)
			}
		}
	}
}

func TestDisclose(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		sub := create(t, c, 60)
		d := e.domreg(t, c)
		now := e.clock.Now()

		// CONSENT: refused without a consent on record.
		err := callErr(t, d, discloseRPC, discloseReq(sub, "d-consent-1", registry, pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONSENT, "", pdv1.DataCategory_DATA_CATEGORY_CONTACT), &pdv1.DiscloseResponse{}, codes.FailedPrecondition)
		if !hasPrecondition(err, "CONSENT_MISSING") {
			t.Errorf("without consent: %v, want CONSENT_MISSING", err)
		}
		// A consent to another recipient does not count.
		call(t, c, recordConsentRPC, consentReq(sub, "c-other", pdv1.ConsentPurpose_CONSENT_PURPOSE_DISCLOSURE, "registry.example.net", now.Add(-time.Hour)), &pdv1.RecordConsentResponse{})
		callErr(t, d, discloseRPC, discloseReq(sub, "d-consent-1", registry, pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONSENT, "", pdv1.DataCategory_DATA_CATEGORY_CONTACT), &pdv1.DiscloseResponse{}, codes.FailedPrecondition)

		// With the consent on record: only the categories asked for.
		consent := call(t, c, recordConsentRPC, consentReq(sub, "c-iis", pdv1.ConsentPurpose_CONSENT_PURPOSE_DISCLOSURE, registry, now.Add(-time.Hour)), &pdv1.RecordConsentResponse{}).GetConsent()
		res := call(t, d, discloseRPC, discloseReq(sub, "d-consent-1", registry, pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONSENT, "", pdv1.DataCategory_DATA_CATEGORY_CONTACT), &pdv1.DiscloseResponse{})
		if got := setPersonFields(res.GetPerson()); !slices.Equal(got, []string{"email", "phone", "postal_address"}) {
			t.Errorf("CONTACT disclosed %v", got)
		}
		if res.GetPerson().GetEmail() != "testa60@example.test" || res.GetPerson().GetPostalAddress().GetLocality() != "Provstad" {
			t.Errorf("disclosed %v", res.GetPerson())
		}
		first := res.GetDisclosure()
		if first.GetRecipient() != registry || first.GetBasis() != pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONSENT || first.GetPrincipalId() != "domreg" ||
			!slices.Equal(first.GetCategories(), []pdv1.DataCategory{pdv1.DataCategory_DATA_CATEGORY_CONTACT}) || !first.GetDiscloseTime().AsTime().Equal(now) {
			t.Errorf("disclosure %v", first)
		}
		// A retry answers the same disclosure and records nothing more.
		again := call(t, d, discloseRPC, discloseReq(sub, "d-consent-1", registry, pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONSENT, "", pdv1.DataCategory_DATA_CATEGORY_CONTACT), &pdv1.DiscloseResponse{})
		if again.GetDisclosure().GetDisclosureId() != first.GetDisclosureId() {
			t.Errorf("retry recorded disclosure %s, want %s", again.GetDisclosure().GetDisclosureId(), first.GetDisclosureId())
		}
		reused := discloseReq(sub, "d-consent-1", registry, pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONSENT, "", pdv1.DataCategory_DATA_CATEGORY_IDENTIFICATION)
		if err := callErr(t, d, discloseRPC, reused, &pdv1.DiscloseResponse{}, codes.InvalidArgument); !slices.Equal(badFields(err), []string{"idempotency_key"}) {
			t.Errorf("key reused: %v", badFields(err))
		}

		// Withdrawn: refused at once.
		call(t, c, withdrawConsentRPC, withdrawReq(sub, "w-iis", consent.GetConsentId()), &pdv1.WithdrawConsentResponse{})
		err = callErr(t, d, discloseRPC, discloseReq(sub, "d-consent-2", registry, pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONSENT, "", pdv1.DataCategory_DATA_CATEGORY_CONTACT), &pdv1.DiscloseResponse{}, codes.FailedPrecondition)
		if !hasPrecondition(err, "CONSENT_WITHDRAWN") {
			t.Errorf("after withdrawal: %v, want CONSENT_WITHDRAWN", err)
		}

		// The contract and the exceptions need their reference, and hold with it.
		for i, basis := range []pdv1.DisclosureBasis{
			pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONTRACT, pdv1.DisclosureBasis_DISCLOSURE_BASIS_BREACH_OF_TERMS,
			pdv1.DisclosureBasis_DISCLOSURE_BASIS_LEGAL_PROCEEDINGS, pdv1.DisclosureBasis_DISCLOSURE_BASIS_AUTHORITY_REQUEST,
		} {
			err := callErr(t, d, discloseRPC, discloseReq(sub, fmt.Sprintf("d-noref-%d", i), registry, basis, " ", pdv1.DataCategory_DATA_CATEGORY_IDENTIFICATION), &pdv1.DiscloseResponse{}, codes.InvalidArgument)
			if !slices.Equal(badFields(err), []string{"reference"}) {
				t.Errorf("%v without reference: fields %v, want [reference]", basis, badFields(err))
			}
			res := call(t, d, discloseRPC, discloseReq(sub, fmt.Sprintf("d-ref-%d", i), registry, basis, fmt.Sprintf("case-%d", i), pdv1.DataCategory_DATA_CATEGORY_IDENTIFICATION), &pdv1.DiscloseResponse{})
			if got := setPersonFields(res.GetPerson()); !slices.Equal(got, []string{"identity_number", "given_name", "family_name"}) {
				t.Errorf("%v: IDENTIFICATION disclosed %v", basis, got)
			}
			if res.GetDisclosure().GetBasis() != basis || res.GetDisclosure().GetReference() != fmt.Sprintf("case-%d", i) {
				t.Errorf("%v: recorded %v", basis, res.GetDisclosure())
			}
		}
		both := call(t, d, discloseRPC, discloseReq(sub, "d-both", registry, pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONTRACT, "order-1", pdv1.DataCategory_DATA_CATEGORY_CONTACT, pdv1.DataCategory_DATA_CATEGORY_IDENTIFICATION), &pdv1.DiscloseResponse{})
		if got := setPersonFields(both.GetPerson()); len(got) != 6 {
			t.Errorf("both categories disclosed %v", got)
		}

		// Every disclosure is listed in AccessSubject.
		access := call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
		ds := access.GetDisclosures()
		if len(ds) != 6 {
			t.Fatalf("AccessSubject lists %d disclosures, want 6: %v", len(ds), ds)
		}
		if !proto.Equal(ds[0], first) || ds[1].GetBasis() != pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONTRACT || ds[1].GetReference() != "case-0" || ds[5].GetReference() != "order-1" {
			t.Errorf("disclosures %v", ds)
		}
		if len(access.GetConsents()) != 2 || access.GetConsents()[1].GetWithdrawTime() == nil {
			t.Errorf("consents %v", access.GetConsents())
		}

		// A caller that does not hold the purpose, or acts for another tenant.
		other := e.as(c, e.principal(t, "domreg-other", pdv1.PrincipalKind_PRINCIPAL_KIND_DOMAIN_REGISTRATION, []string{"customer-99"}, nil))
		callErr(t, other, discloseRPC, discloseReq(sub, "d-other", registry, pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONTRACT, "order-1", pdv1.DataCategory_DATA_CATEGORY_CONTACT), &pdv1.DiscloseResponse{}, codes.NotFound)
		support := e.as(c, e.principal(t, "support-only", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, []string{"company"}, []pdv1.Purpose{pdv1.Purpose_PURPOSE_SUPPORT}))
		callErr(t, support, discloseRPC, discloseReq(sub, "d-support", registry, pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONTRACT, "order-1", pdv1.DataCategory_DATA_CATEGORY_CONTACT), &pdv1.DiscloseResponse{}, codes.PermissionDenied)
		billing := e.as(c, e.principal(t, "billing", pdv1.PrincipalKind_PRINCIPAL_KIND_BILLING_SYSTEM, []string{"company"}, nil))
		callErr(t, billing, discloseRPC, discloseReq(sub, "d-billing", registry, pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONTRACT, "order-1", pdv1.DataCategory_DATA_CATEGORY_CONTACT), &pdv1.DiscloseResponse{}, codes.PermissionDenied)

		// Restricted: refused, naming the restriction.
		call(t, c, "RestrictProcessing", restrictReq(sub, "restrict"), &pdv1.RestrictProcessingResponse{})
		err = callErr(t, d, discloseRPC, discloseReq(sub, "d-restricted", registry, pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONTRACT, "order-2", pdv1.DataCategory_DATA_CATEGORY_CONTACT), &pdv1.DiscloseResponse{}, codes.FailedPrecondition)
		if !hasPrecondition(err, "PROCESSING_RESTRICTED") || !strings.Contains(status.Convert(err).Message(), "RESTRICTION_GROUND_ACCURACY_CONTESTED") {
			t.Errorf("restricted: %v", err)
		}
		// A retry of a disclosure made before is refused too: it would hand
		// the data over again.
		callErr(t, d, discloseRPC, discloseReq(sub, "d-both", registry, pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONTRACT, "order-1", pdv1.DataCategory_DATA_CATEGORY_CONTACT, pdv1.DataCategory_DATA_CATEGORY_IDENTIFICATION), &pdv1.DiscloseResponse{}, codes.FailedPrecondition)
		call(t, c, "LiftRestriction", liftReq(sub, "lift", pdv1.LiftResolution_LIFT_RESOLUTION_CONFIRMED_CORRECT), &pdv1.LiftRestrictionResponse{})
		call(t, c, "EraseSubject", eraseReq(sub, "erase"), &pdv1.EraseSubjectResponse{})
		callErr(t, d, discloseRPC, discloseReq(sub, "d-erased", registry, pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONTRACT, "order-3", pdv1.DataCategory_DATA_CATEGORY_CONTACT), &pdv1.DiscloseResponse{}, codes.NotFound)
		// The record of disclosures stays in the tombstone.
		tomb := call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
		if len(tomb.GetDisclosures()) != 6 || len(tomb.GetConsents()) != 2 {
			t.Errorf("tombstone: %d disclosures, %d consents", len(tomb.GetDisclosures()), len(tomb.GetConsents()))
		}
		assertNoPersonalValues(t, e, 60)
	})
}

func TestDiscloseBadInput(t *testing.T) {
	cases := []struct {
		name   string
		change func(r *pdv1.DiscloseRequest)
		fields []string
	}{
		{"no idempotency key", func(r *pdv1.DiscloseRequest) { r.IdempotencyKey = "" }, []string{"idempotency_key"}},
		{"bad subject", func(r *pdv1.DiscloseRequest) { r.SubjectId = "Not-An-Id" }, []string{"subject_id"}},
		{"no recipient", func(r *pdv1.DiscloseRequest) { r.Recipient = "" }, []string{"recipient"}},
		{"recipient not a host", func(r *pdv1.DiscloseRequest) { r.Recipient = "IIS.SE" }, []string{"recipient"}},
		{"no purpose", func(r *pdv1.DiscloseRequest) { r.Purpose = 0 }, []string{"purpose"}},
		{"unknown purpose", func(r *pdv1.DiscloseRequest) { r.Purpose = 99 }, []string{"purpose"}},
		{"no categories", func(r *pdv1.DiscloseRequest) { r.Categories = nil }, []string{"categories"}},
		{"history", func(r *pdv1.DiscloseRequest) {
			r.Categories = []pdv1.DataCategory{pdv1.DataCategory_DATA_CATEGORY_CONTACT, pdv1.DataCategory_DATA_CATEGORY_HISTORY}
		}, []string{"categories"}},
		{"unspecified category", func(r *pdv1.DiscloseRequest) { r.Categories = []pdv1.DataCategory{0} }, []string{"categories"}},
		{"no basis", func(r *pdv1.DiscloseRequest) { r.Basis = 0 }, []string{"basis"}},
		{"reference too long", func(r *pdv1.DiscloseRequest) { r.Reference = strings.Repeat("r", 201) }, []string{"reference"}},
		{"several at once", func(r *pdv1.DiscloseRequest) { r.Recipient, r.Basis = "", 0 }, []string{"recipient", "basis"}},
	}
	transports(t, func(t *testing.T, e *env, c caller) {
		sub := create(t, c, 64)
		d := e.domreg(t, c)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				req := discloseReq(sub, "d-bad", registry, pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONTRACT, "order-1", pdv1.DataCategory_DATA_CATEGORY_CONTACT)
				tc.change(req)
				err := callErr(t, d, discloseRPC, req, &pdv1.DiscloseResponse{}, codes.InvalidArgument)
				if got := badFields(err); !slices.Equal(got, tc.fields) {
					t.Errorf("fields %v, want %v", got, tc.fields)
				}
			})
		}
		access := call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
		if len(access.GetDisclosures()) != 0 {
			t.Errorf("bad requests recorded %d disclosures", len(access.GetDisclosures()))
		}
	})
}

// TestDiscloseCustomerData: a customer's data goes only to a recipient its
// processor agreement approves as a sub-processor, and only under an
// agreement that covers the purpose and categories.
func TestDiscloseCustomerData(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		createAgreement(t, e, c, paReq(e, "pa-1", "customer-42", []pdv1.Purpose{pdv1.Purpose_PURPOSE_DOMAIN_REGISTRATION, pdv1.Purpose_PURPOSE_SUPPORT},
			pdv1.DataCategory_DATA_CATEGORY_IDENTIFICATION, pdv1.DataCategory_DATA_CATEGORY_CONTACT))
		sub := createFor(t, c, "customer-42", 65)
		d := e.domreg(t, c)
		res := call(t, d, discloseRPC, discloseReq(sub, "d-1", registry, pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONTRACT, "order-1", pdv1.DataCategory_DATA_CATEGORY_CONTACT), &pdv1.DiscloseResponse{})
		if res.GetPerson().GetEmail() != "testa65@example.test" {
			t.Errorf("disclosed %v", res.GetPerson())
		}
		err := callErr(t, d, discloseRPC, discloseReq(sub, "d-2", "registrar.example.org", pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONTRACT, "order-1", pdv1.DataCategory_DATA_CATEGORY_CONTACT), &pdv1.DiscloseResponse{}, codes.FailedPrecondition)
		if !hasPrecondition(err, "RECIPIENT_NOT_APPROVED") || !strings.Contains(status.Convert(err).Message(), "registrar.example.org") {
			t.Errorf("unapproved recipient: %v", err)
		}
		// A purpose the agreement does not cover (the customer's controller
		// holds it; support staff do not disclose).
		ctl := e.controller(t, c)
		req := discloseReq(sub, "d-3", registry, pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONTRACT, "order-1", pdv1.DataCategory_DATA_CATEGORY_CONTACT)
		req.Purpose = pdv1.Purpose_PURPOSE_INVOICING
		err = callErr(t, ctl, discloseRPC, req, &pdv1.DiscloseResponse{}, codes.FailedPrecondition)
		if !hasPrecondition(err, "NO_PROCESSOR_AGREEMENT") || !strings.Contains(status.Convert(err).Message(), "PURPOSE_INVOICING") {
			t.Errorf("purpose not covered: %v", err)
		}
		// The consent to disclosure of a customer's data is the controller's
		// to record, not the company's staff's.
		callErr(t, c, recordConsentRPC, consentReq(sub, "c-1", pdv1.ConsentPurpose_CONSENT_PURPOSE_DISCLOSURE, registry, e.clock.Now()), &pdv1.RecordConsentResponse{}, codes.PermissionDenied)
		call(t, ctl, recordConsentRPC, consentReq(sub, "c-1", pdv1.ConsentPurpose_CONSENT_PURPOSE_DISCLOSURE, registry, e.clock.Now()), &pdv1.RecordConsentResponse{})
		call(t, d, discloseRPC, discloseReq(sub, "d-4", registry, pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONSENT, "", pdv1.DataCategory_DATA_CATEGORY_IDENTIFICATION), &pdv1.DiscloseResponse{})
		access := call(t, ctl, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
		if len(access.GetDisclosures()) != 2 || len(access.GetConsents()) != 1 {
			t.Errorf("access: %d disclosures, %d consents", len(access.GetDisclosures()), len(access.GetConsents()))
		}
	})
}

func TestConsents(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		sub := create(t, c, 66)
		marketing := e.as(c, e.principal(t, "marketing", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, []string{"company"}, []pdv1.Purpose{pdv1.Purpose_PURPOSE_DIRECT_MARKETING}))
		dm := &pdv1.GetSubjectForPurposeRequest{SubjectId: sub.GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_DIRECT_MARKETING}
		err := callErr(t, marketing, "GetSubjectForPurpose", dm, &pdv1.GetSubjectForPurposeResponse{}, codes.FailedPrecondition)
		if !hasPrecondition(err, "CONSENT_MISSING") || !strings.Contains(status.Convert(err).Message(), "CONSENT_PURPOSE_DIRECT_MARKETING") {
			t.Errorf("direct marketing without consent: %v", err)
		}

		given := e.clock.Now().Add(-24 * time.Hour)
		req := consentReq(sub, "c-dm", pdv1.ConsentPurpose_CONSENT_PURPOSE_DIRECT_MARKETING, "", given)
		consent := call(t, c, recordConsentRPC, req, &pdv1.RecordConsentResponse{}).GetConsent()
		if consent.GetConsentId() == "" || consent.GetPurpose() != pdv1.ConsentPurpose_CONSENT_PURPOSE_DIRECT_MARKETING || !consent.GetGiveTime().AsTime().Equal(given) ||
			consent.GetChannel() != pdv1.Channel_CHANNEL_PORTAL || consent.GetWordingReference() != "consent-text-v3" || consent.GetWithdrawTime() != nil {
			t.Errorf("consent %v", consent)
		}
		if again := call(t, c, recordConsentRPC, req, &pdv1.RecordConsentResponse{}).GetConsent(); !proto.Equal(again, consent) {
			t.Errorf("retry gave %v, want %v", again, consent)
		}
		view := call(t, marketing, "GetSubjectForPurpose", dm, &pdv1.GetSubjectForPurposeResponse{})
		if got := setPersonFields(view.GetPerson()); !slices.Equal(got, []string{"given_name", "family_name", "email"}) {
			t.Errorf("direct marketing view %v", got)
		}

		// Withdrawal stops it at once; withdrawing again returns it as it is.
		e.clock.Advance(time.Minute)
		withdrawn := call(t, c, withdrawConsentRPC, withdrawReq(sub, "w-1", consent.GetConsentId()), &pdv1.WithdrawConsentResponse{}).GetConsent()
		if !withdrawn.GetWithdrawTime().AsTime().Equal(e.clock.Now()) || withdrawn.GetWithdrawChannel() != pdv1.Channel_CHANNEL_EMAIL || withdrawn.GetWithdrawReference() != "ticket-400" {
			t.Errorf("withdrawn %v", withdrawn)
		}
		err = callErr(t, marketing, "GetSubjectForPurpose", dm, &pdv1.GetSubjectForPurposeResponse{}, codes.FailedPrecondition)
		if !hasPrecondition(err, "CONSENT_WITHDRAWN") {
			t.Errorf("after withdrawal: %v", err)
		}
		e.clock.Advance(time.Minute)
		if again := call(t, c, withdrawConsentRPC, withdrawReq(sub, "w-2", consent.GetConsentId()), &pdv1.WithdrawConsentResponse{}).GetConsent(); !proto.Equal(again, withdrawn) {
			t.Errorf("second withdrawal gave %v, want %v", again, withdrawn)
		}
		callErr(t, c, withdrawConsentRPC, withdrawReq(sub, "w-3", "9"), &pdv1.WithdrawConsentResponse{}, codes.NotFound)
		if got := e.ledgered(t, ledger.KindConsentWithdrawal); !slices.Equal(got, []string{sub.GetSubjectId()}) {
			t.Errorf("withdrawals in the erasure ledger: %v", got)
		}
		if err := callErr(t, c, withdrawConsentRPC, withdrawReq(sub, "w-4", "abc"), &pdv1.WithdrawConsentResponse{}, codes.InvalidArgument); !slices.Equal(badFields(err), []string{"consent_id"}) {
			t.Errorf("bad consent id: %v", badFields(err))
		}

		// A new consent makes it lawful again; AccessSubject shows both, and
		// the purpose with its basis.
		renewed := call(t, c, recordConsentRPC, consentReq(sub, "c-dm-2", pdv1.ConsentPurpose_CONSENT_PURPOSE_DIRECT_MARKETING, "", e.clock.Now()), &pdv1.RecordConsentResponse{}).GetConsent()
		call(t, marketing, "GetSubjectForPurpose", dm, &pdv1.GetSubjectForPurposeResponse{})
		// Consent given again while one is live is the one on record, so a
		// single withdrawal always stops the processing.
		if twice := call(t, c, recordConsentRPC, consentReq(sub, "c-dm-3", pdv1.ConsentPurpose_CONSENT_PURPOSE_DIRECT_MARKETING, "", e.clock.Now()), &pdv1.RecordConsentResponse{}).GetConsent(); twice.GetConsentId() != renewed.GetConsentId() {
			t.Errorf("a second live consent %s beside %s", twice.GetConsentId(), renewed.GetConsentId())
		}
		access := call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
		if cs := access.GetConsents(); len(cs) != 2 || !proto.Equal(cs[0], withdrawn) || cs[1].GetWithdrawTime() != nil {
			t.Errorf("consents %v", cs)
		}
		var dmPurpose *pdv1.ProcessingPurpose
		for _, p := range access.GetPurposes() {
			if p.GetPurpose() == pdv1.Purpose_PURPOSE_DIRECT_MARKETING {
				dmPurpose = p
			}
		}
		if dmPurpose == nil || !strings.Contains(dmPurpose.GetLegalBasis(), "consent") || !slices.Equal(dmPurpose.GetFields(), []string{"given_name", "family_name", "email"}) {
			t.Errorf("direct marketing purpose %v", dmPurpose)
		}

		// Bad input is refused, naming each field, and writes nothing.
		for _, tc := range []struct {
			name   string
			change func(r *pdv1.RecordConsentRequest)
			fields []string
		}{
			{"no key", func(r *pdv1.RecordConsentRequest) { r.IdempotencyKey = "" }, []string{"idempotency_key"}},
			{"no purpose", func(r *pdv1.RecordConsentRequest) { r.Purpose = 0 }, []string{"purpose"}},
			{"disclosure without recipient", func(r *pdv1.RecordConsentRequest) { r.Purpose = pdv1.ConsentPurpose_CONSENT_PURPOSE_DISCLOSURE }, []string{"recipient"}},
			{"marketing with recipient", func(r *pdv1.RecordConsentRequest) { r.Recipient = registry }, []string{"recipient"}},
			{"bad recipient", func(r *pdv1.RecordConsentRequest) {
				r.Purpose, r.Recipient = pdv1.ConsentPurpose_CONSENT_PURPOSE_DISCLOSURE, "not a host"
			}, []string{"recipient"}},
			{"no give time", func(r *pdv1.RecordConsentRequest) { r.GiveTime = nil }, []string{"give_time"}},
			{"future give time", func(r *pdv1.RecordConsentRequest) { r.GiveTime = timestamppb.New(e.clock.Now().Add(time.Hour)) }, []string{"give_time"}},
			{"no channel", func(r *pdv1.RecordConsentRequest) { r.Channel = 0 }, []string{"channel"}},
			{"no wording", func(r *pdv1.RecordConsentRequest) { r.WordingReference = "" }, []string{"wording_reference"}},
			{"several", func(r *pdv1.RecordConsentRequest) { r.Channel, r.WordingReference = 0, "" }, []string{"channel", "wording_reference"}},
		} {
			r := consentReq(sub, "c-bad", pdv1.ConsentPurpose_CONSENT_PURPOSE_DIRECT_MARKETING, "", e.clock.Now())
			tc.change(r)
			err := callErr(t, c, recordConsentRPC, r, &pdv1.RecordConsentResponse{}, codes.InvalidArgument)
			if got := badFields(err); !slices.Equal(got, tc.fields) {
				t.Errorf("%s: fields %v, want %v", tc.name, got, tc.fields)
			}
		}
		access = call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
		if len(access.GetConsents()) != 2 {
			t.Errorf("bad requests recorded consents: %d", len(access.GetConsents()))
		}
		// Another tenant's subject does not exist for the caller.
		stranger := e.as(c, e.principal(t, "stranger", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, []string{"customer-99"}, nil))
		callErr(t, stranger, recordConsentRPC, consentReq(sub, "c-x", pdv1.ConsentPurpose_CONSENT_PURPOSE_DIRECT_MARKETING, "", e.clock.Now()), &pdv1.RecordConsentResponse{}, codes.NotFound)
		callErr(t, stranger, withdrawConsentRPC, withdrawReq(sub, "w-x", "1"), &pdv1.WithdrawConsentResponse{}, codes.NotFound)
	})
}

// TestDirectMarketingObjection: an erasure on the ground of an objection to
// direct marketing stops direct marketing, even where a legal hold keeps
// the data the purpose would use, and withdraws the consent in the record.
func TestDirectMarketingObjection(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		marketing := e.as(c, e.principal(t, "marketing", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, []string{"company"}, []pdv1.Purpose{pdv1.Purpose_PURPOSE_DIRECT_MARKETING}))
		for i, held := range []bool{false, true} {
			sub := create(t, c, 67+i)
			call(t, c, recordConsentRPC, consentReq(sub, "c-dm", pdv1.ConsentPurpose_CONSENT_PURPOSE_DIRECT_MARKETING, "", e.clock.Now()), &pdv1.RecordConsentResponse{})
			dm := &pdv1.GetSubjectForPurposeRequest{SubjectId: sub.GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_DIRECT_MARKETING}
			call(t, marketing, "GetSubjectForPurpose", dm, &pdv1.GetSubjectForPurposeResponse{})
			if held {
				// Bookkeeping keeps names and contact data past the erasure.
				call(t, c, "personaldata.v1.RetentionService/PlaceHold", &pdv1.PlaceHoldRequest{
					IdempotencyKey: "hold", SubjectId: sub.GetSubjectId(), Basis: pdv1.HoldBasis_HOLD_BASIS_BOOKKEEPING,
					Categories:      []pdv1.DataCategory{pdv1.DataCategory_DATA_CATEGORY_IDENTIFICATION, pdv1.DataCategory_DATA_CATEGORY_CONTACT},
					TransactionTime: timestamppb.New(e.clock.Now().AddDate(0, -1, 0)), Reference: "invoice-9",
				}, &pdv1.PlaceHoldResponse{})
			}
			erase := eraseReq(sub, "erase")
			erase.Ground = pdv1.ErasureGround_ERASURE_GROUND_DIRECT_MARKETING_OBJECTION
			call(t, c, "EraseSubject", erase, &pdv1.EraseSubjectResponse{})
			err := marketing.call(context.Background(), "GetSubjectForPurpose", dm, &pdv1.GetSubjectForPurposeResponse{})
			if code := status.Code(err); code != codes.NotFound && code != codes.FailedPrecondition {
				t.Errorf("held %v: direct marketing after the objection: %v", held, err)
			}
			access := call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
			if cs := access.GetConsents(); len(cs) != 1 || cs[0].GetWithdrawTime() == nil || cs[0].GetWithdrawReference() != "ticket-300" {
				t.Errorf("held %v: consents after the objection %v", held, cs)
			}
		}
	})
}

func TestRecipientNotifications(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		a, b, quiet := create(t, c, 70), create(t, c, 71), create(t, c, 72)
		names := map[string]string{a.GetSubjectId(): "a", b.GetSubjectId(): "b", quiet.GetSubjectId(): "quiet"}
		d := e.domreg(t, c)
		contract := func(sub *pdv1.Subject, key, recipient string) {
			call(t, d, discloseRPC, discloseReq(sub, key, recipient, pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONTRACT, "order-"+key, pdv1.DataCategory_DATA_CATEGORY_CONTACT), &pdv1.DiscloseResponse{})
		}
		contract(a, "a-1", registry)
		contract(a, "a-2", "registry.example.net")
		contract(a, "a-3", registry) // a second disclosure to the same recipient: still one notification each
		contract(b, "b-1", registry)
		if got := notices(t, d, registry); len(got) != 0 {
			t.Fatalf("queued before any change: %v", got)
		}

		rect := rectifyPhone(t, c, a, "rect-a", "+46701234500")
		// A retry of the rectification queues nothing more.
		retry := rectifyReq(a, "rect-a", &pdv1.Person{Phone: "+46701234500"}, "phone")
		retry.ExpectedVersion = rect.GetChange().GetVersion() - 1
		call(t, c, "RectifySubject", retry, &pdv1.RectifySubjectResponse{})
		rectifyPhone(t, c, quiet, "rect-quiet", "+46701234501") // never disclosed
		call(t, c, "RestrictProcessing", restrictReq(b, "restrict-b"), &pdv1.RestrictProcessingResponse{})
		call(t, c, "EraseSubject", eraseReq(a, "erase-a"), &pdv1.EraseSubjectResponse{})
		// Disclosed after its change: that change is no news to the recipient.
		contract(quiet, "q-1", registry)

		got := notices(t, d, registry)
		if want := []string{"a:RECTIFIED[phone]", "b:RESTRICTED", "a:ERASED"}; !slices.Equal(noticeSummary(got, names), want) {
			t.Fatalf("%s queue %v, want %v", registry, noticeSummary(got, names), want)
		}
		if want := []string{"a:RECTIFIED[phone]", "a:ERASED"}; !slices.Equal(noticeSummary(notices(t, d, "registry.example.net"), names), want) {
			t.Errorf("registry.example.net queue %v, want %v", noticeSummary(notices(t, d, "registry.example.net"), names), want)
		}
		for i, n := range got {
			if n.GetRecipient() != registry || n.GetCreateTime() == nil || (i > 0 && noticeSeq(n) <= noticeSeq(got[i-1])) {
				t.Errorf("notification %d: %v", i, n)
			}
		}
		// Paging.
		page := call(t, d, listNoticesRPC, &pdv1.ListRecipientNotificationsRequest{Recipient: registry, PageSize: 2}, &pdv1.ListRecipientNotificationsResponse{})
		if len(page.GetNotifications()) != 2 || page.GetNextPageToken() == "" {
			t.Fatalf("first page %v", page)
		}
		rest := call(t, d, listNoticesRPC, &pdv1.ListRecipientNotificationsRequest{Recipient: registry, PageSize: 2, PageToken: page.GetNextPageToken()}, &pdv1.ListRecipientNotificationsResponse{})
		if len(rest.GetNotifications()) != 1 || !proto.Equal(rest.GetNotifications()[0], got[2]) {
			t.Errorf("second page %v", rest)
		}
		if err := callErr(t, d, listNoticesRPC, &pdv1.ListRecipientNotificationsRequest{Recipient: "registry.example.net", PageToken: page.GetNextPageToken()}, &pdv1.ListRecipientNotificationsResponse{}, codes.InvalidArgument); !slices.Equal(badFields(err), []string{"page_token"}) {
			t.Errorf("another listing's token: %v", badFields(err))
		}

		// Acknowledged: never returned again; acknowledging twice is harmless.
		ack := call(t, d, ackNoticeRPC, &pdv1.AcknowledgeNotificationRequest{Recipient: registry, NotificationId: got[0].GetNotificationId()}, &pdv1.AcknowledgeNotificationResponse{})
		if !proto.Equal(ack.GetNotification(), got[0]) {
			t.Errorf("acknowledged %v, want %v", ack.GetNotification(), got[0])
		}
		call(t, d, ackNoticeRPC, &pdv1.AcknowledgeNotificationRequest{Recipient: registry, NotificationId: got[0].GetNotificationId()}, &pdv1.AcknowledgeNotificationResponse{})
		// Out of order too.
		call(t, d, ackNoticeRPC, &pdv1.AcknowledgeNotificationRequest{Recipient: registry, NotificationId: got[2].GetNotificationId()}, &pdv1.AcknowledgeNotificationResponse{})
		if left := notices(t, d, registry); len(left) != 1 || !proto.Equal(left[0], got[1]) {
			t.Errorf("after acknowledgements: %v", noticeSummary(left, names))
		}
		callErr(t, d, ackNoticeRPC, &pdv1.AcknowledgeNotificationRequest{Recipient: registry, NotificationId: "999"}, &pdv1.AcknowledgeNotificationResponse{}, codes.NotFound)
		if err := callErr(t, d, ackNoticeRPC, &pdv1.AcknowledgeNotificationRequest{Recipient: registry, NotificationId: "0"}, &pdv1.AcknowledgeNotificationResponse{}, codes.InvalidArgument); !slices.Equal(badFields(err), []string{"notification_id"}) {
			t.Errorf("bad id: %v", badFields(err))
		}
		if err := callErr(t, d, listNoticesRPC, &pdv1.ListRecipientNotificationsRequest{Recipient: "Not A Host"}, &pdv1.ListRecipientNotificationsResponse{}, codes.InvalidArgument); !slices.Equal(badFields(err), []string{"recipient"}) {
			t.Errorf("bad recipient: %v", badFields(err))
		}

		// Operators read the queues too; support staff do not; an integration
		// acting for another tenant sees none of these.
		if left := notices(t, e.as(c, e.operator), registry); len(left) != 1 {
			t.Errorf("operator sees %v", noticeSummary(left, names))
		}
		callErr(t, c, listNoticesRPC, &pdv1.ListRecipientNotificationsRequest{Recipient: registry}, &pdv1.ListRecipientNotificationsResponse{}, codes.PermissionDenied)
		other := e.as(c, e.principal(t, "domreg-42", pdv1.PrincipalKind_PRINCIPAL_KIND_DOMAIN_REGISTRATION, []string{"customer-42"}, nil))
		if left := notices(t, other, registry); len(left) != 0 {
			t.Errorf("another tenant's integration sees %v", noticeSummary(left, names))
		}
		callErr(t, other, ackNoticeRPC, &pdv1.AcknowledgeNotificationRequest{Recipient: registry, NotificationId: got[1].GetNotificationId()}, &pdv1.AcknowledgeNotificationResponse{}, codes.NotFound)

		assertNoPersonalValues(t, e, 70, 71, 72)
		for _, coll := range []string{"notifications", "notification_heads", "notification_keys"} {
			if e.count(t, coll) == 0 {
				t.Errorf("nothing in %s: the dump searched nothing", coll)
			}
		}
	})
}

// TestPendingNoticeRecovery: a change whose notifications were not queued
// (the server stopped right after writing it) is queued by the next call
// that reads the subject, and never twice.
func TestPendingNoticeRecovery(t *testing.T) {
	// On a shared store: the test's own writes stand in for a crash, and a
	// server that owns its store keeps the subjects it wrote in memory
	// (after a real crash it starts with none).
	transportsOn(t, sharedStore, pendingNoticeRecovery)
}

func pendingNoticeRecovery(t *testing.T, e *env, c caller) {
	sub := create(t, c, 73)
	d := e.domreg(t, c)
	call(t, d, discloseRPC, discloseReq(sub, "d-1", registry, pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONTRACT, "order-1", pdv1.DataCategory_DATA_CATEGORY_CONTACT), &pdv1.DiscloseResponse{})
	// The crash: the rectification's change is written in the subject's
	// document (in the same update as the change itself, unsealed, as it
	// names fields only), and nothing else happened.
	ctx := context.Background()
	subjects := e.coll("subjects")
	var doc struct {
		Version int64 `bson:"v"`
	}
	if err := subjects.FindOne(ctx, bson.D{{Key: "_id", Value: sub.GetSubjectId()}}).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	change := bson.D{{Key: "kind", Value: "CHANGE_KIND_RECTIFIED"}, {Key: "fields", Value: bson.A{"email"}}, {Key: "at", Value: e.clock.Now().UnixNano()}, {Key: "version", Value: doc.Version + 1}}
	if _, err := subjects.UpdateOne(ctx, bson.D{{Key: "_id", Value: sub.GetSubjectId()}}, bson.D{
		{Key: "$push", Value: bson.D{{Key: "changes", Value: change}}},
		{Key: "$set", Value: bson.D{{Key: "v", Value: doc.Version + 1}}},
	}); err != nil {
		t.Fatal(err)
	}
	if got := notices(t, d, registry); len(got) != 0 {
		t.Fatalf("queued before the subject was read: %v", got)
	}
	call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
	got := notices(t, d, registry)
	if len(got) != 1 || got[0].GetKind() != pdv1.NotificationKind_NOTIFICATION_KIND_RECTIFIED || !slices.Equal(got[0].GetFields(), []string{"email"}) {
		t.Fatalf("after the read: %v", got)
	}
	// The mark that it was queued lost too (it is written after the
	// queue): queueing again finds it there and adds nothing.
	if _, err := subjects.UpdateOne(ctx, bson.D{{Key: "_id", Value: sub.GetSubjectId()}}, bson.D{{Key: "$set", Value: bson.D{{Key: "notified_version", Value: 0}}}}); err != nil {
		t.Fatal(err)
	}
	call(t, c, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: sub.GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_INVOICING}, &pdv1.GetSubjectForPurposeResponse{})
	if again := notices(t, d, registry); len(again) != 1 || e.count(t, "notifications") != 1 {
		t.Errorf("queued twice: %v", again)
	}
	// And the next change is queued after it.
	rectifyPhone(t, c, sub, "rect", "+46701234502")
	if again := notices(t, d, registry); len(again) != 2 || noticeSeq(again[1]) <= noticeSeq(again[0]) {
		t.Errorf("after the next change: %v", again)
	}
}

// TestNotificationStream reads the stream over gRPC and as the gateway's
// newline-delimited JSON: first what is queued, then what is queued while
// it is open.
func TestNotificationStream(t *testing.T) {
	e := start(t)
	c := e.gc()
	d := e.domreg(t, c)
	domregToken := d.(grpcCaller).token
	sub := create(t, c, 74)
	call(t, d, discloseRPC, discloseReq(sub, "d-1", registry, pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONTRACT, "order-1", pdv1.DataCategory_DATA_CATEGORY_CONTACT), &pdv1.DiscloseResponse{})
	rectifyPhone(t, c, sub, "rect-1", "+46701234503")

	t.Run("grpc", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+domregToken)
		st, err := pdv1.NewDisclosureServiceClient(e.grpc).StreamRecipientNotifications(ctx, &pdv1.StreamRecipientNotificationsRequest{Recipient: registry})
		if err != nil {
			t.Fatal(err)
		}
		first, err := st.Recv()
		if err != nil || first.GetNotification().GetKind() != pdv1.NotificationKind_NOTIFICATION_KIND_RECTIFIED {
			t.Fatalf("backlog: %v %v", first, err)
		}
		call(t, c, "RestrictProcessing", restrictReq(sub, "restrict"), &pdv1.RestrictProcessingResponse{})
		next, err := st.Recv()
		if err != nil || next.GetNotification().GetKind() != pdv1.NotificationKind_NOTIFICATION_KIND_RESTRICTED {
			t.Fatalf("new one: %v %v", next, err)
		}
		cancel()
		if _, err := st.Recv(); status.Code(err) != codes.Canceled {
			t.Errorf("after cancel: %v", err)
		}
	})

	t.Run("http", func(t *testing.T) {
		next := restStream(t, e.base+"/v1/recipients/"+registry+"/notifications:stream", domregToken)
		read := func() *pdv1.RecipientNotification {
			t.Helper()
			var m pdv1.StreamRecipientNotificationsResponse
			next(&m)
			return m.GetNotification()
		}
		// Nothing was acknowledged: the backlog is both.
		if a, b := read(), read(); a.GetKind() != pdv1.NotificationKind_NOTIFICATION_KIND_RECTIFIED || b.GetKind() != pdv1.NotificationKind_NOTIFICATION_KIND_RESTRICTED {
			t.Fatalf("backlog %v %v", a, b)
		}
		call(t, c, "EraseSubject", eraseReq(sub, "erase"), &pdv1.EraseSubjectResponse{})
		if n := read(); n.GetKind() != pdv1.NotificationKind_NOTIFICATION_KIND_ERASED || n.GetSubjectId() != sub.GetSubjectId() {
			t.Fatalf("new one: %v", n)
		}
	})

	// Acknowledged ones are not sent again: a new stream starts after them.
	for _, n := range notices(t, d, registry) {
		call(t, d, ackNoticeRPC, &pdv1.AcknowledgeNotificationRequest{Recipient: registry, NotificationId: n.GetNotificationId()}, &pdv1.AcknowledgeNotificationResponse{})
	}
	other := create(t, c, 75)
	call(t, d, discloseRPC, discloseReq(other, "d-2", registry, pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONTRACT, "order-2", pdv1.DataCategory_DATA_CATEGORY_CONTACT), &pdv1.DiscloseResponse{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := pdv1.NewDisclosureServiceClient(e.grpc).StreamRecipientNotifications(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+domregToken), &pdv1.StreamRecipientNotificationsRequest{Recipient: registry})
	if err != nil {
		t.Fatal(err)
	}
	rectifyPhone(t, c, other, "rect-2", "+46701234504")
	if n, err := st.Recv(); err != nil || n.GetNotification().GetSubjectId() != other.GetSubjectId() {
		t.Errorf("after acknowledgements the stream sent %v %v", n, err)
	}
	cancel()
	// Support staff may not read the queues.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	st2, err := pdv1.NewDisclosureServiceClient(e.grpc).StreamRecipientNotifications(metadata.AppendToOutgoingContext(ctx2, "authorization", "Bearer "+e.token), &pdv1.StreamRecipientNotificationsRequest{Recipient: registry})
	if err == nil {
		_, err = st2.Recv()
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("support staff stream: %v", err)
	}
}

// TestNotificationsSurviveRestart: a queued notification is there after a
// restart, an acknowledged one stays acknowledged, and the queue goes on.
func TestNotificationsSurviveRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts the server")
	}
	dir := t.TempDir()
	var tester, integration string
	run := func(f func(c, d caller)) {
		srv, stop := serve(t, dir, server.Config{Store: store.Config{DataDir: filepath.Join(dir, "data"), Database: "restart"}}, slog.New(slog.DiscardHandler))
		conn := dial(t, srv)
		if tester == "" {
			op := grpcCaller{conn, readToken(t, filepath.Join(dir, "operator.token"))}
			tester = createPrincipal(t, op, "tester", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, []string{"company"}, allPurposes)
			integration = createPrincipal(t, op, "domreg", pdv1.PrincipalKind_PRINCIPAL_KIND_DOMAIN_REGISTRATION, []string{"company"}, nil)
		}
		f(grpcCaller{conn, tester}, grpcCaller{conn, integration})
		stop()
	}
	var sub *pdv1.Subject
	run(func(c, d caller) {
		sub = create(t, c, 76)
		call(t, d, discloseRPC, discloseReq(sub, "d-1", registry, pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONTRACT, "order-1", pdv1.DataCategory_DATA_CATEGORY_CONTACT), &pdv1.DiscloseResponse{})
		rectifyPhone(t, c, sub, "rect-1", "+46701234505")
		rectifyPhone(t, c, sub, "rect-2", "+46701234506")
	})
	var firstID string
	run(func(c, d caller) {
		got := notices(t, d, registry)
		if len(got) != 2 {
			t.Fatalf("after restart: %v", got)
		}
		firstID = got[0].GetNotificationId()
		call(t, d, ackNoticeRPC, &pdv1.AcknowledgeNotificationRequest{Recipient: registry, NotificationId: firstID}, &pdv1.AcknowledgeNotificationResponse{})
	})
	run(func(c, d caller) {
		got := notices(t, d, registry)
		if len(got) != 1 || got[0].GetNotificationId() == firstID {
			t.Fatalf("after the second restart: %v", got)
		}
		call(t, c, "RestrictProcessing", restrictReq(sub, "restrict"), &pdv1.RestrictProcessingResponse{})
		got = notices(t, d, registry)
		if len(got) != 2 || got[1].GetKind() != pdv1.NotificationKind_NOTIFICATION_KIND_RESTRICTED || noticeSeq(got[1]) <= noticeSeq(got[0]) {
			t.Errorf("queue after restart: %v", got)
		}
	})
}

// TestNotificationStreamsEndOnShutdown: open notification streams, which
// never end by themselves, end with UNAVAILABLE as the server shuts down,
// so a graceful shutdown does not wait for them.
func TestNotificationStreamsEndOnShutdown(t *testing.T) {
	dir := t.TempDir()
	srv, stop := serve(t, dir, server.Config{Store: store.Config{DataDir: filepath.Join(dir, "data"), Database: "shutdown"}}, slog.New(slog.DiscardHandler))
	conn := dial(t, srv)
	op := grpcCaller{conn, readToken(t, filepath.Join(dir, "operator.token"))}
	token := createPrincipal(t, op, "domreg", pdv1.PrincipalKind_PRINCIPAL_KIND_DOMAIN_REGISTRATION, []string{"company"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := pdv1.NewDisclosureServiceClient(conn).StreamRecipientNotifications(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), &pdv1.StreamRecipientNotificationsRequest{Recipient: registry})
	if err != nil {
		t.Fatal(err)
	}
	grpcEnded := make(chan error, 1)
	go func() { _, err := st.Recv(); grpcEnded <- err }()
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+srv.HTTPAddr()+"/v1/recipients/"+registry+"/notifications:stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Authorization", "Bearer "+token)
	httpEnded := make(chan string, 1)
	go func() {
		res, err := http.DefaultClient.Do(hr)
		if err != nil {
			httpEnded <- err.Error()
			return
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		httpEnded <- string(b)
	}()
	time.Sleep(time.Second) // both streams open and waiting
	began := time.Now()
	stop()
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("shutdown took %v with notification streams open", took)
	}
	if err := <-grpcEnded; status.Code(err) != codes.Unavailable {
		t.Errorf("gRPC stream ended with %v, want UNAVAILABLE", err)
	}
	if body := <-httpEnded; !strings.Contains(body, "shutting down") {
		t.Errorf("HTTP stream ended with %q", body)
	}
}

// Entries of the authorization matrix (matrix_test.go) for the consent and
// disclosure RPCs.

func matrixKey(p matrixPrincipal, what, tenant string) string {
	return "m-" + p.id + "-" + what + "-" + tenant
}

func matrixRecordConsent() matrixRPC {
	return matrixRPC{method: recordConsentRPC, otherTenant: codes.NotFound,
		req: func(t *testing.T, f *matrixFixture, p matrixPrincipal, tenant string, sub *pdv1.Subject) proto.Message {
			return consentReq(sub, matrixKey(p, "consent", tenant), pdv1.ConsentPurpose_CONSENT_PURPOSE_DIRECT_MARKETING, "", f.e.clock.Now())
		}, resp: func() proto.Message { return &pdv1.RecordConsentResponse{} }}
}

// matrixWithdrawConsent withdraws the consent matrixRecordConsent recorded
// (the first of a fresh subject), as the same principals may.
func matrixWithdrawConsent() matrixRPC {
	return matrixRPC{method: withdrawConsentRPC, otherTenant: codes.NotFound,
		req: func(t *testing.T, f *matrixFixture, p matrixPrincipal, tenant string, sub *pdv1.Subject) proto.Message {
			return withdrawReq(sub, matrixKey(p, "withdraw", tenant), "1")
		}, resp: func() proto.Message { return &pdv1.WithdrawConsentResponse{} }}
}

func matrixDisclose() matrixRPC {
	return matrixRPC{method: discloseRPC, otherTenant: codes.NotFound,
		req: func(t *testing.T, f *matrixFixture, p matrixPrincipal, tenant string, sub *pdv1.Subject) proto.Message {
			req := discloseReq(sub, matrixKey(p, "disclose", tenant), registry, pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONTRACT, "order-m", pdv1.DataCategory_DATA_CATEGORY_CONTACT)
			req.Purpose = p.purpose
			return req
		}, resp: func() proto.Message { return &pdv1.DiscloseResponse{} }}
}

func matrixListNotifications() matrixRPC {
	return matrixRPC{method: listNoticesRPC, tenantFree: true,
		req: func(*testing.T, *matrixFixture, matrixPrincipal, string, *pdv1.Subject) proto.Message {
			return &pdv1.ListRecipientNotificationsRequest{Recipient: registry}
		}, resp: func() proto.Message { return &pdv1.ListRecipientNotificationsResponse{} }}
}

func matrixStreamNotifications() matrixRPC {
	return matrixRPC{method: streamNoticesRPC, tenantFree: true, endless: true,
		req: func(*testing.T, *matrixFixture, matrixPrincipal, string, *pdv1.Subject) proto.Message {
			return &pdv1.StreamRecipientNotificationsRequest{Recipient: registry}
		}, resp: func() proto.Message { return &pdv1.StreamRecipientNotificationsResponse{} }}
}

// matrixAckNotification acknowledges a notification about a company
// subject that the fixture's discloser disclosed and the setup principal
// rectified for it.
func matrixAckNotification() matrixRPC {
	return matrixRPC{method: ackNoticeRPC, tenantFree: true,
		req: func(t *testing.T, f *matrixFixture, p matrixPrincipal, _ string, _ *pdv1.Subject) proto.Message {
			sub := f.fresh(t, "company")
			call(t, f.discloser, discloseRPC, discloseReq(sub, matrixKey(p, "ack-disclose", "company"), registry, pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONTRACT, "order-m", pdv1.DataCategory_DATA_CATEGORY_CONTACT), &pdv1.DiscloseResponse{})
			rectifyPhone(t, f.setup, sub, matrixKey(p, "ack-rectify", "company"), "+46701112299")
			id := "1"
			for _, n := range notices(t, f.e.as(f.setup, f.e.operator), registry) {
				if n.GetSubjectId() == sub.GetSubjectId() {
					id = n.GetNotificationId()
				}
			}
			return &pdv1.AcknowledgeNotificationRequest{Recipient: registry, NotificationId: id}
		}, resp: func() proto.Message { return &pdv1.AcknowledgeNotificationResponse{} }}
}

// matrixCall calls rpc as the matrix does. An endless stream (the
// notifications) is stopped after a second: a stream still open by then
// was permitted.
func matrixCall(t *testing.T, as caller, rpc matrixRPC, req proto.Message) error {
	if !rpc.endless {
		return as.call(t.Context(), rpc.method, req, rpc.resp())
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	err := as.call(ctx, rpc.method, req, rpc.resp())
	// Allowed and still open when the second was up: the deadline ends it,
	// seen by the client or first by the server (which has it too).
	if code := status.Code(err); code == codes.DeadlineExceeded || (ctx.Err() != nil && code == codes.Canceled) {
		return nil
	}
	if _, isStatus := status.FromError(err); !isStatus && ctx.Err() != nil {
		return nil
	}
	return err
}

// TestStreamEndsOnRevocation: an open notification stream reads its
// principal again, so revoking it ends the stream.
func TestStreamEndsOnRevocation(t *testing.T) {
	e := start(t)
	token := e.principal(t, "domreg-revoked", pdv1.PrincipalKind_PRINCIPAL_KIND_DOMAIN_REGISTRATION, []string{"company"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := pdv1.NewDisclosureServiceClient(e.grpc).StreamRecipientNotifications(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), &pdv1.StreamRecipientNotificationsRequest{Recipient: "iis.se"})
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() {
		for {
			if _, err := st.Recv(); err != nil {
				ended <- err
				return
			}
		}
	}()
	time.Sleep(300 * time.Millisecond) // the stream is open and polling
	call(t, e.as(e.gc(), e.operator), principalSvc+"RevokePrincipal", &pdv1.RevokePrincipalRequest{IdempotencyKey: "r", PrincipalId: "domreg-revoked"}, &pdv1.RevokePrincipalResponse{})
	select {
	case err := <-ended:
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("stream ended with %v, want UNAUTHENTICATED", err)
		}
	case <-ctx.Done():
		t.Fatal("the stream of a revoked principal stayed open")
	}
}
