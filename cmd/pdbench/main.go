// Command pdbench is a load benchmark of personaldatad. It shows what the
// service costs on top of its database, as a ratio to the raw MongoDB driver
// doing the nearest equivalent work on the same store and database.
//
// It seeds -subjects made-up subjects through CreateSubject, then, for each
// number of clients in -clients (1, 8 and 32 by default), runs each
// operation in turn for -duration with that many goroutines against random
// seeded subjects and records the latency of every call. The service is
// called over gRPC, or over the REST gateway with -transport rest:
//
//	create         CreateSubject of a new subject
//	access         AccessSubject
//	purpose        GetSubjectForPurpose with PURPOSE_INVOICING
//	rectify        RectifySubject of the phone with the current expected_version
//	driver-read    FindOne {_id} on subjects, decoded to bson.Raw
//	driver-write   FindOne {_id}, then ReplaceOne {_id} of the same document
//	               with v incremented (what a rectification does underneath)
//	driver-insert  InsertOne of a copy of a subject document with a new _id
//
// The writes (rectify, driver-write) partition the subjects among the
// goroutines, so no two goroutines change the same subject. Every driver
// filter is exactly {_id: <string>}, the only filter the embedded store
// pushes down. The driver client uses the options the service's store uses
// (majority write concern, 30 s timeout, no retryable writes on the embedded
// store). It prints the durability the server runs with, a table of calls,
// errors, throughput and p50/p99 latency per number of clients and
// operation, then the ratios service/driver: access and purpose against
// driver-read, rectify against driver-write, create against driver-insert.
//
// The table also gives the server's CPU time (user+system) per successful
// call, read from /proc before and after each operation, and pdbench's own.
//
// Without -addr it runs the real server (server.New on 127.0.0.1:0) with an
// embedded store in a fresh temporary directory, removed afterwards, in a
// child process: its own binary again, with PDBENCH_SERVE=1 in the
// environment and the database name and durability as arguments. So the
// server's CPU time is its own, the embedded store's included, which makes
// the server column of the driver-* operations the store's CPU per call. The
// child writes one JSON line to stdout (gRPC and HTTP addresses, store URI,
// operator token, data directory),
// then obeys "profile-start FILE" and "profile-stop" lines on stdin, and shuts
// down when stdin ends (the parent exits or dies) or on SIGINT or SIGTERM.
// The driver part talks to the child's store:
//
//	go run ./cmd/pdbench -subjects 20000 -duration 10s
//
// With -addr (and -http-addr for REST) it benchmarks a running
// personaldatad and needs -mongo-uri for the driver part; the subjects it
// creates, and the documents driver-write touches, stay behind, so point it
// at a database of its own. -server-pid names that personaldatad's process
// on this machine for its CPU time:
//
//	go run ./cmd/pdbench -addr 127.0.0.1:50051 -mongo-uri mongodb://127.0.0.1:27017 -database pdbench -server-pid 1234
//
// -ops runs a subset (e.g. -ops access,driver-read). -cpuprofile FILE
// profiles the server child during the operations only, not the seeding nor
// pdbench's client (go tool pprof -top FILE); with -addr it profiles pdbench
// itself, seeding included.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/example/personaldata/cmd/personaldatad/server"
	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store"
)

func main() {
	if os.Getenv(serveEnv) == "1" {
		if err := serveChild(os.Args[1:]); err != nil {
			fmt.Fprintln(os.Stderr, "pdbench server:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := realMain(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pdbench:", err)
		os.Exit(1)
	}
}

// allOps are the operations in the order they run. The driver's reads come
// right after the service's, before any rectification grows the documents
// (each adds a change and an idempotency record), so both read the same
// documents.
func allOps() []string {
	return []string{"create", "access", "purpose", "driver-read", "rectify", "driver-write", "driver-insert"}
}

// config is the command line.
type config struct {
	subjects       int
	clients        []int
	duration       time.Duration
	transport      string // "grpc" or "rest"
	durability     store.Durability
	addr, httpAddr string
	mongoURI       string
	token          string
	database       string
	ops            []string
	cpuProfile     string
	serverPID      int
	spans          bool
	// breachWindow, when set, times one breach-impact report over the
	// window ending now, after the operations (the server pdbench starts).
	breachWindow time.Duration
}

// maxClients is the largest number of clients the run uses.
func (c config) maxClients() int { return slices.Max(c.clients) }

func parseFlags(args []string) (config, error) {
	var c config
	var ops, clients, durability string
	fs := flag.NewFlagSet("pdbench", flag.ContinueOnError)
	fs.IntVar(&c.subjects, "subjects", 1000, "subjects to seed")
	fs.StringVar(&clients, "clients", "1,8,32", "comma-separated numbers of concurrent clients; every operation runs with each")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long each operation runs")
	fs.StringVar(&c.transport, "transport", "grpc", "how the service is called: grpc, or rest (the REST gateway)")
	fs.StringVar(&durability, "durability", string(store.DurabilityFull), "durability of the server pdbench starts: full, or normal (see personaldatad -durability)")
	fs.StringVar(&c.addr, "addr", "", "gRPC address of a running personaldatad; empty starts the server in a child process on an embedded store")
	fs.StringVar(&c.httpAddr, "http-addr", "", "with -addr and -transport rest: the HTTP address of that personaldatad's REST gateway")
	fs.StringVar(&c.token, "token", os.Getenv("PDBENCH_TOKEN"), "bearer token with -addr (env PDBENCH_TOKEN): a principal acting for \"company\" with CreateSubject, AccessSubject, RectifySubject and GetSubjectForPurpose (PURPOSE_INVOICING)")
	fs.StringVar(&c.mongoURI, "mongo-uri", "", "MongoDB URI of the store behind -addr, for the driver operations (in-process, the embedded store's is used)")
	fs.StringVar(&c.database, "database", "personaldata", "database name")
	fs.StringVar(&ops, "ops", strings.Join(allOps(), ","), "comma-separated operations to run")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile to this file: of the server during the operations (not the seeding); with -addr, of pdbench itself")
	fs.IntVar(&c.serverPID, "server-pid", 0, "with -addr: pid of that personaldatad on this machine, to measure its CPU time per call")
	fs.DurationVar(&c.breachWindow, "breach-window", 0, "after the operations, time one breach-impact report (AssessBreachImpact, as an operator) of the window this long that ends now, proved against a checkpoint taken first; for the server pdbench starts")
	fs.BoolVar(&c.spans, "spans", false, "trace every call in the server child and print where a call's time went, span by span (tracing costs some CPU of its own)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	for _, n := range strings.Split(clients, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(n))
		if err != nil || k < 1 {
			return c, fmt.Errorf("-clients: %q is not a positive number", n)
		}
		c.clients = append(c.clients, k)
	}
	var err error
	if c.durability, err = store.ParseDurability(durability); err != nil {
		return c, fmt.Errorf("-durability: %w", err)
	}
	durabilitySet := false
	fs.Visit(func(f *flag.Flag) { durabilitySet = durabilitySet || f.Name == "durability" })
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	case c.subjects < 1 || c.duration <= 0:
		return c, errors.New("-subjects and -duration must be positive")
	case c.subjects < c.maxClients():
		return c, errors.New("-subjects must be at least the largest number of -clients: the writes give each goroutine subjects of its own")
	case c.transport != "grpc" && c.transport != "rest":
		return c, fmt.Errorf("-transport: %q is neither grpc nor rest", c.transport)
	case c.addr != "" && c.transport == "rest" && c.httpAddr == "":
		return c, errors.New("-addr with -transport rest needs -http-addr")
	case c.addr == "" && c.httpAddr != "":
		return c, errors.New("-http-addr goes with -addr")
	case c.addr != "" && c.breachWindow != 0:
		return c, errors.New("-breach-window is for the server pdbench starts")
	case c.addr != "" && c.spans:
		return c, errors.New("-spans is for the server pdbench starts")
	case c.addr != "" && durabilitySet:
		return c, errors.New("-durability is for the server pdbench starts; a running server has its own")
	case c.addr != "" && c.token == "":
		return c, errors.New("-addr needs -token")
	case c.addr == "" && c.mongoURI != "":
		return c, errors.New("-mongo-uri goes with -addr: in-process the driver uses the embedded store")
	case c.serverPID < 0:
		return c, errors.New("-server-pid must be positive")
	case c.addr == "" && c.serverPID != 0:
		return c, errors.New("-server-pid goes with -addr: pdbench measures the server it starts itself")
	case c.addr != "" && c.mongoURI == "" && usesDriver(ops):
		return c, errors.New("-addr needs -mongo-uri for the driver operations")
	}
	for _, op := range strings.Split(ops, ",") {
		if op = strings.TrimSpace(op); op == "" {
			continue
		}
		if !slices.Contains(allOps(), op) {
			return c, fmt.Errorf("-ops: unknown operation %q (known: %s)", op, strings.Join(allOps(), ", "))
		}
		c.ops = append(c.ops, op)
	}
	return c, nil
}

func usesDriver(ops string) bool { return strings.Contains(ops, "driver-") }

func realMain(ctx context.Context) error {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		return err
	}
	if cfg.cpuProfile != "" {
		// Without -addr the server child writes the profile; creating the
		// file here too makes a bad path fail before the seeding.
		f, err := os.Create(cfg.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if cfg.addr != "" {
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
			defer pprof.StopCPUProfile()
		} else if cfg.cpuProfile, err = filepath.Abs(cfg.cpuProfile); err != nil {
			return err
		}
	}

	target := "personaldatad at " + cfg.addr
	durability := "as the server at -addr is configured"
	grpcAddr, httpAddr, mongoURI, token := cfg.addr, cfg.httpAddr, cfg.mongoURI, cfg.token
	// dataDir is the embedded store's folder, when this run started one.
	var dataDir string
	// serverProc is the server child, when this run started one.
	var serverProc *serverProcess
	serverCPU, serverNote := cpuMeter(nil), "- without -server-pid"
	runID := fmt.Sprintf("%08x", rand.Uint32()) // keeps idempotency keys and people of different runs apart
	firstPerson := 0
	if cfg.addr == "" {
		p, err := startServerProcess(ctx, cfg.database, cfg.durability, cfg.spans)
		if err != nil {
			return err
		}
		defer p.stop()
		serverProc, dataDir = p, p.info.DataDir
		if token, err = benchPrincipal(ctx, p.info.GRPCAddr, p.info.OperatorToken); err != nil {
			return err
		}
		grpcAddr, httpAddr, mongoURI = p.info.GRPCAddr, p.info.HTTPAddr, p.info.StoreURI
		durability = string(cfg.durability)
		target = fmt.Sprintf("server in a child process (pid %d), embedded store in a temporary directory", p.pid())
		serverCPU = procCPU(p.pid())
		serverNote = fmt.Sprintf("the server process (pid %d), embedded store included: for driver-* it is the store's CPU per call", p.pid())
	} else {
		// A running service may hold subjects from earlier runs: start the
		// made-up people somewhere else in their range.
		firstPerson = rand.IntN(maxPeople / 2)
		if cfg.serverPID != 0 {
			serverCPU = procCPU(cfg.serverPID)
			if _, err := serverCPU(); err != nil {
				return fmt.Errorf("-server-pid: %w", err)
			}
			target += fmt.Sprintf(" (pid %d)", cfg.serverPID)
			serverNote = fmt.Sprintf("personaldatad (pid %d); driver-* calls bypass it, so for them it shows the store's CPU only if the store is embedded in it", cfg.serverPID)
		}
	}

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(bearer(token)))
	if err != nil {
		return fmt.Errorf("dial %s: %w", grpcAddr, err)
	}
	defer conn.Close()
	var client api = pdv1.NewPersonalDataServiceClient(conn)
	seeder := client
	if cfg.transport == "rest" {
		client = newRESTAPI("http://"+httpAddr, token, cfg.maxClients())
	}

	var coll *mongo.Collection
	if mongoURI != "" {
		opts := options.Client().ApplyURI(mongoURI).
			SetWriteConcern(writeconcern.Majority()).
			SetTimeout(30 * time.Second).
			SetRetryWrites(cfg.addr != "") // as the store: FerretDB has no sessions
		mc, err := mongo.Connect(opts)
		if err != nil {
			return fmt.Errorf("connect to the store: %w", err)
		}
		// Deferred after stop, so it runs first: the embedded store waits
		// for open connections when it closes.
		defer mc.Disconnect(context.WithoutCancel(ctx))
		coll = mc.Database(cfg.database).Collection("subjects")
	}

	fmt.Printf("pdbench: %d subjects, clients %s, %v per operation, over %s, %s, GOMAXPROCS %d, %d CPUs\n",
		cfg.subjects, joinInts(cfg.clients), cfg.duration, cfg.transport, runtime.Version(), runtime.GOMAXPROCS(0), runtime.NumCPU())
	fmt.Printf("target: %s\ndurability: %s\n\n", target, durability)

	b := &bench{cfg: cfg, client: client, seeder: seeder, coll: coll, runID: runID, serverCPU: serverCPU, clientCPU: procCPU(os.Getpid())}
	b.nextPerson.Store(int64(firstPerson))
	if err := b.seed(ctx); err != nil {
		return err
	}
	if dataDir != "" {
		if n, err := diskBytes(dataDir); err == nil && cfg.subjects > 0 {
			fmt.Printf("store files after seeding: %.1f MB, %.1f KB per subject (documents, audit trail, keys)\n\n",
				float64(n)/1e6, float64(n)/1e3/float64(cfg.subjects))
		}
	}

	profiling := serverProc != nil && cfg.cpuProfile != ""
	if profiling {
		if err := serverProc.command(cmdProfileStart + " " + cfg.cpuProfile); err != nil {
			return fmt.Errorf("start the server's CPU profile: %w", err)
		}
	}
	var results []result
	for _, clients := range cfg.clients {
		for _, op := range cfg.ops {
			if cfg.spans { // the seeding's, or the last operation's
				if _, err := serverProc.query(cmdSpans); err != nil {
					return err
				}
			}
			r, err := b.run(ctx, op, clients)
			if err != nil {
				return fmt.Errorf("%s with %d clients: %w", op, clients, err)
			}
			if cfg.spans {
				answer, err := serverProc.query(cmdSpans)
				if err != nil {
					return err
				}
				if err := json.Unmarshal([]byte(answer), &r.spans); err != nil {
					return fmt.Errorf("the server's spans: %w", err)
				}
			}
			if ctx.Err() != nil {
				break
			}
			fmt.Printf("  %3d clients, %-13s done: %d calls, %d errors\n", clients, op, r.calls, r.errors)
			results = append(results, r)
		}
	}
	if profiling {
		// After an interrupt the child may have ended already, its
		// profile written out on the way.
		if err := serverProc.command(cmdProfileStop); err != nil && ctx.Err() == nil {
			return fmt.Errorf("stop the server's CPU profile: %w", err)
		}
		fmt.Printf("\nCPU profile of the server during the operations: %s\n", cfg.cpuProfile)
	}
	printResults(cfg, durability, results, serverNote)
	if cfg.breachWindow > 0 && ctx.Err() == nil {
		if err := timeBreachImpact(ctx, grpcAddr, serverProc.info.OperatorToken, cfg.breachWindow); err != nil {
			return fmt.Errorf("-breach-window: %w", err)
		}
	}
	return ctx.Err()
}

// timeBreachImpact takes a checkpoint, then times one breach-impact report
// of the window that ends now, read to its end, and prints it.
func timeBreachImpact(ctx context.Context, addr, operator string, window time.Duration) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(bearer(operator)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
	if err != nil {
		return err
	}
	defer conn.Close()
	cp, err := pdv1.NewAuditServiceClient(conn).CreateAuditCheckpoint(ctx, &pdv1.CreateAuditCheckpointRequest{})
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	start := time.Now()
	stream, err := pdv1.NewBreachServiceClient(conn).AssessBreachImpact(ctx, &pdv1.AssessBreachImpactRequest{StartTime: timestamppb.New(start.Add(-window))})
	if err != nil {
		return err
	}
	var sum *pdv1.BreachSummary
	var chains, broken, proved int64
	for {
		res, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if s := res.GetSummary(); s != nil {
			sum = s
		}
		if c := res.GetChain(); c != nil {
			chains++
			proved += c.GetCheck().GetEvents()
			if !c.GetCheck().GetIntact() {
				broken++
			}
		}
	}
	fmt.Printf("\nbreach impact of the last %v: %.1f s for %d events in %d chains (%d subjects), %d events proved against the checkpoint of %d events, %d chains broken\n",
		window, time.Since(start).Seconds(), sum.GetEvents(), chains, sum.GetSubjects(), proved, cp.GetCheckpoint().GetTreeSize(), broken)
	return nil
}

// bearer sends a bearer token with every call.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity is false: the benchmark talks to loopback.
func (bearer) RequireTransportSecurity() bool { return false }

// benchPrincipal has the operator create the principal the benchmark calls
// as, support staff of the company allowed invoicing, and returns its token.
func benchPrincipal(ctx context.Context, addr, operator string) (string, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(bearer(operator)))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	res, err := pdv1.NewPrincipalServiceClient(conn).CreatePrincipal(ctx, &pdv1.CreatePrincipalRequest{
		IdempotencyKey: "pdbench",
		Principal: &pdv1.Principal{
			PrincipalId: "pdbench", Kind: pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF,
			TenantIds: []string{"company"}, Purposes: []pdv1.Purpose{pdv1.Purpose_PURPOSE_INVOICING},
		},
	})
	if err != nil {
		return "", fmt.Errorf("create the benchmark's principal: %w", err)
	}
	return res.GetToken(), nil
}

// startServer starts the real server with an embedded store in a fresh
// temporary directory and returns it with the first operator's token. stop
// shuts it down and removes the directory.
func startServer(ctx context.Context, database string, durability store.Durability, spans *spanAggregator) (*server.Server, string, string, func(), error) {
	dir, err := os.MkdirTemp("", "pdbench-*")
	if err != nil {
		return nil, "", "", nil, err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	tokenFile := filepath.Join(dir, "operator.token")
	var tp trace.TracerProvider
	if spans != nil {
		tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	}
	srv, err := server.New(ctx, server.Config{
		TracerProvider:    tp,
		GRPCAddr:          "127.0.0.1:0",
		HTTPAddr:          "127.0.0.1:0",
		Store:             store.Config{DataDir: filepath.Join(dir, "data"), Database: database, Durability: durability},
		OperatorTokenFile: tokenFile,
		Keys:              server.KeysConfig{KeyFile: filepath.Join(dir, "keyring.json"), CreateKeyFile: true},
	}, log)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", "", nil, err
	}
	operator, err := os.ReadFile(tokenFile)
	if err != nil {
		_ = srv.Close()
		_ = os.RemoveAll(dir)
		return nil, "", "", nil, err
	}
	// The server outlives an interrupt long enough for the clients to close.
	serveCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(serveCtx) }()
	stop := func() {
		cancel()
		if err := <-served; err != nil {
			fmt.Fprintln(os.Stderr, "pdbench: server:", err)
		}
		if err := os.RemoveAll(dir); err != nil {
			fmt.Fprintln(os.Stderr, "pdbench:", err)
		}
	}
	return srv, strings.TrimSpace(string(operator)), dir, stop, nil
}

// diskBytes is the size of the regular files in dir: the embedded store's
// database, its write-ahead log and shared memory.
func diskBytes(dir string) (int64, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
	}
	return n, nil
}

// bench holds what the operations share.
type bench struct {
	cfg    config
	client api               // over the transport measured
	seeder api               // over gRPC, which seeds
	coll   *mongo.Collection // nil without a store URI
	runID  string

	// serverCPU measures the server's CPU time, nil when it is unknown;
	// clientCPU this process's.
	serverCPU, clientCPU cpuMeter

	// ids are the seeded subjects' ids; versions their versions as the
	// rectifying goroutine that owns each subject last saw them.
	ids      []string
	versions []int64

	nextPerson atomic.Int64 // the next made-up person to create
	nextKey    atomic.Int64 // makes idempotency keys unique
}

func (b *bench) key(op string) string {
	return fmt.Sprintf("pdbench-%s-%s-%d", b.runID, op, b.nextKey.Add(1))
}

// createRequest is a CreateSubject request for the next made-up person.
func (b *bench) createRequest() *pdv1.CreateSubjectRequest {
	return &pdv1.CreateSubjectRequest{
		IdempotencyKey: b.key("create"),
		ControllerId:   "company",
		Person:         madeUpPerson(int(b.nextPerson.Add(1) - 1)),
		Channel:        pdv1.Channel_CHANNEL_PORTAL,
		Reference:      "pdbench",
		PerformedBy:    "pdbench",
	}
}

// seedClients is how many goroutines seed.
const seedClients = 8

// seed creates the subjects the operations work on, concurrently, over gRPC.
func (b *bench) seed(ctx context.Context) error {
	n := b.cfg.subjects
	b.ids = make([]string, n)
	b.versions = make([]int64, n)
	var next atomic.Int64
	errs := make([]error, seedClients)
	start := time.Now()
	progress := time.NewTicker(10 * time.Second)
	defer progress.Stop()
	var wg sync.WaitGroup
	for w := range seedClients {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n && ctx.Err() == nil; i = int(next.Add(1) - 1) {
				req := b.createRequest()
				resp, err := b.seeder.CreateSubject(ctx, req)
				for try := 1; try < 3 && retryable(err); try++ {
					resp, err = b.seeder.CreateSubject(ctx, req) // the same key: CreateSubject is idempotent
				}
				if err != nil {
					errs[w] = fmt.Errorf("seed subject %d: %s", i, describe(err))
					next.Store(int64(n)) // stop the others
					return
				}
				b.ids[i], b.versions[i] = resp.GetSubject().GetSubjectId(), resp.GetSubject().GetVersion()
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		case <-progress.C:
			fmt.Printf("  seeding: %d of %d after %v\n", min(next.Load(), int64(n)), n, time.Since(start).Round(time.Second))
		}
	}
	if err := errors.Join(append(errs, ctx.Err())...); err != nil {
		return err
	}
	d := time.Since(start)
	fmt.Printf("seeded %d subjects through CreateSubject in %v: %.0f subjects/s\n\n", n, d.Round(time.Millisecond), float64(n)/d.Seconds())
	return nil
}

// retryable reports whether a failed call may succeed when repeated.
func retryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.Aborted, codes.DeadlineExceeded:
		return true
	}
	return false
}

// errConflict marks an outcome counted as a conflict, not as an error.
var errConflict = errors.New("conflict")

// call is one call of an operation by one goroutine.
type call func(ctx context.Context) error

// result is what one operation measured with a number of clients.
type result struct {
	op                       string
	clients                  int
	calls, errors, conflicts int
	elapsed                  time.Duration
	latencies                []time.Duration // of the successful calls, sorted
	firstErr                 error
	// serverCPU and clientCPU are the CPU time the server and this process
	// spent while the operation ran, or -1 when not measured.
	serverCPU, clientCPU time.Duration
	// spans are the server's spans of the calls, with -spans.
	spans spanTotals
}

func (r result) ok() int { return r.calls - r.errors - r.conflicts }

func (r result) throughput() float64 { return float64(r.ok()) / r.elapsed.Seconds() }

// cpuPerCall is cpu in milliseconds per successful call, or "-".
func (r result) cpuPerCall(cpu time.Duration) string {
	if cpu < 0 || r.ok() == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", ms(cpu)/float64(r.ok()))
}

// percentile is the nearest-rank percentile p (0 < p <= 100) of the latencies.
func (r result) percentile(p int) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := (len(r.latencies)*p + 99) / 100
	return r.latencies[max(i-1, 0)]
}

// run calls op from as many goroutines as clients until cfg.duration has
// passed.
func (b *bench) run(ctx context.Context, op string, clients int) (result, error) {
	newCall, err := b.operation(ctx, op, clients)
	if err != nil {
		return result{}, err
	}
	calls := make([]call, clients)
	for w := range calls {
		calls[w] = newCall(w)
	}
	type tally struct {
		calls, errors, conflicts int
		latencies                []time.Duration
		firstErr                 error
	}
	tallies := make([]tally, clients)
	server0, client0 := measure(b.serverCPU), measure(b.clientCPU)
	start := time.Now()
	deadline := start.Add(b.cfg.duration)
	var wg sync.WaitGroup
	for w := range calls {
		wg.Go(func() {
			t := &tallies[w]
			for ctx.Err() == nil && time.Now().Before(deadline) {
				begin := time.Now()
				err := calls[w](ctx)
				lat := time.Since(begin)
				t.calls++
				switch {
				case errors.Is(err, errConflict):
					t.conflicts++
				case err != nil:
					t.errors++
					if t.firstErr == nil {
						t.firstErr = err
					}
				default:
					t.latencies = append(t.latencies, lat)
				}
			}
		})
	}
	wg.Wait()
	r := result{op: op, clients: clients, elapsed: time.Since(start)}
	r.serverCPU = cpuSince(b.serverCPU, server0)
	r.clientCPU = cpuSince(b.clientCPU, client0)
	for _, t := range tallies {
		r.calls += t.calls
		r.errors += t.errors
		r.conflicts += t.conflicts
		r.latencies = append(r.latencies, t.latencies...)
		if r.firstErr == nil {
			r.firstErr = t.firstErr
		}
	}
	slices.Sort(r.latencies)
	if op == "driver-insert" && b.cfg.addr != "" {
		b.removeInserted(context.WithoutCancel(ctx))
	}
	return r, nil
}

// measure reads m, or gives -1 when m is nil or fails.
func measure(m cpuMeter) time.Duration {
	if m == nil {
		return -1
	}
	d, err := m()
	if err != nil {
		fmt.Fprintln(os.Stderr, "pdbench: measure CPU time:", err)
		return -1
	}
	return d
}

// cpuSince is the CPU time m measures since start, or -1.
func cpuSince(m cpuMeter, start time.Duration) time.Duration {
	if start < 0 {
		return -1
	}
	end := measure(m)
	if end < 0 {
		return -1
	}
	return end - start
}

// operation returns, for op, a function that makes the call of goroutine w.
// Goroutines that write get subjects of their own: w, w+C, w+2C, ...
func (b *bench) operation(ctx context.Context, op string, clients int) (func(w int) call, error) {
	c, n := clients, len(b.ids)
	anySubject := func() int { return rand.IntN(n) }
	ownSubject := func(w int) int { return w + c*rand.IntN((n-w+c-1)/c) }
	if strings.HasPrefix(op, "driver-") && b.coll == nil {
		return nil, errors.New("no store URI for the driver")
	}

	switch op {
	case "create":
		return func(int) call {
			return func(ctx context.Context) error {
				_, err := b.client.CreateSubject(ctx, b.createRequest())
				return err
			}
		}, nil

	case "access":
		return func(int) call {
			return func(ctx context.Context) error {
				_, err := b.client.AccessSubject(ctx, &pdv1.AccessSubjectRequest{SubjectId: b.ids[anySubject()]})
				return err
			}
		}, nil

	case "purpose":
		return func(int) call {
			return func(ctx context.Context) error {
				_, err := b.client.GetSubjectForPurpose(ctx, &pdv1.GetSubjectForPurposeRequest{
					SubjectId: b.ids[anySubject()], Purpose: pdv1.Purpose_PURPOSE_INVOICING,
				})
				return err
			}
		}, nil

	case "rectify":
		return func(w int) call {
			return func(ctx context.Context) error {
				i := ownSubject(w)
				resp, err := b.client.RectifySubject(ctx, &pdv1.RectifySubjectRequest{
					IdempotencyKey:  b.key("rectify"),
					SubjectId:       b.ids[i],
					ExpectedVersion: b.versions[i],
					Person:          &pdv1.Person{Phone: fmt.Sprintf("+4670%07d", rand.IntN(10_000_000))},
					UpdateMask:      &fieldmaskpb.FieldMask{Paths: []string{"phone"}},
					Channel:         pdv1.Channel_CHANNEL_PHONE,
					Reference:       "pdbench",
					PerformedBy:     "pdbench",
				})
				if status.Code(err) == codes.Aborted {
					// Not expected with subjects of its own; read the version again.
					got, rerr := b.client.GetSubjectForPurpose(ctx, &pdv1.GetSubjectForPurposeRequest{
						SubjectId: b.ids[i], Purpose: pdv1.Purpose_PURPOSE_INVOICING,
					})
					if rerr != nil {
						return rerr
					}
					b.versions[i] = got.GetVersion()
					return fmt.Errorf("%w: %w", errConflict, err)
				}
				if err != nil {
					return err
				}
				b.versions[i] = resp.GetSubject().GetVersion()
				return nil
			}
		}, nil

	case "driver-read":
		return func(int) call {
			return func(ctx context.Context) error {
				_, err := b.coll.FindOne(ctx, bson.D{{Key: "_id", Value: b.ids[anySubject()]}}).Raw()
				return err
			}
		}, nil

	case "driver-write":
		return func(w int) call {
			return func(ctx context.Context) error {
				filter := bson.D{{Key: "_id", Value: b.ids[ownSubject(w)]}}
				var doc bson.D
				if err := b.coll.FindOne(ctx, filter).Decode(&doc); err != nil {
					return err
				}
				if err := incrementVersion(doc); err != nil {
					return err
				}
				res, err := b.coll.ReplaceOne(ctx, filter, doc)
				if err == nil && res.MatchedCount != 1 {
					err = errors.New("ReplaceOne matched no document")
				}
				return err
			}
		}, nil

	case "driver-insert":
		templates, err := b.templates(ctx, 100)
		if err != nil {
			return nil, err
		}
		return func(int) call {
			return func(ctx context.Context) error {
				t := templates[rand.IntN(len(templates))]
				doc := append(bson.D{{Key: "_id", Value: insertedPrefix + b.runID + fmt.Sprintf("-%016x", rand.Uint64())}}, t[1:]...)
				_, err := b.coll.InsertOne(ctx, doc)
				return err
			}
		}, nil
	}
	return nil, fmt.Errorf("unknown operation %q", op)
}

// insertedPrefix starts the _id of every document driver-insert adds.
const insertedPrefix = "pdbench-insert-"

// templates reads up to n random seeded subject documents, with _id first.
func (b *bench) templates(ctx context.Context, n int) ([]bson.D, error) {
	var out []bson.D
	for range min(n, len(b.ids)) {
		var doc bson.D
		if err := b.coll.FindOne(ctx, bson.D{{Key: "_id", Value: b.ids[rand.IntN(len(b.ids))]}}).Decode(&doc); err != nil {
			return nil, fmt.Errorf("read a subject to copy: %w", err)
		}
		if len(doc) == 0 || doc[0].Key != "_id" {
			return nil, errors.New("subject document does not start with _id")
		}
		out = append(out, doc)
	}
	return out, nil
}

// removeInserted deletes what driver-insert added to a store that outlives
// the run, one exact _id at a time as the embedded store needs.
func (b *bench) removeInserted(ctx context.Context) {
	filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$regex", Value: "^" + insertedPrefix + b.runID}}}}
	cur, err := b.coll.Find(ctx, filter, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		fmt.Fprintln(os.Stderr, "pdbench: find inserted documents:", err)
		return
	}
	var docs []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &docs); err != nil {
		fmt.Fprintln(os.Stderr, "pdbench: find inserted documents:", err)
		return
	}
	for _, d := range docs {
		if _, err := b.coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: d.ID}}); err != nil {
			fmt.Fprintln(os.Stderr, "pdbench: remove inserted document:", err)
			return
		}
	}
}

// incrementVersion adds one to the field v of a subject document.
func incrementVersion(doc bson.D) error {
	for i, e := range doc {
		if e.Key != "v" {
			continue
		}
		switch v := e.Value.(type) {
		case int64:
			doc[i].Value = v + 1
		case int32:
			doc[i].Value = v + 1
		default:
			return fmt.Errorf("field v is a %T", e.Value)
		}
		return nil
	}
	return errors.New("document has no field v")
}

// describe gives an error's gRPC status code and message, or its text when
// it is not a gRPC status.
func describe(err error) string {
	var s interface{ GRPCStatus() *status.Status }
	if errors.As(err, &s) {
		return s.GRPCStatus().Code().String() + ": " + s.GRPCStatus().Message()
	}
	return err.Error()
}

// printResults prints the table; serverNote says what the server CPU is.
func printResults(cfg config, durability string, results []result, serverNote string) {
	if len(results) == 0 {
		return
	}
	fmt.Printf("\n%d subjects, %v per operation, over %s, durability %s, %s, GOMAXPROCS %d\n\n",
		cfg.subjects, cfg.duration, cfg.transport, durability, runtime.Version(), runtime.GOMAXPROCS(0))
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "clients\t%-13s\tcalls\terrors\tconflicts\tcalls/s\tp50 ms\tp99 ms\tserver CPU ms/call\tclient CPU ms/call\t\n", "op")
	type key struct {
		op      string
		clients int
	}
	byOp := map[key]result{}
	for _, r := range results {
		byOp[key{r.op, r.clients}] = r
		fmt.Fprintf(tw, "%d\t%-13s\t%d\t%d\t%d\t%.1f\t%.2f\t%.2f\t%s\t%s\t\n", r.clients, r.op, r.calls, r.errors, r.conflicts,
			r.throughput(), ms(r.percentile(50)), ms(r.percentile(99)), r.cpuPerCall(r.serverCPU), r.cpuPerCall(r.clientCPU))
	}
	tw.Flush()
	fmt.Println("(calls/s, latencies and CPU per call count successful calls only; CPU is user+system time while the operation ran)")
	fmt.Println("(server CPU: " + serverNote + "; client CPU: pdbench itself)")

	if cfg.spans {
		fmt.Println("\nwhere a call's time went, in the server's spans (mean time, and spans per call):")
		for _, r := range results {
			fmt.Printf("  %3d clients, %s: %s\n", r.clients, r.op, r.spans.describe(r.calls))
		}
	}
	for _, r := range results {
		if r.firstErr != nil {
			fmt.Printf("first error of %s with %d clients: %s\n", r.op, r.clients, describe(r.firstErr))
		}
	}

	header := "\nservice vs. driver: throughput ratio (service/driver), p50 ratio (service/driver)"
	for _, clients := range cfg.clients {
		for _, p := range [][2]string{{"access", "driver-read"}, {"purpose", "driver-read"}, {"rectify", "driver-write"}, {"create", "driver-insert"}} {
			s, okS := byOp[key{p[0], clients}]
			d, okD := byOp[key{p[1], clients}]
			if !okS || !okD || d.throughput() == 0 || d.percentile(50) == 0 {
				continue
			}
			if header != "" {
				fmt.Println(header)
				header = ""
			}
			fmt.Printf("  %3d clients  %-22s throughput %.3f (1/%.1f)  p50 %.1fx\n", clients, p[0]+"/"+p[1]+":",
				s.throughput()/d.throughput(), d.throughput()/s.throughput(),
				float64(s.percentile(50))/float64(d.percentile(50)))
		}
	}
}

// joinInts writes ns as "1,8,32".
func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Made-up people. Birth dates run through every day of 1950-1999; the serial
// number goes up by one each time the dates start over, so maxPeople numbers
// are distinct.
const (
	birthDays = 18262 // 1950-01-01 to 1999-12-31
	maxPeople = birthDays * 1000
)

// madeUpPerson is person number i: a valid, unique personnummer and a unique
// e-mail address.
func madeUpPerson(i int) *pdv1.Person {
	i %= maxPeople
	givenNames := []string{"Anna", "Erik", "Maria", "Lars", "Karin", "Johan", "Eva", "Anders", "Sara", "Per"}
	familyNames := []string{"Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson", "Olsson", "Persson"}
	localities := []string{"Stockholm", "Göteborg", "Malmö", "Uppsala", "Umeå", "Luleå"}
	return &pdv1.Person{
		IdentityNumber: identityNumber(i),
		GivenName:      givenNames[i%len(givenNames)],
		FamilyName:     familyNames[i/len(givenNames)%len(familyNames)],
		Email:          fmt.Sprintf("bench-%d@example.test", i),
		Phone:          fmt.Sprintf("+4670%07d", i%10_000_000),
		PostalAddress: &pdv1.PostalAddress{
			Lines:       []string{fmt.Sprintf("Storgatan %d", i%200+1)},
			PostalCode:  fmt.Sprintf("%05d", 10000+i%90000),
			Locality:    localities[i%len(localities)],
			CountryCode: "SE",
		},
	}
}

// identityNumber is the i-th made-up personnummer, 12 digits YYYYMMDDNNNC.
func identityNumber(i int) string {
	birth := time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i%birthDays)
	nine := fmt.Sprintf("%s%03d", birth.Format("060102"), i/birthDays%1000)
	return birth.Format("2006") + nine[2:] + string(rune('0'+luhn(nine)))
}

// luhn is the check digit of the Luhn algorithm over digits, as Skatteverket
// applies it to YYMMDDNNN: weights 2, 1, 2, ... from the left.
func luhn(digits string) int {
	sum := 0
	for i, c := range digits {
		d := int(c - '0')
		if i%2 == 0 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return (10 - sum%10) % 10
}
