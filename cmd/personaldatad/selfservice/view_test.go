package selfservice

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// everyValue is an access document with every field the overview shows
// set, and each enum at each of its values in turn (i picks them).
func everyValue(i int) *pdv1.AccessSubjectResponse {
	ts := timestamppb.New(time.Date(2026, 3, 5, 23, 30, 0, 0, time.UTC)) // 6 mars in Stockholm
	pick := func(d protoreflect.EnumDescriptor) protoreflect.EnumNumber {
		vs := d.Values()
		return vs.Get(1 + i%(vs.Len()-1)).Number() // never UNSPECIFIED
	}
	return &pdv1.AccessSubjectResponse{
		Subject: &pdv1.Subject{SubjectId: "s-1", ControllerId: "customer-42", Version: 3,
			State: pdv1.SubjectState(pick(pdv1.SubjectState(0).Descriptor())),
			Person: &pdv1.Person{IdentityNumber: "198112189876", GivenName: "Testa", FamilyName: "Testsson", Email: "testa@example.test",
				Phone: "070-123 45 67", IdentityNumberKind: pdv1.IdentityNumberKind(pick(pdv1.IdentityNumberKind(0).Descriptor())),
				PostalAddress: &pdv1.PostalAddress{Lines: []string{"Provgatan 1"}, PostalCode: "123 45", Locality: "Provstad", CountryCode: "NO"}},
			Restriction: &pdv1.Restriction{RestrictTime: ts}, Erasure: &pdv1.Erasure{EraseTime: ts},
			CreateTime: ts, UpdateTime: ts, HistoryCount: 1},
		Purposes: []*pdv1.ProcessingPurpose{
			{Purpose: pdv1.Purpose(pick(pdv1.Purpose(0).Descriptor())), Description: "english description", LegalBasis: "contract with the customer (GDPR Art. 6(1)(b))",
				Fields: []string{"identity_number", "given_name", "family_name", "email", "phone", "postal_address"}},
			{Purpose: pdv1.Purpose_PURPOSE_DIRECT_MARKETING, LegalBasis: "consent of the data subject (GDPR Art. 6(1)(a)); stops on withdrawal or objection (Art. 7(3), 21(3))", Fields: []string{"email"}},
			{Purpose: pdv1.Purpose_PURPOSE_INVOICING, LegalBasis: "processing on the controller's instruction under processor agreement customer-42/1 (GDPR Art. 28)", Fields: []string{"email"}},
		},
		Retention: &pdv1.Retention{Policy: "Kept as long as needed"},
		Consents: []*pdv1.Consent{{ConsentId: "c-1", Purpose: pdv1.ConsentPurpose(pick(pdv1.ConsentPurpose(0).Descriptor())), Recipient: "Partner AB",
			GiveTime: ts, Channel: pdv1.Channel_CHANNEL_EMAIL, WordingReference: "w-1", WithdrawTime: ts, WithdrawChannel: pdv1.Channel_CHANNEL_PHONE}},
		Disclosures: []*pdv1.Disclosure{{DisclosureId: "d-1", Recipient: "Polisen", Purpose: pdv1.Purpose(pick(pdv1.Purpose(0).Descriptor())),
			Categories: []pdv1.DataCategory{pdv1.DataCategory(pick(pdv1.DataCategory(0).Descriptor()))}, Basis: pdv1.DisclosureBasis(pick(pdv1.DisclosureBasis(0).Descriptor())),
			Reference: "ref", DiscloseTime: ts, PrincipalId: "p-1"}},
		Holds: []*pdv1.RetentionHold{{HoldId: "h-1", Basis: pdv1.HoldBasis(pick(pdv1.HoldBasis(0).Descriptor())), Categories: []pdv1.DataCategory{pdv1.DataCategory_DATA_CATEGORY_HISTORY},
			TransactionTime: ts, Until: ts, Reference: "ref", PlaceTime: ts, PlacedBy: "p-1", EndTime: ts}},
		Changes:                []*pdv1.ChangeRecord{{Kind: pdv1.ChangeKind(pick(pdv1.ChangeKind(0).Descriptor())), Fields: []string{"email", "postal_address"}, ChangeTime: ts}},
		History:                []*pdv1.HistoryEntry{{EntryId: "e-1", Kind: pdv1.HistoryKind(pick(pdv1.HistoryKind(0).Descriptor())), Title: "Fråga om faktura", Body: "Hej!", OccurTime: ts}},
		PolicyAcknowledgements: []*pdv1.PolicyAcknowledgement{{Version: "2026-01", Kind: pdv1.PolicyAcknowledgementKind(pick(pdv1.PolicyAcknowledgementKind(0).Descriptor())), AcknowledgeTime: ts}},
	}
}

// The overview shows every field in plain Swedish: no field name, enum
// value or English phrase of the API, dates as "6 mars 2026", no row
// without a value.
func TestOverviewInPlainSwedish(t *testing.T) {
	apiWords := regexp.MustCompile(`\b[a-z]+_[a-z_]+\b|\b[A-Z]{2,}_[A-Z_]+\b|\d{4}-\d{2}-\d{2}`)
	english := []string{"contract", "consent of", "processing", "Kept", "description", "GDPR", "Art.", "undefined", "<nil>"}
	tags := regexp.MustCompile(`<[^>]*>`)
	for i := range 6 {
		var b bytes.Buffer
		if err := pageTemplate.Execute(&b, view{Lang: "sv", Title: "Dina personuppgifter", Step: "me", Sections: sections(everyValue(i), "sv")}); err != nil {
			t.Fatal(err)
		}
		text := tags.ReplaceAllString(b.String(), " ")
		if m := apiWords.FindAllString(text, -1); m != nil {
			t.Errorf("pick %d: API names or ISO dates on the page: %v", i, m)
		}
		for _, w := range english {
			if strings.Contains(text, w) {
				t.Errorf("pick %d: %q on the page", i, w)
			}
		}
		for _, w := range []string{"6 mars 2026", "19811218-9876", "Provgatan 1, 123 45 Provstad, Norge", "personuppgiftsbiträdesavtal customer-42/1", "Vår kund customer-42"} {
			if !strings.Contains(text, w) {
				t.Errorf("pick %d: %q missing", i, w)
			}
		}
		for _, s := range sections(everyValue(i), "sv") {
			for _, it := range s.Items {
				for _, r := range it.Rows {
					if strings.TrimSpace(r.Value) == "" || strings.TrimSpace(r.Label) == "" {
						t.Errorf("pick %d, %s: an empty row %q", i, s.Heading, r)
					}
				}
			}
		}
	}
	// Every enum value the overview names has Swedish words.
	for _, d := range []protoreflect.EnumDescriptor{pdv1.Purpose(0).Descriptor(), pdv1.DataCategory(0).Descriptor(), pdv1.DisclosureBasis(0).Descriptor(),
		pdv1.ConsentPurpose(0).Descriptor(), pdv1.HoldBasis(0).Descriptor(), pdv1.ChangeKind(0).Descriptor()} {
		for j := 1; j < d.Values().Len(); j++ {
			if n := string(d.Values().Get(j).Name()); enumName(n, "sv") == "" || enumName(n, "en") == "" {
				t.Errorf("%s has no Swedish or no English name", n)
			}
		}
	}
	for j := 1; j < pdv1.HistoryKind(0).Descriptor().Values().Len(); j++ {
		if historyKind(pdv1.HistoryKind(j), "sv") == "" || historyKind(pdv1.HistoryKind(j), "en") == "" {
			t.Errorf("history kind %d has no Swedish name", j)
		}
	}
}

// On the switch, the overview is all in English: no Swedish heading, label
// or date is left, and the page says it is English.
func TestOverviewInEnglish(t *testing.T) {
	swedish := []string{"Uppgifter", "Datum", "Varför", "mars", "Vår kund", "avtal", "Logga", "Ladda ner", "samtycke"}
	tags := regexp.MustCompile(`<[^>]*>`)
	for i := range 6 {
		var b bytes.Buffer
		if err := pageTemplate.Execute(&b, view{Lang: "en", Title: "Your personal data", Step: "me", Sections: sections(everyValue(i), "en")}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), `<html lang="en">`) {
			t.Errorf("pick %d: the page does not say it is English", i)
		}
		text := tags.ReplaceAllString(b.String(), " ")
		for _, w := range swedish {
			if strings.Contains(text, w) {
				t.Errorf("pick %d: Swedish %q on the English page", i, w)
			}
		}
		for _, w := range []string{"6 March 2026", "Our customer customer-42", "data processing agreement customer-42/1", "På svenska"} {
			if !strings.Contains(text, w) {
				t.Errorf("pick %d: %q missing", i, w)
			}
		}
	}
}
