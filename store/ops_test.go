package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/storetest"
)

var errApplied = errors.New("applied before")

// applyKeyed is a keyed change as the service makes one: inside the
// update, look the key up; if it was applied, change nothing; else count
// it and record it as the subject's last op.
func applyKeyed(ctx context.Context, s *store.Store, id, key string, at int64) (bool, error) {
	return applyKeyedSince(ctx, s, id, key, at, 0)
}

// applyKeyedSince is applyKeyed with the window starting at since.
func applyKeyedSince(ctx context.Context, s *store.Store, id, key string, at, since int64) (bool, error) {
	_, err := s.UpdateSubject(ctx, id, func(sub *store.Subject) error {
		op, err := s.FindSubjectOp(ctx, sub, key, since, nil)
		if err != nil {
			return err
		}
		if op != nil {
			return errApplied
		}
		sub.HistoryCount++
		sub.LastOp = &store.Op{Key: key, Fingerprint: []byte("fp"), Result: sub.HistoryCount, At: at}
		return nil
	})
	if errors.Is(err, errApplied) {
		return false, nil
	}
	return err == nil, err
}

// Eight goroutines apply the same fifty keys to one subject: each is
// applied once, and every one is found afterwards, not only the last.
func TestKeyedChangesApplyOnce(t *testing.T) {
	storetest.SkipUnlessAtomic(t)
	s := open(t)
	ctx := context.Background()
	if err := s.InsertSubject(ctx, &store.Subject{ID: "s1", Version: 1, Controller: "company"}); err != nil {
		t.Fatal(err)
	}
	const workers, keys = 8, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range keys {
				if _, err := applyKeyed(ctx, s, "s1", fmt.Sprintf("key-%d", (k+w)%keys), 1); err != nil {
					t.Errorf("apply: %v", err)
				}
			}
		}()
	}
	wg.Wait()
	sub, err := s.GetSubject(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if sub.HistoryCount != keys {
		t.Errorf("%d changes applied, want %d", sub.HistoryCount, keys)
	}
	for k := range keys {
		if op, err := s.FindSubjectOp(ctx, sub, fmt.Sprintf("key-%d", k), 0, nil); err != nil || op == nil {
			t.Errorf("key %d: %v, %v; want found", k, op, err)
		}
	}
}

// Records older than the cutoff are removed, a page at a time; younger
// ones stay, and an expired one counts as absent before it is removed.
func TestDeleteSubjectOpsBefore(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	if err := s.InsertSubject(ctx, &store.Subject{ID: "s1", Version: 1, Controller: "company"}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := applyKeyed(ctx, s, "s1", fmt.Sprintf("old-%d", i), 100); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := applyKeyed(ctx, s, "s1", "young", 1000); err != nil {
		t.Fatal(err)
	}
	sub, err := s.GetSubject(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if op, err := s.FindSubjectOp(ctx, sub, "old-0", 500, nil); err != nil || op != nil {
		t.Errorf("an expired key: %v, %v; want absent", op, err)
	}
	total := 0
	for {
		n, err := s.DeleteSubjectOpsBefore(ctx, 500, 2)
		if err != nil {
			t.Fatal(err)
		}
		total += n
		if n < 2 {
			break
		}
	}
	if total != 5 {
		t.Errorf("%d records removed, want the 5 old ones", total)
	}
	if op, err := s.FindSubjectOp(ctx, sub, "young", 500, nil); err != nil || op == nil {
		t.Errorf("the young key: %v, %v; want found", op, err)
	}
}

// A key reused once its window is over is a new change, whose record
// replaces the expired one not yet swept, and is kept by the sweep.
func TestKeyReusedAfterItsWindow(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	if err := s.InsertSubject(ctx, &store.Subject{ID: "s1", Version: 1, Controller: "company"}); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		key       string
		at, since int64
		applied   bool
	}{{"k", 100, 0, true}, {"other", 200, 0, true}, {"k", 1000, 500, true}, {"other2", 1100, 500, true}, {"k", 1200, 500, false}} {
		applied, err := applyKeyedSince(ctx, s, "s1", step.key, step.at, step.since)
		if err != nil || applied != step.applied {
			t.Fatalf("%s at %d: applied %v, %v; want %v", step.key, step.at, applied, err, step.applied)
		}
	}
	if _, err := s.DeleteSubjectOpsBefore(ctx, 500, 10); err != nil {
		t.Fatal(err)
	}
	sub, err := s.GetSubject(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	if op, err := s.FindSubjectOp(ctx, sub, "k", 500, nil); err != nil || op == nil || op.At != 1000 {
		t.Errorf("the reused key after the sweep: %+v, %v; want its record of 1000", op, err)
	}
}
