package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Collections of the rights requests and of the messages to requesters.
const (
	rightsRequestsCollection = "rights_requests"
	outboxCollection         = "outbox"
	outboxSentCollection     = "outbox_sent"
)

// RightsRequest is a data subject's request, from arrival to answer, in one
// document so that each step changes it atomically. Enumerated values are
// stored by name; personal values (the claimed identity, the requester's
// words, the reply address, the explanations given) only sealed, under the
// request's own data key (DataKeyID).
type RightsRequest struct {
	ID      string `bson:"_id"`
	Version int64  `bson:"v"`
	// Controller is whose queue the request is in; ForwardedTo the customer
	// it was passed to, who may then read it.
	Controller  string `bson:"controller"`
	ForwardedTo string `bson:"forwarded_to,omitempty"`
	Kind        string `bson:"kind"`
	Channel     string `bson:"channel"`
	ReceivedAt  int64  `bson:"received_at"` // Unix nanoseconds
	// DueDate is the date the answer is due in Sweden (YYYY-MM-DD), after
	// any extension; DueAt the end of that day.
	DueDate   string `bson:"due_date"`
	DueAt     int64  `bson:"due_at"`
	SubjectID string `bson:"subject_id,omitempty"`
	State     string `bson:"state"`
	Reference string `bson:"reference,omitempty"`
	// Sealed holds the personal values by name (see RequestText).
	Sealed map[string][]byte `bson:"sealed,omitempty"`
	// Text is Sealed opened; never stored.
	Text RequestText `bson:"-"`

	Code         *CodeChallenge `bson:"code,omitempty"`
	Verification *Verification  `bson:"verification,omitempty"`
	Decision     *Decision      `bson:"decision,omitempty"`
	Extension    *Extension     `bson:"extension,omitempty"`
	Forwarding   *Forwarding    `bson:"forwarding,omitempty"`
	Fulfilment   *Fulfilment    `bson:"fulfilment,omitempty"`
	Steps        []RequestStep  `bson:"steps"`
	// ClosedAt is when the request was answered (fulfilled, refused or
	// forwarded); its personal values are removed a retention period later.
	ClosedAt int64 `bson:"closed_at,omitempty"`
	// Queued counts the steps whose message to the requester is in the
	// outbox: a step's message is queued after the step is stored, by the
	// call that stored it or, should that stop first, by the next call that
	// reads the request.
	Queued    int   `bson:"queued"`
	Ops       []Op  `bson:"ops,omitempty"`
	CreatedAt int64 `bson:"created_at"`
	UpdatedAt int64 `bson:"updated_at"`
}

func (d *RightsRequest) version() *int64 { return &d.Version }

// RequestText is what a request holds that is personal: sealed at rest.
type RequestText struct {
	IdentityNumber string
	Email          string
	// Words is what the requester asks, in their words.
	Words      string
	ReplyEmail string
	// ContactEmail and ContactPhone are the matched subject's contact
	// details on file at receipt: where the answers go, even after the
	// request erased the subject. CodeTo is where the code in force went.
	ContactEmail string
	ContactPhone string
	CodeTo       string
	// Explanation is the decision's, Reason the extension's.
	Explanation string
	Reason      string
}

// DataKeyID is the id under which the request's data key is kept, beside
// the subjects' keys: erasing it shreds the request's personal values.
func (d *RightsRequest) DataKeyID() string { return RequestDataKeyID(d.ID) }

// RequestDataKeyID is the data key id of the request with this id.
func RequestDataKeyID(id string) string { return "rr_" + id }

// CodeChallenge is the one-time code in force. The code itself is not
// stored: Nonce and Sent make it again, under a master-derived key.
type CodeChallenge struct {
	Channel   string `bson:"channel"`
	Nonce     []byte `bson:"nonce"`
	Sent      int    `bson:"sent"`
	SentAt    int64  `bson:"sent_at"`
	ExpiresAt int64  `bson:"expires_at"`
	TriesLeft int    `bson:"tries_left"`
}

// Verification records how the requester's identity was established.
type Verification struct {
	Method    string `bson:"method"`
	At        int64  `bson:"at"`
	By        string `bson:"by"`
	Reference string `bson:"reference,omitempty"`
}

// Decision is what was decided; its explanation is sealed.
type Decision struct {
	Outcome string `bson:"outcome"`
	Reason  string `bson:"reason"`
	At      int64  `bson:"at"`
	By      string `bson:"by"`
}

// Extension is the one extension of the time limit; its reason is sealed.
type Extension struct {
	Months int   `bson:"months"`
	At     int64 `bson:"at"`
	// OriginalDueDate is the due date before the extension.
	OriginalDueDate string `bson:"original_due_date"`
	By              string `bson:"by"`
}

// Forwarding records the hand-over to a customer who is controller.
type Forwarding struct {
	Controller string `bson:"controller"`
	Reference  string `bson:"reference,omitempty"`
	At         int64  `bson:"at"`
	By         string `bson:"by"`
}

// Fulfilment records how a request was carried out.
type Fulfilment struct {
	At             int64  `bson:"at"`
	By             string `bson:"by"`
	SubjectVersion int64  `bson:"subject_version,omitempty"`
	Result         string `bson:"result"`
	NothingHeld    bool   `bson:"nothing_held,omitempty"`
}

// RequestStep is one entry of a request's history. Message, when set, is
// the kind of message the step sends the requester.
type RequestStep struct {
	Step    string `bson:"step"`
	At      int64  `bson:"at"`
	By      string `bson:"by"`
	Message string `bson:"message,omitempty"`
}

func (s *Store) rightsRequests() *mongo.Collection {
	return s.subjects.Database().Collection(rightsRequestsCollection)
}

// InsertRightsRequest records a new request; an existing id is ErrExists.
func (s *Store) InsertRightsRequest(ctx context.Context, r *RightsRequest) error {
	if err := s.insert(ctx, s.rightsRequests(), r); err != nil {
		return fmt.Errorf("store: insert rights request: %w", err)
	}
	return nil
}

// GetRightsRequest reads a request by its id.
func (s *Store) GetRightsRequest(ctx context.Context, id string) (*RightsRequest, error) {
	var r RightsRequest
	if err := get(ctx, s.rightsRequests(), id, &r); err != nil {
		return nil, fmt.Errorf("store: get rights request: %w", err)
	}
	return &r, nil
}

// UpdateRightsRequest changes a request atomically, as UpdateSubject does.
func (s *Store) UpdateRightsRequest(ctx context.Context, id string, change func(*RightsRequest) error) (*RightsRequest, error) {
	return update(ctx, s, s.rightsRequests(), id, change)
}

// maxRequestsListed bounds what one listing of a queue reads.
const maxRequestsListed = 10000

// RightsRequestsOf returns the requests in controller's queue, or forwarded
// to the customer forwardedTo, or both when both are given (one may be
// empty), of one subject only unless subjectID is empty, in the given
// states only unless open is nil, sorted by due time then id. The queue of
// open requests is small (a month's arrivals), and so are one subject's
// requests, so they are read whole and sorted here: FerretDB would scan for
// the filter anyway.
func (s *Store) RightsRequestsOf(ctx context.Context, controller, forwardedTo, subjectID string, open []string) ([]*RightsRequest, error) {
	if controller == "" && forwardedTo == "" {
		return nil, errors.New("store: list rights requests: no controller and no customer forwarded to")
	}
	filter := bson.D{}
	if controller != "" {
		filter = append(filter, bson.E{Key: "controller", Value: controller})
	}
	if forwardedTo != "" {
		filter = append(filter, bson.E{Key: "forwarded_to", Value: forwardedTo})
	}
	if subjectID != "" {
		filter = append(filter, bson.E{Key: "subject_id", Value: subjectID})
	}
	if open != nil {
		filter = append(filter, bson.E{Key: "state", Value: bson.D{{Key: "$in", Value: open}}})
	}
	cur, err := s.rightsRequests().Find(ctx, filter, options.Find().SetLimit(maxRequestsListed).
		SetProjection(bson.D{{Key: "ops", Value: 0}}))
	if err != nil {
		return nil, fmt.Errorf("store: list rights requests: %w", classify(err))
	}
	var out []*RightsRequest
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("store: list rights requests: %w", classify(err))
	}
	// The filter is checked again: some FerretDB v1 operators give wrong
	// results silently (embedded-store.md).
	out = slices.DeleteFunc(out, func(r *RightsRequest) bool {
		return (controller != "" && r.Controller != controller) || (forwardedTo != "" && r.ForwardedTo != forwardedTo) || (subjectID != "" && r.SubjectID != subjectID) ||
			(open != nil && !slices.Contains(open, r.State))
	})
	slices.SortFunc(out, func(a, b *RightsRequest) int {
		if a.DueAt != b.DueAt {
			return cmp.Compare(a.DueAt, b.DueAt)
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return out, nil
}

// CountRightsRequests counts, over every queue, the requests in the open
// states and, of those, the ones due before now.
func (s *Store) CountRightsRequests(ctx context.Context, open []string, now int64) (openCount, overdue int64, err error) {
	cur, err := s.rightsRequests().Find(ctx, bson.D{{Key: "state", Value: bson.D{{Key: "$in", Value: open}}}},
		options.Find().SetProjection(bson.D{{Key: "state", Value: 1}, {Key: "due_at", Value: 1}}))
	if err != nil {
		return 0, 0, fmt.Errorf("store: count rights requests: %w", classify(err))
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		var r struct {
			State string `bson:"state"`
			DueAt int64  `bson:"due_at"`
		}
		if err := cur.Decode(&r); err != nil {
			return 0, 0, err
		}
		if !slices.Contains(open, r.State) {
			continue
		}
		openCount++
		if r.DueAt < now {
			overdue++
		}
	}
	return openCount, overdue, classify(cur.Err())
}

// OutboxMessage is a message to a requester for the company's mailer. Its
// _id is the request's id and the step that sends it, so queueing it again
// finds it there; its content (address, text) is sealed under the
// request's data key. It is deleted once the mailer acknowledges it.
type OutboxMessage struct {
	ID        string `bson:"_id"`
	RequestID string `bson:"request_id,omitempty"`
	// A message about a policy change names its subject and version
	// instead of a request, and is sealed under the subject's data key.
	SubjectID     string `bson:"subject_id,omitempty"`
	PolicyVersion string `bson:"policy_version,omitempty"`
	// Job is the job that queued a policy notice: a resumed job that finds
	// its own notice (queued before it could count it) counts it as queued.
	Job string `bson:"job,omitempty"`
	// Breach is the breach record a breach notice is about: a notice to a
	// subject names the subject too (sealed under its key), one to a
	// customer controller is sealed under the record's data key. Like a
	// request's message, it is marked sent when acknowledged, and never
	// queued again.
	Breach    string `bson:"breach,omitempty"`
	Kind      string `bson:"kind"`
	Sealed    []byte `bson:"sealed"`
	CreatedAt int64  `bson:"created_at"`
}

// OutboxMessageID is the id of the message of a request's step.
func OutboxMessageID(requestID string, step int) string {
	return fmt.Sprintf("%s.%d", requestID, step)
}

func (s *Store) outbox() *mongo.Collection {
	return s.subjects.Database().Collection(outboxCollection)
}

func (s *Store) outboxSent() *mongo.Collection {
	return s.subjects.Database().Collection(outboxSentCollection)
}

// EnqueueOutboxMessage queues m once: a message with its id already queued,
// or a request's message marked sent (MarkOutboxMessageSent), is not queued
// again. A policy notice is told once by the subject's record instead.
// queued says whether this call queued it.
func (s *Store) EnqueueOutboxMessage(ctx context.Context, m *OutboxMessage) (queued bool, err error) {
	marked := m.RequestID != "" || m.Breach != "" // told once by its sent mark
	if marked {
		switch sent, err := s.outboxMessageSent(ctx, m.ID); {
		case err != nil:
			return false, fmt.Errorf("store: queue outbox message: %w", err)
		case sent:
			return false, nil
		}
	}
	err = s.insert(ctx, s.outbox(), m)
	if errors.Is(err, ErrExists) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("store: queue outbox message: %w", err)
	}
	if !marked {
		return true, nil
	}
	// Sent and acknowledged between the look and the insert: this copy goes.
	switch sent, err := s.outboxMessageSent(ctx, m.ID); {
	case err != nil:
		return false, fmt.Errorf("store: queue outbox message: %w", err)
	case sent:
		return false, s.DeleteOutboxMessage(ctx, m.ID)
	}
	return true, nil
}

// outboxMessageSent says whether a request's message is marked sent.
func (s *Store) outboxMessageSent(ctx context.Context, id string) (bool, error) {
	var mark struct {
		ID string `bson:"_id"`
	}
	err := get(ctx, s.outboxSent(), id, &mark)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// maxOutboxListed bounds what one listing of the outbox reads.
const maxOutboxListed = 10000

// OutboxMessages returns up to limit queued messages after the given
// position (created time and id), oldest first. The outbox holds what the
// mailer has not sent yet, so it is small: read whole and sorted here.
func (s *Store) OutboxMessages(ctx context.Context, afterAt int64, afterID string, limit int) ([]*OutboxMessage, error) {
	cur, err := s.outbox().Find(ctx, bson.D{}, options.Find().SetLimit(maxOutboxListed))
	if err != nil {
		return nil, fmt.Errorf("store: list outbox: %w", classify(err))
	}
	var all []*OutboxMessage
	if err := cur.All(ctx, &all); err != nil {
		return nil, fmt.Errorf("store: list outbox: %w", classify(err))
	}
	slices.SortFunc(all, func(a, b *OutboxMessage) int {
		if a.CreatedAt != b.CreatedAt {
			return cmp.Compare(a.CreatedAt, b.CreatedAt)
		}
		return cmp.Compare(a.ID, b.ID)
	})
	var out []*OutboxMessage
	for _, m := range all {
		if m.CreatedAt < afterAt || (m.CreatedAt == afterAt && m.ID <= afterID) {
			continue
		}
		if out = append(out, m); len(out) == limit {
			break
		}
	}
	return out, nil
}

// GetOutboxMessage reads a queued message.
func (s *Store) GetOutboxMessage(ctx context.Context, id string) (*OutboxMessage, error) {
	var m OutboxMessage
	if err := get(ctx, s.outbox(), id, &m); err != nil {
		return nil, fmt.Errorf("store: get outbox message: %w", err)
	}
	return &m, nil
}

// DeleteOutboxMessage removes a message the mailer sent.
func (s *Store) DeleteOutboxMessage(ctx context.Context, id string) error {
	if err := s.remove(ctx, s.outbox(), id, nil); err != nil {
		return fmt.Errorf("store: delete outbox message: %w", err)
	}
	return nil
}

// MarkOutboxMessageSent remembers that the request's message with this id
// was sent, so that EnqueueOutboxMessage does not queue it again: a settle
// of the request that read it before the message was counted, or after a
// crash between queueing and counting, would. The mark holds the id and the
// time; it goes with the request's personal values.
func (s *Store) MarkOutboxMessageSent(ctx context.Context, id string, at int64) error {
	err := s.insert(ctx, s.outboxSent(), bson.D{{Key: "_id", Value: id}, {Key: "sent_at", Value: at}})
	if err != nil && !errors.Is(err, ErrExists) {
		return fmt.Errorf("store: mark outbox message sent: %w", err)
	}
	return nil
}

// ForgetSentOutboxMessages removes the sent marks of the messages of a
// request's first steps, when the request's personal values go (after that
// every step counts as queued, and no mark is needed).
func (s *Store) ForgetSentOutboxMessages(ctx context.Context, requestID string, steps int) error {
	ids := make(bson.A, 0, steps)
	for i := range steps {
		ids = append(ids, OutboxMessageID(requestID, i))
	}
	err := s.write(ctx, s.outboxSent(), func(ctx context.Context) error {
		_, err := s.outboxSent().DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
		return err
	})
	if err != nil {
		return fmt.Errorf("store: forget sent outbox messages: %w", classify(err))
	}
	return nil
}

// OutboxWaiting is what waits in the outbox of one kind of message: how
// many, and when the oldest was queued (Unix nanoseconds).
type OutboxWaiting struct {
	Kind     string
	Count    int64
	OldestAt int64
}

// OutboxSummary counts the waiting messages by kind, with the oldest of
// each, reading only their kinds and times: never a message's content.
func (s *Store) OutboxSummary(ctx context.Context) ([]OutboxWaiting, error) {
	cur, err := s.outbox().Find(ctx, bson.D{},
		options.Find().SetProjection(bson.D{{Key: "kind", Value: 1}, {Key: "created_at", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("store: summarise outbox: %w", classify(err))
	}
	defer cur.Close(ctx)
	byKind := map[string]*OutboxWaiting{}
	for cur.Next(ctx) {
		var m struct {
			Kind      string `bson:"kind"`
			CreatedAt int64  `bson:"created_at"`
		}
		if err := cur.Decode(&m); err != nil {
			return nil, fmt.Errorf("store: summarise outbox: %w", err)
		}
		w := byKind[m.Kind]
		if w == nil {
			w = &OutboxWaiting{Kind: m.Kind, OldestAt: m.CreatedAt}
			byKind[m.Kind] = w
		}
		w.Count++
		w.OldestAt = min(w.OldestAt, m.CreatedAt)
	}
	if err := cur.Err(); err != nil {
		return nil, fmt.Errorf("store: summarise outbox: %w", classify(err))
	}
	out := make([]OutboxWaiting, 0, len(byKind))
	for _, w := range byKind {
		out = append(out, *w)
	}
	slices.SortFunc(out, func(a, b OutboxWaiting) int { return cmp.Compare(a.Kind, b.Kind) })
	return out, nil
}

// OutboxMessageSent says whether the request's message with this id was
// acknowledged (MarkOutboxMessageSent): its mark stays until the request's
// personal values go.
func (s *Store) OutboxMessageSent(ctx context.Context, id string) (bool, error) {
	sent, err := s.outboxMessageSent(ctx, id)
	if err != nil {
		return false, fmt.Errorf("store: read outbox mark: %w", err)
	}
	return sent, nil
}

// CountOutbox counts the messages waiting for the mailer.
func (s *Store) CountOutbox(ctx context.Context) (int64, error) {
	n, err := s.outbox().CountDocuments(ctx, bson.D{})
	if err != nil {
		return 0, fmt.Errorf("store: count outbox: %w", classify(err))
	}
	return n, nil
}

// AnsweredRightsRequestsBefore returns up to limit requests answered before
// cutoff that still hold personal values, after the given id.
func (s *Store) AnsweredRightsRequestsBefore(ctx context.Context, cutoff int64, after string, limit int) ([]*RightsRequest, error) {
	var out []*RightsRequest
	for {
		page, err := listAfter[RightsRequest](ctx, s.rightsRequests(), bson.D{{Key: "closed_at", Value: bson.D{{Key: "$gt", Value: 0}, {Key: "$lt", Value: cutoff}}}}, after, limit)
		if err != nil {
			return nil, err
		}
		for _, r := range page {
			after = r.ID
			// Checked again here: FerretDB v1 gets some filters wrong.
			if r.ClosedAt > 0 && r.ClosedAt < cutoff && len(r.Sealed) > 0 {
				out = append(out, r)
			}
		}
		if len(page) < limit || len(out) >= limit {
			return out, nil
		}
	}
}
