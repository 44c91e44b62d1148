package server

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// The gateway's texts for what it cannot read, from grpc-gateway's runtime
// and generated handlers and from protojson. Each names a field (the group),
// which is looked up in the request's descriptor before it is used: a name
// not found there came from the request and is not repeated.
var (
	// A path parameter: "type mismatch, parameter: subject_id, error: ...".
	pathParam = regexp.MustCompile(`^(?:type mismatch, parameter: |missing parameter )([a-z0-9_.]+)`)
	// The query string: `parsing field "page_size": strconv.ParseInt: ...`.
	queryParam = regexp.MustCompile(`^(?:parsing field|parsing list|too many values for field|duplicate field|parsing map key|parsing map value) "([A-Za-z0-9_.]+)"`)
	// A JSON body: "proto: (line 1:20): invalid value for string field
	// identityNumber: ...". protojson puts a space or a no-break space after
	// "proto:", at random, so that nobody relies on its texts: when they
	// change, a rejection names "body" instead of the field, never the value.
	bodyField        = regexp.MustCompile(`^proto:[\s\x{00a0}]*\(line \d+:\d+\): (?:invalid value for \w+ field ([A-Za-z0-9_]+):|duplicate field "?([A-Za-z0-9_]+)"?|error parsing "?([A-Za-z0-9_]+)"?, oneof)`)
	bodyUnknownField = regexp.MustCompile(`^proto:[\s\x{00a0}]*\(line \d+:\d+\): unknown field `)
	// A field mask whose paths are not field names (masks.go).
	maskParam = regexp.MustCompile(`^field mask ([a-z0-9_.]+): `)
)

// rejection is the status for an error the gateway raised before calling
// gRPC, when it could not read the body, the query string or the path into
// the request message. Its text is the gateway's, which quotes what it could
// not read (a personnummer sent as a number, say); the rejection names the
// field in the API's spelling and says what is wrong, never what was sent.
func rejection(ctx context.Context, err error) *status.Status {
	var hse *runtime.HTTPStatusError
	if errors.As(err, &hse) {
		// The only one the runtime raises: a malformed %-sequence in the path.
		return badRequest("path", "is not a well-formed URL path")
	}
	st := status.Convert(err)
	for _, d := range st.Details() {
		if _, ok := d.(*errdetails.BadRequest); ok {
			return st // the gateway's own checks (gateway.go), which name no value
		}
	}
	if st.Code() != codes.InvalidArgument {
		return status.New(st.Code(), fmt.Sprintf("the gateway could not handle the request (%s)", st.Code()))
	}
	msg := st.Message()
	in, hasBody := requestMessage(ctx)
	place := "query"
	if hasBody {
		place = "body"
	}
	switch {
	case strings.HasPrefix(msg, "invalid grpc-timeout"):
		return badRequest("grpc-timeout", "is not a gRPC timeout such as 10S")
	case strings.HasPrefix(msg, "invalid binary header"):
		return badRequest("headers", "a -bin header is not base64")
	case strings.Contains(msg, "request body too large"):
		return withViolation(codes.ResourceExhausted, "body", fmt.Sprintf("is larger than %d bytes", maxRequestBytes))
	case strings.HasSuffix(msg, errTrailingData.Error()):
		return badRequest("body", "has data after the JSON object")
	}
	if m := maskParam.FindStringSubmatch(msg); m != nil {
		if path, fd := findField(in, m[1]); fd != nil {
			return badRequest(path, expected(fd))
		}
	}
	if m := pathParam.FindStringSubmatch(msg); m != nil {
		if path, fd := findField(in, m[1]); fd != nil {
			return badRequest(path, expected(fd))
		}
		return badRequest("path", "has a parameter that is not valid")
	}
	if m := queryParam.FindStringSubmatch(msg); m != nil {
		if path, fd := findField(in, m[1]); fd != nil {
			if strings.HasPrefix(m[0], "duplicate") || strings.HasPrefix(m[0], "too many") {
				return badRequest(path, "is given more than once")
			}
			return badRequest(path, expected(fd))
		}
		return badRequest("query", "has a parameter that is not valid")
	}
	if m := bodyField.FindStringSubmatch(msg); m != nil {
		name := m[1] + m[2] + m[3] // one group matched
		if path, fd := findField(in, name); fd != nil {
			if m[1] == "" {
				return badRequest(path, "is given more than once, or with another field of its oneof")
			}
			return badRequest(path, expected(fd))
		}
	}
	if bodyUnknownField.MatchString(msg) {
		return badRequest("body", "names a field that this request does not have")
	}
	if place == "body" {
		return badRequest("body", "is not a JSON object of this request's fields")
	}
	return badRequest("query", "is not a valid query string")
}

// badRequest is INVALID_ARGUMENT with a BadRequest naming field, as the
// service's own validation answers.
func badRequest(field, description string) *status.Status {
	return withViolation(codes.InvalidArgument, field, description)
}

// withViolation is a status of code with a BadRequest naming field.
func withViolation(code codes.Code, field, description string) *status.Status {
	st := status.New(code, "invalid request: "+field+": "+description)
	if d, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{
		Field: field, Description: description,
	}}}); err == nil {
		st = d
	}
	return st
}

// expected says what a field takes, from its descriptor.
func expected(fd protoreflect.FieldDescriptor) string {
	var what string
	switch fd.Kind() {
	case protoreflect.StringKind:
		what = "a string"
	case protoreflect.BoolKind:
		what = "true or false"
	case protoreflect.EnumKind:
		what = "a value name of " + string(fd.Enum().Name())
	case protoreflect.MessageKind, protoreflect.GroupKind:
		what = "an object of type " + string(fd.Message().Name())
		switch fd.Message().FullName() {
		case "google.protobuf.Timestamp":
			what = "an RFC 3339 time"
		case "google.protobuf.FieldMask":
			what = "a comma-separated list of field names"
		}
	case protoreflect.BytesKind:
		what = "base64"
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		what = "a number"
	default:
		what = "an integer"
	}
	if fd.IsList() {
		what = "a list of " + strings.TrimPrefix(strings.TrimPrefix(what, "a "), "an ")
	}
	return "has a value that is not valid: expected " + what
}

// requestMessage is the request message of the route's RPC, and whether
// the route reads it from a body.
func requestMessage(ctx context.Context) (protoreflect.MessageDescriptor, bool) {
	method, ok := runtime.RPCMethod(ctx)
	if !ok {
		return nil, false
	}
	svc, name, _ := strings.Cut(strings.TrimPrefix(method, "/"), "/")
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
	if err != nil {
		return nil, false
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, false
	}
	md := sd.Methods().ByName(protoreflect.Name(name))
	if md == nil {
		return nil, false
	}
	rule, _ := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule)
	return md.Input(), rule.GetBody() != ""
}

// findField finds a field of in by the name an error gives: a dotted path,
// or a single name in either spelling (proto or JSON), taken as the
// shallowest field of that name. It returns the field's path in proto
// names, or nil when in has no such field.
func findField(in protoreflect.MessageDescriptor, name string) (string, protoreflect.FieldDescriptor) {
	if in == nil || name == "" {
		return "", nil
	}
	if strings.Contains(name, ".") {
		var path []string
		var fd protoreflect.FieldDescriptor
		md := in
		for _, part := range strings.Split(name, ".") {
			if md == nil {
				return "", nil
			}
			if fd = byName(md, part); fd == nil {
				return "", nil
			}
			path = append(path, string(fd.Name()))
			md = fd.Message()
		}
		return strings.Join(path, "."), fd
	}
	type level struct {
		md   protoreflect.MessageDescriptor
		path string
	}
	queue := []level{{in, ""}}
	seen := map[protoreflect.FullName]bool{in.FullName(): true}
	for len(queue) > 0 {
		l := queue[0]
		queue = queue[1:]
		if fd := byName(l.md, name); fd != nil {
			return l.path + string(fd.Name()), fd
		}
		fields := l.md.Fields()
		for i := 0; i < fields.Len(); i++ {
			fd := fields.Get(i)
			if m := fd.Message(); m != nil && !fd.IsMap() && !seen[m.FullName()] {
				seen[m.FullName()] = true
				queue = append(queue, level{m, l.path + string(fd.Name()) + "."})
			}
		}
	}
	return "", nil
}

// byName is md's field of that proto or JSON name.
func byName(md protoreflect.MessageDescriptor, name string) protoreflect.FieldDescriptor {
	if fd := md.Fields().ByName(protoreflect.Name(name)); fd != nil {
		return fd
	}
	return md.Fields().ByJSONName(name)
}
