package store

// SetSnapshotHook sets the embedded store's snapshot hook
// (embedded.Server.SetSnapshotHook): for the tests of this package.
func SetSnapshotHook(s *Store, f func(db string)) { s.embedded.SetSnapshotHook(f) }
