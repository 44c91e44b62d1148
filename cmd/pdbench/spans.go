package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// spanTotals is what the server child's traces say of the calls of one
// operation: for each span name (the HTTP request, the gRPC call on each
// side, each store command, each wait for a sync), how many ended and
// their time in all. It shows where a call's time goes (-spans).
type spanTotals map[string]spanTotal

type spanTotal struct {
	Count int           `json:"count"`
	Total time.Duration `json:"total_ns"`
}

// spanAggregator is an OpenTelemetry span processor that adds up the spans
// that end, by name, until it is taken and reset. Span names carry no
// personal data (the service names them by method and command only).
type spanAggregator struct {
	mu     sync.Mutex
	totals spanTotals
}

func newSpanAggregator() *spanAggregator { return &spanAggregator{totals: spanTotals{}} }

func (a *spanAggregator) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

func (a *spanAggregator) OnEnd(s sdktrace.ReadOnlySpan) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t := a.totals[s.Name()]
	t.Count++
	t.Total += s.EndTime().Sub(s.StartTime())
	a.totals[s.Name()] = t
}

func (a *spanAggregator) Shutdown(context.Context) error   { return nil }
func (a *spanAggregator) ForceFlush(context.Context) error { return nil }

// take returns the totals so far as one JSON line and starts again.
func (a *spanAggregator) take() (string, error) {
	a.mu.Lock()
	totals := a.totals
	a.totals = spanTotals{}
	a.mu.Unlock()
	b, err := json.Marshal(totals)
	return string(b), err
}

// describe writes the totals per call: each span's mean time and how many
// a call had, the longest first.
func (t spanTotals) describe(calls int) string {
	if calls == 0 || len(t) == 0 {
		return "no spans"
	}
	names := make([]string, 0, len(t))
	for n := range t {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b string) int { return int(t[b].Total/time.Microsecond - t[a].Total/time.Microsecond) })
	var parts []string
	for _, n := range names {
		s := t[n]
		parts = append(parts, fmt.Sprintf("%s %.2f ms ×%.2g", n, ms(s.Total)/float64(s.Count), float64(s.Count)/float64(calls)))
	}
	return strings.Join(parts, ", ")
}
