package service

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"

	"google.golang.org/grpc"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/store"
)

// bulkPageSize is how many subjects one read of a controller's subjects
// returns. On the embedded store every read scans the collection, so pages
// are large.
const bulkPageSize = 200

// Job kinds and states, as stored.
const (
	jobKindEraseController = "ERASE_CONTROLLER_SUBJECTS"
	jobRunning             = "RUNNING"
	jobFinished            = "FINISHED"
)

// Export resume tokens are opaque to callers: the customer, how many
// subjects were sent and the id of the last one, so a token cannot be used
// on another customer's export and the count goes on where it stopped.
func encodeExportToken(customer string, done int64, lastID string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(customer + "/" + strconv.FormatInt(done, 10) + "/" + lastID))
}

func decodeExportToken(token, customer string) (int64, string, bool) {
	if token == "" {
		return 0, "", true
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return 0, "", false
	}
	parts := strings.Split(string(b), "/")
	if len(parts) != 3 || parts[0] != customer || !controllerPattern.MatchString(parts[2]) {
		return 0, "", false
	}
	done, err := strconv.ParseInt(parts[1], 10, 64)
	return done, parts[2], err == nil && done > 0
}

// ExportControllerSubjects streams everything held about every subject of a
// customer, erased ones as their tombstones, in subject id order: each as
// the pages of its access document, one a message, so that no message is too
// large whatever a subject holds. It needs no agreement in force: returning
// the data is what the end of one requires.
func (s *Agreements) ExportControllerSubjects(req *pdv1.ExportControllerSubjectsRequest, stream grpc.ServerStreamingServer[pdv1.ExportControllerSubjectsResponse]) error {
	ctx := stream.Context()
	var v violations
	customer := v.customerID("customer_id", req.GetCustomerId())
	done, after, ok := decodeExportToken(req.GetResumeToken(), customer)
	if !ok {
		v.add("resume_token", "is not a token from an export of this customer")
	}
	if err := v.err(); err != nil {
		return err
	}
	if _, err := s.actsFor(ctx, customer, customerNotFound); err != nil {
		return err
	}
	total, err := s.store.CountSubjectsOfController(ctx, customer)
	if err != nil {
		return s.internal(ctx, "export", err)
	}
	// Read once: the purposes and retention each document states.
	agreements, err := s.agreementsOf(ctx, customer)
	if err != nil {
		return err
	}
	token := req.GetResumeToken()
	for {
		page, err := s.vault.subjectsOfController(ctx, customer, after, bulkPageSize)
		if err != nil {
			return s.internal(ctx, "export", err)
		}
		for _, sub := range page {
			// On the trail before the data leaves (Send writes it); no
			// trail, no data.
			audit.Note(ctx, audit.Touch{SubjectID: sub.ID, Tenant: sub.Controller, Fields: append([]string{"export"}, personFields...)})
			for c := (accessCursor{}); c.list != listEnd; {
				var doc *pdv1.AccessSubjectResponse
				if doc, c, err = s.accessPage(ctx, sub, agreements, c); err != nil {
					return s.internal(ctx, "export", err)
				}
				if c.list == listEnd {
					done++
					after = sub.ID
					token = encodeExportToken(customer, done, sub.ID)
				}
				if err := stream.Send(&pdv1.ExportControllerSubjectsResponse{
					Subject:     doc,
					Done:        done,
					Total:       max(total, done), // subjects created during the export
					ResumeToken: token,
				}); err != nil {
					return err
				}
			}
			audit.Sent(ctx)
		}
		if len(page) < bulkPageSize {
			return nil
		}
	}
}

// eraseJobID derives a bulk erasure's job id from the customer and the
// idempotency key, so a retry finds the job its first attempt started.
func (s *Agreements) eraseJobID(customer, key string) string {
	return s.derivedID("erase-job", customer, key)
}

// EraseControllerSubjects erases every subject of a customer, as
// EraseSubject erases one, streaming progress. The job is recorded, and a
// call with the same idempotency key resumes it after the last subject it
// recorded; once finished, it only reports that. Two calls that run at once
// do no harm: erasing an erased subject writes nothing, and progress counts
// each subject once, in id order.
func (s *Agreements) EraseControllerSubjects(req *pdv1.EraseControllerSubjectsRequest, stream grpc.ServerStreamingServer[pdv1.EraseControllerSubjectsResponse]) error {
	ctx := stream.Context()
	var v violations
	key := v.idempotencyKey(req.GetIdempotencyKey())
	customer := v.customerID("customer_id", req.GetCustomerId())
	ground := v.enum("ground", req.GetGround())
	ref := v.text("reference", req.GetReference(), maxReferenceLen, false, false)
	if err := v.err(); err != nil {
		return err
	}
	c, err := s.actsFor(ctx, customer, customerNotFound)
	if err != nil {
		return err
	}
	fp := s.fingerprint(req)
	id := s.eraseJobID(customer, key)
	job, err := s.startOrResume(ctx, &store.Job{ID: id, Kind: jobKindEraseController, Customer: customer, Ground: ground, Reference: ref, Principal: c.ID(), Fingerprint: fp})
	if err != nil {
		return err
	}
	// Each subject records the job's erasure as its one operation.
	op := store.Op{Key: opKey("job:" + id), Fingerprint: fp}
	prov := provenance{reference: job.Reference, performedBy: c.ID()}
	if prov.reference == "" {
		prov.reference = "job " + id
	}
	return s.run(ctx, job, jobRun{
		op: "erase controller",
		step: func(ctx context.Context, sub *store.Subject) (bool, error) {
			if sub.Erasure != nil && !sub.CleanupPending {
				return false, nil
			}
			// On the trail before the change; no trail, no erasure.
			audit.Note(ctx, audit.Touch{SubjectID: sub.ID, Tenant: sub.Controller, Fields: append([]string{"erasure"}, erasedCategories...)})
			if err := audit.Flush(ctx); err != nil {
				return false, err
			}
			_, err := s.eraseStored(ctx, sub.ID, job.Ground, prov, op, s.now())
			return err == nil, err
		},
		progress: func(j *store.Job) error {
			return stream.Send(&pdv1.EraseControllerSubjectsResponse{JobId: j.ID, Done: j.Done, Total: j.Total, Finished: j.State == jobFinished})
		},
	})
}
