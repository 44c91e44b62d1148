package signinlimit

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// fail admits an Attempt from key and fails it.
func fail(t *testing.T, l *Limiter, key string, now time.Time) {
	t.Helper()
	a, lim := l.Admit(key, now)
	if lim != nil {
		t.Fatalf("%s: Limited (%s, %v) before its limit", key, lim.Scope, lim.Wait)
	}
	a.Done(now, true)
}

// TestSignInLimiterBounded: however many addresses fail, the limiter
// remembers at most Addresses of them, the most recent.
func TestSignInLimiterBounded(t *testing.T) {
	l, err := New(Limits{
		PerAddress: Limit{Every: time.Hour, Burst: 1},
		Global:     Limit{Every: time.Nanosecond, Burst: 1 << 20},
		Addresses:  100,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10_000 {
		fail(t, l, fmt.Sprintf("10.0.%d.%d", i/256, i%256), t0)
		if n := l.Size(); n > 100 {
			t.Fatalf("after %d addresses the limiter holds %d, want at most 100", i+1, n)
		}
	}
	// The most recent is still Limited; the first was forgotten.
	if _, lim := l.Admit("10.0.39.15", t0); lim == nil || lim.Scope != ScopeAddress {
		t.Errorf("the last address failed is not Limited: %+v", lim)
	}
	if _, lim := l.Admit("10.0.0.0", t0); lim != nil {
		t.Errorf("the first address is still remembered: %+v", lim)
	}
}

// TestSignInLimiterInFlight: attempts being checked hold their token, so
// attempts sent at once are not all checked against one free token; one
// that succeeds gives it back.
func TestSignInLimiterInFlight(t *testing.T) {
	l, err := New(Limits{PerAddress: Limit{Every: time.Minute, Burst: 2}})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := l.Admit("192.0.2.1", t0)
	b, _ := l.Admit("192.0.2.1", t0)
	if a == nil || b == nil {
		t.Fatal("the burst was not admitted")
	}
	if _, lim := l.Admit("192.0.2.1", t0); lim == nil || lim.Wait != time.Minute {
		t.Fatalf("a third Attempt while two are checked: %+v, want Limited for a minute", lim)
	}
	a.Done(t0, false) // a success gives its token back
	c, lim := l.Admit("192.0.2.1", t0)
	if lim != nil {
		t.Fatalf("after a success: Limited %+v", lim)
	}
	b.Done(t0, true)
	c.Done(t0, true)
	if _, lim := l.Admit("192.0.2.1", t0.Add(59*time.Second)); lim == nil || lim.Wait != time.Second {
		t.Errorf("two failures, 59 s on: %+v, want Limited for 1 s more", lim)
	}
	if _, lim := l.Admit("192.0.2.1", t0.Add(time.Minute)); lim != nil {
		t.Errorf("a minute on: Limited %+v", lim)
	}
}

func TestClientKey(t *testing.T) {
	for _, tc := range []struct{ remote, want string }{
		{"127.0.0.1:52100", "127.0.0.1"},
		{"[::ffff:192.0.2.7]:443", "192.0.2.7"},
		{"[2001:db8:1:2::1]:443", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::9]:80", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:80", "fe80::/64"},
		{"@", "@"},
	} {
		if got := ClientKey(tc.remote); got != tc.want {
			t.Errorf("ClientKey(%q) = %q, want %q", tc.remote, got, tc.want)
		}
	}
}

func TestWaitWords(t *testing.T) {
	for _, tc := range []struct {
		d         time.Duration
		words, ra string
	}{
		{300 * time.Millisecond, "1 sekund", "1"},
		{12 * time.Second, "12 sekunder", "12"},
		{11*time.Second + time.Millisecond, "12 sekunder", "12"},
		{time.Minute, "1 minut", "60"},
		{61 * time.Second, "2 minuter", "61"},
		{time.Hour, "60 minuter", "3600"},
	} {
		if got := WaitWords(tc.d); got != tc.words {
			t.Errorf("WaitWords(%v) = %q, want %q", tc.d, got, tc.words)
		}
		if got := RetryAfter(tc.d); got != tc.ra {
			t.Errorf("RetryAfter(%v) = %q, want %q", tc.d, got, tc.ra)
		}
	}
}

func TestClientAddr(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, c := range []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"no proxy", "203.0.113.7:5000", nil, "203.0.113.7:5000"},
		{"an untrusted peer's header is not read", "203.0.113.7:5000", []string{"198.51.100.1"}, "203.0.113.7:5000"},
		{"through the proxy", "10.1.2.3:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"what the client wrote is left of it", "10.1.2.3:5000", []string{"192.0.2.99, 198.51.100.1"}, "198.51.100.1"},
		{"two proxies", "10.1.2.3:5000", []string{"198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"headers in order", "[::1]:5000", []string{"192.0.2.99", "198.51.100.1"}, "198.51.100.1"},
		{"no header", "10.1.2.3:5000", nil, "10.1.2.3:5000"},
		{"garbage", "10.1.2.3:5000", []string{"not-an-address"}, "10.1.2.3:5000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = c.peer
			for _, h := range c.xff {
				r.Header.Add("X-Forwarded-For", h)
			}
			if got := ClientAddr(r, proxies); got != c.want {
				t.Errorf("ClientAddr = %q, want %q", got, c.want)
			}
		})
	}
}
