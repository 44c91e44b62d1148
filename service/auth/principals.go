package auth

import (
	"context"
	"fmt"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/example/personaldata/store"
)

// PrincipalCache keeps the principals that authenticated here, so that a
// call does not read its principal from the store, while any change of a
// principal (a revocation above all) still takes effect on the next call on
// every replica.
//
// It works with the principals' generation in the store, a random value that
// every change replaces (store.NewPrincipalsGeneration). A cached principal
// counts only while the generation it was read under is the one this
// replica read most recently, and that reading is younger than
// GenerationWindow; an older reading is renewed (one exact _id read, shared
// by the calls that need it) before a cached principal is used. Whoever
// changes a principal replaces the generation and then waits
// GenerationWindow (Changed): by then every replica has either read the new
// generation, which makes its cached principals count for nothing, or let its
// reading expire. So once a change has been answered, no replica serves the
// principal as it was.
type PrincipalCache struct {
	store   *store.Store
	entries *lru.Cache[string, cachedPrincipal]

	mu sync.Mutex
	// gen is the generation read last, by a read that started at readAt
	// (monotonic clock).
	gen    string
	readAt time.Time
	// renewing is closed when the renewal under way ends; nil when none is.
	renewing chan struct{}
	renewErr error
}

type cachedPrincipal struct {
	p      *store.Principal
	gen    string
	readAt time.Time
}

const (
	// GenerationWindow is how long a reading of the principals' generation
	// lets cached principals be used, and so how long a change of a
	// principal waits before it is answered. Every replica must use the
	// same value (it is not configurable for that reason).
	GenerationWindow = 250 * time.Millisecond
	// renewAfter is the age at which a reading is renewed in the
	// background, so that under load no call waits for a renewal.
	renewAfter = GenerationWindow / 2
	// maxPrincipalAge bounds how long a principal stays cached at all: if
	// a change was stored but its new generation was not (the process died
	// between the two writes), replicas pick it up within this time.
	maxPrincipalAge = time.Minute
	// maxCachedPrincipals bounds the cache; principals are few.
	maxCachedPrincipals = 10_000
)

// NewPrincipalCache returns an empty cache of the principals in st.
func NewPrincipalCache(st *store.Store) *PrincipalCache {
	entries, err := lru.New[string, cachedPrincipal](maxCachedPrincipals)
	if err != nil {
		panic(err) // only for a size below 1
	}
	return &PrincipalCache{store: st, entries: entries}
}

// Get returns principal id as it is now, from the cache when a current
// generation vouches for it, else from the store. The principal is shared:
// callers must not change it. A missing principal is store.ErrNotFound.
func (c *PrincipalCache) Get(ctx context.Context, id string) (*store.Principal, error) {
	gen, err := c.generation(ctx)
	if err != nil {
		return nil, err
	}
	if e, ok := c.entries.Get(id); ok && e.gen == gen && time.Since(e.readAt) < maxPrincipalAge {
		return e.p, nil
	}
	return c.read(ctx, id, gen)
}

// Reload reads principal id from the store, bypassing the cache: for a token
// the cached principal does not hold, which may have been issued since.
func (c *PrincipalCache) Reload(ctx context.Context, id string) (*store.Principal, error) {
	gen, err := c.generation(ctx)
	if err != nil {
		return nil, err
	}
	return c.read(ctx, id, gen)
}

// read reads principal id and caches it under gen, the generation current
// before the read began: if the generation moves on meanwhile, the entry
// never counts.
func (c *PrincipalCache) read(ctx context.Context, id, gen string) (*store.Principal, error) {
	start := time.Now()
	p, err := c.store.GetPrincipal(ctx, id)
	if err != nil {
		c.entries.Remove(id)
		return nil, err
	}
	c.entries.Add(id, cachedPrincipal{p: p, gen: gen, readAt: start})
	return p, nil
}

// Changed publishes a change of a principal that has been stored: it
// replaces the generation, then waits GenerationWindow, so that when it
// returns no replica uses a principal cached before the change. An error
// means the replicas may not know of the change; the caller retries it.
func (c *PrincipalCache) Changed(ctx context.Context) error {
	start := time.Now()
	gen, err := c.store.NewPrincipalsGeneration(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if start.After(c.readAt) {
		c.gen, c.readAt = gen, start
	}
	c.mu.Unlock()
	t := time.NewTimer(GenerationWindow)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("auth: publish a principal's change: %w", ctx.Err())
	}
}

// generation is the current generation: the last reading while it is
// younger than GenerationWindow (renewed in the background once it is
// older than renewAfter), else a fresh one, read once for all the calls
// waiting for it.
func (c *PrincipalCache) generation(ctx context.Context) (string, error) {
	arrived := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	// A reading begun less than a window before this call arrived shows
	// every change answered before the call (a change is answered a window
	// after its generation is written), however long the read then took:
	// on a loaded machine a slow read is no reason to refuse.
	for attempt := 0; ; attempt++ {
		fresh := !c.readAt.IsZero() && !c.readAt.Before(arrived.Add(-GenerationWindow))
		if fresh {
			if time.Since(c.readAt) >= renewAfter && c.renewing == nil {
				c.startRenewal(context.WithoutCancel(ctx))
			}
			return c.gen, nil
		}
		if attempt == 2 {
			// Two renewals came back stale or failed.
			if c.renewErr != nil {
				return "", c.renewErr
			}
			return "", fmt.Errorf("auth: principals generation: %w", store.ErrUnavailable)
		}
		if c.renewing == nil {
			c.startRenewal(context.WithoutCancel(ctx))
		}
		done := c.renewing
		c.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			c.mu.Lock()
			return "", ctx.Err()
		}
		c.mu.Lock()
		if c.renewErr != nil && attempt == 1 {
			return "", c.renewErr
		}
	}
}

// startRenewal reads the generation in a goroutine of its own, bounded in
// time; the caller holds c.mu.
func (c *PrincipalCache) startRenewal(ctx context.Context) {
	done := make(chan struct{})
	c.renewing = done
	go func() {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		start := time.Now()
		gen, err := c.store.PrincipalsGeneration(ctx)
		c.mu.Lock()
		c.renewErr = err
		if err == nil && start.After(c.readAt) {
			c.gen, c.readAt = gen, start
		}
		c.renewing = nil
		c.mu.Unlock()
		close(done)
	}()
}
