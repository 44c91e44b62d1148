// Command personaldatad serves the PersonalDataService over gRPC and REST.
// With no MongoDB URI it runs the embedded store in its data directory.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
	"gocloud.dev/secrets"
	_ "gocloud.dev/secrets/hashivault"   // hashivault:// (Vault's transit engine)
	_ "gocloud.dev/secrets/localsecrets" // base64key:// (tests, development)

	"github.com/example/personaldata/cmd/personaldatad/selfservice"
	"github.com/example/personaldata/cmd/personaldatad/server"
	"github.com/example/personaldata/service/audit"
	"github.com/example/personaldata/service/core"
	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/envelope"
	"github.com/example/personaldata/store/ledger"
)

func main() {
	server.TuneRuntime()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := runMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// runMain runs the command line and returns the exit status: -h and -help
// print the usage on stdout and exit 0; any other error is one line on
// stderr and exit 1.
func runMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := realMain(ctx, args)
	if h := (*helpRequested)(nil); errors.As(err, &h) {
		fmt.Fprint(stdout, h.usage)
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "personaldatad:", err)
		return 1
	}
	return 0
}

// helpRequested is parseFlags' answer to -h or -help: the usage to print.
type helpRequested struct{ usage string }

func (h *helpRequested) Error() string { return "help requested" }
func (h *helpRequested) Unwrap() error { return flag.ErrHelp }

// config is the command line; each flag but -version has an environment
// variable of the same name in upper case with a PERSONALDATA_ prefix, read
// when the flag is not given.
type config struct {
	grpcAddr, httpAddr         string
	selfServiceAddr            string
	mongoURI, dataDir          string
	durability                 store.Durability
	database, logLevel         string
	operatorTokenFile          string
	keyFile, keeperURL         string
	erasureLedger              string
	otlpEndpoint, metricsAddr  string
	tlsCert, tlsKey, tlsClient string
	sender                     core.LetterSender
	retentionSweepInterval     time.Duration
	auditCheckpointInterval    time.Duration
	auditOrigin                string
	auditCheckpointDir         string
	auditCheckpointURL         string
	drainDelay, shutdownTimout time.Duration
	version                    bool
	// oidc is the page's strong sign-in; oidcSecretFile and oidcScopes
	// are read into it.
	oidc                       selfservice.OIDC
	oidcSecretFile, oidcScopes string
	oidcACR                    string
	// proxies are the page's trusted reverse proxies, read from proxyList.
	proxies   []netip.Prefix
	proxyList string
	// unknownEnv are the PERSONALDATA_ variables no flag reads (a
	// misspelling, most likely), to warn about: names, never values.
	unknownEnv []unknownVar
}

// envPrefix starts the name of every environment variable of the service.
const envPrefix = "PERSONALDATA_"

// otherEnv are the PERSONALDATA_ variables read by something other than a
// flag: the keys themselves, the billing client's token, and the tests'
// switches (a developer's shell may hold them while running the server).
var otherEnv = []string{"PERSONALDATA_MASTER_KEYS", oidcSecretEnv, "PERSONALDATA_TOKEN", "PERSONALDATA_SKIP_BROWSER", "PERSONALDATA_SCREENSHOTS", "PERSONALDATA_TEST_*"}

func parseFlags(args []string, extra ...func(*flag.FlagSet)) (config, error) {
	var c config
	fs := flag.NewFlagSet("personaldatad", flag.ContinueOnError)
	var usage strings.Builder
	fs.SetOutput(&usage)
	fs.Usage = func() {
		fmt.Fprint(&usage, "Usage: personaldatad [flags]\n       personaldatad restore --from FILE [flags]\n\n"+
			"Each flag but -version may be given in the environment instead, as PERSONALDATA_ and its name in\n"+
			"upper case with _ for - (-grpc-addr is PERSONALDATA_GRPC_ADDR); a flag wins over its variable.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	for _, add := range extra {
		add(fs)
	}
	// The flags with a variable; the defaults shown in the usage are the
	// built-in ones, never a variable's value (a URI may hold a password).
	var withEnv []string
	str := func(p *string, name, def, usage string) {
		withEnv = append(withEnv, name)
		fs.StringVar(p, name, def, usage+" (env "+envPrefix+envName(name)+")")
	}
	str(&c.grpcAddr, "grpc-addr", "127.0.0.1:50051", "gRPC listen address")
	str(&c.httpAddr, "http-addr", "127.0.0.1:8080", "REST gateway, OpenAPI, metrics and health listen address")
	str(&c.selfServiceAddr, "self-service-addr", "", "listen address of the data subjects' own page (sign-in by a code sent to the contact details on file; see the README), the one listener meant to face the internet, behind the company's domain and TLS; empty serves no such page")
	str(&c.proxyList, "self-service-trusted-proxies", "", "the reverse proxies in front of the data subjects' page, as addresses or CIDR prefixes separated by commas: their X-Forwarded-For names the client whose sign-ins are limited; empty trusts none (every client is the TCP peer)")
	str(&c.oidc.Issuer, "self-service-oidc-issuer", "", "issuer URL of the OpenID Connect provider (an e-ID broker for BankID and Freja eID) for strong sign-in on the data subjects' page; empty offers only the sign-in by code")
	str(&c.oidc.ClientID, "self-service-oidc-client-id", "", "the page's client id at that provider")
	str(&c.oidcSecretFile, "self-service-oidc-client-secret-file", "", "file holding the page's client secret at that provider; or give the secret itself in "+oidcSecretEnv)
	str(&c.oidc.RedirectURL, "self-service-oidc-redirect-url", "", "the page's address the provider sends people back to, registered there: https://YOUR-PAGE"+selfservice.OIDCCallbackPath)
	str(&c.oidc.Claim, "self-service-oidc-claim", selfservice.DefaultOIDCClaim, "the ID token's claim that holds the personnummer")
	str(&c.oidcScopes, "self-service-oidc-scopes", selfservice.DefaultOIDCScope, "scopes to ask for besides openid, separated by spaces: those that release that claim")
	str(&c.oidcACR, "self-service-oidc-acr", "", "authentication context classes (acr) that count as strong, separated by spaces, such as http://id.elegnamnden.se/loa/1.0/loa3: asked for, and required of the ID token; empty takes whatever the provider vouches for")
	str(&c.mongoURI, "mongo-uri", "", "MongoDB URI; empty runs the embedded store in -data-dir")
	str(&c.dataDir, "data-dir", "data", "directory of the embedded store")
	str(&c.database, "database", "personaldata", "database name")
	var durability string
	str(&durability, "durability", string(store.DurabilityFull), "when a write is acknowledged: full (once it is on stable storage: it survives a power cut) or normal (embedded store only, for development: once the operating system has it, so a power cut or kernel crash can take back the last acknowledged writes)")
	str(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	str(&c.operatorTokenFile, "operator-token-file", "", "where the first start writes the first operator's token; default <data-dir>/operator.token with the embedded store, none with -mongo-uri")
	str(&c.keyFile, "key-file", "", "master key file (JSON keyring, mode 0600); default <data-dir>/keyring.json with the embedded store, generated on first start; or give the keyring JSON itself in PERSONALDATA_MASTER_KEYS")
	str(&c.keeperURL, "master-key-keeper", "", "URL of the key service that wraps the key file (gocloud.dev/secrets): hashivault://KEY for Vault's transit engine (VAULT_SERVER_URL, VAULT_SERVER_TOKEN), base64key://KEY for a local key in tests; the file then holds only ciphertext")
	str(&c.erasureLedger, "erasure-ledger", "", "the erasure ledger, an append-only file of every erasure (ids, times, grounds) that a restore re-applies; default <data-dir>/"+ledger.DefaultName+"; in production put it on another disk than the data (see the README's Backups)")
	str(&c.metricsAddr, "metrics-addr", "", "listen address of /metrics alone (such as :9090), for a network that keeps it to the scrapers; empty serves /metrics on -http-addr")
	str(&c.otlpEndpoint, "otlp-endpoint", "", "OpenTelemetry collector (OTLP over gRPC) to send traces to, such as http://collector:4317; tracing is off when empty (also read from OTEL_EXPORTER_OTLP_ENDPOINT)")
	str(&c.tlsCert, "tls-cert", "", "TLS certificate file (PEM); enables TLS on both listeners")
	str(&c.tlsKey, "tls-key", "", "TLS key file (PEM)")
	str(&c.tlsClient, "tls-client-ca", "", "CA file (PEM) for client certificates (mutual TLS); the certificate's common name is the principal id")
	str(&c.sender.Name, "letter-sender-name", "", "the company's name, as the reply letters to data subjects are signed")
	str(&c.sender.Address, "letter-sender-address", "", "the company's postal address in the reply letters, lines separated by commas")
	str(&c.sender.Email, "letter-sender-email", "", "the support's e-mail address in the reply letters")
	str(&c.sender.Phone, "letter-sender-phone", "", "the support's phone number in the reply letters")
	str(&c.sender.Web, "letter-sender-web", "", "the web address of the privacy policy or contact form in the reply letters")
	dur := func(p *time.Duration, name string, def time.Duration, usage string) {
		withEnv = append(withEnv, name)
		fs.DurationVar(p, name, def, usage+" (env "+envPrefix+envName(name)+")")
	}
	str(&c.auditOrigin, "audit-origin", server.DefaultAuditOrigin, "the audit trail's log name in its signed checkpoints, a name the operator controls such as example.se/personaldata/audit")
	str(&c.auditCheckpointDir, "audit-checkpoint-dir", "", "directory that receives every signed checkpoint of the audit trail (files checkpoint and checkpoint.<size>, written atomically and synced): put it outside the database, on write-once storage")
	str(&c.auditCheckpointURL, "audit-checkpoint-url", "", "URL that receives every signed checkpoint of the audit trail in an HTTP POST (a witness, or storage outside the database)")
	dur(&c.auditCheckpointInterval, "audit-checkpoint-interval", 10*time.Minute, "how often the audit trail's Merkle tree is signed in a checkpoint; 0 only when an operator asks")
	dur(&c.retentionSweepInterval, "retention-sweep-interval", time.Hour, "how often the retention sweeper purges data whose legal holds ended; 0 disables it (operators can still run a pass)")
	dur(&c.drainDelay, "drain-delay", 5*time.Second, "on SIGTERM, how long to go on serving while reporting not ready, before the listeners close")
	dur(&c.shutdownTimout, "shutdown-timeout", 20*time.Second, "then, how long calls in flight may take to finish before they are cut")
	fs.BoolVar(&c.version, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, &helpRequested{usage: usage.String()}
		}
		return c, fmt.Errorf("%w (see personaldatad -h)", err)
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q (see personaldatad -h)", fs.Arg(0))
	}
	// Then the variables of the flags not given.
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if !given["otlp-endpoint"] {
		c.otlpEndpoint = os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
	}
	known := map[string]bool{}
	var envErr error
	for _, name := range withEnv {
		env := envPrefix + envName(name)
		known[env] = true
		if v, ok := os.LookupEnv(env); ok && !given[name] {
			if err := fs.Set(name, v); err != nil {
				envErr = errors.Join(envErr, fmt.Errorf("%s: %w", env, err))
			}
		}
	}
	if envErr != nil {
		return c, envErr
	}
	c.unknownEnv = unknownEnv(os.Environ(), known)
	d, err := store.ParseDurability(durability)
	if err != nil {
		return c, fmt.Errorf("-durability: %w", err)
	}
	c.durability = d
	if d == store.DurabilityNormal && c.mongoURI != "" {
		return c, errors.New("-durability normal is for the embedded store; with -mongo-uri writes are majority-acknowledged and journaled")
	}
	for name, d := range map[string]time.Duration{"retention-sweep-interval": c.retentionSweepInterval, "audit-checkpoint-interval": c.auditCheckpointInterval, "drain-delay": c.drainDelay, "shutdown-timeout": c.shutdownTimout} {
		if d < 0 {
			return c, fmt.Errorf("-%s: must not be negative", name)
		}
	}
	if c.operatorTokenFile == "" && c.mongoURI == "" {
		c.operatorTokenFile = filepath.Join(c.dataDir, "operator.token")
	}
	if c.erasureLedger == "" {
		c.erasureLedger = filepath.Join(c.dataDir, ledger.DefaultName)
	}
	if c.keyFile == "" && c.mongoURI == "" {
		c.keyFile = filepath.Join(c.dataDir, "keyring.json")
	}
	if err := c.readSelfService(); err != nil {
		return c, err
	}
	return c, nil
}

// oidcSecretEnv holds the OIDC client secret itself, when no file does.
const oidcSecretEnv = "PERSONALDATA_SELF_SERVICE_OIDC_CLIENT_SECRET"

// readSelfService completes the page's configuration: its trusted proxies,
// and the strong sign-in's scopes and secret, from the file or the
// environment (never a flag's value, which any user of the machine can read
// in the process list).
func (c *config) readSelfService() error {
	for _, s := range strings.Split(c.proxyList, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if a, aerr := netip.ParseAddr(s); err != nil && aerr == nil {
			p, err = a.Prefix(a.BitLen())
		}
		if err != nil {
			return fmt.Errorf("-self-service-trusted-proxies: %q is not an address or a CIDR prefix", s)
		}
		c.proxies = append(c.proxies, p.Masked())
	}
	c.oidc.Scopes = strings.Fields(c.oidcScopes)
	c.oidc.ACR = strings.Fields(c.oidcACR)
	if c.oidc.Issuer == "" {
		return nil
	}
	if c.selfServiceAddr == "" {
		return errors.New("-self-service-oidc-issuer: the page's strong sign-in needs the page: set -self-service-addr")
	}
	c.oidc.ClientSecret = os.Getenv(oidcSecretEnv)
	if c.oidcSecretFile != "" {
		b, err := os.ReadFile(c.oidcSecretFile)
		if err != nil {
			return fmt.Errorf("-self-service-oidc-client-secret-file: %w", err)
		}
		c.oidc.ClientSecret = strings.TrimSpace(string(b))
	}
	return nil
}

// unknownVar is a PERSONALDATA_ variable nothing reads, and the known one
// its name is closest to, if any is close.
type unknownVar struct{ name, closest string }

// warn logs it, one line: its name, never its value.
func (u unknownVar) warn(log *slog.Logger) {
	attrs := []any{slog.String("variable", u.name)}
	if u.closest != "" {
		attrs = append(attrs, slog.String("did_you_mean", u.closest))
	}
	log.Warn("unknown environment variable ignored: no flag reads it", attrs...)
}

// unknownEnv are the PERSONALDATA_ variables of env that are neither known
// nor in otherEnv, by name.
func unknownEnv(env []string, known map[string]bool) []unknownVar {
	var out []unknownVar
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, envPrefix) || known[name] || slices.ContainsFunc(otherEnv, func(o string) bool {
			prefix, wildcard := strings.CutSuffix(o, "*")
			return name == o || wildcard && strings.HasPrefix(name, prefix)
		}) {
			continue
		}
		u := unknownVar{name: name}
		bestDist := 3 // at most two letters off
		for k := range known {
			if d := editDistance(name, k); d < bestDist || d == bestDist && k < u.closest {
				u.closest, bestDist = k, d
			}
		}
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b unknownVar) int { return strings.Compare(a.name, b.name) })
	return out
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// envName turns a flag name into the tail of its environment variable.
func envName(flagName string) string {
	b := []byte(flagName)
	for i, c := range b {
		switch {
		case c == '-':
			b[i] = '_'
		case c >= 'a' && c <= 'z':
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func realMain(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "restore" {
		return restoreMain(ctx, args[1:])
	}
	c, err := parseFlags(args)
	if err != nil {
		return err
	}
	if c.version {
		fmt.Println("personaldatad", server.Version(), runtime.Version())
		return nil
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := newLogger(os.Stderr, level)
	for _, u := range c.unknownEnv {
		u.warn(log)
	}

	var tp trace.TracerProvider
	if c.otlpEndpoint != "" {
		sdk, err := tracing(ctx, c.otlpEndpoint)
		if err != nil {
			return fmt.Errorf("-otlp-endpoint: %w", err)
		}
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = sdk.Shutdown(ctx) // send the spans still batched
		}()
		tp = sdk
	}

	var keeper envelope.Wrapper
	if c.keeperURL != "" {
		k, err := secrets.OpenKeeper(ctx, c.keeperURL)
		if err != nil {
			return fmt.Errorf("-master-key-keeper: %w", err)
		}
		defer k.Close()
		keeper = k
	}

	srv, err := server.New(ctx, server.Config{
		GRPCAddr:          c.grpcAddr,
		HTTPAddr:          c.httpAddr,
		SelfServiceAddr:   c.selfServiceAddr,
		SelfServiceOIDC:   c.oidc,
		Store:             store.Config{URI: c.mongoURI, DataDir: c.dataDir, Database: c.database, Durability: c.durability},
		OperatorTokenFile: c.operatorTokenFile,
		TLS:               server.TLSConfig{CertFile: c.tlsCert, KeyFile: c.tlsKey, ClientCAFile: c.tlsClient},
		// A key file is generated only beside the embedded store's data: with
		// a shared MongoDB, every replica must be given the same keys.
		Keys: server.KeysConfig{
			MasterKeys:    []byte(os.Getenv("PERSONALDATA_MASTER_KEYS")),
			KeyFile:       c.keyFile,
			CreateKeyFile: c.mongoURI == "",
			Keeper:        keeper,
		},
		RetentionSweepInterval:  c.retentionSweepInterval,
		AuditCheckpoints:        audit.CheckpointConfig{Origin: c.auditOrigin, Dir: c.auditCheckpointDir, URL: c.auditCheckpointURL},
		AuditCheckpointInterval: c.auditCheckpointInterval,
		Version:                 server.Version(),
		DrainDelay:              c.drainDelay,
		ShutdownTimeout:         c.shutdownTimout,
		TracerProvider:          tp,
		MetricsAddr:             c.metricsAddr,
		ErasureLedger:           c.erasureLedger,
		LetterSender:            c.sender,

		SelfServiceTrustedProxies: c.proxies,
	}, log)
	if err != nil {
		return err
	}
	storeKind := "mongodb"
	if c.mongoURI == "" {
		storeKind = "embedded (" + c.dataDir + ")"
	}
	if c.durability == store.DurabilityNormal {
		log.Warn("durability normal: a write is acknowledged before it is on stable storage, so a power cut or kernel crash can take back the last acknowledged writes (creations, changes, erasures) and their audit events; for development only",
			slog.String("durability", string(c.durability)))
	}
	scheme := "http://"
	if c.tlsCert != "" {
		scheme = "https://"
	}
	if srv.KeyFileCreated {
		log.Info("generated the master keys that protect personal data at rest; keep the file safe, and backed up apart from the data", slog.String("file", c.keyFile))
	}
	if srv.OperatorCreated {
		// The path, never the token: the token is only in that file.
		log.Info("created the first operator; its bearer token is in the file, readable only by you", slog.String("file", c.operatorTokenFile))
	}
	authn := "bearer token: send 'authorization: Bearer <token>' (gRPC metadata or HTTP header)"
	if c.tlsClient != "" {
		authn += ", or a client certificate whose common name is the principal id"
	}
	log.Info("listening",
		slog.String("grpc", srv.GRPCAddr()),
		slog.String("http", scheme+srv.HTTPAddr()),
		slog.String("openapi", scheme+srv.HTTPAddr()+"/openapi.json"),
		slog.String("metrics", metricsURL(c, scheme, srv)),
		slog.String("self_service", srv.SelfServiceAddr()),
		slog.String("store", storeKind),
		slog.String("durability", string(c.durability)),
		slog.String("authentication", authn),
		slog.String("operator_token_file", c.operatorTokenFile))
	err = srv.Serve(ctx)
	log.Info("stopped")
	return err
}

// tracing exports spans in batches to the OTLP collector at endpoint, the
// service named personaldatad with its version.
func tracing(ctx context.Context, endpoint string) (*sdktrace.TracerProvider, error) {
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(endpoint))
	if err != nil {
		return nil, err
	}
	res := resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName("personaldatad"), semconv.ServiceVersion(server.Version()))
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), nil
}

// metricsURL is where /metrics is served: its own listener (plain HTTP) or
// the HTTP port.
func metricsURL(c config, scheme string, srv *server.Server) string {
	if c.metricsAddr != "" {
		return "http://" + srv.MetricsAddr() + "/metrics"
	}
	return scheme + srv.HTTPAddr() + "/metrics"
}

// newLogger writes JSON lines to w. A duration is logged as a number of
// milliseconds under its key with _ms added ("delay_ms": 5000), not as
// slog's nanoseconds: readable, and still a number that log queries can
// compare and sum, under a key that says its unit.
func newLogger(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: durationsInMilliseconds}))
}

func durationsInMilliseconds(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.Float64(a.Key+"_ms", milliseconds(a.Value.Duration()))
	}
	return a
}

// milliseconds is d in milliseconds, to the microsecond.
func milliseconds(d time.Duration) float64 {
	return math.Round(float64(d)/float64(time.Microsecond)) / 1000
}
