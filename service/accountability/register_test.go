package accountability

import (
	"testing"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/rules"
)

// The register's purposes are the purpose table itself: a purpose whose
// fields or basis change shows the change.
func TestRegisterFollowsThePurposeTable(t *testing.T) {
	saved := rules.PurposeRules[pdv1.Purpose_PURPOSE_INVOICING]
	t.Cleanup(func() { rules.PurposeRules[pdv1.Purpose_PURPOSE_INVOICING] = saved })
	changed := saved
	changed.Fields = []string{rules.FieldGivenName, rules.FieldFamilyName, rules.FieldPostalAddress}
	changed.Basis = "legal obligation (GDPR Art. 6(1)(c)): Swedish accounting law"
	rules.PurposeRules[pdv1.Purpose_PURPOSE_INVOICING] = changed

	got := registerPurposes()[0]
	if got.GetPurpose() != pdv1.Purpose_PURPOSE_INVOICING || got.GetLegalBasis() != changed.Basis {
		t.Fatalf("invoicing: %v", got)
	}
	if len(got.GetFields()) != 3 || len(got.GetCategories()) != 2 {
		t.Errorf("fields %v, categories %v; want 3 fields in identification and contact", got.GetFields(), got.GetCategories())
	}
	for _, c := range got.GetCategories() {
		if c == pdv1.DataCategory_DATA_CATEGORY_HISTORY {
			t.Error("history among the categories")
		}
	}
}
