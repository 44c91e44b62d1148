package server_test

import (
	"context"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/grpc/codes"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store/envelope"
)

const keySvc = "personaldata.v1.KeyService/"

// keyVersions are the master key versions of the stored data keys, by subject.
func (e *env) keyVersions(t *testing.T) map[string]int64 {
	t.Helper()
	cur, err := e.coll("data_keys").Find(context.Background(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for cur.Next(context.Background()) {
		var k struct {
			ID         string `bson:"_id"`
			KeyVersion int64  `bson:"key_version"`
		}
		if err := cur.Decode(&k); err != nil {
			t.Fatal(err)
		}
		out[k.ID] = k.KeyVersion
	}
	return out
}

func TestKeyRotation(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		op := e.as(c, e.operator)
		var ids []string
		for n := range 5 {
			sub := create(t, c, 700+n)
			call(t, c, "AddHistoryEntry", historyReq(sub, "h", n), &pdv1.AddHistoryEntryResponse{})
			ids = append(ids, sub.GetSubjectId())
		}
		slices.Sort(ids)
		for _, v := range e.keyVersions(t) {
			if v != 1 {
				t.Fatalf("key at version %d before any rotation", v)
			}
		}

		// A new master key version, then a rotation while serving.
		if _, err := envelope.AddVersion(e.keyFile); err != nil {
			t.Fatal(err)
		}
		res := call(t, op, keySvc+"RotateDataKeys", &pdv1.RotateDataKeysRequest{}, &pdv1.RotateDataKeysResponse{})
		if !res.GetFinished() || res.GetDone() != 5 || res.GetTotal() != 5 || res.GetRewrapped() != 5 || res.GetCurrentVersion() != 2 {
			t.Errorf("rotation: %v", res)
		}
		for id, v := range e.keyVersions(t) {
			if v != 2 {
				t.Errorf("key of %s at version %d after rotation", id, v)
			}
		}
		// With version 1 gone from the file, every key still opens its data.
		if err := envelope.RemoveVersion(e.keyFile, 1); err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			if got := e.openStored(t, id); got["given_name"] == "" {
				t.Errorf("subject %s unreadable after rotation", id)
			}
		}
		got := call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: ids[0]}, &pdv1.AccessSubjectResponse{})
		if len(got.GetHistory()) != 1 || got.GetSubject().GetPerson() == nil {
			t.Errorf("access after rotation: %v", got)
		}

		// Resumed after two keys: the rest are re-wrapped, then a second
		// walk finds the two skipped ones still under the old version and
		// does them too; each key is re-wrapped once.
		if _, err := envelope.AddVersion(e.keyFile); err != nil {
			t.Fatal(err)
		}
		res = call(t, op, keySvc+"RotateDataKeys", &pdv1.RotateDataKeysRequest{ResumeAfter: ids[1]}, &pdv1.RotateDataKeysResponse{})
		if !res.GetFinished() || res.GetRewrapped() != 5 || res.GetCurrentVersion() != 3 {
			t.Errorf("resumed rotation: %v", res)
		}
		res = call(t, op, keySvc+"RotateDataKeys", &pdv1.RotateDataKeysRequest{}, &pdv1.RotateDataKeysResponse{})
		if res.GetDone() != 5 || res.GetRewrapped() != 0 {
			t.Errorf("a rotation with nothing to do: %v", res)
		}
		// New subjects get keys under the newest version.
		fresh := create(t, c, 710)
		if v := e.keyVersions(t)[fresh.GetSubjectId()]; v != 3 {
			t.Errorf("a new subject's key is at version %d, want 3", v)
		}
		// Only operators rotate.
		callErr(t, c, keySvc+"RotateDataKeys", &pdv1.RotateDataKeysRequest{}, &pdv1.RotateDataKeysResponse{}, codes.PermissionDenied)
	})
}
