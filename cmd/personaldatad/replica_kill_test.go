package main

// A replica killed with SIGKILL under load loses nothing it acknowledged:
// the personaldatad binary runs as a second replica on the store of a
// server that the test runs itself (replica A, which owns the embedded
// store, or shares the store that storetest names), takes creates and
// rectifications from gRPC and REST clients at once, and is killed in the
// middle of them. A then serves every acknowledged change as it was
// answered, finishes the interrupted ones when they are resent with their
// idempotency keys, and finds every audit chain they touched intact, with
// an event for every acknowledged call.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/example/personaldata/cmd/personaldatad/server"
	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/storetest"
)

// TestMain runs the tests against the store that storetest.Env names (only
// the replica test uses it; the campaign runs the daemon on its own store).
func TestMain(m *testing.M) { storetest.Main(m) }

const listAuditRPC = "personaldata.v1.AuditService/ListAuditEvents"

// owner is replica A: a server run in the test, whose store the daemon
// reaches by URI.
type owner struct {
	srv      *server.Server
	conn     *grpc.ClientConn
	database string
	keyFile  string
	operator string
}

// startOwner runs replica A until the test ends.
func startOwner(t *testing.T) *owner {
	t.Helper()
	dir := t.TempDir()
	o := &owner{database: fmt.Sprintf("pdkill_%d", time.Now().UnixNano()), keyFile: filepath.Join(dir, "keyring.json")}
	srv, err := server.New(context.Background(), server.Config{
		GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		Store:             store.Config{URI: storetest.URI(), DataDir: filepath.Join(dir, "data"), Database: o.database},
		OperatorTokenFile: filepath.Join(dir, "operator.token"),
		Keys:              server.KeysConfig{KeyFile: o.keyFile, CreateKeyFile: true},
	}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	o.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("replica A: Serve: %v", err)
		}
	})
	token, err := os.ReadFile(filepath.Join(dir, "operator.token"))
	if err != nil {
		t.Fatalf("operator token: %v", err)
	}
	o.operator = strings.TrimSpace(string(token))
	if o.conn, err = grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.conn.Close() }) // before the server stops: it waits for open connections
	if uri := storetest.URI(); uri != "" {
		// A store shared by the tests keeps the databases: drop them.
		t.Cleanup(func() {
			cl, err := mongo.Connect(options.Client().ApplyURI(uri))
			if err != nil {
				return
			}
			defer cl.Disconnect(context.Background())
			for _, db := range []string{o.database, store.AuditDatabase(o.database), store.KeysDatabase(o.database)} {
				_ = cl.Database(db).Drop(context.Background())
			}
		})
	}
	return o
}

// killedSubject is what the acknowledged calls made of one subject.
type killedSubject struct {
	id         string
	person     *pdv1.Person // as the last acknowledged call answered
	version    int64
	rectified  int                         // acknowledged rectifications
	unanswered *pdv1.RectifySubjectRequest // sent, cut by the kill
}

// killWorker creates subjects and rectifies them, one call at a time, over
// one transport, until a call fails; it alone writes its subjects.
type killWorker struct {
	n       int
	via     client
	values  *atomic.Int64
	acked   *atomic.Int64
	mine    []*killedSubject
	cut     *pdv1.CreateSubjectRequest // a create cut by the kill
	lastErr error
}

func (w *killWorker) run(ctx context.Context) {
	for step := 0; ctx.Err() == nil; step++ {
		if len(w.mine) < 2 || step%3 == 0 {
			if !w.create(ctx, step) {
				return
			}
		} else if !w.rectify(ctx, step, w.mine[step%len(w.mine)]) {
			return
		}
		w.acked.Add(1)
	}
}

func (w *killWorker) create(ctx context.Context, step int) bool {
	n := int(w.values.Add(1))
	req := &pdv1.CreateSubjectRequest{
		IdempotencyKey: fmt.Sprintf("kill-create-w%d-%d", w.n, step), ControllerId: "company", Person: campaignPerson(n),
		Channel: pdv1.Channel_CHANNEL_PORTAL, Reference: fmt.Sprintf("signup-%d", n),
	}
	var res pdv1.CreateSubjectResponse
	if w.lastErr = w.via.call(ctx, createRPC, req, &res); w.lastErr != nil {
		w.cut = req
		return false
	}
	s := res.GetSubject()
	w.mine = append(w.mine, &killedSubject{id: s.GetSubjectId(), person: s.GetPerson(), version: s.GetVersion()})
	return true
}

func (w *killWorker) rectify(ctx context.Context, step int, s *killedSubject) bool {
	n := w.values.Add(1)
	person, path := &pdv1.Person{Phone: fmt.Sprintf("+46702%06d", n%1_000_000)}, "phone"
	if n%2 == 0 {
		person, path = &pdv1.Person{Email: fmt.Sprintf("ny%d@example.test", n)}, "email"
	}
	req := &pdv1.RectifySubjectRequest{
		IdempotencyKey: fmt.Sprintf("kill-rectify-w%d-%d", w.n, step), SubjectId: s.id, ExpectedVersion: s.version,
		Person: person, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{path}},
		Channel: pdv1.Channel_CHANNEL_EMAIL, Reference: fmt.Sprintf("ticket-%d", n), PerformedBy: "support-agent-7",
	}
	var res pdv1.RectifySubjectResponse
	if w.lastErr = w.via.call(ctx, rectifyRPC, req, &res); w.lastErr != nil {
		s.unanswered = req
		return false
	}
	if got := res.GetSubject().GetVersion(); got != s.version+1 {
		w.lastErr = fmt.Errorf("rectification answered with version %d after %d", got, s.version)
		return false
	}
	s.person, s.version = res.GetSubject().GetPerson(), res.GetSubject().GetVersion()
	s.rectified++
	return true
}

// TestReplicaKill: see the top of the file.
func TestReplicaKill(t *testing.T) {
	dir := t.TempDir()
	bin := buildDaemon(t, dir)
	a := startOwner(t)
	logFile, err := os.Create(filepath.Join(dir, "personaldatad.log"))
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{
		bin: bin, dataDir: filepath.Join(dir, "unused"), grpcAddr: freeAddr(t), httpAddr: freeAddr(t), log: logFile,
		// A's store and A's master keys: with -mongo-uri the daemon keeps
		// no data of its own and generates no keys.
		args: []string{"-mongo-uri", a.srv.StoreURI(), "-database", a.database, "-key-file", a.keyFile},
	}
	t.Cleanup(func() { d.kill9(); logFile.Close() })
	if _, err := d.start(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	opA := client{conn: a.conn, token: a.operator}
	var made pdv1.CreatePrincipalResponse
	if err := opA.call(ctx, principalRPC, &pdv1.CreatePrincipalRequest{IdempotencyKey: "create-kill-staff", Principal: &pdv1.Principal{
		PrincipalId: "kill-staff", Kind: pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF,
		TenantIds: []string{"company"}, Purposes: []pdv1.Purpose{pdv1.Purpose_PURPOSE_SUPPORT},
	}}, &made); err != nil {
		t.Fatalf("CreatePrincipal on A: %v", err)
	}
	staffA := client{conn: a.conn, token: made.GetToken()}
	conn, err := dialDaemon(d.grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	// The load: four clients, two over gRPC and two over REST.
	var values, acked atomic.Int64
	workers := make([]*killWorker, 4)
	var wg sync.WaitGroup
	loadCtx, stopLoad := context.WithTimeout(ctx, time.Minute)
	defer stopLoad()
	for i := range workers {
		w := &killWorker{n: i, values: &values, acked: &acked,
			via: client{rest: i%2 == 1, conn: conn, base: "http://" + d.httpAddr, token: made.GetToken()}}
		workers[i] = w
		wg.Add(1)
		go func() { defer wg.Done(); w.run(loadCtx) }()
	}
	// Kill it once the load has run a while and every client has been
	// answered a few times; the clients are never paused, so calls are in
	// flight.
	began := time.Now()
	for time.Since(began) < 1500*time.Millisecond || acked.Load() < 40 {
		if loadCtx.Err() != nil {
			t.Fatalf("the load made %d acknowledged calls in a minute", acked.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !d.kill9() {
		t.Fatalf("personaldatad had ended by itself before kill -9; its log: %s", readLog(logFile.Name()))
	}
	wg.Wait()

	// Every client stopped at a call that the kill cut, not at a refusal.
	var subjects []*killedSubject
	var cutCreates []*pdv1.CreateSubjectRequest
	for _, w := range workers {
		if o := outcome(w.lastErr); !transient(o) {
			t.Errorf("client %d (%s) stopped on %s: %v", w.n, w.via.transport(), o, w.lastErr)
		}
		subjects = append(subjects, w.mine...)
		if w.cut != nil {
			cutCreates = append(cutCreates, w.cut)
		}
	}
	load := time.Since(began)

	// Through A: every acknowledged change, as it was answered; an
	// interrupted rectification applied or not, never half.
	cutRectifies, cutApplied := 0, 0
	for _, s := range subjects {
		var got pdv1.AccessSubjectResponse
		if err := staffA.call(ctx, accessRPC, &pdv1.AccessSubjectRequest{SubjectId: s.id}, &got); err != nil {
			t.Errorf("AccessSubject on A of an acknowledged subject: %v", err)
			continue
		}
		stored := got.GetSubject()
		asAcked := stored.GetVersion() == s.version && proto.Equal(stored.GetPerson(), s.person)
		applied := s.unanswered != nil && stored.GetVersion() == s.version+1 && proto.Equal(stored.GetPerson(), withRectification(s.person, s.unanswered))
		if !asAcked && !applied {
			t.Errorf("subject %s: stored version %d, want the acknowledged %d (a rectification was cut: %v); person as acknowledged: %v",
				s.id, stored.GetVersion(), s.version, s.unanswered != nil, proto.Equal(stored.GetPerson(), s.person))
		}
		// Resent to A with its idempotency key, the cut rectification applies once.
		if s.unanswered != nil {
			cutRectifies++
			if applied {
				cutApplied++
			}
			var res pdv1.RectifySubjectResponse
			if err := staffA.call(ctx, rectifyRPC, s.unanswered, &res); err != nil {
				t.Errorf("the cut rectification, resent to A: %v", err)
			} else if res.GetSubject().GetVersion() != s.version+1 || !proto.Equal(res.GetSubject().GetPerson(), withRectification(s.person, s.unanswered)) {
				t.Errorf("the cut rectification, resent to A: version %d after %d, or its value not applied", res.GetSubject().GetVersion(), s.version)
			} else {
				s.person, s.version = res.GetSubject().GetPerson(), res.GetSubject().GetVersion()
			}
		}
	}
	// Resent to A, a cut create makes its subject, once.
	for _, req := range cutCreates {
		var res pdv1.CreateSubjectResponse
		if err := staffA.call(ctx, createRPC, req, &res); err != nil {
			t.Errorf("the cut create, resent to A: %v", err)
			continue
		}
		if res.GetSubject().GetPerson().GetGivenName() != req.GetPerson().GetGivenName() {
			t.Errorf("the cut create, resent to A, answered with another person")
		}
		subjects = append(subjects, &killedSubject{id: res.GetSubject().GetSubjectId(), person: res.GetSubject().GetPerson(), version: res.GetSubject().GetVersion()})
	}

	// One subject per create: none made twice by a resend.
	if n := countSubjects(t, a); n != int64(len(subjects)) {
		t.Errorf("%d subjects stored, want %d: one per create", n, len(subjects))
	}
	t.Logf("%d acknowledged calls (%d subjects created) in %s of load; kill -9 cut %d creates and %d rectifications (%d of them applied before it)",
		acked.Load(), len(subjects)-len(cutCreates), load.Round(time.Millisecond), len(cutCreates), cutRectifies, cutApplied)

	// The trail: each chain intact, with an event for every acknowledged call.
	chains := []string{"tenants/company", "principals"}
	for _, s := range subjects {
		chains = append(chains, "subjects/"+s.id)
		events := listChain(t, opA, s.id)
		ok := map[string]int{}
		for _, ev := range events {
			if ev.GetOutcome() == "OK" {
				ok[ev.GetRpc()]++
			}
		}
		if ok["/"+createRPC] < 1 || ok["/"+rectifyRPC] < s.rectified {
			t.Errorf("subject %s: %d create and %d rectification events with outcome OK, want 1 and at least %d",
				s.id, ok["/"+createRPC], ok["/"+rectifyRPC], s.rectified)
		}
	}
	for _, chain := range chains {
		var v pdv1.VerifyAuditChainResponse
		if err := opA.call(ctx, verifyChainRPC, &pdv1.VerifyAuditChainRequest{Chain: chain}, &v); err != nil {
			t.Errorf("VerifyAuditChain %s on A: %v", chain, err)
		} else if !v.GetIntact() {
			t.Errorf("audit chain %s broken at event %d of %d: %s", chain, v.GetFirstBrokenSeq(), v.GetEvents(), v.GetReason())
		}
	}
	if t.Failed() {
		t.Logf("the daemon's log: %s", readLog(logFile.Name()))
	}
}

// withRectification is p with the value that the rectification req sets
// (a phone number or an e-mail address, sent as the service stores them).
func withRectification(p *pdv1.Person, req *pdv1.RectifySubjectRequest) *pdv1.Person {
	out := proto.Clone(p).(*pdv1.Person)
	if req.GetUpdateMask().GetPaths()[0] == "phone" {
		out.Phone = req.GetPerson().GetPhone()
	} else {
		out.Email = req.GetPerson().GetEmail()
	}
	return out
}

// countSubjects counts the subject documents in A's store.
func countSubjects(t *testing.T, a *owner) int64 {
	t.Helper()
	cl, err := mongo.Connect(options.Client().ApplyURI(a.srv.StoreURI()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Disconnect(context.Background())
	n, err := cl.Database(a.database).Collection("subjects").CountDocuments(context.Background(), bson.D{})
	if err != nil {
		t.Fatalf("count subjects: %v", err)
	}
	return n
}

// listChain is a subject's audit chain, listed by the operator.
func listChain(t *testing.T, op client, id string) []*pdv1.AuditEvent {
	t.Helper()
	var events []*pdv1.AuditEvent
	for token := ""; ; {
		var res pdv1.ListAuditEventsResponse
		if err := op.call(context.Background(), listAuditRPC, &pdv1.ListAuditEventsRequest{SubjectId: id, PageSize: 100, PageToken: token}, &res); err != nil {
			t.Errorf("ListAuditEvents on A: %v", err)
			return events
		}
		events = append(events, res.GetEvents()...)
		if token = res.GetNextPageToken(); token == "" {
			return events
		}
	}
}

// readLog is the daemon's log, for a failure's report (it holds no
// personal values).
func readLog(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "unreadable"
	}
	return string(b)
}
