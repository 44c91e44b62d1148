package keys

import (
	"errors"
	"fmt"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/fault"
	"github.com/example/personaldata/service/validate"
	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/envelope"
)

// KeyRotation implements KeyService.
type KeyRotation struct {
	pdv1.UnimplementedKeyServiceServer
	*Service
}

// KeyRotation returns the KeyService on the same store and keys.
func (s *Service) KeyRotation() *KeyRotation { return &KeyRotation{Service: s} }

// rotationBatch is how many data keys one read of the walk returns.
const rotationBatch = 200

// RotateDataKeys re-wraps every data key under the current master key
// version. Each key is re-wrapped atomically on its own document, so the
// service keeps serving, and a run can stop anywhere and be resumed.
func (s *KeyRotation) RotateDataKeys(req *pdv1.RotateDataKeysRequest, stream grpc.ServerStreamingServer[pdv1.RotateDataKeysResponse]) error {
	ctx := stream.Context()
	if req.GetResumeAfter() != "" && !validate.ControllerPattern.MatchString(req.GetResumeAfter()) {
		return validate.Violations{{Field: "resume_after", Description: "is not a subject id"}}.Err()
	}
	s.Vault.Keys.ReloadNow()
	ring := s.Vault.Keys.Ring()
	total, err := s.Store.CountDataKeys(ctx)
	if err != nil {
		return s.Internal(ctx, "rotate keys", err)
	}
	progress := &pdv1.RotateDataKeysResponse{CurrentVersion: ring.Current(), Total: total, ResumeAfter: req.GetResumeAfter()}
	for pass := 1; ; pass++ {
		if err := s.rotationPass(stream, ring, progress); err != nil {
			return err
		}
		// Keys made meanwhile under an older version (by a replica that
		// had not yet read the new one) sort anywhere: walk again until a
		// count finds none, so that the old version can then be removed.
		left, err := s.Store.CountDataKeysNotAt(ctx, ring.Current())
		if err != nil {
			return s.Internal(ctx, "rotate keys", err)
		}
		if left == 0 {
			progress.Finished = true
			progress.Total = max(progress.Total, progress.Done)
			return stream.Send(progress)
		}
		if pass == maxRotationPasses {
			return fault.WithDetails(codes.Aborted, fmt.Sprintf("%d data keys are still under an older master key version; run the rotation again", left),
				fault.ErrorInfo(fault.ReasonRotationUnfinished, map[string]string{"keys_left": strconv.FormatInt(left, 10)}))
		}
		progress.ResumeAfter = ""
	}
}

// maxRotationPasses bounds the walks of one rotation.
const maxRotationPasses = 5

// rotationPass walks the data keys after progress.ResumeAfter once,
// re-wrapping each, and sends progress after every batch.
func (s *KeyRotation) rotationPass(stream grpc.ServerStreamingServer[pdv1.RotateDataKeysResponse], ring *envelope.Keyring, progress *pdv1.RotateDataKeysResponse) error {
	ctx := stream.Context()
	for {
		batch, err := s.Store.DataKeysAfter(ctx, progress.ResumeAfter, rotationBatch)
		if err != nil {
			return s.Internal(ctx, "rotate keys", err)
		}
		for _, k := range batch {
			rewrapped, err := s.rewrap(stream, ring, k.ID)
			if err != nil {
				return err
			}
			if rewrapped {
				progress.Rewrapped++
			}
			progress.Done++
			progress.ResumeAfter = k.ID
		}
		if len(batch) < rotationBatch {
			return nil
		}
		if err := stream.Send(progress); err != nil {
			return err
		}
	}
}

// errCurrent stops an update of a key that is current already.
var errCurrent = errors.New("current")

// rewrap moves one data key to the current master key version.
func (s *KeyRotation) rewrap(stream grpc.ServerStreamingServer[pdv1.RotateDataKeysResponse], ring *envelope.Keyring, id string) (bool, error) {
	ctx := stream.Context()
	_, err := s.Store.UpdateDataKey(ctx, id, func(k *store.DataKey) error {
		w, changed, err := ring.Rewrap(envelope.WrappedKey{Version: k.KeyVersion, Ciphertext: k.Wrapped})
		if err != nil {
			return fmt.Errorf("rewrap data key of %s: %w", id, err)
		}
		if !changed {
			return errCurrent
		}
		k.KeyVersion, k.Wrapped = w.Version, w.Ciphertext
		return nil
	})
	switch {
	case errors.Is(err, errCurrent), errors.Is(err, store.ErrNotFound): // erased meanwhile
		return false, nil
	case err != nil:
		return false, s.Internal(ctx, "rotate keys", err)
	}
	return true, nil
}
