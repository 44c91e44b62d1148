package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/example/personaldata/cmd/personaldatad/selfservice"
	"github.com/example/personaldata/store"
)

func TestDurabilityFlag(t *testing.T) {
	for _, c := range []struct {
		name    string
		env     string // PERSONALDATA_DURABILITY, when set
		args    []string
		want    store.Durability
		wantErr string
	}{
		{name: "default", want: store.DurabilityFull},
		{name: "full", args: []string{"-durability", "full"}, want: store.DurabilityFull},
		{name: "normal", args: []string{"-durability", "normal"}, want: store.DurabilityNormal},
		{name: "from the environment", env: "normal", want: store.DurabilityNormal},
		{name: "the flag over the environment", env: "normal", args: []string{"-durability", "full"}, want: store.DurabilityFull},
		{name: "unknown", args: []string{"-durability", "fast"}, wantErr: "-durability"},
		{name: "normal on MongoDB", args: []string{"-durability", "normal", "-mongo-uri", "mongodb://db.example.test"}, wantErr: "embedded store"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.env != "" {
				t.Setenv("PERSONALDATA_DURABILITY", c.env)
			}
			got, err := parseFlags(c.args)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("parseFlags(%q): %v, want an error about %q", c.args, err, c.wantErr)
				}
				return
			}
			if err != nil || got.durability != c.want {
				t.Fatalf("parseFlags(%q): durability %q, %v; want %q", c.args, got.durability, err, c.want)
			}
		})
	}
}

// TestHelpExitsZero: -h and -help print the usage on stdout, naming each
// flag's variable, and exit 0; an unknown flag exits 1 with one line.
func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"-help"}, {"--help"}, {"restore", "-h"}} {
		var stdout, stderr bytes.Buffer
		if code := runMain(context.Background(), args, &stdout, &stderr); code != 0 {
			t.Errorf("%q: exit %d, stderr %q", args, code, stderr.String())
		}
		for _, want := range []string{"Usage: personaldatad", "-grpc-addr", "PERSONALDATA_GRPC_ADDR", "-drain-delay"} {
			if !strings.Contains(stdout.String(), want) {
				t.Errorf("%q: the usage lacks %q:\n%s", args, want, stdout.String())
			}
		}
		if stderr.Len() != 0 {
			t.Errorf("%q: stderr %q", args, stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := runMain(context.Background(), []string{"-grpc-adr", "x"}, &stdout, &stderr); code != 1 ||
		strings.Count(stderr.String(), "\n") != 1 || !strings.Contains(stderr.String(), "-grpc-adr") || !strings.Contains(stderr.String(), "personaldatad -h") {
		t.Errorf("an unknown flag: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}

// TestHelpShowsNoVariableValues: the usage shows the built-in defaults, not
// the environment's values, which may be secrets (a MongoDB URI's password).
func TestHelpShowsNoVariableValues(t *testing.T) {
	t.Setenv("PERSONALDATA_MONGO_URI", "mongodb://pd:hunter2@db.example.test")
	_, err := parseFlags([]string{"-h"})
	var h *helpRequested
	if !errors.As(err, &h) || strings.Contains(h.usage, "hunter2") || !strings.Contains(h.usage, "PERSONALDATA_MONGO_URI") {
		t.Fatalf("-h with a URI in the environment: %v", err)
	}
	// The variable is still read.
	if c, err := parseFlags(nil); err != nil || c.mongoURI != "mongodb://pd:hunter2@db.example.test" {
		t.Fatalf("PERSONALDATA_MONGO_URI: %q, %v", c.mongoURI, err)
	}
}

// TestEnvironmentVariables: every flag but -version reads its variable, the
// flag wins, and a variable that cannot be read is an error naming it.
func TestEnvironmentVariables(t *testing.T) {
	t.Setenv("PERSONALDATA_GRPC_ADDR", ":1")
	t.Setenv("PERSONALDATA_DRAIN_DELAY", "7s")
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")
	c, err := parseFlags([]string{"-drain-delay", "3s"})
	if err != nil || c.grpcAddr != ":1" || c.drainDelay != 3*time.Second || c.otlpEndpoint != "http://collector:4317" {
		t.Fatalf("parseFlags: %+v, %v", c, err)
	}
	t.Setenv("PERSONALDATA_SHUTDOWN_TIMEOUT", "soon")
	if _, err := parseFlags(nil); err == nil || !strings.Contains(err.Error(), "PERSONALDATA_SHUTDOWN_TIMEOUT") {
		t.Fatalf("an unreadable duration: %v", err)
	}
}

// TestUnknownVariablesWarned: a misspelt PERSONALDATA_ variable is warned
// about at start, one line naming it (never its value) and the variable it
// was likely meant to be; known variables and other programs' are not.
func TestUnknownVariablesWarned(t *testing.T) {
	t.Setenv("PERSONALDATA_DURABILTY", "normal-secret")
	t.Setenv("PERSONALDATA_COLOUR", "blue-secret")
	t.Setenv("PERSONALDATA_DURABILITY", "full")
	t.Setenv("PERSONALDATA_MASTER_KEYS", "{}")
	t.Setenv("PERSONALDATA_TEST_MONGO_URI", "mongodb://x")
	c, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	log := newLogger(&logs, slog.LevelInfo)
	for _, u := range c.unknownEnv {
		u.warn(log)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 || strings.Contains(logs.String(), "secret") ||
		!strings.Contains(lines[0], `"variable":"PERSONALDATA_COLOUR"`) || strings.Contains(lines[0], "did_you_mean") ||
		!strings.Contains(lines[1], `"variable":"PERSONALDATA_DURABILTY","did_you_mean":"PERSONALDATA_DURABILITY"`) ||
		!strings.Contains(lines[1], `"level":"WARN"`) {
		t.Fatalf("warnings:\n%s", logs.String())
	}
}

// TestDurationsLoggedInMilliseconds: a duration is logged as milliseconds,
// a number under a key naming the unit, not as nanoseconds.
func TestDurationsLoggedInMilliseconds(t *testing.T) {
	var logs bytes.Buffer
	newLogger(&logs, slog.LevelInfo).Info("draining", slog.Duration("delay", 5*time.Second), slog.Duration("took", 1234567*time.Nanosecond))
	if s := logs.String(); !strings.Contains(s, `"delay_ms":5000,`) || !strings.Contains(s, `"took_ms":1.235`) {
		t.Fatalf("logged %s", s)
	}
}

// TestSelfServiceOIDCFlags: strong sign-in needs the page; its secret comes
// from a file or the environment, never from a flag's value; the scopes
// are words.
func TestSelfServiceOIDCFlags(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "oidc-secret")
	if err := os.WriteFile(secretFile, []byte("from-the-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	page := []string{"-self-service-addr", "127.0.0.1:0", "-self-service-oidc-issuer", "https://broker.example.test", "-self-service-oidc-client-id", "pd"}
	for _, c := range []struct {
		name, env, wantSecret, wantErr string
		args                           []string
	}{
		{name: "off by default"},
		{name: "without the page", args: []string{"-self-service-oidc-issuer", "https://broker.example.test"}, wantErr: "-self-service-addr"},
		{name: "secret in the environment", env: "from-the-env", args: page, wantSecret: "from-the-env"},
		{name: "secret file over the environment", env: "from-the-env", args: append(slices.Clone(page), "-self-service-oidc-client-secret-file", secretFile), wantSecret: "from-the-file"},
		{name: "missing secret file", args: append(slices.Clone(page), "-self-service-oidc-client-secret-file", filepath.Join(dir, "none")), wantErr: "-self-service-oidc-client-secret-file"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(oidcSecretEnv, c.env)
			got, err := parseFlags(c.args)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("parseFlags(%q): %v, want an error about %q", c.args, err, c.wantErr)
				}
				return
			}
			if err != nil || got.oidc.ClientSecret != c.wantSecret {
				t.Fatalf("parseFlags(%q): secret %q, %v; want %q", c.args, got.oidc.ClientSecret, err, c.wantSecret)
			}
			if got.oidc.Claim != selfservice.DefaultOIDCClaim || !slices.Equal(got.oidc.Scopes, []string{selfservice.DefaultOIDCScope}) {
				t.Errorf("claim %q, scopes %q: want the defaults", got.oidc.Claim, got.oidc.Scopes)
			}
		})
	}
}

func TestSelfServiceTrustedProxiesFlag(t *testing.T) {
	got, err := parseFlags([]string{"-self-service-trusted-proxies", "10.0.0.0/8, 192.0.2.7,::1"})
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("::1/128")}
	if !slices.Equal(got.proxies, want) {
		t.Errorf("proxies %v, want %v", got.proxies, want)
	}
	if _, err := parseFlags([]string{"-self-service-trusted-proxies", "proxy.example.test"}); err == nil || !strings.Contains(err.Error(), "-self-service-trusted-proxies") {
		t.Errorf("a host name: %v, want an error naming the flag", err)
	}
}
