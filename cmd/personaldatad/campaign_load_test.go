package main

// The load and its bookkeeping, shared by the reliability campaign
// (TestCampaign) and the power-cut test (TestPowerCut): the harness that
// runs the daemon and keeps the model; clients that send requests with
// idempotency keys and resend each one, unchanged, until it is
// acknowledged; the model of what the acknowledged requests made of each
// subject; the campaign's recipient that streams and acknowledges
// notifications; and the checks of the service against that model.

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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
	owner int // the client that changes it; -1 for the harness's own
	// person is as the last acknowledged create or rectification returned it.
	person    *pdv1.Person
	entries   map[string]bool // ids of the acknowledged history entries
	rectified int             // acknowledged rectifications
	disclosed int             // acknowledged disclosures to the recipient
	erased    bool            // an erasure was acknowledged
	erasing   bool            // an erasure was sent, not yet acknowledged
	// consents are the acknowledged consents by id: withdrawn or not.
	consents map[string]bool
	// reads counts the reads of the subject answered OK, by RPC name: each
	// must have its event on the subject's audit chain.
	reads map[string]int
	// owed counts the notifications its acknowledged changes owe the
	// recipient: those after its first disclosure.
	owed map[pdv1.NotificationKind]int
	// touched: changed since the service was last checked against it.
	touched bool
	// tainted: a check found it wrong, so the model no longer says what it
	// holds; it is reported once and left out of the load and later checks.
	tainted bool
}

func newSubject(id string, owner int, person *pdv1.Person) *subject {
	return &subject{
		id: id, owner: owner, person: person, entries: map[string]bool{}, consents: map[string]bool{},
		reads: map[string]int{}, owed: map[pdv1.NotificationKind]int{}, touched: true,
	}
}

// tally is the figures of a run. Keys of the maps never hold personal
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
	unreadable   findings                  // subjects whose reading failed with INTERNAL (a data key lost)
	unaudited    findings                  // reads answered OK without their audit event
	broken       findings                  // audit chains that do not verify
	retryDiffers findings                  // resends of acknowledged requests answered otherwise than the first time
	resurrected  findings                  // acknowledged outbox messages queued again
	checkErrors  map[string]int            // checks that could not be made, by call and outcome
	checks       int                       // calls made to check (not load)
	chains       int                       // audit chains verified
	resent       int                       // acknowledged requests resent to check their answer
	crashes      int
	selfExits    int // times the daemon had ended before it was killed
	restarts     []time.Duration
}

// writeRestarts writes the report's line of how long restarts took.
func (n *tally) writeRestarts(b *strings.Builder) {
	if len(n.restarts) > 0 {
		r := slices.Sorted(slices.Values(n.restarts))
		fmt.Fprintf(b, "restart to ready           median %s, max %s (%d restarts)\n", r[len(r)/2].Round(time.Millisecond), r[len(r)-1].Round(time.Millisecond), len(r))
	}
}

func newTally() tally {
	return tally{
		byCode: map[string]map[string]int{}, refused: map[string]int{}, retryRefused: map[string]int{},
		lost: newFindings(), duplicated: newFindings(), checkErrors: map[string]int{}, erasedLeft: newFindings(),
		unreadable: newFindings(), unaudited: newFindings(), broken: newFindings(), retryDiffers: newFindings(),
		resurrected: newFindings(),
	}
}

// harness is what a run against the daemon shares: the daemon and its
// principals, the gate the clients wait at while it is down, the barrier
// that parks them for the checks, the model of what the acknowledged
// requests made, and the figures. The campaign and the power-cut test
// each add what is theirs.
type harness struct {
	t        *testing.T
	d        *daemon
	conn     *grpc.ClientConn
	base     string
	operator string // tokens
	staff    string
	domreg   string
	up       *gate
	load     *barrier
	rng      *rand.Rand // the controller's own choices
	values   atomic.Int64
	mix      mix // what the workers send

	mu       sync.Mutex
	subjects map[string]*subject
	creating int // create requests not yet answered
	n        tally
	// epoch counts the crashes so far: each acknowledgement in acked is
	// stamped with it, so that a check after a crash can tell what was
	// acknowledged before it.
	epoch int
	acked []*ackedRequest
	// requests are the rights requests acknowledged, by id, and outbox
	// what the mailer saw of the messages to requesters (power-cut test).
	requests map[string]*rightsRequest
	outbox   outboxLog
}

// startHarness starts the daemon from bin with its data in dataDir (its
// log in dir) and makes the principals: support staff, and the
// domain-registration integration that discloses to the recipient and reads
// its queue. prefix names the principals; args are more flags of the
// daemon.
func startHarness(t *testing.T, dir, bin, dataDir, prefix string, seed uint64, args ...string) *harness {
	logFile, err := os.Create(filepath.Join(dir, "personaldatad.log"))
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{bin: bin, dataDir: dataDir, grpcAddr: freeAddr(t), httpAddr: freeAddr(t), log: logFile, args: args}
	t.Cleanup(func() { d.kill9(); logFile.Close() })
	h := &harness{
		t: t, d: d, base: "http://" + d.httpAddr, up: newGate(), rng: rand.New(rand.NewPCG(seed, 0)),
		subjects: map[string]*subject{}, n: newTally(), requests: map[string]*rightsRequest{}, outbox: newOutboxLog(),
	}
	if _, err := d.start(); err != nil {
		t.Fatal(err)
	}
	h.up.open()
	token, err := os.ReadFile(filepath.Join(d.dataDir, "operator.token"))
	if err != nil {
		t.Fatalf("operator token: %v", err)
	}
	h.operator = strings.TrimSpace(string(token))
	if h.conn, err = dialDaemon(d.grpcAddr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.conn.Close() })
	h.staff = h.principal(context.Background(), prefix+"-staff", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, []pdv1.Purpose{
		pdv1.Purpose_PURPOSE_INVOICING, pdv1.Purpose_PURPOSE_SERVICE_DELIVERY, pdv1.Purpose_PURPOSE_ACCOUNT_COMMUNICATION,
		pdv1.Purpose_PURPOSE_SUPPORT, pdv1.Purpose_PURPOSE_DOMAIN_REGISTRATION,
	})
	h.domreg = h.principal(context.Background(), prefix+"-domreg", pdv1.PrincipalKind_PRINCIPAL_KIND_DOMAIN_REGISTRATION, nil)
	return h
}

// principal has the operator create a principal acting for the company and
// returns its token.
func (h *harness) principal(ctx context.Context, id string, kind pdv1.PrincipalKind, purposes []pdv1.Purpose) string {
	var token string
	req := &pdv1.CreatePrincipalRequest{IdempotencyKey: "create-" + id, Principal: &pdv1.Principal{
		PrincipalId: id, Kind: kind, TenantIds: []string{"company"}, Purposes: purposes,
	}}
	if !send(ctx, h, "principal", client{conn: h.conn, token: h.operator}, principalRPC, req, func(r *pdv1.CreatePrincipalResponse) { token = r.GetToken() }) {
		h.t.Fatalf("CreatePrincipal %s refused", id)
	}
	return token
}

// crash kills the daemon with SIGKILL while the load runs.
func (h *harness) crash() {
	h.up.shut()
	alive := h.d.kill9()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n.crashes++
	h.epoch++
	if !alive {
		h.n.selfExits++
		h.t.Errorf("personaldatad had ended by itself before kill -9")
	}
}

// restart starts the daemon again on the same data.
func (h *harness) restart() {
	took, err := h.d.start()
	if err != nil {
		h.t.Fatalf("restart after kill -9: %v", err)
	}
	h.mu.Lock()
	h.n.restarts = append(h.n.restarts, took)
	h.mu.Unlock()
	h.up.open()
}

// sent is the number of attempts so far.
func (h *harness) sent() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n.sent
}

// send sends one request until it is acknowledged, resending it unchanged
// (same idempotency key) after every interruption, once the daemon is up
// again. It returns false when the service refused it outright (counted),
// or when the run ended. onOK runs under h.mu with the response.
func send[R proto.Message](ctx context.Context, h *harness, what string, via client, method string, req proto.Message, onOK func(R)) bool {
	interrupted := false
	for {
		if h.up.wait(ctx) != nil {
			return false
		}
		var zero R
		resp := zero.ProtoReflect().Type().New().Interface().(R)
		actx, cancel := context.WithTimeout(ctx, requestTimeout)
		err := via.call(actx, method, req, resp)
		cancel()
		if err != nil && ctx.Err() != nil {
			return false // the run is over, not the daemon
		}
		o := outcome(err)
		h.mu.Lock()
		h.count(via.transport(), o)
		if err == nil {
			h.n.acked++
			if interrupted {
				h.n.ackedOnRetry++
			}
			if onOK != nil {
				onOK(resp)
			}
			h.mu.Unlock()
			return true
		}
		if !transient(o) {
			if interrupted {
				h.n.retryRefused[what+" "+o]++
			} else {
				h.n.refused[what+" "+o]++
			}
			h.mu.Unlock()
			return false
		}
		h.mu.Unlock()
		interrupted = true
		time.Sleep(20 * time.Millisecond)
	}
}

// count records one attempt; h.mu held.
func (h *harness) count(transport, o string) {
	h.n.sent++
	if h.n.byCode[o] == nil {
		h.n.byCode[o] = map[string]int{}
	}
	h.n.byCode[o][transport]++
}

// ackedRequest is an acknowledged request kept to be resent later: its
// answer then must be the first one (answerOf), and nothing applied twice.
type ackedRequest struct {
	what   string
	via    client
	method string
	req    proto.Message
	first  proto.Message // the first answer
	s      *subject
	epoch  int // crashes before it was acknowledged
}

// remember keeps an acknowledged request to resend; h.mu held.
func (h *harness) remember(what string, via client, method string, req, resp proto.Message, s *subject) {
	h.acked = append(h.acked, &ackedRequest{what: what, via: via, method: method, req: req, first: resp, s: s, epoch: h.epoch})
}

// answerOf is what must not change in the answer to a resent request: the
// ids and the version it answered, never personal values.
func answerOf(method string, resp proto.Message) string {
	switch r := resp.(type) {
	case *pdv1.CreateSubjectResponse:
		return "subject " + r.GetSubject().GetSubjectId()
	case *pdv1.RectifySubjectResponse:
		return fmt.Sprintf("version %d", r.GetChange().GetVersion())
	case *pdv1.AddHistoryEntryResponse:
		return "entry " + r.GetEntry().GetEntryId()
	case *pdv1.EraseSubjectResponse:
		return "state " + r.GetSubject().GetState().String()
	case *pdv1.DiscloseResponse:
		return "disclosure " + r.GetDisclosure().GetDisclosureId()
	case *pdv1.RecordConsentResponse:
		return "consent " + r.GetConsent().GetConsentId()
	case *pdv1.WithdrawConsentResponse:
		return fmt.Sprintf("consent %s withdrawn %v", r.GetConsent().GetConsentId(), r.GetConsent().GetWithdrawTime() != nil)
	}
	return method
}

// rightsRequest is what the acknowledged steps made of a rights request.
type rightsRequest struct {
	id       string
	s        *subject
	state    pdv1.RightsRequestState
	steps    int  // in its history
	codeSent bool // a verification code was sent
	waited   int  // turns spent waiting for the mailer to see the code
	tainted  bool // a check found it wrong: left alone since
}

// outboxLog is what the mailer saw of the messages to requesters.
type outboxLog struct {
	owed  map[string]string // message id → request id: queued by an acknowledged step
	acked map[string]bool   // acknowledgement answered OK
	// codes holds the verification code each request's last code message
	// carried, for its requester's confirmation; never logged.
	codes    map[string]string
	listings int // listings made by the mailer
	listed   int // messages listed, counted at each listing
	again    int // listed again during the load after an acknowledgement (see mailerLoop)
}

func newOutboxLog() outboxLog {
	return outboxLog{owed: map[string]string{}, acked: map[string]bool{}, codes: map[string]string{}}
}

// mix is what the workers send: a create with probability create (and
// whenever a worker has fewer than three subjects), else the first of ops
// whose upTo is above the draw, on one of its subjects.
type mix struct {
	create float64
	ops    []workerOp
}

type workerOp struct {
	upTo float64
	run  func(w *worker, ctx context.Context, key string, s *subject)
}

// campaignMix is the campaign's load.
var campaignMix = mix{create: 0.1, ops: []workerOp{
	{0.4, (*worker).rectify},
	{0.8, (*worker).addHistory},
	{0.93, (*worker).disclose},
	{1, (*worker).erase},
}}

// worker is one client: support staff (and the domain-registration
// integration, for disclosures) over one transport, changing only its own
// subjects, one request at a time, so the model of each subject is exact.
type worker struct {
	h     *harness
	n     int
	staff client
	dom   client
	rng   *rand.Rand
	mine  []*subject // its subjects not yet erased
	steps int
	// req is its rights request in progress, if any (power-cut test).
	req *rightsRequest
}

func (h *harness) worker(i int, seed uint64) *worker {
	w := &worker{
		h: h, n: i, rng: rand.New(rand.NewPCG(seed, uint64(i)+1)),
		staff: client{rest: i%2 == 1, conn: h.conn, base: h.base, token: h.staff},
		dom:   client{rest: i%2 == 1, conn: h.conn, base: h.base, token: h.domreg},
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range slices.Sorted(maps.Keys(h.subjects)) {
		if s := h.subjects[id]; s.owner == i && !s.erased {
			w.mine = append(w.mine, s)
		}
	}
	return w
}

func (w *worker) run(ctx context.Context) {
	for {
		w.h.load.checkpoint()
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
	// The parked worker may read what the checks marked (the barrier orders it).
	w.mine = slices.DeleteFunc(w.mine, func(s *subject) bool { return s.tainted })
	p := w.rng.Float64()
	if len(w.mine) < 3 || p < w.h.mix.create {
		w.create(ctx, key)
		return
	}
	s := w.mine[w.rng.IntN(len(w.mine))]
	for _, op := range w.h.mix.ops {
		if p < op.upTo {
			op.run(w, ctx, key, s)
			return
		}
	}
}

func (w *worker) create(ctx context.Context, key string) {
	w.h.createSubject(ctx, w.staff, "create-"+key, int(w.h.values.Add(1)), w.n, func(s *subject) {
		w.mine = append(w.mine, s)
	})
}

// createSubject creates a made-up person n for owner and records it.
func (h *harness) createSubject(ctx context.Context, via client, key string, n, owner int, made func(*subject)) bool {
	req := &pdv1.CreateSubjectRequest{
		IdempotencyKey: key, ControllerId: "company", Person: campaignPerson(n),
		Channel: pdv1.Channel_CHANNEL_PORTAL, Reference: fmt.Sprintf("signup-%d", n),
	}
	h.mu.Lock()
	h.creating++
	h.mu.Unlock()
	ok := send(ctx, h, "create", via, createRPC, req, func(r *pdv1.CreateSubjectResponse) {
		got := r.GetSubject()
		if h.subjects[got.GetSubjectId()] != nil {
			h.n.duplicated.add("create: a second create answered with a known subject", got.GetSubjectId(), 1)
			return
		}
		s := newSubject(got.GetSubjectId(), owner, got.GetPerson())
		h.subjects[s.id] = s
		h.remember("create", via, createRPC, req, r, s)
		if made != nil {
			made(s)
		}
	})
	h.mu.Lock()
	h.creating--
	h.mu.Unlock()
	return ok
}

// rectify changes the phone or the e-mail address, from the version read
// just before.
func (w *worker) rectify(ctx context.Context, key string, s *subject) {
	var version int64
	if !send(ctx, w.h, "read", w.staff, forPurposeRPC, &pdv1.GetSubjectForPurposeRequest{SubjectId: s.id, Purpose: pdv1.Purpose_PURPOSE_SUPPORT},
		func(r *pdv1.GetSubjectForPurposeResponse) { version = r.GetVersion(); s.reads[forPurposeRPC]++ }) {
		return
	}
	n := w.h.values.Add(1)
	person, path := &pdv1.Person{Phone: fmt.Sprintf("+46702%06d", n%1_000_000)}, "phone"
	if n%2 == 0 {
		person, path = &pdv1.Person{Email: fmt.Sprintf("ny%d@example.test", n)}, "email"
	}
	req := &pdv1.RectifySubjectRequest{
		IdempotencyKey: "rectify-" + key, SubjectId: s.id, ExpectedVersion: version,
		Person: person, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{path}},
		Channel: pdv1.Channel_CHANNEL_EMAIL, Reference: fmt.Sprintf("ticket-%d", n), PerformedBy: "support-agent-7",
	}
	send(ctx, w.h, "rectify", w.staff, rectifyRPC, req, func(r *pdv1.RectifySubjectResponse) {
		s.person = r.GetSubject().GetPerson()
		s.rectified++
		if s.disclosed > 0 {
			s.owed[pdv1.NotificationKind_NOTIFICATION_KIND_RECTIFIED]++
		}
		s.touched = true
		w.h.remember("rectify", w.staff, rectifyRPC, req, r, s)
	})
}

func (w *worker) addHistory(ctx context.Context, key string, s *subject) {
	w.h.addHistory(ctx, w.staff, "history-"+key, s, int(w.h.values.Add(1)))
}

// addHistory adds an e-mail conversation to s and records its entry.
func (h *harness) addHistory(ctx context.Context, via client, key string, s *subject, n int) bool {
	req := &pdv1.AddHistoryEntryRequest{IdempotencyKey: key, SubjectId: s.id, Entry: &pdv1.HistoryEntry{
		Kind:      pdv1.HistoryKind_HISTORY_KIND_EMAIL_CONVERSATION,
		Title:     fmt.Sprintf("Order %d", n),
		Body:      fmt.Sprintf("Hej!\nJag vill ändra order %d.\n", n),
		OccurTime: timestamppb.New(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Minute)),
		Reference: fmt.Sprintf("order-%d", n),
	}}
	return send(ctx, h, "history", via, historyRPC, req, func(r *pdv1.AddHistoryEntryResponse) {
		id := r.GetEntry().GetEntryId()
		if s.entries[id] {
			h.n.lost.add("history: two requests answered with one entry", s.id+" "+id, 1)
		}
		s.entries[id] = true
		s.touched = true
		h.remember("history", via, historyRPC, req, r, s)
	})
}

// disclose hands the subject's contact data to the recipient, as the
// domain-registration integration does for an order.
func (w *worker) disclose(ctx context.Context, key string, s *subject) {
	n := w.h.values.Add(1)
	req := &pdv1.DiscloseRequest{
		IdempotencyKey: "disclose-" + key, SubjectId: s.id, Recipient: recipient,
		Purpose: pdv1.Purpose_PURPOSE_DOMAIN_REGISTRATION, Categories: []pdv1.DataCategory{pdv1.DataCategory_DATA_CATEGORY_CONTACT},
		Basis: pdv1.DisclosureBasis_DISCLOSURE_BASIS_CONTRACT, Reference: fmt.Sprintf("order-%d", n),
	}
	send(ctx, w.h, "disclose", w.dom, discloseRPC, req, func(r *pdv1.DiscloseResponse) {
		s.disclosed++
		s.touched = true
		w.h.remember("disclose", w.dom, discloseRPC, req, r, s)
	})
}

func (w *worker) erase(ctx context.Context, key string, s *subject) {
	if w.h.erase(ctx, w.staff, "erase-"+key, s) {
		w.mine = slices.DeleteFunc(w.mine, func(o *subject) bool { return o == s })
	}
}

// erase erases s and records it once acknowledged.
func (h *harness) erase(ctx context.Context, via client, key string, s *subject) bool {
	req := &pdv1.EraseSubjectRequest{
		IdempotencyKey: key, SubjectId: s.id, Ground: pdv1.ErasureGround_ERASURE_GROUND_NO_LEGITIMATE_REASON,
		Channel: pdv1.Channel_CHANNEL_EMAIL, Reference: "ticket-erase", PerformedBy: "support-agent-7",
	}
	h.mu.Lock()
	s.erasing = true
	h.mu.Unlock()
	return send(ctx, h, "erase", via, eraseRPC, req, func(r *pdv1.EraseSubjectResponse) {
		if r.GetSubject().GetState() != pdv1.SubjectState_SUBJECT_STATE_ERASED {
			h.n.lost.add("erase: acknowledged without a tombstone", s.id, 1)
		}
		s.erased = true
		if s.disclosed > 0 {
			s.owed[pdv1.NotificationKind_NOTIFICATION_KIND_ERASED]++
		}
		s.touched = true
		h.remember("erase", via, eraseRPC, req, r, s)
	})
}

// barrier parks the workers between requests while the harness checks the
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
// API (AccessSubject as support staff): what the acknowledged requests
// made, and an audit event for every read answered; it verifies their audit
// chains and the given other chains as the operator. No request may be in
// flight. Four checkers share the subjects, then the chains.
func (h *harness) verify(ctx context.Context, subs []*subject, chains ...string) {
	staff := client{conn: h.conn, token: h.staff}
	op := client{conn: h.conn, token: h.operator}
	for _, s := range subs {
		chains = append(chains, "subjects/"+s.id)
	}
	parallel(subs, func(s *subject) { h.verifySubject(ctx, staff, op, s) })
	parallel(chains, func(chain string) {
		var v pdv1.VerifyAuditChainResponse
		if !h.checkCall(ctx, op, verifyChainRPC, &pdv1.VerifyAuditChainRequest{Chain: chain}, &v) {
			return
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		h.n.chains++
		if !v.GetIntact() {
			h.n.broken.add("audit chain", chain, 1)
			h.t.Logf("audit chain %s broken at event %d of %d: %s", chain, v.GetFirstBrokenSeq(), v.GetEvents(), v.GetReason())
		}
	})
}

// checkers is how many calls the checks make at once.
const checkers = 4

// parallel calls f on every item, checkers at a time.
func parallel[T any](items []T, f func(T)) {
	work := make(chan T)
	var wg sync.WaitGroup
	for range checkers {
		wg.Go(func() {
			for it := range work {
				f(it)
			}
		})
	}
	for _, it := range items {
		work <- it
	}
	close(work)
	wg.Wait()
}

// verifySubject reads s (a read that counts too), compares it with the
// model, and looks for the audit events of its reads.
func (h *harness) verifySubject(ctx context.Context, staff, op client, s *subject) {
	var got pdv1.AccessSubjectResponse
	err := h.checkCallErr(ctx, staff, accessRPC, &pdv1.AccessSubjectRequest{SubjectId: s.id}, &got)
	h.mu.Lock()
	switch code := status.Code(err); {
	case err == nil:
		s.reads[accessRPC]++
		h.compare(s, &got)
	case code == codes.Internal:
		h.n.unreadable.add("AccessSubject answers INTERNAL", s.id, 1)
	case code == codes.NotFound:
		h.n.lost.add("subject: not found", s.id, 1)
	}
	h.mu.Unlock()
	h.checkAuditReads(ctx, op, s)
}

// checkAuditReads lists the audit chain of s as the operator and counts
// the reads answered OK that have no event of their RPC with outcome OK.
func (h *harness) checkAuditReads(ctx context.Context, op client, s *subject) {
	h.mu.Lock()
	want := maps.Clone(s.reads)
	h.mu.Unlock()
	if len(want) == 0 {
		return
	}
	have := map[string]int{}
	for token := ""; ; {
		var res pdv1.ListAuditEventsResponse
		if !h.checkCall(ctx, op, listAuditRPC, &pdv1.ListAuditEventsRequest{SubjectId: s.id, PageSize: 100, PageToken: token}, &res) {
			return
		}
		for _, ev := range res.GetEvents() {
			if ev.GetOutcome() == codes.OK.String() {
				have[strings.TrimPrefix(ev.GetRpc(), "/")]++
			}
		}
		if token = res.GetNextPageToken(); token == "" {
			break
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for rpc, k := range want {
		if have[rpc] < k {
			h.n.unaudited.add("read without its audit event: "+rpc[strings.LastIndexByte(rpc, '/')+1:], s.id, k-have[rpc])
		}
	}
}

// checkCall makes one call of a check; a failure is counted and reported by
// RPC and code.
func (h *harness) checkCall(ctx context.Context, via client, method string, req, resp proto.Message) bool {
	return h.checkCallErr(ctx, via, method, req, resp) == nil
}

func (h *harness) checkCallErr(ctx context.Context, via client, method string, req, resp proto.Message) error {
	actx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	err := via.call(actx, method, req, resp)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n.checks++
	if err != nil {
		h.n.checkErrors[method+" "+outcome(err)]++
	}
	return err
}

// compare counts what the service lost of s, and what it applied twice;
// h.mu held.
func (h *harness) compare(s *subject, got *pdv1.AccessSubjectResponse) {
	sub := got.GetSubject()
	if s.erased {
		if sub.GetState() != pdv1.SubjectState_SUBJECT_STATE_ERASED || sub.GetPerson() != nil || len(got.GetHistory()) > 0 {
			h.n.lost.add("erasure", s.id, 1)
		}
		return
	}
	if sub.GetState() == pdv1.SubjectState_SUBJECT_STATE_ERASED {
		h.n.duplicated.add("erasure without an erase request", s.id, 1)
		return
	}
	if !proto.Equal(sub.GetPerson(), s.person) {
		h.n.lost.add("person: the last acknowledged values", s.id, 1)
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
	h.n.duplicated.add("history entry listed twice", s.id, twice)
	h.n.lost.add("history entry", s.id, missing)
	h.n.duplicated.add("history entry", s.id, extra)
	created, rectified := 0, 0
	for _, ch := range got.GetChanges() {
		switch ch.GetKind() {
		case pdv1.ChangeKind_CHANGE_KIND_CREATED:
			created++
		case pdv1.ChangeKind_CHANGE_KIND_RECTIFIED:
			rectified++
		}
	}
	h.diff("create: change record", s.id, 1, created)
	h.diff("rectification: change record", s.id, s.rectified, rectified)
	h.diff("disclosure record", s.id, s.disclosed, len(got.GetDisclosures()))
	consents := map[string]*pdv1.Consent{}
	for _, c := range got.GetConsents() {
		consents[c.GetConsentId()] = c
	}
	lost, withdrawals, unasked := 0, 0, 0
	for id, withdrawn := range s.consents {
		c := consents[id]
		switch {
		case c == nil:
			lost++
		case withdrawn && c.GetWithdrawTime() == nil:
			withdrawals++
		case !withdrawn && c.GetWithdrawTime() != nil:
			unasked++
		}
		delete(consents, id)
	}
	h.n.lost.add("consent", s.id, lost)
	h.n.lost.add("consent withdrawal", s.id, withdrawals)
	h.n.duplicated.add("consent withdrawn without a request", s.id, unasked)
	h.n.duplicated.add("consent", s.id, len(consents))
}

// diff records a shortfall as lost and a surplus as duplicated; h.mu held.
func (h *harness) diff(what, id string, want, have int) {
	h.n.lost.add(what, id, want-have)
	h.n.duplicated.add(what, id, have-want)
}

// findings counts findings by kind. Several checks may see the same one,
// so each subject's count of a kind is its largest, not their sum.
type findings struct {
	byKind map[string]int
	seen   map[string]int // kind and subject id → count
}

func newFindings() findings { return findings{byKind: map[string]int{}, seen: map[string]int{}} }

// add records k findings of a kind about the subject id ("" for none; a
// subject's id may be followed by a space and more).
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

// ids are the ids findings were recorded about (a subject's, a chain's, a
// request's or a message's).
func (f findings) ids() []string {
	var out []string
	for key := range f.seen {
		_, id, _ := strings.Cut(key, "\x00")
		if id, _, _ = strings.Cut(id, " "); id != "" {
			out = append(out, id)
		}
	}
	return out
}

// taint marks every subject and rights request a check found wrong, so that
// the load leaves them and later checks skip them: what was found is
// counted once, and what the model says of them is no longer known. No
// request may be in flight.
func (h *harness) taint() {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := &h.n
	for _, f := range []findings{n.lost, n.duplicated, n.erasedLeft, n.unreadable, n.unaudited, n.broken, n.retryDiffers, n.resurrected} {
		for _, id := range f.ids() {
			id = strings.TrimPrefix(id, "subjects/")
			if s := h.subjects[id]; s != nil {
				s.tainted = true
			}
			if r := h.requests[id]; r != nil {
				r.tainted = true
			}
			if m, ok := h.outbox.owed[id]; ok {
				if r := h.requests[m]; r != nil {
					r.tainted = true
				}
			}
		}
	}
}

// untainted is every subject a check did not find wrong, in id order.
func (h *harness) untainted() []*subject {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []*subject
	for _, id := range slices.Sorted(maps.Keys(h.subjects)) {
		if s := h.subjects[id]; !s.tainted {
			s.touched = false
			out = append(out, s)
		}
	}
	return out
}

// toCheck is every subject changed since the last check, and a sample of
// the others; h.mu not held.
func (h *harness) toCheck(sample int) []*subject {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out, rest []*subject
	for _, id := range slices.Sorted(maps.Keys(h.subjects)) {
		s := h.subjects[id]
		switch {
		case s.tainted:
		case s.touched:
			s.touched = false
			out = append(out, s)
		default:
			rest = append(rest, s)
		}
	}
	h.rng.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
	return append(out, rest[:min(sample, len(rest))]...)
}

// inspectRaw checks what the stopped daemon left in its store (raw, read
// with readRaw) against the model: every subject acknowledged is there with
// its data key and history, no erased subject's data key, history or
// lookup key is left, no create made two subjects; every rights request
// acknowledged is there with its steps, every message its steps queued is
// in the outbox or marked sent, and no acknowledged message is back.
func (h *harness) inspectRaw(raw *rawStore) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.subjects {
		_, hasDoc := raw.subjects[s.id]
		_, hasKey := raw.dataKeys[s.id]
		switch {
		case s.tainted:
		case !hasDoc:
			h.n.lost.add("subject document", s.id, 1)
		case s.erasing && !s.erased:
			// Cut while erasing: the data key and history may be gone or not.
		case s.erased:
			if hasKey {
				h.n.erasedLeft.add("data key", s.id, 1)
			}
			if raw.history[s.id] > 0 {
				h.n.erasedLeft.add("history documents", s.id, raw.history[s.id])
			}
			if raw.lookups[s.id] > 0 {
				h.n.erasedLeft.add("lookup keys", s.id, raw.lookups[s.id])
			}
		case !hasKey:
			h.n.lost.add("data key", s.id, 1)
		case raw.history[s.id] < len(s.entries):
			h.n.lost.add("history document", s.id, len(s.entries)-raw.history[s.id])
		}
	}
	h.n.duplicated.add("subject documents beyond one per create request", "", len(raw.subjects)-len(h.subjects)-h.creating)
	for _, r := range h.requests {
		steps, ok := raw.requests[r.id]
		switch {
		case r.tainted:
		case !ok:
			h.n.lost.add("rights request", r.id, 1)
		case steps < r.steps:
			h.n.lost.add("rights request step", r.id, r.steps-steps)
		}
	}
	for id, req := range h.outbox.owed {
		if r := h.requests[req]; (r == nil || !r.tainted) && !raw.outbox[id] && !raw.outboxSent[id] {
			h.n.lost.add("outbox message, neither queued nor marked sent", id, 1)
		}
	}
	for id := range h.outbox.acked {
		if raw.outbox[id] {
			h.n.resurrected.add("outbox message queued again after its acknowledgement", id, 1)
		}
	}
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
