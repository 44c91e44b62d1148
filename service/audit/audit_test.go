package audit_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/storetest"
)

// fixture is a store for one test, with raw driver access to its database
// for tampering.
type fixture struct {
	st  *store.Store
	db  *mongo.Database
	cfg store.Config
}

// TestMain runs the tests against the store that storetest.Env names.
func TestMain(m *testing.M) { storetest.Main(m) }

// open returns a store on the MongoDB that storetest names, or else on the
// embedded store in a temp dir.
func open(tb testing.TB) *fixture {
	tb.Helper()
	ctx := context.Background()
	cfg := store.Config{URI: storetest.URI(), DataDir: tb.TempDir(), Database: fmt.Sprintf("audittest_%d", time.Now().UnixNano())}
	st, err := store.Open(ctx, cfg)
	if err != nil {
		tb.Fatalf("store.Open: %v", err)
	}
	client, err := mongo.Connect(options.Client().ApplyURI(st.URI()))
	if err != nil {
		tb.Fatalf("mongo.Connect: %v", err)
	}
	// db is the audit trail's database, where the tests tamper.
	f := &fixture{st: st, db: client.Database(store.AuditDatabase(cfg.Database)), cfg: cfg}
	tb.Cleanup(func() {
		if cfg.URI != "" {
			_ = f.db.Drop(context.Background())
		}
		_ = client.Disconnect(context.Background())
		if err := st.Close(context.Background()); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return f
}

// another opens a second Store (a second client, as another replica has) on
// the same MongoDB database; nil on the embedded store, whose directory only
// one Store may own.
func (f *fixture) another(tb testing.TB) *store.Store {
	tb.Helper()
	if f.cfg.URI == "" {
		return nil
	}
	st, err := store.Open(context.Background(), f.cfg)
	if err != nil {
		tb.Fatalf("store.Open: %v", err)
	}
	tb.Cleanup(func() { _ = st.Close(context.Background()) })
	return st
}

func event(chain string, n int) audit.Event {
	return audit.Event{
		Chain:     chain,
		Time:      time.Date(2026, 11, 27, 10, 0, n, 0, time.UTC),
		Principal: "tester",
		Tenant:    "company",
		Purpose:   "PURPOSE_SUPPORT",
		RPC:       "/personaldata.v1.PersonalDataService/AccessSubject",
		SubjectID: "s1",
		Fields:    []string{"email", fmt.Sprintf("n%d", n)},
		Outcome:   "OK",
	}
}

// appendN appends n events to chain and returns them.
func appendN(t *testing.T, l *audit.Log, chain string, n int) []audit.Event {
	t.Helper()
	var out []audit.Event
	for i := range n {
		e, err := l.Append(context.Background(), event(chain, i))
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		if e.Seq != int64(i+1) {
			t.Fatalf("Append %d: seq %d", i, e.Seq)
		}
		out = append(out, e)
	}
	return out
}

func verify(t *testing.T, l *audit.Log, chain string) audit.Result {
	t.Helper()
	res, err := l.Verify(context.Background(), chain)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return res
}

func TestHashIsCanonical(t *testing.T) {
	base := event("subjects/s1", 1)
	base.Seq, base.PrevHash = 3, "abc"
	a, b := base, base
	a.Fields = []string{"ab", "c"}
	b.Fields = []string{"a", "bc"}
	if audit.Hash(a) == audit.Hash(b) {
		t.Error(`Fields {"ab","c"} and {"a","bc"} hash alike`)
	}
	a, b = base, base
	a.Principal, a.Tenant = "ab", "c"
	b.Principal, b.Tenant = "a", "bc"
	if audit.Hash(a) == audit.Hash(b) {
		t.Error("a boundary moved between Principal and Tenant hashes alike")
	}
	a, b = base, base
	a.Fields, b.Fields = []string{""}, nil
	if audit.Hash(a) == audit.Hash(b) {
		t.Error(`Fields {""} and {} hash alike`)
	}
	if again := base; audit.Hash(again) != audit.Hash(base) {
		t.Error("Hash is not deterministic")
	}
	withHash := base
	withHash.Hash = "ignored"
	if audit.Hash(withHash) != audit.Hash(base) {
		t.Error("Hash depends on the Hash field")
	}
	// Every field takes part.
	seen := map[string]string{audit.Hash(base): "base"}
	for name, change := range map[string]func(*audit.Event){
		"Chain":     func(e *audit.Event) { e.Chain = "subjects/s2" },
		"Seq":       func(e *audit.Event) { e.Seq++ },
		"Time":      func(e *audit.Event) { e.Time = e.Time.Add(time.Nanosecond) },
		"Principal": func(e *audit.Event) { e.Principal += "x" },
		"Tenant":    func(e *audit.Event) { e.Tenant += "x" },
		"Purpose":   func(e *audit.Event) { e.Purpose += "x" },
		"RPC":       func(e *audit.Event) { e.RPC += "x" },
		"SubjectID": func(e *audit.Event) { e.SubjectID += "x" },
		"Fields":    func(e *audit.Event) { e.Fields = append(slices.Clone(e.Fields), "x") },
		"Outcome":   func(e *audit.Event) { e.Outcome = "NotFound" },
		"PrevHash":  func(e *audit.Event) { e.PrevHash = "abd" },
	} {
		e := base
		change(&e)
		h := audit.Hash(e)
		if other, ok := seen[h]; ok {
			t.Errorf("changing %s gives the hash of %s", name, other)
		}
		seen[h] = name
	}
}

func TestAppendAndList(t *testing.T) {
	f := open(t)
	l := audit.New(f.st)
	ctx := context.Background()
	chain := audit.SubjectChain("s1")
	evs := appendN(t, l, chain, 7)
	if evs[0].PrevHash != "" {
		t.Errorf("first prev_hash %q", evs[0].PrevHash)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].PrevHash != evs[i-1].Hash {
			t.Errorf("event %d prev_hash does not name event %d", i+1, i)
		}
	}
	got, err := l.List(ctx, chain, 3, 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Seq != 3 || got[2].Seq != 5 {
		t.Fatalf("List(3, 3): %+v", got)
	}
	for i, e := range got {
		want := evs[2+i]
		if e.Hash != want.Hash || !e.Time.Equal(want.Time) || !slices.Equal(e.Fields, want.Fields) || e.RPC != want.RPC {
			t.Errorf("listed %+v, appended %+v", e, want)
		}
	}
	if got, _ := l.List(ctx, chain, 6, 10); len(got) != 2 {
		t.Errorf("List(6, 10): %d events, want 2", len(got))
	}
	if got, _ := l.List(ctx, audit.SubjectChain("none"), 1, 10); len(got) != 0 {
		t.Errorf("List of an empty chain: %d events", len(got))
	}

	// The tenant listing spans chains, in ID order, paged by ID.
	appendN(t, l, audit.TenantChain("company"), 2)
	other := event(audit.SubjectChain("s9"), 0)
	other.Tenant = "customer-7"
	if _, err := l.Append(ctx, other); err != nil {
		t.Fatal(err)
	}
	var all []audit.Event
	after := ""
	for {
		page, err := l.ListTenant(ctx, "company", after, 4)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if len(page) < 4 {
			break
		}
		after = page[len(page)-1].ID()
	}
	if len(all) != 9 {
		t.Fatalf("tenant listing: %d events, want 9", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i-1].ID() >= all[i].ID() {
			t.Errorf("tenant listing out of order at %d", i)
		}
	}
	for _, e := range all {
		if e.Tenant != "company" {
			t.Errorf("tenant listing holds an event of %s", e.Tenant)
		}
	}
	if res := verify(t, l, chain); !res.Intact() || res.Events != 7 {
		t.Errorf("Verify: %+v", res)
	}
}

// TestConcurrentAppends is the proof for several replicas: writers that share
// nothing but the database append to one chain at once, and every seq is
// taken exactly once, in one intact chain.
func TestConcurrentAppends(t *testing.T) {
	const goroutines, each = 16, 20
	for _, tc := range []struct {
		name string
		logs func(testing.TB, *fixture) []*audit.Log
	}{
		{"one log", func(t testing.TB, f *fixture) []*audit.Log { return []*audit.Log{audit.New(f.st)} }},
		// Two Logs, on two Stores (two clients) when on MongoDB: two replicas.
		{"two logs", func(t testing.TB, f *fixture) []*audit.Log {
			second := f.st
			if st := f.another(t); st != nil {
				second = st
			}
			return []*audit.Log{audit.New(f.st), audit.New(second)}
		}},
		// A Log per goroutine: sixteen writers race for every seq.
		{"sixteen logs", func(t testing.TB, f *fixture) []*audit.Log {
			var ls []*audit.Log
			for i := range goroutines {
				st := f.st
				if i%2 == 1 {
					if other := f.another(t); other != nil {
						st = other
					}
				}
				ls = append(ls, audit.New(st))
			}
			return ls
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := open(t)
			logs := tc.logs(t, f)
			chain := audit.SubjectChain("busy")
			ctx := context.Background()
			var (
				mu   sync.Mutex
				seqs []int64
				wg   sync.WaitGroup
			)
			for g := range goroutines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					l := logs[g%len(logs)]
					for i := range each {
						e, err := l.Append(ctx, event(chain, g*each+i))
						if err != nil {
							t.Errorf("Append: %v", err)
							return
						}
						mu.Lock()
						seqs = append(seqs, e.Seq)
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			slices.Sort(seqs)
			for i, s := range seqs {
				if s != int64(i+1) {
					t.Fatalf("seqs handed out: %v", seqs)
				}
			}
			if len(seqs) != goroutines*each {
				t.Fatalf("%d appends succeeded, want %d", len(seqs), goroutines*each)
			}
			// The chain is in each event's _id (the stored event is lean).
			stored, err := f.st.ListAuditChain(ctx, chain, 1, 10*goroutines*each)
			if err != nil {
				t.Fatal(err)
			}
			n := int64(len(stored))
			if n != goroutines*each {
				t.Errorf("%d events stored, want %d", n, goroutines*each)
			}
			if res := verify(t, logs[0], chain); !res.Intact() || res.Events != goroutines*each {
				t.Errorf("Verify: %+v", res)
			}
			head, err := f.st.GetAuditHead(ctx, chain)
			if err != nil || head.Seq != goroutines*each {
				t.Errorf("head %d (%v), want %d", head.Seq, err, goroutines*each)
			}
		})
	}
}

// TestAppendFindsEndPastLaggingHead: the head is a hint; without it, or far
// behind, Append still finds the end of the chain.
func TestAppendFindsEndPastLaggingHead(t *testing.T) {
	f := open(t)
	l := audit.New(f.st)
	ctx := context.Background()
	chain := audit.SubjectChain("lag")
	appendN(t, l, chain, 37)
	for _, lower := range []func(){
		func() { // no head at all
			_, err := f.db.Collection("audit_heads").DeleteOne(ctx, bson.D{{Key: "_id", Value: chain}})
			if err != nil {
				t.Fatal(err)
			}
		},
		func() { // a head far behind
			ev, err := f.st.GetAuditEvent(ctx, chain, 3)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.db.Collection("audit_heads").ReplaceOne(ctx, bson.D{{Key: "_id", Value: chain}}, bson.D{{Key: "seq", Value: 3}, {Key: "hash", Value: ev.Hash}})
			if err != nil {
				t.Fatal(err)
			}
		},
	} {
		lower()
		last, err := l.Verify(ctx, chain)
		if err != nil {
			t.Fatal(err)
		}
		e, err := l.Append(ctx, event(chain, 99))
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		if e.Seq != last.Events+1 {
			t.Fatalf("appended at %d, want %d", e.Seq, last.Events+1)
		}
	}
	if res := verify(t, l, chain); !res.Intact() || res.Events != 39 {
		t.Errorf("Verify: %+v", res)
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	ctx := context.Background()
	f := open(t)
	l := audit.New(f.st)
	events := f.db.Collection("audit_events")
	heads := f.db.Collection("audit_heads")
	id := func(chain string, seq int64) bson.D {
		return bson.D{{Key: "_id", Value: store.AuditEventID(chain, seq)}}
	}

	t.Run("intact", func(t *testing.T) {
		chain := audit.SubjectChain("intact")
		appendN(t, l, chain, 12)
		if res := verify(t, l, chain); !res.Intact() || res.Events != 12 || res.Reason != "" {
			t.Errorf("Verify: %+v", res)
		}
		if res := verify(t, l, audit.SubjectChain("empty")); !res.Intact() || res.Events != 0 {
			t.Errorf("Verify of an empty chain: %+v", res)
		}
	})

	t.Run("changed", func(t *testing.T) {
		chain := audit.SubjectChain("changed")
		appendN(t, l, chain, 12)
		if _, err := events.UpdateOne(ctx, id(chain, 5), bson.D{{Key: "$set", Value: bson.D{{Key: "outcome", Value: "PermissionDenied"}}}}); err != nil {
			t.Fatal(err)
		}
		res := verify(t, l, chain)
		if res.FirstBroken != 5 || res.Reason != audit.ReasonChanged || res.Events != 4 {
			t.Errorf("Verify: %+v, want seq 5 changed", res)
		}
	})

	t.Run("missing", func(t *testing.T) {
		chain := audit.SubjectChain("missing")
		appendN(t, l, chain, 12)
		if _, err := events.DeleteOne(ctx, id(chain, 7)); err != nil {
			t.Fatal(err)
		}
		res := verify(t, l, chain)
		if res.FirstBroken != 7 || res.Reason != audit.ReasonMissing {
			t.Errorf("Verify: %+v, want seq 7 missing", res)
		}
		// Lowering the head as well does not hide it: events follow.
		ev, err := f.st.GetAuditEvent(ctx, chain, 6)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := heads.ReplaceOne(ctx, bson.D{{Key: "_id", Value: chain}}, bson.D{{Key: "seq", Value: 6}, {Key: "hash", Value: ev.Hash}}); err != nil {
			t.Fatal(err)
		}
		if res := verify(t, l, chain); res.FirstBroken != 7 || res.Reason != audit.ReasonMissing {
			t.Errorf("Verify with the head lowered: %+v, want seq 7 missing", res)
		}
	})

	t.Run("forged", func(t *testing.T) {
		chain := audit.SubjectChain("forged")
		evs := appendN(t, l, chain, 12)
		// Event 9 replaced by one with its own hash recomputed, chained to
		// event 3's hash instead of event 8's.
		forged := evs[8]
		forged.Outcome = "NotFound"
		forged.PrevHash = evs[2].Hash
		forged.Hash = audit.Hash(forged)
		if _, err := events.ReplaceOne(ctx, id(chain, 9), storeDoc(forged)); err != nil {
			t.Fatal(err)
		}
		res := verify(t, l, chain)
		if res.FirstBroken != 9 || res.Reason != audit.ReasonOutOfPlace {
			t.Errorf("Verify: %+v, want seq 9 out of place", res)
		}
		// Chained correctly to event 8, the forgery breaks the link to 10.
		forged.PrevHash = evs[7].Hash
		forged.Hash = audit.Hash(forged)
		if _, err := events.ReplaceOne(ctx, id(chain, 9), storeDoc(forged)); err != nil {
			t.Fatal(err)
		}
		// The chain alone finds the link to 10 broken; its leaf in the
		// Merkle tree shows event 9 itself changed.
		if res := verify(t, l, chain); res.FirstBroken != 9 || res.Reason != audit.ReasonChanged || res.Leaf != evs[8].Leaf {
			t.Errorf("Verify: %+v, want seq 9 changed at its leaf", res)
		}
	})

	t.Run("moved", func(t *testing.T) {
		// An intact event of another chain put in the place of event 4.
		chain, other := audit.SubjectChain("moved"), audit.SubjectChain("moved-other")
		appendN(t, l, chain, 6)
		evs := appendN(t, l, other, 6)
		doc := storeDoc(evs[3])
		doc.ID = store.AuditEventID(chain, 4)
		if _, err := events.ReplaceOne(ctx, id(chain, 4), doc); err != nil {
			t.Fatal(err)
		}
		// Stored, an event's place is its _id, which its hash binds: moved,
		// it reads as an event of this place whose content changed.
		if res := verify(t, l, chain); res.FirstBroken != 4 || res.Reason != audit.ReasonChanged {
			t.Errorf("Verify: %+v, want seq 4 changed", res)
		}
	})

	t.Run("truncated", func(t *testing.T) {
		// The head moves every 16 seqs: the end it records is checked.
		chain := audit.SubjectChain("truncated")
		appendN(t, l, chain, 16)
		if _, err := events.DeleteOne(ctx, id(chain, 16)); err != nil {
			t.Fatal(err)
		}
		res := verify(t, l, chain)
		if res.FirstBroken != 16 || res.Reason != audit.ReasonMissing || res.Events != 15 {
			t.Errorf("Verify: %+v, want seq 16 missing (the head is at 16)", res)
		}
		// Appending goes on from the head, past the gap, which stays.
		e, err := l.Append(ctx, event(chain, 17))
		if err != nil {
			t.Fatalf("Append to a truncated chain: %v", err)
		}
		if e.Seq != 17 {
			t.Errorf("appended at %d, want 17", e.Seq)
		}
		if res := verify(t, l, chain); res.FirstBroken != 16 || res.Reason != audit.ReasonMissing {
			t.Errorf("Verify after another append: %+v, want seq 16 missing", res)
		}
	})

	t.Run("rewritten tail", func(t *testing.T) {
		// The last event replaced by a forgery that chains correctly: the
		// chain alone holds, the head's hash does not.
		chain := audit.SubjectChain("rewritten")
		evs := appendN(t, l, chain, 16)
		forged := evs[15]
		forged.Outcome = "NotFound"
		forged.Hash = audit.Hash(forged)
		if _, err := events.ReplaceOne(ctx, id(chain, 16), storeDoc(forged)); err != nil {
			t.Fatal(err)
		}
		if res := verify(t, l, chain); res.FirstBroken != 16 || res.Reason != audit.ReasonChanged || res.Events != 15 {
			t.Errorf("Verify: %+v, want seq 16 changed", res)
		}
	})
}

// storeDoc is the stored form of e, for writing forgeries.
func storeDoc(e audit.Event) *store.AuditEvent {
	return &store.AuditEvent{
		ID: e.ID(), Chain: e.Chain, Seq: e.Seq, Time: e.Time.UnixNano(), Principal: e.Principal, Tenant: e.Tenant,
		Purpose: e.Purpose, RPC: e.RPC, SubjectID: e.SubjectID, Fields: e.Fields, Outcome: e.Outcome,
		PrevHash: e.PrevHash, Hash: e.Hash, Leaf: e.Leaf,
	}
}

func BenchmarkAppend(b *testing.B) {
	b.Run("one chain", func(b *testing.B) {
		f := open(b)
		l := audit.New(f.st)
		ctx := context.Background()
		chain := audit.SubjectChain("bench")
		for i := 0; b.Loop(); i++ {
			if _, err := l.Append(ctx, event(chain, i)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("8 goroutines on 8 chains", func(b *testing.B) {
		f := open(b)
		l := audit.New(f.st)
		ctx := context.Background()
		var next atomic.Int64
		b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
		b.RunParallel(func(pb *testing.PB) {
			chain := audit.SubjectChain(fmt.Sprintf("bench-%d", next.Add(1)))
			i := 0
			for pb.Next() {
				if _, err := l.Append(ctx, event(chain, i)); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
	})
}
