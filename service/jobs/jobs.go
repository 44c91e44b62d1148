package jobs

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/fault"
	"github.com/example/personaldata/service/validate"
	"github.com/example/personaldata/service/vault"
	"github.com/example/personaldata/store"
)

// Runner runs jobs on the store.
type Runner struct {
	store *store.Store
	vault *vault.Vault
	now   func() time.Time
	log   *slog.Logger
}

// New returns a Runner on st, reading subjects through v, with the clock
// now, logging faults to log.
func New(st *store.Store, v *vault.Vault, now func() time.Time, log *slog.Logger) *Runner {
	return &Runner{store: st, vault: v, now: now, log: log}
}

// A job goes through every subject of a controller, in id order, doing one
// step on each, and streams its progress. It is recorded, so that a call
// with the same idempotency key resumes it after the last subject it
// recorded; once finished, a call only reports that. Two runs at once do no
// harm as long as the step may be done twice: progress counts each subject
// once.

// Run is one run of a job.
type Run struct {
	Op string // for errors: "erase controller"
	// Step does the job on one subject; acted says whether it did anything
	// (counted as queued, else skipped).
	Step func(ctx context.Context, sub *store.Subject) (acted bool, err error)
	// Progress reports the job as it stands, after each subject and at the
	// start and end (a stream sends it).
	Progress func(*store.Job) error
	// Subjects, when set, pages through the job's own list of subjects
	// (in id order, after the one given) instead of the controller's.
	Subjects func(ctx context.Context, after string, limit int) ([]*store.Subject, error)
}

// StartOrResume returns the job with j's id, recording j if it is new; a
// job recorded by another request under the same key is KeyReused.
func (s *Runner) StartOrResume(ctx context.Context, j *store.Job) (*store.Job, error) {
	job, err := s.store.GetJob(ctx, j.ID)
	if errors.Is(err, store.ErrNotFound) {
		job, err = s.startJob(ctx, j)
	}
	if err != nil {
		return nil, fault.Internal(ctx, s.log, j.Kind, err)
	}
	if !bytes.Equal(job.Fingerprint, j.Fingerprint) {
		return nil, validate.KeyReused()
	}
	return job, nil
}

// startJob records a new job over a controller's subjects (j.Customer), or
// over a list of its own (no Customer, j.Total given), or returns the one a
// concurrent call with the same id recorded first.
func (s *Runner) startJob(ctx context.Context, j *store.Job) (*store.Job, error) {
	if j.Customer != "" {
		total, err := s.store.CountSubjectsOfController(ctx, j.Customer)
		if err != nil {
			return nil, err
		}
		j.Total = total
	}
	now := s.now().UnixNano()
	j.Version, j.State, j.StartedAt, j.UpdatedAt = 1, running, now, now
	err := s.store.InsertJob(ctx, j)
	if errors.Is(err, store.ErrExists) {
		return s.store.GetJob(ctx, j.ID)
	}
	return j, err
}

// Run goes through the job's subjects from where it stopped, then records
// it finished.
func (s *Runner) Run(ctx context.Context, job *store.Job, r Run) error {
	if err := r.Progress(job); err != nil || job.State == Finished {
		return err
	}
	id, after := job.ID, job.LastSubjectID
	subjects := r.Subjects
	if subjects == nil {
		subjects = func(ctx context.Context, after string, limit int) ([]*store.Subject, error) {
			return s.vault.SubjectsOfController(ctx, job.Customer, after, limit)
		}
	}
	for {
		page, err := subjects(ctx, after, PageSize)
		if err != nil {
			return fault.Internal(ctx, s.log, r.Op, err)
		}
		for _, sub := range page {
			acted, err := r.Step(ctx, sub)
			if err != nil {
				return err
			}
			after = sub.ID
			job, err = s.store.UpdateJob(ctx, id, func(j *store.Job) error {
				if sub.ID > j.LastSubjectID { // else a concurrent run counted it
					j.LastSubjectID = sub.ID
					j.Done++
					if acted {
						j.Queued++
					} else {
						j.Skipped++
					}
				}
				j.Total = max(j.Total, j.Done) // subjects created during the job
				j.UpdatedAt = s.now().UnixNano()
				return nil
			})
			if err != nil {
				return fault.Internal(ctx, s.log, r.Op, err)
			}
			if err := r.Progress(job); err != nil {
				return err
			}
			audit.Sent(ctx)
		}
		if len(page) < PageSize {
			break
		}
	}
	job, err := s.store.UpdateJob(ctx, id, func(j *store.Job) error {
		if j.State != Finished {
			j.State, j.FinishedAt = Finished, s.now().UnixNano()
			j.UpdatedAt = j.FinishedAt
		}
		return nil
	})
	if err != nil {
		return fault.Internal(ctx, s.log, r.Op, err)
	}
	return r.Progress(job)
}

// PageSize is how many subjects one read of a controller's subjects
// returns, in a job and wherever else a controller's subjects are paged. On the embedded store every read scans the collection, so pages
// are large.
const PageSize = 200

// States of a job, as stored.
const (
	running  = "RUNNING"
	Finished = "FINISHED"
)
