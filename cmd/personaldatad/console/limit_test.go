package console

import (
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// fail admits an attempt from key and fails it.
func fail(t *testing.T, l *signInLimiter, key string, now time.Time) {
	t.Helper()
	a, lim := l.admit(key, now)
	if lim != nil {
		t.Fatalf("%s: limited (%s, %v) before its limit", key, lim.scope, lim.wait)
	}
	a.done(now, true)
}

// TestSignInLimiterBounded: however many addresses fail, the limiter
// remembers at most Addresses of them, the most recent.
func TestSignInLimiterBounded(t *testing.T) {
	l, err := newSignInLimiter(SignInLimits{
		PerAddress: Limit{Every: time.Hour, Burst: 1},
		Global:     Limit{Every: time.Nanosecond, Burst: 1 << 20},
		Addresses:  100,
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10_000 {
		fail(t, l, fmt.Sprintf("10.0.%d.%d", i/256, i%256), t0)
		if n := l.size(); n > 100 {
			t.Fatalf("after %d addresses the limiter holds %d, want at most 100", i+1, n)
		}
	}
	// The most recent is still limited; the first was forgotten.
	if _, lim := l.admit("10.0.39.15", t0); lim == nil || lim.scope != scopeAddress {
		t.Errorf("the last address failed is not limited: %+v", lim)
	}
	if _, lim := l.admit("10.0.0.0", t0); lim != nil {
		t.Errorf("the first address is still remembered: %+v", lim)
	}
}

// TestSignInLimiterInFlight: attempts being checked hold their token, so
// attempts sent at once are not all checked against one free token; one
// that succeeds gives it back.
func TestSignInLimiterInFlight(t *testing.T) {
	l, err := newSignInLimiter(SignInLimits{PerAddress: Limit{Every: time.Minute, Burst: 2}})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := l.admit("192.0.2.1", t0)
	b, _ := l.admit("192.0.2.1", t0)
	if a == nil || b == nil {
		t.Fatal("the burst was not admitted")
	}
	if _, lim := l.admit("192.0.2.1", t0); lim == nil || lim.wait != time.Minute {
		t.Fatalf("a third attempt while two are checked: %+v, want limited for a minute", lim)
	}
	a.done(t0, false) // a success gives its token back
	c, lim := l.admit("192.0.2.1", t0)
	if lim != nil {
		t.Fatalf("after a success: limited %+v", lim)
	}
	b.done(t0, true)
	c.done(t0, true)
	if _, lim := l.admit("192.0.2.1", t0.Add(59*time.Second)); lim == nil || lim.wait != time.Second {
		t.Errorf("two failures, 59 s on: %+v, want limited for 1 s more", lim)
	}
	if _, lim := l.admit("192.0.2.1", t0.Add(time.Minute)); lim != nil {
		t.Errorf("a minute on: limited %+v", lim)
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
		if got := clientKey(tc.remote); got != tc.want {
			t.Errorf("clientKey(%q) = %q, want %q", tc.remote, got, tc.want)
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
		if got := waitWords(tc.d); got != tc.words {
			t.Errorf("waitWords(%v) = %q, want %q", tc.d, got, tc.words)
		}
		if got := retryAfter(tc.d); got != tc.ra {
			t.Errorf("retryAfter(%v) = %q, want %q", tc.d, got, tc.ra)
		}
	}
}
