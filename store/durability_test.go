package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/storetest"
)

func TestParseDurability(t *testing.T) {
	for _, c := range []struct {
		in   string
		want store.Durability
		ok   bool
	}{
		{"", store.DurabilityFull, true},
		{"full", store.DurabilityFull, true},
		{"normal", store.DurabilityNormal, true},
		{"FULL", "", false},
		{"off", "", false},
	} {
		got, err := store.ParseDurability(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseDurability(%q) = %q, %v", c.in, got, err)
		}
	}
}

// Durability normal is the embedded store's: a MongoDB deployment is asked
// for majority, journaled writes whatever the flag says, so the store
// refuses the combination rather than pretend.
func TestDurabilityNormalIsForTheEmbeddedStore(t *testing.T) {
	_, err := store.Open(context.Background(), store.Config{URI: "mongodb://db.example.test", Durability: store.DurabilityNormal})
	if err == nil || !strings.Contains(err.Error(), "embedded store") {
		t.Fatalf("Open with a URI and durability normal: %v", err)
	}
}

// The embedded store at either durability takes writes and reads them back;
// Durable returns once what was written is synced.
func TestEmbeddedDurabilities(t *testing.T) {
	storetest.SkipInMongoMode(t)
	for _, d := range []store.Durability{store.DurabilityFull, store.DurabilityNormal} {
		t.Run(string(d), func(t *testing.T) {
			ctx := context.Background()
			s, err := store.Open(ctx, store.Config{DataDir: t.TempDir(), Database: "durability", Durability: d})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close(ctx)
			if s.Durability() != d {
				t.Errorf("Durability() = %q, want %q", s.Durability(), d)
			}
			sub := &store.Subject{ID: "subject-1", Version: 1, Controller: "company"}
			if err := s.InsertSubject(ctx, sub); err != nil {
				t.Fatal(err)
			}
			if err := s.Durable(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := s.GetSubject(ctx, sub.ID); err != nil {
				t.Fatal(err)
			}
		})
	}
}
