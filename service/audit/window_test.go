package audit_test

import (
	"context"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/store"
)

// A time window's events are read from the tree's leaves, proved against the
// checkpoint: what an insider does to the events or the leaves inside the
// window is a fault naming the leaf, never a silently shorter answer.
func TestWindow(t *testing.T) {
	ctx := context.Background()
	f := open(t)
	l := audit.New(f.st)
	start := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	var evs []audit.Event
	for i := range 30 { // one event every ten minutes, on three chains
		e := event(audit.SubjectChain(string(rune('a'+i%3))), i)
		e.Time = start.Add(time.Duration(i) * 10 * time.Minute)
		e, err := l.Append(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e)
	}
	size, root, err := l.TreeHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	anchor := audit.Anchor{Size: size, Root: root}
	l.TrustCheckpoints(func(context.Context) (*audit.Anchor, error) { return &anchor, nil })
	from, to := evs[10].Time.UnixNano(), evs[20].Time.UnixNano()
	window := func() ([]audit.Event, []audit.LeafFault, bool) {
		t.Helper()
		pr, err := l.NewProver(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []audit.Event
		res, err := pr.Window(ctx, from, to, func(e audit.Event) error { got = append(got, e); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if res.Older {
			t.Error("the trail had no events before the tree began")
		}
		return got, res.Faults, res.Complete
	}
	got, faults, ok := window()
	if !ok || len(faults) != 0 || len(got) != 10 || got[0].ID() != evs[10].ID() || got[9].ID() != evs[19].ID() {
		t.Fatalf("the untouched window: %d events, faults %v, ok %v", len(got), faults, ok)
	}
	leaves := f.db.Collection("audit_events")
	setLeaf := func(i int, field string, v any) {
		t.Helper()
		if _, err := leaves.UpdateOne(ctx, bson.D{{Key: "_id", Value: store.AuditLeafID(uint64(evs[i].Leaf))}},
			bson.D{{Key: "$set", Value: bson.D{{Key: field, Value: v}}}}); err != nil {
			t.Fatal(err)
		}
	}
	// named checks that the window's faults include want.
	named := func(name string, want audit.LeafFault, wantOK bool) {
		t.Helper()
		_, faults, ok := window()
		t.Logf("%s: %v", name, faults)
		found := false
		for _, f := range faults {
			found = found || (f.Index == want.Index && f.Reason == want.Reason && f.Event == want.Event)
		}
		if ok != wantOK || !found {
			t.Errorf("%s: faults %v, ok %v; want %v, ok %v", name, faults, ok, want, wantOK)
		}
	}

	// The leaves' times are not signed: the insider moves the first of the
	// window back, out of the search's reach. The event before the range
	// proves its own time, inside the window.
	for i := 10; i < 14; i++ {
		setLeaf(i, "lt", start.Add(-time.Hour).UnixNano())
	}
	named("leaf times moved", audit.LeafFault{Index: uint64(evs[13].Leaf), Event: evs[13].ID(), Reason: audit.ReasonBoundary}, true)
	for i := 10; i < 14; i++ {
		setLeaf(i, "lt", evs[i].Time.UnixNano())
	}

	// An event of the window deleted, the tree left alone.
	if _, err := leaves.DeleteOne(ctx, bson.D{{Key: "_id", Value: evs[15].ID()}}); err != nil {
		t.Fatal(err)
	}
	named("event deleted", audit.LeafFault{Index: uint64(evs[15].Leaf), Event: evs[15].ID(), Reason: audit.ReasonEventMissing}, true)

	// ...and its leaf made to stand for another event of the window's.
	setLeaf(15, "lh", mustLeafHash(t, evs[16].Hash))
	setLeaf(15, "event", evs[16].ID())
	named("leaf rewritten", audit.LeafFault{Index: uint64(evs[15].Leaf), Event: evs[16].ID(), Reason: audit.ReasonNotInTree}, false)
	setLeaf(15, "lh", mustLeafHash(t, evs[15].Hash))
	setLeaf(15, "event", evs[15].ID())

	// A leaf of the window deleted (one that holds no node of the tree's
	// edge), then one that does: the tree no longer extends the checkpoint.
	deleteLeaf := func(i int) {
		t.Helper()
		if _, err := leaves.DeleteOne(ctx, bson.D{{Key: "_id", Value: store.AuditLeafID(uint64(evs[i].Leaf))}}); err != nil {
			t.Fatal(err)
		}
	}
	deleteLeaf(17)
	named("leaf deleted", audit.LeafFault{Index: uint64(evs[17].Leaf), Reason: audit.ReasonLeafMissing}, false)
	deleteLeaf(15)
	named("edge leaf deleted", audit.LeafFault{Reason: audit.ReasonTreeInconsistent}, false)
}

func mustLeafHash(t *testing.T, eventHash string) []byte {
	t.Helper()
	h, err := audit.LeafHash(eventHash)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// A trail that held events when the tree began says so in leaf 0: a window
// reaching back to it must look for the leafless events apart.
func TestWindowOlderTrail(t *testing.T) {
	ctx := context.Background()
	f := open(t)
	old := event(audit.SubjectChain("old"), 0)
	old.Seq = 1
	old.Hash = audit.Hash(old)
	doc := storeDoc(old)
	doc.Leaf = -1
	if err := f.st.InsertAuditEvent(ctx, doc); err != nil {
		t.Fatal(err)
	}
	l := audit.New(f.st)
	appendN(t, l, audit.SubjectChain("a"), 3)
	pr, err := l.NewProver(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	res, err := pr.Window(ctx, old.Time.Add(-time.Hour).UnixNano(), old.Time.Add(time.Hour).UnixNano(), func(audit.Event) error { n++; return nil })
	if err != nil || !res.Complete || !res.Older || n != 3 {
		t.Errorf("Window over a trail older than its tree: %+v, %d events, %v; want complete, older, 3", res, n, err)
	}
}
