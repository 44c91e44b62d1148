// Package signinlimit bounds sign-in attempts per client address (and per
// identity, by key) and in all: the support console's and the data
// subjects' own page's.
package signinlimit

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"
)

// Limits bound failed sign-ins, so that tokens cannot be guessed at
// speed: per client address, and in all. A zero field takes its default.
type Limits struct {
	// PerAddress is what one client address may fail: 5 a minute after a
	// burst of 5 by default.
	PerAddress Limit
	// Global is what all addresses together may fail: 100 a minute after
	// a burst of 100 by default. Past it, every sign-in waits.
	Global Limit
	// Addresses is how many client addresses are remembered (10,000 by
	// default); the least recently seen are forgotten first.
	Addresses int
}

// Limit is a token bucket: a failure takes a token, one comes back Every
// so often, and at most Burst are kept.
type Limit struct {
	Every time.Duration
	Burst int
}

// Default sign-in limits.
var (
	DefaultPerAddressLimit = Limit{Every: 12 * time.Second, Burst: 5}
	DefaultGlobalLimit     = Limit{Every: 600 * time.Millisecond, Burst: 100}
)

const defaultAddresses = 10_000

func (l Limits) withDefaults() Limits {
	if l.PerAddress.Every <= 0 || l.PerAddress.Burst <= 0 {
		l.PerAddress = DefaultPerAddressLimit
	}
	if l.Global.Every <= 0 || l.Global.Burst <= 0 {
		l.Global = DefaultGlobalLimit
	}
	if l.Addresses <= 0 {
		l.Addresses = defaultAddresses
	}
	return l
}

// Scopes of a refusal (the label of the metrics of refusals).
const (
	ScopeAddress = "address"
	ScopeGlobal  = "global"
)

// Limiter refuses a sign-in, before its credentials are checked, while
// its client address or everyone together has failed too often.
type Limiter struct {
	mu         sync.Mutex
	perAddress Limit
	global     *bucket
	addrs      *simplelru.LRU[string, *bucket]
}

// bucket is a rate.Limiter of failures, and the attempts being checked on
// it: each may yet fail, so each holds a token back. Without that, many
// attempts sent at once would all be checked against one token.
type bucket struct {
	lim      *rate.Limiter
	every    time.Duration
	checking int
}

func newBucket(l Limit) *bucket {
	return &bucket{lim: rate.NewLimiter(rate.Every(l.Every), l.Burst), every: l.Every}
}

// wait is how long until a token is free for another Attempt; 0 if one is.
func (b *bucket) wait(now time.Time) time.Duration {
	need := 1 - (b.lim.TokensAt(now) - float64(b.checking))
	// In whole milliseconds, so that float rounding neither refuses a
	// token that is due nor makes 12 s into 13.
	ms := math.Round(need * float64(b.every) / float64(time.Millisecond))
	if ms <= 0 {
		return 0
	}
	return time.Duration(ms) * time.Millisecond
}

func New(l Limits) (*Limiter, error) {
	l = l.withDefaults()
	addrs, err := simplelru.NewLRU[string, *bucket](l.Addresses, nil)
	if err != nil {
		return nil, fmt.Errorf("sign-in limiter: %w", err)
	}
	return &Limiter{perAddress: l.PerAddress, global: newBucket(l.Global), addrs: addrs}, nil
}

// Attempt is a sign-in admitted for checking.
type Attempt struct {
	l    *Limiter
	addr *bucket
}

// Limited says why an Attempt was not admitted, and for how long.
type Limited struct {
	Scope string
	Wait  time.Duration
}

// Admit admits an Attempt from the client with key, or refuses it while
// that client or everyone has no failure left.
func (l *Limiter) Admit(key string, now time.Time) (*Attempt, *Limited) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.addrs.Get(key)
	if !ok {
		b = newBucket(l.perAddress)
		l.addrs.Add(key, b)
	}
	if w := b.wait(now); w > 0 {
		return nil, &Limited{Scope: ScopeAddress, Wait: max(w, l.global.wait(now))}
	}
	if w := l.global.wait(now); w > 0 {
		return nil, &Limited{Scope: ScopeGlobal, Wait: w}
	}
	b.checking++
	l.global.checking++
	return &Attempt{l: l, addr: b}, nil
}

// Done ends the check of an Attempt; a failure takes a token. It returns
// the scopes whose last token that failure took, for the log.
func (a *Attempt) Done(now time.Time, failed bool) (emptied []string) {
	l := a.l
	l.mu.Lock()
	defer l.mu.Unlock()
	a.addr.checking--
	l.global.checking--
	if !failed {
		return nil
	}
	for _, s := range []struct {
		scope string
		b     *bucket
	}{{ScopeAddress, a.addr}, {ScopeGlobal, l.global}} {
		// ReserveN charges even a bucket in debt: no failure goes uncounted.
		s.b.lim.ReserveN(now, 1)
		if s.b.wait(now) > 0 {
			emptied = append(emptied, s.scope)
		}
	}
	return emptied
}

// Size is how many client addresses are remembered.
func (l *Limiter) Size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.addrs.Len()
}

// ClientKey is the key of a request's client in the limiter: the address of
// the TCP peer (or what ClientAddr makes of a trusted proxy's request), for
// IPv6 its /64, which one subscriber usually holds whole.
func ClientKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64) // never fails for 64 bits of IPv6
		return p.String()
	}
	return ip.String()
}

// WaitWords is a wait in Swedish words: "12 sekunder", "3 minuter".
func WaitWords(d time.Duration) string { return waitWords(d, "sekund", "sekunder", "minut", "minuter") }

// WaitWordsEnglish is WaitWords in English: "12 seconds", "3 minutes".
func WaitWordsEnglish(d time.Duration) string {
	return waitWords(d, "second", "seconds", "minute", "minutes")
}

// waitWords is d rounded up to whole seconds under a minute, else to
// whole minutes, in the words given.
func waitWords(d time.Duration, second, seconds, minute, minutes string) string {
	s := int(math.Ceil(d.Seconds()))
	switch {
	case s <= 1:
		return "1 " + second
	case s < 60:
		return fmt.Sprintf("%d %s", s, seconds)
	case s <= 60:
		return "1 " + minute
	}
	return fmt.Sprintf("%d %s", (s+59)/60, minutes)
}

// RetryAfter is a wait as a Retry-After header's whole seconds, at least 1.
func RetryAfter(d time.Duration) string {
	return fmt.Sprint(max(1, int(math.Ceil(d.Seconds()))))
}

// ClientAddr is the address of r's client: the TCP peer's, unless the peer
// is one of the trusted proxies, whose X-Forwarded-For is then read from
// the right, each proxy having appended the address it took the request
// from, to the first address that is not a trusted proxy's. What lies to
// the left of that the client may have written itself, and is never read.
// A header that cannot be read leaves the peer's address.
func ClientAddr(r *http.Request, proxies []netip.Prefix) string {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !within(peer.Addr(), proxies) {
		return r.RemoteAddr
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(h, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return r.RemoteAddr
		}
		if !within(a, proxies) {
			return a.Unmap().String()
		}
	}
	return r.RemoteAddr
}

func within(a netip.Addr, prefixes []netip.Prefix) bool {
	a = a.Unmap()
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
