package server_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

const (
	exportControllerRPC = "personaldata.v1.ProcessorAgreementService/ExportControllerSubjects"
	eraseControllerRPC  = "personaldata.v1.ProcessorAgreementService/EraseControllerSubjects"
)

// errorInfo is the ErrorInfo of a refusal, or nil.
func errorInfo(err error) *errdetails.ErrorInfo {
	for _, d := range status.Convert(err).Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok {
			return ei
		}
	}
	return nil
}

// tenantTrail is the audit trail of a controller's own chain, read by the
// operator.
func tenantTrail(t *testing.T, e *env, c caller, tenant string) []*pdv1.AuditEvent {
	t.Helper()
	var events []*pdv1.AuditEvent
	for token := ""; ; {
		res := call(t, e.as(c, e.operator), listAuditEvents, &pdv1.ListAuditEventsRequest{TenantId: tenant, PageSize: 100, PageToken: token}, &pdv1.ListAuditEventsResponse{})
		events = append(events, res.GetEvents()...)
		if token = res.GetNextPageToken(); token == "" {
			return events
		}
	}
}

// storedEvents are the outcome and fields of the stored audit events of rpc
// by principal, in any chain, as the store holds them.
func storedEvents(t *testing.T, e *env, rpc, principal string) []string {
	t.Helper()
	cur, err := e.coll("audit_events").Find(context.Background(), bson.D{{Key: "rpc", Value: "/" + rpc}, {Key: "principal", Value: principal}})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for cur.Next(context.Background()) {
		var ev struct {
			Outcome string `bson:"outcome"`
			Fields  string `bson:"fields"`
		}
		if err := cur.Decode(&ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev.Outcome+" "+ev.Fields)
	}
	if err := cur.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// refusedIn reports whether trail records a refusal of rpc with reason, by
// principal, in the chain of tenant.
func refusedIn(trail []*pdv1.AuditEvent, rpc, reason, principal, tenant string) bool {
	return slices.ContainsFunc(trail, func(ev *pdv1.AuditEvent) bool {
		return ev.GetRpc() == "/"+rpc && ev.GetOutcome() == codes.PermissionDenied.String() && ev.GetPrincipalId() == principal &&
			ev.GetChain() == "tenants/"+tenant && slices.Contains(ev.GetFields(), "refused:"+reason)
	})
}

// TestOperatorBoundsExport: an operator may not export a customer's data,
// over gRPC or REST, agreement in force or not: the export goes to the
// customer, whose controller principal exports. The refusal says what to
// do, carries no subject's data, and is on the customer's trail.
func TestOperatorBoundsExport(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		createAgreement(t, e, c, paReq(e, "pa-1", "customer-42", supportAndDelivery, allCategories...))
		subs := []*pdv1.Subject{createFor(t, c, "customer-42", 610), createFor(t, c, "customer-42", 611)}

		_, err := exportSubjects(t, e, c.name(), e.operator, &pdv1.ExportControllerSubjectsRequest{CustomerId: "customer-42"}, 0)
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("export as the operator: %v, want PERMISSION_DENIED", err)
		}
		if ei := errorInfo(err); ei.GetReason() != "RPC_NOT_PERMITTED" || !strings.Contains(status.Convert(err).Message(), "customer-controller principal") {
			t.Errorf("refusal %v (%v): want RPC_NOT_PERMITTED saying to create the customer's principal", err, ei)
		}

		// The route the issue names, as curl sends it: 403 and no one's data.
		hr, _ := http.NewRequest(http.MethodPost, e.base+"/v1/customers/customer-42/subjects:export", strings.NewReader("{}"))
		hr.Header.Set("Authorization", "Bearer "+e.operator)
		res, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusForbidden {
			t.Errorf("POST subjects:export as the operator: HTTP %d, want 403", res.StatusCode)
		}
		for i := range subs {
			p := testPerson(610 + i)
			for _, v := range []string{p.GetEmail(), p.GetGivenName(), p.GetFamilyName(), p.GetIdentityNumber()} {
				if bytes.Contains(body, []byte(v)) {
					t.Errorf("the operator's export answer holds a subject's value (%d chars)", len(v))
				}
			}
		}

		// Terminated or not, still the customer's to export.
		call(t, e.as(c, e.operator), terminateAgreementRPC, &pdv1.TerminateProcessorAgreementRequest{IdempotencyKey: "end", AgreementId: "customer-42.1"}, &pdv1.TerminateProcessorAgreementResponse{})
		if _, err := exportSubjects(t, e, c.name(), e.operator, &pdv1.ExportControllerSubjectsRequest{CustomerId: "customer-42"}, 0); status.Code(err) != codes.PermissionDenied {
			t.Errorf("export as the operator after the end of the agreement: %v, want PERMISSION_DENIED", err)
		}

		// The customer's own controller principal, which an operator makes
		// and whose making is on the customer's trail, exports.
		e.controller(t, c)
		exported, err := exportSubjects(t, e, c.name(), e.customer42, &pdv1.ExportControllerSubjectsRequest{CustomerId: "customer-42"}, 0)
		if err != nil || len(exported) == 0 || exported[len(exported)-1].GetDone() != int64(len(subs)) {
			t.Fatalf("export as the customer's controller: %d messages, %v", len(exported), err)
		}

		// The RPC rule refuses a stream before its request is read: the
		// refusal is in the chain of principals, since the operator acts for
		// every tenant (as every refusal by the RPC rule of such a caller).
		if got := storedEvents(t, e, exportControllerRPC, "operator"); !slices.Equal(got, []string{"PermissionDenied refused:RPC_NOT_PERMITTED", "PermissionDenied refused:RPC_NOT_PERMITTED", "PermissionDenied refused:RPC_NOT_PERMITTED"}) {
			t.Errorf("the operator's refused exports on the trail: %v", got)
		}
		trail := tenantTrail(t, e, c, "customer-42")
		if !slices.ContainsFunc(trail, func(ev *pdv1.AuditEvent) bool {
			return ev.GetRpc() == "/personaldata.v1.PrincipalService/CreatePrincipal" && ev.GetOutcome() == "OK"
		}) {
			t.Errorf("the making of customer-42's controller principal is not on its trail")
		}
	})
}

// TestOperatorBoundsErase: an operator may erase a customer's subjects only
// when no agreement with it is in force (or pending), or when it terminates
// the one in force in the same call; the customer's own controller may at
// any time, but may not terminate an agreement that way.
func TestOperatorBoundsErase(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		op := e.as(c, e.operator)
		createAgreement(t, e, c, paReq(e, "pa-1", "customer-42", supportAndDelivery, allCategories...))
		subs := []*pdv1.Subject{createFor(t, c, "customer-42", 620), createFor(t, c, "customer-42", 621), createFor(t, c, "customer-42", 622)}
		erase := func(key, terminate string) *pdv1.EraseControllerSubjectsRequest {
			return &pdv1.EraseControllerSubjectsRequest{IdempotencyKey: key, CustomerId: "customer-42", Ground: pdv1.ErasureGround_ERASURE_GROUND_NO_LEGAL_BASIS,
				Reference: "notice-1", TerminateAgreementId: terminate}
		}
		stillThere := func() {
			t.Helper()
			for _, s := range subs {
				call(t, c, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: s.GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_SUPPORT}, &pdv1.GetSubjectForPurposeResponse{})
			}
		}

		// In force: refused before anything is erased, saying what to do.
		msgs, err := eraseSubjects(t, e, c.name(), e.operator, erase("op-erase-1", ""), 0)
		if status.Code(err) != codes.PermissionDenied || len(msgs) != 0 {
			t.Fatalf("erase as the operator with the agreement in force: %d messages, %v; want PERMISSION_DENIED", len(msgs), err)
		}
		ei := errorInfo(err)
		msg := status.Convert(err).Message()
		if ei.GetReason() != "AGREEMENT_IN_FORCE" || ei.GetMetadata()["agreement_ids"] != "customer-42.1" ||
			!strings.Contains(msg, "customer-42.1 is in force") || !strings.Contains(msg, "terminate_agreement_id") {
			t.Errorf("refusal %q %v", msg, ei)
		}
		stillThere()

		// Pending (signed, in force from tomorrow): refused as well.
		pending := paReq(e, "pa-2", "customer-42", supportAndDelivery, allCategories...)
		pending.Terms.InForceFrom = timestamppb.New(e.clock.Now().Add(24 * time.Hour))
		createAgreement(t, e, c, pending)
		_, err = eraseSubjects(t, e, c.name(), e.operator, erase("op-erase-2", "customer-42.1"), 0)
		if ei := errorInfo(err); status.Code(err) != codes.PermissionDenied || ei.GetReason() != "AGREEMENT_IN_FORCE" || ei.GetMetadata()["agreement_ids"] != "customer-42.2" {
			t.Fatalf("erase terminating .1 with .2 pending: %v (%v)", err, ei)
		}
		// Nothing was terminated by the refused call.
		if a := call(t, op, getAgreementRPC, &pdv1.GetProcessorAgreementRequest{AgreementId: "customer-42.1"}, &pdv1.GetProcessorAgreementResponse{}).GetAgreement(); a.GetState() != pdv1.AgreementState_AGREEMENT_STATE_IN_FORCE {
			t.Errorf("agreement .1 after a refused erasure: %v", a.GetState())
		}
		call(t, op, terminateAgreementRPC, &pdv1.TerminateProcessorAgreementRequest{IdempotencyKey: "end-2", AgreementId: "customer-42.2"}, &pdv1.TerminateProcessorAgreementResponse{})
		stillThere()

		// terminate_agreement_id: a well-formed id of this customer, that exists.
		if _, err := eraseSubjects(t, e, c.name(), e.operator, erase("op-erase-3", "customer-7.1"), 0); status.Code(err) != codes.InvalidArgument || !slices.Equal(badFields(err), []string{"terminate_agreement_id"}) {
			t.Errorf("another customer's agreement: %v", err)
		}
		if _, err := eraseSubjects(t, e, c.name(), e.operator, erase("op-erase-3", "x"), 0); status.Code(err) != codes.InvalidArgument || !slices.Equal(badFields(err), []string{"terminate_agreement_id"}) {
			t.Errorf("a malformed id: %v", err)
		}
		if _, err := eraseSubjects(t, e, c.name(), e.operator, erase("op-erase-3", "customer-42.9"), 0); status.Code(err) != codes.NotFound {
			t.Errorf("an agreement that does not exist: %v", err)
		}

		// The customer's controller erases its own data at any time, but
		// does not terminate agreements.
		e.controller(t, c)
		if _, err := eraseSubjects(t, e, c.name(), e.customer42, erase("cust-erase-1", "customer-42.1"), 0); status.Code(err) != codes.PermissionDenied || errorInfo(err).GetReason() != "RPC_NOT_PERMITTED" {
			t.Errorf("the controller naming an agreement to terminate: %v", err)
		}
		stillThere()

		// Terminating the one in force in the same call: it ends, then every
		// subject is erased; a retry answers the same.
		req := erase("op-erase-4", "customer-42.1")
		msgs, err = eraseSubjects(t, e, c.name(), e.operator, req, 0)
		if err != nil || len(msgs) == 0 || !msgs[len(msgs)-1].GetFinished() || msgs[len(msgs)-1].GetDone() != int64(len(subs)) {
			t.Fatalf("erase terminating .1: %v, %v", msgs, err)
		}
		a := call(t, op, getAgreementRPC, &pdv1.GetProcessorAgreementRequest{AgreementId: "customer-42.1"}, &pdv1.GetProcessorAgreementResponse{}).GetAgreement()
		if a.GetState() != pdv1.AgreementState_AGREEMENT_STATE_TERMINATED || a.GetTerminationReference() != "notice-1" {
			t.Errorf("agreement .1 after the erasure: %v", a)
		}
		for _, s := range subs {
			callErr(t, c, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: s.GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_SUPPORT}, &pdv1.GetSubjectForPurposeResponse{}, codes.NotFound)
		}
		if again, err := eraseSubjects(t, e, c.name(), e.operator, req, 0); err != nil || !again[len(again)-1].GetFinished() {
			t.Errorf("retry: %v, %v", again, err)
		}

		trail := tenantTrail(t, e, c, "customer-42")
		if !refusedIn(trail, eraseControllerRPC, "AGREEMENT_IN_FORCE", "operator", "customer-42") {
			t.Errorf("the operator's refused erasure is not on customer-42's trail")
		}
		if !refusedIn(trail, eraseControllerRPC, "RPC_NOT_PERMITTED", "customer-42-admin", "customer-42") {
			t.Errorf("the controller's refused termination is not on customer-42's trail")
		}
		if !slices.ContainsFunc(trail, func(ev *pdv1.AuditEvent) bool {
			return ev.GetRpc() == "/"+eraseControllerRPC && ev.GetOutcome() == "OK" && ev.GetPrincipalId() == "operator" && slices.Contains(ev.GetFields(), "processor_agreement")
		}) {
			t.Errorf("the termination made by the erasure is not on customer-42's trail")
		}
	})
}

// TestOperatorBoundsEraseAfterTheEnd: once no agreement is in force (ended,
// or none was ever recorded), an operator's bulk erasure runs; and the
// customer's controller erases its data while its agreement is in force.
func TestOperatorBoundsEraseAfterTheEnd(t *testing.T) {
	e := start(t)
	c := e.gc()
	op := e.as(c, e.operator)
	createAgreement(t, e, c, paReq(e, "pa-1", "customer-42", supportAndDelivery, allCategories...))
	createFor(t, c, "customer-42", 630)
	e.controller(t, c)
	if msgs, err := eraseSubjects(t, e, "grpc", e.customer42, &pdv1.EraseControllerSubjectsRequest{IdempotencyKey: "cust-1", CustomerId: "customer-42",
		Ground: pdv1.ErasureGround_ERASURE_GROUND_NO_LEGAL_BASIS}, 0); err != nil || msgs[len(msgs)-1].GetDone() != 1 {
		t.Fatalf("the controller's erasure with its agreement in force: %v, %v", msgs, err)
	}

	createFor(t, c, "customer-42", 631)
	call(t, op, terminateAgreementRPC, &pdv1.TerminateProcessorAgreementRequest{IdempotencyKey: "end", AgreementId: "customer-42.1"}, &pdv1.TerminateProcessorAgreementResponse{})
	e.clock.Advance(time.Hour)
	if msgs, err := eraseSubjects(t, e, "grpc", e.operator, &pdv1.EraseControllerSubjectsRequest{IdempotencyKey: "op-1", CustomerId: "customer-42",
		Ground: pdv1.ErasureGround_ERASURE_GROUND_NO_LEGAL_BASIS}, 0); err != nil || !msgs[len(msgs)-1].GetFinished() || msgs[len(msgs)-1].GetDone() != 2 {
		t.Fatalf("the operator's erasure after the end of the agreement: %v, %v", msgs, err)
	}
	// A customer with no agreement at all: nothing in force to end.
	if _, err := eraseSubjects(t, e, "grpc", e.operator, &pdv1.EraseControllerSubjectsRequest{IdempotencyKey: "op-2", CustomerId: "customer-77",
		Ground: pdv1.ErasureGround_ERASURE_GROUND_NO_LEGAL_BASIS}, 0); err != nil {
		t.Errorf("the operator's erasure of a customer with no agreement: %v", err)
	}
}
