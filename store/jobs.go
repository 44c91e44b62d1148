package store

import (
	"context"
	"fmt"
)

// Job is a recorded bulk operation, such as the erasure of every subject of
// a controller at the end of a processor agreement. Its _id is derived from
// the request (controller and idempotency key), so a retry finds the job its
// first attempt started and resumes it after LastSubjectID.
type Job struct {
	ID      string `bson:"_id"`
	Version int64  `bson:"v"`
	Kind    string `bson:"kind"`
	// Customer is the controller whose subjects the job works on.
	Customer  string `bson:"customer"`
	Ground    string `bson:"ground,omitempty"`
	Reference string `bson:"reference,omitempty"`
	// Principal is who started the job.
	Principal string `bson:"principal"`
	// Fingerprint identifies the request that started the job, to tell a
	// retry from another request that reuses its idempotency key.
	Fingerprint []byte `bson:"fp"`
	State       string `bson:"state"`
	// Done counts the subjects processed, in _id order, up to and including
	// LastSubjectID; Total is how many there were when the job started.
	Done int64 `bson:"done"`
	// Queued and Skipped split Done for a job that queues messages.
	Queued        int64  `bson:"queued,omitempty"`
	Skipped       int64  `bson:"skipped,omitempty"`
	Total         int64  `bson:"total"`
	LastSubjectID string `bson:"last_subject_id,omitempty"`
	StartedAt     int64  `bson:"started_at"` // Unix nanoseconds
	UpdatedAt     int64  `bson:"updated_at"`
	FinishedAt    int64  `bson:"finished_at,omitempty"`
}

func (d *Job) version() *int64 { return &d.Version }

// GetJob reads a job by its id.
func (s *Store) GetJob(ctx context.Context, id string) (*Job, error) {
	var j Job
	if err := get(ctx, s.jobs, id, &j); err != nil {
		return nil, fmt.Errorf("store: get job: %w", err)
	}
	return &j, nil
}

// InsertJob records a new job; an existing id is ErrExists.
func (s *Store) InsertJob(ctx context.Context, j *Job) error {
	if err := s.insert(ctx, s.jobs, j); err != nil {
		return fmt.Errorf("store: insert job: %w", err)
	}
	return nil
}

// UpdateJob changes a job atomically, as UpdateSubject does.
func (s *Store) UpdateJob(ctx context.Context, id string, change func(*Job) error) (*Job, error) {
	return update(ctx, s, s.jobs, id, change)
}
