package main

// The campaign's load and its bookkeeping: clients that send requests with
// idempotency keys and resend each one, unchanged, until it is
// acknowledged; the model of what the acknowledged requests made of each
// subject; the recipient that streams and acknowledges notifications; and
// the checks of the service against that model.

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
)

// RPC names, as client.call takes them.
const (
	createRPC      = "personaldata.v1.PersonalDataService/CreateSubject"
	accessRPC      = "personaldata.v1.PersonalDataService/AccessSubject"
	rectifyRPC     = "personaldata.v1.PersonalDataService/RectifySubject"
	historyRPC     = "personaldata.v1.PersonalDataService/AddHistoryEntry"
	forPurposeRPC  = "personaldata.v1.PersonalDataService/GetSubjectForPurpose"
	eraseRPC       = "personaldata.v1.PersonalDataService/EraseSubject"
	discloseRPC    = "personaldata.v1.DisclosureService/Disclose"
	listNoticesRPC = "personaldata.v1.DisclosureService/ListRecipientNotifications"
	ackNoticeRPC   = "personaldata.v1.DisclosureService/AcknowledgeNotification"
	verifyChainRPC = "personaldata.v1.AuditService/VerifyAuditChain"
	principalRPC   = "personaldata.v1.PrincipalService/CreatePrincipal"
)

// recipient is the third party the load discloses to, and whose
// notification queue the campaign streams.
const recipient = "registry.example.net"

// requestTimeout bounds one attempt; a longer one counts as DeadlineExceeded.
const requestTimeout = 15 * time.Second

// subject is what the acknowledged requests made of one data subject.
type subject struct {
	id    string
	owner int // the client that changes it; -1 for the campaign's own
	// person is as the last acknowledged create or rectification returned it.
	person    *pdv1.Person
	entries   map[string]bool // ids of the acknowledged history entries
	rectified int             // acknowledged rectifications
	disclosed int             // acknowledged disclosures to the recipient
	erased    bool            // an erasure was acknowledged
	erasing   bool            // an erasure was sent, not yet acknowledged
	// owed counts the notifications its acknowledged changes owe the
	// recipient: those after its first disclosure.
	owed map[pdv1.NotificationKind]int
	// touched: changed since the service was last checked against it.
	touched bool
}

// tally is the campaign's figures. Keys of the maps never hold personal
// values: RPC names, status codes and kinds of finding.
type tally struct {
	sent         int                       // attempts of every request, reads included
	byCode       map[string]map[string]int // outcome → transport → attempts
	acked        int                       // requests acknowledged (OK)
	ackedOnRetry int                       // of those, acknowledged only after an interruption
	refused      map[string]int            // "what outcome": first attempts refused outright
	retryRefused map[string]int            // "what outcome": resends of interrupted requests refused
	lost         findings                  // acknowledged effects missing
	duplicated   findings                  // effects applied more than once
	erasedLeft   findings                  // documents found after their subject's erasure was acknowledged
	checkErrors  map[string]int            // checks that could not be made, by call and outcome
	checks       int                       // calls made to check (not load)
	chains       int                       // audit chains verified
	broken       int                       // of those, not intact
	crashes      int
	selfExits    int // times the daemon had ended before it was killed
	restarts     []time.Duration
}

func newTally() tally {
	return tally{
		byCode: map[string]map[string]int{}, refused: map[string]int{}, retryRefused: map[string]int{},
		lost: newFindings(), duplicated: newFindings(), checkErrors: map[string]int{}, erasedLeft: newFindings(),
	}
}

// send sends one request until it is acknowledged, resending it unchanged
// (same idempotency key) after every interruption, once the daemon is up
// again. It returns false when the service refused it outright (counted),
// or when the campaign ended. onOK runs under c.mu with the response.
func send[R proto.Message](ctx context.Context, c *campaign, what string, via client, method string, req proto.Message, onOK func(R)) bool {
	interrupted := false
	for {
		if c.up.wait(ctx) != nil {
			return false
		}
		var zero R
		resp := zero.ProtoReflect().Type().New().Interface().(R)
		actx, cancel := context.WithTimeout(ctx, requestTimeout)
		err := via.call(actx, method, req, resp)
		cancel()
		if err != nil && ctx.Err() != nil {
			return false // the campaign is over, not the daemon
		}
		o := outcome(err)
		c.mu.Lock()
		c.count(via.transport(), o)
		if err == nil {
			c.n.acked++
			if interrupted {
				c.n.ackedOnRetry++
			}
			if onOK != nil {
				onOK(resp)
			}
			c.mu.Unlock()
			return true
		}
		if !transient(o) {
			if interrupted {
				c.n.retryRefused[what+" "+o]++
			} else {
				c.n.refused[what+" "+o]++
			}
			c.mu.Unlock()
			return false
		}
		c.mu.Unlock()
		interrupted = true
		time.Sleep(20 * time.Millisecond)
	}
}

// count records one attempt; c.mu held.
func (c *campaign) count(transport, o string) {
	c.n.sent++
	if c.n.byCode[o] == nil {
		c.n.byCode[o] = map[string]int{}
	}
	c.n.byCode[o][transport]++
}

// worker is one client: support staff (and the domain-registration
// integration, for disclosures) over one transport, changing only its own
// subjects, one request at a time, so the model of each subject is exact.
type worker struct {
	c     *campaign
	n     int
	staff client
	dom   client
	rng   *rand.Rand
	mine  []*subject // its subjects not yet erased
	steps int
}

func (w *worker) run(ctx context.Context) {
	for {
		w.c.load.checkpoint()
		if ctx.Err() != nil {
			return
		}
		w.step(ctx)
	}
}

// step sends one request (a rectification two: the read of the version to
// expect, then the change).
func (w *worker) step(ctx context.Context) {
	w.steps++
	key := fmt.Sprintf("w%d-%d", w.n, w.steps)
	p := w.rng.Float64()
	if len(w.mine) < 3 || p < 0.1 {
		w.create(ctx, key)
		return
	}
	s := w.mine[w.rng.IntN(len(w.mine))]
	switch {
	case p < 0.4:
		w.rectify(ctx, key, s)
	case p < 0.8:
		w.addHistory(ctx, key, s)
	case p < 0.93:
		w.disclose(ctx, key, s)
	default:
		w.erase(ctx, key, s)
	}
}

func (w *worker) create(ctx context.Context, key string) {
	w.c.createSubject(ctx, w.staff, "create-"+key, int(w.c.values.Add(1)), w.n, func(s *subject) {
		w.mine = append(w.mine, s)
	})
}

// createSubject creates a made-up person n for owner and records it.
func (c *campaign) createSubject(ctx context.Context, via client, key string, n, owner int, made func(*subject)) bool {
	req := &pdv1.CreateSubjectRequest{
		IdempotencyKey: key, ControllerId: "company", Person: campaignPerson(n),
		Channel: pdv1.Channel_CHANNEL_PORTAL, Reference: fmt.Sprintf("signup-%d", n),
	}
	c.mu.Lock()
	c.creating++
	c.mu.Unlock()
	ok := send(ctx, c, "create", via, createRPC, req, func(r *pdv1.CreateSubjectResponse) {
		got := r.GetSubject()
		if c.subjects[got.GetSubjectId()] != nil {
			c.n.duplicated.add("create: a second create answered with a known subject", got.GetSubjectId(), 1)
			return
		}
		s := &subject{id: got.GetSubjectId(), owner: owner, person: got.GetPerson(), entries: map[string]bool{}, owed: map[pdv1.NotificationKind]int{}, touched: true}
		c.subjects[s.id] = s
		if made != nil {
			made(s)
		}
	})
	c.mu.Lock()
	c.creating--
	c.mu.Unlock()
	return ok
}

// rectify changes the phone or the e-mail address, from the version read
// just before.
func (w *worker) rectify(ctx context.Context, key string, s *subject) {
	var version int64
	if !send(ctx, w.c, "read", w.staff, forPurposeRPC, &pdv1.GetSubjectForPurposeRequest{SubjectId: s.id, Purpose: pdv1.Purpose_PURPOSE_SUPPORT},
		func(r *pdv1.GetSubjectForPurposeResponse) { version = r.GetVersion() }) {
		return
	}
	n := w.c.values.Add(1)
	person, path := &pdv1.Person{Phone: fmt.Sprintf("+46702%06d", n%1_000_000)}, "phone"
	if n%2 == 0 {
		person, path = &pdv1.Person{Email: fmt.Sprintf("ny%d@example.test", n)}, "email"
	}
	req := &pdv1.RectifySubjectRequest{
		IdempotencyKey: "rectify-" + key, SubjectId: s.id, ExpectedVersion: version,
		Person: person, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{path}},
		Channel: pdv1.Channel_CHANNEL_EMAIL, Reference: fmt.Sprintf("ticket-%d", n), PerformedBy: "support-agent-7",
	}
	send(ctx, w.c, "rectify", w.staff, rectifyRPC, req, func(r *pdv1.RectifySubjectResponse) {
		s.person = r.GetSubject().GetPerson()
		s.rectified++
		if s.disclosed > 0 {
			s.owed[pdv1.NotificationKind_NOTIFICATION_KIND_RECTIFIED]++
		}
		s.touched = true
	})
}

func (w *worker) addHistory(ctx context.Context, key string, s *subject) {
	w.c.addHistory(ctx, w.staff, "history-"+key, s, int(w.c.values.Add(1)))
}

// addHistory adds an e-mail conversation to s and records its entry.
func (c *campaign) addHistory(ctx context.Context, via client, key string, s *subject, n int) bool {
	req := &pdv1.AddHistoryEntryRequest{IdempotencyKey: key, SubjectId: s.id, Entry: &pdv1.HistoryEntry{
		Kind:      pdv1.HistoryKind_HISTORY_KIND_EMAIL_CONVERSATION,
		Title:     fmt.Sprintf("Order %d", n),
		Body:      fmt.Sprintf("Hej!\nJag vill ändra order %d.\n", n),
		OccurTime: timestamppb.New(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Minute)),
		Reference: fmt.Sprintf("order-%d", n),
	}}
	return send(ctx, c, "history", via, historyRPC, req, func(r *pdv1.AddHistoryEntryResponse) {
		id := r.GetEntry().GetEntryId()
		if s.entries[id] {
			c.n.lost.add("history: two requests answered with one entry", s.id+" "+id, 1)
		}
		s.entries[id] = true
		s.touched = true
	})
}

// disclose hands the subject's contact data to the recipient, as the
// domain-registration integration does for an order.
func (w *worker) disclose(ctx context.Context, key string, s *subject) {
	n := w.c.values.Add(1)
	req := &pdv1.DiscloseRequest{
		IdempotencyKey: "disclose-" + key, SubjectId: s.id, Recipient: recipient,
		Purpose: pdv1.Purpose_PURPOSE_DOMAIN_REGISTRATION, Categories: []pdv1.DataCategory{pdv1.DataCategory_DATA_CATEGORY_CONTACT},
		Basis: pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONTRACT, Reference: fmt.Sprintf("order-%d", n),
	}
	send(ctx, w.c, "disclose", w.dom, discloseRPC, req, func(*pdv1.DiscloseResponse) {
		s.disclosed++
		s.touched = true
	})
}

func (w *worker) erase(ctx context.Context, key string, s *subject) {
	if w.c.erase(ctx, w.staff, "erase-"+key, s) {
		w.mine = slices.DeleteFunc(w.mine, func(o *subject) bool { return o == s })
	}
}

// erase erases s and records it once acknowledged.
func (c *campaign) erase(ctx context.Context, via client, key string, s *subject) bool {
	req := &pdv1.EraseSubjectRequest{
		IdempotencyKey: key, SubjectId: s.id, Ground: pdv1.ErasureGround_ERASURE_GROUND_NO_LEGITIMATE_REASON,
		Channel: pdv1.Channel_CHANNEL_EMAIL, Reference: "ticket-erase", PerformedBy: "support-agent-7",
	}
	c.mu.Lock()
	s.erasing = true
	c.mu.Unlock()
	return send(ctx, c, "erase", via, eraseRPC, req, func(r *pdv1.EraseSubjectResponse) {
		if r.GetSubject().GetState() != pdv1.SubjectState_SUBJECT_STATE_ERASED {
			c.n.lost.add("erase: acknowledged without a tombstone", s.id, 1)
		}
		s.erased = true
		if s.disclosed > 0 {
			s.owed[pdv1.NotificationKind_NOTIFICATION_KIND_ERASED]++
		}
		s.touched = true
	})
}

// barrier parks the workers between requests while the campaign checks the
// service, so that no request is in flight and the model is exact.
type barrier struct {
	mu      sync.Mutex
	cond    *sync.Cond
	paused  bool
	parked  int
	members int
}

func newBarrier(members int) *barrier {
	b := &barrier{members: members}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// checkpoint parks the caller while paused.
func (b *barrier) checkpoint() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.paused {
		return
	}
	b.parked++
	b.cond.Broadcast()
	for b.paused {
		b.cond.Wait()
	}
	b.parked--
}

// pause waits until every worker is parked, or the timeout passes (false).
func (b *barrier) pause(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	wake := time.AfterFunc(timeout, func() { b.mu.Lock(); b.cond.Broadcast(); b.mu.Unlock() })
	defer wake.Stop()
	b.mu.Lock()
	defer b.mu.Unlock()
	b.paused = true
	for b.parked < b.members && time.Now().Before(deadline) {
		b.cond.Wait()
	}
	return b.parked == b.members
}

func (b *barrier) resume() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.paused = false
	b.cond.Broadcast()
}

// noticeLog is what the recipient received of its notifications.
type noticeLog struct {
	streams     int
	endings     map[string]int                         // how streams ended, by outcome
	delivered   map[string]*pdv1.RecipientNotification // by notification id
	deliveries  int
	acked       map[string]bool // acknowledgement answered OK
	redelivered int             // delivered again while unacknowledged, by a later stream: the contract
	afterAck    int             // delivered again after an acknowledged acknowledgement
	twiceInOne  int             // delivered twice by one stream
	ackAttempts int
	ackFailures map[string]int
}

func newNoticeLog() noticeLog {
	return noticeLog{endings: map[string]int{}, delivered: map[string]*pdv1.RecipientNotification{}, acked: map[string]bool{}, ackFailures: map[string]int{}}
}

// receive records the delivery of n by a stream that delivered the ids in
// seen before; c.mu held.
func (c *campaign) receive(n *pdv1.RecipientNotification, seen map[string]bool) {
	l := &c.notes
	id := n.GetNotificationId()
	l.deliveries++
	switch {
	case seen[id]:
		l.twiceInOne++
	case l.acked[id]:
		l.afterAck++
	case l.delivered[id] != nil:
		l.redelivered++
	}
	seen[id] = true
	l.delivered[id] = n
}

// recipientLoop streams the recipient's notifications until ctx ends,
// alternating gRPC and REST streams, reconnecting after every crash, and
// acknowledging most notifications (over either transport) as they come,
// so that later streams must skip those and send the others again.
func (c *campaign) recipientLoop(ctx context.Context, dom client, rng *rand.Rand) {
	for i := 0; ; i++ {
		if c.up.wait(ctx) != nil {
			return
		}
		via := dom
		if i%2 == 1 {
			via = dom.other()
		}
		seen := map[string]bool{}
		c.mu.Lock()
		c.notes.streams++
		c.mu.Unlock()
		err := via.streamNotices(ctx, recipient, func(n *pdv1.RecipientNotification) error {
			c.mu.Lock()
			c.receive(n, seen)
			c.mu.Unlock()
			if rng.Float64() < 0.7 {
				ackVia := via
				if rng.IntN(2) == 0 {
					ackVia = via.other()
				}
				c.acknowledge(ctx, ackVia, n)
			}
			return nil
		})
		if ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		c.notes.endings[via.transport()+" "+outcome(err)]++
		c.mu.Unlock()
		time.Sleep(20 * time.Millisecond)
	}
}

// acknowledge acknowledges a notification once; one that fails (the daemon
// killed) is left to be sent again.
func (c *campaign) acknowledge(ctx context.Context, via client, n *pdv1.RecipientNotification) bool {
	actx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	err := via.call(actx, ackNoticeRPC, &pdv1.AcknowledgeNotificationRequest{Recipient: recipient, NotificationId: n.GetNotificationId()}, &pdv1.AcknowledgeNotificationResponse{})
	if err != nil && ctx.Err() != nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.count(via.transport(), outcome(err))
	c.notes.ackAttempts++
	if err != nil {
		c.notes.ackFailures[outcome(err)]++
		return false
	}
	c.n.acked++
	c.notes.acked[n.GetNotificationId()] = true
	return true
}

// drainNotices opens one last stream, takes every notification it sends
// until it goes quiet, and acknowledges each.
func (c *campaign) drainNotices(ctx context.Context, dom client) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	got := make(chan *pdv1.RecipientNotification)
	ended := make(chan error, 1)
	go func() {
		ended <- dom.streamNotices(ctx, recipient, func(n *pdv1.RecipientNotification) error {
			select {
			case got <- n:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	seen := map[string]bool{}
	c.mu.Lock()
	c.notes.streams++
	c.mu.Unlock()
	for {
		select {
		case n := <-got:
			c.mu.Lock()
			c.receive(n, seen)
			c.mu.Unlock()
			if !c.acknowledge(ctx, dom, n) {
				return fmt.Errorf("acknowledge notification %s failed", n.GetNotificationId())
			}
		case err := <-ended:
			return fmt.Errorf("the last notification stream ended: %s", outcome(err))
		case <-time.After(2 * time.Second): // ten polls of the stream without news
			return nil
		}
	}
}

// checkNotices compares what the recipient received with what the
// acknowledged changes owe it: each owed notification delivered (none
// lost) and none more (none duplicated). c.mu held.
func (c *campaign) checkNotices() (owed, distinct int) {
	got := map[string]map[pdv1.NotificationKind]int{}
	for _, n := range c.notes.delivered {
		if got[n.GetSubjectId()] == nil {
			got[n.GetSubjectId()] = map[pdv1.NotificationKind]int{}
		}
		got[n.GetSubjectId()][n.GetKind()]++
		distinct++
	}
	for _, s := range c.subjects {
		for _, kind := range []pdv1.NotificationKind{pdv1.NotificationKind_NOTIFICATION_KIND_RECTIFIED, pdv1.NotificationKind_NOTIFICATION_KIND_ERASED} {
			want, have := s.owed[kind], got[s.id][kind]
			owed += want
			if have < want {
				c.n.lost.add("notification: "+kind.String(), s.id, want-have)
			}
			if have > want {
				c.n.duplicated.add("notification: "+kind.String()+" queued twice or unowed", s.id, have-want)
			}
			delete(got[s.id], kind)
		}
		for kind, have := range got[s.id] {
			c.n.duplicated.add("notification: unowed "+kind.String(), s.id, have)
		}
		delete(got, s.id)
	}
	for id, kinds := range got {
		for kind, have := range kinds {
			c.n.duplicated.add("notification: about an unknown subject, "+kind.String(), id, have)
		}
	}
	c.n.duplicated.add("notification: delivered again after its acknowledgement", "", c.notes.afterAck)
	c.n.duplicated.add("notification: delivered twice by one stream", "", c.notes.twiceInOne)
	return owed, distinct
}

// verify checks the service against the model for subjects, through the
// API (AccessSubject as support staff), and verifies their audit chains
// and the given other chains as the operator. No request may be in flight.
func (c *campaign) verify(ctx context.Context, subs []*subject, chains ...string) {
	staff := client{conn: c.conn, token: c.staff}
	op := client{conn: c.conn, token: c.operator}
	for _, s := range subs {
		var got pdv1.AccessSubjectResponse
		if !c.checkCall(ctx, staff, accessRPC, &pdv1.AccessSubjectRequest{SubjectId: s.id}, &got) {
			continue
		}
		c.mu.Lock()
		c.compare(s, &got)
		c.mu.Unlock()
		chains = append(chains, "subjects/"+s.id)
	}
	for _, chain := range chains {
		var v pdv1.VerifyAuditChainResponse
		if !c.checkCall(ctx, op, verifyChainRPC, &pdv1.VerifyAuditChainRequest{Chain: chain}, &v) {
			continue
		}
		c.mu.Lock()
		c.n.chains++
		if !v.GetIntact() {
			c.n.broken++
			c.t.Errorf("audit chain broken at event %d of %d: %s", v.GetFirstBrokenSeq(), v.GetEvents(), v.GetReason())
		}
		c.mu.Unlock()
	}
}

// checkCall makes one call of a check; a failure is counted and reported by
// RPC and code.
func (c *campaign) checkCall(ctx context.Context, via client, method string, req, resp proto.Message) bool {
	actx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	err := via.call(actx, method, req, resp)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n.checks++
	if err != nil {
		c.n.checkErrors[method+" "+outcome(err)]++
		return false
	}
	return true
}

// compare counts what the service lost of s, and what it applied twice;
// c.mu held.
func (c *campaign) compare(s *subject, got *pdv1.AccessSubjectResponse) {
	sub := got.GetSubject()
	if s.erased {
		if sub.GetState() != pdv1.SubjectState_SUBJECT_STATE_ERASED || sub.GetPerson() != nil || len(got.GetHistory()) > 0 {
			c.n.lost.add("erasure", s.id, 1)
		}
		return
	}
	if sub.GetState() == pdv1.SubjectState_SUBJECT_STATE_ERASED {
		c.n.duplicated.add("erasure without an erase request", s.id, 1)
		return
	}
	if !proto.Equal(sub.GetPerson(), s.person) {
		c.n.lost.add("person: the last acknowledged values", s.id, 1)
	}
	ids := map[string]bool{}
	twice, missing, extra := 0, 0, 0
	for _, e := range got.GetHistory() {
		if ids[e.GetEntryId()] {
			twice++
		}
		ids[e.GetEntryId()] = true
	}
	for id := range s.entries {
		if !ids[id] {
			missing++
		}
	}
	for id := range ids {
		if !s.entries[id] {
			extra++
		}
	}
	c.n.duplicated.add("history entry listed twice", s.id, twice)
	c.n.lost.add("history entry", s.id, missing)
	c.n.duplicated.add("history entry", s.id, extra)
	created, rectified := 0, 0
	for _, ch := range got.GetChanges() {
		switch ch.GetKind() {
		case pdv1.ChangeKind_CHANGE_KIND_CREATED:
			created++
		case pdv1.ChangeKind_CHANGE_KIND_RECTIFIED:
			rectified++
		}
	}
	c.diff("create: change record", s.id, 1, created)
	c.diff("rectification: change record", s.id, s.rectified, rectified)
	c.diff("disclosure record", s.id, s.disclosed, len(got.GetDisclosures()))
}

// diff records a shortfall as lost and a surplus as duplicated; c.mu held.
func (c *campaign) diff(what, id string, want, have int) {
	c.n.lost.add(what, id, want-have)
	c.n.duplicated.add(what, id, have-want)
}

// findings counts findings by kind. Several checks may see the same one,
// so each subject's count of a kind is its largest, not their sum.
type findings struct {
	byKind map[string]int
	seen   map[string]int // kind and subject id → count
}

func newFindings() findings { return findings{byKind: map[string]int{}, seen: map[string]int{}} }

// add records k findings of a kind about the subject id ("" for none).
func (f findings) add(kind, id string, k int) {
	key := kind + "\x00" + id
	if prev := f.seen[key]; k > prev {
		f.byKind[kind] += k - prev
		f.seen[key] = k
	}
}

func (f findings) total() int {
	t := 0
	for _, k := range f.byKind {
		t += k
	}
	return t
}

// toCheck is every subject changed since the last check, and a sample of
// the others; c.mu not held.
func (c *campaign) toCheck(sample int) []*subject {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out, rest []*subject
	for _, id := range slices.Sorted(maps.Keys(c.subjects)) {
		s := c.subjects[id]
		if s.touched {
			s.touched = false
			out = append(out, s)
		} else {
			rest = append(rest, s)
		}
	}
	c.rng.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
	return append(out, rest[:min(sample, len(rest))]...)
}

// campaignPerson is made-up person n, with a valid personnummer unique up
// to n = 13 million.
func campaignPerson(n int) *pdv1.Person {
	return &pdv1.Person{
		IdentityNumber: pnr(1950+n%50, 1+(n/50)%12, 1+(n/600)%28, 100+(n/16800)%800),
		GivenName:      fmt.Sprintf("Provis%d", n),
		FamilyName:     "Kampanjsson",
		Email:          fmt.Sprintf("provis%d@example.test", n),
		Phone:          fmt.Sprintf("+46701%06d", n%1_000_000),
		PostalAddress:  &pdv1.PostalAddress{Lines: []string{fmt.Sprintf("Provgatan %d", n)}, PostalCode: "123 45", Locality: "Provstad"},
	}
}

// pnr builds a personnummer "YYYYMMDD-NNNC" with a correct check digit (as
// the server tests' harness does).
func pnr(year, month, day, serial int) string {
	nine := fmt.Sprintf("%02d%02d%02d%03d", year%100, month, day, serial)
	sum := 0
	for i, ch := range nine {
		d := int(ch - '0')
		if i%2 == 0 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return fmt.Sprintf("%04d%02d%02d-%03d%d", year, month, day, serial, (10-sum%10)%10)
}
