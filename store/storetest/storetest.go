// Package storetest tells tests which store to run against, through the
// environment variable PERSONALDATA_TEST_MONGO_URI:
//
//   - unset: each test starts the embedded store in a folder of its own (the
//     store's embedded mode);
//   - a mongodb:// URI: that MongoDB (the store's MongoDB mode);
//   - "embedded": one embedded store started for the whole test binary and
//     reached by its URI, so that the store runs in its MongoDB mode
//     (version-guarded updates, MongoDB's indexes) on a machine without
//     MongoDB. That store is not atomic per document as MongoDB is, so the
//     tests that depend on it skip (SkipUnlessAtomic).
//
// A package that uses it calls Main from its TestMain.
package storetest

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/example/personaldata/store/embedded"
)

// Env names the variable.
const Env = "PERSONALDATA_TEST_MONGO_URI"

// embeddedAsMongo is Env's value that starts an embedded store for the binary.
const embeddedAsMongo = "embedded"

var uri string

// Main runs the tests of a package, with an embedded store for them all when
// Env says so.
func Main(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	uri = os.Getenv(Env)
	if uri != embeddedAsMongo {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "pdstore")
	if err != nil {
		fmt.Fprintln(os.Stderr, "storetest:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	srv, err := embedded.Start(context.Background(), dir, embedded.Durable)
	if err != nil {
		fmt.Fprintln(os.Stderr, "storetest:", err)
		return 1
	}
	defer srv.Close()
	uri = srv.URI()
	return m.Run()
}

// URI is the MongoDB URI to test against; empty for the embedded mode.
func URI() string { return uri }

// SkipUnlessAtomic skips a test that needs updates to be atomic per document
// when the store in its MongoDB mode runs on the embedded store, which is not.
func SkipUnlessAtomic(tb testing.TB) {
	tb.Helper()
	if os.Getenv(Env) == embeddedAsMongo {
		tb.Skip("needs atomic updates per document, which the embedded store reached by URI lacks (MongoDB has them; the embedded mode serialises writes itself)")
	}
}

// SkipInMongoMode skips a test of the embedded mode itself (its files, its
// stopping and starting).
func SkipInMongoMode(tb testing.TB) {
	tb.Helper()
	if uri != "" {
		tb.Skip("tests the embedded mode")
	}
}
