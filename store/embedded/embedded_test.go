package embedded_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	_ "modernc.org/sqlite"

	"github.com/example/personaldata/store/embedded"
)

const dbName = "test"

// start starts a Server in dir and a driver client for it; both are closed
// at the end of the test, the client first so that Close does not wait for it.
func start(tb testing.TB, dir string) (*embedded.Server, *mongo.Database) {
	tb.Helper()
	srv, err := embedded.Start(tb.Context(), dir, embedded.Durable)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := srv.Close(); err != nil {
			tb.Error(err)
		}
	})
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := client.Disconnect(context.Background()); err != nil {
			tb.Error(err)
		}
	})
	return srv, client.Database(dbName)
}

func insert(tb testing.TB, db *mongo.Database, coll string, n int) {
	tb.Helper()
	docs := make([]any, n)
	for i := range docs {
		docs[i] = bson.D{{Key: "_id", Value: fmt.Sprintf("%s-%05d", coll, i)}, {Key: "n", Value: i}}
	}
	if _, err := db.Collection(coll).InsertMany(tb.Context(), docs); err != nil {
		tb.Fatal(err)
	}
}

// queryPlans returns, per collection of the database in dir, SQLite's plan
// for the query FerretDB issues for a find by _id
// (the Query method of FerretDB v1.24.2's SQLite backend).
func queryPlans(tb testing.TB, dir string) map[string]string {
	tb.Helper()
	conn, err := sql.Open("sqlite", "file:"+filepath.Join(dir, dbName+".sqlite")+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()

	colls := map[string]string{}
	rows, err := conn.QueryContext(tb.Context(), `SELECT name, table_name FROM _ferretdb_collections`)
	if err != nil {
		tb.Fatal(err)
	}
	for rows.Next() {
		var name, table string
		if err := rows.Scan(&name, &table); err != nil {
			tb.Fatal(err)
		}
		colls[name] = table
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		tb.Fatal(err)
	}

	plans := map[string]string{}
	for name, table := range colls {
		q := fmt.Sprintf(`EXPLAIN QUERY PLAN SELECT _ferretdb_sjson FROM %q WHERE _ferretdb_sjson->'$._id' = ? LIMIT ?`, table)
		rows, err := conn.QueryContext(tb.Context(), q, `"x"`, 1)
		if err != nil {
			tb.Fatal(err)
		}
		var details []string
		for rows.Next() {
			var id, parent, notused int
			var detail string
			if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
				tb.Fatal(err)
			}
			details = append(details, detail)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			tb.Fatal(err)
		}
		plans[name] = table + ": " + strings.Join(details, "; ")
	}
	return plans
}

// checkIndexed fails the test unless the find by _id in every one of colls
// searches the index IndexIDs creates.
func checkIndexed(t *testing.T, dir string, colls ...string) {
	t.Helper()
	plans := queryPlans(t, dir)
	for _, c := range colls {
		plan, ok := plans[c]
		if !ok {
			t.Fatalf("collection %q has no table; plans: %v", c, plans)
		}
		table, _, _ := strings.Cut(plan, ": ")
		if !strings.Contains(plan, "SEARCH") || !strings.Contains(plan, "USING INDEX "+table+"_id_unique") {
			t.Errorf("find by _id in %q does not search the _id_unique index: %s", c, plan)
		}
	}
}

func TestIndexIDsMakesFindByIDSearchTheIndex(t *testing.T) {
	dir := t.TempDir()
	srv, db := start(t, dir)
	insert(t, db, "people", 50)
	insert(t, db, "keys", 50)

	// As shipped, FerretDB scans: its own _id index is on another expression.
	for c, plan := range queryPlans(t, dir) {
		if strings.Contains(plan, "USING INDEX") {
			t.Logf("%s: FerretDB already uses an index before IndexIDs (fixed upstream?): %s", c, plan)
		}
	}

	if err := srv.IndexIDs(t.Context(), dbName); err != nil {
		t.Fatal(err)
	}
	checkIndexed(t, dir, "people", "keys")

	// The running FerretDB still finds documents through the changed schema.
	var got bson.M
	if err := db.Collection("keys").FindOne(t.Context(), bson.D{{Key: "_id", Value: "keys-00042"}}).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got["n"] != int32(42) {
		t.Errorf("got %v, want n=42", got)
	}

	// FerretDB's own _id index is gone, and the new one keeps _id unique:
	// a second insert of an _id is still a duplicate key error, alone and
	// in a batch, and stores nothing.
	_, err := db.Collection("keys").InsertOne(t.Context(), bson.D{{Key: "_id", Value: "keys-00042"}, {Key: "n", Value: -1}})
	if !mongo.IsDuplicateKeyError(err) {
		t.Errorf("insert of an existing _id: %v, want a duplicate key error", err)
	}
	_, err = db.Collection("keys").InsertMany(t.Context(), []any{bson.D{{Key: "_id", Value: "keys-new"}}, bson.D{{Key: "_id", Value: "keys-00007"}}},
		options.InsertMany().SetOrdered(false))
	if !mongo.IsDuplicateKeyError(err) {
		t.Errorf("batch with an existing _id: %v, want a duplicate key error", err)
	}
	if n, err := db.Collection("keys").CountDocuments(t.Context(), bson.D{{Key: "n", Value: -1}}); err != nil || n != 0 {
		t.Errorf("%d duplicates stored (%v)", n, err)
	}
	indexes := idIndexes(t, dir)
	if len(indexes) < 2 {
		t.Fatalf("indexes of %v: the check would check nothing", indexes)
	}
	for c, n := range indexes {
		if n != 1 {
			t.Errorf("collection %q has %d indexes on _id, want 1", c, n)
		}
	}
}

// idIndexes counts, per collection, the SQLite indexes on its table.
func idIndexes(tb testing.TB, dir string) map[string]int {
	tb.Helper()
	conn, err := sql.Open("sqlite", "file:"+filepath.Join(dir, dbName+".sqlite")+"?mode=ro")
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	rows, err := conn.QueryContext(tb.Context(), `SELECT c.name, count(i.name) FROM _ferretdb_collections c JOIN sqlite_master i ON i.type = 'index' AND i.tbl_name = c.table_name GROUP BY c.name`)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var name string
		var n int
		if err := rows.Scan(&name, &n); err != nil {
			tb.Fatal(err)
		}
		out[name] = n
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

func TestDataSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	srv, err := embedded.Start(t.Context(), dir, embedded.Durable)
	if err != nil {
		t.Fatal(err)
	}
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()))
	if err != nil {
		t.Fatal(err)
	}
	insert(t, client.Database(dbName), "people", 10)
	if err := srv.IndexIDs(t.Context(), dbName); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(client.Disconnect(t.Context()), srv.Close()); err != nil {
		t.Fatal(err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	_, db := start(t, dir)
	n, err := db.Collection("people").CountDocuments(t.Context(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	if n != 10 {
		t.Errorf("after restart: %d documents, want 10", n)
	}
	var got bson.M
	if err := db.Collection("people").FindOne(t.Context(), bson.D{{Key: "_id", Value: "people-00007"}}).Decode(&got); err != nil {
		t.Fatal(err)
	}
	checkIndexed(t, dir, "people") // the extra index is in the file, so it survives too
}

func TestIndexIDsIsIdempotent(t *testing.T) {
	dir := t.TempDir()
	srv, db := start(t, dir)
	insert(t, db, "people", 5)
	insert(t, db, "keys", 5)
	for range 2 {
		if err := srv.IndexIDs(t.Context(), dbName); err != nil {
			t.Fatal(err)
		}
	}
	checkIndexed(t, dir, "people", "keys")
}

func TestIndexIDsRejectsBadDatabase(t *testing.T) {
	dir := t.TempDir()
	srv, _ := start(t, dir)
	for _, name := range []string{"", "../x", "a/b", "missing"} {
		if err := srv.IndexIDs(t.Context(), name); err == nil {
			t.Errorf("IndexIDs(%q): no error", name)
		}
	}
	// A file created here would look like a database to FerretDB.
	if _, err := os.Stat(filepath.Join(dir, "missing.sqlite")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("IndexIDs created missing.sqlite: %v", err)
	}
}

func BenchmarkFindByID(b *testing.B) {
	const n = 20_000
	pad := strings.Repeat("x", 1000) // ~1 KB per document
	for _, indexed := range []bool{false, true} {
		b.Run(fmt.Sprintf("IndexIDs=%t", indexed), func(b *testing.B) {
			srv, db := start(b, b.TempDir())
			coll := db.Collection("people")
			docs := make([]any, n)
			for i := range docs {
				docs[i] = bson.D{{Key: "_id", Value: fmt.Sprintf("person-%05d", i)}, {Key: "pad", Value: pad}}
			}
			if _, err := coll.InsertMany(b.Context(), docs); err != nil {
				b.Fatal(err)
			}
			if indexed {
				if err := srv.IndexIDs(b.Context(), dbName); err != nil {
					b.Fatal(err)
				}
			}

			for b.Loop() {
				id := fmt.Sprintf("person-%05d", rand.IntN(n))
				if err := coll.FindOne(b.Context(), bson.D{{Key: "_id", Value: id}}).Err(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "finds/s")
		})
	}
}

// TestListensOnlyInsideItsDirectory: FerretDB v1 has no authentication, so
// the store must not be on a TCP port; its socket lives in the owner-only
// data directory.
func TestListensOnlyInsideItsDirectory(t *testing.T) {
	dir := t.TempDir()
	srv, db := start(t, dir)
	if !strings.HasPrefix(srv.URI(), "mongodb://%2F") || !strings.Contains(srv.URI(), "ferretdb.sock") {
		t.Errorf("URI %q is not the Unix socket", srv.URI())
	}
	if _, err := db.Collection("c").InsertOne(t.Context(), map[string]string{"_id": "x"}); err != nil {
		t.Fatalf("the driver cannot use the socket: %v", err)
	}
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		t.Errorf("data directory mode %v lets others reach the socket", info.Mode().Perm())
	}
}

// One server owns a data directory: a second start on it is refused until
// the first has closed.
func TestDataDirectoryHasOneOwner(t *testing.T) {
	dir := t.TempDir()
	first, err := embedded.Start(t.Context(), dir, embedded.Durable)
	if err != nil {
		t.Fatal(err)
	}
	if second, err := embedded.Start(t.Context(), dir, embedded.Durable); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		if second != nil {
			_ = second.Close()
		}
		t.Fatalf("second start on the same directory: %v, want it refused", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := embedded.Start(t.Context(), dir, embedded.Durable)
	if err != nil {
		t.Fatalf("start after the first closed: %v", err)
	}
	_ = again.Close()
}
