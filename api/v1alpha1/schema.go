package v1alpha1

import _ "embed" // for the schema

// Schema is the JSON Schema (draft 2020-12) of one hopguard document, for
// editors and CI; it dispatches on kind and rejects unknown fields. It is kept
// in sync with the Go types by a test. Schema is read-only by convention:
// callers must not modify the slice (copy it first).
//
//go:embed schema/hopguard.schema.json
var Schema []byte
