package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// openAPIDoc is what the tests read of the OpenAPI (Swagger 2.0) document.
type openAPIDoc struct {
	Swagger string `json:"swagger"`
	Info    struct {
		Title       string `json:"title"`
		Version     string `json:"version"`
		Description string `json:"description"`
	} `json:"info"`
	SecurityDefinitions map[string]struct {
		Type        string `json:"type"`
		In          string `json:"in"`
		Name        string `json:"name"`
		Description string `json:"description"`
	} `json:"securityDefinitions"`
	Security    []map[string][]string                  `json:"security"`
	Paths       map[string]map[string]openAPIOperation `json:"paths"`
	Definitions map[string]openAPISchema               `json:"definitions"`
}

type openAPIOperation struct {
	OperationID string             `json:"operationId"`
	Parameters  []openAPIParameter `json:"parameters"`
	Responses   map[string]struct {
		Description string        `json:"description"`
		Schema      openAPISchema `json:"schema"`
	} `json:"responses"`
}

type openAPIParameter struct {
	Name     string `json:"name"`
	In       string `json:"in"`
	Required bool   `json:"required"`
}

type openAPISchema struct {
	Required   []string `json:"required"`
	Properties map[string]struct {
		ReadOnly bool `json:"readOnly"`
	} `json:"properties"`
}

// route is an RPC's REST route as the OpenAPI document names it.
type route struct {
	service protoreflect.ServiceDescriptor
	method  protoreflect.MethodDescriptor
	rule    *annotations.HttpRule
	verb    string // lower case, as in the document
	path    string
	opID    string
}

var (
	// patternVariable matches a route variable with a pattern,
	// "{name=shelves/*}", which the document names "{name}".
	patternVariable = regexp.MustCompile(`\{([^}=]+)=[^}]*\}`)
	// pathVariable matches a variable of a route as the document names it.
	pathVariable = regexp.MustCompile(`\{([^}]+)\}`)
)

// httpRoutes lists the REST route of every RPC of personaldata.v1 that has
// one, from the protos compiled into the binary.
func httpRoutes(t *testing.T) []route {
	t.Helper()
	var out []route
	protoregistry.GlobalFiles.RangeFilesByPackage("personaldata.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			sd := fd.Services().Get(i)
			for j := range sd.Methods().Len() {
				md := sd.Methods().Get(j)
				rule := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule)
				if rule.GetPattern() == nil {
					continue
				}
				// Further bindings get operation ids numbered from 2.
				for b, r := range append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...) {
					rt := route{service: sd, method: md, rule: r, opID: string(sd.Name()) + "_" + string(md.Name())}
					if b > 0 {
						rt.opID += strconv.Itoa(b + 1)
					}
					switch p := r.GetPattern().(type) {
					case *annotations.HttpRule_Get:
						rt.verb, rt.path = "get", p.Get
					case *annotations.HttpRule_Post:
						rt.verb, rt.path = "post", p.Post
					case *annotations.HttpRule_Put:
						rt.verb, rt.path = "put", p.Put
					case *annotations.HttpRule_Patch:
						rt.verb, rt.path = "patch", p.Patch
					case *annotations.HttpRule_Delete:
						rt.verb, rt.path = "delete", p.Delete
					case *annotations.HttpRule_Custom:
						rt.verb, rt.path = strings.ToLower(p.Custom.GetKind()), p.Custom.GetPath()
					}
					rt.path = patternVariable.ReplaceAllString(rt.path, "{$1}")
					out = append(out, rt)
				}
			}
		}
		return true
	})
	return out
}

// fieldsWith names the fields of m with the given behaviour, but for those
// in except.
func fieldsWith(m protoreflect.MessageDescriptor, want annotations.FieldBehavior, except []string) []string {
	var out []string
	for i := range m.Fields().Len() {
		fd := m.Fields().Get(i)
		behaviours := proto.GetExtension(fd.Options(), annotations.E_FieldBehavior).([]annotations.FieldBehavior)
		if slices.Contains(behaviours, want) && !slices.Contains(except, string(fd.Name())) {
			out = append(out, string(fd.Name()))
		}
	}
	return out
}

func (s openAPISchema) readOnly() []string {
	var out []string
	for name, p := range s.Properties {
		if p.ReadOnly {
			out = append(out, name)
		}
	}
	return out
}

// sameSet reports whether a and b hold the same names.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestOpenAPI reads /openapi.json from a running server and checks that it
// describes every RPC with a REST route and nothing else, says how to
// authenticate, how streams look, and which fields are required or output
// only, as the protos compiled into the server say.
func TestOpenAPI(t *testing.T) {
	e := start(t)
	res, err := http.Get(e.base + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("/openapi.json: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	var doc openAPIDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}

	if doc.Swagger != "2.0" || doc.Info.Title != "personaldata" || doc.Info.Version == "" || doc.Info.Version == "version not set" {
		t.Errorf("swagger %q, title %q, version %q", doc.Swagger, doc.Info.Title, doc.Info.Version)
	}
	bearer := doc.SecurityDefinitions["bearer"]
	if bearer.Type != "apiKey" || bearer.In != "header" || bearer.Name != "Authorization" || !strings.Contains(bearer.Description, "Bearer <token>") {
		t.Errorf("security definition bearer: %+v", bearer)
	}
	if !slices.ContainsFunc(doc.Security, func(r map[string][]string) bool { _, ok := r["bearer"]; return ok }) {
		t.Errorf("security %v does not require bearer", doc.Security)
	}
	if !strings.Contains(doc.Info.Description, "newline-delimited JSON") || !strings.Contains(doc.Info.Description, "application/x-ndjson") ||
		!strings.Contains(doc.Info.Description, `{"end": {"results": <n>}}`) {
		t.Error("the description does not explain streamed responses")
	}

	routes := httpRoutes(t)
	services := map[string]bool{}
	documented := map[string]bool{}
	for _, rt := range routes {
		services[string(rt.service.Name())] = true
		documented[rt.verb+" "+rt.path] = true
		op, ok := doc.Paths[rt.path][rt.verb]
		if !ok {
			t.Errorf("%s: %s %s is not in the document", rt.method.FullName(), rt.verb, rt.path)
			continue
		}
		if op.OperationID != rt.opID {
			t.Errorf("%s %s: operationId %q, want %q", rt.verb, rt.path, op.OperationID, rt.opID)
		}
		if rt.method.IsStreamingServer() {
			r := op.Responses["200"]
			_, result := r.Schema.Properties["result"]
			_, failed := r.Schema.Properties["error"]
			if !strings.Contains(r.Description, "newline-delimited JSON") || !result || !failed {
				t.Errorf("%s: streamed response not explained: %+v", rt.method.FullName(), r)
			}
		}
		// A body of all fields but those in the path is a definition of its
		// own; it must require what the request message requires.
		if rt.rule.GetBody() == "*" && strings.Contains(rt.path, "{") {
			name := string(rt.service.Name()) + string(rt.method.Name()) + "Body"
			var inPath []string
			for _, m := range pathVariable.FindAllStringSubmatch(rt.path, -1) {
				inPath = append(inPath, m[1])
			}
			want := fieldsWith(rt.method.Input(), annotations.FieldBehavior_REQUIRED, inPath)
			if got := doc.Definitions[name].Required; !sameSet(got, want) {
				t.Errorf("%s requires %v, want %v", name, got, want)
			}
		}
	}
	// 37 RPCs in 8 services when this was written; more is fine.
	if len(routes) < 37 || len(services) < 8 {
		t.Errorf("%d routes of %d services found in the protos", len(routes), len(services))
	}
	for path, ops := range doc.Paths {
		for verb := range ops {
			if !documented[verb+" "+path] {
				t.Errorf("the document has %s %s, which no RPC serves", verb, path)
			}
		}
		// No route carries a personal value in its URL.
		for _, bad := range []string{"identity_number", "email", "phone"} {
			if strings.Contains(path, bad) {
				t.Errorf("route %s has %s in its URL", path, bad)
			}
		}
	}

	// Every message's definition marks what its fields' google.api.field_behavior says.
	protoregistry.GlobalFiles.RangeFilesByPackage("personaldata.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Messages().Len() {
			m := fd.Messages().Get(i)
			def, ok := doc.Definitions["v1"+string(m.Name())]
			if !ok {
				continue // a request whose fields are all in the path and body definitions
			}
			if want := fieldsWith(m, annotations.FieldBehavior_REQUIRED, nil); !sameSet(def.Required, want) {
				t.Errorf("%s requires %v, want %v", m.Name(), def.Required, want)
			}
			if want := fieldsWith(m, annotations.FieldBehavior_OUTPUT_ONLY, nil); !sameSet(def.readOnly(), want) {
				t.Errorf("%s has read-only %v, want %v", m.Name(), def.readOnly(), want)
			}
		}
		return true
	})
	// And the protos do mark fields, so the checks above are not empty.
	for def, fields := range map[string][]string{
		"v1CreateSubjectRequest":                {"idempotency_key", "person"},
		"PersonalDataServiceRectifySubjectBody": {"expected_version", "update_mask", "reference"},
		"v1PostalAddress":                       {"lines", "postal_code", "locality"},
	} {
		for _, f := range fields {
			if !slices.Contains(doc.Definitions[def].Required, f) {
				t.Errorf("%s does not require %s", def, f)
			}
		}
	}
	if slices.Contains(doc.Definitions["v1CreateSubjectRequest"].Required, "controller_id") {
		t.Error("controller_id is marked required, but a caller with one tenant may leave it empty")
	}
	for def, field := range map[string]string{"v1Principal": "token_count", "v1HistoryEntry": "entry_id", "v1Person": "identity_number_kind"} {
		if !doc.Definitions[def].Properties[field].ReadOnly {
			t.Errorf("%s.%s is not read-only", def, field)
		}
	}
	purpose := doc.Paths["/v1/subjects/{subject_id}:forPurpose"]["get"].Parameters
	if !slices.Contains(purpose, openAPIParameter{Name: "purpose", In: "query", Required: true}) {
		t.Errorf("GetSubjectForPurpose's purpose is not a required query parameter: %+v", purpose)
	}
}
