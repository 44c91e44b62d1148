// Package embedded runs FerretDB v1 with its SQLite handler in-process, so
// that the service can use the real MongoDB driver without a MongoDB server.
//
// FerretDB's own _id index is built on an expression its queries do not use,
// so reads by _id scan the whole table; IndexIDs adds the index they do use.
// FerretDB v1 also applies updates non-atomically, pushes down only filters
// that are exactly {_id: ...}, and lacks transactions and TTL indexes; the
// store package is written around those limits (see its package comment).
//
// # Durability
//
// What the service acknowledges is on stable storage: with `-durability full`, the default, a power
// cut or a kernel crash loses nothing acknowledged, and leaves no acknowledged erasure undone.
//
//   - MongoDB: writes are majority-acknowledged and journaled (`w: majority, j: true`), whatever
//     the deployment's default.
//   - The embedded store: SQLite runs in WAL mode with `synchronous=NORMAL`, and the store syncs the
//     write-ahead logs itself (`store/embedded/sync.go`): a write returns once its database's log is
//     synced (fdatasync), so whatever follows it, a write that depends on it or the answer, comes after
//     it on disk too. Before a call answers, every database is synced: by the audit trail's append, or,
//     for a call that appends no event, by the audit interceptor; so what a call read, which another
//     caller may have written a moment before, is durable as well. The callers that wait at the same time share
//     one sync per database file (group commit; the first caller runs the sync, the next round goes to
//     a goroutine), and a database with nothing new since its last sync is not synced again. That is
//     as durable as SQLite's `synchronous=FULL`, which syncs inside each commit while holding the
//     file's one write lock: recovery replays the log's frames up to the last commit whose checksums
//     chain from its header, SQLite syncs that header whenever it starts the log anew, and a sync made
//     after a commit returned covers its frames. A sync that fails makes every later write and audited
//     call fail (UNAVAILABLE), with no second fsync, since the kernel may have dropped the pages it
//     could not write and a second one could pass for them; the server is then neither ready nor live
//     (`/livez` 503), so that the orchestrator restarts it, and the restart recovers what the logs
//     hold. The power-cut test's `sync-failure` shows it.
//   - Files: the key file and the first operator's token are written through a synced temporary
//     file renamed into place, and the directory synced (`store/durablefile`); the data directory's
//     own entry is synced when it is made. A start cut between storing the first operator and moving
//     its token file into place moves it at the next start.
//   - One owner: a server takes a lock on `personaldatad.lock` in the data directory; a second one
//     on the same directory is refused. The store relies on it: the owning process serialises the
//     writes of each document, and keeps the subject documents it read or wrote in memory (64 MiB,
//     least recently used out first), so that reading a subject it holds costs no store command.
//
// `-durability normal` (`PERSONALDATA_DURABILITY=normal`, embedded store only) leaves out the
// syncs: a write is acknowledged once the operating system has it. It survives the process being
// killed, not a power cut or a kernel crash, which can take back the last acknowledged writes
// (subjects created, rectifications, erasures: an erased person can come back, consent withdrawals,
// rights-request steps, and the audit events of reads already answered) and bring the three database
// files back to different points in time (a subject whose data key was lost cannot be read again).
// For development only; the server logs a warning at start. The power-cut test
// shows both.
package embedded
