// Package jobs runs the long calls that go through many subjects (a
// controller's bulk erasure, a policy notice to everyone, a breach's
// notices) as recorded, resumable jobs: a call with the same idempotency
// key resumes after the last subject recorded, and progress counts each
// subject once. It decides nothing about the subjects; the step it runs on
// each is the caller's.
package jobs
