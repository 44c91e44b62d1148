package server_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

const (
	brSvc              = "personaldata.v1.BreachRecordService/"
	openBreach         = brSvc + "OpenBreachRecord"
	getBreach          = brSvc + "GetBreachRecord"
	listBreaches       = brSvc + "ListBreachRecords"
	updateBreach       = brSvc + "UpdateBreachRecord"
	reportBreach       = brSvc + "ReportBreachToAuthority"
	notifySubjects     = brSvc + "NotifyBreachSubjects"
	notifyControllers  = brSvc + "NotifyBreachControllers"
	breachNoticeKind   = pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_BREACH_NOTICE
	customerNoticeKind = pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_BREACH_CONTROLLER_NOTICE
)

// dpo is c's transport as the company's data protection officer.
func (e *env) dpo(t *testing.T, c caller) caller {
	t.Helper()
	return e.as(c, e.principal(t, "dpo-"+c.name(), pdv1.PrincipalKind_PRINCIPAL_KIND_DPO, []string{"*"}, nil))
}

// openBreachReq is a record of a leaked token of principal, the company
// aware at aware.
func openBreachReq(key, principal string, aware time.Time, risk pdv1.BreachRisk) *pdv1.OpenBreachRecordRequest {
	return &pdv1.OpenBreachRecordRequest{
		IdempotencyKey: key, AwareTime: timestamppb.New(aware),
		Description: "En åtkomsttoken för ett internt system läckte i en felrapport och användes av en obehörig för att läsa kunduppgifter.",
		Category:    pdv1.BreachCategory_BREACH_CATEGORY_CONFIDENTIALITY, Risk: risk,
		RiskReason:         "Identitetsuppgifter och kontaktuppgifter lästes av en obehörig; de kan användas för bedrägeri.",
		Assessment:         &pdv1.AssessBreachImpactRequest{PrincipalId: principal},
		LikelyConsequences: "Risk för bedrägeriförsök och riktade nätfiskeförsök.",
		MeasuresTaken:      "Token återkallad och ny utfärdad; åtkomstloggarna granskade.",
		MeasuresPlanned:    "Tokens ska inte längre kunna hamna i felrapporter.",
		Contact:            "Dataskyddsombudet, dso@example.test, 08-123 456 78",
	}
}

// noticesIn are the waiting messages of kind, as the mailer lists them.
func noticesIn(t *testing.T, mailer caller, kind pdv1.OutboxMessageKind) []*pdv1.OutboxMessage {
	t.Helper()
	var out []*pdv1.OutboxMessage
	for _, m := range outbox(t, mailer) {
		if m.GetKind() == kind {
			out = append(out, m)
		}
	}
	return out
}

// notifyAll runs NotifyBreachSubjects to its end and returns its last
// message.
func notifyAll(t *testing.T, c caller, id, key string) *pdv1.NotifyBreachSubjectsResponse {
	t.Helper()
	res := call(t, c, notifySubjects, &pdv1.NotifyBreachSubjectsRequest{BreachId: id, IdempotencyKey: key}, &pdv1.NotifyBreachSubjectsResponse{})
	if !res.GetFinished() {
		t.Fatalf("NotifyBreachSubjects over %s did not finish: %v", c.name(), res)
	}
	return res
}

// noPersonalValue fails the test if b holds any value of the made-up
// people 1 to 10 or any of the subject ids given.
func noPersonalValue(t *testing.T, what string, b []byte, ids ...string) {
	t.Helper()
	for n := 1; n <= 10; n++ {
		p := testPerson(n)
		for _, v := range []string{p.GetGivenName(), p.GetFamilyName(), p.GetEmail(), p.GetIdentityNumber(), p.GetPhone(), p.GetPostalAddress().GetLines()[0]} {
			if strings.Contains(string(b), v) {
				t.Errorf("%s holds a personal value (%d chars)", what, len(v))
			}
		}
	}
	for _, id := range ids {
		if strings.Contains(string(b), id) {
			t.Errorf("%s names a subject", what)
		}
	}
}

// tenantRPCs are the RPCs the tenant's chain records, each once.
func tenantRPCs(t *testing.T, e *env, c caller, tenant string) []string {
	t.Helper()
	var out []string
	for token := ""; ; {
		res := call(t, e.as(c, e.operator), "personaldata.v1.AuditService/ListAuditEvents",
			&pdv1.ListAuditEventsRequest{TenantId: tenant, PageSize: 100, PageToken: token}, &pdv1.ListAuditEventsResponse{})
		for _, ev := range res.GetEvents() {
			if !slices.Contains(out, ev.GetRpc()) {
				out = append(out, ev.GetRpc())
			}
		}
		if token = res.GetNextPageToken(); token == "" {
			return out
		}
	}
}

// TestBreachRecordLeakedToken: a support tool's token leaks and is used to
// read three of the company's subjects (one restricted) and one subject of
// each of two customers. The DPO records the breach on the assessment of
// that principal, as high risk; reports to IMY in time, in phases, with
// nothing personal in the report; the company's people are told once each
// (one erased since is counted, not told; a rerun tells no one again); each
// customer gets a notice with its own subjects only and reads its own part
// of the record; the register and the processing register list it; every
// step is on the audit trail.
func TestBreachRecordLeakedToken(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		t0 := e.clock.Now()
		op := e.as(c, e.operator)
		for _, cust := range []string{"customer-42", "customer-43"} {
			call(t, op, "personaldata.v1.ProcessorAgreementService/CreateProcessorAgreement", agreementReq("pa-"+cust, cust, t0), &pdv1.CreateProcessorAgreementResponse{})
		}
		staff43 := e.as(c, e.principal(t, "staff-43", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, []string{"customer-43"}, allPurposes))
		var subs []*pdv1.Subject
		for n := 1; n <= 4; n++ {
			subs = append(subs, create(t, c, n))
		}
		for n := 5; n <= 7; n++ {
			req, who := createReq(fmt.Sprintf("create-%d", n), n), staff43
			req.ControllerId = "customer-43"
			if n == 5 {
				req.ControllerId, who = "customer-42", c
			}
			subs = append(subs, call(t, who, "CreateSubject", req, &pdv1.CreateSubjectResponse{}).GetSubject())
		}
		s1, s2, s3, s5, s6 := subs[0], subs[1], subs[2], subs[4], subs[5]
		var allIDs []string
		for _, s := range subs {
			allIDs = append(allIDs, s.GetSubjectId())
		}

		// The leaked token reads 1, 2, 3 (restricted), 5 and 6; never 4 or 7.
		leaky := e.as(c, e.principal(t, "support-tool", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, []string{"company", "customer-42", "customer-43"}, allPurposes))
		for _, s := range []*pdv1.Subject{s1, s2, s3, s5, s6} {
			call(t, leaky, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: s.GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_SUPPORT}, &pdv1.GetSubjectForPurposeResponse{})
		}
		// Since then subject 3 has had its processing restricted.
		call(t, c, "RestrictProcessing", restrictReq(s3, "restrict-3"), &pdv1.RestrictProcessingResponse{})
		e.clock.Advance(2 * time.Hour)
		aware := e.clock.Now()
		e.clock.Advance(time.Hour)

		dpo := e.dpo(t, c)
		callErr(t, e.as(c, e.token), openBreach, openBreachReq("breach-1", "support-tool", aware, pdv1.BreachRisk_BREACH_RISK_HIGH), &pdv1.OpenBreachRecordResponse{}, codes.PermissionDenied)
		rec := call(t, dpo, openBreach, openBreachReq("breach-1", "support-tool", aware, pdv1.BreachRisk_BREACH_RISK_HIGH), &pdv1.OpenBreachRecordResponse{}).GetRecord()
		id := rec.GetBreachId()
		if again := call(t, dpo, openBreach, openBreachReq("breach-1", "support-tool", aware, pdv1.BreachRisk_BREACH_RISK_HIGH), &pdv1.OpenBreachRecordResponse{}).GetRecord(); again.GetBreachId() != id {
			t.Errorf("a retried open made record %s, want %s", again.GetBreachId(), id)
		}
		ident, contactCat := pdv1.DataCategory_DATA_CATEGORY_IDENTIFICATION, pdv1.DataCategory_DATA_CATEGORY_CONTACT
		both := func(n int64) []*pdv1.BreachCategoryCount {
			return []*pdv1.BreachCategoryCount{{Category: ident, Subjects: n}, {Category: contactCat, Subjects: n}}
		}
		if rec.GetSubjects() != 5 || rec.GetRecords() != 10 || !protoEqualList(rec.GetCategories(), both(5)) {
			t.Errorf("record counts: %d subjects, %d records, %v", rec.GetSubjects(), rec.GetRecords(), rec.GetCategories())
		}
		wantParts := []*pdv1.BreachControllerPart{
			{ControllerId: "company", Subjects: 3, Categories: both(3)},
			{ControllerId: "customer-42", Subjects: 1, Categories: both(1)},
			{ControllerId: "customer-43", Subjects: 1, Categories: both(1)},
		}
		if !protoEqualList(rec.GetControllers(), wantParts) {
			t.Errorf("record's parts: %v", rec.GetControllers())
		}
		if got := rec.GetDeadlineTime().AsTime(); !got.Equal(aware.Add(72 * time.Hour)) {
			t.Errorf("deadline %v, want awareness + 72 h", got)
		}
		if got := rec.GetTimeLeft().AsDuration(); got != 71*time.Hour || rec.GetOverdue() {
			t.Errorf("time left %v (overdue %v), want 71h", got, rec.GetOverdue())
		}
		b, _ := protojson.Marshal(rec)
		noPersonalValue(t, "the record", b, allIDs...)
		_, metrics := httpGet(t, e.base+"/metrics")
		for _, want := range []string{"personaldata_breaches_open 1", "personaldata_breaches_overdue 0"} {
			if !strings.Contains(metrics, want) {
				t.Errorf("/metrics lacks %q", want)
			}
		}

		// The initial report, ten hours in: in time, in Swedish, counts only.
		e.clock.Advance(10 * time.Hour)
		rep := call(t, dpo, reportBreach, &pdv1.ReportBreachToAuthorityRequest{BreachId: id, IdempotencyKey: "report-1", Phase: pdv1.BreachReportPhase_BREACH_REPORT_PHASE_INITIAL}, &pdv1.ReportBreachToAuthorityResponse{})
		r1 := rep.GetReport()
		if r1.GetLate() || !r1.GetSendTime().AsTime().Equal(e.clock.Now()) {
			t.Errorf("initial report: late %v, sent %v", r1.GetLate(), r1.GetSendTime().AsTime())
		}
		fields := map[string]string{}
		for _, f := range r1.GetFields() {
			fields[f.GetName()] = f.GetValue()
		}
		for name, want := range map[string]string{
			"Typ av anmälan":                                 "Inledande anmälan",
			"Ungefärligt antal berörda registrerade":         "5",
			"Ungefärligt antal berörda personuppgiftsposter": "10 (",
			"Kategorier av personuppgifter":                  "identitetsuppgifter (personnummer och namn): 5 registrerade",
			"Typ av incident":                                "Konfidentialitetsincident",
			"Kontaktperson":                                  "Dataskyddsombudet",
			"Vidtagna åtgärder":                              "Token återkallad",
			"Planerade åtgärder":                             "felrapporter",
			"Sannolika konsekvenser för de registrerade":     "hög risk",
			"Anmälan i tid":                                  "inom 72 timmar",
			"Har de registrerade informerats":                "Inte ännu",
			"När fick vi kännedom om incidenten":             aware.In(stockholmTime(t)).Format("2006-01-02 kl. 15:04"),
			"Kategorier av registrerade":                     "hos 2 kunder",
		} {
			if !strings.Contains(fields[name], want) {
				t.Errorf("report field %q is %q, want it to hold %q", name, fields[name], want)
			}
		}
		if !strings.HasPrefix(r1.GetDocument(), "ANMÄLAN AV PERSONUPPGIFTSINCIDENT") {
			t.Errorf("report document starts %q", r1.GetDocument()[:40])
		}
		b, _ = protojson.Marshal(r1)
		noPersonalValue(t, "the report to IMY", b, allIDs...)

		// Subject 2 is erased before the people are told: it is counted, not told.
		call(t, c, "EraseSubject", eraseReq(s2, "erase-2"), &pdv1.EraseSubjectResponse{})
		res := notifyAll(t, dpo, id, "notify-1")
		want := &pdv1.BreachSubjectNotices{Subjects: 3, Notified: 2, RestrictedNotified: 1, Erased: 1, LeftToControllers: 2, NotifyTime: timestamppb.New(e.clock.Now())}
		if !proto.Equal(res.GetNotices(), want) || res.GetQueued() != 2 {
			t.Errorf("first notification: queued %d, %v, want 2, %v", res.GetQueued(), res.GetNotices(), want)
		}
		mailer := e.mailer(t, c)
		notices := noticesIn(t, mailer, breachNoticeKind)
		var to []string
		for _, m := range notices {
			to = append(to, m.GetTo())
			for _, part := range []string{"Vad som hände", "Uppgifter om dig som berörs", "Identitetsuppgifter (personnummer och namn) och kontaktuppgifter",
				"Vad det kan innebära för dig", "Det här har vi gjort", "Det här kan du göra", "Har du frågor? Kontakta oss: Dataskyddsombudet"} {
				if !strings.Contains(m.GetBody(), part) {
					t.Errorf("notice lacks %q:\n%s", part, m.GetBody())
				}
			}
		}
		slices.Sort(to)
		if !slices.Equal(to, []string{testPerson(1).GetEmail(), testPerson(3).GetEmail()}) {
			t.Errorf("notices to %d addresses, want subjects 1 and 3", len(to))
		}
		// The mailer sends one; a rerun under another key, and the same
		// call again, tell no one twice.
		call(t, mailer, ackOutbox, &pdv1.AcknowledgeOutboxMessageRequest{MessageId: notices[0].GetMessageId()}, &pdv1.AcknowledgeOutboxMessageResponse{})
		// (The same call again reports its job, which queued 2.)
		for key, queued := range map[string]int64{"notify-2": 0, "notify-1": 2} {
			res = notifyAll(t, dpo, id, key)
			if res.GetQueued() != queued || res.GetNotices().GetNotified() != 2 {
				t.Errorf("rerun %s: queued %d, notified %d", key, res.GetQueued(), res.GetNotices().GetNotified())
			}
		}
		if n := len(noticesIn(t, mailer, breachNoticeKind)); n != 1 {
			t.Errorf("%d breach notices wait after the reruns, want the 1 not yet sent", n)
		}

		// The customers: each must have a contact; each notice holds its own subjects only.
		err := callErr(t, dpo, notifyControllers, &pdv1.NotifyBreachControllersRequest{BreachId: id, IdempotencyKey: "cust-1",
			Contacts: []*pdv1.BreachControllerContact{{ControllerId: "customer-42", Email: "dpo@customer42.example"}}}, &pdv1.NotifyBreachControllersResponse{}, codes.InvalidArgument)
		if !slices.Contains(badFields(err), "contacts") {
			t.Errorf("a missing customer contact names %v", badFields(err))
		}
		if n := len(noticesIn(t, mailer, customerNoticeKind)); n != 0 {
			t.Errorf("a refused call queued %d customer notices", n)
		}
		contacts := []*pdv1.BreachControllerContact{{ControllerId: "customer-42", Email: "dpo@customer42.example"}, {ControllerId: "customer-43", Email: "privacy@customer43.example"}}
		cres := call(t, dpo, notifyControllers, &pdv1.NotifyBreachControllersRequest{BreachId: id, IdempotencyKey: "cust-2", Contacts: contacts}, &pdv1.NotifyBreachControllersResponse{})
		if !slices.Equal(cres.GetQueued(), []string{"customer-42", "customer-43"}) {
			t.Errorf("customer notices queued for %v", cres.GetQueued())
		}
		cres = call(t, dpo, notifyControllers, &pdv1.NotifyBreachControllersRequest{BreachId: id, IdempotencyKey: "cust-3", Contacts: contacts}, &pdv1.NotifyBreachControllersResponse{})
		if len(cres.GetQueued()) != 0 || len(cres.GetNotifiedBefore()) != 2 {
			t.Errorf("a repeat queued %v, found before %v", cres.GetQueued(), cres.GetNotifiedBefore())
		}
		for _, m := range noticesIn(t, mailer, customerNoticeKind) {
			own, other := s5, s6
			if m.GetTo() == "privacy@customer43.example" {
				own, other = s6, s5
			}
			if !strings.Contains(m.GetBody(), own.GetSubjectId()) || strings.Contains(m.GetBody(), other.GetSubjectId()) ||
				strings.Contains(m.GetBody(), s1.GetSubjectId()) || !strings.Contains(m.GetBody(), "Berörda registrerade hos er: 1") {
				t.Errorf("the notice to %s does not hold exactly its own subject:\n%s", m.GetTo(), m.GetBody())
			}
		}
		// Sent (acknowledged, twice as a retry would), they are never queued again.
		for _, m := range noticesIn(t, mailer, customerNoticeKind) {
			for range 2 {
				call(t, mailer, ackOutbox, &pdv1.AcknowledgeOutboxMessageRequest{MessageId: m.GetMessageId()}, &pdv1.AcknowledgeOutboxMessageResponse{})
			}
		}
		cres = call(t, dpo, notifyControllers, &pdv1.NotifyBreachControllersRequest{BreachId: id, IdempotencyKey: "cust-4", Contacts: contacts}, &pdv1.NotifyBreachControllersResponse{})
		if len(cres.GetQueued()) != 0 || len(noticesIn(t, mailer, customerNoticeKind)) != 0 {
			t.Errorf("after the notices were sent a repeat queued %v", cres.GetQueued())
		}
		// Customer 42 reads its part, and nothing else; customer 44 nothing.
		part := call(t, e.controller(t, c), getBreach, &pdv1.GetBreachRecordRequest{BreachId: id}, &pdv1.GetBreachRecordResponse{}).GetRecord()
		if len(part.GetControllers()) != 1 || part.GetControllers()[0].GetControllerId() != "customer-42" ||
			!slices.Equal(part.GetControllers()[0].GetSubjectIds(), []string{s5.GetSubjectId()}) || part.GetSubjects() != 1 ||
			len(part.GetReports()) != 0 || len(part.GetDecisions()) != 0 || part.GetSubjectNotices() != nil {
			t.Errorf("customer 42's part of the record: %v", part)
		}
		// The DPO reads which subjects, on asking.
		full := call(t, dpo, getBreach, &pdv1.GetBreachRecordRequest{BreachId: id, SubjectIds: true}, &pdv1.GetBreachRecordResponse{}).GetRecord()
		var ids [][]string
		for _, p := range full.GetControllers() {
			ids = append(ids, p.GetSubjectIds())
		}
		wantIDs := [][]string{{s1.GetSubjectId(), s2.GetSubjectId(), s3.GetSubjectId()}, {s5.GetSubjectId()}, {s6.GetSubjectId()}}
		slices.Sort(wantIDs[0])
		if !slices.EqualFunc(ids, wantIDs, slices.Equal) {
			t.Errorf("the record's subjects by controller: %v, want %v", ids, wantIDs)
		}
		cust44 := e.as(c, e.principal(t, "customer-44-admin", pdv1.PrincipalKind_PRINCIPAL_KIND_CUSTOMER_CONTROLLER, []string{"customer-44"}, nil))
		callErr(t, cust44, getBreach, &pdv1.GetBreachRecordRequest{BreachId: id}, &pdv1.GetBreachRecordResponse{}, codes.NotFound)
		callErr(t, e.controller(t, c), listBreaches, &pdv1.ListBreachRecordsRequest{}, &pdv1.ListBreachRecordsResponse{}, codes.PermissionDenied)

		// The supplementary and final reports say who was told; none after the final.
		e.clock.Advance(24 * time.Hour)
		rep = call(t, dpo, reportBreach, &pdv1.ReportBreachToAuthorityRequest{BreachId: id, IdempotencyKey: "report-2", Phase: pdv1.BreachReportPhase_BREACH_REPORT_PHASE_SUPPLEMENTARY}, &pdv1.ReportBreachToAuthorityResponse{})
		if told := rep.GetReport().GetFields()[len(rep.GetReport().GetFields())-1].GetValue(); !strings.HasPrefix(told, "Ja: 2 registrerade") || !strings.Contains(told, "1 har raderats") {
			t.Errorf("the supplementary report says of the people told: %q", told)
		}
		call(t, dpo, reportBreach, &pdv1.ReportBreachToAuthorityRequest{BreachId: id, IdempotencyKey: "report-3", Phase: pdv1.BreachReportPhase_BREACH_REPORT_PHASE_FINAL}, &pdv1.ReportBreachToAuthorityResponse{})
		callErr(t, dpo, reportBreach, &pdv1.ReportBreachToAuthorityRequest{BreachId: id, IdempotencyKey: "report-4", Phase: pdv1.BreachReportPhase_BREACH_REPORT_PHASE_SUPPLEMENTARY}, &pdv1.ReportBreachToAuthorityResponse{}, codes.FailedPrecondition)
		again := call(t, dpo, reportBreach, &pdv1.ReportBreachToAuthorityRequest{BreachId: id, IdempotencyKey: "report-1", Phase: pdv1.BreachReportPhase_BREACH_REPORT_PHASE_INITIAL}, &pdv1.ReportBreachToAuthorityResponse{})
		if !proto.Equal(again.GetReport(), r1) {
			t.Errorf("a retried initial report answers another report")
		}

		// The register: the record with its reports and decisions, also in
		// the processing register beside the security measures.
		reg := call(t, dpo, listBreaches, &pdv1.ListBreachRecordsRequest{}, &pdv1.ListBreachRecordsResponse{})
		if len(reg.GetRecords()) != 1 || len(reg.GetRecords()[0].GetReports()) != 3 || reg.GetOpen() != 1 || reg.GetOverdue() != 0 {
			t.Fatalf("register: %d records, open %d, overdue %d", len(reg.GetRecords()), reg.GetOpen(), reg.GetOverdue())
		}
		var kinds []pdv1.BreachDecisionKind
		for _, d := range reg.GetRecords()[0].GetDecisions() {
			kinds = append(kinds, d.GetKind())
			if d.GetDecidedBy() != "dpo-"+c.name() {
				t.Errorf("decision %v by %q", d.GetKind(), d.GetDecidedBy())
			}
		}
		wantKinds := []pdv1.BreachDecisionKind{
			pdv1.BreachDecisionKind_BREACH_DECISION_KIND_OPENED, pdv1.BreachDecisionKind_BREACH_DECISION_KIND_RISK_ASSESSED,
			pdv1.BreachDecisionKind_BREACH_DECISION_KIND_AUTHORITY_REPORTED, pdv1.BreachDecisionKind_BREACH_DECISION_KIND_SUBJECTS_NOTIFIED,
			pdv1.BreachDecisionKind_BREACH_DECISION_KIND_SUBJECTS_NOTIFIED, pdv1.BreachDecisionKind_BREACH_DECISION_KIND_SUBJECTS_NOTIFIED,
			pdv1.BreachDecisionKind_BREACH_DECISION_KIND_CONTROLLERS_NOTIFIED, pdv1.BreachDecisionKind_BREACH_DECISION_KIND_AUTHORITY_REPORTED,
			pdv1.BreachDecisionKind_BREACH_DECISION_KIND_AUTHORITY_REPORTED,
		}
		if !slices.Equal(kinds, wantKinds) {
			t.Errorf("decisions %v, want %v", kinds, wantKinds)
		}
		pr := call(t, dpo, "personaldata.v1.ProcessingRegisterService/GetProcessingRegister", &pdv1.GetProcessingRegisterRequest{}, &pdv1.GetProcessingRegisterResponse{})
		if got := pr.GetController().GetSecurity().GetBreaches(); len(got) != 1 || got[0].GetBreachId() != id {
			t.Errorf("the processing register lists %d breaches", len(got))
		}

		// Nothing personal in the clear in the store (the record, the
		// notices) or the logs.
		noPersonalValue(t, "the stored documents", []byte(e.rawDump(t)))
		noPersonalValue(t, "the logs", []byte(e.logs.String()), allIDs...)

		// Every step is on the trail: the company's, and each customer's.
		rpcs := tenantRPCs(t, e, c, "company")
		for _, m := range []string{openBreach, getBreach, listBreaches, reportBreach, notifySubjects, notifyControllers} {
			if !slices.Contains(rpcs, "/"+m) {
				t.Errorf("the company's audit chain has no event of %s", m)
			}
		}
		for cust, read := range map[string]string{"customer-42": getBreach, "customer-43": notifyControllers} {
			rpcs := tenantRPCs(t, e, c, cust)
			for _, m := range []string{openBreach, notifyControllers, read} {
				if !slices.Contains(rpcs, "/"+m) {
					t.Errorf("%s's audit chain has no event of %s", cust, m)
				}
			}
		}
	})
}

// protoEqualList says whether two lists of messages are equal, in order.
func protoEqualList[M proto.Message](a, b []M) bool {
	return slices.EqualFunc(a, b, func(x, y M) bool { return proto.Equal(x, y) })
}

// TestBreachRecordDeadline: a breach the company became aware of 70 hours
// ago has 2 hours left; 3 hours on it is overdue (in the record and in
// /metrics); a first report then must give the reasons for the delay,
// refused naming delay_reasons and nothing kept without them; with them it
// is kept as late, and the record is no longer overdue. Bad input names
// its fields.
func TestBreachRecordDeadline(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		sub := create(t, c, 1)
		call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
		dpo := e.dpo(t, c)
		e.clock.Advance(70 * time.Hour)

		bad := openBreachReq("bad", "no such principal!", e.clock.Now().Add(time.Hour), pdv1.BreachRisk_BREACH_RISK_UNSPECIFIED)
		bad.Description = ""
		err := callErr(t, dpo, openBreach, bad, &pdv1.OpenBreachRecordResponse{}, codes.InvalidArgument)
		if got := badFields(err); !slices.Equal(got, []string{"aware_time", "description", "risk", "assessment.principal_id"}) {
			t.Errorf("bad open names %v", got)
		}
		bad = openBreachReq("bad", "tester", e.clock.Now(), pdv1.BreachRisk_BREACH_RISK_RISK)
		bad.Description = "Kundens uppgifter (" + testPerson(1).GetIdentityNumber() + ") lästes."
		bad.MeasuresTaken = "Vi ringde " + testPerson(1).GetEmail() + "."
		err = callErr(t, dpo, openBreach, bad, &pdv1.OpenBreachRecordResponse{}, codes.InvalidArgument)
		if got := badFields(err); !slices.Equal(got, []string{"description", "measures_taken"}) {
			t.Errorf("personal data in the texts names %v", got)
		}
		noPersonalValue(t, "the refusal", []byte(err.Error()))
		bad = openBreachReq("bad", "tester", e.clock.Now(), pdv1.BreachRisk_BREACH_RISK_RISK)
		bad.Assessment = nil
		if got := badFields(callErr(t, dpo, openBreach, bad, &pdv1.OpenBreachRecordResponse{}, codes.InvalidArgument)); !slices.Equal(got, []string{"assessment"}) {
			t.Errorf("an open without assessment names %v", got)
		}
		if n := e.count(t, "breach_records"); n != 0 {
			t.Fatalf("refused opens stored %d records", n)
		}

		rec := call(t, dpo, openBreach, openBreachReq("breach-late", "tester", e.clock.Now().Add(-70*time.Hour), pdv1.BreachRisk_BREACH_RISK_RISK), &pdv1.OpenBreachRecordResponse{}).GetRecord()
		if rec.GetTimeLeft().AsDuration() != 2*time.Hour || rec.GetOverdue() || rec.GetSubjects() != 1 {
			t.Errorf("time left %v, overdue %v, %d subjects", rec.GetTimeLeft().AsDuration(), rec.GetOverdue(), rec.GetSubjects())
		}
		e.clock.Advance(3 * time.Hour)
		rec = call(t, dpo, getBreach, &pdv1.GetBreachRecordRequest{BreachId: rec.GetBreachId()}, &pdv1.GetBreachRecordResponse{}).GetRecord()
		if rec.GetTimeLeft().AsDuration() != -time.Hour || !rec.GetOverdue() {
			t.Errorf("an hour past the deadline: time left %v, overdue %v", rec.GetTimeLeft().AsDuration(), rec.GetOverdue())
		}
		_, metrics := httpGet(t, e.base+"/metrics")
		if !strings.Contains(metrics, "personaldata_breaches_overdue 1") {
			t.Errorf("/metrics does not count the overdue breach")
		}

		req := &pdv1.ReportBreachToAuthorityRequest{BreachId: rec.GetBreachId(), IdempotencyKey: "late-1", Phase: pdv1.BreachReportPhase_BREACH_REPORT_PHASE_INITIAL}
		err = callErr(t, dpo, reportBreach, req, &pdv1.ReportBreachToAuthorityResponse{}, codes.InvalidArgument)
		if got := badFields(err); !slices.Equal(got, []string{"delay_reasons"}) {
			t.Errorf("a late report without reasons names %v", got)
		}
		rec = call(t, dpo, getBreach, &pdv1.GetBreachRecordRequest{BreachId: rec.GetBreachId()}, &pdv1.GetBreachRecordResponse{}).GetRecord()
		if len(rec.GetReports()) != 0 {
			t.Fatalf("a refused report was kept")
		}
		req.DelayReasons = "Incidenten upptäcktes under en helg och omfattningen kunde inte fastställas förrän loggarna analyserats."
		rep := call(t, dpo, reportBreach, req, &pdv1.ReportBreachToAuthorityResponse{})
		if !rep.GetReport().GetLate() || rep.GetReport().GetDelayReasons() != req.DelayReasons || !strings.Contains(rep.GetReport().GetDocument(), "Skälen till förseningen: Incidenten upptäcktes under en helg") {
			t.Errorf("late report: late %v, document:\n%s", rep.GetReport().GetLate(), rep.GetReport().GetDocument())
		}
		if rep.GetRecord().GetOverdue() {
			t.Errorf("the record is overdue after its report")
		}
		_, metrics = httpGet(t, e.base+"/metrics")
		if !strings.Contains(metrics, "personaldata_breaches_overdue 0") {
			t.Errorf("/metrics counts a reported breach overdue")
		}
	})
}

// TestBreachRecordLowRisk: a breach unlikely to bring a risk is recorded
// with the reason, never overdue, tells no one (NotifyBreachSubjects is
// refused), and is in the register when closed.
func TestBreachRecordLowRisk(t *testing.T) {
	transports(t, func(t *testing.T, e *env, c caller) {
		sub := create(t, c, 1)
		call(t, c, "AccessSubject", &pdv1.AccessSubjectRequest{SubjectId: sub.GetSubjectId()}, &pdv1.AccessSubjectResponse{})
		dpo := e.dpo(t, c)
		req := openBreachReq("low-1", "tester", e.clock.Now(), pdv1.BreachRisk_BREACH_RISK_UNLIKELY)
		req.RiskReason = "Token användes bara inom företaget av behörig personal; inga uppgifter lämnade företaget."
		rec := call(t, dpo, openBreach, req, &pdv1.OpenBreachRecordResponse{}).GetRecord()
		callErr(t, dpo, notifySubjects, &pdv1.NotifyBreachSubjectsRequest{BreachId: rec.GetBreachId(), IdempotencyKey: "n"}, &pdv1.NotifyBreachSubjectsResponse{}, codes.FailedPrecondition)
		if n := len(noticesIn(t, e.mailer(t, c), breachNoticeKind)); n != 0 {
			t.Errorf("a low-risk breach queued %d notices", n)
		}
		e.clock.Advance(100 * time.Hour)
		rec = call(t, dpo, getBreach, &pdv1.GetBreachRecordRequest{BreachId: rec.GetBreachId()}, &pdv1.GetBreachRecordResponse{}).GetRecord()
		if rec.GetOverdue() {
			t.Errorf("a breach that needs no report is overdue")
		}
		closed := call(t, dpo, updateBreach, &pdv1.UpdateBreachRecordRequest{BreachId: rec.GetBreachId(), IdempotencyKey: "close", Close: true,
			Reason: "Utrett: ingen risk för de registrerade."}, &pdv1.UpdateBreachRecordResponse{}).GetRecord()
		if closed.GetCloseTime() == nil {
			t.Errorf("the record is not closed")
		}
		reg := call(t, dpo, listBreaches, &pdv1.ListBreachRecordsRequest{}, &pdv1.ListBreachRecordsResponse{})
		if len(reg.GetRecords()) != 1 || reg.GetOpen() != 0 {
			t.Fatalf("register: %d records, %d open", len(reg.GetRecords()), reg.GetOpen())
		}
		ds := reg.GetRecords()[0].GetDecisions()
		if len(ds) != 3 || ds[1].GetDecision() != "BREACH_RISK_UNLIKELY" || ds[1].GetReason() != req.RiskReason || ds[2].GetKind() != pdv1.BreachDecisionKind_BREACH_DECISION_KIND_CLOSED {
			t.Errorf("the register's decisions: %v", ds)
		}
		if open := call(t, dpo, listBreaches, &pdv1.ListBreachRecordsRequest{OpenOnly: true}, &pdv1.ListBreachRecordsResponse{}); len(open.GetRecords()) != 0 {
			t.Errorf("open only lists %d closed records", len(open.GetRecords()))
		}
		callErr(t, dpo, updateBreach, &pdv1.UpdateBreachRecordRequest{BreachId: rec.GetBreachId(), IdempotencyKey: "after", Risk: pdv1.BreachRisk_BREACH_RISK_HIGH, Reason: "x"}, &pdv1.UpdateBreachRecordResponse{}, codes.FailedPrecondition)
	})
}

func stockholmTime(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Stockholm")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// TestBreachNoticesResume: a notification cut off after its first notices
// and called again with the same key goes on where it stopped: each person
// is told once, and the job counts every notice it queued.
func TestBreachNoticesResume(t *testing.T) {
	e := start(t)
	c := e.gc()
	leaky := e.as(c, e.principal(t, "support-tool", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, []string{"company"}, allPurposes))
	const n = 6
	for i := 1; i <= n; i++ {
		s := create(t, c, i)
		call(t, leaky, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: s.GetSubjectId(), Purpose: pdv1.Purpose_PURPOSE_SUPPORT}, &pdv1.GetSubjectForPurposeResponse{})
	}
	dpo := e.dpo(t, c)
	id := call(t, dpo, openBreach, openBreachReq("breach-r", "support-tool", e.clock.Now(), pdv1.BreachRisk_BREACH_RISK_HIGH), &pdv1.OpenBreachRecordResponse{}).GetRecord().GetBreachId()

	cutNotify(t, e, dpo, id, "resume", 2)
	// Where the job stopped is what the next call reports first.
	again, err := pdv1.NewBreachRecordServiceClient(e.grpc).NotifyBreachSubjects(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+dpo.(grpcCaller).token),
		&pdv1.NotifyBreachSubjectsRequest{BreachId: id, IdempotencyKey: "resume"})
	if err != nil {
		t.Fatal(err)
	}
	first, err := again.Recv()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the notification stopped after %d of %d", first.GetDone(), n)
	for {
		if _, err := again.Recv(); err != nil {
			break
		}
	}
	res := notifyAll(t, dpo, id, "resume")
	if res.GetQueued() != n || res.GetDone() != n || res.GetNotices().GetNotified() != n {
		t.Errorf("resumed: done %d, queued %d, told %d; want %d each", res.GetDone(), res.GetQueued(), res.GetNotices().GetNotified(), n)
	}
	to := map[string]int{}
	for _, m := range noticesIn(t, e.mailer(t, c), breachNoticeKind) {
		to[m.GetTo()]++
	}
	if len(to) != n {
		t.Errorf("notices to %d people, want %d", len(to), n)
	}
	for addr, k := range to {
		if k != 1 {
			t.Errorf("%d notices to one person (%d chars)", k, len(addr))
		}
	}
}
