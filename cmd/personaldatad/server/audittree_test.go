package server_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/example/personaldata/cmd/personaldatad/server"
	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/audit/checkpoint"
	"github.com/example/personaldata/store"
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

// Checkpoints go to the directory and the URL configured; a push the URL
// refuses is counted, and /metrics shows the tree's size, the age of the
// latest checkpoint and the failed pushes.
func TestAuditCheckpointPushAndMetrics(t *testing.T) {
	var mu sync.Mutex
	var received []string
	fail := true
	witness := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		if fail {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		received = append(received, string(body))
	}))
	t.Cleanup(witness.Close)
	dir := t.TempDir()
	pushed := filepath.Join(dir, "pushed")
	clk := &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
	srv, _ := serve(t, dir, server.Config{
		Store: store.Config{DataDir: filepath.Join(dir, "data")}, Now: clk.Now,
		AuditCheckpoints: audit.CheckpointConfig{Origin: "example.se/personaldata", Dir: pushed, URL: witness.URL},
	}, slog.New(slog.DiscardHandler))
	op := grpcCaller{dial(t, srv), readToken(t, filepath.Join(dir, "operator.token"))}
	first := call(t, op, createCheckpoint, &pdv1.CreateAuditCheckpointRequest{}, &pdv1.CreateAuditCheckpointResponse{}).GetCheckpoint()
	mu.Lock()
	fail = false
	mu.Unlock()
	clk.Advance(time.Minute)
	second := call(t, op, createCheckpoint, &pdv1.CreateAuditCheckpointRequest{}, &pdv1.CreateAuditCheckpointResponse{}).GetCheckpoint()
	if !strings.HasPrefix(first.GetSignedNote(), "example.se/personaldata\n") {
		t.Errorf("origin: %q", first.GetSignedNote())
	}
	mu.Lock()
	if len(received) != 1 || received[0] != second.GetSignedNote() {
		t.Errorf("the URL received %q, want the second checkpoint", received)
	}
	mu.Unlock()
	for _, name := range []string{"checkpoint", fmt.Sprintf("checkpoint.%d", second.GetTreeSize())} {
		if b, err := os.ReadFile(filepath.Join(pushed, name)); err != nil || string(b) != second.GetSignedNote() {
			t.Errorf("%s in the directory: %q %v", name, b, err)
		}
	}
	clk.Advance(90 * time.Second)
	_, metrics := httpGet(t, "http://"+srv.HTTPAddr()+"/metrics")
	for _, want := range []string{
		"personaldata_audit_checkpoint_push_failures_total 1\n",
		"personaldata_audit_checkpoint_age_seconds 90\n",
		fmt.Sprintf("personaldata_audit_tree_size %d\n", second.GetTreeSize()),
		"personaldata_audit_checkpoints_total 2\n",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
