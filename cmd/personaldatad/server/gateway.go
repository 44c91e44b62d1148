package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// noRoute is the method label of a REST request that matched no route.
const noRoute = "(no route)"

// gateway writes the REST gateway's errors, and logs and counts the requests
// it refuses itself. Most errors are the gRPC server's answers, already
// logged and counted by its interceptors; but a body, query or path the
// gateway cannot read into the request message is refused before any gRPC
// call, and the gateway's text for it quotes what it could not read.
type gateway struct {
	log     *slog.Logger
	metrics *metrics
}

// newGatewayMux is the REST gateway: JSON with the proto field names, every
// error in one shape (google.rpc.Status), no gRPC metadata in the response.
func newGatewayMux(g *gateway) *runtime.ServeMux {
	return runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, gatewayMarshaler),
		runtime.WithMetadata(forwardClientCertificate),
		runtime.WithMetadata(forwardRequestID),
		runtime.WithIncomingHeaderMatcher(refuseInternalHeaders),
		// The gRPC server's headers and trailers are between it and the
		// gateway: none goes out as Grpc-Metadata-* or Grpc-Trailer-*.
		runtime.WithOutgoingHeaderMatcher(dropMetadata),
		runtime.WithOutgoingTrailerMatcher(dropMetadata),
		// A query parameter that names no field of the request is refused,
		// as an unknown field of a body is, not ignored (and logged).
		runtime.SetQueryParameterParser(strictQuery{}),
		runtime.WithErrorHandler(g.writeError),
		// A stream's error after its first message is its last line,
		// {"error": <google.rpc.Status>}, the Status as a unary error's body.
		runtime.WithStreamErrorHandler(streamStatus),
		runtime.WithRoutingErrorHandler(g.writeRoutingError),
	)
}

// gatewayMarshaler is the gateway's JSON, but a google.api.HttpBody (the
// reply letter) goes out as it is, with its own content type.
var gatewayMarshaler = apiMarshaler{&runtime.HTTPBodyMarshaler{Marshaler: &strictJSON{runtime.JSONPb{
	MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true},
	UnmarshalOptions: protojson.UnmarshalOptions{},
}}}}

// apiMarshaler gives every streamed response one content type.
type apiMarshaler struct{ *runtime.HTTPBodyMarshaler }

// StreamContentType is the content type of a streamed response.
func (apiMarshaler) StreamContentType(any) string { return streamContentType }

// Delimiter ends each line of a streamed response.
func (apiMarshaler) Delimiter() []byte { return []byte("\n") }

func dropMetadata(string) (string, bool) { return "", false }

// strictJSON is the gateway's JSON, which takes a body of exactly one JSON
// object: data after it is refused, not ignored.
type strictJSON struct{ runtime.JSONPb }

// errTrailingData is what the decoder says of data after the object.
var errTrailingData = errors.New("data after the JSON object")

func (m *strictJSON) NewDecoder(r io.Reader) runtime.Decoder {
	d := json.NewDecoder(r)
	inner := runtime.DecoderWrapper{Decoder: d, UnmarshalOptions: m.UnmarshalOptions}
	return runtime.DecoderFunc(func(v any) error {
		if pm, ok := v.(proto.Message); ok && hasMask(pm.ProtoReflect().Descriptor()) {
			// A mask's paths may be spelt as the fields are (masks.go).
			var raw json.RawMessage
			if err := d.Decode(&raw); err != nil {
				return err
			}
			spelt, err := spellMasks(raw, pm.ProtoReflect().Descriptor())
			if err != nil {
				return err
			}
			if err := m.UnmarshalOptions.Unmarshal(spelt, pm); err != nil {
				return err
			}
		} else if err := inner.Decode(v); err != nil {
			return err
		}
		if _, err := d.Token(); !errors.Is(err, io.EOF) {
			return errTrailingData
		}
		return nil
	})
}

// gatewayCall follows one REST request, so that its error can be told apart:
// the gRPC server's answer, or the gateway's own refusal before calling.
type gatewayCall struct {
	start time.Time
	// reached is set when the gateway calls the gRPC server.
	reached atomic.Bool
	// streamed is set when the call is a server stream; results counts the
	// messages it received, ended is set when it ended normally.
	streamed atomic.Bool
	results  atomic.Int64
	ended    atomic.Bool
}

type gatewayCallKey struct{}

// streamContentType is the content type of every streamed REST response:
// newline-delimited JSON.
const streamContentType = "application/x-ndjson"

// streamEnd is the last line of a stream that ended normally, with the
// number of {"result": ...} lines before it: a client tells a complete
// stream, even an empty one, from one cut off or still running.
type streamEnd struct {
	End struct {
		Results int64 `json:"results"`
	} `json:"end"`
}

// trackGatewayCalls puts a gatewayCall in each request's context, marks
// every answer as not to be stored or sniffed (it may carry personal data),
// and ends a stream that ended normally with its end line.
func trackGatewayCalls(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &gatewayCall{start: time.Now()}
		hdr := w.Header()
		hdr.Set("Cache-Control", "no-store")
		hdr.Set("X-Content-Type-Options", "nosniff")
		cw := &challengeWriter{ResponseWriter: w}
		h.ServeHTTP(cw, r.WithContext(context.WithValue(r.Context(), gatewayCallKey{}, c)))
		if !c.streamed.Load() || !c.ended.Load() {
			return
		}
		var end streamEnd
		end.End.Results = c.results.Load()
		line, _ := json.Marshal(end)
		if !cw.wrote { // an empty stream: nothing was written
			hdr.Set("Content-Type", streamContentType)
			cw.WriteHeader(http.StatusOK)
		}
		_, _ = cw.Write(append(line, '\n'))
	})
}

// challengeWriter names the scheme on every 401, from a unary call or a
// stream alike (RFC 7235 section 3.1, RFC 6750 section 3).
type challengeWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *challengeWriter) WriteHeader(code int) {
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", "Bearer")
	}
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *challengeWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Flush lets streamed responses out as they come.
func (w *challengeWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *challengeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func gatewayCallFrom(ctx context.Context) *gatewayCall {
	c, _ := ctx.Value(gatewayCallKey{}).(*gatewayCall)
	return c
}

// markReached and markReachedStream are the gateway's client interceptors:
// the request got as far as a gRPC call, whose outcome the server's own
// interceptors log and count.
//
// A request gRPC cannot carry (a string that is not UTF-8, from a path or
// query parameter) is the gateway's own refusal too: it never leaves.
func markReached(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if err := carriable(req); err != nil {
		return err
	}
	if c := gatewayCallFrom(ctx); c != nil {
		c.reached.Store(true)
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

func markReachedStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s := &lazyStream{ctx: ctx, call: gatewayCallFrom(ctx), open: func() (grpc.ClientStream, error) {
		return streamer(ctx, desc, cc, method, opts...)
	}}
	if s.call != nil {
		s.call.streamed.Store(true)
		s.first = responseMessage(method)
	}
	return s, nil
}

// responseMessage is a new response message of the RPC method, or nil.
func responseMessage(method string) proto.Message {
	svc, name, _ := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return nil
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok || sd.Methods().ByName(protoreflect.Name(name)) == nil {
		return nil
	}
	mt, err := protoregistry.GlobalTypes.FindMessageByName(sd.Methods().ByName(protoreflect.Name(name)).Output().FullName())
	if err != nil {
		return nil
	}
	return mt.New().Interface()
}

// lazyStream opens the gRPC stream only when its request goes out, so that
// a request the gateway refuses never starts a call on the server. The
// gateway's streams are server streams: one request, then responses.
//
// For a REST request it also waits for the first response when the request
// is sent (CloseSend), so that a stream refused before its first message is
// answered as a unary call is (the error's HTTP status, a google.rpc.Status
// body) and not as a stream; and it notes how the stream ended, so that a
// stream that ends normally gets its end line (see trackGatewayCalls).
type lazyStream struct {
	ctx    context.Context
	call   *gatewayCall // nil unless a REST request
	open   func() (grpc.ClientStream, error)
	stream grpc.ClientStream
	// first is the first response, read ahead by CloseSend; firstErr is what
	// reading it returned (io.EOF for an empty stream).
	first    proto.Message
	read     bool
	firstErr error
}

var errStreamNotOpen = status.Error(codes.Internal, "gateway: stream used before its request was sent")

func (s *lazyStream) SendMsg(m any) error {
	if s.stream != nil {
		return s.stream.SendMsg(m)
	}
	if err := carriable(m); err != nil {
		return err
	}
	if c := gatewayCallFrom(s.ctx); c != nil {
		c.reached.Store(true)
	}
	stream, err := s.open()
	if err != nil {
		return err
	}
	s.stream = stream
	return stream.SendMsg(m)
}

func (s *lazyStream) RecvMsg(m any) error {
	if s.stream == nil {
		return errStreamNotOpen
	}
	if s.read {
		s.read = false
		if s.firstErr == nil {
			proto.Reset(m.(proto.Message))
			proto.Merge(m.(proto.Message), s.first)
		}
		return s.note(s.firstErr)
	}
	return s.note(s.stream.RecvMsg(m))
}

// note records how a REST stream's receive went: a message, or its end.
func (s *lazyStream) note(err error) error {
	if s.call == nil {
		return err
	}
	switch {
	case err == nil:
		s.call.results.Add(1)
	case errors.Is(err, io.EOF):
		s.call.ended.Store(true)
	}
	return err
}

func (s *lazyStream) Header() (metadata.MD, error) {
	if s.stream == nil {
		return nil, errStreamNotOpen
	}
	return s.stream.Header()
}

func (s *lazyStream) Trailer() metadata.MD {
	if s.stream == nil {
		return nil
	}
	return s.stream.Trailer()
}

func (s *lazyStream) CloseSend() error {
	if s.stream == nil {
		return errStreamNotOpen
	}
	if err := s.stream.CloseSend(); err != nil {
		return err
	}
	if s.first == nil {
		return nil
	}
	s.read, s.firstErr = true, s.stream.RecvMsg(s.first)
	if s.firstErr != nil && !errors.Is(s.firstErr, io.EOF) {
		s.read = false
		return s.firstErr // the handler answers it as a unary error
	}
	return nil
}

func (s *lazyStream) Context() context.Context {
	if s.stream == nil {
		return s.ctx
	}
	return s.stream.Context()
}

// carriable refuses a request with a string field that is not UTF-8, which
// proto cannot encode, naming the field.
func carriable(req any) error {
	m, ok := req.(proto.Message)
	if !ok {
		return nil
	}
	var bad string
	m.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() == protoreflect.StringKind && !fd.IsList() && !fd.IsMap() && !utf8.ValidString(v.String()) {
			bad = string(fd.Name())
			return false
		}
		return true
	})
	if bad == "" {
		return nil
	}
	return badRequest(bad, "is not valid UTF-8").Err()
}

// writeError is the gateway's error handler. An error of the gRPC server
// goes out as it is; one the gateway raised itself is replaced by a
// rejection that names the field without the value, and logged and counted
// as the interceptors do for gRPC calls.
func (g *gateway) writeError(ctx context.Context, _ *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
	c := gatewayCallFrom(ctx)
	if c != nil && c.reached.Load() {
		st := status.Convert(err)
		writeStatus(ctx, w, m, st, runtime.HTTPStatusFromCode(st.Code()))
		return
	}
	st := rejection(ctx, err)
	g.record(ctx, routeMethod(ctx), st, c)
	httpStatus := runtime.HTTPStatusFromCode(st.Code())
	if st.Code() == codes.ResourceExhausted {
		httpStatus = http.StatusRequestEntityTooLarge // the body, the one thing it can be here
	}
	writeStatus(ctx, w, m, st, httpStatus)
}

// streamStatus is the status of a stream's error line, as writeStatus gives
// it for a unary error.
func streamStatus(ctx context.Context, err error) *status.Status {
	st := status.Convert(err)
	if id := requestIDFrom(ctx); id != "" {
		st = status.Convert(withRequestInfo(st.Err(), id))
	}
	return st
}

// writeRoutingError answers a request that matches no route: 404, or 405
// for a route that exists with another HTTP method.
func (g *gateway) writeRoutingError(ctx context.Context, _ *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	code := codes.NotFound
	switch httpStatus {
	case http.StatusMethodNotAllowed:
		code = codes.Unimplemented
		w.Header().Set("Allow", strings.Join(allowedMethods(r.URL.Path), ", "))
	case http.StatusBadRequest:
		code = codes.InvalidArgument
	}
	st := status.New(code, http.StatusText(httpStatus))
	g.record(ctx, noRoute, st, gatewayCallFrom(ctx))
	writeStatus(ctx, w, m, st, httpStatus)
}

// record logs and counts a request the gateway refused, under the gRPC
// method its route maps to (never its URL, which may hold values).
func (g *gateway) record(ctx context.Context, method string, st *status.Status, c *gatewayCall) {
	start := time.Now()
	if c != nil {
		start = c.start
	}
	g.metrics.observe(method, st.Code(), start)
	logRPC(ctx, g.log, method, st.Err(), start, slog.String("refused_by", "gateway"))
}

// routeMethod is the gRPC method of the request's route, or else the
// route's pattern, or noRoute.
func routeMethod(ctx context.Context) string {
	if m, ok := runtime.RPCMethod(ctx); ok {
		return m
	}
	if p, ok := runtime.HTTPPattern(ctx); ok {
		return p.String()
	}
	return noRoute
}

// writeStatus writes st as every REST error is written: the google.rpc.Status
// as JSON with its details.
func writeStatus(ctx context.Context, w http.ResponseWriter, m runtime.Marshaler, st *status.Status, httpStatus int) {
	if id := requestIDFrom(ctx); id != "" {
		st = status.Convert(withRequestInfo(st.Err(), id))
	}
	body, err := m.Marshal(st.Proto())
	if err != nil {
		body, httpStatus = []byte(`{"code":13,"message":"failed to marshal the error"}`), http.StatusInternalServerError
	}
	h := w.Header()
	h.Del("Trailer")
	h.Del("Transfer-Encoding") // set by a stream that failed before its first message
	h.Set("Content-Type", m.ContentType(st.Proto()))
	w.WriteHeader(httpStatus)
	_, _ = w.Write(body)
}

// strictQuery reads query parameters as grpc-gateway does, but refuses one
// that names no field of the request message.
type strictQuery struct{ runtime.DefaultQueryParser }

func (q strictQuery) Parse(msg proto.Message, values url.Values, filter *utilities.DoubleArray) error {
	for key := range values {
		if !hasFieldPath(msg.ProtoReflect().Descriptor(), strings.Split(key, ".")) {
			return badRequest("query", "names a field that this request does not have").Err()
		}
	}
	return q.DefaultQueryParser.Parse(msg, values, filter)
}

// hasFieldPath says whether path names a field of md (each step by its
// proto or JSON name), through nested messages.
func hasFieldPath(md protoreflect.MessageDescriptor, path []string) bool {
	for i, name := range path {
		fd := md.Fields().ByName(protoreflect.Name(name))
		if fd == nil {
			fd = md.Fields().ByJSONName(name)
		}
		if fd == nil {
			return false
		}
		if i < len(path)-1 {
			if fd.Message() == nil || fd.IsList() || fd.IsMap() {
				return false
			}
			md = fd.Message()
		}
	}
	return len(path) > 0
}

// routes are the REST routes of every RPC, for the Allow header of a 405.
var routes = func() []route {
	var out []route
	protoregistry.GlobalFiles.RangeFilesByPackage("personaldata.v1", func(f protoreflect.FileDescriptor) bool {
		for i := range f.Services().Len() {
			methods := f.Services().Get(i).Methods()
			for j := range methods.Len() {
				rule, _ := proto.GetExtension(methods.Get(j).Options(), annotations.E_Http).(*annotations.HttpRule)
				rpc := "/" + string(f.Services().Get(i).FullName()) + "/" + string(methods.Get(j).Name())
				switch {
				case rule.GetGet() != "":
					out = append(out, route{http.MethodGet, templatePattern(rule.GetGet()), rpc})
				case rule.GetPost() != "":
					out = append(out, route{http.MethodPost, templatePattern(rule.GetPost()), rpc})
				case rule.GetPatch() != "":
					out = append(out, route{http.MethodPatch, templatePattern(rule.GetPatch()), rpc})
				}
			}
		}
		return true
	})
	return out
}()

type route struct {
	method string
	path   *regexp.Regexp
	rpc    string // the full method name of the RPC
}

// templatePattern turns a path template ("/v1/subjects/{subject_id}:access")
// into a pattern of the paths it matches.
func templatePattern(tmpl string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for rest := tmpl; rest != ""; {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			b.WriteString(regexp.QuoteMeta(rest))
			break
		}
		b.WriteString(regexp.QuoteMeta(rest[:i]))
		b.WriteString(`[^/:]+`)
		rest = rest[i+strings.IndexByte(rest[i:], '}')+1:]
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// allowedMethods are the HTTP methods of the routes that match path.
func allowedMethods(path string) []string {
	var out []string
	for _, r := range routes {
		if r.path.MatchString(path) && !slices.Contains(out, r.method) {
			out = append(out, r.method)
		}
	}
	slices.Sort(out)
	return out
}
