package store

import (
	"slices"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// Events are stored lean, and events stored before in the old form (chain
// and seq apart, fields as an array) read the same.
func TestAuditEventStoredForms(t *testing.T) {
	e := &AuditEvent{ID: AuditEventID("subjects/abc", 7), Chain: "subjects/abc", Seq: 7, Time: 42, Principal: "p", Tenant: "company",
		RPC: "/personaldata.v1.PersonalDataService/AccessSubject", SubjectID: "abc", Fields: []string{"email", "given_name"}, Outcome: "OK", PrevHash: "aa", Hash: "bb"}
	b, err := bson.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	raw := bson.Raw(b)
	if _, err := raw.LookupErr("chain"); err == nil {
		t.Error("the chain is stored apart from the _id")
	}
	if f := raw.Lookup("fields").StringValue(); f != "email,given_name" {
		t.Errorf("fields stored as %q", f)
	}
	var back AuditEvent
	if err := bson.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Chain != e.Chain || back.Seq != 7 || !slices.Equal(back.Fields, e.Fields) || back.Hash != "bb" || back.Purpose != "" {
		t.Errorf("read back %+v", back)
	}

	old := bson.D{{Key: "_id", Value: e.ID}, {Key: "chain", Value: e.Chain}, {Key: "seq", Value: int64(7)}, {Key: "time", Value: int64(42)},
		{Key: "principal", Value: "p"}, {Key: "tenant", Value: "company"}, {Key: "purpose", Value: ""}, {Key: "rpc", Value: e.RPC},
		{Key: "subject_id", Value: "abc"}, {Key: "fields", Value: bson.A{"email", "given_name"}}, {Key: "outcome", Value: "OK"},
		{Key: "prev_hash", Value: "aa"}, {Key: "hash", Value: "bb"}}
	ob, _ := bson.Marshal(old)
	var fromOld AuditEvent
	if err := bson.Unmarshal(ob, &fromOld); err != nil {
		t.Fatal(err)
	}
	if fromOld.Chain != e.Chain || fromOld.Seq != 7 || !slices.Equal(fromOld.Fields, e.Fields) || !strings.HasPrefix(fromOld.RPC, "/personaldata") {
		t.Errorf("an event in the old form read as %+v", fromOld)
	}
	if len(b) >= len(ob) {
		t.Errorf("lean form %d bytes, old %d", len(b), len(ob))
	}
}
