package server_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

const (
	policyService     = "personaldata.v1.PolicyService/"
	publishPolicy     = policyService + "PublishPolicyVersion"
	listPolicies      = policyService + "ListPolicyVersions"
	recordPolicyAck   = policyService + "RecordPolicyAcknowledgement"
	listUninformed    = policyService + "ListUninformedSubjects"
	getRegister       = "personaldata.v1.ProcessingRegisterService/GetProcessingRegister"
	policyTextSHA256  = "3f1c9a1e6b1d0c2a4e5f60718293a4b5c6d7e8f90123456789abcdef01234567"
	policySummaryText = "Vi har lagt till direktmarknadsföring med samtycke."
)

func policyReq(key, version string, effective time.Time, material bool) *pdv1.PublishPolicyVersionRequest {
	return &pdv1.PublishPolicyVersionRequest{IdempotencyKey: key, PolicyVersion: &pdv1.PolicyVersion{
		Version: version, EffectiveTime: timestamppb.New(effective), Language: "sv", TextSha256: policyTextSHA256,
		Url: "https://example.test/dataskyddspolicy/" + version, ChangeSummary: policySummaryText, Material: material,
	}}
}

// notifyPolicy runs NotifyPolicyChange over gRPC as the operator; stopAfter
// > 0 hangs up after that many progress messages.
func notifyPolicy(t *testing.T, e *env, key, version string, stopAfter int) *pdv1.NotifyPolicyChangeResponse {
	t.Helper()
	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+e.operator))
	defer cancel()
	stream, err := pdv1.NewPolicyServiceClient(e.grpc).NotifyPolicyChange(ctx, &pdv1.NotifyPolicyChangeRequest{IdempotencyKey: key, Version: version})
	if err != nil {
		t.Fatal(err)
	}
	var last *pdv1.NotifyPolicyChangeResponse
	for n := 1; ; n++ {
		m, err := stream.Recv()
		if err != nil {
			if last == nil || !last.GetFinished() {
				t.Fatalf("notify %s: %v after %v", version, err, last)
			}
			return last
		}
		last = m
		if stopAfter > 0 && n == stopAfter {
			return last
		}
	}
}

func policyNotices(t *testing.T, mailer caller) []*pdv1.OutboxMessage {
	t.Helper()
	var out []*pdv1.OutboxMessage
	for _, m := range outbox(t, mailer) {
		if m.GetKind() == pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_POLICY_CHANGE {
			out = append(out, m)
		}
	}
	return out
}

// Policy versions: published by operators, in force by date, acknowledged
// per subject and shown by AccessSubject, and a material change told to
// every live, unrestricted subject once, resumably.
func TestPolicyVersions(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		op := e.as(c, e.operator)
		now := e.clock.Now()
		first := call(t, op, publishPolicy, policyReq("pol-1", "2018-05", now.Add(-24*time.Hour), false), &pdv1.PublishPolicyVersionResponse{}).GetPolicyVersion()
		if first.GetPublishedBy() == "" || first.GetPublishTime() == nil {
			t.Errorf("published: %v", first)
		}
		// A retry answers the same; the version again, or out of order, is refused.
		call(t, op, publishPolicy, policyReq("pol-1", "2018-05", now.Add(-24*time.Hour), false), &pdv1.PublishPolicyVersionResponse{})
		callErr(t, op, publishPolicy, policyReq("pol-2", "2018-05", now, false), &pdv1.PublishPolicyVersionResponse{}, codes.AlreadyExists)
		callErr(t, op, publishPolicy, policyReq("pol-3", "2017-01", now.Add(-48*time.Hour), false), &pdv1.PublishPolicyVersionResponse{}, codes.InvalidArgument)
		bad := policyReq("pol-4", "Ny Version", now, false)
		bad.PolicyVersion.Url, bad.PolicyVersion.TextSha256, bad.PolicyVersion.Language = "http://example.test", "abc", "de"
		err := callErr(t, op, publishPolicy, bad, &pdv1.PublishPolicyVersionResponse{}, codes.InvalidArgument)
		if got := strings.Join(badFields(err), ","); got != "policy_version.version,policy_version.language,policy_version.text_sha256,policy_version.url" {
			t.Errorf("bad fields %s", got)
		}
		// Support staff do not publish.
		callErr(t, c, publishPolicy, policyReq("pol-5", "2099-01", now, false), &pdv1.PublishPolicyVersionResponse{}, codes.PermissionDenied)

		// A material version that takes effect in an hour.
		call(t, op, publishPolicy, policyReq("pol-6", "2027-01", now.Add(time.Hour), true), &pdv1.PublishPolicyVersionResponse{})
		list := call(t, c, listPolicies, &pdv1.ListPolicyVersionsRequest{}, &pdv1.ListPolicyVersionsResponse{})
		if len(list.GetPolicyVersions()) != 2 || list.GetInForce() != "2018-05" {
			t.Errorf("versions %d, in force %q; want 2 and 2018-05", len(list.GetPolicyVersions()), list.GetInForce())
		}

		informed, restricted, erased := create(t, c, 81), create(t, c, 82), create(t, c, 83)
		others := []*pdv1.Subject{create(t, c, 84), create(t, c, 85), create(t, c, 86)}
		call(t, c, "RestrictProcessing", restrictReq(restricted, "restrict-82"), &pdv1.RestrictProcessingResponse{})
		call(t, c, "EraseSubject", eraseReq(erased, "erase-83"), &pdv1.EraseSubjectResponse{})
		ack := call(t, c, recordPolicyAck, &pdv1.RecordPolicyAcknowledgementRequest{
			IdempotencyKey: "ack-81", SubjectId: informed.GetSubjectId(), Version: "2018-05", Kind: pdv1.PolicyAcknowledgementKind_POLICY_ACKNOWLEDGEMENT_KIND_ACCEPTED,
			AcknowledgeTime: timestamppb.New(now.Add(-time.Hour)), Channel: pdv1.Channel_CHANNEL_PORTAL, Reference: "signup-81",
		}, &pdv1.RecordPolicyAcknowledgementResponse{}).GetAcknowledgement()
		if ack.GetRecordedBy() != "tester" {
			t.Errorf("recorded by %q", ack.GetRecordedBy())
		}
		callErr(t, c, recordPolicyAck, &pdv1.RecordPolicyAcknowledgementRequest{
			IdempotencyKey: "ack-x", SubjectId: informed.GetSubjectId(), Version: "1999-01", Kind: pdv1.PolicyAcknowledgementKind_POLICY_ACKNOWLEDGEMENT_KIND_INFORMED,
			AcknowledgeTime: timestamppb.New(now), Channel: pdv1.Channel_CHANNEL_PORTAL,
		}, &pdv1.RecordPolicyAcknowledgementResponse{}, codes.NotFound) // never published, as ListUninformedSubjects says
		doc := call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: informed.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
		if acks := doc.GetPolicyAcknowledgements(); len(acks) != 1 || acks[0].GetVersion() != "2018-05" || acks[0].GetKind() != pdv1.PolicyAcknowledgementKind_POLICY_ACKNOWLEDGEMENT_KIND_ACCEPTED {
			t.Errorf("AccessSubject shows %v", acks)
		}

		// Not informed of the version in force: every live subject but the one.
		uninformed := call(t, c, listUninformed, &pdv1.ListUninformedSubjectsRequest{}, &pdv1.ListUninformedSubjectsResponse{})
		want := []string{restricted.GetSubjectId()}
		for _, o := range others {
			want = append(want, o.GetSubjectId())
		}
		slices.Sort(want)
		if uninformed.GetVersion() != "2018-05" || !slices.Equal(uninformed.GetSubjectIds(), want) {
			t.Errorf("uninformed of %s: %v, want %v", uninformed.GetVersion(), uninformed.GetSubjectIds(), want)
		}

		if c.name() != "grpc" {
			// Over REST: the whole run, its last progress, and one notice
			// each; a second run queues none again.
			var done pdv1.NotifyPolicyChangeResponse
			call(t, op, policyService+"NotifyPolicyChange", &pdv1.NotifyPolicyChangeRequest{IdempotencyKey: "notify-rest", Version: "2027-01"}, &done)
			if !done.GetFinished() || done.GetDone() != 6 || done.GetQueued() != 4 || done.GetSkipped() != 2 {
				t.Errorf("over REST: %v", &done)
			}
			call(t, op, policyService+"NotifyPolicyChange", &pdv1.NotifyPolicyChangeRequest{IdempotencyKey: "notify-rest-2", Version: "2027-01"}, &done)
			if n := len(policyNotices(t, e.mailer(t, c))); n != 4 {
				t.Errorf("%d notices over REST, want 4", n)
			}
			return // the interruption and the acknowledgements are driven over gRPC below
		}
		// Telling of a non-material change is refused.
		callErr(t, op, policyService+"NotifyPolicyChange", &pdv1.NotifyPolicyChangeRequest{IdempotencyKey: "n-0", Version: "2018-05"}, &pdv1.NotifyPolicyChangeResponse{}, codes.FailedPrecondition)
		mailer := e.mailer(t, c)
		// Interrupted after two subjects, then resumed with the same key.
		part := notifyPolicy(t, e, "notify-1", "2027-01", 2)
		if part.GetFinished() || part.GetDone() != 1 {
			t.Fatalf("after the hang-up: %v", part)
		}
		done := notifyPolicy(t, e, "notify-1", "2027-01", 0)
		if done.GetDone() != 6 || done.GetQueued() != 4 || done.GetSkipped() != 2 || done.GetJobId() != part.GetJobId() {
			t.Fatalf("resumed: %v; want 6 done, 4 queued (not the restricted or erased)", done)
		}
		notices := policyNotices(t, mailer)
		var to []string
		for _, m := range notices {
			to = append(to, m.GetTo())
			if !strings.Contains(m.GetBody(), policySummaryText) || !strings.Contains(m.GetBody(), "https://example.test/dataskyddspolicy/2027-01") {
				t.Errorf("notice says %q", m.GetBody())
			}
		}
		slices.Sort(to)
		wantTo := []string{informed.GetPerson().GetEmail()}
		for _, o := range others {
			wantTo = append(wantTo, o.GetPerson().GetEmail())
		}
		slices.Sort(wantTo)
		if !slices.Equal(to, wantTo) {
			t.Errorf("notices to %v, want %v", to, wantTo)
		}
		// Another run does not queue any again.
		notifyPolicy(t, e, "notify-2", "2027-01", 0)
		if n := len(policyNotices(t, mailer)); n != 4 {
			t.Errorf("%d notices after a second run, want 4", n)
		}
		// The mailer's acknowledgement records the subject informed; a run
		// after it skips the subject.
		for _, m := range notices[:2] {
			call(t, mailer, ackOutbox, &pdv1.AcknowledgeOutboxMessageRequest{MessageId: m.GetMessageId()}, &pdv1.AcknowledgeOutboxMessageResponse{})
		}
		// The two not acknowledged still wait: queued by no later run.
		third := notifyPolicy(t, e, "notify-3", "2027-01", 0)
		if third.GetQueued() != 0 || third.GetSkipped() != 6 {
			t.Errorf("a run after two acknowledgements queued %d, skipped %d; want 0 and 6", third.GetQueued(), third.GetSkipped())
		}
		if n := len(policyNotices(t, mailer)); n != 2 {
			t.Errorf("%d notices waiting, want 2", n)
		}
		left := call(t, c, listUninformed, &pdv1.ListUninformedSubjectsRequest{Version: "2027-01", PageSize: 1}, &pdv1.ListUninformedSubjectsResponse{})
		all := left.GetSubjectIds()
		for token := left.GetNextPageToken(); token != ""; {
			page := call(t, c, listUninformed, &pdv1.ListUninformedSubjectsRequest{Version: "2027-01", PageSize: 1, PageToken: token}, &pdv1.ListUninformedSubjectsResponse{})
			all = append(all, page.GetSubjectIds()...)
			token = page.GetNextPageToken()
		}
		if len(all) != 3 { // the restricted one and the two not acknowledged
			t.Errorf("uninformed of 2027-01 after two acknowledgements: %v", all)
		}
		// An erased subject's waiting notice is dropped, not sent.
		var victim *pdv1.Subject
		for _, o := range append(others, informed) {
			if o.GetPerson().GetEmail() == policyNotices(t, mailer)[0].GetTo() {
				victim = o
			}
		}
		call(t, c, "EraseSubject", eraseReq(victim, "erase-victim"), &pdv1.EraseSubjectResponse{})
		if n := len(policyNotices(t, mailer)); n != 1 {
			t.Errorf("%d notices after an erasure, want 1", n)
		}
	})
}

// The register follows what the service runs: the purpose table, the
// integrations' principals, recorded disclosures, agreements.
func TestProcessingRegister(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		op := e.as(c, e.operator)
		reg := call(t, op, getRegister, &pdv1.GetProcessingRegisterRequest{}, &pdv1.GetProcessingRegisterResponse{})
		ctl := reg.GetController()
		if len(ctl.GetPurposes()) != 6 || ctl.GetPurposes()[0].GetPurpose() != pdv1.Purpose_PURPOSE_INVOICING ||
			!strings.Contains(ctl.GetPurposes()[0].GetLegalBasis(), "Art. 6(1)(b)") || !strings.Contains(ctl.GetPurposes()[5].GetLegalBasis(), "consent") {
			t.Errorf("purposes: %v", ctl.GetPurposes())
		}
		if len(ctl.GetRecipients()) != 0 || len(reg.GetProcessors()) != 0 {
			t.Errorf("a fresh service has recipients %v, processors %v", ctl.GetRecipients(), reg.GetProcessors())
		}
		if s := ctl.GetSecurity(); s.GetCurrentMasterKeyVersion() != 1 || s.GetDataKeys() != 0 || !strings.Contains(s.GetEncryptionAtRest(), "AES-256-GCM") {
			t.Errorf("security: %v", s)
		}
		if len(ctl.GetRetention()) != 4 || !strings.Contains(ctl.GetRetention()[1].GetBasis(), "accounting") {
			t.Errorf("retention: %v", ctl.GetRetention())
		}
		// Support staff do not read it.
		callErr(t, c, getRegister, &pdv1.GetProcessingRegisterRequest{}, &pdv1.GetProcessingRegisterResponse{}, codes.PermissionDenied)

		// A disclosure, the integration's principal, an agreement.
		sub := create(t, c, 91)
		call(t, e.domreg(t, c), "personaldata.v1.DisclosureService/Disclose",
			discloseReq(sub, "disclose-91", "iis.se", pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONTRACT, "order-91", pdv1.DataCategory_DATA_CATEGORY_IDENTIFICATION, pdv1.DataCategory_DATA_CATEGORY_CONTACT), &pdv1.DiscloseResponse{})
		createAgreement(t, e, c, paReq(e, "pa-reg", "customer-42", supportAndDelivery, pdv1.DataCategory_DATA_CATEGORY_CONTACT))
		reg = call(t, op, getRegister, &pdv1.GetProcessingRegisterRequest{}, &pdv1.GetProcessingRegisterResponse{})
		var third, internal []*pdv1.RegisterRecipient
		for _, r := range reg.GetController().GetRecipients() {
			if r.GetKind() == pdv1.RecipientKind_RECIPIENT_KIND_THIRD_PARTY {
				third = append(third, r)
			} else {
				internal = append(internal, r)
			}
		}
		if len(third) != 1 || third[0].GetName() != "iis.se" || !slices.Equal(third[0].GetBases(), []pdv1.DisclosureBasis{pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONTRACT}) ||
			!slices.Equal(third[0].GetPurposes(), []pdv1.Purpose{pdv1.Purpose_PURPOSE_DOMAIN_REGISTRATION}) || len(third[0].GetCategories()) != 2 {
			t.Errorf("third-party recipients: %v", third)
		}
		if len(internal) != 1 || !strings.Contains(internal[0].GetName(), "DOMAIN_REGISTRATION") {
			t.Errorf("internal recipients: %v", internal)
		}
		if s := reg.GetController().GetSecurity(); s.GetDataKeys() != 1 {
			t.Errorf("data keys %d, want 1", s.GetDataKeys())
		}
		procs := reg.GetProcessors()
		if len(procs) != 1 || procs[0].GetCustomerId() != "customer-42" || procs[0].GetState() != pdv1.AgreementState_AGREEMENT_STATE_IN_FORCE ||
			!slices.Equal(procs[0].GetTerms().GetSubProcessors(), []string{"iis.se", "registry.example.net"}) {
			t.Fatalf("processors: %v", procs)
		}
		// Amended, the register shows the new terms.
		terms := paTerms(e, supportAndDelivery, allCategories...)
		terms.SubProcessors = []string{"iis.se"}
		call(t, op, amendAgreementRPC, &pdv1.AmendProcessorAgreementRequest{IdempotencyKey: "amend-reg", AgreementId: procs[0].GetAgreementId(), ExpectedVersion: 1, Terms: terms}, &pdv1.AmendProcessorAgreementResponse{})
		reg = call(t, op, getRegister, &pdv1.GetProcessingRegisterRequest{}, &pdv1.GetProcessingRegisterResponse{})
		if p := reg.GetProcessors()[0]; !slices.Equal(p.GetTerms().GetSubProcessors(), []string{"iis.se"}) || len(p.GetTerms().GetCategories()) != 3 {
			t.Errorf("after the amendment: %v", p.GetTerms())
		}
	})
}
