// Package openapi holds the OpenAPI (Swagger 2.0) document of the whole API,
// generated from proto/ by protoc-gen-openapiv2 into this folder.
package openapi

import _ "embed"

// Document is the OpenAPI document generated from proto/.
//
//go:embed personaldata/v1/personaldata.swagger.json
var Document []byte
