// The power-cut test: the real personaldatad binary with its embedded store
// on a FUSE filesystem that forgets, at a cut, everything not synced to it
// (store/powercut), under load from gRPC and REST clients, killed with
// SIGKILL and then cut, as a power cut would leave the disk. It runs in the
// ordinary test command (skipped with -short, or where FUSE cannot be
// mounted), in three parts:
//
//   - first-start: the daemon's first start, cut as soon as it is ready:
//     its data directory, key file and operator token must survive, and the
//     token must work.
//   - durability-full (the default): cuts under load; what was
//     acknowledged must all be there after each cut, through the API and in
//     the store read raw: the subjects' data, history, consents and
//     disclosures, the rights requests' steps and the messages they queued
//     for the requesters (those the mailer acknowledged never back), the
//     audit event of every read answered, intact audit chains, erasures
//     complete; requests acknowledged before the cut, resent with their
//     idempotency keys, answer as the first time and apply nothing twice;
//     and no subject is unreadable.
//   - durability-normal: the same load and cuts with -durability normal,
//     which acknowledges writes before they are synced; it must be seen to
//     lose some, or the test could not catch a loss. Its losses are counted,
//     not failed on.
//
// Flags: -powercut.cuts (3 in each mode), -powercut.clients (4, half of them
// over REST), -powercut.seed (0 picks one; the seed is logged). The test
// process serves the FUSE filesystem and the daemon is its child: a process
// that maps files on the filesystem (SQLite maps its -shm) must not be the
// one that serves it. For the same reason the test reads the store from a
// copy of the data directory on the ordinary disk, never in place. The
// load, the model and the checks are the campaign's (campaign_load_test.go,
// campaign_daemon_test.go), with consents, rights requests, the mailer and
// reads added here.

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/powercut"
	"github.com/example/personaldata/store/storetest"
)

var (
	powercutCuts    = flag.Int("powercut.cuts", 3, "how many power cuts TestPowerCut makes in each durability mode")
	powercutClients = flag.Int("powercut.clients", 4, "concurrent clients of TestPowerCut, alternately gRPC and REST")
	powercutSeed    = flag.Uint64("powercut.seed", 0, "seed of TestPowerCut's choices; 0 picks one")
)

// RPC names the power-cut test adds to the campaign's.
const (
	listPrincipalsRPC  = "personaldata.v1.PrincipalService/ListPrincipals"
	recordConsentRPC   = "personaldata.v1.ConsentService/RecordConsent"
	withdrawConsentRPC = "personaldata.v1.ConsentService/WithdrawConsent"
	openRequestRPC     = "personaldata.v1.RightsRequestService/OpenRightsRequest"
	getRequestRPC      = "personaldata.v1.RightsRequestService/GetRightsRequest"
	sendCodeRPC        = "personaldata.v1.RightsRequestService/SendVerificationCode"
	confirmCodeRPC     = "personaldata.v1.RightsRequestService/ConfirmVerificationCode"
	attestRPC          = "personaldata.v1.RightsRequestService/AttestIdentity"
	decideRPC          = "personaldata.v1.RightsRequestService/DecideRightsRequest"
	listOutboxRPC      = "personaldata.v1.RequesterOutboxService/ListOutboxMessages"
	ackOutboxRPC       = "personaldata.v1.RequesterOutboxService/AcknowledgeOutboxMessage"
)

const (
	// seedPerClient is how many subjects each client has before the load.
	seedPerClient = 3
	// resendPerKind is how many acknowledged requests of each kind are
	// resent after each cut.
	resendPerKind = 4
)

func TestPowerCut(t *testing.T) {
	if testing.Short() {
		t.Skip("the power-cut test runs the daemon on a FUSE filesystem for about a minute: skipped with -short")
	}
	if err := powercut.Available(); err != nil {
		t.Skipf("the power-cut test needs a FUSE filesystem it can mount: %v", err)
	}
	// The daemon always runs its own embedded store: the run against a
	// store reached by URI would repeat it.
	storetest.SkipInMongoMode(t)
	seed := *powercutSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (replay its choices with -powercut.seed=%d)", seed, seed)
	begin := time.Now()
	bin := buildDaemon(t, t.TempDir())
	t.Logf("daemon built in %s", time.Since(begin).Round(time.Millisecond))

	t.Run("first-start", func(t *testing.T) { testFirstStartCut(t, bin) })
	t.Run("sync-failure", func(t *testing.T) { testSyncFailure(t, bin) })
	t.Run("durability-full", func(t *testing.T) {
		p := runPowerCuts(t, bin, store.DurabilityFull, seed)
		p.report()
		if !p.clean() {
			t.Errorf("-durability full lost or changed what it acknowledged (see the table)")
		}
	})
	t.Run("durability-normal", func(t *testing.T) {
		p := runPowerCuts(t, bin, store.DurabilityNormal, seed)
		p.report()
		if p.losses() == 0 {
			t.Errorf("the power-cut test could not make -durability normal lose anything: it would not catch a loss")
		}
	})
}

// mountPowerCut mounts an empty power-cut filesystem for the test, unmounted
// when it ends (after the daemon is killed: cleanups run last first).
func mountPowerCut(t *testing.T) (*powercut.FS, string) {
	t.Helper()
	mnt := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	pfs, err := powercut.Mount(mnt)
	if err != nil {
		t.Fatalf("mount the power-cut filesystem: %v", err)
	}
	t.Cleanup(func() {
		if err := pfs.Unmount(); err != nil {
			t.Errorf("unmount the power-cut filesystem: %v", err)
		}
	})
	return pfs, mnt
}

// testFirstStartCut starts the daemon on a fresh data directory inside the
// mount (not the mount's root, so that creating it must sync the root),
// kills it as soon as it is ready and cuts the power: the key file and the
// first operator's token must be there after the cut, as they were, and
// the token must work.
func testFirstStartCut(t *testing.T, bin string) {
	pfs, d := daemonOnPowerCut(t, bin)
	dataDir, logFile := d.dataDir, d.log
	took, err := d.start()
	if err != nil {
		t.Fatal(err)
	}
	tokenFile, keyFile := filepath.Join(dataDir, "operator.token"), filepath.Join(dataDir, "keyring.json")
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatalf("operator token before the cut: %v", err)
	}
	keys, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatalf("key file before the cut: %v", err)
	}
	if !d.kill9() {
		t.Fatalf("personaldatad had ended by itself before kill -9; its log: %s", readLog(logFile.Name()))
	}
	rep, err := pfs.Cut()
	if err != nil {
		t.Fatal(err)
	}
	st := pfs.Stats()
	t.Logf("first start, ready in %s, killed and cut: %s; %d file syncs, %d directory syncs; reverted: %s; entries dropped %v",
		took.Round(time.Millisecond), rep, st.FileSyncs, st.DirSyncs, reverted(rep), rep.EntriesDropped)
	for name, before := range map[string][]byte{tokenFile: token, keyFile: keys} {
		switch after, err := os.ReadFile(name); {
		case err != nil:
			t.Errorf("%s after the cut: %v", filepath.Base(name), err)
		case string(after) != string(before):
			t.Errorf("%s after the cut is not what the first start wrote (%d bytes, was %d)", filepath.Base(name), len(after), len(before))
		}
	}
	if _, err := d.start(); err != nil {
		t.Fatalf("start after the cut: %v; its log: %s", err, readLog(logFile.Name()))
	}
	conn, err := dialDaemon(d.grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, via := range []client{{conn: conn, token: strings.TrimSpace(string(token))}, {rest: true, base: "http://" + d.httpAddr, token: strings.TrimSpace(string(token))}} {
		var res pdv1.ListPrincipalsResponse
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		err := via.call(ctx, listPrincipalsRPC, &pdv1.ListPrincipalsRequest{}, &res)
		cancel()
		if err != nil {
			t.Errorf("ListPrincipals over %s with the first operator's token after the cut: %s", via.transport(), outcome(err))
		} else if !slices.ContainsFunc(res.GetPrincipals(), func(p *pdv1.Principal) bool { return p.GetPrincipalId() == "operator" }) {
			t.Errorf("ListPrincipals over %s after the cut does not list the first operator", via.transport())
		}
	}
	if err := d.stop(); err != nil {
		t.Errorf("graceful stop: %v", err)
	}
}

// daemonOnPowerCut mounts a power-cut filesystem and makes, not yet
// started, a daemon whose data directory is inside it (not the mount point
// itself, so that the directory's own entry has to be synced), with its log
// on the ordinary disk.
func daemonOnPowerCut(t *testing.T, bin string) (*powercut.FS, *daemon) {
	t.Helper()
	pfs, mnt := mountPowerCut(t)
	logFile, err := os.Create(filepath.Join(t.TempDir(), "personaldatad.log"))
	if err != nil {
		t.Fatal(err)
	}
	d := &daemon{bin: bin, dataDir: filepath.Join(mnt, "data"), grpcAddr: freeAddr(t), httpAddr: freeAddr(t), log: logFile, args: []string{"-drain-delay", "0s"}}
	t.Cleanup(func() { d.kill9(); logFile.Close() })
	return pfs, d
}

// testSyncFailure: the disk under the daemon starts failing its syncs. A
// create is then answered UNAVAILABLE, never OK; the daemon reports itself
// neither ready nor live, since only a restart recovers; and it goes on
// refusing writes once the disk works again, since it cannot know what the
// failed sync lost. After a power cut and a restart, the subject it
// acknowledged before is there, and the creates it refused succeed when
// resent with their idempotency keys.
func testSyncFailure(t *testing.T, bin string) {
	pfs, d := daemonOnPowerCut(t, bin)
	dataDir, logFile := d.dataDir, d.log
	if _, err := d.start(); err != nil {
		t.Fatal(err)
	}
	token, err := os.ReadFile(filepath.Join(dataDir, "operator.token"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := dialDaemon(d.grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := context.Background()
	call := func(via client, method string, req, resp proto.Message) error {
		ctx, cancel := context.WithTimeout(ctx, requestTimeout)
		defer cancel()
		return via.call(ctx, method, req, resp)
	}
	op := client{conn: conn, token: strings.TrimSpace(string(token))}
	var made pdv1.CreatePrincipalResponse
	if err := call(op, principalRPC, &pdv1.CreatePrincipalRequest{IdempotencyKey: "sync-failure-staff", Principal: &pdv1.Principal{
		PrincipalId: "sync-failure-staff", Kind: pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, TenantIds: []string{"company"},
		Purposes: []pdv1.Purpose{pdv1.Purpose_PURPOSE_SUPPORT},
	}}, &made); err != nil {
		t.Fatalf("CreatePrincipal: %s", outcome(err))
	}
	staff := []client{{conn: conn, token: made.GetToken()}, {rest: true, base: "http://" + d.httpAddr, token: made.GetToken()}}
	create := func(via client, n int) (*pdv1.Subject, error) {
		var res pdv1.CreateSubjectResponse
		err := call(via, createRPC, &pdv1.CreateSubjectRequest{
			IdempotencyKey: fmt.Sprintf("sync-failure-%d", n), ControllerId: "company", Person: campaignPerson(9_000_000 + n),
			Channel: pdv1.Channel_CHANNEL_PORTAL, Reference: "sync-failure",
		}, &res)
		return res.GetSubject(), err
	}
	probe := func(path string) int {
		res, err := http.Get("http://" + d.httpAddr + path)
		if err != nil {
			return 0
		}
		res.Body.Close()
		return res.StatusCode
	}

	before, err := create(staff[0], 1)
	if err != nil {
		t.Fatalf("create before the disk fails: %s", outcome(err))
	}
	pfs.FailSyncs(syscall.EIO)
	for i, via := range staff {
		if _, err := create(via, 2+i); status.Code(err) != codes.Unavailable {
			t.Errorf("create over %s while syncs fail: %s, want Unavailable", via.transport(), outcome(err))
		}
	}
	if code := probe("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz after a failed sync: %d, want 503", code)
	}
	if code := probe("/livez"); code != http.StatusServiceUnavailable {
		t.Errorf("/livez after a failed sync: %d, want 503 (only a restart recovers)", code)
	}
	pfs.FailSyncs(0)
	if _, err := create(staff[0], 4); status.Code(err) != codes.Unavailable {
		t.Errorf("create once the disk works again, before a restart: %s, want Unavailable", outcome(err))
	}
	if !d.kill9() {
		t.Fatalf("personaldatad had ended by itself; its log: %s", readLog(logFile.Name()))
	}
	rep, err := pfs.Cut()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("syncs failed, then killed and cut: %s", rep)
	if _, err := d.start(); err != nil {
		t.Fatalf("start after the cut: %v; its log: %s", err, readLog(logFile.Name()))
	}
	conn2, err := dialDaemon(d.grpcAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	staff[0].conn = conn2
	var got pdv1.AccessSubjectResponse
	if err := call(staff[0], accessRPC, &pdv1.AccessSubjectRequest{SubjectId: before.GetSubjectId()}, &got); err != nil {
		t.Fatalf("the subject acknowledged before the failure, after the restart: %s", outcome(err))
	}
	if !proto.Equal(got.GetSubject().GetPerson(), before.GetPerson()) {
		t.Error("the subject acknowledged before the failure reads otherwise after the restart")
	}
	for i, n := range []int{2, 3, 4} {
		if _, err := create(staff[i%2], n); err != nil {
			t.Errorf("create %d resent after the restart: %s", n, outcome(err))
		}
	}
	if code := probe("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after the restart: %d", code)
	}
	if err := d.stop(); err != nil {
		t.Errorf("graceful stop: %v", err)
	}
}

// powerCut is one run of cuts under load in one durability mode: the
// harness, the filesystem, and the figures of each cut.
type powerCut struct {
	*harness
	pfs        *powercut.FS
	durability store.Durability
	mailer     string // its token
	rounds     []cutRound
	began      time.Time
	warned     bool // the daemon's log warned of durability normal
}

// cutRound is what one cut did and what the checks after it found.
type cutRound struct {
	load              time.Duration // of load before the kill
	attempts, acked   int
	found             figures
	cut               powercut.CutReport
	fileSyncs         uint64 // during the round, before the cut
	dirSyncs          uint64
	restart, checking time.Duration
	resent, subjects  int
	requests          int
}

// figures are the counts of findings a cut is judged by.
type figures struct {
	lost, unreadable, unaudited, broken, erasedLeft, retryDiffers, resurrected, duplicated int
}

func (h *harness) figures() figures {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.figuresLocked()
}

func (f figures) minus(g figures) figures {
	return figures{
		f.lost - g.lost, f.unreadable - g.unreadable, f.unaudited - g.unaudited, f.broken - g.broken,
		f.erasedLeft - g.erasedLeft, f.retryDiffers - g.retryDiffers, f.resurrected - g.resurrected, f.duplicated - g.duplicated,
	}
}

// powercutMix is the power-cut test's load: the campaign's requests, and
// consents, rights requests and reads.
var powercutMix = mix{create: 0.08, ops: []workerOp{
	{0.22, (*worker).rectify},
	{0.36, (*worker).addHistory},
	{0.48, (*worker).consent},
	{0.56, (*worker).disclose},
	{0.72, (*worker).rightsRequest},
	{0.97, (*worker).read},
	{1, (*worker).eraseUnlessRequested},
}}

// runPowerCuts mounts the filesystem, starts the daemon on it with the
// durability given, runs the load, and cuts the power -powercut.cuts times,
// checking everything after each.
func runPowerCuts(t *testing.T, bin string, durability store.Durability, seed uint64) *powerCut {
	pfs, mnt := mountPowerCut(t)
	began := time.Now()
	h := startHarness(t, t.TempDir(), bin, filepath.Join(mnt, "data"), "powercut", seed,
		"-durability", string(durability), "-drain-delay", "0s")
	h.mix = powercutMix
	p := &powerCut{harness: h, pfs: pfs, durability: durability, began: began}
	ctx := context.Background()
	p.mailer = h.principal(ctx, "powercut-mailer", pdv1.PrincipalKind_PRINCIPAL_KIND_MAILER, nil)
	p.seedSubjects(ctx)
	if durability == store.DurabilityNormal {
		// A graceful stop checkpoints the setup into the databases, so that
		// the principals the load uses outlive the cuts: the losses to show
		// are the load's.
		if err := h.d.stop(); err != nil {
			t.Fatalf("graceful stop after the setup: %v", err)
		}
		h.up.shut()
		h.restart()
	}
	logged, err := logSummary(h.d.log.Name())
	if err != nil {
		t.Fatal(err)
	}
	for line := range logged {
		p.warned = p.warned || strings.HasPrefix(line, "WARN durability normal")
	}
	switch {
	case durability == store.DurabilityNormal && !p.warned:
		t.Errorf("the daemon started with -durability normal did not warn of it at start: its WARN and ERROR lines are %v", logged)
	case durability == store.DurabilityFull && p.warned:
		t.Errorf("the daemon started with -durability full warned of durability normal")
	}
	t.Logf("started at -durability %s in %s: %d subjects, %d file syncs and %d directory syncs so far",
		durability, time.Since(began).Round(time.Millisecond), len(h.subjects), pfs.Stats().FileSyncs, pfs.Stats().DirSyncs)

	loadCtx, stopLoad := context.WithCancel(ctx)
	h.load = newBarrier(*powercutClients + 1) // the clients and the mailer
	var running sync.WaitGroup
	for i := range *powercutClients {
		w := h.worker(i, seed)
		running.Go(func() { w.run(loadCtx) })
	}
	running.Go(func() { p.mailerLoop(loadCtx, rand.New(rand.NewPCG(seed, 1000))) })
	t.Cleanup(func() { // should the test stop early
		stopLoad()
		h.load.resume()
		running.Wait()
	})

	for i := range *powercutCuts {
		if i > 0 {
			h.load.resume()
		}
		p.cutUnderLoad(ctx, i)
	}
	stopLoad()
	h.load.resume()
	running.Wait()
	if err := h.d.stop(); err != nil {
		t.Errorf("graceful stop: %v", err)
	}
	h.up.shut()
	return p
}

// seedSubjects creates each client's first subjects, four at a time over
// both transports.
func (p *powerCut) seedSubjects(ctx context.Context) {
	var wg sync.WaitGroup
	total := seedPerClient * *powercutClients
	for g := range 4 {
		via := client{rest: g%2 == 1, conn: p.conn, base: p.base, token: p.staff}
		wg.Go(func() {
			for k := g; k < total; k += 4 {
				if !p.createSubject(ctx, via, fmt.Sprintf("create-seed-%d", k), int(p.values.Add(1)), k%*powercutClients, nil) {
					p.t.Errorf("seeding: a create was refused")
					return
				}
			}
		})
	}
	wg.Wait()
}

// cutUnderLoad lets the load run 1.5 to 4 s, kills the daemon, cuts the
// power, reads the store as the cut left it, restarts the daemon, lets the
// clients resend what the kill interrupted, and checks the service.
func (p *powerCut) cutUnderLoad(ctx context.Context, round int) {
	t := p.t
	before, sent, acked, st := p.figures(), p.sent(), p.ackedCount(), p.pfs.Stats()
	began := time.Now()
	time.Sleep(time.Duration(1500+p.rng.IntN(2500)) * time.Millisecond)
	p.crash()
	r := cutRound{load: time.Since(began), attempts: p.sent() - sent, acked: p.ackedCount() - acked}
	synced := p.pfs.Stats()
	r.fileSyncs, r.dirSyncs = synced.FileSyncs-st.FileSyncs, synced.DirSyncs-st.DirSyncs
	rep, err := p.pfs.Cut()
	if err != nil {
		t.Fatalf("cut %d: %v", round+1, err)
	}
	r.cut = rep
	t.Logf("cut %d after %s of load: %s (reverted: %s)", round+1, r.load.Round(time.Millisecond), rep, reverted(rep))

	checking := time.Now()
	raw, err := readCopy(ctx, p.d.dataDir, t.TempDir())
	if err != nil {
		t.Fatalf("read the store after cut %d: %v", round+1, err)
	}
	p.inspectRaw(raw)
	restarting := time.Now()
	p.restart()
	r.restart = time.Since(restarting)
	if !p.load.pause(2 * time.Minute) {
		t.Fatalf("the clients did not settle their requests within two minutes of restart %d", round+1)
	}
	r.resent = p.resendSample(ctx, round)
	subs := p.untainted()
	r.subjects = len(subs)
	p.verify(ctx, subs, "principals", "tenants/company")
	r.requests = p.verifyRequests(ctx)
	p.verifyOutbox(ctx)
	p.taint()
	r.checking = time.Since(checking)
	r.found = p.figures().minus(before)
	p.rounds = append(p.rounds, r)
	t.Logf("cut %d: %d attempts, %d acknowledged; restart %s; %d resent, %d subjects and %d rights requests checked in %s; found %+v",
		round+1, r.attempts, r.acked, r.restart.Round(time.Millisecond), r.resent, r.subjects, r.requests, r.checking.Round(time.Millisecond), r.found)
}

func (h *harness) ackedCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n.acked
}

// reverted names the files a cut reverted, with the bytes each lost (the
// names are the store's files, no personal values).
func reverted(rep powercut.CutReport) string {
	var out []string
	for _, f := range rep.Reverted {
		out = append(out, fmt.Sprintf("%s %d→%d bytes, %d lost", f.Path, f.LiveSize, f.DurableSize, f.BytesLost))
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, "; ")
}

// readCopy copies the data directory, as a cut left it, to dst on the
// ordinary disk with plain reads (the -shm index, which SQLite rebuilds,
// and the socket left out), and reads the copy with readRaw. The store must
// not be opened in place: SQLite maps its files, and this process serves
// the filesystem.
func readCopy(ctx context.Context, dataDir, dst string) (*rawStore, error) {
	err := filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dataDir, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o700)
		case !d.Type().IsRegular() || strings.HasSuffix(path, "-shm"):
			return nil
		}
		return copyFile(path, to)
	})
	if err != nil {
		return nil, fmt.Errorf("copy the data directory: %w", err)
	}
	return readRaw(ctx, dst)
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// resendSample resends, as they were first sent, up to resendPerKind
// requests of each kind acknowledged before the cut of this round: each
// must answer as it did the first time (the checks after it find whether
// one applied twice). Erasures are resent for erased subjects, the rest for
// subjects not erased. No request may be in flight.
func (p *powerCut) resendSample(ctx context.Context, round int) int {
	p.mu.Lock()
	byWhat := map[string][]*ackedRequest{}
	for _, a := range p.acked {
		if a.epoch > round || a.s.tainted || (a.what == "erase") != a.s.erased || (a.s.erasing && !a.s.erased) {
			continue
		}
		byWhat[a.what] = append(byWhat[a.what], a)
	}
	var sample []*ackedRequest
	for _, what := range slices.Sorted(maps.Keys(byWhat)) {
		list := byWhat[what]
		p.rng.Shuffle(len(list), func(i, j int) { list[i], list[j] = list[j], list[i] })
		sample = append(sample, list[:min(resendPerKind, len(list))]...)
	}
	p.n.resent += len(sample)
	p.mu.Unlock()
	parallel(sample, func(a *ackedRequest) {
		resp := a.first.ProtoReflect().New().Interface()
		err := p.checkCallErr(ctx, a.via, a.method, a.req, resp)
		p.mu.Lock()
		defer p.mu.Unlock()
		switch {
		case err != nil:
			p.n.retryDiffers.add(a.what+" resent: "+outcome(err), a.s.id+" "+idempotencyKey(a.req), 1)
		case answerOf(a.method, resp) != answerOf(a.method, a.first):
			p.n.retryDiffers.add(a.what+" resent: answered otherwise than the first time", a.s.id+" "+idempotencyKey(a.req), 1)
			p.t.Logf("%s resent for subject %s: answered %q, first %q", a.what, a.s.id, answerOf(a.method, resp), answerOf(a.method, a.first))
		}
	})
	return len(sample)
}

// idempotencyKey is the key of a request (none is personal).
func idempotencyKey(req proto.Message) string {
	m := req.ProtoReflect()
	if f := m.Descriptor().Fields().ByName("idempotency_key"); f != nil {
		return m.Get(f).String()
	}
	return ""
}

// eraseUnlessRequested erases s, unless the worker's rights request in
// progress is about it: then it reads it.
func (w *worker) eraseUnlessRequested(ctx context.Context, key string, s *subject) {
	if w.req != nil && w.req.s == s {
		w.read(ctx, key, s)
		return
	}
	w.erase(ctx, key, s)
}

// read reads s as support staff, whole (AccessSubject) or for invoicing
// (GetSubjectForPurpose), and counts each read answered.
func (w *worker) read(ctx context.Context, _ string, s *subject) {
	if w.rng.IntN(2) == 0 {
		send(ctx, w.h, "read", w.staff, accessRPC, &pdv1.AccessSubjectRequest{SubjectId: s.id},
			func(*pdv1.AccessSubjectResponse) { s.reads[accessRPC]++ })
		return
	}
	send(ctx, w.h, "read", w.staff, forPurposeRPC, &pdv1.GetSubjectForPurposeRequest{SubjectId: s.id, Purpose: pdv1.Purpose_PURPOSE_INVOICING},
		func(*pdv1.GetSubjectForPurposeResponse) { s.reads[forPurposeRPC]++ })
}

// consent withdraws the subject's live consent to direct marketing, or
// records one when none is live.
func (w *worker) consent(ctx context.Context, key string, s *subject) {
	n := w.h.values.Add(1)
	for _, id := range slices.Sorted(maps.Keys(s.consents)) {
		if s.consents[id] {
			continue
		}
		req := &pdv1.WithdrawConsentRequest{
			IdempotencyKey: "withdraw-" + key, SubjectId: s.id, ConsentId: id,
			Channel: pdv1.Channel_CHANNEL_EMAIL, Reference: fmt.Sprintf("ticket-%d", n),
		}
		send(ctx, w.h, "withdraw consent", w.staff, withdrawConsentRPC, req, func(r *pdv1.WithdrawConsentResponse) {
			if r.GetConsent().GetConsentId() != id || r.GetConsent().GetWithdrawTime() == nil {
				w.h.n.lost.add("consent withdrawal: answered with another consent, or not withdrawn", s.id, 1)
			}
			s.consents[id] = true
			s.touched = true
			w.h.remember("consent", w.staff, withdrawConsentRPC, req, r, s)
		})
		return
	}
	req := &pdv1.RecordConsentRequest{
		IdempotencyKey: "consent-" + key, SubjectId: s.id, Purpose: pdv1.ConsentPurpose_CONSENT_PURPOSE_DIRECT_MARKETING,
		GiveTime: timestamppb.New(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)), Channel: pdv1.Channel_CHANNEL_PORTAL,
		WordingReference: "marketing-consent-v3",
	}
	send(ctx, w.h, "record consent", w.staff, recordConsentRPC, req, func(r *pdv1.RecordConsentResponse) {
		id := r.GetConsent().GetConsentId()
		if _, known := s.consents[id]; known {
			// The service holds a live consent the model says was withdrawn.
			w.h.n.lost.add("consent withdrawal: a new consent answered with a withdrawn one", s.id, 1)
		}
		s.consents[id] = false
		s.touched = true
		w.h.remember("consent", w.staff, recordConsentRPC, req, r, s)
	})
}

// rightsRequest takes the worker's rights request one step further: a
// request opened on s (the requester claims s's identity number), a code
// sent to the contact on file, the code the mailer got confirmed (or,
// should the mailer not have seen it after three turns, an identity check
// attested), and the request granted. One step per turn.
func (w *worker) rightsRequest(ctx context.Context, key string, s *subject) {
	if w.req != nil && (w.req.tainted || w.req.s.tainted) {
		w.req = nil
	}
	r := w.req
	switch {
	case r == nil && s.erasing:
		w.read(ctx, key, s)
	case r == nil:
		w.openRequest(ctx, key, s)
	case r.state == pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_RECEIVED && !r.codeSent:
		stepRequest(ctx, w, "send code", sendCodeRPC, &pdv1.SendVerificationCodeRequest{IdempotencyKey: "code-" + key, RequestId: r.id},
			func(m *pdv1.SendVerificationCodeResponse) *pdv1.RightsRequest { return m.GetRequest() })
	case r.state == pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_RECEIVED:
		w.h.mu.Lock()
		code, ok := w.h.outbox.codes[r.id]
		w.h.mu.Unlock()
		switch {
		case ok:
			stepRequest(ctx, w, "confirm code", confirmCodeRPC, &pdv1.ConfirmVerificationCodeRequest{IdempotencyKey: "confirm-" + key, RequestId: r.id, Code: code},
				func(m *pdv1.ConfirmVerificationCodeResponse) *pdv1.RightsRequest { return m.GetRequest() })
		case r.waited < 3:
			r.waited++
			w.read(ctx, key, r.s)
		default:
			stepRequest(ctx, w, "attest identity", attestRPC, &pdv1.AttestIdentityRequest{
				IdempotencyKey: "attest-" + key, RequestId: r.id, Method: pdv1.VerificationMethod_VERIFICATION_METHOD_BANKID,
				Reference: fmt.Sprintf("bankid-order-%d", w.h.values.Add(1)),
			}, func(m *pdv1.AttestIdentityResponse) *pdv1.RightsRequest { return m.GetRequest() })
		}
	case r.state == pdv1.RightsRequestState_RIGHTS_REQUEST_STATE_VERIFIED:
		stepRequest(ctx, w, "decide", decideRPC, &pdv1.DecideRightsRequestRequest{
			IdempotencyKey: "decide-" + key, RequestId: r.id,
			Outcome: pdv1.DecisionOutcome_DECISION_OUTCOME_GRANT, Reason: pdv1.DecisionReason_DECISION_REASON_RIGHT_APPLIES,
		}, func(m *pdv1.DecideRightsRequestResponse) *pdv1.RightsRequest { return m.GetRequest() })
	default:
		w.req = nil // granted: done
		w.read(ctx, key, s)
	}
}

// openRequest opens an access request by the subject s, by letter.
func (w *worker) openRequest(ctx context.Context, key string, s *subject) {
	req := &pdv1.OpenRightsRequestRequest{
		IdempotencyKey: "open-" + key, ControllerId: "company", Kind: pdv1.RightsRequestKind_RIGHTS_REQUEST_KIND_ACCESS,
		Channel:         pdv1.Channel_CHANNEL_LETTER,
		ClaimedIdentity: &pdv1.ClaimedIdentity{Key: &pdv1.ClaimedIdentity_IdentityNumber{IdentityNumber: s.person.GetIdentityNumber()}},
		Reference:       fmt.Sprintf("letter-%d", w.h.values.Add(1)),
	}
	send(ctx, w.h, "open rights request", w.staff, openRequestRPC, req, func(m *pdv1.OpenRightsRequestResponse) {
		got := m.GetRequest()
		r := &rightsRequest{id: got.GetRequestId(), s: s}
		if got.GetSubjectId() != s.id {
			w.h.n.lost.add("rights request: the claimed identity did not find its subject", s.id+" "+r.id, 1)
			return
		}
		w.h.acknowledgedStep(r, got)
		w.h.requests[r.id] = r
		w.req = r
	})
}

// stepRequest sends one step of the worker's rights request.
func stepRequest[R proto.Message](ctx context.Context, w *worker, what, method string, req proto.Message, request func(R) *pdv1.RightsRequest) {
	r := w.req
	if !send(ctx, w.h, what, w.staff, method, req, func(m R) { w.h.acknowledgedStep(r, request(m)) }) {
		w.req = nil // refused: left as it is
	}
}

// acknowledgedStep records what an acknowledged step answered of r: its
// state, its steps, and the messages its steps queued for the requester
// (the receipt, the code, the decision); h.mu held.
func (h *harness) acknowledgedStep(r *rightsRequest, got *pdv1.RightsRequest) {
	r.state = got.GetState()
	r.steps = len(got.GetSteps())
	for i, st := range got.GetSteps() {
		switch st.GetStep() {
		case "code_sent":
			r.codeSent = true
			fallthrough
		case "opened", "decided":
			h.outbox.owed[store.OutboxMessageID(r.id, i)] = r.id
		}
	}
}

// codePattern finds the code in a code message's body ("1234 5678").
var codePattern = regexp.MustCompile(`\b(\d{4}) (\d{4})\b`)

// mailerLoop is the company's mailer: it lists the outbox, over gRPC and
// REST in turn, keeps the code of each code message for the requester, and
// acknowledges most messages as sent (resending an acknowledgement the
// kill cut until it is answered). It parks with the clients for the checks.
// An acknowledged message it lists again during the load is counted apart
// and acknowledged again: a request's step resent after a kill may queue a
// message again for the moment between its look at the sent marks and its
// removal of the copy (store.EnqueueOutboxMessage); the checks, made with
// nothing in flight, count one listed after its acknowledgement as
// resurrected.
func (p *powerCut) mailerLoop(ctx context.Context, rng *rand.Rand) {
	for i := 0; ; i++ {
		p.load.checkpoint()
		if ctx.Err() != nil {
			return
		}
		via := client{rest: i%2 == 1, conn: p.conn, base: p.base, token: p.mailer}
		msgs, err := p.listOutbox(ctx, via)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		p.mu.Lock()
		p.outbox.listings++
		p.outbox.listed += len(msgs)
		for _, m := range msgs {
			if p.outbox.acked[m.GetMessageId()] {
				p.outbox.again++
			}
			if m.GetKind() == pdv1.OutboxMessageKind_OUTBOX_MESSAGE_KIND_VERIFICATION_CODE {
				if c := codePattern.FindStringSubmatch(m.GetBody()); c != nil {
					p.outbox.codes[m.GetRequestId()] = c[1] + c[2]
				}
			}
		}
		p.mu.Unlock()
		for _, m := range msgs {
			if rng.Float64() < 0.7 {
				id := m.GetMessageId()
				send(ctx, p.harness, "acknowledge outbox message", via, ackOutboxRPC, &pdv1.AcknowledgeOutboxMessageRequest{MessageId: id},
					func(*pdv1.AcknowledgeOutboxMessageResponse) { p.outbox.acked[id] = true })
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// listOutbox lists every unacknowledged message, page by page, once the
// daemon is up; each page is an attempt of the load.
func (p *powerCut) listOutbox(ctx context.Context, via client) ([]*pdv1.OutboxMessage, error) {
	var out []*pdv1.OutboxMessage
	for token := ""; ; {
		if err := p.up.wait(ctx); err != nil {
			return nil, err
		}
		var res pdv1.ListOutboxMessagesResponse
		actx, cancel := context.WithTimeout(ctx, requestTimeout)
		err := via.call(actx, listOutboxRPC, &pdv1.ListOutboxMessagesRequest{PageSize: 100, PageToken: token}, &res)
		cancel()
		if err != nil && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		p.mu.Lock()
		p.count(via.transport(), outcome(err))
		if err == nil {
			p.n.acked++
		} else if !transient(outcome(err)) {
			p.n.refused["list outbox "+outcome(err)]++
		}
		p.mu.Unlock()
		if err != nil {
			return nil, err
		}
		out = append(out, res.GetMessages()...)
		if token = res.GetNextPageToken(); token == "" {
			return out, nil
		}
	}
}

// verifyRequests reads every rights request acknowledged and not found
// wrong: each must be in the state its last acknowledged step answered,
// with exactly its steps (none lost, none applied twice). It returns how
// many it read. No request may be in flight.
func (p *powerCut) verifyRequests(ctx context.Context) int {
	p.mu.Lock()
	var reqs []*rightsRequest
	for _, id := range slices.Sorted(maps.Keys(p.requests)) {
		if r := p.requests[id]; !r.tainted {
			reqs = append(reqs, r)
		}
	}
	p.mu.Unlock()
	staff := client{conn: p.conn, token: p.staff}
	parallel(reqs, func(r *rightsRequest) {
		var got pdv1.GetRightsRequestResponse
		err := p.checkCallErr(ctx, staff, getRequestRPC, &pdv1.GetRightsRequestRequest{RequestId: r.id}, &got)
		p.mu.Lock()
		defer p.mu.Unlock()
		switch {
		case status.Code(err) == codes.NotFound:
			p.n.lost.add("rights request", r.id, 1)
		case status.Code(err) == codes.Internal:
			p.n.unreadable.add("GetRightsRequest answers INTERNAL", r.id, 1)
		case err != nil:
		default:
			if got.GetRequest().GetState() != r.state {
				p.n.lost.add("rights request: the state its last acknowledged step answered", r.id, 1)
			}
			p.diff("rights request step", r.id, r.steps, len(got.GetRequest().GetSteps()))
		}
	})
	return len(reqs)
}

// verifyOutbox lists the outbox as the mailer: every message an
// acknowledged step queued must be listed or acknowledged by the mailer, and
// none it acknowledged may be listed again. No request may be in flight.
func (p *powerCut) verifyOutbox(ctx context.Context) {
	mailer := client{conn: p.conn, token: p.mailer}
	var listed []*pdv1.OutboxMessage
	for token := ""; ; {
		var res pdv1.ListOutboxMessagesResponse
		if !p.checkCall(ctx, mailer, listOutboxRPC, &pdv1.ListOutboxMessagesRequest{PageSize: 100, PageToken: token}, &res) {
			return
		}
		listed = append(listed, res.GetMessages()...)
		if token = res.GetNextPageToken(); token == "" {
			break
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	there := map[string]bool{}
	for _, m := range listed {
		id := m.GetMessageId()
		there[id] = true
		if p.outbox.acked[id] {
			p.n.resurrected.add("outbox message listed again after its acknowledgement", id, 1)
		}
	}
	for id, req := range p.outbox.owed {
		if r := p.requests[req]; (r == nil || !r.tainted) && !there[id] && !p.outbox.acked[id] {
			p.n.lost.add("outbox message, neither listed nor acknowledged", id, 1)
		}
	}
}

// losses counts what shows an acknowledged write or an answered read's
// audit event missing.
func (p *powerCut) losses() int {
	f := p.figures()
	return f.lost + f.unreadable + f.unaudited + f.erasedLeft
}

// clean says nothing was found wrong: no finding, no refusal, no failed
// check, no internal error.
func (p *powerCut) clean() bool {
	f := p.figures()
	p.mu.Lock()
	defer p.mu.Unlock()
	internal := 0
	for code, by := range p.n.byCode {
		if code == "Internal" || code == "Unknown" || strings.HasPrefix(code, "HTTP 5") {
			internal += by["gRPC"] + by["REST"]
		}
	}
	return f == (figures{}) && len(p.n.refused) == 0 && len(p.n.retryRefused) == 0 && len(p.n.checkErrors) == 0 &&
		internal == 0 && p.n.selfExits == 0 && len(p.rounds) == *powercutCuts
}

// report logs the run's table: per cut, the load, what was found, what the
// cut forgot and the syncs the filesystem saw.
func (p *powerCut) report() {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := &p.n
	var b strings.Builder
	fmt.Fprintf(&b, "power-cut test, -durability %s: %s, %d clients (gRPC and REST) and a mailer, %d cuts (kill -9, then the power)\n",
		p.durability, time.Since(p.began).Round(time.Second), *powercutClients, len(p.rounds))
	fmt.Fprintf(&b, "%-4s %-7s %-8s %-6s %-5s %-10s %-15s %-13s %-20s %-14s %-11s %-5s %-13s %s\n",
		"cut", "load", "attempts", "acked", "lost", "unreadable", "unaudited-reads", "broken-chains", "resurrected-erasures", "retries-differ", "outbox-back", "dup", "syncs f/d", "what the cut forgot")
	var sum cutRound
	for i, r := range p.rounds {
		f := r.found
		fmt.Fprintf(&b, "%-4d %-7s %-8d %-6d %-5d %-10d %-15d %-13d %-20d %-14d %-11d %-5d %-13s %s\n",
			i+1, r.load.Round(100*time.Millisecond), r.attempts, r.acked, f.lost, f.unreadable, f.unaudited, f.broken,
			f.erasedLeft, f.retryDiffers, f.resurrected, f.duplicated, fmt.Sprintf("%d/%d", r.fileSyncs, r.dirSyncs), r.cut)
		sum.attempts += r.attempts
		sum.acked += r.acked
		sum.fileSyncs += r.fileSyncs
		sum.dirSyncs += r.dirSyncs
		sum.resent += r.resent
	}
	f := p.figuresLocked()
	fmt.Fprintf(&b, "%-4s %-7s %-8d %-6d %-5d %-10d %-15d %-13d %-20d %-14d %-11d %-5d %-13s\n",
		"all", "", sum.attempts, sum.acked, f.lost, f.unreadable, f.unaudited, f.broken, f.erasedLeft, f.retryDiffers, f.resurrected, f.duplicated,
		fmt.Sprintf("%d/%d", sum.fileSyncs, sum.dirSyncs))
	st := p.pfs.Stats()
	fmt.Fprintf(&b, "filesystem                 %d file syncs, %d directory syncs, %d cuts in all (setup included)\n", st.FileSyncs, st.DirSyncs, st.Cuts)
	fmt.Fprintf(&b, "requests                   %d attempts, %d acknowledged (%d only when resent after a cut)\n", n.sent, n.acked, n.ackedOnRetry)
	fmt.Fprintf(&b, "statuses by code           %-8s %-8s\n", "gRPC", "REST")
	for _, code := range slices.Sorted(maps.Keys(n.byCode)) {
		fmt.Fprintf(&b, "  %-24s %-8d %-8d\n", code, n.byCode[code]["gRPC"], n.byCode[code]["REST"])
	}
	reads := map[string]int{}
	consents, tainted := 0, 0
	for _, s := range p.subjects {
		for rpc, k := range s.reads {
			reads[rpc[strings.LastIndexByte(rpc, '/')+1:]] += k
		}
		consents += len(s.consents)
		if s.tainted {
			tainted++
		}
	}
	fmt.Fprintf(&b, "subjects                   %d (%d erased, %d found wrong and left out since), %d consents, reads answered %v\n",
		len(p.subjects), countErased(p.subjects), tainted, consents, reads)
	states := map[string]int{}
	for _, r := range p.requests {
		states[strings.TrimPrefix(r.state.String(), "RIGHTS_REQUEST_STATE_")]++
	}
	fmt.Fprintf(&b, "rights requests            %d %v; outbox: %d messages owed, %d acknowledged, %d listings (%d listed again during the load after their acknowledgement)\n",
		len(p.requests), states, len(p.outbox.owed), len(p.outbox.acked), p.outbox.listings, p.outbox.again)
	fmt.Fprintf(&b, "resent after the cuts      %d acknowledged requests, %d answered otherwise %v\n", sum.resent, n.retryDiffers.total(), n.retryDiffers.byKind)
	fmt.Fprintf(&b, "lost                       %d %v\n", n.lost.total(), n.lost.byKind)
	fmt.Fprintf(&b, "unreadable                 %d %v\n", n.unreadable.total(), n.unreadable.byKind)
	fmt.Fprintf(&b, "reads without audit event  %d %v\n", n.unaudited.total(), n.unaudited.byKind)
	fmt.Fprintf(&b, "left of acknowledged erasures %d %v\n", n.erasedLeft.total(), n.erasedLeft.byKind)
	fmt.Fprintf(&b, "outbox messages back       %d %v\n", n.resurrected.total(), n.resurrected.byKind)
	fmt.Fprintf(&b, "duplicated                 %d %v\n", n.duplicated.total(), n.duplicated.byKind)
	fmt.Fprintf(&b, "refused outright           %v; resends refused %v\n", n.refused, n.retryRefused)
	n.writeRestarts(&b)
	if logged, err := logSummary(p.d.log.Name()); err == nil {
		fmt.Fprintf(&b, "daemon log, WARN and ERROR %v\n", logged)
	}
	fmt.Fprintf(&b, "checks                     %d calls, %d audit chains verified, %d broken, failures %v\n", n.checks, n.chains, n.broken.total(), n.checkErrors)
	p.t.Log("\n" + b.String())
}

// figuresLocked is figures with h.mu held.
func (h *harness) figuresLocked() figures {
	n := &h.n
	return figures{
		lost: n.lost.total(), unreadable: n.unreadable.total(), unaudited: n.unaudited.total(), broken: n.broken.total(),
		erasedLeft: n.erasedLeft.total(), retryDiffers: n.retryDiffers.total(), resurrected: n.resurrected.total(),
		duplicated: n.duplicated.total(),
	}
}
