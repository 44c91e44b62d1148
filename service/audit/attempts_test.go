package audit_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/auth"
)

// TestAttemptsBounded: a flood of refused authentications from many
// addresses becomes a bounded number of events (one per source and reason,
// at most 64 sources a second and the rest under "other"), which together
// count every attempt, and name at most 8 RPCs and principals each.
func TestAttemptsBounded(t *testing.T) {
	f := open(t)
	l := audit.New(f.st)
	a := audit.NewAttempts(l, slog.New(slog.NewTextHandler(io.Discard, nil)), nil, prometheus.NewRegistry())
	const sources, each = 1000, 10
	for i := range sources * each {
		a.Record(context.Background(), auth.Failure{
			Source: fmt.Sprintf("192.0.2.%d", i%sources), Method: fmt.Sprintf("/personaldata.v1.X/M%d", i%20),
			Reason: "bad_token", Principal: fmt.Sprintf("p%d", i%30),
		})
	}
	a.Record(context.Background(), auth.Failure{Source: "198.51.100.1", Method: "/personaldata.v1.X/M", Reason: "missing"})
	a.Flush(context.Background())
	evs, err := l.List(context.Background(), audit.UnauthenticatedChain, 1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 64+2 {
		t.Errorf("%d events for %d attempts, want 66", len(evs), sources*each+1)
	}
	var total int64
	others := 0
	for _, e := range evs {
		_, source, n, principals := audit.ParseAttempt(e)
		total += n
		if source == audit.AttemptOtherSources {
			others++ // one per reason
		}
		if len(principals) > 8 || len(e.Fields) > 3+8+8 {
			t.Errorf("event names %d principals, %d fields: unbounded", len(principals), len(e.Fields))
		}
	}
	if total != sources*each+1 || others != 2 {
		t.Errorf("events count %d attempts with %d \"other\" events, want %d and 2 (one a reason)", total, others, sources*each+1)
	}
	if res, err := l.Verify(context.Background(), audit.UnauthenticatedChain); err != nil || !res.Intact() {
		t.Errorf("Verify: %v %v", res, err)
	}
	// Nothing gathered: nothing written.
	a.Flush(context.Background())
	if again, _ := l.List(context.Background(), audit.UnauthenticatedChain, 1, 1000); len(again) != len(evs) {
		t.Errorf("an empty flush wrote %d events", len(again)-len(evs))
	}
}
