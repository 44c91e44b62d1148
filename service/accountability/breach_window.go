package accountability

import (
	"context"
	"maps"
	"slices"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/store"
)

// TreeChain names, in a breach report, the entry for faults of the Merkle
// tree itself that no chain can be named for (a leaf missing, the tree not
// extending the checkpoint). Its FirstBrokenSeq counts leaves from 1.
const TreeChain = "~tree"

// breachWindow is a time window's events as the tree's leaves hold them
// (audit.Prover.Window), read once for both passes of a report.
type breachWindow struct {
	// complete: the leaves were read as one proved range, so chains hold
	// every chain with an event in scope or a leaf at fault, in chain
	// order; else the report scans the events as before.
	complete bool
	chains   []*pdv1.BreachChainImpact
	// tree reports the faults no chain is named for; nil when none.
	tree *pdv1.BreachChainImpact
}

// readWindow reads sc's window from the tree's leaves, when sc has a
// window and no master key version (nil otherwise): complete, so an event
// deleted or changed in the window is reported at its chain (which the
// leaf names), not silently left out.
func (s *Breach) readWindow(ctx context.Context, sc breachScope) (*breachWindow, error) {
	if sc.keyVersion != 0 || sc.from == 0 {
		return nil, nil
	}
	pr, err := s.AuditLog.NewProver(ctx)
	if err != nil {
		return nil, err
	}
	tallies := map[string]*chainTally{}
	add := func(e audit.Event) error {
		if e.Chain == audit.ReadinessChain || (sc.principal != "" && e.Principal != sc.principal) {
			return nil
		}
		t := tallies[e.Chain]
		if t == nil {
			t = newChainTally(e.Chain)
			tallies[e.Chain] = t
		}
		t.add(e)
		return nil
	}
	res, err := pr.Window(ctx, sc.from, sc.to, add)
	if err != nil {
		return nil, err
	}
	// Events from before the tree began, which have no leaves: their
	// chains are verified whole below.
	older := map[string]bool{}
	if res.Complete && res.Older {
		err := s.AuditLog.Scan(ctx, store.AuditScan{Principal: sc.principal, From: sc.from, To: sc.to}, func(e audit.Event) error {
			if e.Leaf >= 0 {
				return nil // read from its leaf
			}
			older[e.Chain] = true
			return add(e)
		})
		if err != nil {
			return nil, err
		}
	}
	w := &breachWindow{complete: res.Complete}
	first := map[string]audit.LeafFault{}
	for _, f := range res.Faults {
		if f.Chain == "" {
			if w.tree == nil {
				w.tree = &pdv1.BreachChainImpact{Chain: TreeChain, Check: &pdv1.BreachChainCheck{
					FirstBrokenSeq: int64(f.Index) + 1, Reason: f.Reason, LeafIndex: int64(f.Index), CheckpointSize: int64(pr.Checkpoint())}}
			}
			continue
		}
		if g, ok := first[f.Chain]; !ok || f.Seq < g.Seq {
			first[f.Chain] = f
		}
	}
	if !res.Complete {
		return w, nil
	}
	for chain := range first {
		if tallies[chain] == nil {
			tallies[chain] = newChainTally(chain) // its events are gone: named all the same
		}
	}
	for _, chain := range slices.Sorted(maps.Keys(tallies)) {
		t := tallies[chain]
		ci := t.proto()
		check := &pdv1.BreachChainCheck{Intact: true, Events: t.events, LeafIndex: -1, CheckpointSize: int64(pr.Checkpoint())}
		if f, ok := first[chain]; ok {
			check.Intact, check.FirstBrokenSeq, check.Reason, check.LeafIndex = false, f.Seq, f.Reason, int64(f.Index)
			check.Events = int64(len(slices.DeleteFunc(slices.Clone(t.evs), func(e audit.Event) bool { return e.Seq >= f.Seq })))
		}
		if older[chain] {
			r, err := s.AuditLog.Verify(ctx, chain)
			if err != nil {
				return nil, err
			}
			check = &pdv1.BreachChainCheck{Intact: r.Intact() && check.Intact, Events: t.events, FirstBrokenSeq: r.FirstBroken,
				Reason: r.Reason, LeafIndex: r.Leaf, CheckpointSize: int64(r.Checkpoint)}
			if check.FirstBrokenSeq == 0 && !check.Intact {
				check.FirstBrokenSeq, check.Reason, check.LeafIndex = first[chain].Seq, first[chain].Reason, int64(first[chain].Index)
			}
		}
		ci.Check = check
		w.chains = append(w.chains, ci)
	}
	return w, nil
}
