package accountability

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"google.golang.org/grpc"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/contact"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/fault"
	"github.com/example/personaldata/service/jobs"
	"github.com/example/personaldata/service/rules"
	"github.com/example/personaldata/service/validate"
	"github.com/example/personaldata/service/vault"
	"github.com/example/personaldata/store"
)

// The notices a breach calls for, through the outbox: to each affected
// person of the company's own data when the risk to them is high (Art. 34),
// and to each customer whose data it touched (Art. 33(2)). Each is queued
// once per breach: its id names the breach and the subject or customer, and
// once the mailer acknowledges it, it is marked sent and never queued again.

// BreachNoticeIDPattern is the id of a breach notice: the record, then "s"
// and a subject id or "c" and a customer id.
var BreachNoticeIDPattern = regexp.MustCompile(`^breach\.[a-z2-7]{26}\.(s\.[a-z2-7]{26}|c\.[a-z0-9][a-z0-9_-]{0,62})$`)

func subjectNoticeID(breachID, subjectID string) string {
	return "breach." + breachID + ".s." + subjectID
}
func customerNoticeID(breachID, customer string) string {
	return "breach." + breachID + ".c." + customer
}

// jobKindBreachNotice is the job that tells a breach's subjects.
const jobKindBreachNotice = "BREACH_NOTICE"

// noticeState is where one subject stands in a breach's notification.
type noticeState int

const (
	noticeDue noticeState = iota
	noticeErased
	noticeUnreachable
	noticeGiven // queued or sent already
)

// noticeStateOf is where sub stands: sub as stored (sealed), or nil when it
// is gone. A restricted subject is told all the same: the notice is owed to
// the person themselves, and reaching them uses only the contact details
// (Art. 18(2) allows processing restricted data to protect their rights).
func (s *Service) noticeStateOf(ctx context.Context, sub *store.Subject, breachID string) (noticeState, error) {
	switch {
	case sub == nil || sub.Erasure != nil || sub.Sealed == nil:
		return noticeErased, nil
	case len(sub.Sealed.Email) == 0 && len(sub.Sealed.Phone) == 0:
		return noticeUnreachable, nil
	}
	id := subjectNoticeID(breachID, sub.ID)
	if sent, err := s.Store.OutboxMessageSent(ctx, id); err != nil || sent {
		return noticeGiven, err
	}
	switch _, err := s.Store.GetOutboxMessage(ctx, id); {
	case err == nil:
		return noticeGiven, nil
	case !errors.Is(err, store.ErrNotFound):
		return noticeDue, err
	}
	return noticeDue, nil
}

// NotifyBreachSubjects queues the notice to each affected subject of the
// company's own data, for a record whose risk is high.
func (s *BreachRecords) NotifyBreachSubjects(req *pdv1.NotifyBreachSubjectsRequest, stream grpc.ServerStreamingServer[pdv1.NotifyBreachSubjectsResponse]) error {
	ctx := stream.Context()
	var v validate.Violations
	id := validBreachID(&v, req.GetBreachId())
	key := v.IdempotencyKey(req.GetIdempotencyKey())
	c, err := s.change(ctx, v)
	if err != nil {
		return err
	}
	r, err := s.breachRecord(ctx, id)
	if err != nil {
		return err
	}
	switch {
	case r.Risk != riskHigh:
		return fault.FailedPrecondition("the breach's risk is not high: the people affected are told of a high risk (Art. 34(1)); record a high risk first (UpdateBreachRecord)")
	case r.ClosedAt != 0:
		return fault.FailedPrecondition("the breach record is closed")
	}
	var total int64
	for _, p := range r.Controllers {
		if p.Controller == rules.CompanyController {
			total = p.Subjects
		}
	}
	job, err := s.Jobs.StartOrResume(ctx, &store.Job{ID: s.DerivedID("breach-notice", id, key), Kind: jobKindBreachNotice,
		Reference: id, Principal: c.ID(), Fingerprint: s.Fingerprint(req), Total: total})
	if err != nil {
		return err
	}
	own := &ownAffected{s: s.Service, r: r}
	err = s.Jobs.Run(ctx, job, jobs.Run{
		Op:       "notify breach subjects",
		Subjects: own.page,
		Step: func(ctx context.Context, sub *store.Subject) (bool, error) {
			switch state, err := s.noticeStateOf(ctx, sub, id); {
			case err != nil:
				return false, s.Internal(ctx, "notify breach subjects", err)
			case state == noticeGiven:
				return s.queuedBy(ctx, subjectNoticeID(id, sub.ID), job.ID)
			case state != noticeDue:
				return false, nil // counted at the end
			}
			m, content := s.subjectNotice(r, sub, own.cats[sub.ID], job.ID)
			// On the trail before the message is queued.
			audit.Note(ctx, audit.Touch{SubjectID: sub.ID, Tenant: sub.Controller, Purpose: pdv1.Purpose_PURPOSE_ACCOUNT_COMMUNICATION.String(),
				Fields: []string{channelField(content.Channel), "breach_notice"}})
			if err := audit.Flush(ctx); err != nil {
				return false, err
			}
			if err := s.queueSealed(ctx, m, sub.ID, content); err != nil {
				return false, s.Internal(ctx, "notify breach subjects", err)
			}
			return s.queuedBy(ctx, m.ID, job.ID)
		},
		Progress: func(j *store.Job) error {
			if j.State == jobs.Finished {
				return nil // the last message carries the record's counts, below
			}
			return stream.Send(&pdv1.NotifyBreachSubjectsResponse{JobId: j.ID, Done: j.Done, Total: j.Total, Queued: j.Queued, Skipped: j.Skipped})
		},
	})
	if err != nil {
		return err
	}
	if job, err = s.Store.GetJob(ctx, job.ID); err != nil {
		return s.Internal(ctx, "notify breach subjects", err)
	}
	notices, err := s.countNotices(ctx, r)
	if err != nil {
		return s.Internal(ctx, "notify breach subjects", err)
	}
	if _, err := s.Store.UpdateBreachRecord(ctx, id, func(r *store.BreachRecord) error {
		r.Notices = notices
		r.Decisions = append(r.Decisions, store.BreachDecision{Kind: decisionSubjects, At: notices.At, By: c.ID(),
			Decision: fmt.Sprintf("%d of %d told (%d restricted); %d erased, %d unreachable, %d left to their controllers",
				notices.Notified, notices.Subjects, notices.RestrictedNotified, notices.Erased, notices.Unreachable, notices.LeftToControllers),
			Reason: "high risk to the people affected (Art. 34(1))"})
		return nil
	}); err != nil {
		return s.Internal(ctx, "notify breach subjects", err)
	}
	return stream.Send(&pdv1.NotifyBreachSubjectsResponse{JobId: job.ID, Done: job.Done, Total: job.Total, Queued: job.Queued,
		Skipped: job.Skipped, Finished: true, Notices: &pdv1.BreachSubjectNotices{
			Subjects: notices.Subjects, Notified: notices.Notified, RestrictedNotified: notices.RestrictedNotified, Erased: notices.Erased,
			Unreachable: notices.Unreachable, LeftToControllers: notices.LeftToControllers, NotifyTime: core.Timestamp(notices.At),
		}})
}

// channelField is the contact field a notice goes to.
func channelField(channel string) string {
	if channel == pdv1.ContactChannel_CONTACT_CHANNEL_SMS.String() {
		return rules.FieldPhone
	}
	return rules.FieldEmail
}

// queuedBy says whether the message with this id, waiting in the outbox,
// was queued by the job: a resumed job counts the notices it queued before
// it could count them, and not those of another job.
func (s *Service) queuedBy(ctx context.Context, id, jobID string) (bool, error) {
	m, err := s.Store.GetOutboxMessage(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil // acknowledged since
	case err != nil:
		return false, s.Internal(ctx, "outbox", err)
	}
	return m.Job == jobID, nil
}

// queueSealed seals content under the data key keyID and queues m.
func (s *Service) queueSealed(ctx context.Context, m *store.OutboxMessage, keyID string, content vault.OutboxContent) error {
	dk, err := s.Vault.DataKey(ctx, keyID, vault.ExistingKey)
	if err != nil {
		return err
	}
	if m.Sealed, err = vault.SealContent(dk, m.ID, content); err != nil {
		return err
	}
	_, err = s.Store.EnqueueOutboxMessage(ctx, m)
	return err
}

// ownAffected pages through the company's own affected subjects of a
// record for the notices job, a chunk of the list at a time. Each run
// starts from the list's first chunk and passes over those done.
type ownAffected struct {
	s    *Service
	r    *store.BreachRecord
	read int64             // how many chunks were read
	left []affectedSubject // of the last chunk read, those not paged yet
	// cats are the categories of the subjects of the last page.
	cats map[string][]string
}

func (o *ownAffected) page(ctx context.Context, after string, limit int) ([]*store.Subject, error) {
	o.cats = map[string][]string{}
	var page []*store.Subject
	for len(page) < limit {
		if len(o.left) == 0 {
			if o.read == o.r.SubjectChunks {
				break
			}
			o.read++
			part, err := o.s.affectedChunk(ctx, o.r, o.read)
			if err != nil {
				return nil, err
			}
			o.left = part
			continue
		}
		a := o.left[0]
		o.left = o.left[1:]
		if a.Controller != rules.CompanyController || a.ID <= after {
			continue
		}
		sub, err := o.s.Vault.GetSubject(ctx, a.ID)
		switch {
		case errors.Is(err, store.ErrNotFound), errors.Is(err, vault.ErrNoDataKey):
			sub = &store.Subject{ID: a.ID} // erased and purged: nothing to tell
		case err != nil:
			return nil, err
		}
		o.cats[a.ID] = a.Categories
		page = append(page, sub)
	}
	return page, nil
}

// countNotices is where each of the company's affected subjects stands now.
func (s *Service) countNotices(ctx context.Context, r *store.BreachRecord) (*store.BreachNotices, error) {
	n := &store.BreachNotices{At: s.Now().UnixNano()}
	err := s.eachAffected(ctx, r, func(part []affectedSubject) error {
		for _, a := range part {
			if a.Controller != rules.CompanyController {
				n.LeftToControllers++
				continue
			}
			n.Subjects++
			sub, err := s.Store.GetSubject(ctx, a.ID)
			if errors.Is(err, store.ErrNotFound) {
				sub, err = nil, nil
			}
			if err != nil {
				return err
			}
			state, err := s.noticeStateOf(ctx, sub, r.ID)
			if err != nil {
				return err
			}
			switch state {
			case noticeErased:
				n.Erased++
			case noticeUnreachable:
				n.Unreachable++
			case noticeGiven:
				n.Notified++
				if sub.Restriction != nil {
					n.RestrictedNotified++
				}
			}
		}
		return nil
	})
	return n, err
}

// breachRecord reads a record; NOT_FOUND when there is none.
func (s *Service) breachRecord(ctx context.Context, id string) (*store.BreachRecord, error) {
	r, err := s.Store.GetBreachRecord(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFoundRecord()
	}
	if err != nil {
		return nil, s.Internal(ctx, "breach record", err)
	}
	return r, nil
}

// categoryListSV names categories in Swedish, as a list in a sentence.
func categoryListSV(cats []string) string {
	var names []string
	for _, c := range cats {
		names = append(names, dataCategoriesSV[c])
	}
	switch len(names) {
	case 0:
		return "inga uppgifter som vi känner till"
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " och " + names[len(names)-1]
}

// whatYouCanDoSV is what a person can do, in plain Swedish.
const whatYouCanDoSV = "Var uppmärksam på e-post, sms och samtal som påstås komma från oss eller som ber dig om uppgifter, lösenord eller betalning. " +
	"Klicka inte på länkar i meddelanden som du inte väntat dig. Byt lösenord om du använder samma lösenord på flera ställen. " +
	"Kontakta din bank om du tror att någon använder dina uppgifter."

// subjectNotice is the notice to sub (opened) of breach r, about the
// categories of its data the breach touched, in plain Swedish: what
// happened, what data, the likely consequences, what the company does, what
// the person can do, whom to contact (Art. 34(2)).
func (s *Service) subjectNotice(r *store.BreachRecord, sub *store.Subject, cats []string, jobID string) (*store.OutboxMessage, vault.OutboxContent) {
	c := vault.OutboxContent{Language: "sv", Subject: "Viktigt: en incident som rör dina personuppgifter"}
	if sub.Person.Email != "" {
		c.Channel, c.To = pdv1.ContactChannel_CONTACT_CHANNEL_EMAIL.String(), sub.Person.Email
	} else {
		c.Channel, c.To = pdv1.ContactChannel_CONTACT_CHANNEL_SMS.String(), sub.Person.Phone
	}
	snd := s.Sender.View()
	company := orSV(snd.Name, "vi")
	contactTo := strings.Join(nonEmpty(r.Contact, snd.Email, snd.Phone), ", ")
	var b strings.Builder
	fmt.Fprintf(&b, "Hej!\n\nVi på %s vill berätta att dina personuppgifter har berörts av en säkerhetsincident. "+
		"Vi berättar det för att incidenten kan innebära en hög risk för dig.\n\n", company)
	fmt.Fprintf(&b, "Vad som hände:\n%s\nVi upptäckte det %s.\n\n", r.Description, whenSV(r.AwareAt))
	fmt.Fprintf(&b, "Uppgifter om dig som berörs:\n%s.\n\n", firstUpper(categoryListSV(cats)))
	fmt.Fprintf(&b, "Vad det kan innebära för dig:\n%s\n\n", orSV(r.Consequences, "Någon obehörig kan ha sett eller använt uppgifterna."))
	fmt.Fprintf(&b, "Det här har vi gjort:\n%s\n\n", orSV(r.MeasuresTaken, "Vi utreder incidenten."))
	if r.MeasuresPlanned != "" {
		fmt.Fprintf(&b, "Det här gör vi härnäst:\n%s\n\n", r.MeasuresPlanned)
	}
	fmt.Fprintf(&b, "Det här kan du göra:\n%s\n\n", whatYouCanDoSV)
	if contactTo != "" {
		fmt.Fprintf(&b, "Har du frågor? Kontakta oss: %s.\n", contactTo)
	}
	b.WriteString(core.ComplaintSV + "\n")
	c.Body = b.String()
	m := &store.OutboxMessage{
		ID: subjectNoticeID(r.ID, sub.ID), SubjectID: sub.ID, Breach: r.ID, Job: jobID,
		Kind: pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_BREACH_NOTICE.String(), CreatedAt: s.Now().UnixNano(),
	}
	return m, c
}

func firstUpper(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// NotifyBreachControllers queues each affected customer's notice, with the
// counts and ids of its own subjects only.
func (s *BreachRecords) NotifyBreachControllers(ctx context.Context, req *pdv1.NotifyBreachControllersRequest) (*pdv1.NotifyBreachControllersResponse, error) {
	var v validate.Violations
	id := validBreachID(&v, req.GetBreachId())
	v.IdempotencyKey(req.GetIdempotencyKey())
	to := map[string]string{}
	for i, ct := range req.GetContacts() {
		field := fmt.Sprintf("contacts[%d]", i)
		switch {
		case !validate.ControllerPattern.MatchString(ct.GetControllerId()) || ct.GetControllerId() == rules.CompanyController:
			v.Add(field+".controller_id", "must be a customer id of 1 to 63 characters a-z, 0-9, '_', '-'")
		case to[ct.GetControllerId()] != "":
			v.Add(field+".controller_id", "is given twice")
		}
		e, err := contact.Email(ct.GetEmail())
		if err != nil {
			v.Add(field+".email", "is not an e-mail address")
		}
		to[ct.GetControllerId()] = e
	}
	c, err := s.change(ctx, v)
	if err != nil {
		return nil, err
	}
	r, err := s.breachRecord(ctx, id)
	if err != nil {
		return nil, err
	}
	var customers []string
	for _, p := range r.Controllers {
		if p.Controller != rules.CompanyController {
			customers = append(customers, p.Controller)
			if to[p.Controller] == "" {
				v.Add("contacts", "has no contact for customer "+p.Controller+", whose data the breach touched")
			}
		}
	}
	for ctrl := range to {
		if !slices.Contains(customers, ctrl) {
			v.Add("contacts", "names customer "+ctrl+", whose data the breach did not touch")
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	ids, err := s.affectedIDs(ctx, r, func(ctrl string) bool { return ctrl != rules.CompanyController })
	if err != nil {
		return nil, s.Internal(ctx, "notify breach controllers", err)
	}
	out := &pdv1.NotifyBreachControllersResponse{}
	now := s.Now().UnixNano()
	for _, p := range r.Controllers {
		if p.Controller == rules.CompanyController {
			continue
		}
		mid := customerNoticeID(id, p.Controller)
		sent, err := s.Store.OutboxMessageSent(ctx, mid)
		if err == nil && !sent {
			_, err = s.Store.GetOutboxMessage(ctx, mid)
			sent = err == nil
			if errors.Is(err, store.ErrNotFound) {
				err = nil
			}
		}
		if err != nil {
			return nil, s.Internal(ctx, "notify breach controllers", err)
		}
		if sent {
			out.NotifiedBefore = append(out.NotifiedBefore, p.Controller)
			continue
		}
		core.Note(ctx, audit.Touch{Tenant: p.Controller, Fields: []string{"breach_notice"}})
		content := s.customerNotice(r, p, ids[p.Controller], to[p.Controller])
		m := &store.OutboxMessage{ID: mid, Breach: id, Kind: pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_BREACH_CONTROLLER_NOTICE.String(), CreatedAt: now}
		if err := s.queueSealed(ctx, m, r.DataKeyID(), content); err != nil {
			return nil, s.Internal(ctx, "notify breach controllers", err)
		}
		out.Queued = append(out.Queued, p.Controller)
	}
	if len(out.Queued) > 0 {
		r, err = s.Store.UpdateBreachRecord(ctx, id, func(r *store.BreachRecord) error {
			for i := range r.Controllers {
				if slices.Contains(out.Queued, r.Controllers[i].Controller) && r.Controllers[i].NoticeAt == 0 {
					r.Controllers[i].NoticeAt = now
				}
			}
			r.Decisions = append(r.Decisions, store.BreachDecision{Kind: decisionCustomers, At: now, By: c.ID(),
				Decision: "told " + strings.Join(out.Queued, ", "), Reason: "the company processes their data as processor (Art. 33(2))"})
			return nil
		})
		if err != nil {
			return nil, s.Internal(ctx, "notify breach controllers", err)
		}
	}
	out.Record = s.recordView(r, s.Now(), nil)
	return out, nil
}

// customerNotice is the notice to a customer of the part of breach r about
// its data, with its own subjects' ids and nothing of anyone else's.
func (s *Service) customerNotice(r *store.BreachRecord, p store.BreachControllerPart, ids []string, to string) vault.OutboxContent {
	snd := s.Sender.View()
	var b strings.Builder
	fmt.Fprintf(&b, "Till %s\n\nVi är personuppgiftsbiträde åt er enligt vårt personuppgiftsbiträdesavtal. "+
		"Vi meddelar er utan onödigt dröjsmål (artikel 33.2 i dataskyddsförordningen) att en personuppgiftsincident har berört personuppgifter som vi behandlar för er räkning.\n\n", p.Controller)
	fmt.Fprintf(&b, "Vårt ärende: %s\n", r.ID)
	fmt.Fprintf(&b, "Vi fick kännedom om incidenten: %s\n", whenSV(r.AwareAt))
	fmt.Fprintf(&b, "Typ av incident: %s\n\n", breachCategoriesSV[r.Category])
	fmt.Fprintf(&b, "Vad som hänt:\n%s\n\n", r.Description)
	fmt.Fprintf(&b, "Berörda registrerade hos er: %d\n%s\n\n", p.Subjects, categoriesSV(p.Categories))
	fmt.Fprintf(&b, "De registrerades id i vårt system:\n%s\n\n", strings.Join(ids, "\n"))
	fmt.Fprintf(&b, "Sannolika konsekvenser:\n%s\n\n", strings.TrimSpace(risksSV[r.Risk]+" "+r.Consequences))
	fmt.Fprintf(&b, "Vidtagna åtgärder:\n%s\n\nPlanerade åtgärder:\n%s\n\n", orSV(r.MeasuresTaken, "Inga ännu."), orSV(r.MeasuresPlanned, "Inga ännu."))
	b.WriteString("Ni kan läsa er del av incidenten i vårt API (BreachRecordService.GetBreachRecord med ärendets id). " +
		"Som personuppgiftsansvariga bedömer ni om incidenten ska anmälas till Integritetsskyddsmyndigheten och om de registrerade ska informeras.\n")
	if contactTo := strings.Join(nonEmpty(r.Contact, snd.Email, snd.Phone), ", "); contactTo != "" {
		fmt.Fprintf(&b, "Kontakt: %s\n", contactTo)
	}
	return vault.OutboxContent{Channel: pdv1.ContactChannel_CONTACT_CHANNEL_EMAIL.String(), To: to, Language: "sv",
		Subject: "Personuppgiftsincident som rör uppgifter ni är personuppgiftsansvariga för", Body: b.String()}
}
