package store

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// The idempotency records of the changes to subjects live in a collection
// of their own, keyed by (subject, key), as payment APIs keep theirs: a
// change costs the same however many came before it, and a record stays
// for the whole idempotency window however many changes come between.
//
// Neither store can write a subject and a record of another collection in
// one step (the embedded store has no transactions), so one protocol,
// exact across crashes on both, keeps the invariant
//
//	every change applied under a key, within the window, is in the
//	collection or is its subject's last_op
//
// - the subject document holds only the last op applied to it (LastOp),
// written in the same document update as the change, so atomically;
// - once that update succeeded, the op is written into the collection
// (UpdateSubject; without waiting for its sync: see putOp);
// - a change under a key, inside the update (under the document's lock on
// the embedded store, re-run on a version conflict on MongoDB), looks its
// key up (FindSubjectOp) and, before it overwrites the document's last_op,
// makes sure that op is in the collection, writing it there when a crash
// (or a failed write) came between the subject's update and the op's.
//
// A retry is then found however many changes came between: in last_op, or
// in the collection.

// subjectOpsCollection holds the idempotency records of subjects' changes,
// in the subjects' database: a write to the subjects that is synced makes
// the op records written before it durable too (one log per database, and
// a log recovers a prefix of its commits).
const subjectOpsCollection = "subject_ops"

// subjectOp is a document of subjectOpsCollection. It holds no personal
// value: the key is hashed, the fingerprint keyed.
type subjectOp struct {
	ID          string `bson:"_id"` // the subject's id, "/", the key's hash
	Fingerprint []byte `bson:"fp"`
	Result      int64  `bson:"result"`
	At          int64  `bson:"at"` // Unix ns; the sweeper removes it after the window
}

func subjectOpID(subjectID, key string) string { return subjectID + "/" + key }

// OpMemo lets a lookup made before an update (to answer a retry before any
// other check) stand inside the update while the subject is at the version
// it was made at: no change was applied to it since, so the key's absence,
// and the last op's presence in the collection, still hold.
type OpMemo struct {
	valid   bool
	id, key string
	version int64
	op      *Op
}

// live reports whether op counts: within the window (since is its start,
// Unix ns). Ops recorded before they had a time (0) count.
func live(op *Op, since int64) bool { return op != nil && (op.At == 0 || op.At >= since) }

// FindSubjectOp returns the op recorded for sub under key (a hash) at or
// after since, or nil: sub's create op, its last op, its legacy in-document
// ops, or the collection. It is meant for the change function of
// UpdateSubject, where sub is the document about to be replaced: there it
// also makes sure that sub's last op, which the change will overwrite, is
// in the collection (see the protocol above). A lookup outside an update
// answers whether the key was applied, but only one inside decides that it
// was not: two attempts of one request could otherwise both find nothing
// and both apply it, and a change could overwrite a last op that came in
// after its lookup and that nothing made sure of. memo, when not nil,
// carries a lookup of the same key from before the update to the update.
func (s *Store) FindSubjectOp(ctx context.Context, sub *Subject, key string, since int64, memo *OpMemo) (*Op, error) {
	for _, op := range []*Op{sub.LastOp, sub.CreateOp} {
		if op != nil && op.Key == key && live(op, since) {
			found := *op
			return &found, nil
		}
	}
	for i := range sub.Ops { // written before the collection; honoured until they expire
		if sub.Ops[i].Key == key && live(&sub.Ops[i], since) {
			found := sub.Ops[i]
			return &found, nil
		}
	}
	if memo != nil && memo.valid && memo.id == sub.ID && memo.key == key && memo.version == sub.Version {
		return memo.op, nil
	}
	ids := []string{subjectOpID(sub.ID, key)}
	last := sub.LastOp
	checkLast := live(last, since) && !s.opsKnown.has(sub.ID, last.Key)
	if checkLast {
		ids = append(ids, subjectOpID(sub.ID, last.Key))
	}
	found, err := s.getOps(ctx, ids)
	if err != nil {
		return nil, err
	}
	if checkLast {
		if _, ok := found[ids[1]]; !ok {
			// Applied, and its record lost before it was written: write it
			// now, before the change overwrites the last op.
			if err := s.putOp(ctx, sub.ID, *last); err != nil {
				return nil, err
			}
		}
		s.opsKnown.add(sub.ID, last.Key)
	}
	var op *Op
	if d, ok := found[ids[0]]; ok && live(&Op{At: d.At}, since) {
		op = &Op{Key: key, Fingerprint: d.Fingerprint, Result: d.Result, At: d.At}
	}
	if memo != nil {
		*memo = OpMemo{valid: true, id: sub.ID, key: key, version: sub.Version, op: op}
	}
	return op, nil
}

// getOps reads the op documents with these _ids: on MongoDB in one find;
// on the embedded store one exact _id read each, the only read it does not
// scan for (an $in over _ids would read the whole collection).
func (s *Store) getOps(ctx context.Context, ids []string) (map[string]*subjectOp, error) {
	out := map[string]*subjectOp{}
	if s.embedded != nil || len(ids) == 1 {
		for _, id := range ids {
			var d subjectOp
			err := get(ctx, s.subjectOps, id, &d)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("store: read op: %w", err)
			}
			out[id] = &d
		}
		return out, nil
	}
	cur, err := s.subjectOps.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
	if err != nil {
		return nil, fmt.Errorf("store: read ops: %w", classify(err))
	}
	var docs []*subjectOp
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("store: read ops: %w", classify(err))
	}
	for _, d := range docs {
		out[d.ID] = d
	}
	return out, nil
}

// putOp writes op into the collection, replacing a record of the same key
// (the same op, written twice: by its change and by the next one's check).
// It does not wait for the sync (apply): on the embedded store the next
// synced write to the subjects' database makes it durable, before any
// change that overwrites its subject's last op is, and every call syncs
// every database before it answers (Store.Durable); on MongoDB the write
// concern makes it durable before it returns.
//
// It is an insert, batched with those of concurrent changes (one command
// for all of them); a record there already under the _id is this op (the
// next change's check wrote it first) or one of the same key that expired
// and is not swept yet, so then the record is replaced.
func (s *Store) putOp(ctx context.Context, subjectID string, op Op) error {
	d := subjectOp{ID: subjectOpID(subjectID, op.Key), Fingerprint: op.Fingerprint, Result: op.Result, At: op.At}
	err := s.opInserts.insertOne(ctx, &d)
	if !errors.Is(err, ErrExists) {
		if err != nil {
			return fmt.Errorf("store: write op: %w", err)
		}
		return nil
	}
	err = s.apply(ctx, s.subjectOps, func(ctx context.Context) error {
		_, err := s.subjectOps.ReplaceOne(ctx, bson.D{{Key: "_id", Value: d.ID}}, d, options.Replace().SetUpsert(true))
		return err
	})
	if mongo.IsDuplicateKeyError(err) {
		return nil // two upserts of one op raced on MongoDB: it is there
	}
	if err != nil {
		return fmt.Errorf("store: write op: %w", classify(err))
	}
	return nil
}

// DeleteSubjectOpsBefore removes up to limit op records older than cutoff
// (Unix ns) and returns how many it removed: for the retention sweeper,
// since the embedded store has no TTL index. On MongoDB the find uses the
// index on at; the embedded store scans the collection for it.
func (s *Store) DeleteSubjectOpsBefore(ctx context.Context, cutoff int64, limit int) (int, error) {
	filter := bson.D{{Key: "at", Value: bson.D{{Key: "$lt", Value: cutoff}}}}
	cur, err := s.subjectOps.Find(ctx, filter, options.Find().SetLimit(int64(limit)).SetProjection(bson.D{{Key: "_id", Value: 1}, {Key: "at", Value: 1}}))
	if err != nil {
		return 0, fmt.Errorf("store: list old ops: %w", classify(err))
	}
	var old []*subjectOp
	if err := cur.All(ctx, &old); err != nil {
		return 0, fmt.Errorf("store: list old ops: %w", classify(err))
	}
	n := 0
	for _, d := range old {
		if d.At >= cutoff {
			continue // FerretDB v1 gets some filters wrong
		}
		// Only if it is still that old: a key reused once its record
		// expired has a new record under the same _id.
		var deleted bool
		err := s.write(ctx, s.subjectOps, func(ctx context.Context) error {
			if s.embedded != nil {
				// The embedded store would scan for {_id, at}: the writer
				// slot, which every write to the collection takes, makes
				// the check and the delete one step.
				var cur subjectOp
				if err := get(ctx, s.subjectOps, d.ID, &cur); err != nil || cur.At >= cutoff {
					if errors.Is(err, ErrNotFound) {
						return nil
					}
					return err
				}
				res, err := s.subjectOps.DeleteOne(ctx, bson.D{{Key: "_id", Value: d.ID}})
				deleted = err == nil && res.DeletedCount == 1
				return err
			}
			res, err := s.subjectOps.DeleteOne(ctx, bson.D{{Key: "_id", Value: d.ID}, {Key: "at", Value: bson.D{{Key: "$lt", Value: cutoff}}}})
			deleted = err == nil && res.DeletedCount == 1
			return err
		})
		if err != nil {
			return n, fmt.Errorf("store: delete old op: %w", classify(err))
		}
		if deleted {
			n++
		}
	}
	return n, nil
}

// opsKnown remembers, per subject, the last op this process knows to be
// in the collection (it wrote it, or found it there), so that the next
// change to the subject need not read it again. What it remembers stays
// true whoever writes the store: a record is removed only once its window
// is over, when it no longer counts. Bounded, the least recent out first;
// what it forgot is read again.
type knownOps struct {
	mu  sync.Mutex
	lru *simplelru.LRU[string, string]
}

// knownOpsSize bounds knownOps: the subjects changed most recently.
const knownOpsSize = 1 << 16

func newKnownOps() *knownOps {
	lru, err := simplelru.NewLRU[string, string](knownOpsSize, nil)
	if err != nil {
		panic(err)
	}
	return &knownOps{lru: lru}
}

func (k *knownOps) has(subjectID, key string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.lru.Get(subjectID)
	return ok && v == key
}

func (k *knownOps) add(subjectID, key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.lru.Add(subjectID, key)
}
