package server_test

import (
	"context"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// The RPCs that issue 23 took from the defaults (and ceilings) of kinds
// that do not need them.
var (
	// Whether an identity number belongs to a customer is not the
	// domain-registration integration's to ask.
	domregDropped = []string{pdv1.PersonalDataService_FindSubject_FullMethodName}
	// Support staff neither disclose nor read the processor agreements.
	supportDropped = []string{
		pdv1.DisclosureService_Disclose_FullMethodName,
		pdv1.ProcessorAgreementService_GetProcessorAgreement_FullMethodName,
		pdv1.ProcessorAgreementService_ListProcessorAgreements_FullMethodName,
		pdv1.ProcessorAgreementService_CheckProcessorAgreement_FullMethodName,
	}
	// Operators do not export a customer's data: the customer does.
	operatorDropped = []string{pdv1.ProcessorAgreementService_ExportControllerSubjects_FullMethodName}
)

// droppedCalls are calls of the dropped RPCs, well formed, so that only the
// RPC rule can refuse them.
func droppedCalls(sub *pdv1.Subject) map[string]proto.Message {
	return map[string]proto.Message{
		pdv1.PersonalDataService_FindSubject_FullMethodName: &pdv1.FindSubjectRequest{ControllerId: "company",
			Key: &pdv1.FindSubjectRequest_IdentityNumber{IdentityNumber: testPerson(640).GetIdentityNumber()}},
		pdv1.DisclosureService_Disclose_FullMethodName: discloseReq(sub, "lg-disclose", registry, pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONTRACT, "order-1",
			pdv1.DataCategory_DATA_CATEGORY_CONTACT),
		pdv1.ProcessorAgreementService_GetProcessorAgreement_FullMethodName:   &pdv1.GetProcessorAgreementRequest{AgreementId: "customer-42.1"},
		pdv1.ProcessorAgreementService_ListProcessorAgreements_FullMethodName: &pdv1.ListProcessorAgreementsRequest{CustomerId: "customer-42"},
		pdv1.ProcessorAgreementService_CheckProcessorAgreement_FullMethodName: &pdv1.CheckProcessorAgreementRequest{ControllerId: "customer-42",
			Category: pdv1.DataCategory_DATA_CATEGORY_CONTACT},
		pdv1.ProcessorAgreementService_ExportControllerSubjects_FullMethodName: &pdv1.ExportControllerSubjectsRequest{CustomerId: "customer-42"},
	}
}

// responseFor is an empty response of the RPC method ("/pkg.Service/Method").
func responseFor(t *testing.T, method string) proto.Message {
	t.Helper()
	md, err := methodDescriptor(method[1:])
	if err != nil {
		t.Fatal(err)
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
	if err != nil {
		t.Fatal(err)
	}
	return mt.New().Interface()
}

// TestLeastGrants: GetCaller shows each kind's defaults without what it
// does not need, and calling what was taken away is refused by the RPC rule
// (over gRPC and REST), while what the kind needs still works.
func TestLeastGrants(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		createAgreement(t, e, c, paReq(e, "pa-1", "customer-42", supportAndDelivery, allCategories...))
		sub := create(t, c, 640)
		tokens := map[pdv1.PrincipalKind]string{
			pdv1.PrincipalKind_PRINCIPAL_KIND_DOMAIN_REGISTRATION: e.principal(t, "lg-domreg", pdv1.PrincipalKind_PRINCIPAL_KIND_DOMAIN_REGISTRATION, []string{"company", "customer-42"}, nil),
			pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF:       e.principal(t, "lg-support", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, []string{"company", "customer-42"}, nil),
			pdv1.PrincipalKind_PRINCIPAL_KIND_OPERATOR:            e.operator,
			pdv1.PrincipalKind_PRINCIPAL_KIND_BILLING_SYSTEM:      e.principal(t, "lg-billing", pdv1.PrincipalKind_PRINCIPAL_KIND_BILLING_SYSTEM, []string{"company"}, nil),
		}
		dropped := map[pdv1.PrincipalKind][]string{
			pdv1.PrincipalKind_PRINCIPAL_KIND_DOMAIN_REGISTRATION: domregDropped,
			pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF:       supportDropped,
			pdv1.PrincipalKind_PRINCIPAL_KIND_OPERATOR:            operatorDropped,
		}
		calls := droppedCalls(sub)
		for kind, token := range tokens {
			as := e.as(c, token)
			got := call(t, as, "personaldata.v1.PrincipalService/GetCaller", &pdv1.GetCallerRequest{}, &pdv1.GetCallerResponse{}).GetPrincipal().GetRpcs()
			for _, m := range dropped[kind] {
				if slices.Contains(got, m) {
					t.Errorf("%s: GetCaller lists %s", kind, m)
				}
				err := callErr(t, as, m[1:], calls[m], responseFor(t, m), codes.PermissionDenied)
				if !rpcNotPermitted(err) {
					t.Errorf("%s calling %s: %v, want RPC_NOT_PERMITTED", kind, m, err)
				}
			}
		}
		// Exactly what the domain-registration integration and the billing
		// system need (README, service/auth/grants.md).
		domreg := call(t, e.as(c, tokens[pdv1.PrincipalKind_PRINCIPAL_KIND_DOMAIN_REGISTRATION]), "personaldata.v1.PrincipalService/GetCaller", &pdv1.GetCallerRequest{}, &pdv1.GetCallerResponse{}).GetPrincipal().GetRpcs()
		if want := []string{
			pdv1.PersonalDataService_GetSubjectForPurpose_FullMethodName,
			pdv1.DisclosureService_Disclose_FullMethodName,
			pdv1.DisclosureService_ListRecipientNotifications_FullMethodName,
			pdv1.DisclosureService_StreamRecipientNotifications_FullMethodName,
			pdv1.DisclosureService_AcknowledgeNotification_FullMethodName,
		}; !slices.Equal(domreg, want) {
			t.Errorf("domain-registration defaults %v, want %v", domreg, want)
		}
		// What each still needs works: the integration discloses and reads
		// the purpose view; support staff find and read subjects.
		call(t, e.as(c, tokens[pdv1.PrincipalKind_PRINCIPAL_KIND_DOMAIN_REGISTRATION]), discloseRPC, calls[pdv1.DisclosureService_Disclose_FullMethodName], &pdv1.DiscloseResponse{})
		call(t, e.as(c, tokens[pdv1.PrincipalKind_PRINCIPAL_KIND_DOMAIN_REGISTRATION]), "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: sub.GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_DOMAIN_REGISTRATION}, &pdv1.GetSubjectForPurposeResponse{})
		call(t, e.as(c, tokens[pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF]), "FindSubject", calls[pdv1.PersonalDataService_FindSubject_FullMethodName], &pdv1.FindSubjectResponse{})
		call(t, e.as(c, tokens[pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF]), "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
	})
}

// TestLeastGrantsStored: a principal stored with the broader defaults of
// before keeps none of what was taken away. A replica that has never seen
// the principals reads them from the store: GetCaller does not list the
// stored grants beyond the kind's ceiling, and the RPC rule refuses them.
func TestLeastGrantsStored(t *testing.T) {
	e := startOn(t, sharedStore(t))
	c := e.gc()
	createAgreement(t, e, c, paReq(e, "pa-1", "customer-42", supportAndDelivery, allCategories...))
	sub := create(t, c, 641)
	tokens := map[string]string{
		"old-domreg":  e.principal(t, "old-domreg", pdv1.PrincipalKind_PRINCIPAL_KIND_DOMAIN_REGISTRATION, []string{"company", "customer-42"}, nil),
		"old-support": e.principal(t, "old-support", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, []string{"company", "customer-42"}, nil),
		"operator":    e.operator,
	}
	old := map[string][]string{"old-domreg": domregDropped, "old-support": supportDropped, "operator": operatorDropped}
	for id, rpcs := range old {
		// As stored by a release whose defaults had them.
		res, err := e.coll("principals").UpdateOne(context.Background(), bson.D{{Key: "_id", Value: id}},
			bson.D{{Key: "$push", Value: bson.D{{Key: "rpcs", Value: bson.D{{Key: "$each", Value: rpcs}}}}}})
		if err != nil || res.ModifiedCount != 1 {
			t.Fatalf("store the old grants of %s: %v %v", id, res, err)
		}
	}
	r := e.replica(t)
	calls := droppedCalls(sub)
	for id, token := range tokens {
		as := r.as(r.gc(), token)
		got := call(t, as, "personaldata.v1.PrincipalService/GetCaller", &pdv1.GetCallerRequest{}, &pdv1.GetCallerResponse{}).GetPrincipal().GetRpcs()
		for _, m := range old[id] {
			if slices.Contains(got, m) {
				t.Errorf("%s: GetCaller lists the stored %s", id, m)
			}
			if err := callErr(t, as, m[1:], calls[m], responseFor(t, m), codes.PermissionDenied); !rpcNotPermitted(err) {
				t.Errorf("%s calling the stored %s: %v, want RPC_NOT_PERMITTED", id, m, err)
			}
		}
	}
}
