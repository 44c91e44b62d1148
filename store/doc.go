// Package store persists data subjects in MongoDB through the official driver.
// It knows documents and atomic updates, not privacy rules.
//
// Every read and write names exactly one _id: the embedded store (FerretDB v1)
// pushes down only filters of the lone _id, and scans for anything else. Keys
// that are not the _id of a subject (identity numbers, e-mail addresses) live
// in documents of their own whose _id is the key.
//
// # The store
//
// Every read and write names one `_id`: the embedded store (FerretDB v1) scans the table for any other
// filter. `TestHotPathsReadByExactID` watches every command the store sends while create, find,
// access, the purpose view, rectify and history run, and fails on any other filter. Lookups by identity number or e-mail go through key documents whose `_id` is a blind index
// (keyed HMAC) of controller and value; a key is inserted before the subject (its unique `_id` reserves it) and is
// only a hint: readers check that the subject still holds it, so a key left by an interrupted request
// is harmless and is taken over after a two-minute lease. Updates are read-modify-write with the
// version in the filter on MongoDB (atomic across replicas); on the embedded store, whose updates are
// not atomic, writes to one `_id` are serialised in-process. At start the server replaces FerretDB's own
// `_id` index (on an expression its queries never use) with a unique one on the expression they do
// use: reads by `_id` become index searches, and every write maintains one index instead of two.
//
// # Durability
//
// What the service acknowledges is on stable storage (the whole story, for operators, is in
// cmd/personaldatad/README.md). On MongoDB, writes are majority-acknowledged and journaled (`w: majority, j: true`),
// whatever the deployment's default; the embedded store's syncs are in package embedded.
//
// # Three databases and the commands of each call
//
// Three databases: `<name>` for the data, `<name>_audit` for the audit trail and `<name>_keys` for the
// wrapped data keys (each a file of its own on the embedded store). On MongoDB, grant the service's
// role only `insert` and `find` on the audit database, and back the keys database up apart from the
// data and on a shorter retention. On the embedded store writes queue in-process for each file's one
// writer (SQLite takes one at a time and otherwise makes the rest sleep in its busy handler), and the
// inserts of concurrent creates into one collection go out as one batch (group commit), as audit
// events do. `TestRoundTripsPerCall` counts the store commands of each hot call with warm caches:
//
//	| call | embedded store | MongoDB |
//	|---|---|---|
//	| CreateSubject | 4: insert keys (both lookup keys), insert data key (at the same time), insert subject, audit insert (batched) | the same |
//	| AccessSubject, GetSubjectForPurpose | 1: audit insert (batched), once the subject is held in memory (its first read: 2) | 2: find subject, audit insert |
//	| RectifySubject | 2: guarded write back, audit insert | 4: find subject (rules, keys to claim), guarded read and write back, audit insert |
//
// Tests run against a real MongoDB when `PERSONALDATA_TEST_MONGO_URI` is set. With
// `PERSONALDATA_TEST_MONGO_URI=embedded` they start one embedded store and reach it by URI, so the store
// runs its MongoDB code paths (version-guarded updates, MongoDB's indexes) on a machine without
// MongoDB; CI runs the store, service and server suites a second time that way. The five tests that
// need per-document atomicity, which only MongoDB and the embedded mode provide, skip there and say
// why.
package store
