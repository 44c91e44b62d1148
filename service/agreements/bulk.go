package agreements

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/grpc"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/auth"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/fault"
	"github.com/example/personaldata/service/jobs"
	"github.com/example/personaldata/service/rules"
	"github.com/example/personaldata/service/subjects"
	"github.com/example/personaldata/service/validate"
	"github.com/example/personaldata/store"
)

// jobKindEraseController is the kind, as stored, of a job that erases a
// controller's subjects.
const jobKindEraseController = "ERASE_CONTROLLER_SUBJECTS"

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
	if len(parts) != 3 || parts[0] != customer || !validate.ControllerPattern.MatchString(parts[2]) {
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
	var v validate.Violations
	customer := validCustomerID(&v, "customer_id", req.GetCustomerId())
	done, after, ok := decodeExportToken(req.GetResumeToken(), customer)
	if !ok {
		v.Add("resume_token", "is not a token from an export of this customer")
	}
	if err := v.Err(); err != nil {
		return err
	}
	if _, err := s.actsFor(ctx, customer, customerNotFound); err != nil {
		return err
	}
	total, err := s.Store.CountSubjectsOfController(ctx, customer)
	if err != nil {
		return s.Internal(ctx, "export", err)
	}
	// Read once: the purposes and retention each document states.
	agreements, err := s.AgreementsOf(ctx, customer)
	if err != nil {
		return err
	}
	token := req.GetResumeToken()
	for {
		page, err := s.Vault.SubjectsOfController(ctx, customer, after, jobs.PageSize)
		if err != nil {
			return s.Internal(ctx, "export", err)
		}
		for _, sub := range page {
			// On the trail before the data leaves (Send writes it); no
			// trail, no data.
			audit.Note(ctx, audit.Touch{SubjectID: sub.ID, Tenant: sub.Controller, Fields: append([]string{"export"}, rules.PersonFields...)})
			for c := (subjects.AccessCursor{}); !c.Done(); {
				var doc *pdv1.AccessSubjectResponse
				if doc, c, err = s.subjects.AccessPage(ctx, sub, agreements, c); err != nil {
					return s.Internal(ctx, "export", err)
				}
				if c.Done() {
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
		if len(page) < jobs.PageSize {
			return nil
		}
	}
}

// eraseJobID derives a bulk erasure's job id from the customer and the
// idempotency key, so a retry finds the job its first attempt started.
func (s *Agreements) eraseJobID(customer, key string) string {
	return s.DerivedID("erase-job", customer, key)
}

// EraseControllerSubjects erases every subject of a customer, as
// EraseSubject erases one, streaming progress. The job is recorded, and a
// call with the same idempotency key resumes it after the last subject it
// recorded; once finished, it only reports that. Two calls that run at once
// do no harm: erasing an erased subject writes nothing, and progress counts
// each subject once, in id order.
func (s *Agreements) EraseControllerSubjects(req *pdv1.EraseControllerSubjectsRequest, stream grpc.ServerStreamingServer[pdv1.EraseControllerSubjectsResponse]) error {
	ctx := stream.Context()
	var v validate.Violations
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	customer := validCustomerID(&v, "customer_id", req.GetCustomerId())
	ground := v.Enum("ground", req.GetGround())
	ref := v.Text("reference", req.GetReference(), validate.MaxReferenceLen, false, false)
	var terminate int
	if t := req.GetTerminateAgreementId(); t != "" {
		var of string
		if of, terminate = validAgreementIDAt(&v, "terminate_agreement_id", t); of != "" && of != customer {
			v.Add("terminate_agreement_id", "must be an agreement of customer_id")
		}
	}
	if err := v.Err(); err != nil {
		return err
	}
	c, err := s.actsFor(ctx, customer, customerNotFound)
	if err != nil {
		return err
	}
	fp := s.Fingerprint(req)
	id := s.eraseJobID(customer, key)
	if err := s.endOfAgreement(ctx, c, customer, terminate, id, ref, fp); err != nil {
		return err
	}
	job, err := s.Jobs.StartOrResume(ctx, &store.Job{ID: id, Kind: jobKindEraseController, Customer: customer, Ground: ground, Reference: ref, Principal: c.ID(), Fingerprint: fp})
	if err != nil {
		return err
	}
	// Each subject records the job's erasure as its one operation.
	op := store.Op{Key: core.OpKey("job:" + id), Fingerprint: fp}
	prov := validate.Provenance{Reference: job.Reference, PerformedBy: c.ID()}
	if prov.Reference == "" {
		prov.Reference = "job " + id
	}
	return s.Jobs.Run(ctx, job, jobs.Run{
		Op: "erase controller",
		Step: func(ctx context.Context, sub *store.Subject) (bool, error) {
			if sub.Erasure != nil && !sub.CleanupPending {
				return false, nil
			}
			// On the trail before the change; no trail, no erasure.
			audit.Note(ctx, audit.Touch{SubjectID: sub.ID, Tenant: sub.Controller, Fields: append([]string{"erasure"}, rules.ErasedCategories...)})
			if err := audit.Flush(ctx); err != nil {
				return false, err
			}
			_, err := s.subjects.EraseStored(ctx, sub.ID, job.Ground, prov, op, s.Now())
			return err == nil, err
		},
		Progress: func(j *store.Job) error {
			return stream.Send(&pdv1.EraseControllerSubjectsResponse{JobId: j.ID, Done: j.Done, Total: j.Total, Finished: j.State == jobs.Finished})
		},
	})
}

// endOfAgreement applies the bound on who may erase a customer's subjects,
// before a bulk erasure starts or resumes. The customer's own controller
// principal may erase its data at any time: the data is the customer's. Any
// other caller (an operator) may only at the end of the customer's
// agreements: when none is in force or yet to come into force, once the one
// terminate names (if any) is terminated. That termination is made here, in
// the same audited call, after every check and before the erasure starts,
// as TerminateProcessorAgreement would make it (now, with the erasure's
// reference), and only by a caller that may call that RPC.
func (s *Agreements) endOfAgreement(ctx context.Context, c *auth.Caller, customer string, terminate int, jobID, ref string, fp []byte) error {
	terminateRPC := pdv1.ProcessorAgreementService_TerminateProcessorAgreement_FullMethodName
	if terminate != 0 && !c.MayCall(terminateRPC) {
		return fault.PermissionDenied(fault.ReasonRPCNotPermitted, map[string]string{"method": terminateRPC, "field": "terminate_agreement_id"},
			fmt.Sprintf("principal %s may not terminate a processor agreement: leave terminate_agreement_id empty, or ask an operator to terminate the agreement", c.ID()))
	}
	if c.Principal.Kind == pdv1.PrincipalKind_PRINCIPAL_KIND_CUSTOMER_CONTROLLER.String() {
		return nil
	}
	// A retry that reuses the key of another erasure is refused before
	// anything is terminated.
	if job, err := s.Store.GetJob(ctx, jobID); err == nil && !bytes.Equal(job.Fingerprint, fp) {
		return validate.KeyReused()
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return s.Internal(ctx, "erase controller", err)
	}
	set, err := s.Store.GetAgreements(ctx, customer)
	if err != nil {
		return s.Internal(ctx, "erase controller", err)
	}
	if terminate != 0 && findAgreement(set, terminate) == nil {
		return agreementNotFound()
	}
	now := s.Now().UnixNano()
	var open []string
	var named string
	for i := range set.Agreements {
		a := &set.Agreements[i]
		id := rules.AgreementIDOf(customer, a.Seq)
		switch rules.AgreementState(a, now) {
		case pdv1.AgreementState_AGREEMENT_STATE_IN_FORCE:
			if a.Seq == terminate {
				named = id
				continue
			}
			open = append(open, id+" is in force")
		case pdv1.AgreementState_AGREEMENT_STATE_PENDING:
			if a.Seq == terminate {
				named = id
				continue
			}
			open = append(open, id+" comes into force at "+core.RFC3339(a.Current().InForceFrom))
		}
	}
	if len(open) > 0 {
		ids := make([]string, 0, len(open))
		for _, o := range open {
			ids = append(ids, strings.Fields(o)[0])
		}
		return fault.PermissionDenied(fault.ReasonAgreementInForce, map[string]string{"customer_id": customer, "agreement_ids": strings.Join(ids, ",")},
			fmt.Sprintf("an operator may erase a customer's subjects only at the end of its processor agreements, and %s: terminate it first "+
				"(TerminateProcessorAgreement), or name it in terminate_agreement_id to terminate it in this step; "+
				"the customer's own customer-controller principal may erase its data at any time", strings.Join(open, "; ")))
	}
	if named == "" {
		return nil // no agreement to end: terminated or expired, or none
	}
	// On the trail before the change; no trail, no termination.
	core.Note(ctx, audit.Touch{Tenant: customer, Fields: []string{"processor_agreement"}})
	if err := audit.Flush(ctx); err != nil {
		return err
	}
	if ref == "" {
		ref = "erasure job " + jobID
	}
	_, err = s.changeAgreement(ctx, customer, terminate, "erase-controller:"+jobID, fp, func(a *store.Agreement) error {
		if a.TerminatedAt != 0 && a.TerminatedAt <= now {
			return &core.Replayed{} // ended already: nothing to write
		}
		a.TerminatedAt, a.TerminationRef = now, ref
		return nil
	})
	return err
}
