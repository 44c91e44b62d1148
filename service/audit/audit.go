// Package audit keeps the audit trail: one event for every read and change of
// personal data (who, for which tenant and purpose, which RPC, which fields,
// with what outcome, when), never the personal values themselves.
//
// Events form chains: "subjects/<id>" for the events of one data subject,
// "tenants/<id>" for a controller's events that concern no one subject, and
// "principals" for changes of principals. Each event carries the SHA-256 of
// the event before it in its chain (PrevHash) and its own hash over all its
// fields and PrevHash, so an event that is changed, removed from the middle
// of a chain or put in the place of another is detected by Verify.
//
// Appending needs no transaction and no lock shared between processes: the
// _id of an event is its chain and seq, so inserting it reserves the seq, and
// a writer that finds the seq taken by another (a duplicate _id) re-reads the
// chain's end and tries the next one. Several server replicas may append to
// one chain at once.
//
// What the chain alone cannot show: the removal of the LAST events of a
// chain leaves a shorter chain that is intact, and the last event can be
// replaced by another with a recomputed hash. The head hint (seq and hash of
// an event near the end, moved every 16 seqs so that an append is a single
// insert; the last 15 events are not covered) mitigates this, but an
// attacker who can write the database can rewrite or remove the head along
// with the tail.
//
// So every event is also a leaf of one global Merkle tree over the trail,
// in the order the events were written (tree.go; RFC 6962 hashing): the
// flusher inserts a batch's leaves with its events, in one command, each
// event records its leaf, and the tree's size and root are signed in
// checkpoints kept outside the database (checkpoint.go). Verify proves
// every event against the tree, and the tree against the newest checkpoint
// it trusts; a verifier holding an older checkpoint proves that the tree
// extends it (a consistency proof) and recomputes the leaves since. A
// rewritten, removed, inserted or moved event, or an older copy of the
// database, no longer matches what was signed.
package audit

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"math/rand/v2"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/transparency-dev/merkle/compact"

	"github.com/example/personaldata/store"
)

// Chain names.
const (
	// PrincipalsChain holds the changes of principals.
	PrincipalsChain = "principals"
	// ReadinessChain holds the probes that tell whether appends work again
	// after one failed (see Ready).
	ReadinessChain = "readiness"
	subjectsPrefix = "subjects/"
	tenantsPrefix  = "tenants/"
)

// SubjectChain is the chain of the events of one data subject.
func SubjectChain(subjectID string) string { return subjectsPrefix + subjectID }

// TenantChain is the chain of a controller's events that concern no one
// subject.
func TenantChain(tenantID string) string { return tenantsPrefix + tenantID }

// Reasons Verify gives for the first broken link.
const (
	// ReasonChanged: the event's hash does not follow from its contents.
	ReasonChanged = "changed"
	// ReasonMissing: the seq is absent although later events exist, or the
	// chain ends before its head hint (events were cut off its end).
	ReasonMissing = "missing"
	// ReasonOutOfPlace: the event is intact but does not follow from the
	// event before it (its prev_hash differs from that event's hash), or it
	// names another chain or seq than the place it is stored at.
	ReasonOutOfPlace = "out of place"
	// ReasonNotInTree: the event has no leaf in the Merkle tree that the
	// trusted checkpoint proves, or its leaf stands for another event: it
	// was put into the chain, or moved, after it was appended.
	ReasonNotInTree = "not in the tree"
	// ReasonTreeInconsistent: the tree stored now does not extend the
	// trusted checkpoint, so no event can be proved by it.
	ReasonTreeInconsistent = "tree does not extend the checkpoint"
)

// Errors callers test with errors.Is.
var (
	// ErrBroken: an event that another writer had appended is gone.
	ErrBroken = errors.New("audit chain is broken")
	// errPanic stands for a failure inside a batch write.
	errPanic = errors.New("internal failure while writing the batch")
	// ErrContention: another writer took every seq tried. It is a
	// store.ErrConflict, which the service answers with ABORTED.
	ErrContention = fmt.Errorf("audit chain too contended: %w", store.ErrConflict)
)

// Event is one touch of personal data.
type Event struct {
	Chain     string
	Seq       int64 // from 1; set by Append
	Time      time.Time
	Principal string
	Tenant    string
	Purpose   string
	RPC       string
	SubjectID string
	// Fields names the fields or categories touched; never values.
	Fields   []string
	Outcome  string
	PrevHash string // set by Append
	Hash     string // set by Append
	// Leaf is the index of the event's leaf in the Merkle tree over the
	// trail (set by Append); -1 for an event stored before there was one.
	Leaf int64
	// likelyNew: the chain is most likely empty (Touch.NewChain); not
	// stored.
	likelyNew bool
}

// ID is the event's _id in the store: its chain and seq.
func (e Event) ID() string { return store.AuditEventID(e.Chain, e.Seq) }

// hashDomain separates these hashes from any other SHA-256 use, and names
// the version of the encoding.
const hashDomain = "personaldata.audit.v1"

// Hash is the hex SHA-256 of e's canonical encoding: every field but Hash, in
// a fixed order, each string prefixed by its length in bytes, each number in
// 8 bytes, and Fields by its count, so that no two different events encode
// alike. Time counts in Unix nanoseconds.
func Hash(e Event) string {
	h := sha256.New()
	str := func(s string) {
		writeUint(h, uint64(len(s)))
		h.Write([]byte(s))
	}
	str(hashDomain)
	str(e.Chain)
	writeUint(h, uint64(e.Seq))
	writeUint(h, uint64(e.Time.UnixNano()))
	str(e.Principal)
	str(e.Tenant)
	str(e.Purpose)
	str(e.RPC)
	str(e.SubjectID)
	writeUint(h, uint64(len(e.Fields)))
	for _, f := range e.Fields {
		str(f)
	}
	str(e.Outcome)
	str(e.PrevHash)
	return hex.EncodeToString(h.Sum(nil))
}

func writeUint(h hash.Hash, n uint64) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	h.Write(b[:])
}

// Log appends to and reads the audit chains in a store. A Log is safe for
// concurrent use; one per process is the intent, and any number of Logs, in
// any number of processes, may append to the same chain.
type Log struct {
	st *store.Store
	// tree is the Merkle tree over the trail, one leaf per event.
	tree *tree
	// trust, when set, returns the newest checkpoint Verify may trust.
	trust func(context.Context) (*Anchor, error)
	// chains serialises the appends of this Log to one chain, so that its
	// own goroutines queue instead of racing for the same seq; other
	// processes still race, and the _id reservation settles that.
	// group queues the appends that arrive while a batch is being written:
	// busy says a caller is writing one.
	group sync.Mutex
	queue []*pending
	busy  bool
	// tails caches the last event this Log knows of each chain, so that an
	// append is one insert: no read of the head, no probe, no head write.
	// A stale entry (another process appended) only costs a collision on
	// insert, after which the slow path finds the true end.
	// It is a bounded LRU: a miss costs a head read and tail probes in the
	// one flusher, so it must not be emptied all at once.
	tails *lru.Cache[string, tailEntry]
	// failing is the error of the last append that the store refused (a
	// full disk, an outage), nil once one succeeds again.
	failingMu sync.Mutex
	failing   error
	// onChange, when set, is called whenever appends begin or stop failing.
	onChange func()
}

type tailEntry struct {
	seq  int64
	hash string
}

const (
	// maxTails bounds the cache of chain ends (about 50 MB at the bound):
	// above the chains a replica touches in a day of calls at the scale
	// the benchmark runs (100,000 subjects).
	maxTails = 200_000
	// headEvery is how often, in seqs, an append moves the head hint: the
	// hint may lag by less than this, which Verify's check of the end allows.
	headEvery = 16
	// maxProvedNodes bounds the tree's nodes kept once proved (about 20 MB
	// at the bound): the upper nodes every proof shares, and the recent
	// stretches that reports and chain checks read.
	maxProvedNodes = 200_000
)

func (l *Log) cachedTail(chain string) (tailEntry, bool) { return l.tails.Get(chain) }

func (l *Log) forgetTail(chain string) { l.tails.Remove(chain) }

func (l *Log) cacheTail(chain string, t tailEntry) { l.tails.Add(chain, t) }

// New returns a Log on st.
func New(st *store.Store) *Log {
	tails, err := lru.New[string, tailEntry](maxTails)
	if err != nil {
		panic(err) // only for a size below 1
	}
	proved, err := lru.New[compact.NodeID, []byte](maxProvedNodes)
	if err != nil {
		panic(err)
	}
	return &Log{st: st, tails: tails, tree: &tree{st: st, proved: proved}}
}

// maxAppendAttempts bounds the seqs an Append tries before giving up; each
// loss means another writer appended, so the chain moved on. A writer that
// keeps losing backs off at most 12.8 ms, while writers that just won try
// again at once, so under many writers on one chain a loser may lose many
// times before they are done: the bound is high, and the caller's deadline
// ends the wait first.
const maxAppendAttempts = 1024

// Append adds e to the end of e.Chain and returns it with Seq, PrevHash and
// Hash set (Time too when it was zero). Appends that arrive together are
// written together, in one insert (group commit): the first caller writes
// the events queued so far, and hands the next batch to a caller waiting
// behind it. Each chain's events get consecutive seqs from the chain's end
// as this Log last wrote it; if another writer took one of those seqs, the
// events from there on go one by one through appendOne, which finds the true
// end. Every 16 seqs the head hint moves forward, best effort.
func (l *Log) Append(ctx context.Context, e Event) (Event, error) {
	if e.Chain == "" {
		return Event{}, errors.New("audit: append: chain is required")
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = time.Unix(0, e.Time.UnixNano()).UTC() // as stored and hashed

	p := &pending{e: e, done: make(chan struct{})}
	l.group.Lock()
	l.queue = append(l.queue, p)
	lead := !l.busy
	l.busy = true
	l.group.Unlock()
	if lead {
		l.drain(ctx)
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		// The event may still be written; the caller fails closed anyway.
		return Event{}, fmt.Errorf("audit: append: %w", ctx.Err())
	}
	if p.err != nil {
		return p.res, p.err
	}
	// Outside the batch, so that the next one is written meanwhile; and
	// every database, since the caller answers next (Store.Durable).
	if err := l.st.Durable(ctx); err != nil {
		return Event{}, fmt.Errorf("audit: append: %w", err)
	}
	return p.res, nil
}

// noteOutcome remembers whether the store took a batch of appends. flush
// calls it, one batch at a time and detached from the callers' deadlines,
// so the last outcome noted is the store's latest answer.
func (l *Log) noteOutcome(err error) {
	l.failingMu.Lock()
	changed := (l.failing == nil) != (err == nil)
	l.failing = err
	onChange := l.onChange
	l.failingMu.Unlock()
	if changed && onChange != nil {
		onChange()
	}
}

// OnChange has f called, at once, whenever appends begin to fail or work
// again (Failing changes between nil and not nil), so that readiness
// follows the trail without polling it. Call it before the Log is used.
func (l *Log) OnChange(f func()) {
	l.failingMu.Lock()
	defer l.failingMu.Unlock()
	l.onChange = f
}

// Failing returns the error of the last append the store refused, nil
// while the last append succeeded. It reads no store.
func (l *Log) Failing() error {
	l.failingMu.Lock()
	defer l.failingMu.Unlock()
	return l.failing
}

// Ready reports whether appends work, which every audited call needs: nil
// while the last append succeeded. After a failure it appends a probe event
// to ReadinessChain (Probe), so that a process the load balancer stopped
// sending calls to finds out when the store takes appends again.
func (l *Log) Ready(ctx context.Context) error {
	if l.Failing() == nil {
		return nil
	}
	return l.Probe(ctx)
}

// Probe appends a probe event to ReadinessChain, whatever the last append
// did: at start, before any call has appended, it tells whether the store
// takes appends (a full disk refuses them). Its outcome is noted as every
// append's is (Failing, OnChange).
func (l *Log) Probe(ctx context.Context) error {
	if _, err := l.Append(ctx, Event{Chain: ReadinessChain, RPC: "readiness probe", Outcome: "OK"}); err != nil {
		return fmt.Errorf("audit: appends fail: %w", err)
	}
	return nil
}

// drain writes batches until the queue is empty. The caller that found no
// writer busy writes the first batch, which holds its own event, and leaves
// the rest to a goroutine, so that its latency does not grow with the load.
func (l *Log) drain(ctx context.Context) {
	first := true
	for {
		l.group.Lock()
		batch := l.queue
		l.queue = nil
		if len(batch) == 0 {
			l.busy = false
			l.group.Unlock()
			return
		}
		l.group.Unlock()
		l.flush(ctx, batch)
		if first {
			first = false
			go l.drain(context.WithoutCancel(ctx))
			return
		}
	}
}

// pending is an event waiting in the group.
type pending struct {
	e    Event
	res  Event
	err  error
	done chan struct{} // closed when res and err are set
}

// flush writes a batch; only one runs at a time in a Log. It is detached
// from the leader's cancellation, since the batch carries other callers'
// events, but bounded.
func (l *Log) flush(ctx context.Context, batch []*pending) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	defer func() {
		// Whatever happened, every caller gets an answer; a panic is an
		// error for each event not known to be written, never a success.
		if r := recover(); r != nil {
			for _, p := range batch {
				if p.res.Hash == "" && p.err == nil {
					p.err = fmt.Errorf("audit: append: %v", errPanic)
				}
			}
		}
		var failed error
		for _, p := range batch {
			if p.err != nil && !errors.Is(p.err, store.ErrConflict) { // contention is no fault of the store
				failed = p.err
				break
			}
		}
		l.noteOutcome(failed)
		for _, p := range batch {
			close(p.done)
		}
	}()
	// Chain each event to the one before it, in queue order.
	ends := map[string]tailEntry{}
	known := map[string]bool{}
	docs := make([]*store.AuditEvent, 0, len(batch))
	for _, p := range batch {
		end, ok := ends[p.e.Chain]
		if !ok {
			end, ok = l.cachedTail(p.e.Chain)
			// A likely new chain starts at seq 1 with no head to write
			// (the head lags by up to headEvery-1 seqs anyway).
			ok = ok || p.e.likelyNew
			known[p.e.Chain] = ok
			if !ok {
				head, err := l.st.GetAuditHead(ctx, p.e.Chain)
				if err == nil {
					end.seq, end.hash, err = l.tail(ctx, p.e.Chain, head.Seq, head.Hash)
				}
				if err != nil {
					for _, q := range batch {
						q.err = fmt.Errorf("audit: append: %w", err)
					}
					return
				}
			}
		}
		p.e.Seq, p.e.PrevHash = end.seq+1, end.hash
		p.e.Hash = Hash(p.e)
		ends[p.e.Chain] = tailEntry{seq: p.e.Seq, hash: p.e.Hash}
		docs = append(docs, toStore(p.e))
	}
	// The events and their leaves in the Merkle tree, in one insert: a
	// caller whose event is not in the tree gets an error, as when it is
	// not written.
	n, err, treeErr := l.tree.write(ctx, docs, func(leaves []*store.AuditLeaf) (int, error) {
		return l.st.InsertAuditEvents(ctx, docs, leaves...)
	})
	for i, p := range batch[:n] {
		p.e.Leaf = docs[i].Leaf
		if treeErr != nil {
			p.err = treeErr
		} else {
			p.res = p.e
		}
		l.cacheTail(p.e.Chain, tailEntry{seq: p.e.Seq, hash: p.e.Hash})
		if !known[p.e.Chain] || p.e.Seq%headEvery == 0 {
			known[p.e.Chain] = true
			// Best effort: a head that lags only makes a process without
			// the chain cached probe further.
			_ = l.st.SetAuditHead(ctx, p.e.Chain, p.e.Seq, p.e.Hash)
		}
	}
	if err == nil {
		return
	}
	if !errors.Is(err, store.ErrExists) {
		for _, p := range batch[n:] {
			p.err = fmt.Errorf("audit: append: %w", err)
		}
		return
	}
	// Another writer took a seq: from there on, one by one from the true end.
	for _, p := range batch[n:] {
		l.forgetTail(p.e.Chain)
	}
	for _, p := range batch[n:] {
		p.res, p.err = l.appendOne(ctx, p.e)
	}
}

// appendOne appends e after the chain's true end, found by reading; on
// finding its seq taken by another writer it continues from that writer's
// event.
func (l *Log) appendOne(ctx context.Context, e Event) (Event, error) {
	head, err := l.st.GetAuditHead(ctx, e.Chain)
	if err != nil {
		return Event{}, fmt.Errorf("audit: append: %w", err)
	}
	last, lastHash, err := l.tail(ctx, e.Chain, head.Seq, head.Hash)
	if err != nil {
		return Event{}, fmt.Errorf("audit: append: %w", err)
	}
	for attempt := range maxAppendAttempts {
		e.Seq, e.PrevHash = last+1, lastHash
		e.Hash = Hash(e)
		size, err := l.tree.size(ctx)
		if err != nil {
			return Event{}, err
		}
		doc := toStore(e)
		doc.Leaf = int64(size)
		err = l.st.InsertAuditEvent(ctx, doc)
		if err == nil {
			l.cacheTail(e.Chain, tailEntry{seq: e.Seq, hash: e.Hash})
			_ = l.st.SetAuditHead(ctx, e.Chain, e.Seq, e.Hash) // best effort
			if err := l.tree.append(ctx, []*store.AuditEvent{doc}); err != nil {
				return Event{}, err
			}
			e.Leaf = doc.Leaf
			return e, nil
		}
		if !errors.Is(err, store.ErrExists) {
			return Event{}, fmt.Errorf("audit: append: %w", err)
		}
		// Another writer took e.Seq: its event is the new last one, and
		// more may follow it.
		if err := backoff(ctx, attempt); err != nil {
			return Event{}, fmt.Errorf("audit: append: %w", err)
		}
		taken, err := l.st.GetAuditEvent(ctx, e.Chain, e.Seq)
		if errors.Is(err, store.ErrNotFound) {
			err = fmt.Errorf("%w: %s seq %d was taken, then removed", ErrBroken, e.Chain, e.Seq)
		}
		if err != nil {
			return Event{}, fmt.Errorf("audit: append: %w", err)
		}
		if last, lastHash, err = l.tail(ctx, e.Chain, e.Seq, taken.Hash); err != nil {
			return Event{}, fmt.Errorf("audit: append: %w", err)
		}
	}
	return Event{}, fmt.Errorf("audit: append to %s: %w", e.Chain, ErrContention)
}

// backoff waits a random time that grows with the attempt, so that writers
// that keep colliding spread out.
func backoff(ctx context.Context, attempt int) error {
	if attempt == 0 {
		return ctx.Err()
	}
	d := time.Duration(rand.Int64N(int64(100*time.Microsecond) << min(attempt, 7)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// tail returns the seq and hash of the last event of chain, given event lo
// with hash loHash (lo 0: none). It probes forward from lo by exact _id
// reads: one by one at first, in growing steps with a binary search at the
// end when lo lags far behind.
func (l *Log) tail(ctx context.Context, chain string, lo int64, loHash string) (int64, string, error) {
	// Gallop: lo is present (or 0); find hi, absent.
	var hi int64
	step := int64(1)
	for hits := 0; ; hits++ {
		ev, err := l.st.GetAuditEvent(ctx, chain, lo+step)
		if errors.Is(err, store.ErrNotFound) {
			hi = lo + step
			break
		}
		if err != nil {
			return 0, "", err
		}
		lo, loHash = lo+step, ev.Hash
		if hits >= 4 {
			step *= 2
		}
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		ev, err := l.st.GetAuditEvent(ctx, chain, mid)
		switch {
		case errors.Is(err, store.ErrNotFound):
			hi = mid
		case err != nil:
			return 0, "", err
		default:
			lo, loHash = mid, ev.Hash
		}
	}
	return lo, loHash, nil
}

// Result is what Verify found.
type Result struct {
	// Events is the number of events that verified, from seq 1: all of
	// them when the chain is intact, else those before FirstBroken.
	Events int64
	// FirstBroken is the seq of the first event that does not follow from
	// the one before it; 0 when the chain is intact.
	FirstBroken int64
	// Reason is what is wrong there: ReasonChanged, ReasonMissing or
	// ReasonOutOfPlace, ReasonNotInTree or ReasonTreeInconsistent; "" when
	// intact.
	Reason string
	// Leaf is the tree leaf of the first broken event, -1 when it has none
	// or the chain is intact.
	Leaf int64
	// Checkpoint is the size of the trusted checkpoint the events were
	// proved against (see TrustCheckpoints); 0 for none, when they were
	// proved against the tree as stored.
	Checkpoint uint64
}

// TrustCheckpoints has Verify prove every event against the newest
// checkpoint that trust returns (nil: none yet), instead of against the tree
// as stored. Call it before the Log is used.
func (l *Log) TrustCheckpoints(trust func(context.Context) (*Anchor, error)) { l.trust = trust }

// proofs proves events against the tree, for one verification: the anchor
// and the current tree proved consistent with it, and the nodes read.
type proofs struct {
	n      *nodes
	anchor Anchor
	size   uint64
	root   []byte
}

// newProofs proves the current tree against the newest trusted checkpoint;
// a tree that does not extend it is ErrInconsistent.
func (l *Log) newProofs(ctx context.Context) (*proofs, error) {
	p := &proofs{n: l.tree.nodes()}
	if l.trust != nil {
		a, err := l.trust(ctx)
		if err != nil {
			return nil, err
		}
		if a != nil {
			p.anchor = *a
		}
	}
	var err error
	p.size, p.root, err = l.anchored(ctx, p.n, p.anchor)
	if errors.Is(err, ErrTreeSize) {
		err = fmt.Errorf("%w: %w", ErrInconsistent, err)
	}
	return p, err
}

// check says what is wrong with event e against the proved tree: "" when it
// is the leaf it names, ReasonNotInTree or ReasonChanged otherwise.
func (p *proofs) check(ctx context.Context, e Event) (string, error) {
	return included(ctx, p.n, uint64(e.Leaf), p.size, p.root, e.ID(), e.Hash)
}

// Intact reports whether the chain verified.
func (r Result) Intact() bool { return r.FirstBroken == 0 }

// verifyLookahead is how many seqs past the apparent end of a chain Verify
// reads when the head hint does not reach beyond it (the hint may lag, or
// have been lowered), to find events that follow a removed one.
const verifyLookahead = 16

// Verify walks chain from seq 1 by exact _id reads and reports the first
// broken link: an event whose hash does not recompute, or differs from the
// head hint's for its seq (changed); a seq absent before later events or
// before the head hint (missing); an event whose prev_hash is not the
// previous event's hash or that names another place (out of place). An empty
// chain is intact. See the package comment for what no check can show.
func (l *Log) Verify(ctx context.Context, chain string) (Result, error) {
	head, err := l.st.GetAuditHead(ctx, chain)
	if err != nil {
		return Result{}, fmt.Errorf("audit: verify: %w", err)
	}
	res := Result{Leaf: -1}
	pr, err := l.newProofs(ctx)
	if errors.Is(err, ErrInconsistent) {
		res.FirstBroken, res.Reason, res.Checkpoint = 1, ReasonTreeInconsistent, pr.anchor.Size
		return res, nil
	}
	if err != nil {
		return Result{}, fmt.Errorf("audit: verify: %w", err)
	}
	res.Checkpoint = pr.anchor.Size
	// inTree: an event of the chain had a leaf; every later one must too
	// (only events appended before the tree existed have none), but for one
	// that a crash left between the insert of its event and that of its
	// leaf (never acknowledged): unproven is the first such since the last
	// event proved in the tree. An event proved after it commits to it
	// (prev_hash), so only one at the end of the chain stays unproven.
	prev, atHead, inTree, unproven := "", "", false, int64(0)
	for seq := int64(1); ; seq++ {
		se, err := l.st.GetAuditEvent(ctx, chain, seq)
		if errors.Is(err, store.ErrNotFound) {
			// The end of the chain, unless the head hint was past it or
			// events follow.
			later := head.Seq >= seq
			if !later {
				if later, err = l.anyFrom(ctx, chain, seq+1); err != nil {
					return Result{}, fmt.Errorf("audit: verify: %w", err)
				}
			}
			switch {
			case later:
				res.FirstBroken, res.Reason = seq, ReasonMissing
			case head.Seq > 0 && atHead != head.Hash:
				// The chain holds, but its event at the head is not the one
				// appended there: the tail was rewritten.
				res.FirstBroken, res.Reason = head.Seq, ReasonChanged
				res.Events = head.Seq - 1
			case unproven != 0:
				res.FirstBroken, res.Reason, res.Events = unproven, ReasonNotInTree, unproven-1
			}
			return res, nil
		}
		if err != nil {
			return Result{}, fmt.Errorf("audit: verify: %w", err)
		}
		e := fromStore(se)
		reason := ""
		switch {
		case Hash(e) != e.Hash:
			reason = ReasonChanged
		case e.Chain != chain || e.Seq != seq || e.PrevHash != prev:
			reason = ReasonOutOfPlace
		case e.Leaf < 0 && inTree:
			if unproven == 0 {
				unproven = seq
			}
		case e.Leaf >= 0:
			inTree = true
			if reason, err = pr.check(ctx, e); err != nil {
				return Result{}, fmt.Errorf("audit: verify: %w", err)
			}
			if reason == "" {
				unproven = 0
			}
		}
		if reason != "" {
			res.FirstBroken, res.Reason, res.Leaf = seq, reason, e.Leaf
			if unproven != 0 {
				// The leafless events before it are not proved either.
				res.FirstBroken, res.Reason, res.Leaf, res.Events = unproven, ReasonNotInTree, -1, unproven-1
			}
			return res, nil
		}
		prev = e.Hash
		if seq == head.Seq {
			atHead = e.Hash
		}
		res.Events++
	}
}

// anyFrom reports whether any of the verifyLookahead events of chain from
// seq from on exists.
func (l *Log) anyFrom(ctx context.Context, chain string, from int64) (bool, error) {
	for seq := from; seq < from+verifyLookahead; seq++ {
		_, err := l.st.GetAuditEvent(ctx, chain, seq)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return false, err
		}
	}
	return false, nil
}

// List returns up to limit events of chain from seq fromSeq on, in seq
// order, stopping at the first missing seq (Verify tells why it is missing).
func (l *Log) List(ctx context.Context, chain string, fromSeq int64, limit int) ([]Event, error) {
	ses, err := l.st.ListAuditChain(ctx, chain, fromSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("audit: list: %w", err)
	}
	out := make([]Event, len(ses))
	for i, se := range ses {
		out[i] = fromStore(se)
	}
	return out, nil
}

// Get reads the event with this id (Event.ID), as a tree leaf names it;
// store.ErrNotFound when there is none.
func (l *Log) Get(ctx context.Context, id string) (Event, error) {
	se, err := l.st.GetAuditEventByID(ctx, id)
	if err != nil {
		return Event{}, fmt.Errorf("audit: get: %w", err)
	}
	return fromStore(se), nil
}

// ListTenant returns up to limit events of tenant, of all its chains, whose
// ID comes after the given one (from the start when it is empty), in ID
// order: chain by chain, each in seq order. It is a scan on the embedded
// store; see store.ListAuditEventsByTenant.
func (l *Log) ListTenant(ctx context.Context, tenant, after string, limit int) ([]Event, error) {
	ses, err := l.st.ListAuditEventsByTenant(ctx, tenant, after, limit)
	if err != nil {
		return nil, fmt.Errorf("audit: list tenant: %w", err)
	}
	out := make([]Event, len(ses))
	for i, se := range ses {
		out[i] = fromStore(se)
	}
	return out, nil
}

// Scan hands fn every event that q selects, in ID order: chain by chain,
// each in seq order. An error of fn stops it and is returned as it is. It is
// a scan on the embedded store; see store.ScanAuditEvents.
func (l *Log) Scan(ctx context.Context, q store.AuditScan, fn func(Event) error) error {
	return l.st.ScanAuditEvents(ctx, q, func(se *store.AuditEvent) error { return fn(fromStore(se)) })
}

func toStore(e Event) *store.AuditEvent {
	return &store.AuditEvent{
		ID:        e.ID(),
		Chain:     e.Chain,
		Seq:       e.Seq,
		Time:      e.Time.UnixNano(),
		Principal: e.Principal,
		Tenant:    e.Tenant,
		Purpose:   e.Purpose,
		RPC:       e.RPC,
		SubjectID: e.SubjectID,
		Fields:    e.Fields,
		Outcome:   e.Outcome,
		PrevHash:  e.PrevHash,
		Hash:      e.Hash,
		Leaf:      e.Leaf,
	}
}

func fromStore(se *store.AuditEvent) Event {
	return Event{
		Chain:     se.Chain,
		Seq:       se.Seq,
		Time:      time.Unix(0, se.Time).UTC(),
		Principal: se.Principal,
		Tenant:    se.Tenant,
		Purpose:   se.Purpose,
		RPC:       se.RPC,
		SubjectID: se.SubjectID,
		Fields:    se.Fields,
		Outcome:   se.Outcome,
		PrevHash:  se.PrevHash,
		Hash:      se.Hash,
		Leaf:      se.Leaf,
	}
}
