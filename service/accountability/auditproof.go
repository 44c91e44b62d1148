package accountability

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/auth"
	"github.com/example/personaldata/service/fault"
	"github.com/example/personaldata/service/validate"
	"github.com/example/personaldata/store"
)

// The Merkle tree over the audit trail and its signed checkpoints
// (service/audit/tree.go, checkpoint.go): what a verifier outside the
// server needs to hold the trail to a checkpoint it keeps.

// checkpointsOn returns the checkpoints, or FAILED_PRECONDITION when the
// server signs none.
func (s *Audit) checkpointsOn() (*audit.Checkpoints, error) {
	if s.Checkpoints == nil {
		return nil, fault.FailedPrecondition("this server signs no checkpoints of the audit trail")
	}
	return s.Checkpoints, nil
}

// operator refuses callers that do not act for every tenant: the tree
// spans the whole trail.
func operator(ctx context.Context, s *Service) error {
	c, err := s.Caller(ctx)
	if err != nil {
		return err
	}
	if !c.ActsFor(auth.AllTenants) {
		return fault.PermissionDenied(fault.ReasonKindNotPermitted, nil, "the Merkle tree spans every tenant's events: it is for operators")
	}
	return nil
}

func (s *Audit) checkpointProto(cp *audit.Checkpoint) *pdv1.AuditCheckpoint {
	return &pdv1.AuditCheckpoint{
		Origin: cp.Origin, TreeSize: int64(cp.Size), RootHash: cp.Root, CreateTime: timestamppb.New(cp.Time),
		SignedNote: string(cp.Note), VerifierKey: s.Checkpoints.VerifierKey(),
	}
}

// GetLatestAuditCheckpoint returns the newest signed checkpoint.
func (s *Audit) GetLatestAuditCheckpoint(ctx context.Context, _ *pdv1.GetLatestAuditCheckpointRequest) (*pdv1.GetLatestAuditCheckpointResponse, error) {
	if err := operator(ctx, s.Service); err != nil {
		return nil, err
	}
	c, err := s.checkpointsOn()
	if err != nil {
		return nil, err
	}
	cp, err := c.Latest(ctx)
	if err != nil {
		return nil, s.Internal(ctx, "latest audit checkpoint", err)
	}
	if cp == nil {
		return nil, status.Error(codes.NotFound, "no checkpoint of the audit trail has been taken yet")
	}
	return &pdv1.GetLatestAuditCheckpointResponse{Checkpoint: s.checkpointProto(cp)}, nil
}

// CreateAuditCheckpoint signs, stores and pushes a checkpoint now.
func (s *Audit) CreateAuditCheckpoint(ctx context.Context, _ *pdv1.CreateAuditCheckpointRequest) (*pdv1.CreateAuditCheckpointResponse, error) {
	if err := operator(ctx, s.Service); err != nil {
		return nil, err
	}
	c, err := s.checkpointsOn()
	if err != nil {
		return nil, err
	}
	cp, err := c.Take(ctx)
	if err != nil {
		return nil, s.Internal(ctx, "take audit checkpoint", err)
	}
	return &pdv1.CreateAuditCheckpointResponse{Checkpoint: s.checkpointProto(cp)}, nil
}

// treeSize resolves a requested size (0: the current tree) and refuses one
// beyond the tree, naming the field.
func (s *Audit) treeSize(ctx context.Context, field string, asked int64) (uint64, []byte, error) {
	size, root, err := s.AuditLog.TreeHead(ctx)
	if err != nil {
		return 0, nil, s.Internal(ctx, "audit tree head", err)
	}
	switch {
	case asked < 0:
		return 0, nil, invalidField(field, "must not be negative")
	case uint64(asked) > size:
		return 0, nil, invalidField(field, fmt.Sprintf("is %d, larger than the audit trail's tree of %d leaves", asked, size))
	case asked == 0 || uint64(asked) == size:
		return size, root, nil
	}
	root, err = s.AuditLog.RootAt(ctx, uint64(asked))
	if err != nil {
		return 0, nil, s.Internal(ctx, "audit tree root", err)
	}
	return uint64(asked), root, nil
}

// invalidField is INVALID_ARGUMENT naming one field.
func invalidField(field, description string) error {
	var v validate.Violations
	v.Add(field, description)
	return v.Err()
}

// ProveAuditInclusion proves an event is a leaf of the tree.
func (s *Audit) ProveAuditInclusion(ctx context.Context, req *pdv1.ProveAuditInclusionRequest) (*pdv1.ProveAuditInclusionResponse, error) {
	c, err := s.Caller(ctx)
	if err != nil {
		return nil, err
	}
	if req.GetSeq() < 1 {
		return nil, invalidField("seq", "must be 1 or more")
	}
	if err := s.chainVisible(ctx, c, req.GetChain()); err != nil {
		return nil, err
	}
	size, root, err := s.treeSize(ctx, "tree_size", req.GetTreeSize())
	if err != nil {
		return nil, err
	}
	evs, err := s.AuditLog.List(ctx, req.GetChain(), req.GetSeq(), 1)
	if err != nil {
		return nil, s.Internal(ctx, "read audit event", err)
	}
	if len(evs) == 0 {
		return nil, status.Error(codes.NotFound, "no such event in the chain")
	}
	e := evs[0]
	if e.Leaf < 0 || uint64(e.Leaf) >= size {
		return nil, fault.FailedPrecondition("the event is not in the tree of that size (appended before the tree began, or after that size)")
	}
	leafHash, err := audit.LeafHash(e.Hash)
	if err != nil {
		return nil, s.Internal(ctx, "audit leaf hash", err)
	}
	hashes, err := s.AuditLog.InclusionProof(ctx, uint64(e.Leaf), size)
	if err != nil {
		return nil, s.Internal(ctx, "audit inclusion proof", err)
	}
	return &pdv1.ProveAuditInclusionResponse{
		Event: auditEventsToProto([]audit.Event{e})[0], LeafIndex: e.Leaf, LeafHash: leafHash,
		TreeSize: int64(size), RootHash: root, Hashes: hashes,
	}, nil
}

// ProveAuditConsistency proves the tree of to_size extends that of
// from_size.
func (s *Audit) ProveAuditConsistency(ctx context.Context, req *pdv1.ProveAuditConsistencyRequest) (*pdv1.ProveAuditConsistencyResponse, error) {
	if err := operator(ctx, s.Service); err != nil {
		return nil, err
	}
	to, root, err := s.treeSize(ctx, "to_size", req.GetToSize())
	if err != nil {
		return nil, err
	}
	from := req.GetFromSize()
	switch {
	case from < 0:
		return nil, invalidField("from_size", "must not be negative")
	case uint64(from) > to:
		return nil, invalidField("from_size", fmt.Sprintf("is %d, larger than the audit trail's tree of %d leaves", from, to))
	}
	hashes, err := s.AuditLog.ConsistencyProof(ctx, uint64(from), to)
	if err != nil {
		return nil, s.Internal(ctx, "audit consistency proof", err)
	}
	return &pdv1.ProveAuditConsistencyResponse{FromSize: from, ToSize: int64(to), ToRootHash: root, Hashes: hashes}, nil
}

// Page sizes of ListAuditTreeLeaves.
const (
	defaultLeafPage = 500
	maxLeafPage     = 1000
)

// ListAuditTreeLeaves pages through the leaves with their events.
func (s *Audit) ListAuditTreeLeaves(ctx context.Context, req *pdv1.ListAuditTreeLeavesRequest) (*pdv1.ListAuditTreeLeavesResponse, error) {
	if err := operator(ctx, s.Service); err != nil {
		return nil, err
	}
	var v validate.Violations
	size := req.GetPageSize()
	switch {
	case size < 0 || size > maxLeafPage:
		v.Add("page_size", fmt.Sprintf("must be from 0 to %d", maxLeafPage))
	case size == 0:
		size = defaultLeafPage
	}
	if req.GetFromIndex() < 0 {
		v.Add("from_index", "must not be negative")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	treeSize, _, err := s.AuditLog.TreeHead(ctx)
	if err != nil {
		return nil, s.Internal(ctx, "audit tree head", err)
	}
	from := uint64(req.GetFromIndex())
	if from > treeSize {
		return nil, invalidField("from_index", fmt.Sprintf("is %d, larger than the audit trail's tree of %d leaves", from, treeSize))
	}
	leaves, rng, err := s.AuditLog.LeafRange(ctx, from, int(size))
	if err != nil {
		return nil, s.Internal(ctx, "audit tree leaves", err)
	}
	out := &pdv1.ListAuditTreeLeavesResponse{RangeHashes: rng, TreeSize: int64(treeSize), NextLeafIndex: int64(from) + int64(len(leaves))}
	for _, l := range leaves {
		pl := &pdv1.AuditTreeLeaf{Index: int64(l.Index), LeafHash: l.Hash, EventId: l.Event}
		e, err := s.AuditLog.Get(ctx, l.Event)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return nil, s.Internal(ctx, "audit tree leaves", err)
		default:
			pl.Event = auditEventsToProto([]audit.Event{e})[0]
			pl.EventHashValid = audit.Hash(e) == e.Hash
		}
		out.Leaves = append(out.Leaves, pl)
	}
	if len(leaves) == 0 {
		out.NextLeafIndex = int64(treeSize)
	}
	return out, nil
}
