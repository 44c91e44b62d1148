package core

import (
	"bytes"
	"context"
	"errors"

	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/validate"
	"github.com/example/personaldata/store"
)

// A job goes through every subject of a controller, in id order, doing one
// step on each, and streams its progress. It is recorded, so that a call
// with the same idempotency key resumes it after the last subject it
// recorded; once finished, a call only reports that. Two runs at once do no
// harm as long as the step may be done twice: progress counts each subject
// once.

// JobRun is one run of a job.
type JobRun struct {
	Op string // for errors: "erase controller"
	// Step does the job on one subject; acted says whether it did anything
	// (counted as queued, else skipped).
	Step     func(ctx context.Context, sub *store.Subject) (acted bool, err error)
	Progress func(*store.Job) error
	// Subjects, when set, pages through the job's own list of subjects
	// (in id order, after the one given) instead of the controller's.
	Subjects func(ctx context.Context, after string, limit int) ([]*store.Subject, error)
}

// StartOrResume returns the job with j's id, recording j if it is new; a
// job recorded by another request under the same key is KeyReused.
func (s *Service) StartOrResume(ctx context.Context, j *store.Job) (*store.Job, error) {
	job, err := s.Store.GetJob(ctx, j.ID)
	if errors.Is(err, store.ErrNotFound) {
		job, err = s.startJob(ctx, j)
	}
	if err != nil {
		return nil, s.Internal(ctx, j.Kind, err)
	}
	if !bytes.Equal(job.Fingerprint, j.Fingerprint) {
		return nil, validate.KeyReused()
	}
	return job, nil
}

// startJob records a new job over a controller's subjects (j.Customer), or
// over a list of its own (no Customer, j.Total given), or returns the one a
// concurrent call with the same id recorded first.
func (s *Service) startJob(ctx context.Context, j *store.Job) (*store.Job, error) {
	if j.Customer != "" {
		total, err := s.Store.CountSubjectsOfController(ctx, j.Customer)
		if err != nil {
			return nil, err
		}
		j.Total = total
	}
	now := s.Now().UnixNano()
	j.Version, j.State, j.StartedAt, j.UpdatedAt = 1, jobRunning, now, now
	err := s.Store.InsertJob(ctx, j)
	if errors.Is(err, store.ErrExists) {
		return s.Store.GetJob(ctx, j.ID)
	}
	return j, err
}

// Run goes through the job's subjects from where it stopped, then records
// it finished.
func (s *Service) Run(ctx context.Context, job *store.Job, r JobRun) error {
	if err := r.Progress(job); err != nil || job.State == JobFinished {
		return err
	}
	id, after := job.ID, job.LastSubjectID
	subjects := r.Subjects
	if subjects == nil {
		subjects = func(ctx context.Context, after string, limit int) ([]*store.Subject, error) {
			return s.Vault.SubjectsOfController(ctx, job.Customer, after, limit)
		}
	}
	for {
		page, err := subjects(ctx, after, BulkPageSize)
		if err != nil {
			return s.Internal(ctx, r.Op, err)
		}
		for _, sub := range page {
			acted, err := r.Step(ctx, sub)
			if err != nil {
				return err
			}
			after = sub.ID
			job, err = s.Store.UpdateJob(ctx, id, func(j *store.Job) error {
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
				j.UpdatedAt = s.Now().UnixNano()
				return nil
			})
			if err != nil {
				return s.Internal(ctx, r.Op, err)
			}
			if err := r.Progress(job); err != nil {
				return err
			}
			audit.Sent(ctx)
		}
		if len(page) < BulkPageSize {
			break
		}
	}
	job, err := s.Store.UpdateJob(ctx, id, func(j *store.Job) error {
		if j.State != JobFinished {
			j.State, j.FinishedAt = JobFinished, s.Now().UnixNano()
			j.UpdatedAt = j.FinishedAt
		}
		return nil
	})
	if err != nil {
		return s.Internal(ctx, r.Op, err)
	}
	return r.Progress(job)
}

// BulkPageSize is how many subjects one read of a controller's subjects
// returns. On the embedded store every read scans the collection, so pages
// are large.
const BulkPageSize = 200

// States of a job, as stored.
const (
	jobRunning  = "RUNNING"
	JobFinished = "FINISHED"
)
