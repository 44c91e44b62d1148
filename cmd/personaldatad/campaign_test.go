// The reliability campaign: the real personaldatad binary, on loopback with
// its embedded store, under load from gRPC and REST clients, killed with
// SIGKILL at random moments and restarted on the same data. It is skipped
// unless asked for, so that `go test ./...` stays quick. Run it with
//
//	go test ./cmd/personaldatad -run TestCampaign -campaign -v
//
// Flags: -campaign.duration (3m; the build of the binary comes on top),
// -campaign.crashes (15), -campaign.clients (6, half of them over REST),
// -campaign.seed (0 picks one; the seed is logged, to replay a run's choices).
//
// After every restart it checks, against what the acknowledged requests
// made: nothing acknowledged is lost; resending an interrupted request with
// its idempotency key succeeds and applies it once; every read answered has
// its audit event; the audit chains are intact; and, reading the store
// itself while the daemon is down, nothing acknowledged is missing there
// either, and no data key, history entry or lookup key is left of a subject
// whose erasure was acknowledged. Three
// operations are cut on purpose: an erasure (of a subject with a long
// history, killed while it runs, then resent), a key rotation (killed after
// its first progress report, then resumed from it), and the recipient's
// notification stream (cut by every crash; acknowledged notifications must
// never come again, the others must). It ends with a table of its figures.
// Its load, model and checks are shared with the power-cut test
// (powercut_test.go), in campaign_load_test.go and campaign_daemon_test.go.

package main

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store/envelope"
)

var (
	campaignOn       = flag.Bool("campaign", false, "run the reliability campaign (TestCampaign)")
	campaignDuration = flag.Duration("campaign.duration", 3*time.Minute, "how long the campaign runs, the build excluded")
	campaignCrashes  = flag.Int("campaign.crashes", 15, "how many times the campaign kills the daemon")
	campaignClients  = flag.Int("campaign.clients", 6, "concurrent clients, alternately gRPC and REST")
	campaignSeed     = flag.Uint64("campaign.seed", 0, "seed of the campaign's choices; 0 picks one")
)

const (
	// seedSubjects are made before the load starts, so that a key rotation
	// has more data keys than one batch (200) and reports progress before
	// it is done.
	seedSubjects = 300
	// heavyHistory is the history of a subject whose erasure is cut: its
	// entries are deleted one by one, so the erasure takes a while.
	heavyHistory = 40
	// finalReserve is the time kept for the final checks.
	finalReserve = 40 * time.Second
)

// campaign is one run: the harness (the daemon, its principals, the model
// of what the acknowledged requests made, and the figures), and what the
// campaign adds: the recipient's notifications and the operations it cuts
// on purpose.
type campaign struct {
	*harness
	keyFile string
	notes   noticeLog

	// The operations cut on purpose.
	eraseEstimate time.Duration
	cuts          []*eraseCut
	rot           *rotation
}

// eraseCut is an erasure that a kill cut.
type eraseCut struct {
	s     *subject
	done  chan bool // the erasure's result, once resent to the end
	ok    bool
	ended bool
	// before: acknowledged before the kill (the kill came too late).
	before bool
	// found is what the kill left, read from the store.
	found string
}

// rotation is the key rotation that a kill cut.
type rotation struct {
	version     uint32
	resumeAfter string // from the last progress report before the kill
	reports     int    // progress reports before the kill
	done        int64  // keys the last of them said were done
	atKill      string // what the store held after the kill
	resumed     bool   // resumed and finished
	checked     bool   // the store read after it finished
	left        int    // data keys under an older version after it finished
}

func TestCampaign(t *testing.T) {
	if !*campaignOn {
		t.Skip("the reliability campaign runs only with -campaign (see campaign_test.go)")
	}
	seed := *campaignSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (replay its choices with -campaign.seed=%d)", seed, seed)
	dir := t.TempDir()
	bin := buildDaemon(t, dir)
	begin := time.Now()
	c := newCampaign(t, dir, bin, seed)
	ctx := context.Background()

	c.seedSubjects(ctx)
	c.measureErasure(ctx)
	t.Logf("started, %d subjects made in %s", seedSubjects, time.Since(begin).Round(time.Millisecond))

	loadCtx, stopLoad := context.WithCancel(ctx)
	var workers sync.WaitGroup
	c.load = newBarrier(*campaignClients)
	for i := range *campaignClients {
		w := c.worker(i, seed)
		workers.Add(1)
		go func() { defer workers.Done(); w.run(loadCtx) }()
	}
	recipientCtx, stopRecipient := context.WithCancel(ctx)
	var recipientDone sync.WaitGroup
	recipientDone.Add(1)
	go func() {
		defer recipientDone.Done()
		c.recipientLoop(recipientCtx, client{conn: c.conn, base: c.base, token: c.domreg}, rand.New(rand.NewPCG(seed, 1000)))
	}()

	t.Cleanup(func() { // should the test stop early
		stopLoad()
		c.load.resume()
		stopRecipient()
	})

	deadline := begin.Add(*campaignDuration - finalReserve)
	rotateAt := min(2, *campaignCrashes-1)
	for i := 0; i < *campaignCrashes && time.Now().Before(deadline); i++ {
		if i > 0 {
			c.load.resume()
		}
		round, sent := time.Now(), c.sent()
		switch {
		case i == rotateAt:
			c.rotateAndKill(ctx)
		case i%4 == 1:
			c.eraseAndKill(ctx, i)
		default:
			time.Sleep(time.Duration(300+c.rng.IntN(2500)) * time.Millisecond)
			c.crash()
		}
		ran, load := time.Since(round), c.sent()-sent
		c.inspect(ctx)
		c.restart()
		settled := time.Now()
		checked := c.settle(ctx)
		t.Logf("crash %d: %d attempts in %s of load, then kill -9; %d subjects checked in %s",
			i+1, load, ran.Round(time.Millisecond), checked, time.Since(settled).Round(time.Millisecond))
	}

	// The end: the load stops with nothing in flight (settle parked it), the
	// recipient takes what is left, and everything is checked.
	stopLoad()
	c.load.resume()
	workers.Wait()
	stopRecipient()
	recipientDone.Wait()
	dom := client{conn: c.conn, base: c.base, token: c.domreg}
	if err := c.drainNotices(ctx, dom); err != nil {
		t.Errorf("draining the notifications: %v", err)
	}
	var left pdv1.ListRecipientNotificationsResponse
	if c.checkCall(ctx, dom, listNoticesRPC, &pdv1.ListRecipientNotificationsRequest{Recipient: recipient}, &left) && len(left.GetNotifications()) > 0 {
		t.Errorf("%d notifications still unacknowledged after the last stream acknowledged all it sent", len(left.GetNotifications()))
	}
	c.mu.Lock()
	all := slices.Collect(maps.Values(c.subjects))
	c.mu.Unlock()
	c.verify(ctx, all, "principals", "tenants/company")
	if err := c.d.stop(); err != nil {
		t.Errorf("graceful stop: %v", err)
	}
	c.up.shut()
	c.inspect(ctx)
	c.report(time.Since(begin))
}

// newCampaign starts the daemon on a fresh data directory and makes the
// principals: support staff, and the domain-registration integration that
// discloses to the recipient and reads its queue.
func newCampaign(t *testing.T, dir, bin string, seed uint64) *campaign {
	h := startHarness(t, dir, bin, filepath.Join(dir, "data"), "campaign", seed)
	h.mix = campaignMix
	return &campaign{harness: h, keyFile: filepath.Join(h.d.dataDir, "keyring.json"), notes: newNoticeLog()}
}

// seedSubjects creates the first subjects, four at a time over both
// transports, and hands them to the clients.
func (c *campaign) seedSubjects(ctx context.Context) {
	var wg sync.WaitGroup
	for g := range 4 {
		via := client{rest: g%2 == 1, conn: c.conn, base: c.base, token: c.staff}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := g; k < seedSubjects; k += 4 {
				if !c.createSubject(ctx, via, fmt.Sprintf("create-seed-%d", k), int(c.values.Add(1)), k%*campaignClients, nil) {
					c.t.Errorf("seeding: a create was refused")
					return
				}
			}
		}()
	}
	wg.Wait()
}

// heavySubject makes a subject of the campaign's own with a long history.
func (c *campaign) heavySubject(ctx context.Context, name string) *subject {
	via := client{conn: c.conn, token: c.staff}
	var s *subject
	if !c.createSubject(ctx, via, "create-"+name, int(c.values.Add(1)), -1, func(made *subject) { s = made }) {
		return nil
	}
	for k := range heavyHistory {
		if !c.addHistory(ctx, via, fmt.Sprintf("history-%s-%d", name, k), s, int(c.values.Add(1))) {
			return nil
		}
	}
	return s
}

// measureErasure times one erasure of a heavy subject, undisturbed, to
// know when to kill the daemon to cut one.
func (c *campaign) measureErasure(ctx context.Context) {
	s := c.heavySubject(ctx, "heavy-measure")
	if s == nil {
		c.t.Fatal("could not make the subject to time an erasure on")
	}
	start := time.Now()
	if !c.erase(ctx, client{conn: c.conn, token: c.staff}, "erase-heavy-measure", s) {
		c.t.Fatal("the timed erasure was refused")
	}
	c.eraseEstimate = time.Since(start)
}

// settle waits until every interrupted request was resent to its end, and
// the cut operations finished, then checks the service against the model.
func (c *campaign) settle(ctx context.Context) int {
	if !c.load.pause(2 * time.Minute) {
		c.t.Fatal("the clients did not settle their requests within two minutes of the restart")
	}
	for _, cut := range c.cuts {
		if !cut.ended {
			cut.ok, cut.ended = <-cut.done, true
			if !cut.ok {
				c.t.Errorf("an erasure cut by kill -9 did not complete when resent with its idempotency key")
			}
		}
	}
	if c.rot != nil && !c.rot.resumed {
		c.resumeRotation(ctx)
	}
	subs := c.toCheck(10)
	c.verify(ctx, subs, "principals", "tenants/company")
	return len(subs)
}

// eraseAndKill erases a subject with a long history and kills the daemon
// while the erasure runs: every other time as soon as its tombstone is
// written, otherwise after a random delay. The erasure is resent after the
// restart.
func (c *campaign) eraseAndKill(ctx context.Context, round int) {
	name := fmt.Sprintf("heavy-%d", round)
	s := c.heavySubject(ctx, name)
	if s == nil {
		c.t.Errorf("could not make the subject of erasure cut %d", round)
		c.crash()
		return
	}
	via := client{rest: len(c.cuts)%2 == 1, conn: c.conn, base: c.base, token: c.staff}
	cut := &eraseCut{s: s, done: make(chan bool, 1)}
	go func() { cut.done <- c.erase(ctx, via, "erase-"+name, s) }()
	if len(c.cuts)%2 == 0 {
		c.awaitTombstone(ctx, s) // then the kill falls in the cleanup
	} else {
		time.Sleep(time.Duration(float64(c.eraseEstimate) * 2 * c.rng.Float64()))
	}
	c.crash()
	c.mu.Lock()
	cut.before = s.erased // the kill came too late
	c.mu.Unlock()
	c.cuts = append(c.cuts, cut)
}

// awaitTombstone returns once s reads as erased (the erasure's first
// write), or after five seconds.
func (c *campaign) awaitTombstone(ctx context.Context, s *subject) {
	staff := client{conn: c.conn, token: c.staff}
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(2 * time.Millisecond) {
		err := staff.call(ctx, forPurposeRPC, &pdv1.GetSubjectForPurposeRequest{SubjectId: s.id, Purpose: pdv1.Purpose_PURPOSE_SUPPORT}, &pdv1.GetSubjectForPurposeResponse{})
		c.mu.Lock()
		c.n.checks++
		c.mu.Unlock()
		if status.Code(err) == codes.NotFound {
			return
		}
	}
}

// rotateAndKill adds a master key version, as `pdctl keys add-version`
// does, starts a rotation and kills the daemon after its first progress
// report.
func (c *campaign) rotateAndKill(ctx context.Context) {
	v, err := envelope.AddVersion(c.keyFile)
	if err != nil {
		c.t.Fatalf("add a master key version: %v", err)
	}
	c.rot = &rotation{version: v}
	op := client{conn: c.conn, token: c.operator}
	reports := make(chan *pdv1.RotateDataKeysResponse)
	ended := make(chan error, 1)
	go func() {
		st, err := pdv1.NewKeyServiceClient(c.conn).RotateDataKeys(op.outgoing(ctx), &pdv1.RotateDataKeysRequest{})
		for err == nil {
			var p *pdv1.RotateDataKeysResponse
			if p, err = st.Recv(); err == nil {
				reports <- p
			}
		}
		ended <- err
	}()
	killAt, killed := time.After(30*time.Second), false
	for {
		select {
		case p := <-reports: // sent before the kill, even if read after it
			c.rot.resumeAfter, c.rot.done, c.rot.reports = p.GetResumeAfter(), p.GetDone(), c.rot.reports+1
			if c.rot.reports == 1 && !killed {
				killAt = time.After(time.Duration(c.rng.IntN(20)) * time.Millisecond)
			}
		case <-killAt:
			c.crash()
			killed, killAt = true, nil
		case err := <-ended:
			if !killed {
				c.crash() // it ended before the kill: the report says so
			}
			c.mu.Lock()
			c.count("gRPC", streamOutcome(err))
			c.mu.Unlock()
			return
		}
	}
}

// resumeRotation resumes the rotation from its last progress report, until
// it reports that it finished.
func (c *campaign) resumeRotation(ctx context.Context) {
	op := client{conn: c.conn, token: c.operator}
	for attempt := 0; attempt < 5; attempt++ {
		st, err := pdv1.NewKeyServiceClient(c.conn).RotateDataKeys(op.outgoing(ctx), &pdv1.RotateDataKeysRequest{ResumeAfter: c.rot.resumeAfter})
		var last *pdv1.RotateDataKeysResponse
		for err == nil {
			var p *pdv1.RotateDataKeysResponse
			if p, err = st.Recv(); err == nil {
				last = p
			}
		}
		o := streamOutcome(err)
		c.mu.Lock()
		c.count("gRPC", o)
		if o == "OK" {
			c.n.acked++
		}
		c.mu.Unlock()
		if o == "OK" {
			if !last.GetFinished() || last.GetCurrentVersion() != c.rot.version {
				c.t.Errorf("the resumed rotation ended unfinished, or under version %d instead of %d", last.GetCurrentVersion(), c.rot.version)
			}
			c.rot.resumed = true
			return
		}
		if !transient(o) {
			c.t.Errorf("the resumed rotation failed: %s", o)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Errorf("the rotation could not be resumed")
}

// inspect reads the stopped daemon's store: what inspectRaw checks (every
// subject acknowledged is there with its data key, no erased subject's data
// key or history is left, no create made two subjects), and what the cut
// operations left.
func (c *campaign) inspect(ctx context.Context) {
	raw, err := readRaw(ctx, c.d.dataDir)
	if err != nil {
		c.t.Fatalf("read the store after kill -9: %v", err)
	}
	c.inspectRaw(raw)
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.cuts); n > 0 && c.cuts[n-1].found == "" {
		cut := c.cuts[n-1]
		rs, ok := raw.subjects[cut.s.id]
		_, key := raw.dataKeys[cut.s.id]
		switch {
		case !ok:
			cut.found = "no subject"
		case !rs.Erased:
			cut.found = "not erased yet"
		case rs.Pending:
			cut.found = fmt.Sprintf("tombstone, cleanup pending (%d of %d history documents left, data key %s)", raw.history[cut.s.id], heavyHistory, map[bool]string{true: "kept", false: "gone"}[key])
		default:
			cut.found = "erased completely"
		}
		if cut.before {
			cut.found += ", acknowledged before the kill"
		}
	}
	if r := c.rot; r != nil {
		behind := 0
		for _, v := range raw.dataKeys {
			if v != int64(r.version) {
				behind++
			}
		}
		switch {
		case r.atKill == "":
			r.atKill = fmt.Sprintf("%d of %d data keys under version %d", len(raw.dataKeys)-behind, len(raw.dataKeys), r.version)
			// What a report called done must have lasted: every key up to
			// its resume_after (the walk goes in id order) is re-wrapped.
			for id, v := range raw.dataKeys {
				if r.resumeAfter != "" && id <= r.resumeAfter && v != int64(r.version) {
					c.n.lost.add("rotation: a key reported done is under an older version", id, 1)
				}
			}
		case r.resumed && !r.checked:
			r.checked, r.left = true, behind
			if behind == 0 {
				// Nothing needs the older versions any more: remove them, as an
				// operator would, so every later read proves the rotation.
				for v := uint32(1); v < r.version; v++ {
					if err := envelope.RemoveVersion(c.keyFile, v); err != nil {
						c.t.Errorf("remove master key version %d: %v", v, err)
					}
				}
			}
		}
	}
}

// report logs the campaign's figures and fails on what must not happen.
func (c *campaign) report(took time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	owed, distinct := c.checkNotices()
	n := &c.n
	var b strings.Builder
	fmt.Fprintf(&b, "reliability campaign: %s, %d clients (gRPC and REST), %d crashes (kill -9; the daemon had ended by itself before %d)\n",
		took.Round(time.Second), *campaignClients, n.crashes, n.selfExits)
	fmt.Fprintf(&b, "requests sent (attempts)   %d\n", n.sent)
	fmt.Fprintf(&b, "acknowledged               %d (%d of them only when resent after a crash)\n", n.acked, n.ackedOnRetry)
	fmt.Fprintf(&b, "statuses by code           %-8s %-8s\n", "gRPC", "REST")
	for _, code := range slices.Sorted(maps.Keys(n.byCode)) {
		fmt.Fprintf(&b, "  %-24s %-8d %-8d\n", code, n.byCode[code]["gRPC"], n.byCode[code]["REST"])
	}
	fmt.Fprintf(&b, "lost                       %d %v\n", n.lost.total(), n.lost.byKind)
	fmt.Fprintf(&b, "duplicated                 %d %v\n", n.duplicated.total(), n.duplicated.byKind)
	fmt.Fprintf(&b, "refused outright           %v; resends refused %v\n", n.refused, n.retryRefused)
	n.writeRestarts(&b)
	fmt.Fprintf(&b, "subjects                   %d (%d erased)\n", len(c.subjects), countErased(c.subjects))
	fmt.Fprintf(&b, "erasures cut by kill -9    %d (an undisturbed one took %s)\n", len(c.cuts), c.eraseEstimate.Round(time.Millisecond))
	for i, cut := range c.cuts {
		fmt.Fprintf(&b, "  cut %d: found %s; resent: %v\n", i+1, cut.found, map[bool]string{true: "completed", false: "FAILED"}[cut.ok])
	}
	fmt.Fprintf(&b, "left after an acknowledged erasure: %d %v\n", n.erasedLeft.total(), n.erasedLeft.byKind)
	if r := c.rot; r != nil {
		fmt.Fprintf(&b, "key rotation to version %d: killed after %d progress report(s) (%d keys done), %s; resumed and finished: %v; data keys under older versions afterwards: %d (checked: %v)\n",
			r.version, r.reports, r.done, r.atKill, r.resumed, r.left, r.checked)
	}
	l := &c.notes
	fmt.Fprintf(&b, "notifications              owed %d, delivered %d distinct in %d deliveries over %d streams; sent again while unacknowledged %d, after acknowledgement %d, twice in one stream %d; acknowledgements %d (failed %v)\n",
		owed, distinct, l.deliveries, l.streams, l.redelivered, l.afterAck, l.twiceInOne, len(l.acked), l.ackFailures)
	fmt.Fprintf(&b, "  streams ended by         %v\n", l.endings)
	if logged, err := logSummary(c.d.log.Name()); err == nil {
		fmt.Fprintf(&b, "daemon log, WARN and ERROR %v\n", logged)
	}
	fmt.Fprintf(&b, "reads without audit event  %d %v\n", n.unaudited.total(), n.unaudited.byKind)
	fmt.Fprintf(&b, "checks                     %d calls, %d audit chains verified, %d broken, failures %v\n", n.checks, n.chains, n.broken.total(), n.checkErrors)
	c.t.Log("\n" + b.String())

	if lost := n.lost.total(); lost > 0 {
		c.t.Errorf("lost: %d acknowledged effects missing: %v", lost, n.lost.byKind)
	}
	if dup := n.duplicated.total(); dup > 0 {
		c.t.Errorf("duplicated: %d effects applied more than once: %v", dup, n.duplicated.byKind)
	}
	for code, by := range n.byCode {
		if code == "Internal" || code == "Unknown" || strings.HasPrefix(code, "HTTP 5") {
			c.t.Errorf("%s: %d over gRPC, %d over REST", code, by["gRPC"], by["REST"])
		}
	}
	if len(n.retryRefused) > 0 {
		c.t.Errorf("interrupted requests resent with their idempotency key were refused: %v", n.retryRefused)
	}
	if len(n.refused) > 0 {
		c.t.Errorf("requests refused outright: %v", n.refused)
	}
	if n.erasedLeft.total() > 0 {
		c.t.Errorf("left of subjects whose erasure was acknowledged: %v", n.erasedLeft.byKind)
	}
	if n.unaudited.total() > 0 {
		c.t.Errorf("reads answered without their audit event: %v", n.unaudited.byKind)
	}
	if n.broken.total() > 0 {
		c.t.Errorf("%d audit chains broken", n.broken.total())
	}
	if len(n.checkErrors) > 0 {
		c.t.Errorf("checks failed: %v", n.checkErrors)
	}
	for code, k := range l.ackFailures {
		if !transient(code) {
			c.t.Errorf("acknowledgements refused: %s ×%d", code, k)
		}
	}
	switch r := c.rot; {
	case r == nil:
		c.t.Errorf("the campaign ended before it cut a key rotation")
	case r.reports == 0:
		c.t.Errorf("the key rotation ended before its first progress report: it was not cut")
	case !r.resumed || !r.checked || r.left > 0:
		c.t.Errorf("key rotation: resumed %v, checked %v, %d data keys under older versions", r.resumed, r.checked, r.left)
	}
	if !slices.ContainsFunc(c.cuts, func(cut *eraseCut) bool { return !cut.before }) {
		c.t.Errorf("no erasure was cut by a kill (%d tried)", len(c.cuts))
	}
}

func countErased(subjects map[string]*subject) int {
	k := 0
	for _, s := range subjects {
		if s.erased {
			k++
		}
	}
	return k
}
