package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"

	"github.com/example/personaldata/store"
)

// WindowSkew bounds how far the events' times stray from their order in the
// tree: an event's time is taken as its call ends (a refused
// authentication's when its one-second tally begins) and the event is
// written with the next batch, so an event later in the tree is never more
// than this older than one before it. The leaves of a time window are then
// one contiguous range, and an event just outside each end of it, whose time
// is proved, shows that no event of the window lies beyond.
const WindowSkew = time.Minute

// Reasons Window gives for a leaf, beside those of Verify.
const (
	// ReasonEventMissing: the leaf names an event that is not stored.
	ReasonEventMissing = "event missing"
	// ReasonLeafMissing: a leaf of the window is not stored.
	ReasonLeafMissing = "leaf missing"
	// ReasonBoundary: the leaf just outside the window's range has a proved
	// time inside the window or near it, so the range (found from the
	// leaves' unproved times) may not hold all of the window.
	ReasonBoundary = "window boundary not proved"
)

// LeafFault is a leaf of a window that does not prove its event.
type LeafFault struct {
	Index uint64
	// Event is the id the leaf names, Chain and Seq read from it; empty
	// when the leaf itself is missing or wrong.
	Event  string
	Chain  string
	Seq    int64
	Reason string
}

// WindowResult is what Window found beside the events.
type WindowResult struct {
	// Faults are the leaves that do not prove their events.
	Faults []LeafFault
	// Complete: the window's leaves were read and proved as one range, so
	// the events handed over are all the tree holds of the window. When
	// not, the caller finds the events another way, and reports Faults.
	Complete bool
	// Older: the window reaches back before the tree began, on a trail that
	// had events then; they have no leaves, and the caller looks for them
	// apart.
	Older bool
}

// Window hands fn, in tree order, every event whose time is in [from, to)
// (Unix nanoseconds), read from the Merkle tree's leaves rather than by
// searching the events: the leaves of the window are found by binary search
// over their times (WindowSkew), read with one leaf on either side, their
// hashes with the tree's stored nodes outside the range recomputed into
// the root that the prover proved against the newest trusted checkpoint,
// and each leaf's event read by its id and checked to hash to the leaf. So
// an event deleted from the trail, or changed, is a LeafFault naming its
// leaf, not a silent gap in a report. Leaves past the checkpoint are proved
// against the current tree (itself proved to extend the checkpoint).
func (pr *Prover) Window(ctx context.Context, from, to int64, fn func(Event) error) (WindowResult, error) {
	var faults []LeafFault
	pr.mu.Lock()
	defer pr.mu.Unlock()
	p := pr.p
	if pr.broken {
		return WindowResult{Faults: []LeafFault{{Reason: ReasonTreeInconsistent}}}, nil
	}
	st, size := p.n.st, p.size
	skew := WindowSkew.Nanoseconds()
	// The first leaf at or after each bound, by the leaves' times (stored,
	// not proved: the boundary leaves' events prove them below).
	lo, f, err := firstAtOrAfter(ctx, st, 0, size, from-skew)
	if err != nil || f != nil {
		return WindowResult{Faults: faultList(f)}, err
	}
	hi, f, err := firstAtOrAfter(ctx, st, lo, size, to+skew)
	if err != nil || f != nil {
		return WindowResult{Faults: faultList(f)}, err
	}
	older := false
	if lo == 0 && size > 0 {
		// The window reaches the tree's start: events from before the
		// tree began have no leaves.
		l, err := st.GetAuditLeaf(ctx, 0)
		if errors.Is(err, store.ErrNotFound) {
			return WindowResult{Faults: []LeafFault{{Index: 0, Reason: ReasonLeafMissing}}}, nil
		}
		if err != nil {
			return WindowResult{}, err
		}
		older = l.Older
	}
	// One more on each side, whose proved times bound the window.
	first, end := lo, hi
	if first > 0 {
		first--
	}
	if end < size {
		end++
	}
	// Exact reads, a few at once: the store answers each from its _id
	// index, and the reads wait on it rather than on the CPU.
	chunks := make([][]*store.AuditLeaf, windowReaders)
	step := (end - first + windowReaders - 1) / windowReaders
	err = parallel(windowReaders, func(i int) (err error) {
		from := min(first+uint64(i)*step, end)
		chunks[i], err = readLeaves(ctx, st, from, min(from+step, end))
		return err
	})
	if err != nil {
		return WindowResult{}, err
	}
	var leaves []*store.AuditLeaf
	for i, c := range chunks {
		leaves = append(leaves, c...)
		if from := min(first+uint64(i)*step, end); uint64(len(c)) < min(from+step, end)-from {
			return WindowResult{Faults: []LeafFault{{Index: from + uint64(len(c)), Reason: ReasonLeafMissing}}}, nil
		}
	}
	if f, err := pr.proveRange(ctx, first, end, leaves); err != nil || f != nil {
		return WindowResult{Faults: f}, err
	}
	events := make([]Event, len(leaves))
	eventFaults := make([]*LeafFault, len(leaves))
	err = parallel(windowReaders, func(w int) error {
		for i := w; i < len(leaves); i += windowReaders {
			var err error
			if events[i], eventFaults[i], err = leafEvent(ctx, st, leaves[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return WindowResult{}, err
	}
	for i, l := range leaves {
		e := events[i]
		if eventFaults[i] != nil {
			faults = append(faults, *eventFaults[i])
			continue
		}
		t := e.Time.UnixNano()
		switch {
		case l.Index < lo && t >= from-skew, l.Index >= hi && t < to+skew:
			faults = append(faults, LeafFault{Index: l.Index, Event: l.Event, Chain: e.Chain, Seq: e.Seq, Reason: ReasonBoundary})
		case t >= from && t < to:
			if err := fn(e); err != nil {
				return WindowResult{}, err
			}
		}
	}
	return WindowResult{Faults: faults, Complete: true, Older: older}, nil
}

// windowReaders is how many exact reads Window has waiting at once.
const windowReaders = 4

// parallel runs f(0) to f(n-1) at once and returns the first error.
func parallel(n int, f func(int) error) error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = f(i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func faultList(f *LeafFault) []LeafFault {
	if f == nil {
		return nil
	}
	return []LeafFault{*f}
}

// firstAtOrAfter is the first leaf in [lo, hi) whose stored time is at or
// after t (hi when none), by binary search with exact reads.
func firstAtOrAfter(ctx context.Context, st *store.Store, lo, hi uint64, t int64) (uint64, *LeafFault, error) {
	for lo < hi {
		mid := lo + (hi-lo)/2
		l, err := st.GetAuditLeaf(ctx, mid)
		if errors.Is(err, store.ErrNotFound) {
			return 0, &LeafFault{Index: mid, Reason: ReasonLeafMissing}, nil
		}
		if err != nil {
			return 0, nil, err
		}
		if l.Time < t {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo, nil, nil
}

// readLeaves reads leaves [from, end), stopping at the first missing.
func readLeaves(ctx context.Context, st *store.Store, from, end uint64) ([]*store.AuditLeaf, error) {
	const page = 512
	var out []*store.AuditLeaf
	for i := from; i < end; {
		ls, err := st.ListAuditLeaves(ctx, i, int(min(page, end-i)))
		if err != nil {
			return nil, err
		}
		out = append(out, ls...)
		i += uint64(len(ls))
		if len(ls) == 0 {
			break
		}
	}
	return out, nil
}

// proveRange recomputes the root of the proved tree from the stored nodes
// left of first, the leaves' own hashes, and the stored nodes right of end:
// equal to the proved root, the leaves' hashes are those the checkpoint
// signed (or the current tree holds, past it). If not, it names the leaves
// that no inclusion proof holds: the one changed, and those whose proof
// passes through it (hashes alone cannot tell them apart).
func (pr *Prover) proveRange(ctx context.Context, first, end uint64, leaves []*store.AuditLeaf) ([]LeafFault, error) {
	p := pr.p
	left, err := p.n.hashes(ctx, compact.RangeNodes(0, first, nil))
	if err != nil && !errors.Is(err, errTreeDamaged) {
		return nil, err
	}
	right, rerr := p.n.hashes(ctx, compact.RangeNodes(end, p.size, nil))
	if rerr != nil && !errors.Is(rerr, errTreeDamaged) {
		return nil, rerr
	}
	if err == nil && rerr == nil {
		r, err := rangeFactory.NewRange(0, first, left)
		if err != nil {
			return nil, err
		}
		for _, l := range leaves {
			if err := r.Append(l.Hash, nil); err != nil {
				return nil, err
			}
		}
		rest, err := rangeFactory.NewRange(end, p.size, right)
		if err != nil {
			return nil, err
		}
		if err := r.AppendRange(rest, nil); err != nil {
			return nil, err
		}
		root, err := r.GetRootHash(nil)
		if err != nil {
			return nil, err
		}
		if root == nil {
			root = Hasher.EmptyRoot()
		}
		if bytes.Equal(root, p.root) {
			return nil, nil
		}
	}
	// Find the leaves at fault.
	var faults []LeafFault
	for _, l := range leaves {
		pf, err := proof.Inclusion(l.Index, p.size)
		if err != nil {
			return nil, err
		}
		hashes, err := p.n.hashes(ctx, pf.IDs)
		if err == nil {
			var path [][]byte
			if path, err = pf.Rehash(hashes, Hasher.HashChildren); err == nil {
				err = proof.VerifyInclusion(Hasher, l.Index, p.size, l.Hash, path, p.root)
			}
		}
		if err != nil {
			f := LeafFault{Index: l.Index, Event: l.Event, Reason: ReasonNotInTree}
			f.Chain, f.Seq = splitEventID(l.Event)
			faults = append(faults, f)
		}
	}
	if len(faults) == 0 {
		// Every leaf proves on its own: a stored node outside the range
		// is bad.
		faults = []LeafFault{{Index: first, Reason: ReasonNotInTree}}
	}
	return faults, nil
}

// leafEvent reads the event leaf l names and checks it is intact and hashes
// to the leaf.
func leafEvent(ctx context.Context, st *store.Store, l *store.AuditLeaf) (Event, *LeafFault, error) {
	fault := &LeafFault{Index: l.Index, Event: l.Event}
	fault.Chain, fault.Seq = splitEventID(l.Event)
	se, err := st.GetAuditEventByID(ctx, l.Event)
	if errors.Is(err, store.ErrNotFound) {
		fault.Reason = ReasonEventMissing
		return Event{}, fault, nil
	}
	if err != nil {
		return Event{}, nil, err
	}
	e := fromStore(se)
	want, herr := LeafHash(e.Hash)
	switch {
	case Hash(e) != e.Hash, herr != nil, !bytes.Equal(want, l.Hash):
		fault.Reason = ReasonChanged
	case e.ID() != l.Event:
		fault.Reason = ReasonOutOfPlace
	default:
		return e, nil, nil
	}
	return Event{}, fault, nil
}

// splitEventID reads chain and seq from an event's id (store.AuditEventID);
// seq 0 when it is not one.
func splitEventID(id string) (string, int64) {
	i := strings.LastIndexByte(id, '/')
	if i < 0 {
		return "", 0
	}
	seq, err := strconv.ParseInt(id[i+1:], 10, 64)
	if err != nil {
		return "", 0
	}
	return id[:i], seq
}

// String names the fault: leaf, event, reason.
func (f LeafFault) String() string {
	if f.Event == "" {
		return fmt.Sprintf("leaf %d: %s", f.Index, f.Reason)
	}
	return fmt.Sprintf("leaf %d (event %s): %s", f.Index, f.Event, f.Reason)
}
