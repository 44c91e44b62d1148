package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/example/personaldata/cmd/personaldatad/server"
	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/embedded"
	"github.com/example/personaldata/store/envelope"
	"github.com/example/personaldata/store/ledger"
	"github.com/example/personaldata/store/storetest"
)

// TestMain runs the tests against the store that storetest.Env names: by
// default each test starts the embedded store of its own.
func TestMain(m *testing.M) { storetest.Main(m) }

// clock is a settable clock shared by the test and the server.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer collects the server's log output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is a real server on loopback with its own store, and clients for it.
type env struct {
	// token is the bearer token of "tester", support staff acting for the
	// company and for customer-42, with every purpose.
	token string
	// operator is the token of the first operator.
	operator string
	// keyFile holds the master keys; dir, the operator's token beside them.
	keyFile string
	dir     string
	// customer42 is the token of customer-42's controller, once made.
	customer42 string
	srv        *server.Server
	grpc       *grpc.ClientConn
	base       string // http://host:port
	db         *mongo.Database
	clock      *clock
	logs       *syncBuffer
}

// serve runs a real server on loopback until stop is called or the test
// ends. Its operator token and master keys are in dir; cfg gives the rest.
func serve(t *testing.T, dir string, cfg server.Config, log *slog.Logger) (srv *server.Server, stop func()) {
	t.Helper()
	cfg.GRPCAddr, cfg.HTTPAddr, cfg.SelfServiceMinStart = "127.0.0.1:0", "127.0.0.1:0", 20*time.Millisecond
	if cfg.SelfServiceAddr == "" {
		cfg.SelfServiceAddr = "127.0.0.1:0"
	}
	cfg.OperatorTokenFile = filepath.Join(dir, "operator.token")
	cfg.Keys = server.KeysConfig{KeyFile: filepath.Join(dir, "keyring.json"), CreateKeyFile: true}
	srv, err := server.New(context.Background(), cfg, log)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-served:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("the server did not shut down")
			}
		})
	}
	t.Cleanup(stop)
	return srv, stop
}

// dial is a gRPC client of srv, closed when the test ends.
func dial(t *testing.T, srv *server.Server) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// start runs a server for the test and stops it when the test ends.
func start(t *testing.T) *env {
	t.Helper()
	return startOn(t, storetest.URI())
}

// sharedStore is the URI of a store that servers reach as replicas do, none
// of them owning it: the MongoDB the tests run against, or else an embedded
// store started for the test alone. A server that owns its embedded store
// keeps the subjects it wrote in memory, so writes by another replica, or
// by the test itself standing in for a crash, need such a store to be seen.
func sharedStore(t *testing.T) string {
	t.Helper()
	if uri := storetest.URI(); uri != "" {
		return uri
	}
	db, err := embedded.Start(context.Background(), t.TempDir(), embedded.Durable)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() }) // after the servers that use it
	return db.URI()
}

// startOn is start with the store at uri (empty: an embedded store the
// server owns); opts change the server's configuration.
func startOn(t *testing.T, uri string, opts ...func(*server.Config)) *env {
	t.Helper()
	e := &env{clock: &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}, logs: &syncBuffer{}}
	database := fmt.Sprintf("pdtest_%d", time.Now().UnixNano())
	dir := t.TempDir()
	e.dir, e.keyFile = dir, filepath.Join(dir, "keyring.json")
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := server.Config{
		Store:         store.Config{URI: uri, DataDir: filepath.Join(dir, "data"), Database: database},
		Now:           e.clock.Now,
		ErasureLedger: filepath.Join(dir, "data", ledger.DefaultName),
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, stop := serve(t, dir, cfg, log)
	e.srv = srv
	e.grpc = dial(t, srv)
	e.base = "http://" + srv.HTTPAddr()
	client, err := mongo.Connect(options.Client().ApplyURI(srv.StoreURI()))
	if err != nil {
		t.Fatalf("mongo.Connect: %v", err)
	}
	e.db = client.Database(database)
	e.operator = readToken(t, filepath.Join(dir, "operator.token"))
	e.token = e.principal(t, "tester", pdv1.PrincipalKind_PRINCIPAL_KIND_SUPPORT_STAFF, []string{"company", "customer-42"}, allPurposes)
	t.Cleanup(func() {
		if uri != "" {
			for _, name := range []string{database, store.AuditDatabase(database), store.KeysDatabase(database)} {
				_ = client.Database(name).Drop(context.Background())
			}
		}
		_ = client.Disconnect(context.Background())
		_ = e.grpc.Close() // ends open streams, which a graceful stop waits for
		stop()
	})
	return e
}

// replica starts a second server on e's store, with e's master keys, as
// another replica behind a load balancer: its caches (principals, data keys,
// audit chain ends) are its own. It reaches the store by its URI, so the
// embedded store serves it in its MongoDB mode. The env returned shares e's
// tokens, database and clock; its server, clients and logs are the
// replica's. The replica stops before e's server, whose store it uses.
func (e *env) replica(t *testing.T) *env {
	t.Helper()
	r := *e
	r.logs = &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// e.dir holds the key file and the operator's token file, both there
	// already: the replica loads the one and finds the operator made.
	r.srv, _ = serve(t, e.dir, server.Config{
		Store: store.Config{URI: e.srv.StoreURI(), Database: e.db.Name()},
		Now:   e.clock.Now,
	}, log)
	r.grpc = dial(t, r.srv)
	r.base = "http://" + r.srv.HTTPAddr()
	return &r
}

var allPurposes = []pdv1.Purpose{
	pdv1.Purpose_PURPOSE_INVOICING, pdv1.Purpose_PURPOSE_SERVICE_DELIVERY, pdv1.Purpose_PURPOSE_ACCOUNT_COMMUNICATION,
	pdv1.Purpose_PURPOSE_SUPPORT, pdv1.Purpose_PURPOSE_DOMAIN_REGISTRATION,
}

func readToken(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("operator token: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// principal has the operator create a principal and returns its token.
func (e *env) principal(t *testing.T, id string, kind pdv1.PrincipalKind, tenants []string, purposes []pdv1.Purpose) string {
	t.Helper()
	return createPrincipal(t, grpcCaller{e.grpc, e.operator}, id, kind, tenants, purposes)
}

func createPrincipal(t *testing.T, operator caller, id string, kind pdv1.PrincipalKind, tenants []string, purposes []pdv1.Purpose) string {
	t.Helper()
	res := call(t, operator, "personaldata.v1.PrincipalService/CreatePrincipal", &pdv1.CreatePrincipalRequest{
		IdempotencyKey: "create-" + id,
		Principal:      &pdv1.Principal{PrincipalId: id, Kind: kind, TenantIds: tenants, Purposes: purposes},
	}, &pdv1.CreatePrincipalResponse{})
	return res.GetToken()
}

// as calls over c's transport with another token.
func (e *env) as(c caller, token string) caller {
	if c.name() == "rest" {
		return restCaller{e.base, token}
	}
	return grpcCaller{e.grpc, token}
}

// controller is c's transport as the controller principal of customer-42,
// who makes the rights requests about that customer's data.
func (e *env) controller(t *testing.T, c caller) caller {
	t.Helper()
	if e.customer42 == "" {
		e.customer42 = e.principal(t, "customer-42-admin", pdv1.PrincipalKind_PRINCIPAL_KIND_CUSTOMER_CONTROLLER, []string{"customer-42"}, allPurposes)
	}
	return e.as(c, e.customer42)
}

// gc and rc call as the tester over gRPC and REST.
func (e *env) gc() caller { return grpcCaller{e.grpc, e.token} }
func (e *env) rc() caller { return restCaller{e.base, e.token} }

// caller calls an RPC by name, over one transport: "Method" for
// PersonalDataService, or "package.Service/Method".
type caller interface {
	call(ctx context.Context, method string, req, resp proto.Message) error
	name() string
}

// fullMethod turns an RPC name into "/package.Service/Method".
func fullMethod(method string) string {
	if !strings.Contains(method, "/") {
		method = "personaldata.v1.PersonalDataService/" + method
	}
	return "/" + method
}

type grpcCaller struct {
	conn  *grpc.ClientConn
	token string
}

func (g grpcCaller) name() string { return "grpc" }

func (g grpcCaller) call(ctx context.Context, method string, req, resp proto.Message) error {
	if g.token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+g.token)
	}
	md, err := methodDescriptor(method)
	if err != nil {
		return err
	}
	if !md.IsStreamingServer() {
		return g.conn.Invoke(ctx, fullMethod(method), req, resp)
	}
	// A server stream: read it to the end; the last message is the response.
	stream, err := g.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, fullMethod(method))
	if err != nil {
		return err
	}
	if err := stream.SendMsg(req); err != nil {
		return err
	}
	if err := stream.CloseSend(); err != nil {
		return err
	}
	for {
		msg := resp.ProtoReflect().New().Interface()
		err := stream.RecvMsg(msg)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		proto.Reset(resp)
		proto.Merge(resp, msg)
	}
}

// methodDescriptor finds an RPC by name, as caller.call takes it.
func methodDescriptor(method string) (protoreflect.MethodDescriptor, error) {
	full := strings.TrimPrefix(fullMethod(method), "/")
	svc, name, _ := strings.Cut(full, "/")
	sd, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return nil, err
	}
	md := sd.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(name))
	if md == nil {
		return nil, fmt.Errorf("no method %s", method)
	}
	return md, nil
}

// restCaller calls the REST route that the method's google.api.http option
// declares, so the tests exercise the routes exactly as the protos give them.
type restCaller struct {
	base  string
	token string
}

func (r restCaller) name() string { return "rest" }

// restError is a REST error body turned back into a status, with the HTTP
// status code it came with.
type restError struct {
	st       *status.Status
	httpCode int
}

func (e *restError) Error() string              { return fmt.Sprintf("HTTP %d: %v", e.httpCode, e.st.Err()) }
func (e *restError) GRPCStatus() *status.Status { return e.st }

var jsonOut = protojson.MarshalOptions{UseProtoNames: true}

func (r restCaller) call(ctx context.Context, method string, req, resp proto.Message) error {
	md, err := methodDescriptor(method)
	if err != nil {
		return err
	}
	rule := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule)
	verb, tmpl := "GET", rule.GetGet()
	if p := rule.GetPost(); p != "" {
		verb, tmpl = "POST", p
	}
	if p := rule.GetPatch(); p != "" {
		verb, tmpl = "PATCH", p
	}
	msg := req.ProtoReflect()
	inPath := map[string]bool{}
	for {
		i := strings.Index(tmpl, "{")
		if i < 0 {
			break
		}
		j := strings.Index(tmpl, "}")
		field := tmpl[i+1 : j]
		inPath[field] = true
		fd := msg.Descriptor().Fields().ByName(protoreflect.Name(field))
		tmpl = tmpl[:i] + url.PathEscape(msg.Get(fd).String()) + tmpl[j+1:]
	}
	var body io.Reader
	if rule.GetBody() == "*" {
		b, err := jsonOut.Marshal(req)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	} else {
		q := url.Values{}
		msg.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			if inPath[string(fd.Name())] {
				return true
			}
			word := func(v protoreflect.Value) string {
				if fd.Kind() == protoreflect.EnumKind {
					return string(fd.Enum().Values().ByNumber(v.Enum()).Name())
				}
				return v.String()
			}
			if fd.IsList() { // the parameter repeated, as the gateway reads it
				for i := range v.List().Len() {
					q.Add(string(fd.Name()), word(v.List().Get(i)))
				}
				return true
			}
			q.Set(string(fd.Name()), word(v))
			return true
		})
		if len(q) > 0 {
			tmpl += "?" + q.Encode()
		}
	}
	hr, err := http.NewRequestWithContext(ctx, verb, r.base+tmpl, body)
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Type", "application/json")
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if md.IsStreamingServer() && res.StatusCode == http.StatusOK {
		// The gateway streams {"result": ...} lines, ended by an {"end": ...}
		// line or an {"error": ...} line; a stream refused before its first
		// message is answered as a unary call is.
		if ct := res.Header.Get("Content-Type"); ct != "application/x-ndjson" {
			return fmt.Errorf("stream with Content-Type %q", ct)
		}
		return streamResult(b, resp)
	}
	if res.StatusCode != http.StatusOK {
		return restRefusal(b, res.StatusCode)
	}
	return protojson.Unmarshal(b, resp)
}

// restRefusal is a unary error body (a google.rpc.Status) as the call's
// error, as a stream refused before its first message is answered too.
func restRefusal(body []byte, httpCode int) error {
	var st spb.Status
	if err := protojson.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("HTTP %d with a body that is not a status: %s", httpCode, body)
	}
	return &restError{st: status.FromProto(&st), httpCode: httpCode}
}

// streamResult reads a server stream as the gateway sends it, one JSON
// object a line ({"result": ...}, then {"end": ...} or {"error": ...}): an
// error line becomes the call's error, otherwise the last result is the
// response. A stream without its last line is an error.
func streamResult(body []byte, resp proto.Message) error {
	var last json.RawMessage
	for _, line := range bytes.Split(bytes.TrimSpace(body), []byte("\n")) {
		var msg struct {
			Result json.RawMessage `json:"result"`
			Error  json.RawMessage `json:"error"`
			End    *struct {
				Results int `json:"results"`
			} `json:"end"`
		}
		if err := json.Unmarshal(line, &msg); err != nil {
			return fmt.Errorf("stream line %q: %w", line, err)
		}
		switch {
		case msg.Error != nil:
			var st spb.Status
			if err := protojson.Unmarshal(msg.Error, &st); err != nil {
				return err
			}
			return &restError{st: status.FromProto(&st), httpCode: http.StatusOK}
		case msg.End != nil:
			if last == nil {
				return nil
			}
			return protojson.Unmarshal(last, resp)
		}
		last = msg.Result
	}
	return fmt.Errorf("stream ended without an end or error line: %s", body)
}

// transports runs f once over gRPC and once over REST, each on a fresh server.
func transports(t *testing.T, f func(t *testing.T, e *env, c caller)) {
	t.Helper()
	transportsOn(t, func(*testing.T) string { return storetest.URI() }, f)
}

// transportsOn is transports with each server on the store at the URI
// storeURI gives (sharedStore, say).
func transportsOn(t *testing.T, storeURI func(*testing.T) string, f func(t *testing.T, e *env, c caller)) {
	t.Helper()
	t.Run("grpc", func(t *testing.T) {
		e := startOn(t, storeURI(t))
		f(t, e, e.gc())
	})
	t.Run("rest", func(t *testing.T) {
		e := startOn(t, storeURI(t))
		f(t, e, e.rc())
	})
}

// call invokes method and fails the test on error.
func call[Resp proto.Message](t *testing.T, c caller, method string, req proto.Message, resp Resp) Resp {
	t.Helper()
	if err := c.call(context.Background(), method, req, resp); err != nil {
		t.Fatalf("%s over %s: %v", method, c.name(), err)
	}
	return resp
}

// callErr invokes method, expects it to fail with code and returns the error.
func callErr(t *testing.T, c caller, method string, req, resp proto.Message, code codes.Code) error {
	t.Helper()
	err := c.call(context.Background(), method, req, resp)
	if status.Code(err) != code {
		t.Fatalf("%s over %s: got %v, want code %v", method, c.name(), err, code)
	}
	if re, ok := err.(*restError); ok {
		if want := httpStatus(code); re.httpCode != want {
			t.Fatalf("%s over REST: HTTP %d, want %d", method, re.httpCode, want)
		}
	}
	return err
}

// httpStatus is the HTTP status the gateway gives each code.
func httpStatus(c codes.Code) int {
	switch c {
	case codes.InvalidArgument, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.FailedPrecondition:
		return http.StatusBadRequest
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// badFields lists the fields an INVALID_ARGUMENT names.
func badFields(err error) []string {
	var out []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				out = append(out, v.GetField())
			}
		}
	}
	return out
}

// openStored decrypts a subject's stored fields the way only the service
// can: with its data key, unwrapped by the master keys in the key file.
func (e *env) openStored(t *testing.T, id string) map[string]string {
	t.Helper()
	ctx := context.Background()
	var doc struct {
		Sealed map[string][]byte `bson:"sealed"`
	}
	if err := e.coll("subjects").FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&doc); err != nil {
		t.Fatalf("stored subject: %v", err)
	}
	dk := e.dataKey(t, id)
	out := map[string]string{}
	for field, ct := range doc.Sealed {
		v, err := dk.OpenString(ct, envelope.AAD("subject", id, field))
		if err != nil {
			t.Fatalf("open %s: %v", field, err)
		}
		out[field] = v
	}
	return out
}

// dataKey unwraps a subject's stored data key with the key file.
func (e *env) dataKey(t *testing.T, id string) envelope.DataKey {
	t.Helper()
	var k struct {
		KeyVersion int64  `bson:"key_version"`
		Wrapped    []byte `bson:"wrapped"`
	}
	if err := e.coll("data_keys").FindOne(context.Background(), bson.D{{Key: "_id", Value: id}}).Decode(&k); err != nil {
		t.Fatalf("data key: %v", err)
	}
	ring, err := envelope.Load(e.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	dk, err := ring.Unwrap(envelope.WrappedKey{Version: uint32(k.KeyVersion), Ciphertext: k.Wrapped})
	if err != nil {
		t.Fatal(err)
	}
	return dk
}

// count is the number of documents in a collection, read with the driver.
func (e *env) count(t *testing.T, collection string) int64 {
	t.Helper()
	n, err := e.coll(collection).CountDocuments(context.Background(), bson.D{})
	if err != nil {
		t.Fatalf("count %s: %v", collection, err)
	}
	return n
}

// coll is a collection of the server's store, in the database it lives in:
// the audit trail and the data keys have databases of their own.
func (e *env) coll(name string) *mongo.Collection {
	db := e.db
	switch name {
	case "audit_events", "audit_heads", "audit_checkpoints":
		db = db.Client().Database(store.AuditDatabase(db.Name()))
	case "data_keys":
		db = db.Client().Database(store.KeysDatabase(db.Name()))
	}
	return db.Collection(name)
}

// rawDump is every stored document of the service as extended JSON, to
// search for values that must not be there.
func (e *env) rawDump(t *testing.T) string {
	t.Helper()
	var sb strings.Builder
	for _, c := range []string{"subjects", "keys", "history", "data_keys", "principals", "agreements", "jobs", "audit_events", "notifications", "notification_heads", "notification_keys", "rights_requests", "outbox", "subject_ops", "self_service_challenges", "breach_records", "breach_subjects"} {
		cur, err := e.coll(c).Find(context.Background(), bson.D{})
		if err != nil {
			t.Fatalf("find %s: %v", c, err)
		}
		for cur.Next(context.Background()) {
			sb.WriteString(cur.Current.String())
			sb.WriteByte('\n')
		}
		if err := cur.Err(); err != nil {
			t.Fatalf("cursor %s: %v", c, err)
		}
		_ = cur.Close(context.Background())
	}
	return sb.String()
}

// testPerson is a made-up person; n varies every value, including a valid
// personnummer born in 1980 + n%20.
func testPerson(n int) *pdv1.Person {
	return &pdv1.Person{
		IdentityNumber: pnr(1980+n%20, 1+n%12, 1+n%28, 100+n%800),
		GivenName:      fmt.Sprintf("Testa%d", n),
		FamilyName:     fmt.Sprintf("Testsson%d", n),
		Email:          fmt.Sprintf("testa%d@example.test", n),
		Phone:          fmt.Sprintf("070-%03d %02d %02d", n%1000, n%100, (n/100)%100),
		PostalAddress: &pdv1.PostalAddress{
			Lines:      []string{fmt.Sprintf("Provgatan %d", n)},
			PostalCode: "123 45",
			Locality:   "Provstad",
		},
	}
}

// pnr builds a personnummer "YYYYMMDD-NNNC" with a correct check digit.
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

// restStream opens an endless server stream over REST (GET, one JSON line
// {"result": ...} a message) as the holder of token, and returns what reads
// the next message into m. The stream ends with the test.
func restStream(t *testing.T, url, token string) func(m proto.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = res.Body.Close() })
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d", url, res.StatusCode)
	}
	lines := bufio.NewScanner(res.Body)
	return func(m proto.Message) {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("stream ended: %v", lines.Err())
		}
		var line struct {
			Result json.RawMessage `json:"result"`
			Error  json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(lines.Bytes(), &line); err != nil || line.Error != nil {
			t.Fatalf("line %s: %v", lines.Bytes(), err)
		}
		if err := protojson.Unmarshal(line.Result, m); err != nil {
			t.Fatal(err)
		}
	}
}
