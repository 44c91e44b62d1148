// Package proto holds the API's source of truth, personaldata/v1/*.proto.
// It has no Go code: this file only carries the commands that regenerate
// ../gen, the stub module, with buf and the plugins pinned in ../buf.gen.yaml.
//
//	go generate ./proto
//
// google/api/*.proto come from a Go module in the module cache, since the Buf
// Schema Registry is not reachable.
package proto

//go:generate go mod download github.com/google/gnostic@v0.7.0
//go:generate sh -c "rm -rf ../.googleapis && mkdir -p ../.googleapis/google/api && cp $(go env GOMODCACHE)/github.com/google/gnostic@v0.7.0/cmd/protoc-gen-openapi/examples/google/api/annotations.proto $(go env GOMODCACHE)/github.com/google/gnostic@v0.7.0/cmd/protoc-gen-openapi/examples/google/api/http.proto $(go env GOMODCACHE)/github.com/google/gnostic@v0.7.0/cmd/protoc-gen-openapi/examples/google/api/field_behavior.proto $(go env GOMODCACHE)/github.com/google/gnostic@v0.7.0/third_party/google/api/httpbody.proto ../.googleapis/google/api/ && chmod -R u+w ../.googleapis"
//go:generate sh -c "cd .. && find gen -name '*.pb.go' -o -name '*.pb.gw.go' -o -name '*.swagger.json' | xargs rm -f"
//go:generate sh -c "cd .. && go run github.com/bufbuild/buf/cmd/buf@v1.75.0 generate"
