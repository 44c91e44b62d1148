package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/audit/checkpoint"
)

// errTrailTampered says the audit trail does not hold to a checkpoint; the
// exit status is 1.
var errTrailTampered = errors.New("audit trail does not hold to the checkpoint")

// maxCheckpointFile bounds what is read of a checkpoint file: a real one is
// a few hundred bytes.
const maxCheckpointFile = 64 << 10

// checkpointCheck is what verifyCheckpoint is given.
type checkpointCheck struct {
	file string
	// key is the log's verifier key (note form); empty: the server's, as
	// its latest checkpoint names it.
	key string
	// all re-checks every event, not only those since the checkpoint.
	all bool
}

// verifyCheckpoint holds the trail to a checkpoint kept outside the server:
// its signature, origin and key; a consistency proof from it to the tree
// now; then the events since it (every event with all), each recomputed
// into the tree from the checkpoint's own root to the proved one. Problems
// with the checkpoint itself are errors naming it; tampering is listed and
// is errTrailTampered.
func (a *app) verifyCheckpoint(ctx context.Context, cc grpc.ClientConnInterface, c checkpointCheck) error {
	data, err := readCheckpointFile(c.file)
	if err != nil {
		return err
	}
	client := pdv1.NewAuditServiceClient(cc)
	key := c.key
	if key == "" {
		latest, err := client.GetLatestAuditCheckpoint(ctx, &pdv1.GetLatestAuditCheckpointRequest{})
		if err != nil {
			return fmt.Errorf("the server's checkpoint key (give --key to check against a key you hold): %w", err)
		}
		key = latest.GetCheckpoint().GetVerifierKey()
	}
	v, err := note.NewVerifier(key)
	if err != nil {
		return fmt.Errorf("--key: not a verifier key (<origin>+<hash>+<key>): %w", err)
	}
	cp, err := checkpoint.OpenWith(data, v.Name(), v)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", c.file, err)
	}
	fmt.Fprintf(a.out, "checkpoint %s: origin %s, %d events, taken %s: signature good\n", c.file, cp.Origin, cp.Size, cp.Time.Format("2006-01-02 15:04:05Z07:00"))

	cons, err := client.ProveAuditConsistency(ctx, &pdv1.ProveAuditConsistencyRequest{FromSize: int64(cp.Size)})
	if status.Code(err) == codes.InvalidArgument {
		// The tree is smaller than the checkpoint: events were removed,
		// or an older copy of the audit database restored.
		fmt.Fprintf(a.out, "TAMPERED: the trail's tree is smaller than the checkpoint's %d events: %s\n", cp.Size, status.Convert(err).Message())
		return fmt.Errorf("%w: %s", errTrailTampered, c.file)
	}
	if err != nil {
		return err
	}
	to := uint64(cons.GetToSize())
	if err := proof.VerifyConsistency(checkpoint.Hasher, cp.Size, to, cons.GetHashes(), cp.Root, cons.GetToRootHash()); err != nil {
		fmt.Fprintf(a.out, "TAMPERED: the trail's tree of %d events does not extend the checkpoint's %d: %v\n", to, cp.Size, err)
		return fmt.Errorf("%w: %s", errTrailTampered, c.file)
	}
	fmt.Fprintf(a.out, "consistent: the tree of %d events extends the checkpoint's %d\n", to, cp.Size)

	from := cp.Size
	if c.all {
		from = 0
	}
	problems, checked, err := a.verifyLeaves(ctx, client, cp, from, to, cons.GetToRootHash())
	if err != nil {
		return err
	}
	if problems > 0 {
		return fmt.Errorf("%w: %s", errTrailTampered, c.file)
	}
	_, err = fmt.Fprintf(a.out, "intact: %d events from leaf %d verified against the checkpoint\n", checked, from)
	return err
}

// verifyLeaves recomputes the tree from leaf from to leaf to out of the
// leaves and their events, checking the root at the checkpoint's size and
// at to, and prints each event that is not the one its leaf stands for.
func (a *app) verifyLeaves(ctx context.Context, client pdv1.AuditServiceClient, cp *checkpoint.Checkpoint, from, to uint64, toRoot []byte) (problems int, checked uint64, err error) {
	factory := &compact.RangeFactory{Hash: checkpoint.Hasher.HashChildren}
	var rng *compact.Range
	report := func(format string, args ...any) {
		problems++
		fmt.Fprintf(a.out, "TAMPERED: "+format+"\n", args...)
	}
	checkRoot := func(size uint64, want []byte, what string) {
		root := checkpoint.Hasher.EmptyRoot()
		if size > 0 {
			root, _ = rng.GetRootHash(nil)
		}
		if !bytes.Equal(root, want) {
			report("the tree's first %d leaves do not hash to the root of %s: its nodes or leaves were rewritten", size, what)
		}
	}
	for next := from; next < to; {
		page, err := client.ListAuditTreeLeaves(ctx, &pdv1.ListAuditTreeLeavesRequest{FromIndex: int64(next), PageSize: 1000})
		if err != nil {
			return problems, checked, err
		}
		if rng == nil {
			if rng, err = factory.NewRange(0, next, page.GetRangeHashes()); err != nil {
				return problems, checked, fmt.Errorf("the tree's range before leaf %d: %w", next, err)
			}
			if next == cp.Size {
				checkRoot(next, cp.Root, "the checkpoint")
			}
		}
		if len(page.GetLeaves()) == 0 {
			report("leaves %d to %d are missing", next, to-1)
			return problems, checked, nil
		}
		for _, l := range page.GetLeaves() {
			if uint64(l.GetIndex()) >= to {
				break
			}
			checkLeaf(l, report)
			if err := rng.Append(l.GetLeafHash(), nil); err != nil {
				return problems, checked, err
			}
			checked++
			next = uint64(l.GetIndex()) + 1
			if next == cp.Size && from < cp.Size {
				checkRoot(next, cp.Root, "the checkpoint")
			}
		}
	}
	if rng == nil { // nothing since the checkpoint
		return problems, checked, nil
	}
	checkRoot(to, toRoot, "the tree the consistency proof proved")
	return problems, checked, nil
}

// checkLeaf reports an event that is not the one its leaf stands for.
func checkLeaf(l *pdv1.AuditTreeLeaf, report func(string, ...any)) {
	e := l.GetEvent()
	switch {
	case e == nil:
		report("leaf %d: event %s is missing", l.GetIndex(), l.GetEventId())
	case !l.GetEventHashValid():
		report("leaf %d: event %s was changed (its hash does not recompute)", l.GetIndex(), l.GetEventId())
	case eventID(e) != l.GetEventId():
		report("leaf %d: the event stored as %s names another place (%s)", l.GetIndex(), l.GetEventId(), eventID(e))
	default:
		leaf, err := checkpoint.LeafHash(e.GetHash())
		if err != nil || !bytes.Equal(leaf, l.GetLeafHash()) {
			report("leaf %d: event %s is not the event the tree holds there (rewritten with a recomputed hash, or put in its place)", l.GetIndex(), l.GetEventId())
		}
	}
}

// eventID is an event's id as the store names it: chain and zero-padded seq.
func eventID(e *pdv1.AuditEvent) string { return fmt.Sprintf("%s/%012d", e.GetChain(), e.GetSeq()) }

// readCheckpointFile reads a checkpoint, naming the file in every error.
func readCheckpointFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--checkpoint: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCheckpointFile+1))
	if err != nil {
		return nil, fmt.Errorf("--checkpoint: %w", err)
	}
	if len(data) > maxCheckpointFile {
		return nil, fmt.Errorf("checkpoint %s: %w: larger than %d bytes", path, checkpoint.ErrMalformed, maxCheckpointFile)
	}
	if strings.TrimSpace(string(data)) == "" {
		return nil, fmt.Errorf("checkpoint %s: %w: empty", path, checkpoint.ErrMalformed)
	}
	return data, nil
}
