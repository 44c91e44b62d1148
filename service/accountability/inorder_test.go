package accountability

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// Results come out in the order the jobs started, however long each took,
// and never more than n run at once.
func TestInOrderKeepsOrder(t *testing.T) {
	var got []int
	var running, most atomic.Int32
	run := newInOrder(t.Context(), 3, func(v int) error { got = append(got, v); return nil })
	defer run.stop()
	for i := range 40 {
		err := run.start(func(context.Context) (int, error) {
			r := running.Add(1)
			for m := most.Load(); r > m && !most.CompareAndSwap(m, r); m = most.Load() {
			}
			defer running.Add(-1)
			time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
			return i, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := run.wait(); err != nil {
		t.Fatal(err)
	}
	want := make([]int, 40)
	for i := range want {
		want[i] = i
	}
	if !slices.Equal(got, want) {
		t.Errorf("emitted %v", got)
	}
	if m := most.Load(); m > 3 || m < 2 {
		t.Errorf("%d jobs ran at once, want at most 3 (and more than 1)", m)
	}
}

// A failed job ends the run with its error after the results before it;
// stop cancels the jobs still running and waits for them.
func TestInOrderStopsAtAnError(t *testing.T) {
	boom := errors.New("boom")
	var got []int
	var cancelled atomic.Int32
	run := newInOrder(t.Context(), 4, func(v int) error { got = append(got, v); return nil })
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		err = run.start(func(ctx context.Context) (int, error) {
			switch {
			case i == 2:
				return 0, boom
			case i > 2:
				<-ctx.Done() // until stop
				cancelled.Add(1)
				return 0, ctx.Err()
			}
			return i, nil
		})
	}
	if err == nil {
		err = run.wait()
	}
	run.stop()
	if !errors.Is(err, boom) || !slices.Equal(got, []int{0, 1}) {
		t.Errorf("err %v, emitted %v: want boom after 0 and 1", err, got)
	}
	// Jobs 3, 4 and 5 were running when job 2's failure was seen.
	if n := cancelled.Load(); n != 3 {
		t.Errorf("%d jobs ended when stop returned, want the 3 still running", n)
	}
}
