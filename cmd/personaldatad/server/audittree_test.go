package server_test

import (
	"slices"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/example/personaldata/cmd/personaldatad/server"
	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/audit/checkpoint"
)

const (
	createCheckpoint = "personaldata.v1.AuditService/CreateAuditCheckpoint"
	latestCheckpoint = "personaldata.v1.AuditService/GetLatestAuditCheckpoint"
	proveInclusion   = "personaldata.v1.AuditService/ProveAuditInclusion"
	proveConsistency = "personaldata.v1.AuditService/ProveAuditConsistency"
	listTreeLeaves   = "personaldata.v1.AuditService/ListAuditTreeLeaves"
)

// Every audited call's event is a leaf of the tree; a checkpoint signs it
// in the signed-note format, and the proofs the API gives verify with the
// transparency-dev library against it, over gRPC and REST. Sizes beyond
// the tree are refused naming the field.
func TestAuditCheckpointsAndProofs(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		op := e.as(c, e.operator)
		callErr(t, op, latestCheckpoint, &pdv1.GetLatestAuditCheckpointRequest{}, &pdv1.GetLatestAuditCheckpointResponse{}, codes.NotFound)
		sub := auditSubject(t, e, c, 71)
		cp := call(t, op, createCheckpoint, &pdv1.CreateAuditCheckpointRequest{}, &pdv1.CreateAuditCheckpointResponse{}).GetCheckpoint()
		opened, err := checkpoint.Open([]byte(cp.GetSignedNote()), server.DefaultAuditOrigin, cp.GetVerifierKey())
		if err != nil || opened.Size != uint64(cp.GetTreeSize()) || cp.GetTreeSize() < 1 || !slices.Equal(opened.Root, cp.GetRootHash()) {
			t.Fatalf("checkpoint %v does not open: %+v, %v", cp, opened, err)
		}
		latest := call(t, op, latestCheckpoint, &pdv1.GetLatestAuditCheckpointRequest{}, &pdv1.GetLatestAuditCheckpointResponse{}).GetCheckpoint()
		if latest.GetSignedNote() != cp.GetSignedNote() {
			t.Errorf("latest %v, want %v", latest, cp)
		}
		// More events after it.
		auditSubject(t, e, c, 72)
		chain := "subjects/" + sub.GetSubjectId()
		res := call(t, op, verifyAuditChain, &pdv1.VerifyAuditChainRequest{Chain: chain}, &pdv1.VerifyAuditChainResponse{})
		if !res.GetIntact() || res.GetCheckpointSize() != cp.GetTreeSize() {
			t.Errorf("VerifyAuditChain: %v, want intact against checkpoint %d", res, cp.GetTreeSize())
		}

		// The subject's first event, in the checkpoint's tree and in the
		// current one.
		for _, size := range []int64{cp.GetTreeSize(), 0} {
			inc := call(t, op, proveInclusion, &pdv1.ProveAuditInclusionRequest{Chain: chain, Seq: 1, TreeSize: size}, &pdv1.ProveAuditInclusionResponse{})
			leaf, _ := checkpoint.LeafHash(inc.GetEvent().GetHash())
			if err := proof.VerifyInclusion(checkpoint.Hasher, uint64(inc.GetLeafIndex()), uint64(inc.GetTreeSize()), leaf, inc.GetHashes(), inc.GetRootHash()); err != nil {
				t.Errorf("inclusion at size %d: %v", size, err)
			}
			if size != 0 && !slices.Equal(inc.GetRootHash(), cp.GetRootHash()) {
				t.Errorf("the root at the checkpoint's size is not the checkpoint's")
			}
		}
		cons := call(t, op, proveConsistency, &pdv1.ProveAuditConsistencyRequest{FromSize: cp.GetTreeSize()}, &pdv1.ProveAuditConsistencyResponse{})
		if cons.GetToSize() <= cp.GetTreeSize() {
			t.Errorf("the tree did not grow: %v", cons)
		}
		if err := proof.VerifyConsistency(checkpoint.Hasher, uint64(cp.GetTreeSize()), uint64(cons.GetToSize()), cons.GetHashes(), cp.GetRootHash(), cons.GetToRootHash()); err != nil {
			t.Errorf("consistency: %v", err)
		}
		leaves := call(t, op, listTreeLeaves, &pdv1.ListAuditTreeLeavesRequest{FromIndex: 0, PageSize: 1000}, &pdv1.ListAuditTreeLeavesResponse{})
		if int64(len(leaves.GetLeaves())) != leaves.GetTreeSize() || leaves.GetNextLeafIndex() != leaves.GetTreeSize() {
			t.Errorf("leaves: %d of %d, next %d", len(leaves.GetLeaves()), leaves.GetTreeSize(), leaves.GetNextLeafIndex())
		}
		for _, l := range leaves.GetLeaves() {
			if l.GetEvent() == nil || !l.GetEventHashValid() {
				t.Errorf("leaf %d: event %s missing or not intact", l.GetIndex(), l.GetEventId())
			}
		}

		// Sizes beyond the tree, named.
		huge := leaves.GetTreeSize() + 1000
		for _, tc := range []struct {
			method    string
			req, resp proto.Message
			field     string
		}{
			{proveConsistency, &pdv1.ProveAuditConsistencyRequest{FromSize: huge}, &pdv1.ProveAuditConsistencyResponse{}, "from_size"},
			{proveConsistency, &pdv1.ProveAuditConsistencyRequest{FromSize: 1, ToSize: huge}, &pdv1.ProveAuditConsistencyResponse{}, "to_size"},
			{proveInclusion, &pdv1.ProveAuditInclusionRequest{Chain: chain, Seq: 1, TreeSize: huge}, &pdv1.ProveAuditInclusionResponse{}, "tree_size"},
			{proveInclusion, &pdv1.ProveAuditInclusionRequest{Chain: chain}, &pdv1.ProveAuditInclusionResponse{}, "seq"},
			{listTreeLeaves, &pdv1.ListAuditTreeLeavesRequest{FromIndex: huge}, &pdv1.ListAuditTreeLeavesResponse{}, "from_index"},
			{listTreeLeaves, &pdv1.ListAuditTreeLeavesRequest{PageSize: 5000}, &pdv1.ListAuditTreeLeavesResponse{}, "page_size"},
		} {
			err := callErr(t, op, tc.method, tc.req, tc.resp, codes.InvalidArgument)
			if got := badFields(err); !slices.Equal(got, []string{tc.field}) {
				t.Errorf("%s: fields %v, want %s", tc.method, got, tc.field)
			}
		}
	})
}
