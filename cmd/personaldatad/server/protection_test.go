package server_test

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/example/personaldata/store"

	"go.mongodb.org/mongo-driver/v2/bson"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store/envelope"
	"github.com/example/personaldata/store/storetest"
)

// TestFilesAtRestAreOwnerOnly writes through every kind of document and then
// checks the mode of every file and folder the server made: the store's
// files (the database and its -wal and -shm), the keyring and the operator's
// token are the owner's alone. So is each file after a restart.
func TestFilesAtRestAreOwnerOnly(t *testing.T) {
	storetest.SkipInMongoMode(t)
	e := start(t)
	c := e.gc()
	sub := create(t, c, 310)
	call(t, c, "AddHistoryEntry", historyReq(sub, "h", 310), &pdv1.AddHistoryEntryResponse{})
	dir := filepath.Dir(e.keyFile)
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		switch {
		case d.IsDir():
			if path != dir && info.Mode().Perm() != 0o700 {
				t.Errorf("folder %s is %v, want 0700", rel, info.Mode().Perm())
			}
		case info.Mode().IsRegular():
			files = append(files, rel)
			if info.Mode().Perm() != 0o600 {
				t.Errorf("file %s is %v, want 0600", rel, info.Mode().Perm())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"keyring.json", "operator.token", "data/" + e.db.Name() + ".sqlite", "data/" + e.db.Name() + ".sqlite-wal",
		"data/" + store.AuditDatabase(e.db.Name()) + ".sqlite", "data/" + store.KeysDatabase(e.db.Name()) + ".sqlite"} {
		if !strings.Contains(strings.Join(files, " "), want) {
			t.Errorf("no file %s among %v: the test would check nothing", want, files)
		}
	}
}

// TestNothingReadableAtRest runs a subject through every kind of change and
// then reads every stored document raw, through the driver: none of the
// person's values, old or new, may be there.
func TestNothingReadableAtRest(t *testing.T) {
	e := start(t)
	c := e.gc()
	sub := create(t, c, 300)
	call(t, c, "AddHistoryEntry", historyReq(sub, "h", 300), &pdv1.AddHistoryEntryResponse{})
	sub = call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{}).GetSubject()
	rect := call(t, c, "RectifySubject", rectifyReq(sub, "r", &pdv1.Person{Email: "ny300@example.test", FamilyName: "Nyttnamn"}, "email", "family_name"), &pdv1.RectifySubjectResponse{})
	call(t, c, "RestrictProcessing", restrictReq(rect.GetSubject(), "x"), &pdv1.RestrictProcessingResponse{})
	p := testPerson(300)
	values := []string{
		p.GetGivenName(), p.GetFamilyName(), p.GetEmail(), "ny300@", "Nyttnamn",
		strings.ReplaceAll(p.GetIdentityNumber(), "-", ""), sub.GetPerson().GetPhone(), "Provgatan 300",
		"Order 300", "Jag vill", "order-300",
	}
	dump := e.rawDump(t)
	if !strings.Contains(dump, sub.GetSubjectId()) {
		t.Fatal("the dump does not hold the subject; the test would see nothing")
	}
	for _, v := range values {
		if strings.Contains(dump, v) {
			t.Errorf("a stored document holds a personal value in the clear (%d chars)", len(v))
		}
	}
	// The service itself still reads everything back.
	got := call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
	if got.GetSubject().GetPerson().GetFamilyName() != "Nyttnamn" || got.GetHistory()[0].GetBody() == "" {
		t.Errorf("access after sealing: %v", got)
	}
}

// TestCryptoShredding keeps a raw copy of a subject's documents (a backup)
// from before its erasure and shows that afterwards nothing in it can be
// decrypted: the data key that sealed it is gone, and the copy holds none.
func TestCryptoShredding(t *testing.T) {
	e := start(t)
	c := e.gc()
	sub := create(t, c, 310)
	call(t, c, "AddHistoryEntry", historyReq(sub, "h", 310), &pdv1.AddHistoryEntryResponse{})
	ctx := context.Background()

	var backup struct {
		Subject bson.Raw
		History bson.Raw
	}
	var err error
	if backup.Subject, err = e.coll("subjects").FindOne(ctx, bson.D{{Key: "_id", Value: sub.GetSubjectId()}}).Raw(); err != nil {
		t.Fatal(err)
	}
	if backup.History, err = e.coll("history").FindOne(ctx, bson.D{{Key: "_id", Value: sub.GetSubjectId() + ".0000000000"}}).Raw(); err != nil {
		t.Fatal(err)
	}
	sealed := sealedFields(t, backup.Subject, backup.History)
	if len(sealed) < 8 {
		t.Fatalf("the copy holds %d sealed fields; the test would prove nothing", len(sealed))
	}
	// Before the erasure, the data key opens the copy: the test can tell.
	dk := e.dataKey(t, sub.GetSubjectId())
	if _, err := dk.Open(sealed["subject/given_name"], envelope.AAD("subject", sub.GetSubjectId(), "given_name")); err != nil {
		t.Fatalf("the copy does not open even before the erasure: %v", err)
	}
	if strings.Contains(backup.Subject.String()+backup.History.String(), "wrapped") {
		t.Errorf("the subject's documents carry a data key")
	}

	call(t, c, "EraseSubject", eraseReq(sub, "e"), &pdv1.EraseSubjectResponse{})

	if n, _ := e.coll("data_keys").CountDocuments(ctx, bson.D{{Key: "_id", Value: sub.GetSubjectId()}}); n != 0 {
		t.Fatalf("the data key survived the erasure")
	}
	// Every key still stored, and every master key, fails on every field.
	ring, err := envelope.Load(e.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := e.coll("data_keys").Find(ctx, bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	var candidates []envelope.DataKey
	for cur.Next(ctx) {
		var k struct {
			KeyVersion int64  `bson:"key_version"`
			Wrapped    []byte `bson:"wrapped"`
		}
		if err := cur.Decode(&k); err != nil {
			t.Fatal(err)
		}
		dk, err := ring.Unwrap(envelope.WrappedKey{Version: uint32(k.KeyVersion), Ciphertext: k.Wrapped})
		if err != nil {
			t.Fatal(err)
		}
		candidates = append(candidates, dk)
	}
	for name, ct := range sealed {
		kind, field, _ := strings.Cut(name, "/")
		id := sub.GetSubjectId()
		if kind == "history" {
			id += ".0000000000"
		}
		for _, k := range candidates {
			if _, err := k.Open(ct, envelope.AAD(kind, id, field)); !errors.Is(err, envelope.ErrDecrypt) {
				t.Errorf("%s opened with a key that survived the erasure", name)
			}
		}
	}
}

// sealedFields collects the encrypted fields of a subject and a history
// document, named "subject/<field>" and "history/<field>".
func sealedFields(t *testing.T, subject, history bson.Raw) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for kind, doc := range map[string]bson.Raw{"subject": subject, "history": history} {
		var d struct {
			Sealed map[string][]byte `bson:"sealed"`
		}
		if err := bson.Unmarshal(doc, &d); err != nil {
			t.Fatal(err)
		}
		for f, v := range d.Sealed {
			out[kind+"/"+f] = v
		}
	}
	return out
}
