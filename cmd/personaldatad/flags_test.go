package main

import (
	"strings"
	"testing"

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
