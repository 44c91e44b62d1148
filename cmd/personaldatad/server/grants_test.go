package server_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// rpcNotPermitted reports whether err is the RPC rule's refusal.
func rpcNotPermitted(err error) bool {
	for _, d := range status.Convert(err).Details() {
		if ei, ok := d.(*errdetails.ErrorInfo); ok && ei.GetReason() == "RPC_NOT_PERMITTED" {
			return true
		}
	}
	return false
}

// Who may call the rights-request, outbox, policy, register and breach
// RPCs, by kind of principal with its default grants: each is refused by
// the RPC rule to every other kind, before anything is read.
func TestGrantsOfTheRequestAndAccountabilityRPCs(t *testing.T) {
	e := start(t)
	support, customer, operator, billing, domreg, mailer :=
		pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, pdv1.PrincipalKind_PRINCIPAL_KIND_CUSTOMER_CONTROLLER, pdv1.PrincipalKind_PRINCIPAL_KIND_OPERATOR,
		pdv1.PrincipalKind_PRINCIPAL_KIND_BILLING_SYSTEM, pdv1.PrincipalKind_PRINCIPAL_KIND_DOMAIN_REGISTRATION, pdv1.PrincipalKind_PRINCIPAL_KIND_MAILER
	tokens := map[pdv1.PrincipalKind]string{
		support:  e.token,
		customer: e.principal(t, "g-customer", customer, []string{"customer-42"}, nil),
		operator: e.operator,
		billing:  e.principal(t, "g-billing", billing, []string{"company"}, nil),
		domreg:   e.principal(t, "g-domreg", domreg, []string{"company"}, nil),
		mailer:   e.principal(t, "g-mailer", mailer, []string{"company"}, nil),
	}
	allowed := map[string][]pdv1.PrincipalKind{}
	for _, m := range []string{"OpenRightsRequest", "SendVerificationCode", "ConfirmVerificationCode", "AttestIdentity", "DecideRightsRequest",
		"ExtendRightsRequest", "ForwardRightsRequest", "FulfilRightsRequest", "GetRightsRequestReply", "GetRightsRequestLetter"} {
		allowed["personaldata.v1.RightsRequestService/"+m] = []pdv1.PrincipalKind{support}
	}
	for _, m := range []string{"GetRightsRequest", "ListRightsRequests"} {
		allowed["personaldata.v1.RightsRequestService/"+m] = []pdv1.PrincipalKind{support, customer}
	}
	// A data subject's own: no principal of any kind (only the person on
	// their own page, selfservice_rights_test.go).
	for _, m := range []string{"OpenOwnRightsRequest", "ListOwnRightsRequests", "ListOwnControllers", "GetOwnAccessLetter"} {
		allowed["personaldata.v1.RightsRequestService/"+m] = nil
	}
	for _, m := range []string{"ListOutboxMessages", "StreamOutboxMessages", "AcknowledgeOutboxMessage"} {
		allowed["personaldata.v1.RequesterOutboxService/"+m] = []pdv1.PrincipalKind{mailer}
	}
	allowed["personaldata.v1.RequesterOutboxService/GetOutboxSummary"] = []pdv1.PrincipalKind{mailer, operator}
	for _, m := range []string{"PublishPolicyVersion", "NotifyPolicyChange"} {
		allowed["personaldata.v1.PolicyService/"+m] = []pdv1.PrincipalKind{operator}
	}
	for _, m := range []string{"ListPolicyVersions", "ListUninformedSubjects"} {
		allowed["personaldata.v1.PolicyService/"+m] = []pdv1.PrincipalKind{support, operator}
	}
	allowed["personaldata.v1.PolicyService/RecordPolicyAcknowledgement"] = []pdv1.PrincipalKind{support}
	allowed["personaldata.v1.ProcessingRegisterService/GetProcessingRegister"] = []pdv1.PrincipalKind{operator}
	allowed["personaldata.v1.BreachService/AssessBreachImpact"] = []pdv1.PrincipalKind{operator}

	// Every method of those services is in the table.
	for _, svc := range []string{"RightsRequestService", "RequesterOutboxService", "PolicyService", "ProcessingRegisterService", "BreachService"} {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName("personaldata.v1." + svc))
		if err != nil {
			t.Fatal(err)
		}
		methods := d.(protoreflect.ServiceDescriptor).Methods()
		for i := range methods.Len() {
			if _, ok := allowed["personaldata.v1."+svc+"/"+string(methods.Get(i).Name())]; !ok {
				t.Errorf("%s.%s is not in the table", svc, methods.Get(i).Name())
			}
		}
	}

	for method, kinds := range allowed {
		md, err := methodDescriptor(method)
		if err != nil {
			t.Fatal(err)
		}
		for kind, token := range tokens {
			// The outbox stream does not end by itself: a second is enough
			// to tell a refusal (at once) from a stream that waits.
			ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token), 2*time.Second)
			req := dynamicpb.NewMessage(md.Input())
			resp := dynamicpb.NewMessage(md.Output())
			if md.IsStreamingServer() {
				var stream grpc.ClientStream
				stream, err = e.grpc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/"+method)
				if err == nil {
					if err = stream.SendMsg(req); err == nil {
						_ = stream.CloseSend()
						err = stream.RecvMsg(resp)
					}
				}
			} else {
				err = e.grpc.Invoke(ctx, "/"+method, req, resp)
			}
			cancel()
			want := slices.Contains(kinds, kind)
			if got := !rpcNotPermitted(err); got != want {
				t.Errorf("%s as %s: %v (allowed: %v)", method, kind, err, want)
			}
			if !want && status.Code(err) != codes.PermissionDenied {
				t.Errorf("%s as %s: %v, want PERMISSION_DENIED", method, kind, err)
			}
		}
	}
}
