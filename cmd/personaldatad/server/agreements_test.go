package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store/ledger"
)

// RPC names of the ProcessorAgreementService, for call and callErr.
const (
	createAgreementRPC    = "personaldata.v1.ProcessorAgreementService/CreateProcessorAgreement"
	getAgreementRPC       = "personaldata.v1.ProcessorAgreementService/GetProcessorAgreement"
	listAgreementsRPC     = "personaldata.v1.ProcessorAgreementService/ListProcessorAgreements"
	amendAgreementRPC     = "personaldata.v1.ProcessorAgreementService/AmendProcessorAgreement"
	terminateAgreementRPC = "personaldata.v1.ProcessorAgreementService/TerminateProcessorAgreement"
	checkAgreementRPC     = "personaldata.v1.ProcessorAgreementService/CheckProcessorAgreement"
)

// paTerms are terms in force since a day before the test clock.
func paTerms(e *env, purposes []pdv1.Purpose, categories ...pdv1.DataCategory) *pdv1.AgreementTerms {
	now := e.clock.Now()
	return &pdv1.AgreementTerms{
		SignTime:          timestamppb.New(now.Add(-48 * time.Hour)),
		InForceFrom:       timestamppb.New(now.Add(-24 * time.Hour)),
		Purposes:          purposes,
		Categories:        categories,
		SubProcessors:     []string{"iis.se", "registry.example.net"},
		DocumentReference: "contracts/dpa-2026-001.pdf",
	}
}

func paReq(e *env, key, customer string, purposes []pdv1.Purpose, categories ...pdv1.DataCategory) *pdv1.CreateProcessorAgreementRequest {
	return &pdv1.CreateProcessorAgreementRequest{IdempotencyKey: key, CustomerId: customer, Terms: paTerms(e, purposes, categories...)}
}

var (
	supportAndDelivery = []pdv1.Purpose{pdv1.Purpose_PURPOSE_SUPPORT, pdv1.Purpose_PURPOSE_SERVICE_DELIVERY}
	allCategories      = []pdv1.DataCategory{pdv1.DataCategory_DATA_CATEGORY_IDENTIFICATION, pdv1.DataCategory_DATA_CATEGORY_CONTACT, pdv1.DataCategory_DATA_CATEGORY_HISTORY}
)

// createAgreement has the operator record an agreement.
func createAgreement(t *testing.T, e *env, c caller, req *pdv1.CreateProcessorAgreementRequest) *pdv1.ProcessorAgreement {
	t.Helper()
	return call(t, e.as(c, e.operator), createAgreementRPC, req, &pdv1.CreateProcessorAgreementResponse{}).GetAgreement()
}

// createFor creates subject n of a controller as the tester.
func createFor(t *testing.T, c caller, controller string, n int) *pdv1.Subject {
	t.Helper()
	req := createReq(fmt.Sprintf("create-%s-%d", controller, n), n)
	req.ControllerId = controller
	return call(t, c, "CreateSubject", req, &pdv1.CreateSubjectResponse{}).GetSubject()
}

func TestProcessorAgreementLifecycle(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		op := e.as(c, e.operator)
		req := paReq(e, "pa-1", "customer-42", supportAndDelivery, pdv1.DataCategory_DATA_CATEGORY_IDENTIFICATION, pdv1.DataCategory_DATA_CATEGORY_CONTACT)
		a := call(t, op, createAgreementRPC, req, &pdv1.CreateProcessorAgreementResponse{}).GetAgreement()
		if a.GetAgreementId() != "customer-42.1" || a.GetCustomerId() != "customer-42" || a.GetState() != pdv1.AgreementState_AGREEMENT_STATE_IN_FORCE ||
			a.GetVersion() != 1 || len(a.GetVersions()) != 1 || a.GetVersions()[0].GetCreatedBy() != "operator" ||
			!a.GetVersions()[0].GetCreateTime().AsTime().Equal(e.clock.Now()) || !proto.Equal(a.GetTerms(), req.GetTerms()) {
			t.Fatalf("created %v", a)
		}
		// A retry answers the same agreement and records no other.
		again := call(t, op, createAgreementRPC, req, &pdv1.CreateProcessorAgreementResponse{}).GetAgreement()
		if !proto.Equal(again, a) {
			t.Errorf("retry gave %v, want %v", again, a)
		}
		other := proto.Clone(req).(*pdv1.CreateProcessorAgreementRequest)
		other.Terms.DocumentReference = "contracts/other.pdf"
		err := callErr(t, op, createAgreementRPC, other, &pdv1.CreateProcessorAgreementResponse{}, codes.InvalidArgument)
		if !slices.Equal(badFields(err), []string{"idempotency_key"}) {
			t.Errorf("key reused: fields %v", badFields(err))
		}

		// The customer's controller reads it (support staff do not read
		// agreements).
		cust := e.controller(t, c)
		callErr(t, c, getAgreementRPC, &pdv1.GetProcessorAgreementRequest{AgreementId: "customer-42.1"}, &pdv1.GetProcessorAgreementResponse{}, codes.PermissionDenied)
		got := call(t, cust, getAgreementRPC, &pdv1.GetProcessorAgreementRequest{AgreementId: "customer-42.1"}, &pdv1.GetProcessorAgreementResponse{}).GetAgreement()
		if !proto.Equal(got, a) {
			t.Errorf("get %v, want %v", got, a)
		}
		second := createAgreement(t, e, c, paReq(e, "pa-2", "customer-42", []pdv1.Purpose{pdv1.Purpose_PURPOSE_INVOICING}, pdv1.DataCategory_DATA_CATEGORY_CONTACT))
		if second.GetAgreementId() != "customer-42.2" {
			t.Errorf("second agreement %s, want customer-42.2", second.GetAgreementId())
		}
		list := call(t, cust, listAgreementsRPC, &pdv1.ListProcessorAgreementsRequest{CustomerId: "customer-42"}, &pdv1.ListProcessorAgreementsResponse{}).GetAgreements()
		if len(list) != 2 || list[0].GetAgreementId() != "customer-42.1" || list[1].GetAgreementId() != "customer-42.2" {
			t.Errorf("list %v", list)
		}
		// The tester does not act for customer-43.
		callErr(t, cust, listAgreementsRPC, &pdv1.ListProcessorAgreementsRequest{CustomerId: "customer-43"}, &pdv1.ListProcessorAgreementsResponse{}, codes.NotFound)

		// Amending appends a version and keeps the earlier one.
		e.clock.Advance(time.Hour)
		amend := &pdv1.AmendProcessorAgreementRequest{
			IdempotencyKey:  "amend-1",
			AgreementId:     "customer-42.1",
			ExpectedVersion: 1,
			Terms:           paTerms(e, slices.Concat(supportAndDelivery, []pdv1.Purpose{pdv1.Purpose_PURPOSE_INVOICING}), allCategories...),
		}
		amended := call(t, op, amendAgreementRPC, amend, &pdv1.AmendProcessorAgreementResponse{}).GetAgreement()
		if amended.GetVersion() != 2 || len(amended.GetVersions()) != 2 ||
			!proto.Equal(amended.GetVersions()[0].GetTerms(), req.GetTerms()) || !proto.Equal(amended.GetVersions()[1].GetTerms(), amend.GetTerms()) ||
			!proto.Equal(amended.GetTerms(), amend.GetTerms()) || amended.GetVersions()[1].GetVersion() != 2 ||
			!amended.GetVersions()[1].GetCreateTime().AsTime().Equal(e.clock.Now()) {
			t.Errorf("amended %v", amended)
		}
		if again := call(t, op, amendAgreementRPC, amend, &pdv1.AmendProcessorAgreementResponse{}).GetAgreement(); again.GetVersion() != 2 {
			t.Errorf("amend retry gave version %d, want 2", again.GetVersion())
		}
		stale := proto.Clone(amend).(*pdv1.AmendProcessorAgreementRequest)
		stale.IdempotencyKey = "amend-stale"
		callErr(t, op, amendAgreementRPC, stale, &pdv1.AmendProcessorAgreementResponse{}, codes.Aborted)
		callErr(t, op, amendAgreementRPC, &pdv1.AmendProcessorAgreementRequest{IdempotencyKey: "amend-x", AgreementId: "customer-42.9", ExpectedVersion: 1, Terms: amend.GetTerms()},
			&pdv1.AmendProcessorAgreementResponse{}, codes.NotFound)

		// Terminating sets the time and reference, once.
		term := call(t, op, terminateAgreementRPC, &pdv1.TerminateProcessorAgreementRequest{IdempotencyKey: "term-1", AgreementId: "customer-42.2", Reference: "letter-2026-11"},
			&pdv1.TerminateProcessorAgreementResponse{}).GetAgreement()
		if term.GetState() != pdv1.AgreementState_AGREEMENT_STATE_TERMINATED || !term.GetTerminateTime().AsTime().Equal(e.clock.Now()) || term.GetTerminationReference() != "letter-2026-11" {
			t.Errorf("terminated %v", term)
		}
		e.clock.Advance(time.Minute)
		for _, key := range []string{"term-1", "term-2"} {
			again := call(t, op, terminateAgreementRPC, &pdv1.TerminateProcessorAgreementRequest{IdempotencyKey: key, AgreementId: "customer-42.2", Reference: "letter-2026-11"},
				&pdv1.TerminateProcessorAgreementResponse{}).GetAgreement()
			if !proto.Equal(again, term) {
				t.Errorf("terminate again (%s): %v, want %v", key, again, term)
			}
		}
		callErr(t, op, amendAgreementRPC, &pdv1.AmendProcessorAgreementRequest{IdempotencyKey: "amend-t", AgreementId: "customer-42.2", ExpectedVersion: 1, Terms: amend.GetTerms()},
			&pdv1.AmendProcessorAgreementResponse{}, codes.FailedPrecondition)

		// A termination at a later time leaves the agreement in force until then.
		later := e.clock.Now().Add(2 * time.Hour)
		sched := call(t, op, terminateAgreementRPC, &pdv1.TerminateProcessorAgreementRequest{IdempotencyKey: "term-3", AgreementId: "customer-42.1", TerminateTime: timestamppb.New(later)},
			&pdv1.TerminateProcessorAgreementResponse{}).GetAgreement()
		if sched.GetState() != pdv1.AgreementState_AGREEMENT_STATE_IN_FORCE || !sched.GetTerminateTime().AsTime().Equal(later) || sched.GetVersion() != 2 {
			t.Errorf("scheduled termination %v", sched)
		}
		e.clock.Advance(3 * time.Hour)
		if got := call(t, cust, getAgreementRPC, &pdv1.GetProcessorAgreementRequest{AgreementId: "customer-42.1"}, &pdv1.GetProcessorAgreementResponse{}).GetAgreement(); got.GetState() != pdv1.AgreementState_AGREEMENT_STATE_TERMINATED {
			t.Errorf("state after the termination time: %v", got.GetState())
		}

		callErr(t, cust, getAgreementRPC, &pdv1.GetProcessorAgreementRequest{AgreementId: "customer-42.9"}, &pdv1.GetProcessorAgreementResponse{}, codes.NotFound)
		for _, id := range []string{"customer-42", "customer-42.0", "customer-42.01", "Customer.1", "company.1"} {
			err := callErr(t, cust, getAgreementRPC, &pdv1.GetProcessorAgreementRequest{AgreementId: id}, &pdv1.GetProcessorAgreementResponse{}, codes.InvalidArgument)
			if !slices.Equal(badFields(err), []string{"agreement_id"}) {
				t.Errorf("get %q: fields %v", id, badFields(err))
			}
		}
		if n := e.count(t, "agreements"); n != 1 {
			t.Errorf("%d agreement documents, want 1 (one per customer)", n)
		}
	})
}

func TestProcessorAgreementBadInput(t *testing.T) {
	cases := []struct {
		name   string
		change func(r *pdv1.CreateProcessorAgreementRequest)
		fields []string
	}{
		{"no idempotency key", func(r *pdv1.CreateProcessorAgreementRequest) { r.IdempotencyKey = "" }, []string{"idempotency_key"}},
		{"no customer", func(r *pdv1.CreateProcessorAgreementRequest) { r.CustomerId = "" }, []string{"customer_id"}},
		{"bad customer", func(r *pdv1.CreateProcessorAgreementRequest) { r.CustomerId = "Customer 42" }, []string{"customer_id"}},
		{"the company", func(r *pdv1.CreateProcessorAgreementRequest) { r.CustomerId = "company" }, []string{"customer_id"}},
		{"no terms", func(r *pdv1.CreateProcessorAgreementRequest) { r.Terms = nil }, []string{"terms"}},
		{"no sign time", func(r *pdv1.CreateProcessorAgreementRequest) { r.Terms.SignTime = nil }, []string{"terms.sign_time"}},
		{"signed in the future", func(r *pdv1.CreateProcessorAgreementRequest) {
			r.Terms.SignTime = timestamppb.New(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
		}, []string{"terms.sign_time"}},
		{"no in force from", func(r *pdv1.CreateProcessorAgreementRequest) { r.Terms.InForceFrom = nil }, []string{"terms.in_force_from"}},
		{"in force from before 1970", func(r *pdv1.CreateProcessorAgreementRequest) {
			r.Terms.InForceFrom = timestamppb.New(time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC))
		}, []string{"terms.in_force_from"}},
		{"in force to before from", func(r *pdv1.CreateProcessorAgreementRequest) {
			r.Terms.InForceTo = timestamppb.New(r.Terms.InForceFrom.AsTime().Add(-time.Second))
		}, []string{"terms.in_force_to"}},
		{"in force to equal to from", func(r *pdv1.CreateProcessorAgreementRequest) { r.Terms.InForceTo = r.Terms.InForceFrom }, []string{"terms.in_force_to"}},
		{"in force to beyond what can be stored", func(r *pdv1.CreateProcessorAgreementRequest) {
			r.Terms.InForceTo = timestamppb.New(time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC))
		}, []string{"terms.in_force_to"}},
		{"no purposes", func(r *pdv1.CreateProcessorAgreementRequest) { r.Terms.Purposes = nil }, []string{"terms.purposes"}},
		{"unspecified purpose", func(r *pdv1.CreateProcessorAgreementRequest) {
			r.Terms.Purposes = []pdv1.Purpose{pdv1.Purpose_PURPOSE_UNSPECIFIED}
		}, []string{"terms.purposes"}},
		{"unknown purpose", func(r *pdv1.CreateProcessorAgreementRequest) { r.Terms.Purposes = append(r.Terms.Purposes, 99) }, []string{"terms.purposes"}},
		{"no categories", func(r *pdv1.CreateProcessorAgreementRequest) { r.Terms.Categories = nil }, []string{"terms.categories"}},
		{"unknown category", func(r *pdv1.CreateProcessorAgreementRequest) { r.Terms.Categories = []pdv1.DataCategory{42} }, []string{"terms.categories"}},
		{"unspecified category", func(r *pdv1.CreateProcessorAgreementRequest) {
			r.Terms.Categories = []pdv1.DataCategory{pdv1.DataCategory_DATA_CATEGORY_UNSPECIFIED}
		}, []string{"terms.categories"}},
		{"sub-processor in upper case", func(r *pdv1.CreateProcessorAgreementRequest) { r.Terms.SubProcessors = []string{"IIS.SE"} }, []string{"terms.sub_processors[0]"}},
		{"sub-processor not a host name", func(r *pdv1.CreateProcessorAgreementRequest) {
			r.Terms.SubProcessors = []string{"iis.se", "Internetstiftelsen i Sverige"}
		}, []string{"terms.sub_processors[1]"}},
		{"sub-processor without a domain", func(r *pdv1.CreateProcessorAgreementRequest) { r.Terms.SubProcessors = []string{"registry"} }, []string{"terms.sub_processors[0]"}},
		{"sub-processor too long", func(r *pdv1.CreateProcessorAgreementRequest) {
			r.Terms.SubProcessors = []string{strings.Repeat("a", 50) + "." + strings.Repeat("b", 50) + ".se"}
		}, []string{"terms.sub_processors[0]"}},
		{"too many sub-processors", func(r *pdv1.CreateProcessorAgreementRequest) {
			r.Terms.SubProcessors = nil
			for i := range 21 {
				r.Terms.SubProcessors = append(r.Terms.SubProcessors, fmt.Sprintf("registry%d.example.net", i))
			}
		}, []string{"terms.sub_processors"}},
		{"no document reference", func(r *pdv1.CreateProcessorAgreementRequest) { r.Terms.DocumentReference = " " }, []string{"terms.document_reference"}},
		{"document reference too long", func(r *pdv1.CreateProcessorAgreementRequest) {
			r.Terms.DocumentReference = strings.Repeat("d", 201)
		}, []string{"terms.document_reference"}},
		{"several at once", func(r *pdv1.CreateProcessorAgreementRequest) {
			r.CustomerId = "company"
			r.Terms.Purposes = nil
			r.Terms.DocumentReference = ""
		}, []string{"customer_id", "terms.purposes", "terms.document_reference"}},
	}
	transports(t, func(t *testing.T, e *env, c caller) {
		op := e.as(c, e.operator)
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				req := paReq(e, "bad-input", "customer-42", supportAndDelivery, pdv1.DataCategory_DATA_CATEGORY_CONTACT)
				tc.change(req)
				err := callErr(t, op, createAgreementRPC, req, &pdv1.CreateProcessorAgreementResponse{}, codes.InvalidArgument)
				if got := badFields(err); !slices.Equal(got, tc.fields) {
					t.Errorf("fields %v, want %v", got, tc.fields)
				}
			})
		}
		if n := e.count(t, "agreements"); n != 0 {
			t.Errorf("%d documents written by bad requests, want 0", n)
		}

		a := createAgreement(t, e, c, paReq(e, "pa-1", "customer-42", supportAndDelivery, pdv1.DataCategory_DATA_CATEGORY_CONTACT))
		terms := paTerms(e, supportAndDelivery, pdv1.DataCategory_DATA_CATEGORY_CONTACT)
		for _, tc := range []struct {
			rpc    string
			req    proto.Message
			resp   proto.Message
			fields []string
		}{
			{amendAgreementRPC, &pdv1.AmendProcessorAgreementRequest{IdempotencyKey: "a", AgreementId: a.GetAgreementId(), Terms: terms}, &pdv1.AmendProcessorAgreementResponse{}, []string{"expected_version"}},
			{amendAgreementRPC, &pdv1.AmendProcessorAgreementRequest{AgreementId: a.GetAgreementId(), ExpectedVersion: 1, Terms: terms}, &pdv1.AmendProcessorAgreementResponse{}, []string{"idempotency_key"}},
			{amendAgreementRPC, &pdv1.AmendProcessorAgreementRequest{IdempotencyKey: "a", AgreementId: a.GetAgreementId(), ExpectedVersion: 1}, &pdv1.AmendProcessorAgreementResponse{}, []string{"terms"}},
			{amendAgreementRPC, &pdv1.AmendProcessorAgreementRequest{IdempotencyKey: "a", AgreementId: "42", ExpectedVersion: 1, Terms: &pdv1.AgreementTerms{
				SignTime: terms.GetSignTime(), InForceFrom: terms.GetInForceFrom(), Purposes: terms.GetPurposes(), Categories: terms.GetCategories(), DocumentReference: "d",
				SubProcessors: []string{"iis.se", "-bad-.se"},
			}}, &pdv1.AmendProcessorAgreementResponse{}, []string{"agreement_id", "terms.sub_processors[1]"}},
			{terminateAgreementRPC, &pdv1.TerminateProcessorAgreementRequest{IdempotencyKey: "t", AgreementId: a.GetAgreementId(), Reference: strings.Repeat("r", 201)}, &pdv1.TerminateProcessorAgreementResponse{}, []string{"reference"}},
			{terminateAgreementRPC, &pdv1.TerminateProcessorAgreementRequest{IdempotencyKey: "t", AgreementId: a.GetAgreementId(), TerminateTime: timestamppb.New(time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC))}, &pdv1.TerminateProcessorAgreementResponse{}, []string{"terminate_time"}},
			{terminateAgreementRPC, &pdv1.TerminateProcessorAgreementRequest{IdempotencyKey: "t", AgreementId: "customer-42.x"}, &pdv1.TerminateProcessorAgreementResponse{}, []string{"agreement_id"}},
			{listAgreementsRPC, &pdv1.ListProcessorAgreementsRequest{CustomerId: "Customer!"}, &pdv1.ListProcessorAgreementsResponse{}, []string{"customer_id"}},
			{checkAgreementRPC, &pdv1.CheckProcessorAgreementRequest{Category: pdv1.DataCategory_DATA_CATEGORY_CONTACT}, &pdv1.CheckProcessorAgreementResponse{}, []string{"controller_id"}},
			{checkAgreementRPC, &pdv1.CheckProcessorAgreementRequest{ControllerId: "customer-42"}, &pdv1.CheckProcessorAgreementResponse{}, []string{"category"}},
			{checkAgreementRPC, &pdv1.CheckProcessorAgreementRequest{ControllerId: "customer-42", Purpose: 99, Category: 1}, &pdv1.CheckProcessorAgreementResponse{}, []string{"purpose"}},
		} {
			err := callErr(t, op, tc.rpc, tc.req, tc.resp, codes.InvalidArgument)
			if got := badFields(err); !slices.Equal(got, tc.fields) {
				t.Errorf("%s %v: fields %v, want %v", tc.rpc, tc.req, got, tc.fields)
			}
		}
		if got := call(t, op, getAgreementRPC, &pdv1.GetProcessorAgreementRequest{AgreementId: a.GetAgreementId()}, &pdv1.GetProcessorAgreementResponse{}).GetAgreement(); !proto.Equal(got, a) {
			t.Errorf("bad requests changed the agreement: %v", got)
		}
	})
}

func TestCheckProcessorAgreement(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		op := e.as(c, e.operator)
		check := func(controller string, purpose pdv1.Purpose, category pdv1.DataCategory) *pdv1.CheckProcessorAgreementResponse {
			t.Helper()
			return call(t, op, checkAgreementRPC, &pdv1.CheckProcessorAgreementRequest{ControllerId: controller, Purpose: purpose, Category: category}, &pdv1.CheckProcessorAgreementResponse{})
		}
		refused := func(res *pdv1.CheckProcessorAgreementResponse, want ...string) {
			t.Helper()
			if res.GetAllowed() || res.GetAgreement() != nil {
				t.Errorf("allowed: %v", res)
			}
			for _, w := range want {
				if !strings.Contains(res.GetReason(), w) {
					t.Errorf("reason %q does not say %q", res.GetReason(), w)
				}
			}
		}
		contact, history := pdv1.DataCategory_DATA_CATEGORY_CONTACT, pdv1.DataCategory_DATA_CATEGORY_HISTORY
		support, invoicing := pdv1.Purpose_PURPOSE_SUPPORT, pdv1.Purpose_PURPOSE_INVOICING

		if res := check("company", invoicing, contact); !res.GetAllowed() || !strings.Contains(res.GetReason(), "company is the controller") {
			t.Errorf("company: %v", res)
		}
		refused(check("customer-42", support, contact), "no processor agreement", "customer-42", "none")

		createAgreement(t, e, c, paReq(e, "pa-42", "customer-42", []pdv1.Purpose{support}, pdv1.DataCategory_DATA_CATEGORY_IDENTIFICATION, contact))
		res := check("customer-42", support, contact)
		if !res.GetAllowed() || res.GetAgreement().GetAgreementId() != "customer-42.1" || !strings.Contains(res.GetReason(), "customer-42.1") {
			t.Errorf("covered: %v", res)
		}
		if res := check("customer-42", pdv1.Purpose_PURPOSE_UNSPECIFIED, contact); !res.GetAllowed() {
			t.Errorf("storage of a covered category: %v", res)
		}
		refused(check("customer-42", invoicing, contact), "purpose PURPOSE_INVOICING")
		refused(check("customer-42", support, history), "category DATA_CATEGORY_HISTORY")
		refused(check("customer-42", invoicing, history), "purpose PURPOSE_INVOICING", "category DATA_CATEGORY_HISTORY")

		// Not yet in force, expired, terminated: each says so.
		pending := paReq(e, "pa-50", "customer-50", []pdv1.Purpose{support}, contact)
		pending.Terms.InForceFrom = timestamppb.New(e.clock.Now().Add(24 * time.Hour))
		createAgreement(t, e, c, pending)
		refused(check("customer-50", support, contact), "customer-50.1 is not yet in force")

		expired := paReq(e, "pa-51", "customer-51", []pdv1.Purpose{support}, contact)
		expired.Terms.InForceFrom = timestamppb.New(e.clock.Now().Add(-60 * 24 * time.Hour))
		expired.Terms.InForceTo = timestamppb.New(e.clock.Now().Add(-30 * 24 * time.Hour))
		createAgreement(t, e, c, expired)
		refused(check("customer-51", support, contact), "customer-51.1 expired")

		createAgreement(t, e, c, paReq(e, "pa-52", "customer-52", []pdv1.Purpose{support}, contact))
		if res := check("customer-52", support, contact); !res.GetAllowed() {
			t.Errorf("before termination: %v", res)
		}
		call(t, op, terminateAgreementRPC, &pdv1.TerminateProcessorAgreementRequest{IdempotencyKey: "t", AgreementId: "customer-52.1"}, &pdv1.TerminateProcessorAgreementResponse{})
		refused(check("customer-52", support, contact), "customer-52.1 was terminated")

		// Time moves the pending one into force.
		e.clock.Advance(25 * time.Hour)
		if res := check("customer-50", support, contact); !res.GetAllowed() || res.GetAgreement().GetState() != pdv1.AgreementState_AGREEMENT_STATE_IN_FORCE {
			t.Errorf("after in_force_from: %v", res)
		}
		// A customer's controller may check its own agreements only;
		// support staff not at all.
		cust := e.controller(t, c)
		if res := call(t, cust, checkAgreementRPC, &pdv1.CheckProcessorAgreementRequest{ControllerId: "customer-42", Purpose: support, Category: contact}, &pdv1.CheckProcessorAgreementResponse{}); !res.GetAllowed() {
			t.Errorf("controller check: %v", res)
		}
		callErr(t, cust, checkAgreementRPC, &pdv1.CheckProcessorAgreementRequest{ControllerId: "customer-50", Purpose: support, Category: contact}, &pdv1.CheckProcessorAgreementResponse{}, codes.NotFound)
		callErr(t, c, checkAgreementRPC, &pdv1.CheckProcessorAgreementRequest{ControllerId: "customer-42", Purpose: support, Category: contact}, &pdv1.CheckProcessorAgreementResponse{}, codes.PermissionDenied)
	})
}

// TestAgreementRuleOnSubjects shows the rule at work on the subject RPCs:
// nothing of a customer's data is processed without an agreement in force
// that covers it, but its return and deletion work after the end.
func TestAgreementRuleOnSubjects(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		op := e.as(c, e.operator)
		req := createReq("c42-1", 1)
		req.ControllerId = "customer-42"
		err := callErr(t, c, "CreateSubject", req, &pdv1.CreateSubjectResponse{}, codes.FailedPrecondition)
		if !hasPrecondition(err, "NO_PROCESSOR_AGREEMENT") {
			t.Errorf("refusal without an agreement: %v", err)
		}
		if n := e.count(t, "subjects"); n != 0 {
			t.Errorf("%d subjects written without an agreement", n)
		}

		createAgreement(t, e, c, paReq(e, "pa-1", "customer-42", supportAndDelivery, pdv1.DataCategory_DATA_CATEGORY_IDENTIFICATION, pdv1.DataCategory_DATA_CATEGORY_CONTACT))
		sub := call(t, c, "CreateSubject", req, &pdv1.CreateSubjectResponse{}).GetSubject()
		if sub.GetControllerId() != "customer-42" {
			t.Fatalf("created %v", sub)
		}
		call(t, c, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: sub.GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_SUPPORT}, &pdv1.GetSubjectForPurposeResponse{})
		// A purpose the agreement does not cover, though the tester holds it.
		err = callErr(t, c, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: sub.GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_INVOICING}, &pdv1.GetSubjectForPurposeResponse{}, codes.FailedPrecondition)
		if !strings.Contains(status.Convert(err).Message(), "PURPOSE_INVOICING") {
			t.Errorf("refusal does not name the purpose: %v", err)
		}
		// A purpose the agreement covers, which the caller does not hold.
		billing := e.principal(t, "billing-42", pdv1.PrincipalKind_PRINCIPAL_KIND_BILLING_SYSTEM, []string{"customer-42"}, []pdv1.Purpose{pdv1.Purpose_PURPOSE_INVOICING})
		callErr(t, e.as(c, billing), "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: sub.GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_SUPPORT}, &pdv1.GetSubjectForPurposeResponse{}, codes.PermissionDenied)
		// History is a category the agreement does not cover.
		callErr(t, c, "AddHistoryEntry", historyReq(sub, "h-1", 1), &pdv1.AddHistoryEntryResponse{}, codes.FailedPrecondition)

		// After termination nothing is processed, but the data can be
		// returned (to the customer) and deleted.
		call(t, op, terminateAgreementRPC, &pdv1.TerminateProcessorAgreementRequest{IdempotencyKey: "end", AgreementId: "customer-42.1", Reference: "notice-1"}, &pdv1.TerminateProcessorAgreementResponse{})
		req2 := createReq("c42-2", 2)
		req2.ControllerId = "customer-42"
		callErr(t, c, "CreateSubject", req2, &pdv1.CreateSubjectResponse{}, codes.FailedPrecondition)
		callErr(t, c, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: sub.GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_SUPPORT}, &pdv1.GetSubjectForPurposeResponse{}, codes.FailedPrecondition)
		callErr(t, e.controller(t, c), "RectifySubject", rectifyReq(sub, "r-1", &pdv1.Person{GivenName: "Ny"}, "given_name"), &pdv1.RectifySubjectResponse{}, codes.FailedPrecondition)

		exported, err := exportSubjects(t, e, c.name(), e.customer42, &pdv1.ExportControllerSubjectsRequest{CustomerId: "customer-42"}, 0)
		if err != nil {
			t.Fatalf("export after termination: %v", err)
		}
		if len(exported) != 1 || exported[0].GetSubject().GetSubject().GetPerson().GetGivenName() != "Testa1" {
			t.Errorf("export after termination: %v", exported)
		}
		erased, err := eraseSubjects(t, e, c.name(), e.operator, &pdv1.EraseControllerSubjectsRequest{IdempotencyKey: "end-42", CustomerId: "customer-42", Ground: pdv1.ErasureGround_ERASURE_GROUND_NO_LEGAL_BASIS}, 0)
		if err != nil || len(erased) == 0 || !erased[len(erased)-1].GetFinished() || erased[len(erased)-1].GetDone() != 1 {
			t.Fatalf("erasure after termination: %v %v", erased, err)
		}
		access := call(t, e.controller(t, c), "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
		if access.GetSubject().GetState() != pdv1.SubjectState_SUBJECT_STATE_ERASED || access.GetSubject().GetPerson() != nil {
			t.Errorf("after the bulk erasure: %v", access.GetSubject())
		}
	})
}

// hasPrecondition reports whether err carries a PreconditionFailure of type typ.
func hasPrecondition(err error, typ string) bool {
	for _, d := range status.Convert(err).Details() {
		if pf, ok := d.(*errdetails.PreconditionFailure); ok {
			for _, v := range pf.GetViolations() {
				if v.GetType() == typ {
					return true
				}
			}
		}
	}
	return false
}

func TestAgreementTenantIsolation(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		createAgreement(t, e, c, paReq(e, "pa-1", "customer-42", supportAndDelivery, allCategories...))
		createFor(t, c, "customer-42", 1)
		token := e.principal(t, "customer-7-portal", pdv1.PrincipalKind_PRINCIPAL_KIND_CUSTOMER_CONTROLLER, []string{"customer-7"}, nil)
		cust7 := e.as(c, token)

		// Another tenant's agreement is NOT_FOUND exactly as an absent one.
		hidden := callErr(t, cust7, getAgreementRPC, &pdv1.GetProcessorAgreementRequest{AgreementId: "customer-42.1"}, &pdv1.GetProcessorAgreementResponse{}, codes.NotFound)
		absent := callErr(t, cust7, getAgreementRPC, &pdv1.GetProcessorAgreementRequest{AgreementId: "customer-7.1"}, &pdv1.GetProcessorAgreementResponse{}, codes.NotFound)
		if status.Convert(hidden).Message() != status.Convert(absent).Message() {
			t.Errorf("another tenant's agreement %q, an absent one %q", status.Convert(hidden).Message(), status.Convert(absent).Message())
		}
		callErr(t, cust7, listAgreementsRPC, &pdv1.ListProcessorAgreementsRequest{CustomerId: "customer-42"}, &pdv1.ListProcessorAgreementsResponse{}, codes.NotFound)
		if own := call(t, cust7, listAgreementsRPC, &pdv1.ListProcessorAgreementsRequest{CustomerId: "customer-7"}, &pdv1.ListProcessorAgreementsResponse{}); len(own.GetAgreements()) != 0 {
			t.Errorf("customer-7's own agreements: %v", own)
		}
		callErr(t, cust7, checkAgreementRPC, &pdv1.CheckProcessorAgreementRequest{ControllerId: "customer-42", Category: pdv1.DataCategory_DATA_CATEGORY_CONTACT}, &pdv1.CheckProcessorAgreementResponse{}, codes.NotFound)
		callErr(t, cust7, createAgreementRPC, paReq(e, "pa-7", "customer-7", supportAndDelivery, allCategories...), &pdv1.CreateProcessorAgreementResponse{}, codes.PermissionDenied)

		// An operator limited to customer-7 records and changes its agreements only.
		op7 := e.as(c, e.principal(t, "operator-7", pdv1.PrincipalKind_PRINCIPAL_KIND_OPERATOR, []string{"customer-7"}, nil))
		call(t, op7, createAgreementRPC, paReq(e, "pa-7", "customer-7", supportAndDelivery, allCategories...), &pdv1.CreateProcessorAgreementResponse{})
		callErr(t, op7, createAgreementRPC, paReq(e, "pa-42", "customer-42", supportAndDelivery, allCategories...), &pdv1.CreateProcessorAgreementResponse{}, codes.NotFound)
		callErr(t, op7, amendAgreementRPC, &pdv1.AmendProcessorAgreementRequest{IdempotencyKey: "a", AgreementId: "customer-42.1", ExpectedVersion: 1, Terms: paTerms(e, supportAndDelivery, allCategories...)},
			&pdv1.AmendProcessorAgreementResponse{}, codes.NotFound)
		callErr(t, op7, terminateAgreementRPC, &pdv1.TerminateProcessorAgreementRequest{IdempotencyKey: "t", AgreementId: "customer-42.1"}, &pdv1.TerminateProcessorAgreementResponse{}, codes.NotFound)
		if got := call(t, e.as(c, e.operator), getAgreementRPC, &pdv1.GetProcessorAgreementRequest{AgreementId: "customer-42.1"}, &pdv1.GetProcessorAgreementResponse{}).GetAgreement(); got.GetVersion() != 1 || got.GetTerminateTime() != nil {
			t.Errorf("customer-42's agreement changed by another tenant's operator: %v", got)
		}
		if list := call(t, e.as(c, e.operator), listAgreementsRPC, &pdv1.ListProcessorAgreementsRequest{CustomerId: "customer-42"}, &pdv1.ListProcessorAgreementsResponse{}); len(list.GetAgreements()) != 1 {
			t.Errorf("customer-42 has %d agreements, want 1", len(list.GetAgreements()))
		}

		if got, err := exportSubjects(t, e, c.name(), token, &pdv1.ExportControllerSubjectsRequest{CustomerId: "customer-42"}, 0); status.Code(err) != codes.NotFound || len(got) != 0 {
			t.Errorf("customer-7 exporting customer-42: %d messages, %v", len(got), err)
		}
		if got, err := eraseSubjects(t, e, c.name(), token, &pdv1.EraseControllerSubjectsRequest{IdempotencyKey: "x", CustomerId: "customer-42", Ground: pdv1.ErasureGround_ERASURE_GROUND_NO_LEGAL_BASIS}, 0); status.Code(err) != codes.NotFound || len(got) != 0 {
			t.Errorf("customer-7 erasing customer-42: %d messages, %v", len(got), err)
		}
		if n := e.count(t, "jobs"); n != 0 {
			t.Errorf("%d jobs recorded by a refused erasure", n)
		}
		// The tester, support staff, may not return or delete a customer's data.
		if _, err := exportSubjects(t, e, c.name(), e.token, &pdv1.ExportControllerSubjectsRequest{CustomerId: "customer-42"}, 0); status.Code(err) != codes.PermissionDenied {
			t.Errorf("support staff exporting: %v", err)
		}
	})
}

func TestExportControllerSubjects(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		op := e.as(c, e.operator)
		createAgreement(t, e, c, paReq(e, "pa-1", "customer-42", supportAndDelivery, allCategories...))
		const n = 7
		want := map[string]bool{}
		var subs []*pdv1.Subject
		for i := range n {
			sub := createFor(t, c, "customer-42", 100+i)
			subs = append(subs, sub)
			want[sub.GetSubjectId()] = true
		}
		call(t, c, "AddHistoryEntry", historyReq(subs[0], "h-1", 1), &pdv1.AddHistoryEntryResponse{})
		call(t, e.controller(t, c), "EraseSubject", eraseReq(subs[1], "erase-1"), &pdv1.EraseSubjectResponse{})
		create(t, c, 200) // the company's own: not part of the export
		call(t, op, terminateAgreementRPC, &pdv1.TerminateProcessorAgreementRequest{IdempotencyKey: "end", AgreementId: "customer-42.1"}, &pdv1.TerminateProcessorAgreementResponse{})

		// The customer's own principal takes its data back.
		token := e.principal(t, "customer-42-portal", pdv1.PrincipalKind_PRINCIPAL_KIND_CUSTOMER_CONTROLLER, []string{"customer-42"}, nil)
		all, err := exportSubjects(t, e, c.name(), token, &pdv1.ExportControllerSubjectsRequest{CustomerId: "customer-42"}, 0)
		if err != nil {
			t.Fatalf("export: %v", err)
		}
		if len(all) != n {
			t.Fatalf("%d subjects exported, want %d", len(all), n)
		}
		var ids []string
		for i, m := range all {
			s := m.GetSubject().GetSubject()
			ids = append(ids, s.GetSubjectId())
			if m.GetDone() != int64(i+1) || m.GetTotal() != n || m.GetResumeToken() == "" {
				t.Errorf("message %d: done %d total %d token %q", i, m.GetDone(), m.GetTotal(), m.GetResumeToken())
			}
			if !want[s.GetSubjectId()] || s.GetControllerId() != "customer-42" {
				t.Errorf("exported %s of %s", s.GetSubjectId(), s.GetControllerId())
			}
			switch s.GetSubjectId() {
			case subs[0].GetSubjectId():
				// The agreement has ended: no purpose any more, only storage
				// until the customer has its data returned or erased.
				if len(m.GetSubject().GetHistory()) != 1 || s.GetPerson().GetGivenName() != "Testa100" || len(m.GetSubject().GetPurposes()) != 0 ||
					m.GetSubject().GetRetention().GetAgreementId() != "" || !strings.Contains(m.GetSubject().GetRetention().GetPolicy(), "No processor agreement covering it is in force") {
					t.Errorf("export of the subject with history: %v", m.GetSubject())
				}
			case subs[1].GetSubjectId():
				if s.GetState() != pdv1.SubjectState_SUBJECT_STATE_ERASED || s.GetPerson() != nil || len(m.GetSubject().GetChanges()) != 2 {
					t.Errorf("export of the erased subject: %v", m.GetSubject())
				}
			default:
				if s.GetPerson().GetEmail() == "" || len(m.GetSubject().GetChanges()) != 1 {
					t.Errorf("export of a subject: %v", m.GetSubject())
				}
			}
		}
		if !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != n {
			t.Errorf("exported ids %v: want each once, in order", ids)
		}

		// Stop after three, then resume from the last token: the rest, once.
		first, err := exportSubjects(t, e, c.name(), token, &pdv1.ExportControllerSubjectsRequest{CustomerId: "customer-42"}, 3)
		if err != nil || len(first) != 3 {
			t.Fatalf("first part: %d messages, %v", len(first), err)
		}
		rest, err := exportSubjects(t, e, c.name(), token, &pdv1.ExportControllerSubjectsRequest{CustomerId: "customer-42", ResumeToken: first[2].GetResumeToken()}, 0)
		if err != nil {
			t.Fatalf("resume: %v", err)
		}
		var got []string
		for i, m := range append(first, rest...) {
			got = append(got, m.GetSubject().GetSubject().GetSubjectId())
			if m.GetDone() != int64(i+1) || m.GetTotal() != n {
				t.Errorf("message %d: done %d of %d", i, m.GetDone(), m.GetTotal())
			}
		}
		if !slices.Equal(got, ids) {
			t.Errorf("in two parts %v, want %v", got, ids)
		}

		// A token is for one customer's export only.
		for _, bad := range []string{"not a token", first[2].GetResumeToken() + "x"} {
			if _, err := exportSubjects(t, e, c.name(), token, &pdv1.ExportControllerSubjectsRequest{CustomerId: "customer-43", ResumeToken: bad}, 0); status.Code(err) != codes.InvalidArgument || !slices.Equal(badFields(err), []string{"resume_token"}) {
				t.Errorf("token %q: %v", bad, err)
			}
		}
		if _, err := exportSubjects(t, e, c.name(), token, &pdv1.ExportControllerSubjectsRequest{CustomerId: "company"}, 0); status.Code(err) != codes.InvalidArgument {
			t.Errorf("export of the company: %v", err)
		}
	})
}

func TestEraseControllerSubjects(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		op := e.as(c, e.operator)
		createAgreement(t, e, c, paReq(e, "pa-1", "customer-42", supportAndDelivery, allCategories...))
		const n = 6
		var subs []*pdv1.Subject
		for i := range n {
			sub := createFor(t, c, "customer-42", 300+i)
			call(t, c, "AddHistoryEntry", historyReq(sub, "h-1", i), &pdv1.AddHistoryEntryResponse{})
			subs = append(subs, sub)
		}
		keep := []*pdv1.Subject{create(t, c, 400), create(t, c, 401)}
		call(t, op, terminateAgreementRPC, &pdv1.TerminateProcessorAgreementRequest{IdempotencyKey: "end", AgreementId: "customer-42.1"}, &pdv1.TerminateProcessorAgreementResponse{})
		e.clock.Advance(time.Hour)

		req := &pdv1.EraseControllerSubjectsRequest{IdempotencyKey: "end-of-agreement", CustomerId: "customer-42", Ground: pdv1.ErasureGround_ERASURE_GROUND_NO_LEGAL_BASIS, Reference: "notice-2026-11"}
		msgs, err := eraseSubjects(t, e, c.name(), e.operator, req, 0)
		if err != nil {
			t.Fatalf("erase: %v", err)
		}
		last := msgs[len(msgs)-1]
		if !last.GetFinished() || last.GetDone() != n || last.GetTotal() != n || last.GetJobId() == "" {
			t.Errorf("last message %v", last)
		}
		for i, m := range msgs {
			if m.GetJobId() != last.GetJobId() || m.GetTotal() != n || (i > 0 && m.GetDone() < msgs[i-1].GetDone()) || (m.GetFinished() && i != len(msgs)-1) {
				t.Errorf("message %d: %v", i, m)
			}
		}

		// Every subject of the customer is a tombstone; the company's are intact.
		for _, sub := range subs {
			a := call(t, e.controller(t, c), "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
			s := a.GetSubject()
			if s.GetState() != pdv1.SubjectState_SUBJECT_STATE_ERASED || s.GetPerson() != nil || len(a.GetHistory()) != 0 ||
				s.GetErasure().GetGround() != pdv1.ErasureGround_ERASURE_GROUND_NO_LEGAL_BASIS || s.GetErasure().GetReference() != "notice-2026-11" ||
				s.GetErasure().GetPerformedBy() != "operator" || !s.GetErasure().GetEraseTime().AsTime().Equal(e.clock.Now()) {
				t.Errorf("after bulk erasure: %v", s)
			}
		}
		for _, sub := range keep {
			a := call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
			if a.GetSubject().GetState() != pdv1.SubjectState_SUBJECT_STATE_ACTIVE || a.GetSubject().GetPerson().GetEmail() == "" {
				t.Errorf("another controller's subject: %v", a.GetSubject())
			}
		}
		dump := e.rawDump(t)
		for i := range n {
			if strings.Contains(dump, fmt.Sprintf("Testa%d", 300+i)) || strings.Contains(dump, fmt.Sprintf("Order %d", i)) {
				t.Errorf("stored documents still hold data of subject %d", i)
			}
		}
		if k, h := e.count(t, "keys"), e.count(t, "history"); k != 4 || h != 0 {
			t.Errorf("%d keys and %d history entries left, want the company's 4 and 0", k, h)
		}
		if got := e.ledgered(t, ledger.KindErasure); len(got) != n {
			t.Errorf("the erasure ledger holds %d subjects, want %d", len(got), n)
		}

		// The job is recorded.
		var job bson.M
		if err := e.coll("jobs").FindOne(context.Background(), bson.D{{Key: "_id", Value: last.GetJobId()}}).Decode(&job); err != nil {
			t.Fatalf("job: %v", err)
		}
		if job["kind"] != "ERASE_CONTROLLER_SUBJECTS" || job["customer"] != "customer-42" || job["ground"] != "ERASURE_GROUND_NO_LEGAL_BASIS" ||
			job["reference"] != "notice-2026-11" || job["principal"] != "operator" || job["state"] != "FINISHED" ||
			job["done"] != int64(n) || job["total"] != int64(n) || job["started_at"] == nil || job["finished_at"] == nil {
			t.Errorf("job %v", job)
		}

		// Again with the same key: it reports that it finished.
		again, err := eraseSubjects(t, e, c.name(), e.operator, req, 0)
		if err != nil || len(again) != 1 || !proto.Equal(again[0], last) {
			t.Errorf("again: %v %v, want only %v", again, err, last)
		}
		other := proto.Clone(req).(*pdv1.EraseControllerSubjectsRequest)
		other.Ground = pdv1.ErasureGround_ERASURE_GROUND_CONSENT_WITHDRAWN
		if _, err := eraseSubjects(t, e, c.name(), e.operator, other, 0); status.Code(err) != codes.InvalidArgument || !slices.Equal(badFields(err), []string{"idempotency_key"}) {
			t.Errorf("same key, another request: %v", err)
		}
		for _, tc := range []struct {
			req    *pdv1.EraseControllerSubjectsRequest
			fields []string
		}{
			{&pdv1.EraseControllerSubjectsRequest{IdempotencyKey: "k", CustomerId: "customer-42"}, []string{"ground"}},
			{&pdv1.EraseControllerSubjectsRequest{IdempotencyKey: "k", CustomerId: "company", Ground: 1}, []string{"customer_id"}},
			{&pdv1.EraseControllerSubjectsRequest{CustomerId: "customer-42", Ground: 1, Reference: strings.Repeat("r", 201)}, []string{"idempotency_key", "reference"}},
		} {
			if _, err := eraseSubjects(t, e, c.name(), e.operator, tc.req, 0); status.Code(err) != codes.InvalidArgument || !slices.Equal(badFields(err), tc.fields) {
				t.Errorf("%v: %v, want fields %v", tc.req, err, tc.fields)
			}
		}
		if n := e.count(t, "jobs"); n != 1 {
			t.Errorf("%d jobs, want 1", n)
		}
	})
}

// TestEraseControllerSubjectsResume interrupts a bulk erasure after its
// first progress and resumes it with the same key.
func TestEraseControllerSubjectsResume(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		createAgreement(t, e, c, paReq(e, "pa-1", "customer-42", supportAndDelivery, allCategories...))
		const n = 15
		var subs []*pdv1.Subject
		for i := range n {
			subs = append(subs, createFor(t, c, "customer-42", 500+i))
		}
		token := e.principal(t, "customer-42-portal", pdv1.PrincipalKind_PRINCIPAL_KIND_CUSTOMER_CONTROLLER, []string{"customer-42"}, nil)
		req := &pdv1.EraseControllerSubjectsRequest{IdempotencyKey: "bulk-1", CustomerId: "customer-42", Ground: pdv1.ErasureGround_ERASURE_GROUND_NO_LEGAL_BASIS}

		first, err := eraseSubjects(t, e, c.name(), token, req, 1)
		if err != nil || len(first) == 0 || first[len(first)-1].GetDone() < 1 {
			t.Fatalf("first attempt: %v %v", first, err)
		}
		rest, err := eraseSubjects(t, e, c.name(), token, req, 0)
		if err != nil {
			t.Fatalf("resume: %v", err)
		}
		if rest[0].GetDone() < 1 || rest[0].GetJobId() != first[0].GetJobId() {
			t.Errorf("resumed at %v, want the job where it stopped", rest[0])
		}
		last := rest[len(rest)-1]
		if !last.GetFinished() || last.GetDone() != n || last.GetTotal() != n {
			t.Errorf("after resuming: %v", last)
		}
		for _, sub := range subs {
			a := call(t, e.controller(t, c), "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
			var erased int
			for _, ch := range a.GetChanges() {
				if ch.GetKind() == pdv1.ChangeKind_CHANGE_KIND_ERASED {
					erased++
				}
			}
			if a.GetSubject().GetState() != pdv1.SubjectState_SUBJECT_STATE_ERASED || erased != 1 || a.GetSubject().GetVersion() < 2 {
				t.Errorf("subject %s: state %v, %d ERASED changes, want 1", sub.GetSubjectId(), a.GetSubject().GetState(), erased)
			}
		}
		if k := e.count(t, "keys"); k != 0 {
			t.Errorf("%d keys left", k)
		}
		var job bson.M
		if err := e.coll("jobs").FindOne(context.Background(), bson.D{{Key: "_id", Value: last.GetJobId()}}).Decode(&job); err != nil || job["state"] != "FINISHED" || job["done"] != int64(n) {
			t.Errorf("job %v %v", job, err)
		}
	})
}

// exportSubjects calls ExportControllerSubjects over the named transport as
// token; stopAfter > 0 cancels the call after that many messages.
func exportSubjects(t *testing.T, e *env, transport, token string, req *pdv1.ExportControllerSubjectsRequest, stopAfter int) ([]*pdv1.ExportControllerSubjectsResponse, error) {
	t.Helper()
	return streamRPC(t, e, transport, token, req, http.MethodPost, "/v1/customers/"+req.GetCustomerId()+"/subjects:export", doneAt[*pdv1.ExportControllerSubjectsResponse](stopAfter),
		func(ctx context.Context, conn *grpc.ClientConn) (grpc.ServerStreamingClient[pdv1.ExportControllerSubjectsResponse], error) {
			return pdv1.NewProcessorAgreementServiceClient(conn).ExportControllerSubjects(ctx, req)
		})
}

// eraseSubjects calls EraseControllerSubjects as exportSubjects does;
// stopAfter > 0 cancels after the first message that reports that many
// subjects done.
func eraseSubjects(t *testing.T, e *env, transport, token string, req *pdv1.EraseControllerSubjectsRequest, stopAfter int) ([]*pdv1.EraseControllerSubjectsResponse, error) {
	t.Helper()
	return streamRPC(t, e, transport, token, req, http.MethodPost, "/v1/customers/"+req.GetCustomerId()+"/subjects:erase", doneAt[*pdv1.EraseControllerSubjectsResponse](stopAfter),
		func(ctx context.Context, conn *grpc.ClientConn) (grpc.ServerStreamingClient[pdv1.EraseControllerSubjectsResponse], error) {
			return pdv1.NewProcessorAgreementServiceClient(conn).EraseControllerSubjects(ctx, req)
		})
}

// progress is a message of a server stream that reports how many are done.
type progress interface {
	proto.Message
	GetDone() int64
}

// doneAt stops a stream once a message reports n done; never when n is 0.
func doneAt[Resp progress](n int) func(Resp) bool {
	return func(m Resp) bool { return n > 0 && m.GetDone() >= int64(n) }
}

// streamRPC collects the messages of a server-streaming RPC: over gRPC with
// the generated client, over REST with the request's verb (POST with the
// request as body; GET with path holding it), whose answer is the gateway's
// newline-delimited JSON, a {"result": ...} or {"error": ...} per line. It
// cancels the call once stop (if not nil) says so.
func streamRPC[R any, Resp interface {
	*R
	proto.Message
}](t *testing.T, e *env, transport, token string, req proto.Message, verb, path string, stop func(Resp) bool,
	open func(context.Context, *grpc.ClientConn) (grpc.ServerStreamingClient[R], error),
) ([]Resp, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out []Resp
	if stop == nil {
		stop = func(Resp) bool { return false }
	}
	if transport != "rest" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		st, err := open(ctx, e.grpc)
		if err != nil {
			return nil, err
		}
		for {
			m, err := st.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) {
					return out, nil
				}
				return out, err
			}
			out = append(out, Resp(m))
			if stop(m) {
				return out, nil
			}
		}
	}
	var body io.Reader
	if verb == http.MethodPost {
		b, err := jsonOut.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		body = bytes.NewReader(b)
	}
	hr, err := http.NewRequestWithContext(ctx, verb, e.base+path, body)
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		// Refused before the first message: answered as a unary call is.
		b, _ := io.ReadAll(res.Body)
		return nil, restRefusal(b, res.StatusCode)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 8<<20)
	for sc.Scan() {
		var line struct {
			Result json.RawMessage `json:"result"`
			Error  json.RawMessage `json:"error"`
			End    json.RawMessage `json:"end"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("stream line %q: %v", sc.Text(), err)
		}
		if line.Error != nil {
			var st spb.Status
			if err := protojson.Unmarshal(line.Error, &st); err != nil {
				t.Fatalf("stream error %s: %v", line.Error, err)
			}
			return out, &restError{st: status.FromProto(&st), httpCode: res.StatusCode}
		}
		if line.End != nil {
			return out, nil
		}
		m := Resp(new(R))
		if err := protojson.Unmarshal(line.Result, m); err != nil {
			t.Fatalf("stream result %s: %v", line.Result, err)
		}
		out = append(out, m)
		if stop(m) {
			return out, nil
		}
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d without an error line", res.StatusCode)
	}
	return out, sc.Err()
}
