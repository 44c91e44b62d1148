package signinlimit

import (
	"fmt"
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
