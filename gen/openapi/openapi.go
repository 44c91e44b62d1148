// Package openapi holds the OpenAPI (Swagger 2.0) document of the whole API:
// one document for every service, merged by protoc-gen-openapiv2 from
// proto/ and proto/openapi.yaml into this folder.
package openapi

import _ "embed"

// Document is the OpenAPI document generated from proto/.
//
//go:embed personaldata.swagger.json
var Document []byte
