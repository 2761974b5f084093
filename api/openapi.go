package api

import _ "embed"

// openapiJSON is the OpenAPI 3.1 document of the API (GET /api/v1/openapi.json).
//
//go:embed openapi.json
var openapiJSON []byte
