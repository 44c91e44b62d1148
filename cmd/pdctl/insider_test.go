package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/example/personaldata/cmd/personaldatad/server"
	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/accountability"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/store"
)

// The insider: someone who can write the audit database (an administrator,
// a leaked database credential, a restored backup) and knows how events are
// hashed. Each test lets the real server record events, takes a checkpoint
// with pdctl (kept outside, as -audit-checkpoint-dir does), has the insider
// write the store's documents directly, and shows pdctl finding it out
// against that checkpoint, naming the leaves, events and checkpoint.

// trail is a server with two subjects' events and a checkpoint of them.
type trail struct {
	dir, op    string
	pdctl      func(string, ...string) (string, error)
	stop       func()
	a, b       string // the subjects' chains
	checkpoint string // the file kept outside
	db         *mongo.Database
}

func newTrail(t *testing.T) *trail {
	t.Helper()
	tr := &trail{dir: t.TempDir()}
	tr.start(t)
	support := newPrincipal(t, tr.pdctl, tr.op, tr.dir, "support-1", "--kind", "support-staff", "--tenant", "company")
	pd, _ := api(t, support)
	a := tolvan(t, pd)
	res, err := pd.CreateSubject(context.Background(), &pdv1.CreateSubjectRequest{
		IdempotencyKey: "testa", ControllerId: "company", Channel: pdv1.Channel_CHANNEL_PORTAL, Reference: "signup-2",
		Person: &pdv1.Person{IdentityNumber: "19900101-1239", GivenName: "Testa", FamilyName: "Testsson", Email: "testa@example.test"},
	})
	if err != nil {
		t.Fatal(err)
	}
	b := res.GetSubject().GetSubjectId()
	for range 3 { // each subject: created, then read three times
		for _, id := range []string{a, b} {
			if _, err := pd.AccessSubject(context.Background(), &pdv1.AccessSubjectRequest{SubjectId: id}); err != nil {
				t.Fatal(err)
			}
		}
	}
	tr.a, tr.b = "subjects/"+a, "subjects/"+b
	tr.checkpoint = filepath.Join(tr.dir, "outside.checkpoint")
	note, err := tr.pdctl(tr.op, "audit", "checkpoint", "--out", tr.checkpoint)
	if err != nil || !strings.HasPrefix(note, server.DefaultAuditOrigin+"\n") {
		t.Fatalf("audit checkpoint: %q %v", note, err)
	}
	if pushed, err := os.ReadFile(filepath.Join(tr.dir, "pushed", "checkpoint")); err != nil || string(pushed) != note {
		t.Errorf("the checkpoint pushed to the directory: %q %v", pushed, err)
	}
	// An event after the checkpoint.
	if _, err := pd.AccessSubject(context.Background(), &pdv1.AccessSubjectRequest{SubjectId: b}); err != nil {
		t.Fatal(err)
	}
	if out, err := tr.verify(); err != nil || !strings.Contains(out, "intact: ") {
		t.Fatalf("the untouched trail: %q %v", out, err)
	}
	return tr
}

// start starts the server on the trail's directory, pushing checkpoints to
// its "pushed" directory.
func (tr *trail) start(t *testing.T) {
	tr.pdctl, tr.op, tr.stop = startServerWith(t, tr.dir, func(c *server.Config) {
		c.AuditCheckpoints.Dir = filepath.Join(tr.dir, "pushed")
	})
	client, err := mongo.Connect(options.Client().ApplyURI(storeURI))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	tr.db = client.Database(store.AuditDatabase("personaldata"))
}

// verify runs pdctl audit verify against the checkpoint kept outside, every
// event.
func (tr *trail) verify() (string, error) {
	return tr.pdctl(tr.op, "audit", "verify", "--checkpoint", tr.checkpoint, "--all")
}

// verifyChain runs pdctl audit verify on one chain (VerifyAuditChain).
func (tr *trail) verifyChain(chain string) (string, error) {
	return tr.pdctl(tr.op, "audit", "verify", "--chain", chain)
}

// events reads a chain's stored events, in seq order, as the insider does.
func (tr *trail) events(t *testing.T, chain string) []audit.Event {
	t.Helper()
	var out []audit.Event
	for seq := int64(1); ; seq++ {
		var se store.AuditEvent
		err := tr.db.Collection("audit_events").FindOne(context.Background(), bson.D{{Key: "_id", Value: store.AuditEventID(chain, seq)}}).Decode(&se)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, audit.Event{Chain: se.Chain, Seq: se.Seq, Time: time.Unix(0, se.Time).UTC(), Principal: se.Principal,
			Tenant: se.Tenant, Purpose: se.Purpose, RPC: se.RPC, SubjectID: se.SubjectID, Fields: se.Fields, Outcome: se.Outcome,
			PrevHash: se.PrevHash, Hash: se.Hash, Leaf: se.Leaf})
	}
}

// write stores evs as the events of chain from evs[0].Seq on, each hash
// recomputed and chained to prev, and moves the chain's head to the last:
// a chain that the chain checks alone find intact.
func (tr *trail) write(t *testing.T, chain, prev string, evs []audit.Event) {
	t.Helper()
	ctx := context.Background()
	for _, e := range evs {
		e.Chain, e.PrevHash = chain, prev
		e.Hash = audit.Hash(e)
		prev = e.Hash
		doc := &store.AuditEvent{ID: e.ID(), Chain: e.Chain, Seq: e.Seq, Time: e.Time.UnixNano(), Principal: e.Principal, Tenant: e.Tenant,
			Purpose: e.Purpose, RPC: e.RPC, SubjectID: e.SubjectID, Fields: e.Fields, Outcome: e.Outcome, PrevHash: e.PrevHash, Hash: e.Hash, Leaf: e.Leaf}
		if _, err := tr.db.Collection("audit_events").ReplaceOne(ctx, bson.D{{Key: "_id", Value: doc.ID}}, doc, options.Replace().SetUpsert(true)); err != nil {
			t.Fatal(err)
		}
		tr.head(t, chain, e.Seq, e.Hash)
	}
}

func (tr *trail) head(t *testing.T, chain string, seq int64, hash string) {
	t.Helper()
	if _, err := tr.db.Collection("audit_heads").ReplaceOne(context.Background(), bson.D{{Key: "_id", Value: chain}},
		bson.D{{Key: "seq", Value: seq}, {Key: "hash", Value: hash}}, options.Replace().SetUpsert(true)); err != nil {
		t.Fatal(err)
	}
}

func (tr *trail) remove(t *testing.T, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := tr.db.Collection("audit_events").DeleteOne(context.Background(), bson.D{{Key: "_id", Value: id}}); err != nil {
			t.Fatal(err)
		}
	}
}

// withoutTree is what the old checks had to go by: the chains alone. The
// leaves of the chain's events are forgotten, so VerifyAuditChain checks
// only hashes, links and the head, as it did before the tree.
func (tr *trail) withoutTree(t *testing.T, chain string) {
	t.Helper()
	for _, e := range tr.events(t, chain) {
		if _, err := tr.db.Collection("audit_events").UpdateOne(context.Background(), bson.D{{Key: "_id", Value: e.ID()}},
			bson.D{{Key: "$unset", Value: bson.D{{Key: "leaf", Value: ""}}}}); err != nil {
			t.Fatal(err)
		}
	}
}

// tampered checks that pdctl found the trail tampered with against the
// checkpoint, naming each of want in its report.
func (tr *trail) tampered(t *testing.T, want ...string) {
	t.Helper()
	out, err := tr.verify()
	t.Logf("pdctl audit verify --checkpoint %s --all:\n%s", filepath.Base(tr.checkpoint), out)
	if !errors.Is(err, errTrailTampered) || !strings.Contains(err.Error(), tr.checkpoint) {
		t.Errorf("pdctl: %v, want the trail tampered with against %s", err, tr.checkpoint)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("the report does not name %q", w)
		}
	}
}

func leafOf(e audit.Event) string { return fmt.Sprintf("leaf %d: event %s", e.Leaf, e.ID()) }

func TestInsiderRewritesTheEndOfAChain(t *testing.T) {
	tr := newTrail(t)
	evs := tr.events(t, tr.a)
	n := len(evs)
	// The last two reads of Tolvan become refusals, hashes and head
	// recomputed: the reads are hidden.
	forged := append([]audit.Event(nil), evs[n-2:]...)
	for i := range forged {
		forged[i].Outcome, forged[i].Fields = "PermissionDenied", []string{"refused:PURPOSE_NOT_GRANTED"}
	}
	tr.write(t, tr.a, evs[n-3].Hash, forged)

	out, err := tr.verifyChain(tr.a)
	if !errors.Is(err, errChainBroken) || !strings.Contains(out, fmt.Sprintf("BROKEN at event %d ", n-1)) || !strings.Contains(out, fmt.Sprintf("tree leaf %d", evs[n-2].Leaf)) {
		t.Errorf("VerifyAuditChain against the newest checkpoint: %q %v", out, err)
	}
	tr.tampered(t, leafOf(evs[n-2]), leafOf(evs[n-1]), "is not the event the tree holds")

	// The chain checks alone (no leaves: the old Verify) pass it.
	tr.withoutTree(t, tr.a)
	if out, err := tr.verifyChain(tr.a); err != nil || !strings.Contains(out, "intact") {
		t.Errorf("the old checks should pass the rewritten chain: %q %v", out, err)
	}
	tr.tampered(t, leafOf(evs[n-2]))
}

func TestInsiderDropsTheTailAndHead(t *testing.T) {
	tr := newTrail(t)
	evs := tr.events(t, tr.a)
	n := len(evs)
	tr.remove(t, evs[n-1].ID(), evs[n-2].ID())
	tr.head(t, tr.a, evs[n-3].Seq, evs[n-3].Hash)

	// The chain alone ends where the insider cut it, with its head: the
	// old checks, and the chain's own walk, pass it.
	if out, err := tr.verifyChain(tr.a); err != nil || !strings.Contains(out, fmt.Sprintf("intact, %d events", n-2)) {
		t.Errorf("the chain checks should pass the shortened chain: %q %v", out, err)
	}
	tr.tampered(t, leafOf(evs[n-2])+" is missing", leafOf(evs[n-1])+" is missing")
}

func TestInsiderInsertsAnEventInTheMiddle(t *testing.T) {
	tr := newTrail(t)
	evs := tr.events(t, tr.a)
	// A read by the operator that never happened, put after event 2: the
	// events after it move up one seq, rehashed.
	fake := evs[1]
	fake.Principal, fake.RPC, fake.Leaf = "operator", "/personaldata.v1.PersonalDataService/AccessSubject", -1
	moved := append([]audit.Event{fake}, evs[2:]...)
	for i := range moved {
		moved[i].Seq = int64(3 + i)
	}
	tr.write(t, tr.a, evs[1].Hash, moved)

	out, err := tr.verifyChain(tr.a)
	if !errors.Is(err, errChainBroken) || !strings.Contains(out, "BROKEN at event 3 ") || !strings.Contains(out, "not in the tree") {
		t.Errorf("VerifyAuditChain: %q %v", out, err)
	}
	tr.tampered(t, leafOf(evs[2]), "is not the event the tree holds")
}

func TestInsiderSwapsTwoSubjectsChains(t *testing.T) {
	tr := newTrail(t)
	a, b := tr.events(t, tr.a), tr.events(t, tr.b)
	// Each chain given the other's events, rehashed under its own name.
	tr.write(t, tr.a, "", b)
	tr.write(t, tr.b, "", a)

	for _, chain := range []string{tr.a, tr.b} {
		if out, err := tr.verifyChain(chain); !errors.Is(err, errChainBroken) || !strings.Contains(out, "BROKEN at event 1 ") {
			t.Errorf("VerifyAuditChain %s: %q %v", chain, out, err)
		}
	}
	tr.tampered(t, leafOf(a[0]), leafOf(b[0]))
}

func TestInsiderRestoresAnOlderAuditDatabase(t *testing.T) {
	tr := newTrail(t)
	// A copy of the audit database as it is now...
	tr.stop()
	file := filepath.Join(tr.dir, "data", store.AuditDatabase("personaldata")+".sqlite")
	old, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// ...then more events and a new checkpoint, kept outside...
	tr.start(t)
	support := filepath.Join(tr.dir, "support-1.token")
	pd, _ := api(t, support)
	if _, err := pd.AccessSubject(context.Background(), &pdv1.AccessSubjectRequest{SubjectId: strings.TrimPrefix(tr.a, "subjects/")}); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.pdctl(tr.op, "audit", "checkpoint", "--out", tr.checkpoint); err != nil {
		t.Fatal(err)
	}
	// ...and the old copy put back.
	tr.stop()
	for _, suffix := range []string{"-wal", "-shm"} {
		_ = os.Remove(file + suffix)
	}
	if err := os.WriteFile(file, old, 0o600); err != nil {
		t.Fatal(err)
	}
	tr.start(t)
	tr.tampered(t, "the trail's tree is smaller than the checkpoint's", "from_size")
}

// Bad checkpoints are named: malformed, of another origin, signed with
// another key, or larger than the log.
func TestVerifyCheckpointBadInput(t *testing.T) {
	tr := newTrail(t)
	good, err := os.ReadFile(tr.checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) string {
		p := filepath.Join(tr.dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	lines := strings.SplitN(string(good), "\n", 2)
	_, otherKey, err := note.GenerateKey(rand.Reader, server.DefaultAuditOrigin)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file, key, want string
	}{
		{"malformed", write("malformed", "not a checkpoint\n"), "", "malformed"},
		{"empty", write("empty", ""), "", "malformed"},
		{"another origin", write("origin", "example.org/other\n"+lines[1]), "", "another log (origin)"},
		{"another key", tr.checkpoint, otherKey, "not signed by this log's key"},
		{"no file", filepath.Join(tr.dir, "none"), "", "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"audit", "verify", "--checkpoint", tc.file}
			if tc.key != "" {
				args = append(args, "--key", tc.key)
			}
			out, err := tr.pdctl(tr.op, args...)
			if err == nil || errors.Is(err, errTrailTampered) || (tc.want != "" && !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("%q %v, want an error naming %q", out, err, tc.want)
			}
		})
	}
}

// breach runs AssessBreachImpact for the last hour (a window, every
// principal) and returns its summary and chains by name.
func (tr *trail) breach(t *testing.T) (*pdv1.BreachSummary, map[string]*pdv1.BreachChainImpact) {
	t.Helper()
	cc, err := (&conn{addr: serverAddr, tokenFile: tr.op}).dial()
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	stream, err := pdv1.NewBreachServiceClient(cc).AssessBreachImpact(context.Background(),
		&pdv1.AssessBreachImpactRequest{StartTime: timestamppb.New(time.Now().Add(-time.Hour))})
	if err != nil {
		t.Fatal(err)
	}
	var sum *pdv1.BreachSummary
	chains := map[string]*pdv1.BreachChainImpact{}
	for {
		res, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return sum, chains
		}
		if err != nil {
			t.Fatal(err)
		}
		if s := res.GetSummary(); s != nil {
			sum = s
		} else {
			chains[res.GetChain().GetChain()] = res.GetChain()
		}
	}
}

// checkpointSize is the size the checkpoint kept outside signs.
func (tr *trail) checkpointSize(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile(tr.checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(strings.Split(string(b), "\n")[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The insider deletes every event of one subject inside the breach window,
// and its head, leaving the tree alone: the chain is gone, so a report that
// searched the events would not name the subject at all. Read from the
// window's leaves, the report names it, broken at the leaf of its first
// event, against the checkpoint. Deleting the leaves too leaves the tree
// short of the checkpoint: the report says so.
func TestInsiderDeletesASubjectFromABreachWindow(t *testing.T) {
	tr := newTrail(t)
	evs := tr.events(t, tr.a)
	size := tr.checkpointSize(t)
	_, before := tr.breach(t)
	if c := before[tr.a].GetCheck(); !c.GetIntact() || c.GetEvents() != int64(len(evs)) || c.GetCheckpointSize() != size {
		t.Fatalf("the untouched window, %s: %v", tr.a, c)
	}
	for _, e := range evs {
		tr.remove(t, e.ID())
	}
	if _, err := tr.db.Collection("audit_heads").DeleteOne(context.Background(), bson.D{{Key: "_id", Value: tr.a}}); err != nil {
		t.Fatal(err)
	}

	sum, chains := tr.breach(t)
	c := chains[tr.a].GetCheck()
	t.Logf("%s after the deletion: %v", tr.a, c)
	if c == nil || c.GetIntact() || c.GetReason() != audit.ReasonEventMissing || c.GetFirstBrokenSeq() != 1 ||
		c.GetLeafIndex() != evs[0].Leaf || c.GetCheckpointSize() != size {
		t.Errorf("the deleted subject %s: %v, want broken at event 1, leaf %d, event missing, checkpoint %d", tr.a, c, evs[0].Leaf, size)
	}
	if b := chains[tr.b].GetCheck(); !b.GetIntact() || b.GetEvents() != int64(len(tr.events(t, tr.b))) {
		t.Errorf("the other subject %s: %v", tr.b, b)
	}
	if sum.GetChainsBroken() != 1 {
		t.Errorf("summary: %d chains broken, want 1", sum.GetChainsBroken())
	}

	// The leaves of the deleted events too.
	for _, e := range evs {
		if _, err := tr.db.Collection("audit_events").DeleteOne(context.Background(), bson.D{{Key: "_id", Value: store.AuditLeafID(uint64(e.Leaf))}}); err != nil {
			t.Fatal(err)
		}
	}
	sum, chains = tr.breach(t)
	tree := chains[accountability.TreeChain].GetCheck()
	t.Logf("%s after the leaves' deletion: %v", accountability.TreeChain, tree)
	if tree == nil || tree.GetIntact() || sum.GetChainsBroken() == 0 {
		t.Errorf("the tree with leaves deleted: %v, %d chains broken", tree, sum.GetChainsBroken())
	}
}
