package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/storetest"
)

// A snapshot taken while writers go on is one instant across the three
// databases: each writer writes item i to the data, then the audit trail,
// then the keys, one after the other, so in any instant an item in a later
// database is in the earlier ones too. Copies made from per-database
// snapshots taken at different moments break that (keys fixed after data).
// The views of the three files are opened microseconds apart, which writers
// rarely fall between: a hook sleeps 50 ms after each view is fixed, so
// that without the barrier (every writer slot held while the views are
// opened) many items would be written between them and the test fails.
func TestSnapshotUnderConcurrentWrites(t *testing.T) {
	storetest.SkipInMongoMode(t)
	ctx := context.Background()
	dir := t.TempDir()
	s, err := store.Open(ctx, store.Config{DataDir: filepath.Join(dir, "data"), Database: "snap"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	dbs := s.Databases()
	var opened atomic.Int64
	store.SetSnapshotHook(s, func(db string) {
		opened.Add(1)
		if db != dbs[len(dbs)-1] {
			time.Sleep(50 * time.Millisecond)
		}
	})

	var stop atomic.Bool
	var wg sync.WaitGroup
	var written atomic.Int64
	for w := range 4 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				id := fmt.Sprintf("w%d-%05d", w, i)
				if err := s.InsertSubject(ctx, &store.Subject{ID: id, Version: 1, Controller: "company"}); err != nil {
					t.Error(err)
					return
				}
				if err := s.SetAuditHead(ctx, id, 1, "h"); err != nil {
					t.Error(err)
					return
				}
				if err := s.InsertDataKey(ctx, &store.DataKey{ID: id, Version: 1, KeyVersion: 1, Wrapped: []byte("k")}); err != nil {
					t.Error(err)
					return
				}
				written.Add(1)
			}
		})
	}
	defer func() { stop.Store(true); wg.Wait() }()

	for round := range 3 {
		time.Sleep(150 * time.Millisecond)
		before := written.Load()
		sn, err := s.Snapshot(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		out := t.TempDir()
		var pages int
		for _, db := range s.Databases() {
			if err := sn.CopyTo(ctx, db, filepath.Join(out, db+".sqlite"), func(done, total int) { pages = total }); err != nil {
				t.Fatal(err)
			}
		}
		if err := sn.Close(); err != nil {
			t.Fatal(err)
		}
		data := ids(t, filepath.Join(out, "snap.sqlite"), "subjects")
		heads := ids(t, filepath.Join(out, "snap_audit.sqlite"), "audit_heads")
		keys := ids(t, filepath.Join(out, "snap_keys.sqlite"), "data_keys")
		for id := range keys {
			if !heads[id] {
				t.Errorf("round %d: %s has a data key but no audit head in the snapshot", round, id)
			}
		}
		for id := range heads {
			if !data[id] {
				t.Errorf("round %d: %s has an audit head but no subject in the snapshot", round, id)
			}
		}
		if int64(len(keys)) < before || len(data) > len(keys)+4 {
			t.Errorf("round %d: %d subjects, %d heads, %d keys; %d items were done before the snapshot", round, len(data), len(heads), len(keys), before)
		}
		t.Logf("round %d: %d subjects, %d heads, %d keys (%d pages in the keys file)", round, len(data), len(heads), len(keys), pages)
	}
	stop.Store(true)
	wg.Wait()
	if written.Load() == 0 {
		t.Fatal("no writes ran")
	}
	if opened.Load() != 3*int64(len(dbs)) {
		t.Errorf("the snapshot hook ran %d times, want %d", opened.Load(), 3*len(dbs))
	}
}

// ids reads the _ids of a collection straight from a copied SQLite file.
func ids(t *testing.T, path, collection string) map[string]bool {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var table string
	if err := db.QueryRow(`SELECT table_name FROM _ferretdb_collections WHERE name = ?`, collection).Scan(&table); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	rows, err := db.Query(fmt.Sprintf(`SELECT _ferretdb_sjson->>'$._id' FROM "%s"`, table))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		out[id] = true
	}
	return out
}
