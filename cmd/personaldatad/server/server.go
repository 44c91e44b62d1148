// Package server assembles the running service: the gRPC server with its
// interceptors, health and reflection, the REST gateway, the OpenAPI
// document and the metrics endpoint, on top of the store.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/fullstorydev/grpchan"
	"github.com/fullstorydev/grpchan/inprocgrpc"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/example/personaldata/cmd/personaldatad/console"
	"github.com/example/personaldata/cmd/personaldatad/selfservice"
	"github.com/example/personaldata/gen/openapi"
	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/service"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/auth"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/service/retention"
	"github.com/example/personaldata/service/signin"
	"github.com/example/personaldata/service/vault"
	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/envelope"
	"github.com/example/personaldata/store/ledger"
)

// DefaultAuditOrigin names the audit trail's log in its checkpoints when
// no origin is configured.
const DefaultAuditOrigin = "personaldata/audit"

// maxRequestBytes bounds a request, over gRPC and over REST.
const maxRequestBytes = 1 << 20

// maxResponseBytes bounds a response message: 4 MiB, what gRPC clients
// accept by default, and the gateway's own connection too. The service pages
// what grows (about 1 MiB a page), so no answer needs more.
const maxResponseBytes = 4 << 20

// Config is what the server needs to start.
type Config struct {
	// GRPCAddr and HTTPAddr are the listen addresses; ":0" picks a free port.
	GRPCAddr string
	HTTPAddr string
	// Store says which database to use.
	Store store.Config
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// OperatorTokenFile, when set, is where the first start writes the token
	// of the first operator if the store has none.
	OperatorTokenFile string
	// TLS, when CertFile is set: the server's certificate and key, and the
	// CA that signs client certificates for mutual TLS (optional).
	TLS TLSConfig
	// Keys are the master keys that protect personal data at rest.
	Keys KeysConfig
	// RetentionSweepInterval is how often the retention sweeper runs; 0
	// runs it only when an operator asks (RunRetentionSweep).
	RetentionSweepInterval time.Duration
	// Version is the build's version, for personaldata_build_info.
	Version string
	// DrainDelay is how long, once shutdown begins, the server goes on
	// serving while it reports not ready, so load balancers stop sending
	// it new calls before its listeners close. 0 in tests.
	DrainDelay time.Duration
	// ShutdownTimeout bounds the wait for calls in flight once the
	// listeners close (20 s when 0); streams still open are then cut.
	ShutdownTimeout time.Duration
	// MetricsAddr, when set, is the listen address of /metrics alone, and
	// the HTTP port then serves no metrics; empty serves /metrics on the
	// HTTP port.
	MetricsAddr string
	// SelfServiceAddr, when set, is the listen address of the data
	// subjects' own page (cmd/personaldatad/selfservice), the one listener
	// meant to face the internet; empty serves no such page.
	SelfServiceAddr string
	// SelfServiceMinStart is the least time the page's answer to a
	// sign-in takes (selfservice.Config.MinStart); 0 takes its default.
	SelfServiceMinStart time.Duration
	// SelfServiceOIDC, when its Issuer is set, offers strong sign-in on
	// the page through an OpenID Connect provider.
	SelfServiceOIDC selfservice.OIDC
	// SelfServiceTrustedProxies are the reverse proxies in front of the
	// page, whose X-Forwarded-For its sign-in limits read.
	SelfServiceTrustedProxies []netip.Prefix
	// ConsoleSignIn bounds the support console's failed sign-ins; zero
	// fields take the console's defaults.
	ConsoleSignIn console.SignInLimits
	// ErasureLedger is the erasure ledger's file (store/ledger): every
	// erasure is recorded there before it is acknowledged; empty keeps
	// none (tests that do not need it).
	ErasureLedger string
	// LetterSender is who the reply letters come from and how the data
	// subject reaches the company; empty fields are left out.
	LetterSender core.LetterSender
	// BreachSubjectsPerChunk is how many affected subjects a stored chunk
	// of a breach record's list holds; 0 takes the service's default.
	// Tests lower it.
	BreachSubjectsPerChunk int
	// AuditCheckpoints says how the audit trail's checkpoints are named
	// and where copies go (Origin "personaldata/audit" when empty); the key
	// comes from the keyring.
	AuditCheckpoints audit.CheckpointConfig
	// AuditCheckpointInterval is how often a checkpoint is taken; 0 only
	// when an operator asks (CreateAuditCheckpoint).
	AuditCheckpointInterval time.Duration
	// TracerProvider, when set, traces every request across the HTTP
	// server, the gateway, gRPC and the store (W3C trace context in and
	// out); nil turns tracing off.
	TracerProvider trace.TracerProvider
}

// KeysConfig says where the master keys come from: MasterKeys (the keyring
// JSON, e.g. from an environment variable) or the keyring file KeyFile,
// which CreateKeyFile allows to be generated on first start.
type KeysConfig struct {
	MasterKeys    []byte
	KeyFile       string
	CreateKeyFile bool
	// Keeper, when set, is the key service (KMS, Vault) that wraps the key
	// file: the file on disk is its ciphertext, useless without it.
	Keeper envelope.Wrapper
}

// TLSConfig names the files for TLS and mutual TLS.
type TLSConfig struct {
	CertFile, KeyFile, ClientCAFile string
}

// Server is a started service: listening, not yet serving.
type Server struct {
	log    *slog.Logger
	store  *store.Store
	ledger *ledger.Ledger // nil without Config.ErasureLedger
	grpc   *grpc.Server   // the public listener's
	// readiness is the state every probe answers from (readiness.go).
	readiness *readiness
	http      *http.Server
	grpcLis   net.Listener
	httpLis   net.Listener
	// gateConn is the REST gateway's and the console's connection to the
	// service, in this process; inproc counts its calls in flight, which
	// shutdown waits for before it closes the store, and cutHTTP ends the
	// contexts of the HTTP requests still running when shutdown times out.
	gateConn grpc.ClientConnInterface
	inproc   sync.WaitGroup
	cutHTTP  context.CancelFunc
	tls      *tls.Config
	// OperatorCreated says this start created the first operator.
	OperatorCreated bool
	// KeyFileCreated says this start generated the master key file.
	KeyFileCreated bool
	// retention is the RetentionService, whose sweeper Serve runs every
	// sweepInterval (never when 0).
	retention     *retention.Retention
	sweepInterval time.Duration
	// checkpoints are taken every checkpointInterval (never when 0).
	checkpoints        *audit.Checkpoints
	checkpointInterval time.Duration
	// signIn is the data subjects' sign-in by code, which is not an RPC of
	// any principal (SelfServiceSignIn).
	signIn *signin.Service
	// endStreams ends the notification streams, which never end by
	// themselves, as shutdown begins.
	endStreams func()
	// metrics serves /metrics on metricsLis when it has a listener of its own.
	metrics    *http.Server
	metricsLis net.Listener
	// self serves the data subjects' own page on selfLis, when configured.
	self                        *http.Server
	selfLis                     net.Listener
	drainDelay, shutdownTimeout time.Duration
	// stopAttempts writes the refused authentications still gathered and
	// stops their writer, before the store closes.
	stopAttempts func()
}

// SelfServiceSignIn is the data subjects' sign-in by a one-time code sent to
// the contact details on file (service/signin).
type SelfServiceSignIn interface {
	SelfServiceIdentityKey(typed string) (string, error)
	StartSelfServiceSignIn(ctx context.Context, typed string) (token string, err error)
	ConfirmSelfServiceSignIn(ctx context.Context, token, code string) (subjectID string, err error)
}

// SelfServiceSignIn is the server's sign-in for the data subjects' own page.
func (s *Server) SelfServiceSignIn() SelfServiceSignIn { return s.signIn }

// SelfServiceConn is the in-process connection the data subjects' page calls
// the service on (with the gateway's secret): with a live session's
// metadata, a call on it is the signed-in person's, confined as the page's
// are. Tests use it to send what the page never would.
func (s *Server) SelfServiceConn() grpc.ClientConnInterface { return s.gateConn }

// New opens the store and binds both listeners.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Server, error) {
	if cfg.TracerProvider != nil {
		cfg.Store.TracerProvider = cfg.TracerProvider
	}
	st, err := store.Open(ctx, cfg.Store)
	if err != nil {
		return nil, fmt.Errorf("server.New: %w", err)
	}
	log = slog.New(requestIDHandler{log.Handler()})
	s := &Server{log: log, store: st}
	if err := s.build(ctx, cfg); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("server.New: %w", err)
	}
	return s, nil
}

func (s *Server) build(ctx context.Context, cfg Config) error {
	var err error
	if s.tls, err = loadTLS(cfg.TLS); err != nil {
		return err
	}
	if s.grpcLis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		return fmt.Errorf("listen gRPC: %w", err)
	}
	if s.httpLis, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
		return fmt.Errorf("listen HTTP: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := newMetrics(reg)
	gatewaySecret := randomSecret()

	keys, err := s.loadKeys(cfg.Keys)
	if err != nil {
		return err
	}
	if cfg.ErasureLedger != "" {
		if s.ledger, err = ledger.Open(cfg.ErasureLedger); err != nil {
			return fmt.Errorf("-erasure-ledger: %w", err)
		}
	}
	svc := service.New(s.store, keys, core.Options{Now: cfg.Now, Logger: s.log, Ledger: s.ledger, Sender: cfg.LetterSender,
		BreachSubjectsPerChunk: cfg.BreachSubjectsPerChunk})
	// A ledger missing or empty beside a store that holds subjects was
	// lost (or predates the store's last erasures): made complete again
	// from the store before anything is served.
	if rb, err := svc.Core.RebuildLedger(ctx); err != nil {
		return fmt.Errorf("-erasure-ledger: %w", err)
	} else if rb != nil {
		s.log.WarnContext(ctx, "erasure ledger missing or empty while the store holds subjects: rebuilt from the store's erased subjects and withdrawn consents; take a backup now",
			slog.String("ledger", s.ledger.Path()), slog.Int("subjects", rb.Subjects),
			slog.Int("erasures", rb.Erasures), slog.Int("consent_withdrawals", rb.Withdrawals))
	}
	authn := auth.NewAuthenticator(svc.Core.PrincipalCache, s.log, reg)
	// Refused authentications go to the audit trail, a second's worth in
	// one event per source and reason.
	attempts := audit.NewAttempts(svc.Core.AuditLog, s.log, cfg.Now, reg)
	authn.OnFailure(attempts.Record)
	s.stopAttempts = runUntilStopped(attempts.Run)
	reg.MustRegister(svc.Requests.BacklogMetrics())
	reg.MustRegister(svc.Accountability.BreachMetrics())
	s.retention, s.sweepInterval = retention.NewRetention(svc.Retention), cfg.RetentionSweepInterval
	s.signIn = svc.SignIn
	s.drainDelay, s.shutdownTimeout = cfg.DrainDelay, cfg.ShutdownTimeout
	if s.shutdownTimeout <= 0 {
		s.shutdownTimeout = 20 * time.Second
	}
	reg.MustRegister(s.retention.Collectors()...)
	if cfg.AuditCheckpoints.Origin == "" {
		cfg.AuditCheckpoints.Origin = DefaultAuditOrigin
	}
	if s.checkpoints, err = svc.Core.EnableCheckpoints(cfg.AuditCheckpoints); err != nil {
		return fmt.Errorf("audit checkpoints: %w", err)
	}
	s.checkpointInterval = cfg.AuditCheckpointInterval
	reg.MustRegister(s.checkpoints.Collectors()...)
	backups := svc.Backup.Backups(cfg.Version)
	reg.MustRegister(backups.Collectors()...)
	reg.MustRegister(buildInfo(cfg.Version))
	s.endStreams = svc.Core.EndStreams
	if cfg.OperatorTokenFile != "" {
		if s.OperatorCreated, err = svc.Principals.BootstrapOperator(ctx, cfg.OperatorTokenFile); err != nil {
			return err
		}
	}
	// After authentication, so every event names its principal.
	recorder := audit.NewRecorder(svc.Core.AuditLog, s.log, cfg.Now, reg)
	var serverTracing []grpc.ServerOption
	httpTracing := func(h http.Handler) http.Handler { return h }
	if tp := cfg.TracerProvider; tp != nil {
		prop := otelgrpc.WithPropagators(propagation.TraceContext{})
		serverTracing = append(serverTracing, grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(tp), prop)))
		// Spans named by method only: a path may hold ids.
		httpTracing = func(h http.Handler) http.Handler {
			return otelhttp.NewHandler(h, "http", otelhttp.WithTracerProvider(tp), otelhttp.WithPropagators(propagation.TraceContext{}),
				otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return "HTTP " + r.Method }))
		}
	}
	// The interceptors of every call, over the gRPC listener and over the
	// REST gateway alike: authentication, then the audit recorder, then
	// the RPC rule, so that a refused call is on record with its
	// principal; a unary response over the size limit is refused inside the
	// audit recorder, so the trail records what the caller got.
	unary := func(a *auth.Authenticator) []grpc.UnaryServerInterceptor {
		return []grpc.UnaryServerInterceptor{requestIDUnary, m.grpc.UnaryServerInterceptor(), logUnary(s.log), recoverUnary(s.log), a.Unary, recorder.Unary, a.AuthorizeUnary, limitUnary(maxResponseBytes)}
	}
	stream := func(a *auth.Authenticator) []grpc.StreamServerInterceptor {
		return []grpc.StreamServerInterceptor{requestIDStream, m.grpc.StreamServerInterceptor(), logStream(s.log), recoverStream(s.log), a.Stream, recorder.Stream, a.AuthorizeStream, limitStream(maxResponseBytes)}
	}
	registerAPI := func(g grpc.ServiceRegistrar) {
		pdv1.RegisterPersonalDataServiceServer(g, svc.Subjects)
		pdv1.RegisterPrincipalServiceServer(g, svc.Principals.Principals())
		pdv1.RegisterAuditServiceServer(g, svc.Accountability.Audit())
		pdv1.RegisterProcessorAgreementServiceServer(g, svc.Agreements.Agreements())
		pdv1.RegisterKeyServiceServer(g, svc.Keys.KeyRotation())
		pdv1.RegisterConsentServiceServer(g, svc.Disclosure.Consents())
		pdv1.RegisterDisclosureServiceServer(g, svc.Disclosure.Disclosures())
		pdv1.RegisterRetentionServiceServer(g, s.retention)
		pdv1.RegisterRightsRequestServiceServer(g, svc.Requests.RightsRequests())
		pdv1.RegisterRequesterOutboxServiceServer(g, svc.Requests.Outbox())
		pdv1.RegisterPolicyServiceServer(g, svc.Accountability.Policy())
		pdv1.RegisterProcessingRegisterServiceServer(g, svc.Accountability.Register(cfg.RetentionSweepInterval))
		pdv1.RegisterBreachServiceServer(g, svc.Accountability.Breach())
		pdv1.RegisterBackupServiceServer(g, backups)
		pdv1.RegisterBreachRecordServiceServer(g, svc.Accountability.BreachRecords())
	}
	opts := append(serverTracing,
		grpc.MaxRecvMsgSize(maxRequestBytes),
		// Streams (notifications, the outbox) stay open for hours:
		// ping an idle connection so that a dead peer or a NAT that
		// dropped it is noticed, and let clients ping every 20 s.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Minute, Timeout: 20 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 20 * time.Second, PermitWithoutStream: true}),
		// Calls run on goroutines that are kept, with the stacks they
		// grew, instead of a new one per call.
		grpc.NumStreamWorkers(streamWorkers()),
		grpc.MaxSendMsgSize(maxResponseBytes),
		// Credentials are checked as a call's headers arrive, before its
		// request is read: the interceptor takes the caller found.
		grpc.InTapHandle(authn.Tap),
		grpc.ChainUnaryInterceptor(unary(authn)...),
		grpc.ChainStreamInterceptor(stream(authn)...),
	)
	if s.tls != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.tls)))
	}
	s.grpc = grpc.NewServer(opts...)
	registerAPI(s.grpc)
	var services []string
	for name := range s.grpc.GetServiceInfo() {
		services = append(services, name)
	}
	slices.Sort(services)
	s.readiness = newReadiness(s.log, s.store, svc.Core.AuditLog, services)
	healthpb.RegisterHealthServer(s.grpc, &healthService{r: s.readiness})
	reflection.Register(s.grpc)

	// The REST gateway, and the console, call the service in this process
	// (grpchan's inprocgrpc): the same handlers, interceptors and tracing
	// as the gRPC listener's, with the messages copied, not encoded and
	// sent through a loopback connection. Their authenticator believes the
	// client-certificate identity and the console's principal that the
	// gateway forwards with its secret.
	gatewayAuthn := authn.ForGateway(gatewaySecret)
	inproc := new(inprocgrpc.Channel).
		WithServerUnaryInterceptor(chainUnary(append([]grpc.UnaryServerInterceptor{countUnary(&s.inproc)}, unary(gatewayAuthn)...)...)).
		WithServerStreamInterceptor(chainStream(append([]grpc.StreamServerInterceptor{countStream(&s.inproc)}, stream(gatewayAuthn)...)...))
	if tp := cfg.TracerProvider; tp != nil {
		prop := otelgrpc.WithPropagators(propagation.TraceContext{})
		inproc.WithServerStatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(tp), prop)).
			WithClientStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(tp), prop))
	}
	registerAPI(inproc)
	s.gateConn = grpchan.InterceptClientConnStream(
		grpchan.InterceptClientConnUnary(inproc, gatewaySecretUnary(gatewaySecret), markReached),
		gatewaySecretStream(gatewaySecret), markReachedStream)
	g := &gateway{log: s.log, metrics: m}
	gw := newGatewayMux(g)
	for _, register := range []func(context.Context, *runtime.ServeMux, grpc.ClientConnInterface) error{
		func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
			return pdv1.RegisterPersonalDataServiceHandlerClient(ctx, mux, pdv1.NewPersonalDataServiceClient(cc))
		},
		func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
			return pdv1.RegisterPrincipalServiceHandlerClient(ctx, mux, pdv1.NewPrincipalServiceClient(cc))
		},
		func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
			return pdv1.RegisterAuditServiceHandlerClient(ctx, mux, pdv1.NewAuditServiceClient(cc))
		},
		func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
			return pdv1.RegisterProcessorAgreementServiceHandlerClient(ctx, mux, pdv1.NewProcessorAgreementServiceClient(cc))
		},
		func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
			return pdv1.RegisterKeyServiceHandlerClient(ctx, mux, pdv1.NewKeyServiceClient(cc))
		},
		func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
			return pdv1.RegisterConsentServiceHandlerClient(ctx, mux, pdv1.NewConsentServiceClient(cc))
		},
		func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
			return pdv1.RegisterDisclosureServiceHandlerClient(ctx, mux, pdv1.NewDisclosureServiceClient(cc))
		},
		func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
			return pdv1.RegisterRetentionServiceHandlerClient(ctx, mux, pdv1.NewRetentionServiceClient(cc))
		},
		func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
			return pdv1.RegisterRightsRequestServiceHandlerClient(ctx, mux, pdv1.NewRightsRequestServiceClient(cc))
		},
		func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
			return pdv1.RegisterRequesterOutboxServiceHandlerClient(ctx, mux, pdv1.NewRequesterOutboxServiceClient(cc))
		},
		func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
			return pdv1.RegisterPolicyServiceHandlerClient(ctx, mux, pdv1.NewPolicyServiceClient(cc))
		},
		func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
			return pdv1.RegisterProcessingRegisterServiceHandlerClient(ctx, mux, pdv1.NewProcessingRegisterServiceClient(cc))
		},
		func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
			return pdv1.RegisterBreachServiceHandlerClient(ctx, mux, pdv1.NewBreachServiceClient(cc))
		},
		func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
			return pdv1.RegisterBackupServiceHandlerClient(ctx, mux, pdv1.NewBackupServiceClient(cc))
		},
		func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
			return pdv1.RegisterBreachRecordServiceHandlerClient(ctx, mux, pdv1.NewBreachRecordServiceClient(cc))
		},
	} {
		if err := register(ctx, gw, s.gateConn); err != nil {
			return fmt.Errorf("register gateway: %w", err)
		}
	}

	// The support console calls the service as its signed-in principal over
	// the gateway's connection, so its calls pass the same interceptors.
	cons, err := console.New(console.Config{Conn: s.gateConn, Sessions: s.store, Now: cfg.Now, Log: s.log,
		SignIn: cfg.ConsoleSignIn, Metrics: reg, SignInFailures: attempts.Record})
	if err != nil {
		return err
	}

	if cfg.SelfServiceAddr != "" {
		page, err := selfservice.New(selfservice.Config{Conn: s.gateConn, SignIn: svc.SignIn, Sessions: s.store, Log: s.log,
			Now: cfg.Now, Secure: s.tls != nil, MinStart: cfg.SelfServiceMinStart, OIDC: cfg.SelfServiceOIDC,
			TrustedProxies: cfg.SelfServiceTrustedProxies})
		if err != nil {
			return err
		}
		if s.selfLis, err = net.Listen("tcp", cfg.SelfServiceAddr); err != nil {
			return fmt.Errorf("listen self-service: %w", err)
		}
		s.self = &http.Server{Handler: m.instrumentHTTP("self_service", http.MaxBytesHandler(page, 64<<10)), TLSConfig: s.tls.Clone(), // its own: serving configures it
			ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10}
	}

	mux := http.NewServeMux()
	mux.Handle("/v1/", m.instrumentHTTP("gateway", http.MaxBytesHandler(trackGatewayCalls(authFirst(gatewayAuthn, gatewaySecret, g, gw)), maxRequestBytes)))
	mux.Handle(console.Prefix, m.instrumentHTTP("console", http.MaxBytesHandler(cons, maxRequestBytes)))
	mux.Handle("GET /console", http.RedirectHandler(console.Prefix, http.StatusSeeOther))
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openapi.Document)
	})
	metricsHandler := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	if cfg.MetricsAddr == "" {
		mux.Handle("GET /metrics", metricsHandler)
	} else {
		// A listener of its own, which the network can keep to the scrapers.
		if s.metricsLis, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			return fmt.Errorf("listen metrics: %w", err)
		}
		metricsMux := http.NewServeMux()
		metricsMux.Handle("GET /metrics", metricsHandler)
		s.metrics = &http.Server{Handler: metricsMux, ReadHeaderTimeout: 10 * time.Second}
	}
	// Liveness and readiness, from the one state (readiness.go).
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, r *http.Request) {
		if err, _ := s.readiness.probe(r.Context(), false); err != nil {
			http.Error(w, "not live: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	// /healthz is /readyz, as before the split.
	ready := func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.readiness.probe(r.Context(), false); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	}
	mux.HandleFunc("GET /readyz", ready)
	mux.HandleFunc("GET /healthz", ready)
	httpBase, cutHTTP := context.WithCancel(context.Background())
	s.cutHTTP = cutHTTP
	s.http = &http.Server{
		BaseContext:       func(net.Listener) context.Context { return httpBase },
		Handler:           httpTracing(httpRequestID(mux)),
		TLSConfig:         s.tls,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		// No write timeout: exports, bulk erasures and notification streams
		// run long; calls are bounded by their own deadlines instead.
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
	}
	return nil
}

// loadKeys reads the master keys, generating the key file (owner-only) on
// the first start where that is allowed.
func (s *Server) loadKeys(c KeysConfig) (*vault.Keys, error) {
	if c.Keeper != nil {
		if c.KeyFile == "" || len(c.MasterKeys) > 0 {
			return nil, errors.New("master keys from a key service: give the key file it wraps (not the keyring JSON)")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		f := envelope.WrappedFile{Path: c.KeyFile, Wrapper: c.Keeper}
		var ring *envelope.Keyring
		var err error
		if c.CreateKeyFile && s.noDataYet() {
			ring, s.KeyFileCreated, err = f.LoadOrCreate(ctx)
		} else {
			ring, err = f.Load(ctx)
		}
		if err != nil {
			return nil, fmt.Errorf("master key file: %w", err)
		}
		return vault.NewWrappedKeys(ring, f), nil
	}
	switch {
	case len(c.MasterKeys) > 0:
		ring, err := envelope.Parse(c.MasterKeys)
		if err != nil {
			return nil, fmt.Errorf("master keys: %w", err)
		}
		return vault.NewKeys(ring, ""), nil
	case c.KeyFile != "" && c.CreateKeyFile && s.noDataYet():
		// Generate only for an empty store: new keys for existing data would
		// read nothing and break the blind indexes.
		ring, created, err := envelope.LoadOrCreate(c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("master key file: %w", err)
		}
		s.KeyFileCreated = created
		return vault.NewKeys(ring, c.KeyFile), nil
	case c.KeyFile != "":
		ring, err := envelope.Load(c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("master key file: %w", err)
		}
		return vault.NewKeys(ring, c.KeyFile), nil
	}
	return nil, errors.New("no master keys: give a key file or the keyring JSON")
}

// noDataYet reports whether the store holds no data key yet.
func (s *Server) noDataYet() bool {
	n, err := s.store.CountDataKeys(context.Background())
	return err == nil && n == 0
}

// GRPCAddr is the address the gRPC server listens on.
func (s *Server) GRPCAddr() string { return s.grpcLis.Addr().String() }

// MetricsAddr is the address /metrics listens on: its own listener's, or
// the HTTP port's.
func (s *Server) MetricsAddr() string {
	if s.metricsLis != nil {
		return s.metricsLis.Addr().String()
	}
	return s.HTTPAddr()
}

// SelfServiceAddr is the address of the data subjects' own page; "" when off.
func (s *Server) SelfServiceAddr() string {
	if s.selfLis == nil {
		return ""
	}
	return s.selfLis.Addr().String()
}

// HTTPAddr is the address the REST gateway listens on.
func (s *Server) HTTPAddr() string { return s.httpLis.Addr().String() }

// StoreURI is the MongoDB URI in use (the embedded store's loopback URI when
// no URI was configured).
func (s *Server) StoreURI() string { return s.store.URI() }

// Serve serves until ctx ends, then shuts down gracefully: health turns
// NOT_SERVING and /readyz fails, calls are still served for the drain
// delay, then in-flight requests finish (up to the shutdown timeout), the
// store closes.
func (s *Server) Serve(ctx context.Context) error {
	// Before the first call is served: a start on a full disk, or on a
	// store that does not answer, is not ready from the first probe on.
	s.readiness.probe(ctx, true)
	errc := make(chan error, 2)
	go func() { errc <- s.grpc.Serve(s.grpcLis) }()
	go func() {
		var err error
		if s.tls != nil {
			err = s.http.ServeTLS(s.httpLis, "", "")
		} else {
			err = s.http.Serve(s.httpLis)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	if s.metrics != nil {
		go func() { _ = s.metrics.Serve(s.metricsLis) }()
	}
	if s.self != nil {
		go func() {
			if s.tls != nil {
				_ = s.self.ServeTLS(s.selfLis, "", "")
				return
			}
			_ = s.self.Serve(s.selfLis)
		}()
	}
	go s.readiness.watch(ctx, 5*time.Second)
	sweepCtx, stopSweeping := context.WithCancel(ctx)
	swept := make(chan struct{})
	go func() {
		defer close(swept)
		if s.sweepInterval > 0 {
			s.retention.Run(sweepCtx, s.sweepInterval)
		}
	}()
	checkpointed := make(chan struct{})
	go func() {
		defer close(checkpointed)
		if s.checkpointInterval > 0 {
			s.checkpoints.Run(sweepCtx, s.checkpointInterval)
		}
	}()
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	// Not ready from now on (health NOT_SERVING, /readyz 503), but still
	// serving for the drain delay, so that load balancers move new calls
	// elsewhere before the listeners close.
	s.readiness.drain()
	if serveErr == nil && s.drainDelay > 0 {
		s.log.Info("draining before shutdown", slog.Duration("delay", s.drainDelay))
		time.Sleep(s.drainDelay)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), s.shutdownTimeout)
	defer cancel()
	s.endStreams()      // open notification streams end (UNAVAILABLE: reconnect elsewhere)
	s.readiness.close() // and the health watches
	httpErr := s.http.Shutdown(shutdownCtx)
	if httpErr != nil {
		// Past the timeout, the REST calls still running are cut, as
		// the gRPC server's are (Stop): their contexts end.
		s.cutHTTP()
		_ = s.http.Close()
	}
	if s.metrics != nil {
		_ = s.metrics.Shutdown(shutdownCtx)
	}
	if s.self != nil {
		_ = s.self.Shutdown(shutdownCtx)
	}
	stopped := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-shutdownCtx.Done():
		s.grpc.Stop()
	}
	stopSweeping()
	<-swept // the sweeper stops before the store closes
	<-checkpointed
	s.waitInproc()
	return errors.Join(serveErr, httpErr, s.Close())
}

// waitInproc waits for the in-process calls of the gateway and the console
// still running (a call whose HTTP client went away goes on), so that the
// store closes under none; a call cut at the timeout ends soon after.
func (s *Server) waitInproc() {
	done := make(chan struct{})
	go func() { s.inproc.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.log.Warn("closing the store under in-process calls still running")
	}
}

// Close releases what New acquired; Serve calls it on its way out.
func (s *Server) Close() error {
	var errs []error
	for _, l := range []net.Listener{s.grpcLis, s.httpLis, s.metricsLis, s.selfLis} {
		if l != nil {
			_ = l.Close() // already closed by Serve's shutdown
		}
	}
	if s.stopAttempts != nil {
		s.stopAttempts()
		s.stopAttempts = nil
	}
	if s.store != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		errs = append(errs, s.store.Close(ctx))
		s.store = nil
	}
	if s.ledger != nil {
		errs = append(errs, s.ledger.Close())
		s.ledger = nil
	}
	return errors.Join(errs...)
}
