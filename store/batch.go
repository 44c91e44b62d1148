package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// batcher writes the inserts into one collection that arrive together in
// one InsertMany (group commit): the first caller writes what is queued and
// hands what queued meanwhile to a goroutine, which writes it as the next
// batch. Concurrent creates then cost the store one command per collection
// and round, not one per subject; each document still succeeds or fails on
// its own (the insert is unordered), so a duplicate _id is ErrExists for
// that document only.
type batcher struct {
	s    *Store
	coll *mongo.Collection
	// unsynced: insert returns before the batch is synced (see newBatcher).
	unsynced bool

	mu    sync.Mutex
	queue []*batchedInsert
	busy  bool // a caller or goroutine is writing batches
}

// batchedInsert is one caller's documents, waiting in the queue.
type batchedInsert struct {
	docs []any
	errs []error       // per document, set when done is closed
	done chan struct{} // closed when errs is set
}

// maxBatchDocs bounds one InsertMany (the driver splits larger ones, but
// a bounded batch also bounds the wait of its first caller).
const maxBatchDocs = 256

// newBatcher batches the inserts into c. With unsynced, insert returns once
// the batch is written, before its sync: for documents that only a later
// write to the same database depends on, which lands on disk after them (a
// write-ahead log recovers a prefix of its commits), and whose caller
// answers only after every database is synced (Store.Durable).
func newBatcher(s *Store, c *mongo.Collection, unsynced bool) *batcher {
	return &batcher{s: s, coll: c, unsynced: unsynced}
}

// insert adds docs, in a batch with those of concurrent callers, and returns
// each one's outcome, durable: nil, ErrExists, or the store's error. A
// canceled ctx stops the wait, not the write. The batch is written with
// apply, and each caller waits for the sync itself, so that the next batch
// is written while this one's is synced.
func (b *batcher) insert(ctx context.Context, docs ...any) ([]error, error) {
	p := &batchedInsert{docs: docs, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, p)
	lead := !b.busy
	b.busy = true
	b.mu.Unlock()
	if lead {
		b.drain(ctx, true)
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		return nil, classify(ctx.Err())
	}
	if b.unsynced {
		return p.errs, nil
	}
	if err := b.s.durable(ctx, b.coll.Database().Name()); err != nil {
		return nil, fmt.Errorf("insert into %s: %w", b.coll.Name(), err)
	}
	return p.errs, nil
}

// drain writes batches until the queue is empty; the caller that found no
// writer busy (first) writes one batch, which holds its own documents, and
// leaves the rest to a goroutine, so that its latency does not grow with the
// load.
func (b *batcher) drain(ctx context.Context, first bool) {
	for {
		b.mu.Lock()
		var batch []*batchedInsert
		n := 0
		for len(b.queue) > 0 && (n == 0 || n+len(b.queue[0].docs) <= maxBatchDocs) {
			n += len(b.queue[0].docs)
			batch = append(batch, b.queue[0])
			b.queue = b.queue[1:]
		}
		if len(batch) == 0 {
			b.busy = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		b.write(ctx, batch)
		if first {
			go b.drain(context.WithoutCancel(ctx), false)
			return
		}
	}
}

// write inserts a batch and gives every caller its outcome. It is detached
// from the leader's cancellation, since the batch carries other callers'
// documents, but bounded.
func (b *batcher) write(ctx context.Context, batch []*batchedInsert) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var docs []any
	for _, p := range batch {
		docs = append(docs, p.docs...)
		p.errs = make([]error, len(p.docs))
	}
	errs := b.insertMany(ctx, docs)
	i := 0
	for _, p := range batch {
		i += copy(p.errs, errs[i:])
		close(p.done)
	}
}

// insertMany inserts docs unordered and returns each one's outcome.
func (b *batcher) insertMany(ctx context.Context, docs []any) []error {
	errs := make([]error, len(docs))
	fail := func(err error) []error {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	err := b.s.apply(ctx, b.coll, func(ctx context.Context) error {
		_, err := b.coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
		return err
	})
	if err == nil {
		return errs
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		// Which documents were written is unknown.
		return fail(fmt.Errorf("insert into %s: %w", b.coll.Name(), classify(err)))
	}
	for _, we := range bwe.WriteErrors {
		if we.Index < 0 || we.Index >= len(docs) {
			return fail(fmt.Errorf("insert into %s: %w", b.coll.Name(), classify(err)))
		}
		if mongo.IsDuplicateKeyError(we) {
			errs[we.Index] = ErrExists
		} else {
			errs[we.Index] = fmt.Errorf("insert into %s: %w", b.coll.Name(), classify(we))
		}
	}
	return errs
}

// insertOne is insert of a single document: nil, ErrExists, or the error.
func (b *batcher) insertOne(ctx context.Context, doc any) error {
	errs, err := b.insert(ctx, doc)
	if err != nil {
		return err
	}
	return errs[0]
}
