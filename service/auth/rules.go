// Package auth authenticates callers (bearer tokens, or client certificates
// under mutual TLS), and holds the rules of what each kind of principal may
// call and for which purposes.
package auth

import (
	"slices"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// AllTenants in a principal's tenant ids means every controller; only
// operators and the DPO may hold it.
const AllTenants = "*"

// subjectRPCs are the rights and record RPCs on subjects.
var subjectRPCs = []string{
	pdv1.PersonalDataService_CreateSubject_FullMethodName,
	pdv1.PersonalDataService_FindSubject_FullMethodName,
	pdv1.PersonalDataService_AccessSubject_FullMethodName,
	pdv1.PersonalDataService_StreamSubjectAccess_FullMethodName,
	pdv1.PersonalDataService_RectifySubject_FullMethodName,
	pdv1.PersonalDataService_AddHistoryEntry_FullMethodName,
	pdv1.PersonalDataService_ListHistoryEntries_FullMethodName,
	pdv1.PersonalDataService_RestrictProcessing_FullMethodName,
	pdv1.PersonalDataService_LiftRestriction_FullMethodName,
	pdv1.PersonalDataService_GetSubjectForPurpose_FullMethodName,
	pdv1.PersonalDataService_EraseSubject_FullMethodName,
}

// agreementReadRPCs let a caller see the agreements of its own tenants.
var agreementReadRPCs = []string{
	pdv1.ProcessorAgreementService_GetProcessorAgreement_FullMethodName,
	pdv1.ProcessorAgreementService_ListProcessorAgreements_FullMethodName,
	pdv1.ProcessorAgreementService_CheckProcessorAgreement_FullMethodName,
}

// endOfAgreementRPCs return or delete a controller's data: the customer's
// own controller principal. Operators may erase (not export) a customer's
// subjects, and only at the end of its agreements (service/agreements/bulk.go): the
// export goes to the customer, never to an operator's screen.
var endOfAgreementRPCs = []string{
	pdv1.ProcessorAgreementService_ExportControllerSubjects_FullMethodName,
	pdv1.ProcessorAgreementService_EraseControllerSubjects_FullMethodName,
}

// auditRPCs read the audit trail: for operators, and for controllers about
// their own data.
var auditRPCs = []string{
	pdv1.AuditService_ListAuditEvents_FullMethodName,
	pdv1.AuditService_VerifyAuditChain_FullMethodName,
	pdv1.AuditService_ProveAuditInclusion_FullMethodName,
}

// auditTreeRPCs read and sign the Merkle tree over the whole trail, every
// tenant's: for operators.
var auditTreeRPCs = []string{
	pdv1.AuditService_GetLatestAuditCheckpoint_FullMethodName,
	pdv1.AuditService_CreateAuditCheckpoint_FullMethodName,
	pdv1.AuditService_ProveAuditConsistency_FullMethodName,
	pdv1.AuditService_ListAuditTreeLeaves_FullMethodName,
}

// holdRPCs place and release legal retention holds: support staff for the
// company's data, controllers for their own.
var holdRPCs = []string{
	pdv1.RetentionService_PlaceHold_FullMethodName,
	pdv1.RetentionService_ReleaseHold_FullMethodName,
}

// consentRPCs record and withdraw a subject's consents: support staff for
// the company's data, controllers for their own.
var consentRPCs = []string{
	pdv1.ConsentService_RecordConsent_FullMethodName,
	pdv1.ConsentService_WithdrawConsent_FullMethodName,
}

// discloseRPCs hand a subject's data to a third party, with its basis.
var discloseRPCs = []string{pdv1.DisclosureService_Disclose_FullMethodName}

// notificationRPCs read and acknowledge the recipients' queues (Art. 19).
// The service lets only the domain-registration integration and operators
// read a recipient's queue, whatever RPCs a principal is granted.
var notificationRPCs = []string{
	pdv1.DisclosureService_ListRecipientNotifications_FullMethodName,
	pdv1.DisclosureService_StreamRecipientNotifications_FullMethodName,
	pdv1.DisclosureService_AcknowledgeNotification_FullMethodName,
}

// requestRPCs carry a rights request from arrival to answer: support staff.
var requestRPCs = []string{
	pdv1.RightsRequestService_OpenRightsRequest_FullMethodName,
	pdv1.RightsRequestService_SendVerificationCode_FullMethodName,
	pdv1.RightsRequestService_ConfirmVerificationCode_FullMethodName,
	pdv1.RightsRequestService_AttestIdentity_FullMethodName,
	pdv1.RightsRequestService_DecideRightsRequest_FullMethodName,
	pdv1.RightsRequestService_ExtendRightsRequest_FullMethodName,
	pdv1.RightsRequestService_ForwardRightsRequest_FullMethodName,
	pdv1.RightsRequestService_FulfilRightsRequest_FullMethodName,
	pdv1.RightsRequestService_GetRightsRequestReply_FullMethodName,
	pdv1.RightsRequestService_GetRightsRequestLetter_FullMethodName,
}

// requestReadRPCs read the queue of rights requests: support staff, and
// customers the requests about their data were forwarded to.
var requestReadRPCs = []string{
	pdv1.RightsRequestService_GetRightsRequest_FullMethodName,
	pdv1.RightsRequestService_ListRightsRequests_FullMethodName,
}

// outboxRPCs read and acknowledge the messages to requesters, which hold
// their addresses and live verification codes: the mailer alone (the
// service refuses every other kind too).
var outboxRPCs = []string{
	pdv1.RequesterOutboxService_ListOutboxMessages_FullMethodName,
	pdv1.RequesterOutboxService_StreamOutboxMessages_FullMethodName,
	pdv1.RequesterOutboxService_AcknowledgeOutboxMessage_FullMethodName,
}

// outboxSummaryRPCs count what waits in the outbox and how old it is,
// nothing of any message: operators, and the mailer.
var outboxSummaryRPCs = []string{pdv1.RequesterOutboxService_GetOutboxSummary_FullMethodName}

// policyReadRPCs read the privacy policy's versions and who is not yet
// informed of one: support staff and operators.
var policyReadRPCs = []string{
	pdv1.PolicyService_ListPolicyVersions_FullMethodName,
	pdv1.PolicyService_ListUninformedSubjects_FullMethodName,
}

// accountabilityRPCs publish policy versions, tell the subjects of a
// material change and return the register of processing: operators.
var accountabilityRPCs = []string{
	pdv1.PolicyService_PublishPolicyVersion_FullMethodName,
	pdv1.PolicyService_NotifyPolicyChange_FullMethodName,
	pdv1.ProcessingRegisterService_GetProcessingRegister_FullMethodName,
}

// backupRPCs take an online backup of everything the service keeps (sealed:
// no one reads a subject in it without the master key) and say when the
// last one was taken: operators.
var backupRPCs = []string{
	pdv1.BackupService_CreateBackup_FullMethodName,
	pdv1.BackupService_GetBackupStatus_FullMethodName,
}

// breachRecordRPCs carry a breach from its record to the report to IMY, the
// notices and the register: operators and the DPO.
var breachRecordRPCs = []string{
	pdv1.BreachRecordService_OpenBreachRecord_FullMethodName,
	pdv1.BreachRecordService_GetBreachRecord_FullMethodName,
	pdv1.BreachRecordService_ListBreachRecords_FullMethodName,
	pdv1.BreachRecordService_UpdateBreachRecord_FullMethodName,
	pdv1.BreachRecordService_ReportBreachToAuthority_FullMethodName,
	pdv1.BreachRecordService_NotifyBreachSubjects_FullMethodName,
	pdv1.BreachRecordService_NotifyBreachControllers_FullMethodName,
}

// kindDefaults is what a principal of each kind may do unless an operator
// says otherwise when creating it, and at most: the least each caller needs
// (cmd/billingclient, the support console and pdctl, the customers'
// controllers, the mailer), administration for operators. grants.md shows
// it as a table: after a change here, run go generate ./service/auth.
//
//go:generate go test -run TestGrantsTable -update .
var kindDefaults = map[pdv1.PrincipalKind]struct {
	rpcs     [][]string
	purposes []pdv1.Purpose
}{
	pdv1.PrincipalKind_PRINCIPAL_KIND_BILLING_SYSTEM: {
		rpcs:     [][]string{{pdv1.PersonalDataService_GetSubjectForPurpose_FullMethodName, pdv1.PersonalDataService_FindSubject_FullMethodName}, {pdv1.RetentionService_PlaceHold_FullMethodName}},
		purposes: []pdv1.Purpose{pdv1.Purpose_PURPOSE_INVOICING},
	},
	pdv1.PrincipalKind_PRINCIPAL_KIND_DOMAIN_REGISTRATION: {
		// The purpose view of a subject it was given the id of, not
		// FindSubject: whether an identity number belongs to a customer
		// is not for it to ask.
		rpcs:     [][]string{{pdv1.PersonalDataService_GetSubjectForPurpose_FullMethodName}, discloseRPCs, notificationRPCs},
		purposes: []pdv1.Purpose{pdv1.Purpose_PURPOSE_DOMAIN_REGISTRATION},
	},
	pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF: {
		// Neither Disclose (the domain-registration integration's, or the
		// customer's) nor the agreements (the subject's access document
		// names the agreement its data is kept under; a request about a
		// customer's data is forwarded to the customer).
		rpcs: [][]string{subjectRPCs, holdRPCs, consentRPCs, requestRPCs, requestReadRPCs,
			policyReadRPCs, {pdv1.PolicyService_RecordPolicyAcknowledgement_FullMethodName}},
		purposes: []pdv1.Purpose{pdv1.Purpose_PURPOSE_SUPPORT, pdv1.Purpose_PURPOSE_ACCOUNT_COMMUNICATION},
	},
	pdv1.PrincipalKind_PRINCIPAL_KIND_CUSTOMER_CONTROLLER: {
		rpcs: [][]string{subjectRPCs, agreementReadRPCs, endOfAgreementRPCs, auditRPCs, holdRPCs, consentRPCs, discloseRPCs, requestReadRPCs,
			{pdv1.BreachRecordService_GetBreachRecord_FullMethodName}},
		purposes: []pdv1.Purpose{pdv1.Purpose_PURPOSE_SERVICE_DELIVERY, pdv1.Purpose_PURPOSE_ACCOUNT_COMMUNICATION, pdv1.Purpose_PURPOSE_SUPPORT},
	},
	pdv1.PrincipalKind_PRINCIPAL_KIND_OPERATOR: {
		rpcs: [][]string{
			{
				pdv1.PrincipalService_CreatePrincipal_FullMethodName,
				pdv1.PrincipalService_GetPrincipal_FullMethodName,
				pdv1.PrincipalService_ListPrincipals_FullMethodName,
				pdv1.PrincipalService_UpdatePrincipal_FullMethodName,
				pdv1.PrincipalService_IssueToken_FullMethodName,
				pdv1.PrincipalService_RevokePrincipal_FullMethodName,
				pdv1.ProcessorAgreementService_CreateProcessorAgreement_FullMethodName,
				pdv1.ProcessorAgreementService_AmendProcessorAgreement_FullMethodName,
				pdv1.ProcessorAgreementService_TerminateProcessorAgreement_FullMethodName,
				pdv1.KeyService_RotateDataKeys_FullMethodName,
				pdv1.RetentionService_RunRetentionSweep_FullMethodName,
				pdv1.BreachService_AssessBreachImpact_FullMethodName,
			},
			{pdv1.ProcessorAgreementService_EraseControllerSubjects_FullMethodName},
			agreementReadRPCs, auditRPCs, auditTreeRPCs, notificationRPCs, outboxSummaryRPCs, policyReadRPCs, accountabilityRPCs, backupRPCs,
			breachRecordRPCs,
		},
	},
	pdv1.PrincipalKind_PRINCIPAL_KIND_MAILER: {
		rpcs: [][]string{outboxRPCs, outboxSummaryRPCs},
	},
	pdv1.PrincipalKind_PRINCIPAL_KIND_DPO: {
		// The breaches and what the company must say of them, the
		// register, the trail: no subject's data, no administration.
		rpcs: [][]string{breachRecordRPCs, {pdv1.BreachService_AssessBreachImpact_FullMethodName,
			pdv1.ProcessingRegisterService_GetProcessingRegister_FullMethodName}, auditRPCs, outboxSummaryRPCs},
	},
}

// purposeCeilings bound the purposes that a principal of a kind may be
// granted; a kind not listed may be granted any. Systems get the purpose
// they exist for; operators administer and process no one's data.
var purposeCeilings = map[pdv1.PrincipalKind][]pdv1.Purpose{
	pdv1.PrincipalKind_PRINCIPAL_KIND_BILLING_SYSTEM:      {pdv1.Purpose_PURPOSE_INVOICING},
	pdv1.PrincipalKind_PRINCIPAL_KIND_DOMAIN_REGISTRATION: {pdv1.Purpose_PURPOSE_DOMAIN_REGISTRATION},
	pdv1.PrincipalKind_PRINCIPAL_KIND_OPERATOR:            {},
	pdv1.PrincipalKind_PRINCIPAL_KIND_MAILER:              {},
	pdv1.PrincipalKind_PRINCIPAL_KIND_DPO:                 {},
}

// Grantable reports whether a principal of kind may be granted the RPC
// method: its kind's defaults are also its ceiling, and grants only narrow
// them. So an operator cannot grant itself, or another operator, an RPC on
// the subjects' data; what it can do, create or issue a token for a
// principal of a kind that has them, shows in that principal's tenants'
// audit chains.
func Grantable(kind pdv1.PrincipalKind, method string) bool {
	for _, group := range kindDefaults[kind].rpcs {
		if slices.Contains(group, method) {
			return true
		}
	}
	return false
}

// PurposeGrantable reports whether a principal of kind may be granted purpose.
func PurposeGrantable(kind pdv1.PrincipalKind, purpose pdv1.Purpose) bool {
	ceiling, bounded := purposeCeilings[kind]
	return !bounded || slices.Contains(ceiling, purpose)
}

// DefaultRPCs are the RPCs a principal of kind may call by default.
func DefaultRPCs(kind pdv1.PrincipalKind) []string {
	var out []string
	for _, group := range kindDefaults[kind].rpcs {
		out = append(out, group...)
	}
	return out
}

// DefaultPurposes are the purposes a principal of kind may use by default.
func DefaultPurposes(kind pdv1.PrincipalKind) []pdv1.Purpose {
	return kindDefaults[kind].purposes
}

// anyPrincipalRPCs may be called by every authenticated principal.
var anyPrincipalRPCs = map[string]bool{
	pdv1.PrincipalService_GetCaller_FullMethodName:                   true,
	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      true,
	"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": true,
}

// KnownRPC reports whether method names an RPC that can be granted.
func KnownRPC(method string) bool {
	for _, rpcs := range kindDefaults {
		for _, group := range rpcs.rpcs {
			for _, m := range group {
				if m == method {
					return true
				}
			}
		}
	}
	return false
}

// refusalAdvice says what to do instead, for an RPC that a kind may not call
// and a caller of that kind might try.
var refusalAdvice = map[pdv1.PrincipalKind]map[string]string{
	pdv1.PrincipalKind_PRINCIPAL_KIND_OPERATOR: {
		pdv1.ProcessorAgreementService_ExportControllerSubjects_FullMethodName: "a customer's data is exported to the customer, never to an operator: " +
			"create a customer-controller principal for the customer (pdctl principal create --id ID --kind customer-controller --tenant CUSTOMER; " +
			"it is recorded in the customer's audit chain) and hand its token to the customer, who exports",
	},
}

// RefusalAdvice is what to do instead of calling method, for a principal of
// kind refused it, or "".
func RefusalAdvice(kind pdv1.PrincipalKind, method string) string {
	return refusalAdvice[kind][method]
}

// rpcLimits are the rules on an RPC beyond who may call it, as the table of
// grants states them (grants.md).
var rpcLimits = map[string]string{
	pdv1.ProcessorAgreementService_ExportControllerSubjects_FullMethodName: "the data goes to the customer: operators may not export it, they create the customer's customer-controller principal and hand its token over",
	pdv1.ProcessorAgreementService_EraseControllerSubjects_FullMethodName:  "an operator only when no agreement with the customer is in force or pending, or naming the one to terminate in the same call (`terminate_agreement_id`); else `AGREEMENT_IN_FORCE`",
	pdv1.PersonalDataService_StartContactChange_FullMethodName:             "a data subject on their own page only (self-service), about themselves",
	pdv1.PersonalDataService_ConfirmContactChange_FullMethodName:           "a data subject on their own page only (self-service), about themselves",
	pdv1.RightsRequestService_OpenOwnRightsRequest_FullMethodName:          "a data subject on their own page only (self-service), about themselves; verified by the sign-in",
	pdv1.RightsRequestService_ListOwnRightsRequests_FullMethodName:         "a data subject on their own page only (self-service), about themselves",
	pdv1.RightsRequestService_ListOwnControllers_FullMethodName:            "a data subject on their own page only (self-service), about themselves",
	pdv1.RightsRequestService_GetOwnAccessLetter_FullMethodName:            "a data subject on their own page only (self-service), about themselves",
}
