package store

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/example/personaldata/store/embedded"
)

// Errors callers test with errors.Is.
var (
	// ErrNotFound: no document with that _id.
	ErrNotFound = errors.New("not found")
	// ErrExists: a document with that _id exists already.
	ErrExists = errors.New("already exists")
	// ErrConflict: the document changed under us more often than we retry.
	ErrConflict = errors.New("conflicting concurrent change")
	// ErrUnavailable: the store failed to do what was asked (it could not
	// be reached in time, its disk is full or failing, it refused the
	// command): the same request may succeed later (see classify).
	ErrUnavailable = errors.New("store unavailable")
)

// Collection names.
const (
	subjectsCollection   = "subjects"
	keysCollection       = "keys"
	historyCollection    = "history"
	principalsCollection = "principals"
	agreementsCollection = "agreements"
	jobsCollection       = "jobs"
	dataKeysCollection   = "data_keys"
)

// Collection names of the audit trail.
const (
	auditEventsCollection = "audit_events"
	auditHeadsCollection  = "audit_heads"
)

// The audit trail and the data keys each have a database of their own,
// named after the main one. On MongoDB the service's role can then be
// granted only insert and find on the trail, and the keys backed up apart
// from the data they decrypt; on the embedded store each database is a file
// of its own, with a writer of its own, so appends to the trail and the
// writes of data never wait for each other.

// AuditDatabase is the name of the audit trail's database beside db.
func AuditDatabase(db string) string { return db + "_audit" }

// KeysDatabase is the name of the data keys' database beside db.
func KeysDatabase(db string) string { return db + "_keys" }

// Durability says when the store acknowledges a write.
type Durability string

const (
	// DurabilityFull acknowledges a write once it is on stable storage, so
	// that it survives a power cut: on the embedded store every commit is
	// synced, on MongoDB writes are majority-acknowledged and journaled.
	// The default.
	DurabilityFull Durability = "full"
	// DurabilityNormal acknowledges a write on the embedded store once the
	// operating system has it: it survives the process being killed, not a
	// power cut or a kernel crash, which can roll back the last
	// acknowledged writes. For development, on the embedded store only.
	DurabilityNormal Durability = "normal"
)

// ParseDurability reads a durability by its name; empty is full.
func ParseDurability(s string) (Durability, error) {
	switch d := Durability(s); d {
	case "":
		return DurabilityFull, nil
	case DurabilityFull, DurabilityNormal:
		return d, nil
	}
	return "", fmt.Errorf("durability %q: must be %q or %q", s, DurabilityFull, DurabilityNormal)
}

// Config says which database to use.
type Config struct {
	// URI of a MongoDB deployment. Empty starts the embedded store in DataDir.
	URI string
	// DataDir holds the embedded store's files.
	DataDir string
	// Database is the database name.
	Database string
	// Durability says when a write is acknowledged; empty is full.
	Durability Durability
	// Monitor, when set, sees every command the store sends (tests check
	// with it that hot paths read by exact _id).
	Monitor *event.CommandMonitor
	// TracerProvider, when set, gets a span for every command (tracing.go).
	TracerProvider trace.TracerProvider
}

// Store is the service's database.
type Store struct {
	durability Durability
	client     *mongo.Client
	uri        string
	embedded   *embedded.Server // nil when a URI was given
	subjects   *mongo.Collection
	keys       *mongo.Collection
	history    *mongo.Collection
	// jobs are the bulk operations, such as erasing a controller's subjects.
	jobs *mongo.Collection
	// dataKeys are the subjects' wrapped data keys, apart from their data.
	dataKeys *mongo.Collection
	// principals are the callers, by identity.
	principals *mongo.Collection
	// agreements are the processor agreements, one document per customer.
	agreements *mongo.Collection
	// subjectOps are the idempotency records of the changes to subjects
	// (ops.go), and opsKnown the last of each subject's that this process
	// knows to be there.
	subjectOps *mongo.Collection
	opsKnown   *knownOps
	locks      *docLocks // nil on MongoDB, which is atomic per document itself
	// subjectCache keeps the subject documents this process read or wrote
	// (cache.go); nil on MongoDB.
	subjectCache *docCache
	// The inserts of creates, batched across concurrent callers.
	subjectInserts, keyInserts, dataKeyInserts, opInserts *batcher
	// writers are the embedded store's writer slots, one per database (see
	// write); nil on MongoDB.
	writers map[string]chan struct{}
	// databases are the names of the data's, the audit trail's and the
	// keys' databases.
	databases []string
	// tracer makes a span of every wait for a sync (durable), so that a
	// trace shows where a call's time went; a no-op without tracing.
	tracer trace.Tracer

	// auditEvents are the hash-chained audit events; auditHeads hint at the
	// last seq of each chain.
	auditEvents *mongo.Collection
	auditHeads  *mongo.Collection
	// auditCheckpoints are the signed checkpoints of the Merkle tree, whose
	// leaves are in auditEvents (audittree.go).
	auditCheckpoints *mongo.Collection
}

// Open connects to MongoDB, or starts the embedded store when cfg.URI is
// empty, and prepares the collections.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Database == "" {
		cfg.Database = "personaldata"
	}
	durability, err := ParseDurability(string(cfg.Durability))
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if durability == DurabilityNormal && cfg.URI != "" {
		return nil, errors.New("store: durability normal is for the embedded store; MongoDB writes are majority-acknowledged and journaled")
	}
	s := &Store{durability: durability, databases: []string{cfg.Database, AuditDatabase(cfg.Database), KeysDatabase(cfg.Database)},
		tracer: noop.NewTracerProvider().Tracer("")}
	if cfg.TracerProvider != nil {
		s.tracer = cfg.TracerProvider.Tracer("github.com/example/personaldata/store")
	}
	uri := cfg.URI
	wc := writeconcern.Majority()
	if uri == "" {
		// Volatile at either durability: at full, every write waits for
		// embedded.Server.Sync before it returns (see write).
		srv, err := embedded.Start(ctx, cfg.DataDir, embedded.Volatile)
		if err != nil {
			return nil, fmt.Errorf("store: start embedded store: %w", err)
		}
		s.embedded = srv
		s.locks = &docLocks{seed: maphash.MakeSeed()}
		s.subjectCache = newDocCache(subjectCacheBytes)
		s.writers = map[string]chan struct{}{}
		for _, db := range s.databases {
			s.writers[db] = make(chan struct{}, 1)
		}
		uri = srv.URI()
	} else {
		// Journaled as well as majority-acknowledged, whatever the
		// deployment's writeConcernMajorityJournalDefault says.
		journal := true
		wc.Journal = &journal
	}
	opts := options.Client().ApplyURI(uri).
		SetWriteConcern(wc).
		SetTimeout(writeTimeout)
	if cfg.TracerProvider != nil {
		opts.SetMonitor(tracingMonitor(cfg.TracerProvider, cfg.Monitor))
	} else if cfg.Monitor != nil {
		opts.SetMonitor(cfg.Monitor)
	}
	if s.embedded != nil {
		// FerretDB v1 has no sessions, so no retryable writes.
		opts.SetRetryWrites(false)
	} else {
		opts.SetRetryWrites(true)
	}
	client, err := mongo.Connect(opts)
	if err != nil {
		s.closeEmbedded()
		return nil, fmt.Errorf("store: connect: %w", err)
	}
	s.client = client
	s.uri = uri
	db := client.Database(cfg.Database)
	auditDB := client.Database(AuditDatabase(cfg.Database))
	keysDB := client.Database(KeysDatabase(cfg.Database))
	s.subjects = db.Collection(subjectsCollection)
	s.keys = db.Collection(keysCollection)
	s.history = db.Collection(historyCollection)
	s.principals = db.Collection(principalsCollection)
	s.agreements = db.Collection(agreementsCollection)
	s.jobs = db.Collection(jobsCollection)
	s.subjectOps = db.Collection(subjectOpsCollection)
	s.opsKnown = newKnownOps()
	s.dataKeys = keysDB.Collection(dataKeysCollection)
	s.auditEvents = auditDB.Collection(auditEventsCollection)
	s.auditHeads = auditDB.Collection(auditHeadsCollection)
	s.auditCheckpoints = auditDB.Collection(auditCheckpointsCollection)
	s.subjectInserts = newBatcher(s, s.subjects, false)
	s.keyInserts = newBatcher(s, s.keys, true) // see ClaimKeys
	s.dataKeyInserts = newBatcher(s, s.dataKeys, false)
	s.opInserts = newBatcher(s, s.subjectOps, true) // see putOp
	for d, collections := range map[*mongo.Database][]string{
		db: {subjectsCollection, keysCollection, historyCollection, principalsCollection, agreementsCollection, jobsCollection,
			holdDeadlinesCollection, leasesCollection, notificationsCollection, notificationHeadsCollection, notificationKeysCollection, generationsCollection,
			rightsRequestsCollection, outboxCollection, outboxSentCollection, consoleSessionsCollection, selfServiceChallengesCollection, policiesCollection,
			subjectOpsCollection, breachRecordsCollection, breachSubjectsCollection},
		auditDB: {auditEventsCollection, auditHeadsCollection, auditCheckpointsCollection},
		keysDB:  {dataKeysCollection},
	} {
		if err := s.prepare(ctx, d, collections); err != nil {
			_ = s.Close(context.Background())
			return nil, err
		}
	}
	if err := s.index(ctx); err != nil {
		_ = s.Close(context.Background())
		return nil, err
	}
	if s.embedded != nil && durability == DurabilityFull {
		// The collections just made, before anything is reported started.
		if err := s.embedded.Sync(ctx, s.databases...); err != nil {
			_ = s.Close(context.Background())
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	return s, nil
}

// prepare creates the collections of db and, on the embedded store, the
// index that makes exact _id reads searches instead of scans.
func (s *Store) prepare(ctx context.Context, db *mongo.Database, collections []string) error {
	existing, err := db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("store: list collections: %w", classify(err))
	}
	have := map[string]bool{}
	for _, n := range existing {
		have[n] = true
	}
	for _, name := range collections {
		if have[name] {
			continue
		}
		if err := db.CreateCollection(ctx, name); err != nil && !isNamespaceExists(err) {
			return fmt.Errorf("store: create collection %s: %w", name, classify(err))
		}
	}
	if s.embedded != nil {
		if err := s.embedded.IndexIDs(ctx, db.Name()); err != nil {
			return fmt.Errorf("store: index embedded store: %w", err)
		}
	}
	return nil
}

// index creates, on MongoDB, the indexes of the listings and scans by
// another field than _id; requests read only by _id.
func (s *Store) index(ctx context.Context) error {
	if s.embedded != nil {
		return nil // FerretDB v1 would not use them: it scans for such filters
	}
	for _, ix := range []struct {
		c     *mongo.Collection
		field string
	}{{s.auditEvents, "tenant"}, {s.auditEvents, "principal"}, {s.subjects, "controller"}, {s.subjectOps, "at"}} {
		if _, err := ix.c.Indexes().CreateOne(ctx, mongo.IndexModel{
			Keys:    bson.D{{Key: ix.field, Value: 1}, {Key: "_id", Value: 1}},
			Options: options.Index().SetName(ix.field + "_id"),
		}); err != nil {
			return fmt.Errorf("store: index %s: %w", ix.c.Name(), classify(err))
		}
	}
	return nil
}

// Embedded reports whether the store runs in-process.
func (s *Store) Embedded() bool { return s.embedded != nil }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx, readpref.Primary()); err != nil {
		return fmt.Errorf("store: ping: %w", classify(err))
	}
	return nil
}

// Close disconnects and stops the embedded store if there is one.
func (s *Store) Close(ctx context.Context) error {
	var err error
	if s.client != nil {
		err = s.client.Disconnect(ctx)
	}
	return errors.Join(err, s.closeEmbedded())
}

func (s *Store) closeEmbedded() error {
	if s.embedded == nil {
		return nil
	}
	return s.embedded.Close()
}

// lock serialises read-modify-write of one document on the embedded store,
// whose updates are not atomic. It returns the unlock function. On MongoDB it
// does nothing: there the guard in the update filter decides.
func (s *Store) lock(collection, id string) func() {
	if s.locks == nil {
		return func() {}
	}
	return s.locks.lock(collection + "\x00" + id)
}

// write runs command, one write command on c, and returns its error as
// the driver gave it, once the write is durable. On MongoDB that is all:
// the write concern (majority, journaled) makes the write durable before it
// is acknowledged.
//
// On the embedded store it first waits for the writer slot of c's database
// (its SQLite file): SQLite takes one writer at a time and makes the others
// sleep in its busy handler (1, 2, 5, 10 ms and on), so under concurrent
// writes a write waited far longer than it took; queued here, the next
// write starts as soon as the last one is done. Reads do not queue. At full
// durability it then waits, with the slot given back, for the commit to be
// synced to stable storage (embedded.Server.Sync, shared by the writers
// that wait at the same time), so that nothing that depends on it, an
// answer or a later write, goes ahead of it. A failed or abandoned sync is
// ErrUnavailable: the write may or may not last.
func (s *Store) write(ctx context.Context, c *mongo.Collection, command func(context.Context) error) error {
	err := s.apply(ctx, c, command)
	if serr := s.durable(ctx, c.Database().Name()); serr != nil {
		return serr
	}
	return err
}

// apply is write without the wait for the sync, for a caller that waits
// for it itself (durable) once it has let go of what others wait for (a
// batch, a document's lock), or for a hint that may be lost, such as an
// audit chain's head: a later sync makes it durable, and until then a
// power cut may take it back, never past what it points to.
//
// On the embedded store the command gets a context that the caller's end
// does not cancel (bounded by writeTimeout): a write abandoned in flight
// could land after the store took it for failed, unseen by the subject
// cache and by the count of writes that the syncs go by.
func (s *Store) apply(ctx context.Context, c *mongo.Collection, command func(context.Context) error) error {
	release, err := s.writerSlot(ctx, c)
	if err != nil {
		return err
	}
	if s.embedded == nil {
		err = command(ctx)
		release()
		return err
	}
	defer s.embedded.Writing(c.Database().Name())()
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	err = command(wctx)
	release()
	return err
}

// writeTimeout bounds a write command once it is sent, as the driver's
// client timeout does.
const writeTimeout = 30 * time.Second

// durable waits until every write to the databases dbs that returned before
// the call is on stable storage: at full durability on the embedded store,
// for the sync of their logs (embedded.Server.Sync, shared by the callers
// that wait at the same time); on MongoDB the write concern did that
// already. A failed or abandoned sync is ErrUnavailable: the writes may or
// may not last.
func (s *Store) durable(ctx context.Context, dbs ...string) error {
	if s.embedded == nil || s.durability != DurabilityFull {
		return nil
	}
	ctx, span := s.tracer.Start(ctx, "sync", trace.WithAttributes(attribute.StringSlice("db.namespace", dbs)))
	defer span.End()
	if err := s.embedded.Sync(ctx, dbs...); err != nil {
		span.SetStatus(codes.Error, "sync failed")
		return fmt.Errorf("%w: a write may not last: %w", ErrUnavailable, err)
	}
	return nil
}

// Durable waits until every write that returned before the call, to any of
// the store's databases, is on stable storage. The audit trail calls it
// before an audited call answers: its own events need it, and what the
// call read, another caller may have written and not yet made durable.
func (s *Store) Durable(ctx context.Context) error {
	if err := s.durable(ctx, s.databases...); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// writerSlot waits for the embedded store's writer slot of c's database
// and returns the function that gives it back; on MongoDB it returns at
// once.
func (s *Store) writerSlot(ctx context.Context, c *mongo.Collection) (func(), error) {
	writer := s.writers[c.Database().Name()]
	if writer == nil {
		return func() {}, nil
	}
	select {
	case writer <- struct{}{}:
		return func() { <-writer }, nil
	case <-ctx.Done():
		return nil, classify(ctx.Err())
	}
}

// maxUpdateAttempts bounds the retries of an update that lost a race on
// MongoDB; each attempt re-reads and re-applies the change.
const maxUpdateAttempts = 16

// versioned is a document whose version guards its updates.
type versioned[D any] interface {
	*D
	version() *int64
}

// update reads the document with this _id, lets change modify it and writes
// it back with its version one higher, atomically: on MongoDB the version
// read is in the filter, so a concurrent writer makes the write miss and the
// change is re-applied to what that writer wrote; on the embedded store the
// document is locked from the read to the write.
func update[D any, P versioned[D]](ctx context.Context, s *Store, c *mongo.Collection, id string, change func(P) error) (P, error) {
	for range maxUpdateAttempts {
		doc, done, err := tryUpdate(ctx, s, c, id, change)
		if err == nil && done {
			if err := s.durable(ctx, c.Database().Name()); err != nil {
				return nil, fmt.Errorf("store: update %s: %w", c.Name(), err)
			}
		}
		if err != nil || done {
			return doc, err
		}
	}
	return nil, fmt.Errorf("store: update %s: %w", c.Name(), ErrConflict)
}

func tryUpdate[D any, P versioned[D]](ctx context.Context, s *Store, c *mongo.Collection, id string, change func(P) error) (P, bool, error) {
	unlock := s.lock(c.Name(), id)
	defer unlock()
	doc := P(new(D))
	if err := s.read(ctx, c, id, doc, true); err != nil {
		return nil, false, fmt.Errorf("store: update %s: %w", c.Name(), err)
	}
	read := *doc.version()
	if err := change(doc); err != nil {
		return nil, false, err
	}
	*doc.version() = read + 1
	// Durable in update, once the lock is free for the next change.
	ok, err := s.replaceApplied(ctx, c, id, bson.D{{Key: "v", Value: read}}, doc)
	s.wrote(c, id, doc, ok && err == nil)
	if err != nil {
		return nil, false, fmt.Errorf("store: update %s: %w", c.Name(), err)
	}
	return doc, ok, nil
}

// replace overwrites the document with this _id, provided it still matches
// guard (fields read before the change). On MongoDB the guard is part of the
// filter, so it holds across replicas. The embedded store pushes down only a
// filter of the lone _id and would scan for anything more, so there the caller
// holds the document's lock and has checked the guard under it.
func (s *Store) replace(ctx context.Context, c *mongo.Collection, id string, guard bson.D, doc any) (bool, error) {
	ok, err := s.replaceApplied(ctx, c, id, guard, doc)
	if serr := s.durable(ctx, c.Database().Name()); serr != nil {
		return false, serr
	}
	return ok, err
}

// replaceApplied is replace without the wait for the sync (apply).
func (s *Store) replaceApplied(ctx context.Context, c *mongo.Collection, id string, guard bson.D, doc any) (bool, error) {
	filter := bson.D{{Key: "_id", Value: id}}
	if s.locks == nil {
		filter = append(filter, guard...)
	}
	var res *mongo.UpdateResult
	err := s.apply(ctx, c, func(ctx context.Context) (err error) {
		res, err = c.ReplaceOne(ctx, filter, doc)
		return err
	})
	if err != nil {
		return false, classify(err)
	}
	return res.MatchedCount == 1, nil
}

// remove deletes the document with this _id if it still matches guard, as
// replace does.
func (s *Store) remove(ctx context.Context, c *mongo.Collection, id string, guard bson.D) error {
	filter := bson.D{{Key: "_id", Value: id}}
	if s.locks == nil {
		filter = append(filter, guard...)
	}
	return classify(s.write(ctx, c, func(ctx context.Context) error {
		_, err := c.DeleteOne(ctx, filter)
		return err
	}))
}

// get reads the document with this _id into out.
func get(ctx context.Context, c *mongo.Collection, id string, out any) error {
	err := c.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(out)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return ErrNotFound
	}
	return classify(err)
}

// listAfter returns up to limit documents matching filter whose _id comes
// after the given one (all when it is empty), in _id order. It is for the
// rare listings that cannot be exact _id reads (operators' listings, bulk
// operations, key rotation): on the embedded store every call scans the
// collection, since FerretDB v1 pushes down only a filter of the lone _id.
func listAfter[D any](ctx context.Context, c *mongo.Collection, filter bson.D, after string, limit int) ([]*D, error) {
	if after != "" {
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$gt", Value: after}}})
	}
	cur, err := c.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("store: list %s: %w", c.Name(), classify(err))
	}
	var out []*D
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("store: list %s: %w", c.Name(), classify(err))
	}
	return out, nil
}

// each hands fn the documents matching filter in _id order, through one
// cursor: for the rare reads that go through many documents and must not
// hold them all (a breach assessment). An error of fn stops it and is
// returned as it is. On the embedded store it is one scan.
func each[D any](ctx context.Context, c *mongo.Collection, filter bson.D, fn func(*D) error) error {
	cur, err := c.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return fmt.Errorf("store: scan %s: %w", c.Name(), classify(err))
	}
	defer cur.Close(context.WithoutCancel(ctx))
	for cur.Next(ctx) {
		doc := new(D)
		if err := cur.Decode(doc); err != nil {
			return fmt.Errorf("store: scan %s: %w", c.Name(), err)
		}
		if err := fn(doc); err != nil {
			return err
		}
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("store: scan %s: %w", c.Name(), classify(err))
	}
	return nil
}

// identified is a document that knows its _id.
type identified[D any] interface {
	*D
	docID() string
}

func (e *AuditEvent) docID() string   { return e.ID }
func (n *Notification) docID() string { return n.ID }

// seqRange returns the documents whose _ids are idOf(from), idOf(from+1),
// ..., up to limit, stopping at the first that is missing: a chain or a
// queue read in order. On the embedded store, which would scan for a range,
// that is one exact _id read each; on MongoDB one walk over the _id index.
func seqRange[D any, P identified[D]](ctx context.Context, s *Store, c *mongo.Collection, idOf func(int64) string, from int64, limit int) ([]P, error) {
	from = max(from, 1)
	var out []P
	if s.embedded != nil {
		for seq := from; len(out) < limit; seq++ {
			doc := P(new(D))
			err := get(ctx, c, idOf(seq), doc)
			if errors.Is(err, ErrNotFound) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("store: read %s: %w", c.Name(), err)
			}
			out = append(out, doc)
		}
		return out, nil
	}
	filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: idOf(from)}, {Key: "$lt", Value: idOf(from + int64(limit))}}}}
	cur, err := c.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("store: read %s: %w", c.Name(), classify(err))
	}
	var docs []*D
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("store: read %s: %w", c.Name(), classify(err))
	}
	for i, d := range docs {
		if P(d).docID() != idOf(from+int64(i)) {
			break // a gap: what follows it is not in order
		}
		out = append(out, P(d))
	}
	return out, nil
}

// insert adds doc; a document with the same _id is ErrExists.
func (s *Store) insert(ctx context.Context, c *mongo.Collection, doc any) error {
	err := s.write(ctx, c, func(ctx context.Context) error {
		_, err := c.InsertOne(ctx, doc)
		return err
	})
	if mongo.IsDuplicateKeyError(err) {
		return ErrExists
	}
	return classify(err)
}

// classify is the store's one classification of its failures: every error
// that says the store failed to do what was asked is marked ErrUnavailable,
// so that the service answers UNAVAILABLE with RetryInfo, whatever the call.
// That is the default: network errors, timeouts, a primary stepping down, and
// every command or write error of the server (a full disk, an I/O error,
// SQLite's "database or disk is full", which FerretDB answers as
// InternalError) except those that mean something to the caller. Left as
// they are:
//   - nil, and the store's own answers (ErrNotFound, ErrExists, ErrConflict,
//     or ErrUnavailable already);
//   - the caller's cancellation (context.Canceled: the caller went away);
//   - a duplicate key and a missing document, which the callers map;
//   - a document the driver cannot encode or decode, and a call the driver
//     refuses as malformed: programming errors, which stay INTERNAL.
func classify(err error) error {
	if err == nil || !storeFailure(err) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// storeFailure reports whether err is a failure of the store (see classify).
func storeFailure(err error) bool {
	switch {
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrNotFound), errors.Is(err, ErrExists), errors.Is(err, ErrConflict):
		return false
	case errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, mongo.ErrNoDocuments), mongo.IsDuplicateKeyError(err):
		return false
	}
	return !programmingError(err)
}

// programmingError reports whether err says the request itself was wrong:
// a value the driver cannot encode or decode, or an argument it refuses
// before sending anything. The same call would fail again however long the
// caller waited.
func programmingError(err error) bool {
	var (
		marshal  mongo.MarshalError
		invalid  mongo.InvalidArgumentError
		decode   *bson.DecodeError
		decoder  bson.ValueDecoderError
		encoder  bson.ValueEncoderError
		transErr bson.TransitionError
	)
	return errors.As(err, &marshal) || errors.As(err, &invalid) || errors.As(err, &decode) ||
		errors.As(err, &decoder) || errors.As(err, &encoder) || errors.As(err, &transErr) ||
		errors.Is(err, bson.ErrDecodeToNil)
}

func isNamespaceExists(err error) bool {
	var ce mongo.CommandError
	return errors.As(err, &ce) && ce.Code == 48
}

// docLocks is a fixed set of mutexes striped by key: bounded memory, and two
// keys rarely share a stripe.
type docLocks struct {
	seed    maphash.Seed
	stripes [1024]sync.Mutex
}

func (l *docLocks) lock(key string) func() {
	m := &l.stripes[maphash.String(l.seed, key)%uint64(len(l.stripes))]
	m.Lock()
	return m.Unlock
}

// URI is the MongoDB URI in use: the configured one, or the embedded store's.
func (s *Store) URI() string { return s.uri }

// Durability says when the store acknowledges a write.
func (s *Store) Durability() Durability { return s.durability }

// OnSyncFailed has f called, at once, when the embedded store's sync fails
// (SyncFailed is then not nil); never on MongoDB.
func (s *Store) OnSyncFailed(f func()) {
	if s.embedded != nil {
		s.embedded.OnFailure(f)
	}
}

// SyncFailed returns, on the embedded store, the error of the sync that
// failed: from then on no write can be made durable, and only a restart,
// which recovers what the logs hold, helps. Nil on MongoDB and while the
// syncs succeed.
func (s *Store) SyncFailed() error {
	if s.embedded == nil {
		return nil
	}
	if err := s.embedded.Failed(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}
