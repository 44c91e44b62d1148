package audit

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	"github.com/example/personaldata/service/auth"
)

// UnauthenticatedChain holds the refused authentications: calls without
// valid credentials and failed console sign-ins. It belongs to no tenant and
// names no principal as the actor (no one authenticated); see Attempts.
const UnauthenticatedChain = "unauthenticated"

// Prefixes of the names an event of UnauthenticatedChain carries in Fields.
const (
	AttemptReason    = "reason:"
	AttemptSource    = "source:"
	AttemptCount     = "attempts:"
	AttemptRPC       = "rpc:"
	AttemptPrincipal = "principal:"
)

// Bounds of what Attempts holds and writes in one window.
const (
	// attemptWindow is how long attempts are gathered into one event per
	// source and reason.
	attemptWindow = time.Second
	// maxAttemptKeys bounds the (source, reason) pairs of a window, and so
	// the events written a second; the attempts of further sources are
	// counted under the source AttemptOtherSources.
	maxAttemptKeys = 64
	// maxAttemptNames bounds the RPCs and principals an event names.
	maxAttemptNames = 8
	// AttemptOtherSources is the source of the attempts beyond
	// maxAttemptKeys sources in a window.
	AttemptOtherSources = "other"
)

// Attempts records refused authentications in UnauthenticatedChain. A
// flood of them must not become a flood of audit writes: attempts are
// gathered for a second and written as one event per source address and
// reason, with the count, the RPCs and the existing principals they named
// (up to maxAttemptNames each), and at most maxAttemptKeys+1 sources a second
// (the rest under AttemptOtherSources): so at most some 70 events a second,
// written together (one group commit), whatever the rate of attempts. A
// refused call waits for no write. What a crash loses is the last second's
// attempts, which the metrics and logs have counted too.
type Attempts struct {
	log    *Log
	logger *slog.Logger
	now    func() time.Time

	mu     sync.Mutex
	window map[attemptKey]*attemptTally
	order  []attemptKey

	lost prometheus.Counter
}

type attemptKey struct{ source, reason string }

type attemptTally struct {
	first      time.Time
	count      int64
	rpcs       []string
	principals []string
}

// NewAttempts returns an empty Attempts that appends to l; Run writes what
// it gathers. Events the store refuses are counted in
// personaldata_auth_failures_unrecorded_total on reg.
func NewAttempts(l *Log, logger *slog.Logger, now func() time.Time, reg prometheus.Registerer) *Attempts {
	if now == nil {
		now = time.Now
	}
	a := &Attempts{log: l, logger: logger, now: now, window: map[attemptKey]*attemptTally{},
		lost: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "personaldata_auth_failures_unrecorded_total",
			Help: "Refused authentications that could not be written to the audit trail (the store refused the append).",
		})}
	reg.MustRegister(a.lost)
	return a
}

// Record notes one refused authentication; it never blocks on the store.
func (a *Attempts) Record(_ context.Context, f auth.Failure) {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := attemptKey{source: f.Source, reason: f.Reason}
	t := a.window[k]
	if t == nil {
		if len(a.window) >= maxAttemptKeys {
			k.source = AttemptOtherSources
			t = a.window[k]
		}
		if t == nil {
			t = &attemptTally{first: a.now()}
			a.window[k] = t
			a.order = append(a.order, k)
		}
	}
	t.count++
	t.rpcs = addName(t.rpcs, f.Method)
	t.principals = addName(t.principals, f.Principal)
}

func addName(names []string, n string) []string {
	if n == "" || len(names) >= maxAttemptNames || slices.Contains(names, n) {
		return names
	}
	return append(names, n)
}

// Run writes the attempts gathered, every second, until ctx ends; then it
// writes what is left and returns.
func (a *Attempts) Run(ctx context.Context) {
	t := time.NewTicker(attemptWindow)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			a.Flush(context.WithoutCancel(ctx))
			return
		case <-t.C:
			a.Flush(ctx)
		}
	}
}

// Flush writes the attempts gathered so far, one event per source and
// reason, appended together so that the group commit makes them one write.
func (a *Attempts) Flush(ctx context.Context) {
	a.mu.Lock()
	window, order := a.window, a.order
	a.window, a.order = map[attemptKey]*attemptTally{}, nil
	a.mu.Unlock()
	if len(order) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, k := range order {
		e := attemptEvent(k, window[k])
		wg.Go(func() {
			if _, err := a.log.Append(ctx, e); err != nil {
				a.lost.Add(float64(window[k].count))
				a.logger.ErrorContext(ctx, "audit trail: refused authentications not written",
					slog.String("reason", k.reason), slog.Int64("attempts", window[k].count), slog.String("error", err.Error()))
			}
		})
	}
	wg.Wait()
}

func attemptEvent(k attemptKey, t *attemptTally) Event {
	fields := []string{AttemptReason + k.reason, AttemptSource + k.source, AttemptCount + strconv.FormatInt(t.count, 10)}
	for _, r := range slices.Sorted(slices.Values(t.rpcs)) {
		fields = append(fields, AttemptRPC+r)
	}
	for _, p := range slices.Sorted(slices.Values(t.principals)) {
		fields = append(fields, AttemptPrincipal+p)
	}
	rpc := ""
	if len(t.rpcs) > 0 {
		rpc = t.rpcs[0]
	}
	return Event{Chain: UnauthenticatedChain, Time: t.first, RPC: rpc, Fields: fields, Outcome: codes.Unauthenticated.String()}
}

// ParseAttempt reads an event of UnauthenticatedChain: its reason, source,
// count of attempts and the principals they named.
func ParseAttempt(e Event) (reason, source string, count int64, principals []string) {
	for _, f := range e.Fields {
		switch {
		case strings.HasPrefix(f, AttemptReason):
			reason = strings.TrimPrefix(f, AttemptReason)
		case strings.HasPrefix(f, AttemptSource):
			source = strings.TrimPrefix(f, AttemptSource)
		case strings.HasPrefix(f, AttemptCount):
			count, _ = strconv.ParseInt(strings.TrimPrefix(f, AttemptCount), 10, 64)
		case strings.HasPrefix(f, AttemptPrincipal):
			principals = append(principals, strings.TrimPrefix(f, AttemptPrincipal))
		}
	}
	return reason, source, count, principals
}
