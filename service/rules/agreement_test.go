package rules

import (
	"strings"
	"testing"
	"time"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store"
)

func TestAgreementCovering(t *testing.T) {
	day := int64(24 * time.Hour)
	now := int64(100 * day)
	terms := func(from, to int64, purposes []string, categories []string) store.AgreementVersion {
		return store.AgreementVersion{Version: 1, InForceFrom: from, InForceTo: to, Purposes: purposes, Categories: categories}
	}
	contact := pdv1.DataCategory_DATA_CATEGORY_CONTACT
	history := pdv1.DataCategory_DATA_CATEGORY_HISTORY
	delivery := pdv1.Purpose_PURPOSE_SERVICE_DELIVERY
	cases := []struct {
		name       string
		agreements []store.Agreement
		purpose    pdv1.Purpose
		categories []pdv1.DataCategory
		allowed    bool
		reason     string
	}{
		{"none", nil, delivery, nil, false, "no processor agreement with controller c is in force"},
		{"in force, covers", []store.Agreement{{Seq: 1, Versions: []store.AgreementVersion{terms(now-day, 0, []string{delivery.String()}, []string{contact.String()})}}},
			delivery, []pdv1.DataCategory{contact}, true, ""},
		{"storage needs no purpose", []store.Agreement{{Seq: 1, Versions: []store.AgreementVersion{terms(now-day, 0, nil, []string{contact.String()})}}},
			pdv1.Purpose_PURPOSE_UNSPECIFIED, []pdv1.DataCategory{contact}, true, ""},
		{"purpose missing", []store.Agreement{{Seq: 1, Versions: []store.AgreementVersion{terms(now-day, 0, nil, []string{contact.String()})}}},
			delivery, []pdv1.DataCategory{contact}, false, "covers purpose PURPOSE_SERVICE_DELIVERY"},
		{"category missing", []store.Agreement{{Seq: 1, Versions: []store.AgreementVersion{terms(now-day, 0, []string{delivery.String()}, []string{contact.String()})}}},
			delivery, []pdv1.DataCategory{contact, history}, false, "category DATA_CATEGORY_HISTORY"},
		{"not yet in force", []store.Agreement{{Seq: 1, Versions: []store.AgreementVersion{terms(now+day, 0, []string{delivery.String()}, []string{contact.String()})}}},
			delivery, []pdv1.DataCategory{contact}, false, "is in force"},
		{"expired", []store.Agreement{{Seq: 1, Versions: []store.AgreementVersion{terms(now-2*day, now-day, []string{delivery.String()}, []string{contact.String()})}}},
			delivery, []pdv1.DataCategory{contact}, false, "is in force"},
		{"terminated", []store.Agreement{{Seq: 1, TerminatedAt: now - 1, Versions: []store.AgreementVersion{terms(now-day, 0, []string{delivery.String()}, []string{contact.String()})}}},
			delivery, []pdv1.DataCategory{contact}, false, "is in force"},
		{"the amended terms count", []store.Agreement{{Seq: 1, Versions: []store.AgreementVersion{
			terms(now-day, 0, []string{delivery.String()}, []string{contact.String()}),
			terms(now-day, 0, nil, []string{contact.String()}),
		}}}, delivery, []pdv1.DataCategory{contact}, false, "covers purpose"},
		{"a second agreement covers", []store.Agreement{
			{Seq: 1, Versions: []store.AgreementVersion{terms(now-day, 0, nil, []string{contact.String()})}},
			{Seq: 2, Versions: []store.AgreementVersion{terms(now-day, 0, []string{delivery.String()}, []string{contact.String()})}},
		}, delivery, []pdv1.DataCategory{contact}, true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, reason := AgreementCovering(&store.Agreements{ID: "c", Agreements: tc.agreements}, now, tc.purpose, tc.categories)
			if (a != nil) != tc.allowed || !strings.Contains(reason, tc.reason) {
				t.Errorf("got %v %q, want allowed=%v with %q", a, reason, tc.allowed, tc.reason)
			}
		})
	}
}

func TestPurposeRulesUseKnownFields(t *testing.T) {
	for p, rule := range PurposeRules {
		if len(rule.Fields) == 0 || rule.description == "" {
			t.Errorf("%v: empty rule", p)
		}
		for _, f := range rule.Fields {
			if _, ok := FieldCategories[f]; !ok {
				t.Errorf("%v: unknown field %q", p, f)
			}
		}
	}
	if got := PurposeRules[pdv1.Purpose_PURPOSE_INVOICING].Fields; strings.Join(got, ",") != "given_name,family_name,email,postal_address" {
		t.Errorf("invoicing sees %v: only name, e-mail and postal address", got)
	}
}
