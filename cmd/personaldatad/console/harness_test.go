package console_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/example/personaldata/cmd/personaldatad/server"
	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store"
	"github.com/example/personaldata/store/storetest"
)

func TestMain(m *testing.M) { storetest.Main(m) }

// clock is the settable clock of the server under test.
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

// syncBuffer collects the server's log.
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

// env is a real server on loopback, with its own store, and a gRPC client.
type env struct {
	srv      *server.Server
	conn     *grpc.ClientConn
	base     string // http://127.0.0.1:port
	operator string
	clock    *clock
	logs     *syncBuffer
	db       *mongo.Database // the server's store, to check what it holds
}

// start runs the server until the test ends.
func start(t *testing.T) *env {
	t.Helper()
	return startWith(t, func(*server.Config) {})
}

// startWith runs the server, its config changed by configure, until the
// test ends.
func startWith(t *testing.T, configure func(*server.Config)) *env {
	t.Helper()
	e := &env{clock: &clock{t: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}, logs: &syncBuffer{}}
	dir := t.TempDir()
	database := fmt.Sprintf("pdconsole_%d", time.Now().UnixNano())
	cfg := server.Config{
		GRPCAddr:          "127.0.0.1:0",
		HTTPAddr:          "127.0.0.1:0",
		Store:             store.Config{URI: storetest.URI(), DataDir: filepath.Join(dir, "data"), Database: database},
		Now:               e.clock.Now,
		OperatorTokenFile: filepath.Join(dir, "operator.token"),
		Keys:              server.KeysConfig{KeyFile: filepath.Join(dir, "keyring.json"), CreateKeyFile: true},
	}
	configure(&cfg)
	srv, err := server.New(context.Background(), cfg, slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	e.srv, e.base = srv, "http://"+srv.HTTPAddr()
	e.conn, err = grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient: %v", err)
	}
	t.Cleanup(func() {
		_ = e.conn.Close()
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
	client, err := mongo.Connect(options.Client().ApplyURI(srv.StoreURI()))
	if err != nil {
		t.Fatalf("mongo.Connect: %v", err)
	}
	e.db = client.Database(database)
	t.Cleanup(func() {
		if storetest.URI() != "" {
			for _, name := range []string{database, store.AuditDatabase(database), store.KeysDatabase(database)} {
				_ = client.Database(name).Drop(context.Background())
			}
		}
		_ = client.Disconnect(context.Background())
	})
	tok, err := os.ReadFile(filepath.Join(dir, "operator.token"))
	if err != nil {
		t.Fatalf("operator token: %v", err)
	}
	e.operator = strings.TrimSpace(string(tok))
	return e
}

// as is a context whose calls carry token.
func as(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

func (e *env) subjects() pdv1.PersonalDataServiceClient {
	return pdv1.NewPersonalDataServiceClient(e.conn)
}

// principal has the operator create a principal and returns its token.
func (e *env) principal(t *testing.T, id string, kind pdv1.PrincipalKind, purposes ...pdv1.Purpose) string {
	t.Helper()
	res, err := pdv1.NewPrincipalServiceClient(e.conn).CreatePrincipal(as(e.operator), &pdv1.CreatePrincipalRequest{
		IdempotencyKey: "create-" + id,
		Principal:      &pdv1.Principal{PrincipalId: id, Kind: kind, TenantIds: []string{"company"}, Purposes: purposes},
	})
	if err != nil {
		t.Fatalf("CreatePrincipal %s: %v", id, err)
	}
	return res.GetToken()
}

// person is a made-up data subject.
type person struct {
	identity, given, family, email, phone string
}

// personal is every form of the person's values that must never leave
// the page body: in a URL, a title, a log line.
func (p person) personal() []string {
	digits := strings.ReplaceAll(p.identity, "-", "")
	return []string{digits, p.identity, digits[2:], p.identity[2:], p.given, p.family, p.email,
		strings.ReplaceAll(p.email, "@", "%40"), "46701234567", "070-123"}
}

// createSubject records p for the company as token's principal.
func (e *env) createSubject(t *testing.T, token string, p person) *pdv1.Subject {
	t.Helper()
	res, err := e.subjects().CreateSubject(as(token), &pdv1.CreateSubjectRequest{
		IdempotencyKey: fmt.Sprintf("create-%x", sha256.Sum256([]byte(p.given+p.family)))[:23], // no personal data in a key
		ControllerId:   "company",
		Person: &pdv1.Person{
			IdentityNumber: p.identity, GivenName: p.given, FamilyName: p.family, Email: p.email, Phone: p.phone,
			PostalAddress: &pdv1.PostalAddress{Lines: []string{"Testgatan 12"}, PostalCode: "123 45", Locality: "Teststad"},
		},
	})
	if err != nil {
		t.Fatalf("CreateSubject: %v", err)
	}
	return res.GetSubject()
}

// access is everything held about subject id, as token's principal.
func (e *env) access(t *testing.T, token, id string) *pdv1.AccessSubjectResponse {
	t.Helper()
	res, err := e.subjects().AccessSubject(as(token), &pdv1.AccessSubjectRequest{SubjectId: id})
	if err != nil {
		t.Fatalf("AccessSubject: %v", err)
	}
	return res
}

// identityNumber is a valid made-up personnummer born on yyyymmdd with
// serial nnn: the Luhn check digit over its last ten digits.
func identityNumber(yyyymmdd string, serial int) string {
	body := fmt.Sprintf("%s%03d", yyyymmdd[2:], serial)
	sum := 0
	for i, r := range body {
		d := int(r - '0')
		if i%2 == 0 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return fmt.Sprintf("%s-%03d%d", yyyymmdd, serial, (10-sum%10)%10)
}

// sessions counts the console's sessions in the store, and those of them
// that have expired by now.
func (e *env) sessions(t *testing.T) (all, expired int64) {
	t.Helper()
	c := e.db.Collection("console_sessions")
	all, err := c.CountDocuments(context.Background(), bson.D{})
	if err != nil {
		t.Fatalf("count sessions: %v", err)
	}
	expired, err = c.CountDocuments(context.Background(), bson.D{{Key: "expires", Value: bson.D{{Key: "$lte", Value: e.clock.Now().UnixNano()}}}})
	if err != nil {
		t.Fatalf("count sessions: %v", err)
	}
	return all, expired
}
