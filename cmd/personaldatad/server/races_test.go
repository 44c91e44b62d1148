package server_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/status"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// TestCreateRetriesRaceTheOriginal sends the same create (same idempotency
// key, same body) many times at once: every one answers what the first
// answers, one subject is stored, and none is INTERNAL.
func TestCreateRetriesRaceTheOriginal(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		const rounds, parallel = 20, 8
		for r := range rounds {
			req := createReq(fmt.Sprintf("race-%d", r), 10+r)
			ids := make([]string, parallel)
			errs := make([]error, parallel)
			var wg sync.WaitGroup
			for i := range parallel {
				wg.Go(func() {
					resp := &pdv1.CreateSubjectResponse{}
					errs[i] = c.call(context.Background(), "CreateSubject", req, resp)
					ids[i] = resp.GetSubject().GetSubjectId()
				})
			}
			wg.Wait()
			for i := range parallel {
				if errs[i] != nil {
					t.Fatalf("round %d call %d: %v (code %v)", r, i, errs[i], status.Code(errs[i]))
				}
				if ids[i] != ids[0] {
					t.Fatalf("round %d: call %d created %s, call 0 %s", r, i, ids[i], ids[0])
				}
			}
		}
		if n := e.count(t, "subjects"); n != rounds {
			t.Errorf("%d subjects stored, want %d", n, rounds)
		}
	})
}

// TestIdempotencyKeyHonouredForADay retries a change after many other changes
// to the same subject and hours later: it answers the first result and writes
// nothing, for as long as the README promises (24 hours).
func TestIdempotencyKeyHonouredForADay(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		sub := create(t, c, 320)
		first := call(t, c, "AddHistoryEntry", historyReq(sub, "entry-first", 320), &pdv1.AddHistoryEntryResponse{}).GetEntry()
		const others = 40 // more than the 32 remembered before
		for i := range others {
			call(t, c, "AddHistoryEntry", historyReq(sub, fmt.Sprintf("entry-other-%d", i), 321+i), &pdv1.AddHistoryEntryResponse{})
		}
		e.clock.Advance(23 * time.Hour)
		call(t, c, "AddHistoryEntry", historyReq(sub, "entry-late", 400), &pdv1.AddHistoryEntryResponse{})

		again := call(t, c, "AddHistoryEntry", historyReq(sub, "entry-first", 320), &pdv1.AddHistoryEntryResponse{}).GetEntry()
		if again.GetEntryId() != first.GetEntryId() {
			t.Errorf("retry after %d changes and 23 h answered entry %q, want the first %q", others+1, again.GetEntryId(), first.GetEntryId())
		}
		list := call(t, c, "ListHistoryEntries", &pdv1.ListHistoryEntriesRequest{SubjectId: sub.GetSubjectId(), PageSize: 100}, &pdv1.ListHistoryEntriesResponse{})
		if n := len(list.GetEntries()); n != others+2 {
			t.Errorf("%d history entries after the retry, want %d", n, others+2)
		}
	})
}
