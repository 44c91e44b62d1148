package server_test

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// TestMeasureManyChangesToOneSubject is a measurement, not a check: it runs
// only when PD_MEASURE_CHANGES gives a number of changes, and logs the mean
// latency of the first and the last hundred keyed changes to one subject
// through the public API (gRPC), for AddHistoryEntry (which adds nothing to
// the subject's document but its idempotency record) and for
// RectifySubject (whose record of changes grows with each). Run by hand:
//
//	PD_MEASURE_CHANGES=10000 go test -run TestMeasureManyChangesToOneSubject -v -timeout 2h ./cmd/personaldatad/server/
func TestMeasureManyChangesToOneSubject(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("PD_MEASURE_CHANGES"))
	if n < 200 {
		t.Skip("a measurement: set PD_MEASURE_CHANGES to the number of changes (at least 200)")
	}
	e := start(t)
	c := e.gc()
	mean := func(d []time.Duration) time.Duration {
		var sum time.Duration
		for _, x := range d {
			sum += x
		}
		return sum / time.Duration(len(d))
	}
	report := func(t *testing.T, name string, change func(i int)) {
		lat := make([]time.Duration, n)
		began := time.Now()
		for i := range n {
			t0 := time.Now()
			change(i)
			lat[i] = time.Since(t0)
			if (i+1)%1000 == 0 {
				t.Logf("%s: %d changes in %v, the last 100 took %v each", name, i+1, time.Since(began).Round(time.Millisecond), mean(lat[i-99:i+1]).Round(time.Microsecond))
			}
		}
		t.Logf("%s: %d changes in %v; mean latency of the first 100 %v, of the last 100 %v",
			name, n, time.Since(began).Round(time.Millisecond), mean(lat[:100]).Round(time.Microsecond), mean(lat[n-100:]).Round(time.Microsecond))
	}
	t.Run("AddHistoryEntry", func(t *testing.T) {
		sub := create(t, c, 901)
		report(t, "AddHistoryEntry", func(i int) {
			call(t, c, "AddHistoryEntry", &pdv1.AddHistoryEntryRequest{
				IdempotencyKey: fmt.Sprintf("measure-history-%d", i), SubjectId: sub.GetSubjectId(),
				Entry: &pdv1.HistoryEntry{Kind: pdv1.HistoryKind_HISTORY_KIND_ERROR_REPORT, Title: fmt.Sprintf("Felanmälan %d", i), Body: "Sidan laddar inte.",
					OccurTime: timestamppb.New(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)), Reference: fmt.Sprintf("ticket-%d", i)},
			}, &pdv1.AddHistoryEntryResponse{})
		})
	})
	t.Run("RectifySubject", func(t *testing.T) {
		sub := create(t, c, 902)
		report(t, "RectifySubject", func(i int) {
			sub = call(t, c, "RectifySubject", rectifyReq(sub, fmt.Sprintf("measure-rectify-%d", i), &pdv1.Person{Phone: fmt.Sprintf("070-%03d %02d %02d", i%1000, i%100, (i/100)%100)}, "phone"),
				&pdv1.RectifySubjectResponse{}).GetSubject()
		})
	})
}
