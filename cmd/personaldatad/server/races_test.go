package server_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

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
