package server_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"google.golang.org/grpc/metadata"

	"github.com/example/personaldata/cmd/personaldatad/server"
	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store/storetest"
)

// TestBreachRecordManySubjects: a master key version is compromised, which
// touches every subject. The record's list of them is kept in chunks of its
// own (lowered here to 4 subjects a chunk, so 16 subjects span 4 chunks):
// the record document stays small whatever the count; an erasure leaves the
// list as it is; the notices, cut off in the second chunk and resumed, tell
// each of the company's people once, the one erased none;
// the customer's notice and its part of the record hold its own subjects,
// and the DPO reads them all.
func TestBreachRecordManySubjects(t *testing.T) {
	const perChunk, own, theirs = 4, 13, 3
	e := startOn(t, storetest.URI(), func(cfg *server.Config) { cfg.BreachSubjectsPerChunk = perChunk })
	c := e.gc()
	t0 := e.clock.Now()
	call(t, e.as(c, e.operator), "personaldata.v1.ProcessorAgreementService/CreateProcessorAgreement", agreementReq("pa-42", "customer-42", t0), &pdv1.CreateProcessorAgreementResponse{})
	var ownIDs, theirIDs []string
	var subs []*pdv1.Subject
	for n := 1; n <= own+theirs; n++ {
		req := createReq(fmt.Sprintf("create-%d", n), n)
		if n > own {
			req.ControllerId = "customer-42"
		}
		sub := call(t, c, "CreateSubject", req, &pdv1.CreateSubjectResponse{}).GetSubject()
		subs = append(subs, sub)
		id := sub.GetSubjectId()
		if n > own {
			theirIDs = append(theirIDs, id)
		} else {
			ownIDs = append(ownIDs, id)
		}
	}
	slices.Sort(ownIDs)
	slices.Sort(theirIDs)

	dpo := e.dpo(t, c)
	req := openBreachReq("breach-key", "", t0, pdv1.BreachRisk_BREACH_RISK_HIGH)
	req.Assessment = &pdv1.AssessBreachImpactRequest{MasterKeyVersion: 1}
	rec := call(t, dpo, openBreach, req, &pdv1.OpenBreachRecordResponse{}).GetRecord()
	id := rec.GetBreachId()
	if rec.GetSubjects() != own+theirs || len(rec.GetControllers()) != 2 || rec.GetControllers()[0].GetSubjects() != own {
		t.Fatalf("record: %d subjects, parts %v", rec.GetSubjects(), rec.GetControllers())
	}

	// The record is small, the same size as that of a breach of one
	// subject; the list is in sealed chunks beside it.
	leaky := e.as(c, e.principal(t, "support-tool", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, []string{"company"}, allPurposes))
	call(t, leaky, "GetSubjectForPurpose", &pdv1.GetSubjectForPurposeRequest{SubjectId: ownIDs[0], Purpose: pdv1.Purpose_PURPOSE_SUPPORT}, &pdv1.GetSubjectForPurposeResponse{})
	one := call(t, dpo, openBreach, openBreachReq("breach-one", "support-tool", t0, pdv1.BreachRisk_BREACH_RISK_HIGH), &pdv1.OpenBreachRecordResponse{}).GetRecord()
	size, sizeOne := e.storedSize(t, "breach_records", id), e.storedSize(t, "breach_records", one.GetBreachId())
	t.Logf("the record is %d bytes for %d subjects, %d for 1", size, own+theirs, sizeOne)
	if size > 4096 || size-sizeOne > 256 {
		t.Errorf("the record is %d bytes for %d subjects and %d for 1: it grows with the subjects", size, own+theirs, sizeOne)
	}
	chunks := e.count(t, "breach_subjects") - 1 // the breach of one has one
	if chunks != (own+theirs+perChunk-1)/perChunk {
		t.Errorf("%d chunks of subjects, want %d", chunks, (own+theirs+perChunk-1)/perChunk)
	}
	var stored strings.Builder
	for _, coll := range []string{"breach_records", "breach_subjects"} {
		cur, err := e.coll(coll).Find(context.Background(), bson.D{})
		if err != nil {
			t.Fatal(err)
		}
		bytes := 0
		for cur.Next(context.Background()) {
			stored.WriteString(cur.Current.String())
			bytes += len(cur.Current)
		}
		t.Logf("%s: %d bytes", coll, bytes)
		_ = cur.Close(context.Background())
	}
	noPersonalValue(t, "the record and its chunks", []byte(stored.String()), slices.Concat(ownIDs, theirIDs)...)

	// Subject 1 is erased since: its id and categories stay in the list
	// (nothing of the person), and it is counted, not told.
	call(t, c, "EraseSubject", eraseReq(subs[0], "erase-1"), &pdv1.EraseSubjectResponse{})
	if n := e.count(t, "breach_subjects") - 1; n != chunks {
		t.Errorf("the erasure left %d chunks of %d", n, chunks)
	}

	// Cut off in the second chunk, then resumed with the same key.
	cutNotify(t, e, dpo, id, "notify-key", perChunk+2)
	res := notifyAll(t, dpo, id, "notify-key")
	if n := res.GetNotices(); res.GetDone() != own || res.GetQueued() != own-1 || n.GetNotified() != own-1 || n.GetErased() != 1 || n.GetLeftToControllers() != theirs {
		t.Errorf("resumed: done %d, queued %d, told %d, erased %d, left to controllers %d; want %d, %d, %d, 1, %d",
			res.GetDone(), res.GetQueued(), n.GetNotified(), n.GetErased(), n.GetLeftToControllers(), own, own-1, own-1, theirs)
	}
	if again := notifyAll(t, dpo, id, "notify-key-2"); again.GetQueued() != 0 || again.GetNotices().GetNotified() != own-1 {
		t.Errorf("a rerun under another key queued %d, told %d", again.GetQueued(), again.GetNotices().GetNotified())
	}
	mailer := e.mailer(t, c)
	var to []string
	for _, m := range noticesIn(t, mailer, breachNoticeKind) {
		to = append(to, m.GetTo())
	}
	slices.Sort(to)
	var want []string
	for n := 2; n <= own; n++ {
		want = append(want, testPerson(n).GetEmail())
	}
	slices.Sort(want)
	if !slices.Equal(to, want) {
		t.Errorf("notices to %d addresses (%d distinct), want each of the %d company subjects not erased once", len(to), len(slices.Compact(slices.Clone(to))), own-1)
	}

	// The customer's notice and part hold its own subjects; the DPO reads all.
	call(t, dpo, notifyControllers, &pdv1.NotifyBreachControllersRequest{BreachId: id, IdempotencyKey: "cust-key",
		Contacts: []*pdv1.BreachControllerContact{{ControllerId: "customer-42", Email: "dpo@customer42.example"}}}, &pdv1.NotifyBreachControllersResponse{})
	notices := noticesIn(t, mailer, customerNoticeKind)
	if len(notices) != 1 {
		t.Fatalf("%d customer notices, want 1", len(notices))
	}
	for _, sid := range slices.Concat(ownIDs, theirIDs) {
		if strings.Contains(notices[0].GetBody(), sid) != slices.Contains(theirIDs, sid) {
			t.Errorf("the customer's notice does not hold exactly its own subjects:\n%s", notices[0].GetBody())
			break
		}
	}
	part := call(t, e.controller(t, c), getBreach, &pdv1.GetBreachRecordRequest{BreachId: id}, &pdv1.GetBreachRecordResponse{}).GetRecord()
	if len(part.GetControllers()) != 1 || !slices.Equal(part.GetControllers()[0].GetSubjectIds(), theirIDs) {
		t.Errorf("customer 42's part: %v", part.GetControllers())
	}
	full := call(t, dpo, getBreach, &pdv1.GetBreachRecordRequest{BreachId: id, SubjectIds: true}, &pdv1.GetBreachRecordResponse{}).GetRecord()
	if ps := full.GetControllers(); len(ps) != 2 || !slices.Equal(ps[0].GetSubjectIds(), ownIDs) || !slices.Equal(ps[1].GetSubjectIds(), theirIDs) {
		t.Errorf("the record's subjects by controller: %v", ps)
	}
}

// storedSize is the size in bytes of a stored document, as BSON.
func (e *env) storedSize(t *testing.T, collection, id string) int {
	t.Helper()
	raw, err := e.coll(collection).FindOne(context.Background(), bson.D{{Key: "_id", Value: id}}).Raw()
	if err != nil {
		t.Fatalf("read %s %s: %v", collection, id, err)
	}
	return len(raw)
}

// cutNotify starts NotifyBreachSubjects over gRPC as c and cuts the stream
// off once it reports done subjects done.
func cutNotify(t *testing.T, e *env, c caller, id, key string, done int64) {
	t.Helper()
	ctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+c.(grpcCaller).token))
	defer cancel()
	stream, err := pdv1.NewBreachRecordServiceClient(e.grpc).NotifyBreachSubjects(ctx, &pdv1.NotifyBreachSubjectsRequest{BreachId: id, IdempotencyKey: key})
	if err != nil {
		t.Fatal(err)
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			t.Fatalf("the notification ended before it was cut off: %v", err)
		}
		if m.GetDone() >= done {
			return
		}
	}
}

// TestMeasureBreachRecordSubjects is a measurement, not a check: it runs
// only when PD_MEASURE_BREACH gives a number of subjects (at most 16,000,
// the made-up people's identity numbers repeat after that), creates them,
// opens a breach of the master key version they are sealed under with the
// default chunk size, and logs how long the open and the DPO's read of
// every id took and how large the record and its chunks are. By hand:
//
//	PD_MEASURE_BREACH=10000 go test -run TestMeasureBreachRecordSubjects -v -timeout 1h ./cmd/personaldatad/server/
func TestMeasureBreachRecordSubjects(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("PD_MEASURE_BREACH"))
	if n < 1 || n > 16000 {
		t.Skip("a measurement: set PD_MEASURE_BREACH to the number of subjects (1 to 16,000)")
	}
	e := start(t)
	c := e.gc()
	began := time.Now()
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				if err := c.call(context.Background(), "CreateSubject", createReq(fmt.Sprintf("create-%d", i), i), &pdv1.CreateSubjectResponse{}); err != nil {
					t.Errorf("create %d: %v", i, err)
				}
			}
		})
	}
	for i := 1; i <= n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d subjects created in %v", n, time.Since(began).Round(time.Millisecond))
	dpo := e.dpo(t, c)
	req := openBreachReq("breach-measure", "", e.clock.Now(), pdv1.BreachRisk_BREACH_RISK_HIGH)
	req.Assessment = &pdv1.AssessBreachImpactRequest{MasterKeyVersion: 1}
	began = time.Now()
	rec := call(t, dpo, openBreach, req, &pdv1.OpenBreachRecordResponse{}).GetRecord()
	t.Logf("opened over %d subjects in %v; the record is %d bytes, beside %d chunks", rec.GetSubjects(),
		time.Since(began).Round(time.Millisecond), e.storedSize(t, "breach_records", rec.GetBreachId()), e.count(t, "breach_subjects"))
	began = time.Now()
	full := call(t, dpo, getBreach, &pdv1.GetBreachRecordRequest{BreachId: rec.GetBreachId(), SubjectIds: true}, &pdv1.GetBreachRecordResponse{}).GetRecord()
	t.Logf("the DPO read %d ids in %v", len(full.GetControllers()[0].GetSubjectIds()), time.Since(began).Round(time.Millisecond))
}
