package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"

	"github.com/example/personaldata/service/audit/checkpoint"
	"github.com/example/personaldata/store"
)

// Hasher is the tree's hashing (RFC 6962, SHA-256).
var Hasher = checkpoint.Hasher

var rangeFactory = &compact.RangeFactory{Hash: Hasher.HashChildren}

// Errors of the tree that callers test with errors.Is.
var (
	// ErrTreeSize: a size beyond the tree's, or sizes out of order.
	ErrTreeSize = errors.New("tree size out of range")
	// ErrNotInTree: the event has no leaf in the tree.
	ErrNotInTree = errors.New("event is not in the Merkle tree")
	// errTreeDamaged: a node the tree needs is not stored.
	errTreeDamaged = errors.New("the Merkle tree's stored nodes are missing or damaged")
)

// LeafHash is the hash of the leaf that stands for an event
// (checkpoint.LeafHash).
func LeafHash(eventHash string) ([]byte, error) { return checkpoint.LeafHash(eventHash) }

// tree is a Log's view of the Merkle tree over the trail: one global log
// whose leaves are the events in the order their batches were written.
// Only the flusher appends (one update per batch); proofs and checkpoints
// read. The compact range of [0, size) is all it holds in memory.
type tree struct {
	st *store.Store
	// proved are nodes that an inclusion proof against a trusted root
	// verified: a node of a perfect subtree never changes, so a proof that
	// needs it again takes it from here instead of the store (and an
	// insider's later change of the stored node cannot touch it).
	proved *lru.Cache[compact.NodeID, []byte]
	mu     sync.Mutex
	// rng is the compact range [0, size); nil until loaded.
	rng *compact.Range
	// older: the tree was empty when loaded and the trail was not; leaf 0
	// records it (store.AuditLeaf.Older).
	older bool
}

// load finds the tree's end in the store and its compact range, once.
// Called with mu held.
func (t *tree) load(ctx context.Context) error {
	if t.rng != nil {
		return nil
	}
	size, err := t.end(ctx)
	if err != nil {
		return err
	}
	if size == 0 {
		if t.older, err = t.st.AuditTrailBeforeTree(ctx); err != nil {
			return err
		}
	}
	r, err := t.rangeAt(ctx, size, map[uint64]*store.AuditLeaf{})
	if err != nil {
		return err
	}
	t.rng = r
	return nil
}

// end finds the number of leaves stored by exact _id reads: doubling, then
// halving.
func (t *tree) end(ctx context.Context) (uint64, error) {
	has := func(i uint64) (bool, error) {
		_, err := t.st.GetAuditLeaf(ctx, i)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	}
	ok, err := has(0)
	if err != nil || !ok {
		return 0, err
	}
	lo, hi := uint64(0), uint64(1) // lo present; hi to be found absent
	for {
		ok, err := has(hi)
		if err != nil {
			return 0, err
		}
		if !ok {
			break
		}
		lo, hi = hi, hi*2
	}
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		ok, err := has(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi, nil
}

// head returns the tree's size and root hash as this Log has written it.
func (t *tree) head(ctx context.Context) (uint64, []byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.load(ctx); err != nil {
		return 0, nil, fmt.Errorf("audit: tree: %w", err)
	}
	root, err := t.rng.GetRootHash(nil)
	if err != nil {
		return 0, nil, fmt.Errorf("audit: tree: %w", err)
	}
	if root == nil {
		root = Hasher.EmptyRoot()
	}
	return t.rng.End(), root, nil
}

// known is the size this process knows of, without reading the store;
// false before the tree is loaded.
func (t *tree) known() (uint64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rng == nil {
		return 0, false
	}
	return t.rng.End(), true
}

// size is the tree's size, loading it first if need be.
func (t *tree) size(ctx context.Context) (uint64, error) {
	n, _, err := t.head(ctx)
	return n, err
}

// write inserts a batch's events and their leaves in one command (insert,
// given the leaves, returns how many documents it wrote, events first),
// setting each event's Leaf before. Events that went in without their
// leaves (another writer took a seq, or a leaf's index) get them through
// append. It returns how many events were written, the insert's error
// about the events, and the tree's error.
func (t *tree) write(ctx context.Context, docs []*store.AuditEvent, insert func([]*store.AuditLeaf) (int, error)) (int, error, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.load(ctx); err != nil {
		return 0, fmt.Errorf("audit: tree: %w", err), nil
	}
	leaves, err := t.leavesFor(docs)
	if err != nil {
		return 0, err, nil
	}
	for i, d := range docs {
		d.Leaf = int64(leaves[i].Index)
	}
	n, err := insert(leaves)
	events := min(n, len(docs))
	withLeaves := max(0, n-len(docs))
	for _, l := range leaves[:withLeaves] {
		_ = t.rng.Append(l.Hash, nil) // cannot fail: leavesFor did the same
	}
	if withLeaves == len(docs) {
		return events, err, nil
	}
	if events == len(docs) {
		err = nil // a leaf's index was taken: append finds the next free
	}
	return events, err, t.appendLocked(ctx, docs[withLeaves:events])
}

// leavesFor computes the leaves of docs after the tree's end. Called with
// mu held.
func (t *tree) leavesFor(docs []*store.AuditEvent) ([]*store.AuditLeaf, error) {
	base := t.rng.End()
	r, err := rangeFactory.NewRange(0, base, append([][]byte(nil), t.rng.Hashes()...))
	if err != nil {
		return nil, fmt.Errorf("audit: tree: %w", err)
	}
	leaves := make([]*store.AuditLeaf, len(docs))
	for i, d := range docs {
		h, err := LeafHash(d.Hash)
		if err != nil {
			return nil, fmt.Errorf("audit: tree: %w", err)
		}
		leaf := &store.AuditLeaf{Index: base + uint64(i), Event: d.ID, Time: d.Time, Hash: h, Older: base+uint64(i) == 0 && t.older}
		if err := r.Append(h, func(id compact.NodeID, hash []byte) {
			if id.Level > 0 {
				leaf.Nodes = append(leaf.Nodes, hash)
			}
		}); err != nil {
			return nil, fmt.Errorf("audit: tree: %w", err)
		}
		leaves[i] = leaf
	}
	return leaves, nil
}

// append adds leaves for events just inserted, in order, and records in each
// its leaf's index (Leaf). The events were written with the leaves they
// would get if no other process appended meanwhile; when one did, this
// process catches up on its leaves, puts these after them, and corrects the
// events' Leaf in the store.
func (t *tree) append(ctx context.Context, docs []*store.AuditEvent) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.load(ctx); err != nil {
		return fmt.Errorf("audit: tree: %w", err)
	}
	return t.appendLocked(ctx, docs)
}

// appendLocked is append with mu held.
func (t *tree) appendLocked(ctx context.Context, docs []*store.AuditEvent) error {
	for attempt := 0; len(docs) > 0; attempt++ {
		if attempt == maxAppendAttempts {
			return fmt.Errorf("audit: tree: %w", ErrContention)
		}
		leaves, err := t.leavesFor(docs)
		if err != nil {
			return err
		}
		n, err := t.st.InsertAuditLeaves(ctx, leaves)
		for i, leaf := range leaves[:n] {
			_ = t.rng.Append(leaf.Hash, nil) // cannot fail: leavesFor did the same
			if docs[i].Leaf != int64(leaf.Index) {
				if err := t.st.SetAuditEventLeaf(ctx, docs[i].ID, leaf.Index); err != nil {
					return fmt.Errorf("audit: tree: %w", err)
				}
				docs[i].Leaf = int64(leaf.Index)
			}
		}
		docs = docs[n:]
		if err == nil {
			return nil
		}
		if !errors.Is(err, store.ErrExists) {
			return fmt.Errorf("audit: tree: %w", err)
		}
		// Another process appended: take its leaves as they are.
		if err := t.catchUp(ctx); err != nil {
			return fmt.Errorf("audit: tree: %w", err)
		}
	}
	return nil
}

// catchUp extends the range with the leaves other processes stored after
// it. Called with mu held.
func (t *tree) catchUp(ctx context.Context) error {
	const page = 256
	for {
		ls, err := t.st.ListAuditLeaves(ctx, t.rng.End(), page)
		if err != nil {
			return err
		}
		for _, l := range ls {
			if err := t.rng.Append(l.Hash, nil); err != nil {
				return err
			}
		}
		if len(ls) < page {
			return nil
		}
	}
}

// current is head after taking in what other processes appended: the
// tree as stored, for proofs and checkpoints.
func (t *tree) current(ctx context.Context) (uint64, []byte, error) {
	t.mu.Lock()
	err := t.load(ctx)
	if err == nil {
		err = t.catchUp(ctx)
	}
	t.mu.Unlock()
	if err != nil {
		return 0, nil, fmt.Errorf("audit: tree: %w", err)
	}
	return t.head(ctx)
}

// nodes reads the tree's nodes from the leaves that store them, caching
// the leaves read, for one proof or one verification.
type nodes struct {
	st     *store.Store
	leaves map[uint64]*store.AuditLeaf
	proved *lru.Cache[compact.NodeID, []byte] // nil: none kept
}

func (t *tree) nodes() *nodes {
	return &nodes{st: t.st, leaves: map[uint64]*store.AuditLeaf{}, proved: t.proved}
}

// leaf reads leaf i, once.
func (n *nodes) leaf(ctx context.Context, i uint64) (*store.AuditLeaf, error) {
	if l, ok := n.leaves[i]; ok {
		return l, nil
	}
	l, err := n.st.GetAuditLeaf(ctx, i)
	if err != nil {
		return nil, err
	}
	n.leaves[i] = l
	return l, nil
}

// hash returns the hash of node id: a leaf's own hash at level 0, else the
// one its last leaf stored.
func (n *nodes) hash(ctx context.Context, id compact.NodeID) ([]byte, error) {
	if n.proved != nil {
		if h, ok := n.proved.Get(id); ok {
			return h, nil
		}
	}
	l, err := n.leaf(ctx, ((id.Index+1)<<id.Level)-1)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: node %d/%d", errTreeDamaged, id.Level, id.Index)
	}
	if err != nil {
		return nil, err
	}
	if id.Level == 0 {
		return l.Hash, nil
	}
	if int(id.Level) > len(l.Nodes) {
		return nil, fmt.Errorf("%w: node %d/%d", errTreeDamaged, id.Level, id.Index)
	}
	return l.Nodes[id.Level-1], nil
}

func (n *nodes) hashes(ctx context.Context, ids []compact.NodeID) ([][]byte, error) {
	out := make([][]byte, len(ids))
	for i, id := range ids {
		h, err := n.hash(ctx, id)
		if err != nil {
			return nil, err
		}
		out[i] = h
	}
	return out, nil
}

// rangeAt reads the compact range [0, size) from the stored nodes.
func (t *tree) rangeAt(ctx context.Context, size uint64, cache map[uint64]*store.AuditLeaf) (*compact.Range, error) {
	n := &nodes{st: t.st, leaves: cache}
	hashes, err := n.hashes(ctx, compact.RangeNodes(0, size, nil))
	if err != nil {
		return nil, err
	}
	return rangeFactory.NewRange(0, size, hashes)
}

// checkSize refuses a size beyond the tree's.
func (t *tree) checkSize(ctx context.Context, sizes ...uint64) (uint64, error) {
	current, _, err := t.current(ctx)
	if err != nil {
		return 0, err
	}
	for _, s := range sizes {
		if s > current {
			return current, fmt.Errorf("%w: %d is beyond the tree's %d leaves", ErrTreeSize, s, current)
		}
	}
	return current, nil
}

// RootAt returns the root hash of the tree of the given size, from the
// stored nodes.
func (l *Log) RootAt(ctx context.Context, size uint64) ([]byte, error) {
	if _, err := l.tree.checkSize(ctx, size); err != nil {
		return nil, fmt.Errorf("audit: root: %w", err)
	}
	return l.tree.rootAt(ctx, size, l.tree.nodes())
}

func (t *tree) rootAt(ctx context.Context, size uint64, n *nodes) ([]byte, error) {
	if size == 0 {
		return Hasher.EmptyRoot(), nil
	}
	r, err := t.rangeAt(ctx, size, n.leaves)
	if err != nil {
		return nil, fmt.Errorf("audit: root: %w", err)
	}
	return r.GetRootHash(nil)
}

// TreeHead returns the size and root hash of the tree as stored: what this
// Log wrote and what other processes did.
func (l *Log) TreeHead(ctx context.Context) (uint64, []byte, error) { return l.tree.current(ctx) }

// InclusionProof proves that leaf index is in the tree of the given size.
func (l *Log) InclusionProof(ctx context.Context, index, size uint64) ([][]byte, error) {
	if _, err := l.tree.checkSize(ctx, size); err != nil {
		return nil, fmt.Errorf("audit: inclusion proof: %w", err)
	}
	if index >= size {
		return nil, fmt.Errorf("audit: inclusion proof: %w: leaf %d is not below size %d", ErrTreeSize, index, size)
	}
	return inclusion(ctx, l.tree.nodes(), index, size)
}

func inclusion(ctx context.Context, n *nodes, index, size uint64) ([][]byte, error) {
	p, err := proof.Inclusion(index, size)
	if err != nil {
		return nil, fmt.Errorf("audit: inclusion proof: %w", err)
	}
	hashes, err := n.hashes(ctx, p.IDs)
	if err != nil {
		return nil, fmt.Errorf("audit: inclusion proof: %w", err)
	}
	return p.Rehash(hashes, Hasher.HashChildren)
}

// ConsistencyProof proves that the tree of size2 extends that of size1.
func (l *Log) ConsistencyProof(ctx context.Context, size1, size2 uint64) ([][]byte, error) {
	if _, err := l.tree.checkSize(ctx, size1, size2); err != nil {
		return nil, fmt.Errorf("audit: consistency proof: %w", err)
	}
	if size1 > size2 {
		return nil, fmt.Errorf("audit: consistency proof: %w: %d is beyond %d", ErrTreeSize, size1, size2)
	}
	return consistency(ctx, l.tree.nodes(), size1, size2)
}

func consistency(ctx context.Context, n *nodes, size1, size2 uint64) ([][]byte, error) {
	p, err := proof.Consistency(size1, size2)
	if err != nil {
		return nil, fmt.Errorf("audit: consistency proof: %w", err)
	}
	hashes, err := n.hashes(ctx, p.IDs)
	if err != nil {
		return nil, fmt.Errorf("audit: consistency proof: %w", err)
	}
	return p.Rehash(hashes, Hasher.HashChildren)
}

// LeafRange returns the leaves from index from on (up to limit, stopping at
// the first missing), with the compact range of [0, from) that a verifier
// starts from: together they let it recompute the root of any size past
// from.
func (l *Log) LeafRange(ctx context.Context, from uint64, limit int) ([]*store.AuditLeaf, [][]byte, error) {
	if _, err := l.tree.checkSize(ctx, from); err != nil {
		return nil, nil, fmt.Errorf("audit: leaves: %w", err)
	}
	r, err := l.tree.rangeAt(ctx, from, map[uint64]*store.AuditLeaf{})
	if err != nil {
		return nil, nil, fmt.Errorf("audit: leaves: %w", err)
	}
	leaves, err := l.st.ListAuditLeaves(ctx, from, limit)
	if err != nil {
		return nil, nil, fmt.Errorf("audit: leaves: %w", err)
	}
	return leaves, r.Hashes(), nil
}

// Anchor is a tree state a verifier trusts: the size and root hash of a
// checkpoint whose signature it checked.
type Anchor struct {
	Size uint64
	Root []byte
}

// anchored proves the current tree against a trusted anchor: it returns the
// current size and root, once a consistency proof from the anchor to them
// verifies. Every later inclusion proof against that root then proves the
// leaf was in the tree the anchor's checkpoint signed, or appended after.
func (l *Log) anchored(ctx context.Context, n *nodes, a Anchor) (uint64, []byte, error) {
	size, err := l.tree.checkSize(ctx, a.Size)
	if err != nil {
		return 0, nil, err
	}
	root, err := l.tree.rootAt(ctx, size, n)
	if err != nil {
		return 0, nil, err
	}
	p, err := consistency(ctx, n, a.Size, size)
	if err != nil {
		return 0, nil, err
	}
	if a.Size == 0 {
		return size, root, nil
	}
	if err := proof.VerifyConsistency(Hasher, a.Size, size, p, a.Root, root); err != nil {
		return 0, nil, fmt.Errorf("%w: %w", ErrInconsistent, err)
	}
	return size, root, nil
}

// ErrInconsistent: the tree stored now does not extend the trusted
// checkpoint: it was rewritten, or an older copy restored.
var ErrInconsistent = errors.New("the Merkle tree does not extend the checkpoint")

// included checks that the event with hash eventHash is leaf index of the
// tree of the given size and root, which the caller proved.
func included(ctx context.Context, n *nodes, index, size uint64, root []byte, eventID, eventHash string) (string, error) {
	if index >= size {
		return ReasonNotInTree, nil
	}
	l, err := n.leaf(ctx, index)
	if errors.Is(err, store.ErrNotFound) {
		return ReasonNotInTree, nil
	}
	if err != nil {
		return "", err
	}
	if l.Event != eventID {
		return ReasonNotInTree, nil
	}
	want, err := LeafHash(eventHash)
	if err != nil || !bytes.Equal(want, l.Hash) {
		return ReasonChanged, nil
	}
	p, err := proof.Inclusion(index, size)
	if err != nil {
		return "", err
	}
	hashes, err := n.hashes(ctx, p.IDs)
	if errors.Is(err, errTreeDamaged) {
		return ReasonNotInTree, nil
	}
	if err != nil {
		return "", err
	}
	kept := slices.Clone(hashes) // Rehash works in place
	path, err := p.Rehash(hashes, Hasher.HashChildren)
	if err != nil {
		return "", err
	}
	if proof.VerifyInclusion(Hasher, index, size, l.Hash, path, root) != nil {
		return ReasonNotInTree, nil
	}
	if n.proved != nil {
		n.proved.Add(compact.NewNodeID(0, index), l.Hash)
		for i, id := range p.IDs {
			n.proved.Add(id, kept[i])
		}
	}
	return "", nil
}

// Prover proves events against the tree, proved in turn against the newest
// trusted checkpoint, for one report: the nodes read are kept, so proving
// the events of a stretch of the tree reads about one leaf per event,
// whatever the tree's size. It is safe for concurrent use.
type Prover struct {
	mu sync.Mutex
	p  *proofs
	// broken is set when the tree does not extend the checkpoint.
	broken bool
}

// NewProver proves the current tree against the newest trusted checkpoint.
func (l *Log) NewProver(ctx context.Context) (*Prover, error) {
	p, err := l.newProofs(ctx)
	if errors.Is(err, ErrInconsistent) || errors.Is(err, errTreeDamaged) {
		return &Prover{p: p, broken: true}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("audit: prove: %w", err)
	}
	return &Prover{p: p}, nil
}

// Checkpoint is the size of the checkpoint the prover trusts (0: none).
func (pr *Prover) Checkpoint() uint64 { return pr.p.anchor.Size }

// Check proves events, of one chain, in seq order: Result.Events counts
// those proved before the first that is not (FirstBroken, Reason, Leaf).
// ok is false when an event has no leaf (it was appended before the tree
// began): the caller verifies its chain the old way.
func (pr *Prover) Check(ctx context.Context, events []Event) (res Result, ok bool, err error) {
	res = Result{Leaf: -1, Checkpoint: pr.p.anchor.Size}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	for _, e := range events {
		if e.Leaf < 0 {
			return Result{}, false, nil
		}
		reason := ReasonTreeInconsistent
		if !pr.broken {
			if Hash(e) != e.Hash {
				reason = ReasonChanged
			} else if reason, err = pr.p.check(ctx, e); err != nil {
				return Result{}, true, fmt.Errorf("audit: prove: %w", err)
			}
		}
		if reason != "" {
			res.FirstBroken, res.Reason, res.Leaf = e.Seq, reason, e.Leaf
			return res, true, nil
		}
		res.Events++
	}
	return res, true, nil
}
