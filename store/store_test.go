package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/storetest"
)

// TestMain runs the tests against the store that storetest.Env names.
func TestMain(m *testing.M) { storetest.Main(m) }

// open returns a store for the test: the MongoDB that storetest names, or
// else the embedded store in a temp dir.
func open(t *testing.T) *store.Store {
	t.Helper()
	ctx := context.Background()
	db := fmt.Sprintf("storetest_%d", time.Now().UnixNano())
	s, err := store.Open(ctx, store.Config{URI: storetest.URI(), DataDir: t.TempDir(), Database: db})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(context.Background()); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestUpdateSubjectLosesNoUpdate(t *testing.T) {
	storetest.SkipUnlessAtomic(t)
	s := open(t)
	ctx := context.Background()
	if err := s.InsertSubject(ctx, &store.Subject{ID: "s1", Version: 1, Controller: "company"}); err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 50
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, err := s.UpdateSubject(ctx, "s1", func(sub *store.Subject) error {
					sub.HistoryCount++
					return nil
				}); err != nil {
					t.Errorf("UpdateSubject: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	got, err := s.GetSubject(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if got.HistoryCount != workers*each || got.Version != 1+workers*each {
		t.Errorf("count %d version %d, want %d and %d", got.HistoryCount, got.Version, workers*each, 1+workers*each)
	}
}

func TestUpdateSubjectAbortsOnError(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	if err := s.InsertSubject(ctx, &store.Subject{ID: "s1", Version: 1}); err != nil {
		t.Fatal(err)
	}
	refuse := errors.New("refused")
	if _, err := s.UpdateSubject(ctx, "s1", func(sub *store.Subject) error {
		sub.HistoryCount = 99
		return refuse
	}); !errors.Is(err, refuse) {
		t.Fatalf("got %v, want the change's own error", err)
	}
	got, _ := s.GetSubject(ctx, "s1")
	if got.Version != 1 || got.HistoryCount != 0 {
		t.Errorf("a refused change was written: %+v", got)
	}
	if _, err := s.UpdateSubject(ctx, "nobody", func(*store.Subject) error { return nil }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("update of a missing subject: %v", err)
	}
	if err := s.InsertSubject(ctx, &store.Subject{ID: "s1"}); !errors.Is(err, store.ErrExists) {
		t.Errorf("second insert: %v, want ErrExists", err)
	}
}

// TestKeyClaimRace has many goroutines claim one key: exactly one wins and
// the others learn who holds it.
func TestKeyClaimRace(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	const workers = 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	winners := 0
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("sub-%d", w)
			held, err := s.ClaimKey(ctx, "k", id, 1)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				winners++
			case errors.Is(err, store.ErrExists):
				if held == nil || held.SubjectID == id {
					t.Errorf("loser %s told holder %v", id, held)
				}
			default:
				t.Errorf("ClaimKey: %v", err)
			}
		}()
	}
	wg.Wait()
	if winners != 1 {
		t.Errorf("%d winners, want 1", winners)
	}
}

// TestKeyReassignRace has many goroutines take over one stale key at once:
// exactly one succeeds.
func TestKeyReassignRace(t *testing.T) {
	storetest.SkipUnlessAtomic(t)
	s := open(t)
	ctx := context.Background()
	if _, err := s.ClaimKey(ctx, "k", "dead", 1); err != nil {
		t.Fatal(err)
	}
	const workers = 16
	var wg sync.WaitGroup
	var mu sync.Mutex
	winners := 0
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := s.ReassignKey(ctx, "k", "dead", fmt.Sprintf("sub-%d", w), 2)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				winners++
			case errors.Is(err, store.ErrConflict):
			default:
				t.Errorf("ReassignKey: %v", err)
			}
		}()
	}
	wg.Wait()
	if winners != 1 {
		t.Errorf("%d winners, want 1", winners)
	}
	// Release by a non-holder leaves the key; by the holder removes it.
	k, err := s.GetKey(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseKey(ctx, "k", "dead"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetKey(ctx, "k"); err != nil {
		t.Errorf("a non-holder released the key: %v", err)
	}
	if err := s.ReleaseKey(ctx, "k", k.SubjectID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetKey(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("key after release by holder: %v", err)
	}
}

func TestHistoryEntries(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	e := &store.HistoryEntry{SubjectID: "s1", Seq: 0, Kind: "HISTORY_KIND_ERROR_REPORT", Sealed: &store.SealedHistory{Title: []byte("t")}}
	for range 2 { // the second put is what a retry does
		if err := s.PutHistoryEntry(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.GetHistoryEntry(ctx, "s1", 0)
	if err != nil || string(got.Sealed.Title) != "t" {
		t.Fatalf("got %+v, %v", got, err)
	}
	if err := s.DeleteHistoryEntry(ctx, "s1", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetHistoryEntry(ctx, "s1", 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
}

// TestReopen shows that what was written survives a restart of the store.
func TestReopen(t *testing.T) {
	storetest.SkipInMongoMode(t)
	dir := t.TempDir()
	ctx := context.Background()
	s, err := store.Open(ctx, store.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.InsertSubject(ctx, &store.Subject{ID: "s1", Version: 7}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s, err = store.Open(ctx, store.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	got, err := s.GetSubject(ctx, "s1")
	if err != nil || got.Version != 7 {
		t.Errorf("after reopen: %+v, %v", got, err)
	}
}
