package audit

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/storetest"
)

// TestLikelyNewChainFindsTrueEnd: an append told that its chain is most
// likely new (a create's) goes to seq 1 without reading; when the chain has
// events after all (an earlier attempt of the same create left them), it
// still lands after the last of them, and the chain verifies.
func TestLikelyNewChainFindsTrueEnd(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{URI: storetest.URI(), DataDir: t.TempDir(), Database: fmt.Sprintf("newchain_%d", time.Now().UnixNano())})
	if err != nil {
		t.Fatalf("store.Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close(context.Background()) })

	ev := func(chain string, likelyNew bool) Event {
		return Event{Chain: chain, Principal: "tester", Tenant: "company", RPC: "/personaldata.v1.PersonalDataService/CreateSubject", Outcome: "OK", likelyNew: likelyNew}
	}
	// A chain that really is new: seq 1, and a replica without it cached
	// (a fresh Log) appends after it.
	got, err := New(st).Append(ctx, ev("subjects/new", true))
	if err != nil || got.Seq != 1 {
		t.Fatalf("append to a new chain: seq %d, %v", got.Seq, err)
	}
	if got, err = New(st).Append(ctx, ev("subjects/new", false)); err != nil || got.Seq != 2 {
		t.Fatalf("append after it from another Log: seq %d, %v", got.Seq, err)
	}

	// A chain with events already, which the appending Log does not know.
	earlier := New(st)
	var last Event
	for range 3 {
		if last, err = earlier.Append(ctx, ev("subjects/retried", false)); err != nil {
			t.Fatal(err)
		}
	}
	got, err = New(st).Append(ctx, ev("subjects/retried", true))
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	if got.Seq != 4 || got.PrevHash != last.Hash {
		t.Errorf("appended at seq %d after %q, want seq 4 after %q", got.Seq, got.PrevHash, last.Hash)
	}
	for _, chain := range []string{"subjects/new", "subjects/retried"} {
		res, err := New(st).Verify(ctx, chain)
		if err != nil || !res.Intact() {
			t.Errorf("%s: %+v, %v", chain, res, err)
		}
	}
}
