package server_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store/ledger"
)

// TestErasureLedger: every acknowledged erasure is in the ledger, with ids
// and the ground and no personal value; a retry appends again (a restore
// counts each subject once).
func TestErasureLedger(t *testing.T) {
	e := start(t)
	c := e.gc()
	sub := create(t, c, 60)
	keep := create(t, c, 61)
	call(t, c, "EraseSubject", eraseReq(sub, "erase-1"), &pdv1.EraseSubjectResponse{})
	call(t, c, "EraseSubject", eraseReq(sub, "erase-1"), &pdv1.EraseSubjectResponse{})

	path := filepath.Join(e.dir, "data", ledger.DefaultName)
	st, err := ledger.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Entries) != 2 || st.TornBytes != 0 {
		t.Fatalf("ledger: %d entries (%d torn bytes), want 2", len(st.Entries), st.TornBytes)
	}
	for _, en := range st.Entries {
		if en.Kind != ledger.KindErasure || en.Subject != sub.GetSubjectId() || en.Controller != "company" ||
			en.Ground != pdv1.ErasureGround_ERASURE_GROUND_CONSENT_WITHDRAWN.String() || !en.Time.Equal(e.clock.Now()) {
			t.Errorf("entry %+v", en)
		}
	}
	raw, _ := os.ReadFile(path)
	for _, v := range []string{testPerson(60).GetGivenName(), testPerson(60).GetEmail(), testPerson(60).GetIdentityNumber(), keep.GetSubjectId()} {
		if strings.Contains(string(raw), v) {
			t.Errorf("the ledger holds %q", v)
		}
	}
}

// ledgered lists the subjects of the ledger's entries of kind, each once.
func (e *env) ledgered(t *testing.T, kind string) []string {
	t.Helper()
	st, err := ledger.ReadFile(filepath.Join(e.dir, "data", ledger.DefaultName))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, en := range st.Entries {
		if en.Kind == kind && !slices.Contains(ids, en.Subject) {
			ids = append(ids, en.Subject)
		}
	}
	return ids
}
