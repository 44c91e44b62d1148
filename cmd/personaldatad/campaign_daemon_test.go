package main

// The campaign's handle on the real binary: building and starting it,
// killing it with SIGKILL, reading its store while it is down, and calling
// it over gRPC and over the REST gateway.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/example/personaldata/store"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"google.golang.org/genproto/googleapis/api/annotations"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	pdv1 "github.com/example/personaldata/gen/personaldata/v1"
	"github.com/example/personaldata/store/embedded"
)

// daemon is the personaldatad binary run as a child process on loopback,
// always on the same ports and data directory.
type daemon struct {
	bin, dataDir       string
	grpcAddr, httpAddr string
	// args are more flags, such as -mongo-uri for a store of another
	// process.
	args   []string
	log    *os.File // stderr of every run, appended
	cmd    *exec.Cmd
	exited chan struct{} // closed when the current run has ended
}

// buildDaemon builds this package's binary into dir.
func buildDaemon(t *testing.T, dir string) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the campaign builds the binary and needs the go command: %v", err)
	}
	bin := filepath.Join(dir, "personaldatad")
	out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// freeAddr is a loopback address with a port free right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start runs the binary and returns how long it took to become ready
// (/readyz answers 200: the store answers and takes audit appends).
func (d *daemon) start() (time.Duration, error) {
	cmd := exec.Command(d.bin, append([]string{
		"-grpc-addr", d.grpcAddr, "-http-addr", d.httpAddr,
		"-data-dir", d.dataDir, "-log-level", "warn"}, d.args...)...)
	cmd.Env = daemonEnv()
	cmd.Stdout, cmd.Stderr = d.log, d.log
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start personaldatad: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	d.cmd, d.exited = cmd, exited
	probe := &http.Client{Timeout: time.Second}
	for time.Since(begin) < time.Minute {
		select {
		case <-exited:
			return 0, fmt.Errorf("personaldatad exited while starting (%v); its log is %s", cmd.ProcessState, d.log.Name())
		case <-time.After(10 * time.Millisecond):
		}
		res, err := probe.Get("http://" + d.httpAddr + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return time.Since(begin), nil
			}
		}
	}
	return 0, errors.New("personaldatad not ready after a minute")
}

// daemonEnv is the test's environment without the service's own variables,
// so the child runs on its embedded store and its own key file whatever the
// developer's shell says.
func daemonEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PERSONALDATA_") {
			env = append(env, kv)
		}
	}
	return env
}

// running reports whether the current run has not ended.
func (d *daemon) running() bool {
	if d.exited == nil {
		return false
	}
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// kill9 sends SIGKILL and waits for the process to be gone. It reports
// false when the process had already ended by itself.
func (d *daemon) kill9() bool {
	alive := d.running()
	if alive {
		_ = d.cmd.Process.Kill() // SIGKILL
	}
	if d.exited != nil {
		<-d.exited
	}
	return alive
}

// stop asks for a graceful shutdown (SIGTERM) and waits for it.
func (d *daemon) stop() error {
	if !d.running() {
		return errors.New("personaldatad was not running")
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-d.exited:
		if !d.cmd.ProcessState.Success() {
			return fmt.Errorf("personaldatad stopped with %v", d.cmd.ProcessState)
		}
		return nil
	case <-time.After(40 * time.Second):
		d.kill9()
		return errors.New("personaldatad did not stop within 40 s of SIGTERM")
	}
}

// gate is open while the daemon serves: callers wait at it while the daemon
// is down instead of hammering a closed port.
type gate struct {
	mu sync.Mutex
	ch chan struct{} // closed while open
}

func newGate() *gate { return &gate{ch: make(chan struct{})} }

func (g *gate) wait(ctx context.Context) error {
	g.mu.Lock()
	ch := g.ch
	g.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.ch:
	default:
		close(g.ch)
	}
}

func (g *gate) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.ch:
		g.ch = make(chan struct{})
	default:
	}
}

// dialDaemon is a gRPC connection that reconnects quickly after a restart
// (the default backoff grows to two minutes).
func dialDaemon(addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 300 * time.Millisecond},
			MinConnectTimeout: 2 * time.Second,
		}))
}

// client calls the daemon as one principal over one transport.
type client struct {
	rest  bool
	conn  *grpc.ClientConn
	base  string // http://host:port
	token string
}

func (c client) transport() string {
	if c.rest {
		return "REST"
	}
	return "gRPC"
}

// other is the same principal over the other transport.
func (c client) other() client { c.rest = !c.rest; return c }

// campaignHTTP is the REST clients' HTTP client; calls are bounded by their
// contexts.
var campaignHTTP = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}

// call invokes a unary RPC, method being "package.Service/Method". Over REST
// it takes the route the method's google.api.http option declares.
func (c client) call(ctx context.Context, method string, req, resp proto.Message) error {
	if !c.rest {
		return c.conn.Invoke(c.outgoing(ctx), "/"+method, req, resp)
	}
	hr, err := restRequest(ctx, c.base, method, req)
	if err != nil {
		return err
	}
	hr.Header.Set("Authorization", "Bearer "+c.token)
	res, err := campaignHTTP.Do(hr)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return restStatus(res.StatusCode, b)
	}
	return protojson.Unmarshal(b, resp)
}

func (c client) outgoing(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.token)
}

// streamNotices reads a recipient's notification stream, handing each
// notification to got, until the stream or got fails.
func (c client) streamNotices(ctx context.Context, recipient string, got func(*pdv1.RecipientNotification) error) error {
	req := &pdv1.StreamRecipientNotificationsRequest{Recipient: recipient}
	if !c.rest {
		st, err := pdv1.NewDisclosureServiceClient(c.conn).StreamRecipientNotifications(c.outgoing(ctx), req)
		if err != nil {
			return err
		}
		for {
			m, err := st.Recv()
			if err != nil {
				return err
			}
			if err := got(m.GetNotification()); err != nil {
				return err
			}
		}
	}
	err := c.restStream(ctx, "personaldata.v1.DisclosureService/StreamRecipientNotifications", req,
		func() proto.Message { return &pdv1.StreamRecipientNotificationsResponse{} },
		func(m proto.Message) error {
			return got(m.(*pdv1.StreamRecipientNotificationsResponse).GetNotification())
		})
	if err == nil {
		return io.ErrUnexpectedEOF // the stream never ends by itself
	}
	return err
}

// restStream calls a server-streaming RPC over REST and hands each message
// to got, until the stream ends (nil), fails (its status) or got fails. The
// gateway answers a refusal before the first message as it answers a unary
// call (the HTTP status, a google.rpc.Status body), and otherwise sends one
// JSON object a line, {"result": ...}, then {"end": ...} or {"error": ...};
// a body that ends with neither was cut (io.ErrUnexpectedEOF).
func (c client) restStream(ctx context.Context, method string, req proto.Message, newResp func() proto.Message, got func(proto.Message) error) error {
	hr, err := restRequest(ctx, c.base, method, req)
	if err != nil {
		return err
	}
	hr.Header.Set("Authorization", "Bearer "+c.token)
	res, err := campaignHTTP.Do(hr)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		return restStatus(res.StatusCode, b)
	}
	lines := bufio.NewScanner(res.Body)
	lines.Buffer(make([]byte, 64<<10), 1<<20)
	for lines.Scan() {
		var line struct {
			Result json.RawMessage `json:"result"`
			Error  json.RawMessage `json:"error"`
			End    json.RawMessage `json:"end"` // the last line of a stream that ended
		}
		if err := json.Unmarshal(lines.Bytes(), &line); err != nil {
			return fmt.Errorf("stream line: %w", err)
		}
		if line.Error != nil {
			var st spb.Status
			if err := protojson.Unmarshal(line.Error, &st); err != nil {
				return fmt.Errorf("stream error line: %w", err)
			}
			return status.ErrorProto(&st)
		}
		if line.End != nil {
			return nil
		}
		m := newResp()
		if err := protojson.Unmarshal(line.Result, m); err != nil {
			return fmt.Errorf("stream result line: %w", err)
		}
		if err := got(m); err != nil {
			return err
		}
	}
	if err := lines.Err(); err != nil {
		return err
	}
	return io.ErrUnexpectedEOF
}

// restRequest builds the HTTP request of an RPC from its google.api.http
// option: path fields in the path, the rest in the body ("*") or the query.
func restRequest(ctx context.Context, base, method string, req proto.Message) (*http.Request, error) {
	svc, name, _ := strings.Cut(method, "/")
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return nil, err
	}
	md := d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(name))
	if md == nil {
		return nil, fmt.Errorf("no method %s", method)
	}
	rule := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule)
	verb, path := http.MethodGet, rule.GetGet()
	if p := rule.GetPost(); p != "" {
		verb, path = http.MethodPost, p
	}
	if p := rule.GetPatch(); p != "" {
		verb, path = http.MethodPatch, p
	}
	msg := req.ProtoReflect()
	inPath := map[protoreflect.Name]bool{}
	for {
		i, j := strings.Index(path, "{"), strings.Index(path, "}")
		if i < 0 || j < i {
			break
		}
		field := protoreflect.Name(path[i+1 : j])
		inPath[field] = true
		path = path[:i] + url.PathEscape(msg.Get(msg.Descriptor().Fields().ByName(field)).String()) + path[j+1:]
	}
	var body io.Reader
	if rule.GetBody() == "*" {
		b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(req)
		if err != nil {
			return nil, err
		}
		body = bytes.NewReader(b)
	} else {
		q := url.Values{}
		msg.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case inPath[fd.Name()]:
			case fd.Kind() == protoreflect.EnumKind:
				q.Set(string(fd.Name()), string(fd.Enum().Values().ByNumber(v.Enum()).Name()))
			default:
				q.Set(string(fd.Name()), v.String())
			}
			return true
		})
		if len(q) > 0 {
			path += "?" + q.Encode()
		}
	}
	hr, err := http.NewRequestWithContext(ctx, verb, base+path, body)
	if err != nil {
		return nil, err
	}
	hr.Header.Set("Content-Type", "application/json")
	return hr, nil
}

// httpError is an HTTP error without a status body.
type httpError struct{ code int }

func (e *httpError) Error() string { return fmt.Sprintf("HTTP %d without a status", e.code) }

// restStatus turns a REST error body back into the status it carries.
func restStatus(code int, body []byte) error {
	var st spb.Status
	if err := protojson.Unmarshal(body, &st); err != nil || st.GetCode() == 0 {
		return &httpError{code: code}
	}
	return status.ErrorProto(&st)
}

// outcome names how a call ended: its status code, "HTTP n" for an HTTP
// error without a status, or "no response" when the connection failed.
func outcome(err error) string {
	var he *httpError
	switch {
	case err == nil:
		return codes.OK.String()
	case errors.As(err, &he):
		return fmt.Sprintf("HTTP %d", he.code)
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded.String()
	}
	if st, ok := status.FromError(err); ok {
		return st.Code().String()
	}
	return "no response"
}

// streamOutcome is outcome for the end of a server stream, where io.EOF
// is the normal end.
func streamOutcome(err error) string {
	if errors.Is(err, io.EOF) {
		return codes.OK.String()
	}
	return outcome(err)
}

// transient says a call may not have reached the service, or was cut: the
// same request is sent again.
func transient(o string) bool {
	switch o {
	case "no response", codes.Unavailable.String(), codes.DeadlineExceeded.String(), codes.Canceled.String():
		return true
	}
	return false
}

// logSummary counts the daemon's log lines at WARN and ERROR by message
// (and op, where given); log lines carry no personal values.
func logSummary(path string) (map[string]int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, line := range bytes.Split(b, []byte("\n")) {
		var entry struct{ Level, Msg, Op string }
		if json.Unmarshal(line, &entry) != nil || (entry.Level != "WARN" && entry.Level != "ERROR") {
			continue
		}
		key := entry.Level + " " + entry.Msg
		if entry.Op != "" {
			key += " (" + entry.Op + ")"
		}
		out[key]++
	}
	return out, nil
}

// rawStore is what the daemon left on disk, read with the embedded store
// and the driver while the daemon is down.
type rawStore struct {
	dataKeys map[string]int64 // subject id → master key version of its data key
	subjects map[string]rawSubject
	history  map[string]int // subject id → history documents
	lookups  map[string]int // subject id → lookup keys (blind indexes) pointing to it
	requests map[string]int // rights request id → steps in its history
	// outbox holds the ids of the queued messages to requesters, outboxSent
	// those marked sent (acknowledged by the mailer).
	outbox, outboxSent map[string]bool
}

type rawSubject struct {
	Erased  bool
	Pending bool // an erasure's cleanup is still to do
}

// readRaw opens dataDir with the embedded store and reads the documents the
// campaign and the power-cut test check. The daemon must be down. (The
// power-cut test gives it a copy of the data on the ordinary disk: SQLite
// maps its files, and the test process serves the FUSE filesystem.)
func readRaw(ctx context.Context, dataDir string) (*rawStore, error) {
	srv, err := embedded.Start(ctx, dataDir, embedded.Durable)
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	cl, err := mongo.Connect(options.Client().ApplyURI(srv.URI()))
	if err != nil {
		return nil, err
	}
	defer cl.Disconnect(context.WithoutCancel(ctx))
	db := cl.Database("personaldata")
	raw := &rawStore{
		dataKeys: map[string]int64{}, subjects: map[string]rawSubject{}, history: map[string]int{}, lookups: map[string]int{},
		requests: map[string]int{}, outbox: map[string]bool{}, outboxSent: map[string]bool{},
	}
	each := func(coll string, projection bson.D, f func(bson.Raw) error) error {
		d := db
		if coll == "data_keys" {
			d = cl.Database(store.KeysDatabase("personaldata"))
		}
		cur, err := d.Collection(coll).Find(ctx, bson.D{}, options.Find().SetProjection(projection))
		if err != nil {
			return fmt.Errorf("read %s: %w", coll, err)
		}
		defer cur.Close(ctx)
		for cur.Next(ctx) {
			if err := f(cur.Current); err != nil {
				return fmt.Errorf("read %s: %w", coll, err)
			}
		}
		return cur.Err()
	}
	err = each("data_keys", bson.D{{Key: "key_version", Value: 1}}, func(d bson.Raw) error {
		var k struct {
			ID         string `bson:"_id"`
			KeyVersion int64  `bson:"key_version"`
		}
		err := bson.Unmarshal(d, &k)
		raw.dataKeys[k.ID] = k.KeyVersion
		return err
	})
	if err == nil {
		err = each("subjects", bson.D{{Key: "erasure", Value: 1}, {Key: "cleanup_pending", Value: 1}}, func(d bson.Raw) error {
			var s struct {
				ID      string   `bson:"_id"`
				Erasure bson.Raw `bson:"erasure"`
				Pending bool     `bson:"cleanup_pending"`
			}
			err := bson.Unmarshal(d, &s)
			raw.subjects[s.ID] = rawSubject{Erased: s.Erasure != nil, Pending: s.Pending}
			return err
		})
	}
	if err == nil {
		err = each("history", bson.D{{Key: "subject_id", Value: 1}}, func(d bson.Raw) error {
			var h struct {
				SubjectID string `bson:"subject_id"`
			}
			err := bson.Unmarshal(d, &h)
			raw.history[h.SubjectID]++
			return err
		})
	}
	if err == nil {
		err = each("keys", bson.D{{Key: "subject_id", Value: 1}}, func(d bson.Raw) error {
			var k struct {
				SubjectID string `bson:"subject_id"`
			}
			err := bson.Unmarshal(d, &k)
			raw.lookups[k.SubjectID]++
			return err
		})
	}
	if err == nil {
		err = each("rights_requests", bson.D{{Key: "steps", Value: 1}}, func(d bson.Raw) error {
			var r struct {
				ID    string     `bson:"_id"`
				Steps []bson.Raw `bson:"steps"`
			}
			err := bson.Unmarshal(d, &r)
			raw.requests[r.ID] = len(r.Steps)
			return err
		})
	}
	for coll, ids := range map[string]map[string]bool{"outbox": raw.outbox, "outbox_sent": raw.outboxSent} {
		if err == nil {
			err = each(coll, bson.D{{Key: "_id", Value: 1}}, func(d bson.Raw) error {
				var m struct {
					ID string `bson:"_id"`
				}
				err := bson.Unmarshal(d, &m)
				ids[m.ID] = true
				return err
			})
		}
	}
	return raw, err
}
