package audit_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	tlog "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"

	"github.com/transparency-dev/merkle/proof"
	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/audit/checkpoint"
	"github.com/example/personaldata/store"
)

// Every appended event is a leaf of one tree, in the order written; the
// tree's proofs verify, it survives a new Log on the same store, and an
// event rewritten with a recomputed hash (which the chain alone accepts)
// is found out against a checkpoint taken before.
func TestTreeOverTheTrail(t *testing.T) {
	ctx := context.Background()
	f := open(t)
	l := audit.New(f.st)
	a := appendN(t, l, audit.SubjectChain("a"), 5)
	b := appendN(t, l, audit.SubjectChain("b"), 3)
	size, root, err := l.TreeHead(ctx)
	if err != nil || size != 8 {
		t.Fatalf("TreeHead: %d, %v; want 8 leaves", size, err)
	}
	for _, e := range append(a, b...) {
		p, err := l.InclusionProof(ctx, uint64(e.Leaf), size)
		if err != nil {
			t.Fatal(err)
		}
		lh, _ := audit.LeafHash(e.Hash)
		if err := proof.VerifyInclusion(audit.Hasher, uint64(e.Leaf), size, lh, p, root); err != nil {
			t.Errorf("%s: inclusion: %v", e.ID(), err)
		}
	}
	anchor := audit.Anchor{Size: size, Root: root}

	// A new Log (a restart) goes on from the stored tree.
	l = audit.New(f.st)
	l.TrustCheckpoints(func(context.Context) (*audit.Anchor, error) { return &anchor, nil })
	appendN(t, l, audit.SubjectChain("c"), 3)
	size2, root2, err := l.TreeHead(ctx)
	if err != nil || size2 != 11 {
		t.Fatalf("TreeHead after restart: %d, %v; want 11", size2, err)
	}
	p, err := l.ConsistencyProof(ctx, size, size2)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyConsistency(audit.Hasher, size, size2, p, root, root2); err != nil {
		t.Errorf("consistency %d to %d: %v", size, size2, err)
	}
	if _, err := l.ConsistencyProof(ctx, size, size2+1); err == nil {
		t.Error("a consistency proof to a size beyond the tree was given")
	}
	if res := verify(t, l, audit.SubjectChain("a")); !res.Intact() || res.Checkpoint != 8 {
		t.Errorf("chain a: %+v", res)
	}

	// The insider rewrites a's last event and the head; the chain holds.
	forged := a[4]
	forged.Outcome = "NotFound"
	forged.Hash = audit.Hash(forged)
	if _, err := f.db.Collection("audit_events").ReplaceOne(ctx, bson.D{{Key: "_id", Value: forged.ID()}}, storeDoc(forged)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.Collection("audit_heads").UpdateOne(ctx, bson.D{{Key: "_id", Value: forged.Chain}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "seq", Value: forged.Seq}, {Key: "hash", Value: forged.Hash}}}}); err != nil {
		t.Fatal(err)
	}
	res := verify(t, l, audit.SubjectChain("a"))
	if res.FirstBroken != 5 || res.Reason != audit.ReasonChanged || res.Leaf != a[4].Leaf || res.Checkpoint != 8 {
		t.Errorf("rewritten event: %+v, want seq 5 changed at leaf %d against checkpoint 8", res, a[4].Leaf)
	}
	// An event left without its leaf by a crash between the two inserts
	// (never acknowledged) is proved by the next event, which commits to
	// it; at the end of the chain it is not proved.
	c := appendN(t, l, audit.SubjectChain("c2"), 3)
	if _, err := f.db.Collection("audit_events").UpdateOne(ctx, bson.D{{Key: "_id", Value: c[1].ID()}},
		bson.D{{Key: "$unset", Value: bson.D{{Key: "leaf", Value: ""}}}}); err != nil {
		t.Fatal(err)
	}
	if res := verify(t, l, audit.SubjectChain("c2")); !res.Intact() {
		t.Errorf("a leafless event followed by one proved: %+v", res)
	}
	if _, err := f.db.Collection("audit_events").UpdateOne(ctx, bson.D{{Key: "_id", Value: c[2].ID()}},
		bson.D{{Key: "$unset", Value: bson.D{{Key: "leaf", Value: ""}}}}); err != nil {
		t.Fatal(err)
	}
	if res := verify(t, l, audit.SubjectChain("c2")); res.FirstBroken != 2 || res.Reason != audit.ReasonNotInTree {
		t.Errorf("leafless events at the end of the chain: %+v, want seq 2 not in the tree", res)
	}

	// Without the tree (no leaf on any event) the rewrite passes.
	if _, err := f.db.Collection("audit_events").UpdateMany(ctx, bson.D{}, bson.D{{Key: "$unset", Value: bson.D{{Key: "leaf", Value: ""}}}}); err != nil {
		t.Fatal(err)
	}
	if res := verify(t, audit.New(f.st), audit.SubjectChain("a")); !res.Intact() {
		t.Errorf("with no leaves the old checks should pass the rewrite: %+v", res)
	}
	_ = store.AuditLeafID
}

// A checkpoint is a signed note that the checksum database's tooling
// opens; it is stored, written to the push directory, and refused when
// signed by another key or naming another origin.
func TestCheckpoints(t *testing.T) {
	ctx := context.Background()
	f := open(t)
	l := audit.New(f.st)
	appendN(t, l, audit.SubjectChain("a"), 3)
	_, key, _ := ed25519.GenerateKey(nil)
	dir := t.TempDir()
	c, err := audit.NewCheckpoints(l, audit.CheckpointConfig{Origin: "example.se/audit", Key: key, Dir: dir}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := c.Take(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 3 || !strings.HasPrefix(string(cp.Note), "example.se/audit\n3\n") || !strings.Contains(string(cp.Note), "\n\n\u2014 example.se/audit ") {
		t.Errorf("checkpoint %d:\n%s", cp.Size, cp.Note)
	}
	v, err := note.NewVerifier(c.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := tlog.ParseCheckpoint(cp.Note, "example.se/audit", v); err != nil {
		t.Errorf("transparency-dev's parser: %v", err)
	}
	pushed, err := os.ReadFile(filepath.Join(dir, "checkpoint"))
	if err != nil || string(pushed) != string(cp.Note) {
		t.Errorf("pushed %q, %v", pushed, err)
	}
	if a, err := c.Trusted(ctx); err != nil || a.Size != 3 {
		t.Errorf("Trusted: %+v, %v", a, err)
	}

	_, other, _ := ed25519.GenerateKey(nil)
	c2, _ := audit.NewCheckpoints(audit.New(f.st), audit.CheckpointConfig{Origin: "example.se/audit", Key: other}, slog.New(slog.DiscardHandler))
	c3, _ := audit.NewCheckpoints(audit.New(f.st), audit.CheckpointConfig{Origin: "example.se/other", Key: key}, slog.New(slog.DiscardHandler))
	for name, tc := range map[string]struct {
		c    *audit.Checkpoints
		note []byte
		want error
	}{
		"another key":    {c2, cp.Note, checkpoint.ErrKey},
		"another origin": {c3, cp.Note, checkpoint.ErrOrigin},
		"malformed":      {c, []byte("not a checkpoint"), checkpoint.ErrMalformed},
	} {
		if _, err := tc.c.Open(tc.note); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}
