package requests

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service/accountability"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/auth"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/fault"
	"github.com/example/personaldata/service/rules"
	"github.com/example/personaldata/service/validate"
	"github.com/example/personaldata/service/vault"
	"github.com/example/personaldata/store"
)

// Outbox implements RequesterOutboxService: the messages to rights
// requesters, for the company's mailer. The service sends no e-mail. A step
// of a request that the requester must hear of is stored with the kind of
// its message (store.RequestStep.Message); settleRequest then queues the
// message under an id made of the request and the step, and counts it
// queued in the request. A message is queued once: queueing it again finds
// it there, and the count keeps a step whose message was acknowledged (and
// removed) from being queued again.
type Outbox struct {
	pdv1.UnimplementedRequesterOutboxServiceServer
	*Service
}

// Outbox returns the RequesterOutboxService on the same store.
func (s *Service) Outbox() *Outbox { return &Outbox{Service: s} }

// settleRequest queues the messages of r's steps not queued yet, then
// counts them queued. It runs after every step and on every read, and
// does nothing when nothing is pending.
func (s *Service) settleRequest(ctx context.Context, r *store.RightsRequest) (*store.RightsRequest, error) {
	if r.Queued >= len(r.Steps) {
		return r, nil
	}
	for i := r.Queued; i < len(r.Steps); i++ {
		st := r.Steps[i]
		if st.Message == "" {
			continue
		}
		content, ok := s.messageFor(r, core.EnumValue[pdv1.OutboxMessageKind](pdv1.OutboxMessageKind_value, st.Message))
		if !ok {
			continue // no address to send it to: staff answer by letter or phone
		}
		m := &store.OutboxMessage{ID: store.OutboxMessageID(r.ID, i), RequestID: r.ID, Kind: st.Message, CreatedAt: st.At}
		if err := s.Vault.SealOutbox(ctx, r, m, content); err != nil {
			return r, err
		}
		if _, err := s.Store.EnqueueOutboxMessage(ctx, m); err != nil {
			return r, err
		}
	}
	upto := len(r.Steps)
	updated, err := s.Store.UpdateRightsRequest(ctx, r.ID, func(d *store.RightsRequest) error {
		if d.Queued >= upto {
			return core.ErrNothingToQueue
		}
		d.Queued = upto
		return nil
	})
	if errors.Is(err, core.ErrNothingToQueue) {
		return r, nil
	}
	if err != nil {
		return r, err
	}
	updated.Text = r.Text
	return updated, nil
}

// messageFor is the message of kind about r, and whether there is an
// address to send it to. A code goes only to the contact on file it was
// sent for; the rest to the matched subject's contact on file at receipt,
// or else the reply address the requester gave.
func (s *Service) messageFor(r *store.RightsRequest, kind pdv1.OutboxMessageKind) (vault.OutboxContent, bool) {
	m := vault.OutboxContent{Language: "sv"}
	switch {
	case kind == pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_VERIFICATION_CODE:
		if r.Code == nil || r.Text.CodeTo == "" {
			return m, false
		}
		m.Channel, m.To = r.Code.Channel, r.Text.CodeTo
	case r.Text.ContactEmail != "":
		m.Channel, m.To = pdv1.ContactChannel_CONTACT_CHANNEL_EMAIL.String(), r.Text.ContactEmail
	case r.Text.ContactPhone != "":
		m.Channel, m.To = pdv1.ContactChannel_CONTACT_CHANNEL_SMS.String(), r.Text.ContactPhone
	case r.Text.ReplyEmail != "":
		m.Channel, m.To = pdv1.ContactChannel_CONTACT_CHANNEL_EMAIL.String(), r.Text.ReplyEmail
	default:
		return m, false
	}
	what := kindNamesSV[core.EnumValue[pdv1.RightsRequestKind](pdv1.RightsRequestKind_value, r.Kind)]
	ref := "Ärende " + core.ShortID(r.ID)
	switch kind {
	case pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_VERIFICATION_CODE:
		code := s.verificationCode(r.ID, r.Code)
		m.Subject = ref + ": din kod"
		m.Body = fmt.Sprintf("Din kod för att bekräfta din begäran om %s är %s %s.\n"+
			"Koden gäller i %d minuter. Har du inte gjort någon begäran kan du bortse från meddelandet.\n",
			what, code[:4], code[4:], int(codeLifetime/time.Minute))
	case pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_RECEIPT:
		m.Subject = ref + ": vi har tagit emot din begäran"
		m.Body = fmt.Sprintf("Vi har tagit emot din begäran om %s den %s.\n"+
			"Innan vi gör något behöver vi bekräfta din identitet. Du får svar senast %s.\n",
			what, core.Day(r.ReceivedAt), r.DueDate)
	case pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_EXTENSION:
		m.Subject = ref + ": vi behöver längre tid"
		m.Body = fmt.Sprintf("Vi behöver längre tid för att besvara din begäran om %s (artikel 12.3 i dataskyddsförordningen).\n"+
			"Skäl: %s\nDu får svar senast %s.\n", what, r.Text.Reason, r.DueDate)
	case pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_DECISION:
		m.Subject = ref + ": beslut"
		m.Body = decisionText(r, what)
	case pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_REPLY_READY:
		m.Subject = ref + ": klart"
		if r.Kind == pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS.String() || r.Kind == pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_PORTABILITY.String() {
			m.Body = fmt.Sprintf("Svaret på din begäran om %s är klart. Vi skickar det till dig på ett säkert sätt.\n", what)
		} else {
			m.Body = fmt.Sprintf("Vi har genomfört din begäran om %s.\n", what)
		}
	case pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_FORWARDED:
		m.Subject = ref + ": vidarebefordrad"
		m.Body = fmt.Sprintf("Din begäran om %s gäller uppgifter som vår kund är personuppgiftsansvarig för; vi behandlar dem för kundens räkning.\n"+
			"Vi har skickat begäran vidare till kunden, som besvarar den.\n", what)
	default:
		return m, false
	}
	return m, true
}

func decisionText(r *store.RightsRequest, what string) string {
	d := r.Decision
	reason := reasonNamesSV[core.EnumValue[pdv1.DecisionReason](pdv1.DecisionReason_value, d.Reason)]
	var b strings.Builder
	switch d.Outcome {
	case pdv1.DecisionOutcome_DECISION_OUTCOME_GRANT.String():
		fmt.Fprintf(&b, "Vi har beviljat din begäran om %s och genomför den nu.\n", what)
	case pdv1.DecisionOutcome_DECISION_OUTCOME_GRANT_IN_PART.String():
		fmt.Fprintf(&b, "Vi har beviljat din begäran om %s delvis. Det vi inte kan bevilja avslår vi: %s.\n", what, reason)
	default:
		fmt.Fprintf(&b, "Vi har avslagit din begäran om %s: %s.\n", what, reason)
	}
	if r.Text.Explanation != "" {
		fmt.Fprintf(&b, "%s\n", r.Text.Explanation)
	}
	if d.Outcome != pdv1.DecisionOutcome_DECISION_OUTCOME_GRANT.String() {
		b.WriteString(core.ComplaintSV + "\n")
	}
	return b.String()
}

var kindNamesSV = map[pdv1.RightsRequestKind]string{
	pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS:                     "tillgång till dina personuppgifter",
	pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_PORTABILITY:                "dataportabilitet",
	pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_RECTIFICATION:              "rättelse",
	pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_RESTRICTION:                "begränsning av behandling",
	pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ERASURE:                    "radering",
	pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_DIRECT_MARKETING_OBJECTION: "invändning mot direktmarknadsföring",
	pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_CONSENT_WITHDRAWAL:         "återkallelse av samtycke",
	pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_OBJECTION:                  "invändning mot behandling",
}

var reasonNamesSV = map[pdv1.DecisionReason]string{
	pdv1.DecisionReason_DECISION_REASON_RIGHT_APPLIES:            "rätten gäller",
	pdv1.DecisionReason_DECISION_REASON_MANIFESTLY_UNFOUNDED:     "begäran är uppenbart ogrundad (artikel 12.5)",
	pdv1.DecisionReason_DECISION_REASON_EXCESSIVE:                "begäran är orimlig, särskilt för att den upprepas (artikel 12.5)",
	pdv1.DecisionReason_DECISION_REASON_IDENTITY_NOT_ESTABLISHED: "vi har inte kunnat fastställa din identitet (artikel 12.6)",
	pdv1.DecisionReason_DECISION_REASON_KEPT_UNDER_LAW:           "uppgifterna måste sparas enligt lag, till exempel bokföringslagen (artikel 17.3 b)",
	pdv1.DecisionReason_DECISION_REASON_KEPT_FOR_LEGAL_CLAIMS:    "uppgifterna behövs för att fastställa, göra gällande eller försvara rättsliga anspråk (artikel 17.3 e)",
}

// outboxReaders are the kinds of principal that read and acknowledge the
// outbox's messages: the mailer alone. The messages hold the requesters'
// addresses and live verification codes, and whoever reads a code can
// verify a request as someone else; operators see counts and ages
// (GetOutboxSummary), whatever RPCs a principal is granted.
var outboxReaders = map[string]bool{
	pdv1.PrincipalKind_PRINCIPAL_KIND_MAILER.String(): true,
}

func (s *Outbox) reader(ctx context.Context) (*auth.Caller, error) {
	c, err := s.Caller(ctx)
	if err != nil {
		return nil, err
	}
	if !outboxReaders[c.Principal.Kind] {
		return nil, fault.PermissionDenied(fault.ReasonKindNotPermitted, nil, "the outbox's messages are read by the mailer only")
	}
	return c, nil
}

var (
	// requestMessageIDPattern is the id of a request's message: the
	// request's id (base32 of 128 bits, as DerivedID makes it) and the
	// index of its step (store.OutboxMessageID).
	requestMessageIDPattern = regexp.MustCompile(`^[a-z2-7]{26}\.(0|[1-9][0-9]{0,5})$`)
	// policyNoticeIDPattern is the id of a policy notice: the version and
	// the subject's id (policyNoticeID).
	policyNoticeIDPattern = regexp.MustCompile(`^policy\.([a-z0-9][a-z0-9.-]{0,31})\.([a-z2-7]{26})$`)
	// signInCodeIDPattern is the id of a sign-in code of the data
	// subject's own page (selfServiceMessageID).
	signInCodeIDPattern = regexp.MustCompile(`^signin\.[0-9a-f]{32}$`)
)

// validOutboxMessageID checks the form of a message id; for a policy notice it
// returns the version and the subject it names.
func validOutboxMessageID(v *validate.Violations, id string) (version, subjectID string) {
	switch {
	case id == "":
		v.Add("message_id", "is required")
	case requestMessageIDPattern.MatchString(id), signInCodeIDPattern.MatchString(id), accountability.BreachNoticeIDPattern.MatchString(id):
	default:
		m := policyNoticeIDPattern.FindStringSubmatch(id)
		if m == nil {
			v.Add("message_id", `is not a message id: "<request_id>.<step>", "policy.<version>.<subject_id>", "signin.<id>" or "breach.<breach_id>.<s|c>.<id>", as listed`)
			return "", ""
		}
		return m[1], m[2]
	}
	return "", ""
}

// pendingMessages reads up to limit messages after a position, opened.
func (s *Outbox) pendingMessages(ctx context.Context, afterAt int64, afterID string, limit int) ([]*pdv1.OutboxMessage, error) {
	ms, err := s.Store.OutboxMessages(ctx, afterAt, afterID, limit)
	if err != nil {
		return nil, err
	}
	out := make([]*pdv1.OutboxMessage, 0, len(ms))
	for _, m := range ms {
		c, err := s.Vault.OpenOutbox(ctx, m)
		if errors.Is(err, vault.ErrNoDataKey) {
			// Its subject was erased since it was queued: there is no
			// one to tell, and nothing to send.
			if err := s.Store.DeleteOutboxMessage(ctx, m.ID); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("open outbox message: %w", err)
		}
		out = append(out, &pdv1.OutboxMessage{
			MessageId: m.ID, Kind: core.EnumValue[pdv1.OutboxMessageKind](pdv1.OutboxMessageKind_value, m.Kind),
			Channel: core.EnumValue[pdv1.ContactChannel](pdv1.ContactChannel_value, c.Channel), To: c.To,
			Language: c.Language, Subject: c.Subject, Body: c.Body, RequestId: m.RequestID, CreateTime: core.Timestamp(m.CreatedAt),
		})
	}
	return out, nil
}

// outboxTouch is what passing on a message touches: the contact details of
// the request's requester, on the tenant's chain (the message names no
// subject).
func outboxTouch(m *pdv1.OutboxMessage) audit.Touch {
	return audit.Touch{Chain: audit.TenantChain(rules.CompanyController), Tenant: rules.CompanyController, Fields: []string{"outbox_message"}}
}

// ListOutboxMessages lists the unacknowledged messages, oldest first.
func (s *Outbox) ListOutboxMessages(ctx context.Context, req *pdv1.ListOutboxMessagesRequest) (*pdv1.ListOutboxMessagesResponse, error) {
	var v validate.Violations
	size := v.PageSize(req.GetPageSize(), 50)
	afterAt, afterID := v.PositionToken(req.GetPageToken(), "outbox", "outbox")
	if err := v.Err(); err != nil {
		return nil, err
	}
	if _, err := s.reader(ctx); err != nil {
		return nil, err
	}
	ms, err := s.pendingMessages(ctx, afterAt, afterID, size+1)
	if err != nil {
		return nil, s.Internal(ctx, "list outbox", err)
	}
	out := &pdv1.ListOutboxMessagesResponse{}
	if len(ms) > size {
		ms = ms[:size]
		last := ms[size-1]
		out.NextPageToken = validate.PositionTokenOf("outbox", "outbox", last.GetCreateTime().AsTime().UnixNano(), last.GetMessageId())
	}
	for _, m := range ms {
		core.Note(ctx, outboxTouch(m))
	}
	out.Messages = ms
	return out, nil
}

// StreamOutboxMessages sends the unacknowledged messages, then new ones as
// they are queued (looked for every NotificationPollInterval, so those
// queued by other replicas come too). Each is sent once per stream; one
// not acknowledged is sent again by the next stream or listing.
func (s *Outbox) StreamOutboxMessages(_ *pdv1.StreamOutboxMessagesRequest, stream grpc.ServerStreamingServer[pdv1.StreamOutboxMessagesResponse]) error {
	ctx := stream.Context()
	if _, err := s.reader(ctx); err != nil {
		return err
	}
	tick := time.NewTicker(core.NotificationPollInterval)
	defer tick.Stop()
	sent := map[string]bool{}
	for {
		ms, err := s.pendingMessages(ctx, 0, "", validate.MaxPageSize)
		if err != nil {
			return s.Internal(ctx, "stream outbox", err)
		}
		// Remember only what still waits, so a stream open for days does
		// not grow with every message it ever sent.
		waiting := make(map[string]bool, len(ms))
		for _, m := range ms {
			waiting[m.GetMessageId()] = sent[m.GetMessageId()]
		}
		sent = waiting
		for _, m := range ms {
			if sent[m.GetMessageId()] {
				continue
			}
			audit.Note(ctx, outboxTouch(m))
			if err := stream.Send(&pdv1.StreamOutboxMessagesResponse{Message: m}); err != nil {
				return err
			}
			audit.Sent(ctx)
			sent[m.GetMessageId()] = true
		}
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-s.ShuttingDown():
			return fault.Unavailable(fault.ReasonShuttingDown, "the server is shutting down: reconnect to go on from the first unacknowledged message")
		case <-tick.C:
		}
		p, err := s.Store.GetPrincipal(ctx, auth.FromContext(ctx).ID())
		if err != nil || p.Revoked || !outboxReaders[p.Kind] {
			return status.Error(codes.Unauthenticated, "the principal was revoked or changed")
		}
	}
}

// AcknowledgeOutboxMessage removes a sent message.
func (s *Outbox) AcknowledgeOutboxMessage(ctx context.Context, req *pdv1.AcknowledgeOutboxMessageRequest) (*pdv1.AcknowledgeOutboxMessageResponse, error) {
	var v validate.Violations
	id := req.GetMessageId()
	version, subjectID := validOutboxMessageID(&v, id)
	if err := v.Err(); err != nil {
		return nil, err
	}
	c, err := s.reader(ctx)
	if err != nil {
		return nil, err
	}
	core.Note(ctx, audit.Touch{Chain: audit.TenantChain(rules.CompanyController), Tenant: rules.CompanyController, Fields: []string{"outbox_message"}})
	m, err := s.Store.GetOutboxMessage(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		switch acked, err := s.acknowledgedBefore(ctx, id, version, subjectID); {
		case err != nil:
			return nil, s.Internal(ctx, "acknowledge outbox message", err)
		case acked:
			return &pdv1.AcknowledgeOutboxMessageResponse{}, nil // a repeat: harmless
		}
		return nil, status.Error(codes.NotFound, "outbox message not found")
	}
	if err != nil {
		return nil, s.Internal(ctx, "acknowledge outbox message", err)
	}
	if m.PolicyVersion != "" {
		core.Note(ctx, audit.Touch{SubjectID: m.SubjectID, Fields: []string{"policy_acknowledgement"}})
		if err := s.policy.AcknowledgedPolicyNotice(ctx, m, c.ID()); err != nil {
			return nil, s.Internal(ctx, "acknowledge outbox message", err)
		}
	}
	// A request's message is remembered as sent, so that no settle of the
	// request queues it again: not one that read the request before this
	// message was counted, nor one after a crash between queueing and
	// counting it. A breach notice likewise, so that a breach tells no
	// one twice.
	if m.RequestID != "" || m.Breach != "" {
		if err := s.Store.MarkOutboxMessageSent(ctx, m.ID, s.Now().UnixNano()); err != nil {
			return nil, s.Internal(ctx, "acknowledge outbox message", err)
		}
	}
	if err := s.Store.DeleteOutboxMessage(ctx, id); err != nil {
		return nil, s.Internal(ctx, "acknowledge outbox message", err)
	}
	return &pdv1.AcknowledgeOutboxMessageResponse{}, nil
}

// acknowledgedBefore says whether a message no longer queued was
// acknowledged: a request's message by its sent mark (which stays until
// the request's personal values go), a policy notice by its subject
// recorded informed of the version (through the notice, or by support staff
// before the notice was acknowledged, which then records nothing more).
// Both are written before the message is removed, so a repeat racing the
// first acknowledgement sees them.
func (s *Outbox) acknowledgedBefore(ctx context.Context, id, version, subjectID string) (bool, error) {
	if signInCodeIDPattern.MatchString(id) {
		// A sign-in code is sent once and leaves no mark: a repeat of its
		// acknowledgement is harmless, and says nothing of any sign-in.
		return true, nil
	}
	if version == "" {
		return s.Store.OutboxMessageSent(ctx, id)
	}
	sub, err := s.Store.GetSubject(ctx, subjectID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return accountability.InformedOf(sub, version), nil
}

// GetOutboxSummary counts the waiting messages by kind, with the age of the
// oldest: no address, text, code or id of any message, so operators watch
// the mailer without reading what it sends. It touches no personal data.
func (s *Outbox) GetOutboxSummary(ctx context.Context, _ *pdv1.GetOutboxSummaryRequest) (*pdv1.GetOutboxSummaryResponse, error) {
	if _, err := s.Caller(ctx); err != nil {
		return nil, err
	}
	waiting, err := s.Store.OutboxSummary(ctx)
	if err != nil {
		return nil, s.Internal(ctx, "summarise outbox", err)
	}
	now := s.Now()
	out := &pdv1.GetOutboxSummaryResponse{ReadTime: core.Timestamp(now.UnixNano())}
	var oldest int64
	for _, w := range waiting {
		out.Waiting += w.Count
		if oldest == 0 || w.OldestAt < oldest {
			oldest = w.OldestAt
		}
		out.Kinds = append(out.Kinds, &pdv1.OutboxKindSummary{
			Kind: core.EnumValue[pdv1.OutboxMessageKind](pdv1.OutboxMessageKind_value, w.Kind), Waiting: w.Count,
			OldestCreateTime: core.Timestamp(w.OldestAt), OldestAge: ageAt(now, w.OldestAt),
		})
	}
	slices.SortFunc(out.Kinds, func(a, b *pdv1.OutboxKindSummary) int { return cmp.Compare(a.GetKind(), b.GetKind()) })
	if out.Waiting > 0 {
		out.OldestCreateTime, out.OldestAge = core.Timestamp(oldest), ageAt(now, oldest)
	}
	return out, nil
}

// ageAt is how long before now a Unix-nanosecond time was, never below 0.
func ageAt(now time.Time, at int64) *durationpb.Duration {
	return durationpb.New(max(now.Sub(time.Unix(0, at)), 0))
}
